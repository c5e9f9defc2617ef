/*
 * route stats — see stats.h. Lock-free updates; a mutex only guards the
 * creation of a deployment's record (once per id per process).
 */
#include "route/stats.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "obs/metrics.h"
#include "route/router.h"

static pthread_mutex_t rs_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t rs_epoch;

uint64_t route_stats_epoch(void)
{
    return atomic_load_explicit(&rs_epoch, memory_order_relaxed);
}
static route_stats_t *_Atomic rs_head;

uint64_t route_now_ms(void)
{
    return time_mono_ns() / 1000000u;
}

#define rs_load route_stats__load

static void rs_store(_Atomic uint64_t *a, double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    atomic_store_explicit(a, u, memory_order_relaxed);
}

/* EWMA update by CAS; the first sample (stored value NaN) is taken as is. */
static void rs_ewma(_Atomic uint64_t *a, double sample, double alpha)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed), nu;
    do {
        double cur, next;
        memcpy(&cur, &old, sizeof cur);
        next = isnan(cur) ? sample : cur + alpha * (sample - cur);
        memcpy(&nu, &next, sizeof nu);
    } while (!atomic_compare_exchange_weak_explicit(a, &old, nu, memory_order_relaxed,
                                                    memory_order_relaxed));
}

void route_stats_reset(route_stats_t *s)
{
    rs_store(&s->lat_ms, NAN);
    rs_store(&s->ttft_ms, NAN);
    rs_store(&s->ms_per_tok, NAN);
    rs_store(&s->peak_ms, NAN);
    rs_store(&s->success, 1.0); /* prior: reliable until shown otherwise */
    atomic_store(&s->peak_at_ms, 0);
    atomic_store(&s->samples, 0);
    atomic_store(&s->warm_until_ms, 0);
    atomic_store(&s->in_flight, 0);
    atomic_store(&s->minute, 0);
    atomic_store(&s->req_cur, 0);
    atomic_store(&s->req_prev, 0);
    atomic_store(&s->tok_cur, 0);
    atomic_store(&s->tok_prev, 0);
}

route_stats_t *route_stats_get(const char *id)
{
    for (route_stats_t *s = atomic_load_explicit(&rs_head, memory_order_acquire); s;
         s = atomic_load_explicit(&s->next, memory_order_acquire))
        if (strcmp(s->id, id) == 0) return s;
    pthread_mutex_lock(&rs_mu);
    route_stats_t *s = atomic_load_explicit(&rs_head, memory_order_acquire);
    for (; s; s = atomic_load_explicit(&s->next, memory_order_acquire))
        if (strcmp(s->id, id) == 0) break;
    if (!s && (s = aligned_alloc(64, sizeof *s)) != NULL) {
        memset(s, 0, sizeof *s);
        if (!(s->id = strdup(id))) {
            free(s);
            s = NULL;
        } else {
            route_stats_reset(s);
            atomic_store_explicit(&s->next, atomic_load(&rs_head), memory_order_relaxed);
            atomic_store_explicit(&rs_head, s, memory_order_release);
        }
    }
    pthread_mutex_unlock(&rs_mu);
    return s;
}

void route_stats_attach(config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_models; i++) {
        cfg_model_t *m = &cfg->models[i];
        if (m->id) m->rstats = route_stats_get(m->id);
        route_model_prepare(m);
    }
    for (size_t i = 0; i < cfg->n_routes; i++) route_prepare(&cfg->routes[i]);
}

void route_stats_shutdown(void)
{
    pthread_mutex_lock(&rs_mu);
    route_stats_t *s = atomic_exchange(&rs_head, NULL);
    pthread_mutex_unlock(&rs_mu);
    while (s) {
        route_stats_t *n = atomic_load(&s->next);
        free(s->id);
        free(s);
        s = n;
    }
}

/* Move the minute buckets forward to now's minute. */
static void rs_roll(route_stats_t *s, uint64_t now_ms)
{
    uint64_t m = now_ms / 60000u, old = atomic_load_explicit(&s->minute, memory_order_relaxed);
    if (old == m) return;
    if (!atomic_compare_exchange_strong(&s->minute, &old, m)) return; /* another thread did it */
    bool adjacent = m == old + 1;
    atomic_store(&s->req_prev, adjacent ? atomic_exchange(&s->req_cur, 0) : 0);
    atomic_store(&s->tok_prev, adjacent ? atomic_exchange(&s->tok_cur, 0) : 0);
    if (!adjacent) {
        atomic_store(&s->req_cur, 0);
        atomic_store(&s->tok_cur, 0);
    }
}

void route_stats_begin(route_stats_t *s, uint64_t now_ms)
{
    if (!s) return;
    rs_roll(s, now_ms);
    atomic_fetch_add_explicit(&s->in_flight, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->req_cur, 1, memory_order_relaxed);
}

void route_stats_leave(route_stats_t *s)
{
    if (s) atomic_fetch_sub_explicit(&s->in_flight, 1, memory_order_relaxed);
}

static int rs_out_bucket(long out)
{
    int k = (int)floor(4.0 * log2((double)out + 1.0));
    return k < 0 ? 0 : k >= ROUTE_OUT_BUCKETS ? ROUTE_OUT_BUCKETS - 1 : k;
}

static void rs_out_sample(route_stats_t *s, long out)
{
    atomic_fetch_add_explicit(&s->out_hist[rs_out_bucket(out)], 1, memory_order_relaxed);
    uint32_t n = atomic_fetch_add_explicit(&s->out_n, 1, memory_order_relaxed) + 1;
    if (n < ROUTE_OUT_HALF_LIFE || atomic_flag_test_and_set(&s->out_halving)) return;
    /* one thread halves; a sample added meanwhile may lose half a count */
    uint32_t total = 0;
    for (int k = 0; k < ROUTE_OUT_BUCKETS; k++) {
        uint32_t v = atomic_load_explicit(&s->out_hist[k], memory_order_relaxed);
        atomic_fetch_sub_explicit(&s->out_hist[k], v - v / 2, memory_order_relaxed);
        total += v / 2;
    }
    atomic_store_explicit(&s->out_n, total, memory_order_relaxed);
    atomic_flag_clear(&s->out_halving);
}

long route_stats_out_p99(route_stats_t *s)
{
    uint32_t h[ROUTE_OUT_BUCKETS], total = 0;
    for (int k = 0; k < ROUTE_OUT_BUCKETS; k++)
        total += h[k] = atomic_load_explicit(&s->out_hist[k], memory_order_relaxed);
    if (total < ROUTE_OUT_MIN_SAMPLES) return 0;
    uint32_t want = total - total / 100, acc = 0; /* the first bucket holding 99% */
    for (int k = 0; k < ROUTE_OUT_BUCKETS; k++) {
        acc += h[k];
        if (acc >= want) return (long)ceil(exp2((double)(k + 1) / 4.0));
    }
    return (long)ceil(exp2((double)ROUTE_OUT_BUCKETS / 4.0));
}

void route_stats_end(route_stats_t *s, bool ok, double lat_ms, double ttft_ms, long out_tokens,
                     long total_tokens, uint64_t now_ms)
{
    if (!s) return;
    atomic_fetch_add_explicit(&rs_epoch, 1, memory_order_relaxed);
    rs_roll(s, now_ms);
    if (total_tokens > 0)
        atomic_fetch_add_explicit(&s->tok_cur, (uint64_t)total_tokens, memory_order_relaxed);
    rs_ewma(&s->success, ok ? 1.0 : 0.0, ROUTE_SUCCESS_ALPHA);
    if (ok) { /* failures are often fast: they would make a broken deployment look quick */
        rs_ewma(&s->lat_ms, lat_ms, ROUTE_EWMA_ALPHA);
        if (out_tokens >= 0) rs_out_sample(s, out_tokens);
        if (ttft_ms >= 0) rs_ewma(&s->ttft_ms, ttft_ms, ROUTE_EWMA_ALPHA);
        double gen_s = (lat_ms - (ttft_ms >= 0 ? ttft_ms : lat_ms)) / 1000.0;
        if (out_tokens > 0 && gen_s > 0.001)
            rs_ewma(&s->ms_per_tok, gen_s * 1000.0 / (double)out_tokens, ROUTE_EWMA_ALPHA);
        /* peak EWMA: decays towards lower samples with time, jumps to higher ones */
        double peak = rs_load(&s->peak_ms);
        uint64_t at = atomic_load_explicit(&s->peak_at_ms, memory_order_relaxed);
        double dt = now_ms > at ? (double)(now_ms - at) : 0;
        double w = exp(-dt / ROUTE_PEAK_TAU_MS);
        double next = isnan(peak) || lat_ms > peak ? lat_ms : peak * w + lat_ms * (1 - w);
        rs_store(&s->peak_ms, next);
        atomic_store_explicit(&s->peak_at_ms, now_ms, memory_order_relaxed);
        uint64_t n = atomic_fetch_add_explicit(&s->samples, 1, memory_order_relaxed) + 1;
        if (n >= ROUTE_COLD_SAMPLES) /* warm until ROUTE_STALE_MS without a sample */
            atomic_store_explicit(&s->warm_until_ms, now_ms + ROUTE_STALE_MS, memory_order_relaxed);
    }
}

void route_stats_read(const cfg_model_t *m, uint64_t now_ms, route_live_t *o)
{
    route_stats_read_from(m->rstats, m->stats, m->cap_rpm || m->cap_tpm, now_ms, o);
}

void route_stats__rates(route_stats_t *s, uint64_t now_ms, route_live_t *o)
{
    /* sliding minute: the previous bucket weighted by the part of it still in the window */
    double frac = (double)(now_ms % 60000u) / 60000.0;
    uint64_t minute = atomic_load_explicit(&s->minute, memory_order_relaxed);
    double cur_r = (double)atomic_load(&s->req_cur), prev_r = (double)atomic_load(&s->req_prev);
    double cur_t = (double)atomic_load(&s->tok_cur), prev_t = (double)atomic_load(&s->tok_prev);
    if (minute == now_ms / 60000u) {
        o->rpm = cur_r + prev_r * (1 - frac);
        o->tpm = cur_t + prev_t * (1 - frac);
    } else if (minute + 1 == now_ms / 60000u) {
        o->rpm = cur_r * (1 - frac);
        o->tpm = cur_t * (1 - frac);
    }
}
