/*
 * cache key — see key.h.
 */
#include "cache/key.h"

#include <stdio.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

static const char *const key_excluded[] = {"model", "stream", "stream_options", "user"};

static int key_dump_cb(const char *buffer, size_t size, void *data)
{
    return buf_append(data, buffer, size) == BUF_OK ? 0 : -1;
}

int cache_key_canonical(const json_t *body, buf_t *out)
{
    if (!json_is_object(body)) return -1;
    json_t *copy = json_copy((json_t *)body); /* shallow: the values are shared, not changed */
    if (!copy) return -1;
    for (size_t i = 0; i < sizeof key_excluded / sizeof key_excluded[0]; i++)
        json_object_del(copy, key_excluded[i]);
    int rc = json_dump_callback(copy, key_dump_cb, out,
                                JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY |
                                    JSON_REAL_PRECISION(17));
    json_decref(copy);
    return rc;
}

static void key_str(XXH3_state_t *st, const char *s)
{
    if (s) XXH3_128bits_update(st, s, strlen(s));
    XXH3_128bits_update(st, "", 1); /* separator: "ab"+"c" != "a"+"bc" */
}

int cache_key_make(const cache_key_in_t *in, const json_t *body, cache_key_t *out)
{
    buf_t canon;
    buf_init(&canon, 0);
    if (cache_key_canonical(body, &canon) != 0) {
        buf_free(&canon);
        return -1;
    }
    XXH3_state_t st;
    memset(&st, 0, sizeof st);
    XXH3_128bits_reset(&st);
    key_str(&st, "skuld-cache-v1");
    unsigned char kind[3] = {(unsigned char)in->endpoint, (unsigned char)in->shape,
                             (unsigned char)in->mode};
    XXH3_128bits_update(&st, kind, sizeof kind);
    key_str(&st, in->model);
    /* Order-insensitive: a sum and an xor of each deployment's own hash. */
    uint64_t sum = 0, x = 0;
    for (size_t i = 0; i < in->n_deps; i++) {
        const cfg_model_t *d = in->deps[i];
        XXH3_state_t ds;
        memset(&ds, 0, sizeof ds);
        XXH3_128bits_reset(&ds);
        key_str(&ds, d->provider ? d->provider->type : NULL);
        key_str(&ds, d->provider ? d->provider->base_url : NULL);
        key_str(&ds, d->upstream_model);
        key_str(&ds, d->path);
        uint64_t h = XXH3_128bits_digest(&ds).low64;
        sum += h;
        x ^= h;
    }
    uint64_t fp[3] = {in->n_deps, sum, x};
    XXH3_128bits_update(&st, fp, sizeof fp);
    XXH3_128bits_update(&st, buf_data(&canon), canon.len);
    XXH128_hash_t h = XXH3_128bits_digest(&st);
    out->hi = h.high64;
    out->lo = h.low64;
    buf_free(&canon);
    return 0;
}

void cache_key_hex(cache_key_t k, char out[33])
{
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)k.hi, (unsigned long long)k.lo);
}

bool cache_key_cacheable(const json_t *body, bool cache_sampled)
{
    if (cache_sampled) return true;
    json_t *t = json_object_get(body, "temperature");
    if (!t || json_is_null(t)) return true;
    if (!json_is_number(t)) return false; /* malformed: leave it to the upstream, uncached */
    return json_number_value(t) <= 0.0;
}
