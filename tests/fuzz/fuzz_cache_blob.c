/*
 * fuzz_cache_blob — the cache entry format (src/cache/lru.h) as read back
 * from the Redis tier and the persistent tier: bytes from outside the
 * process, which cache_blob_parse() must validate before a hit is replayed.
 *
 * Feeds: any bytes, as a stored blob.
 *
 * Checks, beyond "no crash" (ASan/UBSan, leaks):
 * - a blob that parses has a 2xx status, a content type without CR, LF or
 *   NUL, header lines "Name: value\r\n" with no other CR or LF, headers and
 *   frames that lie inside the blob, and frames that iterate to the end of
 *   the frame area, each inside it (a tampered Redis value cannot inject a
 *   header into a replay);
 * - re-encoding the view (cache_blob_head + cache_blob_frame) gives a blob
 *   that parses to the same view with the same frames (the writer and the
 *   reader agree), and cache_entry_new copies it whole.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cache/lru.h"
#include "core/buf.h"
#include "fuzz_common.h"

static bool inside(const void *p, size_t n, const uint8_t *base, size_t len)
{
    const uint8_t *q = p;
    return n == 0 || (q >= base && q + n <= base + len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cache_view_t v;
    if (cache_blob_parse(data, size, &v) != 0) return 0;
    FZ_CHECK(v.status >= 200 && v.status <= 299);
    FZ_CHECK(memchr(v.ctype, '\0', sizeof v.ctype) != NULL);
    FZ_CHECK(!strpbrk(v.ctype, "\r\n"));
    for (size_t i = 0; i < v.hdrs_len; i++) { /* CR only before LF, LF only after CR */
        if (v.hdrs[i] == '\r') FZ_CHECK(i + 1 < v.hdrs_len && v.hdrs[i + 1] == '\n');
        if (v.hdrs[i] == '\n') FZ_CHECK(i > 0 && v.hdrs[i - 1] == '\r');
        FZ_CHECK(v.hdrs[i] != '\0');
    }
    FZ_CHECK(v.hdrs_len == 0 || v.hdrs[v.hdrs_len - 1] == '\n');
    FZ_CHECK(inside(v.hdrs, v.hdrs_len, data, size));
    FZ_CHECK(inside(v.frames, v.frames_len, data, size));
    buf_t again;
    buf_init(&again, 0);
    cache_blob_head(&again, v.status, v.stream, v.ctype, v.prompt_tokens, v.completion_tokens,
                    v.cached_tokens, v.hdrs, v.hdrs_len);
    size_t pos = 0, n = 0, count = 0;
    const char *d = NULL;
    while (cache_view_next(&v, &pos, &d, &n)) {
        FZ_CHECK(inside(d, n, v.frames, v.frames_len));
        cache_blob_frame(&again, d, n);
        count++;
    }
    cache_view_t w;
    FZ_CHECK(cache_blob_parse(buf_data(&again), again.len, &w) == 0);
    FZ_CHECK(w.status == v.status && w.stream == v.stream && !strcmp(w.ctype, v.ctype));
    FZ_CHECK(w.prompt_tokens == v.prompt_tokens && w.completion_tokens == v.completion_tokens &&
             w.cached_tokens == v.cached_tokens);
    FZ_CHECK(w.hdrs_len == v.hdrs_len && !memcmp(w.hdrs, v.hdrs, v.hdrs_len));
    size_t p1 = 0, p2 = 0, n1 = 0, n2 = 0, count2 = 0;
    const char *d1 = NULL, *d2 = NULL;
    while (cache_view_next(&w, &p2, &d2, &n2)) {
        FZ_CHECK(cache_view_next(&v, &p1, &d1, &n1));
        FZ_CHECK(n1 == n2 && !memcmp(d1, d2, n1));
        count2++;
    }
    FZ_CHECK(count2 == count);
    cache_key_t key = {1, 2};
    cache_entry_t *e = cache_entry_new(key, 0, CACHE_TIER_REDIS, buf_data(&again), again.len);
    if (e) {
        FZ_CHECK(e->len == again.len && !memcmp(e->blob, buf_data(&again), again.len));
        cache_entry_unref(e);
    }
    buf_free(&again);
    return 0;
}
