/*
 * cache redis — the Redis tier of the response cache, over the worker's
 * Redis connection (core/redis.h owns the connection: lazy connect, AUTH and
 * SELECT, reconnects, the bound on commands behind a stalled server).
 *
 * Nothing waits on Redis: a GET has its own timer of redis.timeout; when it
 * fires the caller is answered "error" at once (the gateway then proceeds as
 * on a miss). Keys are "skuld:cache:<32 hex>", values the entry blob
 * (cache/lru.h), written with SET ... PX ttl (fire and forget). A purge is
 * SCAN + UNLINK, one step after the other, on the connection it started on.
 */
#ifndef SKULD_CACHE_REDIS_H
#define SKULD_CACHE_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "cache/lru.h"
#include "config/config.h"

struct event_base;

/* rc: 1 hit (val/len valid during the call), 0 miss, -1 error or timeout. */
typedef void (*cache_redis_get_fn)(void *ud, int rc, const char *val, size_t len);

/* 0: fn will be called later on this loop; -1: Redis unusable right now (fn
 * is not called). */
int cache_redis_get(struct event_base *base, int wid, const cfg_redis_t *rc, cache_key_t key,
                    cache_redis_get_fn fn, void *ud);
void cache_redis_set(struct event_base *base, int wid, const cfg_redis_t *rc, cache_key_t key,
                     const void *val, size_t len, uint64_t ttl_ms);
/* Delete every skuld:cache:* key (SCAN + UNLINK, asynchronously). 0 if started. */
int cache_redis_purge(struct event_base *base, int wid, const cfg_redis_t *rc);

/* Failures (timeouts, errors, Redis unavailable), for metrics. */
uint64_t cache_redis_errors(void);

#endif
