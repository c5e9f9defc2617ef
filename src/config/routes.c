/*
 * routes.c — the routes section (routing, issue 6): virtual models over
 * deployments. A route names its candidates (model names or deployment ids,
 * each name standing for all of its deployments), a strategy, scoring
 * weights, fallbacks, per-task rules (keywords, prompt size, content types,
 * tools, their own candidates and weights), a region and a load threshold.
 * Routes are parsed after models and may not take a model's name. Also the
 * strategy / task / factor names the rest of the code prints.
 */
#include "config/config_internal.h"

#include <stdlib.h>
#include <string.h>

const char *const config__strategy_names[ROUTE_STRAT__COUNT] = {
    "score", "round_robin", "least_inflight", "p2c", "score_weighted"};
static const char *const task_names[ROUTE_TASK__COUNT] = {"chat", "code", "reasoning",
                                                          "long_context", "vision"};
static const char *const factor_names[ROUTE_F__COUNT] = {
    "quality", "latency", "cost", "reliability", "size", "hardware", "distance"};

/* The plan's weights (size 20%, hardware 15%, reliability 20%, latency 25%,
 * distance 10%, cost 10%) plus quality 20%; the scorer divides by the sum. */
const cfg_weights_t config_default_weights = {.w = {
                                                  [ROUTE_F_QUALITY] = 0.20,
                                                  [ROUTE_F_LATENCY] = 0.25,
                                                  [ROUTE_F_COST] = 0.10,
                                                  [ROUTE_F_RELIABILITY] = 0.20,
                                                  [ROUTE_F_SIZE] = 0.20,
                                                  [ROUTE_F_HARDWARE] = 0.15,
                                                  [ROUTE_F_DISTANCE] = 0.10,
                                              }};

const char *config_strategy_name(int i)
{
    return i >= 0 && i < ROUTE_STRAT__COUNT ? config__strategy_names[i] : "?";
}
const char *config_task_name(int i)
{
    return i >= 0 && i < ROUTE_TASK__COUNT ? task_names[i] : "?";
}
const char *config_factor_name(int i)
{
    return i >= 0 && i < ROUTE_F__COUNT ? factor_names[i] : "?";
}

const cfg_route_t *config_find_route(const config_t *c, const char *name, size_t len)
{
    if (!c || !name) return NULL;
    for (size_t i = 0; i < c->n_routes; i++) {
        const char *n = c->routes[i].name;
        if (n && strlen(n) == len && memcmp(n, name, len) == 0) return &c->routes[i];
    }
    return NULL;
}

/* Resolves a list of model names / deployment ids (a sequence node) into the
 * deployments they stand for: a name gives all of its deployments, an id one.
 * Unknown names are errors at the item. Duplicates are kept once. */
static void resolve_models(loader_t *L, const config_t *c, const ynode_t *list, const char *what,
                           const cfg_model_t ***out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (!list) return;
    if (list->kind != YNODE_SEQUENCE) {
        config__err_at(L, list, "%s: expected a list of model names, got %s", what,
                       ytree_kind_name(list));
        return;
    }
    const cfg_model_t **v = calloc(c->n_models + 1, sizeof(*v));
    if (!v) {
        config__err_at(L, list, "out of memory");
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < list->n; i++) {
        const ynode_t *it = list->items[i];
        if (!config__want_scalar(L, it, what, "a model name")) continue;
        bool found = false;
        for (size_t k = 0; k < c->n_models; k++) {
            const cfg_model_t *m = &c->models[k];
            bool hit = (m->name && strcmp(m->name, it->str) == 0) ||
                       (m->id && strcmp(m->id, it->str) == 0);
            if (!hit) continue;
            found = true;
            bool dup = false;
            for (size_t d = 0; d < n && !dup; d++) dup = v[d] == m;
            if (!dup) v[n++] = m;
        }
        if (!found)
            config__err_at(L, it, "%s: '%s' is not a configured model or deployment id", what,
                           SHOWN(it));
    }
    *out = v;
    *n_out = n;
}

#define WGT(i) (offsetof(cfg_weights_t, w) + (i) * sizeof(double))
static const field_t weight_fields[ROUTE_F__COUNT] = {
    [ROUTE_F_QUALITY] = {.key = "quality",
                         .type = FT_NUMBER,
                         .off = WGT(ROUTE_F_QUALITY),
                         .dmax = 1000},
    [ROUTE_F_LATENCY] = {.key = "latency",
                         .type = FT_NUMBER,
                         .off = WGT(ROUTE_F_LATENCY),
                         .dmax = 1000},
    [ROUTE_F_COST] = {.key = "cost", .type = FT_NUMBER, .off = WGT(ROUTE_F_COST), .dmax = 1000},
    [ROUTE_F_RELIABILITY] = {.key = "reliability",
                             .type = FT_NUMBER,
                             .off = WGT(ROUTE_F_RELIABILITY),
                             .dmax = 1000},
    [ROUTE_F_SIZE] = {.key = "size", .type = FT_NUMBER, .off = WGT(ROUTE_F_SIZE), .dmax = 1000},
    [ROUTE_F_HARDWARE] = {.key = "hardware",
                          .type = FT_NUMBER,
                          .off = WGT(ROUTE_F_HARDWARE),
                          .dmax = 1000},
    [ROUTE_F_DISTANCE] = {.key = "distance",
                          .type = FT_NUMBER,
                          .off = WGT(ROUTE_F_DISTANCE),
                          .dmax = 1000},
};
#undef WGT

/* weights: {factor: number >= 0}; keys not given keep their defaults. */
static void parse_weights(loader_t *L, const ynode_t *v, cfg_weights_t *w)
{
    *w = config_default_weights;
    if (v->kind != YNODE_MAPPING) {
        config__err_at(L, v,
                       "weights: expected a mapping (quality, latency, cost, reliability, size, "
                       "hardware, distance), got %s",
                       ytree_kind_name(v));
        return;
    }
    const ynode_t *k[ROUTE_F__COUNT], *vv[ROUTE_F__COUNT];
    config__walk_map(L, v, "weights", weight_fields, ROUTE_F__COUNT, w, k, vv);
    double sum = 0;
    for (int i = 0; i < ROUTE_F__COUNT; i++) sum += w->w[i];
    if (!(sum > 0)) config__err_at(L, v, "weights: at least one weight must be above 0");
}

typedef struct task_raw {
    cfg_strlist_t keywords, content_types;
    int min_tokens;
    bool tools;
} task_raw_t;
enum { TK_KEYWORDS, TK_MIN_TOKENS, TK_CONTENT_TYPES, TK_TOOLS, TK_CANDIDATES, TK_WEIGHTS };
static const field_t task_fields[] = {
    [TK_KEYWORDS] = {.key = "keywords", .type = FT_STRLIST, .off = offsetof(task_raw_t, keywords)},
    [TK_MIN_TOKENS] = {.key = "min_tokens",
                       .type = FT_INT,
                       .off = offsetof(task_raw_t, min_tokens),
                       .min = 1,
                       .max = INT32_MAX},
    [TK_CONTENT_TYPES] = {.key = "content_types",
                          .type = FT_STRLIST,
                          .off = offsetof(task_raw_t, content_types)},
    [TK_TOOLS] = {.key = "tools", .type = FT_BOOL, .off = offsetof(task_raw_t, tools)},
    [TK_CANDIDATES] = {.key = "candidates", .type = FT_MAPPING},
    [TK_WEIGHTS] = {.key = "weights", .type = FT_MAPPING},
};

static void parse_task(loader_t *L, const config_t *c, const ynode_t *map, cfg_task_rule_t *t)
{
    task_raw_t raw = {0};
    const ynode_t *k[COUNTOF(task_fields)], *v[COUNTOF(task_fields)];
    config__walk_map(L, map, "task", task_fields, COUNTOF(task_fields), &raw, k, v);
    t->set = true;
    t->keywords = raw.keywords;
    t->content_types = raw.content_types;
    t->min_tokens = raw.min_tokens;
    t->tools = k[TK_TOOLS] ? raw.tools : -1;
    static const char *const ctypes[] = {"image", "audio", "file"};
    for (size_t i = 0; i < t->content_types.n; i++)
        if (config__name_index(ctypes, COUNTOF(ctypes), t->content_types.v[i]) < 0)
            config__err_at(L, v[TK_CONTENT_TYPES]->items[i],
                           "unknown content type '%s' (known: image, audio, file)",
                           t->content_types.v[i]);
    if (v[TK_CANDIDATES]) {
        resolve_models(L, c, v[TK_CANDIDATES], "candidates", &t->cands, &t->n_cands);
        if (v[TK_CANDIDATES]->kind == YNODE_SEQUENCE && !v[TK_CANDIDATES]->n)
            config__err_at(L, v[TK_CANDIDATES], "candidates: the list is empty");
    }
    if (v[TK_WEIGHTS]) {
        t->has_weights = true;
        parse_weights(L, v[TK_WEIGHTS], &t->weights);
    }
}

enum {
    R_NAME,
    R_CANDIDATES,
    R_STRATEGY,
    R_WEIGHTS,
    R_FALLBACKS,
    R_TASKS,
    R_REGION,
    R_LOAD,
    R_RESILIENCE
};
typedef struct route_raw {
    char *name, *strategy, *region;
    double load_threshold;
} route_raw_t;
static const field_t route_fields[] = {
    [R_NAME] = {.key = "name",
                .type = FT_STRING,
                .off = offsetof(route_raw_t, name),
                .required = true},
    [R_CANDIDATES] = {.key = "candidates", .type = FT_MAPPING, .required = true},
    [R_STRATEGY] = {.key = "strategy", .type = FT_STRING, .off = offsetof(route_raw_t, strategy)},
    [R_WEIGHTS] = {.key = "weights", .type = FT_MAPPING},
    [R_FALLBACKS] = {.key = "fallbacks", .type = FT_MAPPING},
    [R_TASKS] = {.key = "tasks", .type = FT_MAPPING},
    [R_REGION] = {.key = "region", .type = FT_STRING, .off = offsetof(route_raw_t, region)},
    [R_LOAD] = {.key = "load_threshold",
                .type = FT_NUMBER,
                .off = offsetof(route_raw_t, load_threshold),
                .dmin = 0.01,
                .dmax = 1},
    [R_RESILIENCE] = {.key = "resilience", .type = FT_MAPPING},
};

static void parse_route(loader_t *L, config_t *c, const ynode_t *map, cfg_route_t *r, size_t idx)
{
    route_raw_t raw = {.load_threshold = 0.8};
    const ynode_t *k[COUNTOF(route_fields)], *v[COUNTOF(route_fields)];
    config__walk_map(L, map, "route", route_fields, COUNTOF(route_fields), &raw, k, v);
    r->name = raw.name;
    r->region = raw.region;
    r->load_threshold = raw.load_threshold;
    if (v[R_RESILIENCE]) { /* the server's defaults, then the route's keys */
        r->resil = calloc(1, sizeof *r->resil);
        if (!r->resil) {
            config__err_at(L, map, "out of memory");
        } else {
            *r->resil = c->server.resilience;
            config__parse_resilience(L, v[R_RESILIENCE], r->resil);
        }
    }
    r->weights = config_default_weights;
    r->strategy = ROUTE_STRAT_SCORE;
    for (int t = 0; t < ROUTE_TASK__COUNT; t++) r->tasks[t].tools = -1;
    if (raw.name) {
        if (!config__model_name_ok(raw.name))
            config__err_at(L, v[R_NAME],
                           "invalid route name '%s' (must be non-empty, no whitespace)",
                           SHOWN(v[R_NAME]));
        else if (config_find_model(c, raw.name, strlen(raw.name)))
            config__err_at(L, v[R_NAME], "route name '%s' is already a model name or deployment id",
                           SHOWN(v[R_NAME]));
        for (size_t j = 0; j < idx; j++)
            if (c->routes[j].name && strcmp(c->routes[j].name, raw.name) == 0) {
                config__err_at(L, v[R_NAME], "duplicate route name '%s'", SHOWN(v[R_NAME]));
                break;
            }
    }
    if (raw.strategy) {
        int s = config__name_index(config__strategy_names, ROUTE_STRAT__COUNT, raw.strategy);
        char list[160];
        if (s < 0)
            config__err_at(L, v[R_STRATEGY], "unknown strategy '%s' (known: %s)",
                           SHOWN(v[R_STRATEGY]),
                           config__name_list(list, config__strategy_names, ROUTE_STRAT__COUNT));
        else
            r->strategy = s;
        free(raw.strategy);
    }
    if (v[R_CANDIDATES]) {
        resolve_models(L, c, v[R_CANDIDATES], "candidates", &r->cands, &r->n_cands);
        if (v[R_CANDIDATES]->kind == YNODE_SEQUENCE && !v[R_CANDIDATES]->n)
            config__err_at(L, v[R_CANDIDATES], "candidates: the list is empty");
    }
    if (v[R_FALLBACKS])
        resolve_models(L, c, v[R_FALLBACKS], "fallbacks", &r->fallbacks, &r->n_fallbacks);
    if (v[R_WEIGHTS]) parse_weights(L, v[R_WEIGHTS], &r->weights);
    const ynode_t *tasks = v[R_TASKS];
    if (tasks && tasks->kind != YNODE_MAPPING) {
        config__err_at(L, tasks, "tasks: expected a mapping of task name to rules, got %s",
                       ytree_kind_name(tasks));
    } else if (tasks) {
        for (size_t i = 0; i < tasks->n; i++) {
            const ynode_t *tk = tasks->pairs[i].key, *tv = tasks->pairs[i].value;
            if (!config__check_key(L, tk) || config__duplicate_key(L, tasks, i, "in tasks"))
                continue;
            int t = config__name_index(task_names, ROUTE_TASK__COUNT, tk->str);
            if (t < 0) {
                config__unknown_key(L, tk, "in tasks", task_names, ROUTE_TASK__COUNT);
                continue;
            }
            if (tv->kind != YNODE_MAPPING) {
                config__err_at(L, tv, "tasks.%s: expected a mapping, got %s", task_names[t],
                               ytree_kind_name(tv));
                continue;
            }
            parse_task(L, c, tv, &r->tasks[t]);
        }
    }
}

static void route_free(cfg_route_t *r)
{
    free(r->name);
    free(r->region);
    free(r->resil);
    free(r->cands);
    free(r->fallbacks);
    for (int t = 0; t < ROUTE_TASK__COUNT; t++) {
        free(r->prep[t]);
        config__strlist_free(&r->tasks[t].keywords);
        config__strlist_free(&r->tasks[t].content_types);
        free(r->tasks[t].cands);
    }
}

/* The routes list (a non-empty sequence), after models: routes name them. */
void config__parse_routes(loader_t *L, config_t *c, const ynode_t *routes)
{
    c->routes = calloc(routes->n, sizeof(*c->routes));
    if (!c->routes) {
        config__err_at(L, routes, "out of memory");
    } else {
        for (size_t i = 0; i < routes->n; i++) {
            const ynode_t *item = routes->items[i];
            if (item->kind != YNODE_MAPPING) {
                config__err_at(L, item, "routes: expected a mapping, got %s",
                               ytree_kind_name(item));
                continue;
            }
            size_t idx = c->n_routes++;
            parse_route(L, c, item, &c->routes[idx], idx);
        }
    }
}

void config__routes_free(config_t *c)
{
    for (size_t i = 0; i < c->n_routes; i++) route_free(&c->routes[i]);
    free(c->routes);
}
