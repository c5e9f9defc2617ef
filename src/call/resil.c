/*
 * resil — see resil.h.
 */
#include "call/resil.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <string.h>

#include "core/jsonw.h"

void resil_attach(config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_models; i++) {
        cfg_model_t *m = &cfg->models[i];
        m->dep = resil_dep_get(m->id, m->provider->name, m->stats);
    }
}

void resil_model_json(buf_t *o, const cfg_model_t *m)
{
    resil_dep_t *d = m->dep;
    int st = d ? breaker_state(&d->brk) : BRK_CLOSED;
    buf_printf(o, ",\"resilience\":{\"breaker\":\"%s\",\"breaker_opens\":%llu,\"in_flight\":%d",
               breaker_state_name(st),
               d ? (unsigned long long)atomic_load_explicit(&d->brk.opens, memory_order_relaxed)
                 : 0ull,
               d ? atomic_load_explicit(&d->active, memory_order_relaxed) : 0);
    buf_appends(o, ",\"fallbacks\":[");
    for (size_t i = 0; i < m->fallbacks.n; i++) {
        buf_appends(o, i ? "," : "");
        jsonw_cstr(o, m->fallbacks.v[i]);
    }
    buf_appends(o, "],\"on_content_policy\":");
    if (m->on_content_policy)
        jsonw_cstr(o, m->on_content_policy);
    else
        buf_appends(o, "null");
    buf_appends(o, "}");
}

static bool resil_has(const char *body, size_t len, const char *needle)
{
    return body && memmem(body, len, needle, strlen(needle)) != NULL;
}

resil_outcome_t resil_classify(up_result_t res, int status, const char *body, size_t len)
{
    if (res != UP_OK) return res == UP_INTERNAL ? RES_FINAL : RES_RETRY;
    if (status < 400) {
        if (resil_has(body, len, "\"finish_reason\":\"content_filter\"")) return RES_POLICY;
        return RES_OK;
    }
    if (status == 429 || status >= 500) return RES_RETRY;
    if (resil_has(body, len, "context_length_exceeded") ||
        resil_has(body, len, "maximum context length"))
        return RES_CONTEXT;
    if (resil_has(body, len, "content_policy_violation") ||
        resil_has(body, len, "content_filter") || resil_has(body, len, "content_policy"))
        return RES_POLICY;
    if (status == 408) return RES_RETRY;
    return RES_FINAL;
}

bool resil_is_breaker_failure(up_result_t res, int status)
{
    if (res != UP_OK) return res != UP_INTERNAL;
    return status >= 500;
}

int resil_next_candidate(const cfg_model_t *const *cands, size_t n, const int *tried, int from,
                         resil_outcome_t why, int retries_per_deployment)
{
    if (why == RES_POLICY) {
        const cfg_model_t *alt = from >= 0 ? cands[from]->content_policy_alt : NULL;
        for (size_t i = 0; alt && i < n; i++)
            if (cands[i] == alt && !tried[i]) return (int)i;
        return -1;
    }
    if (why == RES_CONTEXT) {
        int64_t have = from >= 0 ? cands[from]->context_window : 0;
        for (size_t i = 0; i < n; i++)
            if (!tried[i] && (have == 0 || cands[i]->context_window > have)) return (int)i;
        return -1;
    }
    if (why != RES_RETRY) return -1;
    /* Fresh candidates first, in order (fallbacks); then retries of the same. */
    for (size_t i = 0; i < n; i++)
        if (!tried[i]) return (int)i;
    for (size_t i = 0; i < n; i++) {
        size_t k = ((size_t)(from < 0 ? 0 : from) + i) % n;
        if (tried[k] <= retries_per_deployment) return (int)k;
    }
    return -1;
}

/* ---------- per-worker queue ---------- */

#define RESIL_QUEUE_TICK_MS 5

typedef struct resil_queue {
    rq_t q;
    struct event tick;
    bool init, armed;
    struct event_base *base;
} resil_queue_t;

static _Thread_local resil_queue_t resil_q;

static void resil_queue_arm(resil_queue_t *rq, int ms)
{
    struct timeval tv = {0, ms * 1000};
    evtimer_add(&rq->tick, &tv);
    rq->armed = true;
}

/* Every waiter, highest class first, oldest first, gets a try; those whose
 * deployments are still full stay in place (one for a free deployment need
 * not wait behind one for a full deployment). */
static void resil_queue_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    resil_queue_t *rq = arg;
    rq->armed = false;
    for (int c = 0; c < RQ_CLASSES; c++) {
        rq_node_t *h = &rq->q.head[c];
        for (rq_node_t *n = h->next, *next; n != h; n = next) {
            next = n->next;
            resil_waiter_t *w = n->ud;
            w->try_start(w); /* true: it left the queue (resil_queue_remove) */
        }
    }
    if (rq->q.n) resil_queue_arm(rq, RESIL_QUEUE_TICK_MS);
}

bool resil_queue_push(struct event_base *base, resil_waiter_t *w, int cls, size_t cap)
{
    resil_queue_t *rq = &resil_q;
    if (!rq->init) {
        rq_init(&rq->q);
        evtimer_assign(&rq->tick, base, resil_queue_tick, rq);
        rq->base = base;
        rq->init = true;
    }
    w->node.ud = w;
    if (!rq_push(&rq->q, &w->node, cls, cap)) return false;
    if (!rq->armed) resil_queue_arm(rq, RESIL_QUEUE_TICK_MS);
    return true;
}

void resil_queue_remove(resil_waiter_t *w)
{
    if (!resil_q.init) return;
    rq_remove(&resil_q.q, &w->node);
    if (!resil_q.q.n && resil_q.armed) {
        evtimer_del(&resil_q.tick);
        resil_q.armed = false;
    }
}

void resil_queue_kick(void)
{
    resil_queue_t *rq = &resil_q;
    if (!rq->init || !rq->q.n) return;
    if (rq->armed) evtimer_del(&rq->tick);
    resil_queue_arm(rq, 0);
}

size_t resil_queue_len(void)
{
    return resil_q.init ? resil_q.q.n : 0;
}
