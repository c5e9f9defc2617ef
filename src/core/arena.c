#include "core/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct arena_block {
    struct arena_block *next;
    size_t size; /* usable bytes after the header */
    size_t off;
    _Alignas(16) unsigned char data[];
} arena_block_t;

struct arena {
    arena_block_t *head; /* block currently bumped; the last in the chain is `first` */
    size_t next_size;
    size_t used;
    arena_block_t first; /* embedded first block: a small request costs one malloc */
};

#define ARENA_ALIGN 16

static arena_block_t *arena__block_new(size_t size)
{
    if (size > SIZE_MAX - sizeof(arena_block_t)) return NULL;
    arena_block_t *b = malloc(sizeof(*b) + size);
    if (!b) return NULL;
    b->next = NULL;
    b->size = size;
    b->off = 0;
    return b;
}

arena_t *arena_create(size_t first_block)
{
    if (first_block < 256) first_block = 256;
    if (first_block > SIZE_MAX / 4) return NULL;
    arena_t *a = malloc(sizeof(*a) + first_block);
    if (!a) return NULL;
    a->first.next = NULL;
    a->first.size = first_block;
    a->first.off = 0;
    a->head = &a->first;
    a->next_size = first_block * 2;
    a->used = 0;
    return a;
}

void arena_destroy(arena_t *a)
{
    if (!a) return;
    for (arena_block_t *b = a->head, *n; b; b = n) {
        n = b->next;
        if (b != &a->first) free(b);
    }
    free(a);
}

void *arena_alloc(arena_t *a, size_t n)
{
    size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < n) return NULL; /* overflow */
    arena_block_t *b = a->head;
    if (b->size - b->off < need) {
        size_t size = a->next_size;
        if (size < need) size = need;
        arena_block_t *nb = arena__block_new(size);
        if (!nb) return NULL;
        if (need > a->next_size && b->size - b->off >= 256) {
            /* An outsized allocation gets its own block behind the current one,
             * so the space left in the current block is not wasted. */
            nb->next = b->next;
            b->next = nb;
            nb->off = need;
            a->used += need;
            return nb->data;
        }
        nb->next = b;
        a->head = nb;
        if (a->next_size < (1u << 20)) a->next_size *= 2;
        b = nb;
    }
    void *p = b->data + b->off;
    b->off += need;
    a->used += need;
    return p;
}

void *arena_calloc(arena_t *a, size_t n)
{
    void *p = arena_alloc(a, n);
    if (p) memset(p, 0, n);
    return p;
}

char *arena_strndup(arena_t *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *arena_strdup(arena_t *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

char *arena_concat(arena_t *a, const char *s1, const char *s2)
{
    size_t n1 = strlen(s1), n2 = strlen(s2);
    char *p = arena_alloc(a, n1 + n2 + 1);
    if (!p) return NULL;
    memcpy(p, s1, n1);
    memcpy(p + n1, s2, n2 + 1);
    return p;
}

char *arena_printf(arena_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *p = arena_alloc(a, (size_t)n + 1);
    if (!p) return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

size_t arena_used(const arena_t *a)
{
    return a->used;
}
