/*
 * pipeline events — a request's lifecycle, told to subscribers.
 *
 * Accounting is made of subscribers: the metrics and the access log
 * (pipeline/account.c), spend and budgets (policy), the router's live stats
 * (pipeline/resolve.c). A new consumer (traces, the optimizer, the
 * dashboard's live view) subscribes and touches nothing else.
 *
 *   PL_EV_STAGE          a stage returned (d->stage, d->rc)
 *   PL_EV_MODEL          r->model changed (d->prev before; r->model now)
 *   PL_EV_ATTEMPT_START  an upstream attempt began (d->model, d->attempt
 *                        1-based, d->hedge, d->retry)
 *   PL_EV_ATTEMPT_END    an attempt ended (d->model, d->attempt, d->result:
 *                        up_result_t, or -1 when it was cancelled (it lost,
 *                        or the client left); d->status: the upstream's
 *                        HTTP status or 0)
 *   PL_EV_FIRST_BYTE     the first upstream byte of the request
 *   PL_EV_FINISHED       the request is accounted (r->status), once; r->cfg
 *                        is still held while subscribers run
 *
 * Subscribers are called in the order they subscribed, on the request's
 * worker thread, synchronously: they must not block and must not answer the
 * client. Subscription happens at start-up, before the workers run.
 */
#ifndef SKULD_PIPELINE_EVENTS_H
#define SKULD_PIPELINE_EVENTS_H

#include "pipeline/request.h"

typedef enum {
    PL_EV_STAGE = 0,
    PL_EV_MODEL,
    PL_EV_ATTEMPT_START,
    PL_EV_ATTEMPT_END,
    PL_EV_FIRST_BYTE,
    PL_EV_FINISHED,
    PL_EV__COUNT
} pl_event_t;

#define PL_EVMASK(e) (1u << (e))

typedef struct pl_evd {
    int stage, rc;            /* PL_EV_STAGE */
    const cfg_model_t *model; /* ATTEMPT_*: the deployment */
    const cfg_model_t *prev;  /* MODEL: the one before (NULL: none) */
    int attempt;              /* ATTEMPT_*: 1-based */
    bool hedge, retry;        /* ATTEMPT_START: why it was started */
    int result;               /* ATTEMPT_END: up_result_t */
    int status;               /* ATTEMPT_END: upstream HTTP status, 0 when none */
} pl_evd_t;

typedef void (*pl_sub_fn)(pl_req_t *r, pl_event_t ev, const pl_evd_t *d, void *ud);

/* Start-up only. mask: PL_EVMASK() of the events wanted. 0, or -1 when full. */
int pl_subscribe(unsigned mask, pl_sub_fn fn, void *ud);
/* Tell every subscriber of ev. d may be NULL. */
void pl_emit(pl_req_t *r, pl_event_t ev, const pl_evd_t *d);

#endif
