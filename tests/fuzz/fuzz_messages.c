/*
 * fuzz_messages — the Anthropic Messages wire shape (src/api/anthropic_shape.h):
 * what a client sends to POST /v1/messages, and what the gateway turns an
 * OpenAI answer or stream into for that client.
 *
 * Feeds: byte 0 picks the mode (0: a client request, 1: a whole chat.completion
 * answer, 2: a stream of chat.completion.chunk payloads, one per line); the
 * rest is the JSON (or lines of JSON).
 *
 * Checks, beyond "no crash" (ASan/UBSan, leaks):
 * - a request either is refused with a message (and the field it names, when
 *   any, is a non-empty string) or becomes an OpenAI chat request: an object
 *   with a non-empty "messages" array whose every element has a "role" of
 *   system, user, assistant or tool;
 * - a converted answer is one JSON object of type "message" with a "content"
 *   array;
 * - a converted stream is a sequence of SSE frames "event: NAME\ndata: JSON\n\n"
 *   whose data is an object with "type" equal to NAME; after the end, the
 *   last frame is message_stop.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "api/anthropic_shape.h"
#include "core/buf.h"
#include "fuzz_common.h"

static void check_request(const uint8_t *d, size_t n)
{
    json_t *in = json_loadb((const char *)d, n, 0, NULL);
    if (!in) return;
    char err[256] = "";
    const char *param = NULL;
    json_t *out = ashape_request(in, err, sizeof err, &param);
    if (!out) {
        FZ_CHECK(err[0] != '\0');
        FZ_CHECK(!param || param[0] != '\0');
    } else {
        FZ_CHECK(json_is_object(out));
        json_t *msgs = json_object_get(out, "messages");
        FZ_CHECK(json_is_array(msgs) && json_array_size(msgs) > 0);
        size_t i;
        json_t *m;
        json_array_foreach(msgs, i, m)
        {
            const char *role = json_string_value(json_object_get(m, "role"));
            FZ_CHECK(role && (!strcmp(role, "system") || !strcmp(role, "user") ||
                              !strcmp(role, "assistant") || !strcmp(role, "tool")));
        }
        json_decref(out);
    }
    json_decref(in);
}

static void check_response(const uint8_t *d, size_t n)
{
    buf_t out;
    buf_init(&out, 0);
    if (ashape_response((const char *)d, n, "claude-fuzz", &out) == 0) {
        json_t *m = json_loadb(buf_data(&out), out.len, 0, NULL);
        FZ_CHECK(json_is_object(m));
        const char *type = json_string_value(json_object_get(m, "type"));
        FZ_CHECK(type && !strcmp(type, "message"));
        FZ_CHECK(json_is_array(json_object_get(m, "content")));
        json_decref(m);
    }
    buf_free(&out);
}

/* Every frame of out is "event: NAME\ndata: {...,"type":"NAME"}\n\n"; returns the last NAME. */
static void check_frames(const buf_t *out, char *last, size_t lastlen)
{
    const char *p = buf_data(out), *end = p + out->len;
    while (p < end) {
        FZ_CHECK((size_t)(end - p) > 7 && !memcmp(p, "event: ", 7));
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        FZ_CHECK(nl);
        size_t nlen = (size_t)(nl - p - 7);
        FZ_CHECK(nlen > 0 && nlen < lastlen);
        memcpy(last, p + 7, nlen);
        last[nlen] = '\0';
        p = nl + 1;
        FZ_CHECK((size_t)(end - p) > 6 && !memcmp(p, "data: ", 6));
        const char *stop = memchr(p, '\n', (size_t)(end - p));
        FZ_CHECK(stop && stop + 1 < end && stop[1] == '\n');
        json_t *o = json_loadb(p + 6, (size_t)(stop - p - 6), 0, NULL);
        FZ_CHECK(json_is_object(o));
        const char *type = json_string_value(json_object_get(o, "type"));
        FZ_CHECK(type && !strcmp(type, last));
        json_decref(o);
        p = stop + 2;
    }
}

static void check_stream(const uint8_t *d, size_t n)
{
    ashape_stream_t s;
    ashape_stream_init(&s, "claude-fuzz");
    buf_t out;
    buf_init(&out, 0);
    char last[64] = "";
    const char *p = (const char *)d, *end = p + n;
    bool failed = false;
    while (p < end && !failed) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        failed = ashape_stream_chunk(&s, p, len, &out) != 0;
        p += len + (nl != NULL);
    }
    if (!failed) ashape_stream_end(&s, 3, 0, 5, &out);
    check_frames(&out, last, sizeof last);
    if (!failed) FZ_CHECK(!strcmp(last, "message_stop"));
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    switch (data[0] % 3) {
    case 0:
        check_request(data + 1, size - 1);
        break;
    case 1:
        check_response(data + 1, size - 1);
        break;
    default:
        check_stream(data + 1, size - 1);
        break;
    }
    return 0;
}
