/*
 * policy usage — the spend and reservations of budgets this period: one
 * key's usage object (GET /v1/key/usage, GET /admin/keys/{id}/usage) and the
 * list of every budget (GET /admin/budgets), read from the local counters or
 * in one Redis round trip (PL_AGAIN until its reply).
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/jsonw.h"
#include "policy/policy_internal.h"

/* A budget an admin read reports: a key's or a team's, this period. */
typedef struct pol_brow {
    pol_key_t *k;     /* the key, or NULL for a team budget */
    const char *team; /* the team (k == NULL), from the request's config snapshot */
    double budget_usd;
    int period; /* BUDGET_* */
    int64_t start, end, spent, reserved;
    char name[200]; /* the counter: bg:<scope>:<who>:<period start> */
} pol_brow_t;

/* An admin read of budget counters (a key's usage, or GET /admin/budgets). */
struct pol_usage_call {
    predis_call_t call; /* first */
    pl_req_t *c;        /* NULL once the request is gone */
    bool list;          /* GET /admin/budgets; else rows[0] is one key's usage */
    size_t n;
    pol_brow_t rows[];
};

/* spent and reserved of every budget counter in KEYS, flat: s1, r1, s2, r2... */
static const char POL_LUA_READ[] = "local out = {}\n"
                                   "for i, k in ipairs(KEYS) do\n"
                                   "  local v = redis.call('HMGET', k, 's', 'r')\n"
                                   "  out[2 * i - 1] = v[1]\n"
                                   "  out[2 * i] = v[2]\n"
                                   "end\n"
                                   "return out\n";

static void pol_usage_json(buf_t *o, const pol_key_t *k, int64_t spent, int64_t reserved,
                           int64_t pstart, int64_t pend, const char *source)
{
    buf_appends(o, "{\"id\":");
    jsonw_cstr(o, k->id);
    buf_appends(o, ",\"prefix\":");
    jsonw_cstr(o, k->prefix);
    buf_appends(o, ",\"name\":");
    k->name ? jsonw_cstr(o, k->name) : buf_appends(o, "null");
    buf_appends(o, ",\"team\":");
    k->team ? jsonw_cstr(o, k->team) : buf_appends(o, "null");
    buf_appends(o, ",\"user\":");
    k->user ? jsonw_cstr(o, k->user) : buf_appends(o, "null");
    buf_printf(o,
               ",\"period\":\"%s\",\"period_start\":%lld,\"reset_at\":%lld,"
               "\"budget_usd\":%.9g,\"spend_usd\":%.9f,\"reserved_usd\":%.9f",
               config_budget_period_name(k->period), (long long)pstart, (long long)pend,
               k->budget_usd, (double)spent / 1e9, (double)reserved / 1e9);
    if (k->budget_usd > 0) {
        double rem = k->budget_usd - (double)(spent + reserved) / 1e9;
        buf_printf(o, ",\"remaining_usd\":%.9f", rem > 0 ? rem : 0);
    }
    buf_printf(o,
               ",\"rpm\":%d,\"tpm\":%d,\"source\":\"%s\",\"instance\":{\"requests\":%llu,"
               "\"prompt_tokens\":%llu,\"completion_tokens\":%llu,\"spend_usd\":%.9f}}",
               k->rpm, k->tpm, source, (unsigned long long)atomic_load(&k->requests),
               (unsigned long long)atomic_load(&k->prompt_tokens),
               (unsigned long long)atomic_load(&k->completion_tokens),
               (double)atomic_load(&k->spend_nusd) / 1e9);
}

typedef struct pol_usage_call pol_usage_call_t;

static void pol_brow_init(pol_brow_t *b, pol_key_t *k, const char *team, double usd, int period)
{
    memset(b, 0, sizeof *b);
    b->k = k;
    b->team = team;
    b->budget_usd = usd;
    b->period = period;
    pc_period_bounds(period, time(NULL), &b->start, &b->end);
    pol__budget_name(b->name, sizeof b->name, k ? PC_SCOPE_KEY : PC_SCOPE_TEAM, k ? k->id : team,
                     b->start);
}

/* GET /admin/budgets: every budget with its spend this period. */
static void pol_budgets_json(buf_t *o, const pol_brow_t *v, size_t n, const char *source)
{
    buf_appends(o, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < n; i++) {
        const pol_brow_t *b = &v[i];
        buf_appends(o, i ? ",{\"scope\":" : "{\"scope\":");
        if (b->k) {
            buf_appends(o, "\"key\",\"id\":");
            jsonw_cstr(o, b->k->id);
            buf_appends(o, ",\"name\":");
            b->k->name ? jsonw_cstr(o, b->k->name) : buf_appends(o, "null");
            buf_appends(o, ",\"team\":");
            b->k->team ? jsonw_cstr(o, b->k->team) : buf_appends(o, "null");
        } else {
            buf_appends(o, "\"team\",\"team\":");
            jsonw_cstr(o, b->team);
        }
        double used = (double)(b->spent + b->reserved) / 1e9, rem = b->budget_usd - used;
        buf_printf(o,
                   ",\"period\":\"%s\",\"period_start\":%lld,\"reset_at\":%lld,"
                   "\"budget_usd\":%.9g,\"spend_usd\":%.9f,\"reserved_usd\":%.9f,"
                   "\"remaining_usd\":%.9f,\"used_pct\":%.2f}",
                   config_budget_period_name(b->period), (long long)b->start, (long long)b->end,
                   b->budget_usd, (double)b->spent / 1e9, (double)b->reserved / 1e9,
                   rem > 0 ? rem : 0, b->budget_usd > 0 ? 100.0 * used / b->budget_usd : 0);
    }
    buf_printf(o, "],\"source\":\"%s\"}", source);
}

/* Answer u's request from its rows (counters read from source). */
static pl_rc_t pol_usage_answer(pol_usage_call_t *u, const char *source)
{
    buf_t o;
    buf_init(&o, 0);
    if (u->list)
        pol_budgets_json(&o, u->rows, u->n, source);
    else
        pol_usage_json(&o, u->rows[0].k, u->rows[0].spent, u->rows[0].reserved, u->rows[0].start,
                       u->rows[0].end, source);
    pl_rc_t rc = pl_answer(u->c, 200, buf_data(&o), o.len);
    buf_free(&o);
    return rc;
}

static void pol_usage_abort(pl_req_t *c)
{
    pol_usage_call_t *u = c->pol ? c->pol->usage : NULL;
    if (u) u->c = NULL;
    if (c->pol) c->pol->usage = NULL;
}

static void pol_usage_done(predis_call_t *call, redisReply *r, bool late)
{
    pol_usage_call_t *u = (pol_usage_call_t *)call;
    pl_req_t *c = u->c;
    if (!late && c) {
        c->pol->usage = NULL;
        c->on_abort = NULL;
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 * u->n) {
            pl_resume(c, pl_fail(c, 503, NULL, "limits_unavailable", NULL,
                                 "the shared counter store is unavailable"));
        } else {
            for (size_t i = 0; i < 2 * u->n; i++) {
                int64_t v = r->element[i]->type == REDIS_REPLY_STRING
                                ? strtoll(r->element[i]->str, NULL, 10)
                                : 0;
                *(i % 2 ? &u->rows[i / 2].reserved : &u->rows[i / 2].spent) = v;
            }
            pl_resume(c, pol_usage_answer(u, "redis"));
        }
        u->c = NULL;
    }
    if (late || !call->timed_out) free(u);
}

/* Read the counters of u's rows (locally, or in Redis) and answer; takes u. */
static pl_rc_t pol_usage_read(pl_req_t *c, pol_usage_call_t *u)
{
    u->c = c;
    if (!c->cfg->redis.url || u->n == 0) {
        for (size_t i = 0; i < u->n; i++)
            pc_local_budget(u->rows[i].name, &u->rows[i].spent, &u->rows[i].reserved);
        pl_rc_t rc = pol_usage_answer(u, c->cfg->redis.url ? "redis" : "local");
        free(u);
        return rc;
    }
    pol_req_t *p = pol__req(c);
    char(*rk)[220] = malloc(u->n * sizeof *rk);
    const char **keys = malloc(u->n * sizeof *keys);
    bool queued = false;
    if (p && rk && keys) {
        for (size_t i = 0; i < u->n; i++) {
            snprintf(rk[i], sizeof rk[i], "skuld:%s", u->rows[i].name);
            keys[i] = rk[i];
        }
        u->call.done = pol_usage_done;
        queued = predis_eval(c->env->base, c->env->id, &c->cfg->redis, &u->call, POL_LUA_READ,
                             (int)u->n, keys, 0, NULL) == 0;
    }
    free(rk);
    free(keys);
    if (queued) {
        p->usage = u;
        c->on_abort = pol_usage_abort;
        return PL_AGAIN;
    }
    free(u);
    return pl_fail(c, 503, NULL, "limits_unavailable", NULL,
                   "the shared counter store is unavailable");
}

pl_rc_t policy_usage(pl_req_t *c, pol_key_t *k)
{
    pol_usage_call_t *u = calloc(1, sizeof *u + sizeof(pol_brow_t));
    if (!u) return pl_fail(c, 500, NULL, "internal_error", NULL, "out of memory");
    u->n = 1;
    pol_brow_init(&u->rows[0], k, NULL, k->budget_usd, k->period);
    return pol_usage_read(c, u);
}

pl_rc_t policy_budgets(pl_req_t *c)
{
    const cfg_budgets_t *bc = &c->cfg->budgets;
    size_t nk = 0;
    pol_key_t **keys = pol_keys_list(&nk);
    pol_usage_call_t *u = calloc(1, sizeof *u + (bc->n_teams + nk) * sizeof(pol_brow_t));
    if (!u) {
        free(keys);
        return pl_fail(c, 500, NULL, "internal_error", NULL, "out of memory");
    }
    u->list = true;
    for (size_t i = 0; i < bc->n_teams; i++)
        pol_brow_init(&u->rows[u->n++], NULL, bc->teams[i].name, bc->teams[i].usd,
                      bc->teams[i].period);
    for (size_t i = 0; i < nk; i++)
        if (keys[i]->budget_usd > 0 && !keys[i]->revoked)
            pol_brow_init(&u->rows[u->n++], keys[i], NULL, keys[i]->budget_usd, keys[i]->period);
    free(keys);
    return pol_usage_read(c, u);
}
