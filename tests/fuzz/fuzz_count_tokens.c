/*
 * fuzz_count_tokens — the parsers of POST /v1/messages/count_tokens and
 * GET /v1/models/{id}: the client's count body (api/anthropic_shape.h
 * ashape_count_request), the upstream count answers (Anthropic's
 * /messages/count_tokens, Gemini's :countTokens through their
 * translate_response), the gateway's estimate of a translated request
 * (route_estimate_input_tokens), and the percent-decoding of a model id in
 * the path (http_pct_decode).
 *
 * Feeds: byte 0 bits 0-1 pick the mode (0: a client body, 1: an Anthropic
 * count answer, 2: a Gemini count answer, 3: a path segment), bits 2-4 the
 * upstream status of an answer (200, 400, 401, 404, 429, 500, 503, 529);
 * the rest is the body or segment.
 *
 * Checks, beyond "no crash" (ASan/UBSan, leaks):
 * - a body is refused with a message (and a non-empty field name when one
 *   is named), or becomes an OpenAI chat request with a non-empty
 *   "messages" array of valid roles and no max_tokens; that request builds
 *   for Anthropic (no max_tokens, stream, sampling or metadata in the body,
 *   URL .../messages/count_tokens) and Gemini (a generateContentRequest,
 *   URL ...:countTokens), and its estimate is >= 4 per message;
 * - an answer translates to -1, or to a status in 100..599 with one JSON
 *   object: {"input_tokens": N >= 0} alone for 2xx, an "error" object for
 *   an error status;
 * - a decoded segment fits its buffer, holds no NUL, is never longer than
 *   its input, and percent-encoding it whole decodes back to the same bytes.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/anthropic_shape.h"
#include "core/arena.h"
#include "core/buf.h"
#include "fuzz_common.h"
#include "http/parser.h"
#include "provider/provider.h"
#include "route/router.h"

static const int statuses[8] = {200, 400, 401, 404, 429, 500, 503, 529};

static cfg_provider_t prov_anth = {
    .name = "a", .type = "anthropic", .base_url = "https://api.anthropic.test/v1", .api_key = "K"};
static cfg_provider_t prov_gem = {
    .name = "g", .type = "gemini", .base_url = "https://gemini.test/v1beta", .api_key = "K"};

static bool ends_with(const char *s, const char *tail)
{
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && !strcmp(s + a - b, tail);
}

static void check_build(const prov_ops_t *ops, cfg_provider_t *p, json_t *req)
{
    cfg_model_t m = {.name = "pub", .provider = p, .upstream_model = "up", .capabilities = CAP_ALL};
    arena_t *a = arena_create(4096);
    json_t *copy = json_deep_copy(req);
    prov_call_t call = {0};
    int rc = ops->build(a, EP_COUNT_TOKENS, copy, &m, false, &call);
    FZ_CHECK(rc == 0);
    json_t *body = json_loadb(call.body, call.body_len, 0, NULL);
    FZ_CHECK(json_is_object(body));
    if (p == &prov_anth) {
        FZ_CHECK(ends_with(call.url, "/messages/count_tokens"));
        static const char *const never[] = {"max_tokens", "stream",         "temperature",
                                            "top_p",      "stop_sequences", "metadata"};
        for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
            FZ_CHECK(!json_object_get(body, never[i]));
        FZ_CHECK(json_is_array(json_object_get(body, "messages")));
    } else {
        FZ_CHECK(ends_with(call.url, ":countTokens"));
        FZ_CHECK(json_is_object(json_object_get(body, "generateContentRequest")));
    }
    json_decref(body);
    json_decref(copy);
    arena_destroy(a);
}

static void check_body(const uint8_t *d, size_t n)
{
    json_t *in = json_loadb((const char *)d, n, 0, NULL);
    if (!in) return;
    char err[256] = "";
    const char *param = NULL;
    json_t *out = ashape_count_request(in, err, sizeof err, &param);
    if (!out) {
        FZ_CHECK(err[0] != '\0');
        FZ_CHECK(!param || param[0] != '\0');
        json_decref(in);
        return;
    }
    FZ_CHECK(json_is_object(out));
    FZ_CHECK(!json_object_get(out, "max_tokens"));
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
    FZ_CHECK(route_estimate_input_tokens(out) >= 4 * (long)json_array_size(msgs));
    check_build(&provider_anthropic, &prov_anth, out);
    check_build(&provider_gemini, &prov_gem, out);
    json_decref(out);
    json_decref(in);
}

static void check_answer(const prov_ops_t *ops, cfg_provider_t *p, int status, const uint8_t *d,
                         size_t n)
{
    cfg_model_t m = {.name = "pub", .provider = p, .upstream_model = "up", .capabilities = CAP_ALL};
    arena_t *a = arena_create(4096);
    json_t *req = json_pack("{s:[{s:s, s:s}]}", "messages", "role", "user", "content", "hi");
    prov_call_t call = {0};
    FZ_CHECK(ops->build(a, EP_COUNT_TOKENS, req, &m, false, &call) == 0);
    buf_t out;
    buf_init(&out, 0);
    int st = ops->translate_response(call.xlate, status, (const char *)d, n, &out);
    FZ_CHECK(st == -1 || (st >= 100 && st <= 599));
    if (st >= 0) {
        json_t *o = json_loadb(buf_data(&out), out.len, 0, NULL);
        FZ_CHECK(json_is_object(o));
        if (st >= 400) {
            FZ_CHECK(json_is_object(json_object_get(o, "error")));
        } else {
            json_t *it = json_object_get(o, "input_tokens");
            FZ_CHECK(json_object_size(o) == 1 && json_is_integer(it) &&
                     json_integer_value(it) >= 0);
        }
        json_decref(o);
    }
    buf_free(&out);
    json_decref(req);
    arena_destroy(a);
}

static void check_segment(const uint8_t *d, size_t n)
{
    char out[64], back[64], enc[3 * 64 + 1];
    long len = http_pct_decode((const char *)d, n, out, sizeof out);
    if (len < 0) return;
    FZ_CHECK((size_t)len <= n && (size_t)len < sizeof out);
    FZ_CHECK(out[len] == '\0' && strlen(out) == (size_t)len);
    static const char hx[] = "0123456789ABCDEF";
    for (long i = 0; i < len; i++) {
        unsigned char c = (unsigned char)out[i];
        enc[3 * i] = '%', enc[3 * i + 1] = hx[c >> 4], enc[3 * i + 2] = hx[c & 15];
    }
    long again = http_pct_decode(enc, (size_t)(3 * len), back, sizeof back);
    FZ_CHECK(again == len && memcmp(back, out, (size_t)len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int mode = data[0] & 3;
    int status = statuses[(data[0] >> 2) & 7];
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    if (mode == 0)
        check_body(d, n);
    else if (mode == 1)
        check_answer(&provider_anthropic, &prov_anth, status, d, n);
    else if (mode == 2)
        check_answer(&provider_gemini, &prov_gem, status, d, n);
    else
        check_segment(d, n);
    return 0;
}
