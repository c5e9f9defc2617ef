#include "call/health.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "obs/metrics.h"
#include "provider/provider.h"
#include "pipeline/request.h"

#define HEALTH_PROBE_TIMEOUT_MS 5000

typedef struct health_probe {
    health_t *h;
    struct health_probe *next;
    metrics_series_t *series; /* process-lifetime, safe across reloads */
    up_call_t *call;
    arena_t *arena; /* probe URL and headers */
    int status;
} health_probe_t;

struct health {
    pl_env_t *env;
    struct event *timer;
    health_probe_t *probes; /* in flight */
    health_sink_fn sink;
    void *ud;
};

static void health_record(health_t *h, metrics_series_t *s, bool ok)
{
    uint64_t probes = atomic_fetch_add(&s->health_probes, 1) + 1;
    uint64_t successes = atomic_load(&s->health_successes);
    if (ok) successes = atomic_fetch_add(&s->health_successes, 1) + 1;
    int64_t now = (int64_t)time_wall_ms();
    atomic_store(&s->health_last_ms, now);
    bool was_up = atomic_exchange(&s->health_up, ok);
    if (was_up != ok) log_warn("health: deployment %s is %s", s->model, ok ? "up again" : "DOWN");
    if (h->sink) h->sink(h->ud, s->model, probes, successes, now, ok);
}

static void health_unlink(health_t *h, health_probe_t *p)
{
    for (health_probe_t **pp = &h->probes; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    arena_destroy(p->arena);
    free(p);
}

static void health_on_head(void *ud, int status)
{
    ((health_probe_t *)ud)->status = status;
}

static int health_on_data(void *ud, const char *d, size_t n)
{
    return UP_CONTINUE; /* the body is not needed */
}

static void health_on_done(void *ud, up_result_t res, const char *detail)
{
    health_probe_t *p = ud;
    bool ok = res == UP_OK && p->status >= 200 && p->status < 300;
    health_record(p->h, p->series, ok);
    health_unlink(p->h, p);
}

/* "chat" method: the smallest real request, built by the provider itself. */
static int health_chat_probe(arena_t *a, const prov_ops_t *ops, const cfg_model_t *m,
                             prov_call_t *out)
{
    json_t *b = json_pack("{s:s,s:[{s:s,s:s}],s:i}", "model", m->name, "messages", "role", "user",
                          "content", "ping", "max_tokens", 1);
    int rc = b ? ops->build(a, EP_CHAT, b, m, false, out) : -1;
    json_decref(b);
    return rc;
}

static bool health_in_flight(health_t *h, metrics_series_t *s)
{
    for (health_probe_t *p = h->probes; p; p = p->next)
        if (p->series == s) return true;
    return false;
}

static void health_tick(evutil_socket_t fd, short what, void *arg)
{
    health_t *h = arg;
    config_t *cfg = config_ref(h->env->cfg);
    static const up_callbacks_t cbs = {health_on_head, health_on_data, health_on_done};
    for (size_t i = 0; i < cfg->n_models; i++) {
        const cfg_model_t *m = &cfg->models[i];
        const prov_ops_t *ops = provider_ops(m->provider->type);
        if (!m->stats || !ops || health_in_flight(h, m->stats)) continue;
        const char *method = m->provider->health_check;
        if (method && strcmp(method, "none") == 0) continue; /* not probed: reported as up */
        if (!ops->build_probe) {
            health_record(h, m->stats, true); /* local: up while loaded */
            continue;
        }
        bool chat = method && strcmp(method, "chat") == 0;
        health_probe_t *p = calloc(1, sizeof *p);
        prov_call_t call = {0};
        if (!p || !(p->arena = arena_create(1024)) ||
            (chat ? health_chat_probe(p->arena, ops, m, &call)
                  : ops->build_probe(p->arena, m, &call))) {
            if (p) arena_destroy(p->arena);
            free(p);
            continue;
        }
        p->h = h;
        p->series = m->stats;
        up_request_t req = {.url = call.url,
                            .body = call.body,
                            .body_len = call.body_len,
                            .headers = call.headers,
                            .connect_timeout_ms = cfg->server.connect_timeout_ms,
                            .total_timeout_ms = HEALTH_PROBE_TIMEOUT_MS};
        p->next = h->probes;
        h->probes = p;
        p->call = upstream_call_start(h->env->upstream, &req, &cbs, p);
        if (!p->call) {
            health_record(h, m->stats, false);
            health_unlink(h, p);
        }
    }
    config_unref(cfg);
}

health_t *health_start(pl_env_t *env, uint64_t interval_ms, health_sink_fn sink, void *ud)
{
    if (!interval_ms) return NULL;
    health_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->env = env;
    h->sink = sink;
    h->ud = ud;
    h->timer = event_new(env->base, -1, EV_PERSIST, health_tick, h);
    if (!h->timer) {
        free(h);
        return NULL;
    }
    struct timeval tv = {(time_t)(interval_ms / 1000), (suseconds_t)(interval_ms % 1000) * 1000};
    event_add(h->timer, &tv);
    event_active(h->timer, EV_TIMEOUT, 0); /* first round now */
    return h;
}

void health_stop(health_t *h)
{
    if (!h) return;
    while (h->probes) {
        upstream_call_cancel(h->probes->call);
        health_unlink(h, h->probes);
    }
    event_free(h->timer);
    free(h);
}
