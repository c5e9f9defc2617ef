/*
 * fuzz_http_parser — the HTTP/1.1 request parser (src/http/parser.h):
 * http_parse_head() and http_chunked_decode().
 *
 * Feeds: any bytes as what a client sends on one connection (pipelined
 * requests included), driven the way http/server.c drives the parser: bytes
 * accumulate; the head is parsed from everything held so far; then a
 * Content-Length body or a chunked body; then the next request.
 *
 * Checks, beyond "no crash" (ASan/UBSan):
 * - whole vs split: the input fed at once and fed in pieces (split points
 *   from fuzz_common.h) give the same transcript: every head (method,
 *   target, path, query, version, headers, framing flags), every body,
 *   every error status, and the bytes left over at the end (unless an error
 *   closed the connection);
 * - no read past the buffer: each call gets an exact-size heap copy of the
 *   held bytes, so ASan reports any over-read;
 * - caps: a head is never longer than max_head (else 431), a Content-Length
 *   above the body cap is refused (413, as the server does) and a chunked
 *   body never grows past its buf_t cap (else 413);
 * - a parsed head is consistent: slices lie inside the head, the head ends
 *   with CRLFCRLF, at most HTTP_MAX_HEADERS headers, never both chunked and
 *   Content-Length, error statuses are 400/431/501/505 with a message.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "fuzz_common.h"
#include "http/parser.h"

#define MAX_HEAD 1024
#define MAX_BODY 2048

enum { S_HEAD, S_BODY, S_CHUNKED, S_CLOSED };

typedef struct conn {
    int state;
    char *pend; /* bytes held, not yet consumed */
    size_t plen;
    uint64_t need; /* S_BODY: Content-Length */
    http_chunked_t ch;
    buf_t body; /* S_CHUNKED: decoded bytes, capped at MAX_BODY */
    buf_t log;  /* transcript */
} conn_t;

static void log_slice(buf_t *log, const char *tag, const char *p, size_t n)
{
    buf_printf(log, "%s %zu:", tag, n);
    buf_append(log, p, n);
    buf_appends(log, "\n");
}

static bool inside(http_slice_t s, const char *base, size_t n)
{
    if (s.n == 0) return true;
    return s.p >= base && s.p + s.n <= base + n;
}

static void consume(conn_t *c, size_t n)
{
    FZ_CHECK(n <= c->plen);
    memmove(c->pend, c->pend + n, c->plen - n);
    c->plen -= n;
}

static void on_head(conn_t *c, const char *d, size_t n, const http_head_t *h)
{
    FZ_CHECK(h->head_len >= 4 && h->head_len <= n && h->head_len <= MAX_HEAD);
    FZ_CHECK(memcmp(d + h->head_len - 4, "\r\n\r\n", 4) == 0);
    FZ_CHECK(h->method.n > 0 && h->target.n > 0);
    FZ_CHECK(inside(h->method, d, h->head_len) && inside(h->target, d, h->head_len));
    FZ_CHECK(inside(h->path, h->target.p, h->target.n));
    FZ_CHECK(inside(h->query, h->target.p, h->target.n));
    FZ_CHECK(h->minor_version == 0 || h->minor_version == 1);
    FZ_CHECK(h->n_headers <= HTTP_MAX_HEADERS);
    FZ_CHECK(!(h->chunked && h->has_length));
    log_slice(&c->log, "method", h->method.p, h->method.n);
    log_slice(&c->log, "target", h->target.p, h->target.n);
    log_slice(&c->log, "path", h->path.p, h->path.n);
    log_slice(&c->log, "query", h->query.p, h->query.n);
    for (size_t i = 0; i < h->n_headers; i++) {
        const http_header_t *hd = &h->headers[i];
        FZ_CHECK(hd->name.n > 0);
        FZ_CHECK(inside(hd->name, d, h->head_len) && inside(hd->value, d, h->head_len));
        log_slice(&c->log, "name", hd->name.p, hd->name.n);
        log_slice(&c->log, "value", hd->value.p, hd->value.n);
    }
    buf_printf(&c->log, "head 1.%d len=%zu chunked=%d cl=%d:%llu ka=%d expect=%d\n",
               h->minor_version, h->head_len, h->chunked, h->has_length,
               (unsigned long long)h->content_length, h->keep_alive, h->expect_continue);
}

/* Run the server's state machine over what is held (conn_process in server.c). */
static void process(conn_t *c)
{
    for (;;) {
        if (c->state == S_CLOSED) return;
        char *d = fz_dup(c->pend, c->plen);
        size_t n = c->plen;
        if (c->state == S_HEAD) {
            if (n == 0) {
                free(d);
                return;
            }
            http_head_t h;
            http_parse_status_t st = http_parse_head(d, n, MAX_HEAD, &h);
            if (st == HTTP_PARSE_AGAIN) {
                FZ_CHECK(n <= MAX_HEAD);
                free(d);
                return;
            }
            if (st == HTTP_PARSE_ERROR) {
                FZ_CHECK(h.error != NULL);
                FZ_CHECK(h.error_status == 400 || h.error_status == 431 || h.error_status == 501 ||
                         h.error_status == 505);
                buf_printf(&c->log, "error %d %s\n", h.error_status, h.error);
                c->state = S_CLOSED;
                free(d);
                return;
            }
            FZ_CHECK(st == HTTP_PARSE_OK);
            on_head(c, d, n, &h);
            free(d);
            consume(c, h.head_len);
            if (h.has_length && h.content_length > MAX_BODY) {
                buf_appends(&c->log, "error 413\n");
                c->state = S_CLOSED;
                return;
            }
            if (h.chunked) {
                memset(&c->ch, 0, sizeof c->ch);
                buf_free(&c->body);
                buf_init(&c->body, MAX_BODY);
                c->state = S_CHUNKED;
            } else if (h.has_length && h.content_length > 0) {
                c->need = h.content_length;
                c->state = S_BODY;
            } else {
                buf_appends(&c->log, "dispatch\n");
            }
        } else if (c->state == S_BODY) {
            if (n < c->need) {
                free(d);
                return;
            }
            log_slice(&c->log, "body", d, (size_t)c->need);
            free(d);
            consume(c, (size_t)c->need);
            c->state = S_HEAD;
        } else {
            size_t used = 0;
            int status = 0;
            http_parse_status_t st = http_chunked_decode(&c->ch, d, n, &used, &c->body, &status);
            free(d);
            FZ_CHECK(used <= n);
            FZ_CHECK(c->body.len <= MAX_BODY);
            consume(c, used);
            if (st == HTTP_PARSE_AGAIN) return;
            if (st == HTTP_PARSE_ERROR) {
                FZ_CHECK(status == 400 || status == 413);
                buf_printf(&c->log, "chunked error %d\n", status);
                c->state = S_CLOSED;
                return;
            }
            FZ_CHECK(st == HTTP_PARSE_OK);
            log_slice(&c->log, "chunked body", buf_data(&c->body), c->body.len);
            buf_free(&c->body);
            c->state = S_HEAD;
        }
    }
}

static void run(const uint8_t *data, size_t size, bool split, buf_t *out)
{
    conn_t c;
    memset(&c, 0, sizeof c);
    c.state = S_HEAD;
    c.pend = malloc(size ? size : 1);
    buf_init(&c.body, MAX_BODY);
    buf_init(&c.log, 0);
    fz_split_t r;
    fz_split_init(&r, data, size);
    size_t off = 0;
    while (off < size && c.state != S_CLOSED) {
        size_t k = split ? fz_split_next(&r, size - off) : size - off;
        memcpy(c.pend + c.plen, data + off, k);
        c.plen += k;
        off += k;
        process(&c);
    }
    /* where the connection stands at the end, and what was never consumed
     * (unless an error closed it: then how far the decoder read is moot) */
    if (c.state == S_CLOSED)
        buf_appends(&c.log, "end closed\n");
    else
        buf_printf(&c.log, "end state=%d left=%zu\n", c.state, c.plen + (size - off));
    *out = c.log;
    buf_free(&c.body);
    free(c.pend);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_whole_vs_split(data, size, run);
    return 0;
}
