/*
 * cache — exact response cache and in-flight de-duplication.
 *
 * Owns: the memory tier (cache/lru.h, one for the process, shared by every
 * worker), the flight table (identical requests in progress and, for
 * cache.dedupe.window after they finish, their results), the Redis tier
 * (cache/redis.h, one async connection per worker loop) and the persistent
 * tier (a table in the store: written through the store's writer thread,
 * read once at start-up into the memory tier, so no read ever blocks a
 * worker loop).
 *
 * Request path (the cache stage, after admission, before the call):
 *
 *   x-skuld-cache request header (no-cache | no-store | ttl=SECONDS, comma
 *   separated) -> eligibility (temperature rule, cache/key.h) -> key
 *   -> memory tier hit? replay
 *   -> flight for this key? running: join it; finished < window ago: replay
 *      its result; else lead a new flight
 *   -> Redis tier (leader only, bounded by redis.timeout) hit? replay, and the
 *      flight finishes with that answer
 *   -> api_relay_start as the leader with an http tap (req->tap) that records
 *      every byte the client is sent into the flight: joiners get the frames
 *      so far at once and the next ones as they come (posted to their own
 *      loop with loopcall), and a complete 2xx answer is stored in the tiers.
 *
 * Response header x-skuld-cache: hit (a stored answer, a joined flight or a
 * window result), miss (looked up, this request called the upstream), bypass
 * (not looked up: no-cache, a sampled request, or not keyable).
 * x-skuld-cache-source says which: memory, redis, store, flight, window.
 *
 * Leader disconnect: the call stage cancels its upstream call when its
 * client leaves (it owns that call and it dies with the request). The flight
 * is then "orphaned": a joiner that has not received anything yet (every
 * non-streamed joiner, and stream joiners before the first byte) dispatches
 * itself again — the first becomes the new leader, the others join it — so
 * a leader leaving never fails them; a stream joiner that already received
 * part of the stream gets an SSE error event (it cannot be resumed).
 *
 * Threads: cache_init / cache_shutdown on the main thread before workers
 * start / after they stop; everything else on worker loops. The memory tier
 * and the flight table use mutexes (per shard, per flight); a flight's
 * joiners are touched by their own worker except the list membership and
 * the pump flag, which are under the flight's mutex.
 */
#ifndef SKULD_CACHE_H
#define SKULD_CACHE_H

#include <jansson.h>
#include <stdbool.h>

#include "config/config.h"
#include "core/buf.h"
#include "pipeline/pipeline.h"

struct store;

/* Process start (after the store is open, before workers): sizes the memory
 * tier from cfg->cache (max_bytes and shards are read once, defaults when the
 * section is absent) and loads the persistent tier when enabled. Every other
 * key is read from each request's snapshot, so a reload can turn the cache
 * on, off or change it. */
void cache_init(const config_t *cfg, struct store *store);
void cache_shutdown(void);

/* The cache stage (PL_STAGE_CACHE): a stored answer (PL_DONE), a joined
 * flight (PL_AGAIN until its answer is delivered), or on to the call
 * (PL_NEXT) as the leader recording its answer. */
extern const pl_stage_t cache_stage;

/* POST /admin/cache/purge (already authenticated). */
pl_rc_t cache_admin_purge(pl_req_t *r);

/* Prometheus lines for skuld_cache_* and skuld_dedupe_*. */
void cache_metrics_render(buf_t *out);

#endif
