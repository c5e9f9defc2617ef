/*
 * metrics — process-wide counters rendered in Prometheus text format.
 *
 * A series set exists per (model, provider) pair: the public deployment name
 * and its provider, or ("", "") for requests that never resolved a model.
 * metrics_series_get() creates it on first use under a mutex and returns a
 * pointer that stays valid for the life of the process, so config snapshots
 * and requests can hold it without reference counting. Every counter is a
 * relaxed atomic: workers update without locks, the scrape reads without
 * stopping them (a scrape may see one request's counters half-updated, which
 * Prometheus tolerates). Names are prefixed skuld_ (DESIGN.md).
 */
#ifndef SKULD_METRICS_H
#define SKULD_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"

#define METRICS_LATENCY_BUCKETS 16

typedef enum {
    UPERR_CONNECT = 0, /* refused / unreachable */
    UPERR_TIMEOUT,
    UPERR_PROTOCOL, /* dropped, malformed, stream cut */
    UPERR_STATUS,   /* upstream answered >= 400 */
    UPERR__COUNT
} metrics_uperr_t;

typedef struct metrics_series {
    char *model;
    char *provider;
    struct metrics_series *_Atomic next;          /* published with release, read with acquire */
    atomic_uint_fast64_t requests_by_status[600]; /* index = HTTP status */
    atomic_uint_fast64_t latency_buckets[METRICS_LATENCY_BUCKETS + 1];
    atomic_uint_fast64_t latency_sum_us;
    atomic_uint_fast64_t latency_count;
    atomic_int_fast64_t in_flight;
    atomic_uint_fast64_t upstream_requests;
    atomic_uint_fast64_t upstream_errors[UPERR__COUNT];
    atomic_uint_fast64_t tokens_prompt;
    atomic_uint_fast64_t tokens_completion;
    atomic_uint_fast64_t stream_errors; /* streams that ended with an error event */
    atomic_uint_fast64_t tokens_cached; /* of tokens_prompt, served from a prompt cache */
    atomic_uint_fast64_t cost_nusd;     /* spend in 1e-9 USD (policy/cost.h) */
    /* deployment health, from the health checker */
    atomic_uint_fast64_t health_probes;
    atomic_uint_fast64_t health_successes;
    atomic_int_fast64_t health_last_ms; /* wall clock of the last probe; 0 = never */
    atomic_bool health_up;              /* last probe succeeded (true until a probe fails) */
    /* resilience (route/breaker.c, api/relay.c) */
    atomic_int breaker_state;            /* 0 closed, 1 open, 2 half-open */
    atomic_uint_fast64_t breaker_opens;  /* times the breaker opened */
    atomic_uint_fast64_t retries;        /* attempts after the first (retries and fallbacks) */
    atomic_uint_fast64_t hedges;         /* hedged attempts started */
    atomic_uint_fast64_t queue_rejected; /* 429s from queue overflow or timeout */
    atomic_int_fast64_t queue_waiting;   /* requests waiting in a queue now */
} metrics_series_t;

metrics_series_t *metrics_series_get(const char *model, const char *provider);

void metrics_request_begin(metrics_series_t *s);
void metrics_request_end(metrics_series_t *s, int status, uint64_t duration_ns);
void metrics_upstream_error(metrics_series_t *s, metrics_uperr_t kind);
void metrics_tokens(metrics_series_t *s, uint64_t prompt, uint64_t completion);
/* One request's cost in USD and its cached prompt tokens. */
void metrics_cost(metrics_series_t *s, double usd, uint64_t cached_tokens);

/* Config snapshot generation (gauge) and reload outcomes (counters). */
void metrics_config_generation(uint64_t gen);
void metrics_config_reload(bool ok);

/* Whole exposition, appended to out. */
void metrics_render(buf_t *out);
/* Free every series (at exit, for leak checkers). */
void metrics_shutdown(void);

#endif
