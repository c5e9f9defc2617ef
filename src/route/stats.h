/*
 * route stats — live statistics per deployment, read by the router.
 *
 * One route_stats_t exists per deployment id for the life of the process
 * (route_stats_get() creates it under a mutex on first use; the pointer never
 * moves), so config snapshots can point at it (cfg_model_t.rstats) and a
 * reload keeps what was learned. Writers are the workers' request paths
 * (route_stats_begin / route_stats_end); readers are the router on any
 * worker. Every field is an atomic: counters with relaxed adds, EWMAs stored
 * as the bits of a double and updated with a compare-and-swap loop, so no
 * lock is taken on the request path and a reader may see one request's
 * update half applied (harmless for a routing heuristic).
 *
 * EWMAs (all over completed requests, alpha ROUTE_EWMA_ALPHA = 0.3):
 *   lat_ms   whole-request latency           ttft_ms  time to first byte
 *   tps      completion tokens per second after the first byte
 *   success  1 for a success (status < 500 and not 429), 0 otherwise (alpha 0.1)
 *   peak_ms  "peak EWMA" (Finagle): jumps to a sample above it, decays towards
 *            samples below it with time constant ROUTE_PEAK_TAU_MS (10 s)
 * Requests started per minute and tokens per minute are two one-minute
 * buckets (current, previous) for the load threshold.
 */
#ifndef SKULD_ROUTE_STATS_H
#define SKULD_ROUTE_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"

#define ROUTE_EWMA_ALPHA 0.3
#define ROUTE_SUCCESS_ALPHA 0.1
#define ROUTE_PEAK_TAU_MS 10000.0
/* A deployment with fewer samples, or none for this long, counts as cold. */
#define ROUTE_COLD_SAMPLES 3
#define ROUTE_STALE_MS 60000

typedef struct route_stats {
    /* what the router reads for every candidate: one cache line */
    _Alignas(64) _Atomic uint64_t lat_ms, ttft_ms, tps, peak_ms, success; /* double bits */
    atomic_uint_fast64_t samples;
    _Atomic uint64_t last_ms; /* time of the last completed sample (monotonic ms) */
    atomic_int_fast64_t in_flight;
    /* the rest */
    _Atomic uint64_t peak_at_ms; /* time of the last peak update */
    char *id;
    struct route_stats *_Atomic next;
    _Atomic uint64_t minute; /* current one-minute bucket number */
    atomic_uint_fast64_t req_cur, req_prev, tok_cur, tok_prev;
} route_stats_t;

/* What the router reads: a plain copy of one deployment's state. */
typedef struct route_live {
    double lat_ms, ttft_ms, tps, peak_ms;
    double success; /* 0..1; 1 when cold */
    uint64_t samples;
    bool cold; /* fewer than ROUTE_COLD_SAMPLES samples, or stale */
    int64_t in_flight;
    double rpm, tpm;     /* requests / tokens over the last minute (interpolated) */
    bool healthy;        /* last health probe succeeded (true when never probed) */
    double health_ratio; /* successful probes / probes; 1 when never probed */
} route_live_t;

route_stats_t *route_stats_get(const char *id);
/* Attach stats to every deployment of a fresh snapshot (control thread). */
void route_stats_attach(config_t *cfg);
/* A request was sent to this deployment. */
void route_stats_begin(route_stats_t *s, uint64_t now_ms);
/* The request counted by route_stats_begin left this deployment (in-flight -1). */
void route_stats_leave(route_stats_t *s);
/* A completed request's sample: ok, its latency and time to first byte (ms; ttft < 0 unknown),
 * completion tokens (< 0 unknown) and total tokens (for tpm). */
void route_stats_end(route_stats_t *s, bool ok, double lat_ms, double ttft_ms, long out_tokens,
                     long total_tokens, uint64_t now_ms);
/* A plain copy for the router. m->rstats / m->stats may be NULL (cold, healthy). */
void route_stats_read(const cfg_model_t *m, uint64_t now_ms, route_live_t *out);
void route_stats_reset(route_stats_t *s); /* tests */
void route_stats_shutdown(void);

/* Monotonic milliseconds. */
uint64_t route_now_ms(void);

#endif
