/*
 * provider anthropic — Anthropic's Messages API (POST {base_url}/messages,
 * base_url e.g. https://api.anthropic.com/v1).
 *
 * Request (OpenAI chat -> Messages): system/developer messages become
 * "system"; user/assistant turns become content blocks (text, image from a
 * data: URL as base64 or from an http(s) URL as a url source, assistant
 * tool_calls as tool_use with parsed input); tool messages become tool_result
 * blocks in a user turn; consecutive turns of one role are merged, since the
 * API wants them alternating. max_tokens is required there: the client's
 * max_completion_tokens / max_tokens, else ANTH_DEFAULT_MAX_TOKENS. stop ->
 * stop_sequences, tools -> {name, description, input_schema}, tool_choice
 * auto/required/none/{function} -> auto/any/none/tool, parallel_tool_calls
 * false -> disable_parallel_tool_use, user -> metadata.user_id. The key goes
 * in x-api-key with anthropic-version: 2023-06-01.
 *
 * Answer (Messages -> OpenAI): text blocks joined into content, tool_use
 * blocks into tool_calls; stop_reason end_turn/stop_sequence/pause_turn ->
 * stop, max_tokens -> length, tool_use -> tool_calls, refusal ->
 * content_filter. Usage: prompt_tokens = input + cache read + cache write
 * tokens, cached_tokens = cache read. Streams: message_start -> role chunk,
 * content_block_start(tool_use) / input_json_delta -> tool_call deltas,
 * text_delta -> content, message_delta -> finish reason and output tokens,
 * message_stop -> finish chunk, usage chunk, [DONE]; an error event becomes
 * an OpenAI error payload. Errors: the upstream status is kept except 529 /
 * overloaded_error -> 503; code = Anthropic's error type.
 *
 * Token counts (EP_COUNT_TOKENS): the same request without max_tokens,
 * sampling, stop sequences, stream and metadata, to POST
 * {base_url}/messages/count_tokens; its {"input_tokens": N} is the answer.
 */
#include <stdlib.h>
#include <string.h>

#include "provider/xlate.h"

#define ANTH_DEFAULT_MAX_TOKENS 4096

struct prov_xlate {
    xl_stream_t s; /* first (xl_build_end) */
    int cur_tool;  /* OpenAI tool_calls index of the open tool_use block */
};

static const xl_wire_t anth_wire = {
    .type = "anthropic",
    .stream_accept = "Accept: text/event-stream",
    .version = "anthropic-version: 2023-06-01",
    .key_header = "x-api-key: ",
    .id_prefix = "msg",
    .endpoints = XL_EP(EP_CHAT) | XL_EP(EP_COUNT_TOKENS),
};

/* What a count_tokens request leaves out of the Messages request it is built as. */
static const char *const anth_not_counted[] = {"max_tokens", "stop_sequences", "temperature",
                                               "top_p",      "stream",         "metadata"};

static json_t *anth_image(arena_t *a, const char *url)
{
    const char *mime, *data;
    if (xl_data_url(a, url, &mime, &data))
        return json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "image", "source", "type", "base64",
                         "media_type", mime, "data", data);
    return json_pack("{s:s, s:{s:s, s:s}}", "type", "image", "source", "type", "url", "url", url);
}

/* OpenAI message content -> array of Anthropic blocks (new reference). */
static json_t *anth_blocks(arena_t *a, const json_t *content)
{
    json_t *out = json_array();
    if (json_is_string(content)) {
        if (json_string_length(content))
            json_array_append_new(out, json_pack("{s:s, s:O}", "type", "text", "text", content));
        return out;
    }
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        json_t *text = json_object_get(part, "text");
        const char *url = xl_image_url(part);
        if (url) {
            json_array_append_new(out, anth_image(a, url));
        } else if (json_is_string(text)) {
            json_t *b = json_pack("{s:s, s:O}", "type", "text", "text", text);
            json_t *cc = json_object_get(part, "cache_control");
            if (cc) json_object_set(b, "cache_control", cc);
            json_array_append_new(out, b);
        }
    }
    return out;
}

static void anth_tool_uses(json_t *blocks, const json_t *calls)
{
    size_t i;
    json_t *tc;
    json_array_foreach(calls, i, tc)
    {
        json_t *fn = json_object_get(tc, "function");
        const char *args = json_string_value(json_object_get(fn, "arguments"));
        json_t *input = args ? json_loads(args, 0, NULL) : NULL;
        if (!json_is_object(input)) {
            json_decref(input);
            input = json_object();
        }
        json_t *id = json_object_get(tc, "id"), *name = json_object_get(fn, "name");
        json_array_append_new(blocks, json_pack("{s:s, s:o, s:o, s:o}", "type", "tool_use", "id",
                                                id ? json_incref(id) : json_string(""), "name",
                                                name ? json_incref(name) : json_string(""), "input",
                                                input));
    }
}

static json_t *anth_tool_choice(const json_t *tc)
{
    const char *s = json_string_value(tc);
    if (s) {
        if (!strcmp(s, "required")) return json_pack("{s:s}", "type", "any");
        if (!strcmp(s, "none")) return json_pack("{s:s}", "type", "none");
        return json_pack("{s:s}", "type", "auto");
    }
    json_t *name = json_object_get(json_object_get(tc, "function"), "name");
    if (json_is_string(name)) return json_pack("{s:s, s:O}", "type", "tool", "name", name);
    return NULL;
}

static int anth_build(arena_t *a, endpoint_t ep, json_t *body, const cfg_model_t *m, bool stream,
                      prov_call_t *out)
{
    int bad = xl_serves(a, ep, &anth_wire, out);
    if (bad) return bad;
    json_t *req = json_object(), *system = json_array(), *msgs = json_array();
    json_object_set_new(req, "model", json_string(m->upstream_model));
    long maxt =
        xl_int(body, "max_completion_tokens", xl_int(body, "max_tokens", ANTH_DEFAULT_MAX_TOKENS));
    json_object_set_new(req, "max_tokens", json_integer(maxt));

    size_t i;
    json_t *msg;
    json_array_foreach(json_object_get(body, "messages"), i, msg)
    {
        const char *role = json_string_value(json_object_get(msg, "role"));
        json_t *content = json_object_get(msg, "content");
        if (!role) continue;
        if (!strcmp(role, "system") || !strcmp(role, "developer")) {
            const char *t = xl_content_text(a, content);
            if (t && *t)
                json_array_append_new(system, json_pack("{s:s, s:s}", "type", "text", "text", t));
        } else if (!strcmp(role, "assistant")) {
            json_t *blocks = anth_blocks(a, content);
            anth_tool_uses(blocks, json_object_get(msg, "tool_calls"));
            xl_turn(msgs, "assistant", "content", blocks);
        } else if (!strcmp(role, "tool")) {
            json_t *id = json_object_get(msg, "tool_call_id");
            const char *t = xl_content_text(a, content);
            xl_turn(msgs, "user", "content",
                    json_pack("[{s:s, s:o, s:s}]", "type", "tool_result", "tool_use_id",
                              id ? json_incref(id) : json_string(""), "content", t ? t : ""));
        } else {
            xl_turn(msgs, "user", "content", anth_blocks(a, content));
        }
    }
    if (json_array_size(system) == 1)
        json_object_set(req, "system", json_object_get(json_array_get(system, 0), "text"));
    else if (json_array_size(system) > 1)
        json_object_set(req, "system", system);
    json_decref(system);
    json_object_set_new(req, "messages", msgs);

    json_t *stop = xl_stop_list(json_object_get(body, "stop"));
    if (stop) json_object_set_new(req, "stop_sequences", stop);
    static const char *const copy[] = {"temperature", "top_p"};
    for (size_t k = 0; k < 2; k++) {
        json_t *v = json_object_get(body, copy[k]);
        if (json_is_number(v)) json_object_set(req, copy[k], v);
    }
    if (stream) json_object_set_new(req, "stream", json_true());

    json_t *tools = json_object_get(body, "tools");
    if (json_is_array(tools) && json_array_size(tools)) {
        json_object_set_new(req, "tools", xl_tool_decls(tools, "input_schema", true));
        json_t *tc = anth_tool_choice(json_object_get(body, "tool_choice"));
        if (json_is_false(json_object_get(body, "parallel_tool_calls"))) {
            if (!tc) tc = json_pack("{s:s}", "type", "auto");
            json_object_set_new(tc, "disable_parallel_tool_use", json_true());
        }
        if (tc) json_object_set_new(req, "tool_choice", tc);
    }
    json_t *user = json_object_get(body, "user");
    if (json_is_string(user))
        json_object_set_new(req, "metadata", json_pack("{s:O}", "user_id", user));

    if (ep == EP_COUNT_TOKENS) {
        for (size_t k = 0; k < sizeof anth_not_counted / sizeof anth_not_counted[0]; k++)
            json_object_del(req, anth_not_counted[k]);
        stream = false;
    }
    if (xl_build_end(a, req, m, ep, stream, &anth_wire, sizeof(struct prov_xlate), out)) return -1;
    out->url = arena_printf(a, "%s/messages%s", m->provider->base_url,
                            ep == EP_COUNT_TOKENS ? "/count_tokens" : "");
    return out->url ? 0 : -1;
}

static const char *anth_finish(const char *stop_reason)
{
    if (!stop_reason) return NULL;
    if (!strcmp(stop_reason, "max_tokens")) return "length";
    if (!strcmp(stop_reason, "tool_use")) return "tool_calls";
    if (!strcmp(stop_reason, "refusal")) return "content_filter";
    return "stop";
}

/* Usage of an Anthropic "usage" object into s (fields present only). */
static void anth_usage(xl_stream_t *s, const json_t *u)
{
    if (!json_is_object(u)) return;
    long in = xl_int(u, "input_tokens", -1), out = xl_int(u, "output_tokens", -1);
    long cr = xl_int(u, "cache_read_input_tokens", 0);
    long cw = xl_int(u, "cache_creation_input_tokens", 0);
    if (in >= 0) {
        s->prompt = in + cr + cw;
        s->cached = cr;
    }
    if (out >= 0) s->completion = out;
}

static int anth_error_status(int status, const char *type)
{
    if (status == 529 || (type && !strcmp(type, "overloaded_error"))) return 503;
    if (status >= 400) return status;
    if (type && !strcmp(type, "rate_limit_error")) return 429;
    if (type && !strcmp(type, "invalid_request_error")) return 400;
    return 500;
}

static int anth_response(prov_xlate_t *x, int status, const char *body, size_t len, buf_t *out)
{
    json_t *o = json_loadb(body, len, 0, NULL);
    if (status >= 400) {
        json_t *e = json_object_get(o, "error");
        const char *type = json_string_value(json_object_get(e, "type"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        int st = anth_error_status(status, type);
        xl_error(out, st, type ? type : "upstream_error",
                 msg ? msg : "the upstream provider answered with an error");
        json_decref(o);
        return st;
    }
    if (x->s.ep == EP_COUNT_TOKENS) {
        int st = xl_count_answer(out, o, "input_tokens", status);
        json_decref(o);
        return st;
    }
    if (!json_is_object(o) || !json_is_array(json_object_get(o, "content"))) {
        json_decref(o);
        return -1;
    }
    buf_t text;
    buf_init(&text, 0);
    json_t *calls = json_array(), *blk;
    size_t i;
    json_array_foreach(json_object_get(o, "content"), i, blk)
    {
        const char *t = json_string_value(json_object_get(blk, "type"));
        if (!t) continue;
        json_t *tx = json_object_get(blk, "text");
        if (!strcmp(t, "text") && json_is_string(tx)) {
            buf_append(&text, json_string_value(tx), json_string_length(tx));
        } else if (!strcmp(t, "tool_use")) {
            char *args = json_dumps(json_object_get(blk, "input"), JSON_COMPACT);
            json_array_append_new(calls, xl_call(json_incref(json_object_get(blk, "id")),
                                                 json_object_get(blk, "name"), args));
            free(args);
        }
    }
    json_t *msg = xl_message(buf_data(&text), text.len, calls, false);
    buf_free(&text);
    xl_stream_t u = {.prompt = 0, .completion = 0};
    anth_usage(&u, json_object_get(o, "usage"));
    const char *id = json_string_value(json_object_get(o, "id"));
    const char *model = json_string_value(json_object_get(o, "model"));
    const char *fin = anth_finish(json_string_value(json_object_get(o, "stop_reason")));
    json_t *c = xl_completion(id ? id : "msg", x->s.created, model ? model : x->s.model, msg, fin,
                              xl_usage(u.prompt, u.completion, u.cached));
    return xl_finish(out, c, o, status);
}

static int anth_event(prov_xlate_t *x, const char *event, const char *data, size_t len,
                      prov_emit_fn emit, void *ud)
{
    json_t *o = xl_load_object(data, len);
    const char *type = json_string_value(json_object_get(o, "type"));
    if (!o || !type) {
        json_decref(o);
        return -1;
    }
    xl_stream_t *s = &x->s;
    int r = 0;
    if (!strcmp(type, "message_start")) {
        json_t *m = json_object_get(o, "message");
        xl_stream_set_id(s, json_string_value(json_object_get(m, "id")),
                         json_string_value(json_object_get(m, "model")));
        anth_usage(s, json_object_get(m, "usage"));
        r = xl_emit_delta(s, NULL, NULL, emit, ud);
    } else if (!strcmp(type, "content_block_start")) {
        json_t *cb = json_object_get(o, "content_block");
        const char *bt = json_string_value(json_object_get(cb, "type"));
        json_t *tx = json_object_get(cb, "text");
        if (bt && !strcmp(bt, "tool_use")) {
            x->cur_tool = s->tools++;
            json_t *id = json_object_get(cb, "id"), *name = json_object_get(cb, "name");
            r = xl_emit_delta(
                s,
                json_pack("{s:[{s:i, s:o, s:s, s:{s:o, s:s}}]}", "tool_calls", "index", x->cur_tool,
                          "id", id ? json_incref(id) : json_string(""), "type", "function",
                          "function", "name", name ? json_incref(name) : json_string(""),
                          "arguments", ""),
                NULL, emit, ud);
        } else if (bt && !strcmp(bt, "text") && json_string_length(tx) > 0) {
            r = xl_emit_delta(s, json_pack("{s:O}", "content", tx), NULL, emit, ud);
        }
    } else if (!strcmp(type, "content_block_delta")) {
        json_t *d = json_object_get(o, "delta");
        const char *dt = json_string_value(json_object_get(d, "type"));
        json_t *tx = json_object_get(d, "text"), *pj = json_object_get(d, "partial_json");
        if (dt && !strcmp(dt, "text_delta") && json_is_string(tx))
            r = xl_emit_delta(s, json_pack("{s:O}", "content", tx), NULL, emit, ud);
        else if (dt && !strcmp(dt, "input_json_delta") && json_string_length(pj) > 0)
            r = xl_emit_delta(s,
                              json_pack("{s:[{s:i, s:{s:O}}]}", "tool_calls", "index", x->cur_tool,
                                        "function", "arguments", pj),
                              NULL, emit, ud);
    } else if (!strcmp(type, "message_delta")) {
        const char *fin = anth_finish(
            json_string_value(json_object_get(json_object_get(o, "delta"), "stop_reason")));
        if (fin) s->finish = fin;
        anth_usage(s, json_object_get(o, "usage"));
    } else if (!strcmp(type, "message_stop")) {
        r = xl_emit_end(s, emit, ud);
    } else if (!strcmp(type, "error")) {
        json_t *e = json_object_get(o, "error");
        const char *et = json_string_value(json_object_get(e, "type"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        r = xl_emit_error(anth_error_status(0, et), et ? et : "upstream_error",
                          msg ? msg : "the upstream stream reported an error", emit, ud);
    }
    (void)event;
    json_decref(o);
    return r;
}

static int anth_build_probe(arena_t *a, const cfg_model_t *m, prov_call_t *out)
{
    out->url = arena_printf(a, "%s/models", m->provider->base_url);
    out->headers = xl_probe_headers(a, m, &anth_wire);
    return out->url && out->headers ? 0 : -1;
}

const prov_ops_t provider_anthropic = {
    .type = "anthropic",
    .counts_tokens = true,
    .build = anth_build,
    .build_probe = anth_build_probe,
    .translate_response = anth_response,
    .translate_event = anth_event,
};
