/*
 * test_sse — unit tests for the incremental server-sent events parser
 * (src/upstream/sse).
 *
 * Streams are data: bytes and the events they must produce. The property test
 * feeds each stream whole, byte by byte, split at every position, and (for
 * short streams) split at every pair of positions; every feeding must deliver
 * exactly the same events. Each piece is an exactly-sized heap copy so ASan
 * flags reads past the bytes given.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/sse.h"

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

/* Records events as "[name]<len>:data\n" into out. */
typedef struct recorder {
    buf_t out;
    int n;
    int stop_at;  /* 1-based event number whose callback returns stop_val; 0 = never */
    int stop_val; /* value returned then */
} recorder_t;

static int on_event(void *ud, const char *event, const char *data, size_t len)
{
    recorder_t *r = ud;
    assert_non_null(event);
    assert_non_null(data);
    assert_int_equal(data[len], '\0'); /* data is NUL-terminated */
    r->n++;
    buf_printf(&r->out, "[%s]%zu:", event, len);
    buf_append(&r->out, data, len);
    buf_appends(&r->out, "\n");
    return r->n == r->stop_at ? r->stop_val : 0;
}

static void rec_init(recorder_t *r)
{
    buf_init(&r->out, 0);
    r->n = 0;
    r->stop_at = 0;
    r->stop_val = 0;
}

/* Feeds s[a..b) from an exactly-sized heap copy. */
static int feed_piece(sse_parser_t *p, const char *s, size_t a, size_t b, recorder_t *r)
{
    size_t n = b - a;
    char *copy = malloc(n ? n : 1);
    memcpy(copy, s + a, n);
    int rc = sse_feed(p, copy, n, on_event, r);
    free(copy);
    return rc;
}

/* Feeds s split at the given cut points (ascending, within (0, n)). Stops at
 * the first non-zero return, which is the result. */
static int feed_cuts(const char *s, size_t n, size_t max_event, const size_t *cuts, size_t ncuts,
                     recorder_t *r)
{
    sse_parser_t p;
    sse_init(&p, max_event);
    size_t prev = 0;
    int rc = 0;
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t next = i < ncuts ? cuts[i] : n;
        rc = feed_piece(&p, s, prev, next, r);
        prev = next;
    }
    sse_free(&p);
    return rc;
}

static int feed_bytewise(const char *s, size_t n, size_t max_event, recorder_t *r)
{
    sse_parser_t p;
    sse_init(&p, max_event);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) rc = feed_piece(&p, s, i, i + 1, r);
    sse_free(&p);
    return rc;
}

typedef struct stream_case {
    const char *bytes;
    size_t len;         /* 0: strlen(bytes) */
    const char *events; /* recorder serialization */
    size_t events_len;  /* 0: strlen(events) */
} stream_case_t;

#define S(lit) lit, sizeof(lit) - 1

static const stream_case_t streams[] = {
    {S("data: hello\n\n"), S("[]5:hello\n")},
    {S("event: delta\ndata: {\"x\":1}\n\nevent: done\ndata: [DONE]\n\n"),
     S("[delta]7:{\"x\":1}\n[done]6:[DONE]\n")},
    /* CRLF line endings, multi-line data joined with '\n' */
    {S("event: a\r\ndata: 1\r\ndata: 2\r\n\r\ndata: 3\r\n\r\n"), S("[a]3:1\n2\n[]1:3\n")},
    /* mixed endings */
    {S("data: a\r\n\ndata: b\n\r\ndata: c\r\ndata: d\n\n"), S("[]1:a\n[]1:b\n[]3:c\nd\n")},
    /* comments and unknown fields ignored */
    {S(": comment\nid: 7\nretry: 100\ndata: x\nfoo: bar\n: another\ndata: y\n\n:\n\n"),
     S("[]3:x\ny\n")},
    /* an event without data is not delivered, and its name does not leak
     * into the next event */
    {S("event: ping\n\ndata: after\n\n"), S("[]5:after\n")},
    {S("event: ping\n: keepalive\n\nevent: x\nevent: y\ndata: z\n\n"), S("[y]1:z\n")},
    /* field value forms */
    {S("data\n\ndata:\n\ndata:nospace\ndata:  two\n\n"), S("[]0:\n[]0:\n[]12:nospace\n two\n")},
    {S("data:\ndata:\n\n"), S("[]1:\n\n")},
    {S("data: a:b: c\n\n"), S("[]6:a:b: c\n")},
    /* case-sensitive field names */
    {S("Data: x\nDATA: y\nEvent: e\ndata: z\n\n"), S("[]1:z\n")},
    /* blank lines without an event are harmless */
    {S("\n\n\r\ndata: x\n\n\n\n"), S("[]1:x\n")},
    /* an unfinished event at the end is not delivered */
    {S("data: x\n\ndata: pending\n"), S("[]1:x\n")},
    {S("data: x\n\ndata: pen"), S("[]1:x\n")},
    /* NUL bytes and binary in data are kept */
    {S("data: a\0b\n\n"), S("[]3:a\0b\n")},
    {S("data: \xff\xfe\x80\n\n"), S("[]3:\xff\xfe\x80\n")},
    /* a CR inside a line is data; only the one before LF is stripped */
    {S("data: a\rb\r\n\r\n"), S("[]3:a\rb\n")},
    /* OpenAI-style stream */
    {S("data: {\"id\":\"1\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n"
       "data: {\"id\":\"1\",\"choices\":[{\"delta\":{}}]}\n\n"
       "data: [DONE]\n\n"),
     S("[]49:{\"id\":\"1\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n"
       "[]35:{\"id\":\"1\",\"choices\":[{\"delta\":{}}]}\n"
       "[]6:[DONE]\n")},
    /* Anthropic-style named events */
    {S("event: message_start\r\ndata: {\"type\":\"message_start\"}\r\n\r\n"
       "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n"
       "event: message_stop\r\ndata: {}\r\n\r\n"),
     S("[message_start]24:{\"type\":\"message_start\"}\n"
       "[ping]16:{\"type\": \"ping\"}\n"
       "[message_stop]2:{}\n")},
};

#define N_STREAMS (sizeof streams / sizeof streams[0])

static void expect_events(const stream_case_t *sc, int rc, const recorder_t *r, const char *how)
{
    if (rc != 0) fail_msg("%s: stream %.20s...: rc %d", how, sc->bytes, rc);
    if (r->out.len != sc->events_len || memcmp(buf_data(&r->out), sc->events, sc->events_len))
        fail_msg("%s: stream \"%.40s\"\ngot:  %s\nwant: %s", how, sc->bytes, buf_data(&r->out),
                 sc->events);
}

/* ------------------------------------------------------------------------ */
/* tests                                                                     */

static void test_streams_whole(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_STREAMS; i++) {
        recorder_t r;
        rec_init(&r);
        int rc = feed_cuts(streams[i].bytes, streams[i].len, 1 << 20, NULL, 0, &r);
        expect_events(&streams[i], rc, &r, "whole");
        buf_free(&r.out);
    }
}

static void test_streams_every_split(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_STREAMS; i++) {
        const stream_case_t *sc = &streams[i];
        recorder_t r;
        rec_init(&r);
        int rc = feed_bytewise(sc->bytes, sc->len, 1 << 20, &r);
        expect_events(sc, rc, &r, "byte-by-byte");
        buf_free(&r.out);
        for (size_t cut = 0; cut <= sc->len; cut++) {
            char how[32];
            snprintf(how, sizeof how, "split at %zu", cut);
            rec_init(&r);
            rc = feed_cuts(sc->bytes, sc->len, 1 << 20, &cut, 1, &r);
            expect_events(sc, rc, &r, how);
            buf_free(&r.out);
        }
    }
}

static void test_streams_every_two_splits(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_STREAMS; i++) {
        const stream_case_t *sc = &streams[i];
        if (sc->len > 80) continue;
        for (size_t a = 0; a <= sc->len; a++)
            for (size_t b = a; b <= sc->len; b++) {
                size_t cuts[2] = {a, b};
                char how[48];
                snprintf(how, sizeof how, "splits at %zu,%zu", a, b);
                recorder_t r;
                rec_init(&r);
                int rc = feed_cuts(sc->bytes, sc->len, 1 << 20, cuts, 2, &r);
                expect_events(sc, rc, &r, how);
                buf_free(&r.out);
            }
    }
}

/* Many events concatenated, fed in pieces of every size from 1 to 97. */
static void test_long_stream_piece_sizes(void **state)
{
    (void)state;
    buf_t all;
    buf_init(&all, 0);
    for (int k = 0; k < 200; k++) {
        const stream_case_t *sc = &streams[(size_t)k % N_STREAMS];
        /* Terminate any unfinished event so streams concatenate cleanly. */
        buf_append(&all, sc->bytes, sc->len);
        buf_appends(&all, "\n\n");
    }
    /* The reference is the whole-stream feed (unfinished events become
     * complete once the blank line is appended). */
    buf_t expect;
    buf_init(&expect, 0);
    {
        recorder_t r;
        rec_init(&r);
        assert_int_equal(feed_cuts(buf_data(&all), all.len, 1 << 20, NULL, 0, &r), 0);
        buf_append(&expect, buf_data(&r.out), r.out.len);
        assert_true(r.n >= 200);
        buf_free(&r.out);
    }
    for (size_t piece = 1; piece < 98; piece++) {
        size_t ncuts = all.len / piece;
        size_t *cuts = malloc((ncuts + 1) * sizeof *cuts);
        size_t m = 0;
        for (size_t c = piece; c < all.len; c += piece) cuts[m++] = c;
        recorder_t r;
        rec_init(&r);
        int rc = feed_cuts(buf_data(&all), all.len, 1 << 20, cuts, m, &r);
        free(cuts);
        assert_int_equal(rc, 0);
        assert_int_equal(r.out.len, expect.len);
        assert_memory_equal(buf_data(&r.out), buf_data(&expect), expect.len);
        buf_free(&r.out);
    }
    buf_free(&all);
    buf_free(&expect);
}

static void test_event_name_truncated(void **state)
{
    (void)state;
    char name[101];
    memset(name, 'n', 100);
    name[100] = '\0';
    char in[256];
    snprintf(in, sizeof in, "event: %s\ndata: x\n\n", name);
    recorder_t r;
    rec_init(&r);
    assert_int_equal(feed_cuts(in, strlen(in), 1 << 20, NULL, 0, &r), 0);
    char want[128];
    snprintf(want, sizeof want, "[%.63s]1:x\n", name); /* 63 bytes + NUL */
    assert_string_equal(buf_data(&r.out), want);
    buf_free(&r.out);
}

static void test_callback_stop(void **state)
{
    (void)state;
    const char *in = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    size_t n = strlen(in);
    /* Whole: the second callback's value is returned; the third event is not
     * delivered. */
    recorder_t r;
    rec_init(&r);
    r.stop_at = 2;
    r.stop_val = 7;
    assert_int_equal(feed_cuts(in, n, 1 << 20, NULL, 0, &r), 7);
    assert_int_equal(r.n, 2);
    assert_string_equal(buf_data(&r.out), "[]1:1\n[]1:2\n");
    buf_free(&r.out);
    /* Byte by byte: the same, returned by the call that completed event 2. */
    rec_init(&r);
    r.stop_at = 2;
    r.stop_val = -5;
    assert_int_equal(feed_bytewise(in, n, 1 << 20, &r), -5);
    assert_int_equal(r.n, 2);
    buf_free(&r.out);
    /* Stop on the first event with CRLF endings. */
    rec_init(&r);
    r.stop_at = 1;
    r.stop_val = 1;
    assert_int_equal(feed_cuts("data: a\r\n\r\ndata: b\r\n\r\n", 22, 1 << 20, NULL, 0, &r), 1);
    assert_int_equal(r.n, 1);
    buf_free(&r.out);
}

static void test_max_event(void **state)
{
    (void)state;
    recorder_t r;
    /* Data over the cap in a single line. */
    rec_init(&r);
    const char *big = "data: 0123456789abcdefg\n\n"; /* 17 data bytes */
    assert_int_equal(feed_cuts(big, strlen(big), 16, NULL, 0, &r), -1);
    assert_int_equal(r.n, 0);
    buf_free(&r.out);
    /* Over the cap across data lines (joined with '\n'). */
    rec_init(&r);
    const char *multi = "data: 01234567\ndata: 89abcdef\n\n"; /* 8 + 1 + 8 */
    assert_int_equal(feed_cuts(multi, strlen(multi), 16, NULL, 0, &r), -1);
    assert_int_equal(r.n, 0);
    buf_free(&r.out);
    /* Byte by byte too. */
    rec_init(&r);
    assert_int_equal(feed_bytewise(multi, strlen(multi), 16, &r), -1);
    assert_int_equal(r.n, 0);
    buf_free(&r.out);
    /* A line with no newline that grows without bound. */
    rec_init(&r);
    {
        sse_parser_t p;
        sse_init(&p, 1024);
        char chunk[100];
        memset(chunk, 'a', sizeof chunk);
        int rc = 0, feeds = 0;
        while (rc == 0 && feeds < 1000)
            rc = sse_feed(&p, chunk, sizeof chunk, on_event, &r), feeds++;
        assert_int_equal(rc, -1);
        assert_true(feeds <= 11);
        sse_free(&p);
    }
    buf_free(&r.out);
    /* Events under the cap pass, the cap is per event (reset after each). */
    rec_init(&r);
    const char *ok = "data: 0123456789\n\ndata: 0123456789\n\ndata: 0123456789\n\n";
    assert_int_equal(feed_cuts(ok, strlen(ok), 16, NULL, 0, &r), 0);
    assert_int_equal(r.n, 3);
    buf_free(&r.out);
    /* Exactly at the cap, fed whole. */
    rec_init(&r);
    const char *exact = "data: 0123456789abcdef\n\n";
    assert_int_equal(feed_cuts(exact, strlen(exact), 16, NULL, 0, &r), 0);
    assert_string_equal(buf_data(&r.out), "[]16:0123456789abcdef\n");
    buf_free(&r.out);
}

/*
 * Whether an event fits under max_event must not depend on how the bytes were
 * split. The partial-line buffer holds the whole line ("data: " prefix and CR
 * included), so it allows max_event + 64 bytes: an event whose data fits must
 * pass when its line arrives in two reads, and a comment or event line longer
 * than that line cap must fail in one read as it does when split (the last
 * two cases, found by tests/fuzz/fuzz_sse).
 */
static void test_cap_independent_of_split(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t max;
    } cases[] = {
        {"data: 0123456789abcdef\n\n", 16},
        {"data: 0123456789abcdef\r\n\r\n", 16},
        {": this comment is longer than sixteen bytes\ndata: x\n\n", 16},
        {"event: a-long-event-name\ndata: x\n\n", 16},
        {": a comment line longer than the line cap, which is sixteen plus sixty-four"
         " bytes, so eighty\ndata: x\n\n",
         16},
        {"event: an-event-line-longer-than-the-line-cap-of-sixteen-plus-sixty-four-bytes"
         "-which-is-eighty\ndata: x\n\n",
         16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].in);
        recorder_t whole;
        rec_init(&whole);
        int rc_whole = feed_cuts(cases[i].in, n, cases[i].max, NULL, 0, &whole);
        size_t bad_cut = 0;
        int rc_bad = 0;
        for (size_t cut = 1; cut < n && !bad_cut; cut++) {
            recorder_t r;
            rec_init(&r);
            int rc = feed_cuts(cases[i].in, n, cases[i].max, &cut, 1, &r);
            if (rc != rc_whole || r.out.len != whole.out.len ||
                memcmp(buf_data(&r.out), buf_data(&whole.out), r.out.len))
                bad_cut = cut, rc_bad = rc;
            buf_free(&r.out);
        }
        buf_free(&whole.out);
        if (bad_cut)
            fail_msg("max_event %zu, stream \"%.30s...\": whole rc %d, split at %zu rc %d",
                     cases[i].max, cases[i].in, rc_whole, bad_cut, rc_bad);
    }
}

static void test_reuse_after_event(void **state)
{
    (void)state;
    /* The parser keeps no state between events beyond the partial line. */
    sse_parser_t p;
    sse_init(&p, 1 << 20);
    recorder_t r;
    rec_init(&r);
    assert_int_equal(sse_feed(&p, "event: a\nda", 11, on_event, &r), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(sse_feed(&p, "ta: 1\n", 6, on_event, &r), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(sse_feed(&p, "\n", 1, on_event, &r), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(sse_feed(&p, "", 0, on_event, &r), 0);
    assert_int_equal(sse_feed(&p, "data: 2\n\n", 9, on_event, &r), 0);
    assert_string_equal(buf_data(&r.out), "[a]1:1\n[]1:2\n");
    sse_free(&p);
    buf_free(&r.out);
    /* sse_free on a parser that never allocated. */
    sse_init(&p, 10);
    sse_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_streams_whole),
        cmocka_unit_test(test_streams_every_split),
        cmocka_unit_test(test_streams_every_two_splits),
        cmocka_unit_test(test_long_stream_piece_sizes),
        cmocka_unit_test(test_event_name_truncated),
        cmocka_unit_test(test_callback_stop),
        cmocka_unit_test(test_max_event),
        cmocka_unit_test(test_cap_independent_of_split),
        cmocka_unit_test(test_reuse_after_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
