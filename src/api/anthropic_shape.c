#include "api/anthropic_shape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonw.h"
#include "provider/xlate.h"

/* ---------- request: Anthropic -> OpenAI ---------- */

static const char *as_text_of(const json_t *content, buf_t *tmp)
{
    if (json_is_string(content)) return json_string_value(content);
    buf_reset(tmp);
    provider_content_text(tmp, content, "\n");
    return buf_data(tmp);
}

static json_t *as_image_part(const json_t *src)
{
    const char *type = json_string_value(json_object_get(src, "type"));
    json_t *url = NULL;
    if (type && !strcmp(type, "base64")) {
        const char *mt = json_string_value(json_object_get(src, "media_type"));
        const char *data = json_string_value(json_object_get(src, "data"));
        if (!mt || !data) return NULL;
        char *u = NULL;
        if (asprintf(&u, "data:%s;base64,%s", mt, data) < 0) return NULL;
        url = json_string(u);
        free(u);
    } else if (type && !strcmp(type, "url")) {
        url = json_incref(json_object_get(src, "url"));
    }
    if (!json_is_string(url)) {
        json_decref(url);
        return NULL;
    }
    return json_pack("{s:s, s:{s:o}}", "type", "image_url", "image_url", "url", url);
}

/* One Anthropic message (index mi) -> one or more OpenAI messages appended
 * to out. -1 with the reason in err when the message is not one the Messages
 * API accepts or not one we can carry: nothing a client sent is dropped
 * silently, except an assistant's "thinking" blocks, which no OpenAI-shaped
 * upstream can take back. */
static int as_message(json_t *out, const json_t *m, size_t mi, buf_t *tmp, char *err, size_t errlen)
{
    const char *role = json_string_value(json_object_get(m, "role"));
    json_t *content = json_object_get(m, "content");
    if (!json_is_object(m) || !role || (strcmp(role, "user") && strcmp(role, "assistant"))) {
        snprintf(err, errlen, "messages.%zu.role: must be 'user' or 'assistant'", mi);
        return -1;
    }
    bool assistant = !strcmp(role, "assistant");
    if (json_is_string(content)) {
        json_array_append_new(out, json_pack("{s:s, s:O}", "role", role, "content", content));
        return 0;
    }
    if (!json_is_array(content) || (!assistant && !json_array_size(content))) {
        snprintf(err, errlen, "messages.%zu.content: %s", mi,
                 json_is_array(content) ? "at least one content block is required"
                                        : "must be a string or an array of blocks");
        return -1;
    }
    json_t *parts = json_array(), *calls = json_array(), *tools = json_array(), *b;
    buf_t text;
    buf_init(&text, 0);
    int rc = 0;
    size_t i;
    json_array_foreach(content, i, b)
    {
        const char *t = json_string_value(json_object_get(b, "type"));
        const char *why = NULL;
        if (!t) {
            why = "a content block needs a \"type\"";
        } else if (!strcmp(t, "text")) {
            json_t *tx = json_object_get(b, "text");
            if (!json_is_string(tx))
                why = "text: must be a string";
            else if (assistant)
                buf_append(&text, json_string_value(tx), json_string_length(tx));
            else
                json_array_append_new(parts, json_pack("{s:s, s:O}", "type", "text", "text", tx));
        } else if (!strcmp(t, "image") && !assistant) {
            json_t *p = as_image_part(json_object_get(b, "source"));
            if (p)
                json_array_append_new(parts, p);
            else
                why = "image: source must be {type: base64, media_type, data} or {type: url, url}";
        } else if (!strcmp(t, "tool_use") && assistant) {
            json_t *name = json_object_get(b, "name");
            if (!json_is_string(name)) {
                why = "tool_use: name must be a string";
            } else {
                char *args = json_dumps(json_object_get(b, "input"), JSON_COMPACT);
                json_array_append_new(calls,
                                      xl_call(json_incref(json_object_get(b, "id")), name, args));
                free(args);
            }
        } else if (!strcmp(t, "tool_result") && !assistant) {
            json_t *id = json_object_get(b, "tool_use_id");
            const char *rt = as_text_of(json_object_get(b, "content"), tmp);
            if (!json_is_string(id))
                why = "tool_result: tool_use_id must be a string";
            else
                json_array_append_new(tools,
                                      json_pack("{s:s, s:O, s:s}", "role", "tool", "tool_call_id",
                                                id, "content", rt ? rt : ""));
        } else if (assistant && (!strcmp(t, "thinking") || !strcmp(t, "redacted_thinking"))) {
            /* the model's own reasoning from an earlier turn: not carried */
        } else if (!strcmp(t, "image") || !strcmp(t, "tool_use") || !strcmp(t, "tool_result")) {
            why = assistant ? "this block type belongs in a user message"
                            : "this block type belongs in an assistant message";
        } else {
            why = "this content block type is not supported";
        }
        if (why) {
            snprintf(err, errlen, "messages.%zu.content.%zu: %s%s%.40s%s", mi, i, why,
                     t ? " (" : "", t ? t : "", t ? ")" : "");
            rc = -1;
            break;
        }
    }
    if (rc == 0) {
        /* tool results first: they answer the assistant turn before this one */
        size_t k;
        json_array_foreach(tools, k, b) json_array_append(out, b);
        if (assistant) {
            json_t *msg = json_pack("{s:s}", "role", "assistant");
            if (text.len || !json_array_size(calls))
                json_object_set_new(msg, "content", json_stringn(buf_data(&text), text.len));
            else
                json_object_set_new(msg, "content", json_null());
            if (json_array_size(calls)) json_object_set(msg, "tool_calls", calls);
            json_array_append_new(out, msg);
        } else if (json_array_size(parts)) {
            json_array_append_new(out, json_pack("{s:s, s:O}", "role", "user", "content", parts));
        }
    }
    buf_free(&text);
    json_decref(parts);
    json_decref(calls);
    json_decref(tools);
    return rc;
}

static json_t *as_tool_choice(const json_t *tc, json_t *req)
{
    const char *t = json_string_value(json_object_get(tc, "type"));
    if (json_is_true(json_object_get(tc, "disable_parallel_tool_use")))
        json_object_set_new(req, "parallel_tool_calls", json_false());
    if (!t) return NULL;
    if (!strcmp(t, "any")) return json_string("required");
    if (!strcmp(t, "none")) return json_string("none");
    if (!strcmp(t, "tool"))
        return json_pack("{s:s, s:{s:O}}", "type", "function", "function", "name",
                         json_object_get(tc, "name"));
    return json_string("auto");
}

/* The fields POST /v1/messages/count_tokens takes; anything else is refused. */
static const char *const as_count_fields[] = {"model", "messages", "system", "tools",
                                              "tool_choice"};

/* A count_tokens body's checks beyond the shared ones: known fields only, and
 * tools that are client tools (a server tool's definition, counted by
 * Anthropic from its type, cannot be translated). 0 or -1 with err/param. */
static int as_count_check(const json_t *in, char *err, size_t errlen, const char **param)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)in, key, v)
    {
        bool known = false;
        for (size_t k = 0; k < sizeof as_count_fields / sizeof as_count_fields[0]; k++)
            known = known || !strcmp(key, as_count_fields[k]);
        if (!known) {
            *param = *key ? key : NULL;
            snprintf(err, errlen, "'%.64s': this field is not supported by count_tokens here", key);
            return -1;
        }
    }
    json_t *tools = json_object_get(in, "tools");
    if (tools && !json_is_array(tools)) {
        *param = "tools";
        snprintf(err, errlen, "tools: must be an array");
        return -1;
    }
    size_t i;
    json_array_foreach(tools, i, v)
    {
        if (!json_is_string(json_object_get(v, "name")) ||
            !json_is_object(json_object_get(v, "input_schema"))) {
            *param = "tools";
            snprintf(err, errlen,
                     "tools.%zu: a tool needs a string 'name' and an object "
                     "'input_schema' (server tools are not supported)",
                     i);
            return -1;
        }
    }
    json_t *sys = json_object_get(in, "system");
    bool sys_ok = !sys || json_is_string(sys) || json_is_array(sys);
    json_array_foreach(json_is_array(sys) ? sys : NULL, i, v)
    {
        const char *t = json_string_value(json_object_get(v, "type"));
        sys_ok = sys_ok && t && !strcmp(t, "text") && json_is_string(json_object_get(v, "text"));
    }
    if (!sys_ok) {
        *param = "system";
        snprintf(err, errlen, "system: must be a string or an array of text blocks");
        return -1;
    }
    json_t *tc = json_object_get(in, "tool_choice");
    const char *tct = json_string_value(json_object_get(tc, "type"));
    if (tc && !(tct && (!strcmp(tct, "auto") || !strcmp(tct, "any") || !strcmp(tct, "none") ||
                        (!strcmp(tct, "tool") && json_is_string(json_object_get(tc, "name")))))) {
        *param = "tool_choice";
        snprintf(err, errlen,
                 "tool_choice: must be {type: auto | any | none} or {type: tool, "
                 "name}");
        return -1;
    }
    return 0;
}

static json_t *as_request(const json_t *in, bool count, char *err, size_t errlen,
                          const char **param)
{
    json_t *msgs = json_object_get(in, "messages"), *mt = json_object_get(in, "max_tokens");
    if (count && as_count_check(in, err, errlen, param) != 0) return NULL;
    if (!json_is_array(msgs) || !json_array_size(msgs)) {
        *param = "messages";
        snprintf(err, errlen, "messages: %s",
                 !msgs                 ? "Field required"
                 : json_is_array(msgs) ? "at least one message is required"
                                       : "must be an array");
        return NULL;
    }
    if (!count && (!json_is_integer(mt) || json_integer_value(mt) < 1)) {
        *param = "max_tokens";
        snprintf(err, errlen, "max_tokens: %s",
                 mt ? "must be a positive integer" : "Field required");
        return NULL;
    }
    json_t *req = json_object(), *out = json_array(), *v;
    buf_t tmp;
    buf_init(&tmp, 0);
    json_t *model = json_object_get(in, "model");
    if (model) json_object_set(req, "model", model);
    json_t *sys = json_object_get(in, "system");
    if (json_is_string(sys) || json_is_array(sys)) {
        const char *t = as_text_of(sys, &tmp);
        if (t && *t)
            json_array_append_new(out, json_pack("{s:s, s:s}", "role", "system", "content", t));
    }
    size_t i;
    json_array_foreach(msgs, i, v)
    {
        if (as_message(out, v, i, &tmp, err, errlen) != 0) {
            *param = "messages";
            buf_free(&tmp);
            json_decref(out);
            json_decref(req);
            return NULL;
        }
    }
    buf_free(&tmp);
    json_object_set_new(req, "messages", out);
    if (!count) json_object_set(req, "max_tokens", mt);
    static const char *const copy[] = {"temperature", "top_p", "stream"};
    for (size_t k = 0; k < 3; k++)
        if ((v = json_object_get(in, copy[k]))) json_object_set(req, copy[k], v);
    if ((v = json_object_get(in, "stop_sequences")) && json_is_array(v))
        json_object_set(req, "stop", v);
    if (json_is_string(v = json_object_get(json_object_get(in, "metadata"), "user_id")))
        json_object_set(req, "user", v);
    json_t *tools = json_object_get(in, "tools");
    if (json_is_array(tools) && json_array_size(tools)) {
        json_t *ot = json_array();
        json_array_foreach(tools, i, v)
        {
            json_t *name = json_object_get(v, "name"), *schema = json_object_get(v, "input_schema");
            if (!json_is_string(name) || !json_is_object(schema)) continue; /* server tools */
            json_t *fn = json_pack("{s:O, s:O}", "name", name, "parameters", schema);
            json_t *d = json_object_get(v, "description");
            if (json_is_string(d)) json_object_set(fn, "description", d);
            json_array_append_new(ot, json_pack("{s:s, s:o}", "type", "function", "function", fn));
        }
        json_object_set_new(req, "tools", ot);
    }
    json_t *tc = as_tool_choice(json_object_get(in, "tool_choice"), req);
    if (tc) json_object_set_new(req, "tool_choice", tc);
    return req;
}

json_t *ashape_request(const json_t *in, char *err, size_t errlen, const char **param)
{
    return as_request(in, false, err, errlen, param);
}

json_t *ashape_count_request(const json_t *in, char *err, size_t errlen, const char **param)
{
    return as_request(in, true, err, errlen, param);
}

/* ---------- response: OpenAI -> Anthropic ---------- */

static const char *as_stop_reason(const char *finish)
{
    if (!finish) return "end_turn";
    if (!strcmp(finish, "length")) return "max_tokens";
    if (!strcmp(finish, "tool_calls") || !strcmp(finish, "function_call")) return "tool_use";
    if (!strcmp(finish, "content_filter")) return "refusal";
    return "end_turn";
}

static json_t *as_tool_input(const char *args)
{
    json_t *in = args && *args ? json_loads(args, 0, NULL) : NULL;
    if (!json_is_object(in)) {
        json_decref(in);
        in = json_object();
    }
    return in;
}

static void as_msg_id(char *dst, size_t n, const char *id)
{
    if (!id || !*id) id = "skuld";
    snprintf(dst, n, "%s%s", strncmp(id, "msg_", 4) ? "msg_" : "", id);
}

static json_t *as_usage(long prompt, long cached, long completion)
{
    if (prompt < 0) prompt = 0;
    if (cached < 0 || cached > prompt) cached = 0;
    return json_pack("{s:I, s:I, s:I, s:I}", "input_tokens", (json_int_t)(prompt - cached),
                     "output_tokens", (json_int_t)(completion < 0 ? 0 : completion),
                     "cache_read_input_tokens", (json_int_t)cached, "cache_creation_input_tokens",
                     (json_int_t)0);
}

int ashape_response(const char *body, size_t len, const char *model, buf_t *out)
{
    json_t *o = json_loadb(body, len, 0, NULL);
    json_t *choice = json_array_get(json_object_get(o, "choices"), 0);
    json_t *msg = json_object_get(choice, "message");
    if (!json_is_object(msg)) {
        json_decref(o);
        return -1;
    }
    json_t *content = json_array(), *v;
    json_t *text = json_object_get(msg, "content");
    if (json_is_string(text) && json_string_length(text))
        json_array_append_new(content, json_pack("{s:s, s:O}", "type", "text", "text", text));
    size_t i;
    json_array_foreach(json_object_get(msg, "tool_calls"), i, v)
    {
        json_t *fn = json_object_get(v, "function"), *id = json_object_get(v, "id");
        json_t *name = json_object_get(fn, "name");
        json_array_append_new(
            content, json_pack("{s:s, s:o, s:o, s:o}", "type", "tool_use", "id",
                               id ? json_incref(id) : json_string(""), "name",
                               name ? json_incref(name) : json_string(""), "input",
                               as_tool_input(json_string_value(json_object_get(fn, "arguments")))));
    }
    char id[128];
    as_msg_id(id, sizeof id, json_string_value(json_object_get(o, "id")));
    json_t *u = json_object_get(o, "usage");
    long cached = (long)json_integer_value(
        json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens"));
    json_t *a =
        json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:n, s:o}", "id", id, "type", "message", "role",
                  "assistant", "model", model ? model : "", "content", content, "stop_reason",
                  as_stop_reason(json_string_value(json_object_get(choice, "finish_reason"))),
                  "stop_sequence", "usage",
                  as_usage((long)json_integer_value(json_object_get(u, "prompt_tokens")), cached,
                           (long)json_integer_value(json_object_get(u, "completion_tokens"))));
    json_decref(o);
    if (!a) return -1;
    size_t n = json_dumpb(a, NULL, 0, JSON_COMPACT);
    buf_status_t st;
    char *p = buf_reserve(out, n, &st);
    if (p) {
        json_dumpb(a, p, n, JSON_COMPACT);
        buf_commit(out, n);
    }
    json_decref(a);
    return p ? 0 : -1;
}

/* ---------- errors ---------- */

const char *ashape_error_type(int status)
{
    switch (status) {
    case 400:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 503:
    case 529:
        return "overloaded_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

void ashape_error(buf_t *out, int status, const char *message)
{
    buf_appends(out, "{\"type\":\"error\",\"error\":{\"type\":");
    jsonw_cstr(out, ashape_error_type(status));
    buf_appends(out, ",\"message\":");
    jsonw_cstr(out, message);
    buf_appends(out, "}}");
}

void ashape_stream_error(buf_t *out, int status, const char *message)
{
    buf_appends(out, "event: error\ndata: ");
    ashape_error(out, status, message);
    buf_appends(out, "\n\n");
}

/* ---------- stream: OpenAI chunks -> Anthropic events ---------- */

static void as_event(buf_t *out, const char *name, json_t *data)
{
    buf_printf(out, "event: %s\ndata: ", name);
    size_t n = json_dumpb(data, NULL, 0, JSON_COMPACT);
    buf_status_t st;
    char *p = buf_reserve(out, n, &st);
    if (p) {
        json_dumpb(data, p, n, JSON_COMPACT);
        buf_commit(out, n);
    }
    buf_appends(out, "\n\n");
    json_decref(data);
}

void ashape_stream_init(ashape_stream_t *s, const char *model)
{
    memset(s, 0, sizeof *s);
    snprintf(s->model, sizeof s->model, "%s", model ? model : "");
}

static void as_start(ashape_stream_t *s, const char *id, buf_t *out)
{
    if (s->started) return;
    s->started = true;
    as_msg_id(s->id, sizeof s->id, id);
    as_event(out, "message_start",
             json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:[], s:n, s:n, s:{s:i, s:i}}}", "type",
                       "message_start", "message", "id", s->id, "type", "message", "role",
                       "assistant", "model", s->model, "content", "stop_reason", "stop_sequence",
                       "usage", "input_tokens", 0, "output_tokens", 0));
}

static void as_close(ashape_stream_t *s, buf_t *out)
{
    if (!s->open) return;
    as_event(out, "content_block_stop",
             json_pack("{s:s, s:i}", "type", "content_block_stop", "index", s->nblocks - 1));
    s->open = 0;
}

static void as_open_text(ashape_stream_t *s, buf_t *out)
{
    if (s->open == 1) return;
    as_close(s, out);
    as_event(out, "content_block_start",
             json_pack("{s:s, s:i, s:{s:s, s:s}}", "type", "content_block_start", "index",
                       s->nblocks++, "content_block", "type", "text", "text", ""));
    s->open = 1;
}

static void as_delta(ashape_stream_t *s, json_t *delta, buf_t *out)
{
    as_event(out, "content_block_delta",
             json_pack("{s:s, s:i, s:o}", "type", "content_block_delta", "index", s->nblocks - 1,
                       "delta", delta));
}

int ashape_stream_chunk(ashape_stream_t *s, const char *data, size_t len, buf_t *out)
{
    json_t *o = json_loadb(data, len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return -1;
    }
    as_start(s, json_string_value(json_object_get(o, "id")), out);
    json_t *choice = json_array_get(json_object_get(o, "choices"), 0);
    json_t *delta = json_object_get(choice, "delta"), *v;
    json_t *text = json_object_get(delta, "content");
    if (json_is_string(text) && json_string_length(text)) {
        as_open_text(s, out);
        as_delta(s, json_pack("{s:s, s:O}", "type", "text_delta", "text", text), out);
    }
    size_t i;
    json_array_foreach(json_object_get(delta, "tool_calls"), i, v)
    {
        json_t *fn = json_object_get(v, "function");
        json_t *id = json_object_get(v, "id"), *name = json_object_get(fn, "name");
        int idx = (int)json_integer_value(json_object_get(v, "index"));
        if (json_is_string(id) || json_is_string(name) || s->open != 2 || idx != s->open_tool) {
            as_close(s, out);
            as_event(out, "content_block_start",
                     json_pack("{s:s, s:i, s:{s:s, s:o, s:o, s:{}}}", "type", "content_block_start",
                               "index", s->nblocks++, "content_block", "type", "tool_use", "id",
                               json_is_string(id) ? json_incref(id) : json_string(""), "name",
                               json_is_string(name) ? json_incref(name) : json_string(""),
                               "input"));
            s->open = 2;
            s->open_tool = idx;
        }
        json_t *args = json_object_get(fn, "arguments");
        if (json_is_string(args) && json_string_length(args))
            as_delta(s, json_pack("{s:s, s:O}", "type", "input_json_delta", "partial_json", args),
                     out);
    }
    const char *fin = json_string_value(json_object_get(choice, "finish_reason"));
    if (fin) s->stop_reason = as_stop_reason(fin);
    json_decref(o);
    return 0;
}

void ashape_stream_end(ashape_stream_t *s, long prompt, long cached, long completion, buf_t *out)
{
    if (s->ended) return;
    s->ended = true;
    as_start(s, NULL, out);
    as_close(s, out);
    as_event(out, "message_delta",
             json_pack("{s:s, s:{s:s, s:n}, s:o}", "type", "message_delta", "delta", "stop_reason",
                       s->stop_reason ? s->stop_reason : "end_turn", "stop_sequence", "usage",
                       as_usage(prompt, cached, completion)));
    as_event(out, "message_stop", json_pack("{s:s}", "type", "message_stop"));
}
