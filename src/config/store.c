/*
 * store.c — the store section: the database URL (sqlite://PATH,
 * postgres://, postgresql://) and the key that seals provider API keys kept
 * in it (a secret, resolved like api_key), and timeout: the bound of every
 * database call (issue 26; default 5s, 100ms..10m).
 */
#include "config/config_internal.h"

#include <stdlib.h>
#include <string.h>

static const field_t store_fields[] = {
    {.key = "url", .type = FT_STRING, .off = offsetof(cfg_store_t, url), .required = true},
    {.key = "encryption_key", .type = FT_STRING, .off = offsetof(cfg_store_t, encryption_key)},
    {.key = "timeout", .type = FT_DURATION, .off = offsetof(cfg_store_t, timeout_ms), .min = 100},
};

void config__parse_store(loader_t *L, config_t *c, const ynode_t *map)
{
    const ynode_t *keys[COUNTOF(store_fields)], *vals[COUNTOF(store_fields)];
    c->store.timeout_ms = 5000; /* STORE_TIMEOUT_DEFAULT_MS (config sits below store) */
    config__walk_map(L, map, "store", store_fields, COUNTOF(store_fields), &c->store, keys, vals);
    const char *u = c->store.url;
    if (u && strncmp(u, "sqlite://", 9) != 0 && strncmp(u, "postgres://", 11) != 0 &&
        strncmp(u, "postgresql://", 13) != 0)
        config__err_at(L, vals[0],
                       "store url must start with sqlite://, postgres:// or postgresql://");
    if (u && strncmp(u, "sqlite://", 9) == 0 && !u[9])
        config__err_at(L, vals[0], "store url sqlite:// needs a file path (sqlite://PATH)");
    if (c->store.timeout_ms > 600000)
        config__err_at(L, vals[2], "store timeout must be at most 10m");
    char *raw = c->store.encryption_key; /* issue 8: a secret, resolved like api_key */
    c->store.encryption_key = raw ? config__resolve_secret(L, vals[1], raw) : NULL;
    config__free_secret(raw);
}

void config__store_free(config_t *c)
{
    free(c->store.url);
    config__free_secret(c->store.encryption_key);
}
