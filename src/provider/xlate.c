#include "provider/xlate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/jsonw.h"

void xl_stream_init(xl_stream_t *s, arena_t *a, const char *id_prefix)
{
    memset(s, 0, sizeof *s);
    s->a = a;
    s->id = id_prefix;
    s->model = "";
    s->created = (long long)time(NULL);
    s->prompt = s->completion = -1;
}

void xl_stream_set_id(xl_stream_t *s, const char *id, const char *model)
{
    if (id && *id) s->id = arena_strdup(s->a, id);
    if (model && *model) s->model = arena_strdup(s->a, model);
}

static int xl_emit_json(json_t *o, prov_emit_fn emit, void *ud)
{
    char *p = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!p) return -1;
    int r = emit(ud, p, strlen(p));
    free(p);
    return r;
}

static json_t *xl_chunk(xl_stream_t *s)
{
    return json_pack("{s:s, s:s, s:I, s:s}", "id", s->id ? s->id : "", "object",
                     "chat.completion.chunk", "created", (json_int_t)s->created, "model",
                     s->model ? s->model : "");
}

int xl_emit_delta(xl_stream_t *s, json_t *delta, const char *finish, prov_emit_fn emit, void *ud)
{
    if (!delta) delta = json_object();
    if (!s->role_sent) {
        s->role_sent = true;
        json_object_set_new(delta, "role", json_string("assistant"));
        if (!json_object_get(delta, "content") && !json_object_get(delta, "tool_calls"))
            json_object_set_new(delta, "content", json_string(""));
    }
    json_t *c = xl_chunk(s);
    json_t *choice = json_pack("{s:i, s:o, s:o}", "index", 0, "delta", delta, "finish_reason",
                               finish ? json_string(finish) : json_null());
    json_object_set_new(c, "choices", json_pack("[o]", choice));
    return xl_emit_json(c, emit, ud);
}

int xl_emit_end(xl_stream_t *s, prov_emit_fn emit, void *ud)
{
    if (s->done) return 0;
    s->done = true;
    int r = xl_emit_delta(s, NULL, s->finish ? s->finish : "stop", emit, ud);
    if (r) return r;
    if (s->prompt >= 0 || s->completion >= 0) {
        json_t *c = xl_chunk(s);
        json_object_set_new(c, "choices", json_array());
        json_object_set_new(c, "usage",
                            xl_usage(s->prompt < 0 ? 0 : s->prompt,
                                     s->completion < 0 ? 0 : s->completion, s->cached));
        if ((r = xl_emit_json(c, emit, ud))) return r;
    }
    return emit(ud, "[DONE]", 6);
}

int xl_emit_error(int status, const char *code, const char *message, prov_emit_fn emit, void *ud)
{
    buf_t b;
    buf_init(&b, 0);
    xl_error(&b, status, code, message);
    int r = emit(ud, buf_data(&b), b.len);
    buf_free(&b);
    return r;
}

json_t *xl_usage(long prompt, long completion, long cached)
{
    json_t *u =
        json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)prompt, "completion_tokens",
                  (json_int_t)completion, "total_tokens", (json_int_t)(prompt + completion));
    if (cached > 0)
        json_object_set_new(u, "prompt_tokens_details",
                            json_pack("{s:I}", "cached_tokens", (json_int_t)cached));
    return u;
}

json_t *xl_message(const char *text, size_t len, json_t *calls, bool null_when_empty)
{
    bool has_calls = json_array_size(calls) > 0;
    json_t *msg = json_pack("{s:s}", "role", "assistant");
    json_object_set_new(msg, "content",
                        len                            ? json_stringn(text, len)
                        : has_calls || null_when_empty ? json_null()
                                                       : json_string(""));
    if (has_calls)
        json_object_set_new(msg, "tool_calls", calls);
    else
        json_decref(calls);
    return msg;
}

json_t *xl_completion(const char *id, long long created, const char *model, json_t *message,
                      const char *finish, json_t *usage)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", "chat.completion", "created",
                          (json_int_t)created, "model", model ? model : "");
    json_object_set_new(o, "choices",
                        json_pack("[{s:i, s:o, s:s}]", "index", 0, "message", message,
                                  "finish_reason", finish ? finish : "stop"));
    if (usage) json_object_set_new(o, "usage", usage);
    return o;
}

const char *xl_error_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "invalid_request_error";
    case 429:
        return "rate_limit_error";
    default:
        return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

void xl_error_json(buf_t *o, int status, const char *type, const char *code, const char *param,
                   const char *message)
{
    buf_appends(o, "{\"error\":{\"message\":");
    jsonw_cstr(o, message);
    buf_appends(o, ",\"type\":");
    jsonw_cstr(o, type ? type : xl_error_type(status));
    buf_appends(o, ",\"param\":");
    if (param)
        jsonw_cstr(o, param);
    else
        buf_appends(o, "null");
    buf_appends(o, ",\"code\":");
    if (code)
        jsonw_cstr(o, code);
    else
        buf_appends(o, "null");
    buf_appends(o, "}}");
}

void xl_error(buf_t *out, int status, const char *code, const char *message)
{
    json_t *e = json_pack("{s:{s:s, s:s, s:n, s:o}}", "error", "message",
                          message ? message : "upstream error", "type", xl_error_type(status),
                          "param", "code", code ? json_string(code) : json_null());
    if (!e) /* message or code not valid UTF-8 */
        e = json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", "upstream error", "type",
                      xl_error_type(status), "param", "code");
    xl_dump(out, e);
    json_decref(e);
}

int xl_dump(buf_t *out, const json_t *v)
{
    return provider_dump(out, v);
}

const char *xl_content_text(arena_t *a, const json_t *content)
{
    if (json_is_string(content)) return json_string_value(content);
    buf_t b;
    buf_init(&b, 0);
    provider_content_text(&b, content, "\n");
    char *s = arena_strndup(a, buf_data(&b), b.len);
    buf_free(&b);
    return s;
}

bool xl_data_url(arena_t *a, const char *url, const char **mime, const char **data)
{
    if (strncmp(url, "data:", 5) != 0) return false;
    const char *semi = strstr(url, ";base64,");
    if (!semi) return false;
    *mime = arena_strndup(a, url + 5, (size_t)(semi - url - 5));
    *data = semi + 8;
    return *mime != NULL;
}

const char *xl_image_url(const json_t *part)
{
    json_t *t = json_object_get(part, "type");
    if (!json_is_string(t) || strcmp(json_string_value(t), "image_url") != 0) return NULL;
    json_t *iu = json_object_get(part, "image_url");
    json_t *u = json_is_object(iu) ? json_object_get(iu, "url") : iu;
    return json_is_string(u) ? json_string_value(u) : NULL;
}

json_t *xl_stop_list(const json_t *stop)
{
    if (json_is_string(stop)) return json_pack("[O]", stop);
    if (json_is_array(stop) && json_array_size(stop) > 0) return json_deep_copy(stop);
    return NULL;
}

long xl_int(const json_t *obj, const char *key, long dflt)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long)json_integer_value(v) : dflt;
}

int xl_finish(buf_t *out, json_t *c, json_t *src, int status)
{
    int rc = xl_dump(out, c);
    json_decref(c);
    json_decref(src);
    return rc ? -1 : status;
}

json_t *xl_load_object(const char *data, size_t len)
{
    json_t *o = json_loadb(data, len, 0, NULL);
    if (json_is_object(o)) return o;
    json_decref(o);
    return NULL;
}

json_t *xl_call(json_t *id, json_t *name, const char *args)
{
    return json_pack("{s:o, s:s, s:{s:o, s:s}}", "id", id ? id : json_string(""), "type",
                     "function", "function", "name", name ? json_incref(name) : json_string(""),
                     "arguments", args ? args : "{}");
}

int xl_serves(arena_t *a, endpoint_t ep, const xl_wire_t *w, prov_call_t *out)
{
    unsigned eps = w->endpoints ? w->endpoints : XL_EP(EP_CHAT);
    if ((unsigned)ep < EP__COUNT && (eps & XL_EP(ep))) return 0;
    out->error =
        arena_printf(a, "this deployment (provider type %s) serves chat completions%s only",
                     w->type, eps & XL_EP(EP_EMBEDDINGS) ? " and embeddings" : "");
    return PROV_EBADREQ;
}

int xl_count_answer(buf_t *out, const json_t *o, const char *key, int status)
{
    json_t *n = json_object_get(o, key);
    if (!json_is_integer(n) || json_integer_value(n) < 0) return -1;
    buf_printf(out, "{\"input_tokens\":%lld}", (long long)json_integer_value(n));
    return status;
}

/* w's version header and m's key header into h from index n; the new count. */
static int xl_auth_headers(arena_t *a, const cfg_model_t *m, const xl_wire_t *w, const char **h,
                           int n)
{
    if (w->version) h[n++] = w->version;
    if (w->key_header && m->provider->api_key)
        h[n++] = arena_concat(a, w->key_header, m->provider->api_key);
    return n;
}

const char **xl_probe_headers(arena_t *a, const cfg_model_t *m, const xl_wire_t *w)
{
    const char **h = arena_calloc(a, 3 * sizeof *h);
    if (h) xl_auth_headers(a, m, w, h, 0);
    return h;
}

int xl_build_end(arena_t *a, json_t *req, const cfg_model_t *m, endpoint_t ep, bool stream,
                 const xl_wire_t *w, size_t xsize, prov_call_t *out)
{
    int rc = provider_body(a, req, out);
    json_decref(req);
    if (rc) return -1;
    const char **h = arena_calloc(a, 5 * sizeof *h);
    xl_stream_t *s = arena_calloc(a, xsize);
    if (!h || !s) return -1;
    int n = 0;
    h[n++] = "Content-Type: application/json";
    h[n++] = stream ? w->stream_accept : "Accept: application/json";
    xl_auth_headers(a, m, w, h, n);
    out->headers = h;
    xl_stream_init(s, a, w->id_prefix);
    s->model = m->upstream_model;
    s->ep = ep;
    out->xlate = (prov_xlate_t *)s;
    return 0;
}

void xl_turn(json_t *turns, const char *role, const char *key, json_t *items)
{
    if (json_array_size(items) == 0) {
        json_decref(items);
        return;
    }
    size_t n = json_array_size(turns);
    json_t *last = n ? json_array_get(turns, n - 1) : NULL;
    const char *lr = json_string_value(json_object_get(last, "role"));
    if (lr && strcmp(lr, role) == 0) {
        json_array_extend(json_object_get(last, key), items);
        json_decref(items);
        return;
    }
    json_array_append_new(turns, json_pack("{s:s, s:o}", "role", role, key, items));
}

json_t *xl_tool_decls(const json_t *tools, const char *params_key, bool params_required)
{
    json_t *decls = json_array(), *tool;
    size_t i;
    json_array_foreach(tools, i, tool)
    {
        json_t *fn = json_object_get(tool, "function");
        json_t *d = json_pack("{s:O}", "name", json_object_get(fn, "name"));
        if (!d) continue;
        json_t *desc = json_object_get(fn, "description"), *p = json_object_get(fn, "parameters");
        if (json_is_string(desc)) json_object_set(d, "description", desc);
        if (json_is_object(p))
            json_object_set(d, params_key, p);
        else if (params_required)
            json_object_set_new(d, params_key, json_pack("{s:s}", "type", "object"));
        json_array_append_new(decls, d);
    }
    return decls;
}

void xl_calls_append(json_t *out, const json_t *calls, json_t *names, const char *wrap,
                     const char *args_key)
{
    size_t i;
    json_t *tc;
    json_array_foreach(calls, i, tc)
    {
        json_t *name;
        const char *id;
        json_t *av = xl_tool_call(tc, &name, &id);
        if (!av) continue;
        if (id) json_object_set(names, id, name);
        json_array_append_new(out, json_pack("{s:{s:O, s:o}}", wrap, "name", name, args_key, av));
    }
}

json_t *xl_tool_call(const json_t *tc, json_t **name, const char **id)
{
    json_t *fn = json_object_get(tc, "function");
    *name = json_object_get(fn, "name");
    *id = json_string_value(json_object_get(tc, "id"));
    if (!json_is_string(*name)) return NULL;
    const char *args = json_string_value(json_object_get(fn, "arguments"));
    json_t *av = args ? json_loads(args, 0, NULL) : NULL;
    if (json_is_object(av)) return av;
    json_decref(av);
    return json_object();
}
