/*
 * api openai — the OpenAI-compatible endpoints: request validation, model
 * resolution, and GET /v1/models. The call itself is api/relay.c.
 */
#include <string.h>

#include "api/internal.h"
#include "cache/cache.h"
#include "core/jscan.h"
#include "core/jsonw.h"
#include "policy/policy.h"
#include "route/hooks.h"
#include "route/resil.h"

void api_openai_models(api_ctx_t *c)
{
    buf_t o;
    buf_init(&o, 0);
    buf_appends(&o, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < c->cfg->n_models; i++) {
        const cfg_model_t *m = &c->cfg->models[i];
        if (config_find_model(c->cfg, m->name, strlen(m->name)) != m) continue; /* a group: once */
        buf_appends(&o, i ? ",{\"id\":" : "{\"id\":");
        jsonw_cstr(&o, m->name);
        buf_appends(&o, ",\"object\":\"model\",\"created\":0,\"owned_by\":");
        jsonw_cstr(&o, m->provider->name);
        buf_appends(&o, "}");
    }
    route_api_models(c->cfg, &o, c->cfg->n_models == 0);
    buf_appends(&o, "]}");
    api_send(c, 200, "application/json", buf_data(&o), o.len);
    buf_free(&o);
}

static const char *api_ep_name(endpoint_t ep)
{
    return ep == EP_CHAT ? "chat" : ep == EP_COMPLETIONS ? "completions" : "embeddings";
}

/* The fast path: a plain pass-through request (explicit model, no route, no
 * explain, cache and dedupe off) whose body the scanner accepted goes through
 * the same checks as api_openai_dispatch from the scan, with no tree; the
 * relay splices the body (build_raw) or parses it lazily. false: nothing was
 * done, take the general path. */
static bool api_openai_fast(api_ctx_t *c, endpoint_t ep)
{
    const http_req_t *req = c->req;
    jscan_t s;
    if (c->shape != API_SHAPE_OPENAI ||
        (ep != EP_CHAT && ep != EP_COMPLETIONS && ep != EP_EMBEDDINGS) ||
        jscan_body(req->body, req->body_len, &s) != 0 || s.model != JS_STRING ||
        cache_needs_body(c, ep) || route_api_needs_body(c, s.model_p, s.model_len))
        return false;
    jscan_t *f = arena_alloc(req->arena, sizeof *f);
    char *name = f ? arena_alloc(req->arena, s.model_len + 1) : NULL;
    if (!name) return false;
    *f = s;
    memcpy(name, s.model_p, s.model_len);
    name[s.model_len] = '\0';
    f->model_p = name;
    if (route_api_resolve(c, ep, NULL, name, s.model_len) != 0) return true;
    resil_candidates(c, c->model);

    const char *need = ep == EP_CHAT ? "messages" : ep == EP_COMPLETIONS ? "prompt" : "input";
    jscan_type_t v = ep == EP_CHAT ? s.messages : ep == EP_COMPLETIONS ? s.prompt : s.input;
    bool ok = ep == EP_CHAT ? v == JS_ARRAY : (v == JS_STRING || v == JS_ARRAY);
    if (!ok) {
        api_send_error(c, 400, NULL, v != JS_ABSENT ? "invalid_type" : "missing_required_parameter",
                       need, "%s requests need '%s' (%s)", api_ep_name(ep), need,
                       ep == EP_CHAT ? "an array of messages" : "a string or an array");
        return true;
    }
    if (s.stream != JS_ABSENT && s.stream != JS_TRUE && s.stream != JS_FALSE &&
        s.stream != JS_NULL) {
        api_send_error(c, 400, NULL, "invalid_type", "stream", "'stream' must be a boolean");
        return true;
    }
    bool stream = ep != EP_EMBEDDINGS && s.stream == JS_TRUE;
    bool client_usage = s.include_usage == JS_TRUE;
    c->stream = stream;
    c->fast = f;
    policy_admit(c, ep, NULL, stream, client_usage);
    return true;
}

void api_openai_inference(api_ctx_t *c, endpoint_t ep)
{
    const http_req_t *req = c->req;
    if (api_openai_fast(c, ep)) return;
    json_error_t jerr;
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body || !json_is_object(body)) {
        api_ctx_set_model(c, NULL);
        if (body) {
            json_decref(body);
            api_send_error(c, 400, NULL, "invalid_json", NULL,
                           "request body must be a JSON object");
        } else {
            /* jansson's message may quote the body ("near '...'"): the client may
             * see its own text, the access log must not. */
            c->error = "request body is not valid JSON";
            api_send_error(c, 400, NULL, "invalid_json", NULL,
                           "request body is not valid JSON: %s (line %d, column %d)", jerr.text,
                           jerr.line, jerr.column);
        }
        return;
    }
    api_openai_dispatch(c, ep, body);
}

void api_openai_dispatch(api_ctx_t *c, endpoint_t ep, json_t *body)
{
    json_t *jm = json_object_get(body, "model");
    const char *name = NULL;
    size_t name_len = 0;
    if (json_is_string(jm)) {
        name = json_string_value(jm);
        name_len = json_string_length(jm);
    } else if (jm && !json_is_null(jm)) {
        json_decref(body);
        api_ctx_set_model(c, NULL);
        api_send_error(c, 400, NULL, "invalid_type", "model", "'model' must be a string");
        return;
    } else if (c->cfg->server.default_model) {
        name = c->cfg->server.default_model;
        name_len = strlen(name);
    }
    /* explicit model -> its deployments; route -> the router (route/hooks.c) */
    if (route_api_resolve(c, ep, body, name, name_len) != 0) {
        json_decref(body); /* after: name points into body */
        return;
    }
    resil_candidates(c, c->model); /* c->cands gains each candidate's fallbacks */

    /* Field checks that every upstream would make: fail fast, in our shape. */
    const char *need = ep == EP_CHAT ? "messages" : ep == EP_COMPLETIONS ? "prompt" : "input";
    json_t *v = json_object_get(body, need);
    bool ok = ep == EP_CHAT ? json_is_array(v) : (json_is_string(v) || json_is_array(v));
    if (!ok) {
        json_decref(body);
        api_send_error(c, 400, NULL, v ? "invalid_type" : "missing_required_parameter", need,
                       "%s requests need '%s' (%s)", api_ep_name(ep), need,
                       ep == EP_CHAT ? "an array of messages" : "a string or an array");
        return;
    }
    json_t *js = json_object_get(body, "stream");
    if (js && !json_is_boolean(js) && !json_is_null(js)) {
        json_decref(body);
        api_send_error(c, 400, NULL, "invalid_type", "stream", "'stream' must be a boolean");
        return;
    }
    bool stream = ep != EP_EMBEDDINGS && json_is_true(js);
    bool client_usage =
        json_is_true(json_object_get(json_object_get(body, "stream_options"), "include_usage"));
    c->stream = stream;
    policy_admit(c, ep, body, stream, client_usage); /* limits, then cache, then the relay */
}
