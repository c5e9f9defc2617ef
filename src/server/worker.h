/*
 * worker — one thread running one libevent loop that owns an SO_REUSEPORT
 * listener (http/server), a libcurl multi handle with its keep-alive pool
 * (upstream/client) and an access log buffer. A request lives and dies on
 * the worker that accepted it; workers share nothing mutable except the
 * metrics atomics and the config refcount.
 *
 * w->cfg is the snapshot new requests take; only the worker's own thread
 * reads or replaces it (worker_publish posts the replacement to that thread).
 */
#ifndef SKULD_WORKER_H
#define SKULD_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "http/server.h"
#include "obs/accesslog.h"
#include "upstream/client.h"

typedef struct gateway gateway_t;

typedef struct worker {
    int id;
    gateway_t *gw;
    pthread_t thread;
    struct event_base *base;
    http_server_t *http;
    upstream_t *upstream;
    accesslog_t *log;
    config_t *cfg; /* snapshot for new requests; touched only on this thread */
    struct event *ev_stop;
    struct event *ev_drain_tick;
    uint64_t drain_deadline_ns;
    bool draining;
    uint64_t rng[2];
    struct health *health; /* deployment probes; worker 0 only */
    struct event *ev_housekeep;
    uint64_t served, served_at_trim; /* requests handled; value at the last heap trim */
    size_t conns_at_trim;            /* open client connections at the last heap trim */
    unsigned idle_ticks;             /* housekeeping ticks in a row with nothing in flight */
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

/* A fresh 16-hex-digit id from the worker's generator (not for secrets). */
void worker_request_id(worker_t *w, char out[17]);

#endif
