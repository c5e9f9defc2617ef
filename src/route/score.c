/*
 * route score — the factors, the constraints and the weighted total.
 * Pure functions of (deployment config, live stats copy, request features).
 * Every factor is in 0..1, higher is better; the formulas are the README's
 * ("Routing and model selection") and the unit tests pin each of them.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "route/router.h"

#define COST_EPS_USD 1e-9

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

double route_score_reliability(const route_live_t *l)
{
    double s = l->success * l->health_ratio;
    return s < 0 ? 0 : s > 1 ? 1 : s;
}

double route_score_relative(double best, double x)
{
    if (!(x > 0)) return 1.0;
    if (!(best > 0)) best = 0;
    double s = best / x;
    return s > 1 ? 1 : s;
}

double route_est_cost(const cfg_model_t *m, const route_features_t *f)
{
    return (m->price.input * (double)(f->prompt_tokens > 0 ? f->prompt_tokens : 0) +
            m->price.output * (double)(f->out_tokens > 0 ? f->out_tokens : 0)) /
           1e6;
}

double route_est_latency(const route_live_t *l, const route_features_t *f)
{
    if (l->cold) return NAN;
    if (f->out_tokens > 0 && isfinite(l->ttft_ms) && isfinite(l->tps) && l->tps > 0)
        return l->ttft_ms + (double)f->out_tokens * 1000.0 / l->tps;
    return l->lat_ms;
}

static void why(route_cand_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void why(route_cand_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof c->reason, fmt, ap);
    va_end(ap);
    c->eligible = false;
}

bool route_check(route_cand_t *c, const route_features_t *f)
{
    const cfg_model_t *m = c->m;
    c->eligible = true;
    c->reason[0] = '\0';
    unsigned missing = f->needs & ~m->capabilities;
    if (missing) {
        unsigned bit = missing & -missing;
        why(c, "lacks capability '%s'", config_capability_name(bit));
        return false;
    }
    long need_ctx = f->prompt_tokens + (f->out_tokens > 0 ? f->out_tokens : 0);
    if (m->context_window > 0 && need_ctx > m->context_window) {
        why(c, "context window %lld < estimated %ld tokens", (long long)m->context_window,
            need_ctx);
        return false;
    }
    if (!c->live.healthy) {
        why(c, "unhealthy (last health probe failed)");
        return false;
    }
    if (f->min_quality >= 0 && m->quality < f->min_quality) {
        why(c, "quality %.2f < x-skuld-min-quality %.2f", m->quality, f->min_quality);
        return false;
    }
    if (f->max_cost_usd >= 0 && c->est_cost_usd > f->max_cost_usd) {
        why(c, "estimated cost $%.6g > x-skuld-max-cost $%.6g", c->est_cost_usd, f->max_cost_usd);
        return false;
    }
    if (f->max_latency_ms >= 0 && isfinite(c->est_latency_ms) &&
        c->est_latency_ms > f->max_latency_ms) {
        why(c, "estimated latency %.0fms > x-skuld-max-latency-ms %.0f", c->est_latency_ms,
            f->max_latency_ms);
        return false;
    }
    return true;
}

bool route_over_load(const route_cand_t *c, double thr)
{
    const cfg_model_t *m = c->m;
    if (m->cap_concurrency > 0 && (double)c->live.in_flight >= thr * m->cap_concurrency)
        return true;
    if (m->cap_rpm > 0 && c->live.rpm >= thr * (double)m->cap_rpm) return true;
    if (m->cap_tpm > 0 && c->live.tpm >= thr * (double)m->cap_tpm) return true;
    return false;
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
    for (size_t i = 0; i < n; i++) {
        route_cand_t *c = &cands[i];
        const cfg_model_t *m = c->m;
        c->f[ROUTE_F_QUALITY] = route_score_quality(m);
        /* cold (no recent samples): optimistic 1, so it gets traffic and is measured */
        c->f[ROUTE_F_LATENCY] = isfinite(c->est_latency_ms) && isfinite(best_lat)
                                    ? route_score_relative(best_lat, c->est_latency_ms)
                                    : 1.0;
        c->f[ROUTE_F_COST] =
            isfinite(best_cost)
                ? route_score_relative(best_cost + COST_EPS_USD, c->est_cost_usd + COST_EPS_USD)
                : 1.0;
        c->f[ROUTE_F_RELIABILITY] = route_score_reliability(&c->live);
        c->f[ROUTE_F_SIZE] = route_score_size(m->params_b);
        c->f[ROUTE_F_HARDWARE] = route_score_hardware(m->hardware);
        c->f[ROUTE_F_DISTANCE] = route_score_distance(region, m);
        double t = 0;
        for (int k = 0; k < ROUTE_F__COUNT; k++) t += w[k] * c->f[k];
        c->total = t;
    }
}
