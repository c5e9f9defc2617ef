/*
 * test_arena — unit tests for the bump allocator (src/core/arena).
 *
 * Checks 16-byte alignment of every allocation, growth across blocks
 * (including one allocation larger than any block), that earlier allocations
 * stay intact when the arena grows, the string helpers and arena_used(). Every
 * arena is destroyed so the binary runs clean under ASan/LSan.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"

static size_t round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

static void assert_aligned(const void *p)
{
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 16, 0);
}

/* ------------------------------------------------------------------------ */

static void test_alignment(void **state)
{
    (void)state;
    arena_t *a = arena_create(256);
    assert_non_null(a);
    /* Odd sizes force padding; enough of them to span several blocks. */
    for (size_t n = 0; n < 600; n++) {
        unsigned char *p = arena_alloc(a, n % 37 + 1);
        assert_aligned(p);
        memset(p, 0xab, n % 37 + 1); /* ASan: the bytes are really ours */
    }
    assert_aligned(arena_calloc(a, 3));
    assert_aligned(arena_strdup(a, "x"));
    assert_aligned(arena_strndup(a, "abc", 2));
    assert_aligned(arena_printf(a, "%d", 7));
    arena_destroy(a);
}

static void test_used_counts_rounded_sizes(void **state)
{
    (void)state;
    arena_t *a = arena_create(0); /* clamped to a sane minimum */
    assert_non_null(a);
    assert_int_equal(arena_used(a), 0);
    size_t expect = 0;
    static const size_t sizes[] = {1, 15, 16, 17, 31, 32, 100, 255, 256, 257, 4000, 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        assert_non_null(arena_alloc(a, sizes[i]));
        expect += round16(sizes[i]);
        assert_int_equal(arena_used(a), expect);
    }
    arena_destroy(a);
}

/* Allocations in one block are consecutive; a new block is started when the
 * current one is full, and nothing written before moves or gets clobbered. */
static void test_growth_keeps_contents(void **state)
{
    (void)state;
    arena_t *a = arena_create(256);
    enum { N = 2000 };
    unsigned char *ptrs[N];
    for (int i = 0; i < N; i++) {
        size_t n = (size_t)(i % 50) + 1;
        ptrs[i] = arena_alloc(a, n);
        assert_aligned(ptrs[i]);
        memset(ptrs[i], i & 0xff, n);
    }
    for (int i = 0; i < N; i++) {
        size_t n = (size_t)(i % 50) + 1;
        for (size_t j = 0; j < n; j++) assert_int_equal(ptrs[i][j], i & 0xff);
    }
    /* No two allocations overlap. */
    for (int i = 1; i < N; i++) assert_ptr_not_equal(ptrs[i], ptrs[i - 1]);
    arena_destroy(a);
}

static void test_first_block_is_bumped(void **state)
{
    (void)state;
    arena_t *a = arena_create(1024);
    char *p1 = arena_alloc(a, 10);
    char *p2 = arena_alloc(a, 10);
    char *p3 = arena_alloc(a, 32);
    assert_ptr_equal(p2, p1 + 16);
    assert_ptr_equal(p3, p2 + 16);
    arena_destroy(a);
}

static void test_allocation_larger_than_block(void **state)
{
    (void)state;
    arena_t *a = arena_create(256);
    char *small = arena_strdup(a, "before");
    /* Much larger than the first block and than the next block size. */
    size_t big_n = 1u << 20;
    unsigned char *big = arena_alloc(a, big_n);
    assert_aligned(big);
    memset(big, 0x5a, big_n); /* the whole range is usable (ASan checks) */
    assert_int_equal(big[0], 0x5a);
    assert_int_equal(big[big_n - 1], 0x5a);
    /* Exactly a block's worth after a partially used block. */
    unsigned char *exact = arena_alloc(a, 256);
    assert_aligned(exact);
    memset(exact, 1, 256);
    /* Allocation keeps working after the oversized block. */
    char *after = arena_strdup(a, "after");
    assert_string_equal(small, "before");
    assert_string_equal(after, "after");
    assert_int_equal(big[big_n / 2], 0x5a);
    assert_int_equal(arena_used(a), 16 + big_n + 256 + 16);
    /* Several oversized allocations in a row. */
    for (int i = 0; i < 5; i++) {
        unsigned char *p = arena_alloc(a, 100000 + (size_t)i);
        assert_aligned(p);
        memset(p, i, 100000 + (size_t)i);
    }
    arena_destroy(a);
}

static void test_calloc_zeroes(void **state)
{
    (void)state;
    arena_t *a = arena_create(256);
    /* Fill most of the first block with non-zero bytes so the calloc'd
     * memory comes from a fresh block (malloc, not zeroed). */
    memset(arena_alloc(a, 200), 0xff, 200);
    unsigned char *z = arena_calloc(a, 500);
    assert_aligned(z);
    for (int i = 0; i < 500; i++) assert_int_equal(z[i], 0);
    arena_destroy(a);
}

static void test_strdup_strndup(void **state)
{
    (void)state;
    arena_t *a = arena_create(256);
    const char *src = "hello, world";
    char *d = arena_strdup(a, src);
    assert_string_equal(d, src);
    assert_ptr_not_equal(d, src);

    char *e = arena_strdup(a, "");
    assert_non_null(e);
    assert_string_equal(e, "");

    /* strndup copies exactly n bytes and terminates, even mid-string and
     * even when the source is not NUL-terminated within n. */
    char raw[4] = {'a', 'b', 'c', 'd'};
    char *f = arena_strndup(a, raw, 4);
    assert_string_equal(f, "abcd");
    char *g = arena_strndup(a, src, 5);
    assert_string_equal(g, "hello");
    char *h = arena_strndup(a, src, 0);
    assert_string_equal(h, "");
    /* Embedded NUL is copied as bytes. */
    char *i = arena_strndup(a, "a\0b", 3);
    assert_memory_equal(i, "a\0b\0", 4);

    /* Long string spanning into a new block. */
    char longs[3000];
    memset(longs, 'z', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    char *l = arena_strdup(a, longs);
    assert_string_equal(l, longs);
    arena_destroy(a);
}

static void test_printf(void **state)
{
    (void)state;
    arena_t *a = arena_create(256);
    assert_string_equal(arena_printf(a, "%s-%d-%05.1f", "x", 42, 3.14159), "x-42-003.1");
    assert_string_equal(arena_printf(a, "%s", ""), "");
    char *big = arena_printf(a, "%2000d|%s", 7, "end");
    assert_non_null(big);
    assert_int_equal(strlen(big), 2004);
    assert_string_equal(big + 1999, "7|end");
    /* Earlier strings survive the growth. */
    size_t used = arena_used(a);
    assert_true(used >= 16 + 16 + 2005);
    arena_destroy(a);
}

static void test_destroy_null(void **state)
{
    (void)state;
    arena_destroy(NULL);
}

/* "Returns NULL only when malloc fails": a size so large that the block
 * header plus the size wraps around must fail, not hand out a pointer past a
 * tiny allocation. */
static void test_huge_allocation_fails(void **state)
{
    (void)state;
    arena_t *a = arena_create(256);
    static const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 14, SIZE_MAX - 15, SIZE_MAX - 31};
    /* The first two overflow the rounding to 16 (caught); the last two do not,
     * but sizeof(block header) + size wraps to 16 and 0 bytes. */
    const void *got[4];
    for (size_t i = 0; i < 4; i++) got[i] = arena_alloc(a, sizes[i]);
    /* The arena is still usable. */
    int ok = strcmp(arena_strdup(a, "ok"), "ok") == 0;
    arena_destroy(a); /* before asserting, so a failure does not leak */
    assert_true(ok);
    for (size_t i = 0; i < 4; i++)
        if (got[i]) fail_msg("arena_alloc(SIZE_MAX - %zu) returned non-NULL", SIZE_MAX - sizes[i]);
}

/* An allocation larger than the next block size gets a block of its own behind
 * the current one; the space left in the current block is still used after. */
static void test_outsized_keeps_current_block(void **state)
{
    (void)state;
    arena_t *a = arena_create(4096);
    char *small1 = arena_alloc(a, 64);
    char *big = arena_alloc(a, 1 << 20);
    char *small2 = arena_alloc(a, 64);
    assert_non_null(small1);
    assert_non_null(big);
    assert_non_null(small2);
    memset(big, 0xab, 1 << 20);
    /* small2 comes from the first block, right after small1 */
    assert_ptr_equal(small2, small1 + 64);
    arena_destroy(a); /* ASan/LSan: the outsized block must be freed too */
}

static void test_concat(void **state)
{
    (void)state;
    arena_t *a = arena_create(256);
    assert_string_equal(arena_concat(a, "Authorization: Bearer ", "k"), "Authorization: Bearer k");
    assert_string_equal(arena_concat(a, "", ""), "");
    arena_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concat),
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_used_counts_rounded_sizes),
        cmocka_unit_test(test_growth_keeps_contents),
        cmocka_unit_test(test_first_block_is_bumped),
        cmocka_unit_test(test_allocation_larger_than_block),
        cmocka_unit_test(test_calloc_zeroes),
        cmocka_unit_test(test_strdup_strndup),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_destroy_null),
        cmocka_unit_test(test_outsized_keeps_current_block),
        cmocka_unit_test(test_huge_allocation_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
