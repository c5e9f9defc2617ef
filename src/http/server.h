/*
 * http server — HTTP/1.1 on one libevent loop.
 *
 * Each worker thread owns one http_server_t with its own listening socket
 * (SO_REUSEPORT: the kernel spreads connections over the workers) and every
 * connection accepted on it. Nothing here is shared between threads.
 *
 * Lifecycle of a request (http_req_t):
 *   head and body read (caps: max_header_bytes -> 431, max_body_bytes -> 413)
 *   -> handler(req) is called once
 *   -> the handler answers, now or later, with http_respond() or with
 *      http_stream_start() / http_stream_write()* / http_stream_end().
 * After the final call the handler must not touch req again; the server frees
 * it (and its arena) from a deferred event, never inside the handler's call.
 * If the client goes away before that, the server calls req->on_abort (also
 * from its own callback) and frees req when on_abort returns: on_abort must
 * detach everything that points at req (cancel the upstream call).
 *
 * Writes go straight to the socket when possible; what the kernel does not
 * take is queued. http_req_out_pending() exposes the queue so a relay can
 * pause its source, and req->on_drain fires when the queue falls below the
 * low watermark.
 *
 * Errors detected by the server itself (bad framing, 413, 431, ...) are
 * answered through params.on_error so the API layer decides their shape.
 */
#ifndef SKULD_HTTP_SERVER_H
#define SKULD_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "http/parser.h"

struct event_base;
typedef struct http_server http_server_t;
typedef struct http_conn http_conn_t;
typedef struct http_req http_req_t;

typedef void (*http_req_fn)(http_req_t *req);

/* An observer of what a request sends to its client (req->tap; the response
 * cache records answers with it). Called from the http_* functions below,
 * before the bytes are queued: START (status, content type in data), DATA
 * (one http_stream_write), END (http_stream_end), BODY (http_respond:
 * status, content type in ctype, body in data), ABORT (the client went away,
 * just before on_abort). */
typedef enum {
    HTTP_TAP_START,
    HTTP_TAP_DATA,
    HTTP_TAP_END,
    HTTP_TAP_BODY,
    HTTP_TAP_ABORT
} http_tap_t;
typedef void (*http_tap_fn)(http_req_t *req, http_tap_t ev, int status, const char *ctype,
                            const char *data, size_t len);

struct http_req {
    arena_t *arena;
    http_conn_t *conn;
    http_server_t *server;
    http_slice_t method, path, query;
    http_header_t *headers; /* copies in arena */
    size_t n_headers;
    const char *body; /* NUL-terminated copy; body_len bytes */
    size_t body_len;
    uint64_t start_ns;

    void *udata;          /* handler state */
    http_req_fn on_abort; /* client went away before the final response */
    http_req_fn on_drain; /* queued output fell below the low watermark */
    http_tap_fn tap;      /* observer of the response (cache/), or NULL */
    void *tap_ud;

    /* response state, owned by the server */
    int status;
    bool started, finished, chunked;
    uint64_t bytes_out;
    buf_t resp_headers; /* extra "Name: value\r\n" lines */
};

typedef struct http_server_params {
    const char *listen; /* "HOST:PORT", "[V6]:PORT" or ":PORT" */
    size_t max_header_bytes;
    size_t max_body_bytes;
    uint64_t client_idle_timeout_ms;
    http_req_fn handler;
    /* Answer a server-detected error; req->path may be empty. Must respond. */
    void (*on_error)(http_req_t *req, int status, const char *message);
    void *ctx; /* handed back by http_server_ctx() */
} http_server_params_t;

void http_server_default_params(http_server_params_t *p);

http_server_t *http_server_create(struct event_base *base, const http_server_params_t *p);
/* Bind and listen; 0 or -1 (error logged). */
int http_server_listen(http_server_t *s);
/* Actual bound port (useful with port 0). */
int http_server_port(const http_server_t *s);
void *http_server_ctx(const http_server_t *s);
/* Stop accepting, close idle connections, finish the rest with Connection: close. */
void http_server_drain(http_server_t *s);
/* Abort every request still in flight (calls on_abort) and close everything. */
void http_server_abort_all(http_server_t *s);
size_t http_server_active_requests(const http_server_t *s);
size_t http_server_connections(const http_server_t *s);
/* Times any server's listener paused after accept() failed (EMFILE and the
 * like: the listener waits 50 ms doubling to 1 s, then tries again). */
uint64_t http_accept_pauses(void);
void http_server_destroy(http_server_t *s);

/* Request helpers */
http_slice_t http_req_header(const http_req_t *req, const char *name);
bool http_req_is_aborted(const http_req_t *req);

/* Response. Header names and values are copied; values must not contain CR/LF. */
void http_resp_header(http_req_t *req, const char *name, const char *value);
void http_resp_headerf(http_req_t *req, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void http_respond(http_req_t *req, int status, const char *content_type, const char *body,
                  size_t len);
void http_stream_start(http_req_t *req, int status, const char *content_type);
/* 0 on success; -1 when the client is gone (the abort follows from the loop). */
int http_stream_write(http_req_t *req, const char *data, size_t len);
void http_stream_end(http_req_t *req);
size_t http_req_out_pending(const http_req_t *req);

#define HTTP_OUT_HIGH_WATER (256 * 1024)
#define HTTP_OUT_LOW_WATER (64 * 1024)

#endif
