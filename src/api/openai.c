/*
 * api openai — the parse stage of /v1/...: which endpoint the path and
 * method name, the OpenAI-shaped body decoded into the request (r->body, or
 * only scanned: r->fast) and checked the way every upstream would check it,
 * and GET /v1/models and GET /v1/models/{id} answered (with what the
 * caller's key may see: policy_model_visible). Runs after the auth stage, so
 * the body of a client that is refused is never decoded.
 *
 * The scan (core/jscan.h) reads a body once without building a tree; a body
 * it accepts goes on with r->body NULL, and a stage that needs the tree asks
 * pl_body(). A body it does not accept (escapes in keys, duplicate keys, a
 * syntax error) is parsed by jansson, whose errors the client sees.
 */
#include <string.h>

#include "api/internal.h"
#include "core/jscan.h"
#include "core/jsonw.h"
#include "policy/policy.h"

enum { API_MESSAGES = -2, API_COUNT_TOKENS = -3 };

typedef struct api_route {
    const char *method;
    const char *path;
    int ep; /* endpoint_t, or API_MESSAGES / API_COUNT_TOKENS */
} api_route_t;

static const api_route_t api_routes[] = {
    {"POST", "/v1/chat/completions", EP_CHAT},
    {"POST", "/v1/completions", EP_COMPLETIONS},
    {"POST", "/v1/embeddings", EP_EMBEDDINGS},
    {"POST", "/v1/messages", API_MESSAGES},
    {"POST", "/v1/messages/count_tokens", API_COUNT_TOKENS},
    {"GET", "/v1/models", EP_MODELS},
};

#define API_MODELS_PREFIX "/v1/models/"
#define API_MODEL_ID_MAX 1024 /* bytes of a decoded model id in the path */

/* OpenAI's model object. created is 0: a deployment has no creation date. */
static void api_model_object(buf_t *o, const char *id, const char *owned_by)
{
    buf_appends(o, "{\"id\":");
    jsonw_cstr(o, id);
    buf_appends(o, ",\"object\":\"model\",\"created\":0,\"owned_by\":");
    jsonw_cstr(o, owned_by);
    buf_appends(o, "}");
}

/* Model i is the one entry listed for its name (a group's first deployment). */
static bool api_model_listed(const config_t *cfg, size_t i)
{
    const cfg_model_t *m = &cfg->models[i];
    return config_find_model(cfg, m->name, strlen(m->name)) == m;
}

/* GET /v1/models: the public model names, then the routes, that the
 * caller may see. */
static pl_rc_t api_models(pl_req_t *r)
{
    const config_t *cfg = r->cfg;
    buf_t o;
    buf_init(&o, 0);
    buf_appends(&o, "{\"object\":\"list\",\"data\":[");
    bool first = true;
    for (size_t i = 0; i < cfg->n_models; i++) {
        const cfg_model_t *m = &cfg->models[i];
        if (!api_model_listed(cfg, i) || !policy_model_visible(r, m->name)) continue;
        if (!first) buf_appends(&o, ",");
        first = false;
        api_model_object(&o, m->name, m->provider->name);
    }
    for (size_t i = 0; i < cfg->n_routes; i++) {
        if (!policy_model_visible(r, cfg->routes[i].name)) continue;
        if (!first) buf_appends(&o, ",");
        first = false;
        api_model_object(&o, cfg->routes[i].name, "skuld-route");
    }
    buf_appends(&o, "]}");
    pl_rc_t rc = pl_answer(r, 200, buf_data(&o), o.len);
    buf_free(&o);
    return rc;
}

/* GET /v1/models/{id}: the model object of a name GET /v1/models lists to
 * this caller, else 404 in OpenAI's shape. */
static pl_rc_t api_model_get(pl_req_t *r, http_slice_t seg)
{
    const config_t *cfg = r->cfg;
    char id[API_MODEL_ID_MAX + 1];
    if (http_pct_decode(seg.p, seg.n, id, sizeof id) < 0)
        return pl_fail(r, 400, NULL, "invalid_value", "model",
                       "the model id in the path is not a valid percent-encoded name of at "
                       "most %d bytes",
                       API_MODEL_ID_MAX);
    const char *owner = NULL;
    for (size_t i = 0; i < cfg->n_models && !owner; i++)
        if (!strcmp(cfg->models[i].name, id) && api_model_listed(cfg, i))
            owner = cfg->models[i].provider->name;
    if (!owner && config_find_route(cfg, id, strlen(id))) owner = "skuld-route";
    if (!owner || !*id || !policy_model_visible(r, id))
        return pl_fail(r, 404, NULL, "model_not_found", "model",
                       "The model '%.200s' does not exist", id);
    buf_t o;
    buf_init(&o, 0);
    api_model_object(&o, id, owner);
    pl_rc_t rc = pl_answer(r, 200, buf_data(&o), o.len);
    buf_free(&o);
    return rc;
}

/* Endpoints whose body is a chat request ("messages"). */
static bool api_chat_like(endpoint_t ep)
{
    return ep == EP_CHAT || ep == EP_COUNT_TOKENS;
}

static const char *api_ep_name(endpoint_t ep)
{
    return ep == EP_CHAT           ? "chat"
           : ep == EP_COUNT_TOKENS ? "count_tokens"
           : ep == EP_COMPLETIONS  ? "completions"
                                   : "embeddings";
}

/* The field checks every upstream would make, on what the scan or the tree
 * says of "messages"/"prompt"/"input" (present, array, string) and "stream". */
static pl_rc_t api_check(pl_req_t *r, bool present, bool is_array, bool is_string, bool stream_ok)
{
    endpoint_t ep = r->ep;
    const char *need = api_chat_like(ep) ? "messages" : ep == EP_COMPLETIONS ? "prompt" : "input";
    bool ok = api_chat_like(ep) ? is_array : (is_string || is_array);
    if (!ok)
        return pl_fail(r, 400, NULL, present ? "invalid_type" : "missing_required_parameter", need,
                       "%s requests need '%s' (%s)", api_ep_name(ep), need,
                       api_chat_like(ep) ? "an array of messages" : "a string or an array");
    if (!stream_ok)
        return pl_fail(r, 400, NULL, "invalid_type", "stream", "'stream' must be a boolean");
    return PL_NEXT;
}

/* n and best_of (chat, completions): absent, null, or an integer 1..128 (n)
 * / 1..20 (best_of), OpenAI's own limits; whether a deployment can serve
 * more than one answer is the resolve stage's (capability n). */
static pl_rc_t api_check_answers(pl_req_t *r, jscan_type_t nt, int64_t nv, jscan_type_t bt,
                                 int64_t bv)
{
    if (r->ep != EP_CHAT && r->ep != EP_COMPLETIONS) return PL_NEXT;
    if (nt != JS_ABSENT && nt != JS_NULL && (nt != JS_INT || nv < 1 || nv > 128))
        return pl_fail(r, 400, NULL, nt == JS_INT ? "invalid_value" : "invalid_type", "n",
                       "'n' must be an integer from 1 to 128");
    if (bt != JS_ABSENT && bt != JS_NULL && (bt != JS_INT || bv < 1 || bv > 20))
        return pl_fail(r, 400, NULL, bt == JS_INT ? "invalid_value" : "invalid_type", "best_of",
                       "'best_of' must be an integer from 1 to 20");
    return PL_NEXT;
}

/* A tree value in the scanner's terms (what api_check_answers reads). */
static jscan_type_t api_jtype(const json_t *v, int64_t *iv)
{
    *iv = json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
    return !v                   ? JS_ABSENT
           : json_is_null(v)    ? JS_NULL
           : json_is_integer(v) ? JS_INT
                                : JS_REAL; /* any other kind: refused alike */
}

static void api_asked_default(pl_req_t *r)
{
    r->asked = r->cfg->server.default_model;
    r->asked_len = r->asked ? strlen(r->asked) : 0;
}

/* The scan accepted the body and named the model: no tree. false: not taken. */
static bool api_parse_fast(pl_req_t *r, pl_rc_t *rc)
{
    jscan_t s;
    if (jscan_body(r->raw, r->raw_len, &s) != 0 || s.model != JS_STRING) return false;
    jscan_t *f = arena_alloc(r->arena, sizeof *f);
    char *name = f ? arena_alloc(r->arena, s.model_len + 1) : NULL;
    if (!name) return false;
    *f = s;
    memcpy(name, s.model_p, s.model_len);
    name[s.model_len] = '\0';
    f->model_p = name;
    r->fast = f;
    r->asked = name;
    r->asked_len = s.model_len;
    jscan_type_t v = r->ep == EP_CHAT ? s.messages : r->ep == EP_COMPLETIONS ? s.prompt : s.input;
    r->stream = r->ep != EP_EMBEDDINGS && s.stream == JS_TRUE;
    r->client_usage = s.include_usage == JS_TRUE;
    *rc = api_check(r, v != JS_ABSENT, v == JS_ARRAY, v == JS_STRING,
                    s.stream == JS_ABSENT || s.stream == JS_TRUE || s.stream == JS_FALSE ||
                        s.stream == JS_NULL);
    if (*rc == PL_NEXT) *rc = api_check_answers(r, s.n, s.n_v, s.best_of, s.best_of_v);
    return true;
}

/* A decoded OpenAI-shaped request (r->body, owned by r). */
static pl_rc_t api_parse_tree(pl_req_t *r)
{
    json_t *body = r->body;
    json_t *jm = json_object_get(body, "model");
    if (json_is_string(jm)) {
        r->asked = json_string_value(jm);
        r->asked_len = json_string_length(jm);
    } else if (jm && !json_is_null(jm)) {
        return pl_fail(r, 400, NULL, "invalid_type", "model", "'model' must be a string");
    } else {
        api_asked_default(r);
    }
    const char *need = api_chat_like(r->ep)      ? "messages"
                       : r->ep == EP_COMPLETIONS ? "prompt"
                                                 : "input";
    json_t *v = json_object_get(body, need);
    json_t *js = json_object_get(body, "stream");
    r->stream = r->ep != EP_EMBEDDINGS && r->ep != EP_COUNT_TOKENS && json_is_true(js);
    r->client_usage =
        json_is_true(json_object_get(json_object_get(body, "stream_options"), "include_usage"));
    pl_rc_t rc = api_check(r, v != NULL, json_is_array(v), json_is_string(v),
                           !js || json_is_boolean(js) || json_is_null(js));
    int64_t nv, bv;
    jscan_type_t nt = api_jtype(json_object_get(body, "n"), &nv);
    jscan_type_t bt = api_jtype(json_object_get(body, "best_of"), &bv);
    return rc == PL_NEXT ? api_check_answers(r, nt, nv, bt, bv) : rc;
}

static pl_rc_t api_parse_openai(pl_req_t *r)
{
    r->raw_is_request = true;
    pl_rc_t rc;
    if (api_parse_fast(r, &rc)) return rc;
    json_error_t jerr;
    json_t *body = json_loadb(r->raw, r->raw_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body || !json_is_object(body)) {
        if (body) {
            json_decref(body);
            return pl_fail(r, 400, NULL, "invalid_json", NULL,
                           "request body must be a JSON object");
        }
        /* jansson's message may quote the body ("near '...'"): the client may
         * see its own text, the access log must not. */
        r->error = "request body is not valid JSON";
        return pl_fail(r, 400, NULL, "invalid_json", NULL,
                       "request body is not valid JSON: %s (line %d, column %d)", jerr.text,
                       jerr.line, jerr.column);
    }
    r->body = body;
    return api_parse_tree(r);
}

int api_v1_parse(pl_req_t *r)
{
    api_ctx_t *c = r->fe_ud;
    const http_req_t *req = c->req;
    const api_route_t *route = NULL;
    bool path_known = false;
    size_t plen = sizeof API_MODELS_PREFIX - 1;
    if (req->path.n > plen && memcmp(req->path.p, API_MODELS_PREFIX, plen) == 0) {
        if (!http_slice_eq(req->method, "GET") && !http_slice_eq(req->method, "HEAD"))
            return pl_fail(r, 405, NULL, "method_not_allowed", NULL,
                           "method %.*s not allowed on %.*s", (int)req->method.n, req->method.p,
                           (int)(req->path.n > 200 ? 200 : req->path.n), req->path.p);
        r->ep = EP_MODELS;
        return api_model_get(r, (http_slice_t){req->path.p + plen, req->path.n - plen});
    }
    for (size_t i = 0; i < sizeof api_routes / sizeof api_routes[0]; i++) {
        if (!http_slice_eq(req->path, api_routes[i].path)) continue;
        path_known = true;
        bool head_ok =
            http_slice_eq(req->method, "HEAD") && strcmp(api_routes[i].method, "GET") == 0;
        if (http_slice_eq(req->method, api_routes[i].method) || head_ok) route = &api_routes[i];
    }
    if (!route) {
        if (path_known)
            return pl_fail(r, 405, NULL, "method_not_allowed", NULL,
                           "method %.*s not allowed on %.*s", (int)req->method.n, req->method.p,
                           (int)req->path.n, req->path.p);
        return pl_fail(r, 404, NULL, "not_found", NULL, "unknown path %.*s", (int)req->path.n,
                       req->path.p);
    }
    if (route->ep == EP_MODELS) {
        r->ep = EP_MODELS;
        return api_models(r);
    }
    if (route->ep == API_MESSAGES || route->ep == API_COUNT_TOKENS) {
        r->ep = route->ep == API_MESSAGES ? EP_CHAT : EP_COUNT_TOKENS;
        pl_rc_t rc = r->ep == EP_CHAT ? api_messages_parse(r) : api_count_tokens_parse(r);
        return rc != PL_NEXT ? rc : api_parse_tree(r);
    }
    r->ep = (endpoint_t)route->ep;
    return api_parse_openai(r);
}
