/*
 * worker — one thread running one libevent loop that owns an SO_REUSEPORT
 * listener (http/server), a libcurl multi handle with its keep-alive pool
 * (upstream/client) and an access log buffer. A request lives and dies on
 * the worker that accepted it; workers share nothing mutable except the
 * metrics atomics and the config refcount.
 *
 * w->env.cfg is the snapshot new requests take; only the worker's own thread
 * reads or replaces it (worker_publish posts the replacement to that thread).
 * w->env is what a request and its stages see of the worker (pipeline/request.h);
 * it is the http server's ctx, so a handler finds it with http_server_ctx().
 */
#ifndef SKULD_WORKER_H
#define SKULD_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "http/server.h"
#include "obs/accesslog.h"
#include "pipeline/request.h"
#include "upstream/client.h"

typedef struct gateway gateway_t;

typedef struct worker {
    pl_env_t env; /* loop, id, upstream pool, log, snapshot (cfg: this thread only) */
    gateway_t *gw;
    pthread_t thread;
    http_server_t *http;
    struct event *ev_stop;
    struct event *ev_drain_tick;
    uint64_t drain_deadline_ns;
    struct health *health; /* deployment probes; worker 0 only */
    struct event *ev_housekeep;
    uint64_t served_at_trim; /* env.served at the last heap trim */
    size_t conns_at_trim;    /* open client connections at the last heap trim */
    unsigned idle_ticks;     /* housekeeping ticks in a row with nothing in flight */
} worker_t;

/* Once at start, before any loop: libevent's own messages go to our log as
 * warnings (except the workers' expected prewarm failures). */
void worker_libevent_log(void);
/* Create the loop, listener, upstream pool and log; 0 or -1 (logged). */
int worker_init(worker_t *w, gateway_t *gw, int id, const char *listen, config_t *cfg);
int worker_start(worker_t *w);
/* From any thread: stop accepting and drain (server.drain_timeout). */
void worker_stop(worker_t *w);
void worker_join(worker_t *w);
void worker_cleanup(worker_t *w);

/* From any thread: make cfg (a reference the worker takes over) the snapshot
 * for new requests; done(arg) runs on the worker's thread after the swap. */
int worker_publish(worker_t *w, config_t *cfg, void (*done)(void *arg), void *arg);

#endif
