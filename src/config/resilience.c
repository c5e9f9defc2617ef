/*
 * resilience.c — one resilience block (retries, backoff, breakers, hedging,
 * deadlines, queueing), used as server.resilience (the defaults every model
 * starts from) and as a model's or a route's `resilience:` override, whose
 * keys replace the defaults one by one. The defaults are here
 * (config__set_resilience_defaults) and in the README (### Resilience).
 */
#include "config/config_internal.h"

#include <string.h>

#define RSL(f) offsetof(cfg_resilience_t, f)
enum { R_HEDGE = 9 };
static const field_t resilience_fields[] = {
    {.key = "max_attempts", .type = FT_INT, .off = RSL(max_attempts), .min = 1, .max = 10},
    {.key = "retries_per_deployment",
     .type = FT_INT,
     .off = RSL(retries_per_deployment),
     .min = 0,
     .max = 10},
    {.key = "backoff_base", .type = FT_DURATION, .off = RSL(backoff_base_ms), .min = 1},
    {.key = "backoff_max", .type = FT_DURATION, .off = RSL(backoff_max_ms), .min = 1},
    {.key = "retry_after_max", .type = FT_DURATION, .off = RSL(retry_after_max_ms), .min = 0},
    {.key = "retry_budget", .type = FT_NUMBER, .off = RSL(retry_budget), .dmin = 0, .dmax = 10},
    {.key = "retry_budget_min",
     .type = FT_INT,
     .off = RSL(retry_budget_min),
     .min = 0,
     .max = 100000},
    {.key = "per_try_timeout", .type = FT_DURATION, .off = RSL(per_try_timeout_ms), .min = 0},
    {.key = "deadline", .type = FT_DURATION, .off = RSL(deadline_ms), .min = 0},
    [R_HEDGE] = {.key = "hedge_delay", .type = FT_MAPPING}, /* off | DURATION | p95 */
    {.key = "first_chunk_timeout",
     .type = FT_DURATION,
     .off = RSL(first_chunk_timeout_ms),
     .min = 0},
    {.key = "idle_gap_timeout", .type = FT_DURATION, .off = RSL(idle_gap_timeout_ms), .min = 0},
    {.key = "breaker_failures",
     .type = FT_INT,
     .off = RSL(breaker_failures),
     .min = 0,
     .max = 1000},
    {.key = "breaker_failure_rate",
     .type = FT_NUMBER,
     .off = RSL(breaker_failure_rate),
     .dmin = 0,
     .dmax = 1},
    {.key = "breaker_window", .type = FT_DURATION, .off = RSL(breaker_window_ms), .min = 100},
    {.key = "breaker_min_requests",
     .type = FT_INT,
     .off = RSL(breaker_min_requests),
     .min = 1,
     .max = 1000000},
    {.key = "ejection_time", .type = FT_DURATION, .off = RSL(ejection_time_ms), .min = 1},
    {.key = "max_ejection_time", .type = FT_DURATION, .off = RSL(max_ejection_time_ms), .min = 1},
    {.key = "max_concurrency",
     .type = FT_INT,
     .off = RSL(max_concurrency),
     .min = 0,
     .max = 1000000},
    {.key = "queue_size", .type = FT_INT, .off = RSL(queue_size), .min = 0, .max = 1000000},
    {.key = "queue_timeout", .type = FT_DURATION, .off = RSL(queue_timeout_ms), .min = 1},
};
#undef RSL

void config__set_resilience_defaults(cfg_resilience_t *r)
{
    memset(r, 0, sizeof *r);
    r->max_attempts = 3;
    r->retries_per_deployment = 0;
    r->backoff_base_ms = 25;
    r->backoff_max_ms = 250;
    r->retry_after_max_ms = 2000;
    r->retry_budget = 0.2;
    r->retry_budget_min = 3;
    r->hedge = CFG_HEDGE_OFF;
    r->hedge_delay_ms = 10;
    r->breaker_failures = 5;
    r->breaker_failure_rate = 0.5;
    r->breaker_window_ms = 10000;
    r->breaker_min_requests = 20;
    r->ejection_time_ms = 30000;
    r->max_ejection_time_ms = 300000;
    r->queue_size = 1024;
    r->queue_timeout_ms = 5000;
}

/* Walks a `resilience:` mapping into r (which holds the defaults to override). */
void config__parse_resilience(loader_t *L, const ynode_t *map, cfg_resilience_t *r)
{
    if (map->kind != YNODE_MAPPING) {
        config__err_at(L, map, "resilience: expected a mapping, got %s", ytree_kind_name(map));
        return;
    }
    const ynode_t *keys[COUNTOF(resilience_fields)], *vals[COUNTOF(resilience_fields)];
    config__walk_map(L, map, "resilience", resilience_fields, COUNTOF(resilience_fields), r, keys,
                     vals);
    const ynode_t *h = vals[R_HEDGE];
    if (h) {
        uint64_t ms;
        if (h->kind != YNODE_SCALAR || ytree_is_null(h)) {
            config__err_at(L, h, "hedge_delay: expected off, p95 or a duration, got %s",
                           ytree_kind_name(h));
        } else if (config__scalar_is(h, "off")) {
            r->hedge = CFG_HEDGE_OFF;
        } else if (config__scalar_is(h, "p95")) {
            r->hedge = CFG_HEDGE_P95;
        } else if (config_parse_duration_ms(h->str, &ms) == 0 && ms > 0) {
            r->hedge = CFG_HEDGE_FIXED;
            r->hedge_delay_ms = ms;
        } else {
            config__err_at(L, h,
                           "hedge_delay: expected off, p95 or a duration like 200ms, got '%s'",
                           SHOWN(h));
        }
    }
    if (r->backoff_max_ms < r->backoff_base_ms)
        config__err_at(L, map, "resilience: backoff_max must be at least backoff_base");
    if (r->max_ejection_time_ms < r->ejection_time_ms)
        config__err_at(L, map, "resilience: max_ejection_time must be at least ejection_time");
}
