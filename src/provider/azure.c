/*
 * provider azure — Azure OpenAI Service.
 *
 * Azure speaks OpenAI's wire format with three differences, and only those
 * are handled here: the URL names the deployment and the API version,
 *   {base_url}/openai/deployments/{deployment}/chat/completions?api-version=V
 * (also /completions and /embeddings; the deployment is the model's
 * upstream id, checked at load to be a plain path segment), the key goes in
 * an "api-key" header, or with auth: entra as "Authorization: Bearer" (an
 * Entra ID access token), and errors come as {"error":{"code","message"}}
 * with codes such as "401" or "DeploymentNotFound". The URL is built from
 * the config alone; nothing the client sends reaches it.
 *
 * The body is the openai provider's (provider_openai_*body): the model field
 * is kept, set to the deployment name (Azure ignores it; the URL selects the
 * model). translate_response passes a success body through and rewrites an
 * error into OpenAI's error object (message kept, type from the status, a
 * named code kept, a numeric one replaced by OpenAI's word for it).
 * translate_event passes stream events through except Azure's content
 * filter preamble, a chunk with "choices":[] and no usage (prompt filter
 * results) that OpenAI never sends and that carries an empty id and model.
 */
#include <ctype.h>
#include <string.h>

#include "provider/provider.h"
#include "provider/xlate.h"

struct prov_xlate {
    int unused; /* the state only marks the call as translated */
};

/* URL, headers and translator state, once the body is in out. */
static int azure_finish(arena_t *a, endpoint_t ep, const cfg_model_t *m, bool stream,
                        prov_call_t *out)
{
    const cfg_provider_t *p = m->provider;
    if (ep != EP_CHAT && ep != EP_COMPLETIONS && ep != EP_EMBEDDINGS) {
        out->error = "this endpoint is not served by azure deployments";
        return PROV_EBADREQ;
    }
    out->url = arena_printf(a, "%s/openai/deployments/%s%s?api-version=%s", p->base_url,
                            m->upstream_model, provider_openai_path(ep), p->api_version);
    const char **h = arena_calloc(a, 4 * sizeof *h);
    out->xlate = arena_calloc(a, sizeof *out->xlate);
    if (!h || !out->url || !out->xlate) return -1;
    int i = 0;
    h[i++] = "Content-Type: application/json";
    h[i++] = stream ? "Accept: text/event-stream" : "Accept: application/json";
    if (p->api_key)
        h[i++] = arena_concat(a, p->bearer ? "Authorization: Bearer " : "api-key: ", p->api_key);
    out->headers = h;
    return 0;
}

static int azure_build_raw(arena_t *a, endpoint_t ep, const char *raw, size_t len,
                           const cfg_model_t *m, bool stream, bool client_usage, prov_call_t *out)
{
    int rc = provider_openai_raw_body(a, ep, raw, len, m, stream, client_usage, out);
    return rc != 0 ? rc : azure_finish(a, ep, m, stream, out);
}

static int azure_build(arena_t *a, endpoint_t ep, json_t *body, const cfg_model_t *m, bool stream,
                       prov_call_t *out)
{
    if (ep != EP_CHAT && ep != EP_COMPLETIONS && ep != EP_EMBEDDINGS)
        return azure_finish(a, ep, m, stream, out); /* the refusal */
    if (provider_openai_body(a, ep, body, m, stream, out) != 0) return -1;
    return azure_finish(a, ep, m, stream, out);
}

/* The models list of the resource: GET {base_url}/openai/models?api-version=V. */
static int azure_build_probe(arena_t *a, const cfg_model_t *m, prov_call_t *out)
{
    const cfg_provider_t *p = m->provider;
    const char **h = arena_calloc(a, 3 * sizeof *h);
    out->url = arena_printf(a, "%s/openai/models?api-version=%s", p->base_url, p->api_version);
    if (!h || !out->url) return -1;
    h[0] = "Accept: application/json";
    if (p->api_key)
        h[1] = arena_concat(a, p->bearer ? "Authorization: Bearer " : "api-key: ", p->api_key);
    out->headers = h;
    return 0;
}

/* OpenAI's code for an Azure error whose code is only the status ("401"). */
static const char *azure_status_code(int status)
{
    switch (status) {
    case 401:
        return "invalid_api_key";
    case 403:
        return "permission_denied";
    case 404:
        return "not_found";
    case 429:
        return "rate_limit_exceeded";
    default:
        return "upstream_error";
    }
}

static bool azure_numeric(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return false;
    return true;
}

static int azure_translate_response(prov_xlate_t *x, int status, const char *body, size_t len,
                                    buf_t *out)
{
    (void)x;
    if (status < 400) return buf_append(out, body, len) == BUF_OK ? status : -1;
    json_t *o = json_loadb(body, len, 0, NULL);
    json_t *e = json_object_get(o, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *param = json_string_value(json_object_get(e, "param"));
    if (!code || azure_numeric(code)) code = azure_status_code(status);
    if (msg) {
        xl_error_json(out, status, type, code, param, msg);
    } else {
        char m[64];
        snprintf(m, sizeof m, "the upstream provider answered HTTP %d", status);
        xl_error_json(out, status, NULL, "upstream_error", NULL, m);
    }
    json_decref(o);
    return status;
}

/* Azure's prompt-filter preamble: "choices":[] and no usage object. */
static bool azure_preamble(const char *data, size_t len)
{
    if (!memmem(data, len, "\"prompt_filter_results\"", 23)) return false;
    json_t *o = xl_load_object(data, len);
    json_t *ch = json_object_get(o, "choices");
    bool drop = json_is_array(ch) && json_array_size(ch) == 0 &&
                !json_is_object(json_object_get(o, "usage"));
    json_decref(o);
    return drop;
}

static int azure_translate_event(prov_xlate_t *x, const char *event, const char *data, size_t len,
                                 prov_emit_fn emit, void *ud)
{
    (void)x;
    (void)event;
    if (azure_preamble(data, len)) return 0;
    return emit(ud, data, len);
}

const prov_ops_t provider_azure = {
    .type = "azure",
    .build_raw = azure_build_raw,
    .build = azure_build,
    .build_probe = azure_build_probe,
    .translate_response = azure_translate_response,
    .translate_event = azure_translate_event,
};
