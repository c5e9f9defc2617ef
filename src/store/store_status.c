/*
 * store_status.c — what the store knows of its own health (issue 26), kept
 * so that no thread but the store's own ever waits on the database to learn
 * it.
 *
 * The monitor: one thread per store (store_monitor_start) that pings the
 * database every ping_ms through the read path (bounded by store.timeout)
 * and runs the owner's refresh (the gateway: reload the virtual keys) every
 * refresh_ms. It publishes the outcome under s->mmu; a ping in flight for
 * longer than store.timeout already counts as unreachable, so /readyz turns
 * 503 within about ping_ms + timeout of the database hanging, even while
 * the ping itself is still stuck in the kernel.
 *
 * Write accounting: after each batch the writer calls store__account, which
 * counts failed ops by table (skuld_store_write_failures_total), remembers
 * the last error, and notes whether the whole batch failed (writes_failing,
 * which /readyz reports). Failures and give-ups are logged at most once per
 * STORE__FAIL_LOG_MS as one summary line; store_close flushes the rest.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "store/store_internal.h"

#define STORE__FAIL_LOG_MS 10000

const char *const store_table_names[STORE_NTABLES] = {
    "models", "health", "api_keys", "spend_log", "provider_secrets", "cache_entries",
};

bool store__awaited(const store__op_t *op)
{
    switch (op->kind) {
    case STORE__OP_SPEND_ADD:
    case STORE__OP_CACHE_PUT:
    case STORE__OP_CACHE_PURGE:
    case STORE__OP_HEALTH_PUT:
        return false;
    default:
        return op->done != NULL;
    }
}

store_table_t store__op_table(const store__op_t *op)
{
    switch (op->kind) {
    case STORE__OP_HEALTH_PUT:
        return STORE_T_HEALTH;
    case STORE__OP_KEY_PUT:
        return STORE_T_API_KEYS;
    case STORE__OP_SPEND_ADD:
        return STORE_T_SPEND_LOG;
    case STORE__OP_SECRET_PUT:
        return STORE_T_PROVIDER_SECRETS;
    case STORE__OP_CACHE_PUT:
    case STORE__OP_CACHE_PURGE:
        return STORE_T_CACHE_ENTRIES;
    default:
        return STORE_T_MODELS;
    }
}

/* ------------------------------------------------------------------------ */
/* write accounting */

/* With s->mu held: the summary line when one is due (or force); the text
 * goes to line (empty when none is due). */
static void store__log_line(store_t *s, bool force, char *line, size_t n)
{
    line[0] = '\0';
    uint64_t now = time_mono_ns();
    if (!s->log_fail && !s->log_drop) return;
    if (!force && now < s->next_log_ns) return;
    snprintf(line, n,
             "store: %llu write(s) failed, %llu given up since the last report (one per %d s "
             "at most); %zu waiting for a retry; last error (%s): %s",
             (unsigned long long)s->log_fail, (unsigned long long)s->log_drop,
             STORE__FAIL_LOG_MS / 1000, s->retry_pending, store_table_names[s->last_fail_table],
             s->last_fail_err);
    s->log_fail = s->log_drop = 0;
    s->next_log_ns = now + (uint64_t)STORE__FAIL_LOG_MS * 1000000ull;
}

void store__account(store_t *s, const store__op_t *ops)
{
    size_t failed = 0, ok = 0;
    pthread_mutex_lock(&s->mu);
    for (const store__op_t *op = ops; op; op = op->next) {
        if (op->rc >= 0) {
            ok++;
            continue;
        }
        failed++;
        store_table_t t = store__op_table(op);
        s->wfail[t]++;
        s->last_fail_table = t;
        snprintf(s->last_fail_err, sizeof s->last_fail_err, "%s", op->err);
    }
    if (failed) {
        s->log_fail += failed;
        s->last_fail_ms = (int64_t)time_wall_ms();
    }
    if (failed || ok) s->writes_failing = failed && !ok;
    pthread_mutex_unlock(&s->mu);
}

void store__account_dropped(store_t *s, const store__op_t *ops)
{
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    for (const store__op_t *op = ops; op; op = op->next, n++) s->wdrop[store__op_table(op)]++;
    s->stats.dropped += n;
    s->log_drop += n;
    pthread_mutex_unlock(&s->mu);
}

void store__status_log(store_t *s, bool force)
{
    char line[STORE__ERRLEN + 200];
    pthread_mutex_lock(&s->mu);
    store__log_line(s, force, line, sizeof line);
    pthread_mutex_unlock(&s->mu);
    if (line[0]) log_warn("%s", line);
}

/* ------------------------------------------------------------------------ */
/* the monitor */

static void *store__monitor_main(void *arg)
{
    store_t *s = arg;
    uint64_t next_refresh = time_mono_ns() + (uint64_t)s->refresh_ms * 1000000ull;
    pthread_mutex_lock(&s->mmu);
    while (!s->mon_stop) {
        s->ping_since_ns = time_mono_ns();
        pthread_mutex_unlock(&s->mmu);
        char why[STORE__ERRLEN];
        bool ok = store__ping_quiet(s, why, sizeof why);
        uint64_t now = time_mono_ns();
        bool refresh = ok && s->refresh && now >= next_refresh;
        pthread_mutex_lock(&s->mmu);
        if (ok != s->reachable) {
            if (ok)
                log_info("store: %s answers again", s->url_safe);
            else
                log_warn("store: not answering (/readyz 503 store_unreachable): %s", why);
        }
        s->reachable = ok;
        s->ping_since_ns = 0;
        s->checked_ms = (int64_t)time_wall_ms();
        if (refresh && !s->mon_stop) {
            next_refresh = now + (uint64_t)s->refresh_ms * 1000000ull;
            pthread_mutex_unlock(&s->mmu);
            s->refresh(s->refresh_ud, s);
            pthread_mutex_lock(&s->mmu);
        }
        if (s->mon_stop) break;
        uint64_t due = time_mono_ns() + (uint64_t)s->ping_ms * 1000000ull;
        struct timespec ts = {(time_t)(due / 1000000000ull), (long)(due % 1000000000ull)};
        pthread_cond_timedwait(&s->mcv, &s->mmu, &ts); /* condvar on CLOCK_MONOTONIC */
    }
    pthread_mutex_unlock(&s->mmu);
    return NULL;
}

int store_monitor_start(store_t *s, unsigned ping_ms, unsigned refresh_ms,
                        void (*refresh)(void *ud, store_t *s), void *ud)
{
    if (!s || s->mon_running) return -1;
    s->ping_ms = ping_ms ? ping_ms : 1000;
    s->refresh_ms = refresh_ms ? refresh_ms : 5000;
    s->refresh = refresh;
    s->refresh_ud = ud;
    s->reachable = true; /* store_open just talked to it */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals belong to the main thread */
    int rc = pthread_create(&s->mon, NULL, store__monitor_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) return -1;
    s->mon_running = true;
    return 0;
}

void store__monitor_stop(store_t *s)
{
    if (!s->mon_running) return;
    pthread_mutex_lock(&s->mmu);
    s->mon_stop = true;
    pthread_cond_broadcast(&s->mcv);
    pthread_mutex_unlock(&s->mmu);
    pthread_join(s->mon, NULL); /* at most one ping or refresh: bounded by store.timeout */
    s->mon_running = false;
}

void store_status(store_t *s, store_status_t *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mmu);
    uint64_t since = s->ping_since_ns, now = time_mono_ns();
    out->reachable =
        !s->mon_running ||
        (s->reachable && !(since && now - since > (uint64_t)s->timeout_ms * 1000000ull));
    out->checked_ms = s->checked_ms;
    pthread_mutex_unlock(&s->mmu);
    pthread_mutex_lock(&s->mu);
    memcpy(out->write_failures, s->wfail, sizeof s->wfail);
    memcpy(out->writes_dropped, s->wdrop, sizeof s->wdrop);
    out->retry_pending = s->retry_pending;
    out->queued = s->queued;
    out->writes_failing = s->writes_failing;
    out->last_failure_ms = s->last_fail_ms;
    out->last_failure_table = s->last_fail_table;
    snprintf(out->last_error, sizeof out->last_error, "%s", s->last_fail_err);
    pthread_mutex_unlock(&s->mu);
}

const char *store_readiness(store_t *s, char *detail, size_t n)
{
    if (!s) return NULL;
    store_status_t st;
    store_status(s, &st);
    if (!st.reachable) {
        snprintf(detail, n, "the store is not reachable (no answer within %d ms)", s->timeout_ms);
        return "store_unreachable";
    }
    if (!st.writes_failing) return NULL;
    buf_t b;
    buf_init(&b, 0);
    uint64_t total = 0, dropped = 0;
    for (int t = 0; t < STORE_NTABLES; t++) {
        total += st.write_failures[t];
        dropped += st.writes_dropped[t];
        if (st.write_failures[t])
            buf_printf(&b, "%s%s %llu", b.len ? ", " : "", store_table_names[t],
                       (unsigned long long)st.write_failures[t]);
    }
    snprintf(detail, n,
             "store writes are failing: %llu failed (%s), %zu waiting for a retry, %llu given up; "
             "last error (%s): %s",
             (unsigned long long)total, b.mem ? b.mem : "", st.retry_pending,
             (unsigned long long)dropped, store_table_names[st.last_failure_table], st.last_error);
    buf_free(&b);
    return "store_write_failing";
}

void store_metrics_render(store_t *s, buf_t *o)
{
    if (!s) return;
    store_status_t st;
    store_status(s, &st);
    buf_appends(o,
                "# HELP skuld_store_write_failures_total Failed store write attempts, by table.\n"
                "# TYPE skuld_store_write_failures_total counter\n");
    for (int t = 0; t < STORE_NTABLES; t++)
        buf_printf(o, "skuld_store_write_failures_total{table=\"%s\"} %llu\n", store_table_names[t],
                   (unsigned long long)st.write_failures[t]);
    buf_appends(o, "# HELP skuld_store_writes_dropped_total Store writes given up, by table.\n"
                   "# TYPE skuld_store_writes_dropped_total counter\n");
    for (int t = 0; t < STORE_NTABLES; t++)
        buf_printf(o, "skuld_store_writes_dropped_total{table=\"%s\"} %llu\n", store_table_names[t],
                   (unsigned long long)st.writes_dropped[t]);
    buf_printf(o,
               "# HELP skuld_store_write_retry_pending Failed store writes waiting for a retry.\n"
               "# TYPE skuld_store_write_retry_pending gauge\nskuld_store_write_retry_pending %zu\n"
               "# HELP skuld_store_up 1 while the store answers its monitor's ping.\n"
               "# TYPE skuld_store_up gauge\nskuld_store_up %d\n",
               st.retry_pending, st.reachable ? 1 : 0);
}
