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

#include <pthread.h>
#include <stdatomic.h>
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
    unsigned attempts;  /* failed attempts so far (the retry queue's bound) */
    struct event_base *base;
    store_done_fn done;
    void *ud;
    int rc;
    char err[STORE__ERRLEN];
} store__op_t;

typedef struct store__conn store__conn_t; /* backend-specific */

typedef struct store__backend {
    const char *name; /* "sqlite" / "postgres" */
    /* timeout_ms: store.timeout, the bound of connecting and of every call. */
    store__conn_t *(*connect)(const char *url, int timeout_ms, char *err, size_t errlen);
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

/* True for a write someone waits for (a registration, a key, a secret): it
 * fails fast. The log-like kinds (spend rows, cache entries, health) are
 * kept and retried instead, and their callback, if any, hears only the final
 * outcome. */
bool store__awaited(const store__op_t *op);
/* The table an op writes (for the failure counters). */
store_table_t store__op_table(const store__op_t *op);

/* ---- store_retry.c: backoff and the retry queue (writer thread only) ---- */
#define STORE__BACKOFF_MIN_MS 100
#define STORE__BACKOFF_MAX_MS 5000
#define STORE__RETRY_ATTEMPTS 12 /* ~45 s of backoff before a write is given up */
#define STORE__QUEUE_MAX 65536   /* the write queue's cap, and the retry queue's */

/* The next delay of a doubling backoff: 0 -> MIN, then x2 up to MAX. */
unsigned store__backoff_next(unsigned cur_ms);

typedef struct store__retryq {
    store__op_t *head, *tail;
    size_t n;
    uint64_t due_ns;     /* when the head may be tried again (monotonic) */
    unsigned backoff_ms; /* the delay armed by the last failed round */
} store__retryq_t;
/* Failed ops (a chain) into the queue: each one's attempts++ (unless
 * !count: the store was unreachable, nothing was really tried), and one past
 * STORE__RETRY_ATTEMPTS, or past the cap, goes to *gone instead (appended;
 * the caller counts and drops them). front: a retried batch goes back to the
 * head, in order; else new failures go to the tail. A failed retry round
 * (front) doubles the backoff; the first failure into an empty queue arms it.
 * Returns how many were queued. */
size_t store__retryq_put(store__retryq_t *q, store__op_t *ops, bool front, bool count,
                         uint64_t now_ns, store__op_t **gone);
/* Up to max ops from the head when due (or force), in order, count in *n. */
store__op_t *store__retryq_take(store__retryq_t *q, size_t max, uint64_t now_ns, bool force,
                                size_t *n);
/* A retried batch committed: the backoff resets and the rest is due now. */
void store__retryq_ok(store__retryq_t *q, uint64_t now_ns);

typedef struct store__stats {
    uint64_t batches;    /* transactions attempted for batches */
    uint64_t retried;    /* batches that failed and were retried op by op */
    uint64_t ops;        /* ops completed (any rc) */
    uint64_t max_batch;  /* largest batch taken */
    uint64_t reconnects; /* successful reconnects of the writer */
    uint64_t kept;       /* fire-and-forget ops put back while the store was unreachable */
    uint64_t dropped;    /* fire-and-forget ops dropped: queue full, or closing unreachable */
} store__stats_t;

/* ---- the store (store.c; read path store_read.c; status store_status.c) ---- */
struct store {
    const store__backend_t *be;
    char *url;            /* as given (may hold a password): used to connect only */
    char url_safe[512];   /* redacted, for messages */
    int timeout_ms;       /* store.timeout */
    store__conn_t *wconn; /* writer thread's */

    pthread_mutex_t rmu; /* guards rconn */
    store__conn_t *rconn;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    store__op_t *head, *tail;
    size_t queued;
    size_t awaited;     /* queued awaited ops: the writer must not linger */
    uint64_t oldest_ns; /* when the queue last became non-empty (monotonic) */
    bool stopping, paused;
    uint64_t hold_until_ns; /* unreachable: fire-and-forget ops wait until then */
    uint64_t op_nonce;      /* random at open: spend rows' write ids are op_nonce + op_seq */
    uint64_t op_seq;        /* atomic */
    store__stats_t stats;
    /* write accounting (store_status.c) */
    uint64_t wfail[STORE_NTABLES], wdrop[STORE_NTABLES];
    uint64_t log_fail, log_drop; /* since the last failure log line */
    uint64_t next_log_ns;
    bool writes_failing; /* the last batch failed entirely */
    int64_t last_fail_ms;
    store_table_t last_fail_table;
    char last_fail_err[STORE__ERRLEN];
    size_t retry_pending; /* copy of retry.n for readers */

    pthread_t thread;
    /* writer thread only */
    uint64_t next_connect_ns;
    unsigned backoff_ms;
    store__retryq_t retry;

    /* the monitor (store_status.c) */
    pthread_t mon;
    bool mon_running;
    pthread_mutex_t mmu; /* guards the monitor's wait and the fields below */
    pthread_cond_t mcv;
    bool mon_stop;
    bool reachable;         /* the last ping answered */
    uint64_t ping_since_ns; /* a ping in flight since (0: none) */
    int64_t checked_ms;
    void (*refresh)(void *ud, store_t *s);
    void *refresh_ud;
    unsigned ping_ms, refresh_ms;
};

/* store_status.c: after each batch, on the writer thread — counts the failed
 * ops (rc < 0) by table, notes the last error, and records whether the
 * batch failed entirely. */
void store__account(store_t *s, const store__op_t *ops);
/* Ops given up (chain, still linked): counted by table. */
void store__account_dropped(store_t *s, const store__op_t *ops);
/* The summary line of failures since the last one, at most one per
 * STORE__FAIL_LOG_MS (force: now, if there is anything to say). */
void store__status_log(store_t *s, bool force);
/* store_read.c: store_ping for the monitor: the reason goes to err, not to
 * the log (the monitor logs changes only). */
bool store__ping_quiet(store_t *s, char *err, size_t errlen);
/* store_close: the monitor stops (joins it: at most one ping or refresh). */
void store__monitor_stop(store_t *s);

/* ---- test hooks ---- */
/* While paused, the writer takes no new batch (submissions queue up);
 * store_close un-pauses. */
void store__pause(store_t *s, bool paused);
void store__get_stats(store_t *s, store__stats_t *out);

#endif
