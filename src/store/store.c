/*
 * store.c — the backend-independent half of the store: URL dispatch, the
 * write queue, the writer thread and its batching, delivery of completions
 * onto the submitters' loops, and the synchronous read path.
 *
 * Queue: a singly linked FIFO under s->mu with a condvar. Submitters (any
 * thread, typically a worker's loop) copy their arguments into one malloc'd
 * op and append it; they never wait on the database, only on the queue mutex
 * for a pointer append. The queue is capped (STORE__QUEUE_MAX ops): past it a
 * write fails at once with "store queue full" instead of growing memory
 * without bound. Every public write enters through store__enqueue, which
 * also fails it at once when it could not be allocated or its arguments are
 * invalid.
 *
 * Wake-ups: an op someone waits for (store__awaited: a registration, a key,
 * a secret with a callback) wakes the writer at once; a log-like op
 * (spend-log rows, cache entries, health counters, callback or not) lingers up to STORE__LINGER_MS
 * for company, so under load the writer runs one batch per few milliseconds instead of waking (two
 * context switches) and committing once per request (measured: a store with
 * a spend row per request halved a pinned worker's throughput, 47k -> 26k
 * req/s, mostly in those switches).
 *
 * Writer thread: takes up to STORE__BATCH_MAX ops, runs them in one
 * transaction (BEGIN ... COMMIT). If anything in the batch fails, it rolls
 * back and runs each op in its own transaction, so one bad op fails only
 * itself. Only after COMMIT returned does an op get rc 0 — with SQLite
 * synchronous=FULL and PostgreSQL synchronous_commit=on that means durable,
 * so an acknowledged write survives kill -9. Every op is idempotent (upsert,
 * delete by name), which makes the op-by-op retry safe even when a COMMIT's
 * outcome was ambiguous (connection lost during COMMIT).
 *
 * Connection loss (PostgreSQL): when the writer's connection is broken it
 * reconnects before the next transaction; failed attempts back off
 * (100 ms doubling to 5 s). While the database is unreachable, a write
 * someone waits for (it has a callback: a registry change, a key) fails fast
 * with "store unavailable" rather than waiting behind a dead server, but a
 * fire-and-forget write (spend-log rows, cache entries, health counters: no
 * one would hear that it failed) is kept: the ops of the failed batch go
 * back to the head of the queue, in order, and the writer holds the queue
 * until its next connection attempt (failing awaited ops found in it at
 * once), so the spend log loses nothing across an outage. The queue cap
 * bounds what an outage can hold (STORE__QUEUE_MAX ops; past it new writes
 * are dropped and counted, with a warning). When the store closes, nothing
 * is held any more: what cannot be written then is dropped and logged.
 *
 * Delivery: after a batch, ops are grouped by their event_base and each
 * group is posted with one loopcall() (core/loopcall), which runs the
 * callbacks in submission order on that loop's thread and frees the ops.
 * Ops submitted with base == NULL have their callback run on the writer
 * thread. If a loop never runs again its pending completions are never run
 * (and their memory is lost): stop submitting and close the store before
 * tearing a loop down, and keep loops running until callbacks they await
 * have fired.
 *
 * Failed writes on a live connection (issue 26: SQLite read-only or
 * locked, PostgreSQL read-only): a log-like write (store__awaited false) goes
 * to the retry queue (store_retry.c: doubling backoff, bounded attempts,
 * capped; given up only with a count and a log line); an awaited one fails
 * to its caller. Every failed op is counted by table and logged at most
 * once per 10 s (store_status.c), which also keeps what /readyz reports.
 *
 * Reads (store_read.c) use a second connection; the monitor thread
 * (store_status.c) pings through it so no other thread waits on it.
 *
 * store_close: stops the monitor, marks the queue stopping, wakes the
 * writer, which drains everything still queued and tries the retry queue
 * once more (each op still gets its callback; what fails then is dropped,
 * counted and logged), then joins it and closes both connections.
 */
#include "store/store_internal.h"

#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/log.h"
#include "core/loopcall.h"

#define STORE__BATCH_MAX 64
#define STORE__LINGER_MS 5 /* longest a fire-and-forget op waits for a batch */

/* ------------------------------------------------------------------------ */
/* secrets in messages */

/* Span of the password in a URI's userinfo (scheme://user:PASS@host). */
static bool store__userinfo_password(const char *url, size_t *off, size_t *len)
{
    const char *p = strstr(url, "://");
    if (!p) return false;
    p += 3;
    size_t auth_len = strcspn(p, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < auth_len; i++)
        if (p[i] == '@') at = p + i;
    if (!at) return false;
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (!colon) return false;
    *off = (size_t)(colon + 1 - url);
    *len = (size_t)(at - colon - 1);
    return true;
}

int store__check_version(int cur, int known, char *err, size_t errlen)
{
    if (cur <= known) return 0;
    snprintf(err, errlen,
             "store: database schema version %d is newer than this binary knows (%d); "
             "upgrade skuld",
             cur, known);
    return -1;
}

void store__redact(const char *url, char *out, size_t outlen)
{
    if (!outlen) return;
    size_t o = 0, n = strlen(url);
    size_t poff = 0, plen = 0;
    bool has_userinfo_pw = store__userinfo_password(url, &poff, &plen);
#define PUT(c)                                                                                     \
    do {                                                                                           \
        if (o + 1 < outlen) out[o++] = (c);                                                        \
    } while (0)
    for (size_t i = 0; i < n;) {
        if (has_userinfo_pw && i == poff) {
            for (const char *m = "***"; *m; m++) PUT(*m);
            i += plen;
            continue;
        }
        /* password=VALUE as a query parameter or a conninfo keyword */
        if (strncasecmp(url + i, "password", 8) == 0 &&
            (i == 0 || url[i - 1] == '?' || url[i - 1] == '&' ||
             isspace((unsigned char)url[i - 1]))) {
            size_t j = i + 8;
            while (j < n && url[j] == ' ') j++;
            if (j < n && url[j] == '=') {
                for (size_t k = i; k <= j; k++) PUT(url[k]);
                j++;
                while (j < n && url[j] == ' ') j++;
                if (j < n && url[j] == '\'') { /* quoted conninfo value */
                    j++;
                    while (j < n && url[j] != '\'') j += (url[j] == '\\' && j + 1 < n) ? 2 : 1;
                    if (j < n) j++;
                } else {
                    while (j < n && url[j] != '&' && url[j] != '#' &&
                           !isspace((unsigned char)url[j]))
                        j++;
                }
                for (const char *m = "***"; *m; m++) PUT(*m);
                i = j;
                continue;
            }
        }
        PUT(url[i]);
        i++;
    }
#undef PUT
    out[o] = '\0';
}

void store__scrub(char *msg, size_t msglen, const char *secret)
{
    if (!msg || !secret || !*secret) return;
    size_t sl = strlen(secret);
    char *p;
    while ((p = strstr(msg, secret)) != NULL) {
        size_t tail = strlen(p + sl);
        if (sl >= 3) {
            memcpy(p, "***", 3);
            memmove(p + 3, p + sl, tail + 1);
        } else { /* "***" is longer than the secret: grow within msglen */
            size_t cur = strlen(msg);
            if (cur + 3 - sl + 1 > msglen) { /* no room: cut the message here */
                *p = '\0';
                return;
            }
            memmove(p + 3, p + sl, tail + 1);
            memcpy(p, "***", 3);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* ops and delivery */

static store__op_t *store__op_new(store__op_kind_t kind, const char *name, const char *spec,
                                  struct event_base *base, store_done_fn done, void *ud)
{
    size_t nl = name ? strlen(name) + 1 : 0, sl = spec ? strlen(spec) + 1 : 0;
    store__op_t *op = malloc(sizeof *op + nl + sl);
    if (!op) return NULL;
    memset(op, 0, sizeof *op);
    char *p = (char *)(op + 1);
    if (name) {
        memcpy(p, name, nl);
        op->name = p;
        p += nl;
    }
    if (spec) {
        memcpy(p, spec, sl);
        op->spec = p;
    }
    op->kind = kind;
    op->base = base;
    op->done = done;
    op->ud = ud;
    return op;
}

/* Runs on the submitter's loop: the callbacks of one group, in order. */
static void store__deliver_chain(void *arg)
{
    store__op_t *op = arg;
    while (op) {
        store__op_t *next = op->next;
        op->done(op->ud, op->rc, op->rc < 0 ? op->err : NULL);
        free(op);
        op = next;
    }
}

/* Hands each finished op to its submitter (grouped by loop) and frees it. */
static void store__deliver(store__op_t *ops)
{
    struct {
        struct event_base *base;
        store__op_t *head, *tail;
    } groups[STORE__BATCH_MAX];
    size_t ng = 0;
    while (ops) {
        store__op_t *op = ops;
        ops = op->next;
        op->next = NULL;
        if (!op->done) {
            free(op);
            continue;
        }
        if (!op->base) {
            op->done(op->ud, op->rc, op->rc < 0 ? op->err : NULL);
            free(op);
            continue;
        }
        size_t g = 0;
        while (g < ng && groups[g].base != op->base) g++;
        if (g == ng) {
            if (ng == STORE__BATCH_MAX) { /* cannot happen: a batch is at most this big */
                store__deliver_chain(op);
                continue;
            }
            groups[ng].base = op->base;
            groups[ng].head = groups[ng].tail = op;
            ng++;
        } else {
            groups[g].tail->next = op;
            groups[g].tail = op;
        }
    }
    for (size_t g = 0; g < ng; g++) {
        if (loopcall(groups[g].base, store__deliver_chain, groups[g].head) != 0) {
            log_error("store: out of memory delivering write completions; callbacks dropped");
            for (store__op_t *op = groups[g].head, *next; op; op = next) {
                next = op->next;
                free(op);
            }
        }
    }
}

/* A write that cannot even be queued: fail it without running the callback
 * inside the submitting call when a loop was given. */
static void store__fail_now(store__op_t *op, const char *why)
{
    op->rc = -1;
    snprintf(op->err, sizeof op->err, "%s", why);
    op->next = NULL;
    store__deliver(op);
}

static void store__submit(store_t *s, store__op_t *op);

/* Every public write ends here: op (NULL when it could not be allocated:
 * done hears "out of memory") is queued, or failed now with why when the
 * caller's arguments were not valid. */
static void store__enqueue(store_t *s, store__op_t *op, bool valid, const char *why,
                           store_done_fn done, void *ud)
{
    if (!op) {
        if (done) done(ud, -1, "store: out of memory");
    } else if (!valid) {
        store__fail_now(op, why);
    } else {
        store__submit(s, op);
    }
}

static void store__submit(store_t *s, store__op_t *op)
{
    pthread_mutex_lock(&s->mu);
    if (s->stopping || s->queued >= STORE__QUEUE_MAX) {
        bool stopping = s->stopping, awaited = store__awaited(op);
        uint64_t dropped = s->stats.dropped + !awaited;
        pthread_mutex_unlock(&s->mu);
        if (!awaited) {
            op->next = NULL;
            store__account_dropped(s, op);
        }
        if (!awaited && dropped % 10000 == 1)
            log_warn("store: %s: a write was dropped (%llu so far)",
                     stopping ? "closing" : "queue full", (unsigned long long)dropped);
        store__fail_now(op, stopping ? "store is closing" : "store queue full");
        return;
    }
    bool was_empty = !s->head;
    if (s->tail)
        s->tail->next = op;
    else
        s->head = op;
    s->tail = op;
    s->queued++;
    if (was_empty) s->oldest_ns = time_mono_ns();
    bool awaited = store__awaited(op);
    if (awaited) s->awaited++;
    /* A lingering writer is woken only when it must not wait any longer. */
    if (awaited || was_empty || s->queued >= STORE__BATCH_MAX) pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------------------ */
/* writer thread */

static uint64_t store__ms_to_ns(unsigned ms)
{
    return (uint64_t)ms * 1000000ull;
}

/* Makes sure the writer has a live connection; false (err set) if not. */
static bool store__writer_ready(store_t *s, char *err, size_t errlen)
{
    if (s->wconn && s->be->alive(s->wconn)) return true;
    uint64_t now = time_mono_ns();
    if (now < s->next_connect_ns) {
        snprintf(err, errlen, "store unavailable (%.200s): reconnecting", s->url_safe);
        return false;
    }
    if (s->wconn) {
        log_warn("store: writer lost its connection to %s; reconnecting", s->url_safe);
        s->be->disconnect(s->wconn);
        s->wconn = NULL;
    }
    s->wconn = s->be->connect(s->url, s->timeout_ms, err, errlen);
    if (!s->wconn) {
        s->backoff_ms = store__backoff_next(s->backoff_ms);
        s->next_connect_ns = now + store__ms_to_ns(s->backoff_ms);
        log_warn("store: reconnect failed, next attempt in %u ms: %s", s->backoff_ms, err);
        return false;
    }
    s->backoff_ms = 0;
    s->next_connect_ns = 0;
    pthread_mutex_lock(&s->mu);
    s->stats.reconnects++;
    pthread_mutex_unlock(&s->mu);
    log_info("store: writer reconnected to %s", s->url_safe);
    return true;
}

/* One op in its own transaction. */
static void store__run_one(store_t *s, store__op_t *op)
{
    if (!store__writer_ready(s, op->err, sizeof op->err)) {
        op->rc = -1;
        return;
    }
    if (s->be->begin(s->wconn, op->err, sizeof op->err) != 0) {
        op->rc = -1;
        return;
    }
    int rc = s->be->apply(s->wconn, op, op->err, sizeof op->err);
    if (rc < 0) {
        s->be->rollback(s->wconn);
        op->rc = -1;
        return;
    }
    if (s->be->commit(s->wconn, op->err, sizeof op->err) != 0) {
        s->be->rollback(s->wconn);
        op->rc = -1;
        return;
    }
    op->rc = rc;
    op->err[0] = '\0';
}

static void store__run_batch(store_t *s, store__op_t *ops, size_t n)
{
    char err[STORE__ERRLEN] = "";
    if (!store__writer_ready(s, err, sizeof err)) {
        for (store__op_t *op = ops; op; op = op->next) {
            op->rc = -1;
            snprintf(op->err, sizeof op->err, "%s", err);
        }
        return;
    }
    bool ok = s->be->begin(s->wconn, err, sizeof err) == 0;
    store__op_t *bad = NULL;
    for (store__op_t *op = ops; ok && op; op = op->next) {
        op->rc = s->be->apply(s->wconn, op, op->err, sizeof op->err);
        if (op->rc < 0) {
            ok = false;
            bad = op;
        }
    }
    if (ok && s->be->commit(s->wconn, err, sizeof err) != 0) ok = false;
    pthread_mutex_lock(&s->mu);
    s->stats.batches++;
    pthread_mutex_unlock(&s->mu);
    if (ok) return;
    if (s->be->alive(s->wconn)) s->be->rollback(s->wconn);
    if (n == 1 && s->be->alive(s->wconn)) { /* its own error stands; nothing to isolate */
        ops->rc = -1;
        if (!bad) snprintf(ops->err, sizeof ops->err, "%s", err);
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->stats.retried++;
    pthread_mutex_unlock(&s->mu);
    for (store__op_t *op = ops; op; op = op->next) store__run_one(s, op);
}

static struct timespec store__ts(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    return ts;
}

/* With s->mu held: unlinks up to STORE__BATCH_MAX awaited ops (in order)
 * from the queue; their count in *n. */
static store__op_t *store__take_awaited(store_t *s, size_t *n)
{
    store__op_t *out = NULL, **ot = &out, *prev = NULL;
    *n = 0;
    for (store__op_t *op = s->head, *next; op && *n < STORE__BATCH_MAX; op = next) {
        next = op->next;
        if (!store__awaited(op)) {
            prev = op;
            continue;
        }
        if (prev)
            prev->next = next;
        else
            s->head = next;
        if (s->tail == op) s->tail = prev;
        op->next = NULL;
        *ot = op;
        ot = &op->next;
        (*n)++;
        s->queued--;
        s->awaited--;
    }
    return out;
}

/* After a batch on an unreachable store: splits off its failed
 * fire-and-forget ops (kept, in order, count in *nk) from the rest. */
static store__op_t *store__split_kept(store__op_t **ops, size_t *nk)
{
    store__op_t *keep = NULL, **kt = &keep, *rest = NULL, **rt = &rest;
    *nk = 0;
    for (store__op_t *op = *ops, *next; op; op = next) {
        next = op->next;
        op->next = NULL;
        if (op->rc < 0 && !store__awaited(op)) {
            *kt = op;
            kt = &op->next;
            (*nk)++;
        } else {
            *rt = op;
            rt = &op->next;
        }
    }
    *ops = rest;
    return keep;
}

/* With s->mu held: the next batch from the head of the queue (count in *n). */
static store__op_t *store__take_head(store_t *s, size_t *n)
{
    store__op_t *last = s->head, *ops = s->head;
    *n = 1;
    while (*n < STORE__BATCH_MAX && last->next) {
        last = last->next;
        (*n)++;
    }
    s->head = last->next;
    if (!s->head) s->tail = NULL;
    last->next = NULL;
    s->queued -= *n;
    for (store__op_t *o = ops; o; o = o->next)
        if (store__awaited(o)) s->awaited--;
    return ops;
}

/* With s->mu held: waits until there is work; which batch to take in *what
 * (0 none: stopping and drained, 1 head, 2 awaited only, 3 retry queue). */
static int store__wait_work(store_t *s)
{
    for (;;) {
        uint64_t now = time_mono_ns();
        if (s->stopping) return s->head ? 1 : s->retry.n ? 3 : 0;
        if (s->paused) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        uint64_t wake = UINT64_MAX;
        if (s->retry.n) {
            uint64_t due = s->retry.due_ns > s->hold_until_ns ? s->retry.due_ns : s->hold_until_ns;
            if (now >= due) return 3;
            wake = due;
        }
        if (s->head) {
            if (s->hold_until_ns > now) {
                /* unreachable: awaited writes fail now, the others wait */
                if (s->awaited) return 2;
                if (s->hold_until_ns < wake) wake = s->hold_until_ns;
            } else {
                if (s->awaited || s->queued >= STORE__BATCH_MAX) return 1;
                uint64_t due = s->oldest_ns + store__ms_to_ns(STORE__LINGER_MS);
                if (now >= due) return 1;
                if (due < wake) wake = due;
            }
        }
        if (wake == UINT64_MAX) {
            pthread_cond_wait(&s->cv, &s->mu);
        } else {
            struct timespec ts = store__ts(wake);
            pthread_cond_timedwait(&s->cv, &s->mu, &ts); /* condvar on CLOCK_MONOTONIC */
        }
    }
}

/* With s->mu held, after a batch from the queue's head on an unreachable
 * store: its failed log-like ops go back to the head, in order, until the
 * next connection attempt. Returns how many. */
static size_t store__hold(store_t *s, store__op_t **ops)
{
    size_t nk = 0;
    store__op_t *keep = store__split_kept(ops, &nk);
    if (!keep) return 0;
    store__op_t *kl = keep;
    while (kl->next) kl = kl->next;
    if (!s->head) {
        s->tail = kl;
        s->oldest_ns = time_mono_ns();
    }
    kl->next = s->head;
    s->head = keep;
    s->queued += nk;
    s->stats.kept += nk;
    uint64_t now = time_mono_ns();
    s->hold_until_ns = s->next_connect_ns > now ? s->next_connect_ns
                                                : now + store__ms_to_ns(STORE__BACKOFF_MIN_MS);
    return nk;
}

static void *store__writer_main(void *arg)
{
    store_t *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int what = store__wait_work(s);
        if (!what) { /* stopping and drained */
            pthread_mutex_unlock(&s->mu);
            break;
        }
        store__op_t *ops;
        size_t n;
        if (what == 3)
            ops = store__retryq_take(&s->retry, STORE__BATCH_MAX, time_mono_ns(), s->stopping, &n);
        else if (what == 2)
            ops = store__take_awaited(s, &n);
        else
            ops = store__take_head(s, &n);
        if (n > s->stats.max_batch) s->stats.max_batch = n;
        pthread_mutex_unlock(&s->mu);

        store__run_batch(s, ops, n);
        store__account(s, ops);
        bool unreachable = !s->wconn || !s->be->alive(s->wconn);
        store__op_t *gone = NULL, *failed = NULL;
        size_t back = 0, nf = 0;
        uint64_t now = time_mono_ns();
        pthread_mutex_lock(&s->mu);
        if (what != 3 && unreachable && !s->stopping) back = store__hold(s, &ops);
        if (what != 3 && !unreachable) s->hold_until_ns = 0;
        /* what is left failed on a live connection (or while closing): retried */
        failed = store__split_kept(&ops, &nf);
        if (what == 3 && !failed) store__retryq_ok(&s->retry, now);
        if (failed && s->stopping)
            gone = failed;
        else if (failed)
            back += store__retryq_put(&s->retry, failed, what == 3, !unreachable, now, &gone);
        s->stats.ops += n - back;
        s->retry_pending = s->retry.n;
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (gone) {
            size_t ng = 0;
            for (store__op_t *o = gone; o; o = o->next) ng++;
            if (stopping)
                log_warn("store: closing: %zu write(s) to %s could not be written; dropped", ng,
                         s->url_safe);
            store__account_dropped(s, gone);
            store__deliver(gone);
        }
        store__status_log(s, false);
        store__deliver(ops);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* public API */

static const store__backend_t *store__pick(const char *url)
{
    if (strncmp(url, "sqlite://", 9) == 0) return &store__sqlite;
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        return &store__pg;
    return NULL;
}

store_t *store_open(const char *url, int timeout_ms, char *err, size_t errlen)
{
    char scratch[STORE__ERRLEN];
    if (!err || !errlen) {
        err = scratch;
        errlen = sizeof scratch;
    }
    err[0] = '\0';
    if (!url) {
        snprintf(err, errlen, "store: no url");
        return NULL;
    }
    const store__backend_t *be = store__pick(url);
    if (!be) {
        char safe[512];
        store__redact(url, safe, sizeof safe);
        snprintf(err, errlen,
                 "store: unsupported url '%s' (expected sqlite://PATH or postgres://...)", safe);
        return NULL;
    }
    store_t *s = calloc(1, sizeof *s);
    if (!s || !(s->url = strdup(url))) {
        free(s);
        snprintf(err, errlen, "store: out of memory");
        return NULL;
    }
    s->be = be;
    s->timeout_ms = timeout_ms > 0 ? timeout_ms : STORE_TIMEOUT_DEFAULT_MS;
    if (getrandom(&s->op_nonce, sizeof s->op_nonce, 0) != sizeof s->op_nonce)
        s->op_nonce = time_wall_ms() * 1000003ull ^ (uint64_t)getpid() << 40;
    store__redact(url, s->url_safe, sizeof s->url_safe);
    s->wconn = be->connect(url, s->timeout_ms, err, errlen);
    if (!s->wconn) goto fail;
    if (be->migrate(s->wconn, err, errlen) != 0) goto fail;
    pthread_mutex_init(&s->rmu, NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca; /* timed waits against the monotonic clock (time_mono_ns) */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_mutex_init(&s->mmu, NULL);
    pthread_cond_init(&s->mcv, &ca);
    pthread_condattr_destroy(&ca);
    /* The writer takes no signals: they belong to the main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int prc = pthread_create(&s->thread, NULL, store__writer_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (prc != 0) {
        snprintf(err, errlen, "store: cannot start the writer thread");
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        pthread_mutex_destroy(&s->rmu);
        pthread_cond_destroy(&s->mcv);
        pthread_mutex_destroy(&s->mmu);
        goto fail;
    }
    return s;
fail:
    if (s->wconn) be->disconnect(s->wconn);
    free(s->url);
    free(s);
    return NULL;
}

void store_close(store_t *s)
{
    if (!s) return;
    store__monitor_stop(s);
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    s->paused = false;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    store__status_log(s, true);
    if (s->wconn) s->be->disconnect(s->wconn);
    if (s->rconn) s->be->disconnect(s->rconn);
    pthread_cond_destroy(&s->mcv);
    pthread_mutex_destroy(&s->mmu);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->rmu);
    free(s->url);
    free(s);
}

const char *store_backend(const store_t *s)
{
    return s->be->name;
}

void store_model_put(store_t *s, const char *name, const char *spec_json, struct event_base *base,
                     store_done_fn done, void *ud)
{
    store__op_t *op = store__op_new(STORE__OP_MODEL_PUT, name ? name : "",
                                    spec_json ? spec_json : "", base, done, ud);
    store__enqueue(s, op, name && *name && spec_json, "store: model name and spec are required",
                   done, ud);
}

void store_model_delete(store_t *s, const char *name, struct event_base *base, store_done_fn done,
                        void *ud)
{
    store__op_t *op = store__op_new(STORE__OP_MODEL_DELETE, name ? name : "", NULL, base, done, ud);
    store__enqueue(s, op, name && *name, "store: model name is required", done, ud);
}

void store_health_put(store_t *s, const store_health_t *h, struct event_base *base,
                      store_done_fn done, void *ud)
{
    const char *model = h && h->model ? h->model : "";
    store__op_t *op = store__op_new(STORE__OP_HEALTH_PUT, model, NULL, base, done, ud);
    if (op && *model) {
        op->probes = h->probes;
        op->successes = h->successes;
        op->last_probe_ms = h->last_probe_ms;
        op->up = h->up;
    }
    store__enqueue(s, op, *model, "store: health needs a model name", done, ud);
}

/* ---- keys and spend (issue 8) ---- */

/* One op with n strings (NULL allowed) copied behind it into op->str[]. */
static store__op_t *store__op_strs(store__op_kind_t kind, const char *name, const char *spec,
                                   const char *const *strs, size_t n, struct event_base *base,
                                   store_done_fn done, void *ud)
{
    size_t extra = 0;
    for (size_t i = 0; i < n; i++) extra += strs[i] ? strlen(strs[i]) + 1 : 0;
    size_t nl = name ? strlen(name) + 1 : 0, sl = spec ? strlen(spec) + 1 : 0;
    store__op_t *op = malloc(sizeof *op + nl + sl + extra);
    if (!op) return NULL;
    memset(op, 0, sizeof *op);
    char *p = (char *)(op + 1);
    if (name) memcpy(p, name, nl), op->name = p, p += nl;
    if (spec) memcpy(p, spec, sl), op->spec = p, p += sl;
    for (size_t i = 0; i < n; i++) {
        if (!strs[i]) continue;
        size_t l = strlen(strs[i]) + 1;
        memcpy(p, strs[i], l);
        op->str[i] = p;
        p += l;
    }
    op->kind = kind;
    op->base = base;
    op->done = done;
    op->ud = ud;
    return op;
}

void store_key_put(store_t *s, const char *id, const char *hash_hex, const char *spec_json,
                   struct event_base *base, store_done_fn done, void *ud)
{
    const char *strs[1] = {hash_hex};
    store__op_t *op = store__op_strs(STORE__OP_KEY_PUT, id ? id : "", spec_json ? spec_json : "{}",
                                     strs, 1, base, done, ud);
    store__enqueue(s, op, id && *id && hash_hex && *hash_hex, "store: a key needs an id and a hash",
                   done, ud);
}

void store_secret_put(store_t *s, const char *provider, const char *sealed, struct event_base *base,
                      store_done_fn done, void *ud)
{
    store__op_t *op = store__op_new(STORE__OP_SECRET_PUT, provider ? provider : "",
                                    sealed ? sealed : "", base, done, ud);
    store__enqueue(s, op, provider && *provider && sealed && *sealed,
                   "store: a secret needs a provider and a sealed value", done, ud);
}

void store_spend_add(store_t *s, const store_spend_t *row, struct event_base *base,
                     store_done_fn done, void *ud)
{
    const char *strs[5] = {row->request_id, row->key_id, row->team, row->user, row->model};
    store__op_t *op = store__op_strs(STORE__OP_SPEND_ADD, NULL, NULL, strs, 5, base, done, ud);
    if (op) {
        op->num[0] = row->ts_ms;
        op->num[1] = row->prompt_tokens;
        op->num[2] = row->completion_tokens;
        op->num[3] = row->latency_ms;
        op->num[4] = row->status;
        /* the row's write id: a retry of this op after an ambiguous COMMIT
         * finds it (ON CONFLICT DO NOTHING) instead of adding a second row */
        op->num[5] = (int64_t)(s->op_nonce + __atomic_fetch_add(&s->op_seq, 1, __ATOMIC_RELAXED));
        op->cost_usd = row->cost_usd;
    }
    store__enqueue(s, op, true, NULL, done, ud);
}

/* ---- response cache, persistent tier (src/cache) ---- */

void store_cache_put(store_t *s, const char *key, const char *value, int64_t expires_ms,
                     struct event_base *base, store_done_fn done, void *ud)
{
    store__op_t *op =
        store__op_new(STORE__OP_CACHE_PUT, key ? key : "", value ? value : "", base, done, ud);
    if (op) op->expires_ms = expires_ms;
    store__enqueue(s, op, key && *key && value, "store: cache key and value are required", done,
                   ud);
}

void store_cache_purge(store_t *s, int64_t before_ms, struct event_base *base, store_done_fn done,
                       void *ud)
{
    store__op_t *op = store__op_new(STORE__OP_CACHE_PURGE, "cache", NULL, base, done, ud);
    if (op) op->expires_ms = before_ms;
    store__enqueue(s, op, true, NULL, done, ud);
}

/* ------------------------------------------------------------------------ */
/* test hooks */

void store__pause(store_t *s, bool paused)
{
    pthread_mutex_lock(&s->mu);
    s->paused = paused && !s->stopping;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void store__get_stats(store_t *s, store__stats_t *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}
