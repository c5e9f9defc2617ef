/* core/redis: the per-worker connection against a fake Redis server on the
 * same event loop (a listening socket that parses RESP commands, records
 * them, and answers +OK — or holds its answers until told to send them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/redis.h"

/* ---- fake server ---- */

typedef struct fake {
    struct event_base *base;
    int lfd, cfd, port, accepted;
    struct event *lev, *cev;
    char in[1 << 16];
    size_t in_len;
    char log[4096]; /* every command, args joined by ' ', one per line */
    bool hold;
    int held; /* answers owed (to the newest client) */
} fake_t;

static void fake_answer(fake_t *f, int n)
{
    for (int i = 0; i < n; i++) assert_int_equal(write(f->cfd, "+OK\r\n", 5), 5);
}

/* Parse whole RESP arrays from f->in; returns how many were consumed. */
static int fake_parse(fake_t *f)
{
    int cmds = 0;
    size_t pos = 0;
    for (;;) {
        char *p = f->in + pos, *end = f->in + f->in_len;
        if (p >= end || *p != '*') break;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break;
        long n = strtol(p + 1, NULL, 10);
        char *q = nl + 1, line[512] = "";
        size_t ll = 0;
        bool whole = true;
        for (long i = 0; i < n && whole; i++) {
            char *nl2 = q < end ? memchr(q, '\n', (size_t)(end - q)) : NULL;
            long len = nl2 ? strtol(q + 1, NULL, 10) : 0;
            if (!nl2 || nl2 + 1 + len + 2 > end) {
                whole = false;
                break;
            }
            if (i && ll < sizeof line - 2) line[ll++] = ' ';
            for (long j = 0; j < len && j < 40 && ll < sizeof line - 2; j++) /* NUL: ~ */
                line[ll++] = nl2[1 + j] ? nl2[1 + j] : '~';
            line[ll] = '\0';
            q = nl2 + 1 + len + 2;
        }
        if (!whole) break;
        snprintf(f->log + strlen(f->log), sizeof f->log - strlen(f->log), "%s\n", line);
        pos = (size_t)(q - f->in);
        cmds++;
    }
    memmove(f->in, f->in + pos, f->in_len - pos);
    f->in_len -= pos;
    return cmds;
}

static void fake_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    fake_t *f = arg;
    ssize_t n = read(fd, f->in + f->in_len, sizeof f->in - f->in_len);
    if (n <= 0) {
        event_del(f->cev);
        return;
    }
    f->in_len += (size_t)n;
    int cmds = fake_parse(f);
    if (f->hold)
        f->held += cmds;
    else
        fake_answer(f, cmds);
}

static void fake_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    fake_t *f = arg;
    int c = accept(fd, NULL, NULL);
    if (c < 0) return;
    if (f->cev) { /* one client at a time: the newest */
        event_free(f->cev);
        close(f->cfd);
    }
    f->cfd = c;
    f->accepted++;
    f->in_len = 0;
    f->held = 0; /* answers owed to the newest client */
    f->cev = event_new(f->base, c, EV_READ | EV_PERSIST, fake_read, f);
    event_add(f->cev, NULL);
}

static void fake_start(fake_t *f, struct event_base *base)
{
    memset(f, 0, sizeof *f);
    f->base = base;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(f->lfd, 16), 0);
    socklen_t al = sizeof a;
    getsockname(f->lfd, (struct sockaddr *)&a, &al);
    f->port = ntohs(a.sin_port);
    f->lev = event_new(base, f->lfd, EV_READ | EV_PERSIST, fake_accept, f);
    event_add(f->lev, NULL);
}

static void fake_stop(fake_t *f)
{
    if (f->cev) {
        event_free(f->cev);
        close(f->cfd);
    }
    event_free(f->lev);
    close(f->lfd);
}

/* fake's URL with a printf format for the port ("redis://127.0.0.1:%d/2") */
static const char *fake_url(fake_t *f, const char *fmt)
{
    static char url[128];
    snprintf(url, sizeof url, fmt, f->port);
    return url;
}

/* ---- calls ---- */

typedef struct tcall {
    rds_call_t call; /* first */
    int early, late, early_ok, late_ok;
} tcall_t;

static void tcall_done(rds_call_t *call, struct redisReply *r, bool late)
{
    tcall_t *t = (tcall_t *)call;
    bool ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
    if (late) {
        t->late++;
        t->late_ok += ok;
    } else {
        t->early++;
        t->early_ok += ok;
    }
}

/* Run the loop until *v >= at_least (v NULL: for ms). */
static void run_until(struct event_base *base, const int *v, int at_least, int ms)
{
    uint64_t end = time_mono_ns() + (uint64_t)ms * 1000000u;
    while ((!v || *v < at_least) && time_mono_ns() < end) {
        struct timeval tv = {0, 5000};
        event_base_loopexit(base, &tv);
        event_base_loop(base, EVLOOP_ONCE);
    }
}

/* ---- fixture: a loop, a fake server, a client ---- */

typedef struct fx {
    struct event_base *base;
    fake_t f;
    rds_client_t cl;
    char url[128]; /* the fake's, plain */
    tcall_t t;
} fx_t;

static int fx_setup(void **state)
{
    fx_t *x = calloc(1, sizeof *x);
    x->base = event_base_new();
    fake_start(&x->f, x->base);
    x->cl.name = "t";
    snprintf(x->url, sizeof x->url, "%s", fake_url(&x->f, "redis://127.0.0.1:%d"));
    x->t.call.done = tcall_done;
    *state = x;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *x = *state;
    rds_close_all();
    fake_stop(&x->f);
    event_base_free(x->base);
    free(x);
    return 0;
}

static const char *const PING[] = {"PING"};

/* PING through client cl at url; 0 queued, -1 unavailable. */
static int ping(fx_t *x, rds_client_t *cl, const char *url, tcall_t *t, uint64_t timeout_ms)
{
    return rds_command(x->base, 0, url, cl, t ? &t->call : NULL, timeout_ms, 1, PING, NULL);
}

/* Fire-and-forget PINGs until refused; how many were queued. */
static int fill(fx_t *x, rds_client_t *cl)
{
    int sent = 0;
    while (sent < 20000 && ping(x, cl, x->url, NULL, 0) == 0) sent++;
    return sent;
}

static void test_reply_auth_select(void **state)
{
    fx_t *x = *state;
    const char *argv[] = {"SET", "k", "v\0x", "PX", "10"};
    size_t lens[] = {3, 1, 3, 2, 2};
    assert_int_equal(rds_command(x->base, 3, fake_url(&x->f, "redis://:pw-1@127.0.0.1:%d/3"),
                                 &x->cl, &x->t.call, 1000, 5, argv, lens),
                     0);
    assert_int_equal(x->t.early, 0); /* never inside rds_command */
    run_until(x->base, &x->t.early, 1, 2000);
    assert_int_equal(x->t.early, 1);
    assert_int_equal(x->t.early_ok, 1);
    assert_false(x->t.call.timed_out);
    assert_string_equal(x->f.log, "AUTH pw-1\nSELECT 3\nSET k v~x PX 10\n");
    assert_int_equal(rds_failures(&x->cl), 0);
    run_until(x->base, NULL, 0, 100);
    rds_close_all();
    assert_int_equal(x->t.late, 0); /* answered: nothing more, even at shutdown */
}

/* A timeout answers at once (NULL, timed_out); the real reply follows late. */
static void test_timeout_then_late(void **state)
{
    fx_t *x = *state;
    x->f.hold = true;
    assert_int_equal(ping(x, &x->cl, x->url, &x->t, 50), 0);
    uint64_t t0 = time_mono_ns();
    run_until(x->base, &x->t.early, 1, 2000);
    uint64_t el_ms = (time_mono_ns() - t0) / 1000000;
    assert_int_equal(x->t.early, 1);
    assert_int_equal(x->t.early_ok, 0);
    assert_true(x->t.call.timed_out);
    assert_true(el_ms >= 45 && el_ms < 1000);
    assert_int_equal(rds_failures(&x->cl), 1);
    assert_int_equal(x->t.late, 0);
    fake_answer(&x->f, x->f.held);
    run_until(x->base, &x->t.late, 1, 2000);
    assert_int_equal(x->t.late, 1);
    assert_int_equal(x->t.late_ok, 1);
    assert_int_equal(x->t.early, 1);
    assert_int_equal(rds_failures(&x->cl), 1); /* the late reply is not a second failure */
}

/* Commands behind a stalled server: capped; past the cap they fail at once. */
static void test_outstanding_cap(void **state)
{
    fx_t *x = *state;
    x->f.hold = true;
    assert_int_equal(fill(x, &x->cl), 10000);
    assert_int_equal(rds_failures(&x->cl), 1);
    /* a call past the cap: -1, its done never runs */
    tcall_t u = {.call.done = tcall_done};
    assert_int_equal(ping(x, &x->cl, x->url, &u, 50), -1);
    run_until(x->base, NULL, 0, 100);
    assert_int_equal(u.early + u.late, 0);
    /* once the server answers, commands flow again */
    run_until(x->base, &x->f.held, 10000, 5000);
    assert_int_equal(x->f.held, 10000);
    x->f.hold = false;
    fake_answer(&x->f, x->f.held);
    uint64_t end = time_mono_ns() + 5000000000u;
    while (ping(x, &x->cl, x->url, &x->t, 1000) != 0) {
        assert_true(time_mono_ns() < end);
        run_until(x->base, NULL, 0, 20);
    }
    run_until(x->base, &x->t.early, 1, 2000);
    assert_int_equal(x->t.early_ok, 1);
}

/* A stall of 10 s with commands waiting: the next command drops the
 * connection (waiting calls get NULL, a timed-out one its late NULL) and it
 * reopens; a shorter stall keeps it (late replies still due). */
static void test_stall_drop(void **state)
{
    fx_t *x = *state;
    x->f.hold = true;
    assert_int_equal(ping(x, &x->cl, x->url, &x->t, 50), 0);
    run_until(x->base, &x->t.early, 1, 2000);
    assert_true(x->t.call.timed_out);
    run_until(x->base, NULL, 0, 5000);
    tcall_t u = {.call.done = tcall_done}, v = {.call.done = tcall_done};
    assert_int_equal(ping(x, &x->cl, x->url, &u, 20000), 0); /* 5 s: still the same one */
    run_until(x->base, NULL, 0, 5500);
    assert_int_equal(x->t.late + u.early, 0);
    assert_int_equal(x->f.accepted, 1);
    assert_int_equal(ping(x, &x->cl, x->url, &v, 1000), -1); /* 10.5 s: dropped */
    run_until(x->base, &x->t.late, 1, 2000);
    assert_int_equal(x->t.late, 1);
    assert_int_equal(x->t.late_ok, 0);
    assert_int_equal(u.early, 1);
    assert_int_equal(u.early_ok, 0);
    assert_false(u.call.timed_out);
    x->f.hold = false;
    run_until(x->base, &x->f.accepted, 2, 3000);
    assert_int_equal(x->f.accepted, 2);
    assert_int_equal(ping(x, &x->cl, x->url, &v, 1000), 0);
    run_until(x->base, &v.early, 1, 2000);
    assert_int_equal(v.early_ok, 1);
}

/* Redis down: the first command waits for the connect and fails with it;
 * then calls fail at once until the backoff reconnects to a server that is up. */
static void test_down_then_up(void **state)
{
    fx_t *x = *state;
    fake_t *f = &x->f;
    event_del(f->lev);
    close(f->lfd); /* nobody listens on the port */
    if (ping(x, &x->cl, x->url, &x->t, 1000) == 0) {
        run_until(x->base, &x->t.early, 1, 2000);
        assert_int_equal(x->t.early, 1);
        assert_int_equal(x->t.early_ok, 0);
        assert_false(x->t.call.timed_out); /* refused, not timed out */
    }
    assert_int_equal(rds_failures(&x->cl), 1);
    tcall_t u = {.call.done = tcall_done};
    assert_int_equal(ping(x, &x->cl, x->url, &u, 1000), -1);
    assert_int_equal(rds_failures(&x->cl), 2);
    /* the server comes up on the same port; the retry (<= 2 s) finds it */
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)f->port)};
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(f->lfd, 16), 0);
    event_free(f->lev);
    f->lev = event_new(x->base, f->lfd, EV_READ | EV_PERSIST, fake_accept, f);
    event_add(f->lev, NULL);
    run_until(x->base, &f->accepted, 1, 5000);
    assert_int_equal(f->accepted, 1);
    assert_int_equal(ping(x, &x->cl, x->url, &u, 1000), 0);
    run_until(x->base, &u.early, 1, 2000);
    assert_int_equal(u.early_ok, 1);
}

/* A changed redis.url: that command fails, the connection reopens there. */
static void test_url_change(void **state)
{
    fx_t *x = *state;
    fake_t g;
    fake_start(&g, x->base);
    char u2[128];
    snprintf(u2, sizeof u2, "%s", fake_url(&g, "redis://127.0.0.1:%d/2"));
    tcall_t u = {.call.done = tcall_done};
    assert_int_equal(ping(x, &x->cl, x->url, &x->t, 1000), 0);
    run_until(x->base, &x->t.early, 1, 2000);
    assert_int_equal(x->t.early_ok, 1);
    assert_int_equal(ping(x, &x->cl, u2, &u, 1000), -1);
    run_until(x->base, &g.accepted, 1, 2000);
    assert_int_equal(g.accepted, 1);
    assert_int_equal(ping(x, &x->cl, u2, &u, 1000), 0);
    run_until(x->base, &u.early, 1, 2000);
    assert_int_equal(u.early_ok, 1);
    assert_string_equal(g.log, "SELECT 2\nPING\n");
    assert_string_equal(x->f.log, "PING\n");
    rds_close_all();
    fake_stop(&g);
}

/* Two clients on one worker: a connection each, so a client stalled at its
 * cap does not stop the other's commands. */
static void test_clients_apart(void **state)
{
    fx_t *x = *state;
    x->f.hold = true;
    rds_client_t b = {.name = "b"};
    assert_int_equal(fill(x, &x->cl), 10000);
    assert_int_equal(ping(x, &b, x->url, &x->t, 2000), 0);
    run_until(x->base, &x->f.accepted, 2, 5000);
    assert_int_equal(x->f.accepted, 2);
    /* the fake answers its newest client: b's PING */
    run_until(x->base, &x->f.held, 1, 5000);
    fake_answer(&x->f, 1);
    run_until(x->base, &x->t.early, 1, 2000);
    assert_int_equal(x->t.early_ok, 1);
    assert_int_equal(rds_failures(&b), 0);
    assert_int_equal(rds_failures(&x->cl), 1);
    rds_close_all(); /* before b goes out of scope */
}

/* Shutdown: a pending call gets one late NULL (nobody waits any more). */
static void test_close_all_pending(void **state)
{
    fx_t *x = *state;
    x->f.hold = true;
    assert_int_equal(ping(x, &x->cl, x->url, &x->t, 0), 0);
    run_until(x->base, &x->f.held, 1, 2000);
    assert_int_equal(x->f.held, 1);
    assert_int_equal(x->t.early + x->t.late, 0);
    rds_close_all();
    assert_int_equal(x->t.early, 0);
    assert_int_equal(x->t.late, 1);
    assert_int_equal(x->t.late_ok, 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        T(test_reply_auth_select), T(test_timeout_then_late), T(test_outstanding_cap),
        T(test_stall_drop),        T(test_down_then_up),      T(test_url_change),
        T(test_clients_apart),     T(test_close_all_pending),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
