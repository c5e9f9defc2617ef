#include "obs/metrics.h"

#include <stddef.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static metrics_series_t *_Atomic metrics_head;

static const double metrics_bounds[METRICS_LATENCY_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};

static const char *const metrics_uperr_names[UPERR__COUNT] = {"connect", "timeout", "protocol",
                                                              "status"};

#define RLX memory_order_relaxed

metrics_series_t *metrics_series_get(const char *model, const char *provider)
{
    pthread_mutex_lock(&metrics_lock);
    metrics_series_t *s;
    for (s = atomic_load_explicit(&metrics_head, memory_order_acquire); s;
         s = atomic_load_explicit(&s->next, memory_order_acquire))
        if (strcmp(s->model, model) == 0 && strcmp(s->provider, provider) == 0) break;
    if (!s && (s = calloc(1, sizeof *s))) {
        atomic_init(&s->health_up, true);
        s->model = strdup(model);
        s->provider = strdup(provider);
        if (!s->model || !s->provider) {
            free(s->model);
            free(s->provider);
            free(s);
            s = NULL;
        } else {
            /* Append so the exposition keeps creation order; the release store
             * publishes the initialised node to lock-free readers. */
            metrics_series_t *_Atomic *pp = &metrics_head;
            metrics_series_t *n;
            while ((n = atomic_load_explicit(pp, memory_order_relaxed))) pp = &n->next;
            atomic_store_explicit(pp, s, memory_order_release);
        }
    }
    pthread_mutex_unlock(&metrics_lock);
    return s;
}

static atomic_uint_fast64_t metrics_generation, metrics_reloads_ok, metrics_reloads_failed;

void metrics_config_generation(uint64_t gen)
{
    atomic_store_explicit(&metrics_generation, gen, RLX);
}

void metrics_config_reload(bool ok)
{
    atomic_fetch_add_explicit(ok ? &metrics_reloads_ok : &metrics_reloads_failed, 1, RLX);
}

void metrics_request_begin(metrics_series_t *s)
{
    atomic_fetch_add_explicit(&s->in_flight, 1, RLX);
}

void metrics_request_end(metrics_series_t *s, int status, uint64_t duration_ns)
{
    atomic_fetch_sub_explicit(&s->in_flight, 1, RLX);
    if (status < 100 || status > 599) status = 599;
    atomic_fetch_add_explicit(&s->requests_by_status[status], 1, RLX);
    double secs = (double)duration_ns / 1e9;
    int b = 0;
    while (b < METRICS_LATENCY_BUCKETS && secs > metrics_bounds[b]) b++;
    atomic_fetch_add_explicit(&s->latency_buckets[b], 1, RLX);
    atomic_fetch_add_explicit(&s->latency_sum_us, duration_ns / 1000, RLX);
    atomic_fetch_add_explicit(&s->latency_count, 1, RLX);
}

void metrics_upstream_error(metrics_series_t *s, metrics_uperr_t kind)
{
    atomic_fetch_add_explicit(&s->upstream_errors[kind], 1, RLX);
}

void metrics_tokens(metrics_series_t *s, uint64_t prompt, uint64_t completion)
{
    atomic_fetch_add_explicit(&s->tokens_prompt, prompt, RLX);
    atomic_fetch_add_explicit(&s->tokens_completion, completion, RLX);
}

/* Label values are config names; escape the three characters Prometheus requires. */
static void metrics__label(buf_t *o, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            buf_printf(o, "\\%c", *v);
        else if (*v == '\n')
            buf_appends(o, "\\n");
        else
            buf_append(o, v, 1);
    }
}

static void metrics__labels(buf_t *o, const metrics_series_t *s, bool with_provider)
{
    buf_appends(o, "model=\"");
    metrics__label(o, s->model);
    if (with_provider) {
        buf_appends(o, "\",provider=\"");
        metrics__label(o, s->provider);
    }
    buf_appends(o, "\"");
}

void metrics_cost(metrics_series_t *s, double usd, uint64_t cached_tokens)
{
    if (usd > 0) atomic_fetch_add_explicit(&s->cost_nusd, (uint64_t)(usd * 1e9 + 0.5), RLX);
    if (cached_tokens) atomic_fetch_add_explicit(&s->tokens_cached, cached_tokens, RLX);
}

/* Resilience series: breaker state (0 closed, 1 open, 2 half-open) and counters. */
static void metrics__resilience(buf_t *o, metrics_series_t *head)
{
    static const struct {
        const char *name, *help, *type;
        size_t off;
    } rs[] = {
        {"skuld_breaker_state", "Circuit breaker state: 0 closed, 1 open, 2 half-open.", "gauge",
         offsetof(metrics_series_t, breaker_state)},
        {"skuld_breaker_opens_total", "Times the circuit breaker opened.", "counter",
         offsetof(metrics_series_t, breaker_opens)},
        {"skuld_retries_total", "Upstream attempts after the first (retries and fallbacks).",
         "counter", offsetof(metrics_series_t, retries)},
        {"skuld_hedges_total", "Hedged upstream attempts started.", "counter",
         offsetof(metrics_series_t, hedges)},
        {"skuld_queue_rejected_total", "Requests refused with 429 by the request queue.", "counter",
         offsetof(metrics_series_t, queue_rejected)},
        {"skuld_queue_waiting", "Requests waiting in the request queue.", "gauge",
         offsetof(metrics_series_t, queue_waiting)},
    };
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
        buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", rs[i].name, rs[i].help, rs[i].name,
                   rs[i].type);
        for (metrics_series_t *s = head; s;
             s = atomic_load_explicit(&s->next, memory_order_acquire)) {
            if (!s->provider[0]) continue;
            buf_printf(o, "%s{", rs[i].name);
            metrics__labels(o, s, true);
            const char *p = (const char *)s + rs[i].off;
            long long v =
                i == 0   ? (long long)atomic_load_explicit((const atomic_int *)p, RLX)
                : i == 5 ? (long long)atomic_load_explicit((const atomic_int_fast64_t *)p, RLX)
                         : (long long)atomic_load_explicit((const atomic_uint_fast64_t *)p, RLX);
            buf_printf(o, "} %lld\n", v);
        }
    }
}

void metrics_render(buf_t *o)
{
    /* Series are only ever appended and published with release stores, so
     * walking with acquire loads and no lock is safe. */
    metrics_series_t *head = atomic_load_explicit(&metrics_head, memory_order_acquire);

    buf_appends(o, "# HELP skuld_build_info Build information.\n# TYPE skuld_build_info gauge\n");
    buf_printf(o, "skuld_build_info{version=\"%s\"} 1\n", SKULD_VERSION);

    buf_printf(o,
               "# HELP skuld_config_generation Generation of the serving config snapshot.\n"
               "# TYPE skuld_config_generation gauge\nskuld_config_generation %llu\n",
               (unsigned long long)atomic_load_explicit(&metrics_generation, RLX));
    buf_printf(o,
               "# HELP skuld_config_reloads_total Config reloads by outcome.\n"
               "# TYPE skuld_config_reloads_total counter\n"
               "skuld_config_reloads_total{result=\"ok\"} %llu\n"
               "skuld_config_reloads_total{result=\"failed\"} %llu\n",
               (unsigned long long)atomic_load_explicit(&metrics_reloads_ok, RLX),
               (unsigned long long)atomic_load_explicit(&metrics_reloads_failed, RLX));
    buf_printf(o,
               "# HELP skuld_config_reload_failures_total Rejected config reloads.\n"
               "# TYPE skuld_config_reload_failures_total counter\n"
               "skuld_config_reload_failures_total %llu\n",
               (unsigned long long)atomic_load_explicit(&metrics_reloads_failed, RLX));

    buf_appends(o, "# HELP skuld_requests_total Client requests by model and HTTP status.\n"
                   "# TYPE skuld_requests_total counter\n");
    for (metrics_series_t *s = head; s; s = atomic_load_explicit(&s->next, memory_order_acquire))
        for (int st = 100; st < 600; st++) {
            uint64_t v = atomic_load_explicit(&s->requests_by_status[st], RLX);
            if (!v) continue;
            buf_appends(o, "skuld_requests_total{");
            metrics__labels(o, s, true);
            buf_printf(o, ",status=\"%d\"} %llu\n", st, (unsigned long long)v);
        }

    buf_appends(o, "# HELP skuld_request_duration_seconds Client request latency.\n"
                   "# TYPE skuld_request_duration_seconds histogram\n");
    for (metrics_series_t *s = head; s; s = atomic_load_explicit(&s->next, memory_order_acquire)) {
        uint64_t count = atomic_load_explicit(&s->latency_count, RLX);
        if (!count) continue;
        uint64_t cum = 0;
        for (int b = 0; b <= METRICS_LATENCY_BUCKETS; b++) {
            cum += atomic_load_explicit(&s->latency_buckets[b], RLX);
            buf_appends(o, "skuld_request_duration_seconds_bucket{");
            metrics__labels(o, s, true);
            if (b < METRICS_LATENCY_BUCKETS)
                buf_printf(o, ",le=\"%g\"} %llu\n", metrics_bounds[b], (unsigned long long)cum);
            else
                buf_printf(o, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        }
        buf_appends(o, "skuld_request_duration_seconds_sum{");
        metrics__labels(o, s, true);
        buf_printf(o, "} %.6f\n", (double)atomic_load_explicit(&s->latency_sum_us, RLX) / 1e6);
        buf_appends(o, "skuld_request_duration_seconds_count{");
        metrics__labels(o, s, true);
        buf_printf(o, "} %llu\n", (unsigned long long)cum);
    }

    buf_appends(o, "# HELP skuld_requests_in_flight Client requests being served.\n"
                   "# TYPE skuld_requests_in_flight gauge\n");
    for (metrics_series_t *s = head; s; s = atomic_load_explicit(&s->next, memory_order_acquire)) {
        buf_appends(o, "skuld_requests_in_flight{");
        metrics__labels(o, s, true);
        buf_printf(o, "} %lld\n", (long long)atomic_load_explicit(&s->in_flight, RLX));
    }

    buf_appends(o, "# HELP skuld_upstream_requests_total Calls made to upstream deployments.\n"
                   "# TYPE skuld_upstream_requests_total counter\n");
    for (metrics_series_t *s = head; s; s = atomic_load_explicit(&s->next, memory_order_acquire)) {
        if (!s->provider[0]) continue;
        buf_appends(o, "skuld_upstream_requests_total{");
        metrics__labels(o, s, true);
        buf_printf(o, "} %llu\n",
                   (unsigned long long)atomic_load_explicit(&s->upstream_requests, RLX));
    }

    buf_appends(o, "# HELP skuld_upstream_errors_total Failed upstream calls by kind.\n"
                   "# TYPE skuld_upstream_errors_total counter\n");
    for (metrics_series_t *s = head; s; s = atomic_load_explicit(&s->next, memory_order_acquire)) {
        if (!s->provider[0]) continue;
        for (int k = 0; k < UPERR__COUNT; k++) {
            buf_appends(o, "skuld_upstream_errors_total{");
            metrics__labels(o, s, true);
            buf_printf(o, ",kind=\"%s\"} %llu\n", metrics_uperr_names[k],
                       (unsigned long long)atomic_load_explicit(&s->upstream_errors[k], RLX));
        }
    }

    buf_appends(o, "# HELP skuld_stream_errors_total Streams that ended with an error event.\n"
                   "# TYPE skuld_stream_errors_total counter\n");
    for (metrics_series_t *s = head; s; s = atomic_load_explicit(&s->next, memory_order_acquire)) {
        if (!s->provider[0]) continue;
        buf_appends(o, "skuld_stream_errors_total{");
        metrics__labels(o, s, true);
        buf_printf(o, "} %llu\n", (unsigned long long)atomic_load_explicit(&s->stream_errors, RLX));
    }

    metrics__resilience(o, head);

    buf_appends(o, "# HELP skuld_deployment_up Last health probe of the deployment succeeded.\n"
                   "# TYPE skuld_deployment_up gauge\n");
    for (metrics_series_t *s = head; s; s = atomic_load_explicit(&s->next, memory_order_acquire)) {
        if (!s->provider[0]) continue;
        buf_appends(o, "skuld_deployment_up{");
        metrics__labels(o, s, true);
        buf_printf(o, "} %d\n", atomic_load_explicit(&s->health_up, RLX) ? 1 : 0);
    }
    buf_appends(o, "# HELP skuld_deployment_probes_total Health probes by outcome.\n"
                   "# TYPE skuld_deployment_probes_total counter\n");
    for (metrics_series_t *s = head; s; s = atomic_load_explicit(&s->next, memory_order_acquire)) {
        if (!s->provider[0]) continue;
        uint64_t probes = atomic_load_explicit(&s->health_probes, RLX);
        uint64_t ok = atomic_load_explicit(&s->health_successes, RLX);
        buf_appends(o, "skuld_deployment_probes_total{");
        metrics__labels(o, s, true);
        buf_printf(o, ",result=\"ok\"} %llu\n", (unsigned long long)ok);
        buf_appends(o, "skuld_deployment_probes_total{");
        metrics__labels(o, s, true);
        buf_printf(o, ",result=\"failed\"} %llu\n", (unsigned long long)(probes - ok));
    }
    buf_appends(o, "# HELP skuld_deployment_uptime_ratio Share of successful health probes.\n"
                   "# TYPE skuld_deployment_uptime_ratio gauge\n");
    for (metrics_series_t *s = head; s; s = atomic_load_explicit(&s->next, memory_order_acquire)) {
        if (!s->provider[0]) continue;
        uint64_t probes = atomic_load_explicit(&s->health_probes, RLX);
        uint64_t ok = atomic_load_explicit(&s->health_successes, RLX);
        buf_appends(o, "skuld_deployment_uptime_ratio{");
        metrics__labels(o, s, true);
        buf_printf(o, "} %.4f\n", probes ? (double)ok / (double)probes : 1.0);
    }

    buf_appends(o, "# HELP skuld_tokens_total Tokens reported by upstream usage.\n"
                   "# TYPE skuld_tokens_total counter\n");
    for (metrics_series_t *s = head; s; s = atomic_load_explicit(&s->next, memory_order_acquire)) {
        if (!s->provider[0]) continue;
        buf_appends(o, "skuld_tokens_total{");
        metrics__labels(o, s, true);
        buf_printf(o, ",type=\"prompt\"} %llu\n",
                   (unsigned long long)atomic_load_explicit(&s->tokens_prompt, RLX));
        buf_appends(o, "skuld_tokens_total{");
        metrics__labels(o, s, true);
        buf_printf(o, ",type=\"completion\"} %llu\n",
                   (unsigned long long)atomic_load_explicit(&s->tokens_completion, RLX));
        buf_appends(o, "skuld_tokens_total{");
        metrics__labels(o, s, true);
        buf_printf(o, ",type=\"cached\"} %llu\n",
                   (unsigned long long)atomic_load_explicit(&s->tokens_cached, RLX));
    }

    buf_appends(o, "# HELP skuld_cost_usd_total Spend from deployment prices and usage, USD.\n"
                   "# TYPE skuld_cost_usd_total counter\n");
    for (metrics_series_t *s = head; s; s = atomic_load_explicit(&s->next, memory_order_acquire)) {
        if (!s->provider[0]) continue;
        buf_appends(o, "skuld_cost_usd_total{");
        metrics__labels(o, s, true);
        buf_printf(o, "} %.9f\n", (double)atomic_load_explicit(&s->cost_nusd, RLX) / 1e9);
    }
}

void metrics_shutdown(void)
{
    pthread_mutex_lock(&metrics_lock);
    metrics_series_t *s = atomic_exchange(&metrics_head, NULL);
    pthread_mutex_unlock(&metrics_lock);
    while (s) {
        metrics_series_t *n = atomic_load(&s->next);
        free(s->model);
        free(s->provider);
        free(s);
        s = n;
    }
}
