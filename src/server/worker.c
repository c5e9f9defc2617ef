#include "server/worker.h"

#include <event2/event.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <unistd.h>

#include "api/api.h"
#include "core/log.h"
#include "core/loopcall.h"
#include "call/health.h"
#include "route/overlay.h"

static void worker_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    worker_t *w = arg;
    bool idle =
        http_server_active_requests(w->http) == 0 && upstream_active_calls(w->env.upstream) == 0;
    bool late = time_mono_ns() >= w->drain_deadline_ns;
    if (!idle && late) {
        log_warn("worker %d: drain timeout, aborting %zu request(s)", w->env.id,
                 http_server_active_requests(w->http));
        http_server_abort_all(w->http);
        idle = true;
    }
    /* Done when nothing is in flight and the last answers are flushed. */
    if (idle && (http_server_connections(w->http) == 0 || late)) event_base_loopbreak(w->env.base);
}

/* Once a second: after a burst, once nothing is in flight, give freed heap
 * pages back to the kernel (glibc keeps them in per-thread arenas otherwise,
 * so RSS would stay at its peak forever). Costs nothing while busy or idle. */
/* After a burst (more than this many upstream calls at once), a worker idle
 * for WORKER_SHED_IDLE_S closes its idle upstream connections; steady traffic
 * at that concurrency is never idle that long and keeps its pool. */
#define WORKER_SHED_PEAK 64
#define WORKER_SHED_IDLE_S 2

/*
 * glibc keeps up to 7 freed chunks per size class (16..1032 bytes) in a
 * per-thread cache (tcache). Those chunks count as in use, so malloc_trim()
 * cannot release the pages they sit on; after a burst they are scattered over
 * the heap the burst grew and pin about 1 MiB per worker thread (measured:
 * RSS after 1,000 streams +10% with, -1% without a tcache). glibc has no call
 * to flush it, so: take WORKER_TCACHE_DEPTH chunks of every class (the
 * tcache's come first, then fresh ones from the arena) and free them newest
 * first -- the fresh chunks refill the tcache, the old ones overflow into the
 * arena's bins, where malloc_trim() can release their pages. Must run on the
 * thread whose cache it flushes. Harmless with other allocators.
 */
#define WORKER_TCACHE_CLASSES 64
#define WORKER_TCACHE_DEPTH 16 /* more than glibc's default tcache_count (7) */

static void worker_flush_tcache(void)
{
    void *held[WORKER_TCACHE_CLASSES * WORKER_TCACHE_DEPTH];
    size_t n = 0;
    for (size_t cls = 0; cls < WORKER_TCACHE_CLASSES; cls++)
        for (int i = 0; i < WORKER_TCACHE_DEPTH; i++) {
            void *p = malloc(cls * 16 + 8); /* usable size of chunk class cls */
            if (p) held[n++] = p;
        }
    /* Newest first: within each class the fresh chunks go back first. */
    while (n) free(held[--n]);
}

static void worker_housekeep(evutil_socket_t fd, short what, void *arg)
{
    worker_t *w = arg;
    if (upstream_active_calls(w->env.upstream) || http_server_active_requests(w->http))
        w->idle_ticks = 0;
    else if (++w->idle_ticks >= WORKER_SHED_IDLE_S &&
             upstream_shed_idle(w->env.upstream, WORKER_SHED_PEAK))
        w->conns_at_trim = SIZE_MAX; /* trim below: the pool's memory is free now */
    size_t conns = http_server_connections(w->http);
    /* Trim after new requests, or when connections closed since the last trim
     * (a trim that ran while a burst's connections were still open freed little). */
    bool changed = w->env.served != w->served_at_trim || conns < w->conns_at_trim;
    if (!changed || http_server_active_requests(w->http)) return;
    w->served_at_trim = w->env.served;
    w->conns_at_trim = conns;
    worker_flush_tcache();
    malloc_trim(0);
}

static void worker_on_stop(evutil_socket_t fd, short what, void *arg)
{
    worker_t *w = arg;
    if (w->env.draining) return;
    w->env.draining = true;
    event_del(w->ev_housekeep);
    health_stop(w->health); /* probes must not hold the drain open */
    w->health = NULL;
    w->drain_deadline_ns = time_mono_ns() + w->env.cfg->server.drain_timeout_ms * 1000000ull;
    http_server_drain(w->http);
    struct timeval tv = {0, 20000};
    event_add(w->ev_drain_tick, &tv);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    event_base_dispatch(w->env.base);
    accesslog_flush(w->env.log);
    route_overlay_thread_release();
    return NULL;
}

/* libevent gives each fd number a small slot on first use and keeps it for
 * the life of the loop. Made lazily during a burst, thousands of them end up
 * scattered among short-lived buffers and pin heap pages, so RSS cannot fall
 * back after the burst (measured: +50% instead of +15% after 1,000 streams).
 * Creating the slots for the first WORKER_FD_SLOTS fd numbers at start keeps
 * them together (about 64 bytes each). An fd that is not open fails the add,
 * which is expected: the slot exists anyway. */
#define WORKER_FD_SLOTS 4096

/* The prewarm's adds fail, as expected, for every fd number that is not
 * open: worker_libevent_log keeps those out of the log. */
static __thread bool worker__quiet;

static void worker__libevent_log(int severity, const char *msg)
{
    if (worker__quiet || severity < EVENT_LOG_WARN) return;
    log_warn("libevent: %s", msg);
}

void worker_libevent_log(void)
{
    event_set_log_callback(worker__libevent_log);
}

static void worker_prewarm(struct event_base *base, int upto)
{
    worker__quiet = true;
    for (int fd = 0; fd < upto; fd++) {
        struct event *ev = event_new(base, fd, EV_READ, NULL, NULL);
        if (!ev) break;
        if (event_add(ev, NULL) == 0) event_del(ev);
        event_free(ev);
    }
    worker__quiet = false;
}

int worker_init(worker_t *w, gateway_t *gw, int id, const char *listen, config_t *cfg)
{
    w->env.id = id;
    w->gw = gw;
    w->env.cfg = config_ref(cfg);
    if (getrandom(w->env.rng, sizeof w->env.rng, 0) != sizeof w->env.rng) {
        w->env.rng[0] = (uint64_t)time_mono_ns() ^ (uint64_t)id;
        w->env.rng[1] = 0x9e3779b97f4a7c15ull;
    }
    w->env.rng[0] |= 1;
    w->env.base = event_base_new();
    if (!w->env.base) return -1;
    worker_prewarm(w->env.base, WORKER_FD_SLOTS);
    const cfg_server_t *sc = &cfg->server;
    http_server_params_t hp;
    http_server_default_params(&hp);
    hp.listen = listen;
    hp.max_header_bytes = sc->max_header_bytes;
    hp.max_body_bytes = sc->max_body_bytes;
    hp.client_idle_timeout_ms = sc->client_idle_timeout_ms;
    hp.handler = api_handle;
    hp.on_error = api_on_error;
    hp.ctx = &w->env;
    w->http = http_server_create(w->env.base, &hp);
    upstream_params_t up;
    upstream_default_params(&up);
    w->env.upstream = upstream_create(w->env.base, &up);
    w->env.log = accesslog_create(w->env.base, STDOUT_FILENO, sc->access_log);
    w->ev_stop = event_new(w->env.base, -1, 0, worker_on_stop, w);
    w->ev_drain_tick = event_new(w->env.base, -1, EV_PERSIST, worker_drain_tick, w);
    w->ev_housekeep = event_new(w->env.base, -1, EV_PERSIST, worker_housekeep, w);
    if (!w->http || !w->env.upstream || !w->env.log || !w->ev_stop || !w->ev_drain_tick ||
        !w->ev_housekeep)
        return -1;
    struct timeval second = {1, 0};
    event_add(w->ev_housekeep, &second);
    return http_server_listen(w->http);
}

int worker_start(worker_t *w)
{
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

void worker_stop(worker_t *w)
{
    event_active(w->ev_stop, EV_TIMEOUT, 0);
}

void worker_join(worker_t *w)
{
    pthread_join(w->thread, NULL);
}

void worker_cleanup(worker_t *w)
{
    health_stop(w->health);
    if (w->http) http_server_destroy(w->http);
    if (w->env.upstream) upstream_destroy(w->env.upstream);
    if (w->env.log) accesslog_destroy(w->env.log);
    if (w->ev_stop) event_free(w->ev_stop);
    if (w->ev_drain_tick) event_free(w->ev_drain_tick);
    if (w->ev_housekeep) event_free(w->ev_housekeep);
    if (w->env.base) event_base_free(w->env.base);
    if (w->env.cfg) config_unref(w->env.cfg);
}

typedef struct worker_swap {
    worker_t *w;
    config_t *cfg;
    void (*done)(void *);
    void *arg;
} worker_swap_t;

static void worker__swap(void *p)
{
    worker_swap_t *m = p;
    config_unref(m->w->env.cfg);
    m->w->env.cfg = m->cfg;
    if (m->done) m->done(m->arg);
    free(m);
}

int worker_publish(worker_t *w, config_t *cfg, void (*done)(void *arg), void *arg)
{
    worker_swap_t *m = malloc(sizeof *m);
    if (!m) return -1;
    *m = (worker_swap_t){w, cfg, done, arg};
    if (loopcall(w->env.base, worker__swap, m) != 0) {
        free(m);
        return -1;
    }
    return 0;
}
