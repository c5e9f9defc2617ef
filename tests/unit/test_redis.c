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
    int held; /* answers owed */
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

static char *fake_url(fake_t *f, const char *auth_db_fmt)
{
    static char url[128];
    snprintf(url, sizeof url, auth_db_fmt, f->port);
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

/* Run the loop until *flag is non-zero or ms passed. */
static void run_until(struct event_base *base, const int *flag, int ms)
{
    uint64_t end = time_mono_ns() + (uint64_t)ms * 1000000u;
    while ((!flag || !*flag) && time_mono_ns() < end) {
        struct timeval tv = {0, 5000};
        event_base_loopexit(base, &tv);
        event_base_loop(base, EVLOOP_ONCE);
    }
}

static const char *const PING[] = {"PING"};

static void test_reply_auth_select(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    fake_t f;
    fake_start(&f, base);
    rds_client_t cl = {.name = "t"};
    tcall_t t = {.call.done = tcall_done};
    const char *argv[] = {"SET", "k", "v\0x", "PX", "10"};
    size_t lens[] = {3, 1, 3, 2, 2};
    assert_int_equal(rds_command(base, 3, fake_url(&f, "redis://:pw-1@127.0.0.1:%d/3"), &cl,
                                 &t.call, 1000, 5, argv, lens),
                     0);
    assert_int_equal(t.early, 0); /* never inside rds_command */
    run_until(base, &t.early, 2000);
    assert_int_equal(t.early, 1);
    assert_int_equal(t.early_ok, 1);
    assert_false(t.call.timed_out);
    assert_string_equal(f.log, "AUTH pw-1\nSELECT 3\nSET k v~x PX 10\n");
    assert_int_equal(rds_failures(&cl), 0);
    run_until(base, NULL, 100);
    assert_int_equal(t.late, 0);
    rds_close_all();
    assert_int_equal(t.late, 0); /* answered: nothing more */
    fake_stop(&f);
    event_base_free(base);
}

/* A timeout answers at once (NULL, timed_out); the real reply follows late. */
static void test_timeout_then_late(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    fake_t f;
    fake_start(&f, base);
    f.hold = true;
    rds_client_t cl = {.name = "t"};
    tcall_t t = {.call.done = tcall_done};
    assert_int_equal(
        rds_command(base, 0, fake_url(&f, "redis://127.0.0.1:%d"), &cl, &t.call, 50, 1, PING, NULL),
        0);
    uint64_t t0 = time_mono_ns();
    run_until(base, &t.early, 2000);
    uint64_t el_ms = (time_mono_ns() - t0) / 1000000;
    assert_int_equal(t.early, 1);
    assert_int_equal(t.early_ok, 0);
    assert_true(t.call.timed_out);
    assert_true(el_ms >= 45 && el_ms < 1000);
    assert_int_equal(rds_failures(&cl), 1);
    assert_int_equal(t.late, 0);
    fake_answer(&f, f.held);
    run_until(base, &t.late, 2000);
    assert_int_equal(t.late, 1);
    assert_int_equal(t.late_ok, 1);
    assert_int_equal(t.early, 1);
    assert_int_equal(rds_failures(&cl), 1); /* the late reply is not a second failure */
    rds_close_all();
    fake_stop(&f);
    event_base_free(base);
}

/* Commands behind a stalled server: capped; past the cap they fail at once. */
static void test_outstanding_cap(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    fake_t f;
    fake_start(&f, base);
    f.hold = true;
    rds_client_t cl = {.name = "t"};
    const char *url = fake_url(&f, "redis://127.0.0.1:%d");
    int sent = 0;
    while (sent < 20000 && rds_command(base, 1, url, &cl, NULL, 0, 1, PING, NULL) == 0) sent++;
    assert_int_equal(sent, 10000);
    assert_int_equal(rds_failures(&cl), 1);
    /* a call past the cap: -1, its done never runs */
    tcall_t t = {.call.done = tcall_done};
    assert_int_equal(rds_command(base, 1, url, &cl, &t.call, 50, 1, PING, NULL), -1);
    run_until(base, NULL, 100);
    assert_int_equal(t.early + t.late, 0);
    /* once the server answers, commands flow again */
    uint64_t end = time_mono_ns() + 5000000000u;
    while (f.held < 10000 && time_mono_ns() < end) run_until(base, NULL, 20);
    assert_int_equal(f.held, 10000);
    f.hold = false;
    fake_answer(&f, f.held);
    while (rds_command(base, 1, url, &cl, &t.call, 1000, 1, PING, NULL) != 0) {
        assert_true(time_mono_ns() < end);
        run_until(base, NULL, 20);
    }
    run_until(base, &t.early, 2000);
    assert_int_equal(t.early, 1);
    assert_int_equal(t.early_ok, 1);
    rds_close_all();
    fake_stop(&f);
    event_base_free(base);
}

/* Redis down: the first command waits for the connect and fails with it;
 * then calls fail at once until the backoff reconnects to a server that is up. */
static void test_down_then_up(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    fake_t f;
    fake_start(&f, base);
    const char *url = fake_url(&f, "redis://127.0.0.1:%d");
    event_del(f.lev);
    close(f.lfd); /* nobody listens on the port */
    rds_client_t cl = {.name = "t"};
    tcall_t t = {.call.done = tcall_done};
    if (rds_command(base, 2, url, &cl, &t.call, 1000, 1, PING, NULL) == 0) {
        run_until(base, &t.early, 2000);
        assert_int_equal(t.early, 1);
        assert_int_equal(t.early_ok, 0);
        assert_false(t.call.timed_out); /* refused, not timed out */
    }
    assert_int_equal(rds_failures(&cl), 1);
    tcall_t u = {.call.done = tcall_done};
    assert_int_equal(rds_command(base, 2, url, &cl, &u.call, 1000, 1, PING, NULL), -1);
    assert_int_equal(rds_failures(&cl), 2);
    /* the server comes up on the same port; the retry (<= 2 s) finds it */
    f.lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(f.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)f.port)};
    assert_int_equal(bind(f.lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(f.lfd, 16), 0);
    event_free(f.lev);
    f.lev = event_new(base, f.lfd, EV_READ | EV_PERSIST, fake_accept, &f);
    event_add(f.lev, NULL);
    run_until(base, &f.accepted, 5000);
    assert_int_equal(f.accepted, 1);
    assert_int_equal(rds_command(base, 2, url, &cl, &u.call, 1000, 1, PING, NULL), 0);
    run_until(base, &u.early, 2000);
    assert_int_equal(u.early_ok, 1);
    rds_close_all();
    fake_stop(&f);
    event_base_free(base);
}

/* A changed redis.url: that command fails, the connection reopens there. */
static void test_url_change(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    fake_t f, g;
    fake_start(&f, base);
    fake_start(&g, base);
    char u1[128], u2[128];
    snprintf(u1, sizeof u1, "%s", fake_url(&f, "redis://127.0.0.1:%d"));
    snprintf(u2, sizeof u2, "%s", fake_url(&g, "redis://127.0.0.1:%d/2"));
    rds_client_t cl = {.name = "t"};
    tcall_t t = {.call.done = tcall_done}, u = {.call.done = tcall_done};
    assert_int_equal(rds_command(base, 4, u1, &cl, &t.call, 1000, 1, PING, NULL), 0);
    run_until(base, &t.early, 2000);
    assert_int_equal(t.early_ok, 1);
    assert_int_equal(rds_command(base, 4, u2, &cl, &u.call, 1000, 1, PING, NULL), -1);
    run_until(base, &g.accepted, 2000);
    assert_int_equal(g.accepted, 1);
    assert_int_equal(rds_command(base, 4, u2, &cl, &u.call, 1000, 1, PING, NULL), 0);
    run_until(base, &u.early, 2000);
    assert_int_equal(u.early_ok, 1);
    assert_string_equal(g.log, "SELECT 2\nPING\n");
    assert_string_equal(f.log, "PING\n");
    rds_close_all();
    fake_stop(&f);
    fake_stop(&g);
    event_base_free(base);
}

/* Shutdown: a pending call gets one late NULL (nobody waits any more). */
static void test_close_all_pending(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    fake_t f;
    fake_start(&f, base);
    f.hold = true;
    rds_client_t cl = {.name = "t"};
    tcall_t t = {.call.done = tcall_done};
    assert_int_equal(
        rds_command(base, 5, fake_url(&f, "redis://127.0.0.1:%d"), &cl, &t.call, 0, 1, PING, NULL),
        0);
    run_until(base, &f.held, 2000);
    assert_int_equal(f.held, 1);
    assert_int_equal(t.early + t.late, 0);
    rds_close_all();
    assert_int_equal(t.early, 0);
    assert_int_equal(t.late, 1);
    assert_int_equal(t.late_ok, 0);
    fake_stop(&f);
    event_base_free(base);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_auth_select), cmocka_unit_test(test_timeout_then_late),
        cmocka_unit_test(test_outstanding_cap),   cmocka_unit_test(test_down_then_up),
        cmocka_unit_test(test_url_change),        cmocka_unit_test(test_close_all_pending),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
