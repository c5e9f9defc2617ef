/*
 * upstream client — outbound HTTP(S) calls driven by the worker's libevent loop
 * (one upstream_t per worker, so each worker keeps its own keep-alive pool to
 * every provider). Two engines behind this one interface, picked per call:
 * the native HTTP/1.1 client (h1.c) for http:// URLs to a numeric address or
 * localhost, libcurl's multi-socket API (client.c) for everything else, or for
 * every call when the environment has SKULD_UPSTREAM=curl.
 *
 * The callbacks take only the caller's pointer, so an in-process provider
 * (provider/echo.c, later llama.cpp) can drive a relay through the same
 * interface. A call reports, on the loop thread and in this order: on_head once the
 * final status line and headers are in; on_data for each piece of body as it
 * arrives (return UP_PAUSE to stop the flow until upstream_call_resume: that
 * piece is then NOT consumed and comes again after the resume, so decide to
 * pause before taking any of it); and
 * on_done exactly once, after which the call is freed by this module.
 * upstream_call_cancel() may be called at any time before on_done, also from
 * inside on_head/on_data; after it no callback fires. The request body passed
 * in up_request_t is not copied and must stay valid until on_done or cancel.
 */
#ifndef SKULD_UPSTREAM_CLIENT_H
#define SKULD_UPSTREAM_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
typedef struct upstream upstream_t;
typedef struct up_call up_call_t;

typedef enum {
    UP_OK = 0,         /* a complete HTTP response was received (any status) */
    UP_CONNECT_FAILED, /* refused, unreachable, DNS, TLS handshake */
    UP_TIMEOUT,        /* connect, whole-call or idle timeout */
    UP_PROTOCOL_ERROR, /* connection dropped mid-response, bad framing */
    UP_INTERNAL,       /* out of memory, curl setup failure */
} up_result_t;

enum { UP_CONTINUE = 0, UP_PAUSE = 1 };

typedef struct up_callbacks {
    void (*on_head)(void *ud, int status);
    int (*on_data)(void *ud, const char *data, size_t len);
    void (*on_done)(void *ud, up_result_t result, const char *detail);
} up_callbacks_t;

typedef struct up_request {
    const char *url;
    const char *body; /* POST body; NULL for GET */
    size_t body_len;
    const char *const *headers; /* "Name: value" strings, NULL-terminated */
    uint64_t connect_timeout_ms;
    uint64_t total_timeout_ms; /* 0 = none (streams) */
    uint64_t idle_timeout_ms;  /* 0 = none; UP_TIMEOUT when no byte arrives for this long,
                                  first byte included (not counted while paused) */
} up_request_t;

typedef struct upstream_params {
    long max_idle_connections; /* keep-alive pool size per worker */
} upstream_params_t;

void upstream_default_params(upstream_params_t *p);
upstream_t *upstream_create(struct event_base *base, const upstream_params_t *p);
void upstream_destroy(upstream_t *u); /* cancels every call */
size_t upstream_active_calls(const upstream_t *u);
/* With no call running and more than peak_over calls at once since the last
 * reset, close every idle keep-alive connection (a fresh multi handle) and the
 * pooled easy handles: after a burst the pool would otherwise hold hundreds
 * of idle connections. Returns true when it did. */
bool upstream_shed_idle(upstream_t *u, size_t peak_over);

up_call_t *upstream_call_start(upstream_t *u, const up_request_t *req, const up_callbacks_t *cb,
                               void *ud);
void upstream_call_cancel(up_call_t *call);
void upstream_call_resume(up_call_t *call);

/* Response header value (last occurrence, case-insensitive), valid until on_done returns. */
const char *upstream_call_header(const up_call_t *call, const char *name);

/* One-time process init/cleanup for libcurl. */
int upstream_global_init(void);
void upstream_global_cleanup(void);

#endif
