/*
 * api internals shared by the api/ files.
 *
 * api_ctx_t is the per-request state every endpoint uses; it lives in the
 * request's arena. It holds a reference to the config snapshot the request
 * started with, and its accounting (metrics + access log line) happens
 * exactly once, in api_account(), just before the final response is queued
 * or when the client goes away.
 */
#ifndef SKULD_API_INTERNAL_H
#define SKULD_API_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>

#include "config/config.h"
#include "http/server.h"
#include "obs/metrics.h"
#include "provider/provider.h"
#include "server/worker.h"

enum { API_SHAPE_OPENAI = 0, API_SHAPE_ANTHROPIC };

typedef struct api_ctx {
    http_req_t *req;
    worker_t *w;
    config_t *cfg;
    char request_id[130];
    const cfg_model_t *model; /* once resolved */
    metrics_series_t *ms;     /* series counted in in-flight, or NULL */
    bool stream;
    long prompt_tokens, completion_tokens; /* -1 unknown */
    long cached_tokens;                    /* of prompt_tokens, served from a prompt cache */
    int shape;                             /* API_SHAPE_*: the client's wire shape */
    const char *error;                     /* reason for the access log */
    bool accounted;
    struct relay *relay;       /* the upstream call in progress, if any */
    struct ctl_ticket *ticket; /* an admin change waiting for the control plane */
    /* model selection (route/hooks.c) and resilience (route/resil.h) */
    const cfg_model_t **cands; /* ordered deployments to try: cands[0] first */
    size_t n_cands;
    struct route_track *route_track; /* live-stats bookkeeping for this request, or NULL */
    /* resilience (route/resil.h): attempts taken for x-skuld-attempts */
    int attempts;
    const cfg_resilience_t *resil; /* the route's settings, or NULL: cands[0]'s */
    /* ---- keys, auth, limits, budgets (issue 8, policy/policy.h): the
     * principal, the saved api_relay_start arguments while an admission is
     * pending, the reservations to settle in api_account. NULL = none. */
    struct pol_req *pol;
    void *pol_admin; /* api/admin_keys.c: a key change waiting for the store */
    /* ---- fast path (api/openai.c): set when the body was only scanned
     * (core/jscan.h), not parsed; the relay then has body == NULL and parses
     * req->body lazily if an attempt needs the tree. */
    const struct jscan *fast;
    /* ---- response cache (cache/cache.h): "hit", "miss" or "bypass" once the
     * cache looked at the request (the x-skuld-cache header), else NULL */
    const char *cache_status;
} api_ctx_t;

api_ctx_t *api_ctx_new(http_req_t *req);
/* Start counting this request against a model's series (in-flight gauge). */
void api_ctx_set_model(api_ctx_t *c, const cfg_model_t *m);
/* Metrics and access log, once. status is what the client got (499 if it left). */
void api_account(api_ctx_t *c, int status);

void api_send(api_ctx_t *c, int status, const char *ctype, const char *body, size_t len);
/* OpenAI error object; message is formatted. type NULL = derived from status. */
void api_send_error(api_ctx_t *c, int status, const char *type, const char *code, const char *param,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Endpoints */
void api_admin(api_ctx_t *c);
/* /admin/keys...: true when the path was one of its endpoints (answered). */
bool api_admin_keys(api_ctx_t *c);
void api_openai_models(api_ctx_t *c);
void api_openai_inference(api_ctx_t *c, endpoint_t ep);
/* From model resolution on, for a parsed OpenAI-shaped body (takes ownership). */
void api_openai_dispatch(api_ctx_t *c, endpoint_t ep, json_t *body);
/* POST /v1/messages: Anthropic's shape in and out, any deployment behind (api/messages.c). */
void api_messages(api_ctx_t *c);
/* Relay one call to the resolved deployment; takes ownership of body. */
void api_relay_start(api_ctx_t *c, endpoint_t ep, json_t *body, bool stream, bool client_usage);

#endif
