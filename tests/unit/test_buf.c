/*
 * test_buf — unit tests for the capped byte buffer (src/core/buf).
 *
 * Covers append/printf/reserve/commit/consume, the NUL terminator after every
 * operation, the hard cap (BUF_TOOBIG leaves the contents unchanged), the
 * compaction of consumed bytes on the next append and buf_shrink.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "core/buf.h"

/* Contents equal (len, bytes) and NUL-terminated right after len. */
static void expect_contents(const buf_t *b, const char *s, size_t n)
{
    assert_int_equal(b->len, n);
    if (n) assert_memory_equal(buf_data(b), s, n);
    assert_int_equal(buf_data(b)[n], '\0');
    if (b->cap) assert_true(b->len <= b->cap);
    if (b->mem) assert_true(b->start + b->len + 1 <= b->alloc);
}

static void expect_str(const buf_t *b, const char *s)
{
    expect_contents(b, s, strlen(s));
}

/* ------------------------------------------------------------------------ */

static void test_empty(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    assert_null(b.mem);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_data(&b), "");
    buf_reset(&b);
    buf_consume(&b, 10);
    buf_shrink(&b, 0);
    expect_str(&b, "");
    buf_free(&b);
    buf_free(&b); /* idempotent */
}

static void test_append(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(buf_append(&b, "abc", 3), BUF_OK);
    expect_str(&b, "abc");
    assert_int_equal(buf_appends(&b, "def"), BUF_OK);
    expect_str(&b, "abcdef");
    assert_int_equal(buf_append(&b, "", 0), BUF_OK);
    expect_str(&b, "abcdef");
    /* Binary data with NUL bytes. */
    assert_int_equal(buf_append(&b, "\0x\0", 3), BUF_OK);
    expect_contents(&b, "abcdef\0x\0", 9);
    buf_free(&b);

    /* An empty append on an unallocated buffer still yields a terminator. */
    buf_init(&b, 0);
    assert_int_equal(buf_append(&b, "", 0), BUF_OK);
    expect_str(&b, "");
    buf_free(&b);
}

static void test_append_growth(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    char ref[100000];
    for (size_t i = 0; i < sizeof ref; i++) ref[i] = (char)('a' + i % 26);
    size_t off = 0;
    /* Growing appends of varying sizes cross many reallocations. */
    for (size_t step = 1; off < sizeof ref; step = step * 3 % 4097 + 1) {
        size_t n = step;
        if (n > sizeof ref - off) n = sizeof ref - off;
        assert_int_equal(buf_append(&b, ref + off, n), BUF_OK);
        off += n;
        expect_contents(&b, ref, off);
    }
    buf_free(&b);
}

static void test_printf(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(buf_printf(&b, "%d-%s", 42, "x"), BUF_OK);
    expect_str(&b, "42-x");
    assert_int_equal(buf_printf(&b, "%s", ""), BUF_OK);
    expect_str(&b, "42-x");
    assert_int_equal(buf_printf(&b, "|%5s|%-3d|", "ab", 7), BUF_OK);
    expect_str(&b, "42-x|   ab|7  |");
    /* Larger than the initial allocation. */
    assert_int_equal(buf_printf(&b, "%1000d", 1), BUF_OK);
    assert_int_equal(b.len, 15 + 1000);
    assert_int_equal(buf_data(&b)[b.len - 1], '1');
    assert_int_equal(buf_data(&b)[b.len], '\0');
    buf_free(&b);
}

static void test_reserve_commit(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    buf_appends(&b, "head:");
    buf_status_t st = BUF_NOMEM;
    char *w = buf_reserve(&b, 10, &st);
    assert_non_null(w);
    assert_int_equal(st, BUF_OK);
    assert_ptr_equal(w, buf_data(&b) + b.len);
    memcpy(w, "0123456789", 10); /* all 10 reserved bytes are writable */
    buf_commit(&b, 4);           /* commit fewer than reserved */
    expect_str(&b, "head:0123");
    /* Reserve 0 is valid. */
    w = buf_reserve(&b, 0, &st);
    assert_non_null(w);
    assert_int_equal(st, BUF_OK);
    buf_commit(&b, 0);
    expect_str(&b, "head:0123");
    /* Reserve without status pointer. */
    w = buf_reserve(&b, 5000, NULL);
    assert_non_null(w);
    memset(w, 'q', 5000);
    buf_commit(&b, 5000);
    assert_int_equal(b.len, 9 + 5000);
    assert_int_equal(buf_data(&b)[b.len], '\0');
    buf_free(&b);
}

static void test_cap(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 10);
    assert_int_equal(buf_appends(&b, "12345"), BUF_OK);
    /* Over the cap: fails, contents untouched. */
    assert_int_equal(buf_appends(&b, "678901"), BUF_TOOBIG);
    expect_str(&b, "12345");
    assert_int_equal(buf_printf(&b, "%s", "abcdef"), BUF_TOOBIG);
    expect_str(&b, "12345");
    buf_status_t st = BUF_OK;
    assert_null(buf_reserve(&b, 6, &st));
    assert_int_equal(st, BUF_TOOBIG);
    assert_null(buf_reserve(&b, SIZE_MAX, &st));
    assert_int_equal(st, BUF_TOOBIG);
    expect_str(&b, "12345");
    /* Exactly to the cap is allowed. */
    assert_int_equal(buf_appends(&b, "67890"), BUF_OK);
    expect_str(&b, "1234567890");
    assert_int_equal(buf_append(&b, "x", 1), BUF_TOOBIG);
    assert_int_equal(buf_append(&b, "", 0), BUF_OK);
    expect_str(&b, "1234567890");
    /* Consuming frees room under the cap. */
    buf_consume(&b, 3);
    expect_str(&b, "4567890");
    assert_int_equal(buf_appends(&b, "abc"), BUF_OK);
    expect_str(&b, "4567890abc");
    assert_int_equal(buf_appends(&b, "d"), BUF_TOOBIG);
    expect_str(&b, "4567890abc");
    buf_free(&b);

    /* A single append larger than the cap on an empty buffer. */
    buf_init(&b, 4);
    assert_int_equal(buf_appends(&b, "hello"), BUF_TOOBIG);
    expect_str(&b, "");
    assert_int_equal(buf_printf(&b, "%d", 12345), BUF_TOOBIG);
    expect_str(&b, "");
    assert_int_equal(buf_printf(&b, "%d", 1234), BUF_OK);
    expect_str(&b, "1234");
    buf_free(&b);
}

static void test_consume(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    buf_appends(&b, "abcdefgh");
    buf_consume(&b, 0);
    expect_str(&b, "abcdefgh");
    buf_consume(&b, 3);
    expect_str(&b, "defgh");
    assert_int_equal(b.start, 3); /* O(1): nothing moved yet */
    buf_consume(&b, 5);           /* everything: resets */
    expect_str(&b, "");
    assert_int_equal(b.start, 0);
    buf_appends(&b, "xyz");
    buf_consume(&b, 100); /* more than len */
    expect_str(&b, "");
    buf_appends(&b, "again");
    expect_str(&b, "again");
    buf_free(&b);
}

static void test_compaction(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    char blk[200];
    memset(blk, 'a', sizeof blk);
    buf_append(&b, blk, sizeof blk);
    size_t alloc = b.alloc;
    assert_true(alloc >= 201);
    buf_consume(&b, 150);
    assert_int_equal(b.start, 150);
    expect_contents(&b, blk, 50);
    /* Needs more room than is left after start but fits once compacted:
     * data moves to the front, no reallocation. */
    size_t extra = alloc - 50 - 1 - 10;
    char *more = malloc(extra);
    memset(more, 'b', extra);
    assert_int_equal(buf_append(&b, more, extra), BUF_OK);
    assert_int_equal(b.start, 0);
    assert_int_equal(b.alloc, alloc);
    assert_int_equal(b.len, 50 + extra);
    for (size_t i = 0; i < 50; i++) assert_int_equal(buf_data(&b)[i], 'a');
    for (size_t i = 0; i < extra; i++) assert_int_equal(buf_data(&b)[50 + i], 'b');
    assert_int_equal(buf_data(&b)[b.len], '\0');
    free(more);

    /* A small append that still fits after start does not move data. */
    buf_consume(&b, 10);
    assert_int_equal(b.start, 10);
    assert_int_equal(buf_append(&b, "c", 1), BUF_OK);
    assert_int_equal(b.start, 10);
    assert_int_equal(buf_data(&b)[b.len - 1], 'c');
    assert_int_equal(buf_data(&b)[b.len], '\0');
    buf_free(&b);
}

/* Stream bytes through a small buffer many times: consume/append interleaved
 * must behave like a FIFO. */
static void test_fifo_stream(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 1000);
    unsigned next_in = 0, next_out = 0;
    srand(1234);
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(rand() % 300);
        char tmp[300];
        for (size_t i = 0; i < n; i++) tmp[i] = (char)((next_in + i) % 251);
        size_t before = b.len;
        buf_status_t st = buf_append(&b, tmp, n);
        if (before + n > 1000) {
            assert_int_equal(st, BUF_TOOBIG);
            assert_int_equal(b.len, before);
        } else {
            assert_int_equal(st, BUF_OK);
            next_in += (unsigned)n;
        }
        size_t c = (size_t)(rand() % 300);
        if (c > b.len) c = b.len;
        for (size_t i = 0; i < c; i++)
            assert_int_equal((unsigned char)buf_data(&b)[i], (next_out + i) % 251);
        buf_consume(&b, c);
        next_out += (unsigned)c;
        assert_int_equal(buf_data(&b)[b.len], '\0');
        assert_true(b.alloc <= 2048);
    }
    buf_free(&b);
}

static void test_reset(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    buf_appends(&b, "abcdef");
    buf_consume(&b, 2);
    size_t alloc = b.alloc;
    buf_reset(&b);
    expect_str(&b, "");
    assert_int_equal(b.start, 0);
    assert_int_equal(b.alloc, alloc); /* memory kept */
    buf_appends(&b, "z");
    expect_str(&b, "z");
    buf_free(&b);
}

static void test_shrink(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    char big[5000];
    memset(big, 'x', sizeof big);
    buf_append(&b, big, sizeof big);
    size_t alloc = b.alloc;
    /* Not empty: keeps everything. */
    buf_shrink(&b, 0);
    assert_int_equal(b.alloc, alloc);
    expect_contents(&b, big, sizeof big);
    /* Empty but allocation within keep: kept. */
    buf_consume(&b, sizeof big);
    buf_shrink(&b, alloc);
    assert_int_equal(b.alloc, alloc);
    assert_non_null(b.mem);
    /* Empty and over keep: released. */
    buf_shrink(&b, 256);
    assert_null(b.mem);
    assert_int_equal(b.alloc, 0);
    expect_str(&b, "");
    /* Usable again afterwards. */
    assert_int_equal(buf_appends(&b, "hi"), BUF_OK);
    expect_str(&b, "hi");
    buf_free(&b);
}

/* With no cap, a size that makes len + n + 1 wrap must fail rather than
 * return a write pointer with BUF_OK (or NULL with BUF_OK). */
static void test_reserve_overflow_uncapped(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    buf_appends(&b, "x");
    buf_status_t st = BUF_OK;
    char *w = buf_reserve(&b, SIZE_MAX, &st);
    size_t len = b.len;
    buf_free(&b); /* before asserting, so a failure does not leak */
    assert_int_equal(len, 1);
    if (w || st == BUF_OK)
        fail_msg("buf_reserve(SIZE_MAX) on an uncapped buffer: %s, status %d",
                 w ? "non-NULL" : "NULL", st);
}

static void test_append_integers(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    buf_append_u64(&b, 0);
    buf_appends(&b, " ");
    buf_append_u64(&b, 18446744073709551615ull);
    buf_appends(&b, " ");
    buf_append_i64(&b, -1);
    buf_appends(&b, " ");
    buf_append_i64(&b, INT64_MIN);
    buf_appends(&b, " ");
    buf_append_i64(&b, 1234567);
    assert_string_equal(buf_data(&b), "0 18446744073709551615 -1 -9223372036854775808 1234567");
    buf_free(&b);
    buf_init(&b, 3); /* the cap applies */
    assert_int_equal(buf_append_u64(&b, 12345), BUF_TOOBIG);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

/* buf_fmt_fixed against printf, the oracle: random costs at every magnitude, exact
 * binary ties (m * 2^-k, where printf rounds half to even), boundaries, odd values. */
static void expect_fixed(double v, int d)
{
    char want[BUF_FIXED_MAX], got[BUF_FIXED_MAX];
    int wn = snprintf(want, sizeof want, "%.*f", d, v);
    size_t gn = buf_fmt_fixed(got, v, d);
    if ((size_t)wn != gn || strcmp(want, got) != 0)
        fail_msg("%.17g with %d decimals: printf \"%s\", buf_fmt_fixed \"%s\"", v, d, want, got);
}

static void test_fmt_fixed(void **state)
{
    (void)state;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 2000000; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        /* uniform mantissa, exponent over 1e-14 .. 1e4 */
        double m = (double)(s >> 11) / 9007199254740992.0;
        double v = m * pow(10, (int)(s % 19) - 14);
        expect_fixed(v, 10);
        expect_fixed(v, (int)(s >> 60) % 11);
    }
    for (int k = 1; k < 40; k++)
        for (int m = 1; m < 200; m += 2) {
            double v = ldexp(m, -k);
            for (int d = 0; d <= 10; d++) expect_fixed(v, d);
        }
    const double odd[] = {0.0,
                          -0.0,
                          1.0,
                          0.5,
                          1.5,
                          2.5,
                          9.99999999995,
                          0.00000000005,
                          0.000000000049999,
                          109.9951171875,
                          1e11,
                          1e12,
                          1099511627776.0,
                          -1.25,
                          1e300,
                          INFINITY,
                          -INFINITY,
                          NAN,
                          5e-324,
                          0.1,
                          0.2,
                          0.3};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
        for (int d = 0; d <= 10; d++) expect_fixed(odd[i], d);
    char h[17];
    buf_fmt_hex64(h, 0x0123456789abcdefull);
    assert_string_equal(h, "0123456789abcdef");
    buf_fmt_hex64(h, 0);
    assert_string_equal(h, "0000000000000000");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_integers), cmocka_unit_test(test_fmt_fixed),
        cmocka_unit_test(test_empty),           cmocka_unit_test(test_append),
        cmocka_unit_test(test_append_growth),   cmocka_unit_test(test_printf),
        cmocka_unit_test(test_reserve_commit),  cmocka_unit_test(test_cap),
        cmocka_unit_test(test_consume),         cmocka_unit_test(test_compaction),
        cmocka_unit_test(test_fifo_stream),     cmocka_unit_test(test_reset),
        cmocka_unit_test(test_shrink),          cmocka_unit_test(test_reserve_overflow_uncapped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
