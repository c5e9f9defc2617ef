/*
 * provider gemini — Google's Gemini API: POST {base_url}/models/{model}:
 * generateContent, or :streamGenerateContent?alt=sse for a stream (base_url
 * e.g. https://generativelanguage.googleapis.com/v1beta). The key goes in the
 * x-goog-api-key header, never in the URL, so it cannot reach a log.
 *
 * Request (OpenAI chat -> Gemini): system/developer messages ->
 * systemInstruction; user/assistant -> contents with role user/model and
 * parts: text, inlineData (data: URL images), fileData (other image URLs),
 * functionCall (assistant tool_calls); tool messages -> functionResponse
 * parts (name looked up from the earlier call with that id, response = the
 * content parsed as a JSON object, else {"content": text}); consecutive turns
 * of one role merged. tools -> one functionDeclarations list; tool_choice
 * auto/required/none/{function} -> functionCallingConfig AUTO/ANY/NONE/ANY +
 * allowedFunctionNames; temperature, top_p, max(_completion)_tokens, stop,
 * response_format json -> generationConfig.
 *
 * Answer: the first candidate's text parts -> content, functionCall parts ->
 * tool_calls (id "call_<n>" unless Gemini gave one); finishReason STOP ->
 * stop (tool_calls when calls were made), MAX_TOKENS -> length, SAFETY /
 * RECITATION / BLOCKLIST / PROHIBITED_CONTENT / SPII / IMAGE_SAFETY and a
 * prompt blocked by promptFeedback.blockReason -> content_filter. Usage:
 * prompt = promptTokenCount (which includes cachedContentTokenCount, the
 * cached count), completion = candidatesTokenCount + thoughtsTokenCount.
 * Streams: every event is a whole response; the one with a finishReason
 * ends the stream (finish chunk, usage chunk, [DONE]). Errors
 * {"error":{"code","message","status"}} keep their HTTP status; code = the
 * Gemini status name.
 *
 * Token counts (EP_COUNT_TOKENS): POST {base_url}/models/{model}:countTokens
 * with {"generateContentRequest": the request above without
 * generationConfig, plus "model": "models/{model}"}; totalTokens is the
 * answer's input_tokens.
 *
 * Embeddings (EP_EMBEDDINGS, provider/embed.h): POST {base_url}/models/{model}:
 * batchEmbedContents, one {"model","content":{"parts":[{"text"}]}} request
 * per input (with dimensions as outputDimensionality); embeddings[i].values
 * become the OpenAI list, truncated and renormalised to dimensions (Gemini
 * normalises only its full-size vectors) and encoded as asked. Gemini
 * reports no token count there: usage is an estimate (bytes / 4 + 1 per
 * input).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/embed.h"
#include "provider/xlate.h"

struct prov_xlate {
    xl_stream_t s;    /* first (xl_build_end) */
    embed_opts_t emb; /* embeddings: what the answer must be */
    long emb_tokens;  /* embeddings: the estimate the usage reports */
};

static const xl_wire_t gem_wire = {
    .type = "gemini",
    .stream_accept = "Accept: text/event-stream",
    .key_header = "x-goog-api-key: ",
    .id_prefix = "chatcmpl-gemini",
    .endpoints = XL_EP(EP_CHAT) | XL_EP(EP_COUNT_TOKENS) | XL_EP(EP_EMBEDDINGS),
};

static const char *gem_mime_of(const char *url)
{
    const char *dot = strrchr(url, '.');
    if (dot && (!strcmp(dot, ".png") || !strcmp(dot, ".PNG"))) return "image/png";
    if (dot && !strcmp(dot, ".webp")) return "image/webp";
    if (dot && !strcmp(dot, ".gif")) return "image/gif";
    return "image/jpeg";
}

static json_t *gem_parts(arena_t *a, const json_t *content)
{
    json_t *parts = json_array();
    if (json_is_string(content)) {
        if (json_string_length(content))
            json_array_append_new(parts, json_pack("{s:O}", "text", content));
        return parts;
    }
    size_t i;
    json_t *p;
    json_array_foreach(content, i, p)
    {
        const char *url = xl_image_url(p), *mime, *data;
        json_t *text = json_object_get(p, "text");
        if (url && xl_data_url(a, url, &mime, &data))
            json_array_append_new(
                parts, json_pack("{s:{s:s, s:s}}", "inlineData", "mimeType", mime, "data", data));
        else if (url)
            json_array_append_new(parts, json_pack("{s:{s:s, s:s}}", "fileData", "mimeType",
                                                   gem_mime_of(url), "fileUri", url));
        else if (json_is_string(text))
            json_array_append_new(parts, json_pack("{s:O}", "text", text));
    }
    return parts;
}

static json_t *gem_tool_config(const json_t *tc)
{
    const char *s = json_string_value(tc);
    const char *mode = !s                       ? NULL
                       : !strcmp(s, "required") ? "ANY"
                       : !strcmp(s, "none")     ? "NONE"
                                                : "AUTO";
    json_t *name = json_object_get(json_object_get(tc, "function"), "name");
    if (!mode && !json_is_string(name)) return NULL;
    json_t *fc = json_pack("{s:s}", "mode", mode ? mode : "ANY");
    if (!mode) json_object_set_new(fc, "allowedFunctionNames", json_pack("[O]", name));
    return json_pack("{s:o}", "functionCallingConfig", fc);
}

/* EP_EMBEDDINGS: one batchEmbedContents request per call, a content per input. */
static int gem_build_embed(arena_t *a, json_t *body, const cfg_model_t *m, prov_call_t *out)
{
    embed_opts_t eo;
    int rc = embed_request(a, body, &eo, out);
    if (rc) return rc;
    const char *name = arena_printf(a, "models/%s", m->upstream_model);
    json_t *reqs = json_array();
    long bytes = 0;
    for (size_t i = 0; i < eo.n; i++) {
        size_t len;
        const char *text = embed_input(body, i, &len);
        bytes += (long)len;
        json_t *r = json_pack("{s:s, s:{s:[{s:s%}]}}", "model", name ? name : "", "content",
                              "parts", "text", text, len);
        if (eo.dims) json_object_set_new(r, "outputDimensionality", json_integer(eo.dims));
        json_array_append_new(reqs, r);
    }
    json_t *req = json_pack("{s:o}", "requests", reqs);
    if (xl_build_end(a, req, m, EP_EMBEDDINGS, false, &gem_wire, sizeof(struct prov_xlate), out))
        return -1;
    out->xlate->emb = eo;
    out->xlate->emb_tokens = bytes / 4 + (long)eo.n; /* Gemini reports no count here */
    out->url = arena_printf(a, "%s/models/%s:batchEmbedContents", m->provider->base_url,
                            m->upstream_model);
    return out->url ? 0 : -1;
}

static int gem_build(arena_t *a, endpoint_t ep, json_t *body, const cfg_model_t *m, bool stream,
                     prov_call_t *out)
{
    int bad = xl_serves(a, ep, &gem_wire, out);
    if (bad) return bad;
    if (ep == EP_EMBEDDINGS) return gem_build_embed(a, body, m, out);
    json_t *req = json_object(), *contents = json_array(), *sys = json_array();
    json_t *names = json_object(); /* tool_call id -> function name */
    size_t i;
    json_t *msg;
    json_array_foreach(json_object_get(body, "messages"), i, msg)
    {
        const char *role = json_string_value(json_object_get(msg, "role"));
        json_t *content = json_object_get(msg, "content");
        if (!role) continue;
        if (!strcmp(role, "system") || !strcmp(role, "developer")) {
            const char *t = xl_content_text(a, content);
            if (t && *t) json_array_append_new(sys, json_pack("{s:s}", "text", t));
        } else if (!strcmp(role, "assistant")) {
            json_t *parts = gem_parts(a, content);
            xl_calls_append(parts, json_object_get(msg, "tool_calls"), names, "functionCall",
                            "args");
            xl_turn(contents, "model", "parts", parts);
        } else if (!strcmp(role, "tool")) {
            const char *id = json_string_value(json_object_get(msg, "tool_call_id"));
            json_t *name = id ? json_object_get(names, id) : NULL;
            const char *t = xl_content_text(a, content);
            json_t *resp = t ? json_loads(t, 0, NULL) : NULL;
            if (!json_is_object(resp)) {
                json_decref(resp);
                resp = json_pack("{s:s}", "content", t ? t : "");
            }
            xl_turn(contents, "user", "parts",
                    json_pack("[{s:{s:o, s:o}}]", "functionResponse", "name",
                              name ? json_incref(name) : json_string(id ? id : "tool"), "response",
                              resp));
        } else {
            xl_turn(contents, "user", "parts", gem_parts(a, content));
        }
    }
    json_decref(names);
    json_object_set_new(req, "contents", contents);
    if (json_array_size(sys))
        json_object_set_new(req, "systemInstruction", json_pack("{s:o}", "parts", sys));
    else
        json_decref(sys);

    json_t *tools = json_object_get(body, "tools");
    if (json_is_array(tools) && json_array_size(tools)) {
        json_object_set_new(req, "tools",
                            json_pack("[{s:o}]", "functionDeclarations",
                                      xl_tool_decls(tools, "parameters", false)));
        json_t *cfg = gem_tool_config(json_object_get(body, "tool_choice"));
        if (cfg) json_object_set_new(req, "toolConfig", cfg);
    }

    json_t *gc = json_object(), *v;
    if (json_is_number(v = json_object_get(body, "temperature")))
        json_object_set(gc, "temperature", v);
    if (json_is_number(v = json_object_get(body, "top_p"))) json_object_set(gc, "topP", v);
    long maxt = xl_int(body, "max_completion_tokens", xl_int(body, "max_tokens", -1));
    if (maxt > 0) json_object_set_new(gc, "maxOutputTokens", json_integer(maxt));
    json_t *stop = xl_stop_list(json_object_get(body, "stop"));
    if (stop) json_object_set_new(gc, "stopSequences", stop);
    const char *rf =
        json_string_value(json_object_get(json_object_get(body, "response_format"), "type"));
    if (rf && (!strcmp(rf, "json_object") || !strcmp(rf, "json_schema")))
        json_object_set_new(gc, "responseMimeType", json_string("application/json"));
    if (json_object_size(gc))
        json_object_set_new(req, "generationConfig", gc);
    else
        json_decref(gc);

    const char *method = stream ? "streamGenerateContent?alt=sse" : "generateContent";
    if (ep == EP_COUNT_TOKENS) { /* the request as it would be generated from, counted */
        json_object_del(req, "generationConfig");
        char *name = arena_printf(a, "models/%s", m->upstream_model);
        json_object_set_new(req, "model", json_string(name ? name : ""));
        req = json_pack("{s:o}", "generateContentRequest", req);
        method = "countTokens";
        stream = false;
    }
    if (xl_build_end(a, req, m, ep, stream, &gem_wire, sizeof(struct prov_xlate), out)) return -1;
    out->url = arena_printf(a, "%s/models/%s:%s", m->provider->base_url, m->upstream_model, method);
    return out->url ? 0 : -1;
}

static const char *gem_finish(const char *r, bool calls)
{
    if (!r) return NULL;
    if (!strcmp(r, "MAX_TOKENS")) return "length";
    static const char *const filtered[] = {
        "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"};
    for (size_t i = 0; i < sizeof filtered / sizeof filtered[0]; i++)
        if (!strcmp(r, filtered[i])) return "content_filter";
    return calls ? "tool_calls" : "stop";
}

static void gem_usage(xl_stream_t *s, const json_t *u)
{
    if (!json_is_object(u)) return;
    s->prompt = xl_int(u, "promptTokenCount", 0);
    s->completion = xl_int(u, "candidatesTokenCount", 0) + xl_int(u, "thoughtsTokenCount", 0);
    s->cached = xl_int(u, "cachedContentTokenCount", 0);
}

static json_t *gem_call(const json_t *fc, int index, bool with_index)
{
    char id[32];
    const char *gid = json_string_value(json_object_get(fc, "id"));
    snprintf(id, sizeof id, "call_%d", index);
    json_t *av = json_object_get(fc, "args");
    char *args = av ? json_dumps(av, JSON_COMPACT) : NULL;
    json_t *c = xl_call(json_string(gid ? gid : id), json_object_get(fc, "name"), args);
    free(args);
    if (with_index) json_object_set_new(c, "index", json_integer(index));
    return c;
}

static int gem_response(prov_xlate_t *x, int status, const char *body, size_t len, buf_t *out)
{
    json_t *o = json_loadb(body, len, 0, NULL);
    if (status >= 400) {
        json_t *e = json_object_get(o, "error");
        const char *msg = json_string_value(json_object_get(e, "message"));
        const char *code = json_string_value(json_object_get(e, "status"));
        xl_error(out, status, code ? code : "upstream_error",
                 msg ? msg : "the upstream provider answered with an error");
        json_decref(o);
        return status;
    }
    if (x->s.ep == EP_COUNT_TOKENS || x->s.ep == EP_EMBEDDINGS) {
        int st = x->s.ep == EP_COUNT_TOKENS
                     ? xl_count_answer(out, o, "totalTokens", status)
                     : embed_json_answer(out, &x->emb, json_object_get(o, "embeddings"), "values",
                                         x->s.model, x->emb_tokens, status);
        json_decref(o);
        return st;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        return -1;
    }
    json_t *cand = json_array_get(json_object_get(o, "candidates"), 0), *p;
    buf_t text;
    buf_init(&text, 0);
    json_t *calls = json_array();
    size_t i;
    json_array_foreach(json_object_get(json_object_get(cand, "content"), "parts"), i, p)
    {
        json_t *t = json_object_get(p, "text"), *fc = json_object_get(p, "functionCall");
        if (json_is_true(json_object_get(p, "thought"))) continue;
        if (json_is_string(t)) buf_append(&text, json_string_value(t), json_string_length(t));
        if (json_is_object(fc))
            json_array_append_new(calls, gem_call(fc, (int)json_array_size(calls), false));
    }
    bool has_calls = json_array_size(calls) > 0;
    json_t *msg = xl_message(buf_data(&text), text.len, calls, true);
    buf_free(&text);
    const char *fin =
        gem_finish(json_string_value(json_object_get(cand, "finishReason")), has_calls);
    if (json_object_get(json_object_get(o, "promptFeedback"), "blockReason") || (!cand && !fin))
        fin = "content_filter";
    xl_stream_t u = {.prompt = 0, .completion = 0};
    gem_usage(&u, json_object_get(o, "usageMetadata"));
    const char *id = json_string_value(json_object_get(o, "responseId"));
    const char *model = json_string_value(json_object_get(o, "modelVersion"));
    json_t *c = xl_completion(id ? id : x->s.id, x->s.created, model ? model : x->s.model, msg,
                              fin ? fin : "stop", xl_usage(u.prompt, u.completion, u.cached));
    return xl_finish(out, c, o, status);
}

static int gem_event(prov_xlate_t *x, const char *event, const char *data, size_t len,
                     prov_emit_fn emit, void *ud)
{
    json_t *o = xl_load_object(data, len);
    if (!o) return -1;
    xl_stream_t *s = &x->s;
    int r = 0;
    json_t *e = json_object_get(o, "error");
    if (json_is_object(e)) {
        const char *msg = json_string_value(json_object_get(e, "message"));
        const char *code = json_string_value(json_object_get(e, "status"));
        int st = (int)xl_int(e, "code", 500);
        r = xl_emit_error(st >= 400 && st < 600 ? st : 500, code ? code : "upstream_error",
                          msg ? msg : "the upstream stream reported an error", emit, ud);
        json_decref(o);
        return r;
    }
    xl_stream_set_id(s, json_string_value(json_object_get(o, "responseId")),
                     json_string_value(json_object_get(o, "modelVersion")));
    gem_usage(s, json_object_get(o, "usageMetadata"));
    json_t *cand = json_array_get(json_object_get(o, "candidates"), 0), *p;
    size_t i;
    json_array_foreach(json_object_get(json_object_get(cand, "content"), "parts"), i, p)
    {
        json_t *t = json_object_get(p, "text"), *fc = json_object_get(p, "functionCall");
        if (json_is_true(json_object_get(p, "thought"))) continue;
        if (json_is_string(t) && json_string_length(t))
            r = xl_emit_delta(s, json_pack("{s:O}", "content", t), NULL, emit, ud);
        else if (json_is_object(fc))
            r = xl_emit_delta(s, json_pack("{s:[o]}", "tool_calls", gem_call(fc, s->tools++, true)),
                              NULL, emit, ud);
        if (r) break;
    }
    const char *fin =
        gem_finish(json_string_value(json_object_get(cand, "finishReason")), s->tools > 0);
    if (json_object_get(json_object_get(o, "promptFeedback"), "blockReason"))
        fin = "content_filter";
    if (!r && fin) {
        s->finish = fin;
        r = xl_emit_end(s, emit, ud);
    }
    (void)event;
    json_decref(o);
    return r;
}

/* The deployment's own model resource: cheap, and proves the key may use it. */
static int gem_build_probe(arena_t *a, const cfg_model_t *m, prov_call_t *out)
{
    out->url = arena_printf(a, "%s/models/%s", m->provider->base_url, m->upstream_model);
    out->headers = xl_probe_headers(a, m, &gem_wire);
    return out->url && out->headers ? 0 : -1;
}

const prov_ops_t provider_gemini = {
    .type = "gemini",
    .counts_tokens = true,
    .build = gem_build,
    .build_probe = gem_build_probe,
    .translate_response = gem_response,
    .translate_event = gem_event,
};
