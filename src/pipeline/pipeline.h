/*
 * pipeline — the one driver of a request's stages (DESIGN.md "Architecture"):
 *
 *   auth -> parse -> resolve -> admit -> cache -> call -> respond -> account
 *
 * A stage is a pl_stage_t registered under its place (PL_STAGE_*) at start-up
 * by the process (server/), so no stage names another and this module names
 * none of them. Its run() returns, in the manner of nginx's phase handlers:
 *   PL_NEXT      go on with the next stage;
 *   PL_DONE      answered: the result is the error (pl_fail) or the answer
 *                (pl_answer, pl_replay) it set, or the stream it ran;
 *   PL_AGAIN     it goes on asynchronously and will call pl_resume() with
 *                PL_NEXT or PL_DONE (pl_resume may also come before run()
 *                returns: the driver then takes it when run() returns);
 *   PL_REDIRECT  run again from an earlier stage (pl_redirect: a budget
 *                fallback goes back to resolve, so the candidate list is
 *                built in one place only).
 * The parse stage is the front end's own (r->parse). Stages that are not
 * registered are skipped.
 *
 * "respond" is the driver's: on PL_DONE it hands the result to the front end
 * (pl_frontend_t), the only code that turns a result into bytes. "account"
 * is pl_account(), called by the front end just before the last bytes are
 * queued (or by the driver when the client left): it emits PL_EV_FINISHED
 * to the subscribers (events.h) once and drops the snapshot reference.
 *
 * Streams: a stage that streams calls pl_stream_start / pl_stream_payload
 * while it waits, then pl_resume(PL_DONE) (with pl_stream_fail first if the
 * stream broke: the client gets an error event, never a clean end).
 *
 * Threads: everything on the request's worker loop. Registration happens
 * before the workers start and is read-only afterwards.
 */
#ifndef SKULD_PIPELINE_H
#define SKULD_PIPELINE_H

#include <stdarg.h>

#include "pipeline/request.h"

typedef enum { PL_NEXT = 0, PL_DONE, PL_AGAIN, PL_REDIRECT } pl_rc_t;

enum {
    PL_STAGE_AUTH = 0,
    PL_STAGE_PARSE,
    PL_STAGE_RESOLVE,
    PL_STAGE_ADMIT,
    PL_STAGE_CACHE,
    PL_STAGE_CALL,
    PL_STAGE__COUNT
};

typedef struct pl_stage {
    const char *name;
    pl_rc_t (*run)(pl_req_t *r);
} pl_stage_t;

/* Start-up, before any worker runs. */
void pl_register_stage(int place, const pl_stage_t *stage);
const char *pl_stage_name(int place);

/* A request in arena a on env's loop, answered through fe (fe_ud is the
 * front end's own state). It holds a reference to env->cfg. NULL: no memory. */
pl_req_t *pl_req_new(arena_t *a, pl_env_t *env, const pl_frontend_t *fe, void *fe_ud,
                     uint64_t start_ns);

/* The front end: run the stages from the first one. */
void pl_run(pl_req_t *r);
/* A stage that returned PL_AGAIN: go on (PL_NEXT) or respond (PL_DONE).
 * On a request the front end answers itself (no pl_run), PL_DONE responds. */
void pl_resume(pl_req_t *r, pl_rc_t rc);
/* From a stage's run(): go back to `place` and run from there. */
pl_rc_t pl_redirect(pl_req_t *r, int place);
/* The front end: the client left before its answer. The waiting stage's
 * on_abort detaches, then the request is accounted with 499. */
void pl_abort(pl_req_t *r);
/* The front end: queued output drained below its low watermark. */
void pl_drained(pl_req_t *r);
/* The front end, just before it queues the last bytes; the driver on abort. Once. */
void pl_account(pl_req_t *r, int status);

/* ---- results (set by a stage, rendered by the front end) ---- */

/* An error; message formatted. type NULL: derived from status. Returns PL_DONE.
 * The first error of a request is also its access-log reason (r->error). */
pl_rc_t pl_fail(pl_req_t *r, int status, const char *type, const char *code, const char *param,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
pl_rc_t pl_failv(pl_req_t *r, int status, const char *type, const char *code, const char *param,
                 const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));
/* A whole OpenAI-shaped JSON answer (copied into the request's arena). */
pl_rc_t pl_answer(pl_req_t *r, int status, const char *data, size_t len);
/* The same from a buffer the driver takes over (b is left empty). */
pl_rc_t pl_answer_take(pl_req_t *r, int status, buf_t *b);
/* An answer already in the front end's encoding (the cache's recorded ones;
 * the front end's own). data stays valid until release(ud), which the
 * driver calls once answered; release NULL: data is copied. */
pl_rc_t pl_replay(pl_req_t *r, int status, const char *ctype, const char *data, size_t len,
                  void (*release)(void *ud), void *ud);
bool pl_answered(const pl_req_t *r);

/* ---- streams ---- */
void pl_stream_start(pl_req_t *r);
/* One OpenAI stream payload; non-zero when the client is gone. */
int pl_stream_payload(pl_req_t *r, pl_payload_t kind, const char *event, const char *data,
                      size_t len);
/* The stream broke after it began: an error event, then the end. Returns PL_DONE. */
pl_rc_t pl_stream_fail(pl_req_t *r, const char *code, const char *message);
/* A recorded stream (the cache). */
void pl_replay_start(pl_req_t *r, int status, const char *ctype);
int pl_replay_frame(pl_req_t *r, const char *data, size_t len);
bool pl_streaming(const pl_req_t *r);

/* ---- the client, through the front end ---- */
pl_slice_t pl_req_header(pl_req_t *r, const char *name);
void pl_header(pl_req_t *r, const char *name, const char *value);
void pl_headerf(pl_req_t *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
size_t pl_out_pending(pl_req_t *r);
/* A source that feeds a stream pauses while pl_out_pending() is above this
 * (the front end calls pl_drained() once it falls below its low watermark). */
#define PL_OUT_HIGH_WATER (256 * 1024)
void pl_tap(pl_req_t *r, pl_tap_fn fn, void *ud);

/* The request as a tree: parsed from r->raw on first use when the front end
 * only scanned it (the scanner accepted it, so the parse succeeds). The
 * request owns it; it is freed once the request is accounted. NULL only when
 * out of memory (or no request body). */
json_t *pl_body(pl_req_t *r);

/* ---- model bookkeeping ---- */
/* r->model = m (NULL: counted as a request that resolved no model); the
 * subscribers move the request's series (PL_EV_MODEL). */
void pl_set_model(pl_req_t *r, const cfg_model_t *m);

/* ---- helpers for front ends ---- */
/* A fresh 16-hex-digit request id from env's generator (not for secrets). */
void pl_request_id(pl_env_t *env, char out[17]);

#endif
