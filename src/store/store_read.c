/*
 * store_read.c — the store's synchronous read path: loads at start-up (and
 * the monitor's key refresh) and store_ping, on a second connection (the
 * reader), opened lazily, serialised by s->rmu, reopened if broken. Every
 * call blocks its caller, bounded by store.timeout per statement (plus one
 * reconnect): start-up, the monitor, or off-loop threads only.
 */
#include "store/store_internal.h"

#include <stdio.h>

#include "core/log.h"

/* With s->rmu held: a live reader connection, or NULL (err set). */
static store__conn_t *store__reader(store_t *s, char *err, size_t errlen)
{
    if (s->rconn && s->be->alive(s->rconn)) return s->rconn;
    if (s->rconn) {
        s->be->disconnect(s->rconn);
        s->rconn = NULL;
    }
    s->rconn = s->be->connect(s->url, s->timeout_ms, err, errlen);
    return s->rconn;
}

/* The synchronous read path: runs one read on the reader connection; if
 * the connection turns out dead (server restarted, idle connection killed),
 * reconnects and tries once more. */
typedef struct store__read {
    int kind; /* 0 ping, 1 models, 2 health, 3 keys, 4 secrets, 5 cache */
    void (*kfn)(void *ud, const char *id, const char *hash, const char *spec);
    void (*cfn)(void *ud, const char *key, const char *value, int64_t expires_ms);
    int64_t now_ms;
    void (*sfn)(void *ud, const char *key_id, const char *team, int64_t day, double cost_usd);
    void (*mfn)(void *ud, const char *name, const char *spec_json);
    void (*hfn)(void *ud, const store_health_t *h);
    void *ud;
    char *err; /* ping from the monitor: the error goes here, not to the log */
    size_t errlen;
} store__read_t;

static int store__read(store_t *s, const store__read_t *rd)
{
    char own[STORE__ERRLEN] = "";
    char *err = rd->err ? rd->err : own;
    size_t errlen = rd->err ? rd->errlen : sizeof own;
    int rc = -1;
    err[0] = '\0';
    pthread_mutex_lock(&s->rmu);
    for (int attempt = 0; attempt < 2; attempt++) {
        store__conn_t *c = store__reader(s, err, errlen);
        if (!c) break;
        if (rd->kind == 0) {
            rc = s->be->ping(c) ? 0 : -1;
            if (rc) snprintf(err, errlen, "%s: no answer to the ping", s->url_safe);
        } else if (rd->kind == 1)
            rc = s->be->model_load(c, rd->mfn, rd->ud, err, errlen);
        else if (rd->kind == 2)
            rc = s->be->health_load(c, rd->hfn, rd->ud, err, errlen);
        else if (rd->kind == 3)
            rc = s->be->key_load(c, rd->kfn, rd->ud, err, errlen);
        else if (rd->kind == 5)
            rc = s->be->cache_load(c, rd->now_ms, rd->cfn, rd->ud, err, errlen);
        else if (rd->kind == 6)
            rc = s->be->spend_load(c, rd->now_ms, rd->sfn, rd->ud, err, errlen);
        else
            rc = s->be->secret_load(c, rd->mfn, rd->ud, err, errlen);
        if (rc == 0 || s->be->alive(c)) break;
    }
    pthread_mutex_unlock(&s->rmu);
    if (rc == 0) err[0] = '\0';
    if (rc != 0 && err[0] && !rd->err) log_warn("store: %s", err);
    return rc;
}

bool store__ping_quiet(store_t *s, char *err, size_t errlen)
{
    store__read_t rd = {.kind = 0, .err = err, .errlen = errlen};
    return store__read(s, &rd) == 0;
}

bool store_ping(store_t *s)
{
    store__read_t rd = {.kind = 0};
    return store__read(s, &rd) == 0;
}

int store_model_load(store_t *s, void (*fn)(void *ud, const char *name, const char *spec_json),
                     void *ud)
{
    store__read_t rd = {.kind = 1, .mfn = fn, .ud = ud};
    return store__read(s, &rd);
}

int store_health_load(store_t *s, void (*fn)(void *ud, const store_health_t *h), void *ud)
{
    store__read_t rd = {.kind = 2, .hfn = fn, .ud = ud};
    return store__read(s, &rd);
}

int store_key_load(store_t *s,
                   void (*fn)(void *ud, const char *id, const char *hash_hex, const char *spec),
                   void *ud)
{
    store__read_t rd = {.kind = 3, .kfn = fn, .ud = ud};
    return store__read(s, &rd);
}

int store_secret_load(store_t *s, void (*fn)(void *ud, const char *provider, const char *sealed),
                      void *ud)
{
    store__read_t rd = {.kind = 4, .mfn = fn, .ud = ud};
    return store__read(s, &rd);
}

int store_spend_load(store_t *s, int64_t since_ms,
                     void (*fn)(void *ud, const char *key_id, const char *team, int64_t day,
                                double cost_usd),
                     void *ud)
{
    store__read_t rd = {.kind = 6, .sfn = fn, .ud = ud, .now_ms = since_ms};
    return store__read(s, &rd);
}

int store_cache_load(store_t *s, int64_t now_ms,
                     void (*fn)(void *ud, const char *key, const char *value, int64_t expires_ms),
                     void *ud)
{
    store__read_t rd = {.kind = 5, .cfn = fn, .ud = ud, .now_ms = now_ms};
    return store__read(s, &rd);
}
