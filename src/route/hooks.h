/*
 * route hooks — where model selection meets the request path (api/).
 *
 * route_api_resolve() turns the client's "model" into c->cands (explicit
 * model -> its deployments, balanced; route -> the router's ranking plus the
 * route's fallbacks) and sets c->model = c->cands[0]; on failure it answers
 * the client itself (404 unknown name, 400 bad constraint header, 422 nothing
 * eligible, with the reason per candidate). The other hooks feed the live
 * stats: first byte from the relay, completion from api_account(). All run
 * on the request's worker thread.
 */
#ifndef SKULD_ROUTE_HOOKS_H
#define SKULD_ROUTE_HOOKS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "core/buf.h"

struct api_ctx;

/* 0: c->cands/n_cands/model set. -1: an error was sent (body not freed). */
int route_api_resolve(struct api_ctx *c, int endpoint, const json_t *body, const char *name,
                      size_t name_len);
/* Would route_api_resolve read the body (a route, or x-skuld-explain)? */
bool route_api_needs_body(struct api_ctx *c, const char *name, size_t name_len);
void route_api_first_byte(struct api_ctx *c);
void route_api_account(struct api_ctx *c, int status);
/* POST /admin/route/explain (already authenticated). */
void route_api_explain(struct api_ctx *c);
/* GET /v1/models: the routes as list entries ({...} each, comma-separated;
 * a leading comma unless first). */
void route_api_models(const config_t *cfg, buf_t *o, bool first);
/* skuld route explain -c FILE --model NAME --prompt TEXT [...]; exit code. */
int route_cli(int argc, char **argv);

#endif
