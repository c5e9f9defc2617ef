/*
 * provider echo — a built-in local model that answers with the text it was
 * given. It serves the embedded default config until embedded llama.cpp
 * lands, and lets the gateway run with no upstream at all.
 *
 * It behaves like an OpenAI-compatible server reached in-process: its answer
 * is the same JSON (or SSE stream, one chunk per word, then a usage chunk and
 * [DONE]) an upstream would send, delivered through up_callbacks_t from a
 * zero-delay event on the worker's loop, never from inside local_start.
 * Embeddings (provider/embed.h): 8 components from a hash of each input,
 * encoding_format and dimensions (at most 8) as asked. Token counts are
 * whitespace-separated words (EP_COUNT_TOKENS: those of
 * the messages, and of the tools' JSON).
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/jsonw.h"
#include "core/log.h"
#include "provider/embed.h"
#include "provider/provider.h"
#include "provider/xlate.h"

struct prov_local {
    struct event *ev;
    up_callbacks_t cb;
    void *ud;
    buf_t out;
    int phase; /* 0 = not started, 1 = head sent (data maybe paused), 2 = done */
    bool paused;
    bool in_callback; /* inside on_head/on_data: a cancel there must not free */
    bool cancelled;
};

static long echo_words(const char *s)
{
    long n = 0;
    bool in = false;
    for (; *s; s++) {
        bool sp = *s == ' ' || *s == '\n' || *s == '\t' || *s == '\r';
        if (!sp && !in) n++;
        in = !sp;
    }
    return n;
}

#define ECHO_DIMS 8 /* the size of an echo embedding */

static int echo_build(arena_t *a, endpoint_t ep, json_t *body, const cfg_model_t *m, bool stream,
                      prov_call_t *out)
{
    embed_opts_t eo;
    if (ep == EP_EMBEDDINGS) {
        int rc = embed_request(a, body, &eo, out);
        if (rc) return rc;
        if (eo.dims > ECHO_DIMS) {
            out->error =
                arena_printf(a, "dimensions must be between 1 and %d for this model", ECHO_DIMS);
            out->error_code = "invalid_value";
            out->error_param = "dimensions";
            return PROV_EBADREQ;
        }
    }
    json_object_set_new(body, "model", json_string(m->upstream_model));
    if (provider_body(a, body, out) != 0) return -1;
    out->url = "echo:";
    out->headers = NULL;
    return 0;
}

static void echo_usage(buf_t *o, long prompt, long completion)
{
    buf_printf(o, "{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,\"total_tokens\":%ld}", prompt,
               completion, prompt + completion);
}

/* The text of every message into all (space-separated), of the last one into last. */
static void echo_messages_text(json_t *req, buf_t *all, buf_t *last)
{
    size_t i;
    json_t *msg;
    json_array_foreach(json_object_get(req, "messages"), i, msg)
    {
        buf_reset(last);
        provider_content_text(last, json_object_get(msg, "content"), " ");
        buf_append(all, buf_data(last), last->len);
        buf_append(all, " ", 1);
    }
}

/* EP_COUNT_TOKENS: the prompt_tokens a chat with these messages reports
 * (words), plus the words of the tool definitions' JSON. */
static void echo_count(json_t *req, buf_t *o)
{
    buf_t all, last;
    buf_init(&all, 0);
    buf_init(&last, 0);
    echo_messages_text(req, &all, &last);
    json_t *tools = json_object_get(req, "tools");
    if (json_array_size(tools)) provider_dump(&all, tools);
    buf_printf(o, "{\"input_tokens\":%ld}", echo_words(buf_data(&all)));
    buf_free(&all);
    buf_free(&last);
}

static void echo_chat(json_t *req, bool stream, buf_t *o)
{
    buf_t all, last;
    buf_init(&all, 0);
    buf_init(&last, 0);
    echo_messages_text(req, &all, &last);
    const char *model = json_string_value(json_object_get(req, "model"));
    long prompt = echo_words(buf_data(&all)), completion = echo_words(buf_data(&last));
    if (!stream) {
        buf_appends(
            o, "{\"id\":\"chatcmpl-echo\",\"object\":\"chat.completion\",\"created\":0,\"model\":");
        jsonw_cstr(o, model);
        buf_appends(o,
                    ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
        jsonw_str(o, buf_data(&last), last.len);
        buf_appends(o, "},\"finish_reason\":\"stop\"}],\"usage\":");
        echo_usage(o, prompt, completion);
        buf_appends(o, "}");
    } else {
        buf_t head;
        buf_init(&head, 0);
        buf_appends(&head, "data: "
                           "{\"id\":\"chatcmpl-echo\",\"object\":\"chat.completion.chunk\","
                           "\"created\":0,\"model\":");
        jsonw_cstr(&head, model);
        buf_appends(&head, ",\"choices\":[");
        buf_append(o, buf_data(&head), head.len);
        buf_appends(o, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_"
                       "reason\":null}]}\n\n");
        /* one chunk per word, keeping the separating whitespace */
        const char *s = buf_data(&last), *end = s + last.len;
        while (s < end) {
            const char *w = s;
            while (w < end && (*w == ' ' || *w == '\n' || *w == '\t')) w++;
            while (w < end && !(*w == ' ' || *w == '\n' || *w == '\t')) w++;
            buf_append(o, buf_data(&head), head.len);
            buf_appends(o, "{\"index\":0,\"delta\":{\"content\":");
            jsonw_str(o, s, (size_t)(w - s));
            buf_appends(o, "},\"finish_reason\":null}]}\n\n");
            s = w;
        }
        buf_append(o, buf_data(&head), head.len);
        buf_appends(o, "{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
        buf_append(o, buf_data(&head), head.len);
        buf_appends(o, "],\"usage\":");
        echo_usage(o, prompt, completion);
        buf_appends(o, "}\n\ndata: [DONE]\n\n");
        buf_free(&head);
    }
    buf_free(&all);
    buf_free(&last);
}

static void echo_completion(json_t *req, bool stream, buf_t *o)
{
    buf_t text;
    buf_init(&text, 0);
    json_t *prompt = json_object_get(req, "prompt");
    if (json_is_array(prompt)) prompt = json_array_get(prompt, 0);
    if (json_is_string(prompt))
        buf_append(&text, json_string_value(prompt), json_string_length(prompt));
    const char *model = json_string_value(json_object_get(req, "model"));
    long n = echo_words(buf_data(&text));
    const char *prefix = stream ? "data: " : "";
    buf_printf(o, "%s{\"id\":\"cmpl-echo\",\"object\":\"text_completion\",\"created\":0,\"model\":",
               prefix);
    jsonw_cstr(o, model);
    buf_appends(o, ",\"choices\":[{\"index\":0,\"text\":");
    jsonw_str(o, buf_data(&text), text.len);
    buf_appends(o, ",\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":");
    echo_usage(o, n, n);
    buf_appends(o, stream ? "}\n\ndata: [DONE]\n\n" : "}");
    buf_free(&text);
}

/* A request echo_build checked (embed_request); dimensions and encoding as asked. */
static void echo_embeddings(json_t *req, buf_t *o)
{
    embed_opts_t eo;
    prov_call_t why = {0};
    if (embed_request(NULL, req, &eo, &why) != 0) { /* not one echo_build let through */
        xl_error_json(o, 400, NULL, why.error_code, why.error_param, why.error);
        return;
    }
    long tokens = 0;
    embed_begin(o);
    for (size_t i = 0; i < eo.n; i++) {
        size_t len;
        const char *s = embed_input(req, i, &len);
        tokens += echo_words(s);
        /* FNV-1a seeded per dimension: deterministic, unit-free. */
        float v[ECHO_DIMS];
        for (int d = 0; d < ECHO_DIMS; d++) {
            uint32_t h = 2166136261u ^ (uint32_t)d;
            for (size_t k = 0; k < len; k++) h = (h ^ (unsigned char)s[k]) * 16777619u;
            v[d] = (float)((double)(h % 20001) / 10000.0 - 1.0);
        }
        embed_vector(o, &eo, i, v, ECHO_DIMS);
    }
    embed_end(o, json_string_value(json_object_get(req, "model")), tokens);
}

static void echo_free(prov_local_t *h)
{
    event_free(h->ev);
    buf_free(&h->out);
    free(h);
}

static void echo_run(evutil_socket_t fd, short what, void *arg)
{
    prov_local_t *h = arg;
    h->in_callback = true;
    if (h->phase == 0) {
        h->phase = 1;
        h->cb.on_head(h->ud, 200);
    }
    /* UP_PAUSE means the data was not taken: hand it again on resume. */
    int r = h->cancelled ? UP_CONTINUE : h->cb.on_data(h->ud, buf_data(&h->out), h->out.len);
    h->in_callback = false;
    if (h->cancelled) { /* cancelled from a callback: free now that it returned */
        echo_free(h);
        return;
    }
    if (r == UP_PAUSE) {
        h->paused = true;
        return;
    }
    h->phase = 2;
    h->cb.on_done(h->ud, UP_OK, NULL);
    echo_free(h); /* as with upstream calls: freed by the provider after on_done */
}

static prov_local_t *echo_start(struct event_base *base, endpoint_t ep, const prov_call_t *call,
                                const up_callbacks_t *cb, void *ud)
{
    prov_local_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->cb = *cb;
    h->ud = ud;
    buf_init(&h->out, 0);
    json_t *req = json_loadb(call->body, call->body_len, 0, NULL);
    bool stream = json_is_true(json_object_get(req, "stream"));
    if (ep == EP_CHAT)
        echo_chat(req, stream, &h->out);
    else if (ep == EP_COMPLETIONS)
        echo_completion(req, stream, &h->out);
    else if (ep == EP_COUNT_TOKENS)
        echo_count(req, &h->out);
    else
        echo_embeddings(req, &h->out);
    json_decref(req);
    h->ev = event_new(base, -1, 0, echo_run, h);
    if (!h->ev) {
        buf_free(&h->out);
        free(h);
        return NULL;
    }
    event_active(h->ev, EV_TIMEOUT, 0);
    return h;
}

/* Before on_done only: no callback fires afterwards. */
static void echo_cancel(prov_local_t *h)
{
    if (!h) return;
    if (h->in_callback)
        h->cancelled = true; /* echo_run frees it when the callback returns */
    else
        echo_free(h);
}

static void echo_resume(prov_local_t *h)
{
    if (h && h->paused) {
        h->paused = false;
        event_active(h->ev, EV_TIMEOUT, 0);
    }
}

const prov_ops_t provider_echo = {
    .type = "echo",
    .counts_tokens = true,
    .build = echo_build,
    .local_start = echo_start,
    .local_cancel = echo_cancel,
    .local_resume = echo_resume,
};
