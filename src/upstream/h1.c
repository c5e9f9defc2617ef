/*
 * h1 — the native HTTP/1.1 upstream client: plain-http calls to numeric or
 * "localhost" hosts, run directly on the worker's libevent loop behind the
 * interface of upstream/client.h (client.c picks the engine per call; libcurl,
 * curl.c, keeps https, hostnames that need DNS, and everything with
 * SKULD_UPSTREAM=curl).
 *
 * Owns: the calls it starts (up_call_t with c->engine == &up_engine_h1, linked in the
 * upstream's list by client.c's up_link) and the worker's pool of idle
 * keep-alive connections (u->h1_idle, keyed by the peer's socket address,
 * most recently used first, at most u->max_idle). Worker-loop thread only.
 *
 * Invariants:
 * - A connection is owned by exactly one call (conn->call) or is idle in the
 *   pool (conn->call == NULL). Its read event stays registered for its whole
 *   life (a pooled connection notices the peer's close at once; reusing one
 *   costs no epoll_ctl); it is removed only while its call is paused.
 * - A connection goes back to the pool only after a complete response with
 *   no Connection: close, the whole request written, and no byte beyond the
 *   response; otherwise it is closed. Cancel closes it.
 * - A reused connection that fails (EOF, reset, write error) before any byte
 *   of the response arrived is retried once on a fresh connection: nothing
 *   was received, so the request was not answered.
 * - Callbacks run with c->in_callback raised; upstream_call_cancel() inside
 *   one only marks the call, and the code that fired the callback frees it
 *   once it returns. No callback fires from inside upstream_call_start or
 *   upstream_call_resume: failures found there, and resumed delivery, go
 *   through the call's kick event on the next loop turn.
 * - A paused body piece stays in conn->rbuf, unconsumed, and is delivered
 *   again on resume. Every buffer is capped: H1_RBUF for reads (a line is at
 *   most H1P_MAX_LINE), UP_MAX_RESPONSE_HEAD for the header lines.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "upstream/internal.h"

#define H1_RBUF (16 * 1024)

struct h1_conn {
    upstream_t *up;
    h1_conn_t *prev, *next; /* idle list */
    up_call_t *call;        /* owner, or NULL when idle */
    int fd;
    bool connecting;
    bool rev_on;
    struct event rev, wev;
    struct sockaddr_storage addr;
    socklen_t alen;
    size_t rlen;
    char rbuf[H1_RBUF];
};

static void h1_on_read(evutil_socket_t fd, short what, void *arg);
static void h1_on_write(evutil_socket_t fd, short what, void *arg);
static void h1_process(up_call_t *c);
static void h1_connect_new(up_call_t *c);

/* ---------- URL ---------- */

typedef struct h1_target {
    const char *authority; /* host[:port] as written, for Host: */
    size_t authority_len;
    const char *path; /* "/..." or "" */
} h1_target_t;

/* The last URL prefix ("http://authority") this thread parsed and its address: a
 * deployment's calls share it, and parsing it (inet_pton, twice per call) cost ~850
 * instructions a request. An exact byte match of the prefix gives the same parse. */
static _Thread_local struct {
    char prefix[96];
    size_t n; /* 0: empty */
    struct sockaddr_storage addr;
    socklen_t alen;
} h1__last_url;

static bool h1_parse_url_uncached(const char *url, h1_target_t *t, struct sockaddr_storage *addr,
                                  socklen_t *alen);

static bool h1_parse_url(const char *url, h1_target_t *t, struct sockaddr_storage *addr,
                         socklen_t *alen)
{
    size_t n = h1__last_url.n;
    if (n && strncmp(url, h1__last_url.prefix, n) == 0 &&
        (url[n] == '/' || url[n] == '?' || url[n] == '\0')) {
        const char *path = url + n;
        if (strchr(path, '#') || strchr(path, ' ')) return false;
        *addr = h1__last_url.addr;
        *alen = h1__last_url.alen;
        t->authority = url + 7;
        t->authority_len = n - 7;
        t->path = path;
        return true;
    }
    if (!h1_parse_url_uncached(url, t, addr, alen)) return false;
    size_t pn = (size_t)(t->path - url);
    if (pn < sizeof h1__last_url.prefix) {
        memcpy(h1__last_url.prefix, url, pn);
        h1__last_url.prefix[pn] = '\0';
        h1__last_url.n = pn;
        h1__last_url.addr = *addr;
        h1__last_url.alen = *alen;
    }
    return true;
}

static bool h1_parse_url_uncached(const char *url, h1_target_t *t, struct sockaddr_storage *addr,
                                  socklen_t *alen)
{
    if (strncasecmp(url, "http://", 7) != 0) return false;
    const char *a = url + 7;
    size_t al = strcspn(a, "/?#");
    if (!al || a[al] == '#' || memchr(a, '@', al)) return false;
    const char *path = a + al;
    if (strchr(path, '#') || strchr(path, ' ')) return false;
    char host[64];
    const char *hend;
    unsigned port = 80;
    bool v6 = false;
    if (a[0] == '[') {
        const char *rb = memchr(a, ']', al);
        if (!rb || (size_t)(rb - a - 1) >= sizeof host) return false;
        memcpy(host, a + 1, (size_t)(rb - a - 1));
        host[rb - a - 1] = '\0';
        hend = rb + 1;
        v6 = true;
    } else {
        const char *colon = memchr(a, ':', al);
        hend = colon ? colon : a + al;
        if ((size_t)(hend - a) >= sizeof host) return false;
        memcpy(host, a, (size_t)(hend - a));
        host[hend - a] = '\0';
    }
    if (hend < a + al) {
        if (*hend != ':' || hend + 1 == a + al) return false;
        port = 0;
        for (const char *p = hend + 1; p < a + al; p++) {
            if (*p < '0' || *p > '9') return false;
            port = port * 10 + (unsigned)(*p - '0');
            if (port > 65535) return false;
        }
        if (!port) return false;
    }
    memset(addr, 0, sizeof *addr);
    if (v6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)addr;
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) return false;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *alen = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)addr;
        if (strcasecmp(host, "localhost") == 0)
            s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
            return false; /* a name to resolve: libcurl does it off the loop */
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *alen = sizeof *s4;
    }
    t->authority = a;
    t->authority_len = al;
    t->path = path;
    return true;
}

static bool h1_url_ok(const char *url, struct sockaddr_storage *addr, socklen_t *alen)
{
    h1_target_t t;
    return h1_parse_url(url, &t, addr, alen);
}

/* ---------- connections ---------- */

static void h1_conn_close(h1_conn_t *k)
{
    event_del(&k->rev);
    event_del(&k->wev);
    close(k->fd);
    free(k);
}

static void h1_idle_unlink(upstream_t *u, h1_conn_t *k)
{
    if (k->prev)
        k->prev->next = k->next;
    else
        u->h1_idle = k->next;
    if (k->next) k->next->prev = k->prev;
    k->prev = k->next = NULL;
    u->h1_n_idle--;
}

static h1_conn_t *h1_pool_take(upstream_t *u, const struct sockaddr_storage *addr, socklen_t alen)
{
    for (h1_conn_t *k = u->h1_idle; k; k = k->next) {
        if (k->alen == alen && memcmp(&k->addr, addr, alen) == 0) {
            h1_idle_unlink(u, k);
            return k;
        }
    }
    return NULL;
}

static void h1_close_idle(upstream_t *u)
{
    while (u->h1_idle) {
        h1_conn_t *k = u->h1_idle;
        h1_idle_unlink(u, k);
        h1_conn_close(k);
    }
}

/* The call lets go of its connection: back to the pool, or closed. */
static void h1_release(up_call_t *c, bool reusable)
{
    h1_conn_t *k = c->h1.conn;
    if (!k) return;
    c->h1.conn = NULL;
    upstream_t *u = c->up;
    event_del(&k->wev);
    if (!reusable || k->rlen || k->connecting || u->h1_n_idle >= (size_t)u->max_idle) {
        h1_conn_close(k);
        return;
    }
    k->call = NULL;
    if (!k->rev_on) {
        event_add(&k->rev, NULL);
        k->rev_on = true;
    }
    k->next = u->h1_idle;
    if (u->h1_idle) u->h1_idle->prev = k;
    u->h1_idle = k;
    u->h1_n_idle++;
}

/* ---------- call lifetime ---------- */

static void h1_free(up_call_t *c)
{
    h1_release(c, false);
    event_del(&c->h1.total_ev);
    event_del(&c->h1.connect_ev);
    event_del(&c->h1.idle_ev);
    event_del(&c->h1.kick_ev);
    buf_free(&c->h1.req);
    buf_free(&c->resp_head);
    up_unlink(c->up, c);
    free(c);
}

/* The call ends: the connection is pooled or closed, on_done fires (unless
 * cancelled), the call is freed. Never called from inside a callback of c. */
static void h1_finish(up_call_t *c, up_result_t res, const char *detail, bool reusable)
{
    h1_release(c, reusable);
    if (!c->cancelled && c->cb.on_done) {
        c->in_callback++;
        c->cb.on_done(c->ud, res, res == UP_OK ? NULL : detail);
        c->in_callback--;
    }
    h1_free(c);
}

/* A failure to report from a context where callbacks must not fire. */
static void h1_fail_later(up_call_t *c, up_result_t res, const char *detail)
{
    c->h1.fail_pending = true;
    c->h1.fail_res = res;
    if (detail != c->h1.detail) snprintf(c->h1.detail, sizeof c->h1.detail, "%s", detail);
    h1_release(c, false);
    event_del(&c->h1.connect_ev);
    event_active(&c->h1.kick_ev, EV_TIMEOUT, 0);
}

static void h1_fail(up_call_t *c, up_result_t res, const char *detail)
{
    if (c->h1.starting)
        h1_fail_later(c, res, detail);
    else
        h1_finish(c, res, detail, false);
}

/* The connection failed (I/O error or EOF before the response was complete). */
static void h1_conn_failed(up_call_t *c, up_result_t res, const char *detail)
{
    if (c->h1.reused && !c->h1.got_bytes && !c->h1.retried) {
        /* A stale keep-alive connection: nothing was received, try a fresh one. */
        c->h1.retried = true;
        h1_release(c, false);
        h1_connect_new(c);
        return;
    }
    h1_fail(c, res, detail);
}

static void h1_idle_arm(up_call_t *c)
{
    if (!c->h1.idle_ms) return;
    struct timeval tv = {(time_t)(c->h1.idle_ms / 1000),
                         (suseconds_t)(c->h1.idle_ms % 1000) * 1000};
    evtimer_add(&c->h1.idle_ev, &tv);
}

/* ---------- writing ---------- */

/* Write what is left of the request; 0 when all or some of it is out (the write
 * event finishes the rest), -1 after reporting a failure. */
static int h1_send(up_call_t *c)
{
    h1_state_t *s = &c->h1;
    h1_conn_t *k = s->conn;
    size_t hl = s->req.len, total = hl + s->body_len;
    while (s->sent < total) {
        struct iovec iov[2];
        int n = 0;
        if (s->sent < hl) {
            iov[n].iov_base = buf_data(&s->req) + s->sent;
            iov[n++].iov_len = hl - s->sent;
        }
        if (s->body_len) {
            size_t off = s->sent > hl ? s->sent - hl : 0;
            iov[n].iov_base = (char *)s->body + off;
            iov[n++].iov_len = s->body_len - off;
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(k->fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                event_add(&k->wev, NULL);
                return 0;
            }
            snprintf(s->detail, sizeof s->detail, "send failure: %s", strerror(errno));
            h1_conn_failed(c, UP_PROTOCOL_ERROR, s->detail);
            return -1;
        }
        s->sent += (size_t)w;
    }
    return 0;
}

/* ---------- connecting ---------- */

static h1_conn_t *h1_conn_new(up_call_t *c, int fd)
{
    h1_conn_t *k = malloc(sizeof *k);
    if (!k) return NULL;
    k->up = c->up;
    k->prev = k->next = NULL;
    k->call = c;
    k->fd = fd;
    k->connecting = false;
    k->rev_on = false;
    k->rlen = 0;
    memcpy(&k->addr, &c->h1.addr, c->h1.alen);
    k->alen = c->h1.alen;
    event_assign(&k->rev, c->up->base, fd, EV_READ | EV_PERSIST, h1_on_read, k);
    event_assign(&k->wev, c->up->base, fd, EV_WRITE, h1_on_write, k);
    return k;
}

static void h1_connected(up_call_t *c)
{
    h1_conn_t *k = c->h1.conn;
    k->connecting = false;
    event_del(&c->h1.connect_ev);
    event_add(&k->rev, NULL);
    k->rev_on = true;
    h1_send(c);
}

static void h1_connect_new(up_call_t *c)
{
    h1_state_t *s = &c->h1;
    s->reused = false;
    s->got_bytes = false;
    s->sent = 0;
    h1p_init(&s->parser, &c->resp_head, UP_MAX_RESPONSE_HEAD);
    int fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(s->detail, sizeof s->detail, "socket: %s", strerror(errno));
        h1_fail(c, UP_INTERNAL, s->detail);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    h1_conn_t *k = h1_conn_new(c, fd);
    if (!k) {
        close(fd);
        h1_fail(c, UP_INTERNAL, "out of memory");
        return;
    }
    s->conn = k;
    int r;
    do r = connect(fd, (struct sockaddr *)&s->addr, s->alen);
    while (r < 0 && errno == EINTR);
    if (r == 0) {
        h1_connected(c);
        return;
    }
    if (errno != EINPROGRESS) {
        snprintf(s->detail, sizeof s->detail, "connect failed: %s", strerror(errno));
        h1_fail(c, UP_CONNECT_FAILED, s->detail);
        return;
    }
    k->connecting = true;
    event_add(&k->wev, NULL);
    if (s->connect_ms) {
        struct timeval tv = {(time_t)(s->connect_ms / 1000),
                             (suseconds_t)(s->connect_ms % 1000) * 1000};
        evtimer_add(&s->connect_ev, &tv);
    }
}

static void h1_on_write(evutil_socket_t fd, short what, void *arg)
{
    h1_conn_t *k = arg;
    up_call_t *c = k->call;
    if (!c) return;
    if (k->connecting) {
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0) err = errno;
        if (err) {
            snprintf(c->h1.detail, sizeof c->h1.detail, "connect failed: %s", strerror(err));
            h1_fail(c, UP_CONNECT_FAILED, c->h1.detail);
            return;
        }
        h1_connected(c);
        return;
    }
    h1_send(c);
}

/* ---------- reading ---------- */

static void h1_on_read(evutil_socket_t fd, short what, void *arg)
{
    h1_conn_t *k = arg;
    up_call_t *c = k->call;
    if (!c) {
        /* Idle in the pool: a close, an error or stray bytes all retire it. */
        char tmp[64];
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        h1_idle_unlink(k->up, k);
        h1_conn_close(k);
        return;
    }
    if (c->paused) return;
    if (k->rlen >= H1_RBUF) { /* cannot happen: lines are capped below the buffer */
        h1_finish(c, UP_PROTOCOL_ERROR, "response line too long", false);
        return;
    }
    ssize_t n = recv(fd, k->rbuf + k->rlen, H1_RBUF - k->rlen, 0);
    if (n > 0) {
        k->rlen += (size_t)n;
        c->h1.got_bytes = true;
        h1_idle_arm(c);
        h1_process(c);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    h1_state_t *s = &c->h1;
    if (n < 0) snprintf(s->detail, sizeof s->detail, "recv failure: %s", strerror(errno));
    if (!s->got_bytes) {
        if (n == 0) snprintf(s->detail, sizeof s->detail, "empty reply from the upstream");
        h1_conn_failed(c, UP_PROTOCOL_ERROR, s->detail);
        return;
    }
    if (n == 0 && h1p_eof(&s->parser) == H1P_DONE && s->sent == s->req.len + s->body_len) {
        h1_finish(c, UP_OK, NULL, false);
        return;
    }
    if (n == 0)
        snprintf(s->detail, sizeof s->detail, "%s",
                 s->parser.err ? s->parser.err : "connection closed mid-response");
    h1_finish(c, UP_PROTOCOL_ERROR, s->detail, false);
}

/* Hand the buffered bytes to the parser and the callbacks, until they run out,
 * the consumer pauses, or the response ends. */
static void h1_process(up_call_t *c)
{
    h1_state_t *s = &c->h1;
    h1_conn_t *k = s->conn;
    size_t pos = 0;
    for (;;) {
        size_t used, plen;
        h1p_ev_t ev = h1p_feed(&s->parser, k->rbuf + pos, k->rlen - pos, &used, &plen);
        pos += used;
        switch (ev) {
        case H1P_MORE:
            if (pos) {
                memmove(k->rbuf, k->rbuf + pos, k->rlen - pos);
                k->rlen -= pos;
            }
            return;
        case H1P_HEAD:
            c->status = s->parser.status;
            c->head_done = true;
            if (c->cb.on_head) {
                c->in_callback++;
                c->cb.on_head(c->ud, c->status);
                c->in_callback--;
                if (c->cancelled) {
                    h1_free(c);
                    return;
                }
            }
            break;
        case H1P_BODY:
            if (c->cb.on_data) {
                c->in_callback++;
                int r = c->cb.on_data(c->ud, k->rbuf + pos, plen);
                c->in_callback--;
                if (c->cancelled) {
                    h1_free(c);
                    return;
                }
                if (r == UP_PAUSE) {
                    /* Keep the piece, unconsumed; stop reading and the idle clock. */
                    memmove(k->rbuf, k->rbuf + pos, k->rlen - pos);
                    k->rlen -= pos;
                    c->paused = true;
                    event_del(&k->rev);
                    k->rev_on = false;
                    event_del(&s->idle_ev);
                    return;
                }
            }
            h1p_body_taken(&s->parser, plen);
            pos += plen;
            break;
        case H1P_DONE: {
            bool extra = pos < k->rlen;
            k->rlen = 0;
            h1_finish(c, UP_OK, NULL,
                      !extra && h1p_reusable(&s->parser) && s->sent == s->req.len + s->body_len);
            return;
        }
        case H1P_ERROR:
            k->rlen = 0;
            snprintf(s->detail, sizeof s->detail, "bad response from the upstream: %s",
                     s->parser.err);
            h1_finish(c, UP_PROTOCOL_ERROR, s->detail, false);
            return;
        }
    }
}

/* ---------- timers ---------- */

/* Every timer ends the call with UP_TIMEOUT; fmt words the detail around the limit in ms. */
static void h1_timed_out(up_call_t *c, const char *fmt, uint64_t ms)
    __attribute__((format(printf, 2, 0)));

static void h1_timed_out(up_call_t *c, const char *fmt, uint64_t ms)
{
    snprintf(c->h1.detail, sizeof c->h1.detail, fmt, (unsigned long long)ms);
    h1_finish(c, UP_TIMEOUT, c->h1.detail, false);
}

static void h1_on_total(evutil_socket_t fd, short what, void *arg)
{
    up_call_t *c = arg;
    h1_timed_out(c, "operation timed out after %llu ms", c->h1.total_ms);
}

static void h1_on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
    up_call_t *c = arg;
    h1_timed_out(c, "connection timed out after %llu ms", c->h1.connect_ms);
}

static void h1_on_idle(evutil_socket_t fd, short what, void *arg)
{
    up_call_t *c = arg;
    h1_timed_out(c, "no data from the upstream for %llu ms", c->h1.idle_ms);
}

/* A deferred failure, or delivery after a resume. */
static void h1_on_kick(evutil_socket_t fd, short what, void *arg)
{
    up_call_t *c = arg;
    if (c->h1.fail_pending) {
        h1_finish(c, c->h1.fail_res, c->h1.detail, false);
        return;
    }
    h1_conn_t *k = c->h1.conn;
    if (c->paused || !k) return;
    if (!k->rev_on) {
        event_add(&k->rev, NULL);
        k->rev_on = true;
    }
    h1_idle_arm(c);
    h1_process(c);
}

/* ---------- interface ---------- */

static bool h1_has_header(const char *const *h, const char *name, size_t nl)
{
    for (; h && *h; h++)
        if (strncasecmp(*h, name, nl) == 0 && ((*h)[nl] == ':' || (*h)[nl] == ';')) return true;
    return false;
}

/* The request head, as libcurl would send it: "Name:" with no value removes a
 * header (nothing to remove here: dropped), "Name;" sends it empty. Host and
 * Content-Length are ours; a caller's Host replaces ours. */
static int h1_build_request(buf_t *b, const up_request_t *req, const h1_target_t *t)
{
    const char *path = *t->path ? t->path : "/";
    buf_appends(b, req->body ? "POST " : "GET ");
    if (*path == '?') buf_append(b, "/", 1);
    buf_appends(b, path);
    buf_appends(b, " HTTP/1.1\r\n");
    if (!h1_has_header(req->headers, "host", 4)) {
        buf_appends(b, "Host: ");
        buf_append(b, t->authority, t->authority_len);
        buf_appends(b, "\r\n");
    }
    if (req->body) {
        buf_appends(b, "Content-Length: ");
        buf_append_u64(b, req->body_len);
        buf_appends(b, "\r\n");
    }
    if (!h1_has_header(req->headers, "accept", 6)) buf_appends(b, "Accept: */*\r\n");
    for (const char *const *p = req->headers; p && *p; p++) {
        const char *h = *p;
        size_t nl = strcspn(h, ":;");
        if (!nl || !h[nl] || strpbrk(h, "\r\n")) continue;
        if ((nl == 14 && strncasecmp(h, "content-length", 14) == 0) ||
            (nl == 17 && strncasecmp(h, "transfer-encoding", 17) == 0))
            continue;
        const char *v = h + nl + 1;
        while (*v == ' ' || *v == '\t') v++;
        if (h[nl] == ':' && !*v) continue; /* curl: a removal */
        buf_append(b, h, nl);
        buf_appends(b, ": ");
        buf_appends(b, v);
        buf_appends(b, "\r\n");
    }
    return buf_appends(b, "\r\n") == BUF_OK ? 0 : -1;
}

static up_call_t *h1_call_start(upstream_t *u, const up_request_t *req, const up_callbacks_t *cb,
                                void *ud)
{
    h1_target_t t;
    up_call_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    h1_state_t *s = &c->h1;
    if (!h1_parse_url(req->url, &t, &s->addr, &s->alen)) {
        free(c);
        return NULL;
    }
    c->up = u;
    c->cb = *cb;
    c->ud = ud;
    c->engine = &up_engine_h1;
    buf_init(&c->resp_head, UP_MAX_RESPONSE_HEAD);
    buf_init(&s->req, 1 << 20);
    if (h1_build_request(&s->req, req, &t) != 0) {
        buf_free(&s->req);
        free(c);
        return NULL;
    }
    s->body = req->body;
    s->body_len = req->body ? req->body_len : 0;
    s->connect_ms = req->connect_timeout_ms;
    s->total_ms = req->total_timeout_ms;
    s->idle_ms = req->idle_timeout_ms;
    event_assign(&s->total_ev, u->base, -1, 0, h1_on_total, c);
    event_assign(&s->connect_ev, u->base, -1, 0, h1_on_connect_timeout, c);
    event_assign(&s->idle_ev, u->base, -1, 0, h1_on_idle, c);
    event_assign(&s->kick_ev, u->base, -1, 0, h1_on_kick, c);
    up_link(u, c);
    if (s->total_ms) {
        struct timeval tv = {(time_t)(s->total_ms / 1000),
                             (suseconds_t)(s->total_ms % 1000) * 1000};
        evtimer_add(&s->total_ev, &tv);
    }
    h1_idle_arm(c);

    s->starting = true;
    h1_conn_t *k = h1_pool_take(u, &s->addr, s->alen);
    if (k) {
        k->call = c;
        s->conn = k;
        s->reused = true;
        h1p_init(&s->parser, &c->resp_head, UP_MAX_RESPONSE_HEAD);
        h1_send(c);
    } else {
        h1_connect_new(c);
    }
    s->starting = false;
    return c;
}

static void h1_call_cancel(up_call_t *c)
{
    c->cancelled = true;
    if (c->in_callback) return; /* the code that fired the callback frees it */
    h1_free(c);                 /* closes the connection */
}

static void h1_call_resume(up_call_t *c)
{
    c->paused = false;
    event_active(&c->h1.kick_ev, EV_TIMEOUT, 0);
}

/* http:// to a numeric address or localhost, unless SKULD_UPSTREAM=curl. */
static bool h1_takes(const upstream_t *u, const char *url)
{
    struct sockaddr_storage addr;
    socklen_t alen;
    return !u->force_curl && h1_url_ok(url, &addr, &alen);
}

const up_engine_t up_engine_h1 = {
    .name = "h1",
    .takes = h1_takes,
    .start = h1_call_start,
    .cancel = h1_call_cancel,
    .resume = h1_call_resume,
    .close_idle = h1_close_idle,
};
