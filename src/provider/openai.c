/*
 * provider openai — any OpenAI-compatible server.
 *
 * The request passes through as the client sent it, with three changes: the
 * public model name becomes the deployment's upstream id, the provider key is
 * sent as a bearer token (the client's own Authorization never goes upstream),
 * and a streamed chat/completion asks for stream_options.include_usage so the
 * gateway always learns the token counts. Every other field (tools,
 * response_format, image parts, vendor extensions) is forwarded untouched.
 */
#include <string.h>

#include "provider/provider.h"

/* Where the value of the only unescaped "model" key starts (the opening quote)
 * and ends (after the closing quote), when that value is the string want.
 * NULL when the key is absent, appears more than once as a key, or holds
 * something else: then the caller re-serialises the parsed body instead. */
static const char *openai_model_span(const char *raw, size_t len, const char *want,
                                     const char **end)
{
    static const char key[] = "\"model\"";
    const char *found = NULL;
    for (const char *p = raw; (p = memmem(p, (size_t)(raw + len - p), key, sizeof key - 1));
         p += sizeof key - 1) {
        if (p > raw && p[-1] == '\\') continue; /* inside a string */
        const char *q = p + sizeof key - 1;
        while (q < raw + len && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')) q++;
        if (q == raw + len || *q != ':') continue; /* a string value "model", not a key */
        if (found) return NULL;                    /* a second "model" key somewhere */
        found = q + 1;
    }
    if (!found) return NULL;
    while (found < raw + len &&
           (*found == ' ' || *found == '\t' || *found == '\n' || *found == '\r'))
        found++;
    size_t wl = strlen(want);
    if ((size_t)(raw + len - found) < wl + 2 || found[0] != '"' ||
        memcmp(found + 1, want, wl) != 0 || found[wl + 1] != '"')
        return NULL;
    *end = found + wl + 2;
    return found;
}

/* The common case without a parse-and-dump: the body as the client sent it
 * with the model value replaced by the upstream id. Streams that need
 * include_usage added, escaped names and repeated "model" keys go the
 * general way (provider_openai_body). */
int provider_openai_raw_body(arena_t *a, endpoint_t ep, const char *raw, size_t len,
                             const cfg_model_t *m, bool stream, bool client_usage, prov_call_t *out)
{
    if ((stream && !client_usage && ep != EP_EMBEDDINGS) || strpbrk(m->name, "\"\\") ||
        strpbrk(m->upstream_model, "\"\\"))
        return 1;
    const char *end, *start = openai_model_span(raw, len, m->name, &end);
    if (!start) return 1;
    size_t ul = strlen(m->upstream_model), head = (size_t)(start - raw),
           tail = len - (size_t)(end - raw);
    char *p = arena_alloc(a, head + ul + 2 + tail + 1);
    if (!p) return -1;
    memcpy(p, raw, head);
    p[head] = '"';
    memcpy(p + head + 1, m->upstream_model, ul);
    p[head + 1 + ul] = '"';
    memcpy(p + head + ul + 2, end, tail);
    p[head + ul + 2 + tail] = '\0';
    out->body = p;
    out->body_len = head + ul + 2 + tail;
    return 0;
}

int provider_openai_body(arena_t *a, endpoint_t ep, json_t *body, const cfg_model_t *m, bool stream,
                         prov_call_t *out)
{
    json_object_set_new(body, "model", json_string(m->upstream_model));
    if (stream && (ep == EP_CHAT || ep == EP_COMPLETIONS)) {
        json_t *so = json_object_get(body, "stream_options");
        if (!json_is_object(so)) {
            so = json_object();
            json_object_set_new(body, "stream_options", so);
        }
        json_object_set_new(so, "include_usage", json_true());
    }
    return provider_body(a, body, out);
}

/* URL and headers, once the body is in out. */
static int openai_finish(arena_t *a, endpoint_t ep, const cfg_model_t *m, bool stream,
                         prov_call_t *out)
{
    out->url = arena_concat(a, m->provider->base_url, provider_openai_path(ep));

    const char **h = arena_calloc(a, 4 * sizeof *h);
    if (!h || !out->url) return -1;
    int i = 0;
    h[i++] = "Content-Type: application/json";
    h[i++] = stream ? "Accept: text/event-stream" : "Accept: application/json";
    if (m->provider->api_key)
        h[i++] = arena_concat(a, "Authorization: Bearer ", m->provider->api_key);
    h[i] = NULL;
    out->headers = h;
    return 0;
}

static int openai_build_raw(arena_t *a, endpoint_t ep, const char *raw, size_t len,
                            const cfg_model_t *m, bool stream, bool client_usage, prov_call_t *out)
{
    int rc = provider_openai_raw_body(a, ep, raw, len, m, stream, client_usage, out);
    return rc != 0 ? rc : openai_finish(a, ep, m, stream, out);
}

static int openai_build(arena_t *a, endpoint_t ep, json_t *body, const cfg_model_t *m, bool stream,
                        prov_call_t *out)
{
    if (provider_openai_body(a, ep, body, m, stream, out) != 0) return -1;
    return openai_finish(a, ep, m, stream, out);
}

static int openai_build_probe(arena_t *a, const cfg_model_t *m, prov_call_t *out)
{
    const cfg_provider_t *p = m->provider;
    const char **h = arena_calloc(a, 3 * sizeof *h);
    out->url = arena_printf(a, "%s%s", p->base_url, provider_openai_path(EP_MODELS));
    if (!h || !out->url) return -1;
    h[0] = "Accept: application/json";
    if (p->api_key) h[1] = arena_printf(a, "Authorization: Bearer %s", p->api_key);
    out->headers = h;
    return 0;
}

const prov_ops_t provider_openai = {
    .type = "openai",
    .build_raw = openai_build_raw,
    .build = openai_build,
    .build_probe = openai_build_probe,
};
