/*
 * breaker — see breaker.h for the state machine and the threading rules.
 */
#include "call/breaker.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "obs/metrics.h"

uint64_t resil_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void breaker_init(breaker_t *b)
{
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    atomic_init(&b->pub_state, BRK_CLOSED);
    atomic_init(&b->opens, 0);
}

void brk_params_from(brk_params_t *p, const cfg_resilience_t *r)
{
    p->failures = r->breaker_failures;
    p->rate = r->breaker_failure_rate;
    p->window_ms = r->breaker_window_ms ? r->breaker_window_ms : 10000;
    p->min_requests = r->breaker_min_requests;
    p->eject_ms = r->ejection_time_ms;
    p->max_eject_ms = r->max_ejection_time_ms;
}

static void brk__set(breaker_t *b, int st)
{
    b->state = st;
    atomic_store_explicit(&b->pub_state, st, memory_order_relaxed);
    if (b->mirror) atomic_store_explicit(b->mirror, st, memory_order_relaxed);
}

static void brk__reset_window(breaker_t *b)
{
    memset(b->bucket_epoch, 0, sizeof b->bucket_epoch);
    memset(b->ok, 0, sizeof b->ok);
    memset(b->fail, 0, sizeof b->fail);
    b->consecutive = 0;
}

static void brk__open(breaker_t *b, const brk_params_t *p, uint64_t now)
{
    if (b->state == BRK_CLOSED && now - b->closed_since_ms >= p->max_eject_ms) b->ejections = 0;
    b->ejections++;
    uint64_t t = p->eject_ms;
    for (int i = 1; i < b->ejections && t < p->max_eject_ms; i++) t *= 2;
    if (t > p->max_eject_ms) t = p->max_eject_ms;
    b->open_until_ms = now + t;
    b->probe_out = false;
    brk__reset_window(b);
    brk__set(b, BRK_OPEN);
    atomic_fetch_add_explicit(&b->opens, 1, memory_order_relaxed);
    if (b->mirror_opens) atomic_fetch_add_explicit(b->mirror_opens, 1, memory_order_relaxed);
}

brk_verdict_t breaker_allow(breaker_t *b, const brk_params_t *p, uint64_t now_ms)
{
    (void)p;
    if (atomic_load_explicit(&b->pub_state, memory_order_relaxed) == BRK_CLOSED)
        return BRK_ALLOW; /* the common case, no lock */
    brk_verdict_t v = BRK_DENY;
    pthread_mutex_lock(&b->mu);
    if (b->state == BRK_CLOSED) {
        v = BRK_ALLOW;
    } else if (!b->probe_out && (b->state == BRK_HALF_OPEN || now_ms >= b->open_until_ms)) {
        b->probe_out = true;
        brk__set(b, BRK_HALF_OPEN);
        v = BRK_PROBE;
    }
    pthread_mutex_unlock(&b->mu);
    return v;
}

void breaker_report(breaker_t *b, const brk_params_t *p, uint64_t now_ms, bool ok, bool probe)
{
    pthread_mutex_lock(&b->mu);
    if (probe) {
        b->probe_out = false;
        if (ok) {
            brk__reset_window(b);
            b->closed_since_ms = now_ms;
            brk__set(b, BRK_CLOSED);
        } else {
            brk__open(b, p, now_ms);
        }
    } else if (b->state == BRK_CLOSED) {
        uint64_t bucket_ms = p->window_ms / BRK_BUCKETS ? p->window_ms / BRK_BUCKETS : 1;
        uint64_t epoch = now_ms / bucket_ms + 1; /* 0 = empty bucket */
        size_t i = (size_t)(epoch % BRK_BUCKETS);
        if (b->bucket_epoch[i] != epoch) {
            b->bucket_epoch[i] = epoch;
            b->ok[i] = b->fail[i] = 0;
        }
        if (ok) {
            b->ok[i]++;
            b->consecutive = 0;
        } else {
            b->fail[i]++;
            b->consecutive++;
        }
        bool open = !ok && p->failures > 0 && b->consecutive >= p->failures;
        if (!ok && !open && p->rate > 0) {
            uint64_t okn = 0, failn = 0;
            for (size_t k = 0; k < BRK_BUCKETS; k++) {
                if (!b->bucket_epoch[k] || epoch - b->bucket_epoch[k] >= BRK_BUCKETS) continue;
                okn += b->ok[k];
                failn += b->fail[k];
            }
            open = okn + failn >= (uint64_t)p->min_requests &&
                   (double)failn >= p->rate * (double)(okn + failn);
        }
        if (open) brk__open(b, p, now_ms);
    } /* other outcomes while open (attempts admitted before it opened) do not count */
    pthread_mutex_unlock(&b->mu);
}

void breaker_probe_abandon(breaker_t *b)
{
    pthread_mutex_lock(&b->mu);
    b->probe_out = false;
    pthread_mutex_unlock(&b->mu);
}

int breaker_state(breaker_t *b)
{
    return atomic_load_explicit(&b->pub_state, memory_order_relaxed);
}

const char *breaker_state_name(int state)
{
    return state == BRK_OPEN ? "open" : state == BRK_HALF_OPEN ? "half_open" : "closed";
}

/* ---------- per-deployment registry ---------- */

static pthread_mutex_t resil_dep_mu = PTHREAD_MUTEX_INITIALIZER;
static resil_dep_t *resil_dep_head;

resil_dep_t *resil_dep_get(const char *name, const char *provider, struct metrics_series *series)
{
    pthread_mutex_lock(&resil_dep_mu);
    resil_dep_t *d = resil_dep_head;
    while (d && (strcmp(d->name, name) != 0 || strcmp(d->provider, provider) != 0)) d = d->next;
    if (!d && (d = calloc(1, sizeof *d))) {
        d->name = strdup(name);
        d->provider = strdup(provider);
        if (!d->name || !d->provider) {
            free(d->name);
            free(d->provider);
            free(d);
            pthread_mutex_unlock(&resil_dep_mu);
            return NULL;
        }
        breaker_init(&d->brk);
        pthread_mutex_init(&d->lat_mu, NULL);
        atomic_init(&d->active, 0);
        d->next = resil_dep_head;
        resil_dep_head = d;
    }
    if (d && series) {
        d->brk.mirror = &series->breaker_state;
        d->brk.mirror_opens = &series->breaker_opens;
        atomic_store_explicit(&series->breaker_state, breaker_state(&d->brk), memory_order_relaxed);
    }
    pthread_mutex_unlock(&resil_dep_mu);
    return d;
}

void resil_dep_latency(resil_dep_t *d, uint64_t ms)
{
    pthread_mutex_lock(&d->lat_mu);
    d->lat_ms[d->lat_i] = ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
    d->lat_i = (d->lat_i + 1) % RESIL_LAT_RING;
    if (d->lat_n < RESIL_LAT_RING) d->lat_n++;
    pthread_mutex_unlock(&d->lat_mu);
}

static int resil_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

uint64_t resil_dep_p95(resil_dep_t *d, uint64_t fallback_ms)
{
    uint32_t v[RESIL_LAT_RING];
    pthread_mutex_lock(&d->lat_mu);
    size_t n = d->lat_n;
    memcpy(v, d->lat_ms, n * sizeof v[0]);
    pthread_mutex_unlock(&d->lat_mu);
    if (n < 20) return fallback_ms;
    qsort(v, n, sizeof v[0], resil_cmp_u32);
    uint64_t p = v[(n * 95 + 99) / 100 - 1];
    return p > fallback_ms ? p : fallback_ms;
}

bool resil_dep_acquire(resil_dep_t *d, int max)
{
    if (max <= 0) {
        atomic_fetch_add_explicit(&d->active, 1, memory_order_relaxed);
        return true;
    }
    int cur = atomic_load_explicit(&d->active, memory_order_relaxed);
    while (cur < max)
        if (atomic_compare_exchange_weak_explicit(&d->active, &cur, cur + 1, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return true;
    return false;
}

void resil_dep_release(resil_dep_t *d)
{
    atomic_fetch_sub_explicit(&d->active, 1, memory_order_acq_rel);
}
