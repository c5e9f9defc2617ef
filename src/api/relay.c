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
 *
 * Shapes: a provider with translate hooks (anthropic, gemini, ollama) turns
 * its body / events (SSE, or NDJSON lines) into OpenAI JSON first; a client
 * on /v1/messages (c->shape) gets that OpenAI JSON turned into Anthropic's
 * shape last (api/anthropic_shape.c). Between the two, one code path. Cost
 * (policy/cost.h) goes into x-skuld-cost-usd when the answer is not streamed
 * (a stream's headers leave before its usage is known) and into metrics.
 * Image input is refused with 400 unless the deployment has CAP_VISION.
 */
#include <stdlib.h>
#include <string.h>

#include "api/anthropic_shape.h"
#include "api/internal.h"
#include "core/log.h"
#include "policy/cost.h"
#include "route/hooks.h"
#include "upstream/ndjson.h"
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
    prov_xlate_t *xlate;    /* provider translator state, or NULL (pass-through) */
    prov_framing_t framing; /* of a streamed upstream answer */
    ndjson_parser_t lines;
    bool saw_error;        /* a stream error payload was forwarded */
    bool bad_event;        /* the translator could not read a stream event */
    ashape_stream_t *aout; /* Anthropic-shaped client stream, or NULL */
} relay_t;

static void relay_free(relay_t *r)
{
    buf_free(&r->acc);
    buf_free(&r->frame);
    sse_free(&r->parser);
    ndjson_free(&r->lines);
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
    http_resp_header(r->c->req, "x-skuld-model", r->c->model->id); /* the deployment */
    http_resp_header(r->c->req, "x-skuld-provider", r->c->model->provider->name);
}

/* Read the "usage" object of a chat/completion/embedding answer. */
static void relay_take_usage_obj(relay_t *r, json_t *u)
{
    if (!json_is_object(u)) return;
    json_t *p = json_object_get(u, "prompt_tokens"), *cpl = json_object_get(u, "completion_tokens");
    if (json_is_integer(p)) r->c->prompt_tokens = (long)json_integer_value(p);
    json_t *cached = json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens");
    if (json_is_integer(cached)) r->c->cached_tokens = (long)json_integer_value(cached);
    if (json_is_integer(cpl))
        r->c->completion_tokens = (long)json_integer_value(cpl);
    else if (r->ep == EP_EMBEDDINGS)
        r->c->completion_tokens = 0;
}

static void relay_take_usage(relay_t *r, json_t *obj)
{
    relay_take_usage_obj(r, json_object_get(obj, "usage"));
}

/*
 * A passed-through answer is relayed as bytes; only its usage is needed, so
 * instead of parsing the whole body (a third of the gateway's CPU per request
 * in the profile), find the last unescaped "usage" key -- OpenAI-shaped
 * answers end with it; the same text inside a string would be escaped -- and
 * parse just the value after it. Also checks the body is an object ({...}).
 * Returns false when the body is not an object.
 */
static bool relay_sniff_usage(relay_t *r, const char *b, size_t n)
{
    size_t i = 0, j = n;
    while (i < n && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t')) i++;
    while (j > i && (b[j - 1] == ' ' || b[j - 1] == '\n' || b[j - 1] == '\r' || b[j - 1] == '\t'))
        j--;
    if (i == j || b[i] != '{' || b[j - 1] != '}') return false;
    static const char key[] = "\"usage\"";
    for (size_t k = j - 1; k > i + sizeof key - 1; k--) {
        const char *at = b + k - (sizeof key - 1);
        if (memcmp(at, key, sizeof key - 1) != 0 || at[-1] == '\\') continue;
        const char *v = at + sizeof key - 1;
        while (v < b + j && (*v == ' ' || *v == ':' || *v == '\n' || *v == '\t' || *v == '\r')) v++;
        json_t *u = json_loadb(v, (size_t)(b + j - v), JSON_DISABLE_EOF_CHECK, NULL);
        relay_take_usage_obj(r, u);
        json_decref(u);
        break;
    }
    return true;
}

/* ---------- streaming ---------- */

static void relay_stream_fail(relay_t *r, const char *code, const char *message)
{
    buf_reset(&r->frame);
    if (r->aout) {
        ashape_stream_error(&r->frame, 502, message);
    } else {
        buf_appends(&r->frame, "data: ");
        api_error_json(&r->frame, 502, "server_error", code, NULL, message);
        buf_appends(&r->frame, "\n\n");
    }
    http_stream_write(r->c->req, buf_data(&r->frame), r->frame.len);
    atomic_fetch_add_explicit(&r->c->ms->stream_errors, 1, memory_order_relaxed);
    if (!r->c->error) r->c->error = message;
    api_account(r->c, 200);
    http_stream_end(r->c->req);
}

/* An OpenAI error payload ({"error":...}) inside a stream. */
static bool relay_is_error(const char *data, size_t len)
{
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\n')) i++;
    return len - i > 9 && memcmp(data + i, "{\"error\":", 9) == 0;
}

/* An error payload to an Anthropic-shaped client: its message in Anthropic's event. */
static void relay_anthropic_error(relay_t *r, const char *data, size_t len)
{
    json_t *o = json_loadb(data, len, 0, NULL);
    json_t *e = json_object_get(o, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *type = json_string_value(json_object_get(e, "type"));
    int status = type && !strcmp(type, "rate_limit_error") ? 429 : 500;
    ashape_stream_error(&r->frame, status, msg ? msg : "the upstream stream reported an error");
    json_decref(o);
}

/* One OpenAI stream payload to the client, in its shape. */
static int relay_forward(relay_t *r, const char *event, const char *data, size_t len)
{
    bool done = len == 6 && memcmp(data, "[DONE]", 6) == 0;
    if (done) {
        r->saw_done = true;
    } else if (relay_is_error(data, len)) {
        r->saw_error = true;
        if (!r->c->error) r->c->error = "upstream stream error event";
        atomic_fetch_add_explicit(&r->c->ms->stream_errors, 1, memory_order_relaxed);
        if (r->aout) {
            buf_reset(&r->frame);
            relay_anthropic_error(r, data, len);
            return http_stream_write(r->c->req, buf_data(&r->frame), r->frame.len) != 0;
        }
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
    if (r->aout) {
        if (done)
            ashape_stream_end(r->aout, r->c->prompt_tokens, r->c->cached_tokens,
                              r->c->completion_tokens, &r->frame);
        else if (ashape_stream_chunk(r->aout, data, len, &r->frame) != 0)
            return 0; /* not a chunk object: nothing an Anthropic client could use */
        return http_stream_write(r->c->req, buf_data(&r->frame), r->frame.len) != 0;
    }
    if (event[0]) buf_printf(&r->frame, "event: %s\n", event);
    buf_appends(&r->frame, "data: ");
    buf_append(&r->frame, data, len);
    buf_appends(&r->frame, "\n\n");
    if (http_stream_write(r->c->req, buf_data(&r->frame), r->frame.len) != 0) return 1;
    return 0;
}

static int relay_emit(void *ud, const char *data, size_t len)
{
    return relay_forward(ud, "", data, len);
}

static int relay_on_event(void *ud, const char *event, const char *data, size_t len)
{
    relay_t *r = ud;
    if (r->saw_done || r->saw_error) return 0; /* nothing after the end */
    if (r->xlate && r->ops->translate_event) {
        int rc = r->ops->translate_event(r->xlate, event, data, len, relay_emit, r);
        if (rc < 0) r->bad_event = true;
        return rc;
    }
    return relay_forward(r, event, data, len);
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
    const char *want = r->framing == PROV_FRAME_NDJSON ? "ndjson" : "text/event-stream";
    if (!ct || !strstr(ct, want)) return; /* answered whole: relay as a body */
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
    route_api_first_byte(r->c); /* time to first byte, for the router */
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
    int rc = r->framing == PROV_FRAME_NDJSON ? ndjson_feed(&r->lines, data, len, relay_on_event, r)
                                             : sse_feed(&r->parser, data, len, relay_on_event, r);
    if (rc < 0) {
        relay_cancel_call(r);
        metrics_upstream_error(r->c->ms, UPERR_PROTOCOL);
        if (r->bad_event)
            relay_stream_fail(r, "upstream_invalid_event",
                              "upstream sent a malformed stream event");
        else
            relay_stream_fail(r, "upstream_event_too_large",
                              "upstream sent an oversized stream event");
        relay_free(r);
        return UP_CONTINUE;
    }
    return UP_CONTINUE; /* rc > 0: client gone, the abort path cancels the call */
}

/* The provider's body in OpenAI's shape (translators only); false if it could not be read. */
static bool relay_translate_body(relay_t *r)
{
    if (!r->xlate || !r->ops->translate_response) return true;
    buf_t out;
    buf_init(&out, 0);
    int st = r->ops->translate_response(r->xlate, r->status, buf_data(&r->acc), r->acc.len, &out);
    if (st >= 0) {
        buf_free(&r->acc);
        r->acc = out;
        r->status = st;
        return true;
    }
    buf_free(&out);
    return false;
}

/* A non-streamed OpenAI answer (error or chat.completion) in the client's shape. */
static void relay_send_shaped(relay_t *r)
{
    api_ctx_t *c = r->c;
    if (c->shape != API_SHAPE_ANTHROPIC || r->ep != EP_CHAT) {
        api_send(c, r->status, "application/json", buf_data(&r->acc), r->acc.len);
        return;
    }
    if (r->status >= 400) {
        json_t *o = json_loadb(buf_data(&r->acc), r->acc.len, 0, NULL);
        const char *msg =
            json_string_value(json_object_get(json_object_get(o, "error"), "message"));
        api_send_error(c, r->status, NULL, NULL, NULL, "%s",
                       msg ? msg : "the upstream provider answered with an error");
        json_decref(o);
        return;
    }
    buf_t out;
    buf_init(&out, 0);
    if (ashape_response(buf_data(&r->acc), r->acc.len, c->model->name, &out) == 0)
        api_send(c, r->status, "application/json", buf_data(&out), out.len);
    else
        api_send_error(c, 502, NULL, "upstream_invalid_response", NULL,
                       "the upstream answer has no message to translate");
    buf_free(&out);
}

static void relay_finish_body(relay_t *r)
{
    api_ctx_t *c = r->c;
    relay_model_headers(r);
    if (!relay_translate_body(r)) {
        metrics_upstream_error(c->ms, r->status >= 400 ? UPERR_STATUS : UPERR_PROTOCOL);
        api_send_error(c, r->status >= 400 ? r->status : 502, NULL, "upstream_invalid_response",
                       NULL, "the upstream provider returned a body that could not be translated");
        return;
    }
    if (r->status >= 400) {
        metrics_upstream_error(c->ms, UPERR_STATUS);
        if (r->retry_after[0]) http_resp_header(c->req, "Retry-After", r->retry_after);
        json_t *e = json_loadb(buf_data(&r->acc), r->acc.len, 0, NULL);
        bool openai_shape = json_is_object(json_object_get(e, "error"));
        json_decref(e);
        c->error = "upstream error status";
        if (openai_shape) {
            relay_send_shaped(r);
        } else {
            api_send_error(c, r->status, NULL, "upstream_error", NULL,
                           "the upstream provider answered HTTP %d", r->status);
        }
        return;
    }
    if (!relay_sniff_usage(r, buf_data(&r->acc), r->acc.len)) {
        metrics_upstream_error(c->ms, UPERR_PROTOCOL);
        api_send_error(c, 502, NULL, "upstream_invalid_response", NULL,
                       "the upstream provider returned a body that is not a JSON object");
        return;
    }
    if (c->prompt_tokens >= 0 || c->completion_tokens >= 0) {
        char cost[48];
        cost_format(
            cost_usd(&c->model->price, c->prompt_tokens, c->cached_tokens, c->completion_tokens),
            cost, sizeof cost);
        http_resp_header(c->req, "x-skuld-cost-usd", cost);
    }
    relay_send_shaped(r);
}

static void relay_on_done(void *ud, up_result_t res, const char *detail)
{
    relay_t *r = ud;
    api_ctx_t *c = r->c;
    r->up = NULL; /* freed by its owner when we return */
    r->local = NULL;
    c->req->on_abort = NULL;
    c->req->on_drain = NULL;
    if (r->started && res == UP_OK && r->framing == PROV_FRAME_NDJSON && !r->saw_done)
        ndjson_finish(&r->lines, relay_on_event, r);
    if (r->started) {
        if (res == UP_OK && (r->saw_done || r->saw_error)) {
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

/* Does an OpenAI chat request carry image content? */
static bool relay_has_image(const json_t *body)
{
    size_t i, j;
    json_t *msg, *part;
    json_array_foreach(json_object_get(body, "messages"), i, msg)
    {
        json_array_foreach(json_object_get(msg, "content"), j, part)
        {
            const char *t = json_string_value(json_object_get(part, "type"));
            if (t && (!strcmp(t, "image_url") || !strcmp(t, "input_image") || !strcmp(t, "image")))
                return true;
        }
    }
    return false;
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
    ndjson_init(&r->lines, RELAY_MAX_EVENT);

    if (ep == EP_CHAT && !(m->capabilities & CAP_VISION) && relay_has_image(body)) {
        relay_free(r);
        api_send_error(c, 400, NULL, "model_capability_missing", "messages",
                       "the model '%s' cannot take image input: it lacks the capability 'vision'",
                       m->name);
        return;
    }
    prov_call_t call = {0};
    int brc = 1;
    /* With a top-level "model" present, the one "model" key build_raw accepts
     * can only be that one. */
    if (r->ops && r->ops->build_raw && c->shape == API_SHAPE_OPENAI &&
        json_is_string(json_object_get(body, "model")))
        brc = r->ops->build_raw(req->arena, ep, req->body, req->body_len, m, stream, client_usage,
                                &call);
    if (brc == 1) brc = r->ops ? r->ops->build(req->arena, ep, body, m, stream, &call) : -1;
    if (brc == PROV_EBADREQ) {
        relay_free(r);
        api_send_error(c, 400, NULL, "unsupported_request", NULL, "%s",
                       call.error ? call.error : "the request cannot be sent to this deployment");
        return;
    }
    if (brc != 0) {
        relay_free(r);
        api_send_error(c, 500, NULL, "internal_error", NULL,
                       "could not build the upstream request");
        return;
    }
    r->xlate = call.xlate;
    r->framing = call.framing;
    if (stream && c->shape == API_SHAPE_ANTHROPIC && ep == EP_CHAT) {
        r->aout = arena_calloc(req->arena, sizeof *r->aout);
        if (r->aout) ashape_stream_init(r->aout, m->name);
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
