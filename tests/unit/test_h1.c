/*
 * test_h1 — unit tests for the native upstream client's response parser
 * (src/upstream/h1parse).
 *
 * Each response is fed the way h1.c feeds it: bytes accumulate in a buffer,
 * whatever the parser did not consume stays and is presented again with the
 * next piece. Every valid response is fed whole, byte by byte, and split at
 * every position, and must give the same status, headers, body and ending.
 * Pieces are exact-size heap copies so ASan flags reads past them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/h1parse.h"

typedef struct result {
    int heads;
    int status;
    char head[4096];
    char body[8192];
    size_t body_len;
    int body_pieces;
    bool done, error, reusable;
    const char *err;
    size_t extra; /* bytes after the response */
} result_t;

/* Feed data split at the given cut points (sorted, in 0..len). */
static void feed_split(const char *data, size_t len, const size_t *cuts, int ncuts, result_t *r)
{
    memset(r, 0, sizeof *r);
    buf_t head;
    buf_init(&head, 0);
    h1p_t p;
    h1p_init(&p, &head, 1024);
    char *pend = malloc(len + 1);
    size_t plen = 0;
    size_t from = 0;
    for (int i = 0; i <= ncuts && !r->done && !r->error; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        /* an exact-size copy of what is pending plus the new piece */
        memcpy(pend + plen, data + from, to - from);
        plen += to - from;
        from = to;
        char *exact = malloc(plen ? plen : 1);
        memcpy(exact, pend, plen);
        size_t pos = 0;
        for (;;) {
            size_t used, pl;
            h1p_ev_t ev = h1p_feed(&p, exact + pos, plen - pos, &used, &pl);
            pos += used;
            if (ev == H1P_MORE) break;
            if (ev == H1P_HEAD) {
                r->heads++;
                r->status = p.status;
                snprintf(r->head, sizeof r->head, "%s", buf_data(&head));
            } else if (ev == H1P_BODY) {
                assert_true(pl > 0);
                assert_true(r->body_len + pl <= sizeof r->body);
                memcpy(r->body + r->body_len, exact + pos, pl);
                r->body_len += pl;
                r->body_pieces++;
                h1p_body_taken(&p, pl);
                pos += pl;
            } else if (ev == H1P_DONE) {
                r->done = true;
                r->reusable = h1p_reusable(&p);
                r->extra = plen - pos;
                break;
            } else {
                r->error = true;
                r->err = p.err;
                break;
            }
        }
        memmove(pend, pend + pos, plen - pos);
        plen -= pos;
        free(exact);
    }
    if (!r->done && !r->error) {
        if (h1p_eof(&p) == H1P_DONE) {
            r->done = true;
            r->reusable = h1p_reusable(&p);
        } else {
            r->error = true;
            r->err = p.err;
        }
    }
    free(pend);
    buf_free(&head);
}

static void same(const result_t *a, const result_t *b)
{
    assert_int_equal(a->heads, b->heads);
    assert_int_equal(a->status, b->status);
    assert_string_equal(a->head, b->head);
    assert_int_equal(a->body_len, b->body_len);
    assert_memory_equal(a->body, b->body, a->body_len);
    assert_int_equal(a->done, b->done);
    assert_int_equal(a->error, b->error);
    assert_int_equal(a->reusable, b->reusable);
}

/* Whole, byte by byte, every single split and (short inputs) every pair of splits. */
static void feed_all_ways(const char *s, result_t *whole)
{
    size_t len = strlen(s);
    feed_split(s, len, NULL, 0, whole);
    result_t r;
    size_t *cuts = malloc((len + 1) * sizeof *cuts);
    for (size_t i = 0; i < len; i++) cuts[i] = i + 1;
    feed_split(s, len, cuts, (int)len, &r);
    same(whole, &r);
    for (size_t i = 0; i <= len; i++) {
        cuts[0] = i;
        feed_split(s, len, cuts, 1, &r);
        same(whole, &r);
    }
    if (len < 200)
        for (size_t i = 0; i <= len; i++)
            for (size_t j = i; j <= len; j++) {
                cuts[0] = i;
                cuts[1] = j;
                feed_split(s, len, cuts, 2, &r);
                same(whole, &r);
            }
    free(cuts);
}

static void expect_error(const char *s, const char *why)
{
    result_t r;
    feed_split(s, strlen(s), NULL, 0, &r);
    assert_true(r.error);
    assert_false(r.done);
    assert_non_null(r.err);
    if (why && !strstr(r.err, why)) fail_msg("error '%s', expected '%s'", r.err, why);
}

static void test_content_length(void **state)
{
    result_t r;
    feed_all_ways("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
                  "X-Empty:\r\n\r\nhello world",
                  &r);
    assert_true(r.done);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 11);
    assert_memory_equal(r.body, "hello world", 11);
    assert_string_equal(r.head,
                        "Content-Type: application/json\r\nContent-Length: 11\r\nX-Empty: \r\n");
    assert_true(r.reusable);
}

static void test_chunked_extensions_trailers(void **state)
{
    result_t r;
    feed_all_ways("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "5;name=value\r\nhello\r\n"
                  "1 ; ext\r\n \r\n"
                  "A\r\n0123456789\r\n"
                  "0;last\r\nX-Trailer: t\r\n\r\n",
                  &r);
    assert_true(r.done);
    assert_int_equal(r.body_len, 16);
    assert_memory_equal(r.body, "hello 0123456789", 16);
    assert_true(r.reusable);
}

static void test_chunked_streaming_pieces(void **state)
{
    /* SSE events flow chunk by chunk: each chunk's data is delivered as it comes,
     * before the next chunk is complete. */
    const char *s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "6\r\ndata:1\r\n6\r\ndata:2\r\n0\r\n\r\n";
    size_t len = strlen(s);
    size_t cut = (size_t)(strstr(s, "data:1") - s) + 6; /* right after the first chunk's data */
    result_t r;
    feed_split(s, len, &cut, 1, &r);
    assert_true(r.done);
    assert_int_equal(r.body_pieces, 2);
    assert_memory_equal(r.body, "data:1data:2", 12);
}

static void test_close_delimited(void **state)
{
    result_t r;
    feed_all_ways("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", &r);
    assert_true(r.done);
    assert_int_equal(r.body_len, 13);
    assert_false(r.reusable);
}

static void test_interim_skipped(void **state)
{
    result_t r;
    feed_all_ways("HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
                  "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                  "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
                  &r);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.head, "Content-Length: 2\r\n");
    assert_memory_equal(r.body, "ok", 2);
    assert_true(r.reusable);
}

static void test_no_body_statuses(void **state)
{
    result_t r;
    feed_all_ways("HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n", &r);
    assert_true(r.done);
    assert_int_equal(r.body_len, 0);
    assert_true(r.reusable);
    feed_all_ways("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &r);
    assert_true(r.done);
    assert_true(r.reusable);
}

static void test_connection_reuse_rules(void **state)
{
    result_t r;
    feed_all_ways("HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 1\r\n\r\nx",
                  &r);
    assert_true(r.done);
    assert_false(r.reusable);
    feed_all_ways("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", &r);
    assert_true(r.done);
    assert_false(r.reusable);
    feed_all_ways("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx", &r);
    assert_true(r.done);
    assert_true(r.reusable);
    /* chunked and Content-Length both: chunked frames it, the connection is not reused */
    feed_all_ways("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "1\r\nx\r\n0\r\n\r\n",
                  &r);
    assert_true(r.done);
    assert_int_equal(r.body_len, 1);
    assert_false(r.reusable);
}

static void test_bare_lf_lines(void **state)
{
    result_t r;
    feed_all_ways("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n", &r);
    assert_true(r.done);
    assert_memory_equal(r.body, "abc", 3);
}

static void test_bytes_after_response(void **state)
{
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n";
    result_t r;
    feed_split(s, strlen(s), NULL, 0, &r);
    assert_true(r.done);
    assert_int_equal(r.extra, strlen("HTTP/1.1 200 OK\r\n"));
}

static void test_body_piece_not_consumed_until_taken(void **state)
{
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    buf_t head;
    buf_init(&head, 0);
    h1p_t p;
    h1p_init(&p, &head, 1024);
    size_t used, pl, len = strlen(s);
    assert_int_equal(h1p_feed(&p, s, len, &used, &pl), H1P_HEAD);
    size_t pos = used;
    assert_int_equal(h1p_feed(&p, s + pos, len - pos, &used, &pl), H1P_BODY);
    assert_int_equal(used, 0);
    assert_int_equal(pl, 5);
    /* the consumer paused: the same piece again */
    assert_int_equal(h1p_feed(&p, s + pos, len - pos, &used, &pl), H1P_BODY);
    assert_int_equal(pl, 5);
    h1p_body_taken(&p, 2); /* a consumer may take part of it */
    pos += 2;
    assert_int_equal(h1p_feed(&p, s + pos, len - pos, &used, &pl), H1P_BODY);
    assert_int_equal(pl, 3);
    assert_memory_equal(s + pos, "llo", 3);
    h1p_body_taken(&p, 3);
    pos += 3;
    assert_int_equal(h1p_feed(&p, s + pos, len - pos, &used, &pl), H1P_DONE);
    assert_true(h1p_reusable(&p));
    buf_free(&head);
}

static void test_oversized_headers(void **state)
{
    /* the total cap (1024 in feed_split) */
    char big[2048];
    int n = snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 40; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "X-H%02d: %s\r\n", i,
                      "0123456789012345678901234");
    snprintf(big + n, sizeof big - (size_t)n, "\r\n");
    expect_error(big, "too large");
    /* one line longer than H1P_MAX_LINE, even without its end yet */
    size_t ll = H1P_MAX_LINE + 64;
    char *line = malloc(ll + 64);
    strcpy(line, "HTTP/1.1 200 OK\r\nX-Long: ");
    size_t at = strlen(line);
    memset(line + at, 'a', ll);
    line[at + ll] = '\0';
    expect_error(line, "too long");
    free(line);
    /* a chunk-size line that never ends */
    char *cl = malloc(H1P_MAX_LINE + 128);
    strcpy(cl, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;");
    at = strlen(cl);
    memset(cl + at, 'e', H1P_MAX_LINE + 8);
    cl[at + H1P_MAX_LINE + 8] = '\0';
    expect_error(cl, "too long");
    free(cl);
}

static void test_bad_framing(void **state)
{
    expect_error("HTTP/2 200 OK\r\n\r\n", "status");
    expect_error("HTTP/1.1 20 OK\r\n\r\n", "status");
    expect_error("HTTP/1.1 2000 OK\r\n\r\n", "status");
    expect_error("ICY 200 OK\r\n\r\n", "status");
    expect_error("HTTP/1.1 101 Switching Protocols\r\n\r\n", "101");
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n", "Content-Length");
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length");
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
                 "Content-Length");
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
                 "conflicting");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", "chunk size");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n",
                 "too large");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", "CRLF");
    expect_error("HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n", "folding");
    expect_error("HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n", "header");
    expect_error("HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "header");
    expect_error("HTTP/1.1 200 OK\r\nX-A: a\x01"
                 "b\r\n\r\n",
                 "header value");
    /* the connection closes before the framing says the body ended */
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "closed");
    expect_error("HTTP/1.1 200 OK\r\nContent-Le", "closed");
    expect_error("", "before a response");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_chunked_extensions_trailers),
        cmocka_unit_test(test_chunked_streaming_pieces),
        cmocka_unit_test(test_close_delimited),
        cmocka_unit_test(test_interim_skipped),
        cmocka_unit_test(test_no_body_statuses),
        cmocka_unit_test(test_connection_reuse_rules),
        cmocka_unit_test(test_bare_lf_lines),
        cmocka_unit_test(test_bytes_after_response),
        cmocka_unit_test(test_body_piece_not_consumed_until_taken),
        cmocka_unit_test(test_oversized_headers),
        cmocka_unit_test(test_bad_framing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
