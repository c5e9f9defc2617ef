/*
 * api — the HTTP front end of the pipeline: OpenAI-compatible endpoints,
 * Anthropic's Messages API, health, readiness, metrics and the admin API.
 * api_handle() is the http server's handler (its ctx is the worker's
 * pl_env_t); it runs on the worker loop that accepted the request and
 * never blocks.
 */
#ifndef SKULD_API_H
#define SKULD_API_H

#include "config/config.h"
#include "http/server.h"

void api_handle(http_req_t *req);
void api_on_error(http_req_t *req, int status, const char *message);

#endif
