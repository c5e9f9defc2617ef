/*
 * fuzz_common — helpers shared by the libFuzzer targets in tests/fuzz.
 *
 * Split feeding: the targets that check "whole vs split" cut the input into
 * pieces whose lengths come from a xorshift generator seeded with a hash of
 * the input itself, so every input (and every seed file, which stays a plain
 * protocol message) carries its own split points and a reproducer replays
 * exactly. Lengths mix 1..4 bytes (boundaries inside tokens and CRLFs),
 * 1..64 and 1..all that is left.
 *
 * FZ_CHECK aborts with the failed condition: libFuzzer reports it as a crash
 * and keeps the input.
 */
#ifndef SKULD_FUZZ_COMMON_H
#define SKULD_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

#define FZ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct fz_split {
    uint64_t s;
} fz_split_t;

static inline void fz_split_init(fz_split_t *r, const uint8_t *d, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ d[i]) * 0x100000001b3ull;
    r->s = h | 1;
}

/* Length of the next piece, 1..left (left > 0). */
static inline size_t fz_split_next(fz_split_t *r, size_t left)
{
    r->s ^= r->s << 13, r->s ^= r->s >> 7, r->s ^= r->s << 17;
    size_t span;
    switch (r->s % 3) {
    case 0:
        span = 4;
        break;
    case 1:
        span = 64;
        break;
    default:
        span = left;
    }
    size_t k = 1 + (size_t)((r->s >> 8) % span);
    return k < left ? k : left;
}

/* An exact-size heap copy (ASan flags a read past it); never NULL. */
static inline char *fz_dup(const void *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    if (!c) abort();
    if (n) memcpy(c, p, n);
    return c;
}

/* Feed data[0..size) to feed(ctx, piece, n), whole or in split pieces (each an
 * exact-size heap copy); stops at the first non-zero return and returns it. */
typedef int (*fz_feed_fn)(void *ctx, const char *piece, size_t n);

static inline int fz_feed(const uint8_t *data, size_t size, bool split, fz_feed_fn feed, void *ctx)
{
    fz_split_t r;
    fz_split_init(&r, data, size);
    size_t off = 0;
    int rc = 0;
    while (off < size && rc == 0) {
        size_t k = split ? fz_split_next(&r, size - off) : size - off;
        char *piece = fz_dup(data + off, k);
        rc = feed(ctx, piece, k);
        free(piece);
        off += k;
    }
    return rc;
}

/* The differential check: abort, printing both, unless the transcripts of the
 * whole and the split feeding are byte for byte the same. */
static inline void fz_expect_same(const buf_t *whole, const buf_t *split)
{
    if (whole->len == split->len && memcmp(buf_data(whole), buf_data(split), whole->len) == 0)
        return;
    fprintf(stderr, "whole:\n%.*s\nsplit:\n%.*s\n", (int)whole->len, buf_data(whole),
            (int)split->len, buf_data(split));
    FZ_CHECK(!"whole and split feeding disagree");
}

/* Run the target's transcript function whole and split, and compare. */
typedef void (*fz_run_fn)(const uint8_t *data, size_t size, bool split, buf_t *log);

static inline void fz_whole_vs_split(const uint8_t *data, size_t size, fz_run_fn run)
{
    buf_t whole, split;
    run(data, size, false, &whole);
    run(data, size, true, &split);
    fz_expect_same(&whole, &split);
    buf_free(&whole);
    buf_free(&split);
}

#endif
