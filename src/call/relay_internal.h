/*
 * call relay internals, shared by relay.c (the attempts: choosing, starting,
 * retrying, hedging, queueing, ending) and answer.c (what an attempt's
 * answer becomes: usage read, stream payloads passed on, the whole-body
 * result). Worker thread of the request only.
 */
#ifndef SKULD_CALL_RELAY_INTERNAL_H
#define SKULD_CALL_RELAY_INTERNAL_H

#include <event2/event.h>
#include <jansson.h>

#include "call/resil.h"
#include "pipeline/pipeline.h"
#include "provider/provider.h"
#include "upstream/ndjson.h"
#include "upstream/sse.h"

#define RELAY_MAX_EVENT (1024 * 1024)
#define RELAY_MAX_ATTEMPTS 16

typedef struct relay relay_t;

typedef struct attempt {
    relay_t *r;
    const cfg_model_t *m;
    int cand; /* index in c->cands, -1 for the content-policy alternate */
    int no;   /* 1-based among the request's attempts */
    const prov_ops_t *ops;
    up_call_t *up;
    prov_local_t *local;
    bool live;      /* call running */
    bool probe;     /* admitted as the breaker's half-open probe */
    bool has_slot;  /* holds a concurrency slot on m->dep */
    bool has_retry; /* holds a retry-budget slot */
    bool sse;       /* answered 2xx with an event stream */
    bool paused;
    bool bad_event;
    bool too_large;
    bool untranslatable;
    bool big_event;       /* a stream event over RELAY_MAX_EVENT */
    bool deadline_capped; /* its total timeout is what was left of the request's deadline */
    int status;
    up_result_t res;
    char retry_after[32];
    uint64_t start_ms;
    buf_t acc; /* non-streamed body or error body */
    sse_parser_t parser;
    ndjson_parser_t lines;
    prov_xlate_t *xlate;
    prov_framing_t framing;
    struct event *fc_ev; /* first-chunk timeout */
} attempt_t;

struct relay {
    pl_req_t *c;
    config_t *cfg; /* our own reference: attempts point into it after the request drops its own */
    const cfg_resilience_t *rs;
    brk_params_t bp;
    attempt_t *att[RELAY_MAX_ATTEMPTS];
    int n_att;
    int tried[RELAY_MAX_ATTEMPTS]; /* attempts per candidate index */
    bool alt_tried;
    attempt_t *winner; /* committed stream */
    attempt_t *last;   /* the last finished failure */
    bool started;      /* client stream started */
    bool first_byte;   /* PL_EV_FIRST_BYTE told */
    bool saw_done;
    bool saw_error;
    bool closed;   /* the client has its answer (or left): nothing more */
    bool budgeted; /* counted in retry_budget_global.active */
    bool hedged;
    int next_cand;     /* scheduled for r->next_ev */
    bool next_pending; /* r->next_ev armed: next_m holds a slot (and maybe a probe) */
    bool next_probe;
    const cfg_model_t *next_m;
    uint64_t deadline_ms; /* absolute (resil_now_ms), 0 = none */
    int prio;
    bool queued; /* counted in queue_waiting */
    resil_waiter_t waiter;
    struct event *next_ev, *hedge_ev, *deadline_ev, *queue_ev;
};

/* answer.c */
/* r->model follows the deployment answering now (the subscribers move its series). */
void relay__use_model(relay_t *r, const cfg_model_t *m);
/* x-skuld-model, x-skuld-provider, x-skuld-attempts. */
void relay__model_headers(relay_t *r);
/* The "usage" object of an answer or chunk into the request's token counts. */
void relay__take_usage(relay_t *r, json_t *obj);
/* The usage of a passed-through answer without parsing it whole; false when
 * the body is not a JSON object. */
bool relay__sniff_usage(relay_t *r, const char *b, size_t n);
/* One OpenAI stream payload on to the client; non-zero when it is gone. */
int relay__forward(relay_t *r, const char *event, const char *data, size_t len);
/* The provider's body in OpenAI's shape (translators only); false if unreadable. */
bool relay__translate_body(attempt_t *a);
/* A whole upstream answer (any status) as the request's result. */
pl_rc_t relay__finish_body(relay_t *r, attempt_t *a);
/* EP_COUNT_TOKENS on m, whose provider cannot count: the gateway's estimate
 * as the answer, x-skuld-token-count: estimate. */
pl_rc_t relay__count_estimate(relay_t *r, const cfg_model_t *m);

#endif
