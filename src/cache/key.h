/*
 * cache key — the identity of a request for the response cache and for
 * in-flight de-duplication: a 128-bit XXH3 hash of
 *
 *   version | endpoint | client shape (OpenAI / Anthropic) | answer mode
 *   (stream, stream + usage chunk, or whole) | the name the client asked
 *   for (model or route) | candidates fingerprint | canonical JSON of the body
 *
 * The canonical JSON is the request body with keys sorted at every level,
 * compact, without the fields that do not change the answer: "model" (the
 * resolved public name is hashed instead), "stream", "stream_options",
 * "user". Stream and non-stream requests have distinct keys through the
 * mode (a cache entry holds the client-facing bytes of one mode).
 *
 * The candidates fingerprint hashes what decides who answers: for each
 * deployment the request may go to (the router's candidates and fallbacks),
 * its provider type and base URL, its upstream model id and GGUF path,
 * combined so that their order does not matter (a route's ranking changes
 * with live stats; its answer set does not). Changing any of them in the
 * config (and reloading) makes every old key unreachable: that is the
 * invalidation on model change.
 *
 * Pure functions, any thread.
 */
#ifndef SKULD_CACHE_KEY_H
#define SKULD_CACHE_KEY_H

#include <jansson.h>
#include <stdbool.h>

#include "cache/lru.h"
#include "config/config.h"
#include "core/buf.h"

enum { CACHE_MODE_WHOLE = 0, CACHE_MODE_STREAM, CACHE_MODE_STREAM_USAGE };

/* Canonical JSON of body into out (appended); -1 when it cannot be dumped. */
int cache_key_canonical(const json_t *body, buf_t *out);

typedef struct cache_key_in {
    int endpoint;                   /* endpoint_t */
    int shape;                      /* API_SHAPE_* */
    int mode;                       /* CACHE_MODE_* */
    const char *model;              /* the name asked for: a model or a route */
    const cfg_model_t *const *deps; /* candidate deployments, any order; may be NULL */
    size_t n_deps;
} cache_key_in_t;

/* 0, or -1 when the body cannot be canonicalised. */
int cache_key_make(const cache_key_in_t *in, const json_t *body, cache_key_t *out);

/* 32 lowercase hex digits + NUL. */
void cache_key_hex(cache_key_t k, char out[33]);

/* The temperature rule: a request that asks for sampling (a numeric
 * "temperature" > 0) is cacheable only when cache_sampled is set. A request
 * without "temperature" is cacheable. */
bool cache_key_cacheable(const json_t *body, bool cache_sampled);

#endif
