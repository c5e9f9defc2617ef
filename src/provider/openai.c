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

static int openai_build(arena_t *a, endpoint_t ep, json_t *body, const cfg_model_t *m, bool stream,
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
    if (provider_body(a, body, out) != 0) return -1;
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
    .build = openai_build,
    .build_probe = openai_build_probe,
};
