/*
 * policy settle — at PL_EV_FINISHED, once per request: the reservations the
 * admit stage made are settled to the actual usage (or released when
 * nothing was used), locally or in Redis, budget alerts are checked on what
 * was actually spent, the key's usage counters move, and the spend row goes
 * to the store's writer thread.
 *
 * Redis: a settlement that could not even be sent (Redis unreachable) is
 * retried every second for a minute; one that was sent is never repeated
 * (its outcome may be unknown, and a repeat would charge twice).
 */
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cost.h"
#include "core/log.h"
#include "pipeline/events.h"
#include "policy/policy_internal.h"

static const char POL_LUA_SETTLE[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1])\n"
    "local out = {}\n"
    "for i = 1, #KEYS do\n"
    "  local kind = ARGV[4*i-3]\n"
    "  local slot = ARGV[4*i-2]\n"
    "  local amt = tonumber(ARGV[4*i-1])\n"
    "  local act = tonumber(ARGV[4*i])\n"
    "  local before, after = 0, 0\n"
    "  if kind == 'r' then\n"
    "    if act ~= amt and tonumber(slot) > now - 60 and"
    "       redis.call('HEXISTS', KEYS[i], slot) == 1 then\n"
    "      local v = redis.call('HINCRBY', KEYS[i], slot, act - amt)\n"
    "      if v < 0 then redis.call('HSET', KEYS[i], slot, 0) end\n"
    "    end\n"
    "  elseif redis.call('EXISTS', KEYS[i]) == 1 then\n"
    "    before = tonumber(redis.call('HGET', KEYS[i], 's') or '0')\n"
    /* 0 - amt, not -amt: a free request's -0 is sent as "-0", which HINCRBY
     * refuses ("value is not an integer"), failing the whole settlement. */
    "    local r = redis.call('HINCRBY', KEYS[i], 'r', 0 - amt)\n"
    "    if r < 0 then redis.call('HSET', KEYS[i], 'r', 0) end\n"
    "    after = redis.call('HINCRBY', KEYS[i], 's', act)\n"
    "  end\n"
    "  out[#out+1] = before\n"
    "  out[#out+1] = after\n"
    "end\n"
    "return out\n";

typedef struct pol_settle_call {
    predis_call_t call;
    pc_check_t checks[POL_MAX_CHECKS];
    size_t n;
    config_t *cfg; /* reference for alerts; NULL when none */
    struct event_base *base;
    int worker_id;
    cfg_redis_t rc; /* timeout and policy only (url stays with the snapshot) */
    struct event *retry;
    int tries;
} pol_settle_call_t;

#define POL_SETTLE_TRIES 60 /* one a second: a minute of Redis being unreachable */

static void pol_settle_free(pol_settle_call_t *s)
{
    if (s->retry) event_free(s->retry);
    if (s->cfg) config_unref(s->cfg);
    free(s);
}

static void pol_settle_done(predis_call_t *call, redisReply *r, bool late)
{
    pol_settle_call_t *s = (pol_settle_call_t *)call;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 * s->n) {
        for (size_t i = 0; i < s->n; i++)
            if (s->checks[i].kind == 'b')
                pol__alert_check(s->cfg, &s->checks[i], r->element[2 * i]->integer,
                                 r->element[2 * i + 1]->integer);
    }
    if (!late && call->timed_out) return; /* the late reply follows */
    pol_settle_free(s);
}

static void pol_settle_send(pol_settle_call_t *s);

static void pol_settle_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pol_settle_send(arg);
}

/* A settlement that could not even be sent (Redis unreachable) is retried
 * every second for a minute; one that was sent is never repeated (its
 * outcome may be unknown, and a repeat would charge twice). */
static void pol_settle_send(pol_settle_call_t *s)
{
    const char *keys[POL_MAX_CHECKS], *args[4 * POL_MAX_CHECKS];
    char names[POL_MAX_CHECKS][200], nums[POL_MAX_CHECKS][3][24];
    const pc_check_t *v = s->checks;
    for (size_t i = 0; i < s->n; i++) {
        snprintf(names[i], sizeof names[i], "skuld:%.190s", v[i].name);
        keys[i] = names[i];
        snprintf(nums[i][0], 24, "%lld", (long long)v[i].slot);
        snprintf(nums[i][1], 24, "%lld", (long long)v[i].amount);
        snprintf(nums[i][2], 24, "%lld", (long long)v[i].actual);
        args[4 * i] = v[i].kind == 'r' ? "r" : "b";
        args[4 * i + 1] = nums[i][0];
        args[4 * i + 2] = nums[i][1];
        args[4 * i + 3] = nums[i][2];
    }
    if (predis_eval(s->base, s->worker_id, &s->rc, &s->call, POL_LUA_SETTLE, (int)s->n, keys,
                    (int)(4 * s->n), args) == 0)
        return;
    if (++s->tries < POL_SETTLE_TRIES &&
        (s->retry || (s->retry = evtimer_new(s->base, pol_settle_retry, s)))) {
        struct timeval tv = {1, 0};
        evtimer_add(s->retry, &tv);
        return;
    }
    log_warn("redis: a settlement could not be sent; its reservation stays until the counter "
             "expires");
    pol_settle_free(s);
}

void pol__redis_settle(pl_env_t *env, const cfg_redis_t *rc, config_t *cfg, const pc_check_t *v,
                       size_t n)
{
    pol_settle_call_t *s = calloc(1, sizeof *s);
    if (!s) return;
    memcpy(s->checks, v, n * sizeof *v);
    s->n = n;
    s->call.done = pol_settle_done;
    s->base = env->base;
    s->worker_id = env->id;
    s->rc.timeout_ms = rc->timeout_ms > 1000 ? rc->timeout_ms : 1000;
    s->rc.fail_open = rc->fail_open;
    s->rc.url = NULL;
    s->cfg = cfg ? config_ref(cfg) : NULL;
    pol_settle_send(s);
}

static void pol_settle(pl_req_t *c, int status)
{
    pol_req_t *p = c->pol;
    if (!p || p->settled) return;
    p->settled = true;
    if (!p->admitting || !c->model) return;
    long pt = c->prompt_tokens > 0 ? c->prompt_tokens : 0;
    long ct = c->completion_tokens > 0 ? c->completion_tokens : 0;
    long cached = c->cached_tokens > 0 ? c->cached_tokens : 0;
    double cost = (pt || ct) ? cost_usd(&c->model->price, pt, cached, ct) : 0;
    int64_t cost_n = pc_nusd(cost);
    if (p->admitted && p->n) {
        for (size_t i = 0; i < p->n; i++) {
            pc_check_t *k = &p->checks[i];
            k->actual = k->unit == PC_REQ ? k->amount : k->unit == PC_TOK ? pt + ct : cost_n;
        }
        if (c->cfg->redis.url) {
            pol__redis_settle(c->env, &c->cfg->redis, c->cfg, p->checks, p->n);
        } else {
            int64_t before[POL_MAX_CHECKS], after[POL_MAX_CHECKS];
            pc_local_settle(p->checks, p->n, (int64_t)time_wall_ms(), before, after);
            for (size_t i = 0; i < p->n; i++)
                if (p->checks[i].kind == 'b')
                    pol__alert_check(c->cfg, &p->checks[i], before[i], after[i]);
        }
    }
    if (p->key) {
        atomic_fetch_add(&p->key->requests, 1);
        atomic_fetch_add(&p->key->prompt_tokens, (uint64_t)pt);
        atomic_fetch_add(&p->key->completion_tokens, (uint64_t)ct);
        atomic_fetch_add(&p->key->spend_nusd, (uint64_t)cost_n);
    }
    if (pol__store) {
        store_spend_t row = {
            .request_id = c->request_id,
            .key_id = c->key_id,
            .team = c->team,
            .user = c->user,
            .model = c->model->name,
            .ts_ms = (int64_t)time_wall_ms(),
            .prompt_tokens = c->prompt_tokens,
            .completion_tokens = c->completion_tokens,
            .latency_ms = (int64_t)((time_mono_ns() - c->start_ns) / 1000000),
            .status = status,
            .cost_usd = cost,
        };
        store_spend_add(pol__store, &row, NULL, NULL, NULL);
    }
}

static void pol_settle_event(pl_req_t *r, pl_event_t ev, const pl_evd_t *d, void *ud)
{
    (void)ev;
    (void)d;
    (void)ud;
    pol_settle(r, r->status);
}

void policy_subscribe(void)
{
    pl_subscribe(PL_EVMASK(PL_EV_FINISHED), pol_settle_event, NULL);
}
