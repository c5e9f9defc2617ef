/*
 * fuzz_embeddings — the embeddings parsers of the providers that answer
 * OpenAI embeddings themselves (src/provider/embed.h): a client's request
 * (embed_request, then the Gemini and Ollama builds), and an upstream's
 * answer (Gemini batchEmbedContents, Ollama /api/embed, through their
 * translate_response).
 *
 * Feeds: byte 0 bits 0-1 pick the mode (0: a client body, 1: a Gemini
 * answer, 2: an Ollama answer); for an answer, bit 2 asks for base64, bits
 * 3-4 for dimensions (none, 1, 3, 8) and bit 5 for two inputs instead of
 * one, bits 6-7 the upstream status (200, 200, 400, 500); the rest is the
 * body.
 *
 * Checks, beyond "no crash" (ASan/UBSan, leaks):
 * - a body is refused with a message, a code and a non-empty param, or
 *   accepted with 1..2048 inputs and dimensions 0..65536; an accepted body
 *   builds for Gemini (one request per input) and Ollama (input as sent);
 * - an answer translates to -1 or to a status in 100..599 with one JSON
 *   object: an "error" object for >= 400, else a list with one embedding
 *   per input, in order, each an array of numbers or a base64 string of
 *   whole float32s, of exactly the asked dimensions and unit length when
 *   dimensions were asked (and any component is non-zero).
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "core/arena.h"
#include "core/buf.h"
#include "fuzz_common.h"
#include "provider/embed.h"
#include "provider/provider.h"

static cfg_provider_t prov_gem = {
    .name = "g", .type = "gemini", .base_url = "https://gemini.test/v1beta", .api_key = "K"};
static cfg_provider_t prov_oll = {.name = "o", .type = "ollama", .base_url = "http://o.test"};

static void check_build(const prov_ops_t *ops, cfg_provider_t *p, const json_t *req, size_t n)
{
    cfg_model_t m = {.name = "pub", .provider = p, .upstream_model = "up", .capabilities = CAP_ALL};
    arena_t *a = arena_create(4096);
    json_t *copy = json_deep_copy(req);
    prov_call_t call = {0};
    FZ_CHECK(ops->build(a, EP_EMBEDDINGS, copy, &m, false, &call) == 0);
    json_t *body = json_loadb(call.body, call.body_len, 0, NULL);
    FZ_CHECK(json_is_object(body));
    if (p == &prov_gem)
        FZ_CHECK(json_array_size(json_object_get(body, "requests")) == n);
    else
        FZ_CHECK(json_equal(json_object_get(body, "input"), json_object_get(req, "input")));
    json_decref(body);
    json_decref(copy);
    arena_destroy(a);
}

static void check_body(const uint8_t *d, size_t n)
{
    json_t *in = json_loadb((const char *)d, n, 0, NULL);
    if (!json_is_object(in)) {
        json_decref(in);
        return;
    }
    arena_t *a = arena_create(1024);
    embed_opts_t o;
    prov_call_t why = {0};
    int rc = embed_request(a, in, &o, &why);
    if (rc != 0) {
        FZ_CHECK(rc == PROV_EBADREQ && why.error && why.error[0] && why.error_code);
        FZ_CHECK(!why.error_param || why.error_param[0]);
    } else {
        FZ_CHECK(o.n >= 1 && o.n <= EMBED_MAX_INPUTS && o.dims >= 0 && o.dims <= EMBED_MAX_DIMS);
        for (size_t i = 0; i < o.n; i++) {
            size_t len;
            FZ_CHECK(embed_input(in, i, &len) != NULL);
        }
        check_build(&provider_gemini, &prov_gem, in, o.n);
        check_build(&provider_ollama, &prov_oll, in, o.n);
    }
    arena_destroy(a);
    json_decref(in);
}

/* One answered embedding: its components (from floats or base64), count into *d. */
static double *components(const json_t *e, size_t *d)
{
    if (json_is_string(e)) {
        size_t len = json_string_length(e);
        unsigned char *raw = malloc(len + 4);
        int k = EVP_DecodeBlock(raw, (const unsigned char *)json_string_value(e), (int)len);
        FZ_CHECK(k >= 0 && len % 4 == 0);
        size_t pad = len >= 1 && json_string_value(e)[len - 1] == '=' ? 1 : 0;
        pad += len >= 2 && json_string_value(e)[len - 2] == '=' ? 1 : 0;
        size_t bytes = (size_t)k - pad;
        FZ_CHECK(bytes % 4 == 0);
        *d = bytes / 4;
        double *v = malloc((*d + 1) * sizeof *v);
        for (size_t i = 0; i < *d; i++) {
            float f;
            memcpy(&f, raw + 4 * i, 4);
            v[i] = f;
        }
        free(raw);
        return v;
    }
    FZ_CHECK(json_is_array(e));
    *d = json_array_size(e);
    double *v = malloc((*d + 1) * sizeof *v);
    for (size_t i = 0; i < *d; i++) {
        FZ_CHECK(json_is_number(json_array_get(e, i)));
        v[i] = json_number_value(json_array_get(e, i));
    }
    return v;
}

static void check_answer(const prov_ops_t *ops, cfg_provider_t *p, uint8_t flags, const uint8_t *d,
                         size_t n)
{
    static const int dims_of[4] = {0, 1, 3, 8};
    static const int status_of[4] = {200, 200, 400, 500};
    bool base64 = flags & 4, two = flags & 32;
    int dims = dims_of[(flags >> 3) & 3], status = status_of[(flags >> 6) & 3];
    cfg_model_t m = {.name = "pub", .provider = p, .upstream_model = "up", .capabilities = CAP_ALL};
    arena_t *a = arena_create(4096);
    json_t *req =
        json_pack("{s:o, s:s}", "input", two ? json_pack("[s, s]", "a", "b c") : json_string("a"),
                  "encoding_format", base64 ? "base64" : "float");
    if (dims) json_object_set_new(req, "dimensions", json_integer(dims));
    prov_call_t call = {0};
    FZ_CHECK(ops->build(a, EP_EMBEDDINGS, req, &m, false, &call) == 0);
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
            json_t *data = json_object_get(o, "data");
            FZ_CHECK(json_array_size(data) == (two ? 2u : 1u));
            size_t i;
            json_t *item;
            json_array_foreach(data, i, item)
            {
                FZ_CHECK(json_integer_value(json_object_get(item, "index")) == (json_int_t)i);
                json_t *e = json_object_get(item, "embedding");
                FZ_CHECK(base64 ? json_is_string(e) : json_is_array(e));
                size_t k;
                double *v = components(e, &k), norm = 0;
                FZ_CHECK(k >= 1 && (!dims || k == (size_t)dims));
                for (size_t j = 0; j < k; j++) norm += v[j] * v[j];
                if (dims && norm > 0 && isfinite(norm)) FZ_CHECK(fabs(sqrt(norm) - 1) < 1e-3);
                free(v);
            }
            FZ_CHECK(json_is_object(json_object_get(o, "usage")));
        }
        json_decref(o);
    }
    buf_free(&out);
    json_decref(req);
    arena_destroy(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int mode = data[0] & 3;
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    if (mode == 0)
        check_body(d, n);
    else if (mode == 1)
        check_answer(&provider_gemini, &prov_gem, data[0], d, n);
    else if (mode == 2)
        check_answer(&provider_ollama, &prov_oll, data[0], d, n);
    return 0;
}
