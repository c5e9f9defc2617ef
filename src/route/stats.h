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
 *   ms_per_tok  milliseconds per completion token after the first byte
 *            (1000 / tokens per second; kept as a cost so the router multiplies)
 *   success  1 for a success (status < 500 and not 429), 0 otherwise (alpha 0.1,
 *            from a prior of 1)
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

#include <math.h>
#include <string.h>

#include "config/config.h"
#include "obs/metrics.h"

#define ROUTE_EWMA_ALPHA 0.3
#define ROUTE_SUCCESS_ALPHA 0.1
#define ROUTE_PEAK_TAU_MS 10000.0
/* A deployment with fewer samples, or none for this long, counts as cold. */
#define ROUTE_COLD_SAMPLES 3
#define ROUTE_STALE_MS 60000

#define ROUTE_OUT_BUCKETS 96     /* 4 per power of two: up to 2^24 tokens */
#define ROUTE_OUT_HALF_LIFE 4096 /* samples between halvings of the histogram */
#define ROUTE_OUT_MIN_SAMPLES 20 /* fewer: no quantile (route_stats_out_p99 = 0) */

typedef struct route_stats {
    /* what the router reads for every candidate: one cache line */
    _Alignas(64) _Atomic uint64_t lat_ms; /* double bits, like the next four */
    _Atomic uint64_t ttft_ms, ms_per_tok, peak_ms, success;
    atomic_uint_fast64_t samples;
    _Atomic uint64_t warm_until_ms; /* last sample + ROUTE_STALE_MS once warm; 0 = cold */
    atomic_int_fast64_t in_flight;
    /* the rest */
    _Atomic uint64_t peak_at_ms; /* time of the last peak update */
    char *id;
    struct route_stats *_Atomic next;
    _Atomic uint64_t minute; /* current one-minute bucket number */
    atomic_uint_fast64_t req_cur, req_prev, tok_cur, tok_prev;
    /* output tokens of successful answers: log buckets, 4 per power of two
     * (bucket k holds counts up to 2^((k+1)/4)), halved every
     * ROUTE_OUT_HALF_LIFE samples so the quantile follows recent traffic */
    _Atomic uint32_t out_hist[ROUTE_OUT_BUCKETS];
    _Atomic uint32_t out_n;
    atomic_flag out_halving;
} route_stats_t;

/* What the router reads: a plain copy of one deployment's state. */
typedef struct route_live {
    double lat_ms, ttft_ms, ms_per_tok, peak_ms; /* ms_per_tok: 1000 / tokens per second */
    double success;                              /* 0..1; 1 when cold */
    uint64_t samples;
    bool cold; /* fewer than ROUTE_COLD_SAMPLES samples, or stale */
    int64_t in_flight;
    double rpm, tpm;     /* requests / tokens over the last minute (interpolated) */
    bool healthy;        /* last health probe succeeded (true when never probed) */
    double health_ratio; /* successful probes / probes; 1 when never probed */
} route_live_t;

route_stats_t *route_stats_get(const char *id);
/* Attach stats to every deployment of a fresh snapshot and prepare its routes
 * (route_prepare), before the snapshot is published (control thread). */
void route_stats_attach(config_t *cfg);
/* A request was sent to this deployment. */
void route_stats_begin(route_stats_t *s, uint64_t now_ms);
/* The request counted by route_stats_begin left this deployment (in-flight -1). */
void route_stats_leave(route_stats_t *s);
/* A completed request's sample: ok, its latency and time to first byte (ms; ttft < 0 unknown),
 * completion tokens (< 0 unknown) and total tokens (for tpm). */
void route_stats_end(route_stats_t *s, bool ok, double lat_ms, double ttft_ms, long out_tokens,
                     long total_tokens, uint64_t now_ms);
/* The 99th percentile of the output tokens of this deployment's successful
 * answers (an upper bound: the top of its bucket); 0 with too few samples. */
long route_stats_out_p99(route_stats_t *s);
/* A plain copy for the router. m->rstats / m->stats may be NULL (cold, healthy). */
void route_stats_read(const cfg_model_t *m, uint64_t now_ms, route_live_t *out);

void route_stats_reset(route_stats_t *s); /* tests */
void route_stats_shutdown(void);

/* Bumped by every route_stats_end(): "did any live stats change?" (selection cache). */
uint64_t route_stats_epoch(void);
/* Monotonic milliseconds. */
uint64_t route_now_ms(void);

/* ---- inline reader: the router calls it once per candidate per selection ---- */
void route_stats__rates(route_stats_t *s, uint64_t now_ms, route_live_t *o);

static inline double route_stats__load(_Atomic uint64_t *a)
{
    uint64_t u = atomic_load_explicit(a, memory_order_relaxed);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* A plain copy from the two records; rates: also requests/tokens per minute. */
static inline void route_stats_read_from(route_stats_t *s, const metrics_series_t *ms, bool rates,
                                         uint64_t now_ms, route_live_t *o)
{
    o->rpm = o->tpm = 0;
    o->in_flight = 0;
    o->samples = 0;
    o->success = 1;
    o->healthy = true;
    o->health_ratio = 1;
    o->cold = true;
    o->lat_ms = o->ttft_ms = o->ms_per_tok = o->peak_ms = NAN;
    if (s) {
        o->lat_ms = route_stats__load(&s->lat_ms);
        o->ttft_ms = route_stats__load(&s->ttft_ms);
        o->ms_per_tok = route_stats__load(&s->ms_per_tok);
        o->peak_ms = route_stats__load(&s->peak_ms);
        o->success = route_stats__load(&s->success);
        o->samples = atomic_load_explicit(&s->samples, memory_order_relaxed);
        o->cold = now_ms >= atomic_load_explicit(&s->warm_until_ms, memory_order_relaxed);
        int64_t inf = atomic_load_explicit(&s->in_flight, memory_order_relaxed);
        o->in_flight = inf > 0 ? inf : 0;
        if (rates) route_stats__rates(s, now_ms, o);
    }
    if (ms) {
        uint64_t probes = atomic_load_explicit(&ms->health_probes, memory_order_relaxed);
        if (probes) {
            uint64_t okp = atomic_load_explicit(&ms->health_successes, memory_order_relaxed);
            o->healthy = atomic_load_explicit(&ms->health_up, memory_order_relaxed);
            o->health_ratio = okp >= probes ? 1.0 : (double)okp / (double)probes;
        }
    }
}

#endif
