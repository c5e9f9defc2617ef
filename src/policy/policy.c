/*
 * policy.c — process state of the policy (the store, the metrics), start-up
 * and shutdown. The request path is in auth.c, admit.c, settle.c, alerts.c
 * and usage.c (policy_internal.h); policy.h has the contract, counters.h the
 * arithmetic.
 */
#include "policy/policy.h"

#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"
#include "policy/jwks.h"
#include "policy/policy_internal.h"
#include "policy/secrets.h"
#include "upstream/gtoken.h"

/* ------------------------------------------------------------------------ */
/* process state and metrics */

store_t *pol__store;
_Atomic uint64_t pol__rl_rejects[PC_NSCOPE][2]; /* [scope][requests, tokens] */
_Atomic uint64_t pol__budget_rejects[2];        /* key, team */
_Atomic uint64_t pol__budget_fallbacks;
_Atomic uint64_t pol__alerts[3];       /* 50, 80, 100 */
_Atomic uint64_t pol__auth_fail[2];    /* 401, 403 */
_Atomic uint64_t pol__redis_policy[2]; /* fail-open admits, fail-closed rejects */

void pol__counter_name(char *out, size_t n, const char *kind, const char *scope, const char *who,
                       const char *last)
{
    /* what snprintf(out, n, "%s:%s:%s:%s", ...) writes (truncated to n - 1), without printf:
     * two names per admitted request */
    const char *part[4] = {kind, scope, who, last};
    size_t w = 0;
    for (int i = 0; i < 4 && n; i++) {
        if (i && w + 1 < n) out[w++] = ':';
        for (const char *s = part[i]; *s && w + 1 < n; s++) out[w++] = *s;
    }
    if (n) out[w] = '\0';
}

void pol__budget_name(char *out, size_t n, int scope, const char *who, int64_t start)
{
    char num[BUF_U64_DIGITS + 1];
    if (start < 0) {
        num[0] = '-';
        buf_fmt_u64(num + 1, (uint64_t)0 - (uint64_t)start);
    } else {
        buf_fmt_u64(num, (uint64_t)start);
    }
    pol__counter_name(out, n, "bg", pol__scope_names[scope], who, num);
}

/* The spend log rebuilds the local budget counters (without Redis they live
 * in memory): what each key and team spent in its current period. */
typedef struct pol_restore {
    const config_t *cfg;
    time_t now;
    double usd;
    size_t rows;
} pol_restore_t;

static void pol_restore_one(pol_restore_t *rs, int scope, const char *who, int period, int64_t day,
                            double cost)
{
    int64_t start, end;
    pc_period_bounds(period, rs->now, &start, &end);
    if (day * 86400 < start || day * 86400 >= end) return;
    char name[200];
    pol__budget_name(name, sizeof name, scope, who, start);
    pc_local_restore(name, pc_nusd(cost));
    rs->usd += cost;
}

static void pol_restore_row(void *ud, const char *key_id, const char *team, int64_t day,
                            double cost)
{
    pol_restore_t *rs = ud;
    rs->rows++;
    pol_key_t *k = key_id ? pol_keys_find_id(key_id) : NULL;
    if (k && k->budget_usd > 0) pol_restore_one(rs, PC_SCOPE_KEY, k->id, k->period, day, cost);
    const cfg_budgets_t *b = &rs->cfg->budgets;
    for (size_t i = 0; team && i < b->n_teams; i++)
        if (b->teams[i].name && strcmp(b->teams[i].name, team) == 0)
            pol_restore_one(rs, PC_SCOPE_TEAM, team, b->teams[i].period, day, cost);
}

static void pol_restore_spend(store_t *store, const config_t *cfg)
{
    pol_restore_t rs = {.cfg = cfg, .now = time(NULL)};
    int64_t ws, we, ms, me; /* the earliest period start: this week's or this month's */
    pc_period_bounds(BUDGET_WEEKLY, rs.now, &ws, &we);
    pc_period_bounds(BUDGET_MONTHLY, rs.now, &ms, &me);
    int64_t since = ws < ms ? ws : ms;
    if (store_spend_load(store, since * 1000, pol_restore_row, &rs) != 0) {
        log_error("budgets: the spend log could not be read: budgets start from zero");
        return;
    }
    if (rs.usd > 0)
        log_info("budgets: $%.6f spent this period restored from the spend log (%zu sums)", rs.usd,
                 rs.rows);
}

void policy_start(store_t *store, config_t *cfg)
{
    pol__store = store;
    if (store && pol_keys_load(store) != 0) log_error("keys: cannot load keys from the store");
    if (pol_keys_count()) log_info("keys: %zu virtual key(s) loaded", pol_keys_count());
    if (store && !cfg->redis.url) pol_restore_spend(store, cfg); /* Redis keeps its own */
    if (store) psec_load(store, cfg->store.encryption_key);
    psec_apply(cfg);
    pol_jwks_configure(cfg);
    gtok_configure(cfg); /* vertex providers: their first access tokens, then kept fresh */
}

void policy_prepare_snapshot(config_t *cfg)
{
    psec_apply(cfg);
    pol_jwks_configure(cfg); /* auth.jwt.jwks_url: fetched now if new, then kept fresh */
    gtok_configure(cfg);
}

void policy_stop(void)
{
    pol_jwks_shutdown();
    gtok_shutdown();
}

void policy_refresh(store_t *store)
{
    if (store) pol_keys_load(store);
}

store_t *policy_store(void)
{
    return pol__store;
}

const char *const pol__scope_names[PC_NSCOPE] = {"key", "team", "deployment", "global"};

void policy_metrics_render(buf_t *o)
{
    buf_appends(o, "# HELP skuld_ratelimit_rejections_total Requests refused by a rate limit.\n"
                   "# TYPE skuld_ratelimit_rejections_total counter\n");
    for (int s = 0; s < PC_NSCOPE; s++)
        for (int u = 0; u < 2; u++)
            buf_printf(o, "skuld_ratelimit_rejections_total{scope=\"%s\",limit=\"%s\"} %llu\n",
                       pol__scope_names[s], u ? "tokens" : "requests",
                       (unsigned long long)atomic_load(&pol__rl_rejects[s][u]));
    buf_appends(o, "# HELP skuld_budget_rejections_total Requests refused by an exhausted budget.\n"
                   "# TYPE skuld_budget_rejections_total counter\n");
    for (int s = 0; s < 2; s++)
        buf_printf(o, "skuld_budget_rejections_total{scope=\"%s\"} %llu\n", pol__scope_names[s],
                   (unsigned long long)atomic_load(&pol__budget_rejects[s]));
    buf_printf(o,
               "# HELP skuld_budget_fallbacks_total Requests sent to budgets.fallback_model.\n"
               "# TYPE skuld_budget_fallbacks_total counter\nskuld_budget_fallbacks_total %llu\n",
               (unsigned long long)atomic_load(&pol__budget_fallbacks));
    buf_appends(o, "# HELP skuld_budget_alerts_total Budget thresholds crossed.\n"
                   "# TYPE skuld_budget_alerts_total counter\n");
    static const int th[3] = {50, 80, 100};
    for (int i = 0; i < 3; i++)
        buf_printf(o, "skuld_budget_alerts_total{threshold=\"%d\"} %llu\n", th[i],
                   (unsigned long long)atomic_load(&pol__alerts[i]));
    buf_printf(o,
               "# HELP skuld_auth_rejections_total Requests refused by authentication.\n"
               "# TYPE skuld_auth_rejections_total counter\n"
               "skuld_auth_rejections_total{status=\"401\"} %llu\n"
               "skuld_auth_rejections_total{status=\"403\"} %llu\n",
               (unsigned long long)atomic_load(&pol__auth_fail[0]),
               (unsigned long long)atomic_load(&pol__auth_fail[1]));
    buf_printf(o,
               "# HELP skuld_redis_failures_total Redis calls that failed or timed out.\n"
               "# TYPE skuld_redis_failures_total counter\nskuld_redis_failures_total %llu\n"
               "# HELP skuld_redis_policy_total Requests decided by redis.on_failure.\n"
               "# TYPE skuld_redis_policy_total counter\n"
               "skuld_redis_policy_total{on_failure=\"open\"} %llu\n"
               "skuld_redis_policy_total{on_failure=\"closed\"} %llu\n",
               (unsigned long long)predis_failures(),
               (unsigned long long)atomic_load(&pol__redis_policy[0]),
               (unsigned long long)atomic_load(&pol__redis_policy[1]));
}

pol_req_t *pol__req(pl_req_t *r)
{
    if (!r->pol) {
        pol_req_t *p = arena_alloc(r->arena, sizeof(pol_req_t));
        if (p) memset(p, 0, offsetof(pol_req_t, checks)); /* each check is zeroed when added */
        r->pol = p;
    }
    return r->pol;
}
