/*
 * store_sqlite.c — the SQLite backend (url sqlite://PATH; sqlite:///abs/path
 * or sqlite://relative/path).
 *
 * Every connection: WAL journal (readers never block the writer),
 * synchronous=FULL (a COMMIT that returned is on disk: acknowledged means
 * durable), busy_timeout store.timeout (another connection or process holding the
 * write lock is waited for, not an error), foreign_keys=ON. One connection
 * per thread: store.c gives the writer thread one and the synchronous reads
 * another, never shared at the same time. Write transactions are BEGIN
 * IMMEDIATE so they take the write lock up front (no deadlock on upgrade).
 *
 * Statements are prepared once per connection (lazily: the tables must exist)
 * and values are always bound, never formatted into SQL. Loads go through
 * store__sq_select / store__sq_done (one error path for every load).
 * ":memory:" is refused: the writer and the readers would each see a
 * different database.
 *
 * Migrations: store__sqlite_migrations, versions 1..n, applied in one
 * IMMEDIATE transaction with their schema_migrations rows; a database whose
 * version is newer than the newest known here is refused.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "store/store_internal.h"

static const store__migration_t store__sqlite_migrations[] = {
    {1, "CREATE TABLE models ("
        "  name TEXT PRIMARY KEY CHECK (length(name) > 0),"
        "  spec TEXT NOT NULL CHECK (CASE WHEN json_valid(spec)"
        "                             THEN json_type(spec) = 'object' ELSE 0 END),"
        "  seq INTEGER NOT NULL UNIQUE,"
        "  updated_at INTEGER NOT NULL"
        ");"
        "CREATE TABLE health ("
        "  model TEXT PRIMARY KEY CHECK (length(model) > 0),"
        "  probes INTEGER NOT NULL DEFAULT 0,"
        "  successes INTEGER NOT NULL DEFAULT 0,"
        "  last_probe_ms INTEGER NOT NULL DEFAULT 0,"
        "  up INTEGER NOT NULL DEFAULT 0"
        ");"},
    /* issue 8: virtual API keys (hash only, never the secret) and the spend log */
    {2, "CREATE TABLE api_keys ("
        "  id TEXT PRIMARY KEY CHECK (length(id) > 0),"
        "  hash TEXT NOT NULL UNIQUE CHECK (length(hash) = 64),"
        "  spec TEXT NOT NULL CHECK (CASE WHEN json_valid(spec)"
        "                             THEN json_type(spec) = 'object' ELSE 0 END),"
        "  seq INTEGER NOT NULL UNIQUE,"
        "  updated_at INTEGER NOT NULL"
        ");"
        "CREATE TABLE spend_log ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  ts_ms INTEGER NOT NULL,"
        "  request_id TEXT, key_id TEXT, team TEXT, user_name TEXT, model TEXT,"
        "  prompt_tokens INTEGER, completion_tokens INTEGER,"
        "  cost_usd REAL NOT NULL DEFAULT 0,"
        "  latency_ms INTEGER, status INTEGER NOT NULL"
        ");"
        "CREATE INDEX spend_log_key ON spend_log (key_id, ts_ms);"
        "CREATE INDEX spend_log_team ON spend_log (team, ts_ms);"},
    /* issue 8: provider API keys, sealed (AES-256-GCM) by policy/secrets.c */
    {3, "CREATE TABLE provider_secrets ("
        "  provider TEXT PRIMARY KEY CHECK (length(provider) > 0),"
        "  sealed TEXT NOT NULL CHECK (substr(sealed, 1, 3) = 'v1:'),"
        "  updated_at INTEGER NOT NULL"
        ");"}, /* response cache, persistent tier (src/cache) */
    {4, "CREATE TABLE cache_entries ("
        "  key TEXT PRIMARY KEY CHECK (length(key) > 0),"
        "  value TEXT NOT NULL,"
        "  expires_ms INTEGER NOT NULL"
        ");"
        "CREATE INDEX cache_entries_expires ON cache_entries (expires_ms);"},
    /* issue 26: a spend row's write id, so a write retried after a lost
     * connection (its COMMIT's outcome unknown) is not counted twice */
    {5, "ALTER TABLE spend_log ADD COLUMN op_id INTEGER;"
        "CREATE UNIQUE INDEX spend_log_op ON spend_log (op_id);"},
};
#define STORE__SQLITE_NMIG (sizeof store__sqlite_migrations / sizeof store__sqlite_migrations[0])

struct store__conn {
    sqlite3 *db;
    sqlite3_stmt *put, *del, *hput, *kput, *sadd, *secput, *cput, *cpurge;
};

static const char STORE__SQL_PUT[] =
    "INSERT INTO models (name, spec, seq, updated_at)"
    " VALUES (?1, ?2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM models), ?3)"
    " ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at"
    " WHERE models.spec IS NOT excluded.spec";
static const char STORE__SQL_DEL[] = "DELETE FROM models WHERE name = ?1";
static const char STORE__SQL_HPUT[] =
    "INSERT INTO health (model, probes, successes, last_probe_ms, up)"
    " VALUES (?1, ?2, ?3, ?4, ?5)"
    " ON CONFLICT (model) DO UPDATE SET probes = excluded.probes,"
    " successes = excluded.successes, last_probe_ms = excluded.last_probe_ms, up = excluded.up";

static const char STORE__SQL_KPUT[] =
    "INSERT INTO api_keys (id, hash, spec, seq, updated_at)"
    " VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(seq), 0) + 1 FROM api_keys), ?4)"
    " ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, spec = excluded.spec,"
    " updated_at = excluded.updated_at";

static const char STORE__SQL_CPUT[] =
    "INSERT INTO cache_entries (key, value, expires_ms) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms";
static const char STORE__SQL_CPURGE[] = "DELETE FROM cache_entries WHERE expires_ms <= ?1";
static const char STORE__SQL_SADD[] =
    "INSERT INTO spend_log (ts_ms, request_id, key_id, team, user_name, model, prompt_tokens,"
    " completion_tokens, cost_usd, latency_ms, status, op_id)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    " ON CONFLICT (op_id) DO NOTHING";

static const char STORE__SQL_SECPUT[] =
    "INSERT INTO provider_secrets (provider, sealed, updated_at) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (provider) DO UPDATE SET sealed = excluded.sealed,"
    " updated_at = excluded.updated_at";

static int store__sq_fail(sqlite3 *db, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "sqlite: %s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
    return -1;
}

static int store__sq_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    snprintf(err, errlen, "sqlite: %s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return -1;
}

static void store__sq_disconnect(store__conn_t *c)
{
    if (!c) return;
    sqlite3_finalize(c->put);
    sqlite3_finalize(c->del);
    sqlite3_finalize(c->hput);
    sqlite3_finalize(c->kput);
    sqlite3_finalize(c->sadd);
    sqlite3_finalize(c->secput);
    sqlite3_finalize(c->cput);
    sqlite3_finalize(c->cpurge);
    sqlite3_close(c->db);
    free(c);
}

static store__conn_t *store__sq_connect(const char *url, int timeout_ms, char *err, size_t errlen)
{
    const char *path = url + strlen("sqlite://");
    if (!*path) {
        snprintf(err, errlen, "store: sqlite url without a path (sqlite://PATH)");
        return NULL;
    }
    if (strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0) {
        snprintf(err, errlen, "store: sqlite://%s is not supported: give a file path", path);
        return NULL;
    }
    store__conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "store: out of memory");
        return NULL;
    }
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "store: cannot open sqlite database %s: %s", path,
                 c->db ? sqlite3_errmsg(c->db) : "out of memory");
        store__sq_disconnect(c);
        return NULL;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, timeout_ms > 0 ? timeout_ms : STORE_TIMEOUT_DEFAULT_MS);
    /* journal_mode answers with the mode now in effect: insist on WAL. */
    sqlite3_stmt *st = NULL;
    bool wal = false;
    if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        wal = mode && strcmp(mode, "wal") == 0;
    }
    sqlite3_finalize(st);
    if (!wal) {
        snprintf(err, errlen, "store: cannot put sqlite database %s in WAL mode: %s", path,
                 sqlite3_errmsg(c->db));
        store__sq_disconnect(c);
        return NULL;
    }
    char e2[STORE__ERRLEN];
    if (store__sq_exec(c->db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", e2, sizeof e2)) {
        snprintf(err, errlen, "store: %s: %s", path, e2);
        store__sq_disconnect(c);
        return NULL;
    }
    return c;
}

static bool store__sq_alive(store__conn_t *c)
{
    return c && c->db;
}

static int store__sq_migrate(store__conn_t *c, char *err, size_t errlen)
{
    const int known = store__sqlite_migrations[STORE__SQLITE_NMIG - 1].version;
    if (store__sq_exec(c->db, "BEGIN IMMEDIATE", err, errlen)) return -1;
    sqlite3_stmt *st = NULL;
    int cur = -1;
    if (store__sq_exec(c->db,
                       "CREATE TABLE IF NOT EXISTS schema_migrations ("
                       "  version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
                       err, errlen))
        goto fail;
    if (sqlite3_prepare_v2(c->db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", -1,
                           &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        store__sq_fail(c->db, "reading schema version", err, errlen);
        goto fail;
    }
    cur = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (store__check_version(cur, known, err, errlen)) goto fail;
    for (size_t i = 0; i < STORE__SQLITE_NMIG; i++) {
        const store__migration_t *m = &store__sqlite_migrations[i];
        if (m->version <= cur) continue;
        char e2[STORE__ERRLEN];
        if (store__sq_exec(c->db, m->sql, e2, sizeof e2)) {
            snprintf(err, errlen, "store: migration %d: %s", m->version, e2);
            goto fail;
        }
        if (sqlite3_prepare_v2(
                c->db, "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)", -1,
                &st, NULL) != SQLITE_OK) {
            store__sq_fail(c->db, "recording migration", err, errlen);
            goto fail;
        }
        sqlite3_bind_int(st, 1, m->version);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)time_wall_ms());
        if (sqlite3_step(st) != SQLITE_DONE) {
            store__sq_fail(c->db, "recording migration", err, errlen);
            goto fail;
        }
        sqlite3_finalize(st);
        st = NULL;
        log_info("store: sqlite schema migrated to version %d", m->version);
    }
    if (store__sq_exec(c->db, "COMMIT", err, errlen)) goto fail;
    return 0;
fail:
    sqlite3_finalize(st);
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

static int store__sq_begin(store__conn_t *c, char *err, size_t errlen)
{
    return store__sq_exec(c->db, "BEGIN IMMEDIATE", err, errlen);
}

static int store__sq_commit(store__conn_t *c, char *err, size_t errlen)
{
    return store__sq_exec(c->db, "COMMIT", err, errlen);
}

static void store__sq_rollback(store__conn_t *c)
{
    if (sqlite3_get_autocommit(c->db)) return; /* nothing open */
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

static int store__sq_prepare(store__conn_t *c, sqlite3_stmt **st, const char *sql, char *err,
                             size_t errlen)
{
    if (*st) return 0;
    if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return store__sq_fail(c->db, "prepare", err, errlen);
    }
    return 0;
}

static sqlite3_int64 store__clamp64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

static int store__sq_apply(store__conn_t *c, const store__op_t *op, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    switch (op->kind) {
    case STORE__OP_MODEL_PUT:
        if (store__sq_prepare(c, &c->put, STORE__SQL_PUT, err, errlen)) return -1;
        st = c->put;
        sqlite3_bind_text(st, 1, op->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, op->spec, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)time_wall_ms());
        break;
    case STORE__OP_MODEL_DELETE:
        if (store__sq_prepare(c, &c->del, STORE__SQL_DEL, err, errlen)) return -1;
        st = c->del;
        sqlite3_bind_text(st, 1, op->name, -1, SQLITE_STATIC);
        break;
    case STORE__OP_HEALTH_PUT:
        if (store__sq_prepare(c, &c->hput, STORE__SQL_HPUT, err, errlen)) return -1;
        st = c->hput;
        sqlite3_bind_text(st, 1, op->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, store__clamp64(op->probes));
        sqlite3_bind_int64(st, 3, store__clamp64(op->successes));
        sqlite3_bind_int64(st, 4, (sqlite3_int64)op->last_probe_ms);
        sqlite3_bind_int(st, 5, op->up ? 1 : 0);
        break;
    case STORE__OP_KEY_PUT:
        if (store__sq_prepare(c, &c->kput, STORE__SQL_KPUT, err, errlen)) return -1;
        st = c->kput;
        sqlite3_bind_text(st, 1, op->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, op->str[0], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, op->spec, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)time_wall_ms());
        break;
    case STORE__OP_SECRET_PUT:
        if (store__sq_prepare(c, &c->secput, STORE__SQL_SECPUT, err, errlen)) return -1;
        st = c->secput;
        sqlite3_bind_text(st, 1, op->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, op->spec, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)time_wall_ms());
        break;
    case STORE__OP_SPEND_ADD:
        if (store__sq_prepare(c, &c->sadd, STORE__SQL_SADD, err, errlen)) return -1;
        st = c->sadd;
        sqlite3_bind_int64(st, 1, op->num[0]);
        for (int i = 0; i < 5; i++)
            if (op->str[i])
                sqlite3_bind_text(st, 2 + i, op->str[i], -1, SQLITE_STATIC);
            else
                sqlite3_bind_null(st, 2 + i);
        sqlite3_bind_int64(st, 7, op->num[1]);
        sqlite3_bind_int64(st, 8, op->num[2]);
        sqlite3_bind_double(st, 9, op->cost_usd);
        sqlite3_bind_int64(st, 10, op->num[3]);
        sqlite3_bind_int64(st, 11, op->num[4]);
        sqlite3_bind_int64(st, 12, op->num[5]);
        break;
    case STORE__OP_CACHE_PUT:
        if (store__sq_prepare(c, &c->cput, STORE__SQL_CPUT, err, errlen)) return -1;
        st = c->cput;
        sqlite3_bind_text(st, 1, op->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, op->spec, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)op->expires_ms);
        break;
    case STORE__OP_CACHE_PURGE:
        if (store__sq_prepare(c, &c->cpurge, STORE__SQL_CPURGE, err, errlen)) return -1;
        st = c->cpurge;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)op->expires_ms);
        break;
    default:
        snprintf(err, errlen, "store: unknown op");
        return -1;
    }
    int rc = sqlite3_step(st);
    int ret = 0;
    if (rc != SQLITE_DONE)
        ret = store__sq_fail(c->db, op->kind == STORE__OP_MODEL_DELETE ? "delete" : "write", err,
                             errlen);
    else if (op->kind == STORE__OP_MODEL_DELETE && sqlite3_changes(c->db) == 0)
        ret = STORE_NOT_FOUND;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ret;
}

/* A read: the prepared statement, or NULL with err set ("sqlite: <what>: ..."). */
static sqlite3_stmt *store__sq_select(store__conn_t *c, const char *sql, const char *what,
                                      char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) == SQLITE_OK) return st;
    store__sq_fail(c->db, what, err, errlen);
    return NULL;
}

/* The end of a read whose last sqlite3_step() returned rc: 0 once every row was read. */
static int store__sq_done(store__conn_t *c, sqlite3_stmt *st, int rc, const char *what, char *err,
                          size_t errlen)
{
    int ret = rc == SQLITE_DONE ? 0 : store__sq_fail(c->db, what, err, errlen);
    sqlite3_finalize(st);
    return ret;
}

static int store__sq_model_load(store__conn_t *c,
                                void (*fn)(void *ud, const char *name, const char *spec), void *ud,
                                char *err, size_t errlen)
{
    sqlite3_stmt *st = store__sq_select(c, "SELECT name, spec FROM models ORDER BY seq",
                                        "loading models", err, errlen);
    if (!st) return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(ud, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1));
    return store__sq_done(c, st, rc, "loading models", err, errlen);
}

static int store__sq_health_load(store__conn_t *c, void (*fn)(void *ud, const store_health_t *h),
                                 void *ud, char *err, size_t errlen)
{
    sqlite3_stmt *st = store__sq_select(
        c, "SELECT model, probes, successes, last_probe_ms, up FROM health ORDER BY model",
        "loading health", err, errlen);
    if (!st) return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_health_t h = {
            .model = (const char *)sqlite3_column_text(st, 0),
            .probes = (uint64_t)sqlite3_column_int64(st, 1),
            .successes = (uint64_t)sqlite3_column_int64(st, 2),
            .last_probe_ms = sqlite3_column_int64(st, 3),
            .up = sqlite3_column_int(st, 4) != 0,
        };
        fn(ud, &h);
    }
    return store__sq_done(c, st, rc, "loading health", err, errlen);
}

static int store__sq_key_load(store__conn_t *c,
                              void (*fn)(void *ud, const char *id, const char *hash,
                                         const char *spec),
                              void *ud, char *err, size_t errlen)
{
    sqlite3_stmt *st = store__sq_select(c, "SELECT id, hash, spec FROM api_keys ORDER BY seq",
                                        "loading keys", err, errlen);
    if (!st) return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(ud, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
           (const char *)sqlite3_column_text(st, 2));
    return store__sq_done(c, st, rc, "loading keys", err, errlen);
}

static int store__sq_secret_load(store__conn_t *c,
                                 void (*fn)(void *ud, const char *name, const char *sealed),
                                 void *ud, char *err, size_t errlen)
{
    sqlite3_stmt *st =
        store__sq_select(c, "SELECT provider, sealed FROM provider_secrets ORDER BY provider",
                         "loading secrets", err, errlen);
    if (!st) return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(ud, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1));
    return store__sq_done(c, st, rc, "loading secrets", err, errlen);
}

static int store__sq_cache_load(store__conn_t *c, int64_t now_ms,
                                void (*fn)(void *ud, const char *key, const char *value,
                                           int64_t expires_ms),
                                void *ud, char *err, size_t errlen)
{
    sqlite3_stmt *st = store__sq_select(
        c, "SELECT key, value, expires_ms FROM cache_entries WHERE expires_ms > ?1",
        "loading cache", err, errlen);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)now_ms);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(ud, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
           sqlite3_column_int64(st, 2));
    return store__sq_done(c, st, rc, "loading cache", err, errlen);
}

static int store__sq_spend_load(store__conn_t *c, int64_t since_ms,
                                void (*fn)(void *ud, const char *key_id, const char *team,
                                           int64_t day, double cost_usd),
                                void *ud, char *err, size_t errlen)
{
    sqlite3_stmt *st = store__sq_select(c,
                                        "SELECT key_id, team, ts_ms / 86400000, SUM(cost_usd) FROM "
                                        "spend_log WHERE ts_ms >= ?1 GROUP BY 1, 2, 3",
                                        "loading spend", err, errlen);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)since_ms);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(ud, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
           sqlite3_column_int64(st, 2), sqlite3_column_double(st, 3));
    return store__sq_done(c, st, rc, "loading spend", err, errlen);
}

static bool store__sq_ping(store__conn_t *c)
{
    sqlite3_stmt *st = NULL;
    bool ok = sqlite3_prepare_v2(c->db, "SELECT 1 FROM schema_migrations LIMIT 1", -1, &st, NULL) ==
                  SQLITE_OK &&
              sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return ok;
}

const store__backend_t store__sqlite = {
    .name = "sqlite",
    .connect = store__sq_connect,
    .disconnect = store__sq_disconnect,
    .alive = store__sq_alive,
    .migrate = store__sq_migrate,
    .begin = store__sq_begin,
    .commit = store__sq_commit,
    .rollback = store__sq_rollback,
    .apply = store__sq_apply,
    .model_load = store__sq_model_load,
    .health_load = store__sq_health_load,
    .ping = store__sq_ping,
    .key_load = store__sq_key_load,
    .secret_load = store__sq_secret_load,
    .cache_load = store__sq_cache_load,
    .spend_load = store__sq_spend_load,
};
