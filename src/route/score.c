/*
 * route score — the factors, the constraints and the weighted total.
 * Pure functions of (deployment config, live stats copy, request features).
 * Every factor is in 0..1, higher is better; the formulas are the README's
 * ("Routing and model selection") and the unit tests pin each of them.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "route/router.h"

void route_weights_normalise(const cfg_weights_t *w, double out[ROUTE_F__COUNT])
{
    double sum = 0;
    for (int i = 0; i < ROUTE_F__COUNT; i++) sum += w->w[i] > 0 ? w->w[i] : 0;
    const cfg_weights_t *src = sum > 0 ? w : &config_default_weights;
    if (!(sum > 0))
        for (int i = 0; i < ROUTE_F__COUNT; i++) sum += src->w[i];
    for (int i = 0; i < ROUTE_F__COUNT; i++) out[i] = (src->w[i] > 0 ? src->w[i] : 0) / sum;
}

double route_score_quality(const cfg_model_t *m)
{
    double q = m->quality;
    return q < 0 ? 0 : q > 1 ? 1 : q;
}

/* ln(1 + B) / ln(1 + 1000), capped at 1; unknown size 0.5. */
double route_score_size(double params_b)
{
    if (!(params_b > 0)) return 0.5;
    double s = log1p(params_b) / log1p(ROUTE_SIZE_REF_B);
    return s > 1 ? 1 : s;
}

double route_score_hardware(const char *hw)
{
    static const struct {
        const char *name;
        double score;
    } table[] = {{"gpu", 1.0}, {"tpu", 1.0}, {"cloud", 0.8}, {"npu", 0.6}, {"cpu", 0.3}};
    if (!hw) return 0.5;
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (!strcasecmp(hw, table[i].name)) return table[i].score;
    return 0.5;
}

/* 1 in-process (no base_url) or same region, 0.6 same area (text before the
 * first '-': "eu-west" ~ "eu-central"), 0.2 elsewhere, 0.5 unknown. */
double route_score_distance(const char *from, const cfg_model_t *m)
{
    if (m->provider && !m->provider->base_url) return 1.0;
    const char *to = m->region;
    if (!from || !to) return 0.5;
    if (!strcasecmp(from, to)) return 1.0;
    size_t a = strcspn(from, "-"), b = strcspn(to, "-");
    if (a == b && !strncasecmp(from, to, a)) return 0.6;
    return 0.2;
}

double route_est_cost(const cfg_model_t *m, const route_features_t *f)
{
    return (m->price.input * (double)(f->prompt_tokens > 0 ? f->prompt_tokens : 0) +
            m->price.output * (double)(f->out_tokens > 0 ? f->out_tokens : 0)) *
           1e-6;
}

static bool why(route_cand_t *c, int code, double a, double b)
{
    c->why = code;
    c->why_a = a;
    c->why_b = b;
    c->eligible = false;
    return false;
}

bool route_check_code(route_cand_t *c, const route_features_t *f)
{
    const cfg_model_t *m = c->m;
    c->eligible = true;
    c->why = ROUTE_WHY_NONE;
    unsigned missing = f->needs & ~m->capabilities;
    if (missing) {
        c->why_cap = missing & -missing;
        return why(c, ROUTE_WHY_CAPABILITY, 0, 0);
    }
    long need_ctx = f->prompt_tokens + (f->out_tokens > 0 ? f->out_tokens : 0);
    if (m->context_window > 0 && need_ctx > m->context_window)
        return why(c, ROUTE_WHY_CONTEXT, (double)m->context_window, (double)need_ctx);
    if (!c->live.healthy) return why(c, ROUTE_WHY_UNHEALTHY, 0, 0);
    if (f->min_quality >= 0 && m->quality < f->min_quality)
        return why(c, ROUTE_WHY_QUALITY, m->quality, f->min_quality);
    if (f->max_cost_usd >= 0 && c->est_cost_usd > f->max_cost_usd)
        return why(c, ROUTE_WHY_COST, c->est_cost_usd, f->max_cost_usd);
    if (f->max_latency_ms >= 0 && isfinite(c->est_latency_ms) &&
        c->est_latency_ms > f->max_latency_ms)
        return why(c, ROUTE_WHY_LATENCY, c->est_latency_ms, f->max_latency_ms);
    return true;
}

void route_reason_format(route_cand_t *c)
{
    char *o = c->reason;
    size_t n = sizeof c->reason;
    switch (c->why) {
    case ROUTE_WHY_CAPABILITY:
        snprintf(o, n, "lacks capability '%s'", config_capability_name(c->why_cap));
        break;
    case ROUTE_WHY_CONTEXT:
        snprintf(o, n, "context window %.0f < estimated %.0f tokens", c->why_a, c->why_b);
        break;
    case ROUTE_WHY_UNHEALTHY:
        snprintf(o, n, "unhealthy (last health probe failed)");
        break;
    case ROUTE_WHY_QUALITY:
        snprintf(o, n, "quality %.2f < x-skuld-min-quality %.2f", c->why_a, c->why_b);
        break;
    case ROUTE_WHY_COST:
        snprintf(o, n, "estimated cost $%.6g > x-skuld-max-cost $%.6g", c->why_a, c->why_b);
        break;
    case ROUTE_WHY_LATENCY:
        snprintf(o, n, "estimated latency %.0fms > x-skuld-max-latency-ms %.0f", c->why_a,
                 c->why_b);
        break;
    default:
        o[0] = '\0';
    }
}

bool route_check(route_cand_t *c, const route_features_t *f)
{
    bool ok = route_check_code(c, f);
    route_reason_format(c);
    return ok;
}

/* FNV-1a of the lower-cased text; never 0 (0 means "no region"). */
uint64_t route_region_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 'A' && ch <= 'Z') ch = (unsigned char)(ch + 32);
        h = (h ^ ch) * 0x100000001b3ull;
    }
    return h | 1;
}

void route_model_prepare(cfg_model_t *m)
{
    m->rs_size = (float)route_score_size(m->params_b);
    m->rs_hardware = (float)route_score_hardware(m->hardware);
    m->rs_region_h = m->region ? route_region_hash(m->region, strlen(m->region)) : 0;
    m->rs_area_h = m->region ? route_region_hash(m->region, strcspn(m->region, "-")) : 0;
    m->rs_local = m->provider && !m->provider->base_url;
    m->rs_prepared = true;
}

double route_score_distance_h(uint64_t from_h, uint64_t from_area_h, const cfg_model_t *m)
{
    if (m->rs_local) return 1.0;
    if (!from_h || !m->rs_region_h) return 0.5;
    if (from_h == m->rs_region_h) return 1.0;
    if (from_area_h == m->rs_area_h) return 0.6;
    return 0.2;
}

bool route_over_load_live(const cfg_model_t *m, const route_live_t *l, double thr)
{
    if (m->cap_concurrency > 0 && (double)l->in_flight >= thr * m->cap_concurrency) return true;
    if (m->cap_rpm > 0 && l->rpm >= thr * (double)m->cap_rpm) return true;
    if (m->cap_tpm > 0 && l->tpm >= thr * (double)m->cap_tpm) return true;
    return false;
}

bool route_over_load(const route_cand_t *c, double thr)
{
    return route_over_load_live(c->m, &c->live, thr);
}

double route_static_sum(const double w[ROUTE_F__COUNT], double quality, double size, double hw,
                        double dist)
{
    return w[ROUTE_F_QUALITY] * quality + w[ROUTE_F_SIZE] * size + w[ROUTE_F_HARDWARE] * hw +
           w[ROUTE_F_DISTANCE] * dist;
}

double route_score_base(route_cand_t *c, const double w[ROUTE_F__COUNT], const char *region,
                        uint64_t region_h, uint64_t area_h)
{
    const cfg_model_t *m = c->m;
    c->f[ROUTE_F_QUALITY] = route_score_quality(m);
    c->f[ROUTE_F_RELIABILITY] = route_score_reliability(&c->live);
    if (m->rs_prepared) {
        c->f[ROUTE_F_SIZE] = m->rs_size;
        c->f[ROUTE_F_HARDWARE] = m->rs_hardware;
        c->f[ROUTE_F_DISTANCE] = route_score_distance_h(region_h, area_h, m);
    } else {
        c->f[ROUTE_F_SIZE] = route_score_size(m->params_b);
        c->f[ROUTE_F_HARDWARE] = route_score_hardware(m->hardware);
        c->f[ROUTE_F_DISTANCE] = route_score_distance(region, m);
    }
    /* the static part first, in this order: the prepared path (router.c) adds
     * the same terms in the same order, so both give bit-identical totals */
    double s = route_static_sum(w, c->f[ROUTE_F_QUALITY], c->f[ROUTE_F_SIZE],
                                c->f[ROUTE_F_HARDWARE], c->f[ROUTE_F_DISTANCE]);
    return s + w[ROUTE_F_RELIABILITY] * c->f[ROUTE_F_RELIABILITY];
}

void route_score_all(route_cand_t *cands, size_t n, const double w[ROUTE_F__COUNT],
                     const char *region)
{
    double best_lat = INFINITY, best_cost = INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (!cands[i].eligible) continue;
        if (isfinite(cands[i].est_latency_ms) && cands[i].est_latency_ms < best_lat)
            best_lat = cands[i].est_latency_ms;
        if (cands[i].est_cost_usd < best_cost) best_cost = cands[i].est_cost_usd;
    }
    uint64_t rh = region ? route_region_hash(region, strlen(region)) : 0;
    uint64_t ah = region ? route_region_hash(region, strcspn(region, "-")) : 0;
    for (size_t i = 0; i < n; i++) {
        route_cand_t *c = &cands[i];
        double base = route_score_base(c, w, region, rh, ah);
        c->f[ROUTE_F_LATENCY] = route_f_latency(c->est_latency_ms, best_lat);
        c->f[ROUTE_F_COST] = route_f_cost(c->est_cost_usd, best_cost);
        c->total = base + w[ROUTE_F_LATENCY] * c->f[ROUTE_F_LATENCY] +
                   w[ROUTE_F_COST] * c->f[ROUTE_F_COST];
    }
}
