/*
 * upstream internals shared by client.c (the interface), and the two
 * engines behind it, h1.c (native HTTP/1.1) and curl.c (libcurl), which
 * never call each other. Worker-loop thread only.
 *
 * A call is one up_call_t whichever engine runs it (c->engine says which);
 * the fields above "curl" are common: list links, callbacks, status, the
 * final response's header lines (for upstream_call_header), the
 * cancel/callback bookkeeping.
 */
#ifndef SKULD_UPSTREAM_INTERNAL_H
#define SKULD_UPSTREAM_INTERNAL_H

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "upstream/client.h"
#include "upstream/h1parse.h"

#define UP_MAX_RESPONSE_HEAD (64 * 1024)
#define UP_EASY_POOL_MAX 4 /* idle easy handles kept for reuse (each holds buffers) */

typedef struct h1_conn h1_conn_t;

/* Native call state (h1.c). */
typedef struct h1_state {
    h1_conn_t *conn;
    struct sockaddr_storage addr;
    socklen_t alen;
    buf_t req; /* request head, built once */
    const char *body;
    size_t body_len;
    size_t sent; /* bytes of head + body written on the current connection */
    h1p_t parser;
    struct event total_ev, connect_ev, idle_ev, kick_ev;
    uint64_t connect_ms, total_ms, idle_ms;
    bool reused;    /* the current connection came from the pool */
    bool retried;   /* already retried once on a fresh connection */
    bool got_bytes; /* some response byte arrived on the current connection */
    bool starting;  /* inside upstream_call_start: failures are reported later */
    bool fail_pending;
    up_result_t fail_res;
    char detail[160];
} h1_state_t;

struct up_call {
    upstream_t *up;
    up_call_t *prev, *next;
    up_callbacks_t cb;
    void *ud;
    int status;
    bool head_done;
    bool cancelled;
    bool paused;
    const struct up_engine *engine; /* the engine running it */
    bool deferred; /* curl: cancelled while curl was running: removed once it returns */
    int in_callback;
    buf_t resp_head; /* header lines of the final response, "Name: value\r\n" */
    /* curl */
    CURL *easy;
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
    struct event *idle_ev; /* fires when no byte arrived for idle_ms (not while paused) */
    uint64_t idle_ms;
    /* native */
    h1_state_t h1;
};

struct upstream {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    up_call_t *calls;
    size_t n_calls;
    CURL *pool[UP_EASY_POOL_MAX];
    int n_pool;
    long max_idle;     /* CURLMOPT_MAXCONNECTS; also the native idle pool's cap */
    size_t peak_calls; /* most calls at once since the pool was last reset */
    int in_action;     /* inside curl_multi_socket_action / curl_easy_pause */
    size_t n_deferred; /* calls cancelled meanwhile, waiting for up_sweep */
    /* native */
    bool force_curl;    /* SKULD_UPSTREAM=curl */
    h1_conn_t *h1_idle; /* idle keep-alive connections, most recent first */
    size_t h1_n_idle;
};

/* An engine: how one kind of call is run. init/fini (may be NULL) set up and
 * release its per-worker state; takes() says whether it runs a URL; cancel
 * and resume are called only on a call it started that is not cancelled
 * (resume: and paused); close_idle closes its pooled connections. */
typedef struct up_engine {
    const char *name;
    int (*init)(upstream_t *u);
    void (*fini)(upstream_t *u);
    bool (*takes)(const upstream_t *u, const char *url);
    up_call_t *(*start)(upstream_t *u, const up_request_t *req, const up_callbacks_t *cb, void *ud);
    void (*cancel)(up_call_t *c);
    void (*resume)(up_call_t *c);
    void (*close_idle)(upstream_t *u);
} up_engine_t;

extern const up_engine_t up_engine_h1;   /* h1.c */
extern const up_engine_t up_engine_curl; /* curl.c */

/* client.c: the upstream's list of calls */
void up_link(upstream_t *u, up_call_t *c);
void up_unlink(upstream_t *u, up_call_t *c);

#endif
