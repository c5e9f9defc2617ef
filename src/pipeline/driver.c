/*
 * pipeline driver — see pipeline.h. The stage table, the loop that runs it,
 * the results a stage sets and their hand-off to the front end.
 */
#include "pipeline/pipeline.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "pipeline/events.h"

static const pl_stage_t *pl_stages[PL_STAGE__COUNT];
static const char *const pl_stage_names[PL_STAGE__COUNT] = {"auth",  "parse", "resolve",
                                                            "admit", "cache", "call"};

void pl_register_stage(int place, const pl_stage_t *stage)
{
    if (place >= 0 && place < PL_STAGE__COUNT) pl_stages[place] = stage;
}

const char *pl_stage_name(int place)
{
    return place >= 0 && place < PL_STAGE__COUNT ? pl_stage_names[place] : "respond";
}

pl_req_t *pl_req_new(arena_t *a, pl_env_t *env, const pl_frontend_t *fe, void *fe_ud,
                     uint64_t start_ns)
{
    pl_req_t *r = arena_calloc(a, sizeof *r);
    if (!r) return NULL;
    r->arena = a;
    r->env = env;
    r->cfg = config_ref(env->cfg);
    r->fe = fe;
    r->fe_ud = fe_ud;
    r->start_ns = start_ns;
    r->prompt_tokens = r->completion_tokens = -1;
    r->drive.stage = -1;
    r->drive.pending = -1;
    return r;
}

void pl_request_id(pl_env_t *env, char out[17])
{
    /* xorshift128+ */
    uint64_t s1 = env->rng[0];
    const uint64_t s0 = env->rng[1];
    env->rng[0] = s0;
    s1 ^= s1 << 23;
    env->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    buf_fmt_hex64(out, env->rng[1] + s0);
}

/* ---------- the loop ---------- */

static void pl__respond(pl_req_t *r);

/* A result that will never be answered (the client left): let go of it. */
static void pl__drop_result(pl_req_t *r)
{
    pl_drive_t *d = &r->drive;
    buf_free(&d->owned);
    if (d->release) d->release(d->release_ud);
    d->release = NULL;
}

static pl_rc_t pl__run_stage(pl_req_t *r, int place, bool *ran)
{
    if (place == PL_STAGE_PARSE) {
        *ran = r->parse != NULL;
        return r->parse ? (pl_rc_t)r->parse(r) : PL_NEXT;
    }
    const pl_stage_t *s = pl_stages[place];
    *ran = s != NULL;
    return s ? s->run(r) : PL_NEXT;
}

static void pl__stage_done(pl_req_t *r, pl_rc_t rc)
{
    pl_evd_t d = {.stage = r->drive.stage, .rc = (int)rc};
    pl_emit(r, PL_EV_STAGE, &d);
}

static void pl__drive(pl_req_t *r, pl_rc_t rc)
{
    pl_drive_t *d = &r->drive;
    if (!d->started) { /* answered by the front end itself, without the stages */
        if (rc == PL_DONE) pl__respond(r);
        return;
    }
    bool ran = d->stage >= 0;
    for (;;) {
        if (d->answered) { /* the client left meanwhile */
            pl__drop_result(r);
            return;
        }
        if (rc == PL_AGAIN) return;
        if (ran) pl__stage_done(r, rc);
        if (rc == PL_DONE) {
            pl__respond(r);
            return;
        }
        d->stage = rc == PL_REDIRECT ? d->redirect_to : d->stage + 1;
        if (d->stage >= PL_STAGE__COUNT) {
            pl_fail(r, 500, NULL, "internal_error", NULL, "no stage answered the request");
            pl__respond(r);
            return;
        }
        d->in_run++;
        d->pending = -1;
        rc = pl__run_stage(r, d->stage, &ran);
        d->in_run--;
        if (rc == PL_AGAIN && d->pending >= 0) {
            rc = (pl_rc_t)d->pending;
            d->pending = -1;
        }
    }
}

void pl_run(pl_req_t *r)
{
    r->drive.started = true;
    pl__drive(r, PL_NEXT);
}

void pl_resume(pl_req_t *r, pl_rc_t rc)
{
    if (r->drive.answered) {
        pl__drop_result(r);
        return;
    }
    if (r->drive.in_run) {
        r->drive.pending = (int)rc;
        return;
    }
    pl__drive(r, rc);
}

pl_rc_t pl_redirect(pl_req_t *r, int place)
{
    r->drive.redirect_to = place;
    return PL_REDIRECT;
}

void pl_abort(pl_req_t *r)
{
    if (r->drive.answered) return;
    r->drive.answered = true;
    void (*fn)(pl_req_t *) = r->on_abort;
    r->on_abort = NULL;
    r->on_drain = NULL;
    if (fn) fn(r);
    r->error = "client closed the connection";
    pl_account(r, 499);
}

void pl_drained(pl_req_t *r)
{
    if (r->on_drain) r->on_drain(r);
}

void pl_account(pl_req_t *r, int status)
{
    if (r->drive.accounted) return;
    r->drive.accounted = true;
    r->status = status;
    pl_emit(r, PL_EV_FINISHED, NULL);
    config_unref(r->cfg);
    r->cfg = NULL;
    json_decref(r->body);
    r->body = NULL;
    r->fast = NULL; /* nothing may parse it again */
}

json_t *pl_body(pl_req_t *r)
{
    if (!r->body && r->fast && r->raw)
        r->body = json_loadb(r->raw, r->raw_len, JSON_REJECT_DUPLICATES, NULL);
    return r->body;
}

/* The result to the front end, once. */
static void pl__respond(pl_req_t *r)
{
    pl_drive_t *d = &r->drive;
    if (d->answered) return;
    d->answered = true;
    r->on_abort = NULL;
    r->on_drain = NULL;
    const pl_frontend_t *fe = r->fe;
    /* an error of a request that never resolved a model is still counted */
    if (d->has_error && d->started && !r->ms) pl_set_model(r, r->model);
    if (d->streaming) {
        if (d->has_error) fe->stream_error(r, d->err.code, d->err.message);
        fe->stream_end(r);
    } else if (d->has_error) {
        fe->error(r, &d->err);
    } else if (d->replay) {
        fe->replay_body(r, d->body_status, d->replay_ctype, d->body, d->body_len);
    } else if (d->body) {
        fe->body(r, d->body_status, d->body, d->body_len);
    } else {
        d->answered = false;
        pl_fail(r, 500, NULL, "internal_error", NULL, "the request ended without an answer");
        d->answered = true;
        fe->error(r, &d->err);
    }
    pl_account(r, d->streaming ? 200 : 500); /* the front end did it already; a safety net */
    pl__drop_result(r);
}

/* ---------- results ---------- */

pl_rc_t pl_fail(pl_req_t *r, int status, const char *type, const char *code, const char *param,
                const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pl_rc_t rc = pl_failv(r, status, type, code, param, fmt, ap);
    va_end(ap);
    return rc;
}

pl_rc_t pl_failv(pl_req_t *r, int status, const char *type, const char *code, const char *param,
                 const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    pl_drive_t *d = &r->drive;
    const char *m = arena_strdup(r->arena, msg);
    if (!r->error) r->error = m;
    d->has_error = true;
    d->err = (pl_error_t){status, type, code, param, m ? m : "error"};
    return PL_DONE;
}

static void pl__answer(pl_req_t *r, int status, const char *data, size_t len)
{
    pl_drive_t *d = &r->drive;
    d->has_error = false;
    d->replay = false;
    d->body_status = status;
    d->body = data ? data : "";
    d->body_len = len;
}

pl_rc_t pl_answer(pl_req_t *r, int status, const char *data, size_t len)
{
    char *copy = arena_alloc(r->arena, len + 1);
    if (!copy) return pl_fail(r, 500, NULL, "internal_error", NULL, "out of memory");
    memcpy(copy, data, len);
    copy[len] = '\0';
    pl__answer(r, status, copy, len);
    return PL_DONE;
}

pl_rc_t pl_answer_take(pl_req_t *r, int status, buf_t *b)
{
    pl_drive_t *d = &r->drive;
    buf_free(&d->owned);
    d->owned = *b;
    buf_init(b, 0);
    pl__answer(r, status, buf_data(&d->owned), d->owned.len);
    return PL_DONE;
}

pl_rc_t pl_replay(pl_req_t *r, int status, const char *ctype, const char *data, size_t len,
                  void (*release)(void *ud), void *ud)
{
    if (!release) { /* nobody keeps data alive: a copy */
        char *copy = arena_alloc(r->arena, len + 1);
        if (!copy) return pl_fail(r, 500, NULL, "internal_error", NULL, "out of memory");
        memcpy(copy, data, len);
        copy[len] = '\0';
        data = copy;
    }
    pl__answer(r, status, data, len);
    r->drive.replay = true;
    r->drive.replay_ctype = ctype;
    r->drive.release = release;
    r->drive.release_ud = ud;
    return PL_DONE;
}

bool pl_answered(const pl_req_t *r)
{
    return r->drive.answered;
}

/* ---------- streams ---------- */

void pl_stream_start(pl_req_t *r)
{
    r->drive.streaming = true;
    r->fe->stream_start(r);
}

int pl_stream_payload(pl_req_t *r, pl_payload_t kind, const char *event, const char *data,
                      size_t len)
{
    return r->fe->stream_payload(r, kind, event, data, len);
}

pl_rc_t pl_stream_fail(pl_req_t *r, const char *code, const char *message)
{
    pl_drive_t *d = &r->drive;
    if (!r->error) r->error = message;
    d->has_error = true;
    d->err = (pl_error_t){502, "server_error", code, NULL, message};
    return PL_DONE;
}

void pl_replay_start(pl_req_t *r, int status, const char *ctype)
{
    r->drive.streaming = true;
    r->fe->replay_start(r, status, ctype);
}

int pl_replay_frame(pl_req_t *r, const char *data, size_t len)
{
    return r->fe->replay_frame(r, data, len);
}

bool pl_streaming(const pl_req_t *r)
{
    return r->drive.streaming;
}

/* ---------- the client ---------- */

pl_slice_t pl_req_header(pl_req_t *r, const char *name)
{
    return r->fe->header(r, name);
}

void pl_header(pl_req_t *r, const char *name, const char *value)
{
    r->fe->set_header(r, name, value);
}

void pl_headerf(pl_req_t *r, const char *name, const char *fmt, ...)
{
    char v[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    r->fe->set_header(r, name, v);
}

size_t pl_out_pending(pl_req_t *r)
{
    return r->fe->out_pending(r);
}

void pl_tap(pl_req_t *r, pl_tap_fn fn, void *ud)
{
    r->fe->set_tap(r, fn, ud);
}

void pl_set_model(pl_req_t *r, const cfg_model_t *m)
{
    pl_evd_t d = {.prev = r->model};
    if (m == r->model && r->ms) return;
    r->model = m;
    pl_emit(r, PL_EV_MODEL, &d);
}
