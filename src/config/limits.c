/*
 * limits.c — the limits section (issue 8, used by src/policy): global rpm and
 * tpm, the token reservation of a request without max_tokens, and per-team
 * and per-deployment limits (limits.models must name configured models).
 */
#include "config/config_internal.h"

#include <stdlib.h>
#include <string.h>

#define LIM(f) offsetof(cfg_limit_t, f)
static const field_t limit_item_fields[] = {
    {.key = "name", .type = FT_STRING, .off = LIM(name), .required = true},
    {.key = "rpm", .type = FT_INT, .off = LIM(rpm), .min = 0, .max = INT32_MAX},
    {.key = "tpm", .type = FT_INT, .off = LIM(tpm), .min = 0, .max = INT32_MAX},
};

enum { LI_RPM, LI_TPM, LI_DEFMAX, LI_TEAMS, LI_MODELS };
static const field_t limits_fields[] = {
    [LI_RPM] = {.key = "rpm",
                .type = FT_INT,
                .off = offsetof(cfg_limits_t, rpm),
                .min = 0,
                .max = INT32_MAX},
    [LI_TPM] = {.key = "tpm",
                .type = FT_INT,
                .off = offsetof(cfg_limits_t, tpm),
                .min = 0,
                .max = INT32_MAX},
    [LI_DEFMAX] = {.key = "default_max_tokens",
                   .type = FT_INT,
                   .off = offsetof(cfg_limits_t, default_max_tokens),
                   .min = 1,
                   .max = 10000000},
    [LI_TEAMS] = {.key = "teams", .type = FT_MAPPING},
    [LI_MODELS] = {.key = "models", .type = FT_MAPPING},
};

void config__parse_limits(loader_t *L, config_t *c, const ynode_t *map)
{
    const ynode_t *keys[COUNTOF(limits_fields)], *vals[COUNTOF(limits_fields)];
    config__walk_map(L, map, "limits", limits_fields, COUNTOF(limits_fields), &c->limits, keys,
                     vals);
    c->limits.teams = config__parse_items(L, vals[LI_TEAMS], "limits.teams", limit_item_fields,
                                          COUNTOF(limit_item_fields), sizeof(cfg_limit_t),
                                          &c->limits.n_teams, 0, NULL);
    c->limits.models = config__parse_items(L, vals[LI_MODELS], "limits.models", limit_item_fields,
                                           COUNTOF(limit_item_fields), sizeof(cfg_limit_t),
                                           &c->limits.n_models, 0, NULL);
    for (size_t i = 0; i < c->limits.n_models; i++) {
        const char *n = c->limits.models[i].name;
        if (n && !config_find_model(c, n, strlen(n)))
            config__err_at(L, vals[LI_MODELS], "limits.models: '%.64s' is not a configured model",
                           n);
    }
}

void config__limits_free(config_t *c)
{
    for (size_t i = 0; i < c->limits.n_teams; i++) free(c->limits.teams[i].name);
    free(c->limits.teams);
    for (size_t i = 0; i < c->limits.n_models; i++) free(c->limits.models[i].name);
    free(c->limits.models);
}
