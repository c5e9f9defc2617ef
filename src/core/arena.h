/*
 * arena — a bump allocator that owns everything one request allocates.
 *
 * A request creates one arena; every string, header and parsed value it needs
 * comes from it, and arena_destroy() frees them all at once. Nothing that
 * outlives the request may point into an arena: copy it out deliberately.
 *
 * Memory comes in blocks; the first block is embedded in the arena handle so a
 * small request costs one malloc. Allocations are 16-byte aligned. An arena is
 * touched by one thread at a time (the worker that owns the request).
 */
#ifndef SKULD_ARENA_H
#define SKULD_ARENA_H

#include <stddef.h>

typedef struct arena arena_t;

arena_t *arena_create(size_t first_block);
void arena_destroy(arena_t *a);

/* Returns NULL only when malloc fails. */
void *arena_alloc(arena_t *a, size_t n);
void *arena_calloc(arena_t *a, size_t n);
char *arena_strndup(arena_t *a, const char *s, size_t n);
char *arena_strdup(arena_t *a, const char *s);
/* s1 followed by s2, NUL-terminated (no printf: for hot paths). */
char *arena_concat(arena_t *a, const char *s1, const char *s2);
char *arena_printf(arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Bytes handed out so far (for tests and limits). */
size_t arena_used(const arena_t *a);

#endif
