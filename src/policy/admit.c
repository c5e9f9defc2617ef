/*
 * policy admit — the admit stage (policy_internal.h).
 *
 * Admission reserves, per request, on every counter that applies:
 *   requests 1 and tokens (prompt estimate + max_tokens) on the key, team,
 *   deployment (limits.models) and global windows; and the maximum cost
 *   price.input * prompt_estimate + price.output * max_tokens on the key's
 *   and team's budget for the current period.
 * The prompt estimate is body bytes / 4 + 8 tokens (an over-estimate for
 * English and JSON); max_tokens is the request's max_tokens or
 * max_completion_tokens, else the deployment's observed output p99 (capped
 * by its context window), else limits.default_max_tokens; times the answers
 * the request asks for (n, or best_of when larger: each one is billed).
 *
 * A budget that is exhausted sends the request to budgets.fallback_model
 * when one is configured: r->asked becomes that model and the driver runs
 * resolve again (the one place candidates are made); the second admission
 * charges no budget. With Redis the admission is one EVAL (PL_AGAIN until
 * its reply); redis.on_failure decides when Redis cannot answer.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/cost.h"
#include "core/log.h"
#include "policy/policy_internal.h"
#include "route/stats.h"

/* ------------------------------------------------------------------------ */
/* admission */

static const char POL_LUA_ADMIT[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1])\n"
    "local nowms = now * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local out = {1, 0, now, nowms}\n"
    "for i = 1, #KEYS do\n"
    "  local kind = ARGV[4*i-3]\n"
    "  local limit = tonumber(ARGV[4*i-2])\n"
    "  local amt = tonumber(ARGV[4*i-1])\n"
    "  local used, reset = 0, 0\n"
    "  if kind == 'r' then\n"
    "    local h = redis.call('HGETALL', KEYS[i])\n"
    "    local oldest = 0\n"
    "    for j = 1, #h, 2 do\n"
    "      local s = tonumber(h[j])\n"
    "      local v = tonumber(h[j+1])\n"
    "      if s <= now - 60 then redis.call('HDEL', KEYS[i], h[j])\n"
    "      elseif v > 0 then\n"
    "        used = used + v\n"
    "        if oldest == 0 or s < oldest then oldest = s end\n"
    "      end\n"
    "    end\n"
    "    if oldest > 0 then reset = (oldest + 60) * 1000 - nowms end\n"
    "  else\n"
    "    local v = redis.call('HMGET', KEYS[i], 's', 'r')\n"
    "    used = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)\n"
    "  end\n"
    "  out[#out+1] = used\n"
    "  out[#out+1] = reset\n"
    "  if limit > 0 and used + amt > limit then\n"
    "    out[1] = 0\n"
    "    out[2] = i\n"
    "    return out\n"
    "  end\n"
    "end\n"
    "for i = 1, #KEYS do\n"
    "  local amt = tonumber(ARGV[4*i-1])\n"
    "  if ARGV[4*i-3] == 'r' then\n"
    "    redis.call('HINCRBY', KEYS[i], now, amt)\n"
    "    redis.call('EXPIRE', KEYS[i], 61)\n"
    "  else\n"
    "    redis.call('HINCRBY', KEYS[i], 'r', amt)\n"
    "    redis.call('EXPIRE', KEYS[i], tonumber(ARGV[4*i]))\n"
    "  end\n"
    "end\n"
    "return out\n";

static void pol_add_rate(pol_req_t *p, int scope, const char *who, int rpm, int tpm)
{
    if (rpm > 0 && p->n < POL_MAX_CHECKS) {
        pc_check_t *k = &p->checks[p->n++];
        memset(k, 0, sizeof *k);
        pol__counter_name(k->name, sizeof k->name, "rl", pol__scope_names[scope], who, "req");
        k->kind = 'r', k->scope = scope, k->unit = PC_REQ, k->limit = rpm, k->amount = 1;
    }
    if (tpm > 0 && p->n < POL_MAX_CHECKS) {
        pc_check_t *k = &p->checks[p->n++];
        memset(k, 0, sizeof *k);
        pol__counter_name(k->name, sizeof k->name, "rl", pol__scope_names[scope], who, "tok");
        k->kind = 'r', k->scope = scope, k->unit = PC_TOK, k->limit = tpm;
        k->amount = p->tokens_reserved;
    }
}

static void pol_add_budget(pol_req_t *p, int scope, const char *who, double usd, int period)
{
    if (p->n >= POL_MAX_CHECKS) return;
    int64_t start, end;
    pc_period_bounds(period, time(NULL), &start, &end);
    pc_check_t *k = &p->checks[p->n++];
    memset(k, 0, sizeof *k);
    pol__budget_name(k->name, sizeof k->name, scope, who, start);
    k->kind = 'b', k->scope = scope, k->unit = PC_USD;
    int64_t lim = pc_nusd(usd);
    k->limit = lim > (1ll << 52) ? (1ll << 52) : lim;
    k->amount = p->max_cost_nusd;
    k->period_end = end;
    k->ttl_s = end - start + 7 * 86400;
}

static const cfg_limit_t *pol_find_limit(const cfg_limit_t *v, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (v[i].name && strcmp(v[i].name, name) == 0) return &v[i];
    return NULL;
}

#define POL_MAX_ANSWERS 128 /* OpenAI's own limit on n */

/* The output tokens to reserve for a request that sets no max_tokens: what
 * the deployment's answers have needed (their p99, once it has enough
 * samples), at most its context window; else limits.default_max_tokens.
 * Never more than the cap the deployment itself applies (default_max_tokens
 * of a local model). */
static int64_t pol_default_out(const pl_req_t *c, const cfg_model_t *m)
{
    int64_t out = m->rstats ? (int64_t)route_stats_out_p99(m->rstats) : 0;
    if (out <= 0) out = c->cfg->limits.default_max_tokens;
    if (m->default_max_tokens > 0 && out > m->default_max_tokens) out = m->default_max_tokens;
    if (m->context_window > 0 && out > m->context_window) out = m->context_window;
    return out;
}

static void pol_build_checks(pl_req_t *c, pol_req_t *p)
{
    const config_t *cfg = c->cfg;
    const cfg_model_t *m = c->model;
    int64_t mtv = 0, nv = 1, bv = 1;
    bool mt_int = false;
    if (!c->body && c->fast) { /* the fast path: only scanned (core/jscan.h) */
        const jscan_t *f = c->fast;
        mt_int = f->max_tokens == JS_INT || f->max_completion_tokens == JS_INT;
        mtv = f->max_tokens == JS_INT ? f->max_tokens_v : f->max_completion_tokens_v;
        if (f->n == JS_INT) nv = f->n_v;
        if (f->best_of == JS_INT) bv = f->best_of_v;
    } else {
        json_t *mt = json_object_get(c->body, "max_tokens");
        if (!json_is_integer(mt)) mt = json_object_get(c->body, "max_completion_tokens");
        mt_int = json_is_integer(mt);
        mtv = mt_int ? json_integer_value(mt) : 0;
        json_t *jn = json_object_get(c->body, "n"), *jb = json_object_get(c->body, "best_of");
        if (json_is_integer(jn)) nv = json_integer_value(jn);
        if (json_is_integer(jb)) bv = json_integer_value(jb);
    }
    int64_t max_out = mt_int && mtv > 0 ? mtv : pol_default_out(c, m);
    if (c->ep == EP_EMBEDDINGS) max_out = 0;
    if (max_out > 100000000) max_out = 100000000;
    /* every answer generated is billed: n of them, or best_of (>= n) */
    int64_t answers = nv > bv ? nv : bv;
    if (answers < 1) answers = 1;
    if (answers > POL_MAX_ANSWERS) answers = POL_MAX_ANSWERS;
    max_out *= answers;
    int64_t prompt_est = (int64_t)(c->raw_len / 4) + 8;
    p->tokens_reserved = prompt_est + max_out;
    p->max_cost_nusd = pc_nusd(cost_usd(&m->price, (long)prompt_est, 0, (long)max_out));
    p->n = 0;
    /* A token count generates nothing and costs nothing: it counts against
     * the request limits only (tpm 0: no token check), and no budget. */
    bool count = c->ep == EP_COUNT_TOKENS;
    if (count) p->tokens_reserved = p->max_cost_nusd = 0;
    if (p->key) pol_add_rate(p, PC_SCOPE_KEY, p->key->id, p->key->rpm, count ? 0 : p->key->tpm);
    const cfg_limit_t *tl = pol_find_limit(cfg->limits.teams, cfg->limits.n_teams, c->team);
    if (tl) pol_add_rate(p, PC_SCOPE_TEAM, tl->name, tl->rpm, count ? 0 : tl->tpm);
    const cfg_limit_t *dl = pol_find_limit(cfg->limits.models, cfg->limits.n_models, m->name);
    if (dl) pol_add_rate(p, PC_SCOPE_DEPLOYMENT, dl->name, dl->rpm, count ? 0 : dl->tpm);
    pol_add_rate(p, PC_SCOPE_GLOBAL, "all", cfg->limits.rpm, count ? 0 : cfg->limits.tpm);
    /* a fallback request is not charged to the exhausted budgets */
    if (p->fallback || count) return;
    if (p->key) pol_add_budget(p, PC_SCOPE_KEY, p->key->id, p->key->budget_usd, p->key->period);
    if (c->team)
        for (size_t i = 0; i < cfg->budgets.n_teams; i++)
            if (cfg->budgets.teams[i].name && !strcmp(cfg->budgets.teams[i].name, c->team))
                pol_add_budget(p, PC_SCOPE_TEAM, c->team, cfg->budgets.teams[i].usd,
                               cfg->budgets.teams[i].period);
}

/* "20ms", "1s", "6m0s", like OpenAI's x-ratelimit-reset-* (out: 48 bytes). */
static void pol_fmt_reset(char *out, int64_t ms)
{
    if (ms < 0) ms = 0;
    size_t n;
    if (ms < 1000) {
        n = buf_fmt_u64(out, (uint64_t)ms);
        memcpy(out + n, "ms", 3);
    } else if (ms < 60000) {
        n = buf_fmt_u64(out, (uint64_t)((ms + 999) / 1000));
        memcpy(out + n, "s", 2);
    } else {
        n = buf_fmt_u64(out, (uint64_t)(ms / 60000));
        out[n++] = 'm';
        n += buf_fmt_u64(out + n, (uint64_t)(ms % 60000 / 1000));
        memcpy(out + n, "s", 2);
    }
}

/* x-ratelimit-* from the tightest window of each unit. admitted: counts
 * include this request. No printf: this runs on every admitted request. */
static void pol_rate_headers(pl_req_t *c, pol_req_t *p, bool admitted)
{
    static const char *const names[2][3] = {
        {"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
         "x-ratelimit-reset-requests"},
        {"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"},
    };
    for (int unit = PC_REQ; unit <= PC_TOK; unit++) {
        const pc_check_t *best = NULL;
        int64_t best_rem = 0;
        for (size_t i = 0; i < p->n; i++) {
            const pc_check_t *k = &p->checks[i];
            if (k->kind != 'r' || k->unit != unit) continue;
            int64_t rem = k->limit - k->used - (admitted ? k->amount : 0);
            if (rem < 0) rem = 0;
            if (!best || rem < best_rem) best = k, best_rem = rem;
        }
        if (!best) continue;
        const char *const *nm = names[unit == PC_REQ ? 0 : 1];
        char v[48];
        buf_fmt_u64(v, (uint64_t)(best->limit > 0 ? best->limit : 0));
        pl_header(c, nm[0], v);
        buf_fmt_u64(v, (uint64_t)best_rem);
        pl_header(c, nm[1], v);
        int64_t reset = best->reset_ms;
        if (admitted && reset <= 0) reset = PC_WINDOW_S * 1000;
        pol_fmt_reset(v, reset);
        pl_header(c, nm[2], v);
    }
}

/* Admitted: on to the next stage. */
static pl_rc_t pol_go(pl_req_t *c)
{
    c->on_abort = NULL;
    return PL_NEXT;
}

static pl_rc_t pol_admit_run(pl_req_t *c, pol_req_t *p);

/* The outcome of an admission (local or Redis): failed = index or -1. */
static pl_rc_t pol_admit_result(pl_req_t *c, pol_req_t *p, bool ok, int failed, int64_t now_ms)
{
    if (ok) {
        p->admitted = true;
        pol_rate_headers(c, p, true);
        return pol_go(c);
    }
    c->on_abort = NULL;
    pc_check_t *k = &p->checks[failed];
    if (k->kind == 'b') {
        atomic_fetch_add(&pol__budget_rejects[k->scope == PC_SCOPE_TEAM], 1);
        const char *fm = c->cfg->budgets.fallback_model;
        const cfg_model_t *fb =
            c->cfg->budgets.fallback && fm ? config_find_model(c->cfg, fm, strlen(fm)) : NULL;
        if (fb && fb != c->model && !p->fallback) {
            /* resolved again for the fallback model, then admitted again
             * without the exhausted budgets */
            atomic_fetch_add(&pol__budget_fallbacks, 1);
            p->fallback = true;
            c->budget_fallback = true;
            c->asked = fm;
            c->asked_len = strlen(fm);
            pl_header(c, "x-skuld-budget", "fallback");
            return pl_redirect(c, PL_STAGE_RESOLVE);
        }
        int64_t secs = (k->period_end * 1000 - now_ms + 999) / 1000;
        if (secs < 1) secs = 1;
        pl_headerf(c, "Retry-After", "%lld", (long long)secs);
        char lim[48], used[48], need[48];
        cost_format((double)k->limit / 1e9, lim, sizeof lim);
        cost_format((double)k->used / 1e9, used, sizeof used);
        cost_format((double)k->amount / 1e9, need, sizeof need);
        return pl_fail(c, 429, "insufficient_quota", "budget_exceeded", NULL,
                       "the %s budget of $%s for this period cannot cover this request ($%s spent "
                       "or reserved, this request may cost up to $%s; resets in %llds)",
                       k->scope == PC_SCOPE_TEAM ? "team" : "key", lim, used, need,
                       (long long)secs);
    }
    atomic_fetch_add(&pol__rl_rejects[k->scope][k->unit == PC_TOK], 1);
    /* checks after the failed one were not evaluated */
    p->n = (size_t)failed + 1;
    pol_rate_headers(c, p, false);
    int64_t ra = (k->reset_ms + 999) / 1000;
    if (ra < 1) ra = 1;
    pl_headerf(c, "Retry-After", "%lld", (long long)ra);
    return pl_fail(c, 429, NULL, "rate_limit_exceeded", NULL,
                   "rate limit reached: %s %s per minute for this %s (limit %lld); retry in %llds",
                   k->unit == PC_TOK ? "tokens" : "requests", k->unit == PC_TOK ? "used" : "made",
                   pol__scope_names[k->scope], (long long)k->limit, (long long)ra);
}

/* ---- Redis admission ---- */

struct pol_pending {
    predis_call_t call; /* first */
    pl_req_t *c;        /* NULL once the request is gone */
    pl_env_t *env;
    bool fail_open;
    pc_check_t checks[POL_MAX_CHECKS];
    size_t n;
};

static void pol_pending_abort(pl_req_t *c)
{
    pol_req_t *p = c->pol;
    if (p && p->pending) {
        p->pending->c = NULL;
        p->pending = NULL;
    }
}

/* Redis could not answer an admission (down, error, timeout): redis.on_failure
 * decides. Nothing was reserved, so nothing is settled. */
static pl_rc_t pol_redis_unavailable(pl_req_t *c, pol_req_t *p)
{
    p->n = 0;
    if (c->cfg->redis.fail_open) {
        atomic_fetch_add(&pol__redis_policy[0], 1);
        return pol_go(c);
    }
    atomic_fetch_add(&pol__redis_policy[1], 1);
    c->on_abort = NULL;
    return pl_fail(c, 503, NULL, "limits_unavailable", NULL,
                   "the shared limit store is unavailable (redis.on_failure: closed)");
}

static void pol_admit_done(predis_call_t *call, redisReply *r, bool late)
{
    pol_pending_t *pp = (pol_pending_t *)call;
    bool ok_reply = r && r->type == REDIS_REPLY_ARRAY && r->elements >= 4 + 2 * 0;
    if (late || !pp->c) {
        /* Nobody waits for this answer (timed out, or the client left): an
         * admission that happened in Redis is released. With fail-open the
         * request ran uncounted; its request count is kept. */
        if (ok_reply && r->element[0]->integer == 1 && (late || !pp->c)) {
            for (size_t i = 0; i < pp->n; i++) {
                pp->checks[i].slot = r->element[2]->integer;
                pp->checks[i].actual = pp->checks[i].unit == PC_REQ && pp->fail_open && late
                                           ? pp->checks[i].amount
                                           : 0;
            }
            cfg_redis_t rc = {.timeout_ms = 2000};
            pol__redis_settle(pp->env, &rc, NULL, pp->checks, pp->n);
        }
        if (late || !call->timed_out) free(pp);
        return;
    }
    pl_req_t *c = pp->c;
    pol_req_t *p = c->pol;
    p->pending = NULL;
    if (!r || !ok_reply) {
        /* unavailable, error or timeout: the configured policy decides */
        pp->c = NULL;
        if (!call->timed_out) free(pp);
        pl_resume(c, pol_redis_unavailable(c, p));
        return;
    }
    bool admitted = r->element[0]->integer == 1;
    int failed = (int)r->element[1]->integer - 1;
    int64_t now_s = r->element[2]->integer, now_ms = r->element[3]->integer;
    size_t have = (r->elements - 4) / 2;
    for (size_t i = 0; i < p->n && i < have; i++) {
        p->checks[i].used = r->element[4 + 2 * i]->integer;
        p->checks[i].reset_ms = r->element[5 + 2 * i]->integer;
        if (p->checks[i].kind == 'b')
            p->checks[i].reset_ms = p->checks[i].period_end * 1000 - now_ms;
        p->checks[i].slot = now_s;
    }
    free(pp);
    if (!admitted && (failed < 0 || (size_t)failed >= p->n)) failed = 0;
    pl_resume(c, pol_admit_result(c, p, admitted, failed, now_ms));
}

static pl_rc_t pol_admit_redis(pl_req_t *c, pol_req_t *p)
{
    pol_pending_t *pp = calloc(1, sizeof *pp);
    if (!pp) return pl_fail(c, 500, NULL, "internal_error", NULL, "out of memory");
    pp->call.done = pol_admit_done;
    pp->c = c;
    pp->env = c->env;
    pp->fail_open = c->cfg->redis.fail_open;
    memcpy(pp->checks, p->checks, p->n * sizeof p->checks[0]);
    pp->n = p->n;
    const char *keys[POL_MAX_CHECKS], *args[4 * POL_MAX_CHECKS];
    char names[POL_MAX_CHECKS][200], nums[POL_MAX_CHECKS][3][24];
    for (size_t i = 0; i < p->n; i++) {
        const pc_check_t *k = &p->checks[i];
        snprintf(names[i], sizeof names[i], "skuld:%s", k->name);
        keys[i] = names[i];
        snprintf(nums[i][0], 24, "%lld", (long long)k->limit);
        snprintf(nums[i][1], 24, "%lld", (long long)k->amount);
        snprintf(nums[i][2], 24, "%lld", (long long)(k->ttl_s > 0 ? k->ttl_s : 61));
        args[4 * i] = k->kind == 'r' ? "r" : "b";
        args[4 * i + 1] = nums[i][0];
        args[4 * i + 2] = nums[i][1];
        args[4 * i + 3] = nums[i][2];
    }
    if (predis_eval(c->env->base, c->env->id, &c->cfg->redis, &pp->call, POL_LUA_ADMIT, (int)p->n,
                    keys, (int)(4 * p->n), args) != 0) {
        free(pp);
        return pol_redis_unavailable(c, p);
    }
    p->pending = pp;
    c->on_abort = pol_pending_abort;
    return PL_AGAIN;
}

static pl_rc_t pol_admit_run(pl_req_t *c, pol_req_t *p)
{
    pol_build_checks(c, p);
    if (!p->n) return pol_go(c);
    if (c->cfg->redis.url) return pol_admit_redis(c, p);
    size_t failed = 0;
    int64_t now_ms = (int64_t)time_wall_ms();
    int ok = pc_local_admit(p->checks, p->n, now_ms, &failed);
    return pol_admit_result(c, p, ok == 1, (int)failed, now_ms);
}

/* A key's `models` list names name (or the key has none). */
static bool pol_key_allows(const pol_key_t *k, const char *name)
{
    if (!k || !k->models.n) return true;
    for (size_t i = 0; i < k->models.n; i++)
        if (strcmp(k->models.v[i], name) == 0) return true;
    return false;
}

bool policy_model_visible(pl_req_t *r, const char *name)
{
    const pol_req_t *p = r->pol;
    return !p || pol_key_allows(p->key, name);
}

static pl_rc_t pol_admit_stage_run(pl_req_t *c)
{
    pol_req_t *p = pol__req(c);
    if (!p) return PL_NEXT;
    p->admitting = true;
    if (!p->fallback) {
        bool allowed = pol_key_allows(p->key, c->model->name);
        if (!allowed) {
            atomic_fetch_add(&pol__auth_fail[1], 1);
            return pl_fail(c, 403, NULL, "model_not_allowed", "model",
                           "this API key may not use the model '%s'", c->model->name);
        }
    }
    return pol_admit_run(c, p);
}

const pl_stage_t policy_admit_stage = {"admit", pol_admit_stage_run};
