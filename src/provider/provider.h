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
 * Translation of non-OpenAI wire shapes (responses and stream events) is
 * added to this table by the provider-adapter work; a NULL translator means
 * the upstream already speaks OpenAI and bytes pass through untouched.
 */
#ifndef SKULD_PROVIDER_H
#define SKULD_PROVIDER_H

#include <jansson.h>
#include <stdbool.h>

#include "config/config.h"
#include "core/arena.h"
#include "upstream/client.h"

struct event_base;

typedef enum { EP_CHAT = 0, EP_COMPLETIONS, EP_EMBEDDINGS, EP_MODELS, EP__COUNT } endpoint_t;

typedef struct prov_call {
    const char *url;
    const char *const *headers; /* NULL-terminated "Name: value" */
    char *body;
    size_t body_len;
} prov_call_t;

typedef struct prov_local prov_local_t; /* a running in-process call */

typedef struct prov_ops {
    const char *type;
    int (*build)(arena_t *a, endpoint_t ep, json_t *body, const cfg_model_t *m, bool stream,
                 prov_call_t *out);
    prov_local_t *(*local_start)(struct event_base *base, endpoint_t ep, const prov_call_t *call,
                                 const up_callbacks_t *cb, void *ud);
    void (*local_cancel)(prov_local_t *h);
    void (*local_resume)(prov_local_t *h);
    int (*build_probe)(arena_t *a, const cfg_provider_t *p, prov_call_t *out);
} prov_ops_t;

/* NULL for an unknown type. */
const prov_ops_t *provider_ops(const char *type);

/* Path suffix per endpoint, appended to an OpenAI-style base_url ("/chat/completions"). */
const char *provider_openai_path(endpoint_t ep);

extern const prov_ops_t provider_openai;
extern const prov_ops_t provider_echo;

#endif
