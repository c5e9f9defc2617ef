/*
 * test_store — the store (src/store): one registry suite run against every
 * backend available.
 *
 * Groups:
 *   store/misc      URL handling and secrets (no database, or an unreachable
 *                   PostgreSQL port): redaction, unknown schemes, refused
 *                   sqlite :memory:, no password in connection errors.
 *   store/sqlite    the registry suite on a fresh SQLite file per test.
 *   store/postgres  the same suite on the PostgreSQL server named by env
 *                   SKULD_TEST_PG_URL (tables dropped before each test); only
 *                   when that variable is set — tests/integration/
 *                   test_store_pg.py starts a real server and sets it. When
 *                   set, a server that cannot be reached FAILS the tests.
 *
 * The suite: open/migrate/reopen (idempotent; a newer on-disk schema is
 * refused), put/load/order/upsert idempotence/delete (rc STORE_NOT_FOUND for a
 * missing name), health put/load, a spend row retried after an ambiguous
 * COMMIT written once, a bad op inside a batch failing alone, many
 * writes from two threads each with its own event loop all acknowledged
 * exactly once on the right thread, close draining the queue. PostgreSQL
 * only: the writer reconnects after its server connection is killed.
 *
 * libevent threading is enabled first (evthread_use_pthreads), as the
 * gateway does, since completions are posted across threads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "store/store_internal.h"

/* ------------------------------------------------------------------------ */
/* per-test backend context */

typedef struct ctx {
    bool pg;
    char dir[128];
    char url[1024];
} ctx_t;

static ctx_t ctx_sqlite = {.pg = false};
static ctx_t ctx_pg = {.pg = true};

static void pg_quiet(void *arg, const char *m)
{
    (void)arg;
    (void)m;
}

/* Runs SQL directly against the test database (not through the store). */
static void exec_sql(const ctx_t *c, const char *sql)
{
    if (c->pg) {
        PGconn *pg = PQconnectdb(c->url);
        if (PQstatus(pg) != CONNECTION_OK) fail_msg("postgres: %s", PQerrorMessage(pg));
        PQsetNoticeProcessor(pg, pg_quiet, NULL);
        PGresult *r = PQexec(pg, sql);
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
            fail_msg("postgres: %s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
        PQfinish(pg);
    } else {
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open(c->url + strlen("sqlite://"), &db), SQLITE_OK);
        char *msg = NULL;
        if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("sqlite: %s", msg);
        sqlite3_close(db);
    }
}

static int setup_sqlite(void **state)
{
    ctx_t *c = *state;
    snprintf(c->dir, sizeof c->dir, "/tmp/skuld-test-store-XXXXXX");
    if (!mkdtemp(c->dir)) return -1;
    snprintf(c->url, sizeof c->url, "sqlite://%s/skuld.db", c->dir);
    return 0;
}

static int teardown_sqlite(void **state)
{
    ctx_t *c = *state;
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[256];
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/skuld.db%s", c->dir, suffix[i]);
        unlink(p);
    }
    rmdir(c->dir);
    return 0;
}

static int setup_pg(void **state)
{
    ctx_t *c = *state;
    snprintf(c->url, sizeof c->url, "%s", getenv("SKULD_TEST_PG_URL"));
    exec_sql(c, "DROP TABLE IF EXISTS models, health, api_keys, spend_log, provider_secrets, "
                "cache_entries, schema_migrations");
    return 0;
}

static int teardown_pg(void **state)
{
    return 0;
}

static store_t *open_ok(const ctx_t *c)
{
    char err[512] = "";
    store_t *s = store_open(c->url, 0, err, sizeof err);
    if (!s) fail_msg("store_open(%s): %s", c->pg ? "postgres" : c->url, err);
    return s;
}

/* ------------------------------------------------------------------------ */
/* acknowledgements */

typedef struct ack {
    atomic_int calls;
    int rc;
    char err[256];
    pthread_t thread;
    atomic_int *counter; /* bumped on every call, if set */
} ack_t;

static void on_done(void *ud, int rc, const char *err)
{
    ack_t *a = ud;
    a->rc = rc;
    a->thread = pthread_self();
    snprintf(a->err, sizeof a->err, "%s", err ? err : "");
    if (rc < 0) assert_non_null(err);
    if (rc >= 0) assert_null(err);
    atomic_fetch_add(&a->calls, 1);
    if (a->counter) atomic_fetch_add(a->counter, 1);
}

static void tick(evutil_socket_t fd, short what, void *arg) {}

/* Runs base (on this thread) until *counter reaches target (10 s cap). */
static void run_until(struct event_base *base, atomic_int *counter, int target)
{
    struct event *t = event_new(base, -1, EV_PERSIST, tick, NULL);
    struct timeval tv = {0, 20000};
    event_add(t, &tv);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (atomic_load(counter) < target) {
        event_base_loop(base, EVLOOP_ONCE);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec > 10) {
            event_free(t);
            fail_msg("timed out: %d of %d completions", atomic_load(counter), target);
        }
    }
    event_free(t);
}

/* Submits one put and waits for its completion on base; returns rc. */
static int put_sync(store_t *s, struct event_base *base, const char *name, const char *spec)
{
    atomic_int n = 0;
    ack_t a = {.counter = &n};
    store_model_put(s, name, spec, base, on_done, &a);
    run_until(base, &n, 1);
    assert_int_equal(a.calls, 1);
    assert_true(pthread_equal(a.thread, pthread_self()));
    return a.rc;
}

static int delete_sync(store_t *s, struct event_base *base, const char *name)
{
    atomic_int n = 0;
    ack_t a = {.counter = &n};
    store_model_delete(s, name, base, on_done, &a);
    run_until(base, &n, 1);
    assert_int_equal(a.calls, 1);
    return a.rc;
}

/* ------------------------------------------------------------------------ */
/* loading */

typedef struct mlist {
    int n;
    char name[2048][32];
    char spec[2048][96];
} mlist_t;

static void collect_model(void *ud, const char *name, const char *spec)
{
    mlist_t *l = ud;
    assert_true(l->n < 2048);
    snprintf(l->name[l->n], sizeof l->name[0], "%s", name);
    snprintf(l->spec[l->n], sizeof l->spec[0], "%s", spec);
    l->n++;
}

static mlist_t *load_models(store_t *s)
{
    mlist_t *l = calloc(1, sizeof *l);
    assert_non_null(l);
    assert_int_equal(store_model_load(s, collect_model, l), 0);
    return l;
}

static int find_model(const mlist_t *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->name[i], name) == 0) return i;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* the registry suite */

static void test_open_migrate_reopen(void **state)
{
    ctx_t *c = *state;
    store_t *s = open_ok(c);
    assert_string_equal(store_backend(s), c->pg ? "postgres" : "sqlite");
    assert_true(store_ping(s));
    mlist_t *l = load_models(s);
    assert_int_equal(l->n, 0);
    free(l);
    store_close(s);
    /* Migrations are idempotent: reopening twice applies nothing new. */
    for (int i = 0; i < 2; i++) {
        s = open_ok(c);
        assert_true(store_ping(s));
        store_close(s);
    }
    if (!c->pg) {
        sqlite3 *db;
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_open(c->url + strlen("sqlite://"), &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
        sqlite3_finalize(st);
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT count(*), max(version) FROM schema_migrations",
                                            -1, &st, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        /* 2: keys and spend, 3: provider secrets (issue 8), 4: cache_entries (cache),
         * 5: spend_log.op_id (issue 26) */
        assert_int_equal(sqlite3_column_int(st, 0), 5);
        assert_int_equal(sqlite3_column_int(st, 1), 5);
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
}

static void test_newer_schema_refused(void **state)
{
    ctx_t *c = *state;
    store_close(open_ok(c));
    exec_sql(c, "INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)");
    char err[512] = "";
    store_t *s = store_open(c->url, 0, err, sizeof err);
    assert_null(s);
    assert_non_null(strstr(err, "newer"));
    assert_non_null(strstr(err, "999"));
}

static void test_put_load_order_upsert_delete(void **state)
{
    ctx_t *c = *state;
    struct event_base *base = event_base_new();
    store_t *s = open_ok(c);
    assert_int_equal(put_sync(s, base, "alpha", "{\"provider\":\"p1\"}"), 0);
    assert_int_equal(put_sync(s, base, "bravo", "{\"provider\":\"p2\"}"), 0);
    assert_int_equal(put_sync(s, base, "charlie", "{\"provider\":\"p3\"}"), 0);
    /* Idempotent by name: the same spec again changes nothing. */
    assert_int_equal(put_sync(s, base, "alpha", "{\"provider\":\"p1\"}"), 0);
    /* A new spec replaces the old one and keeps the place in the order. */
    assert_int_equal(put_sync(s, base, "bravo", "{\"provider\":\"p2b\"}"), 0);

    mlist_t *l = load_models(s);
    assert_int_equal(l->n, 3);
    assert_string_equal(l->name[0], "alpha");
    assert_string_equal(l->name[1], "bravo");
    assert_string_equal(l->name[2], "charlie");
    assert_string_equal(l->spec[0], "{\"provider\":\"p1\"}");
    assert_string_equal(l->spec[1], "{\"provider\":\"p2b\"}");
    free(l);

    assert_int_equal(delete_sync(s, base, "bravo"), 0);
    assert_int_equal(delete_sync(s, base, "bravo"), STORE_NOT_FOUND);
    assert_int_equal(delete_sync(s, base, "never-was"), STORE_NOT_FOUND);
    /* Registered again after a delete: it goes to the end. */
    assert_int_equal(put_sync(s, base, "bravo", "{\"provider\":\"p2c\"}"), 0);
    store_close(s);

    /* Everything acknowledged is there after a reopen. */
    s = open_ok(c);
    l = load_models(s);
    assert_int_equal(l->n, 3);
    assert_string_equal(l->name[0], "alpha");
    assert_string_equal(l->name[1], "charlie");
    assert_string_equal(l->name[2], "bravo");
    assert_string_equal(l->spec[2], "{\"provider\":\"p2c\"}");
    free(l);
    store_close(s);
    event_base_free(base);
}

static void test_same_spec_twice_changes_nothing(void **state)
{
    ctx_t *c = *state;
    struct event_base *base = event_base_new();
    store_t *s = open_ok(c);
    assert_int_equal(put_sync(s, base, "m", "{\"a\":1}"), 0);
    exec_sql(c, "UPDATE models SET updated_at = 42");
    assert_int_equal(put_sync(s, base, "m", "{\"a\":1}"), 0);
    store_close(s);
    /* updated_at untouched: the second put wrote nothing. */
    exec_sql(c, c->pg ? "DO $$ BEGIN IF (SELECT updated_at FROM models WHERE name = 'm') <> 42 "
                        "THEN RAISE EXCEPTION 'changed'; END IF; END $$"
                      : "CREATE TABLE probe AS SELECT updated_at FROM models WHERE name = 'm'");
    if (!c->pg) {
        sqlite3 *db;
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_open(c->url + strlen("sqlite://"), &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT updated_at FROM probe", -1, &st, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int64(st, 0), 42);
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    event_base_free(base);
}

typedef struct hlist {
    int n;
    store_health_t h[8];
    char model[8][32];
} hlist_t;

static void collect_health(void *ud, const store_health_t *h)
{
    hlist_t *l = ud;
    assert_true(l->n < 8);
    l->h[l->n] = *h;
    snprintf(l->model[l->n], sizeof l->model[0], "%s", h->model);
    l->h[l->n].model = l->model[l->n];
    l->n++;
}

static void test_health_put_load(void **state)
{
    ctx_t *c = *state;
    struct event_base *base = event_base_new();
    store_t *s = open_ok(c);
    atomic_int n = 0;
    ack_t a1 = {.counter = &n}, a2 = {.counter = &n}, a3 = {.counter = &n};
    store_health_t h = {
        .model = "zulu", .probes = 10, .successes = 9, .last_probe_ms = 1700000000123, .up = true};
    store_health_put(s, &h, base, on_done, &a1);
    h = (store_health_t){
        .model = "yankee", .probes = 1ull << 40, .successes = 0, .last_probe_ms = 5, .up = false};
    store_health_put(s, &h, base, on_done, &a2);
    h = (store_health_t){.model = "zulu",
                         .probes = 11,
                         .successes = 10,
                         .last_probe_ms = 1700000000999,
                         .up = false};
    store_health_put(s, &h, base, on_done, &a3);
    h.model = "xray";
    store_health_put(s, &h, NULL, NULL, NULL); /* fire-and-forget */
    run_until(base, &n, 3);
    assert_int_equal(a1.rc, 0);
    assert_int_equal(a2.rc, 0);
    assert_int_equal(a3.rc, 0);
    store_close(s); /* drains the fire-and-forget one */

    s = open_ok(c);
    hlist_t l = {0};
    assert_int_equal(store_health_load(s, collect_health, &l), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.h[0].model, "xray");
    assert_string_equal(l.h[1].model, "yankee");
    assert_int_equal(l.h[1].probes, 1ull << 40);
    assert_false(l.h[1].up);
    assert_string_equal(l.h[2].model, "zulu");
    assert_int_equal(l.h[2].probes, 11);
    assert_int_equal(l.h[2].successes, 10);
    assert_int_equal(l.h[2].last_probe_ms, 1700000000999);
    assert_false(l.h[2].up);
    store_close(s);
    event_base_free(base);
}

/* issue 8: keys (upsert by id, hash unique), spend rows, sealed secrets */
typedef struct klist {
    int n;
    char id[4][32], hash[4][80], spec[4][256];
} klist_t;

static void collect_key(void *ud, const char *id, const char *hash, const char *spec)
{
    klist_t *l = ud;
    if (l->n >= 4) return;
    snprintf(l->id[l->n], 32, "%s", id);
    snprintf(l->hash[l->n], 80, "%s", hash);
    snprintf(l->spec[l->n], 256, "%s", spec);
    l->n++;
}

static void collect_secret(void *ud, const char *name, const char *sealed)
{
    klist_t *l = ud;
    if (l->n >= 4) return;
    snprintf(l->id[l->n], 32, "%s", name);
    snprintf(l->spec[l->n], 256, "%s", sealed);
    l->n++;
}

static void test_keys_spend_secrets(void **state)
{
    ctx_t *c = *state;
    struct event_base *base = event_base_new();
    store_t *s = open_ok(c);
    atomic_int n = 0;
    ack_t a[6];
    memset(a, 0, sizeof a);
    for (int i = 0; i < 6; i++) a[i].counter = &n;
    const char *h1 = "1111111111111111111111111111111111111111111111111111111111111111";
    const char *h2 = "2222222222222222222222222222222222222222222222222222222222222222";
    store_key_put(s, "key_a", h1, "{\"rpm\":1}", base, on_done, &a[0]);
    store_key_put(s, "key_b", h2, "{\"rpm\":2}", base, on_done, &a[1]);
    store_key_put(s, "key_a", h1, "{\"rpm\":1,\"revoked\":true}", base, on_done, &a[2]);
    store_key_put(s, "key_c", h1, "{}", base, on_done, &a[3]); /* same hash: refused */
    store_spend_t row = {.request_id = "r1",
                         .key_id = "key_a",
                         .model = "m",
                         .ts_ms = 5,
                         .prompt_tokens = 3,
                         .completion_tokens = 4,
                         .latency_ms = 9,
                         .status = 200,
                         .cost_usd = 0.25};
    store_spend_add(s, &row, base, on_done, &a[4]);
    store_secret_put(s, "openai", "v1:abc:def", base, on_done, &a[5]);
    run_until(base, &n, 6);
    assert_int_equal(a[0].rc, 0);
    assert_int_equal(a[1].rc, 0);
    assert_int_equal(a[2].rc, 0);
    assert_int_equal(a[3].rc, -1);
    assert_int_equal(a[4].rc, 0);
    assert_int_equal(a[5].rc, 0);
    store_close(s);
    s = open_ok(c);
    klist_t l = {0};
    assert_int_equal(store_key_load(s, collect_key, &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.id[0], "key_a");
    assert_string_equal(l.hash[0], h1);
    assert_non_null(strstr(l.spec[0], "revoked"));
    assert_string_equal(l.id[1], "key_b");
    klist_t sec = {0};
    assert_int_equal(store_secret_load(s, collect_secret, &sec), 0);
    assert_int_equal(sec.n, 1);
    assert_string_equal(sec.spec[0], "v1:abc:def");
    store_close(s);
    event_base_free(base);
}

/* Rows in spend_log, counted directly (not through the store). */
static long count_spend(const ctx_t *c)
{
    long n = -1;
    if (c->pg) {
        PGconn *pg = PQconnectdb(c->url);
        if (PQstatus(pg) != CONNECTION_OK) fail_msg("postgres: %s", PQerrorMessage(pg));
        PGresult *r = PQexec(pg, "SELECT count(*) FROM spend_log");
        if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("postgres: %s", PQresultErrorMessage(r));
        n = atol(PQgetvalue(r, 0, 0));
        PQclear(r);
        PQfinish(pg);
    } else {
        sqlite3 *db = NULL;
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_open(c->url + strlen("sqlite://"), &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM spend_log", -1, &st, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        n = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    return n;
}

/* A spend row written again after a COMMIT whose outcome the writer could
 * not know (the connection died before the answer) is not counted twice:
 * the op's write id makes the second INSERT a no-op; another op with the
 * same request id is a row of its own. */
static void test_spend_retry_idempotent(void **state)
{
    ctx_t *c = *state;
    store_close(open_ok(c)); /* migrated */
    const store__backend_t *be = c->pg ? &store__pg : &store__sqlite;
    char err[STORE__ERRLEN];
    store__conn_t *conn = be->connect(c->url, 0, err, sizeof err);
    if (!conn) fail_msg("connect: %s", err);
    store__op_t op;
    memset(&op, 0, sizeof op);
    op.kind = STORE__OP_SPEND_ADD;
    op.str[0] = "req-1";
    op.num[0] = 5;
    op.num[4] = 200;
    op.num[5] = 0x1234567890abcdefll;
    for (int i = 0; i < 2; i++) { /* the write, then its retry */
        assert_int_equal(be->begin(conn, err, sizeof err), 0);
        assert_int_equal(be->apply(conn, &op, err, sizeof err), 0);
        assert_int_equal(be->commit(conn, err, sizeof err), 0);
    }
    assert_int_equal(count_spend(c), 1);
    op.num[5]++; /* another request, same client-chosen request id */
    assert_int_equal(be->begin(conn, err, sizeof err), 0);
    assert_int_equal(be->apply(conn, &op, err, sizeof err), 0);
    assert_int_equal(be->commit(conn, err, sizeof err), 0);
    assert_int_equal(count_spend(c), 2);
    be->disconnect(conn);
    /* through the store: every row its own write id */
    store_t *s = open_ok(c);
    struct event_base *base = event_base_new();
    atomic_int n = 0;
    static ack_t a[50];
    store_spend_t row = {.request_id = "req-1", .model = "m", .status = 200};
    for (int i = 0; i < 50; i++) {
        memset(&a[i], 0, sizeof a[i]);
        a[i].counter = &n;
        store_spend_add(s, &row, base, on_done, &a[i]);
    }
    run_until(base, &n, 50);
    for (int i = 0; i < 50; i++) assert_int_equal(a[i].rc, 0);
    store_close(s);
    event_base_free(base);
    assert_int_equal(count_spend(c), 52);
}

static void test_bad_op_fails_alone(void **state)
{
    ctx_t *c = *state;
    struct event_base *base = event_base_new();
    store_t *s = open_ok(c);
    enum { N = 40 };
    static ack_t acks[N];
    atomic_int n = 0;
    char name[32];
    store__pause(s, true); /* all of them land in one batch */
    for (int i = 0; i < N; i++) {
        memset(&acks[i], 0, sizeof acks[i]);
        acks[i].counter = &n;
        snprintf(name, sizeof name, "m%02d", i);
        const char *spec = i == 7 ? "not json" : i == 23 ? "[1,2]" : "{\"ok\":true}";
        store_model_put(s, name, spec, base, on_done, &acks[i]);
    }
    store__pause(s, false);
    run_until(base, &n, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(acks[i].calls, 1);
        if (i == 7 || i == 23) {
            assert_int_equal(acks[i].rc, -1);
            assert_true(acks[i].err[0] != '\0');
        } else {
            assert_int_equal(acks[i].rc, 0);
        }
    }
    store__stats_t st;
    store__get_stats(s, &st);
    assert_true(st.retried >= 1);
    assert_int_equal(st.max_batch, N);
    mlist_t *l = load_models(s);
    assert_int_equal(l->n, N - 2);
    assert_int_equal(find_model(l, "m07"), -1);
    assert_int_equal(find_model(l, "m23"), -1);
    assert_int_equal(find_model(l, "m00"), 0);
    free(l);
    /* Required arguments: failed, still through the loop. */
    ack_t bad = {.counter = &n};
    store_model_put(s, NULL, "{}", base, on_done, &bad);
    assert_int_equal(bad.calls, 0); /* not inside the call */
    run_until(base, &n, N + 1);
    assert_int_equal(bad.rc, -1);
    store_close(s);
    event_base_free(base);
}

/* Two loop threads, each submitting from its own loop. */
enum { PER_THREAD = 500 };

typedef struct loop_thread {
    store_t *s;
    struct event_base *base;
    pthread_t thread;
    int id;
    ack_t acks[PER_THREAD];
    atomic_int done;
    int submitted;
} loop_thread_t;

static void lt_submit(evutil_socket_t fd, short what, void *arg)
{
    loop_thread_t *t = arg;
    char name[32], spec[64];
    /* in bursts, so the writer sees the queue grow while it commits */
    for (int k = 0; k < 50 && t->submitted < PER_THREAD; k++, t->submitted++) {
        int i = t->submitted;
        t->acks[i].counter = &t->done;
        snprintf(name, sizeof name, "t%d-%03d", t->id, i);
        snprintf(spec, sizeof spec, "{\"thread\":%d,\"i\":%d}", t->id, i);
        store_model_put(t->s, name, spec, t->base, on_done, &t->acks[i]);
    }
}

static void *lt_main(void *arg)
{
    loop_thread_t *t = arg;
    struct event *ev = event_new(t->base, -1, EV_PERSIST, lt_submit, t);
    struct timeval tv = {0, 1000};
    event_add(ev, &tv);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (atomic_load(&t->done) < PER_THREAD) {
        if (t->submitted == PER_THREAD) event_del(ev);
        event_base_loop(t->base, EVLOOP_ONCE);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec > 30) break;
        if (t->submitted == PER_THREAD && event_pending(ev, EV_TIMEOUT, NULL) == 0) {
            /* keep the loop waking up while completions arrive */
            struct timeval w = {0, 20000};
            event_add(ev, &w);
        }
    }
    event_free(ev);
    return NULL;
}

static void test_two_loops_concurrent(void **state)
{
    ctx_t *c = *state;
    store_t *s = open_ok(c);
    loop_thread_t *t = calloc(2, sizeof *t);
    for (int i = 0; i < 2; i++) {
        t[i].s = s;
        t[i].id = i;
        t[i].base = event_base_new();
        assert_int_equal(pthread_create(&t[i].thread, NULL, lt_main, &t[i]), 0);
    }
    for (int i = 0; i < 2; i++) pthread_join(t[i].thread, NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(atomic_load(&t[i].done), PER_THREAD);
        for (int k = 0; k < PER_THREAD; k++) {
            assert_int_equal(t[i].acks[k].calls, 1);
            assert_int_equal(t[i].acks[k].rc, 0);
            assert_true(pthread_equal(t[i].acks[k].thread, t[i].thread));
        }
    }
    store__stats_t st;
    store__get_stats(s, &st);
    assert_true(st.max_batch > 1); /* batching happened */
    assert_true(st.batches < 2 * PER_THREAD);
    mlist_t *l = load_models(s);
    assert_int_equal(l->n, 2 * PER_THREAD);
    /* Registration order holds per submitter. */
    for (int i = 0; i < 2; i++) {
        int prev = -1;
        char name[32];
        for (int k = 0; k < PER_THREAD; k++) {
            snprintf(name, sizeof name, "t%d-%03d", i, k);
            int at = find_model(l, name);
            assert_true(at > prev);
            prev = at;
        }
    }
    free(l);
    store_close(s);
    for (int i = 0; i < 2; i++) event_base_free(t[i].base);
    free(t);
}

/* A loop thread that only waits for completions. */
typedef struct waiter {
    struct event_base *base;
    atomic_int n;
    int target;
} waiter_t;

static void *waiter_main(void *arg)
{
    waiter_t *w = arg;
    run_until(w->base, &w->n, w->target);
    return NULL;
}

static void test_close_drains(void **state)
{
    ctx_t *c = *state;
    store_t *s = open_ok(c);
    enum { N1 = 300, N2 = 100 };
    ack_t *a1 = calloc(N1, sizeof *a1), *a2 = calloc(N2, sizeof *a2);
    atomic_int n1 = 0;
    waiter_t w = {.base = event_base_new(), .target = N2};
    char name[32];
    store__pause(s, true);
    for (int i = 0; i < N1; i++) {
        a1[i].counter = &n1;
        snprintf(name, sizeof name, "a%03d", i);
        store_model_put(s, name, "{}", NULL, on_done, &a1[i]);
    }
    for (int i = 0; i < N2; i++) {
        a2[i].counter = &w.n;
        snprintf(name, sizeof name, "b%03d", i);
        store_model_put(s, name, "{}", w.base, on_done, &a2[i]);
    }
    assert_int_equal(atomic_load(&n1), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
    store_close(s); /* un-pauses and drains */
    assert_int_equal(atomic_load(&n1),
                     N1); /* base NULL: ran on the writer, before close returned */
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&w.n), N2);
    for (int i = 0; i < N1; i++) {
        assert_int_equal(a1[i].calls, 1);
        assert_int_equal(a1[i].rc, 0);
    }
    for (int i = 0; i < N2; i++) {
        assert_int_equal(a2[i].calls, 1);
        assert_int_equal(a2[i].rc, 0);
        assert_true(pthread_equal(a2[i].thread, th));
    }
    s = open_ok(c);
    mlist_t *l = load_models(s);
    assert_int_equal(l->n, N1 + N2);
    free(l);
    store_close(s);
    event_base_free(w.base);
    free(a1);
    free(a2);
}

/* Acknowledged means committed: a child process writes as fast as it can
 * and reports every rc-0 completion over a pipe; it is killed with SIGKILL
 * mid-burst; every write it reported must be in the database. */
static void k9_found(void *ud, const char *name, const char *spec)
{
    char *found = ud;
    int i = atoi(name + 1);
    if (name[0] == 'k' && i >= 0 && i < (1 << 20)) found[i] = 1;
}

typedef struct k9 {
    store_t *s;
    struct event_base *base;
    int fd;
    int next;
} k9_t;

static void k9_done(void *ud, int rc, const char *err)
{
    k9_t *k = *(k9_t **)ud;
    int i = (int)(intptr_t)((void **)ud)[1];
    free(ud);
    if (rc == 0 && write(k->fd, &i, sizeof i) != sizeof i) _exit(3);
}

static void k9_tick(evutil_socket_t fd, short what, void *arg)
{
    k9_t *k = arg;
    char name[32];
    for (int n = 0; n < 20; n++, k->next++) {
        void **ud = malloc(2 * sizeof *ud);
        ud[0] = k;
        ud[1] = (void *)(intptr_t)k->next;
        snprintf(name, sizeof name, "k%06d", k->next);
        store_model_put(k->s, name, "{\"k\":9}", k->base, k9_done, ud);
    }
}

static void test_kill9_acknowledged_durable(void **state)
{
    ctx_t *c = *state;
    store_close(open_ok(c)); /* migrate first, in this process */
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        k9_t k = {.fd = p[1], .base = event_base_new()};
        char err[512];
        k.s = store_open(c->url, 0, err, sizeof err);
        if (!k.s || !k.base) _exit(2);
        struct event *ev = event_new(k.base, -1, EV_PERSIST, k9_tick, &k);
        struct timeval tv = {0, 1000};
        event_add(ev, &tv);
        event_base_dispatch(k.base);
        _exit(4);
    }
    close(p[1]);
    static char seen[1 << 20];
    memset(seen, 0, sizeof seen);
    int acked = 0, i;
    while (acked < 400 && read(p[0], &i, sizeof i) == sizeof i) {
        assert_true(i >= 0 && i < (int)sizeof seen);
        seen[i] = 1;
        acked++;
    }
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));              /* it was still writing */
    while (read(p[0], &i, sizeof i) == sizeof i) { /* reported before it died */
        seen[i] = 1;
        acked++;
    }
    close(p[0]);
    assert_true(acked >= 400);
    /* More may be there than mlist_t holds: mark them through a callback. */
    store_t *s = open_ok(c);
    static char found[1 << 20];
    memset(found, 0, sizeof found);
    assert_int_equal(store_model_load(s, k9_found, found), 0);
    store_close(s);
    for (int k = 0; k < (int)sizeof seen; k++)
        if (seen[k] && !found[k]) fail_msg("acknowledged write k%06d lost", k);
}

/* PostgreSQL only: kill every other session, the writer's and the reader's
 * included; the next write and the next load reconnect transparently. */
static void test_pg_reconnect(void **state)
{
    ctx_t *c = *state;
    struct event_base *base = event_base_new();
    store_t *s = open_ok(c);
    assert_int_equal(put_sync(s, base, "before", "{}"), 0);
    mlist_t *l = load_models(s);
    free(l);
    exec_sql(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND datname = current_database()");
    assert_int_equal(put_sync(s, base, "after", "{}"), 0);
    store__stats_t st;
    store__get_stats(s, &st);
    assert_int_equal(st.reconnects, 1);
    l = load_models(s);
    assert_int_equal(l->n, 2);
    free(l);
    assert_true(store_ping(s));
    store_close(s);
    event_base_free(base);
}

/* ------------------------------------------------------------------------ */
/* misc: URLs and secrets */

static void test_redact(void **state)
{
    (void)state;
    static const struct {
        const char *url, *want;
    } cases[] = {
        {"postgres://alice:s3cret@db.example:5432/skuld",
         "postgres://alice:***@db.example:5432/skuld"},
        {"postgresql://alice:p%40ss@h1,h2/db?sslmode=require",
         "postgresql://alice:***@h1,h2/db?sslmode=require"},
        {"postgres://alice@h/db?password=hunter2&sslmode=disable",
         "postgres://alice@h/db?password=***&sslmode=disable"},
        {"postgres://h/db?sslmode=disable&password=hunter2",
         "postgres://h/db?sslmode=disable&password=***"},
        {"host=h password='a b' dbname=x", "host=h password=*** dbname=x"},
        {"sqlite:///var/lib/skuld/a.db", "sqlite:///var/lib/skuld/a.db"},
        {"postgres://u@h/db", "postgres://u@h/db"},
    };
    char out[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        store__redact(cases[i].url, out, sizeof out);
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("redact(%s) = \"%s\", want \"%s\"", cases[i].url, out, cases[i].want);
    }
    store__redact("postgres://alice:s3cret@host", out, 12); /* truncates, never overflows */
    assert_string_equal(out, "postgres://");

    char msg[64] = "could not connect as xy with pw";
    store__scrub(msg, sizeof msg, "pw");
    assert_string_equal(msg, "could not connect as xy with ***");
    snprintf(msg, sizeof msg, "a hunter2 b hunter2");
    store__scrub(msg, sizeof msg, "hunter2");
    assert_string_equal(msg, "a *** b ***");
}

static void test_bad_urls(void **state)
{
    (void)state;
    char err[512];
    assert_null(store_open("mysql://u:topsecret@h/db", 0, err, sizeof err));
    assert_non_null(strstr(err, "unsupported"));
    assert_null(strstr(err, "topsecret"));
    assert_null(store_open("sqlite://:memory:", 0, err, sizeof err));
    assert_non_null(strstr(err, "memory"));
    assert_null(store_open("sqlite://", 0, err, sizeof err));
    assert_null(store_open("sqlite:///nonexistent-dir-skuld/x/y.db", 0, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent-dir-skuld/x/y.db"));
}

static void test_pg_error_hides_password(void **state)
{
    (void)state;
    char err[512];
    /* Port 1 on loopback: connection refused at once. */
    assert_null(store_open("postgres://alice:Pw-9f3k2@127.0.0.1:1/db?connect_timeout=2", 0, err,
                           sizeof err));
    assert_non_null(strstr(err, "cannot connect"));
    assert_non_null(strstr(err, "alice:***@127.0.0.1:1"));
    assert_null(strstr(err, "Pw-9f3k2"));
    assert_null(store_open("postgresql://127.0.0.1:1/db?password=Pw-9f3k2&connect_timeout=2", 0,
                           err, sizeof err));
    assert_null(strstr(err, "Pw-9f3k2"));
    /* libpq rejects the URL itself: still no password. */
    assert_null(
        store_open("postgres://alice:Pw-9f3k2@127.0.0.1:1/db?bogus_option=1", 0, err, sizeof err));
    assert_null(strstr(err, "Pw-9f3k2"));
}

/* ---- response cache, persistent tier (src/cache) ---- */

typedef struct clist {
    int n;
    char key[8][40];
    char val[8][64];
    int64_t exp[8];
} clist_t;

static void collect_cache(void *ud, const char *key, const char *value, int64_t expires_ms)
{
    clist_t *l = ud;
    assert_true(l->n < 8);
    snprintf(l->key[l->n], sizeof l->key[0], "%s", key);
    snprintf(l->val[l->n], sizeof l->val[0], "%s", value);
    l->exp[l->n] = expires_ms;
    l->n++;
}

static int clist_find(const clist_t *l, const char *key)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->key[i], key)) return i;
    return -1;
}

static void test_cache_put_load_purge(void **state)
{
    ctx_t *c = *state;
    struct event_base *base = event_base_new();
    store_t *s = open_ok(c);
    atomic_int n = 0;
    ack_t a1 = {.counter = &n}, a2 = {.counter = &n}, a3 = {.counter = &n};
    store_cache_put(s, "k-old", "b2xk", 1000, base, on_done, &a1);
    store_cache_put(s, "k-new", "bmV3", 5000, base, on_done, &a2);
    store_cache_put(s, "k-new", "bmV3ZXI=", 6000, base, on_done, &a3); /* upsert */
    store_cache_put(s, "k-later", "bGF0ZXI=", 9000, NULL, NULL, NULL);
    run_until(base, &n, 3);
    assert_int_equal(a1.rc + a2.rc + a3.rc, 0);
    store_close(s); /* drains the fire-and-forget one */

    s = open_ok(c);
    clist_t l = {0};
    assert_int_equal(store_cache_load(s, 2000, collect_cache, &l), 0);
    assert_int_equal(l.n, 2); /* k-old expired at 1000 */
    int i = clist_find(&l, "k-new");
    assert_true(i >= 0);
    assert_string_equal(l.val[i], "bmV3ZXI=");
    assert_int_equal(l.exp[i], 6000);
    assert_true(clist_find(&l, "k-later") >= 0);
    /* purge what expires by 6000, then everything */
    ack_t p1 = {.counter = &n}, p2 = {.counter = &n};
    n = 0;
    store_cache_purge(s, 6000, base, on_done, &p1);
    run_until(base, &n, 1);
    assert_int_equal(p1.rc, 0);
    memset(&l, 0, sizeof l);
    assert_int_equal(store_cache_load(s, 0, collect_cache, &l), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.key[0], "k-later");
    store_cache_purge(s, INT64_MAX, base, on_done, &p2);
    run_until(base, &n, 2);
    assert_int_equal(p2.rc, 0);
    memset(&l, 0, sizeof l);
    assert_int_equal(store_cache_load(s, 0, collect_cache, &l), 0);
    assert_int_equal(l.n, 0);
    store_close(s);
    event_base_free(base);
}

/* ------------------------------------------------------------------------ */

#define REGISTRY_SUITE(ctx, setup, teardown)                                                       \
    cmocka_unit_test_prestate_setup_teardown(test_open_migrate_reopen, setup, teardown, &ctx),     \
        cmocka_unit_test_prestate_setup_teardown(test_newer_schema_refused, setup, teardown,       \
                                                 &ctx),                                            \
        cmocka_unit_test_prestate_setup_teardown(test_put_load_order_upsert_delete, setup,         \
                                                 teardown, &ctx),                                  \
        cmocka_unit_test_prestate_setup_teardown(test_same_spec_twice_changes_nothing, setup,      \
                                                 teardown, &ctx),                                  \
        cmocka_unit_test_prestate_setup_teardown(test_health_put_load, setup, teardown, &ctx),     \
        cmocka_unit_test_prestate_setup_teardown(test_keys_spend_secrets, setup, teardown, &ctx),  \
        cmocka_unit_test_prestate_setup_teardown(test_spend_retry_idempotent, setup, teardown,     \
                                                 &ctx),                                            \
        cmocka_unit_test_prestate_setup_teardown(test_bad_op_fails_alone, setup, teardown, &ctx),  \
        cmocka_unit_test_prestate_setup_teardown(test_two_loops_concurrent, setup, teardown,       \
                                                 &ctx),                                            \
        cmocka_unit_test_prestate_setup_teardown(test_close_drains, setup, teardown, &ctx),        \
        cmocka_unit_test_prestate_setup_teardown(test_kill9_acknowledged_durable, setup, teardown, \
                                                 &ctx),                                            \
        cmocka_unit_test_prestate_setup_teardown(test_cache_put_load_purge, setup, teardown, &ctx)

int main(void)
{
    if (evthread_use_pthreads() != 0) return 1;
    const struct CMUnitTest misc[] = {
        cmocka_unit_test(test_redact),
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_pg_error_hides_password),
    };
    const struct CMUnitTest sqlite[] = {REGISTRY_SUITE(ctx_sqlite, setup_sqlite, teardown_sqlite)};
    const struct CMUnitTest postgres[] = {
        REGISTRY_SUITE(ctx_pg, setup_pg, teardown_pg),
        cmocka_unit_test_prestate_setup_teardown(test_pg_reconnect, setup_pg, teardown_pg, &ctx_pg),
    };
    int failed = cmocka_run_group_tests_name("store/misc", misc, NULL, NULL);
    failed += cmocka_run_group_tests_name("store/sqlite", sqlite, NULL, NULL);
    const char *pg = getenv("SKULD_TEST_PG_URL");
    if (pg && *pg)
        failed += cmocka_run_group_tests_name("store/postgres", postgres, NULL, NULL);
    else
        printf("store/postgres: SKULD_TEST_PG_URL not set; run by "
               "tests/integration/test_store_pg.py\n");
    libevent_global_shutdown();
    return failed ? 1 : 0;
}
