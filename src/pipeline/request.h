/*
 * pipeline request — the one request struct every front end fills and every
 * stage reads, independent of the wire format (DESIGN.md "Architecture").
 *
 * A front end (api/: OpenAI and Anthropic over HTTP; later gRPC) makes a
 * pl_req_t in the request's arena with pl_req_new(), fills what the client
 * asked for (endpoint, body, stream, the name asked for) in its parse stage,
 * and hands it to the driver (pipeline.h). The stages then fill what they
 * decide (principal, model, candidates, attempts, tokens, cache outcome).
 * Nothing here names a socket: the front end is reached only through
 * pl_frontend_t, the table of functions it gives the request, and only the
 * front end turns a result into bytes.
 *
 * Invariants:
 *   - r->cfg is a reference to the snapshot the request started with, held
 *     until the request is accounted (PL_EV_FINISHED); stages that outlive
 *     that (a call still cancelling) take their own.
 *   - r->model is the deployment answering now (the one counted in the
 *     metrics, the access log and x-skuld-model); it changes only through
 *     pl_set_model(), which tells the subscribers.
 *   - The request is answered exactly once: one of pl_answer/pl_fail/
 *     pl_replay (whole answers) or pl_stream_start ... then the stage's
 *     final pl_resume(PL_DONE).
 *
 * Threads: a request lives and dies on the worker loop that made it; so does
 * its pl_env_t (one per worker).
 */
#ifndef SKULD_PIPELINE_REQUEST_H
#define SKULD_PIPELINE_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/jscan.h"
#include "obs/metrics.h"
#include "provider/provider.h"

struct event_base;
struct upstream;
struct accesslog;

/* One worker's environment: what a request and its stages may use of the
 * loop it runs on. Owned by the worker (server/worker.h); its thread only. */
typedef struct pl_env {
    struct event_base *base;
    int id;                    /* worker index: per-worker connections (Redis) */
    struct upstream *upstream; /* the worker's upstream pool */
    struct accesslog *log;
    config_t *cfg; /* snapshot for new requests; replaced only on this thread */
    bool draining; /* SIGTERM: /readyz says so */
    uint64_t rng[2];
    uint64_t served; /* requests handled */
} pl_env_t;

/* The client's wire encoding: the cache keeps answers per encoding, and a
 * recorded answer is replayed only to the same one. */
enum { PL_SHAPE_OPENAI = 0, PL_SHAPE_ANTHROPIC };

typedef struct pl_req pl_req_t;

/* A piece of text the front end owns (a header value); not NUL-terminated. */
typedef struct pl_slice {
    const char *p;
    size_t n;
} pl_slice_t;

/* An error result: the front end renders it in its API's shape. */
typedef struct pl_error {
    int status;
    const char *type; /* NULL: derived from status */
    const char *code;
    const char *param;
    const char *message;
} pl_error_t;

/* What a front end records of its own encoded output (the response cache
 * keeps and shares it): START (a stream began: status, ctype), DATA (one
 * stream frame), END, BODY (a whole answer: status, ctype, data), ABORT (the
 * client left). hdrs: the response header lines set so far. */
typedef enum { PL_TAP_START, PL_TAP_DATA, PL_TAP_END, PL_TAP_BODY, PL_TAP_ABORT } pl_tap_t;
typedef struct pl_tap_ev {
    pl_tap_t kind;
    int status;
    const char *ctype;
    const char *data;
    size_t len;
    const char *hdrs; /* "Name: value\r\n" lines */
    size_t hdrs_len;
} pl_tap_ev_t;
typedef void (*pl_tap_fn)(pl_req_t *r, const pl_tap_ev_t *ev, void *ud);

/* A stream payload's kind: an OpenAI chunk (or any event the upstream sent),
 * the closing [DONE], or an error object the upstream put in its stream. */
typedef enum { PL_EV_CHUNK = 0, PL_EV_DONE_MARK, PL_EV_ERROR_OBJ } pl_payload_t;

/*
 * The front end's side of a request. The driver calls these; no stage does.
 * The final calls (body, error, replay_body, stream_end) must call
 * pl_account(r, status) just before they queue their last bytes, so the
 * request is accounted before the client can see its answer.
 */
typedef struct pl_frontend {
    /* A request header by lower-case name (gRPC: metadata); {NULL,0} if absent. */
    pl_slice_t (*header)(pl_req_t *r, const char *name);
    void (*set_header)(pl_req_t *r, const char *name, const char *value);
    /* A whole OpenAI-shaped JSON answer (any status): the front end shapes it. */
    void (*body)(pl_req_t *r, int status, const char *data, size_t len);
    void (*error)(pl_req_t *r, const pl_error_t *e);
    void (*stream_start)(pl_req_t *r);
    /* One OpenAI stream payload; non-zero when the client is gone. */
    int (*stream_payload)(pl_req_t *r, pl_payload_t kind, const char *event, const char *data,
                          size_t len);
    /* An error inside a stream that already began (never a clean end). */
    void (*stream_error)(pl_req_t *r, const char *code, const char *message);
    void (*stream_end)(pl_req_t *r);
    /* Already encoded by this kind of front end (a recorded answer). */
    void (*replay_body)(pl_req_t *r, int status, const char *ctype, const char *data, size_t len);
    void (*replay_start)(pl_req_t *r, int status, const char *ctype);
    int (*replay_frame)(pl_req_t *r, const char *data, size_t len);
    /* Bytes queued for the client and not yet sent (back-pressure). */
    size_t (*out_pending)(pl_req_t *r);
    uint64_t (*bytes_out)(pl_req_t *r);
    /* Observe the encoded output (NULL fn: stop). */
    void (*set_tap)(pl_req_t *r, pl_tap_fn fn, void *ud);
} pl_frontend_t;

/* The driver's per-request bookkeeping (pipeline.h); the stages leave it alone. */
typedef struct pl_drive {
    int stage;       /* the stage running or waiting (PL_STAGE_*) */
    int in_run;      /* inside a stage's run(): pl_resume only records */
    int pending;     /* an rc recorded meanwhile, or -1 */
    int redirect_to; /* PL_REDIRECT: the stage to run next */
    bool started;    /* pl_run was called */
    bool answered;   /* a final answer was handed to the front end */
    bool streaming;  /* pl_stream_start was called */
    bool accounted;
    bool has_error; /* r->err holds the result */
    pl_error_t err; /* the error result (pl_fail) */
    bool replay;    /* the body is a recorded answer (pl_replay) */
    const char *replay_ctype;
    int body_status;           /* pl_answer: the result */
    buf_t owned;               /* pl_answer_take: the body's buffer, freed after the answer */
    void (*release)(void *ud); /* pl_replay: called after the answer */
    void *release_ud;
    const char *body; /* ... in the arena, or the stage's buffer */
    size_t body_len;
} pl_drive_t;

struct pl_req {
    arena_t *arena;
    pl_env_t *env;
    config_t *cfg;
    const pl_frontend_t *fe;
    void *fe_ud; /* the front end's own per-request state */
    uint64_t start_ns;
    char request_id[130];

    /* ---- what the client asked (the front end's parse stage) ---- */
    endpoint_t ep;
    int shape;                 /* PL_SHAPE_* */
    const char *method, *path; /* for request signing and the access log */
    size_t method_len, path_len;
    const char *raw; /* the body as received */
    size_t raw_len;
    bool raw_is_request; /* raw is the OpenAI-shaped request itself (may be spliced) */
    json_t *body;        /* the OpenAI-shaped request; NULL while only scanned (fast) */
    const jscan_t *fast; /* the scan of raw when body is NULL */
    const char *asked;   /* the model or route asked for (or the default), NUL-terminated */
    size_t asked_len;
    bool stream, client_usage;
    /* The stage that decodes the body (the front end's; returns a pl_rc_t); NULL: none. */
    int (*parse)(pl_req_t *r);

    /* ---- decided by the stages ---- */
    const char *key_id, *team, *user; /* principal (auth), NULL when anonymous */
    const cfg_model_t *model;         /* the deployment answering now (pl_set_model) */
    metrics_series_t *ms;             /* series the request is counted in (obs subscriber) */
    const cfg_model_t **cands;        /* ordered deployments to try (resolve) */
    size_t n_cands;
    unsigned needs;                /* CAP_* the request needs; every candidate has them (resolve) */
    const cfg_resilience_t *resil; /* the route's settings, or NULL: cands[0]'s */
    bool budget_fallback;          /* admit sent the request to budgets.fallback_model */
    int attempts;                  /* upstream attempts started */
    long prompt_tokens, completion_tokens, cached_tokens; /* -1 unknown */
    const char *cache_status;                             /* hit / miss / bypass, or NULL */
    const char *error;                                    /* reason, for the access log */
    int status;                                           /* what the client got */

    /* ---- per-stage state, each stage's own ---- */
    struct pol_req *pol;             /* policy */
    struct route_track *route_track; /* resolve: live-stats bookkeeping */
    void *call;                      /* call: the relay */

    /* A stage that waits (PL_AGAIN) sets these; the driver calls them. */
    void (*on_abort)(pl_req_t *r); /* the client left: detach and cancel */
    void (*on_drain)(pl_req_t *r); /* the client's queue drained */
    void *wait_ud;

    pl_drive_t drive;
};

#endif
