/*
 * provider ollama — Ollama's native chat API: POST {base_url}/api/chat
 * (base_url e.g. http://localhost:11434), streamed as NDJSON lines.
 *
 * Request (OpenAI chat -> Ollama): messages keep their roles; content
 * becomes one string (text parts joined) and data: URL images become base64
 * "images" (Ollama takes no image URLs: such a request is refused with 400);
 * assistant tool_calls become {"function":{"name","arguments":{object}}};
 * tool messages keep role "tool" with "tool_name" from the earlier call.
 * tools pass as they are (the same shape); "stream" is always explicit
 * (Ollama streams by default); temperature, top_p, seed, stop,
 * max(_completion)_tokens -> options.temperature/top_p/seed/stop/
 * num_predict; response_format json_object -> format "json", json_schema ->
 * format = the schema. A key, if configured, is sent as a bearer token (for
 * Ollama behind a proxy).
 *
 * Answer: message.content -> content, message.tool_calls -> tool_calls (ids
 * "call_<n>"); done_reason length -> length, else stop (tool_calls when
 * calls were made). Usage: prompt_eval_count / eval_count (Ollama reports no
 * cached count). Streams: one NDJSON line per piece; the line with
 * "done": true ends the stream (finish chunk, usage chunk, [DONE]); a line
 * {"error":"..."} becomes an OpenAI error payload. Errors {"error":"..."}
 * keep their HTTP status.
 *
 * Embeddings (EP_EMBEDDINGS, provider/embed.h): POST {base_url}/api/embed
 * with the inputs and dimensions; its "embeddings" arrays become the OpenAI
 * list (truncated and renormalised if longer than dimensions, encoded as
 * asked), usage prompt_eval_count.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/embed.h"
#include "provider/xlate.h"

struct prov_xlate {
    xl_stream_t s;    /* first (xl_build_end) */
    embed_opts_t emb; /* embeddings: what the answer must be */
};

static const xl_wire_t oll_wire = {
    .type = "ollama",
    .stream_accept = "Accept: application/x-ndjson",
    .key_header = "Authorization: Bearer ",
    .id_prefix = "chatcmpl-ollama",
    .endpoints = XL_EP(EP_CHAT) | XL_EP(EP_EMBEDDINGS),
};

/* EP_EMBEDDINGS: POST {base_url}/api/embed {"model", "input"[, "dimensions"]}. */
static int oll_build_embed(arena_t *a, json_t *body, const cfg_model_t *m, prov_call_t *out)
{
    embed_opts_t eo;
    int rc = embed_request(a, body, &eo, out);
    if (rc) return rc;
    json_t *req = json_pack("{s:s, s:O}", "model", m->upstream_model, "input",
                            json_object_get(body, "input"));
    if (eo.dims) json_object_set_new(req, "dimensions", json_integer(eo.dims));
    if (xl_build_end(a, req, m, EP_EMBEDDINGS, false, &oll_wire, sizeof(struct prov_xlate), out))
        return -1;
    out->xlate->emb = eo;
    out->url = arena_printf(a, "%s/api/embed", m->provider->base_url);
    return out->url ? 0 : -1;
}

static int oll_build(arena_t *a, endpoint_t ep, json_t *body, const cfg_model_t *m, bool stream,
                     prov_call_t *out)
{
    int bad = xl_serves(a, ep, &oll_wire, out);
    if (bad) return bad;
    if (ep == EP_EMBEDDINGS) return oll_build_embed(a, body, m, out);
    json_t *req = json_pack("{s:s, s:b}", "model", m->upstream_model, "stream", stream);
    json_t *msgs = json_array(), *names = json_object(), *msg, *v;
    size_t i, j;
    json_array_foreach(json_object_get(body, "messages"), i, msg)
    {
        const char *role = json_string_value(json_object_get(msg, "role"));
        json_t *content = json_object_get(msg, "content");
        if (!role) continue;
        const char *text = xl_content_text(a, content);
        json_t *om = json_pack("{s:s, s:s}", "role", !strcmp(role, "developer") ? "system" : role,
                               "content", text ? text : "");
        json_t *images = json_array(), *part;
        json_array_foreach(json_is_array(content) ? content : NULL, j, part)
        {
            const char *url = xl_image_url(part), *mime, *data;
            if (!url) continue;
            if (!xl_data_url(a, url, &mime, &data)) {
                out->error = "provider type ollama takes images only as base64 data: URLs";
                json_decref(images);
                json_decref(om);
                json_decref(msgs);
                json_decref(names);
                json_decref(req);
                return PROV_EBADREQ;
            }
            json_array_append_new(images, json_string(data));
        }
        if (json_array_size(images))
            json_object_set_new(om, "images", images);
        else
            json_decref(images);
        json_t *calls = json_object_get(msg, "tool_calls");
        if (json_array_size(calls)) {
            json_t *oc = json_array();
            xl_calls_append(oc, calls, names, "function", "arguments");
            json_object_set_new(om, "tool_calls", oc);
        }
        const char *tid = json_string_value(json_object_get(msg, "tool_call_id"));
        if (!strcmp(role, "tool") && tid && (v = json_object_get(names, tid)))
            json_object_set(om, "tool_name", v);
        json_array_append_new(msgs, om);
    }
    json_decref(names);
    json_object_set_new(req, "messages", msgs);
    if (json_is_array(v = json_object_get(body, "tools")) && json_array_size(v))
        json_object_set(req, "tools", v);

    json_t *opt = json_object();
    static const char *const copy[][2] = {
        {"temperature", "temperature"}, {"top_p", "top_p"}, {"seed", "seed"}};
    for (size_t k = 0; k < 3; k++)
        if (json_is_number(v = json_object_get(body, copy[k][0])))
            json_object_set(opt, copy[k][1], v);
    long maxt = xl_int(body, "max_completion_tokens", xl_int(body, "max_tokens", -1));
    if (maxt > 0) json_object_set_new(opt, "num_predict", json_integer(maxt));
    json_t *stop = xl_stop_list(json_object_get(body, "stop"));
    if (stop) json_object_set_new(opt, "stop", stop);
    if (json_object_size(opt))
        json_object_set_new(req, "options", opt);
    else
        json_decref(opt);
    json_t *rf = json_object_get(body, "response_format");
    const char *rft = json_string_value(json_object_get(rf, "type"));
    json_t *schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
    if (rft && !strcmp(rft, "json_schema") && json_is_object(schema))
        json_object_set(req, "format", schema);
    else if (rft && !strcmp(rft, "json_object"))
        json_object_set_new(req, "format", json_string("json"));

    if (xl_build_end(a, req, m, ep, stream, &oll_wire, sizeof(struct prov_xlate), out)) return -1;
    out->framing = PROV_FRAME_NDJSON;
    out->url = arena_printf(a, "%s/api/chat", m->provider->base_url);
    return out->url ? 0 : -1;
}

static json_t *oll_call(const json_t *tc, int index, bool with_index)
{
    json_t *fn = json_object_get(tc, "function"), *name = json_object_get(fn, "name");
    json_t *av = json_object_get(fn, "arguments");
    char id[32];
    snprintf(id, sizeof id, "call_%d", index);
    char *args = json_is_string(av) ? strdup(json_string_value(av))
                 : av               ? json_dumps(av, JSON_COMPACT)
                                    : NULL;
    json_t *c = xl_call(json_string(id), name, args);
    free(args);
    if (with_index) json_object_set_new(c, "index", json_integer(index));
    return c;
}

static const char *oll_finish(const char *r, bool calls)
{
    if (r && !strcmp(r, "length")) return "length";
    return calls ? "tool_calls" : "stop";
}

static int oll_response(prov_xlate_t *x, int status, const char *body, size_t len, buf_t *out)
{
    json_t *o = json_loadb(body, len, 0, NULL);
    if (status >= 400) {
        const char *msg = json_string_value(json_object_get(o, "error"));
        xl_error(out, status, "upstream_error",
                 msg ? msg : "the upstream provider answered with an error");
        json_decref(o);
        return status;
    }
    if (x->s.ep == EP_EMBEDDINGS) {
        const char *model = json_string_value(json_object_get(o, "model"));
        int st = embed_json_answer(out, &x->emb, json_object_get(o, "embeddings"), NULL,
                                   model ? model : x->s.model, xl_int(o, "prompt_eval_count", 0),
                                   status);
        json_decref(o);
        return st;
    }
    json_t *m = json_object_get(o, "message");
    if (!json_is_object(m)) {
        json_decref(o);
        return -1;
    }
    json_t *calls = json_array(), *tc;
    size_t i;
    json_array_foreach(json_object_get(m, "tool_calls"), i, tc)
        json_array_append_new(calls, oll_call(tc, (int)i, false));
    json_t *text = json_object_get(m, "content");
    bool has_calls = json_array_size(calls) > 0;
    json_t *msg = xl_message(json_string_value(text), json_string_length(text), calls, false);
    const char *model = json_string_value(json_object_get(o, "model"));
    json_t *c =
        xl_completion(x->s.id, x->s.created, model ? model : x->s.model, msg,
                      oll_finish(json_string_value(json_object_get(o, "done_reason")), has_calls),
                      xl_usage(xl_int(o, "prompt_eval_count", 0), xl_int(o, "eval_count", 0), 0));
    return xl_finish(out, c, o, status);
}

static int oll_event(prov_xlate_t *x, const char *event, const char *data, size_t len,
                     prov_emit_fn emit, void *ud)
{
    json_t *o = xl_load_object(data, len);
    if (!o) return -1;
    xl_stream_t *s = &x->s;
    int r = 0;
    json_t *err = json_object_get(o, "error");
    if (json_is_string(err)) {
        r = xl_emit_error(500, "upstream_error", json_string_value(err), emit, ud);
        json_decref(o);
        return r;
    }
    xl_stream_set_id(s, NULL, json_string_value(json_object_get(o, "model")));
    json_t *m = json_object_get(o, "message"), *tc;
    json_t *text = json_object_get(m, "content");
    if (json_is_string(text) && json_string_length(text))
        r = xl_emit_delta(s, json_pack("{s:O}", "content", text), NULL, emit, ud);
    size_t i;
    json_array_foreach(json_object_get(m, "tool_calls"), i, tc)
    {
        if (r) break;
        r = xl_emit_delta(s, json_pack("{s:[o]}", "tool_calls", oll_call(tc, s->tools++, true)),
                          NULL, emit, ud);
    }
    if (!r && json_is_true(json_object_get(o, "done"))) {
        s->finish = oll_finish(json_string_value(json_object_get(o, "done_reason")), s->tools > 0);
        s->prompt = xl_int(o, "prompt_eval_count", 0);
        s->completion = xl_int(o, "eval_count", 0);
        r = xl_emit_end(s, emit, ud);
    }
    (void)event;
    json_decref(o);
    return r;
}

static int oll_build_probe(arena_t *a, const cfg_model_t *m, prov_call_t *out)
{
    out->url = arena_printf(a, "%s/api/tags", m->provider->base_url);
    return out->url ? 0 : -1;
}

const prov_ops_t provider_ollama = {
    .type = "ollama",
    .build = oll_build,
    .build_probe = oll_build_probe,
    .translate_response = oll_response,
    .translate_event = oll_event,
};
