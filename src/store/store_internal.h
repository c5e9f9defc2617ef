/*
 * store_internal — what store.c (queue, writer thread, dispatch) shares with
 * the two backends (store_sqlite.c, store_pg.c). Not for use outside
 * src/store, except the test hooks at the bottom (tests/unit/test_store.c).
 *
 * A backend is a table of functions over an opaque connection. store.c owns
 * two connections per store: the writer's (touched only by the writer thread
 * once it runs; store_open uses it first to migrate) and the reader's
 * (synchronous loads and ping, serialised by a mutex, so one thread at a time).
 * Backends never lock anything themselves and never see the queue.
 *
 * Return conventions: 0 ok, -1 error with a message in err (already free of
 * passwords), and for apply() also STORE_NOT_FOUND for a delete that matched
 * nothing. A backend reports a lost connection through alive() so the writer
 * knows to reconnect instead of retrying on a dead handle.
 */
#ifndef SKULD_STORE_INTERNAL_H
#define SKULD_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define STORE__ERRLEN 256

typedef enum {
    STORE__OP_MODEL_PUT = 1,
    STORE__OP_MODEL_DELETE,
    STORE__OP_HEALTH_PUT,
    STORE__OP_KEY_PUT,     /* name = id, spec = metadata, str[0] = hash */
    STORE__OP_SPEND_ADD,   /* str[0..4] = request_id, key_id, team, user, model */
    STORE__OP_SECRET_PUT,  /* name = provider, spec = sealed text */
    STORE__OP_CACHE_PUT,   /* response cache: name = key (hex), spec = value, expires_ms */
    STORE__OP_CACHE_PURGE, /* response cache: delete entries with expires_ms <= op->expires_ms */
} store__op_kind_t;

/* One queued write. Allocated by the submitter in a single block (strings
 * follow the struct), owned by the queue, then by the writer, then by the
 * delivery on the submitter's loop, which frees it. */
typedef struct store__op {
    struct store__op *next;
    store__op_kind_t kind;
    const char *name; /* model name (all kinds) */
    const char *spec; /* MODEL_PUT only */
    uint64_t probes, successes;
    int64_t last_probe_ms;
    bool up;
    const char *str[5]; /* KEY_PUT, SPEND_ADD (NULL = SQL NULL) */
    int64_t num[6];     /* SPEND_ADD: ts_ms, prompt, completion, latency_ms, status, op_id */
    double cost_usd;    /* SPEND_ADD */
    int64_t expires_ms; /* CACHE_PUT, CACHE_PURGE */
    struct event_base *base;
    store_done_fn done;
    void *ud;
    int rc;
    char err[STORE__ERRLEN];
} store__op_t;

typedef struct store__conn store__conn_t; /* backend-specific */

typedef struct store__backend {
    const char *name; /* "sqlite" / "postgres" */
    store__conn_t *(*connect)(const char *url, char *err, size_t errlen);
    void (*disconnect)(store__conn_t *c);
    /* false once the connection is known to be broken (reconnect needed). */
    bool (*alive)(store__conn_t *c);
    int (*migrate)(store__conn_t *c, char *err, size_t errlen);
    int (*begin)(store__conn_t *c, char *err, size_t errlen);
    int (*commit)(store__conn_t *c, char *err, size_t errlen);
    void (*rollback)(store__conn_t *c);
    int (*apply)(store__conn_t *c, const store__op_t *op, char *err, size_t errlen);
    int (*model_load)(store__conn_t *c, void (*fn)(void *ud, const char *name, const char *spec),
                      void *ud, char *err, size_t errlen);
    int (*health_load)(store__conn_t *c, void (*fn)(void *ud, const store_health_t *h), void *ud,
                       char *err, size_t errlen);
    bool (*ping)(store__conn_t *c);
    int (*secret_load)(store__conn_t *c, void (*fn)(void *ud, const char *name, const char *sealed),
                       void *ud, char *err, size_t errlen);
    int (*key_load)(store__conn_t *c,
                    void (*fn)(void *ud, const char *id, const char *hash, const char *spec),
                    void *ud, char *err, size_t errlen);
    int (*spend_load)(store__conn_t *c, int64_t since_ms,
                      void (*fn)(void *ud, const char *key_id, const char *team, int64_t day,
                                 double cost_usd),
                      void *ud, char *err, size_t errlen);
    int (*cache_load)(store__conn_t *c, int64_t now_ms,
                      void (*fn)(void *ud, const char *key, const char *value, int64_t expires_ms),
                      void *ud, char *err, size_t errlen);
} store__backend_t;

extern const store__backend_t store__sqlite;
extern const store__backend_t store__pg;

/* A migration: its version and the SQL (one or more statements, constants,
 * no values). Each backend lists its own, versions 1..n in order. */
typedef struct store__migration {
    int version;
    const char *sql;
} store__migration_t;

/* Copies url into out with any password replaced by "***": the password of
 * a URI's userinfo (scheme://user:PASSWORD@host) and a password=... query or
 * keyword parameter. Used for every message that mentions a URL. */
void store__redact(const char *url, char *out, size_t outlen);
/* Replaces every occurrence of secret (if non-empty) in msg by "***". */
void store__scrub(char *msg, size_t msglen, const char *secret);

/* The migrations guard shared by the backends: 0 when the database's schema
 * version cur is one this binary knows (<= known), else -1 with err set. */
int store__check_version(int cur, int known, char *err, size_t errlen);

/* ---- test hooks ---- */
/* While paused, the writer takes no new batch (submissions queue up);
 * store_close un-pauses. */
void store__pause(store_t *s, bool paused);
typedef struct store__stats {
    uint64_t batches;    /* transactions attempted for batches */
    uint64_t retried;    /* batches that failed and were retried op by op */
    uint64_t ops;        /* ops completed (any rc) */
    uint64_t max_batch;  /* largest batch taken */
    uint64_t reconnects; /* successful reconnects of the writer */
    uint64_t kept;       /* fire-and-forget ops put back while the store was unreachable */
    uint64_t dropped;    /* fire-and-forget ops dropped: queue full, or closing unreachable */
} store__stats_t;
void store__get_stats(store_t *s, store__stats_t *out);

#endif
