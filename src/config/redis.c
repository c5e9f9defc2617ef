/*
 * redis.c — the redis section (issue 8, used by src/policy and the cache's
 * Redis tier): the URL (a secret: it may carry a password), the per-command
 * timeout and what happens when Redis is down (on_failure: open | closed).
 */
#include "config/config_internal.h"

#include <stdlib.h>
#include <string.h>

#define RDS(f) offsetof(cfg_redis_t, f)
enum { R_URL, R_TIMEOUT, R_ON_FAILURE };
static const field_t redis_fields[] = {
    [R_URL] = {.key = "url", .type = FT_STRING, .off = RDS(url), .required = true},
    [R_TIMEOUT] = {.key = "timeout", .type = FT_DURATION, .off = RDS(timeout_ms), .min = 1},
    [R_ON_FAILURE] = {.key = "on_failure", .type = FT_MAPPING},
};

void config__parse_redis(loader_t *L, config_t *c, const ynode_t *map)
{
    const ynode_t *keys[COUNTOF(redis_fields)], *vals[COUNTOF(redis_fields)];
    config__walk_map(L, map, "redis", redis_fields, COUNTOF(redis_fields), &c->redis, keys, vals);
    /* The URL may carry a password: env:NAME / file:PATH like any secret. */
    char *raw = c->redis.url;
    c->redis.url = raw ? config__resolve_secret(L, vals[R_URL], raw) : NULL;
    config__free_secret(raw);
    if (c->redis.url && strncmp(c->redis.url, "redis://", 8) != 0)
        config__err_at(L, vals[R_URL], "redis url must start with redis://");
    const ynode_t *of = vals[R_ON_FAILURE];
    if (of) {
        if (config__scalar_is(of, "open"))
            c->redis.fail_open = true;
        else if (config__scalar_is(of, "closed"))
            c->redis.fail_open = false;
        else
            config__err_at(L, of, "on_failure must be open or closed");
    }
}

void config__redis_free(config_t *c)
{
    config__free_secret(c->redis.url);
}
