/*
 * api admin — /admin/...: the operator's API, authenticated with
 * server.master_key (Authorization: Bearer KEY, compared in constant time).
 *
 *   POST   /admin/reload             re-read the config file (errors -> 400)
 *   GET    /admin/models             deployments; filters ?provider=&capability=&tag=
 *   GET    /admin/models/NAME        one deployment
 *   POST   /admin/models             register a deployment (JSON, config keys)
 *   DELETE /admin/models/NAME        remove a registered deployment
 *   POST   /admin/route/explain      the router's decision for a request (route/router.h)
 *   GET    /admin/budgets            team and key budgets, spend this period (policy/)
 *   POST   /admin/cache/purge        empty the response cache (cache/cache.h)
 *   GET    /admin/weights            the runtime weight overlay (route/overlay.h)
 *   PUT    /admin/weights            {"weights":{DEPLOYMENT_ID: W, ...}}: a new overlay
 *   DELETE /admin/weights            back to the config's weights
 *
 * Reads answer from the request's snapshot. Changes go to the control plane
 * as a ticket (api/control.h) and are answered when every worker serves the
 * new snapshot; if the client leaves first the answer is dropped.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/control.h"
#include "api/internal.h"
#include "cache/cache.h"
#include "call/resil.h"
#include "core/jsonw.h"
#include "core/secure.h"
#include "pipeline/resolve.h"
#include "route/overlay.h"
#include "policy/policy.h"

/* Percent-decode s[0..n) into the arena; NULL on a malformed escape. */
static char *admin_unescape(arena_t *a, const char *s, size_t n)
{
    char *out = arena_alloc(a, n + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]))
                return NULL;
            char hex[3] = {s[i + 1], s[i + 2], 0};
            long v = strtol(hex, NULL, 16);
            if (v == 0) return NULL; /* no NUL inside names */
            *o++ = (char)v;
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* Value of query parameter key (decoded), or NULL. */
static const char *admin_query(http_req_t *r, const char *key)
{
    size_t kl = strlen(key);
    const char *q = r->query.p, *end = q + r->query.n;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        if (!amp) amp = end;
        if ((size_t)(amp - q) > kl && memcmp(q, key, kl) == 0 && q[kl] == '=')
            return admin_unescape(r->arena, q + kl + 1, (size_t)(amp - q - kl - 1));
        q = amp + 1;
    }
    return NULL;
}

static void admin_model_json(buf_t *o, const cfg_model_t *m)
{
    buf_appends(o, "{\"name\":");
    jsonw_cstr(o, m->name);
    buf_appends(o, ",\"provider\":");
    jsonw_cstr(o, m->provider->name);
    buf_appends(o, ",\"provider_type\":");
    jsonw_cstr(o, m->provider->type);
    buf_appends(o, ",\"model\":");
    jsonw_cstr(o, m->upstream_model);
    if (m->path) buf_appends(o, ",\"path\":"), jsonw_cstr(o, m->path);
    buf_printf(o, ",\"price\":{\"input\":%g,\"output\":%g,\"cached\":%g}", m->price.input,
               m->price.output, m->price.cached);
    buf_printf(o, ",\"context_window\":%lld,\"capabilities\":[", (long long)m->context_window);
    bool first = true;
    for (unsigned cap = 1; cap & CAP_ALL; cap <<= 1)
        if (m->capabilities & cap) {
            buf_appends(o, first ? "" : ",");
            jsonw_cstr(o, config_capability_name(cap));
            first = false;
        }
    buf_printf(o, "],\"quality\":%g,\"tags\":[", m->quality);
    for (size_t i = 0; i < m->tags.n; i++) {
        buf_appends(o, i ? "," : "");
        jsonw_cstr(o, m->tags.v[i]);
    }
    buf_printf(o, "],\"weight\":%d,\"params_b\":%g,\"parallel\":%d", m->weight, m->params_b,
               m->parallel);
    buf_appends(o, ",\"hardware\":");
    if (m->hardware)
        jsonw_cstr(o, m->hardware);
    else
        buf_appends(o, "null");
    buf_appends(o, ",\"region\":");
    if (m->region)
        jsonw_cstr(o, m->region);
    else
        buf_appends(o, "null");
    buf_printf(o, ",\"source\":\"%s\"", m->runtime ? "runtime" : "config");
    resil_model_json(o, m); /* resilience: breaker state, fallbacks */
    metrics_series_t *s = m->stats;
    if (s) {
        uint64_t probes = atomic_load(&s->health_probes), ok = atomic_load(&s->health_successes);
        buf_printf(o,
                   ",\"health\":{\"up\":%s,\"probes\":%llu,\"successes\":%llu,"
                   "\"uptime_pct\":%.2f,\"last_probe_ms\":%lld}",
                   atomic_load(&s->health_up) ? "true" : "false", (unsigned long long)probes,
                   (unsigned long long)ok, probes ? 100.0 * (double)ok / (double)probes : 100.0,
                   (long long)atomic_load(&s->health_last_ms));
    }
    buf_appends(o, "}");
}

static bool admin_has_tag(const cfg_model_t *m, const char *tag)
{
    for (size_t i = 0; i < m->tags.n; i++)
        if (strcmp(m->tags.v[i], tag) == 0) return true;
    return false;
}

static void admin_list_models(api_ctx_t *c)
{
    http_req_t *r = c->req;
    const char *provider = admin_query(r, "provider"), *capability = admin_query(r, "capability"),
               *tag = admin_query(r, "tag");
    unsigned cap = 0;
    if (capability && !(cap = config_capability(capability))) {
        api_send_error(c, 400, NULL, "invalid_capability", "capability",
                       "unknown capability '%.64s' (known: " CONFIG_CAPABILITY_LIST ")",
                       capability);
        return;
    }
    buf_t o;
    buf_init(&o, 0);
    buf_appends(&o, "{\"object\":\"list\",\"data\":[");
    size_t n = 0;
    for (size_t i = 0; i < c->cfg->n_models; i++) {
        const cfg_model_t *m = &c->cfg->models[i];
        if (provider && strcmp(m->provider->name, provider) != 0) continue;
        if (cap && !(m->capabilities & cap)) continue;
        if (tag && !admin_has_tag(m, tag)) continue;
        if (n++) buf_appends(&o, ",");
        admin_model_json(&o, m);
    }
    buf_printf(&o, "],\"generation\":%llu}", (unsigned long long)c->cfg->generation);
    api_send(c, 200, "application/json", buf_data(&o), o.len);
    buf_free(&o);
}

/* ---------- changes through the control plane ---------- */

static void admin_reply(ctl_ticket_t *t)
{
    api_ctx_t *c = t->ud;
    c->ticket = NULL;
    c->r->on_abort = NULL;
    if (t->status >= 400 && !c->r->error) c->r->error = "admin operation rejected";
    api_send(c, t->status, "application/json", t->body, strlen(t->body));
}

static void admin_abort(pl_req_t *r)
{
    api_ctx_t *c = r->fe_ud;
    if (c->ticket) c->ticket->alive = false; /* the control plane's answer will be dropped */
}

static void admin_submit(api_ctx_t *c, ctl_op_t op, const char *name, const char *spec)
{
    ctl_ticket_t *t = calloc(1, sizeof *t);
    if (!t || (name && !(t->name = strdup(name))) || (spec && !(t->spec = strdup(spec)))) {
        ctl_ticket_free(t);
        api_send_error(c, 500, NULL, "internal_error", NULL, "out of memory");
        return;
    }
    t->op = op;
    t->base = c->env->base;
    t->reply = admin_reply;
    t->ud = c;
    t->alive = true;
    c->ticket = t;
    c->r->on_abort = admin_abort;
    ctl_submit(t);
}

static void admin_weights_answer(api_ctx_t *c)
{
    buf_t o, w;
    buf_init(&o, 0);
    buf_init(&w, 0);
    uint64_t g = route_overlay_json(&w);
    buf_printf(&o, "{\"generation\":%llu,\"weights\":%s}", (unsigned long long)g, buf_data(&w));
    api_send(c, 200, "application/json", buf_data(&o), o.len);
    buf_free(&w);
    buf_free(&o);
}

/* GET / PUT / DELETE /admin/weights. A PUT names deployments of this
 * snapshot by id; the overlay it makes replaces the current one whole. */
static void admin_weights(api_ctx_t *c)
{
    http_req_t *r = c->req;
    if (http_slice_eq(r->method, "GET")) {
        admin_weights_answer(c);
        return;
    }
    if (http_slice_eq(r->method, "DELETE")) {
        route_overlay_publish(NULL);
        admin_weights_answer(c);
        return;
    }
    if (!http_slice_eq(r->method, "PUT")) {
        api_send_error(c, 405, NULL, "method_not_allowed", NULL, "use GET, PUT or DELETE");
        return;
    }
    json_t *body = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, NULL);
    json_t *ws = json_object_get(body, "weights");
    if (!json_is_object(ws)) {
        json_decref(body);
        api_send_error(c, 400, NULL, "invalid_weights", "weights",
                       "the body must be {\"weights\":{\"DEPLOYMENT_ID\": WEIGHT, ...}}");
        return;
    }
    route_overlay_t *o = route_overlay_new(json_object_size(ws));
    const char *id;
    json_t *v;
    const char *bad = NULL, *why = NULL;
    json_object_foreach(ws, id, v)
    {
        bool known = false;
        for (size_t i = 0; i < c->cfg->n_models && !known; i++)
            known = strcmp(c->cfg->models[i].id, id) == 0;
        if (!known) {
            bad = id, why = "no deployment has this id";
            break;
        }
        if (!json_is_number(v) || !o || route_overlay_set(o, id, json_number_value(v)) != 0) {
            bad = id, why = "the weight must be a number from 0 to 1000000";
            break;
        }
    }
    if (bad || !o) {
        api_send_error(c, bad ? 400 : 500, NULL, bad ? "invalid_weights" : "internal_error",
                       "weights", "%.128s: %s", bad ? bad : "overlay", bad ? why : "out of memory");
        route_overlay_discard(o);
    } else {
        route_overlay_publish(o);
        admin_weights_answer(c);
    }
    json_decref(body);
}

void api_admin(api_ctx_t *c)
{
    http_req_t *r = c->req;
    const char *key = c->cfg->server.master_key;
    if (!key) {
        api_send_error(c, 403, NULL, "admin_disabled", NULL,
                       "the admin API is disabled: set server.master_key");
        return;
    }
    http_slice_t auth = http_req_header(r, "authorization");
    bool ok = auth.n > 7 && strncasecmp(auth.p, "Bearer ", 7) == 0 &&
              secure_equal(auth.p + 7, auth.n - 7, key, strlen(key));
    pl_rc_t rc;
    if (!ok && policy_admin_nonmaster(c->r, &rc)) { /* issue 8: a user key gets 403 */
        pl_resume(c->r, rc);
        return;
    }
    if (!ok) {
        http_resp_header(r, "WWW-Authenticate", "Bearer");
        api_send_error(c, 401, NULL, "invalid_api_key", NULL,
                       auth.n ? "invalid admin credentials" : "the admin API needs the master key");
        return;
    }
    static const char models_prefix[] = "/admin/models/";
    size_t plen = sizeof models_prefix - 1;
    if (http_slice_eq(r->path, "/admin/reload") && http_slice_eq(r->method, "POST")) {
        admin_submit(c, CTL_RELOAD, NULL, NULL);
    } else if (http_slice_eq(r->path, "/admin/route/explain") && http_slice_eq(r->method, "POST")) {
        api_admin_explain(c);
    } else if (http_slice_eq(r->path, "/admin/cache/purge") && http_slice_eq(r->method, "POST")) {
        pl_resume(c->r, cache_admin_purge(c->r)); /* response cache (cache/) */
    } else if (http_slice_eq(r->path, "/admin/budgets") && http_slice_eq(r->method, "GET")) {
        pl_resume(c->r, policy_budgets(c->r)); /* budgets and their spend (policy/) */
    } else if (http_slice_eq(r->path, "/admin/weights")) {
        admin_weights(c);
    } else if (http_slice_eq(r->path, "/admin/models") && http_slice_eq(r->method, "GET")) {
        admin_list_models(c);
    } else if (http_slice_eq(r->path, "/admin/models") && http_slice_eq(r->method, "POST")) {
        admin_submit(c, CTL_MODEL_PUT, NULL, r->body);
    } else if (r->path.n > plen && memcmp(r->path.p, models_prefix, plen) == 0 &&
               (http_slice_eq(r->method, "GET") || http_slice_eq(r->method, "DELETE"))) {
        char *name = admin_unescape(r->arena, r->path.p + plen, r->path.n - plen);
        if (!name) {
            api_send_error(c, 400, NULL, "invalid_path", NULL, "malformed model name in path");
        } else if (http_slice_eq(r->method, "DELETE")) {
            admin_submit(c, CTL_MODEL_DELETE, name, NULL);
        } else {
            const cfg_model_t *m = config_find_model(c->cfg, name, strlen(name));
            if (!m) {
                api_send_error(c, 404, NULL, "model_not_found", NULL, "no model named '%.128s'",
                               name);
                return;
            }
            buf_t o;
            buf_init(&o, 0);
            admin_model_json(&o, m);
            api_send(c, 200, "application/json", buf_data(&o), o.len);
            buf_free(&o);
        }
    } else if (api_admin_keys(c)) { /* issue 8: /admin/keys... */
    } else {
        api_send_error(c, 404, NULL, "not_found", NULL, "unknown admin endpoint %.*s %.*s",
                       (int)r->method.n, r->method.p, (int)r->path.n, r->path.p);
    }
}

static int admin_endpoint(const char *s)
{
    if (!s || !strcmp(s, "chat")) return EP_CHAT;
    if (!strcmp(s, "completions")) return EP_COMPLETIONS;
    if (!strcmp(s, "embeddings")) return EP_EMBEDDINGS;
    return -1;
}

static uint64_t *admin_rng(void)
{
    static _Thread_local uint64_t rng;
    if (!rng) rng = (uint64_t)(uintptr_t)&rng | 1;
    return &rng;
}

/* POST /admin/route/explain: {"model":..., "messages"|"prompt"|"input":...,
 * "endpoint":"chat"|"completions"|"embeddings"} and the constraint headers ->
 * the decision as JSON (200 even when nothing is eligible: choice null). */
void api_admin_explain(api_ctx_t *c)
{
    json_error_t jerr;
    json_t *body = json_loadb(c->req->body, c->req->body_len, 0, &jerr);
    if (!json_is_object(body)) {
        json_decref(body);
        api_send_error(c, 400, NULL, "invalid_json", NULL, "the body must be a JSON object");
        return;
    }
    int ep = admin_endpoint(json_string_value(json_object_get(body, "endpoint")));
    const char *name = json_string_value(json_object_get(body, "model"));
    if (!name) name = c->cfg->server.default_model;
    route_features_t f;
    route_features_init(&f);
    const char *hdr = NULL, *err = NULL;
    route_decision_t d;
    if (ep < 0 || !name) {
        api_send_error(c, 400, NULL, "invalid_request", ep < 0 ? "endpoint" : "model",
                       ep < 0 ? "endpoint must be chat, completions or embeddings"
                              : "model is required (no server.default_model)");
    } else if (pl_route_constraints(c->r, &f, &hdr, &err) < 0) {
        api_send_error(c, 400, NULL, "invalid_header", hdr, "%s: %s", hdr, err);
    } else {
        route_features_from_body(&f, c->req->arena, ep, body);
        f.explain = true;
        if (route_decide(c->cfg, name, strlen(name), &f, c->req->arena, 0, admin_rng(), &d) < 0) {
            api_send_error(c, 404, NULL, "model_not_found", "model",
                           "no model or route named '%.128s'", name);
        } else {
            buf_t o;
            buf_init(&o, 0);
            route_explain_json(&d, &o, SIZE_MAX);
            api_send(c, 200, "application/json", buf_data(&o), o.len);
            buf_free(&o);
        }
    }
    json_decref(body);
}
