/*
 * policy internals shared by the policy's request-path files:
 *   auth.c    credentials, request signing, the auth stage, the admin API's
 *             non-master credentials;
 *   admit.c   rate limits and budget reservations, the admit stage (locally
 *             or in one Redis round trip), the budget fallback;
 *   settle.c  reservations settled to the actual usage, the spend row (a
 *             subscriber of PL_EV_FINISHED);
 *   alerts.c  budget thresholds, the alert webhook;
 *   usage.c   a key's usage and GET /admin/budgets;
 *   policy.c  process state, start/stop, the metrics.
 *
 * pol_req_t is the policy's per-request state, in the request's arena
 * (r->pol), worker thread only. The counters below are process-wide atomics.
 */
#ifndef SKULD_POLICY_INTERNAL_H
#define SKULD_POLICY_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "pipeline/pipeline.h"
#include "policy/counters.h"
#include "policy/keys.h"
#include "policy/policy.h"
#include "policy/redis.h"

#define POL_MAX_CHECKS 12

enum { POL_ANON = 0, POL_MASTER, POL_KEY, POL_JWT };

typedef struct pol_pending pol_pending_t;

typedef struct pol_req {
    int kind; /* POL_* */
    pol_key_t *key;
    /* admission */
    bool admitting; /* the admit stage ran */
    size_t n;       /* checks[0..n) are set; the rest is not even zeroed (3 KiB) */
    bool admitted, settled, fallback;
    pol_pending_t *pending;       /* Redis admission in flight */
    struct pol_usage_call *usage; /* Redis usage read in flight */
    int64_t max_cost_nusd, tokens_reserved;
    pc_check_t checks[POL_MAX_CHECKS]; /* last: pol__req zeroes what comes before */
} pol_req_t;

/* policy.c */
extern store_t *pol__store;
extern _Atomic uint64_t pol__rl_rejects[PC_NSCOPE][2]; /* [scope][requests, tokens] */
extern _Atomic uint64_t pol__budget_rejects[2];        /* key, team */
extern _Atomic uint64_t pol__budget_fallbacks;
extern _Atomic uint64_t pol__alerts[3];       /* 50, 80, 100 */
extern _Atomic uint64_t pol__auth_fail[2];    /* 401, 403 */
extern _Atomic uint64_t pol__redis_policy[2]; /* fail-open admits, fail-closed rejects */
extern const char *const pol__scope_names[PC_NSCOPE];
/* The counter of a key's (PC_SCOPE_KEY) or team's budget for the period
 * starting at start (unix seconds): "bg:<scope>:<who>:<start>". */
void pol__budget_name(char *out, size_t n, int scope, const char *who, int64_t start);
/* "kind:scope:who:last" into out (n bytes, truncated like snprintf). */
void pol__counter_name(char *out, size_t n, const char *kind, const char *scope, const char *who,
                       const char *last);
/* r->pol, made on first use; NULL when out of memory. */
pol_req_t *pol__req(pl_req_t *r);

/* alerts.c: a budget's actual spend went from before to after (nano-USD). */
void pol__alert_check(const config_t *cfg, const pc_check_t *ck, int64_t before, int64_t after);

/* settle.c: send the settlement of checks (with .actual set) to Redis; fire and forget.
 * cfg (may be NULL) is referenced for the alerts. */
void pol__redis_settle(pl_env_t *env, const cfg_redis_t *rc, config_t *cfg, const pc_check_t *v,
                       size_t n);

#endif
