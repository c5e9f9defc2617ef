/*
 * fuzz_cache_key — the response-cache key normaliser (src/cache/key.h).
 *
 * Feeds: any bytes; those jansson parses (any JSON value) are request
 * bodies for cache_key_canonical(), cache_key_make() and
 * cache_key_cacheable().
 *
 * Checks, beyond "no crash" (ASan/UBSan, leaks):
 * - the canonical form is JSON that jansson reads back, holds no top-level
 *   "model", "stream", "stream_options" or "user" of an object body, and is
 *   a fixed point: canonicalising its parse gives the same bytes;
 * - the key is a function of the canonical form: the body and the parse of
 *   its canonical form (keys reordered, fields dropped) get the same key,
 *   twice in a row, and its hex form is 32 lowercase hex digits;
 * - the temperature rule: with cache_sampled set, every body is cacheable.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cache/key.h"
#include "core/buf.h"
#include "fuzz_common.h"

static bool same_key(cache_key_t a, cache_key_t b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *body = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!body) return 0;
    buf_t c1, c2;
    buf_init(&c1, 0);
    buf_init(&c2, 0);
    if (cache_key_canonical(body, &c1) == 0) {
        json_error_t e;
        json_t *again = json_loadb(buf_data(&c1), c1.len, JSON_DECODE_ANY, &e);
        if (!again) fprintf(stderr, "canonical '%s' does not parse: %s\n", buf_data(&c1), e.text);
        FZ_CHECK(again != NULL);
        if (json_is_object(body)) {
            FZ_CHECK(json_is_object(again));
            FZ_CHECK(!json_object_get(again, "model") && !json_object_get(again, "stream") &&
                     !json_object_get(again, "stream_options") && !json_object_get(again, "user"));
        }
        FZ_CHECK(cache_key_canonical(again, &c2) == 0);
        FZ_CHECK(c1.len == c2.len && memcmp(buf_data(&c1), buf_data(&c2), c1.len) == 0);

        cache_key_in_t in = {.endpoint = 0, .shape = 0, .mode = CACHE_MODE_STREAM, .model = "m"};
        cache_key_t k1, k2, k3;
        FZ_CHECK(cache_key_make(&in, body, &k1) == 0);
        FZ_CHECK(cache_key_make(&in, body, &k2) == 0);
        FZ_CHECK(cache_key_make(&in, again, &k3) == 0);
        FZ_CHECK(same_key(k1, k2) && same_key(k1, k3));
        char hex[33];
        cache_key_hex(k1, hex);
        FZ_CHECK(strlen(hex) == 32 && strspn(hex, "0123456789abcdef") == 32);
        json_decref(again);
    }
    FZ_CHECK(cache_key_cacheable(body, true));
    (void)cache_key_cacheable(body, false);
    buf_free(&c1);
    buf_free(&c2);
    json_decref(body);
    return 0;
}
