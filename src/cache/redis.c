/*
 * cache redis — see redis.h.
 */
#include "cache/redis.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/redis.h"

#define RKEY_PREFIX "skuld:cache:"
#define RSCAN_COUNT "1000"

static rds_client_t rclient = {.name = "cache"};

uint64_t cache_redis_errors(void)
{
    return rds_failures(&rclient);
}

static void rkey(cache_key_t k, char out[sizeof RKEY_PREFIX + 32])
{
    snprintf(out, sizeof RKEY_PREFIX + 32, RKEY_PREFIX "%016llx%016llx", (unsigned long long)k.hi,
             (unsigned long long)k.lo);
}

typedef struct rget {
    rds_call_t call; /* first */
    cache_redis_get_fn fn;
    void *ud;
} rget_t;

static void rget_done(rds_call_t *call, redisReply *rep, bool late)
{
    rget_t *g = (rget_t *)call;
    if (!late) {
        if (rep && rep->type == REDIS_REPLY_STRING)
            g->fn(g->ud, 1, rep->str, (size_t)rep->len);
        else if (rep && rep->type == REDIS_REPLY_NIL)
            g->fn(g->ud, 0, NULL, 0);
        else
            g->fn(g->ud, -1, NULL, 0);
        if (call->timed_out) return; /* the late reply follows */
    } else if (!call->timed_out) {
        g->fn(g->ud, -1, NULL, 0); /* shutdown: never answered */
    }
    free(g);
}

int cache_redis_get(struct event_base *base, int wid, const cfg_redis_t *rc, cache_key_t key,
                    cache_redis_get_fn fn, void *ud)
{
    rget_t *g = calloc(1, sizeof *g);
    if (!g) return -1;
    g->call.done = rget_done;
    g->fn = fn;
    g->ud = ud;
    char k[sizeof RKEY_PREFIX + 32];
    rkey(key, k);
    const char *argv[2] = {"GET", k};
    if (rds_command(base, wid, rc->url, &rclient, &g->call, rc->timeout_ms ? rc->timeout_ms : 50, 2,
                    argv, NULL) != 0) {
        free(g);
        return -1;
    }
    return 0;
}

void cache_redis_set(struct event_base *base, int wid, const cfg_redis_t *rc, cache_key_t key,
                     const void *val, size_t len, uint64_t ttl_ms)
{
    char k[sizeof RKEY_PREFIX + 32], ttl[24];
    rkey(key, k);
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)(ttl_ms ? ttl_ms : 1));
    const char *argv[5] = {"SET", k, val, "PX", ttl};
    size_t lens[5] = {3, strlen(k), len, 2, strlen(ttl)};
    rds_command(base, wid, rc->url, &rclient, NULL, 0, 5, argv, lens);
}

/* One SCAN step of a purge; its reply UNLINKs what it found and scans on. */
typedef struct rpurge {
    rds_call_t call; /* first */
    struct event_base *base;
    int wid;
} rpurge_t;

static int rpurge_scan(struct event_base *base, int wid, const char *url, const char *cursor);

static void rpurge_done(rds_call_t *call, redisReply *rep, bool late)
{
    rpurge_t *p = (rpurge_t *)call;
    if (!late && rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_STRING && rep->element[1]->type == REDIS_REPLY_ARRAY) {
        redisReply *keys = rep->element[1];
        if (keys->elements) {
            size_t n = keys->elements + 1;
            const char **argv = calloc(n, sizeof *argv);
            size_t *lens = calloc(n, sizeof *lens);
            if (argv && lens) {
                argv[0] = "UNLINK";
                lens[0] = 6;
                for (size_t i = 0; i < keys->elements; i++) {
                    argv[i + 1] = keys->element[i]->str;
                    lens[i + 1] = (size_t)keys->element[i]->len;
                }
                rds_command(p->base, p->wid, NULL, &rclient, NULL, 0, (int)n, argv, lens);
            }
            free(argv);
            free(lens);
        }
        if (strcmp(rep->element[0]->str, "0") != 0)
            rpurge_scan(p->base, p->wid, NULL, rep->element[0]->str);
    }
    free(p); /* no timer: done runs once */
}

static int rpurge_scan(struct event_base *base, int wid, const char *url, const char *cursor)
{
    rpurge_t *p = calloc(1, sizeof *p);
    if (!p) return -1;
    p->call.done = rpurge_done;
    p->base = base;
    p->wid = wid;
    const char *argv[6] = {"SCAN", cursor, "MATCH", RKEY_PREFIX "*", "COUNT", RSCAN_COUNT};
    if (rds_command(base, wid, url, &rclient, &p->call, 0, 6, argv, NULL) != 0) {
        free(p);
        return -1;
    }
    return 0;
}

int cache_redis_purge(struct event_base *base, int wid, const cfg_redis_t *rc)
{
    return rpurge_scan(base, wid, rc->url, "0");
}
