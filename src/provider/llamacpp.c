/*
 * provider llamacpp — models embedded in the process through llama.cpp.
 *
 * A deployment of this type names a GGUF file (`path`); local/local.c loads
 * one engine per such deployment at startup (local/engine.h: its own thread,
 * continuous batching over `parallel` slots). This file is the worker-loop
 * side of one call, shaped like provider/echo.c: it answers exactly what an
 * OpenAI-compatible server would send (a JSON body, or an SSE stream of
 * chat.completion.chunk / text_completion events, a usage chunk and [DONE])
 * through up_callbacks_t, so the relay treats it like any upstream.
 *
 * On the worker loop (never blocking): parse the request, render the chat
 * template and tokenize (the vocabulary is read-only, so this is safe beside
 * the engine thread), refuse a prompt that does not fit the context with a
 * 400 in the OpenAI error shape naming the limit, then queue the job. The
 * engine thread decodes and calls llamacpp__notify, which only activates this
 * call's event; the event callback, on the worker loop again, takes the new
 * text and writes it out. Callbacks are never made from inside local_start.
 * local_cancel (the client left) releases the job, which frees its slot at
 * the engine's next step; if it happens inside one of our own callbacks the
 * handle is only marked and freed when that callback returns.
 */
#include <event2/event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/jsonw.h"
#include "core/log.h"
#include "local/local.h"
#include "provider/embed.h"
#include "provider/provider.h"
#include "provider/xlate.h"

struct prov_local {
    struct event *ev;
    up_callbacks_t cb;
    void *ud;
    local_model_t *lm; /* held for the call's life: a reload never frees it under us */
    engine_t *engine;  /* lm's */
    engine_job_t *job;
    endpoint_t ep;
    bool stream;
    bool started;   /* on_head sent (streams) */
    bool paused;    /* relay asked us to hold */
    bool in_cb;     /* inside one of our callbacks into the relay */
    bool dead;      /* cancelled from inside a callback: free on return */
    bool finishing; /* last bytes handed over (or held by a pause); on_done next */
    up_result_t finish_result;
    const char *finish_detail;
    int now_status; /* != 0: answer this status at once (out holds the body): an error, a count */
    long prompt_tokens;
    embed_opts_t emb; /* embeddings: encoding and dimensions asked */
    char id[40];
    char model[200];
    long created;
    buf_t out;  /* bytes for the next on_data */
    buf_t text; /* non-streamed: the whole completion */
    buf_t piece;
};

static void llamacpp__free(prov_local_t *h)
{
    engine_job_release(h->job); /* before the model's reference: no job may outlive it */
    h->job = NULL;
    local_release(h->lm);
    if (h->ev) event_free(h->ev);
    buf_free(&h->out);
    buf_free(&h->text);
    buf_free(&h->piece);
    free(h);
}

/* Engine thread: only wake the owning loop. */
static void llamacpp__notify(void *ud)
{
    prov_local_t *h = ud;
    event_active(h->ev, EV_TIMEOUT, 0);
}

static int llamacpp_build(arena_t *a, endpoint_t ep, json_t *body, const cfg_model_t *m,
                          bool stream, prov_call_t *out)
{
    embed_opts_t eo;
    int rc = ep == EP_EMBEDDINGS ? embed_request(a, body, &eo, out) : 0;
    if (rc) return rc; /* dimensions against the model's size: at start, with the engine */
    json_object_set_new(body, "model", json_string(m->name));
    if (ep != EP_EMBEDDINGS) { /* a generation cap; an embeddings body takes no such field */
        json_t *cap = json_object_get(body, "max_completion_tokens");
        if (!cap || json_is_null(cap)) cap = json_object_get(body, "max_tokens");
        if ((!cap || json_is_null(cap)) && m->default_max_tokens > 0)
            json_object_set_new(body, "max_tokens", json_integer(m->default_max_tokens));
    }
    char *url = arena_concat(a, "llamacpp:", m->name);
    if (!url || provider_body(a, body, out) != 0) return -1;
    out->url = url; /* names the engine: local_acquire(model name) */
    out->headers = NULL;
    return 0;
}

static void llamacpp__error(prov_local_t *h, int status, const char *code, const char *param,
                            const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void llamacpp__error(prov_local_t *h, int status, const char *code, const char *param,
                            const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    h->now_status = status;
    buf_reset(&h->out);
    xl_error_json(&h->out, status, status >= 500 ? "server_error" : "invalid_request_error", code,
                  param, msg);
}

/* Sampling parameters; false (and an error set) on a wrong type or range. */
static bool llamacpp__sampling(prov_local_t *h, json_t *req, engine_sampling_t *s)
{
    engine_default_sampling(s);
    json_t *v;
    if ((v = json_object_get(req, "temperature")) && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 2) goto bad_t;
        s->temperature = (float)json_number_value(v);
    }
    if ((v = json_object_get(req, "top_p")) && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) <= 0 || json_number_value(v) > 1) goto bad_p;
        s->top_p = (float)json_number_value(v);
    }
    if ((v = json_object_get(req, "top_k")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 100000)
            goto bad_k;
        s->top_k = (int)json_integer_value(v);
    }
    if ((v = json_object_get(req, "seed")) && !json_is_null(v)) {
        if (!json_is_integer(v)) goto bad_seed;
        s->seed = (uint32_t)json_integer_value(v);
        s->has_seed = true;
    }
    v = json_object_get(req, "max_completion_tokens");
    if (!v || json_is_null(v)) v = json_object_get(req, "max_tokens");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1) goto bad_max;
        s->max_tokens = json_integer_value(v) > (1 << 24) ? (1 << 24) : (int)json_integer_value(v);
    }
    if ((v = json_object_get(req, "stop")) && !json_is_null(v)) {
        if (json_is_string(v)) {
            s->stop[s->n_stop++] = json_string_value(v);
        } else if (json_is_array(v) && json_array_size(v) <= 4) {
            size_t i;
            json_t *x;
            json_array_foreach(v, i, x)
            {
                if (!json_is_string(x)) goto bad_stop;
                s->stop[s->n_stop++] = json_string_value(x);
            }
        } else {
            goto bad_stop;
        }
        for (int i = 0; i < s->n_stop; i++)
            if (strlen(s->stop[i]) > 256) goto bad_stop;
    }
    return true;
bad_t:
    llamacpp__error(h, 400, "invalid_value", "temperature", "temperature must be between 0 and 2");
    return false;
bad_p:
    llamacpp__error(h, 400, "invalid_value", "top_p", "top_p must be in (0, 1]");
    return false;
bad_k:
    llamacpp__error(h, 400, "invalid_value", "top_k", "top_k must be an integer >= 0");
    return false;
bad_seed:
    llamacpp__error(h, 400, "invalid_type", "seed", "seed must be an integer");
    return false;
bad_max:
    llamacpp__error(h, 400, "invalid_value", "max_tokens", "max_tokens must be an integer >= 1");
    return false;
bad_stop:
    llamacpp__error(h, 400, "invalid_value", "stop",
                    "stop must be a string or an array of at most 4 strings of <= 256 bytes");
    return false;
}

static void llamacpp__too_long(prov_local_t *h, long n, const char *param)
{
    llamacpp__error(h, 400, "context_length_exceeded", param,
                    "This model's maximum context length is %d tokens. However, your %s "
                    "resulted in %ld tokens.",
                    engine_n_ctx_slot(h->engine), param, n);
}

/* The chat template applied to req's messages, appended to prompt; false
 * (an error set) when it cannot be. */
static bool llamacpp__chat_prompt(prov_local_t *h, json_t *req, buf_t *prompt)
{
    json_t *msgs = json_object_get(req, "messages");
    size_t n = json_array_size(msgs);
    engine_msg_t *m = calloc(n ? n : 1, sizeof *m);
    buf_t *texts = calloc(n ? n : 1, sizeof *texts);
    if (!m || !texts) {
        free(m);
        free(texts);
        llamacpp__error(h, 500, "internal_error", NULL, "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *msg = json_array_get(msgs, i);
        const char *role = json_string_value(json_object_get(msg, "role"));
        buf_init(&texts[i], 0);
        provider_content_text(&texts[i], json_object_get(msg, "content"), NULL);
        m[i].role = role ? role : "user";
        m[i].content = buf_data(&texts[i]);
    }
    int rc = engine_chat_prompt(h->engine, m, n, prompt);
    for (size_t i = 0; i < n; i++) buf_free(&texts[i]);
    free(texts);
    free(m);
    if (rc != 0) llamacpp__error(h, 500, "internal_error", NULL, "cannot apply the chat template");
    return rc == 0;
}

/* EP_COUNT_TOKENS: the prompt tokens a chat request with these messages
 * reports (the chat template, tokenized), with the tool definitions as JSON
 * text after it (the template has no tool syntax; a chat request to a local
 * model does not carry them). */
static void llamacpp__count(prov_local_t *h, json_t *req)
{
    buf_t prompt;
    buf_init(&prompt, 0);
    if (!llamacpp__chat_prompt(h, req, &prompt)) {
        buf_free(&prompt);
        return;
    }
    json_t *tools = json_object_get(req, "tools");
    if (json_array_size(tools)) {
        buf_appends(&prompt, "\n");
        provider_dump(&prompt, tools);
    }
    int32_t *toks = NULL;
    int n = engine_tokenize(h->engine, buf_data(&prompt), prompt.len, true, &toks);
    free(toks);
    buf_free(&prompt);
    if (n < 0) {
        llamacpp__error(h, 500, "internal_error", NULL, "cannot tokenize the prompt");
        return;
    }
    h->now_status = 200;
    buf_reset(&h->out);
    buf_printf(&h->out, "{\"input_tokens\":%d}", n);
}

/* Chat or completion: build the prompt, check it fits, queue it. */
static void llamacpp__prepare_generate(prov_local_t *h, json_t *req)
{
    buf_t prompt;
    buf_init(&prompt, 0);
    bool special = false;
    const char *param = "prompt";
    if (h->ep == EP_CHAT) {
        if (!llamacpp__chat_prompt(h, req, &prompt)) {
            buf_free(&prompt);
            return;
        }
        special = true;
        param = "messages";
    } else {
        json_t *p = json_object_get(req, "prompt");
        if (json_is_array(p)) {
            if (json_array_size(p) != 1 || !json_is_string(json_array_get(p, 0))) {
                llamacpp__error(h, 400, "invalid_value", "prompt",
                                "local models take one prompt string per request");
                buf_free(&prompt);
                return;
            }
            p = json_array_get(p, 0);
        }
        buf_append(&prompt, json_string_value(p), json_string_length(p));
    }
    engine_sampling_t s;
    if (!llamacpp__sampling(h, req, &s)) {
        buf_free(&prompt);
        return;
    }
    int32_t *toks = NULL;
    int n = engine_tokenize(h->engine, buf_data(&prompt), prompt.len, special, &toks);
    buf_free(&prompt);
    if (n < 0) {
        llamacpp__error(h, 500, "internal_error", NULL, "cannot tokenize the prompt");
    } else if (n >= engine_n_ctx_slot(h->engine)) {
        llamacpp__too_long(h, n, param);
    } else {
        h->prompt_tokens = n;
        h->job = engine_submit(h->engine, toks, n, &s, llamacpp__notify, h);
        if (!h->job) llamacpp__error(h, 500, "internal_error", NULL, "out of memory");
    }
    free(toks);
}

/* A request llamacpp_build checked (embed_request): its inputs tokenized and queued. */
static void llamacpp__prepare_embed(prov_local_t *h, json_t *req)
{
    prov_call_t why = {0};
    if (embed_request(NULL, req, &h->emb, &why) != 0) {
        llamacpp__error(h, 400, why.error_code, why.error_param, "%s", why.error);
        return;
    }
    if (h->emb.dims > engine_n_embd(h->engine)) {
        embed_dims_error(&h->out, &h->emb, engine_n_embd(h->engine));
        h->now_status = 400;
        return;
    }
    size_t count = h->emb.n;
    int32_t **toks = calloc(count, sizeof *toks);
    int *ns = calloc(count, sizeof *ns);
    bool ok = toks && ns;
    if (!ok) llamacpp__error(h, 500, "internal_error", NULL, "out of memory");
    for (size_t i = 0; ok && i < count; i++) {
        size_t len;
        const char *text = embed_input(req, i, &len);
        ns[i] = engine_tokenize(h->engine, text, len, false, &toks[i]);
        if (ns[i] < 0) {
            llamacpp__error(h, 500, "internal_error", NULL, "cannot tokenize the input");
            ok = false;
        } else if (ns[i] > engine_n_ctx_slot(h->engine)) {
            llamacpp__too_long(h, ns[i], "input");
            ok = false;
        } else {
            h->prompt_tokens += ns[i];
        }
    }
    if (ok) {
        h->job = engine_submit_embed(h->engine, toks, ns, (int)count, llamacpp__notify, h);
        if (!h->job) llamacpp__error(h, 500, "internal_error", NULL, "out of memory");
    }
    for (size_t i = 0; toks && i < count; i++) free(toks[i]);
    free(toks);
    free(ns);
}

/* ---------- output ---------- */

static const char *llamacpp__reason(engine_state_t st)
{
    return st == ENGINE_LENGTH ? "length" : "stop";
}

static void llamacpp__usage(prov_local_t *h, long completion)
{
    buf_printf(&h->out, "{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,\"total_tokens\":%ld}",
               h->prompt_tokens, completion, h->prompt_tokens + completion);
}

static void llamacpp__chunk_head(prov_local_t *h)
{
    bool chat = h->ep == EP_CHAT;
    buf_printf(&h->out, "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":", h->id,
               chat ? "chat.completion.chunk" : "text_completion", h->created);
    jsonw_cstr(&h->out, h->model);
    buf_appends(&h->out, ",\"choices\":[");
}

static void llamacpp__stream_piece(prov_local_t *h, const char *s, size_t n, const char *finish)
{
    llamacpp__chunk_head(h);
    if (h->ep == EP_CHAT) {
        buf_appends(&h->out, "{\"index\":0,\"delta\":");
        if (n) {
            buf_appends(&h->out, "{\"content\":");
            jsonw_str(&h->out, s, n);
            buf_appends(&h->out, "}");
        } else {
            buf_appends(&h->out, "{}");
        }
    } else {
        buf_appends(&h->out, "{\"index\":0,\"text\":");
        jsonw_str(&h->out, s, n);
        buf_appends(&h->out, ",\"logprobs\":null");
    }
    buf_printf(&h->out, ",\"finish_reason\":%s%s%s}]}\n\n", finish ? "\"" : "",
               finish ? finish : "null", finish ? "\"" : "");
}

static void llamacpp__whole(prov_local_t *h, const engine_result_t *res)
{
    buf_reset(&h->out);
    if (h->ep == EP_EMBEDDINGS) {
        int count;
        const float *v = engine_job_embeddings(h->job, &count);
        int d = engine_n_embd(h->engine);
        embed_begin(&h->out);
        for (int i = 0; i < count; i++)
            embed_vector(&h->out, &h->emb, (size_t)i, v + (size_t)i * d, d);
        embed_end(&h->out, h->model, h->prompt_tokens);
        return;
    }
    bool chat = h->ep == EP_CHAT;
    buf_printf(&h->out, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":", h->id,
               chat ? "chat.completion" : "text_completion", h->created);
    jsonw_cstr(&h->out, h->model);
    if (chat) {
        buf_appends(&h->out,
                    ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
        jsonw_str(&h->out, buf_data(&h->text), h->text.len);
        buf_appends(&h->out, "}");
    } else {
        buf_appends(&h->out, ",\"choices\":[{\"index\":0,\"text\":");
        jsonw_str(&h->out, buf_data(&h->text), h->text.len);
        buf_appends(&h->out, ",\"logprobs\":null");
    }
    buf_printf(&h->out, ",\"finish_reason\":\"%s\"}],\"usage\":", llamacpp__reason(res->state));
    llamacpp__usage(h, res->completion_tokens);
    buf_appends(&h->out, "}");
}

/* Deliver h->out; false when the handle is gone or paused. */
static bool llamacpp__deliver(prov_local_t *h)
{
    if (!h->out.len) return true;
    h->in_cb = true;
    int rc = h->cb.on_data(h->ud, buf_data(&h->out), h->out.len);
    h->in_cb = false;
    buf_reset(&h->out);
    if (h->dead) {
        llamacpp__free(h);
        return false;
    }
    if (rc == UP_PAUSE) {
        h->paused = true;
        return false;
    }
    return true;
}

static void llamacpp__head(prov_local_t *h, int status)
{
    h->in_cb = true;
    h->cb.on_head(h->ud, status);
    h->in_cb = false;
}

static void llamacpp__done(prov_local_t *h, up_result_t r, const char *detail)
{
    if (h->dead) {
        llamacpp__free(h);
        return;
    }
    h->cb.on_done(h->ud, r, detail);
    llamacpp__free(h); /* as with upstream calls: freed by the provider after on_done */
}

/* Deliver the last bytes, then on_done (possibly after a pause and resume). */
static void llamacpp__finish(prov_local_t *h, up_result_t r, const char *detail)
{
    h->finishing = true;
    h->finish_result = r;
    h->finish_detail = detail;
    if (!llamacpp__deliver(h)) return; /* freed, or paused: resume comes back here */
    llamacpp__done(h, r, detail);
}

static void llamacpp__run(evutil_socket_t fd, short what, void *arg)
{
    prov_local_t *h = arg;
    if (h->paused) return;
    if (h->finishing) {
        llamacpp__done(h, h->finish_result, h->finish_detail);
        return;
    }
    if (h->now_status) {
        llamacpp__head(h, h->now_status);
        if (h->dead) {
            llamacpp__free(h);
            return;
        }
        llamacpp__finish(h, UP_OK, NULL);
        return;
    }
    if (h->stream && !h->started) {
        h->started = true;
        llamacpp__head(h, 200);
        if (h->dead) {
            llamacpp__free(h);
            return;
        }
        if (h->ep == EP_CHAT) {
            llamacpp__chunk_head(h);
            buf_appends(&h->out, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                                 "\"finish_reason\":null}]}\n\n");
        }
    }
    engine_result_t res;
    buf_reset(&h->piece);
    engine_job_take(h->job, &h->piece, &res);
    if (res.state == ENGINE_FAILED) {
        log_warn("model %s: %s", h->model, res.error ? res.error : "local inference failed");
        if (!h->stream) buf_reset(&h->out);
        llamacpp__finish(h, UP_PROTOCOL_ERROR, res.error ? res.error : "local inference failed");
        return;
    }
    if (!h->stream) {
        buf_append(&h->text, buf_data(&h->piece), h->piece.len);
        if (res.state == ENGINE_RUNNING) return;
        llamacpp__whole(h, &res);
        llamacpp__head(h, 200);
        if (h->dead) {
            llamacpp__free(h);
            return;
        }
        llamacpp__finish(h, UP_OK, NULL);
        return;
    }
    if (h->piece.len) llamacpp__stream_piece(h, buf_data(&h->piece), h->piece.len, NULL);
    if (res.state == ENGINE_RUNNING) {
        llamacpp__deliver(h);
        return;
    }
    llamacpp__stream_piece(h, "", 0, llamacpp__reason(res.state));
    llamacpp__chunk_head(h);
    buf_appends(&h->out, "],\"usage\":");
    llamacpp__usage(h, res.completion_tokens);
    buf_appends(&h->out, "}\n\ndata: [DONE]\n\n");
    llamacpp__finish(h, UP_OK, NULL);
}

static prov_local_t *llamacpp_start(struct event_base *base, endpoint_t ep, const prov_call_t *call,
                                    const up_callbacks_t *cb, void *ud)
{
    const char *name = strncmp(call->url, "llamacpp:", 9) == 0 ? call->url + 9 : "";
    prov_local_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->lm = local_acquire(name);
    engine_t *e = local_model_engine(h->lm);
    h->cb = *cb;
    h->ud = ud;
    h->ep = ep;
    h->engine = e;
    buf_init(&h->out, 0);
    buf_init(&h->text, 0);
    buf_init(&h->piece, 0);
    h->created = (long)time(NULL);
    static atomic_ulong seq;
    snprintf(h->id, sizeof h->id, "%s-%lx%06lx", ep == EP_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long)h->created, atomic_fetch_add(&seq, 1) & 0xffffff);
    snprintf(h->model, sizeof h->model, "%s", name);
    h->ev = event_new(base, -1, 0, llamacpp__run, h);
    if (!h->ev) {
        llamacpp__free(h);
        return NULL;
    }
    json_t *req = json_loadb(call->body, call->body_len, 0, NULL);
    h->stream = json_is_true(json_object_get(req, "stream"));
    if (!e) {
        llamacpp__error(h, 503, "model_not_loaded", NULL, "local model %s is not loaded", name);
    } else if (ep == EP_EMBEDDINGS) {
        h->stream = false;
        llamacpp__prepare_embed(h, req);
    } else if (ep == EP_CHAT || ep == EP_COMPLETIONS) {
        llamacpp__prepare_generate(h, req);
    } else if (ep == EP_COUNT_TOKENS) {
        h->stream = false;
        llamacpp__count(h, req);
    } else {
        llamacpp__error(h, 404, "not_found", NULL, "not served by a local model");
    }
    json_decref(req);
    if (h->now_status) event_active(h->ev, EV_TIMEOUT, 0); /* never call back from here */
    return h;
}

/* Before on_done only: no callback fires afterwards. */
static void llamacpp_cancel(prov_local_t *h)
{
    if (!h) return;
    engine_job_release(h->job); /* the slot is freed at the engine's next step */
    h->job = NULL;
    if (h->in_cb) {
        h->dead = true;
        return;
    }
    llamacpp__free(h);
}

static void llamacpp_resume(prov_local_t *h)
{
    if (h && h->paused) {
        h->paused = false;
        event_active(h->ev, EV_TIMEOUT, 0);
    }
}

const prov_ops_t provider_llamacpp = {
    .type = "llamacpp",
    .counts_tokens = true,
    .build = llamacpp_build,
    .local_start = llamacpp_start,
    .local_cancel = llamacpp_cancel,
    .local_resume = llamacpp_resume,
};
