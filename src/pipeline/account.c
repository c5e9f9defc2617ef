/*
 * pipeline account — the metrics and the access log as subscribers of the
 * request events (account.h).
 *
 * PL_EV_MODEL: the request's series (r->ms) follows r->model: the first
 * model (or none: the "unrouted" series) starts counting it in flight, a
 * later one moves it. PL_EV_FINISHED: requests, duration, tokens and cost on
 * that series, then one access-log line on the worker's log.
 */
#include "pipeline/account.h"

#include <string.h>

#include "config/cost.h"
#include "core/log.h"
#include "obs/accesslog.h"
#include "pipeline/events.h"

static metrics_series_t *acct_unrouted; /* requests that never resolved a model */

static void acct_model(pl_req_t *r)
{
    const cfg_model_t *m = r->model;
    if (!r->ms) {
        r->ms = m && m->stats ? m->stats : acct_unrouted;
        if (r->ms) metrics_request_begin(r->ms);
        return;
    }
    if (m && m->stats && r->ms != m->stats) {
        atomic_fetch_sub_explicit(&r->ms->in_flight, 1, memory_order_relaxed);
        r->ms = m->stats;
        metrics_request_begin(r->ms);
    }
}

static void acct_finished(pl_req_t *r)
{
    uint64_t dur = time_mono_ns() - r->start_ns;
    const cfg_model_t *m = r->model;
    bool used = r->prompt_tokens > 0 || r->completion_tokens > 0;
    double cost =
        m && used ? cost_usd(&m->price, r->prompt_tokens, r->cached_tokens, r->completion_tokens)
                  : -1;
    if (r->ms) {
        metrics_request_end(r->ms, r->status, dur);
        if (used)
            metrics_tokens(r->ms, r->prompt_tokens > 0 ? (uint64_t)r->prompt_tokens : 0,
                           r->completion_tokens > 0 ? (uint64_t)r->completion_tokens : 0);
        if (m && used)
            metrics_cost(r->ms, cost, r->cached_tokens > 0 ? (uint64_t)r->cached_tokens : 0);
    }
    accesslog_rec_t rec = {
        .request_id = r->request_id,
        .method = r->method,
        .method_len = r->method_len,
        .path = r->path,
        .path_len = r->path_len,
        .status = r->status,
        .model = m ? m->name : NULL,
        .deployment = m && m->id && strcmp(m->id, m->name) != 0 ? m->id : NULL,
        .provider = m ? m->provider->name : NULL,
        .stream = r->stream,
        .duration_us = dur / 1000,
        .bytes_in = r->raw_len,
        .bytes_out = r->fe->bytes_out(r),
        .prompt_tokens = r->prompt_tokens,
        .completion_tokens = r->completion_tokens,
        .error = r->error,
        .key_id = r->key_id,
        .team = r->team,
        .user = r->user,
        .cost_usd = cost,
        .attempts = r->attempts,
        .cache = r->cache_status,
    };
    accesslog_write(r->env->log, &rec);
}

static void acct_event(pl_req_t *r, pl_event_t ev, const pl_evd_t *d, void *ud)
{
    (void)d;
    (void)ud;
    if (ev == PL_EV_MODEL)
        acct_model(r);
    else
        acct_finished(r);
}

void pl_account_subscribe(void)
{
    if (!acct_unrouted) acct_unrouted = metrics_series_get("", "");
    pl_subscribe(PL_EVMASK(PL_EV_MODEL) | PL_EVMASK(PL_EV_FINISHED), acct_event, NULL);
}

void pl_account_attach(config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_models; i++)
        cfg->models[i].stats = metrics_series_get(cfg->models[i].id, cfg->models[i].provider->name);
}
