/*
 * call answer — what an attempt's answer becomes (relay_internal.h): the
 * usage read for accounting, stream payloads passed on to the front end
 * (the usage chunk the gateway asked for dropped unless the client asked
 * too), and a whole body turned into the request's result.
 */
#include <string.h>

#include "call/relay_internal.h"
#include "config/cost.h"
#include "core/jscan.h"
#include "route/router.h"

/* c->model follows the deployment answering now (the subscribers move its series). */
void relay__use_model(relay_t *r, const cfg_model_t *m)
{
    pl_set_model(r->c, m);
}

void relay__model_headers(relay_t *r)
{
    char n[BUF_U64_DIGITS];
    buf_fmt_u64(n, r->c->attempts > 0 ? (uint64_t)r->c->attempts : 0);
    pl_header(r->c, "x-skuld-model", r->c->model->id); /* the deployment */
    pl_header(r->c, "x-skuld-provider", r->c->model->provider->name);
    pl_header(r->c, "x-skuld-attempts", n);
}

/* The token counts of an answer's usage, however they were read. */
static void relay_apply_usage(relay_t *r, const jscan_usage_t *u)
{
    if (u->prompt_tokens == JS_INT) r->c->prompt_tokens = (long)u->prompt_tokens_v;
    if (u->cached_tokens == JS_INT) r->c->cached_tokens = (long)u->cached_tokens_v;
    if (u->completion_tokens == JS_INT)
        r->c->completion_tokens = (long)u->completion_tokens_v;
    else if (r->c->ep == EP_EMBEDDINGS)
        r->c->completion_tokens = 0;
}

static jscan_type_t relay_int_field(json_t *o, const char *key, int64_t *v)
{
    json_t *x = json_object_get(o, key);
    if (!json_is_integer(x)) return JS_ABSENT;
    *v = json_integer_value(x);
    return JS_INT;
}

/* Read the "usage" object of a chat/completion/embedding answer. */
static void relay_take_usage_obj(relay_t *r, json_t *u)
{
    if (!json_is_object(u)) return;
    jscan_usage_t s;
    memset(&s, 0, sizeof s);
    s.prompt_tokens = relay_int_field(u, "prompt_tokens", &s.prompt_tokens_v);
    s.completion_tokens = relay_int_field(u, "completion_tokens", &s.completion_tokens_v);
    s.cached_tokens = relay_int_field(json_object_get(u, "prompt_tokens_details"), "cached_tokens",
                                      &s.cached_tokens_v);
    relay_apply_usage(r, &s);
}

void relay__take_usage(relay_t *r, json_t *obj)
{
    relay_take_usage_obj(r, json_object_get(obj, "usage"));
}

/*
 * A passed-through answer is relayed as bytes; only its usage is needed, so
 * instead of parsing the whole body (a third of the gateway's CPU per request
 * in the profile), find the last unescaped "usage" key -- OpenAI-shaped
 * answers end with it; the same text inside a string would be escaped -- and
 * read just the value after it: with the one-pass scanner (core/jscan.h, no
 * tree, no allocation), or with jansson when the scanner defers (duplicate or
 * escaped keys, deep nesting...). Also checks the body is an object ({...}).
 * Returns false when the body is not an object.
 */
bool relay__sniff_usage(relay_t *r, const char *b, size_t n)
{
    size_t i = 0, j = n;
    while (i < n && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t')) i++;
    while (j > i && (b[j - 1] == ' ' || b[j - 1] == '\n' || b[j - 1] == '\r' || b[j - 1] == '\t'))
        j--;
    if (i == j || b[i] != '{' || b[j - 1] != '}') return false;
    static const char key[] = "\"usage\"";
    for (size_t k = j - 1; k > i + sizeof key - 1; k--) {
        const char *at = b + k - (sizeof key - 1);
        if (memcmp(at, key, sizeof key - 1) != 0 || at[-1] == '\\') continue;
        const char *v = at + sizeof key - 1;
        while (v < b + j && (*v == ' ' || *v == ':' || *v == '\n' || *v == '\t' || *v == '\r')) v++;
        jscan_usage_t su;
        if (jscan_usage(v, (size_t)(b + j - v), &su) == 0) {
            relay_apply_usage(r, &su);
        } else {
            json_t *u = json_loadb(v, (size_t)(b + j - v), JSON_DISABLE_EOF_CHECK, NULL);
            relay_take_usage_obj(r, u);
            json_decref(u);
        }
        break;
    }
    return true;
}

/* An OpenAI error payload ({"error":...}) inside a stream. */
static bool relay_is_error(const char *data, size_t len)
{
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\n')) i++;
    return len - i > 9 && memcmp(data + i, "{\"error\":", 9) == 0;
}

/* One OpenAI stream payload on to the client (the front end frames it). */
int relay__forward(relay_t *r, const char *event, const char *data, size_t len)
{
    pl_payload_t kind = PL_EV_CHUNK;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        r->saw_done = true;
        kind = PL_EV_DONE_MARK;
    } else if (relay_is_error(data, len)) {
        r->saw_error = true;
        kind = PL_EV_ERROR_OBJ;
        if (!r->c->error) r->c->error = "upstream stream error event";
        atomic_fetch_add_explicit(&r->c->ms->stream_errors, 1, memory_order_relaxed);
    } else if (memmem(data, len, "\"usage\":{", 9) || memmem(data, len, "\"usage\": {", 10)) {
        json_t *chunk = json_loadb(data, len, 0, NULL);
        if (chunk) {
            relay__take_usage(r, chunk);
            json_t *choices = json_object_get(chunk, "choices");
            bool usage_only = json_is_array(choices) && json_array_size(choices) == 0;
            json_decref(chunk);
            if (usage_only && !r->c->client_usage)
                return 0; /* we asked for it, the client did not */
        }
    }
    return pl_stream_payload(r->c, kind, event, data, len) != 0;
}

/* The provider's body in OpenAI's shape (translators only); false if it could not be read. */
bool relay__translate_body(attempt_t *a)
{
    if (!a->xlate || !a->ops->translate_response) return true;
    buf_t out;
    buf_init(&out, 0);
    int st = a->ops->translate_response(a->xlate, a->status, buf_data(&a->acc), a->acc.len, &out);
    if (st >= 0) {
        buf_free(&a->acc);
        a->acc = out;
        a->status = st;
        return true;
    }
    buf_free(&out);
    return false;
}

/* A whole upstream answer (any status) for the client. */
pl_rc_t relay__finish_body(relay_t *r, attempt_t *a)
{
    pl_req_t *c = r->c;
    relay__use_model(r, a->m);
    relay__model_headers(r);
    if (a->untranslatable)
        return pl_fail(c, a->status >= 400 ? a->status : 502, NULL, "upstream_invalid_response",
                       NULL, "the upstream provider returned a body that could not be translated");
    if (a->too_large) {
        c->error = "upstream response too large";
        return pl_fail(c, 502, NULL, "upstream_response_too_large", NULL,
                       "the upstream response exceeded server.max_upstream_body_bytes");
    }
    if (a->status >= 400) {
        if (a->retry_after[0]) pl_header(c, "Retry-After", a->retry_after);
        json_t *e = json_loadb(buf_data(&a->acc), a->acc.len, 0, NULL);
        bool openai_shape = json_is_object(json_object_get(e, "error"));
        json_decref(e);
        c->error = "upstream error status";
        if (openai_shape) return pl_answer_take(c, a->status, &a->acc);
        return pl_fail(c, a->status, NULL, "upstream_error", NULL,
                       "the upstream provider answered HTTP %d", a->status);
    }
    if (!relay__sniff_usage(r, buf_data(&a->acc), a->acc.len))
        return pl_fail(c, 502, NULL, "upstream_invalid_response", NULL,
                       "the upstream provider returned a body that is not a JSON object");
    /* a count from the local tokenizer is exact; the upstream's is its own */
    if (c->ep == EP_COUNT_TOKENS)
        pl_header(c, "x-skuld-token-count", a->ops->local_start ? "exact" : "provider");
    if (c->prompt_tokens >= 0 || c->completion_tokens >= 0) {
        char cost[48];
        cost_format(
            cost_usd(&c->model->price, c->prompt_tokens, c->cached_tokens, c->completion_tokens),
            cost, sizeof cost);
        pl_header(c, "x-skuld-cost-usd", cost);
    }
    return pl_answer_take(c, a->status, &a->acc);
}

pl_rc_t relay__count_estimate(relay_t *r, const cfg_model_t *m)
{
    pl_req_t *c = r->c;
    relay__use_model(r, m);
    relay__model_headers(r);
    pl_header(c, "x-skuld-token-count", "estimate");
    char body[64];
    int n = snprintf(body, sizeof body, "{\"input_tokens\":%ld}",
                     route_estimate_input_tokens(pl_body(c)));
    return pl_answer(c, 200, body, (size_t)n);
}
