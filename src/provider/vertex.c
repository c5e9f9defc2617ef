/*
 * provider vertex — Gemini and Claude on Google Cloud Vertex AI, with a
 * service-account key (config/vertex.c) whose OAuth2 access token
 * upstream/gtoken.c keeps fresh; every call carries it as
 * "Authorization: Bearer". A provider serves one publisher:
 *
 *   google:    POST {base_url}/v1/projects/{project}/locations/{location}/
 *              publishers/google/models/{model}:generateContent
 *              (:streamGenerateContent?alt=sse for a stream); the body and the
 *              answer are exactly the gemini provider's (its build and
 *              translators are called, not copied).
 *   anthropic: POST .../publishers/anthropic/models/{model}:rawPredict
 *              (:streamRawPredict for a stream); the anthropic provider's
 *              Messages body without "model" (the URL names it) and with
 *              "anthropic_version": "vertex-2023-10-16" (Vertex's version
 *              goes in the body, so the anthropic-version header is dropped);
 *              its translators read the answer.
 *
 * Only chat is served (token counting is estimated by the gateway). With no
 * valid token cached (the token endpoint failed or has not answered yet) a
 * call is not sent: build returns PROV_EUNAVAIL and the client gets a 503
 * saying why. The URL is built from the config alone.
 *
 * The translator state wraps the inner provider's: which provider, and its state.
 */
#include <string.h>

#include "provider/provider.h"
#include "upstream/gtoken.h"

struct prov_xlate {
    const prov_ops_t *inner;
    prov_xlate_t *x;
};

#define VERTEX_ANTHROPIC_VERSION "vertex-2023-10-16"

/* The anthropic body as Vertex wants it: no model, anthropic_version set. */
static int vertex_anthropic_body(arena_t *a, prov_call_t *out)
{
    json_t *o = json_loadb(out->body, out->body_len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return -1;
    }
    json_object_del(o, "model");
    json_object_set_new(o, "anthropic_version", json_string(VERTEX_ANTHROPIC_VERSION));
    int rc = provider_body(a, o, out);
    json_decref(o);
    return rc;
}

/* The inner headers without anthropic-version, plus the bearer token. */
static const char **vertex_headers(arena_t *a, const char *const *in, const char *bearer)
{
    size_t n = 0;
    while (in && in[n]) n++;
    const char **h = arena_calloc(a, (n + 2) * sizeof *h);
    if (!h) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(in[i], "anthropic-version:", 18) != 0) h[k++] = in[i];
    h[k] = bearer;
    return h;
}

static int vertex_build(arena_t *a, endpoint_t ep, json_t *body, const cfg_model_t *m, bool stream,
                        prov_call_t *out)
{
    const cfg_provider_t *p = m->provider;
    bool anth = p->publisher && !strcmp(p->publisher, "anthropic");
    if (ep != EP_CHAT) {
        out->error = "only chat completions are served by vertex deployments";
        return PROV_EBADREQ;
    }
    const char *why = NULL;
    const char *bearer = gtok_bearer(a, p, &why);
    if (!bearer) {
        out->error = why ? why : "no Vertex AI access token";
        return PROV_EUNAVAIL;
    }
    const prov_ops_t *inner = anth ? &provider_anthropic : &provider_gemini;
    int rc = inner->build(a, ep, body, m, stream, out);
    if (rc != 0) return rc;
    if (anth && vertex_anthropic_body(a, out) != 0) return -1;
    const char *method = anth ? (stream ? "streamRawPredict" : "rawPredict")
                              : (stream ? "streamGenerateContent?alt=sse" : "generateContent");
    out->url = arena_printf(a, "%s/v1/projects/%s/locations/%s/publishers/%s/models/%s:%s",
                            p->base_url, p->project, p->location, anth ? "anthropic" : "google",
                            m->upstream_model, method);
    out->headers = vertex_headers(a, out->headers, bearer);
    prov_xlate_t *x = arena_calloc(a, sizeof *x);
    if (!out->url || !out->headers || !x) return -1;
    x->inner = inner;
    x->x = out->xlate;
    out->xlate = x;
    return 0;
}

static int vertex_response(prov_xlate_t *x, int status, const char *body, size_t len, buf_t *out)
{
    return x->inner->translate_response(x->x, status, body, len, out);
}

static int vertex_event(prov_xlate_t *x, const char *event, const char *data, size_t len,
                        prov_emit_fn emit, void *ud)
{
    return x->inner->translate_event(x->x, event, data, len, emit, ud);
}

const prov_ops_t provider_vertex = {
    .type = "vertex",
    .build = vertex_build,
    .translate_response = vertex_response,
    .translate_event = vertex_event,
};
