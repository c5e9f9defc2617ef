/*
 * worker — the process layout: N worker threads, each running one libevent
 * loop that owns an SO_REUSEPORT listener (http/server), a libcurl multi
 * handle with its keep-alive pool (upstream/client) and an access log buffer.
 * A request lives and dies on the worker that accepted it; workers share
 * nothing mutable except the metrics atomics and the config refcount.
 *
 * The main thread only starts workers and waits for signals. SIGTERM/SIGINT:
 * every worker stops accepting, finishes what is in flight (streams too) up
 * to server.drain_timeout, then aborts the rest; the process exits 0.
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
} worker_t;

/* Run the gateway until SIGTERM/SIGINT has drained it. Returns the exit code. */
int gateway_run(config_t *cfg, const char *listen_override);

/* A fresh 16-hex-digit id from the worker's generator (not for secrets). */
void worker_request_id(worker_t *w, char out[17]);

#endif
