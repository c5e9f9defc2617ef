/*
 * provider — one table of functions per provider type (DESIGN.md: "adding a
 * provider is adding one file").
 *
 * The API layer hands a provider the client's OpenAI-shaped request (a
 * jansson tree it may modify) and the deployment; build() turns it into one
 * upstream call (URL, headers, body), allocating from the request's arena.
 * HTTP providers are then called through upstream/client; local providers
 * (local_start != NULL) run in-process and report through the same
 * up_callbacks_t, so the relay has one code path for both; the same lifetime
 * rule holds: freed by the provider after on_done, or by local_cancel before.
 *
 * Translation of non-OpenAI wire shapes: build() translates the OpenAI
 * request into the provider's own and may hang a per-call translator state
 * (prov_call_t.xlate, allocated in the request arena) on the call. The relay
 * then hands every non-streamed body to translate_response() and every stream
 * event (an SSE event, or one NDJSON line when framing is PROV_FRAME_NDJSON)
 * to translate_event(), which emit OpenAI chat.completion(.chunk) JSON, an
 * OpenAI error object, or "[DONE]". Usage is normalised into the OpenAI
 * "usage" object (prompt_tokens includes cached input, whose count is
 * prompt_tokens_details.cached_tokens). NULL translators mean the upstream
 * already speaks OpenAI and bytes pass through untouched.
 */
#ifndef SKULD_PROVIDER_H
#define SKULD_PROVIDER_H

#include <jansson.h>
#include <stdbool.h>

#include "config/config.h"
#include "core/arena.h"
#include "core/buf.h"
#include "upstream/client.h"

struct event_base;

/* EP_COUNT_TOKENS: an OpenAI chat request (messages, tools) whose input
 * tokens are counted, answered {"input_tokens": N}; only providers with
 * counts_tokens build it (the call stage estimates for the others). */
typedef enum {
    EP_CHAT = 0,
    EP_COMPLETIONS,
    EP_EMBEDDINGS,
    EP_MODELS,
    EP_COUNT_TOKENS,
    EP__COUNT
} endpoint_t;

typedef struct prov_xlate prov_xlate_t; /* per-call translator state, defined by each provider */

typedef enum { PROV_FRAME_SSE = 0, PROV_FRAME_NDJSON } prov_framing_t;

typedef struct prov_call {
    const char *url;
    const char *const *headers; /* NULL-terminated "Name: value" */
    char *body;
    size_t body_len;
    prov_xlate_t *xlate;     /* for the translate hooks; NULL = pass-through */
    prov_framing_t framing;  /* how a streamed answer is framed */
    const char *error;       /* build() returned PROV_EBADREQ: why (a 400 for the client) */
    const char *error_code;  /* ... its code (NULL: unsupported_request) */
    const char *error_param; /* ... the parameter it names, or NULL */
} prov_call_t;

enum { PROV_EBADREQ = -2 }; /* build(): the request cannot be expressed for this provider */
/* build(): the provider cannot send now (vertex: no access token); out->error says why (a 503) */
enum { PROV_EUNAVAIL = -3 };

/* Receives one OpenAI stream payload (a chunk object, an error object or "[DONE]").
 * A non-zero return stops the translator, which returns it. */
typedef int (*prov_emit_fn)(void *ud, const char *data, size_t len);

typedef struct prov_local prov_local_t; /* a running in-process call */

typedef struct prov_ops {
    const char *type;
    /* EP_COUNT_TOKENS is served: by the upstream's counting endpoint (an
     * HTTP provider), or exactly in-process (local_start). */
    bool counts_tokens;
    /* Optional fast path: the upstream request from the client's raw OpenAI
     * body, without re-serialising it. Returns 1 when it does not apply (the
     * relay then calls build), 0 or -1 otherwise. */
    int (*build_raw)(arena_t *a, endpoint_t ep, const char *raw, size_t len, const cfg_model_t *m,
                     bool stream, bool client_usage, prov_call_t *out);
    int (*build)(arena_t *a, endpoint_t ep, json_t *body, const cfg_model_t *m, bool stream,
                 prov_call_t *out);
    prov_local_t *(*local_start)(struct event_base *base, endpoint_t ep, const prov_call_t *call,
                                 const up_callbacks_t *cb, void *ud);
    void (*local_cancel)(prov_local_t *h);
    void (*local_resume)(prov_local_t *h);
    /* Health probe ("models" method): a cheap authenticated GET such as the
     * models list. NULL for local providers, which are up while loaded. The
     * "chat" method needs no hook: it sends a one-token request through build. */
    int (*build_probe)(arena_t *a, const cfg_model_t *m, prov_call_t *out);
    /* Whole upstream body (any status) -> OpenAI chat.completion, or for an error status
     * an OpenAI error object. Returns the status the client gets, -1 if not understood. */
    int (*translate_response)(prov_xlate_t *x, int status, const char *body, size_t len,
                              buf_t *out);
    /* One stream event -> zero or more payloads for emit. 0, emit's non-zero value, or -1
     * when the event is malformed. */
    int (*translate_event)(prov_xlate_t *x, const char *event, const char *data, size_t len,
                           prov_emit_fn emit, void *ud);
} prov_ops_t;

/* NULL for an unknown type. */
const prov_ops_t *provider_ops(const char *type);

/* Serialise v (compact JSON) in one pass into the arena as out->body. 0 or -1. */
int provider_body(arena_t *a, const json_t *v, prov_call_t *out);
/* Append v as compact JSON to b in one pass. 0 or -1. */
int provider_dump(buf_t *b, const json_t *v);

/* Append the text of a message "content" to out: a string as it is, or the
 * "text" of each part of an array (OpenAI content parts, Anthropic text
 * blocks), each one after sep once out holds text (sep NULL: none). */
void provider_content_text(buf_t *out, const json_t *content, const char *sep);

/* The body for an upstream that speaks OpenAI (openai, azure): the client's
 * request with the public model name replaced by m->upstream_model and, on a
 * streamed chat/completion, stream_options.include_usage asked for. The raw
 * form works on the client's bytes and returns 1 when it does not apply (see
 * build_raw), the other re-serialises body. 0 or -1; URL and headers are the
 * caller's. */
int provider_openai_raw_body(arena_t *a, endpoint_t ep, const char *raw, size_t len,
                             const cfg_model_t *m, bool stream, bool client_usage,
                             prov_call_t *out);
int provider_openai_body(arena_t *a, endpoint_t ep, json_t *body, const cfg_model_t *m, bool stream,
                         prov_call_t *out);

/* Path suffix per endpoint, appended to an OpenAI-style base_url ("/chat/completions"). */
const char *provider_openai_path(endpoint_t ep);

extern const prov_ops_t provider_openai;
extern const prov_ops_t provider_echo;
extern const prov_ops_t provider_anthropic;
extern const prov_ops_t provider_gemini;
extern const prov_ops_t provider_ollama;
extern const prov_ops_t provider_llamacpp;
extern const prov_ops_t provider_azure;
extern const prov_ops_t provider_vertex;

#endif
