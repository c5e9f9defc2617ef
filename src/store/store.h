/*
 * store — durable state behind one API, two backends: SQLite (embedded
 * default, `sqlite://PATH`, WAL mode) and PostgreSQL (`postgres://...` or
 * `postgresql://...`, libpq).
 *
 * Threads: store_open/store_close and the synchronous reads (store_*_load)
 * run on the calling thread and may block (each call at most about twice
 * store.timeout): use them at start-up, from the monitor's refresh or from a
 * non-loop thread only; the control thread asks store_status instead. Every write goes through one
 * writer thread that owns its own connection, takes queued operations in batches (one transaction
 * per batch) and reports each operation's outcome through its callback *on the caller's event loop*
 * (via the base given at submit time). A write is acknowledged (callback with rc 0) only after its
 * transaction committed, so an acknowledged write survives kill -9. Event loops never wait on the
 * database.
 *
 * Versioned migrations (schema_migrations table) are applied by store_open on
 * both backends. All SQL uses prepared statements / parameters, never string
 * interpolation of values.
 */
#ifndef SKULD_STORE_H
#define SKULD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
typedef struct store store_t;

/* store.timeout's default: the bound of every database call. */
#define STORE_TIMEOUT_DEFAULT_MS 5000

/* Opens (creating the SQLite file if needed), migrates, starts the writer.
 * timeout_ms (store.timeout; <= 0: the default) bounds connecting and every
 * statement: PostgreSQL connect_timeout, TCP keepalives, tcp_user_timeout,
 * statement_timeout and a client-side deadline; SQLite busy_timeout.
 * NULL on failure with a message in err (never containing a password). */
store_t *store_open(const char *url, int timeout_ms, char *err, size_t errlen);
/* Stops the monitor, drains queued writes (their callbacks still fire if
 * their loops still run), stops the writer, closes. */
void store_close(store_t *s);
const char *store_backend(const store_t *s); /* "sqlite" or "postgres" */
/* Liveness check (blocks up to about twice the timeout; call off-loop). */
bool store_ping(store_t *s);

/* The tables writes go to, for the failure counters. */
typedef enum {
    STORE_T_MODELS,
    STORE_T_HEALTH,
    STORE_T_API_KEYS,
    STORE_T_SPEND_LOG,
    STORE_T_PROVIDER_SECRETS,
    STORE_T_CACHE_ENTRIES,
    STORE_NTABLES
} store_table_t;
extern const char *const store_table_names[STORE_NTABLES];

/* The monitor: a thread that pings the store every ping_ms and calls
 * refresh(ud, s) every refresh_ms (may be NULL), so no other thread has to
 * wait on the database to know whether it answers. 0 or -1. */
int store_monitor_start(store_t *s, unsigned ping_ms, unsigned refresh_ms,
                        void (*refresh)(void *ud, store_t *s), void *ud);

/* What the store knows of its health, without touching the database. */
typedef struct store_status {
    bool reachable;     /* monitored: the last ping answered, and none is overdue */
    int64_t checked_ms; /* wall time of the last finished ping (0: none yet) */
    uint64_t write_failures[STORE_NTABLES]; /* failed write attempts, by table */
    uint64_t writes_dropped[STORE_NTABLES]; /* writes given up, by table */
    size_t retry_pending;                   /* failed writes waiting for a retry */
    size_t queued;                          /* writes waiting in the queue */
    bool writes_failing;                    /* the last batch of writes failed entirely */
    int64_t last_failure_ms;                /* wall time of the last failed write (0: none) */
    store_table_t last_failure_table;
    char last_error[256]; /* of the last failed write (no password) */
} store_status_t;
void store_status(store_t *s, store_status_t *out);
/* For /readyz (from store_status; never touches the database): NULL when
 * ready, else the error code ("store_unreachable", "store_write_failing")
 * with a one-line detail (counts by table, the last error). s NULL: ready. */
const char *store_readiness(store_t *s, char *detail, size_t n);
/* skuld_store_write_failures_total{table}, skuld_store_writes_dropped_total
 * {table}, skuld_store_write_retry_pending, skuld_store_up (s NULL: none). */
struct buf;
void store_metrics_render(store_t *s, struct buf *o);

/* Completion of an asynchronous write, run on the submitter's loop thread
 * (on the writer thread when the write was submitted with base == NULL).
 * rc: 0 committed; STORE_NOT_FOUND (delete only: nothing to delete, nothing
 * changed — still a success, deletes are idempotent); -1 failed, err says
 * why (never a password; err is NULL unless rc == -1). Each operation's
 * callback runs exactly once, provided its loop keeps running until it has
 * (see store_close), and never inside the submitting call — except when
 * base is NULL and the write cannot even be queued (queue of 65536 full,
 * store closing, missing name), or when malloc fails for the op itself: then
 * it fails at once, inline. */
typedef void (*store_done_fn)(void *ud, int rc, const char *err);
#define STORE_NOT_FOUND 1

/* ---- model registry: deployments registered at runtime ---- */
/* spec_json: the deployment as a JSON object (same keys as a config model);
 * the database rejects anything else (that op alone fails, rc -1). Upsert,
 * idempotent by name: the same spec again changes nothing; a new spec
 * replaces the old one and keeps the model's place in registration order. */
void store_model_put(store_t *s, const char *name, const char *spec_json, struct event_base *base,
                     store_done_fn done, void *ud);
void store_model_delete(store_t *s, const char *name, struct event_base *base, store_done_fn done,
                        void *ud);
/* Synchronous read of every registered model, in registration order.
 * Calls fn(name, spec_json) for each; returns 0 or -1. */
int store_model_load(store_t *s, void (*fn)(void *ud, const char *name, const char *spec_json),
                     void *ud);

/* ---- deployment health (from the health checker) ---- */
typedef struct store_health {
    const char *model;
    uint64_t probes, successes;
    int64_t last_probe_ms; /* wall clock */
    bool up;
} store_health_t;
/* Upsert by model. Fire-and-forget (done may be NULL). */
void store_health_put(store_t *s, const store_health_t *h, struct event_base *base,
                      store_done_fn done, void *ud);
int store_health_load(store_t *s, void (*fn)(void *ud, const store_health_t *h), void *ud);

/* ---- virtual API keys and the spend log (issue 8, policy/) ---- */
/* A key: id, SHA-256 of the secret (hex), and its metadata as a JSON object
 * (prefix, name, team, user, limits, budget, expiry, revoked...). The secret
 * itself is never stored. Upsert by id. */
void store_key_put(store_t *s, const char *id, const char *hash_hex, const char *spec_json,
                   struct event_base *base, store_done_fn done, void *ud);
/* Synchronous read of every key (revoked ones too), in creation order. */
int store_key_load(store_t *s,
                   void (*fn)(void *ud, const char *id, const char *hash_hex, const char *spec),
                   void *ud);

/* One row per finished inference request. Fire-and-forget (done may be NULL). */
typedef struct store_spend {
    const char *request_id, *key_id, *team, *user, *model; /* may be NULL */
    int64_t ts_ms, prompt_tokens, completion_tokens, latency_ms;
    int status;
    double cost_usd;
} store_spend_t;
/* Provider API keys sealed by policy/secrets.c (AES-256-GCM; the store sees
 * only the sealed text). Upsert by provider name. */
void store_secret_put(store_t *s, const char *provider, const char *sealed, struct event_base *base,
                      store_done_fn done, void *ud);
int store_secret_load(store_t *s, void (*fn)(void *ud, const char *provider, const char *sealed),
                      void *ud);

void store_spend_add(store_t *s, const store_spend_t *row, struct event_base *base,
                     store_done_fn done, void *ud);
/* The spend log since since_ms, summed per (key id, team, UTC day): fn gets
 * each sum (key_id/team NULL when the rows had none; day = ts_ms / 86400000).
 * Synchronous (start-up). 0 or -1. */
int store_spend_load(store_t *s, int64_t since_ms,
                     void (*fn)(void *ud, const char *key_id, const char *team, int64_t day,
                                double cost_usd),
                     void *ud);
/* ---- response cache, persistent tier (src/cache) ---- */
/* Upsert one entry: key (hex), value (base64 text), absolute expiry (wall ms).
 * Fire-and-forget (done may be NULL). */
void store_cache_put(store_t *s, const char *key, const char *value, int64_t expires_ms,
                     struct event_base *base, store_done_fn done, void *ud);
/* Delete every entry that expires at or before before_ms (INT64_MAX: all). */
void store_cache_purge(store_t *s, int64_t before_ms, struct event_base *base, store_done_fn done,
                       void *ud);
/* Synchronous read of the entries still valid at now_ms (start-up). */
int store_cache_load(store_t *s, int64_t now_ms,
                     void (*fn)(void *ud, const char *key, const char *value, int64_t expires_ms),
                     void *ud);

#endif
