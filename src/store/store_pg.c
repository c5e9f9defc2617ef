/*
 * store_pg.c — the PostgreSQL backend (url postgres://... or
 * postgresql://..., handed to libpq as is, so every libpq URI parameter
 * works: sslmode, connect_timeout, options, ...).
 *
 * Each connection sets synchronous_commit=on for its session, so a COMMIT
 * that returned is durable on the server whatever the server default is.
 * Write statements are prepared once per connection (lazily, after the
 * migration made the tables) and run with PQexecPrepared; reads use
 * PQexecParams through store__pg_select (one error path for every load).
 * Values are always parameters. Without connect_timeout in the URL, 10 s is
 * added, so a blackholed server cannot wedge the writer.
 *
 * Secrets: the URL may carry a password. No message built here contains the
 * URL unredacted, and libpq's own messages are scrubbed of the password (both
 * as written in the URL and as decoded by libpq) before they are returned.
 * libpq notices (e.g. "relation already exists, skipping") are dropped.
 *
 * Connection loss shows as PQstatus() != CONNECTION_OK after a failed call;
 * alive() reports it and store.c reconnects (with backoff) instead of
 * retrying on a dead handle.
 *
 * Migrations: store__pg_migrations, applied in one transaction that first
 * takes an advisory lock, so instances starting together against one
 * database migrate one at a time.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "store/store_internal.h"

static const store__migration_t store__pg_migrations[] = {
    {1, "CREATE TABLE models ("
        "  name TEXT PRIMARY KEY CHECK (name <> ''),"
        "  spec TEXT NOT NULL CHECK (jsonb_typeof(spec::jsonb) = 'object'),"
        "  seq BIGSERIAL NOT NULL UNIQUE,"
        "  updated_at BIGINT NOT NULL"
        ");"
        "CREATE TABLE health ("
        "  model TEXT PRIMARY KEY CHECK (model <> ''),"
        "  probes BIGINT NOT NULL DEFAULT 0,"
        "  successes BIGINT NOT NULL DEFAULT 0,"
        "  last_probe_ms BIGINT NOT NULL DEFAULT 0,"
        "  up BOOLEAN NOT NULL DEFAULT false"
        ");"},
    /* issue 8: virtual API keys (hash only, never the secret) and the spend log */
    {2, "CREATE TABLE api_keys ("
        "  id TEXT PRIMARY KEY CHECK (id <> ''),"
        "  hash TEXT NOT NULL UNIQUE CHECK (length(hash) = 64),"
        "  spec TEXT NOT NULL CHECK (jsonb_typeof(spec::jsonb) = 'object'),"
        "  seq BIGSERIAL NOT NULL UNIQUE,"
        "  updated_at BIGINT NOT NULL"
        ");"
        "CREATE TABLE spend_log ("
        "  id BIGSERIAL PRIMARY KEY,"
        "  ts_ms BIGINT NOT NULL,"
        "  request_id TEXT, key_id TEXT, team TEXT, user_name TEXT, model TEXT,"
        "  prompt_tokens BIGINT, completion_tokens BIGINT,"
        "  cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,"
        "  latency_ms BIGINT, status INTEGER NOT NULL"
        ");"
        "CREATE INDEX spend_log_key ON spend_log (key_id, ts_ms);"
        "CREATE INDEX spend_log_team ON spend_log (team, ts_ms);"},
    /* issue 8: provider API keys, sealed (AES-256-GCM) by policy/secrets.c */
    {3, "CREATE TABLE provider_secrets ("
        "  provider TEXT PRIMARY KEY CHECK (provider <> ''),"
        "  sealed TEXT NOT NULL CHECK (left(sealed, 3) = 'v1:'),"
        "  updated_at BIGINT NOT NULL"
        ");"}, /* response cache, persistent tier (src/cache) */
    {4, "CREATE TABLE cache_entries ("
        "  key TEXT PRIMARY KEY CHECK (key <> ''),"
        "  value TEXT NOT NULL,"
        "  expires_ms BIGINT NOT NULL"
        ");"
        "CREATE INDEX cache_entries_expires ON cache_entries (expires_ms);"},
    /* issue 26: a spend row's write id, so a write retried after a lost
     * connection (its COMMIT's outcome unknown) is not counted twice */
    {5, "ALTER TABLE spend_log ADD COLUMN op_id BIGINT;"
        "CREATE UNIQUE INDEX spend_log_op ON spend_log (op_id);"},
};
#define STORE__PG_NMIG (sizeof store__pg_migrations / sizeof store__pg_migrations[0])

/* "skuld" in ASCII: the advisory lock key serialising migrations. */
#define STORE__PG_LOCK_KEY "495555161444"

struct store__conn {
    PGconn *pg;
    bool prepared;
    char secret_raw[256]; /* the password as written in the URL */
    char secret[256];     /* as libpq decoded it */
};

static const char STORE__PG_PUT[] =
    "INSERT INTO models (name, spec, updated_at) VALUES ($1, $2, $3)"
    " ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, updated_at = EXCLUDED.updated_at"
    " WHERE models.spec IS DISTINCT FROM EXCLUDED.spec";
static const char STORE__PG_DEL[] = "DELETE FROM models WHERE name = $1";
static const char STORE__PG_HPUT[] =
    "INSERT INTO health (model, probes, successes, last_probe_ms, up)"
    " VALUES ($1, $2, $3, $4, $5)"
    " ON CONFLICT (model) DO UPDATE SET probes = EXCLUDED.probes,"
    " successes = EXCLUDED.successes, last_probe_ms = EXCLUDED.last_probe_ms, up = EXCLUDED.up";

static const char STORE__PG_KPUT[] =
    "INSERT INTO api_keys (id, hash, spec, updated_at) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (id) DO UPDATE SET hash = EXCLUDED.hash, spec = EXCLUDED.spec,"
    " updated_at = EXCLUDED.updated_at";
static const char STORE__PG_SADD[] =
    "INSERT INTO spend_log (ts_ms, request_id, key_id, team, user_name, model, prompt_tokens,"
    " completion_tokens, cost_usd, latency_ms, status, op_id)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    " ON CONFLICT (op_id) DO NOTHING";

static const char STORE__PG_SECPUT[] =
    "INSERT INTO provider_secrets (provider, sealed, updated_at) VALUES ($1, $2, $3)"
    " ON CONFLICT (provider) DO UPDATE SET sealed = EXCLUDED.sealed,"
    " updated_at = EXCLUDED.updated_at";

static void store__pg_quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Copies a libpq message into err: trailing newlines cut, password scrubbed. */
static void store__pg_msg(store__conn_t *c, const char *prefix, const char *msg, char *err,
                          size_t errlen)
{
    snprintf(err, errlen, "%s%s", prefix, msg && *msg ? msg : "unknown error");
    size_t n = strlen(err);
    while (n && (err[n - 1] == '\n' || err[n - 1] == ' ')) err[--n] = '\0';
    for (char *p = err; *p; p++)
        if (*p == '\n') *p = ' ';
    store__scrub(err, errlen, c->secret_raw);
    store__scrub(err, errlen, c->secret);
}

/* The error of a failed result: the primary message if there is one. */
static int store__pg_fail(store__conn_t *c, PGresult *r, const char *what, char *err, size_t errlen)
{
    const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char prefix[96];
    snprintf(prefix, sizeof prefix, "postgres: %s: ", what);
    store__pg_msg(c, prefix, m ? m : PQerrorMessage(c->pg), err, errlen);
    return -1;
}

/* Runs a read (values as parameters): the rows, or NULL with err set
 * ("postgres: <what>: ...") when the query failed. */
static PGresult *store__pg_select(store__conn_t *c, const char *sql, int n,
                                  const char *const *params, const char *what, char *err,
                                  size_t errlen)
{
    PGresult *r = PQexecParams(c->pg, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) return r;
    store__pg_fail(c, r, what, err, errlen);
    PQclear(r);
    return NULL;
}

static int store__pg_exec(store__conn_t *c, const char *sql, const char *what, char *err,
                          size_t errlen)
{
    PGresult *r = PQexec(c->pg, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
                 ? 0
                 : store__pg_fail(c, r, what, err, errlen);
    PQclear(r);
    return rc;
}

static void store__pg_disconnect(store__conn_t *c)
{
    if (!c) return;
    PQfinish(c->pg);
    free(c);
}

static store__conn_t *store__pg_connect(const char *url, char *err, size_t errlen)
{
    store__conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "store: out of memory");
        return NULL;
    }
    char safe[512];
    store__redact(url, safe, sizeof safe);
    /* Remember the password so no libpq message can echo it back. */
    const char *p = strstr(url, "://");
    if (p) {
        p += 3;
        size_t auth = strcspn(p, "/?#");
        const char *at = NULL;
        for (size_t i = 0; i < auth; i++)
            if (p[i] == '@') at = p + i;
        const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
        if (colon && (size_t)(at - colon - 1) < sizeof c->secret_raw)
            snprintf(c->secret_raw, sizeof c->secret_raw, "%.*s", (int)(at - colon - 1), colon + 1);
    }
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &perr);
    if (!opts) {
        char prefix[600];
        snprintf(prefix, sizeof prefix, "store: invalid PostgreSQL url %s: ", safe);
        store__pg_msg(c, prefix, perr ? perr : "out of memory", err, errlen);
        PQfreemem(perr);
        free(c);
        return NULL;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val)
            snprintf(c->secret, sizeof c->secret, "%s", o->val);
    PQconninfoFree(opts);

    /* libpq waits forever for a connection by default; a blackholed server
     * must not wedge the writer (or store_close) for minutes. */
    char *withto = NULL;
    if (!strstr(url, "connect_timeout=")) {
        size_t n = strlen(url) + 32;
        withto = malloc(n);
        if (withto)
            snprintf(withto, n, "%s%cconnect_timeout=10", url, strchr(url, '?') ? '&' : '?');
    }
    c->pg = PQconnectdb(withto ? withto : url);
    free(withto);
    if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
        char prefix[600];
        snprintf(prefix, sizeof prefix, "store: cannot connect to %s: ", safe);
        store__pg_msg(c, prefix, c->pg ? PQerrorMessage(c->pg) : "out of memory", err, errlen);
        store__pg_disconnect(c);
        return NULL;
    }
    PQsetNoticeProcessor(c->pg, store__pg_quiet, NULL);
    char e2[STORE__ERRLEN];
    if (store__pg_exec(c, "SET synchronous_commit = on", "session setup", e2, sizeof e2)) {
        snprintf(err, errlen, "store: %s: %s", safe, e2);
        store__pg_disconnect(c);
        return NULL;
    }
    return c;
}

static bool store__pg_alive(store__conn_t *c)
{
    return c && c->pg && PQstatus(c->pg) == CONNECTION_OK;
}

static int store__pg_migrate(store__conn_t *c, char *err, size_t errlen)
{
    const int known = store__pg_migrations[STORE__PG_NMIG - 1].version;
    if (store__pg_exec(c, "BEGIN", "migrate", err, errlen)) return -1;
    PGresult *r = NULL;
    if (store__pg_exec(c, "SELECT pg_advisory_xact_lock(" STORE__PG_LOCK_KEY ")", "migration lock",
                       err, errlen) ||
        store__pg_exec(c,
                       "CREATE TABLE IF NOT EXISTS schema_migrations ("
                       "  version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
                       "migrate", err, errlen))
        goto fail;
    r = PQexec(c->pg, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        store__pg_fail(c, r, "reading schema version", err, errlen);
        goto fail;
    }
    int cur = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    r = NULL;
    if (store__check_version(cur, known, err, errlen)) goto fail;
    for (size_t i = 0; i < STORE__PG_NMIG; i++) {
        const store__migration_t *m = &store__pg_migrations[i];
        if (m->version <= cur) continue;
        char what[48];
        snprintf(what, sizeof what, "migration %d", m->version);
        if (store__pg_exec(c, m->sql, what, err, errlen)) goto fail;
        char v[16], at[24];
        snprintf(v, sizeof v, "%d", m->version);
        snprintf(at, sizeof at, "%llu", (unsigned long long)time_wall_ms());
        const char *params[2] = {v, at};
        r = PQexecParams(c->pg,
                         "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)", 2,
                         NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            store__pg_fail(c, r, "recording migration", err, errlen);
            goto fail;
        }
        PQclear(r);
        r = NULL;
        log_info("store: postgres schema migrated to version %d", m->version);
    }
    if (store__pg_exec(c, "COMMIT", "migrate", err, errlen)) goto fail;
    return 0;
fail:
    PQclear(r);
    if (store__pg_alive(c)) PQclear(PQexec(c->pg, "ROLLBACK"));
    return -1;
}

static int store__pg_begin(store__conn_t *c, char *err, size_t errlen)
{
    return store__pg_exec(c, "BEGIN", "begin", err, errlen);
}

static int store__pg_commit(store__conn_t *c, char *err, size_t errlen)
{
    return store__pg_exec(c, "COMMIT", "commit", err, errlen);
}

static void store__pg_rollback(store__conn_t *c)
{
    if (store__pg_alive(c) && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        PQclear(PQexec(c->pg, "ROLLBACK"));
}

static int store__pg_prepare_all(store__conn_t *c, char *err, size_t errlen)
{
    static const struct {
        const char *name, *sql;
        int n;
    } stmts[] = {
        {"skuld_model_put", STORE__PG_PUT, 3},
        {"skuld_model_del", STORE__PG_DEL, 1},
        {"skuld_health_put", STORE__PG_HPUT, 5},
        {"skuld_key_put", STORE__PG_KPUT, 4},
        {"skuld_spend_add", STORE__PG_SADD, 12},
        {"skuld_secret_put", STORE__PG_SECPUT, 3},
        {"skuld_cache_put",
         "INSERT INTO cache_entries (key, value, expires_ms) VALUES ($1, $2, $3)"
         " ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_ms = "
         "excluded.expires_ms",
         3},
        {"skuld_cache_purge", "DELETE FROM cache_entries WHERE expires_ms <= $1", 1},
    };
    if (c->prepared) return 0;
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
        PGresult *r = PQprepare(c->pg, stmts[i].name, stmts[i].sql, stmts[i].n, NULL);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) store__pg_fail(c, r, "prepare", err, errlen);
        PQclear(r);
        if (!ok) return -1;
    }
    c->prepared = true;
    return 0;
}

static unsigned long long store__pg_clamp(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? (unsigned long long)INT64_MAX : (unsigned long long)v;
}

static int store__pg_apply(store__conn_t *c, const store__op_t *op, char *err, size_t errlen)
{
    /* Prepared on first use (the tables exist by then). Prepared statements
     * belong to the session, not the transaction: a later rollback keeps them. */
    if (store__pg_prepare_all(c, err, errlen)) return -1;
    char b1[24], b2[24], b3[24], b4[24], b5[24], b6[40], b7[24];
    const char *params[12];
    const char *stmt;
    int n;
    switch (op->kind) {
    case STORE__OP_MODEL_PUT:
    case STORE__OP_SECRET_PUT: /* (name, spec, updated_at) */
        snprintf(b1, sizeof b1, "%llu", (unsigned long long)time_wall_ms());
        params[0] = op->name;
        params[1] = op->spec;
        params[2] = b1;
        stmt = op->kind == STORE__OP_MODEL_PUT ? "skuld_model_put" : "skuld_secret_put";
        n = 3;
        break;
    case STORE__OP_MODEL_DELETE:
        params[0] = op->name;
        stmt = "skuld_model_del";
        n = 1;
        break;
    case STORE__OP_HEALTH_PUT:
        snprintf(b1, sizeof b1, "%llu", store__pg_clamp(op->probes));
        snprintf(b2, sizeof b2, "%llu", store__pg_clamp(op->successes));
        snprintf(b3, sizeof b3, "%lld", (long long)op->last_probe_ms);
        params[0] = op->name;
        params[1] = b1;
        params[2] = b2;
        params[3] = b3;
        params[4] = op->up ? "true" : "false";
        stmt = "skuld_health_put";
        n = 5;
        break;
    case STORE__OP_KEY_PUT:
        snprintf(b1, sizeof b1, "%llu", (unsigned long long)time_wall_ms());
        params[0] = op->name;
        params[1] = op->str[0];
        params[2] = op->spec;
        params[3] = b1;
        stmt = "skuld_key_put";
        n = 4;
        break;
    case STORE__OP_SPEND_ADD:
        snprintf(b1, sizeof b1, "%lld", (long long)op->num[0]);
        snprintf(b2, sizeof b2, "%lld", (long long)op->num[1]);
        snprintf(b3, sizeof b3, "%lld", (long long)op->num[2]);
        snprintf(b4, sizeof b4, "%lld", (long long)op->num[3]);
        snprintf(b5, sizeof b5, "%lld", (long long)op->num[4]);
        snprintf(b6, sizeof b6, "%.17g", op->cost_usd);
        params[0] = b1;
        for (int i = 0; i < 5; i++) params[1 + i] = op->str[i];
        params[6] = b2;
        params[7] = b3;
        params[8] = b6;
        params[9] = b4;
        params[10] = b5;
        snprintf(b7, sizeof b7, "%lld", (long long)op->num[5]);
        params[11] = b7;
        stmt = "skuld_spend_add";
        n = 12;
        break;
    case STORE__OP_CACHE_PUT:
        snprintf(b1, sizeof b1, "%lld", (long long)op->expires_ms);
        params[0] = op->name;
        params[1] = op->spec;
        params[2] = b1;
        stmt = "skuld_cache_put";
        n = 3;
        break;
    case STORE__OP_CACHE_PURGE:
        snprintf(b1, sizeof b1, "%lld", (long long)op->expires_ms);
        params[0] = b1;
        stmt = "skuld_cache_purge";
        n = 1;
        break;
    default:
        snprintf(err, errlen, "store: unknown op");
        return -1;
    }
    PGresult *r = PQexecPrepared(c->pg, stmt, n, params, NULL, NULL, 0);
    int ret;
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        ret = store__pg_fail(c, r, op->kind == STORE__OP_MODEL_DELETE ? "delete" : "write", err,
                             errlen);
    else if (op->kind == STORE__OP_MODEL_DELETE && strcmp(PQcmdTuples(r), "0") == 0)
        ret = STORE_NOT_FOUND;
    else
        ret = 0;
    PQclear(r);
    return ret;
}

static int store__pg_model_load(store__conn_t *c,
                                void (*fn)(void *ud, const char *name, const char *spec), void *ud,
                                char *err, size_t errlen)
{
    PGresult *r = store__pg_select(c, "SELECT name, spec FROM models ORDER BY seq", 0, NULL,
                                   "loading models", err, errlen);
    if (!r) return -1;
    for (int i = 0, n = PQntuples(r); i < n; i++) fn(ud, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
    PQclear(r);
    return 0;
}

static int store__pg_health_load(store__conn_t *c, void (*fn)(void *ud, const store_health_t *h),
                                 void *ud, char *err, size_t errlen)
{
    PGresult *r = store__pg_select(c,
                                   "SELECT model, probes, successes, last_probe_ms, up FROM health"
                                   " ORDER BY model",
                                   0, NULL, "loading health", err, errlen);
    if (!r) return -1;
    for (int i = 0, n = PQntuples(r); i < n; i++) {
        store_health_t h = {
            .model = PQgetvalue(r, i, 0),
            .probes = strtoull(PQgetvalue(r, i, 1), NULL, 10),
            .successes = strtoull(PQgetvalue(r, i, 2), NULL, 10),
            .last_probe_ms = strtoll(PQgetvalue(r, i, 3), NULL, 10),
            .up = PQgetvalue(r, i, 4)[0] == 't',
        };
        fn(ud, &h);
    }
    PQclear(r);
    return 0;
}

static int store__pg_key_load(store__conn_t *c,
                              void (*fn)(void *ud, const char *id, const char *hash,
                                         const char *spec),
                              void *ud, char *err, size_t errlen)
{
    PGresult *r = store__pg_select(c, "SELECT id, hash, spec FROM api_keys ORDER BY seq", 0, NULL,
                                   "loading keys", err, errlen);
    if (!r) return -1;
    for (int i = 0, n = PQntuples(r); i < n; i++)
        fn(ud, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
    PQclear(r);
    return 0;
}

static int store__pg_secret_load(store__conn_t *c,
                                 void (*fn)(void *ud, const char *name, const char *sealed),
                                 void *ud, char *err, size_t errlen)
{
    PGresult *r = store__pg_select(c, "SELECT provider, sealed FROM provider_secrets ORDER BY 1", 0,
                                   NULL, "loading secrets", err, errlen);
    if (!r) return -1;
    for (int i = 0, n = PQntuples(r); i < n; i++) fn(ud, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
    PQclear(r);
    return 0;
}

static int store__pg_cache_load(store__conn_t *c, int64_t now_ms,
                                void (*fn)(void *ud, const char *key, const char *value,
                                           int64_t expires_ms),
                                void *ud, char *err, size_t errlen)
{
    char b1[24];
    snprintf(b1, sizeof b1, "%lld", (long long)now_ms);
    const char *params[1] = {b1};
    PGresult *r = store__pg_select(
        c, "SELECT key, value, expires_ms FROM cache_entries WHERE expires_ms > $1", 1, params,
        "loading cache", err, errlen);
    if (!r) return -1;
    for (int i = 0, n = PQntuples(r); i < n; i++)
        fn(ud, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), strtoll(PQgetvalue(r, i, 2), NULL, 10));
    PQclear(r);
    return 0;
}

static int store__pg_spend_load(store__conn_t *c, int64_t since_ms,
                                void (*fn)(void *ud, const char *key_id, const char *team,
                                           int64_t day, double cost_usd),
                                void *ud, char *err, size_t errlen)
{
    char b1[24];
    snprintf(b1, sizeof b1, "%lld", (long long)since_ms);
    const char *params[1] = {b1};
    PGresult *r = store__pg_select(c,
                                   "SELECT key_id, team, ts_ms / 86400000, SUM(cost_usd) FROM "
                                   "spend_log WHERE ts_ms >= $1 GROUP BY 1, 2, 3",
                                   1, params, "loading spend", err, errlen);
    if (!r) return -1;
    for (int i = 0, n = PQntuples(r); i < n; i++)
        fn(ud, PQgetisnull(r, i, 0) ? NULL : PQgetvalue(r, i, 0),
           PQgetisnull(r, i, 1) ? NULL : PQgetvalue(r, i, 1),
           strtoll(PQgetvalue(r, i, 2), NULL, 10), strtod(PQgetvalue(r, i, 3), NULL));
    PQclear(r);
    return 0;
}

static bool store__pg_ping(store__conn_t *c)
{
    PGresult *r = PQexec(c->pg, "SELECT 1 FROM schema_migrations LIMIT 1");
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return ok;
}

const store__backend_t store__pg = {
    .name = "postgres",
    .connect = store__pg_connect,
    .disconnect = store__pg_disconnect,
    .alive = store__pg_alive,
    .migrate = store__pg_migrate,
    .begin = store__pg_begin,
    .commit = store__pg_commit,
    .rollback = store__pg_rollback,
    .apply = store__pg_apply,
    .model_load = store__pg_model_load,
    .health_load = store__pg_health_load,
    .ping = store__pg_ping,
    .key_load = store__pg_key_load,
    .secret_load = store__pg_secret_load,
    .cache_load = store__pg_cache_load,
    .spend_load = store__pg_spend_load,
};
