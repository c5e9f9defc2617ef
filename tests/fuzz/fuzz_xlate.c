/*
 * fuzz_xlate — the response translators of the non-OpenAI providers
 * (src/provider/anthropic.c, gemini.c, ollama.c over provider/xlate.c) and
 * of azure.c (errors rewritten, the rest passed through), through their
 * public prov_ops_t hooks.
 *
 * Feeds: byte 0 picks the provider (bits 0-1: Anthropic, Gemini, Ollama, Azure), whole answer
 * or stream (bit 2), and the upstream status (bits 3-5: 200, 400, 429, 500, 529); the rest is
 * the upstream body. A fixed OpenAI chat request is built first with
 * ops->build() (which hangs the per-call translator state on the call); the
 * body then goes to translate_response() whole, or, for a stream, is cut
 * into events by the provider's framing (SSE or NDJSON, src/upstream) and
 * each event goes to translate_event().
 *
 * Checks, beyond "no crash" (ASan/UBSan, leaks):
 * - translate_response() returns -1 or an HTTP status (100..599); then its
 *   output is one JSON object: with "choices" (an array) for 2xx, with an
 *   "error" object for >= 400;
 * - translate_event() returns 0 or -1; every payload emitted is "[DONE]" or a
 *   JSON object (a chunk with a "choices" array, or an "error" object), and
 *   an event emits nothing after its "[DONE]" or error payload. As in the
 *   relay (src/api/relay.c), events after the end are not translated.
 * - Azure passes through: a 2xx body comes out unchanged, and a stream event
 *   comes out as it went in, or not at all (the prompt-filter preamble).
 * The local provider tables (echo, llama.cpp: libevent and llama.cpp, not
 * under test) are empty tables (local_providers_stub.c) so provider.c links.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/arena.h"
#include "core/buf.h"
#include "fuzz_common.h"
#include "provider/provider.h"
#include "upstream/ndjson.h"
#include "upstream/sse.h"

typedef struct stream_state {
    const prov_ops_t *ops;
    prov_xlate_t *x;
    bool done; /* "[DONE]" or an error payload was emitted */
    int payloads;
    bool passthrough; /* azure: payloads are the events' data unchanged */
    const char *cur;  /* the event being translated */
    size_t cur_len;
} stream_state_t;

static void check_object(const char *data, size_t len, int status)
{
    json_error_t e;
    json_t *v = json_loadb(data, len, 0, &e);
    if (!v) fprintf(stderr, "not JSON (%s): '%.*s'\n", e.text, (int)len, data);
    FZ_CHECK(v && json_is_object(v));
    if (status >= 400 || json_object_get(v, "error"))
        FZ_CHECK(json_is_object(json_object_get(v, "error")));
    else
        FZ_CHECK(json_is_array(json_object_get(v, "choices")));
    json_decref(v);
}

static int on_payload(void *ud, const char *data, size_t len)
{
    stream_state_t *s = ud;
    FZ_CHECK(!s->done);
    s->payloads++;
    if (s->passthrough) {
        FZ_CHECK(len == s->cur_len && memcmp(data, s->cur, len) == 0);
        return 0;
    }
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        s->done = true;
        return 0;
    }
    check_object(data, len, 0);
    json_t *v = json_loadb(data, len, 0, NULL);
    if (json_object_get(v, "error")) s->done = true;
    json_decref(v);
    return 0;
}

static int on_event(void *ud, const char *event, const char *data, size_t len)
{
    stream_state_t *s = ud;
    if (s->done) return 0; /* nothing after the end (relay_on_event) */
    s->cur = data;
    s->cur_len = len;
    int rc = s->ops->translate_event(s->x, event, data, len, on_payload, s);
    FZ_CHECK(rc == 0 || rc == -1);
    return rc == -1 ? 1 : 0; /* a malformed event ends the stream, as in the relay */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const prov_ops_t *const ops_by[] = {&provider_anthropic, &provider_gemini,
                                               &provider_ollama, &provider_azure};
    static const char *const type_by[] = {"anthropic", "gemini", "ollama", "azure"};
    static const int statuses[] = {200, 200, 200, 400, 429, 500, 529, 200};
    unsigned sel = data[0] & 3;
    bool stream = (data[0] >> 2) & 1;
    int status = statuses[(data[0] >> 3) & 7];
    const char *body = (const char *)data + 1;
    size_t len = size - 1;

    const prov_ops_t *ops = ops_by[sel];
    cfg_provider_t prov = {.name = "p",
                           .type = (char *)type_by[sel],
                           .base_url = "http://127.0.0.1:1/v1",
                           .api_key = "k",
                           .api_version = "2024-10-21"};
    cfg_model_t m;
    memset(&m, 0, sizeof m);
    m.name = "m";
    m.provider = &prov;
    m.upstream_model = "upstream-m";
    m.capabilities = ~0u;

    arena_t *a = arena_create(4096);
    json_t *req =
        json_pack("{s:s, s:[{s:s, s:s}], s:b, s:{s:b}}", "model", "m", "messages", "role", "user",
                  "content", "hi", "stream", stream, "stream_options", "include_usage", 1);
    prov_call_t call;
    memset(&call, 0, sizeof call);
    FZ_CHECK(ops->build(a, EP_CHAT, req, &m, stream, &call) == 0);
    json_decref(req);

    if (!stream) {
        buf_t out;
        buf_init(&out, 0);
        char *copy = fz_dup(body, len);
        int rc = ops->translate_response(call.xlate, status, copy, len, &out);
        free(copy);
        FZ_CHECK(rc == -1 || (rc >= 100 && rc <= 599));
        if (sel == 3 && rc != -1 && rc < 400)
            FZ_CHECK(out.len == len && memcmp(buf_data(&out), body, len) == 0);
        else if (rc != -1)
            check_object(buf_data(&out), out.len, rc);
        buf_free(&out);
    } else {
        stream_state_t s = {.ops = ops, .x = call.xlate, .passthrough = sel == 3};
        char *copy = fz_dup(body, len);
        if (call.framing == PROV_FRAME_NDJSON) {
            ndjson_parser_t p;
            ndjson_init(&p, 1 << 16);
            if (ndjson_feed(&p, copy, len, on_event, &s) == 0) ndjson_finish(&p, on_event, &s);
            ndjson_free(&p);
        } else {
            sse_parser_t p;
            sse_init(&p, 1 << 16);
            sse_feed(&p, copy, len, on_event, &s);
            sse_free(&p);
        }
        free(copy);
    }
    arena_destroy(a);
    return 0;
}
