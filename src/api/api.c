/*
 * api — the HTTP front end: every request gets a pl_req_t; /v1/... runs the
 * pipeline's stages (with api_v1_parse as its parse stage), health,
 * readiness, metrics and /admin/... are answered here. The front-end table
 * (api_fe) is where results become bytes.
 */
#include "api/api.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/control.h"
#include "api/internal.h"
#include "cache/cache.h"
#include "core/log.h"
#include "obs/metrics.h"
#include "policy/policy.h"
#include "store/store.h"
#include "provider/xlate.h"

static api_ctx_t *api_of(pl_req_t *r)
{
    return r->fe_ud;
}

/* ---------- the front-end table: results into bytes ---------- */

static pl_slice_t fe_header(pl_req_t *r, const char *name)
{
    http_slice_t v = http_req_header(api_of(r)->req, name);
    return (pl_slice_t){v.p, v.n};
}

static void fe_set_header(pl_req_t *r, const char *name, const char *value)
{
    http_resp_header(api_of(r)->req, name, value);
}

/* The last bytes of a whole answer: accounted, then queued. */
static void fe_send(api_ctx_t *c, int status, const char *ctype, const char *body, size_t len)
{
    c->req->bytes_out = len; /* known now; the log line is written before queuing */
    pl_account(c->r, status);
    http_respond(c->req, status, ctype, body, len);
}

static void fe_error_json(api_ctx_t *c, buf_t *o, const pl_error_t *e)
{
    if (c->r->shape == PL_SHAPE_ANTHROPIC)
        ashape_error(o, e->status, e->message);
    else
        xl_error_json(o, e->status, e->type, e->code, e->param, e->message);
}

static void fe_error(pl_req_t *r, const pl_error_t *e)
{
    api_ctx_t *c = api_of(r);
    buf_t o;
    buf_init(&o, 0);
    fe_error_json(c, &o, e);
    fe_send(c, e->status, "application/json", buf_data(&o), o.len);
    buf_free(&o);
}

/* An OpenAI answer (chat.completion, or an error object) in the client's shape. */
static void fe_body(pl_req_t *r, int status, const char *data, size_t len)
{
    api_ctx_t *c = api_of(r);
    /* Anthropic clients get Anthropic's error object on every endpoint; a
     * count_tokens answer ({"input_tokens": N}) is already their shape. */
    if (r->shape != PL_SHAPE_ANTHROPIC || (r->ep != EP_CHAT && status < 400)) {
        fe_send(c, status, "application/json", data, len);
        return;
    }
    if (status >= 400) {
        json_t *o = json_loadb(data, len, 0, NULL);
        const char *msg =
            json_string_value(json_object_get(json_object_get(o, "error"), "message"));
        pl_error_t e = {status, NULL, NULL, NULL,
                        msg ? msg : "the upstream provider answered with an error"};
        fe_error(r, &e);
        json_decref(o);
        return;
    }
    buf_t out;
    buf_init(&out, 0);
    if (ashape_response(data, len, r->model->name, &out) == 0) {
        fe_send(c, status, "application/json", buf_data(&out), out.len);
    } else {
        pl_error_t e = {502, NULL, "upstream_invalid_response", NULL,
                        "the upstream answer has no message to translate"};
        if (!r->error) r->error = e.message;
        fe_error(r, &e);
    }
    buf_free(&out);
}

static void fe_stream_start(pl_req_t *r)
{
    api_ctx_t *c = api_of(r);
    if (r->shape == PL_SHAPE_ANTHROPIC && r->ep == EP_CHAT) {
        c->aout = arena_calloc(r->arena, sizeof *c->aout);
        if (c->aout) ashape_stream_init(c->aout, r->model->name);
    }
    http_resp_header(c->req, "Cache-Control", "no-cache");
    http_resp_header(c->req, "X-Accel-Buffering", "no");
    http_stream_start(c->req, 200, "text/event-stream");
}

static int fe_write_frame(api_ctx_t *c)
{
    return http_stream_write(c->req, buf_data(&c->frame), c->frame.len) != 0;
}

/* An error object the upstream put in its stream, as Anthropic's error event. */
static void fe_anthropic_error(api_ctx_t *c, const char *data, size_t len)
{
    json_t *o = json_loadb(data, len, 0, NULL);
    json_t *e = json_object_get(o, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *type = json_string_value(json_object_get(e, "type"));
    int status = type && !strcmp(type, "rate_limit_error") ? 429 : 500;
    ashape_stream_error(&c->frame, status, msg ? msg : "the upstream stream reported an error");
    json_decref(o);
}

static int fe_stream_payload(pl_req_t *r, pl_payload_t kind, const char *event, const char *data,
                             size_t len)
{
    api_ctx_t *c = api_of(r);
    buf_reset(&c->frame);
    if (c->aout) {
        if (kind == PL_EV_ERROR_OBJ)
            fe_anthropic_error(c, data, len);
        else if (kind == PL_EV_DONE_MARK)
            ashape_stream_end(c->aout, r->prompt_tokens, r->cached_tokens, r->completion_tokens,
                              &c->frame);
        else if (ashape_stream_chunk(c->aout, data, len, &c->frame) != 0)
            return 0; /* not a chunk object: nothing an Anthropic client could use */
        return fe_write_frame(c);
    }
    if (event && event[0]) buf_printf(&c->frame, "event: %s\n", event);
    buf_appends(&c->frame, "data: ");
    buf_append(&c->frame, data, len);
    buf_appends(&c->frame, "\n\n");
    return fe_write_frame(c);
}

static void fe_stream_error(pl_req_t *r, const char *code, const char *message)
{
    api_ctx_t *c = api_of(r);
    buf_reset(&c->frame);
    if (r->shape == PL_SHAPE_ANTHROPIC) {
        ashape_stream_error(&c->frame, 502, message);
    } else {
        buf_appends(&c->frame, "data: ");
        xl_error_json(&c->frame, 502, "server_error", code, NULL, message);
        buf_appends(&c->frame, "\n\n");
    }
    fe_write_frame(c);
}

static void fe_stream_end(pl_req_t *r)
{
    api_ctx_t *c = api_of(r);
    pl_account(r, 200);
    http_stream_end(c->req);
    buf_free(&c->frame);
}

static void fe_replay_body(pl_req_t *r, int status, const char *ctype, const char *data, size_t len)
{
    fe_send(api_of(r), status, ctype ? ctype : "application/json", data, len);
}

static void fe_replay_start(pl_req_t *r, int status, const char *ctype)
{
    http_stream_start(api_of(r)->req, status, ctype ? ctype : "text/event-stream");
}

static int fe_replay_frame(pl_req_t *r, const char *data, size_t len)
{
    return http_stream_write(api_of(r)->req, data, len);
}

static size_t fe_out_pending(pl_req_t *r)
{
    return http_req_out_pending(api_of(r)->req);
}

static uint64_t fe_bytes_out(pl_req_t *r)
{
    return api_of(r)->req->bytes_out;
}

static void fe_http_tap(http_req_t *req, http_tap_t ev, int status, const char *ctype,
                        const char *data, size_t len)
{
    api_ctx_t *c = req->udata;
    static const pl_tap_t kinds[] = {[HTTP_TAP_START] = PL_TAP_START,
                                     [HTTP_TAP_DATA] = PL_TAP_DATA,
                                     [HTTP_TAP_END] = PL_TAP_END,
                                     [HTTP_TAP_BODY] = PL_TAP_BODY,
                                     [HTTP_TAP_ABORT] = PL_TAP_ABORT};
    pl_tap_ev_t e = {
        kinds[ev], status, ctype, data, len, buf_data(&req->resp_headers), req->resp_headers.len};
    if (c->tap) c->tap(c->r, &e, c->tap_ud);
}

static void fe_set_tap(pl_req_t *r, pl_tap_fn fn, void *ud)
{
    api_ctx_t *c = api_of(r);
    c->tap = fn;
    c->tap_ud = ud;
    c->req->tap = fn ? fe_http_tap : NULL;
}

static const pl_frontend_t api_fe = {
    .header = fe_header,
    .set_header = fe_set_header,
    .body = fe_body,
    .error = fe_error,
    .stream_start = fe_stream_start,
    .stream_payload = fe_stream_payload,
    .stream_error = fe_stream_error,
    .stream_end = fe_stream_end,
    .replay_body = fe_replay_body,
    .replay_start = fe_replay_start,
    .replay_frame = fe_replay_frame,
    .out_pending = fe_out_pending,
    .bytes_out = fe_bytes_out,
    .set_tap = fe_set_tap,
};

/* ---------- requests ---------- */

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

static void api_on_abort(http_req_t *req)
{
    api_ctx_t *c = req->udata;
    pl_abort(c->r);
    buf_free(&c->frame); /* a stream cut short never reached fe_stream_end */
}

static void api_on_drain(http_req_t *req)
{
    api_ctx_t *c = req->udata;
    pl_drained(c->r);
}

static api_ctx_t *api_ctx_new(http_req_t *req)
{
    pl_env_t *env = http_server_ctx(req->server);
    api_ctx_t *c = arena_calloc(req->arena, sizeof *c);
    pl_req_t *r = c ? pl_req_new(req->arena, env, &api_fe, c, req->start_ns) : NULL;
    if (!r) return NULL;
    c->req = req;
    c->r = r;
    c->env = env;
    c->cfg = r->cfg;
    buf_init(&c->frame, 0);
    r->method = req->method.p;
    r->method_len = req->method.n;
    r->path = req->path.p;
    r->path_len = req->path.n;
    r->raw = req->body;
    r->raw_len = req->body_len;
    if (http_slice_eq(req->path, "/v1/messages") ||
        http_slice_eq(req->path, "/v1/messages/count_tokens"))
        r->shape = PL_SHAPE_ANTHROPIC;
    http_slice_t rid = http_req_header(req, "x-request-id");
    if (api_request_id_ok(rid)) {
        memcpy(r->request_id, rid.p, rid.n);
        r->request_id[rid.n] = '\0';
    } else {
        pl_request_id(env, r->request_id);
    }
    http_resp_header(req, "x-request-id", r->request_id);
    req->udata = c;
    req->on_abort = api_on_abort;
    req->on_drain = api_on_drain;
    return c;
}

void api_send(api_ctx_t *c, int status, const char *ctype, const char *body, size_t len)
{
    pl_resume(c->r, pl_replay(c->r, status, ctype, body, len, NULL, NULL));
}

void api_send_error(api_ctx_t *c, int status, const char *type, const char *code, const char *param,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pl_rc_t rc = pl_failv(c->r, status, type, code, param, fmt, ap);
    va_end(ap);
    pl_resume(c->r, rc);
}

static void api_metrics(api_ctx_t *c)
{
    buf_t o;
    buf_init(&o, 0);
    metrics_render(&o);
    policy_metrics_render(&o);
    cache_metrics_render(&o);                 /* skuld_cache_*, skuld_dedupe_* (cache/) */
    store_metrics_render(policy_store(), &o); /* skuld_store_* (store/) */
    buf_printf(&o,
               "# HELP skuld_accept_paused_total Times a listener stopped accepting for a "
               "backoff after accept() failed (out of file descriptors).\n"
               "# TYPE skuld_accept_paused_total counter\nskuld_accept_paused_total %llu\n",
               (unsigned long long)http_accept_pauses());
    api_send(c, 200, "text/plain; version=0.0.4; charset=utf-8", buf_data(&o), o.len);
    buf_free(&o);
}

void api_handle(http_req_t *req)
{
    api_ctx_t *c = api_ctx_new(req);
    if (!c) {
        http_respond(req, 500, "application/json", "{}", 2);
        return;
    }
    c->env->served++;
    if (req->path.n >= 7 && memcmp(req->path.p, "/admin/", 7) == 0) {
        api_admin(c);
    } else if (req->path.n >= 4 && memcmp(req->path.p, "/v1/", 4) == 0) {
        c->r->parse = api_v1_parse; /* auth first, then the body */
        pl_run(c->r);
    } else if (http_slice_eq(req->path, "/healthz") &&
               (http_slice_eq(req->method, "GET") || http_slice_eq(req->method, "HEAD"))) {
        api_send(c, 200, "application/json", "{\"status\":\"ok\"}", 15);
    } else if (http_slice_eq(req->path, "/readyz") &&
               (http_slice_eq(req->method, "GET") || http_slice_eq(req->method, "HEAD"))) {
        char detail[640];
        const char *why = c->env->draining ? NULL : ctl_store_ready(detail, sizeof detail);
        if (c->env->draining)
            api_send_error(c, 503, NULL, "draining", NULL, "shutting down");
        else if (why)
            api_send_error(c, 503, NULL, why, NULL, "%s", detail);
        else
            api_send(c, 200, "application/json", "{\"status\":\"ready\"}", 18);
    } else if (http_slice_eq(req->path, "/metrics") &&
               (http_slice_eq(req->method, "GET") || http_slice_eq(req->method, "HEAD"))) {
        api_metrics(c);
    } else if (http_slice_eq(req->path, "/healthz") || http_slice_eq(req->path, "/readyz") ||
               http_slice_eq(req->path, "/metrics")) {
        pl_set_model(c->r, NULL);
        api_send_error(c, 405, NULL, "method_not_allowed", NULL, "method %.*s not allowed on %.*s",
                       (int)req->method.n, req->method.p, (int)req->path.n, req->path.p);
    } else {
        api_send_error(c, 404, NULL, "not_found", NULL, "unknown path %.*s", (int)req->path.n,
                       req->path.p);
    }
}

void api_on_error(http_req_t *req, int status, const char *message)
{
    api_ctx_t *c = api_ctx_new(req);
    if (!c) {
        http_respond(req, status, "application/json", "{}", 2);
        return;
    }
    pl_set_model(c->r, NULL);
    const char *code = status == 413   ? "request_too_large"
                       : status == 431 ? "headers_too_large"
                       : status == 408 ? "request_timeout"
                                       : "bad_request";
    api_send_error(c, status, NULL, code, NULL, "%s", message);
}
