/*
 * cache lru — the in-memory tier of the response cache, and the entry format
 * every tier shares.
 *
 * An entry is one immutable, reference-counted malloc block: a small header
 * (key, expiry, origin tier) followed by the answer as a blob. The blob is
 * also exactly what the Redis tier stores and what the persistent tier keeps
 * (base64), so moving an entry between tiers is a copy of bytes:
 *
 *   "SKC1" | u16 status | u8 stream | u8 ctype_len | ctype
 *          | i64 prompt_tokens | i64 completion_tokens | i64 cached_tokens
 *          | u32 hdrs_len | hdrs ("Name: value\r\n" lines to replay)
 *          | frames: (u32 len | bytes)*  -- one per write the client got
 *
 * A non-streamed answer is one frame (the body); a stream is one frame per
 * SSE event exactly as the client received it, so a replay keeps the chunk
 * shape. cache_blob_parse() validates every length, a 2xx status, a content
 * type and header lines that hold no CR, LF or NUL but their own line ends
 * (Redis and the store are outside the process: a tampered value must not
 * inject headers into a replay).
 *
 * The LRU is sharded by key; each shard has its own mutex, hash table, LRU
 * list, byte count and cap (max_bytes / shards). The byte count covers the
 * entries and what other holders charge to it (cache_lru_charge: the
 * de-duplication window's answers), so the cap bounds every copy. Any thread may call any
 * function. cache_lru_get() returns a reference (the caller unrefs), so an
 * entry evicted or purged while it is being replayed stays valid. Expired
 * entries are dropped when met (get) and from the LRU tail (put). Time is
 * passed in (wall-clock milliseconds) so tests drive it.
 */
#ifndef SKULD_CACHE_LRU_H
#define SKULD_CACHE_LRU_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct cache_key {
    uint64_t hi, lo;
} cache_key_t;

/* Where an entry came from (also the metrics label of a hit on it). */
enum { CACHE_TIER_MEMORY = 0, CACHE_TIER_REDIS, CACHE_TIER_STORE, CACHE_TIER_N };

typedef struct cache_entry {
    struct cache_entry *hnext;       /* hash chain (shard lock) */
    struct cache_entry *prev, *next; /* LRU list, most recent first (shard lock) */
    cache_key_t key;
    int64_t expires_ms; /* wall clock */
    atomic_int refs;
    int origin; /* CACHE_TIER_* */
    bool linked;
    size_t len; /* of blob */
    unsigned char blob[];
} cache_entry_t;

/* A parsed view of a blob (pointers into it). */
typedef struct cache_view {
    int status;
    bool stream;
    char ctype[256];
    long prompt_tokens, completion_tokens, cached_tokens;
    const char *hdrs;
    size_t hdrs_len;
    const unsigned char *frames; /* (u32 len | bytes)* */
    size_t frames_len;
} cache_view_t;

/* Append the blob head (everything before the frames) to out. */
void cache_blob_head(buf_t *out, int status, bool stream, const char *ctype, long ptok, long ctok,
                     long cached, const char *hdrs, size_t hdrs_len);
/* Append one frame. */
void cache_blob_frame(buf_t *out, const void *data, size_t len);
/* 0, or -1 for a malformed blob. */
int cache_blob_parse(const void *blob, size_t len, cache_view_t *v);
/* Iterate frames: *pos starts at 0; returns false at the end (or a bad length). */
bool cache_view_next(const cache_view_t *v, size_t *pos, const char **data, size_t *len);

cache_entry_t *cache_entry_new(cache_key_t key, int64_t expires_ms, int origin, const void *blob,
                               size_t len);
cache_entry_t *cache_entry_ref(cache_entry_t *e);
void cache_entry_unref(cache_entry_t *e);
/* Bytes an entry counts against the cap. */
size_t cache_entry_cost(const cache_entry_t *e);

typedef struct cache_lru cache_lru_t;

typedef struct cache_lru_stats {
    uint64_t bytes, entries, evictions, expirations;
} cache_lru_stats_t;

cache_lru_t *cache_lru_new(size_t max_bytes, unsigned shards);
void cache_lru_free(cache_lru_t *l);
/* A reference to the live entry for key, or NULL (absent or expired). */
cache_entry_t *cache_lru_get(cache_lru_t *l, cache_key_t key, int64_t now_ms);
/* Insert (replacing any entry with the same key); takes over the caller's
 * reference. An entry larger than a shard's cap is dropped. Evicts least
 * recently used entries until the shard fits. */
void cache_lru_put(cache_lru_t *l, cache_entry_t *e, int64_t now_ms);
/* Remove every entry; returns how many. */
size_t cache_lru_purge(cache_lru_t *l);
/* Bytes held elsewhere on behalf of the cache (a de-dup window's answer)
 * count against the same cap: the shard of key evicts to make room. false
 * when they cannot fit (nothing charged). Uncharge gives them back. */
bool cache_lru_charge(cache_lru_t *l, cache_key_t key, size_t bytes, int64_t now_ms);
void cache_lru_uncharge(cache_lru_t *l, cache_key_t key, size_t bytes);
void cache_lru_stats(cache_lru_t *l, cache_lru_stats_t *out);

#endif
