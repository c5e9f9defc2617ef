#include "http/server.h"

#include <errno.h>
#include <stdatomic.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"

typedef enum { C_READ_HEAD, C_READ_BODY, C_READ_CHUNKED, C_HANDLING, C_CLOSING } conn_state_t;

struct http_conn {
    http_server_t *srv;
    http_conn_t *prev, *next;
    int fd;
    struct event *ev_read, *ev_write, *ev_timer, *ev_defer;
    buf_t in, out;
    conn_state_t state;
    http_req_t *req;
    uint64_t body_need;
    http_chunked_t chunked;
    buf_t chunked_body;
    bool keep_alive;  /* this request allows reuse */
    bool close_after; /* close once the current response is written */
    bool broken;      /* socket failed or peer closed */
    bool read_paused;
    bool http10;
    bool counted; /* the current request is in srv->active (dispatched to a handler) */
};

struct http_server {
    struct event_base *base;
    http_server_params_t p;
    struct evconnlistener *listener;
    int port;
    http_conn_t *conns;
    size_t n_conns;
    size_t active;
    bool draining;
    /* accept pause (see accept_on_error) */
    struct event *ev_resume;
    unsigned backoff_ms; /* the last pause; 0 = accepting normally */
    uint64_t log_ns;     /* when the last pause line was written; 0 = never */
    uint64_t unlogged;   /* pauses since that line */
};

static void conn_process(http_conn_t *c);
static void conn_close(http_conn_t *c);
static int conn_write(http_conn_t *c, const char *data, size_t len);

void http_server_default_params(http_server_params_t *p)
{
    memset(p, 0, sizeof *p);
    p->listen = "127.0.0.1:8080";
    p->max_header_bytes = 16 * 1024;
    p->max_body_bytes = 4 * 1024 * 1024;
    p->client_idle_timeout_ms = 75000;
}

/* ---------- requests ---------- */

static http_req_t *req_create(http_conn_t *c, const http_head_t *h)
{
    arena_t *a = arena_create(4096);
    if (!a) return NULL;
    http_req_t *r = arena_calloc(a, sizeof *r);
    char *copy = r ? arena_alloc(a, h->head_len) : NULL;
    http_header_t *hs = copy ? arena_alloc(a, sizeof(http_header_t) * (h->n_headers + 1)) : NULL;
    if (!hs) {
        arena_destroy(a);
        return NULL;
    }
    /* The head is copied once; slices are rebased onto the copy. */
    const char *base = buf_data(&c->in);
    memcpy(copy, base, h->head_len);
#define REBASE(s) ((http_slice_t){copy + ((s).p - base), (s).n})
    r->method = REBASE(h->method);
    r->path = REBASE(h->path);
    r->query = REBASE(h->query);
    for (size_t i = 0; i < h->n_headers; i++) {
        hs[i].name = REBASE(h->headers[i].name);
        hs[i].value = REBASE(h->headers[i].value);
    }
#undef REBASE
    r->arena = a;
    r->conn = c;
    r->server = c->srv;
    r->headers = hs;
    r->n_headers = h->n_headers;
    r->body = "";
    r->start_ns = time_mono_ns();
    buf_init(&r->resp_headers, 0);
    return r;
}

static void req_free(http_req_t *r)
{
    buf_free(&r->resp_headers);
    arena_destroy(r->arena);
}

http_slice_t http_req_header(const http_req_t *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (http_slice_eq_ci(req->headers[i].name, name)) return req->headers[i].value;
    return (http_slice_t){NULL, 0};
}

bool http_req_is_aborted(const http_req_t *req)
{
    return req->conn == NULL || req->conn->broken;
}

/* ---------- connection lifecycle ---------- */

static void conn_defer(http_conn_t *c)
{
    event_active(c->ev_defer, EV_TIMEOUT, 0);
}

static void conn_arm_idle(http_conn_t *c)
{
    uint64_t ms = c->srv->p.client_idle_timeout_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    event_add(c->ev_timer, &tv);
}

/* Client gone while a request is in flight: let the handler detach, then free. */
static void conn_abort_request(http_conn_t *c)
{
    http_req_t *r = c->req;
    if (!r) return;
    c->req = NULL;
    if (!r->finished && c->counted) { /* a handler owns it: let it detach */
        c->counted = false;
        c->srv->active--;
        r->conn = NULL;
        if (r->tap) r->tap(r, HTTP_TAP_ABORT, 499, NULL, NULL, 0);
        if (r->on_abort) r->on_abort(r);
    }
    req_free(r);
}

static void conn_close(http_conn_t *c)
{
    http_server_t *s = c->srv;
    conn_abort_request(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->n_conns--;
    event_free(c->ev_read);
    event_free(c->ev_write);
    event_free(c->ev_timer);
    event_free(c->ev_defer);
    close(c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->chunked_body);
    free(c);
}

static void conn_pause_read(http_conn_t *c, bool pause)
{
    if (pause == c->read_paused) return;
    c->read_paused = pause;
    if (pause)
        event_del(c->ev_read);
    else
        event_add(c->ev_read, NULL);
}

/* Answer an error the server found itself; the connection closes after it. */
static void conn_fail(http_conn_t *c, int status, const char *msg)
{
    c->close_after = true;
    conn_pause_read(c, true);
    if (!c->req) {
        arena_t *a = arena_create(1024);
        http_req_t *r = a ? arena_calloc(a, sizeof *r) : NULL;
        if (!r) {
            arena_destroy(a);
            conn_close(c);
            return;
        }
        r->arena = a;
        r->conn = c;
        r->server = c->srv;
        r->body = "";
        r->start_ns = time_mono_ns();
        buf_init(&r->resp_headers, 0);
        c->req = r;
    }
    c->state = C_HANDLING;
    c->srv->active++;
    c->counted = true;
    c->srv->p.on_error(c->req, status, msg);
}

static void conn_dispatch(http_conn_t *c)
{
    c->state = C_HANDLING;
    event_del(c->ev_timer);
    c->srv->active++;
    c->counted = true;
    c->srv->p.handler(c->req);
}

static void conn_process(http_conn_t *c)
{
    http_server_t *s = c->srv;
    for (;;) {
        switch (c->state) {
        case C_READ_HEAD: {
            if (c->in.len == 0) return;
            http_head_t h;
            http_parse_status_t st =
                http_parse_head(buf_data(&c->in), c->in.len, s->p.max_header_bytes, &h);
            if (st == HTTP_PARSE_AGAIN) return;
            if (st == HTTP_PARSE_ERROR) {
                conn_fail(c, h.error_status, h.error);
                return;
            }
            c->req = req_create(c, &h);
            if (!c->req) {
                conn_close(c);
                return;
            }
            /* RFC 9112 §6.1: an HTTP/1.0 message framed by Transfer-Encoding
             * cannot be trusted to end where we think: close after it */
            c->keep_alive = h.keep_alive && !s->draining && !(h.minor_version == 0 && h.chunked);
            c->http10 = h.minor_version == 0;
            buf_consume(&c->in, h.head_len);
            if (h.has_length && h.content_length > s->p.max_body_bytes) {
                conn_fail(c, 413, "request body too large");
                return;
            }
            if ((h.has_length && h.content_length > 0) || h.chunked) {
                if (h.expect_continue && c->in.len == 0)
                    conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
                if (h.chunked) {
                    memset(&c->chunked, 0, sizeof c->chunked);
                    buf_init(&c->chunked_body, s->p.max_body_bytes);
                    c->state = C_READ_CHUNKED;
                } else {
                    c->body_need = h.content_length;
                    c->state = C_READ_BODY;
                }
                continue;
            }
            conn_dispatch(c);
            return;
        }
        case C_READ_BODY: {
            if (c->in.len < c->body_need) return;
            char *b = arena_strndup(c->req->arena, buf_data(&c->in), (size_t)c->body_need);
            if (!b) {
                conn_close(c);
                return;
            }
            c->req->body = b;
            c->req->body_len = (size_t)c->body_need;
            buf_consume(&c->in, (size_t)c->body_need);
            conn_dispatch(c);
            return;
        }
        case C_READ_CHUNKED: {
            size_t used = 0;
            int status = 0;
            http_parse_status_t st = http_chunked_decode(&c->chunked, buf_data(&c->in), c->in.len,
                                                         &used, &c->chunked_body, &status);
            buf_consume(&c->in, used);
            if (st == HTTP_PARSE_AGAIN) return;
            if (st == HTTP_PARSE_ERROR) {
                buf_free(&c->chunked_body);
                conn_fail(c, status,
                          status == 413 ? "request body too large" : "malformed chunked body");
                return;
            }
            char *b = arena_strndup(c->req->arena, buf_data(&c->chunked_body), c->chunked_body.len);
            c->req->body_len = c->chunked_body.len;
            buf_free(&c->chunked_body);
            if (!b) {
                conn_close(c);
                return;
            }
            c->req->body = b;
            conn_dispatch(c);
            return;
        }
        case C_HANDLING:
        case C_CLOSING:
            return;
        }
    }
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    http_conn_t *c = arg;
    http_server_t *s = c->srv;
    size_t cap = s->p.max_header_bytes + s->p.max_body_bytes + 65536;
    /* Read into the stack and keep only what arrived: a connection then holds
     * a buffer the size of its request, not a 16 KiB read window, which keeps
     * memory per idle or streaming connection small. */
    char chunk[16384];
    for (;;) {
        if (c->in.len >= cap) {
            /* Enough buffered (pipelined input while a request runs). */
            conn_pause_read(c, true);
            break;
        }
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n > 0) {
            if (buf_append(&c->in, chunk, (size_t)n) != BUF_OK) {
                conn_close(c);
                return;
            }
            if ((size_t)n < sizeof chunk) break;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n < 0 && errno == EINTR) continue;
        /* EOF or error: the client is gone (half-close is treated as gone). */
        c->broken = true;
        conn_close(c);
        return;
    }
    if (c->state != C_HANDLING && c->state != C_CLOSING) {
        if (c->state == C_READ_HEAD && !evtimer_pending(c->ev_timer, NULL)) conn_arm_idle(c);
        conn_process(c);
    }
}

static int conn_flush(http_conn_t *c)
{
    while (c->out.len) {
        ssize_t n = write(c->fd, buf_data(&c->out), c->out.len);
        if (n > 0) {
            buf_consume(&c->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(c->ev_write, NULL);
            return 0;
        }
        c->broken = true;
        return -1;
    }
    event_del(c->ev_write);
    return 0;
}

static int conn_write(http_conn_t *c, const char *data, size_t len)
{
    if (c->broken) return -1;
    if (buf_append(&c->out, data, len) != BUF_OK) {
        c->broken = true;
        conn_defer(c);
        return -1;
    }
    if (c->out.len == len) { /* queue was empty: try the socket now */
        if (conn_flush(c) < 0) {
            conn_defer(c);
            return -1;
        }
    }
    return 0;
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    http_conn_t *c = arg;
    if (conn_flush(c) < 0) {
        conn_close(c);
        return;
    }
    if (c->out.len == 0 && c->state == C_CLOSING) {
        conn_close(c);
        return;
    }
    http_req_t *r = c->req;
    if (r && !r->finished && r->on_drain && c->out.len < HTTP_OUT_LOW_WATER) r->on_drain(r);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    http_conn_t *c = arg;
    if (c->state == C_READ_HEAD || c->state == C_READ_BODY || c->state == C_READ_CHUNKED) {
        if (c->state == C_READ_HEAD && c->in.len == 0) {
            conn_close(c); /* idle keep-alive connection */
            return;
        }
        conn_fail(c, 408, "request not received in time");
    }
}

/* Runs after a handler finished or a write failed, outside any handler frame. */
static void on_defer(evutil_socket_t fd, short what, void *arg)
{
    http_conn_t *c = arg;
    if (c->broken) {
        conn_close(c);
        return;
    }
    http_req_t *r = c->req;
    if (!r || !r->finished) return;
    c->req = NULL;
    req_free(r);
    if (c->close_after || !c->keep_alive || c->srv->draining) {
        c->state = C_CLOSING;
        if (c->out.len == 0)
            conn_close(c);
        else
            shutdown(c->fd, SHUT_RD);
        return;
    }
    buf_shrink(&c->out, 65536);
    c->state = C_READ_HEAD;
    conn_pause_read(c, false);
    conn_arm_idle(c);
    conn_process(c);
}

/* ---------- accept pause ----------
 *
 * When accept() fails for want of a resource (EMFILE, ENFILE, ENOBUFS,
 * ENOMEM) the pending connection stays in the kernel backlog and the
 * listening socket stays readable: a listener that simply tries again spins
 * a core, and libevent logged every failure (issue 26: 186% CPU and 2.4
 * million lines in 4 s at RLIMIT_NOFILE 200). Instead the listener is
 * disabled for a backoff, 50 ms doubling to 1 s, and re-enabled by a timer;
 * the first successful accept resets the backoff. Clients in the backlog
 * wait and are served as descriptors free up. One warning line per server
 * per 10 s, carrying the number of pauses it stands for; every pause counts
 * in http_accept_pauses() (skuld_accept_paused_total). */
#define ACCEPT_BACKOFF_MIN_MS 50
#define ACCEPT_BACKOFF_MAX_MS 1000
#define ACCEPT_LOG_EVERY_NS (10ull * 1000000000ull)

static atomic_uint_fast64_t http__accept_pauses;

uint64_t http_accept_pauses(void)
{
    return atomic_load_explicit(&http__accept_pauses, memory_order_relaxed);
}

static void accept_on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    http_server_t *s = arg;
    if (s->listener && !s->draining) evconnlistener_enable(s->listener);
}

static void accept_on_error(struct evconnlistener *l, void *arg)
{
    http_server_t *s = arg;
    int err = EVUTIL_SOCKET_ERROR();
    evconnlistener_disable(l);
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : ACCEPT_BACKOFF_MIN_MS;
    if (s->backoff_ms > ACCEPT_BACKOFF_MAX_MS) s->backoff_ms = ACCEPT_BACKOFF_MAX_MS;
    atomic_fetch_add_explicit(&http__accept_pauses, 1, memory_order_relaxed);
    s->unlogged++;
    uint64_t now = time_mono_ns();
    if (!s->log_ns || now - s->log_ns >= ACCEPT_LOG_EVERY_NS) {
        if (s->unlogged > 1)
            log_warn("accept() on port %d failed: %s; not accepting for %u ms (%llu more pauses "
                     "since the last such line; clients wait in the backlog)",
                     s->port, strerror(err), s->backoff_ms, (unsigned long long)s->unlogged - 1);
        else
            log_warn("accept() on port %d failed: %s; not accepting for %u ms (clients wait in "
                     "the backlog)",
                     s->port, strerror(err), s->backoff_ms);
        s->log_ns = now;
        s->unlogged = 0;
    }
    struct timeval tv = {s->backoff_ms / 1000, (s->backoff_ms % 1000) * 1000};
    if (s->ev_resume) event_add(s->ev_resume, &tv);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    http_server_t *s = arg;
    s->backoff_ms = 0;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    http_conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->srv = s;
    c->fd = fd;
    buf_init(&c->in, 0);
    buf_init(&c->out, 0);
    buf_init(&c->chunked_body, 0);
    c->ev_read = event_new(s->base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->ev_write = event_new(s->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    c->ev_timer = evtimer_new(s->base, on_timer, c);
    c->ev_defer = event_new(s->base, -1, 0, on_defer, c);
    if (!c->ev_read || !c->ev_write || !c->ev_timer || !c->ev_defer) {
        if (c->ev_read) event_free(c->ev_read);
        if (c->ev_write) event_free(c->ev_write);
        if (c->ev_timer) event_free(c->ev_timer);
        if (c->ev_defer) event_free(c->ev_defer);
        close(fd);
        free(c);
        return;
    }
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    c->state = C_READ_HEAD;
    event_add(c->ev_read, NULL);
    conn_arm_idle(c);
}

/* ---------- responses ---------- */

static void resp_head(http_req_t *req, buf_t *o, int status, const char *ctype, bool stream,
                      size_t len)
{
    http_conn_t *c = req->conn;
    if (c->srv->draining) c->close_after = true;
    if (stream && c->http10) c->close_after = true;
    bool close_conn = c->close_after || !c->keep_alive;
    buf_appends(o, "HTTP/1.1 ");
    buf_append_u64(o, (uint64_t)status);
    buf_appends(o, " ");
    buf_appends(o, http_status_reason(status));
    if (ctype) {
        buf_appends(o, "\r\nContent-Type: ");
        buf_appends(o, ctype);
    }
    buf_appends(o, "\r\n");
    if (!stream) {
        buf_appends(o, "Content-Length: ");
        buf_append_u64(o, len);
        buf_appends(o, "\r\n");
    } else if (!c->http10)
        buf_appends(o, "Transfer-Encoding: chunked\r\n");
    if (req->resp_headers.len) buf_append(o, buf_data(&req->resp_headers), req->resp_headers.len);
    if (close_conn)
        buf_appends(o, "Connection: close\r\n");
    else if (c->http10)
        buf_appends(o, "Connection: keep-alive\r\n");
    buf_appends(o, "\r\n");
    req->status = status;
    req->started = true;
}

void http_resp_header(http_req_t *req, const char *name, const char *value)
{
    /* a name or value that could split the head is not sent (nor is a ':' in a name) */
    size_t nl = strcspn(name, "\r\n:"), vl = strcspn(value, "\r\n");
    if (name[nl] || value[vl]) return;
    char *w = buf_reserve(&req->resp_headers, nl + vl + 4, NULL);
    if (!w) return;
    memcpy(w, name, nl);
    memcpy(w + nl, ": ", 2);
    memcpy(w + nl + 2, value, vl);
    memcpy(w + nl + 2 + vl, "\r\n", 2);
    buf_commit(&req->resp_headers, nl + vl + 4);
}

void http_resp_headerf(http_req_t *req, const char *name, const char *fmt, ...)
{
    char v[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    http_resp_header(req, name, v);
}

static void req_finish(http_req_t *req)
{
    req->finished = true;
    http_conn_t *c = req->conn;
    if (!c) return;
    if (c->counted) {
        c->counted = false;
        c->srv->active--;
    }
    conn_defer(c);
}

void http_respond(http_req_t *req, int status, const char *content_type, const char *body,
                  size_t len)
{
    http_conn_t *c = req->conn;
    if (req->finished || req->started || !c) return;
    if (req->tap) req->tap(req, HTTP_TAP_BODY, status, content_type, body, len);
    buf_t o;
    buf_init(&o, 0);
    resp_head(req, &o, status, content_type, false, len);
    if (http_slice_eq_ci(req->method, "HEAD")) len = 0; /* same head, no body (RFC 9110 9.3.2) */
    size_t head = o.len;
    /* Small answers go out in one write; large bodies avoid a copy of the head. */
    if (len <= 16384) {
        buf_append(&o, body, len);
        conn_write(c, buf_data(&o), o.len);
    } else if (conn_write(c, buf_data(&o), head) == 0) {
        conn_write(c, body, len);
    }
    req->bytes_out = len;
    buf_free(&o);
    req_finish(req);
}

void http_stream_start(http_req_t *req, int status, const char *content_type)
{
    http_conn_t *c = req->conn;
    if (req->finished || req->started || !c) return;
    if (req->tap) req->tap(req, HTTP_TAP_START, status, content_type, NULL, 0);
    buf_t o;
    buf_init(&o, 0);
    resp_head(req, &o, status, content_type, true, 0);
    req->chunked = !c->http10;
    conn_write(c, buf_data(&o), o.len);
    buf_free(&o);
}

int http_stream_write(http_req_t *req, const char *data, size_t len)
{
    http_conn_t *c = req->conn;
    if (!c || c->broken || req->finished) return -1;
    if (len == 0) return 0;
    if (req->tap) req->tap(req, HTTP_TAP_DATA, 0, NULL, data, len);
    req->bytes_out += len;
    if (!req->chunked) return conn_write(c, data, len);
    char hdr[24];
    int n = snprintf(hdr, sizeof hdr, "%zx\r\n", len);
    /* One queued write keeps framing and payload together. */
    buf_status_t st;
    size_t was_empty = c->out.len == 0;
    char *w = buf_reserve(&c->out, (size_t)n + len + 2, &st);
    if (!w) {
        c->broken = true;
        conn_defer(c);
        return -1;
    }
    memcpy(w, hdr, (size_t)n);
    memcpy(w + n, data, len);
    memcpy(w + n + len, "\r\n", 2);
    buf_commit(&c->out, (size_t)n + len + 2);
    if (was_empty && conn_flush(c) < 0) {
        conn_defer(c);
        return -1;
    }
    return 0;
}

void http_stream_end(http_req_t *req)
{
    http_conn_t *c = req->conn;
    if (!c || req->finished) return;
    if (req->tap) req->tap(req, HTTP_TAP_END, 0, NULL, NULL, 0);
    if (req->chunked) conn_write(c, "0\r\n\r\n", 5);
    req_finish(req);
}

size_t http_req_out_pending(const http_req_t *req)
{
    return req->conn ? req->conn->out.len : 0;
}

/* ---------- server ---------- */

http_server_t *http_server_create(struct event_base *base, const http_server_params_t *p)
{
    http_server_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->base = base;
    s->p = *p;
    return s;
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[256];
    const char *colon;
    if (listen[0] == '[') {
        const char *rb = strchr(listen, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - listen - 1) >= sizeof host) return -1;
        memcpy(host, listen + 1, (size_t)(rb - listen - 1));
        host[rb - listen - 1] = '\0';
        colon = rb + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon || (size_t)(colon - listen) >= sizeof host) return -1;
        memcpy(host, listen, (size_t)(colon - listen));
        host[colon - listen] = '\0';
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res) != 0 || !res) return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int http_server_listen(http_server_t *s)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (parse_listen(s->p.listen, &ss, &len) != 0) {
        log_error("invalid listen address '%s'", s->p.listen);
        return -1;
    }
    unsigned flags =
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_EXEC;
    s->listener = evconnlistener_new_bind(s->base, on_accept, s, flags, 4096,
                                          (struct sockaddr *)&ss, (int)len);
    if (!s->listener) {
        log_error("cannot listen on %s: %s", s->p.listen, strerror(errno));
        return -1;
    }
    s->ev_resume = evtimer_new(s->base, accept_on_resume, s);
    if (!s->ev_resume) return -1;
    evconnlistener_set_error_cb(s->listener, accept_on_error);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    getsockname(evconnlistener_get_fd(s->listener), (struct sockaddr *)&bound, &blen);
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    return 0;
}

int http_server_port(const http_server_t *s)
{
    return s->port;
}

void *http_server_ctx(const http_server_t *s)
{
    return s->p.ctx;
}

void http_server_drain(http_server_t *s)
{
    s->draining = true;
    if (s->listener) {
        evconnlistener_free(s->listener);
        s->listener = NULL;
    }
    if (s->ev_resume) event_del(s->ev_resume);
    /* Connections idle or still reading a request that never reached a handler
     * close now (a stalled upload must not hold the drain); the rest finish
     * their current answer with Connection: close. */
    http_conn_t *c = s->conns;
    while (c) {
        http_conn_t *next = c->next;
        if (c->state == C_READ_HEAD || c->state == C_READ_BODY || c->state == C_READ_CHUNKED)
            conn_close(c);
        else
            c->close_after = true;
        c = next;
    }
}

void http_server_abort_all(http_server_t *s)
{
    while (s->conns) conn_close(s->conns);
}

size_t http_server_active_requests(const http_server_t *s)
{
    return s->active;
}

size_t http_server_connections(const http_server_t *s)
{
    return s->n_conns;
}

void http_server_destroy(http_server_t *s)
{
    if (!s) return;
    http_server_abort_all(s);
    if (s->listener) evconnlistener_free(s->listener);
    if (s->ev_resume) event_free(s->ev_resume);
    free(s);
}
