/*
 * api relay — one client request relayed to one deployment.
 *
 * Non-streamed: the upstream body is collected (capped at
 * server.max_upstream_body_bytes), its usage read, and it is returned as is.
 * Streamed: once the upstream answers 2xx with an event stream, the client
 * stream starts and every SSE event is forwarded the moment it is complete —
 * never buffered whole. The usage chunk the gateway asked for is read for
 * accounting and dropped unless the client asked for it too. If the client's
 * socket backs up past HTTP_OUT_HIGH_WATER the upstream transfer is paused
 * and resumed on drain, so a slow reader cannot make the gateway buffer a
 * whole answer.
 *
 * Endings: an upstream that fails before the client stream starts gives the
 * client a proper status (502 refused/broken, 504 timeout, the upstream's own
 * 4xx/5xx passed through). One that fails after gives an SSE error event and
 * no [DONE] — never a clean end. A client that leaves cancels the upstream
 * transfer at once (on_abort) and everything is freed with the request.
 */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "core/log.h"
#include "upstream/sse.h"

#define RELAY_MAX_EVENT (1024 * 1024)

typedef struct relay {
    api_ctx_t *c;
    const prov_ops_t *ops;
    endpoint_t ep;
    bool stream;       /* the client asked for a stream */
    bool client_usage; /* ... and for the usage chunk */
    up_call_t *up;
    prov_local_t *local;
    json_t *body; /* client request, as modified for the upstream */
    int status;
    bool sse;     /* upstream answered with an event stream */
    bool started; /* client stream started */
    bool saw_done;
    bool paused;
    char retry_after[32];
    buf_t acc; /* non-streamed body or error body */
    sse_parser_t parser;
    buf_t frame;
} relay_t;

static void relay_free(relay_t *r)
{
    buf_free(&r->acc);
    buf_free(&r->frame);
    sse_free(&r->parser);
    json_decref(r->body);
    r->body = NULL;
}

static void relay_cancel_call(relay_t *r)
{
    if (r->up) upstream_call_cancel(r->up);
    if (r->local) r->ops->local_cancel(r->local);
    r->up = NULL;
    r->local = NULL;
}

static void relay_model_headers(relay_t *r)
{
    http_resp_header(r->c->req, "x-skuld-model", r->c->model->name);
    http_resp_header(r->c->req, "x-skuld-provider", r->c->model->provider->name);
}

/* Read "usage" from a chat/completion/embedding object. */
static void relay_take_usage(relay_t *r, json_t *obj)
{
    json_t *u = json_object_get(obj, "usage");
    if (!json_is_object(u)) return;
    json_t *p = json_object_get(u, "prompt_tokens"), *cpl = json_object_get(u, "completion_tokens");
    if (json_is_integer(p)) r->c->prompt_tokens = (long)json_integer_value(p);
    if (json_is_integer(cpl))
        r->c->completion_tokens = (long)json_integer_value(cpl);
    else if (r->ep == EP_EMBEDDINGS)
        r->c->completion_tokens = 0;
}

/* ---------- streaming ---------- */

static void relay_stream_fail(relay_t *r, const char *code, const char *message)
{
    buf_reset(&r->frame);
    buf_appends(&r->frame, "data: ");
    api_error_json(&r->frame, 502, "server_error", code, NULL, message);
    buf_appends(&r->frame, "\n\n");
    http_stream_write(r->c->req, buf_data(&r->frame), r->frame.len);
    atomic_fetch_add_explicit(&r->c->ms->stream_errors, 1, memory_order_relaxed);
    if (!r->c->error) r->c->error = message;
    api_account(r->c, 200);
    http_stream_end(r->c->req);
}

static int relay_on_event(void *ud, const char *event, const char *data, size_t len)
{
    relay_t *r = ud;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        r->saw_done = true;
    } else if (memmem(data, len, "\"usage\":{", 9) || memmem(data, len, "\"usage\": {", 10)) {
        json_t *chunk = json_loadb(data, len, 0, NULL);
        if (chunk) {
            relay_take_usage(r, chunk);
            json_t *choices = json_object_get(chunk, "choices");
            bool usage_only = json_is_array(choices) && json_array_size(choices) == 0;
            json_decref(chunk);
            if (usage_only && !r->client_usage) return 0; /* we asked for it, the client did not */
        }
    }
    buf_reset(&r->frame);
    if (event[0]) buf_printf(&r->frame, "event: %s\n", event);
    buf_appends(&r->frame, "data: ");
    buf_append(&r->frame, data, len);
    buf_appends(&r->frame, "\n\n");
    if (http_stream_write(r->c->req, buf_data(&r->frame), r->frame.len) != 0) return 1;
    return 0;
}

/* ---------- callbacks from the upstream call ---------- */

static void relay_on_head(void *ud, int status)
{
    relay_t *r = ud;
    r->status = status;
    if (r->up) {
        const char *ra = upstream_call_header(r->up, "retry-after");
        if (ra) snprintf(r->retry_after, sizeof r->retry_after, "%s", ra);
    }
    if (!r->stream || status < 200 || status >= 300) return;
    const char *ct = r->up ? upstream_call_header(r->up, "content-type") : "text/event-stream";
    if (!ct || !strstr(ct, "text/event-stream")) return; /* answered whole: relay as a body */
    r->sse = true;
    r->started = true;
    relay_model_headers(r);
    http_resp_header(r->c->req, "Cache-Control", "no-cache");
    http_resp_header(r->c->req, "X-Accel-Buffering", "no");
    http_stream_start(r->c->req, 200, "text/event-stream");
}

static int relay_on_data(void *ud, const char *data, size_t len)
{
    relay_t *r = ud;
    if (!r->sse) {
        if (buf_append(&r->acc, data, len) != BUF_OK) {
            relay_cancel_call(r);
            metrics_upstream_error(r->c->ms, UPERR_PROTOCOL);
            relay_model_headers(r);
            r->c->error = "upstream response too large";
            relay_free(r);
            api_send_error(r->c, 502, NULL, "upstream_response_too_large", NULL,
                           "the upstream response exceeded server.max_upstream_body_bytes");
        }
        return UP_CONTINUE;
    }
    /* Pause before consuming: a paused transfer hands the same bytes again on
     * resume, so bytes taken now and paused would be relayed twice. */
    if (http_req_out_pending(r->c->req) > HTTP_OUT_HIGH_WATER) {
        r->paused = true;
        return UP_PAUSE;
    }
    int rc = sse_feed(&r->parser, data, len, relay_on_event, r);
    if (rc < 0) {
        relay_cancel_call(r);
        metrics_upstream_error(r->c->ms, UPERR_PROTOCOL);
        relay_stream_fail(r, "upstream_event_too_large", "upstream sent an oversized stream event");
        relay_free(r);
        return UP_CONTINUE;
    }
    return UP_CONTINUE; /* rc > 0: client gone, the abort path cancels the call */
}

static void relay_finish_body(relay_t *r)
{
    api_ctx_t *c = r->c;
    relay_model_headers(r);
    if (r->status >= 400) {
        metrics_upstream_error(c->ms, UPERR_STATUS);
        if (r->retry_after[0]) http_resp_header(c->req, "Retry-After", r->retry_after);
        json_t *e = json_loadb(buf_data(&r->acc), r->acc.len, 0, NULL);
        bool openai_shape = json_is_object(json_object_get(e, "error"));
        json_decref(e);
        c->error = "upstream error status";
        if (openai_shape) {
            api_send(c, r->status, "application/json", buf_data(&r->acc), r->acc.len);
        } else {
            api_send_error(c, r->status, NULL, "upstream_error", NULL,
                           "the upstream provider answered HTTP %d", r->status);
        }
        return;
    }
    json_t *obj = json_loadb(buf_data(&r->acc), r->acc.len, 0, NULL);
    if (!json_is_object(obj)) {
        json_decref(obj);
        metrics_upstream_error(c->ms, UPERR_PROTOCOL);
        api_send_error(c, 502, NULL, "upstream_invalid_response", NULL,
                       "the upstream provider returned a body that is not a JSON object");
        return;
    }
    relay_take_usage(r, obj);
    json_decref(obj);
    api_send(c, r->status, "application/json", buf_data(&r->acc), r->acc.len);
}

static void relay_on_done(void *ud, up_result_t res, const char *detail)
{
    relay_t *r = ud;
    api_ctx_t *c = r->c;
    r->up = NULL; /* freed by its owner when we return */
    r->local = NULL;
    c->req->on_abort = NULL;
    c->req->on_drain = NULL;
    if (r->started) {
        if (res == UP_OK && r->saw_done) {
            api_account(c, 200);
            http_stream_end(c->req);
        } else {
            metrics_upstream_error(c->ms, res == UP_TIMEOUT ? UPERR_TIMEOUT : UPERR_PROTOCOL);
            relay_stream_fail(r, res == UP_TIMEOUT ? "upstream_timeout" : "upstream_stream_error",
                              res == UP_TIMEOUT
                                  ? "the upstream stream stalled past the idle timeout"
                                  : "the upstream stream ended before completion");
        }
    } else if (res == UP_OK) {
        relay_finish_body(r);
    } else {
        c->error = arena_strdup(c->req->arena, detail ? detail : "upstream failure");
        relay_model_headers(r);
        if (res == UP_TIMEOUT) {
            metrics_upstream_error(c->ms, UPERR_TIMEOUT);
            api_send_error(c, 504, NULL, "upstream_timeout", NULL,
                           "the upstream provider did not answer in time");
        } else if (res == UP_CONNECT_FAILED) {
            metrics_upstream_error(c->ms, UPERR_CONNECT);
            api_send_error(c, 502, NULL, "upstream_unreachable", NULL,
                           "could not connect to the upstream provider");
        } else {
            metrics_upstream_error(c->ms, UPERR_PROTOCOL);
            api_send_error(c, 502, NULL, "upstream_error", NULL,
                           "the upstream connection failed before a complete response");
        }
    }
    relay_free(r);
}

static void relay_on_abort(http_req_t *req)
{
    api_ctx_t *c = req->udata;
    relay_t *r = c->relay;
    relay_cancel_call(r);
    c->error = "client closed the connection";
    api_account(c, 499);
    relay_free(r);
}

static void relay_resume(http_req_t *req)
{
    api_ctx_t *c = req->udata;
    relay_t *r = c->relay;
    if (!r->paused) return;
    r->paused = false;
    if (r->up)
        upstream_call_resume(r->up);
    else if (r->local)
        r->ops->local_resume(r->local);
}

void api_relay_start(api_ctx_t *c, endpoint_t ep, json_t *body, bool stream, bool client_usage)
{
    http_req_t *req = c->req;
    const cfg_model_t *m = c->model;
    const cfg_server_t *sc = &c->cfg->server;
    relay_t *r = arena_calloc(req->arena, sizeof *r);
    if (!r) {
        json_decref(body);
        api_send_error(c, 500, NULL, "internal_error", NULL, "out of memory");
        return;
    }
    c->relay = r;
    r->c = c;
    r->ep = ep;
    r->stream = stream;
    r->client_usage = client_usage;
    r->body = body;
    r->ops = provider_ops(m->provider->type);
    buf_init(&r->acc, sc->max_upstream_body_bytes);
    buf_init(&r->frame, 0);
    sse_init(&r->parser, RELAY_MAX_EVENT);

    prov_call_t call = {0};
    if (!r->ops || r->ops->build(req->arena, ep, body, m, stream, &call) != 0) {
        relay_free(r);
        api_send_error(c, 500, NULL, "internal_error", NULL,
                       "could not build the upstream request");
        return;
    }
    static const up_callbacks_t cbs = {relay_on_head, relay_on_data, relay_on_done};
    atomic_fetch_add_explicit(&c->ms->upstream_requests, 1, memory_order_relaxed);
    if (r->ops->local_start) {
        r->local = r->ops->local_start(c->w->base, ep, &call, &cbs, r);
    } else {
        up_request_t ur = {
            .url = call.url,
            .body = call.body,
            .body_len = call.body_len,
            .headers = call.headers,
            .connect_timeout_ms = sc->connect_timeout_ms,
            .total_timeout_ms = stream ? 0 : sc->request_timeout_ms,
            .idle_timeout_ms = stream ? sc->stream_idle_timeout_ms : 0,
        };
        r->up = upstream_call_start(c->w->upstream, &ur, &cbs, r);
    }
    if (!r->up && !r->local) {
        relay_free(r);
        api_send_error(c, 500, NULL, "internal_error", NULL, "could not start the upstream call");
        return;
    }
    req->on_abort = relay_on_abort;
    req->on_drain = relay_resume;
}
