/*
 * test_http_parser — unit tests for the HTTP/1.1 head parser and the chunked
 * body decoder (src/http/parser).
 *
 * Mostly tables: request heads with the expected outcome (OK, AGAIN, or the
 * error status), keep-alive and Content-Length cases, chunked bodies with the
 * expected decoded bytes or status. Inputs are copied to exactly-sized heap
 * blocks so ASan flags any read past the bytes given. The chunked decoder is
 * also fed byte by byte and at every two-way split; every feeding pattern must
 * give the same result as feeding everything at once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"

#define MAX_HEAD 8192

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

typedef struct parsed {
    char *mem; /* exactly-sized copy of the input; slices point into it */
    http_head_t h;
    http_parse_status_t st;
} parsed_t;

static parsed_t *parse_n(const char *s, size_t n, size_t max_head)
{
    parsed_t *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->mem = malloc(n ? n : 1);
    memcpy(p->mem, s, n);
    p->st = http_parse_head(p->mem, n, max_head, &p->h);
    return p;
}

static parsed_t *parse(const char *s)
{
    return parse_n(s, strlen(s), MAX_HEAD);
}

static void parsed_free(parsed_t *p)
{
    free(p->mem);
    free(p);
}

static void assert_slice(http_slice_t sl, const char *want)
{
    size_t n = strlen(want);
    if (sl.n != n || (n && memcmp(sl.p, want, n) != 0))
        fail_msg("slice \"%.*s\" != \"%s\"", (int)sl.n, sl.p ? sl.p : "", want);
}

/* 0 = OK, 1 = AGAIN, otherwise the error status. */
static int outcome(const parsed_t *p)
{
    if (p->st == HTTP_PARSE_OK) return 0;
    if (p->st == HTTP_PARSE_AGAIN) return 1;
    assert_int_equal(p->st, HTTP_PARSE_ERROR);
    assert_non_null(p->h.error);
    return p->h.error_status;
}

static void expect_outcome(const char *req, int want)
{
    parsed_t *p = parse(req);
    int got = outcome(p);
    if (got != want)
        fail_msg("%d != %d (%s) for: %s", got, want, p->h.error ? p->h.error : "", req);
    parsed_free(p);
}

/* Parses "<line>\r\n<headers>\r\n\r\n" and checks its outcome (as above);
 * a mismatch names the headers. Returns the parse for more checks. */
static parsed_t *parse_headers(const char *line, const char *headers, int want)
{
    char req[256];
    int n = snprintf(req, sizeof req, "%s\r\n%s\r\n\r\n", line, headers);
    assert_true(n > 0 && (size_t)n < sizeof req);
    parsed_t *p = parse(req);
    int got = outcome(p);
    if (got != want) fail_msg("[%s]: got %d, want %d", headers, got, want);
    return p;
}

/* ------------------------------------------------------------------------ */
/* request head                                                              */

static void test_request_line_and_headers(void **state)
{
    (void)state;
    const char *req = "GET /v1/models?x=1&y=2 HTTP/1.1\r\n"
                      "Host: example.com\r\n"
                      "X-Spaced:  \t padded value \t \r\n"
                      "X-Empty:\r\n"
                      "X-Obs-Text: caf\xc3\xa9\r\n"
                      "\r\n"
                      "BODY";
    parsed_t *p = parse(req);
    assert_int_equal(p->st, HTTP_PARSE_OK);
    const http_head_t *h = &p->h;
    assert_slice(h->method, "GET");
    assert_slice(h->target, "/v1/models?x=1&y=2");
    assert_slice(h->path, "/v1/models");
    assert_slice(h->query, "x=1&y=2");
    assert_int_equal(h->minor_version, 1);
    assert_int_equal(h->n_headers, 4);
    assert_slice(h->headers[0].name, "Host");
    assert_slice(h->headers[0].value, "example.com");
    assert_slice(h->headers[1].name, "X-Spaced");
    assert_slice(h->headers[1].value, "padded value");
    assert_slice(h->headers[2].name, "X-Empty");
    assert_slice(h->headers[2].value, "");
    assert_slice(h->headers[3].value, "caf\xc3\xa9");
    assert_int_equal(h->head_len, strlen(req) - 4);
    assert_true(h->keep_alive);
    assert_false(h->chunked);
    assert_false(h->has_length);
    assert_false(h->expect_continue);
    /* Slices point into the caller's bytes. */
    assert_ptr_equal(h->method.p, p->mem);
    parsed_free(p);
}

static void test_path_query_split(void **state)
{
    (void)state;
    static const struct {
        const char *target, *path, *query;
    } cases[] = {
        {"/", "/", ""},
        {"/a/b", "/a/b", ""},
        {"/a?", "/a", ""},
        {"/a?b", "/a", "b"},
        {"/a?b?c=d", "/a", "b?c=d"},
        {"?q", "", "q"},
        {"*", "*", ""},
        {"http://h/x?y", "http://h/x", "y"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char req[256];
        snprintf(req, sizeof req, "OPTIONS %s HTTP/1.1\r\n\r\n", cases[i].target);
        parsed_t *p = parse(req);
        assert_int_equal(p->st, HTTP_PARSE_OK);
        assert_slice(p->h.target, cases[i].target);
        assert_slice(p->h.path, cases[i].path);
        assert_slice(p->h.query, cases[i].query);
        assert_int_equal(p->h.n_headers, 0);
        parsed_free(p);
    }
}

static void test_methods(void **state)
{
    (void)state;
    expect_outcome("POST / HTTP/1.1\r\n\r\n", 0);
    expect_outcome("M-SEARCH * HTTP/1.1\r\n\r\n", 0);
    expect_outcome("PROPFIND /x HTTP/1.1\r\n\r\n", 0);
    expect_outcome("G@T / HTTP/1.1\r\n\r\n", 400);
    expect_outcome("GE(T / HTTP/1.1\r\n\r\n", 400);
    expect_outcome(" / HTTP/1.1\r\n\r\n", 400);
    expect_outcome("GET  / HTTP/1.1\r\n\r\n", 400);
    expect_outcome("GET /\r\n\r\n", 400);
    expect_outcome("GET\r\n\r\n", 400);
    expect_outcome("\r\n\r\n\r\nX\r\n\r\n", 400);
}

static void test_target_chars(void **state)
{
    (void)state;
    expect_outcome("GET /a%20b HTTP/1.1\r\n\r\n", 0);
    expect_outcome("GET /a\x7f HTTP/1.1\r\n\r\n", 400);
    expect_outcome("GET /a\x01 HTTP/1.1\r\n\r\n", 400);
    expect_outcome("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", 400);
    expect_outcome("GET /a\tb HTTP/1.1\r\n\r\n", 400);
    /* NUL inside the target */
    static const char nul[] = "GET /a\0b HTTP/1.1\r\n\r\n";
    parsed_t *p = parse_n(nul, sizeof nul - 1, MAX_HEAD);
    assert_int_equal(outcome(p), 400);
    parsed_free(p);
}

static void test_versions(void **state)
{
    (void)state;
    static const struct {
        const char *version;
        int want;
    } cases[] = {
        {"HTTP/1.1", 0}, {"HTTP/1.0", 0},   {"HTTP/2.0", 505}, {"HTTP/2", 505},
        {"HTTP/3", 505}, {"HTTP/1.2", 505}, {"HTTP/0.9", 505}, {"HTTP/1.10", 505},
        {"HTTP/", 505},  {"http/1.1", 400}, {"FOO/1.1", 400},  {"HTTP1.1", 400},
        {"H", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char req[128];
        snprintf(req, sizeof req, "GET / %s\r\nHost: x\r\n\r\n", cases[i].version);
        parsed_t *p = parse(req);
        int got = outcome(p);
        if (got != cases[i].want)
            fail_msg("version %s: got %d, want %d", cases[i].version, got, cases[i].want);
        if (got == 0) assert_int_equal(p->h.minor_version, cases[i].version[7] - '0');
        parsed_free(p);
    }
}

static void test_keep_alive(void **state)
{
    (void)state;
    static const struct {
        int minor;
        const char *conn; /* NULL: no Connection header; may hold two headers */
        bool want;
    } cases[] = {
        {1, NULL, true},
        {1, "Connection: close", false},
        {1, "Connection: Close", false},
        {1, "connection: CLOSE", false},
        {1, "Connection: keep-alive", true},
        {1, "Connection: Upgrade, close", false},
        {1, "Connection: keep-alive, close", false},
        {1, "Connection: closed", true},
        {1, "Connection: x-close", true},
        {1, "Connection: ,,close,,", false},
        {1, "Connection: keep-alive\r\nConnection: close", false},
        {0, NULL, false},
        {0, "Connection: close", false},
        {0, "Connection: keep-alive", true},
        {0, "Connection: Keep-Alive", true},
        {0, "Connection: foo , keep-alive ", true},
        {0, "Connection: keep-alive, close", false},
        {0, "Connection: keep-alivex", false},
        {0, "Connection: close\r\nConnection: keep-alive", false},
        {0, "Keep-Alive: timeout=5", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char req[256];
        snprintf(req, sizeof req, "GET / HTTP/1.%d\r\n%s%s\r\n", cases[i].minor,
                 cases[i].conn ? cases[i].conn : "", cases[i].conn ? "\r\n" : "");
        parsed_t *p = parse(req);
        assert_int_equal(p->st, HTTP_PARSE_OK);
        if (p->h.keep_alive != cases[i].want)
            fail_msg("HTTP/1.%d [%s]: keep_alive %d, want %d", cases[i].minor,
                     cases[i].conn ? cases[i].conn : "", p->h.keep_alive, cases[i].want);
        parsed_free(p);
    }
}

static void test_content_length(void **state)
{
    (void)state;
    static const struct {
        const char *headers;
        int want;        /* outcome */
        uint64_t length; /* when OK */
    } cases[] = {
        {"Content-Length: 0", 0, 0},
        {"Content-Length: 123", 0, 123},
        {"content-length:42", 0, 42},
        {"Content-Length:  \t 42 \t ", 0, 42},
        {"Content-Length: 007", 0, 7},
        {"Content-Length: 9999999999999999999", 0, 9999999999999999999ULL},
        {"Content-Length: 99999999999999999999", 400, 0}, /* > UINT64_MAX: no wrap */
        {"Content-Length: 18446744073709551616", 400, 0},
        {"Content-Length:", 400, 0},
        {"Content-Length: -1", 400, 0},
        {"Content-Length: +1", 400, 0},
        {"Content-Length: 1 2", 400, 0},
        {"Content-Length: 0x10", 400, 0},
        {"Content-Length: 12a", 400, 0},
        {"Content-Length: 5,5", 400, 0},
        {"Content-Length: 5\r\nContent-Length: 5", 0, 5},
        {"Content-Length: 5\r\nContent-Length: 6", 400, 0},
        {"Content-Length: 5\r\ncontent-length: 05", 0, 5},
        {"Content-Length: 0\r\nContent-Length: 1", 400, 0},
        {"Content-Length: 5\r\nContent-Length: x", 400, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parsed_t *p = parse_headers("POST /x HTTP/1.1", cases[i].headers, cases[i].want);
        if (cases[i].want == 0) {
            assert_true(p->h.has_length);
            assert_int_equal(p->h.content_length, cases[i].length);
            assert_false(p->h.chunked);
        }
        parsed_free(p);
    }
}

static void test_transfer_encoding(void **state)
{
    (void)state;
    static const struct {
        const char *headers;
        int want;
    } cases[] = {
        {"Transfer-Encoding: chunked", 0},
        {"transfer-encoding: Chunked", 0},
        {"Transfer-Encoding:  chunked  ", 0},
        {"Transfer-Encoding: gzip", 501},
        {"Transfer-Encoding: identity", 501},
        {"Transfer-Encoding: gzip, chunked", 501},
        {"Transfer-Encoding: chunked, gzip", 501},
        {"Transfer-Encoding: chunkedx", 501},
        {"Transfer-Encoding:", 501},
        {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", 501},
        /* request smuggling: both framings */
        {"Transfer-Encoding: chunked\r\nContent-Length: 5", 400},
        {"Content-Length: 5\r\nTransfer-Encoding: chunked", 400},
        {"Content-Length: 0\r\nTransfer-Encoding: chunked", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parsed_t *p = parse_headers("POST /x HTTP/1.1", cases[i].headers, cases[i].want);
        if (cases[i].want == 0) {
            assert_true(p->h.chunked);
            assert_false(p->h.has_length);
        }
        parsed_free(p);
    }
}

static void test_header_syntax(void **state)
{
    (void)state;
    static const struct {
        const char *headers;
        int want;
    } cases[] = {
        {"X-Ok!#$%&'*+-.^_`|~09: v", 0},
        {"X: a\tb", 0},
        {"X: a\x80\xff", 0}, /* obs-text allowed in values */
        /* obsolete line folding */
        {"X: a\r\n b", 400},
        {"X: a\r\n\tb", 400},
        {" X: a", 400},
        /* invalid header names */
        {"X Y: z", 400},
        {"Host : z", 400},
        {"X\"Y: z", 400},
        {"X(Y): z", 400},
        {"X@Y: z", 400},
        {"X/Y: z", 400},
        {"X[Y]: z", 400},
        {"X\x7fY: z", 400},
        {"caf\xc3\xa9: z", 400},
        {": z", 400},
        {"NoColon", 400},
        /* control characters in values */
        {"X: a\x01z", 400},
        {"X: a\x7fz", 400},
        {"X: a\rb", 400},
        {"X: a\nY: b", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        parsed_free(parse_headers("GET / HTTP/1.1", cases[i].headers, cases[i].want));
    /* Folding is reported as such, not as a malformed name. */
    static const char *const folds[] = {"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
                                        "GET / HTTP/1.1\r\nX: a\r\n\tb: c\r\n\r\n",
                                        "GET / HTTP/1.1\r\n Host: x\r\n\r\n"};
    for (size_t i = 0; i < 3; i++) {
        parsed_t *p = parse(folds[i]);
        assert_int_equal(outcome(p), 400);
        assert_non_null(strstr(p->h.error, "folding"));
        parsed_free(p);
    }
    /* NUL in a header name and in a value */
    static const char n1[] = "GET / HTTP/1.1\r\nX\0Y: z\r\n\r\n";
    static const char n2[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
    parsed_t *p = parse_n(n1, sizeof n1 - 1, MAX_HEAD);
    assert_int_equal(outcome(p), 400);
    parsed_free(p);
    p = parse_n(n2, sizeof n2 - 1, MAX_HEAD);
    assert_int_equal(outcome(p), 400);
    parsed_free(p);
}

static void test_expect_continue(void **state)
{
    (void)state;
    parsed_t *p = parse("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
    assert_int_equal(p->st, HTTP_PARSE_OK);
    assert_true(p->h.expect_continue);
    parsed_free(p);
    p = parse("POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n");
    assert_int_equal(p->st, HTTP_PARSE_OK);
    assert_false(p->h.expect_continue);
    parsed_free(p);
}

static char *many_headers(int n)
{
    size_t cap = 64 + (size_t)n * 32;
    char *s = malloc(cap);
    size_t off = (size_t)snprintf(s, cap, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < n; i++) off += (size_t)snprintf(s + off, cap - off, "X-H%d: %d\r\n", i, i);
    snprintf(s + off, cap - off, "\r\n");
    return s;
}

static void test_too_many_headers(void **state)
{
    (void)state;
    char *s = many_headers(HTTP_MAX_HEADERS);
    parsed_t *p = parse(s);
    assert_int_equal(outcome(p), 0);
    assert_int_equal(p->h.n_headers, HTTP_MAX_HEADERS);
    assert_slice(p->h.headers[HTTP_MAX_HEADERS - 1].name, "X-H99");
    assert_slice(p->h.headers[HTTP_MAX_HEADERS - 1].value, "99");
    parsed_free(p);
    free(s);

    s = many_headers(HTTP_MAX_HEADERS + 1);
    p = parse(s);
    assert_int_equal(outcome(p), 431);
    parsed_free(p);
    free(s);

    s = many_headers(1000);
    p = parse_n(s, strlen(s), 1 << 20);
    assert_int_equal(outcome(p), 431);
    parsed_free(p);
    free(s);
}

static void test_max_head(void **state)
{
    (void)state;
    const char *req = "GET /some/path HTTP/1.1\r\nHost: example.com\r\n\r\n";
    size_t n = strlen(req);
    parsed_t *p;
    /* Complete head exactly at the limit, and one byte over. */
    p = parse_n(req, n, n);
    assert_int_equal(outcome(p), 0);
    assert_int_equal(p->h.head_len, n);
    parsed_free(p);
    p = parse_n(req, n, n - 1);
    assert_int_equal(outcome(p), 431);
    parsed_free(p);
    /* Body bytes after the head do not count against the limit. */
    char withbody[256];
    snprintf(withbody, sizeof withbody, "%sxxxxxxxxxxxxxxxxxxxxxxxxxxxx", req);
    p = parse_n(withbody, strlen(withbody), n);
    assert_int_equal(outcome(p), 0);
    assert_int_equal(p->h.head_len, n);
    parsed_free(p);
    /* Incomplete: waits up to the limit, then fails without waiting for the
     * blank line. */
    p = parse_n(req, n - 1, n - 1);
    assert_int_equal(outcome(p), 1);
    parsed_free(p);
    p = parse_n(req, n - 1, n - 2);
    assert_int_equal(outcome(p), 431);
    parsed_free(p);
    /* A long stream of header bytes with no end in sight. */
    size_t big = 100000;
    char *junk = malloc(big);
    memcpy(junk, "GET / HTTP/1.1\r\nX: ", 19);
    memset(junk + 19, 'a', big - 19);
    p = parse_n(junk, big, MAX_HEAD);
    assert_int_equal(outcome(p), 431);
    parsed_free(p);
    free(junk);
    /* Leading blank lines count toward the head. */
    char lead[256];
    snprintf(lead, sizeof lead, "\r\n\r\n%s", req);
    p = parse_n(lead, strlen(lead), n);
    assert_int_equal(outcome(p), 431);
    parsed_free(p);
}

static void test_incomplete(void **state)
{
    (void)state;
    const char *req = "\r\nPOST /v1/chat/completions?a=b HTTP/1.1\r\n"
                      "Host: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n";
    size_t n = strlen(req);
    for (size_t k = 0; k < n; k++) {
        parsed_t *p = parse_n(req, k, MAX_HEAD);
        if (p->st != HTTP_PARSE_AGAIN) fail_msg("prefix of %zu bytes: status %d", k, p->st);
        parsed_free(p);
    }
    parsed_t *p = parse_n(req, n, MAX_HEAD);
    assert_int_equal(p->st, HTTP_PARSE_OK);
    assert_int_equal(p->h.head_len, n);
    assert_slice(p->h.method, "POST");
    assert_slice(p->h.path, "/v1/chat/completions");
    assert_int_equal(p->h.content_length, 10);
    assert_false(p->h.keep_alive);
    parsed_free(p);
}

static void test_leading_crlf(void **state)
{
    (void)state;
    const char *req = "\r\n\r\n\r\nGET /x HTTP/1.0\r\nA: b\r\n\r\n";
    parsed_t *p = parse(req);
    assert_int_equal(p->st, HTTP_PARSE_OK);
    assert_slice(p->h.method, "GET");
    assert_slice(p->h.path, "/x");
    assert_int_equal(p->h.minor_version, 0);
    assert_int_equal(p->h.n_headers, 1);
    assert_int_equal(p->h.head_len, strlen(req));
    parsed_free(p);
    /* Only blank lines so far: wait. */
    expect_outcome("\r\n\r\n", 1);
    expect_outcome("\r\n\r\n\r", 1);
}

static void test_head_get(void **state)
{
    (void)state;
    parsed_t *p = parse("GET / HTTP/1.1\r\n"
                        "Content-Type: application/json\r\n"
                        "Authorization: Bearer k\r\n"
                        "X-Dup: first\r\n"
                        "x-dup: second\r\n"
                        "\r\n");
    assert_int_equal(p->st, HTTP_PARSE_OK);
    assert_slice(http_head_get(&p->h, "content-type"), "application/json");
    assert_slice(http_head_get(&p->h, "CONTENT-TYPE"), "application/json");
    assert_slice(http_head_get(&p->h, "Content-Type"), "application/json");
    assert_slice(http_head_get(&p->h, "authorization"), "Bearer k");
    assert_slice(http_head_get(&p->h, "X-DUP"), "first");
    http_slice_t none = http_head_get(&p->h, "content-length");
    assert_null(none.p);
    assert_int_equal(none.n, 0);
    assert_null(http_head_get(&p->h, "content-typ").p); /* prefix is not a match */
    assert_null(http_head_get(&p->h, "content-type-x").p);
    parsed_free(p);
}

static void test_slice_eq_ci_and_reasons(void **state)
{
    (void)state;
    http_slice_t s = {"Chunked", 7};
    assert_true(http_slice_eq_ci(s, "chunked"));
    assert_false(http_slice_eq_ci(s, "chunk"));
    assert_false(http_slice_eq_ci(s, "chunkedx"));
    assert_string_equal(http_status_reason(200), "OK");
    assert_string_equal(http_status_reason(431), "Request Header Fields Too Large");
    assert_string_equal(http_status_reason(505), "HTTP Version Not Supported");
    assert_non_null(http_status_reason(299));
    assert_non_null(http_status_reason(418));
    assert_non_null(http_status_reason(599));
}

/* ------------------------------------------------------------------------ */
/* chunked decoder                                                           */

typedef struct chunk_result {
    http_parse_status_t st;
    int status;
    size_t used; /* total bytes consumed */
    buf_t body;
} chunk_result_t;

/* Feed in[0..n) in pieces of at most `piece` bytes (split at `split` first
 * when non-zero), each from an exactly-sized heap copy, like the server does:
 * consumed bytes are dropped, the rest is fed again with new bytes. */
static void chunk_feed(const char *in, size_t n, size_t cap, size_t split, size_t piece,
                       chunk_result_t *r)
{
    http_chunked_t c;
    memset(&c, 0, sizeof c);
    buf_init(&r->body, cap);
    r->used = 0;
    r->status = 0;
    r->st = HTTP_PARSE_AGAIN;
    size_t avail = 0; /* bytes of in received so far */
    while (r->st == HTTP_PARSE_AGAIN && avail < n) {
        size_t step = piece;
        if (split && avail < split) step = split - avail;
        if (step > n - avail) step = n - avail;
        avail += step;
        size_t pending = avail - r->used;
        char *copy = malloc(pending ? pending : 1);
        memcpy(copy, in + r->used, pending);
        size_t used = 0;
        int status = -1;
        r->st = http_chunked_decode(&c, copy, pending, &used, &r->body, &status);
        free(copy);
        assert_true(used <= pending);
        if (r->st == HTTP_PARSE_AGAIN) {
            assert_int_equal(used, pending);
            assert_int_equal(status, 0);
        }
        r->used += used;
        r->status = status;
    }
}

static void chunk_all(const char *in, size_t n, size_t cap, chunk_result_t *r)
{
    chunk_feed(in, n, cap, 0, n ? n : 1, r);
}

typedef struct chunk_case {
    const char *in;
    size_t cap;       /* 0: 1 MiB */
    int want;         /* 0 = OK, 1 = AGAIN, else status */
    const char *body; /* when OK */
    size_t tail;      /* bytes after the body left unconsumed, when OK */
} chunk_case_t;

#define LINE100                                                                                    \
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" \
    "xxxxxxxx"

static char *repeat(const char *unit, int times)
{
    size_t u = strlen(unit);
    char *s = malloc(u * (size_t)times + 1);
    for (int i = 0; i < times; i++) memcpy(s + u * (size_t)i, unit, u);
    s[u * (size_t)times] = '\0';
    return s;
}

static const chunk_case_t chunk_cases[] = {
    {"5\r\nhello\r\n0\r\n\r\n", 0, 0, "hello", 0},
    {"0\r\n\r\n", 0, 0, "", 0},
    {"3\r\nabc\r\n4\r\ndefg\r\n1\r\nh\r\n0\r\n\r\n", 0, 0, "abcdefgh", 0},
    /* hex digits, both cases, leading zeros */
    {"a\r\n0123456789\r\nA\r\nABCDEFGHIJ\r\n0\r\n\r\n", 0, 0, "0123456789ABCDEFGHIJ", 0},
    {"1f\r\n0123456789012345678901234567890\r\n0\r\n\r\n", 0, 0, "0123456789012345678901234567890",
     0},
    {"1F\r\n0123456789012345678901234567890\r\n0\r\n\r\n", 0, 0, "0123456789012345678901234567890",
     0},
    {"0005\r\nhello\r\n000\r\n\r\n", 0, 0, "hello", 0},
    /* chunk extensions */
    {"5;name=value\r\nhello\r\n0;last\r\n\r\n", 0, 0, "hello", 0},
    {"5 ;x\r\nhello\r\n0\t;y=\"q\"\r\n\r\n", 0, 0, "hello", 0},
    {"5;a;b=c\r\nhello\r\n0\r\n\r\n", 0, 0, "hello", 0},
    /* trailers */
    {"5\r\nhello\r\n0\r\nX-Trailer: v\r\n\r\n", 0, 0, "hello", 0},
    {"5\r\nhello\r\n0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 0, 0, "hello", 0},
    /* data containing CR, LF, and the terminator itself */
    {"9\r\n0\r\n\r\n\r\nab\r\n0\r\n\r\n", 0, 0, "0\r\n\r\n\r\nab", 0},
    /* bytes after the body are left for the next request */
    {"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0, 0, "hello", 18},
    {"0\r\nT: x\r\n\r\nNEXT", 0, 0, "", 4},
    /* incomplete */
    {"5\r\nhel", 0, 1, NULL, 0},
    {"5\r\nhello\r\n0\r\n", 0, 1, NULL, 0},
    {"5\r\nhello\r\n0\r\nX: y\r\n", 0, 1, NULL, 0},
    /* bad framing: 400 */
    {"\r\n", 0, 400, NULL, 0},
    {"g\r\n", 0, 400, NULL, 0},
    {"-1\r\nx\r\n0\r\n\r\n", 0, 400, NULL, 0},
    {";x\r\n", 0, 400, NULL, 0},
    {" 5\r\nhello\r\n0\r\n\r\n", 0, 400, NULL, 0},
    {"0x5\r\nhello\r\n0\r\n\r\n", 0, 400, NULL, 0},
    {"5x\r\nhello\r\n0\r\n\r\n", 0, 400, NULL, 0},
    {"5\nhello\r\n0\r\n\r\n", 0, 400, NULL, 0},
    {"5\r\rhello\r\n0\r\n\r\n", 0, 400, NULL, 0},
    {"5\r\nhelloXX0\r\n\r\n", 0, 400, NULL, 0},
    {"5\r\nhello\n0\r\n\r\n", 0, 400, NULL, 0},
    {"5\r\nhello\n\n0\r\n\r\n", 0, 400, NULL, 0},
    {"5\r\nhello\rX0\r\n\r\n", 0, 400, NULL, 0},
    {"5\r\nhelloworld\r\n0\r\n\r\n", 0, 400, NULL, 0},
    /* size overflow: 17 hex digits, and 2^60 */
    {"FFFFFFFFFFFFFFFFF\r\n", 0, 400, NULL, 0},
    {"10000000000000000\r\n", 0, 400, NULL, 0},
    {"ffffffffffffffffffffffffffffffff\r\n", 0, 400, NULL, 0},
    /* body over the cap: 413 */
    {"b\r\nhello world\r\n0\r\n\r\n", 10, 413, NULL, 0},
    {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 10, 413, NULL, 0},
    {"a\r\nhelloworld\r\n0\r\n\r\n", 10, 0, "helloworld", 0},
    {"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", 10, 0, "helloworld", 0},
    /* a huge declared size fails at the cap, not before */
    {"fffffffffff\r\nabc", 2, 413, NULL, 0},
};

static void check_chunk_case(const chunk_case_t *cc, const chunk_result_t *r, const char *how)
{
    int got = r->st == HTTP_PARSE_OK ? 0 : r->st == HTTP_PARSE_AGAIN ? 1 : r->status;
    if (got != cc->want)
        fail_msg("%s: [%s] got %d (st %d), want %d", how, cc->in, got, r->st, cc->want);
    if (got == 0) {
        size_t n = strlen(cc->in);
        if (r->body.len != strlen(cc->body) || memcmp(buf_data(&r->body), cc->body, r->body.len))
            fail_msg("%s: [%s] body \"%s\", want \"%s\"", how, cc->in, buf_data(&r->body),
                     cc->body);
        if (r->used != n - cc->tail)
            fail_msg("%s: [%s] used %zu, want %zu", how, cc->in, r->used, n - cc->tail);
    }
}

static void test_chunked_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof chunk_cases / sizeof chunk_cases[0]; i++) {
        const chunk_case_t *cc = &chunk_cases[i];
        size_t cap = cc->cap ? cc->cap : 1 << 20;
        chunk_result_t r;
        chunk_all(cc->in, strlen(cc->in), cap, &r);
        check_chunk_case(cc, &r, "whole");
        buf_free(&r.body);
    }
}

/* Byte by byte, and every two-way split, give the same result as whole. */
static void test_chunked_feeding_patterns(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof chunk_cases / sizeof chunk_cases[0]; i++) {
        const chunk_case_t *cc = &chunk_cases[i];
        size_t n = strlen(cc->in), cap = cc->cap ? cc->cap : 1 << 20;
        chunk_result_t r;
        chunk_feed(cc->in, n, cap, 0, 1, &r);
        check_chunk_case(cc, &r, "byte-by-byte");
        buf_free(&r.body);
        for (size_t split = 1; split < n; split++) {
            char how[32];
            snprintf(how, sizeof how, "split at %zu", split);
            chunk_feed(cc->in, n, cap, split, n, &r);
            check_chunk_case(cc, &r, how);
            buf_free(&r.body);
        }
    }
}

/* A larger body of many chunks with random sizes, fed in random pieces. */
static void test_chunked_random(void **state)
{
    (void)state;
    srand(42);
    buf_t enc, want;
    buf_init(&enc, 0);
    buf_init(&want, 0);
    for (int k = 0; k < 300; k++) {
        size_t sz = (size_t)(rand() % 700) + 1;
        buf_printf(&enc, rand() % 2 ? "%zx" : "%zX", sz);
        if (rand() % 3 == 0) buf_appends(&enc, ";ext=1");
        buf_appends(&enc, "\r\n");
        for (size_t j = 0; j < sz; j++) {
            char ch = (char)(rand() % 256);
            buf_append(&enc, &ch, 1);
            buf_append(&want, &ch, 1);
        }
        buf_appends(&enc, "\r\n");
    }
    buf_appends(&enc, "0\r\nTrailer: yes\r\n\r\n");
    for (size_t piece = 1; piece < 5000; piece = piece * 3 + 1) {
        chunk_result_t r;
        chunk_feed(buf_data(&enc), enc.len, 1 << 20, 0, piece, &r);
        assert_int_equal(r.st, HTTP_PARSE_OK);
        assert_int_equal(r.used, enc.len);
        assert_int_equal(r.body.len, want.len);
        assert_memory_equal(buf_data(&r.body), buf_data(&want), want.len);
        buf_free(&r.body);
    }
    /* Same body with a cap one byte short: 413 for every feeding. */
    for (size_t piece = 1; piece < 5000; piece = piece * 3 + 1) {
        chunk_result_t r;
        chunk_feed(buf_data(&enc), enc.len, want.len - 1, 0, piece, &r);
        assert_int_equal(r.st, HTTP_PARSE_ERROR);
        assert_int_equal(r.status, 413);
        buf_free(&r.body);
    }
    buf_free(&enc);
    buf_free(&want);
}

static void test_chunked_long_lines(void **state)
{
    (void)state;
    /* An extension or trailer line longer than the line limit is rejected
     * instead of being skipped forever. */
    char *ext = repeat(LINE100, 60);
    size_t n = strlen(ext);
    char *in = malloc(n + 64);
    snprintf(in, n + 64, "5;%s\r\nhello\r\n0\r\n\r\n", ext);
    chunk_result_t r;
    chunk_all(in, strlen(in), 1 << 20, &r);
    assert_int_equal(r.st, HTTP_PARSE_ERROR);
    assert_int_equal(r.status, 400);
    buf_free(&r.body);
    snprintf(in, n + 64, "0\r\nX: %s\r\n\r\n", ext);
    chunk_all(in, strlen(in), 1 << 20, &r);
    assert_int_equal(r.st, HTTP_PARSE_ERROR);
    assert_int_equal(r.status, 400);
    buf_free(&r.body);
    /* A modest extension is fine. */
    snprintf(in, n + 64, "5;%.1000s\r\nhello\r\n0\r\n\r\n", ext);
    chunk_all(in, strlen(in), 1 << 20, &r);
    assert_int_equal(r.st, HTTP_PARSE_OK);
    assert_string_equal(buf_data(&r.body), "hello");
    buf_free(&r.body);
    free(in);
    free(ext);
}

static void test_chunked_done_is_sticky(void **state)
{
    (void)state;
    http_chunked_t c;
    memset(&c, 0, sizeof c);
    buf_t out;
    buf_init(&out, 0);
    size_t used = 99;
    int status = -1;
    const char *in = "0\r\n\r\n";
    assert_int_equal(http_chunked_decode(&c, in, 5, &used, &out, &status), HTTP_PARSE_OK);
    assert_int_equal(used, 5);
    assert_int_equal(status, 0);
    /* Further calls consume nothing. */
    assert_int_equal(http_chunked_decode(&c, "5\r\nhello", 8, &used, &out, &status), HTTP_PARSE_OK);
    assert_int_equal(used, 0);
    assert_int_equal(out.len, 0);
    /* Empty input on a fresh decoder: AGAIN. */
    memset(&c, 0, sizeof c);
    assert_int_equal(http_chunked_decode(&c, "", 0, &used, &out, &status), HTTP_PARSE_AGAIN);
    assert_int_equal(used, 0);
    buf_free(&out);
}

/*
 * Request smuggling: a trailer line must end in CRLF and only an empty line
 * ends the body. The decoder treats any one-byte line ending in a bare LF
 * ("X\n") as the final empty line (line_len == 1 is assumed to mean "\r"), so
 * it stops early and leaves the rest in the connection, where it is parsed as
 * the next request. A front end that reads "X\n..." as trailer lines up to
 * CRLFCRLF disagrees on where the request ends.
 */
static void test_chunked_one_byte_trailer_line(void **state)
{
    (void)state;
    static const char *const inputs[] = {"0\r\nX\n\r\n", "0\r\nX\nGET /admin HTTP/1.1\r\n\r\n"};
    for (size_t i = 0; i < 2; i++) {
        chunk_result_t r;
        size_t n = strlen(inputs[i]);
        chunk_all(inputs[i], n, 1 << 20, &r);
        buf_free(&r.body);
        if (r.st == HTTP_PARSE_OK && r.used != n)
            fail_msg("body ended after \"X\\n\"; %zu bytes left for the next request", n - r.used);
        if (r.st != HTTP_PARSE_OK) {
            assert_int_equal(r.st, HTTP_PARSE_ERROR);
            assert_int_equal(r.status, 400);
        }
    }
}

/*
 * Request smuggling ("funky chunks"): a bare LF inside a chunk extension is
 * swallowed as extension bytes, so "5;a\n..." hides the next line from this
 * decoder while a front end that accepts LF as a line end sees a different
 * chunk boundary. RFC 9112 7.1.1 allows no CTLs in chunk-ext; reject them.
 */
static void test_chunked_ext_with_bare_lf(void **state)
{
    (void)state;
    const char *in = "2;a\nxx\r\nyy\r\n0\r\n\r\n";
    chunk_result_t r;
    chunk_all(in, strlen(in), 1 << 20, &r);
    char body[64];
    snprintf(body, sizeof body, "%s", buf_data(&r.body));
    buf_free(&r.body);
    if (r.st != HTTP_PARSE_ERROR || r.status != 400)
        fail_msg("bare LF in chunk extension accepted (st %d, body \"%s\")", r.st, body);
}

/* Percent-decoding of a path segment (GET /v1/models/{id}). */
static void test_pct_decode(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(http_pct_decode("org%2Fmodel", 11, out, sizeof out), 9);
    assert_string_equal(out, "org/model");
    assert_int_equal(http_pct_decode("a%2fb%20c", 9, out, sizeof out), 5);
    assert_string_equal(out, "a/b c");
    assert_int_equal(http_pct_decode("", 0, out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(http_pct_decode("plain-id_1.2", 12, out, sizeof out), 12);
    /* bad escapes, a decoded NUL, too long for the buffer */
    assert_int_equal(http_pct_decode("a%zz", 4, out, sizeof out), -1);
    assert_int_equal(http_pct_decode("a%2", 3, out, sizeof out), -1);
    assert_int_equal(http_pct_decode("a%", 2, out, sizeof out), -1);
    assert_int_equal(http_pct_decode("a%00b", 5, out, sizeof out), -1);
    assert_int_equal(http_pct_decode("0123456789abcdef", 16, out, sizeof out), -1);
    assert_int_equal(http_pct_decode("0123456789abcde", 15, out, sizeof out), 15);
    assert_int_equal(http_pct_decode("x", 1, out, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_line_and_headers),
        cmocka_unit_test(test_path_query_split),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_target_chars),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_transfer_encoding),
        cmocka_unit_test(test_header_syntax),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_max_head),
        cmocka_unit_test(test_incomplete),
        cmocka_unit_test(test_leading_crlf),
        cmocka_unit_test(test_head_get),
        cmocka_unit_test(test_slice_eq_ci_and_reasons),
        cmocka_unit_test(test_chunked_table),
        cmocka_unit_test(test_chunked_feeding_patterns),
        cmocka_unit_test(test_chunked_random),
        cmocka_unit_test(test_chunked_long_lines),
        cmocka_unit_test(test_chunked_done_is_sticky),
        cmocka_unit_test(test_chunked_one_byte_trailer_line),
        cmocka_unit_test(test_chunked_ext_with_bare_lf),
        cmocka_unit_test(test_pct_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
