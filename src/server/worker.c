#include "server/worker.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api/api.h"
#include "core/log.h"
#include "obs/metrics.h"

struct gateway {
    config_t *cfg;
    worker_t *workers;
    int n;
    char listen[300];
};

void worker_request_id(worker_t *w, char out[17])
{
    /* xorshift128+ */
    uint64_t s1 = w->rng[0];
    const uint64_t s0 = w->rng[1];
    w->rng[0] = s0;
    s1 ^= s1 << 23;
    w->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    snprintf(out, 17, "%016llx", (unsigned long long)(w->rng[1] + s0));
}

static void worker_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    worker_t *w = arg;
    bool idle =
        http_server_active_requests(w->http) == 0 && upstream_active_calls(w->upstream) == 0;
    if (!idle && time_mono_ns() >= w->drain_deadline_ns) {
        log_warn("worker %d: drain timeout, aborting %zu request(s)", w->id,
                 http_server_active_requests(w->http));
        http_server_abort_all(w->http);
        idle = true;
    }
    if (idle && http_server_connections(w->http) == 0)
        event_base_loopbreak(w->base);
    else if (idle && time_mono_ns() >= w->drain_deadline_ns)
        event_base_loopbreak(w->base);
}

static void worker_on_stop(evutil_socket_t fd, short what, void *arg)
{
    worker_t *w = arg;
    if (w->draining) return;
    w->draining = true;
    w->drain_deadline_ns = time_mono_ns() + w->cfg->server.drain_timeout_ms * 1000000ull;
    http_server_drain(w->http);
    struct timeval tv = {0, 20000};
    event_add(w->ev_drain_tick, &tv);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    event_base_dispatch(w->base);
    accesslog_flush(w->log);
    return NULL;
}

static int worker_init(worker_t *w, gateway_t *gw, int id, const char *listen)
{
    w->id = id;
    w->gw = gw;
    w->cfg = config_ref(gw->cfg);
    if (getrandom(w->rng, sizeof w->rng, 0) != sizeof w->rng) {
        w->rng[0] = (uint64_t)time_mono_ns() ^ (uint64_t)id;
        w->rng[1] = 0x9e3779b97f4a7c15ull;
    }
    w->rng[0] |= 1;
    w->base = event_base_new();
    if (!w->base) return -1;
    const cfg_server_t *sc = &gw->cfg->server;
    http_server_params_t hp;
    http_server_default_params(&hp);
    hp.listen = listen;
    hp.max_header_bytes = sc->max_header_bytes;
    hp.max_body_bytes = sc->max_body_bytes;
    hp.client_idle_timeout_ms = sc->client_idle_timeout_ms;
    hp.handler = api_handle;
    hp.on_error = api_on_error;
    hp.ctx = w;
    w->http = http_server_create(w->base, &hp);
    upstream_params_t up;
    upstream_default_params(&up);
    w->upstream = upstream_create(w->base, &up);
    w->log = accesslog_create(w->base, STDOUT_FILENO, sc->access_log);
    w->ev_stop = event_new(w->base, -1, 0, worker_on_stop, w);
    w->ev_drain_tick = event_new(w->base, -1, EV_PERSIST, worker_drain_tick, w);
    if (!w->http || !w->upstream || !w->log || !w->ev_stop || !w->ev_drain_tick) return -1;
    return http_server_listen(w->http);
}

static void worker_cleanup(worker_t *w)
{
    if (w->http) http_server_destroy(w->http);
    if (w->upstream) upstream_destroy(w->upstream);
    if (w->log) accesslog_destroy(w->log);
    if (w->ev_stop) event_free(w->ev_stop);
    if (w->ev_drain_tick) event_free(w->ev_drain_tick);
    if (w->base) event_base_free(w->base);
    if (w->cfg) config_unref(w->cfg);
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int gateway_run(config_t *cfg, const char *listen_override)
{
    gateway_t gw = {.cfg = cfg};
    int rc = 1;
    raise_fd_limit();
    if (evthread_use_pthreads() != 0 || upstream_global_init() != 0) {
        log_error("cannot initialise libevent threads or libcurl");
        return 1;
    }
    /* Signals are taken by the main thread with sigwait; workers never see them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    api_init(cfg);
    snprintf(gw.listen, sizeof gw.listen, "%s",
             listen_override ? listen_override : cfg->server.listen);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    gw.n = cfg->server.workers > 0 ? cfg->server.workers : (cores > 0 ? (int)cores : 1);
    gw.workers = calloc((size_t)gw.n, sizeof *gw.workers);
    if (!gw.workers) goto out;

    int started = 0;
    for (int i = 0; i < gw.n; i++) {
        if (worker_init(&gw.workers[i], &gw, i, gw.listen) != 0) {
            log_error("worker %d failed to start", i);
            goto stop;
        }
        if (i == 0) {
            /* Port 0: every worker must share the port the first one got. */
            char *colon = strrchr(gw.listen, ':');
            if (colon)
                snprintf(colon + 1, sizeof gw.listen - (size_t)(colon + 1 - gw.listen), "%d",
                         http_server_port(gw.workers[0].http));
        }
    }
    for (int i = 0; i < gw.n; i++) {
        if (pthread_create(&gw.workers[i].thread, NULL, worker_main, &gw.workers[i]) != 0) {
            log_error("cannot start worker thread: %s", strerror(errno));
            goto stop;
        }
        started++;
    }
    log_info("skuld %s listening on %s with %d worker(s), config %s", SKULD_VERSION, gw.listen,
             gw.n, cfg->source);
    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0) continue;
        if (sig == SIGHUP) {
            log_warn("SIGHUP: configuration reload is not implemented in this version");
            continue;
        }
        log_info("signal %d: draining (timeout %llums)", sig,
                 (unsigned long long)cfg->server.drain_timeout_ms);
        break;
    }
    rc = 0;
stop:
    for (int i = 0; i < started; i++) event_active(gw.workers[i].ev_stop, EV_TIMEOUT, 0);
    for (int i = 0; i < started; i++) pthread_join(gw.workers[i].thread, NULL);
    for (int i = 0; i < gw.n; i++) worker_cleanup(&gw.workers[i]);
    free(gw.workers);
out:
    upstream_global_cleanup();
    metrics_shutdown();
    libevent_global_shutdown();
    log_info("stopped");
    return rc;
}
