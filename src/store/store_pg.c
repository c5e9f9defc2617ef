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
 * Values are always parameters.
 *
 * Timeouts (issue 26: a hung server must not wedge any thread): every
 * connection gets store.timeout as connect_timeout (libpq's floor is 2 s),
 * TCP keepalives (idle = interval = timeout/3, 3 probes), tcp_user_timeout
 * and, once up, `SET statement_timeout`; parameters the URL sets itself win.
 * The connection runs in non-blocking mode and every statement goes through
 * store__pg_call: PQsend*, then poll() on PQsocket until the client-side
 * deadline (store.timeout). A statement with no answer by then is abandoned
 * and the connection marked broken (alive() false): store.c reconnects with
 * backoff. The connection is dropped rather than PQcancel'd: libpq 15's
 * PQcancel blocks without a timeout on a stopped server, the very case this
 * guards against; closing the socket ends the server's transaction anyway.
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
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
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
    bool broken;          /* a call timed out: the session state is unknown */
    int timeout_ms;       /* client-side deadline of one call */
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
    char prefix[96], late[64];
    snprintf(prefix, sizeof prefix, "postgres: %s: ", what);
    if (!r && c->broken) {
        snprintf(late, sizeof late, "no answer within %d ms (store.timeout)", c->timeout_ms);
        m = late;
    }
    store__pg_msg(c, prefix, m ? m : PQerrorMessage(c->pg), err, errlen);
    return -1;
}

static bool store__pg_failed(const PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    return st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK;
}

/* Waits for fd to be ready for events until deadline_ns; false on timeout. */
static bool store__pg_poll(int fd, short events, uint64_t deadline_ns)
{
    for (;;) {
        uint64_t now = time_mono_ns();
        if (now >= deadline_ns) return false;
        struct pollfd p = {fd, events, 0};
        int ms = (int)((deadline_ns - now + 999999) / 1000000);
        int n = poll(&p, 1, ms);
        if (n > 0) return true;
        if (n < 0 && errno != EINTR) return true; /* let libpq report the error */
    }
}

/* The second half of every statement: sent (the PQsend* call's result),
 * flushes and collects the results with the client-side deadline. Returns
 * the first failed result, else the last one (like PQexec), or NULL when
 * nothing came back (not sent, connection lost, or no answer in time: then
 * c->broken is set and the connection is not used again). */
static PGresult *store__pg_wait(store__conn_t *c, int sent)
{
    if (!sent || c->broken) return NULL;
    uint64_t deadline = time_mono_ns() + (uint64_t)c->timeout_ms * 1000000ull;
    int fd = PQsocket(c->pg);
    int f;
    while ((f = PQflush(c->pg)) == 1) {
        if (!store__pg_poll(fd, POLLOUT | POLLIN, deadline)) goto late;
        if (!PQconsumeInput(c->pg)) return NULL;
    }
    if (f < 0) return NULL;
    PGresult *keep = NULL;
    for (;;) {
        while (PQisBusy(c->pg)) {
            if (!store__pg_poll(fd, POLLIN, deadline)) {
                PQclear(keep);
                goto late;
            }
            if (!PQconsumeInput(c->pg)) break; /* PQgetResult reports it */
        }
        PGresult *r = PQgetResult(c->pg);
        if (!r) break;
        if (keep && store__pg_failed(keep)) {
            PQclear(r); /* the first error stands */
        } else {
            PQclear(keep);
            keep = r;
        }
        if (PQstatus(c->pg) != CONNECTION_OK) break;
    }
    return keep;
late:
    c->broken = true;
    return NULL;
}

/* Runs a read (values as parameters): the rows, or NULL with err set
 * ("postgres: <what>: ...") when the query failed. */
static PGresult *store__pg_select(store__conn_t *c, const char *sql, int n,
                                  const char *const *params, const char *what, char *err,
                                  size_t errlen)
{
    PGresult *r = store__pg_wait(c, PQsendQueryParams(c->pg, sql, n, NULL, params, NULL, NULL, 0));
    if (PQresultStatus(r) == PGRES_TUPLES_OK) return r;
    store__pg_fail(c, r, what, err, errlen);
    PQclear(r);
    return NULL;
}

static int store__pg_exec(store__conn_t *c, const char *sql, const char *what, char *err,
                          size_t errlen)
{
    PGresult *r = store__pg_wait(c, PQsendQuery(c->pg, sql));
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

static store__conn_t *store__pg_connect(const char *url, int timeout_ms, char *err, size_t errlen)
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

    /* Our timeouts first, the URL last: libpq lets a later value win, so a
     * parameter the URL sets itself is kept. */
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : STORE_TIMEOUT_DEFAULT_MS;
    char cto[16], kidle[16], kint[16], tut[16];
    int secs = (c->timeout_ms + 999) / 1000, third = secs / 3 > 0 ? secs / 3 : 1;
    snprintf(cto, sizeof cto, "%d", secs);
    snprintf(kidle, sizeof kidle, "%d", third);
    snprintf(kint, sizeof kint, "%d", third);
    snprintf(tut, sizeof tut, "%d", c->timeout_ms);
    const char *kw[] = {
        "connect_timeout",  "keepalives",       "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "dbname",          NULL};
    const char *val[] = {cto, "1", kidle, kint, "3", tut, url, NULL};
    c->pg = PQconnectdbParams(kw, val, 1);
    if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
        char prefix[600];
        snprintf(prefix, sizeof prefix, "store: cannot connect to %s: ", safe);
        store__pg_msg(c, prefix, c->pg ? PQerrorMessage(c->pg) : "out of memory", err, errlen);
        store__pg_disconnect(c);
        return NULL;
    }
    if (PQsetnonblocking(c->pg, 1) != 0) {
        snprintf(err, errlen, "store: %s: cannot make the connection non-blocking", safe);
        store__pg_disconnect(c);
        return NULL;
    }
    PQsetNoticeProcessor(c->pg, store__pg_quiet, NULL);
    char e2[STORE__ERRLEN];
    char setup[96];
    snprintf(setup, sizeof setup, "SET synchronous_commit = on; SET statement_timeout = %d",
             c->timeout_ms);
    if (store__pg_exec(c, setup, "session setup", e2, sizeof e2)) {
        snprintf(err, errlen, "store: %s: %s", safe, e2);
        store__pg_disconnect(c);
        return NULL;
    }
    return c;
}

static bool store__pg_alive(store__conn_t *c)
{
    return c && c->pg && !c->broken && PQstatus(c->pg) == CONNECTION_OK;
}

static int store__pg_migrate_all(store__conn_t *c, int known, char *err, size_t errlen);

static int store__pg_migrate(store__conn_t *c, char *err, size_t errlen)
{
    const int known = store__pg_migrations[STORE__PG_NMIG - 1].version;
    /* A migration may rewrite a big table: 60 x store.timeout for it. */
    int saved = c->timeout_ms;
    c->timeout_ms = saved > INT32_MAX / 60 ? INT32_MAX : saved * 60;
    int rc = store__pg_migrate_all(c, known, err, errlen);
    c->timeout_ms = saved;
    return rc;
}

static int store__pg_migrate_all(store__conn_t *c, int known, char *err, size_t errlen)
{
    char lto[64];
    snprintf(lto, sizeof lto, "SET LOCAL statement_timeout = %d", c->timeout_ms);
    PGresult *r = NULL;
    if (store__pg_exec(c, "BEGIN", "migrate", err, errlen)) return -1;
    if (store__pg_exec(c, lto, "migrate", err, errlen)) goto fail;
    if (store__pg_exec(c, "SELECT pg_advisory_xact_lock(" STORE__PG_LOCK_KEY ")", "migration lock",
                       err, errlen) ||
        store__pg_exec(c,
                       "CREATE TABLE IF NOT EXISTS schema_migrations ("
                       "  version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
                       "migrate", err, errlen))
        goto fail;
    r = store__pg_wait(
        c, PQsendQuery(c->pg, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
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
        r = store__pg_wait(
            c, PQsendQueryParams(
                   c->pg, "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)", 2,
                   NULL, params, NULL, NULL, 0));
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
    if (store__pg_alive(c)) PQclear(store__pg_wait(c, PQsendQuery(c->pg, "ROLLBACK")));
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
        PQclear(store__pg_wait(c, PQsendQuery(c->pg, "ROLLBACK")));
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
        PGresult *r =
            store__pg_wait(c, PQsendPrepare(c->pg, stmts[i].name, stmts[i].sql, stmts[i].n, NULL));
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
    PGresult *r = store__pg_wait(c, PQsendQueryPrepared(c->pg, stmt, n, params, NULL, NULL, 0));
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
    PGresult *r = store__pg_wait(c, PQsendQuery(c->pg, "SELECT 1 FROM schema_migrations LIMIT 1"));
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
