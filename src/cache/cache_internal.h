/*
 * cache internals shared by cache.c (the stage: lookup, replay, joiners,
 * the leader's recording), flights.c (the table of flights in progress and
 * in their de-dup window) and lifecycle.c (start, shutdown, purge, metrics).
 *
 * cache__g is the process-wide state: the memory tier, the flight table
 * (FL_SHARDS shards, each under its mutex) and the counters (atomics).
 * A flight's fields are under its own mutex (f->mu) except those only its
 * leader writes before it finishes; a joiner is touched by its own worker
 * except its list membership and pump flag (flight mutex).
 */
#ifndef SKULD_CACHE_INTERNAL_H
#define SKULD_CACHE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "cache/cache.h"
#include "cache/key.h"
#include "cache/lru.h"
#include "pipeline/pipeline.h"
#include "store/store.h"

enum { SRC_MEMORY = 0, SRC_REDIS, SRC_STORE, SRC_FLIGHT, SRC_WINDOW, SRC_N };
extern const char *const cache__src_name[SRC_N];

#define FL_SHARDS 64
#define FL_BUCKETS 1024

typedef struct cache_flight cache_flight_t;

typedef struct fl__shard {
    pthread_mutex_t mu;
    cache_flight_t *tab[FL_BUCKETS];
    cache_flight_t *qhead, *qtail; /* finished flights serving their window, oldest first */
} fl_shard_t;

typedef struct cache_state {
    bool on;
    cache_lru_t *mem;
    store_t *store;
    fl_shard_t fl[FL_SHARDS];
    atomic_uint_fast64_t hits[SRC_N];
    atomic_uint_fast64_t miss_memory, miss_redis, bypass, stores[CACHE_TIER_N];
    atomic_uint_fast64_t store_loaded, joined, rejected, orphaned, saved_calls;
    atomic_uint_fast64_t saved_nanousd;
} cache_state_t;
extern cache_state_t cache__g;

static inline void cache__cnt(atomic_uint_fast64_t *a)
{
    atomic_fetch_add_explicit(a, 1, memory_order_relaxed);
}

/* ---------- flights ---------- */

enum { F_RUNNING = 0, F_DONE, F_FAILED, F_ORPHANED };

typedef struct cache_joiner cache_joiner_t;

struct cache_flight {
    cache_flight_t *hnext, *qnext; /* table chain, window queue (shard lock) */
    cache_key_t key;
    bool in_table; /* shard lock */
    int64_t until_ms;
    atomic_int refs;
    pthread_mutex_t mu;
    int state;
    int shape;
    bool stream_started, overflow;
    int status;
    char ctype[256];
    size_t max_entry; /* cache.max_entry_bytes when the flight started */
    size_t charged;   /* bytes charged to the memory tier's cap for the window */
    buf_t hdrs;       /* "Name: value\r\n" to replay */
    buf_t frames;     /* (u32 len | bytes)* as in the entry blob */
    long ptok, ctok, cached;
    cache_joiner_t *joiners;
    size_t n_joiners;
};

struct cache_joiner {
    cache_joiner_t *next; /* flight->joiners (flight lock) */
    cache_flight_t *f;
    pl_req_t *c; /* NULL once the client left (own thread) */
    struct event_base *base;
    atomic_int refs;
    bool pump_pending; /* flight lock */
    bool started;      /* own thread */
    size_t sent;       /* bytes of f->frames delivered (own thread) */
    int src;           /* SRC_FLIGHT or SRC_WINDOW */
};

/* flights.c */
cache_flight_t *fl__new(cache_key_t key, int shape, size_t max, size_t max_entry);
void fl__unref(cache_flight_t *f);
fl_shard_t *fl__shard(cache_key_t k);
size_t fl__bucket(cache_key_t k);
void fl__unlink_locked(fl_shard_t *s, cache_flight_t *f, cache_flight_t **drop);
cache_flight_t *fl__expire_locked(fl_shard_t *s, int64_t now);
void fl__drop_chain(cache_flight_t *f);
cache_flight_t *fl__find_locked(fl_shard_t *s, cache_key_t k);
void fl__remove(cache_flight_t *f);
void fl__retire(cache_flight_t *f);
/* Flight lock held, its answer complete: fit its buffers and charge them to
 * the memory tier's cap for the window; false when they do not fit. */
bool fl__charge(cache_flight_t *f);

#endif
