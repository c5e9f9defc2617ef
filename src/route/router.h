/*
 * router — model selection: (request features, config snapshot, live stats)
 * -> decision (ordered deployments, factor scores, reasons).
 *
 * The router is pure apart from two inputs it is handed: the live stats it
 * reads through route_stats_read() (or that a caller fills in itself, as the
 * unit tests and the benchmark do) and the balancing state (route_balance_t:
 * smooth round-robin counters and a random source). It allocates its decision
 * in the arena it is given and never blocks; it may run on any worker.
 *
 * Files: features.c (request -> route_features_t), classify.c (task),
 * score.c (factors, constraints, weights), balance.c (strategies), router.c
 * (the decision and its explanation as a table or JSON). README
 * "Routing and model selection" documents every formula.
 */
#ifndef SKULD_ROUTE_ROUTER_H
#define SKULD_ROUTE_ROUTER_H

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/arena.h"
#include "core/buf.h"
#include "route/stats.h"

#define ROUTE_DEFAULT_OUT_TOKENS 256 /* when the request sets no max_tokens */
#define ROUTE_LONG_CONTEXT_TOKENS 8000
#define ROUTE_SIZE_REF_B 1000.0  /* parameters (billions) that score 1 on size */
#define ROUTE_CACHE_TTL_MS 10    /* selection cache: an entry's life while stats change */
#define ROUTE_CACHE_IDLE_MS 1000 /* ... and while no stats changed at all */
extern bool route_cache_enabled; /* default true; benchmarks switch it off */
#define ROUTE_RANK_MAX 16        /* ranked deployments kept in a decision (then fallbacks) */

/* What the router needs to know about one request. */
typedef struct route_features {
    unsigned needs;     /* CAP_* the deployment must have */
    long prompt_tokens; /* estimate: bytes of text / 4 + 4 per message */
    long out_tokens;    /* max_tokens, else ROUTE_DEFAULT_OUT_TOKENS */
    bool stream;
    bool tools, image, audio, file, json_mode;
    long answers;     /* n, or best_of when larger; 1 by default */
    const char *text; /* user text for keyword rules, ASCII lower-cased (may be NULL) */
    size_t text_len;
    double max_cost_usd;   /* x-skuld-max-cost; < 0 unset */
    double max_latency_ms; /* x-skuld-max-latency-ms; < 0 unset */
    double min_quality;    /* x-skuld-min-quality; < 0 unset */
    bool explain;          /* keep every candidate\'s details in the decision */
} route_features_t;

void route_features_init(route_features_t *f);
/* From an OpenAI-shaped body (chat, completions, embeddings); text points into
 * an arena copy capped at 64 KiB. */
void route_features_from_body(route_features_t *f, arena_t *a, int endpoint, const json_t *body);
/* The capabilities (CAP_*) a request needs: its endpoint's, and tools,
 * vision, audio, files, json and n as its body asks (the features' needs). */
unsigned route_needs_from_body(int endpoint, const json_t *body);
/* The capability an endpoint itself needs (chat, completions, embeddings). */
unsigned route_endpoint_need(int endpoint);
/* The capabilities some deployment of a model name (or id), or one of their
 * fallbacks or content-policy alternates, lacks (CAP_* of CAP_ALL); 0 when
 * every one has them all or the name is none. */
unsigned route_name_lacks(const config_t *cfg, const char *name, size_t len);
/* The first capability (lowest bit) of a mask, by name ("tools"). */
const char *route_cap_first_name(unsigned caps);
/* The gateway's estimate of the input tokens of a chat request (body), for
 * deployments that cannot count: the router's prompt estimate (bytes of
 * message text / 4 + 4 per message) plus the JSON of the tool definitions
 * (bytes / 4). */
long route_estimate_input_tokens(const json_t *body);
/* The request headers that carry routing constraints, in route_features_constraint's terms. */
#define ROUTE_N_CONSTRAINTS 3
extern const char *const route_constraint_headers[ROUTE_N_CONSTRAINTS];
/* Parses a header value into f's constraint; -1 and *err set when malformed. */
int route_features_constraint(route_features_t *f, const char *header, const char *value,
                              size_t len, const char **err);

/* Task classification with the route's rules (built-in rules where the route
 * configures none). r may be NULL (built-in rules only). */
int route_classify(const route_features_t *f, const cfg_route_t *r);

/* One candidate deployment as scored. */
typedef struct route_cand {
    const cfg_model_t *m;
    route_live_t live;
    double f[ROUTE_F__COUNT];            /* factor scores, 0..1 */
    double total;                        /* weighted mean of f */
    double est_cost_usd, est_latency_ms; /* est_latency_ms NAN when unknown (cold) */
    bool eligible;
    bool over_load; /* at or above load_threshold of a capacity */
    int why;        /* ROUTE_WHY_*: why it was filtered out */
    unsigned why_cap;
    double why_a, why_b; /* the numbers the reason quotes */
    char reason[112];    /* the reason as text (route_check, detailed decisions) */
} route_cand_t;

enum {
    ROUTE_WHY_NONE,
    ROUTE_WHY_CAPABILITY,
    ROUTE_WHY_CONTEXT,
    ROUTE_WHY_UNHEALTHY,
    ROUTE_WHY_QUALITY,
    ROUTE_WHY_COST,
    ROUTE_WHY_LATENCY,
};

/* Balancing state shared by the workers: one per model group or route. */
typedef struct route_balance {
    pthread_mutex_t mu; /* guards cur (smooth WRR) */
    size_t n;
    int64_t *cur;
} route_balance_t;

typedef struct route_decision {
    const char *target;             /* the name asked for */
    bool is_route;                  /* a route (scored) rather than a model name */
    int task;                       /* ROUTE_TASK_* (routes only) */
    int strategy;                   /* ROUTE_STRAT_* used */
    double weights[ROUTE_F__COUNT]; /* normalised, sum 1 */
    route_cand_t *cands;            /* every candidate, config order (detailed decisions only) */
    size_t n_cands;
    bool detailed;    /* cands filled: f->explain, or nothing was eligible */
    bool cached;      /* the ranking came from the selection cache */
    bool unavailable; /* nothing eligible, and a candidate was out for its health: a
                         temporary outage (503), not a request none could ever serve (422) */
    bool rescued;     /* no ranked candidate was eligible: order holds the route's fallbacks */
    const cfg_model_t **order; /* what to try: ranked eligible deployments, then fallbacks */
    size_t n_order;
    size_t n_ranked; /* of order, before the fallbacks */
    int chosen;      /* index into cands of order[0], -1 when nothing is eligible */
    unsigned lacks;  /* an explicit name none of whose deployments has every capability the
                        request needs: the ones missing (n_order 0); 0 otherwise */
} route_decision_t;

/* ---- score.c ---- */
/* Normalised weights (sum 1) into out; all-zero input gives the defaults. */
void route_weights_normalise(const cfg_weights_t *w, double out[ROUTE_F__COUNT]);
double route_score_quality(const cfg_model_t *m);
double route_score_size(double params_b);
double route_score_hardware(const char *hw);
double route_score_distance(const char *from, const cfg_model_t *m);
/* Estimated cost in USD of f on m; estimated latency in ms from live (NAN if cold). */
double route_est_cost(const cfg_model_t *m, const route_features_t *f);
/* Filters (needs, health, constraints): false and why/reason set when filtered.
 * route_check_code sets only why (no text: the hot path). */
bool route_check(route_cand_t *c, const route_features_t *f);
bool route_check_code(route_cand_t *c, const route_features_t *f);
void route_reason_format(route_cand_t *c);
/* Static factors (size, hardware, region hashes) into the model (attach time). */
void route_model_prepare(cfg_model_t *m);
uint64_t route_region_hash(const char *s, size_t n);
/* Distance from prepared hashes; same scale as route_score_distance. */
double route_score_distance_h(uint64_t from_h, uint64_t from_area_h, const cfg_model_t *m);
bool route_over_load(const route_cand_t *c, double threshold);
bool route_over_load_live(const cfg_model_t *m, const route_live_t *l, double threshold);
/* The weighted sum of the static factors (quality, size, hardware, distance). */
double route_static_sum(const double w[ROUTE_F__COUNT], double quality, double size, double hw,
                        double dist);
/* Fills c->f except latency and cost; returns the weighted sum of those five. */
double route_score_base(route_cand_t *c, const double w[ROUTE_F__COUNT], const char *region,
                        uint64_t region_h, uint64_t area_h);
/* Scores cands[0..n) (live, est_* and eligibility already set) with w. */
void route_score_all(route_cand_t *cands, size_t n, const double w[ROUTE_F__COUNT],
                     const char *region);

/* ---- balance.c ---- */
uint64_t route_rand(uint64_t *state); /* xorshift64*, state != 0 */
/* Smooth weighted round-robin (nginx): cur[i] += w[i]; pick max; cur[pick] -= sum.
 * Entries with w <= 0 are skipped; -1 when none. */
int route_swrr(int64_t *cur, const int64_t *w, size_t n);
/* Among ok[i] true: fewest in flight (ties: lowest index). */
int route_least_inflight(const route_cand_t *c, const bool *ok, size_t n);
/* Power of two choices: two random ok candidates, the lower peak-EWMA latency
 * x (in_flight + 1) wins (cold = 0 latency: tried first). */
int route_p2c(const route_cand_t *c, const bool *ok, size_t n, uint64_t *rng);
/* Random pick with probability proportional to total score. */
int route_score_weighted(const route_cand_t *c, const bool *ok, size_t n, uint64_t *rng);
/* Process-lifetime balancing state per key (model group or route name). */
route_balance_t *route_balance_get(const char *key);
void route_balance_shutdown(void);

/* ---- router.c ---- */
/* Per (route, task): the candidates' static data and score parts in one
 * compact array, so a selection reads one record plus the live stats per
 * candidate. Built at attach time (the snapshot is not yet shared); freed
 * with the config. */
void route_prepare(cfg_route_t *r);
/*
 * Decide for `name` (a route, a model name or a deployment id). Returns 0 with
 * d filled (d->n_order == 0 means nothing is eligible: 503 when
 * d->unavailable, else 422, with the reasons), or -1 when name is neither a
 * route nor a model. An explicit name keeps only its deployments with every
 * capability f->needs names (none: d->lacks set, n_order 0, a 400 for the
 * client). A route none of whose ranked candidates is eligible
 * goes to its fallbacks that are (d->rescued). live may be NULL
 * (read from the deployments' stats at now_ms) or an array parallel to the
 * candidates, for tests. rng: per-thread random state.
 */
int route_decide(const config_t *cfg, const char *name, size_t len, const route_features_t *f,
                 arena_t *a, uint64_t now_ms, uint64_t *rng, route_decision_t *d);
/* The lower-level entry: candidates given explicitly. */
void route_decide_among(const cfg_model_t *const *cands, size_t n, const route_live_t *live,
                        const route_features_t *f, const double w[ROUTE_F__COUNT], int strategy,
                        const char *region, double load_threshold, route_balance_t *bal,
                        uint64_t *rng, arena_t *a, route_decision_t *d);
/* base (the ranking), then each one's fallbacks that have every capability
 * in needs, each deployment once, in a; the one place a request's candidate
 * list is made. NULL: out of memory. */
const cfg_model_t **route_with_fallbacks(arena_t *a, const cfg_model_t *const *base, size_t nb,
                                         unsigned needs, size_t *n_out);
/* Compact JSON (no newlines) of the decision; at most max_cands candidates. */
void route_explain_json(const route_decision_t *d, buf_t *out, size_t max_cands);
/* Human table. */
void route_explain_table(const route_decision_t *d, buf_t *out);
/* "id: reason; id: reason" of the filtered candidates (for the 422 message). */
void route_reasons(const route_decision_t *d, buf_t *out);

/* ---- small scorers, inline: the selection loop calls them per candidate ---- */
#define ROUTE_COST_EPS_USD 1e-9
/* success EWMA x health-probe success ratio */
static inline double route_score_reliability(const route_live_t *l)
{
    double s = l->success * l->health_ratio;
    return s < 0 ? 0 : s > 1 ? 1 : s;
}
/* best / x with best the lowest among eligible candidates (both > 0), capped at 1 */
static inline double route_score_relative(double best, double x)
{
    if (!(x > 0)) return 1.0;
    if (!(best > 0)) best = 0;
    double s = best * (1.0 / x); /* as a product: the fast path keeps 1/x per candidate */
    return s > 1 ? 1 : s;
}
/* estimated latency (ms) of f from live stats; NAN when cold */
static inline double route_est_latency(const route_live_t *l, const route_features_t *f)
{
    if (l->cold) return NAN;
    if (f->out_tokens > 0 && isfinite(l->ttft_ms) && isfinite(l->ms_per_tok))
        return l->ttft_ms + (double)f->out_tokens * l->ms_per_tok;
    return l->lat_ms;
}
/* the relative factors, from the best (lowest) estimate among eligible candidates;
 * cold (no recent samples): optimistic 1 -- it is explored first anyway */
static inline double route_f_latency(double est, double best)
{
    /* cold (no recent samples): optimistic 1 -- it is explored first anyway */
    return isfinite(est) && isfinite(best) ? route_score_relative(best, est) : 1.0;
}
static inline double route_f_cost(double est, double best)
{
    return isfinite(best)
               ? route_score_relative(best + ROUTE_COST_EPS_USD, est + ROUTE_COST_EPS_USD)
               : 1.0;
}

#endif
