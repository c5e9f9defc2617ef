#include "server/gateway.h"

#include <errno.h>
#include <stdatomic.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "api/api.h"
#include "api/control.h"
#include "cache/cache.h"
#include "core/buf.h"
#include "core/jsonw.h"
#include "core/log.h"
#include "core/loopcall.h"
#include "core/redis.h"
#include "local/local.h"
#include "obs/metrics.h"
#include "policy/policy.h"
#include "provider/xlate.h"
#include "call/health.h"
#include "server/assembly.h"
#include "server/worker.h"
#include "store/store.h"

#define GW_RELOAD_DEBOUNCE_MS 100

typedef struct gw_runtime_model {
    char *name;
    char *spec; /* normalised JSON (sorted keys, compact) */
} gw_runtime_model_t;

struct gateway {
    config_t *cfg; /* the published snapshot (main thread's reference) */
    const char *path;
    worker_t *workers;
    int n;
    char listen[300];
    uint64_t generation;

    gw_runtime_model_t *rt; /* deployments registered at runtime */
    size_t n_rt;
    store_t *store; /* NULL without store.url; its monitor pings it and refreshes keys */

    pthread_mutex_t wlock; /* a synchronous store write from the control thread */
    pthread_cond_t wcond;
    bool wdone;
    int wrc;

    pthread_mutex_t qlock; /* queue of tickets from workers */
    ctl_ticket_t **queue;
    size_t n_queue, cap_queue;
    int pipe_rd, pipe_wr;

    pthread_mutex_t alock; /* acknowledgements of a publish */
    pthread_cond_t acond;
    int acks;
};

/* ---------- tickets ---------- */

static void gw__deliver(void *p)
{
    ctl_ticket_t *t = p;
    if (t->alive) t->reply(t);
    ctl_ticket_free(t);
}

static void gw_answer(ctl_ticket_t *t, int status, char *body)
{
    t->status = status;
    t->body = body;
    if (loopcall(t->base, gw__deliver, t) != 0) ctl_ticket_free(t);
}

static void gw_submit(void *plane, ctl_ticket_t *t)
{
    gateway_t *gw = plane;
    pthread_mutex_lock(&gw->qlock);
    if (gw->n_queue == gw->cap_queue) {
        size_t nc = gw->cap_queue ? gw->cap_queue * 2 : 16;
        ctl_ticket_t **q = realloc(gw->queue, nc * sizeof *q);
        if (!q) {
            pthread_mutex_unlock(&gw->qlock);
            gw_answer(t, 500,
                      strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                             "\"param\":null,\"code\":null}}"));
            return;
        }
        gw->queue = q;
        gw->cap_queue = nc;
    }
    gw->queue[gw->n_queue++] = t;
    pthread_mutex_unlock(&gw->qlock);
    char one = 1;
    ssize_t w = write(gw->pipe_wr, &one, 1); /* wakes the control loop; a full pipe is fine */
    (void)w;
}

/* ---------- snapshots ---------- */

static char *gw_error_body(int status, const char *code, const char *msg)
{
    buf_t o;
    buf_init(&o, 0);
    xl_error_json(&o, status, status >= 500 ? "server_error" : "invalid_request_error", code, NULL,
                  msg);
    return o.mem ? o.mem : strdup("{}");
}

/* Build a snapshot from text + runtime models; on failure the errors, one per
 * line, go to *errors (malloc'd) and are logged. */
static config_t *gw_build(gateway_t *gw, const char *text, size_t len, gw_runtime_model_t *rt,
                          size_t n_rt, char **errors)
{
    const char **specs = calloc(n_rt + 1, sizeof *specs);
    if (!specs) return NULL;
    for (size_t i = 0; i < n_rt; i++) specs[i] = rt[i].spec;
    cfg_errors_t errs = {0};
    config_t *c = config_build(text, len, gw->path ? gw->path : "<embedded>", specs, n_rt, &errs);
    free(specs);
    if (c) policy_prepare_snapshot(c); /* issue 8: provider keys rotated through the admin API */
    if (c) { /* llamacpp models it adds or changes: loaded now, current at gw_publish */
        char lerr[640];
        if (local_prepare(c, lerr, sizeof lerr) != 0) {
            log_error("config: %s", lerr);
            *errors = strdup(lerr);
            config_unref(c);
            return NULL;
        }
    }
    if (!c) {
        buf_t b;
        buf_init(&b, 0);
        for (size_t i = 0; i < errs.n; i++) {
            const cfg_error_t *e = &errs.v[i];
            if (e->line)
                buf_printf(&b, "%s:%d:%d: %s\n", e->file, e->line, e->col, e->msg);
            else
                buf_printf(&b, "%s: %s\n", e->file, e->msg);
            log_error("config: %s:%d:%d: %s", e->file, e->line, e->col, e->msg);
        }
        *errors = b.mem ? b.mem : strdup("invalid configuration");
        config_errors_free(&errs);
    }
    return c;
}

static void gw__acked(void *arg)
{
    gateway_t *gw = arg;
    pthread_mutex_lock(&gw->alock);
    gw->acks++;
    pthread_cond_signal(&gw->acond);
    pthread_mutex_unlock(&gw->alock);
}

/* Hand c to every worker and wait until each has swapped it in. */
static void gw_publish(gateway_t *gw, config_t *c)
{
    const cfg_server_t *o = &gw->cfg->server, *n = &c->server;
    if (strcmp(o->listen, n->listen) != 0 || o->workers != n->workers ||
        o->max_header_bytes != n->max_header_bytes || o->max_body_bytes != n->max_body_bytes ||
        o->client_idle_timeout_ms != n->client_idle_timeout_ms || o->access_log != n->access_log ||
        o->cpu_latency_us != n->cpu_latency_us)
        log_warn("config: listen, workers, request limits, client_idle_timeout, access_log and "
                 "cpu_latency_us take effect at the next restart");
    c->generation = ++gw->generation;
    local_commit(); /* the engines c names (prepared by gw_build) before any worker sees c */
    gw_snapshot_attach(c);
    metrics_config_generation(c->generation);
    pthread_mutex_lock(&gw->alock);
    gw->acks = 0;
    pthread_mutex_unlock(&gw->alock);
    int posted = 0;
    for (int i = 0; i < gw->n; i++)
        if (worker_publish(&gw->workers[i], config_ref(c), gw__acked, gw) == 0)
            posted++;
        else
            config_unref(c);
    pthread_mutex_lock(&gw->alock);
    while (gw->acks < posted) pthread_cond_wait(&gw->acond, &gw->alock);
    pthread_mutex_unlock(&gw->alock);
    config_unref(gw->cfg);
    gw->cfg = c;
}

static int gw_reload(gateway_t *gw, char **errors)
{
    if (!gw->path) {
        /* The embedded default has no file; rebuilding it re-applies runtime models only. */
        config_t *c = gw_build(gw, gw->cfg->text, gw->cfg->text_len, gw->rt, gw->n_rt, errors);
        if (!c) return -1;
        gw_publish(gw, c);
        return 0;
    }
    cfg_errors_t errs = {0};
    size_t len;
    char *text = config_read_file(gw->path, &len, &errs);
    if (!text) {
        *errors = strdup(errs.n ? errs.v[0].msg : "cannot read the config file");
        log_error("config: %s: %s", gw->path, *errors);
        config_errors_free(&errs);
        metrics_config_reload(false);
        return -1;
    }
    config_t *c = gw_build(gw, text, len, gw->rt, gw->n_rt, errors);
    free(text);
    if (!c) {
        log_error("config: reload of %s rejected; the previous configuration keeps serving",
                  gw->path);
        metrics_config_reload(false);
        return -1;
    }
    gw_publish(gw, c);
    metrics_config_reload(true);
    log_info("config: reloaded %s (generation %llu, %zu model(s))", gw->path,
             (unsigned long long)c->generation, c->n_models);
    return 0;
}

/* ---------- runtime registry ---------- */

static void gw_rt_free(gw_runtime_model_t *rt, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rt[i].name);
        free(rt[i].spec);
    }
    free(rt);
}

static gw_runtime_model_t *gw_rt_copy(const gateway_t *gw, size_t extra)
{
    gw_runtime_model_t *rt = calloc(gw->n_rt + extra + 1, sizeof *rt);
    if (!rt) return NULL;
    for (size_t i = 0; i < gw->n_rt; i++) {
        rt[i].name = strdup(gw->rt[i].name);
        rt[i].spec = strdup(gw->rt[i].spec);
    }
    return rt;
}

static ssize_t gw_rt_find(const gateway_t *gw, const char *name)
{
    for (size_t i = 0; i < gw->n_rt; i++)
        if (strcmp(gw->rt[i].name, name) == 0) return (ssize_t)i;
    return -1;
}

/* Persistence of runtime models: the control thread waits for the writer's
 * commit, so an admin change is answered only once it is durable. Without a
 * store (no store.url) runtime models live in memory until restart. */
static void gw__written(void *ud, int rc, const char *err)
{
    gateway_t *gw = ud;
    if (rc < 0) log_error("store: %s", err ? err : "write failed");
    pthread_mutex_lock(&gw->wlock);
    gw->wrc = rc < 0 ? -1 : 0;
    gw->wdone = true;
    pthread_cond_signal(&gw->wcond);
    pthread_mutex_unlock(&gw->wlock);
}

static int gw__wait_write(gateway_t *gw)
{
    pthread_mutex_lock(&gw->wlock);
    while (!gw->wdone) pthread_cond_wait(&gw->wcond, &gw->wlock);
    int rc = gw->wrc;
    pthread_mutex_unlock(&gw->wlock);
    return rc;
}

static int gw_persist_put(gateway_t *gw, const char *name, const char *spec)
{
    if (!gw->store) return 0;
    gw->wdone = false;
    store_model_put(gw->store, name, spec, NULL, gw__written, gw);
    return gw__wait_write(gw);
}

static int gw_persist_delete(gateway_t *gw, const char *name)
{
    if (!gw->store) return 0;
    gw->wdone = false;
    store_model_delete(gw->store, name, NULL, gw__written, gw);
    return gw__wait_write(gw);
}

/* Adopt a new runtime list and the snapshot built from it. */
static void gw_rt_commit(gateway_t *gw, gw_runtime_model_t *rt, size_t n, config_t *c)
{
    gw_rt_free(gw->rt, gw->n_rt);
    gw->rt = rt;
    gw->n_rt = n;
    gw_publish(gw, c);
}

static void gw_model_put(gateway_t *gw, ctl_ticket_t *t)
{
    json_error_t jerr;
    json_t *spec = json_loads(t->spec, 0, &jerr);
    const char *name = json_string_value(json_object_get(spec, "name"));
    if (!json_is_object(spec) || !name || !*name) {
        json_decref(spec);
        gw_answer(t, 400,
                  gw_error_body(400, "invalid_model", "a model is a JSON object with a \"name\""));
        return;
    }
    char *norm = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS);
    char *name_copy = strdup(name);
    json_decref(spec);
    if (!norm || !name_copy) {
        free(norm);
        free(name_copy);
        gw_answer(t, 500, gw_error_body(500, "internal_error", "out of memory"));
        return;
    }
    ssize_t at = gw_rt_find(gw, name_copy);
    if (at >= 0 && strcmp(gw->rt[at].spec, norm) == 0) { /* idempotent: nothing changes */
        free(norm);
        free(name_copy);
        gw_answer(t, 200, strdup("{\"changed\":false}"));
        return;
    }
    size_t n = gw->n_rt + (at < 0);
    gw_runtime_model_t *rt = gw_rt_copy(gw, 1);
    if (!rt) {
        free(norm);
        free(name_copy);
        gw_answer(t, 500, gw_error_body(500, "internal_error", "out of memory"));
        return;
    }
    size_t slot = at >= 0 ? (size_t)at : gw->n_rt;
    free(rt[slot].name);
    free(rt[slot].spec);
    rt[slot].name = name_copy;
    rt[slot].spec = norm;
    char *errors = NULL;
    config_t *c = gw_build(gw, gw->cfg->text, gw->cfg->text_len, rt, n, &errors);
    if (!c) {
        gw_rt_free(rt, n);
        gw_answer(t, 400, gw_error_body(400, "invalid_model", errors));
        free(errors);
        return;
    }
    if (gw_persist_put(gw, rt[slot].name, rt[slot].spec) != 0) {
        config_unref(c);
        local_abort();
        gw_rt_free(rt, n);
        gw_answer(t, 503, gw_error_body(503, "store_unavailable", "the model could not be stored"));
        return;
    }
    gw_rt_commit(gw, rt, n, c);
    char body[64];
    snprintf(body, sizeof body, "{\"%s\":true,\"persisted\":%s}", at >= 0 ? "changed" : "created",
             gw->store ? "true" : "false");
    gw_answer(t, at >= 0 ? 200 : 201, strdup(body));
}

static void gw_model_delete(gateway_t *gw, ctl_ticket_t *t)
{
    ssize_t at = gw_rt_find(gw, t->name);
    if (at < 0) {
        bool in_file = config_find_model(gw->cfg, t->name, strlen(t->name)) != NULL;
        gw_answer(
            t, in_file ? 409 : 404,
            gw_error_body(in_file ? 409 : 404, in_file ? "model_in_config_file" : "model_not_found",
                          in_file ? "this model is defined in the config file; remove it there"
                                  : "no model registered under that name"));
        return;
    }
    gw_runtime_model_t *rt = gw_rt_copy(gw, 0);
    if (!rt) {
        gw_answer(t, 500, gw_error_body(500, "internal_error", "out of memory"));
        return;
    }
    free(rt[at].name);
    free(rt[at].spec);
    memmove(&rt[at], &rt[at + 1], (gw->n_rt - (size_t)at - 1) * sizeof *rt);
    size_t n = gw->n_rt - 1;
    char *errors = NULL;
    config_t *c = gw_build(gw, gw->cfg->text, gw->cfg->text_len, rt, n, &errors);
    if (!c) { /* e.g. default_model named it */
        gw_rt_free(rt, n);
        gw_answer(t, 409, gw_error_body(409, "model_in_use", errors));
        free(errors);
        return;
    }
    if (gw_persist_delete(gw, t->name) != 0) {
        config_unref(c);
        local_abort();
        gw_rt_free(rt, n);
        gw_answer(t, 503,
                  gw_error_body(503, "store_unavailable", "the removal could not be stored"));
        return;
    }
    gw_rt_commit(gw, rt, n, c);
    gw_answer(t, 200,
              strdup(gw->store ? "{\"deleted\":true,\"persisted\":true}"
                               : "{\"deleted\":true,\"persisted\":false}"));
}

static void gw_handle(gateway_t *gw, ctl_ticket_t *t)
{
    switch (t->op) {
    case CTL_RELOAD: {
        char *errors = NULL;
        if (gw_reload(gw, &errors) == 0) {
            char body[96];
            snprintf(body, sizeof body, "{\"reloaded\":true,\"generation\":%llu}",
                     (unsigned long long)gw->generation);
            gw_answer(t, 200, strdup(body));
        } else {
            gw_answer(t, 400,
                      gw_error_body(400, "invalid_config", errors ? errors : "reload failed"));
        }
        free(errors);
        return;
    }
    case CTL_MODEL_PUT:
        gw_model_put(gw, t);
        return;
    case CTL_MODEL_DELETE:
        gw_model_delete(gw, t);
        return;
    }
}

/* ---------- the control loop ---------- */

static void gw_drain_queue(gateway_t *gw)
{
    char sink[256];
    while (read(gw->pipe_rd, sink, sizeof sink) > 0) {
    }
    for (;;) {
        pthread_mutex_lock(&gw->qlock);
        ctl_ticket_t *t = NULL;
        if (gw->n_queue) {
            t = gw->queue[0];
            memmove(gw->queue, gw->queue + 1, (gw->n_queue - 1) * sizeof *gw->queue);
            gw->n_queue--;
        }
        pthread_mutex_unlock(&gw->qlock);
        if (!t) return;
        gw_handle(gw, t);
    }
}

/* inotify on the file's directory: editors replace files by rename. */
static int gw_watch(const char *path, char *base_out, size_t base_len)
{
    char *d = strdup(path), *b = strdup(path);
    int fd = -1;
    if (d && b) {
        snprintf(base_out, base_len, "%s", basename(b));
        fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (fd >= 0 &&
            inotify_add_watch(fd, dirname(d), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
            log_warn("config: cannot watch %s for changes: %s", path, strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    free(d);
    free(b);
    return fd;
}

static bool gw_file_event(int fd, const char *base)
{
    char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool hit = false;
    ssize_t n;
    while ((n = read(fd, ev, sizeof ev)) > 0) {
        for (char *p = ev; p < ev + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            if (e->len && strcmp(e->name, base) == 0) hit = true;
            p += sizeof *e + e->len;
        }
    }
    return hit;
}

/* Returns when SIGTERM or SIGINT arrives. */
static void gw_control_loop(gateway_t *gw, int sigfd)
{
    char base[256] = "";
    int ino = gw->path ? gw_watch(gw->path, base, sizeof base) : -1;
    uint64_t reload_due = 0;
    for (;;) {
        struct pollfd p[3] = {{sigfd, POLLIN, 0}, {gw->pipe_rd, POLLIN, 0}, {ino, POLLIN, 0}};
        /* Never the store here (issue 26): its monitor thread pings it and
         * refreshes the keys, so a hung database cannot hold signals,
         * reloads or admin changes. */
        uint64_t now = time_mono_ns() / 1000000;
        uint64_t wake = reload_due ? reload_due : UINT64_MAX;
        int timeout = wake == UINT64_MAX ? -1 : wake > now ? (int)(wake - now) : 0;
        if (poll(p, ino >= 0 ? 3 : 2, timeout) < 0 && errno != EINTR) break;
        if (p[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sigfd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGHUP) {
                    char *errors = NULL;
                    log_info("SIGHUP: reloading configuration");
                    gw_reload(gw, &errors);
                    free(errors);
                } else {
                    log_info("signal %u: draining (timeout %llums)", si.ssi_signo,
                             (unsigned long long)gw->cfg->server.drain_timeout_ms);
                    break;
                }
            }
        }
        if (p[1].revents & POLLIN) gw_drain_queue(gw);
        if (ino >= 0 && (p[2].revents & POLLIN) && gw_file_event(ino, base))
            reload_due = time_mono_ns() / 1000000 + GW_RELOAD_DEBOUNCE_MS;
        if (reload_due && time_mono_ns() / 1000000 >= reload_due) {
            reload_due = 0;
            char *errors = NULL;
            log_info("config: %s changed on disk, reloading", gw->path);
            gw_reload(gw, &errors);
            free(errors);
        }
    }
    if (ino >= 0) close(ino);
}

/* Health results, on worker 0's loop: persisted (fire-and-forget) with a store. */
static void gw_health_sink(void *ud, const char *model, uint64_t probes, uint64_t successes,
                           int64_t last_ms, bool up)
{
    gateway_t *gw = ud;
    if (!gw->store) return;
    store_health_t h = {model, probes, successes, last_ms, up};
    store_health_put(gw->store, &h, NULL, NULL, NULL);
}

static const char *gw_store_ready(void *plane, char *detail, size_t n)
{
    const gateway_t *gw = plane;
    return store_readiness(gw->store, detail, n);
}

/* On the store's monitor thread, every 5 s: keys changed by other instances. */
static void gw__refresh(void *ud, store_t *s)
{
    (void)ud;
    policy_refresh(s);
}

/* ---------- start-up from the store ---------- */

static void gw__restore_model(void *ud, const char *name, const char *spec)
{
    gateway_t *gw = ud;
    gw_runtime_model_t *rt = realloc(gw->rt, (gw->n_rt + 1) * sizeof *rt);
    if (!rt) return;
    gw->rt = rt;
    rt[gw->n_rt].name = strdup(name);
    rt[gw->n_rt].spec = strdup(spec);
    if (rt[gw->n_rt].name && rt[gw->n_rt].spec) gw->n_rt++;
}

static void gw__restore_health(void *ud, const store_health_t *h)
{
    config_t *cfg = ud;
    const cfg_model_t *m = config_find_model(cfg, h->model, strlen(h->model));
    if (!m || !m->stats) return;
    atomic_store(&m->stats->health_probes, h->probes);
    atomic_store(&m->stats->health_successes, h->successes);
    atomic_store(&m->stats->health_last_ms, h->last_probe_ms);
    atomic_store(&m->stats->health_up, h->up);
}

/* Open the store, load runtime models and health; returns the snapshot to
 * serve first (a new reference), or NULL when the store cannot be opened. A
 * stored model that no longer validates (its provider left the file) is
 * skipped with a warning, not fatal. */
static config_t *gw_open_store(gateway_t *gw, config_t *cfg)
{
    if (!cfg->store.url) {
        gw_snapshot_attach(cfg);
        return config_ref(cfg);
    }
    char err[512];
    gw->store = store_open(cfg->store.url, (int)cfg->store.timeout_ms, err, sizeof err);
    if (!gw->store) {
        log_error("store: %s", err);
        return NULL;
    }
    log_info("store: %s ready", store_backend(gw->store));
    gw_runtime_model_t *stored = NULL;
    size_t n_stored = 0;
    if (store_model_load(gw->store, gw__restore_model, gw) != 0) {
        log_error("store: cannot load registered models");
        return NULL;
    }
    stored = gw->rt, n_stored = gw->n_rt;
    gw->rt = NULL, gw->n_rt = 0;
    config_t *cur = config_ref(cfg);
    for (size_t i = 0; i < n_stored; i++) {
        gw_runtime_model_t *rt = gw_rt_copy(gw, 1);
        if (!rt) break;
        rt[gw->n_rt].name = strdup(stored[i].name);
        rt[gw->n_rt].spec = strdup(stored[i].spec);
        char *errors = NULL;
        config_t *c = gw_build(gw, cfg->text, cfg->text_len, rt, gw->n_rt + 1, &errors);
        if (!c) {
            log_warn("store: registered model '%s' no longer validates; not served",
                     stored[i].name);
            free(errors);
            gw_rt_free(rt, gw->n_rt + 1);
            continue;
        }
        gw_rt_free(gw->rt, gw->n_rt);
        gw->rt = rt;
        gw->n_rt++;
        config_unref(cur);
        cur = c;
        /* its local models (gw_build loaded a registered one): current now, so
         * the next build reuses them instead of loading them again */
        local_commit();
    }
    gw_rt_free(stored, n_stored);
    if (gw->n_rt) log_info("store: restored %zu registered model(s)", gw->n_rt);
    gw_snapshot_attach(cur);
    store_health_load(gw->store, gw__restore_health, cur);
    return cur;
}

/* server.cpu_latency_us: a PM QoS request on /dev/cpu_dma_latency, held (the
 * descriptor open) until the gateway stops. Idle CPUs then wake within that
 * many microseconds: 0 makes them poll instead of halting, which on a VM
 * saves a trip through the hypervisor on every wake-up (tens of µs; see
 * bench/BENCHMARKS.md, cache-hit latency) at the price of busy idle cores.
 * The same request tuned's latency-performance profile makes. -1 when off or
 * refused (logged: it needs root or write access to the device). */
static int gw_hold_cpu_latency(int us)
{
    if (us < 0) return -1;
    int fd = open("/dev/cpu_dma_latency", O_WRONLY | O_CLOEXEC);
    int32_t v = us;
    if (fd < 0 || write(fd, &v, sizeof v) != (ssize_t)sizeof v) {
        log_warn("server.cpu_latency_us: cannot hold a CPU latency request on "
                 "/dev/cpu_dma_latency: %s (it needs root or write access)",
                 strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    log_info("server.cpu_latency_us: holding idle CPUs to %d us wake-up latency", us);
    return fd;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int gateway_run(config_t *cfg, const char *config_path, const char *listen_override)
{
    gateway_t gw = {.path = config_path, .pipe_rd = -1, .pipe_wr = -1};
    int rc = 1, started = 0, sigfd = -1, qos_fd = -1;
    pthread_mutex_init(&gw.qlock, NULL);
    pthread_mutex_init(&gw.wlock, NULL);
    pthread_cond_init(&gw.wcond, NULL);
    pthread_mutex_init(&gw.alock, NULL);
    pthread_cond_init(&gw.acond, NULL);
    raise_fd_limit();
    /* A fixed mmap threshold: glibc otherwise raises it after large frees and
     * then serves big buffers (stream queues) from arenas, where they fragment
     * and keep RSS at its peak after a burst. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    worker_libevent_log();
    if (evthread_use_pthreads() != 0 || upstream_global_init() != 0) {
        log_error("cannot initialise libevent threads or libcurl");
        goto out;
    }
    /* Signals reach the control loop through a signalfd; no thread handles them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigfd = signalfd(-1, &sigs, SFD_CLOEXEC);
    int pfd[2];
    if (sigfd < 0 || pipe2(pfd, O_NONBLOCK | O_CLOEXEC) != 0) {
        log_error("cannot create the control channels: %s", strerror(errno));
        goto out;
    }
    gw.pipe_rd = pfd[0];
    gw.pipe_wr = pfd[1];

    gw.cfg = gw_open_store(&gw, cfg); /* with the models registered at runtime */
    if (!gw.cfg) goto out;
    policy_start(gw.store, gw.cfg); /* issue 8: virtual keys, stored provider keys */
    if (gw.store && store_monitor_start(gw.store, 1000, 5000, gw__refresh, &gw) != 0) {
        log_error("store: cannot start its monitor thread");
        goto out;
    }
    ctl_plane_set(&(ctl_plane_t){gw_submit, gw_store_ready, &gw});
    gw_pipeline_setup(); /* the stages in their places, the subscribers in order */
    cfg = gw.cfg;
    cache_init(cfg, gw.store); /* response cache: memory tier, persistent tier loaded */
    gw.generation = 1;
    cfg->generation = 1;
    metrics_config_generation(1);
    snprintf(gw.listen, sizeof gw.listen, "%s",
             listen_override ? listen_override : cfg->server.listen);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    gw.n = cfg->server.workers > 0 ? cfg->server.workers : (cores > 0 ? (int)cores : 1);
    gw.workers = calloc((size_t)gw.n, sizeof *gw.workers);
    if (!gw.workers) goto out;
    for (int i = 0; i < gw.n; i++) {
        if (worker_init(&gw.workers[i], &gw, i, gw.listen, cfg) != 0) {
            log_error("worker %d failed to start", i);
            goto stop;
        }
        if (i == 0) { /* port 0: every worker must share the port the first one got */
            char *colon = strrchr(gw.listen, ':');
            if (colon)
                snprintf(colon + 1, sizeof gw.listen - (size_t)(colon + 1 - gw.listen), "%d",
                         http_server_port(gw.workers[0].http));
        }
    }
    gw.workers[0].health =
        health_start(&gw.workers[0].env, cfg->server.health_interval_ms, gw_health_sink, &gw);
    for (int i = 0; i < gw.n; i++, started++) {
        if (worker_start(&gw.workers[i]) != 0) {
            log_error("cannot start worker thread: %s", strerror(errno));
            goto stop;
        }
    }
    qos_fd = gw_hold_cpu_latency(cfg->server.cpu_latency_us);
    log_info("skuld %s listening on %s with %d worker(s), config %s", SKULD_VERSION, gw.listen,
             gw.n, cfg->source);
    gw_control_loop(&gw, sigfd);
    rc = 0;
stop:
    for (int i = 0; i < started; i++) worker_stop(&gw.workers[i]);
    for (int i = 0; i < started; i++) worker_join(&gw.workers[i]);
    rds_close_all(); /* the loops are stopped, their bases still exist */
    /* Answer admin requests still queued; their workers are gone, so just free. */
    for (size_t i = 0; i < gw.n_queue; i++) ctl_ticket_free(gw.queue[i]);
    for (int i = 0; i < gw.n; i++) worker_cleanup(&gw.workers[i]);
    free(gw.workers);
out:
    free(gw.queue);
    gw_rt_free(gw.rt, gw.n_rt);
    if (sigfd >= 0) close(sigfd);
    if (qos_fd >= 0) close(qos_fd); /* the CPU latency request ends with it */
    if (gw.pipe_rd >= 0) close(gw.pipe_rd);
    if (gw.pipe_wr >= 0) close(gw.pipe_wr);
    if (gw.cfg) config_unref(gw.cfg);
    policy_stop();         /* the JWKS fetcher */
    store_close(gw.store); /* after the workers: drains queued writes */
    cache_shutdown();
    upstream_global_cleanup();
    metrics_shutdown();
    libevent_global_shutdown();
    log_info("stopped");
    return rc;
}
