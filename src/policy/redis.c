/*
 * redis.c — see redis.h.
 */
#include "policy/redis.h"

#include <stdio.h>

#define PREDIS_MAX_ARGV 72

static rds_client_t predis_client = {.name = "policy"};

uint64_t predis_failures(void)
{
    return rds_failures(&predis_client);
}

int predis_eval(struct event_base *base, int worker_id, const cfg_redis_t *rc, predis_call_t *call,
                const char *script, int nkeys, const char *const *keys, int nargs,
                const char *const *args)
{
    const char *argv[PREDIS_MAX_ARGV];
    char nk[16];
    int argc = 0;
    if (nkeys + nargs + 3 > PREDIS_MAX_ARGV) return -1;
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[argc++] = "EVAL";
    argv[argc++] = script;
    argv[argc++] = nk;
    for (int i = 0; i < nkeys; i++) argv[argc++] = keys[i];
    for (int i = 0; i < nargs; i++) argv[argc++] = args[i];
    return rds_command(base, worker_id, rc->url, &predis_client, call,
                       rc->timeout_ms ? rc->timeout_ms : 50, argc, argv, NULL);
}
