/*
 * cache.c — the cache section (issue 9, src/cache): the exact response cache
 * (ttl, memory tier size and shards, largest entry, sampled requests, the
 * persistent and Redis tiers) and in-flight de-duplication. Whether the
 * persistent and Redis tiers have a store / redis url to use is checked by
 * config.c once every section is parsed.
 */
#include "config/config_internal.h"

enum {
    C_ENABLED,
    C_TTL,
    C_MAX_BYTES,
    C_MAX_ENTRY,
    C_SHARDS,
    C_SAMPLED,
    C_PERSISTENT,
    C_REDIS,
    C_DEDUPE
};
#define CCH(f) offsetof(cfg_cache_t, f)
static const field_t cache_fields[] = {
    [C_ENABLED] = {.key = "enabled", .type = FT_BOOL, .off = CCH(enabled)},
    [C_TTL] = {.key = "ttl", .type = FT_DURATION, .off = CCH(ttl_ms), .min = 1},
    [C_MAX_BYTES] = {.key = "max_bytes", .type = FT_SIZE, .off = CCH(max_bytes), .min = 1024},
    [C_MAX_ENTRY] = {.key = "max_entry_bytes",
                     .type = FT_SIZE,
                     .off = CCH(max_entry_bytes),
                     .min = 64},
    [C_SHARDS] = {.key = "shards", .type = FT_INT, .off = CCH(shards), .min = 1, .max = 256},
    [C_SAMPLED] = {.key = "cache_sampled", .type = FT_BOOL, .off = CCH(cache_sampled)},
    [C_PERSISTENT] = {.key = "persistent", .type = FT_BOOL, .off = CCH(persistent)},
    [C_REDIS] = {.key = "redis", .type = FT_BOOL, .off = CCH(redis)},
    [C_DEDUPE] = {.key = "dedupe", .type = FT_MAPPING},
};
#undef CCH

#define DDP(f) offsetof(cfg_dedupe_t, f)
static const field_t dedupe_fields[] = {
    {.key = "enabled", .type = FT_BOOL, .off = DDP(enabled)},
    {.key = "window", .type = FT_DURATION, .off = DDP(window_ms), .min = 0},
    {.key = "max_joiners", .type = FT_INT, .off = DDP(max_joiners), .min = 0, .max = 1000000},
};
#undef DDP

void config__set_cache_defaults(cfg_cache_t *k)
{
    k->ttl_ms = 60000;
    k->max_bytes = 64u << 20;
    k->max_entry_bytes = 4u << 20;
    k->shards = 16;
    k->dedupe.enabled = true;
    k->dedupe.window_ms = 5000;
    k->dedupe.max_joiners = 1000;
}

void config__parse_cache(loader_t *L, config_t *c, const ynode_t *map, const ynode_t **redis_at,
                         const ynode_t **persistent_at)
{
    const ynode_t *keys[COUNTOF(cache_fields)], *vals[COUNTOF(cache_fields)];
    c->cache.present = true;
    config__walk_map(L, map, "cache", cache_fields, COUNTOF(cache_fields), &c->cache, keys, vals);
    const ynode_t *d = vals[C_DEDUPE];
    if (d && !ytree_is_null(d)) {
        if (d->kind != YNODE_MAPPING) {
            config__err_at(L, d, "cache.dedupe: expected a mapping, got %s", ytree_kind_name(d));
        } else {
            const ynode_t *dk[COUNTOF(dedupe_fields)], *dv[COUNTOF(dedupe_fields)];
            config__walk_map(L, d, "cache.dedupe", dedupe_fields, COUNTOF(dedupe_fields),
                             &c->cache.dedupe, dk, dv);
        }
    }
    if (c->cache.max_entry_bytes > c->cache.max_bytes && vals[C_MAX_ENTRY])
        config__err_at(L, vals[C_MAX_ENTRY], "cache max_entry_bytes is larger than max_bytes");
    else if (c->cache.max_entry_bytes > c->cache.max_bytes)
        c->cache.max_entry_bytes = c->cache.max_bytes;
    *redis_at = vals[C_REDIS];
    *persistent_at = vals[C_PERSISTENT];
}
