/*
 * cache redis — see redis.h.
 */
#include "cache/redis.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define RSLOTS 256
#define RKEY_PREFIX "skuld:cache:"

typedef struct rslot {
    redisAsyncContext *ac;
    struct event_base *base;
    uint64_t retry_at_ms;
    bool drop_pending, drop_now;
    char url[512]; /* what ac is connected to (a reload may change redis.url) */
} rslot_t;

static rslot_t rslots[RSLOTS];
static atomic_uint_fast64_t rerrors;

uint64_t cache_redis_errors(void)
{
    return atomic_load_explicit(&rerrors, memory_order_relaxed);
}

/* redis://[:PASSWORD@]HOST[:PORT][/DB] */
typedef struct rurl {
    char host[256];
    int port, db;
    char pass[256];
} rurl_t;

static int rurl_parse(const char *url, rurl_t *u)
{
    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (!url || strncmp(url, "redis://", 8) != 0) return -1;
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

static void r_on_connect(const redisAsyncContext *ac, int status)
{
    rslot_t *s = ac->data;
    if (status != REDIS_OK) {
        atomic_fetch_add_explicit(&rerrors, 1, memory_order_relaxed);
        log_warn("cache: redis connection failed: %s", ac->errstr);
        if (s->ac == ac) s->ac = NULL; /* hiredis frees it after this callback */
        s->retry_at_ms = time_wall_ms() + 1000;
    }
}

static void r_on_disconnect(const redisAsyncContext *ac, int status)
{
    rslot_t *s = ac->data;
    if (s->ac == ac) s->ac = NULL;
    if (status != REDIS_OK) s->retry_at_ms = time_wall_ms() + 1000;
}

static void r_drop(evutil_socket_t fd, short what, void *arg);

static redisAsyncContext *r_conn(struct event_base *base, int wid, const cfg_redis_t *rc)
{
    if (wid < 0 || wid >= RSLOTS || !rc || !rc->url) return NULL;
    rslot_t *s = &rslots[wid];
    if (s->ac && strcmp(s->url, rc->url) != 0) { /* redis.url changed: reconnect */
        if (!s->drop_pending) {
            struct timeval zero = {0, 0};
            s->drop_pending = event_base_once(s->base, -1, EV_TIMEOUT, r_drop, s, &zero) == 0;
            s->drop_now = s->drop_pending;
        }
        return NULL;
    }
    if (s->ac) return s->ac;
    if (time_wall_ms() < s->retry_at_ms) return NULL;
    rurl_t u;
    if (rurl_parse(rc->url, &u) != 0) {
        s->retry_at_ms = time_wall_ms() + 60000;
        log_error("cache: cannot parse redis.url");
        return NULL;
    }
    redisAsyncContext *ac = redisAsyncConnect(u.host, u.port);
    if (!ac || ac->err) {
        atomic_fetch_add_explicit(&rerrors, 1, memory_order_relaxed);
        if (ac) redisAsyncFree(ac);
        s->retry_at_ms = time_wall_ms() + 1000;
        return NULL;
    }
    ac->data = s;
    s->base = base;
    snprintf(s->url, sizeof s->url, "%s", rc->url);
    redisLibeventAttach(ac, base);
    redisAsyncSetConnectCallback(ac, r_on_connect);
    redisAsyncSetDisconnectCallback(ac, r_on_disconnect);
    if (u.pass[0]) redisAsyncCommand(ac, NULL, NULL, "AUTH %s", u.pass);
    if (u.db) redisAsyncCommand(ac, NULL, NULL, "SELECT %d", u.db);
    explicit_bzero(u.pass, sizeof u.pass);
    s->ac = ac;
    return ac;
}

/* Drop a slot's connection from its own event (never inside a hiredis callback). */
static void r_drop(evutil_socket_t fd, short what, void *arg)
{
    rslot_t *s = arg;
    s->drop_pending = false;
    redisAsyncContext *ac = s->ac;
    s->ac = NULL;
    /* a changed URL connects again at once, a stalled server after a second */
    s->retry_at_ms = s->drop_now ? 0 : time_wall_ms() + 1000;
    s->drop_now = false;
    if (ac) redisAsyncFree(ac); /* pending GETs get a NULL reply and free themselves */
}

static void rkey(cache_key_t k, char out[sizeof RKEY_PREFIX + 32])
{
    snprintf(out, sizeof RKEY_PREFIX + 32, RKEY_PREFIX "%016llx%016llx", (unsigned long long)k.hi,
             (unsigned long long)k.lo);
}

typedef struct rget {
    cache_redis_get_fn fn;
    void *ud;
    struct event *timer;
    rslot_t *slot;
    bool answered;
} rget_t;

static void rget_reply(redisAsyncContext *ac, void *r, void *priv)
{
    rget_t *g = priv;
    redisReply *rep = r;
    if (!g->answered) {
        g->answered = true;
        event_del(g->timer);
        if (rep && rep->type == REDIS_REPLY_STRING) {
            g->fn(g->ud, 1, rep->str, (size_t)rep->len);
        } else if (rep && rep->type == REDIS_REPLY_NIL) {
            g->fn(g->ud, 0, NULL, 0);
        } else {
            atomic_fetch_add_explicit(&rerrors, 1, memory_order_relaxed);
            g->fn(g->ud, -1, NULL, 0);
        }
    }
    event_free(g->timer);
    free(g);
}

static void rget_timeout(evutil_socket_t fd, short what, void *arg)
{
    rget_t *g = arg;
    g->answered = true;
    atomic_fetch_add_explicit(&rerrors, 1, memory_order_relaxed);
    rslot_t *s = g->slot;
    g->fn(g->ud, -1, NULL, 0);
    /* The reply will come (or the NULL of the drop) and free g. */
    if (!s->drop_pending && s->ac) {
        s->drop_pending = true;
        struct timeval zero = {0, 0};
        if (event_base_once(s->base, -1, EV_TIMEOUT, r_drop, s, &zero) != 0)
            s->drop_pending = false;
    }
}

int cache_redis_get(struct event_base *base, int wid, const cfg_redis_t *rc, cache_key_t key,
                    cache_redis_get_fn fn, void *ud)
{
    redisAsyncContext *ac = r_conn(base, wid, rc);
    if (!ac) return -1;
    rget_t *g = calloc(1, sizeof *g);
    if (!g) return -1;
    g->fn = fn;
    g->ud = ud;
    g->slot = &rslots[wid];
    g->timer = evtimer_new(base, rget_timeout, g);
    char k[sizeof RKEY_PREFIX + 32];
    rkey(key, k);
    if (!g->timer || redisAsyncCommand(ac, rget_reply, g, "GET %s", k) != REDIS_OK) {
        if (g->timer) event_free(g->timer);
        free(g);
        atomic_fetch_add_explicit(&rerrors, 1, memory_order_relaxed);
        return -1;
    }
    uint64_t ms = rc->timeout_ms ? rc->timeout_ms : 50;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(g->timer, &tv);
    return 0;
}

void cache_redis_set(struct event_base *base, int wid, const cfg_redis_t *rc, cache_key_t key,
                     const void *val, size_t len, uint64_t ttl_ms)
{
    redisAsyncContext *ac = r_conn(base, wid, rc);
    if (!ac) return;
    char k[sizeof RKEY_PREFIX + 32];
    rkey(key, k);
    if (redisAsyncCommand(ac, NULL, NULL, "SET %s %b PX %llu", k, val, len,
                          (unsigned long long)(ttl_ms ? ttl_ms : 1)) != REDIS_OK)
        atomic_fetch_add_explicit(&rerrors, 1, memory_order_relaxed);
}

static void rpurge_reply(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *rep = r;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_ARRAY)
        return;
    redisReply *keys = rep->element[1];
    if (keys->elements) {
        size_t n = keys->elements + 1;
        const char **argv = calloc(n, sizeof *argv);
        size_t *lens = calloc(n, sizeof *lens);
        if (argv && lens) {
            argv[0] = "UNLINK";
            lens[0] = 6;
            for (size_t i = 0; i < keys->elements; i++) {
                argv[i + 1] = keys->element[i]->str;
                lens[i + 1] = (size_t)keys->element[i]->len;
            }
            redisAsyncCommandArgv(ac, NULL, NULL, (int)n, argv, lens);
        }
        free(argv);
        free(lens);
    }
    if (strcmp(rep->element[0]->str, "0") != 0)
        redisAsyncCommand(ac, rpurge_reply, NULL, "SCAN %s MATCH " RKEY_PREFIX "* COUNT 1000",
                          rep->element[0]->str);
}

int cache_redis_purge(struct event_base *base, int wid, const cfg_redis_t *rc)
{
    redisAsyncContext *ac = r_conn(base, wid, rc);
    if (!ac) return -1;
    return redisAsyncCommand(ac, rpurge_reply, NULL, "SCAN 0 MATCH " RKEY_PREFIX "* COUNT 1000") ==
                   REDIS_OK
               ? 0
               : -1;
}

void cache_redis_close_all(void)
{
    for (int i = 0; i < RSLOTS; i++) {
        redisAsyncContext *ac = rslots[i].ac;
        rslots[i].ac = NULL;
        if (ac) redisAsyncFree(ac);
    }
}
