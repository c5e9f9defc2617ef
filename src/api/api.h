/*
 * api — the HTTP surface: OpenAI-compatible endpoints, health, readiness and
 * metrics. api_handle() is the http server's handler; it runs on the worker
 * loop that accepted the request and never blocks.
 */
#ifndef SKULD_API_H
#define SKULD_API_H

#include "config/config.h"
#include "http/server.h"

/* Once per snapshot, before it serves: attach each deployment's metrics series. */
void api_init(config_t *cfg);

void api_handle(http_req_t *req);
void api_on_error(http_req_t *req, int status, const char *message);

#endif
