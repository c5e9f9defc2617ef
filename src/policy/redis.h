/*
 * redis — the policy's shared counters (rate limits, budgets): EVAL of the
 * policy's Lua scripts over the worker's Redis connection (core/redis.h owns
 * the connection, timeouts, reconnects and the stall bounds).
 *
 * A call is bounded by redis.timeout: if no reply arrives in time, done()
 * runs with r == NULL and call->timed_out set, and the caller applies the
 * fail-open/closed policy; the real reply, if it ever comes, is then
 * delivered once more with late == true (so an admission that did happen in
 * Redis can be released). Redis down: calls fail at once while the
 * connection is re-established in the background; the gateway starts and
 * serves with Redis down.
 *
 * Ownership: the caller allocates the call (predis_call_t first in its own
 * struct). done() is called once with late == false; if that call had
 * timed_out set, exactly one more call with late == true follows (also with
 * late == true, alone, for a call still pending at shutdown). After the last
 * call predis never touches the struct again: the caller frees it there.
 */
#ifndef SKULD_POLICY_REDIS_H
#define SKULD_POLICY_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/redis.h"

struct event_base;

typedef rds_call_t predis_call_t;

/* EVAL script with keys and args. rc->url NULL: only on an open connection
 * (calls after an admission). 0: queued (done will run later, never inside
 * this call); -1: Redis unavailable right now (done never runs). */
int predis_eval(struct event_base *base, int worker_id, const cfg_redis_t *rc, predis_call_t *call,
                const char *script, int nkeys, const char *const *keys, int nargs,
                const char *const *args);

/* Failures seen (timeouts, errors, unavailable), for metrics. */
uint64_t predis_failures(void);

#endif
