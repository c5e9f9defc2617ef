/*
 * redis.c — see redis.h. One predis_conn_t per worker (by worker id),
 * touched only on that worker's thread.
 */
#include "policy/redis.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "server/worker.h"

#define PREDIS_MAX_WORKERS 256
#define PREDIS_MAX_INFLIGHT 20000
#define PREDIS_BACKOFF_MIN_MS 100
#define PREDIS_BACKOFF_MAX_MS 2000

typedef struct predis_conn {
    redisAsyncContext *ac;
    struct event_base *base;
    struct event *retry;
    bool up;         /* connected (or connecting with commands allowed) */
    bool connecting; /* a connect is in progress */
    unsigned backoff_ms;
    size_t inflight;
    char host[256];
    int port, db;
    char password[256];
} predis_conn_t;

static predis_conn_t *predis_conns[PREDIS_MAX_WORKERS];
static _Atomic uint64_t predis_fail_count;

uint64_t predis_failures(void)
{
    return atomic_load(&predis_fail_count);
}

/* redis://[:PASSWORD@]HOST[:PORT][/DB] */
static int predis_parse_url(predis_conn_t *c, const char *url)
{
    const char *p = url + 8;
    const char *at = strchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        snprintf(c->password, sizeof c->password, "%.*s", (int)(at - pw), pw);
        p = at + 1;
    }
    size_t hl = strcspn(p, ":/");
    if (!hl || hl >= sizeof c->host) return -1;
    memcpy(c->host, p, hl);
    c->host[hl] = '\0';
    p += hl;
    c->port = 6379;
    if (*p == ':') c->port = atoi(p + 1), p += 1 + strspn(p + 1, "0123456789");
    if (*p == '/') c->db = atoi(p + 1);
    return c->port > 0 && c->port < 65536 ? 0 : -1;
}

static void predis_connect(predis_conn_t *c);

static void predis_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    predis_connect(arg);
}

static void predis_schedule(predis_conn_t *c)
{
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : PREDIS_BACKOFF_MIN_MS;
    if (c->backoff_ms > PREDIS_BACKOFF_MAX_MS) c->backoff_ms = PREDIS_BACKOFF_MAX_MS;
    struct timeval tv = {c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000};
    evtimer_add(c->retry, &tv);
}

static void predis_on_connect(const redisAsyncContext *ac, int status)
{
    predis_conn_t *c = ac->data;
    c->connecting = false;
    if (status != REDIS_OK) {
        log_warn("redis: cannot connect to %s:%d: %s; retrying", c->host, c->port,
                 ac->errstr[0] ? ac->errstr : "error");
        c->ac = NULL; /* hiredis frees it */
        c->up = false;
        predis_schedule(c);
        return;
    }
    if (c->backoff_ms) log_info("redis: connected to %s:%d", c->host, c->port);
    c->backoff_ms = 0;
}

static void predis_on_disconnect(const redisAsyncContext *ac, int status)
{
    predis_conn_t *c = ac->data;
    if (c->ac == ac) {
        c->ac = NULL;
        c->up = false;
        c->connecting = false;
        log_warn("redis: connection to %s:%d lost; reconnecting", c->host, c->port);
        predis_schedule(c);
    }
}

static void predis_ignore(redisAsyncContext *ac, void *r, void *ud)
{
    (void)ac;
    (void)r;
    (void)ud;
}

static void predis_connect(predis_conn_t *c)
{
    redisAsyncContext *ac = redisAsyncConnect(c->host, c->port);
    if (!ac || ac->err) {
        if (ac) redisAsyncFree(ac);
        predis_schedule(c);
        return;
    }
    ac->data = c;
    redisLibeventAttach(ac, c->base);
    redisAsyncSetConnectCallback(ac, predis_on_connect);
    redisAsyncSetDisconnectCallback(ac, predis_on_disconnect);
    c->ac = ac;
    c->up = true; /* commands queue until the connection is made, bounded by their timeout */
    c->connecting = true;
    if (c->password[0]) redisAsyncCommand(ac, predis_ignore, NULL, "AUTH %s", c->password);
    if (c->db) redisAsyncCommand(ac, predis_ignore, NULL, "SELECT %d", c->db);
}

static predis_conn_t *predis_get(worker_t *w, const cfg_redis_t *rc)
{
    if (w->id < 0 || w->id >= PREDIS_MAX_WORKERS) return NULL;
    predis_conn_t *c = predis_conns[w->id];
    if (c) return c;
    if (!rc->url) return NULL; /* only calls after an admission pass no url */
    c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (predis_parse_url(c, rc->url) != 0) {
        log_error("redis: cannot parse url (expected redis://[:PASSWORD@]HOST[:PORT][/DB])");
        free(c);
        return NULL;
    }
    c->base = w->base;
    c->retry = evtimer_new(w->base, predis_retry_cb, c);
    predis_conns[w->id] = c;
    predis_connect(c);
    return c;
}

static void predis_reply(redisAsyncContext *ac, void *reply, void *ud)
{
    (void)ac;
    predis_call_t *call = ud;
    predis_conn_t *c = call->conn;
    c->inflight--;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR) {
        log_warn("redis: script error: %.200s", r->str);
        r = NULL;
    }
    if (call->timed_out) {
        call->done(call, r, true);
        return;
    }
    if (call->timer) {
        event_free(call->timer);
        call->timer = NULL;
    }
    if (!r) atomic_fetch_add(&predis_fail_count, 1);
    call->done(call, r, false);
}

static void predis_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    predis_call_t *call = arg;
    event_free(call->timer);
    call->timer = NULL;
    call->timed_out = true;
    atomic_fetch_add(&predis_fail_count, 1);
    call->done(call, NULL, false);
}

int predis_eval(worker_t *w, const cfg_redis_t *rc, predis_call_t *call, const char *script,
                int nkeys, const char *const *keys, int nargs, const char *const *args)
{
    predis_conn_t *c = predis_get(w, rc);
    if (!c || !c->up || !c->ac || c->inflight >= PREDIS_MAX_INFLIGHT) {
        atomic_fetch_add(&predis_fail_count, 1);
        return -1;
    }
    const char *argv[72];
    size_t lens[72];
    char nk[16];
    int argc = 0;
    if (nkeys + nargs + 3 > 72) return -1;
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[argc++] = "EVAL";
    argv[argc++] = script;
    argv[argc++] = nk;
    for (int i = 0; i < nkeys; i++) argv[argc++] = keys[i];
    for (int i = 0; i < nargs; i++) argv[argc++] = args[i];
    for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    call->timed_out = false;
    call->conn = c;
    call->timer = evtimer_new(c->base, predis_timeout, call);
    if (!call->timer) return -1;
    if (redisAsyncCommandArgv(c->ac, predis_reply, call, argc, argv, lens) != REDIS_OK) {
        event_free(call->timer);
        call->timer = NULL;
        atomic_fetch_add(&predis_fail_count, 1);
        return -1;
    }
    c->inflight++;
    uint64_t ms = rc->timeout_ms ? rc->timeout_ms : 50;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(call->timer, &tv);
    return 0;
}
