/*
 * budgets.c — the budgets section (issue 8, used by src/policy): per-team
 * spend budgets (USD over a daily, weekly or monthly period), what happens
 * when one is exhausted (reject, or fall back to budgets.fallback_model) and
 * the alert webhook. Also the period names shared with the policy code.
 */
#include "config/config_internal.h"

#include <stdlib.h>
#include <string.h>

#define BGT(f) offsetof(cfg_budget_t, f)
enum { BI_NAME, BI_USD, BI_PERIOD };
static const field_t budget_item_fields[] = {
    [BI_NAME] = {.key = "name", .type = FT_STRING, .off = BGT(name), .required = true},
    [BI_USD] = {.key = "budget_usd",
                .type = FT_NUMBER,
                .off = BGT(usd),
                .dmin = 0,
                .dmax = 1e12,
                .required = true},
    [BI_PERIOD] = {.key = "period", .type = FT_MAPPING},
};

static const char *const budget_period_names[] = {
    [BUDGET_DAILY] = "daily", [BUDGET_WEEKLY] = "weekly", [BUDGET_MONTHLY] = "monthly"};

int config_budget_period(const char *s)
{
    for (int p = 0; s && p < (int)COUNTOF(budget_period_names); p++)
        if (!strcmp(s, budget_period_names[p])) return p;
    return -1;
}

const char *config_budget_period_name(int period)
{
    return period >= 0 && period < (int)COUNTOF(budget_period_names) ? budget_period_names[period]
                                                                     : "unknown";
}

enum { BU_ON_EXCEEDED, BU_FALLBACK, BU_WEBHOOK, BU_TEAMS };
static const field_t budgets_fields[] = {
    [BU_ON_EXCEEDED] = {.key = "on_exceeded", .type = FT_MAPPING},
    [BU_FALLBACK] = {.key = "fallback_model",
                     .type = FT_STRING,
                     .off = offsetof(cfg_budgets_t, fallback_model)},
    [BU_WEBHOOK] = {.key = "alert_webhook",
                    .type = FT_STRING,
                    .off = offsetof(cfg_budgets_t, alert_webhook)},
    [BU_TEAMS] = {.key = "teams", .type = FT_MAPPING},
};

void config__parse_budgets(loader_t *L, config_t *c, const ynode_t *map)
{
    const ynode_t *keys[COUNTOF(budgets_fields)], *vals[COUNTOF(budgets_fields)];
    config__walk_map(L, map, "budgets", budgets_fields, COUNTOF(budgets_fields), &c->budgets, keys,
                     vals);
    const ynode_t *oe = vals[BU_ON_EXCEEDED];
    if (oe) {
        if (config__scalar_is(oe, "reject"))
            c->budgets.fallback = false;
        else if (config__scalar_is(oe, "fallback"))
            c->budgets.fallback = true;
        else
            config__err_at(L, oe, "on_exceeded must be reject or fallback");
    }
    const char *fm = c->budgets.fallback_model;
    if (c->budgets.fallback && !fm)
        config__err_at(L, oe, "on_exceeded: fallback needs budgets.fallback_model");
    if (fm && !config_find_model(c, fm, strlen(fm)))
        config__err_at(L, vals[BU_FALLBACK],
                       "budgets.fallback_model '%.64s' is not a configured model", fm);
    const ynode_t **periods = NULL;
    c->budgets.teams = config__parse_items(L, vals[BU_TEAMS], "budgets.teams", budget_item_fields,
                                           COUNTOF(budget_item_fields), sizeof(cfg_budget_t),
                                           &c->budgets.n_teams, BI_PERIOD, &periods);
    for (size_t i = 0; i < c->budgets.n_teams; i++) {
        const ynode_t *p = periods[i];
        c->budgets.teams[i].period = BUDGET_MONTHLY;
        if (p) {
            int v = p->kind == YNODE_SCALAR ? config_budget_period(p->str) : -1;
            if (v < 0)
                config__err_at(L, p, "period must be daily, weekly or monthly");
            else
                c->budgets.teams[i].period = v;
        }
    }
    free(periods);
}

void config__budgets_free(config_t *c)
{
    free(c->budgets.fallback_model);
    free(c->budgets.alert_webhook);
    for (size_t i = 0; i < c->budgets.n_teams; i++) free(c->budgets.teams[i].name);
    free(c->budgets.teams);
}
