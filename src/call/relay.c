/*
 * call relay — the call stage: one request relayed over its candidate
 * deployments as a series of attempts (retries, fallbacks, a hedge), one
 * answer for the client.
 *
 * Attempts (attempt_t): each is one upstream call to one deployment of
 * r->cands with its own parser, buffers and translator state. At most two
 * run at once (the primary and a hedge). The decisions — which outcome is
 * retried, on which candidate, backoff, budget, breakers, the queue — are in
 * call/resil.h; this file carries them out. Rules:
 *   - a new attempt is started from the stage's run, from a timer
 *     (r->next_ev, r->hedge_ev) or from an attempt's on_done, never from
 *     inside a curl callback (curl forbids adding handles there);
 *   - the first attempt to produce an answer wins: a non-streamed answer when
 *     its call ends with a final outcome, a stream at its first event (the
 *     "commit": until then nothing reached the client, so a stream that fails
 *     before its first event is retried or failed over invisibly). The others
 *     are cancelled at once (upstream_call_cancel closes their connection);
 *   - r->model follows the deployment answering now (pl_set_model: metrics,
 *     access log, x-skuld-model); x-skuld-attempts counts the attempts
 *     started; each attempt is told to the subscribers (PL_EV_ATTEMPT_*).
 *
 * Non-streamed: the upstream body is collected (capped at
 * server.max_upstream_body_bytes), its usage read, and it is handed to the
 * driver as the answer (pl_answer_take: no copy). Streamed: once committed,
 * every event is passed on (pl_stream_payload) the moment it is complete —
 * never buffered whole. The usage chunk the gateway asked for is read for
 * accounting and dropped unless the client asked for it too. If the client's
 * output backs up past PL_OUT_HIGH_WATER the upstream transfer is paused and
 * resumed on drain.
 *
 * Endings: every one goes through relay_end(): the driver is resumed with
 * the result, then everything the relay holds is released. When no attempt
 * is left, the client gets the last failure: the upstream's own 4xx/5xx
 * passed through, or 502 refused/broken, 504 timeout or deadline. A stream
 * that fails after its commit gives an error event and no [DONE] — never a
 * clean end. A client that leaves cancels every call at once (on_abort).
 *
 * Shapes: a provider with translate hooks (anthropic, gemini, ollama) turns
 * its body / events (SSE, or NDJSON lines) into OpenAI JSON; the front end
 * turns that into the client's shape. Cost (config/cost.h) goes into
 * x-skuld-cost-usd when the answer is not streamed. Image input is refused
 * with 400 unless the deployment has CAP_VISION.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "call/call.h"
#include "call/resil.h"
#include "config/cost.h"
#include "core/jscan.h"
#include "core/log.h"
#include "pipeline/events.h"
#include "upstream/ndjson.h"
#include "upstream/sse.h"

#include "call/relay_internal.h"

static void relay_attempt_done(attempt_t *a, up_result_t res, const char *detail);
static void relay_teardown(relay_t *r);
static void relay_on_done_cb(void *ud, up_result_t res, const char *detail);
static void relay_on_first_chunk_timeout(evutil_socket_t fd, short what, void *arg);

/* The request is answered with rc (a result set by pl_fail / pl_answer*):
 * every ending of the relay goes through here, then the teardown. */
static void relay_end(relay_t *r, pl_rc_t rc)
{
    pl_resume(r->c, rc);
    relay_teardown(r);
}

/* ---------- helpers ---------- */

static void relay_attempt_free(attempt_t *a)
{
    buf_free(&a->acc);
    sse_free(&a->parser);
    ndjson_free(&a->lines);
    if (a->fc_ev) event_free(a->fc_ev);
    a->fc_ev = NULL;
}

/* Give back what an attempt holds (slot, budget, probe) once its call is over. */
static void relay_attempt_release(attempt_t *a)
{
    if (a->has_slot) {
        resil_dep_release(a->m->dep);
        a->has_slot = false;
        resil_queue_kick();
    }
    if (a->has_retry) {
        retry_budget_release(&retry_budget_global);
        a->has_retry = false;
    }
    if (a->fc_ev) evtimer_del(a->fc_ev);
}

/* PL_EV_ATTEMPT_END: result is the up_result_t, or -1 when it was cancelled. */
static void relay_attempt_event(attempt_t *a, int result)
{
    pl_evd_t ev = {.model = a->m, .attempt = a->no, .result = result, .status = a->status};
    pl_emit(a->r->c, PL_EV_ATTEMPT_END, &ev);
}

/* Cancel a running attempt that lost or is no longer wanted: it counts for nothing. */
static void relay_attempt_cancel(attempt_t *a)
{
    if (!a->live) return;
    a->live = false;
    if (a->up) upstream_call_cancel(a->up);
    if (a->local) a->ops->local_cancel(a->local);
    a->up = NULL;
    a->local = NULL;
    if (a->probe) breaker_probe_abandon(&a->m->dep->brk);
    a->probe = false;
    relay_attempt_release(a);
    relay_attempt_event(a, -1);
}

static int relay_live(relay_t *r)
{
    int n = 0;
    for (int i = 0; i < r->n_att; i++) n += r->att[i]->live;
    return n;
}

static void relay_cancel_others(relay_t *r, attempt_t *keep)
{
    for (int i = 0; i < r->n_att; i++)
        if (r->att[i] != keep) relay_attempt_cancel(r->att[i]);
}

static metrics_series_t *relay_series(const attempt_t *a)
{
    return a->m->stats ? a->m->stats : a->r->c->ms;
}

/* ---------- streaming ---------- */

static void relay_stream_fail(relay_t *r, const char *code, const char *message)
{
    atomic_fetch_add_explicit(&r->c->ms->stream_errors, 1, memory_order_relaxed);
    relay_end(r, pl_stream_fail(r->c, code, message));
}

/* The first event of attempt a: it wins; the client stream starts. */
static void relay_commit(relay_t *r, attempt_t *a)
{
    r->started = true;
    r->winner = a;
    relay_cancel_others(r, a);
    if (r->hedge_ev) evtimer_del(r->hedge_ev);
    if (a->fc_ev) evtimer_del(a->fc_ev);
    relay__use_model(r, a->m);
    relay__model_headers(r);
    pl_stream_start(r->c);
}

static int relay_emit(void *ud, const char *data, size_t len)
{
    attempt_t *a = ud;
    return relay__forward(a->r, "", data, len);
}

static int relay_on_event(void *ud, const char *event, const char *data, size_t len)
{
    attempt_t *a = ud;
    relay_t *r = a->r;
    if (r->closed) return 1;
    if (!r->started) relay_commit(r, a);
    if (r->winner != a) return 1;
    if (r->saw_done || r->saw_error) return 0; /* nothing after the end */
    if (a->xlate && a->ops->translate_event) {
        int rc = a->ops->translate_event(a->xlate, event, data, len, relay_emit, a);
        if (rc < 0) a->bad_event = true;
        return rc;
    }
    return relay__forward(r, event, data, len);
}

/* ---------- callbacks from the upstream call ---------- */

static void relay_on_head(void *ud, int status)
{
    attempt_t *a = ud;
    relay_t *r = a->r;
    a->status = status;
    if (a->up) {
        const char *ra = upstream_call_header(a->up, "retry-after");
        if (ra) snprintf(a->retry_after, sizeof a->retry_after, "%s", ra);
    }
    if (!r->c->stream || status < 200 || status >= 300) return;
    const char *ct = a->up ? upstream_call_header(a->up, "content-type") : "text/event-stream";
    const char *want = a->framing == PROV_FRAME_NDJSON ? "ndjson" : "text/event-stream";
    if (!ct || !strstr(ct, want)) return; /* answered whole: relay as a body */
    a->sse = true;
}

/* A failure found while data flows (inside the call's callback): stop the call
 * and finish the attempt as if the call had ended with res. */
static void relay_attempt_abort(attempt_t *a, up_result_t res, const char *detail)
{
    if (a->up) upstream_call_cancel(a->up);
    if (a->local) a->ops->local_cancel(a->local);
    a->up = NULL;
    a->local = NULL;
    relay_attempt_done(a, res, detail);
}

static int relay_on_data(void *ud, const char *data, size_t len)
{
    attempt_t *a = ud;
    relay_t *r = a->r;
    if (!r->first_byte) { /* time to first byte, for the router */
        r->first_byte = true;
        pl_emit(r->c, PL_EV_FIRST_BYTE, NULL);
    }
    if (!a->sse) {
        if (buf_append(&a->acc, data, len) != BUF_OK) {
            a->too_large = true;
            relay_attempt_abort(a, UP_OK, NULL);
        }
        return UP_CONTINUE;
    }
    /* Pause before consuming: a paused transfer hands the same bytes again on
     * resume, so bytes taken now and paused would be relayed twice. */
    if (r->started && r->winner == a && pl_out_pending(r->c) > PL_OUT_HIGH_WATER) {
        a->paused = true;
        return UP_PAUSE;
    }
    int rc = a->framing == PROV_FRAME_NDJSON ? ndjson_feed(&a->lines, data, len, relay_on_event, a)
                                             : sse_feed(&a->parser, data, len, relay_on_event, a);
    if (rc < 0 && a->live) {
        if (!a->bad_event) a->big_event = true;
        relay_attempt_abort(a, UP_PROTOCOL_ERROR, NULL);
    }
    return UP_CONTINUE; /* rc > 0: client gone, the abort path cancels the call */
}

static uint64_t relay_remaining_ms(relay_t *r)
{
    if (!r->deadline_ms) return UINT64_MAX;
    uint64_t now = resil_now_ms();
    return now >= r->deadline_ms ? 0 : r->deadline_ms - now;
}

/* The last failure, when nothing is left to try. */
static pl_rc_t relay_fail(relay_t *r, attempt_t *a, const char *detail)
{
    pl_req_t *c = r->c;
    if (a && a->res == UP_OK) return relay__finish_body(r, a);
    if (a) relay__use_model(r, a->m);
    relay__model_headers(r);
    c->error = arena_strdup(c->arena, detail ? detail : "upstream failure");
    up_result_t res = a ? a->res : UP_PROTOCOL_ERROR;
    /* A timeout the deadline imposed is the deadline's, even if the timer fired
     * a millisecond early (clocks are read at different moments). */
    if (res == UP_TIMEOUT && r->deadline_ms &&
        (relay_remaining_ms(r) == 0 || (a && a->deadline_capped)))
        return pl_fail(c, 504, NULL, "deadline_exceeded", NULL,
                       "the request deadline passed before an upstream answered");
    if (res == UP_TIMEOUT)
        return pl_fail(c, 504, NULL, "upstream_timeout", NULL,
                       "the upstream provider did not answer in time");
    if (res == UP_CONNECT_FAILED)
        return pl_fail(c, 502, NULL, "upstream_unreachable", NULL,
                       "could not connect to the upstream provider");
    return pl_fail(c, 502, NULL, "upstream_error", NULL,
                   "the upstream connection failed before a complete response");
}

/* ---------- choosing and starting attempts ---------- */

enum { PICK_NONE = -1, PICK_FULL = -2 };

/*
 * The next candidate after `from` failed with `why` (from = -1: the first
 * attempt). Reserves its concurrency slot and breaker admission. With
 * every candidate ejected on the first attempt, the first one is tried anyway
 * (Envoy's panic routing: better the upstream's own answer than none).
 */
static int relay_pick(relay_t *r, int from, resil_outcome_t why, bool *probe)
{
    pl_req_t *c = r->c;
    int tried[RELAY_MAX_ATTEMPTS];
    size_t n = c->n_cands < RELAY_MAX_ATTEMPTS ? c->n_cands : RELAY_MAX_ATTEMPTS;
    memcpy(tried, r->tried, sizeof tried);
    bool full = false;
    int ejected = -1;
    uint64_t now = resil_now_ms();
    *probe = false;
    for (;;) {
        int i = resil_next_candidate(c->cands, n, tried, from, why, r->rs->retries_per_deployment);
        if (i < 0) break;
        const cfg_model_t *m = c->cands[i];
        tried[i] = 1000; /* not again in this pick */
        if (!m->dep) continue;
        if (!resil_dep_acquire(m->dep, m->resil.max_concurrency)) {
            full = true;
            continue;
        }
        brk_params_t bp;
        brk_params_from(&bp, &m->resil);
        brk_verdict_t v = breaker_allow(&m->dep->brk, &bp, now);
        if (v == BRK_DENY) {
            resil_dep_release(m->dep);
            if (ejected < 0) ejected = i;
            continue;
        }
        *probe = v == BRK_PROBE;
        return i;
    }
    if (from < 0 && ejected >= 0 && r->n_att == 0 &&
        resil_dep_acquire(c->cands[ejected]->dep, c->cands[ejected]->resil.max_concurrency))
        return ejected;
    return full ? PICK_FULL : PICK_NONE;
}

/* Start an attempt on m (slot and admission already taken). */
static void relay_start(relay_t *r, const cfg_model_t *m, int cand, bool probe, bool retry,
                        bool hedge)
{
    pl_req_t *c = r->c;
    const cfg_server_t *sc = &r->cfg->server;
    const prov_ops_t *ops = provider_ops(m->provider->type);
    if (c->ep == EP_COUNT_TOKENS && ops && !ops->counts_tokens) {
        /* Nothing to ask: the gateway's estimate is the answer, no attempt made. */
        if (m->dep) resil_dep_release(m->dep);
        if (retry) retry_budget_release(&retry_budget_global);
        if (probe) breaker_probe_abandon(&m->dep->brk);
        relay_cancel_others(r, NULL);
        relay_end(r, relay__count_estimate(r, m));
        return;
    }
    attempt_t *a = r->n_att < RELAY_MAX_ATTEMPTS ? arena_calloc(c->arena, sizeof *a) : NULL;
    if (!a) {
        if (m->dep) resil_dep_release(m->dep);
        if (retry) retry_budget_release(&retry_budget_global);
        if (probe) breaker_probe_abandon(&m->dep->brk);
        if (!relay_live(r)) {
            relay__use_model(r, m);
            relay_end(r, pl_fail(c, 500, NULL, "internal_error", NULL, "out of memory"));
        }
        return;
    }
    r->att[r->n_att++] = a;
    if (cand >= 0) r->tried[cand]++;
    a->r = r;
    a->m = m;
    a->cand = cand;
    a->probe = probe;
    a->has_slot = m->dep != NULL;
    a->has_retry = retry;
    a->ops = ops;
    a->start_ms = resil_now_ms();
    buf_init(&a->acc, sc->max_upstream_body_bytes);
    sse_init(&a->parser, RELAY_MAX_EVENT);
    ndjson_init(&a->lines, RELAY_MAX_EVENT);
    c->attempts++;
    a->no = c->attempts;
    pl_evd_t ev = {.model = m, .attempt = c->attempts, .hedge = hedge, .retry = retry};
    pl_emit(c, PL_EV_ATTEMPT_START, &ev);
    metrics_series_t *ms = relay_series(a);
    if (r->n_att > 1 && ms) {
        atomic_fetch_add_explicit(hedge ? &ms->hedges : &ms->retries, 1, memory_order_relaxed);
    }

    prov_call_t call = {0};
    int brc = 1;
    /* With a top-level "model" present, the one "model" key build_raw accepts
     * can only be that one. */
    if (a->ops && a->ops->build_raw && c->raw_is_request &&
        (c->body ? json_is_string(json_object_get(c->body, "model"))
                 : c->fast && c->fast->model == JS_STRING))
        brc = a->ops->build_raw(c->arena, c->ep, c->raw, c->raw_len, m, c->stream, c->client_usage,
                                &call);
    if (brc == 1)
        brc = a->ops && pl_body(c) ? a->ops->build(c->arena, c->ep, c->body, m, c->stream, &call)
                                   : -1;
    if (brc != 0) {
        relay_attempt_release(a);
        if (a->probe) breaker_probe_abandon(&m->dep->brk);
        if (relay_live(r)) return;
        relay__use_model(r, m);
        if (brc == PROV_EBADREQ)
            relay_end(
                r,
                pl_fail(c, 400, NULL, call.error_code ? call.error_code : "unsupported_request",
                        call.error_param, "%s",
                        call.error ? call.error : "the request cannot be sent to this deployment"));
        else if (brc == PROV_EUNAVAIL)
            relay_end(r, pl_fail(c, 503, NULL, "upstream_auth_unavailable", NULL, "%s",
                                 call.error ? call.error : "the upstream cannot be called now"));
        else
            relay_end(r, pl_fail(c, 500, NULL, "internal_error", NULL,
                                 "could not build the upstream request"));
        return;
    }
    a->xlate = call.xlate;
    a->framing = call.framing;
    static const up_callbacks_t cbs = {relay_on_head, relay_on_data, relay_on_done_cb};
    if (ms) atomic_fetch_add_explicit(&ms->upstream_requests, 1, memory_order_relaxed);
    uint64_t remaining = relay_remaining_ms(r);
    /* Per-attempt timings: the route's settings when the client named a route
     * with its own (c->resil), else this deployment's. */
    const cfg_resilience_t *tr = c->resil ? c->resil : &m->resil;
    a->live = true;
    if (a->ops->local_start) {
        a->local = a->ops->local_start(c->env->base, c->ep, &call, &cbs, a);
    } else {
        uint64_t total = c->stream ? 0 : sc->request_timeout_ms;
        if (!c->stream && tr->per_try_timeout_ms && tr->per_try_timeout_ms < total)
            total = tr->per_try_timeout_ms;
        if (remaining != UINT64_MAX && (total == 0 || remaining < total)) {
            total = remaining ? remaining : 1;
            a->deadline_capped = true;
        }
        uint64_t idle = 0;
        if (c->stream)
            idle = tr->idle_gap_timeout_ms ? tr->idle_gap_timeout_ms : sc->stream_idle_timeout_ms;
        up_request_t ur = {
            .url = call.url,
            .body = call.body,
            .body_len = call.body_len,
            .headers = call.headers,
            .connect_timeout_ms = sc->connect_timeout_ms,
            .total_timeout_ms = total,
            .idle_timeout_ms = idle,
        };
        a->up = upstream_call_start(c->env->upstream, &ur, &cbs, a);
    }
    if (!a->up && !a->local) {
        a->live = false;
        relay_attempt_release(a);
        if (a->probe) breaker_probe_abandon(&m->dep->brk);
        if (relay_live(r)) return;
        relay__use_model(r, m);
        relay_end(
            r, pl_fail(c, 500, NULL, "internal_error", NULL, "could not start the upstream call"));
        return;
    }
    if (c->stream && tr->first_chunk_timeout_ms) {
        a->fc_ev = evtimer_new(c->env->base, relay_on_first_chunk_timeout, a);
        if (a->fc_ev) {
            struct timeval tv = {(time_t)(tr->first_chunk_timeout_ms / 1000),
                                 (suseconds_t)(tr->first_chunk_timeout_ms % 1000) * 1000};
            evtimer_add(a->fc_ev, &tv);
        }
    }
}

static void relay_on_first_chunk_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    attempt_t *a = arg;
    if (!a->live || a->r->winner == a) return;
    relay_attempt_abort(a, UP_TIMEOUT, "no stream event before resilience.first_chunk_timeout");
}

static void relay_on_done_cb(void *ud, up_result_t res, const char *detail)
{
    relay_attempt_done(ud, res, detail);
}

static void relay_arm(struct event *ev, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

/* Give back what a scheduled-but-not-started attempt holds. */
static void relay_unschedule(relay_t *r)
{
    if (!r->next_pending) return;
    r->next_pending = false;
    if (r->next_ev) evtimer_del(r->next_ev);
    if (r->next_m->dep) {
        resil_dep_release(r->next_m->dep);
        if (r->next_probe) breaker_probe_abandon(&r->next_m->dep->brk);
    }
    retry_budget_release(&retry_budget_global);
}

static void relay_next_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    relay_t *r = arg;
    if (!r->next_pending || r->closed) return;
    r->next_pending = false;
    relay_start(r, r->next_m, r->next_cand, r->next_probe, true, false);
}

/* After a failed attempt a (no other running): the next one, or the client's error. */
static void relay_retry(relay_t *r, attempt_t *a, resil_outcome_t out, const char *detail)
{
    pl_req_t *c = r->c;
    const cfg_resilience_t *rs = r->rs;
    if (r->n_att >= rs->max_attempts || r->n_att >= RELAY_MAX_ATTEMPTS) {
        relay_end(r, relay_fail(r, a, detail));
        return;
    }
    const cfg_model_t *m = NULL;
    int i = -1;
    bool probe = false;
    if (out == RES_POLICY) {
        const cfg_model_t *alt = a->m->content_policy_alt;
        if (alt && !r->alt_tried && alt->dep && !(c->needs & ~alt->capabilities) &&
            resil_dep_acquire(alt->dep, alt->resil.max_concurrency)) {
            r->alt_tried = true;
            m = alt;
            for (size_t k = 0; k < c->n_cands && k < RELAY_MAX_ATTEMPTS; k++)
                if (c->cands[k] == alt) i = (int)k;
        }
    } else {
        i = relay_pick(r, a->cand, out, &probe);
        if (i >= 0) m = c->cands[i];
    }
    if (!m) {
        relay_end(r, relay_fail(r, a, detail));
        return;
    }
    uint64_t delay = 0;
    bool budget =
        retry_budget_acquire(&retry_budget_global, rs->retry_budget, rs->retry_budget_min);
    bool ok = budget;
    if (ok && i >= 0 && r->tried[i] > 0) { /* the same deployment again: back off */
        delay = retry_backoff_ms(rs->backoff_base_ms, rs->backoff_max_ms, r->tried[i] - 1,
                                 retry_rand());
        int64_t ra = i == a->cand ? retry_after_ms(a->retry_after, (int64_t)time(NULL)) : -1;
        if (ra > (int64_t)rs->retry_after_max_ms) ok = false;
        if (ra > (int64_t)delay) delay = (uint64_t)ra;
    }
    if (ok && r->deadline_ms && delay >= relay_remaining_ms(r)) ok = false;
    if (ok && !r->next_ev) /* made on first use: most requests never retry */
        ok = (r->next_ev = evtimer_new(c->env->base, relay_next_cb, r)) != NULL;
    if (!ok) {
        if (m->dep) {
            resil_dep_release(m->dep);
            if (probe) breaker_probe_abandon(&m->dep->brk);
        }
        if (budget) retry_budget_release(&retry_budget_global);
        relay_end(r, relay_fail(r, a, detail));
        return;
    }
    r->next_pending = true;
    r->next_m = m;
    r->next_cand = i;
    r->next_probe = probe;
    relay_arm(r->next_ev, delay);
}

static void relay_attempt_done(attempt_t *a, up_result_t res, const char *detail)
{
    relay_t *r = a->r;
    if (!a->live) return;
    a->live = false;
    relay_attempt_event(a, (int)res);
    a->up = NULL; /* freed by its owner when we return */
    a->local = NULL;
    a->res = res;
    relay_attempt_release(a);
    metrics_series_t *ms = relay_series(a);
    uint64_t now = resil_now_ms();
    brk_params_t bp;
    brk_params_from(&bp, &a->m->resil);
    breaker_t *brk = a->m->dep ? &a->m->dep->brk : NULL;

    if (a->sse && res == UP_OK && a->framing == PROV_FRAME_NDJSON && !r->saw_done &&
        (!r->started || r->winner == a))
        ndjson_finish(&a->lines, relay_on_event, a);
    if (r->closed) return;

    if (r->started && r->winner == a) { /* the committed stream ends */
        bool clean = res == UP_OK && (r->saw_done || r->saw_error) && !a->bad_event;
        if (brk) breaker_report(brk, &bp, now, res == UP_OK && r->saw_done, a->probe);
        a->probe = false;
        if (clean) {
            if (a->m->dep) resil_dep_latency(a->m->dep, now - a->start_ms);
            relay_end(r, PL_DONE);
            return;
        }
        if (a->bad_event || res == UP_PROTOCOL_ERROR)
            metrics_upstream_error(ms, UPERR_PROTOCOL);
        else
            metrics_upstream_error(ms, res == UP_TIMEOUT ? UPERR_TIMEOUT : UPERR_PROTOCOL);
        if (a->bad_event)
            relay_stream_fail(r, "upstream_invalid_event",
                              "upstream sent a malformed stream event");
        else if (a->big_event)
            relay_stream_fail(r, "upstream_event_too_large",
                              "upstream sent an oversized stream event");
        else
            relay_stream_fail(r, res == UP_TIMEOUT ? "upstream_timeout" : "upstream_stream_error",
                              res == UP_TIMEOUT
                                  ? "the upstream stream stalled past the idle timeout"
                                  : "the upstream stream ended before completion");
        return;
    }

    resil_outcome_t out;
    bool failure;
    if (a->sse) { /* a stream that failed before its first event */
        if (res == UP_OK) a->res = UP_PROTOCOL_ERROR;
        out = RES_RETRY;
        failure = true;
        metrics_upstream_error(ms, res == UP_TIMEOUT ? UPERR_TIMEOUT : UPERR_PROTOCOL);
    } else if (a->too_large) {
        out = RES_FINAL;
        failure = false;
        metrics_upstream_error(ms, UPERR_PROTOCOL);
    } else if (res != UP_OK) {
        out = resil_classify(res, 0, NULL, 0);
        failure = resil_is_breaker_failure(res, 0);
        metrics_upstream_error(ms, res == UP_TIMEOUT          ? UPERR_TIMEOUT
                                   : res == UP_CONNECT_FAILED ? UPERR_CONNECT
                                                              : UPERR_PROTOCOL);
    } else {
        if (!relay__translate_body(a)) {
            a->untranslatable = true;
            metrics_upstream_error(ms, a->status >= 400 ? UPERR_STATUS : UPERR_PROTOCOL);
            out = RES_FINAL;
        } else {
            out = resil_classify(res, a->status, buf_data(&a->acc), a->acc.len);
            if (a->status >= 400) metrics_upstream_error(ms, UPERR_STATUS);
        }
        failure = resil_is_breaker_failure(res, a->status);
    }
    if (brk) breaker_report(brk, &bp, now, !failure, a->probe);
    a->probe = false;
    if (!failure && out == RES_OK && a->m->dep) resil_dep_latency(a->m->dep, now - a->start_ms);
    if (out == RES_OK || out == RES_FINAL) {
        relay_cancel_others(r, a);
        relay_end(r, relay__finish_body(r, a));
        return;
    }
    r->last = a;
    if (relay_live(r)) return; /* the other attempt (a hedge) may still answer */
    if (r->next_pending) return;
    relay_retry(r, a, out, detail);
}

/* ---------- hedging, deadline, queue ---------- */

static void relay_hedge_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    relay_t *r = arg;
    if (r->closed || r->started || r->hedged || r->next_pending || relay_live(r) != 1 ||
        r->n_att >= r->rs->max_attempts) {
        return;
    }
    attempt_t *p = NULL;
    for (int i = 0; i < r->n_att; i++)
        if (r->att[i]->live) p = r->att[i];
    bool probe;
    int i = relay_pick(r, p->cand, RES_RETRY, &probe);
    if (i < 0) return;
    const cfg_model_t *m = r->c->cands[i];
    /* Not from the retry budget: at most one hedge per request, to another
     * deployment, only after the delay (a burst of slow requests would
     * otherwise lose their hedges exactly when they need them). */
    if (r->tried[i] > 0) {
        resil_dep_release(m->dep);
        if (probe) breaker_probe_abandon(&m->dep->brk);
        return;
    }
    r->hedged = true;
    relay_start(r, m, i, probe, false, true);
}

static void relay_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    relay_t *r = arg;
    if (r->closed) return;
    pl_req_t *c = r->c;
    c->error = "deadline exceeded";
    if (r->started) {
        relay_cancel_others(r, NULL);
        relay_stream_fail(r, "deadline_exceeded", "the request deadline passed mid-stream");
        return;
    }
    relay_cancel_others(r, NULL);
    relay_unschedule(r);
    if (r->last) relay__use_model(r, r->last->m);
    relay__model_headers(r);
    relay_end(r, pl_fail(c, 504, NULL, "deadline_exceeded", NULL,
                         "the request deadline passed before an upstream answered"));
}

static void relay_dequeue(relay_t *r)
{
    resil_queue_remove(&r->waiter);
    if (r->queued && r->c->ms)
        atomic_fetch_sub_explicit(&r->c->ms->queue_waiting, 1, memory_order_relaxed);
    r->queued = false;
}

static void relay_queue_reject(relay_t *r, const char *code, const char *msg)
{
    pl_req_t *c = r->c;
    if (c->ms) atomic_fetch_add_explicit(&c->ms->queue_rejected, 1, memory_order_relaxed);
    char ra[24];
    uint64_t secs = (r->rs->queue_timeout_ms + 999) / 1000;
    snprintf(ra, sizeof ra, "%llu", (unsigned long long)(secs ? secs : 1));
    pl_header(c, "Retry-After", ra);
    relay__model_headers(r);
    relay_end(r, pl_fail(c, 429, NULL, code, NULL, "%s", msg));
}

static void relay_queue_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    relay_t *r = arg;
    if (r->closed) return;
    relay_dequeue(r);
    relay_queue_reject(r, "queue_timeout",
                       "every deployment for this model is at capacity and the request waited "
                       "past resilience.queue_timeout");
}

/* The first attempt on cands[i] (-1: none available), and the hedge timer. */
static void relay_begin(relay_t *r, int i, bool probe)
{
    if (i < 0) {
        relay__model_headers(r);
        relay_end(r, pl_fail(r->c, 503, NULL, "no_deployment_available", NULL,
                             "no deployment is available for this model"));
        return;
    }
    relay_start(r, r->c->cands[i], i, probe, false, false);
    if (!r->closed && r->hedge_ev) {
        uint64_t d = r->rs->hedge == CFG_HEDGE_P95
                         ? resil_dep_p95(r->c->cands[0]->dep, r->rs->hedge_delay_ms)
                         : r->rs->hedge_delay_ms;
        relay_arm(r->hedge_ev, d);
    }
}

static bool relay_queue_try(resil_waiter_t *w)
{
    relay_t *r = (relay_t *)((char *)w - offsetof(relay_t, waiter));
    bool probe;
    int i = relay_pick(r, -1, RES_RETRY, &probe);
    if (i == PICK_FULL) return false;
    relay_dequeue(r);
    if (r->queue_ev) evtimer_del(r->queue_ev);
    relay_begin(r, i, probe);
    return true;
}

/* The first attempt, or a place in the queue. */
static void relay_first(relay_t *r)
{
    bool probe = false;
    /* Waiters on this worker go first: a newcomer joins the queue behind
     * them and the queue decides at once (resil_queue_kick). */
    bool behind = r->rs->queue_size > 0 && resil_queue_len() > 0;
    int i = behind ? PICK_FULL : relay_pick(r, -1, RES_RETRY, &probe);
    if (i != PICK_FULL) {
        relay_begin(r, i, probe);
        return;
    }
    if (!r->rs->queue_size ||
        !resil_queue_push(r->c->env->base, &r->waiter, r->prio, (size_t)r->rs->queue_size)) {
        if (behind && (i = relay_pick(r, -1, RES_RETRY, &probe)) != PICK_FULL) {
            relay_begin(r, i, probe); /* the queue is full, but not our deployments */
            return;
        }
        relay_queue_reject(r, "queue_full",
                           "every deployment for this model is at capacity and the request "
                           "queue is full");
        return;
    }
    r->queued = true;
    if (r->c->ms) atomic_fetch_add_explicit(&r->c->ms->queue_waiting, 1, memory_order_relaxed);
    r->queue_ev = evtimer_new(r->c->env->base, relay_queue_timeout_cb, r);
    if (r->queue_ev) relay_arm(r->queue_ev, r->rs->queue_timeout_ms);
    if (behind) resil_queue_kick();
}

/* ---------- client events ---------- */

static void relay_on_abort(pl_req_t *c)
{
    relay_t *r = c->call;
    relay_cancel_others(r, NULL);
    relay_teardown(r);
}

static void relay_resume(pl_req_t *c)
{
    relay_t *r = c->call;
    attempt_t *a = r->winner;
    if (!a || !a->paused) return;
    a->paused = false;
    if (a->up)
        upstream_call_resume(a->up);
    else if (a->local)
        a->ops->local_resume(a->local);
}

/* Everything the relay holds, once the client has its answer or left. */
static void relay_teardown(relay_t *r)
{
    if (r->closed) return;
    r->closed = true;
    relay_cancel_others(r, NULL);
    relay_unschedule(r);
    relay_dequeue(r);
    struct event **evs[] = {&r->next_ev, &r->hedge_ev, &r->deadline_ev, &r->queue_ev};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (*evs[i]) {
            event_free(*evs[i]);
            *evs[i] = NULL;
        }
    for (int i = 0; i < r->n_att; i++) relay_attempt_free(r->att[i]);
    if (r->budgeted) retry_budget_end(&retry_budget_global);
    r->budgeted = false;
    r->c->on_abort = NULL;
    r->c->on_drain = NULL;
    config_unref(r->cfg); /* last: the attempts above point into it */
    r->cfg = NULL;
}

static pl_rc_t relay_run(pl_req_t *c)
{
    relay_t *r = arena_calloc(c->arena, sizeof *r);
    if (!r) return pl_fail(c, 500, NULL, "internal_error", NULL, "out of memory");
    c->call = r;
    r->c = c;
    r->cfg = config_ref(c->cfg);
    r->rs = c->resil ? c->resil : &c->cands[0]->resil;
    struct event_base *base = c->env->base;
    if (r->rs->hedge != CFG_HEDGE_OFF && c->n_cands > 1)
        r->hedge_ev = evtimer_new(base, relay_hedge_cb, r);
    uint64_t deadline = r->rs->deadline_ms;
    pl_slice_t dh = pl_req_header(c, "x-skuld-deadline-ms");
    if (dh.n > 0 && dh.n < 10) {
        char tmp[12];
        memcpy(tmp, dh.p, dh.n);
        tmp[dh.n] = '\0';
        char *end;
        unsigned long v = strtoul(tmp, &end, 10);
        if (!*end && v > 0) deadline = v;
    }
    if (deadline) {
        /* Answer a little before the deadline (min(50ms, 10%)) so the error
         * reaches the client while it still waits. */
        uint64_t margin = deadline / 10 < 50 ? deadline / 10 : 50;
        r->deadline_ms = resil_now_ms() + deadline - margin;
        r->deadline_ev = evtimer_new(base, relay_deadline_cb, r);
        if (r->deadline_ev) relay_arm(r->deadline_ev, deadline - margin);
    }
    pl_slice_t ph = pl_req_header(c, "x-skuld-priority");
    r->prio = rq_class_parse(ph.p, ph.n);
    r->waiter.try_start = relay_queue_try;
    retry_budget_begin(&retry_budget_global);
    r->budgeted = true;
    c->on_abort = relay_on_abort;
    c->on_drain = relay_resume;
    relay_first(r);
    return PL_AGAIN; /* every ending resumes the driver (relay_end) */
}

const pl_stage_t call_stage = {"call", relay_run};
