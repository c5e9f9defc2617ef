/*
 * api internals shared by the api/ files: the HTTP front end of the
 * pipeline (pipeline/pipeline.h).
 *
 * api_ctx_t is the front end's per-request state, in the request's arena
 * (req->udata and r->fe_ud). Every request, whether it runs the stages
 * (/v1/...) or is answered by the api itself (health, metrics, admin), has
 * a pl_req_t, so every answer goes through the driver's one path and is
 * accounted exactly once (pl_account, just before its last bytes are
 * queued). The front end table (api.c) is the only code that turns a result
 * into bytes: OpenAI JSON as it is, or Anthropic's shape for /v1/messages
 * (anthropic_shape.h), errors in the API's own error object.
 */
#ifndef SKULD_API_INTERNAL_H
#define SKULD_API_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>

#include "api/anthropic_shape.h"
#include "config/config.h"
#include "http/server.h"
#include "pipeline/pipeline.h"

typedef struct api_ctx {
    http_req_t *req;
    pl_req_t *r;
    pl_env_t *env;
    config_t *cfg;             /* r->cfg: the snapshot the request started with */
    struct ctl_ticket *ticket; /* an admin change waiting for the control plane */
    void *pol_admin;           /* api/admin_keys.c: a key change waiting for the store */
    /* the front end's own state */
    ashape_stream_t *aout; /* an Anthropic-shaped stream, or NULL */
    buf_t frame;           /* one stream frame being encoded */
    pl_tap_fn tap;         /* the pipeline's observer of the output (the cache) */
    void *tap_ud;
} api_ctx_t;

/* Answer c now (through the driver): bytes as they are / an error object
 * in the client's shape (message formatted; type NULL: from status). */
void api_send(api_ctx_t *c, int status, const char *ctype, const char *body, size_t len);
void api_send_error(api_ctx_t *c, int status, const char *type, const char *code, const char *param,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* The parse stage of /v1/... (api/openai.c): the endpoint by path and method,
 * the body decoded into r (OpenAI's shape, or Anthropic's through
 * api/messages.c) and checked; GET /v1/models answered. A pl_rc_t. */
int api_v1_parse(pl_req_t *r);
/* POST /v1/messages: the Anthropic body -> an OpenAI chat request in r->body. */
pl_rc_t api_messages_parse(pl_req_t *r);
/* POST /v1/messages/count_tokens: the body -> the OpenAI chat request whose input is counted. */
pl_rc_t api_count_tokens_parse(pl_req_t *r);

/* Endpoints answered by the api itself */
void api_admin(api_ctx_t *c);
/* /admin/keys...: true when the path was one of its endpoints (answered). */
bool api_admin_keys(api_ctx_t *c);
/* POST /admin/route/explain (api/admin.c) */
void api_admin_explain(api_ctx_t *c);

#endif
