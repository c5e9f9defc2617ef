/*
 * router — the decision for one request (see router.h) and its explanation.
 *
 * Order of work: candidates (route task rule, route, or the deployments of a
 * model) -> live stats copy -> estimates -> filters (needs, health,
 * constraints) -> factor scores and weighted total -> ranking (under the load
 * threshold first, then cold deployments -- fewer than ROUTE_COLD_SAMPLES
 * recent samples: exploration, so every candidate gets measured and a
 * recovered one is noticed once its stats go stale -- then by total, then
 * config order) -> the strategy picks
 * the first deployment (score: the top one) -> route fallbacks appended.
 * Everything is allocated in the caller's arena, except the prepared path's
 * per-candidate scratch (rt_scratch: per thread, reused across selections).
 *
 * The hot path (a prepared route, score strategy, no explanation): a prepared
 * (route, task) keeps what a selection reads for every candidate in one small
 * record (rp_hot_t) and the filter data in separate arrays with summaries (so
 * a request that no static filter can touch skips them); the scan reads the
 * live stats in place (relaxed loads) and writes each candidate's partial
 * results (estimates, base score, ranking class) field by field into
 * per-thread scratch (rt_ent_t); the ranking keeps a pruned top-K from those,
 * dividing only for the few that may make the list. No record is built as a
 * value and copied (that forced store-to-load forwarding stalls) and no call
 * sits in the scan loop (the compiler would keep its constants in memory).
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonw.h"
#include "route/overlay.h"
#include "route/router.h"

/* Per-candidate partial results of one selection (an array parallel to the
 * candidates). cls: ranking class (0 under the load threshold and cold, 1
 * under and warm, 2 / 3 the same over the threshold), RT_OUT when filtered
 * out; base, lat (estimated latency), cost (estimated cost) are meaningful
 * only when cls != RT_OUT. Stored field by field, read by rt_rank. */
#define RT_OUT 0xFF
typedef struct rt_ent {
    double base, lat, cost;
    uint32_t cls;
} rt_ent_t;

typedef struct rt_work {
    rt_ent_t *e;
    uint32_t *idx; /* the eligible: nf "fast" ones from the front, ns others from the back */
    size_t nf, ns;
} rt_work_t;

/* Files eligible candidate i (estimate lat) given best_lat (the lowest finite
 * estimate so far, with or without i). "Fast" (lat <= 2 x best_lat, or
 * cold) is only an order for rt_rank, whose result does not depend on it:
 * a good guess ranks them first so that its list fills with strong totals
 * early. Branch-free (the test is unpredictable); while fewer than n are
 * filed, nf <= n - 1 - ns, so both stores stay in bounds. */
static inline void rt_file(uint32_t *idx, size_t n, size_t i, double lat, double best_lat,
                           size_t *nf, size_t *ns)
{
    const size_t slow = lat > 2 * best_lat;
    idx[*nf] = (uint32_t)i;
    idx[n - 1 - *ns] = (uint32_t)i;
    *nf += 1 - slow;
    *ns += slow;
}
static inline uint8_t rt_cls(bool cold, bool over)
{
    return (uint8_t)((over ? 2 : 0) + (cold ? 0 : 1));
}

/* n entries carved from one block p (at least rt_work_bytes(n) bytes, 16-aligned). */
static size_t rt_work_bytes(size_t n)
{
    return n * (sizeof(rt_ent_t) + sizeof(uint32_t));
}
static void rt_work_carve(rt_work_t *s, void *p, size_t n)
{
    s->e = p;
    s->idx = (uint32_t *)(s->e + n);
    s->nf = s->ns = 0;
}

/* The prepared path's scratch: one block per thread, grown on demand, kept for
 * the thread's life (freed by a key destructor at thread exit), so a selection
 * allocates nothing. */
static pthread_key_t rt_scratch_key;
static pthread_once_t rt_scratch_once = PTHREAD_ONCE_INIT;
static _Thread_local void *rt_scratch_p;
static _Thread_local size_t rt_scratch_cap;

static void rt_scratch_key_init(void)
{
    (void)pthread_key_create(&rt_scratch_key, free);
}

static bool rt_scratch(size_t n, rt_work_t *s)
{
    size_t need = rt_work_bytes(n);
    if (need > rt_scratch_cap || !rt_scratch_p) {
        pthread_once(&rt_scratch_once, rt_scratch_key_init);
        size_t cap = need < 4096 ? 4096 : need + need / 2;
        void *p = aligned_alloc(64, (cap + 63) / 64 * 64);
        if (!p) return false;
        free(rt_scratch_p);
        rt_scratch_p = p;
        rt_scratch_cap = cap;
        (void)pthread_setspecific(rt_scratch_key, p);
    }
    rt_work_carve(s, rt_scratch_p, n);
    return true;
}

/* Ranking: under the load threshold first, then cold (explore: measure it),
 * then by total, then config order. */
static inline bool rt_better(unsigned ca, double ta, size_t ia, unsigned cb, double tb, size_t ib)
{
    if (ca != cb) return ca < cb;
    if (ta != tb) return ta > tb;
    return ia < ib;
}

/* Totals of the eligible entries of s[0..n) and the best ones in order into
 * d->order (at most kmax); their indices into top_out when not NULL. */
static void rt_rank(route_decision_t *d, const cfg_model_t *const *cands, const rt_work_t *s,
                    size_t n, size_t kmax, double best_lat, double best_cost,
                    const double w[ROUTE_F__COUNT], uint32_t *top_out)
{
    /* the kept ones, best first: insertion into a short sorted list */
    uint32_t ti[ROUTE_RANK_MAX];
    double tt[ROUTE_RANK_MAX];
    unsigned tc[ROUTE_RANK_MAX];
    size_t nt = 0;
    const double wl = w[ROUTE_F_LATENCY], wc = w[ROUTE_F_COST];
    const double wl_best = isfinite(best_lat) ? wl * best_lat : NAN;
    /* the division-free bound below needs both best estimates finite and positive */
    const double best_x = best_cost + ROUTE_COST_EPS_USD;
    const bool both = isfinite(best_lat) && best_lat > 0 && isfinite(best_cost) && best_x > 0;
    double t_last = 0; /* total and class of the last kept one, once the list is full */
    unsigned c_last = 0;
    const rt_ent_t *e = s->e;
    /* the fast ones in config order, then the others (from the back: config order too) */
    const uint32_t *idx = s->idx;
    const size_t nf = s->nf, ns = s->ns;
    for (size_t q = 0; q < nf + ns; q++) {
        const size_t j = q < nf ? idx[q] : idx[n - 1 - (q - nf)];
        const unsigned c = e[j].cls;
        const double l = e[j].lat;
        const double b = e[j].base;
        if (nt == kmax) { /* can it beat the last kept one at all? */
            if (c != c_last) {
                if (c > c_last) continue;
            } else {
                /* what the two relative factors must add: more than both at 1 can give?
                 * Or the latency factor it needs with the best cost factor (1): more
                 * than best_lat / est_lat (compared without dividing; a NaN estimate --
                 * cold -- compares false and is not skipped)? */
                const double need = t_last - b, need_l = need - wc;
                if (need_l > wl + 1e-9) continue;
                if (need_l > 1e-9 && l * (need_l - 1e-9) > wl_best) continue;
                /* both factors as they are: wl min(1, B/l) + wc min(1, C/x) < need,
                 * multiplied by l x > 0 (B, C: the best estimates, C with the epsilon) */
                const double x = e[j].cost + ROUTE_COST_EPS_USD;
                if (both && l > 0 && x > 0) {
                    const double fl_l = wl * l < wl_best ? wl * l : wl_best; /* wl min(l, B) */
                    const double fc_x = wc * (x < best_x ? x : best_x);      /* wc min(x, C) */
                    if (fl_l * x + fc_x * l < (need - 1e-9) * l * x) continue;
                }
            }
        }
        /* the divisions only for those that may make the list */
        const double t =
            b + wl * route_f_latency(l, best_lat) + wc * route_f_cost(e[j].cost, best_cost);
        if (nt == kmax && !rt_better(c, t, j, tc[nt - 1], tt[nt - 1], ti[nt - 1])) continue;
        size_t p = nt < kmax ? nt++ : nt - 1;
        while (p > 0 && rt_better(c, t, j, tc[p - 1], tt[p - 1], ti[p - 1])) {
            ti[p] = ti[p - 1];
            tt[p] = tt[p - 1];
            tc[p] = tc[p - 1];
            p--;
        }
        ti[p] = (uint32_t)j;
        tt[p] = t;
        tc[p] = c;
        if (nt == kmax) {
            t_last = tt[nt - 1];
            c_last = tc[nt - 1];
        }
    }
    for (size_t j = 0; j < nt; j++) d->order[j] = cands[ti[j]];
    if (top_out) memcpy(top_out, ti, nt * sizeof *ti);
    d->n_order = d->n_ranked = nt;
    d->chosen = nt ? (int)ti[0] : -1;
}

/* ---------- prepared routes ---------- */

enum { RP_RATES = 1, RP_CAPACITY = 2 };

/* What the scan reads for every candidate (one record: one pointer for the
 * compiler to keep, not five). */
typedef struct rp_hot {
    route_stats_t *rs;
    const struct metrics_series *ms;
    double static_base; /* route_static_sum() of the task's weights */
    double price_in, price_out;
} rp_hot_t;

/* Per (route, task): the candidates' static data, one array per field
 * (parallel to cands), carved from the same allocation as the header. */
typedef struct rp {
    uint64_t uid; /* unique per prepared array in this process (cache keys) */
    size_t n;
    const cfg_model_t **cands;
    double w[ROUTE_F__COUNT];
    rp_hot_t *hot; /* what every selection reads */
    double *quality;
    int32_t *ctx; /* context_window (config caps it at INT32_MAX) */
    unsigned *caps;
    uint8_t *flags; /* RP_* */
    /* summaries: every candidate has caps_all; the lowest positive context
     * window (0: none limits) and the lowest quality */
    unsigned caps_all;
    int32_t ctx_min;
    double quality_min;
    uint32_t *cap_idx; /* the candidates with a capacity (RP_CAPACITY) */
    size_t n_cap;
} rp_t;

static size_t rp_up64(size_t x)
{
    return (x + 63) / 64 * 64;
}

void route_prepare(cfg_route_t *r)
{
    uint64_t rh = r->region ? route_region_hash(r->region, strlen(r->region)) : 0;
    uint64_t ah = r->region ? route_region_hash(r->region, strcspn(r->region, "-")) : 0;
    for (int t = 0; t < ROUTE_TASK__COUNT; t++) {
        free(r->prep[t]);
        r->prep[t] = NULL;
        const cfg_task_rule_t *tr = &r->tasks[t];
        const cfg_model_t *const *cands = tr->cands ? tr->cands : r->cands;
        size_t n = tr->cands ? tr->n_cands : r->n_cands;
        size_t sz = rp_up64(sizeof(rp_t)) + rp_up64(n * sizeof(rp_hot_t)) +
                    rp_up64(n * sizeof(double)) + rp_up64(n * sizeof(int32_t)) +
                    rp_up64(n * sizeof(unsigned)) + rp_up64(n) + rp_up64(n * sizeof(uint32_t));
        unsigned char *blk = aligned_alloc(64, sz);
        if (!blk) continue; /* the general path serves */
        rp_t *p = (rp_t *)blk;
        size_t off = rp_up64(sizeof(rp_t));
#define RP_CARVE(field, elem)                                                                      \
    do {                                                                                           \
        p->field = (void *)(blk + off);                                                            \
        off += rp_up64(n * sizeof(elem));                                                          \
    } while (0)
        RP_CARVE(hot, rp_hot_t);
        RP_CARVE(quality, double);
        RP_CARVE(ctx, int32_t);
        RP_CARVE(caps, unsigned);
        RP_CARVE(flags, uint8_t);
        RP_CARVE(cap_idx, uint32_t);
#undef RP_CARVE
        static _Atomic uint64_t uids = 1;
        p->uid = atomic_fetch_add_explicit(&uids, 1, memory_order_relaxed);
        p->n = n;
        p->cands = (const cfg_model_t **)cands;
        route_weights_normalise(tr->has_weights ? &tr->weights : &r->weights, p->w);
        for (size_t i = 0; i < n; i++) {
            const cfg_model_t *m = cands[i];
            route_cand_t c = {.m = m};
            route_score_base(&c, p->w, r->region, rh, ah); /* the static factors */
            p->hot[i].rs = m->rstats;
            p->hot[i].ms = m->stats;
            p->hot[i].static_base = route_static_sum(p->w, c.f[ROUTE_F_QUALITY], c.f[ROUTE_F_SIZE],
                                                     c.f[ROUTE_F_HARDWARE], c.f[ROUTE_F_DISTANCE]);
            p->hot[i].price_in = m->price.input;
            p->hot[i].price_out = m->price.output;
            p->quality[i] = m->quality;
            p->ctx[i] = (int32_t)m->context_window;
            p->caps[i] = m->capabilities;
            p->flags[i] =
                (uint8_t)((m->cap_rpm || m->cap_tpm ? RP_RATES : 0) |
                          (m->cap_rpm || m->cap_tpm || m->cap_concurrency ? RP_CAPACITY : 0));
        }
        p->caps_all = ~0u;
        p->ctx_min = 0;
        p->quality_min = INFINITY;
        p->n_cap = 0;
        for (size_t i = 0; i < n; i++) {
            if (p->flags[i] & RP_CAPACITY) p->cap_idx[p->n_cap++] = (uint32_t)i;
            p->caps_all &= p->caps[i];
            if (p->ctx[i] > 0 && (p->ctx_min == 0 || p->ctx[i] < p->ctx_min))
                p->ctx_min = p->ctx[i];
            if (!(p->quality[i] >= p->quality_min)) p->quality_min = p->quality[i];
        }
        r->prep[t] = p;
    }
}

/* ---------- selection cache ----------
 *
 * Per worker thread (no locks), direct-mapped, keyed by everything a
 * prepared score decision depends on besides the live stats: the prepared
 * array (its uid: a new snapshot never matches), needs, estimated tokens,
 * constraints. An entry is used while it is younger than
 * ROUTE_CACHE_TTL_MS, or -- when no live stats changed at all since
 * (route_stats_epoch()) -- younger than ROUTE_CACHE_IDLE_MS. On a hit the
 * cached ranking is re-checked live where it matters at once: every kept
 * deployment must still be healthy and keep its class (cold / over the load
 * threshold), else it is a miss. The bound on staleness is thus 10 ms of
 * EWMA movement, which smooths over several requests anyway. route_cache_enabled
 * switches it off (benchmarks, tests of the uncached path).
 */
#define RT_CACHE_SLOTS 64

typedef struct rt_centry {
    uint64_t uid, epoch, at_ms;
    unsigned needs;
    long pt, ot;
    double min_q, max_cost, max_lat;
    size_t n;
    int chosen;
    uint32_t idx[ROUTE_RANK_MAX]; /* into the prepared array */
    uint8_t cls[ROUTE_RANK_MAX];
} rt_centry_t;

static _Thread_local rt_centry_t rt_cache[RT_CACHE_SLOTS];
bool route_cache_enabled = true;

static size_t rt_cache_slot(const rp_t *p, const route_features_t *f)
{
    uint64_t h = p->uid * 0x9E3779B97F4A7C15ull;
    h ^= (uint64_t)f->needs * 0xC2B2AE3D27D4EB4Full;
    h ^= (uint64_t)f->prompt_tokens * 0x165667B19E3779F9ull;
    h ^= (uint64_t)f->out_tokens * 0x27D4EB2F165667C5ull;
    return (size_t)((h ^ (h >> 29)) % RT_CACHE_SLOTS);
}

static bool rt_cache_key_eq(const rt_centry_t *e, const rp_t *p, const route_features_t *f)
{
    return e->uid == p->uid && e->needs == f->needs && e->pt == f->prompt_tokens &&
           e->ot == f->out_tokens && e->min_q == f->min_quality && e->max_cost == f->max_cost_usd &&
           e->max_lat == f->max_latency_ms;
}

static void rt_cache_put(const rp_t *p, const route_features_t *f, const route_decision_t *d,
                         const rt_ent_t *ent, const uint32_t *top, uint64_t now)
{
    if (!route_cache_enabled || !d->n_order) return;
    rt_centry_t *e = &rt_cache[rt_cache_slot(p, f)];
    e->uid = p->uid;
    e->epoch = route_stats_epoch();
    e->at_ms = now;
    e->needs = f->needs;
    e->pt = f->prompt_tokens;
    e->ot = f->out_tokens;
    e->min_q = f->min_quality;
    e->max_cost = f->max_cost_usd;
    e->max_lat = f->max_latency_ms;
    e->n = d->n_order;
    e->chosen = d->chosen;
    for (size_t j = 0; j < d->n_order; j++) {
        e->idx[j] = top[j];
        e->cls[j] = (uint8_t)ent[top[j]].cls;
    }
}

static bool rt_cache_get(const rp_t *p, const route_features_t *f, double thr, arena_t *a,
                         route_decision_t *d)
{
    if (!route_cache_enabled) return false;
    rt_centry_t *e = &rt_cache[rt_cache_slot(p, f)];
    if (!rt_cache_key_eq(e, p, f)) return false;
    uint64_t now = route_now_ms();
    uint64_t age = now - e->at_ms;
    if (!(age < ROUTE_CACHE_TTL_MS ||
          (age < ROUTE_CACHE_IDLE_MS && e->epoch == route_stats_epoch())))
        return false;
    d->order = arena_alloc(a, (e->n + 1) * sizeof *d->order);
    if (!d->order) return false;
    for (size_t j = 0; j < e->n; j++) {
        uint32_t i = e->idx[j];
        route_live_t l;
        route_stats_read_from(p->hot[i].rs, p->hot[i].ms, p->flags[i] & RP_RATES, now, &l);
        bool over = (p->flags[i] & RP_CAPACITY) && route_over_load_live(p->cands[i], &l, thr);
        if (!l.healthy || rt_cls(l.cold, over) != e->cls[j]) return false;
        d->order[j] = p->cands[i];
    }
    memcpy(d->weights, p->w, sizeof d->weights);
    d->strategy = ROUTE_STRAT_SCORE;
    d->n_cands = p->n;
    d->n_order = d->n_ranked = e->n;
    d->chosen = (int)e->idx[0];
    d->cached = true;
    return true;
}

/* What the scan hands the ranking besides the scratch arrays. */
typedef struct rt_scan_res {
    double best_lat, best_cost; /* lowest finite estimates among the eligible */
    size_t nf, ns;              /* rt_file's counts */
} rt_scan_res_t;

/* The candidates' estimates, filters and base scores into s. filt false: the
 * request's needs, tokens and constraints cannot filter any candidate of p on
 * static grounds (rp_t's summaries), so those tests are left out; called with
 * a constant so the compiler makes two loops. */
static inline __attribute__((always_inline)) rt_scan_res_t
rt_scan(const rp_t *p, const route_features_t *f, uint64_t now, const rt_work_t *sv,
        const bool filt)
{
    /* locals: the stores into the scratch arrays could alias *f and *p for the compiler */
    const size_t n = p->n;
    const double w_rel = p->w[ROUTE_F_RELIABILITY];
    const double pt = (double)(f->prompt_tokens > 0 ? f->prompt_tokens : 0);
    const long ot = f->out_tokens > 0 ? f->out_tokens : 0;
    const double otd = (double)ot;
    const long need_ctx = f->prompt_tokens + ot;
    const unsigned needs = f->needs;
    const double min_q = f->min_quality, max_cost = f->max_cost_usd, max_lat = f->max_latency_ms;
    const rp_hot_t *hot = p->hot;
    const double *qual = p->quality;
    const int32_t *ctxv = p->ctx;
    const unsigned *capv = p->caps;
    rt_ent_t *o = sv->e;
    uint32_t *idx = sv->idx;
    size_t nf = 0, ns = 0; /* locals: kept in registers */
    double best_lat = INFINITY, best_cost = INFINITY;
    for (size_t i = 0; i < n; i++) {
        /* the static filters first (bitwise: one branch), as route_est_cost computes the cost */
        const rp_hot_t *h = &hot[i];
        const double cost = (h->price_in * pt + h->price_out * otd) * 1e-6;
        const int32_t ctx = filt ? ctxv[i] : 0;
        o[i].cls = RT_OUT;
        if (filt && ((needs & ~capv[i]) | (ctx > 0 && need_ctx > ctx) |
                     (min_q >= 0 && qual[i] < min_q) | (max_cost >= 0 && cost > max_cost)))
            continue;
        /* live stats: the fields route_stats_read_from would copy, read in place (relaxed) */
        double lat = NAN, success = 1, health = 1;
        bool cold = true;
        route_stats_t *rs = h->rs;
        if (rs) {
            cold = now >= atomic_load_explicit(&rs->warm_until_ms, memory_order_relaxed);
            success = route_stats__load(&rs->success);
            if (!cold) {
                const double l = route_stats__load(&rs->lat_ms);
                const double ttft = route_stats__load(&rs->ttft_ms);
                const double mpt = route_stats__load(&rs->ms_per_tok);
                lat = ot > 0 && isfinite(ttft) && isfinite(mpt) ? ttft + otd * mpt : l;
            }
        }
        const struct metrics_series *ms = h->ms;
        if (ms) {
            uint64_t probes = atomic_load_explicit(&ms->health_probes, memory_order_relaxed);
            if (probes) {
                if (!atomic_load_explicit(&ms->health_up, memory_order_relaxed)) continue;
                uint64_t okp = atomic_load_explicit(&ms->health_successes, memory_order_relaxed);
                health = okp >= probes ? 1.0 : (double)okp / (double)probes;
            }
        }
        if (max_lat >= 0 && isfinite(lat) && lat > max_lat) continue;
        double rel = success * health;
        rel = rel < 0 ? 0 : rel > 1 ? 1 : rel;
        o[i].base = h->static_base + w_rel * rel;
        o[i].lat = lat;
        o[i].cost = cost;
        o[i].cls = rt_cls(cold, false); /* over the load threshold: rt_decide_prepared */
        rt_file(idx, n, i, lat, best_lat, &nf, &ns); /* with the best before it: no wait */
        best_lat = isfinite(lat) && lat < best_lat ? lat : best_lat;
        best_cost = cost < best_cost ? cost : best_cost;
    }
    return (rt_scan_res_t){.best_lat = best_lat, .best_cost = best_cost, .nf = nf, .ns = ns};
}

/* The score strategy over a prepared (route, task) without details: the same
 * filters and arithmetic as route_check_code / route_score_base, on the
 * prepared arrays. Returns false when nothing is eligible (the caller reruns
 * the general path for the reasons). */
static bool rt_decide_prepared(const rp_t *p, const route_features_t *f, double thr, arena_t *a,
                               route_decision_t *d)
{
    uint64_t now = route_now_ms();
    size_t n = p->n, kmax = n < ROUTE_RANK_MAX ? n : ROUTE_RANK_MAX;
    rt_work_t s;
    d->order = arena_alloc(a, (kmax + 1) * sizeof *d->order);
    if (!d->order || !rt_scratch(n, &s)) return false;
    memcpy(d->weights, p->w, sizeof d->weights);
    d->strategy = ROUTE_STRAT_SCORE;
    d->n_cands = n;
    /* the static filters can only matter when the request asks more than some
     * candidate offers (rp_t's summaries over the candidates) */
    const long need_ctx = f->prompt_tokens + (f->out_tokens > 0 ? f->out_tokens : 0);
    const bool filt = (f->needs & ~p->caps_all) || (p->ctx_min > 0 && need_ctx > p->ctx_min) ||
                      (f->min_quality >= 0 && !(p->quality_min >= f->min_quality)) ||
                      f->max_cost_usd >= 0;
    const rt_scan_res_t r = filt ? rt_scan(p, f, now, &s, true) : rt_scan(p, f, now, &s, false);
    /* the load threshold, for the few with a capacity (out of the scan: a call in
     * its loop would make the compiler keep its constants in memory) */
    for (size_t q = 0; q < p->n_cap; q++) {
        const uint32_t i = p->cap_idx[q];
        if (s.e[i].cls == RT_OUT) continue;
        route_live_t l;
        route_stats_read_from(p->hot[i].rs, NULL, p->flags[i] & RP_RATES, now, &l);
        if (route_over_load_live(p->cands[i], &l, thr)) s.e[i].cls += 2; /* rt_cls(cold, true) */
    }
    const size_t nf = r.nf, ns = r.ns;
    const double best_lat = r.best_lat, best_cost = r.best_cost;
    if (!(nf + ns)) return false;
    s.nf = nf;
    s.ns = ns;
    uint32_t top[ROUTE_RANK_MAX];
    rt_rank(d, p->cands, &s, n, kmax, best_lat, best_cost, p->w, top);
    rt_cache_put(p, f, d, s.e, top, now);
    return true;
}

/* The balancing strategies' pick among ok[] (eligible, under the load
 * threshold when any is); -1 for none. */
static int rt_pick(route_decision_t *d, const bool *ok, int strategy, route_balance_t *bal,
                   uint64_t *rng)
{
    route_cand_t *c = d->cands;
    size_t n = d->n_cands;
    switch (strategy) {
    case ROUTE_STRAT_ROUND_ROBIN: {
        if (!bal) return -1;
        int64_t *w = malloc(n * sizeof *w);
        if (!w) return -1;
        /* weight adjusted from live stats: the overlay's (else the configured)
         * weight x reliability */
        for (size_t i = 0; i < n; i++)
            w[i] = ok[i] ? (int64_t)llround(route_weight(c[i].m) * 1000.0 *
                                            route_score_reliability(&c[i].live))
                         : 0;
        pthread_mutex_lock(&bal->mu);
        if (bal->n != n) {
            int64_t *cur = calloc(n ? n : 1, sizeof *cur);
            if (cur) {
                free(bal->cur);
                bal->cur = cur;
                bal->n = n;
            }
        }
        int pick = bal->n == n ? route_swrr(bal->cur, w, n) : -1;
        pthread_mutex_unlock(&bal->mu);
        free(w);
        return pick;
    }
    case ROUTE_STRAT_LEAST_INFLIGHT:
        return route_least_inflight(c, ok, n);
    case ROUTE_STRAT_P2C:
        return route_p2c(c, ok, n, rng);
    case ROUTE_STRAT_SCORE_WEIGHTED:
        return route_score_weighted(c, ok, n, rng);
    default:
        return -1;
    }
}

void route_decide_among(const cfg_model_t *const *cands, size_t n, const route_live_t *live,
                        const route_features_t *f, const double w[ROUTE_F__COUNT], int strategy,
                        const char *region, double load_threshold, route_balance_t *bal,
                        uint64_t *rng, arena_t *a, route_decision_t *d)
{
    uint64_t now = live ? 0 : route_now_ms();
    uint64_t rh = region ? route_region_hash(region, strlen(region)) : 0;
    uint64_t ah = region ? route_region_hash(region, strcspn(region, "-")) : 0;
    /* Details (every candidate's factors and reasons) only when asked, for the
     * balancing strategies (they read them), or to explain a 422. */
    bool detailed = f->explain || strategy != ROUTE_STRAT_SCORE;
    memcpy(d->weights, w, sizeof d->weights);
    d->strategy = strategy;
again:
    d->chosen = -1;
    d->n_cands = d->n_order = d->n_ranked = 0;
    d->detailed = detailed;
    d->cands = detailed && n ? arena_alloc(a, n * sizeof *d->cands) : NULL;
    rt_work_t s = {0};
    void *sblk = n ? arena_alloc(a, rt_work_bytes(n)) : NULL;
    if (sblk) rt_work_carve(&s, sblk, n);
    size_t kmax = n < ROUTE_RANK_MAX ? n : ROUTE_RANK_MAX;
    d->order = arena_alloc(a, (kmax + 1) * sizeof *d->order);
    if ((n && (!sblk || (detailed && !d->cands))) || !d->order) return;
    d->n_cands = n;
    size_t k = 0;
    double best_lat = INFINITY, best_cost = INFINITY;
    route_cand_t tmp;
    for (size_t i = 0; i < n; i++) {
        route_cand_t *c = detailed ? &d->cands[i] : &tmp;
        c->m = cands[i];
        if (live)
            c->live = live[i];
        else
            route_stats_read(cands[i], now, &c->live);
        c->est_cost_usd = route_est_cost(c->m, f);
        c->est_latency_ms = route_est_latency(&c->live, f);
        bool ok = route_check_code(c, f);
        c->over_load = route_over_load(c, load_threshold);
        double base = detailed || ok ? route_score_base(c, w, region, rh, ah) : 0;
        if (detailed) route_reason_format(c);
        s.e[i].cls = RT_OUT;
        if (!ok) continue;
        s.e[i].base = base;
        s.e[i].lat = c->est_latency_ms;
        s.e[i].cost = c->est_cost_usd;
        s.e[i].cls = rt_cls(c->live.cold, c->over_load);
        k++;
        if (isfinite(c->est_latency_ms) && c->est_latency_ms < best_lat)
            best_lat = c->est_latency_ms;
        if (c->est_cost_usd < best_cost) best_cost = c->est_cost_usd;
        rt_file(s.idx, n, i, c->est_latency_ms, best_lat, &s.nf, &s.ns);
    }
    if (detailed) {
        for (size_t i = 0; i < n; i++) {
            route_cand_t *c = &d->cands[i];
            c->f[ROUTE_F_LATENCY] = route_f_latency(c->est_latency_ms, best_lat);
            c->f[ROUTE_F_COST] = route_f_cost(c->est_cost_usd, best_cost);
            double t = 0;
            for (int q = 0; q < ROUTE_F__COUNT; q++) t += w[q] * c->f[q];
            c->total = t;
        }
    }
    if (!k) {
        if (!detailed) { /* nothing eligible: again with the reasons, for the 422 */
            detailed = true;
            goto again;
        }
        return;
    }
    rt_rank(d, cands, &s, n, kmax, best_lat, best_cost, w, NULL);
    if (strategy == ROUTE_STRAT_SCORE) return;
    /* balancing: the strategy picks among the eligible (under the threshold
     * when any is); the pick goes first, the ranking follows */
    bool *ok = arena_calloc(a, n * sizeof *ok);
    if (!ok) return;
    bool any_under = false;
    for (size_t i = 0; i < n; i++) any_under |= s.e[i].cls < 2;
    for (size_t i = 0; i < n; i++) ok[i] = s.e[i].cls != RT_OUT && (!any_under || s.e[i].cls < 2);
    int pick = rt_pick(d, ok, strategy, bal, rng);
    if (pick < 0) return;
    size_t at = 0;
    while (at < d->n_order && d->order[at] != cands[pick]) at++;
    if (at == d->n_order && d->n_order == kmax)
        at--; /* not ranked: it replaces the last */
    else if (at == d->n_order)
        d->n_order = d->n_ranked = d->n_order + 1;
    memmove(d->order + 1, d->order, at * sizeof *d->order);
    d->order[0] = cands[pick];
    d->chosen = pick;
}

/* Was a candidate of d filtered for its health? (d->cands: a detailed decision) */
static bool rt_any_unhealthy(const route_decision_t *d)
{
    for (size_t i = 0; i < d->n_cands; i++)
        if (!d->cands[i].eligible && d->cands[i].why == ROUTE_WHY_UNHEALTHY) return true;
    return false;
}

/* A route none of whose ranked candidates is eligible: its fallbacks that
 * are (the same filters: a capability or a context no fallback has is still
 * a 422), ranked. d keeps the candidates' reasons for an explanation. */
static void rt_rescue(const cfg_route_t *r, const route_features_t *f, uint64_t *rng, arena_t *a,
                      route_decision_t *d)
{
    bool unhealthy = rt_any_unhealthy(d);
    route_decision_t fd;
    memset(&fd, 0, sizeof fd);
    if (r->n_fallbacks) {
        double w[ROUTE_F__COUNT];
        route_weights_normalise(&r->weights, w);
        route_decide_among(r->fallbacks, r->n_fallbacks, NULL, f, w, ROUTE_STRAT_SCORE, r->region,
                           r->load_threshold, NULL, rng, a, &fd);
        if (!fd.n_order) unhealthy = unhealthy || rt_any_unhealthy(&fd);
    }
    if (fd.n_order) {
        d->order = fd.order;
        d->n_order = fd.n_order;
        d->n_ranked = 0;
        d->rescued = true;
        return;
    }
    d->unavailable = unhealthy;
    /* the fallbacks' reasons join the candidates' (the error message, an explanation) */
    route_cand_t *all = fd.n_cands ? arena_alloc(a, (d->n_cands + fd.n_cands) * sizeof *all) : NULL;
    if (all) {
        memcpy(all, d->cands, d->n_cands * sizeof *all);
        memcpy(all + d->n_cands, fd.cands, fd.n_cands * sizeof *all);
        d->cands = all;
        d->n_cands += fd.n_cands;
    }
}

/* The deployments a model name or a deployment id stands for, into cands
 * (room for cfg->n_models); *strategy: the first balance one sets, else -1. */
static size_t rt_name_cands(const config_t *cfg, const char *name, size_t len,
                            const cfg_model_t **cands, int *strategy)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_models && !n; i++) {
        const cfg_model_t *m = &cfg->models[i];
        if (m->id && strlen(m->id) == len && !memcmp(m->id, name, len)) cands[n++] = m;
    }
    if (n == 1 && strcmp(cands[0]->name, cands[0]->id) == 0) n = 0; /* the id is the name */
    bool by_id = n == 1;
    for (size_t i = 0; i < cfg->n_models && !by_id; i++) {
        const cfg_model_t *m = &cfg->models[i];
        if (strlen(m->name) != len || memcmp(m->name, name, len)) continue;
        cands[n++] = m;
        if (m->balance >= 0 && *strategy < 0) *strategy = m->balance;
    }
    return n;
}

unsigned route_name_lacks(const config_t *cfg, const char *name, size_t len)
{
    unsigned lacks = 0;
    for (size_t i = 0; i < cfg->n_models; i++) {
        const cfg_model_t *m = &cfg->models[i];
        if ((m->id && strlen(m->id) == len && !memcmp(m->id, name, len)) ||
            (strlen(m->name) == len && !memcmp(m->name, name, len))) {
            lacks |= CAP_ALL & ~m->capabilities;
            /* the candidates it brings (route_with_fallbacks, the relay's alternate) */
            for (size_t k = 0; m->fallback_models && k < m->fallbacks.n; k++)
                if (m->fallback_models[k]) lacks |= CAP_ALL & ~m->fallback_models[k]->capabilities;
            if (m->content_policy_alt) lacks |= CAP_ALL & ~m->content_policy_alt->capabilities;
        }
    }
    return lacks;
}

int route_decide(const config_t *cfg, const char *name, size_t len, const route_features_t *f,
                 arena_t *a, uint64_t now_ms, uint64_t *rng, route_decision_t *d)
{
    (void)now_ms;
    memset(d, 0, sizeof *d);
    d->target = arena_strndup(a, name, len);
    const cfg_route_t *r = config_find_route(cfg, name, len);
    if (r) {
        d->is_route = true;
        d->task = route_classify(f, r);
        const cfg_task_rule_t *t = &r->tasks[d->task];
        const cfg_model_t *const *cands = t->cands ? t->cands : r->cands;
        size_t n = t->cands ? t->n_cands : r->n_cands;
        double w[ROUTE_F__COUNT];
        route_weights_normalise(t->has_weights ? &t->weights : &r->weights, w);
        route_balance_t *bal = NULL;
        if (r->strategy == ROUTE_STRAT_ROUND_ROBIN) {
            char *key = arena_printf(a, "route:%s/%s", r->name, config_task_name(d->task));
            bal = key ? route_balance_get(key) : NULL;
        }
        const rp_t *p = r->prep[d->task];
        bool fast = p && r->strategy == ROUTE_STRAT_SCORE && !f->explain;
        if (!(fast && (rt_cache_get(p, f, r->load_threshold, a, d) ||
                       rt_decide_prepared(p, f, r->load_threshold, a, d))))
            route_decide_among(cands, n, NULL, f, w, r->strategy, r->region, r->load_threshold, bal,
                               rng, a, d);
        d->target = r->name;
        if (!d->n_order) {
            rt_rescue(r, f, rng, a, d);
            return 0;
        }
        const cfg_model_t **order = arena_alloc(a, (d->n_order + r->n_fallbacks) * sizeof *order);
        if (!order) return 0;
        memcpy(order, d->order, d->n_order * sizeof *order);
        for (size_t i = 0; i < r->n_fallbacks; i++) {
            bool dup = (f->needs & ~r->fallbacks[i]->capabilities) != 0; /* incapable: never */
            for (size_t j = 0; j < d->n_order && !dup; j++) dup = order[j] == r->fallbacks[i];
            if (!dup) order[d->n_order++] = r->fallbacks[i];
        }
        d->order = order;
        return 0;
    }
    /* A model name (all its deployments) or one deployment id. */
    const cfg_model_t **cands = arena_alloc(a, (cfg->n_models + 1) * sizeof *cands);
    if (!cands) return -1;
    int strategy = -1;
    size_t n = rt_name_cands(cfg, name, len, cands, &strategy);
    if (!n) return -1;
    /* Capabilities are hard, for an explicit name too: a deployment never
     * gets a request that needs one it lacks. None left: d->lacks says what. */
    size_t k = 0;
    unsigned common = CAP_ALL;
    for (size_t i = 0; i < n; i++) {
        unsigned miss = f->needs & ~cands[i]->capabilities;
        if (!miss)
            cands[k++] = cands[i];
        else
            common &= miss;
    }
    if (!k) {
        d->lacks = common ? common : f->needs & ~cands[0]->capabilities;
        d->target = arena_strndup(a, name, len);
        return 0;
    }
    n = k;
    if (strategy < 0) strategy = ROUTE_STRAT_ROUND_ROBIN;
    /* Explicit names win: no constraints filter the capable deployments, only
     * health and load order them; if none is healthy all are tried. */
    route_features_t fx = *f;
    fx.needs = 0;
    fx.max_cost_usd = fx.max_latency_ms = fx.min_quality = -1;
    fx.prompt_tokens = 0; /* no context-window filter for an explicit choice */
    fx.out_tokens = 0;
    double w[ROUTE_F__COUNT];
    route_weights_normalise(&config_default_weights, w);
    route_balance_t *bal = NULL;
    if (n > 1 && strategy == ROUTE_STRAT_ROUND_ROBIN) {
        char *key = arena_printf(a, "model:%.*s", (int)len, name);
        bal = key ? route_balance_get(key) : NULL;
    }
    route_decide_among(cands, n, NULL, &fx, w, n > 1 ? strategy : ROUTE_STRAT_SCORE, NULL, 0.8, bal,
                       rng, a, d);
    d->target = arena_strndup(a, name, len);
    if (!d->n_order) {
        for (size_t i = 0; i < n; i++) d->order[i] = cands[i];
        d->n_order = d->n_ranked = n;
        d->chosen = 0;
    }
    return 0;
}

/* ---------- explanations ---------- */

static void rt_num(buf_t *o, double v)
{
    if (!isfinite(v))
        buf_appends(o, "null");
    else
        buf_printf(o, "%.4g", v);
}

void route_explain_json(const route_decision_t *d, buf_t *o, size_t max_cands)
{
    buf_appends(o, "{\"target\":");
    jsonw_cstr(o, d->target ? d->target : "");
    buf_printf(o, ",\"route\":%s", d->is_route ? "true" : "false");
    if (d->is_route) {
        buf_appends(o, ",\"task\":");
        jsonw_cstr(o, config_task_name(d->task));
    }
    buf_appends(o, ",\"strategy\":");
    jsonw_cstr(o, config_strategy_name(d->strategy));
    buf_appends(o, ",\"weights\":{");
    for (int k = 0; k < ROUTE_F__COUNT; k++) {
        buf_printf(o, "%s\"%s\":", k ? "," : "", config_factor_name(k));
        rt_num(o, d->weights[k]);
    }
    buf_appends(o, "},\"choice\":");
    if (d->n_order)
        jsonw_cstr(o, d->order[0]->id);
    else
        buf_appends(o, "null");
    buf_appends(o, ",\"order\":[");
    for (size_t i = 0; i < d->n_order && i < max_cands; i++) {
        if (i) buf_appends(o, ",");
        jsonw_cstr(o, d->order[i]->id);
    }
    buf_appends(o, "],\"candidates\":[");
    for (size_t i = 0; d->detailed && i < d->n_cands && i < max_cands; i++) {
        const route_cand_t *c = &d->cands[i];
        buf_appends(o, i ? ",{\"id\":" : "{\"id\":");
        jsonw_cstr(o, c->m->id);
        buf_appends(o, ",\"model\":");
        jsonw_cstr(o, c->m->name);
        buf_appends(o, ",\"provider\":");
        jsonw_cstr(o, c->m->provider ? c->m->provider->name : "");
        buf_printf(o, ",\"eligible\":%s", c->eligible ? "true" : "false");
        if (!c->eligible) {
            buf_appends(o, ",\"reason\":");
            jsonw_cstr(o, c->reason);
        }
        buf_appends(o, ",\"total\":");
        rt_num(o, c->total);
        buf_appends(o, ",\"factors\":{");
        for (int k = 0; k < ROUTE_F__COUNT; k++) {
            buf_printf(o, "%s\"%s\":", k ? "," : "", config_factor_name(k));
            rt_num(o, c->f[k]);
        }
        buf_appends(o, "},\"est_cost_usd\":");
        rt_num(o, c->est_cost_usd);
        buf_appends(o, ",\"est_latency_ms\":");
        rt_num(o, c->est_latency_ms);
        buf_printf(o, ",\"cold\":%s,\"in_flight\":%lld,\"over_load\":%s}",
                   c->live.cold ? "true" : "false", (long long)c->live.in_flight,
                   c->over_load ? "true" : "false");
    }
    buf_appends(o, "]");
    if (d->detailed && d->n_cands > max_cands)
        buf_printf(o, ",\"candidates_omitted\":%zu", d->n_cands - max_cands);
    buf_appends(o, "}");
}

void route_explain_table(const route_decision_t *d, buf_t *o)
{
    buf_printf(o, "target: %s (%s)", d->target ? d->target : "", d->is_route ? "route" : "model");
    if (d->is_route) buf_printf(o, "  task: %s", config_task_name(d->task));
    buf_printf(o, "  strategy: %s\nweights:", config_strategy_name(d->strategy));
    for (int k = 0; k < ROUTE_F__COUNT; k++)
        buf_printf(o, " %s=%.3f", config_factor_name(k), d->weights[k]);
    buf_printf(o, "\n\n%-28s %7s %7s %7s %7s %7s %7s %7s %7s  %s\n", "candidate", "quality",
               "latency", "cost", "reliab", "size", "hardw", "dist", "TOTAL", "status");
    for (size_t i = 0; d->detailed && i < d->n_cands; i++) {
        const route_cand_t *c = &d->cands[i];
        buf_printf(o, "%-28.28s", c->m->id);
        for (int k = 0; k < ROUTE_F__COUNT; k++) buf_printf(o, " %7.3f", c->f[k]);
        const char *mark = (int)i == d->chosen ? "CHOSEN" : c->eligible ? "eligible" : "filtered: ";
        buf_printf(o, " %7.3f  %s%s%s%s\n", c->total, mark, c->eligible ? "" : c->reason,
                   c->live.cold ? " (cold)" : "", c->over_load ? " (over load threshold)" : "");
    }
    if (d->n_order) {
        buf_appends(o, "\norder:");
        for (size_t i = 0; i < d->n_order; i++)
            buf_printf(o, " %s%s", d->order[i]->id, i >= d->n_ranked ? "(fallback)" : "");
        buf_printf(o, "\nchoice: %s\n", d->order[0]->id);
    } else {
        buf_appends(o, "\nchoice: none (every candidate was filtered out -> 422)\n");
    }
}

void route_reasons(const route_decision_t *d, buf_t *o)
{
    for (size_t i = 0, shown = 0; d->detailed && i < d->n_cands; i++) {
        const route_cand_t *c = &d->cands[i];
        if (c->eligible) continue;
        if (shown++ == 16) {
            buf_appends(o, "; ...");
            break;
        }
        buf_printf(o, "%s%s: %s", shown > 1 ? "; " : "", c->m->id, c->reason);
    }
}

const cfg_model_t **route_with_fallbacks(arena_t *a, const cfg_model_t *const *base, size_t nb,
                                         unsigned needs, size_t *n_out)
{
    size_t cap = nb;
    for (size_t i = 0; i < nb; i++) cap += base[i]->fallbacks.n;
    const cfg_model_t **v = arena_calloc(a, (cap ? cap : 1) * sizeof *v);
    if (!v) return NULL;
    size_t n = 0;
    for (size_t i = 0; i < nb; i++) v[n++] = base[i];
    for (size_t i = 0; i < nb; i++) {
        const cfg_model_t *b = base[i];
        for (size_t k = 0; k < b->fallbacks.n; k++) {
            const cfg_model_t *f = b->fallback_models ? b->fallback_models[k] : NULL;
            bool dup = !f || (needs & ~f->capabilities); /* incapable: as good as tried */
            for (size_t j = 0; j < n && !dup; j++) dup = v[j] == f;
            if (!dup) v[n++] = f;
        }
    }
    *n_out = n;
    return v;
}
