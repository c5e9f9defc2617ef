/*
 * resil — the resilience policy the relay (call/relay.c) applies over a
 * request's candidate list (pl_req_t.cands): which failures are retried and
 * where, the per-worker request queue, and the glue to the breaker and retry
 * modules. The relay owns the attempts themselves; this module owns the
 * decisions, so they can be unit-tested without a network.
 *
 * Threads: resil_attach runs wherever a snapshot is prepared (control
 * thread); everything else on the worker thread that owns the request. The
 * queue is per worker thread (thread-local); the deployment state behind it
 * (breaker.h) is process-wide.
 */
#ifndef SKULD_ROUTE_RESIL_H
#define SKULD_ROUTE_RESIL_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "core/buf.h"
#include "call/breaker.h"
#include "call/queue.h"
#include "call/retry.h"
#include "upstream/client.h"

struct event_base;

/* Attach process-wide deployment state to every model of a snapshot. */
void resil_attach(config_t *cfg);
/* ,"resilience":{...} for /admin/models: breaker state, opens, attempts in
 * flight, fallbacks, content-policy alternate. */
void resil_model_json(buf_t *o, const cfg_model_t *m);

/* How an attempt ended, for the decision what to do next. */
typedef enum {
    RES_OK = 0,  /* an answer to give the client */
    RES_RETRY,   /* 429, 5xx, timeout, connection failure: retry / fall back */
    RES_CONTEXT, /* context length exceeded: a candidate with a larger window */
    RES_POLICY,  /* content-policy refusal: the configured alternate */
    RES_FINAL,   /* any other client error: pass it through */
} resil_outcome_t;

/* From a finished attempt: transport result, HTTP status, error body (may be NULL). */
resil_outcome_t resil_classify(up_result_t res, int status, const char *body, size_t len);
/* Does this outcome count against the deployment's breaker? (5xx, timeouts,
 * connection and protocol errors; not an upstream 429 and not client errors) */
bool resil_is_breaker_failure(up_result_t res, int status);

/* The index in c->cands of the next candidate to try after failed attempt on
 * candidate `from` with outcome `why`; tried[i] counts attempts on cands[i].
 * -1 when nothing is left. Skips open breakers (allow_ejected = false). */
int resil_next_candidate(const cfg_model_t *const *cands, size_t n, const int *tried, int from,
                         resil_outcome_t why, int retries_per_deployment);

/* ---------- per-worker request queue ---------- */

typedef struct resil_waiter {
    rq_node_t node;
    /* Called from the queue's tick on the worker, highest class and oldest
     * first: try to start now. Returns true when the waiter left the queue
     * (started or failed), false to keep waiting. It must not remove other
     * waiters. */
    bool (*try_start)(struct resil_waiter *w);
} resil_waiter_t;

bool resil_queue_push(struct event_base *base, resil_waiter_t *w, int cls, size_t cap);
void resil_queue_remove(resil_waiter_t *w);
/* A slot was released on this worker: let the queue try soon. */
void resil_queue_kick(void);
size_t resil_queue_len(void);

#endif
