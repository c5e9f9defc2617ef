/*
 * redis.c — see redis.h. One rds_conn_t per client and worker id
 * (client->conns[wid]), touched only on that worker's thread until
 * rds_close_all (main thread, after the workers stopped). Its state:
 *   ac != NULL  connecting or connected: commands are sent (or queued);
 *   ac == NULL  down: the retry timer is armed, commands fail at once.
 * The context is never freed inside one of its own callbacks: a drop is
 * scheduled on the loop (rds_drop_cb) and frees it from there.
 */
#include "core/redis.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define RDS_MAX_OUTSTANDING 10000 /* commands per connection */
#define RDS_STALL_MS 10000        /* no reply for this long with commands outstanding: lost */
#define RDS_BACKOFF_MIN_MS 100
#define RDS_BACKOFF_MAX_MS 2000
#define RDS_MAX_ARGC_NOLENS 128 /* argc when lens are computed here */

typedef struct rds_conn {
    redisAsyncContext *ac;
    struct event_base *base;
    const char *name;     /* the client's, for log lines */
    struct event *retry;  /* reconnect timer */
    bool drop_pending;    /* rds_drop_cb is scheduled */
    bool drop_reconnect;  /* ... and reconnects at once (the URL changed) */
    bool closing;         /* rds_close_all: pending calls are late */
    unsigned backoff_ms;  /* current reconnect delay; 0 after a connect */
    size_t outstanding;   /* commands sent and not answered yet */
    uint64_t progress_ms; /* last reply (or first command after an idle spell) */
    uint64_t err_log_ms;  /* last error-reply log line (one a second at most) */
    char url[512];        /* what ac is (or will be) connected to; has the password */
    char host[256];       /* of url, for log lines */
    int port;
} rds_conn_t;

/* Clients that opened a connection (for rds_close_all); pushed by the worker
 * that opens a client's first one. */
static pthread_mutex_t rds_clients_mu = PTHREAD_MUTEX_INITIALIZER;
static rds_client_t *rds_clients;

uint64_t rds_failures(const rds_client_t *client)
{
    return atomic_load_explicit(&client->failures, memory_order_relaxed);
}

static void rds_fail(rds_client_t *client)
{
    atomic_fetch_add_explicit(&client->failures, 1, memory_order_relaxed);
}

static uint64_t rds_now_ms(void)
{
    return time_mono_ns() / 1000000;
}

/* redis://[:PASSWORD@]HOST[:PORT][/DB] */
typedef struct rds_url {
    char host[256];
    int port, db;
    char pass[256];
} rds_url_t;

static int rds_url_parse(const char *url, rds_url_t *u)
{
    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (strncmp(url, "redis://", 8) != 0) return -1;
    const char *p = url + 8;
    const char *at = strchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        size_t n = (size_t)(at - pw);
        if (n >= sizeof u->pass) return -1;
        memcpy(u->pass, pw, n);
        p = at + 1;
    }
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= sizeof u->host) return -1;
    memcpy(u->host, p, hl);
    p += hl;
    if (*p == ':') u->port = (int)strtol(p + 1, (char **)&p, 10);
    if (*p == '/') u->db = (int)strtol(p + 1, NULL, 10);
    return u->port > 0 && u->port < 65536 ? 0 : -1;
}

static void rds_schedule(rds_conn_t *c)
{
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : RDS_BACKOFF_MIN_MS;
    if (c->backoff_ms > RDS_BACKOFF_MAX_MS) c->backoff_ms = RDS_BACKOFF_MAX_MS;
    struct timeval tv = {c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000};
    evtimer_add(c->retry, &tv);
}

static void rds_on_connect(const redisAsyncContext *ac, int status)
{
    rds_conn_t *c = ac->data;
    if (c->ac != ac) return; /* dropped meanwhile */
    if (status != REDIS_OK) {
        log_warn("redis (%s): cannot connect to %s:%d: %s; retrying", c->name, c->host, c->port,
                 ac->errstr[0] ? ac->errstr : "error");
        c->ac = NULL; /* hiredis frees it after this callback */
        rds_schedule(c);
        return;
    }
    if (c->backoff_ms) log_info("redis (%s): connected to %s:%d", c->name, c->host, c->port);
    c->backoff_ms = 0;
}

static void rds_on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    rds_conn_t *c = ac->data;
    if (c->ac != ac) return; /* our own drop or close */
    c->ac = NULL;
    log_warn("redis (%s): connection to %s:%d lost; reconnecting", c->name, c->host, c->port);
    rds_schedule(c);
}

/* Open c->ac now (also the retry timer's callback: fd and what unused). */
static void rds_connect(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    rds_conn_t *c = arg;
    rds_url_t u;
    if (rds_url_parse(c->url, &u) != 0) {
        /* no retry: only a reload with another url (rds_get) tries again */
        log_error("redis (%s): cannot parse url (expected redis://[:PASSWORD@]HOST[:PORT][/DB])",
                  c->name);
        return;
    }
    snprintf(c->host, sizeof c->host, "%s", u.host);
    c->port = u.port;
    redisAsyncContext *ac = redisAsyncConnect(u.host, u.port);
    if (!ac || ac->err) {
        if (ac) redisAsyncFree(ac);
        explicit_bzero(u.pass, sizeof u.pass);
        rds_schedule(c);
        return;
    }
    ac->data = c;
    redisLibeventAttach(ac, c->base);
    redisAsyncSetConnectCallback(ac, rds_on_connect);
    redisAsyncSetDisconnectCallback(ac, rds_on_disconnect);
    if (u.pass[0]) redisAsyncCommand(ac, NULL, NULL, "AUTH %s", u.pass);
    if (u.db) redisAsyncCommand(ac, NULL, NULL, "SELECT %d", u.db);
    explicit_bzero(u.pass, sizeof u.pass);
    c->ac = ac;
}

/* Free the context from its own event (never inside a hiredis callback):
 * pending commands get their NULL reply; then reconnect. */
static void rds_drop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    rds_conn_t *c = arg;
    c->drop_pending = false;
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    if (ac) redisAsyncFree(ac);
    if (c->ac || evtimer_pending(c->retry, NULL)) return;
    if (c->drop_reconnect) {
        c->drop_reconnect = false;
        c->backoff_ms = 0;
        rds_connect(-1, 0, c);
    } else {
        rds_schedule(c);
    }
}

static void rds_drop(rds_conn_t *c, bool reconnect)
{
    c->drop_reconnect |= reconnect;
    if (c->drop_pending) return;
    struct timeval zero = {0, 0};
    c->drop_pending = event_base_once(c->base, -1, EV_TIMEOUT, rds_drop_cb, c, &zero) == 0;
}

/* client's connection on worker wid, ready for a command, or NULL (unavailable now). */
static rds_conn_t *rds_get(struct event_base *base, int wid, const char *url, rds_client_t *client)
{
    if (wid < 0 || wid >= RDS_MAX_WORKERS) return NULL;
    if (url && strlen(url) >= sizeof((rds_conn_t *)0)->url) {
        static atomic_bool said;
        if (!atomic_exchange(&said, true)) log_error("redis: url too long");
        return NULL;
    }
    rds_conn_t *c = client->conns[wid];
    if (!c) {
        if (!url) return NULL;
        c = calloc(1, sizeof *c);
        if (!c) return NULL;
        c->base = base;
        c->name = client->name;
        c->retry = evtimer_new(base, rds_connect, c);
        if (!c->retry) {
            free(c);
            return NULL;
        }
        snprintf(c->url, sizeof c->url, "%s", url);
        client->conns[wid] = c;
        pthread_mutex_lock(&rds_clients_mu);
        if (!client->listed) {
            client->listed = true;
            client->next = rds_clients;
            rds_clients = client;
        }
        pthread_mutex_unlock(&rds_clients_mu);
        rds_connect(-1, 0, c);
    } else if (url && strcmp(c->url, url) != 0) { /* a reload changed redis.url */
        snprintf(c->url, sizeof c->url, "%s", url);
        if (c->ac) {
            rds_drop(c, true);
        } else {
            evtimer_del(c->retry);
            c->backoff_ms = 0;
            rds_connect(-1, 0, c);
        }
        return NULL;
    }
    if (!c->ac || c->drop_pending || c->outstanding >= RDS_MAX_OUTSTANDING) return NULL;
    if (c->outstanding && rds_now_ms() - c->progress_ms >= RDS_STALL_MS) {
        log_warn("redis (%s): no reply from %s:%d for %d s; reconnecting", c->name, c->host,
                 c->port, RDS_STALL_MS / 1000);
        rds_drop(c, false);
        return NULL;
    }
    return c;
}

static void rds_reply(redisAsyncContext *ac, void *reply, void *ud)
{
    rds_conn_t *c = ac->data;
    rds_call_t *call = ud;
    c->outstanding--;
    redisReply *r = reply;
    if (r) c->progress_ms = rds_now_ms();
    if (r && r->type == REDIS_REPLY_ERROR) {
        uint64_t now = time_wall_ms();
        if (now - c->err_log_ms >= 1000) {
            c->err_log_ms = now;
            log_warn("redis (%s): command failed: %.200s", c->name, r->str);
        }
        r = NULL;
    }
    if (call->timer) {
        event_free(call->timer);
        call->timer = NULL;
    }
    if (call->timed_out || c->closing) {
        call->done(call, r, true);
        return;
    }
    if (!r) rds_fail(call->client);
    call->done(call, r, false);
}

/* Fire and forget: ud is the client. */
static void rds_reply_discard(redisAsyncContext *ac, void *reply, void *ud)
{
    rds_conn_t *c = ac->data;
    redisReply *r = reply;
    c->outstanding--;
    if (r) c->progress_ms = rds_now_ms();
    if (r && r->type == REDIS_REPLY_ERROR) rds_fail(ud);
}

static void rds_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rds_call_t *call = arg;
    event_free(call->timer);
    call->timer = NULL;
    call->timed_out = true;
    rds_fail(call->client);
    call->done(call, NULL, false);
}

int rds_command(struct event_base *base, int wid, const char *url, rds_client_t *client,
                rds_call_t *call, uint64_t timeout_ms, int argc, const char *const *argv,
                const size_t *lens)
{
    rds_conn_t *c = rds_get(base, wid, url, client);
    size_t lenbuf[RDS_MAX_ARGC_NOLENS];
    if (!lens && argc <= RDS_MAX_ARGC_NOLENS) {
        for (int i = 0; i < argc; i++) lenbuf[i] = strlen(argv[i]);
        lens = lenbuf;
    }
    if (!c || !lens) {
        rds_fail(client);
        return -1;
    }
    if (call) {
        call->timed_out = false;
        call->client = client;
        call->timer = timeout_ms ? evtimer_new(c->base, rds_timeout, call) : NULL;
        if (timeout_ms && !call->timer) {
            rds_fail(client);
            return -1;
        }
    }
    if (redisAsyncCommandArgv(c->ac, call ? rds_reply : rds_reply_discard,
                              call ? (void *)call : (void *)client, argc, (const char **)argv,
                              lens) != REDIS_OK) {
        if (call && call->timer) {
            event_free(call->timer);
            call->timer = NULL;
        }
        rds_fail(client);
        return -1;
    }
    if (!c->outstanding++) c->progress_ms = rds_now_ms();
    if (call && call->timer) {
        struct timeval tv = {(time_t)(timeout_ms / 1000),
                             (suseconds_t)((timeout_ms % 1000) * 1000)};
        evtimer_add(call->timer, &tv);
    }
    return 0;
}

static void rds_close(rds_conn_t *c)
{
    c->closing = true;
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    if (ac) redisAsyncFree(ac); /* pending calls: done(NULL, true) */
    event_free(c->retry);
    explicit_bzero(c->url, sizeof c->url);
    free(c);
}

void rds_close_all(void)
{
    pthread_mutex_lock(&rds_clients_mu);
    rds_client_t *list = rds_clients;
    rds_clients = NULL;
    pthread_mutex_unlock(&rds_clients_mu);
    for (rds_client_t *cl = list, *next; cl; cl = next) {
        next = cl->next;
        for (int i = 0; i < RDS_MAX_WORKERS; i++) {
            rds_conn_t *c = cl->conns[i];
            cl->conns[i] = NULL;
            if (c) rds_close(c);
        }
        cl->next = NULL;
        cl->listed = false;
    }
}
