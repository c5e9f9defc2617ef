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

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#endif
