/*
 * api dispatch, request context, accounting and error shapes.
 */
#include "api/api.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/anthropic_shape.h"
#include "api/internal.h"
#include "cache/cache.h"
#include "core/jsonw.h"
#include "policy/cost.h"
#include "policy/policy.h"
#include "provider/xlate.h"
#include "core/log.h"
#include "route/hooks.h"
#include "route/resil.h"
#include "route/stats.h"
#include "server/gateway.h"

static metrics_series_t *api_unrouted; /* series for requests that never resolved a model */

static bool api_request_id_ok(http_slice_t v)
{
    if (v.n == 0 || v.n > 128) return false;
    for (size_t i = 0; i < v.n; i++) {
        char ch = v.p[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.' || ch == ':'))
            return false;
    }
    return true;
}

api_ctx_t *api_ctx_new(http_req_t *req)
{
    worker_t *w = http_server_ctx(req->server);
    api_ctx_t *c = arena_calloc(req->arena, sizeof *c);
    if (!c) return NULL;
    c->req = req;
    c->w = w;
    c->cfg = config_ref(w->cfg);
    c->prompt_tokens = c->completion_tokens = -1;
    static const char messages_path[] = "/v1/messages";
    if (req->path.n == sizeof messages_path - 1 &&
        memcmp(req->path.p, messages_path, req->path.n) == 0)
        c->shape = API_SHAPE_ANTHROPIC;
    http_slice_t rid = http_req_header(req, "x-request-id");
    if (api_request_id_ok(rid)) {
        memcpy(c->request_id, rid.p, rid.n);
        c->request_id[rid.n] = '\0';
    } else {
        worker_request_id(w, c->request_id);
    }
    http_resp_header(req, "x-request-id", c->request_id);
    req->udata = c;
    return c;
}

void api_ctx_set_model(api_ctx_t *c, const cfg_model_t *m)
{
    c->model = m;
    if (c->ms) return;
    c->ms = m && m->stats ? m->stats : api_unrouted;
    if (c->ms) metrics_request_begin(c->ms);
}

void api_account(api_ctx_t *c, int status)
{
    if (c->accounted) return;
    c->accounted = true;
    policy_settle(c, status); /* issue 8: reservations settled or released, spend row */
    http_req_t *r = c->req;
    uint64_t dur = time_mono_ns() - r->start_ns;
    route_api_account(c, status); /* live stats for the router */
    if (c->ms) {
        metrics_request_end(c->ms, status, dur);
        if (c->prompt_tokens > 0 || c->completion_tokens > 0)
            metrics_tokens(c->ms, c->prompt_tokens > 0 ? (uint64_t)c->prompt_tokens : 0,
                           c->completion_tokens > 0 ? (uint64_t)c->completion_tokens : 0);
        if (c->model && (c->prompt_tokens > 0 || c->completion_tokens > 0))
            metrics_cost(c->ms,
                         cost_usd(&c->model->price, c->prompt_tokens, c->cached_tokens,
                                  c->completion_tokens),
                         c->cached_tokens > 0 ? (uint64_t)c->cached_tokens : 0);
    }
    accesslog_rec_t rec = {
        .request_id = c->request_id,
        .method = r->method.p,
        .method_len = r->method.n,
        .path = r->path.p,
        .path_len = r->path.n,
        .status = status,
        .model = c->model ? c->model->name : NULL,
        .deployment = c->model && c->model->id && strcmp(c->model->id, c->model->name) != 0
                          ? c->model->id
                          : NULL,
        .provider = c->model ? c->model->provider->name : NULL,
        .stream = c->stream,
        .duration_us = dur / 1000,
        .bytes_in = r->body_len,
        .bytes_out = r->bytes_out,
        .prompt_tokens = c->prompt_tokens,
        .completion_tokens = c->completion_tokens,
        .error = c->error,
        .key_id = policy_key_id(c),
        .team = policy_team(c),
        .user = policy_user(c),
        .cost_usd = c->model && (c->prompt_tokens > 0 || c->completion_tokens > 0)
                        ? cost_usd(&c->model->price, c->prompt_tokens, c->cached_tokens,
                                   c->completion_tokens)
                        : -1,
        .attempts = c->attempts,
        .cache = c->cache_status,
    };
    accesslog_write(c->w->log, &rec);
    config_unref(c->cfg);
    c->cfg = NULL;
}

void api_send(api_ctx_t *c, int status, const char *ctype, const char *body, size_t len)
{
    c->req->bytes_out = len; /* known now; the log line is written before queuing */
    api_account(c, status);
    http_respond(c->req, status, ctype, body, len);
}

void api_send_error(api_ctx_t *c, int status, const char *type, const char *code, const char *param,
                    const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!c->error) c->error = arena_strdup(c->req->arena, msg);
    buf_t o;
    buf_init(&o, 0);
    if (c->shape == API_SHAPE_ANTHROPIC)
        ashape_error(&o, status, msg);
    else
        xl_error_json(&o, status, type, code, param, msg);
    api_send(c, status, "application/json", buf_data(&o), o.len);
    buf_free(&o);
}

/* ---------- small endpoints ---------- */

static void api_metrics(api_ctx_t *c)
{
    buf_t o;
    buf_init(&o, 0);
    metrics_render(&o);
    policy_metrics_render(&o);
    cache_metrics_render(&o); /* skuld_cache_*, skuld_dedupe_* (cache/) */
    api_send(c, 200, "text/plain; version=0.0.4; charset=utf-8", buf_data(&o), o.len);
    buf_free(&o);
}

typedef struct api_route {
    const char *method;
    const char *path;
    int ep; /* endpoint_t, -2 for /v1/messages, or -1 for the small handlers below */
} api_route_t;

static const api_route_t api_routes[] = {
    {"POST", "/v1/chat/completions", EP_CHAT},
    {"POST", "/v1/completions", EP_COMPLETIONS},
    {"POST", "/v1/embeddings", EP_EMBEDDINGS},
    {"POST", "/v1/messages", -2},
    {"GET", "/v1/models", EP_MODELS},
    {"GET", "/healthz", -1},
    {"GET", "/readyz", -1},
    {"GET", "/metrics", -1},
};

void api_init(config_t *cfg)
{
    /* Set once, before the first workers start; later calls (reloads, on the
     * control thread) only attach series to the new snapshot. */
    if (!api_unrouted) api_unrouted = metrics_series_get("", "");
    for (size_t i = 0; i < cfg->n_models; i++)
        cfg->models[i].stats = metrics_series_get(cfg->models[i].id, cfg->models[i].provider->name);
    route_stats_attach(cfg);
    resil_attach(cfg); /* resilience: breaker/concurrency state per deployment */
}

void api_handle(http_req_t *req)
{
    api_ctx_t *c = api_ctx_new(req);
    if (!c) {
        http_respond(req, 500, "application/json", "{}", 2);
        return;
    }
    c->w->served++;
    if (req->path.n >= 7 && memcmp(req->path.p, "/admin/", 7) == 0) {
        api_admin(c);
        return;
    }
    if (req->path.n >= 4 && memcmp(req->path.p, "/v1/", 4) == 0 && !policy_auth_v1(c))
        return; /* issue 8: 401, or GET /v1/key/usage answered */
    const api_route_t *route = NULL;
    bool path_known = false;
    for (size_t i = 0; i < sizeof api_routes / sizeof api_routes[0]; i++) {
        if (!http_slice_eq(req->path, api_routes[i].path)) continue;
        path_known = true;
        bool head_ok =
            http_slice_eq(req->method, "HEAD") && strcmp(api_routes[i].method, "GET") == 0;
        if (http_slice_eq(req->method, api_routes[i].method) || head_ok) route = &api_routes[i];
    }
    if (!route) {
        if (path_known) {
            api_ctx_set_model(c, NULL);
            api_send_error(c, 405, NULL, "method_not_allowed", NULL,
                           "method %.*s not allowed on %.*s", (int)req->method.n, req->method.p,
                           (int)req->path.n, req->path.p);
        } else {
            api_send_error(c, 404, NULL, "not_found", NULL, "unknown path %.*s", (int)req->path.n,
                           req->path.p);
        }
        return;
    }
    if (route->ep == EP_MODELS) {
        api_openai_models(c);
    } else if (route->ep == -2) {
        api_messages(c);
    } else if (route->ep >= 0) {
        api_openai_inference(c, (endpoint_t)route->ep);
    } else if (http_slice_eq(req->path, "/healthz")) {
        api_send(c, 200, "application/json", "{\"status\":\"ok\"}", 15);
    } else if (http_slice_eq(req->path, "/readyz")) {
        if (c->w->draining)
            api_send_error(c, 503, NULL, "draining", NULL, "shutting down");
        else if (!gateway_store_ready(c->w->gw))
            api_send_error(c, 503, NULL, "store_unreachable", NULL, "the store is not reachable");
        else
            api_send(c, 200, "application/json", "{\"status\":\"ready\"}", 18);
    } else {
        api_metrics(c);
    }
}

void api_on_error(http_req_t *req, int status, const char *message)
{
    api_ctx_t *c = api_ctx_new(req);
    if (!c) {
        http_respond(req, status, "application/json", "{}", 2);
        return;
    }
    api_ctx_set_model(c, NULL);
    const char *code = status == 413   ? "request_too_large"
                       : status == 431 ? "headers_too_large"
                       : status == 408 ? "request_timeout"
                                       : "bad_request";
    api_send_error(c, status, NULL, code, NULL, "%s", message);
}
