/*
 * breaker — per-deployment circuit breaker and the process-wide state of a
 * deployment that outlives config snapshots (resil_dep_t).
 *
 * Owns: one resil_dep_t per (model name, provider), created on first use by
 * resil_dep_get() under a global mutex and never freed before exit, so config
 * snapshots (cfg_model_t.dep) and requests hold plain pointers. Shared by all
 * workers: the breaker is guarded by its own small mutex (a few integer
 * updates per attempt); the published state, the attempts in flight and the
 * latency ring are read lock-free or under their own lock.
 *
 * State machine (Envoy outlier detection, simplified):
 *   CLOSED    attempts flow; a failure bumps the consecutive count and the
 *             failure-rate window (buckets over window_ms). It opens at
 *             `failures` consecutive failures, or when the window holds at
 *             least min_requests outcomes and failures/total >= rate.
 *   OPEN      no attempts until open_until; ejection time = eject_ms *
 *             2^(ejections-1), capped at max_eject_ms. After a deployment has
 *             stayed closed for max_eject_ms the ejection count starts over.
 *   HALF_OPEN after open_until one attempt (the probe) goes through; its
 *             success closes the breaker, its failure opens it again with a
 *             longer ejection. A probe abandoned (client left, hedge loser)
 *             lets the next request probe.
 * Only what the caller reports counts: the gateway's own 429/503 (queue full,
 * all candidates ejected) are never reported; stream failures are.
 */
#ifndef SKULD_ROUTE_BREAKER_H
#define SKULD_ROUTE_BREAKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"

typedef enum { BRK_CLOSED = 0, BRK_OPEN = 1, BRK_HALF_OPEN = 2 } brk_state_t;
typedef enum { BRK_DENY = 0, BRK_ALLOW, BRK_PROBE } brk_verdict_t;

typedef struct brk_params {
    int failures; /* consecutive failures that open; 0 = off */
    double rate;  /* failure ratio that opens; 0 = off */
    uint64_t window_ms;
    int min_requests;
    uint64_t eject_ms, max_eject_ms;
} brk_params_t;

#define BRK_BUCKETS 10

typedef struct breaker {
    pthread_mutex_t mu;
    int state;
    int consecutive;
    int ejections;
    bool probe_out;
    uint64_t open_until_ms;
    uint64_t closed_since_ms;
    uint64_t bucket_epoch[BRK_BUCKETS];
    uint32_t ok[BRK_BUCKETS], fail[BRK_BUCKETS];
    atomic_int pub_state;       /* state, for lock-free readers */
    atomic_uint_fast64_t opens; /* times it opened */
    atomic_int *mirror;         /* optional gauge kept equal to the state (metrics) */
    atomic_uint_fast64_t *mirror_opens;
} breaker_t;

void breaker_init(breaker_t *b);
void brk_params_from(brk_params_t *p, const cfg_resilience_t *r);
brk_verdict_t breaker_allow(breaker_t *b, const brk_params_t *p, uint64_t now_ms);
/* The outcome of an attempt; probe = it was admitted with BRK_PROBE. */
void breaker_report(breaker_t *b, const brk_params_t *p, uint64_t now_ms, bool ok, bool probe);
void breaker_probe_abandon(breaker_t *b);
int breaker_state(breaker_t *b);
const char *breaker_state_name(int state);

#define RESIL_LAT_RING 128

typedef struct resil_dep {
    char *name, *provider;
    breaker_t brk;
    atomic_int active; /* attempts in flight, all workers */
    pthread_mutex_t lat_mu;
    uint32_t lat_ms[RESIL_LAT_RING]; /* recent successful attempt latencies */
    size_t lat_n, lat_i;
    struct resil_dep *next;
} resil_dep_t;

/* Process-lifetime state for one deployment; series may be NULL. */
resil_dep_t *resil_dep_get(const char *name, const char *provider, struct metrics_series *series);
void resil_dep_latency(resil_dep_t *d, uint64_t ms);
/* p95 of the recent latencies, or fallback_ms with fewer than 20 samples. */
uint64_t resil_dep_p95(resil_dep_t *d, uint64_t fallback_ms);
/* Reserve one attempt slot if below max (0 = unlimited). */
bool resil_dep_acquire(resil_dep_t *d, int max);
void resil_dep_release(resil_dep_t *d);

uint64_t resil_now_ms(void);

#endif
