/*
 * buf — a growable byte buffer with a hard cap.
 *
 * Every buffer fed by the network has a cap (curl's dynbuf "toobig"): appending
 * past it fails with BUF_TOOBIG and leaves the contents unchanged, so the
 * caller can answer 413/431/502 instead of growing without bound. Data is
 * consumed from the front with buf_consume(), which is O(1) until the next
 * append compacts. The bytes are always NUL-terminated (not counted in len) so
 * they can be searched with string functions.
 */
#ifndef SKULD_BUF_H
#define SKULD_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum { BUF_OK = 0, BUF_TOOBIG = -1, BUF_NOMEM = -2 } buf_status_t;

typedef struct buf {
    char *mem;    /* allocation */
    size_t start; /* first unconsumed byte */
    size_t len;   /* unconsumed bytes */
    size_t alloc; /* bytes allocated in mem */
    size_t cap;   /* hard limit on len; 0 = none */
} buf_t;

void buf_init(buf_t *b, size_t cap);
void buf_free(buf_t *b);
void buf_reset(buf_t *b);

static inline char *buf_data(const buf_t *b)
{
    return b->mem ? b->mem + b->start : (char *)"";
}

/* Room for n more bytes at the end, under the cap (n < alloc: no overflow). */
static inline int buf__has_room(const buf_t *b, size_t n)
{
    return n < b->alloc && b->start + b->len + n < b->alloc &&
           (!b->cap || (n <= b->cap && b->len <= b->cap - n));
}
char *buf__reserve_slow(buf_t *b, size_t n, buf_status_t *st);
buf_status_t buf__append_slow(buf_t *b, const void *p, size_t n);

/* Append n bytes; BUF_TOOBIG past the cap (contents unchanged). Inline: the request
 * path makes ~100 small appends per request, and the call cost more than the copy. */
static inline buf_status_t buf_append(buf_t *b, const void *p, size_t n)
{
    if (!buf__has_room(b, n)) return buf__append_slow(b, p, n);
    char *w = b->mem + b->start + b->len;
    if (n) memcpy(w, p, n);
    b->len += n;
    w[n] = '\0';
    return BUF_OK;
}
/* Decimal text of v / of a signed v, without printf (hot paths). */
buf_status_t buf_append_u64(buf_t *b, uint64_t v);
buf_status_t buf_append_i64(buf_t *b, int64_t v);
/* The decimal text of v into out (at least BUF_U64_DIGITS bytes), NUL-terminated;
 * returns its length. Without printf, for headers on the request path. */
#define BUF_U64_DIGITS 21
size_t buf_fmt_u64(char *out, uint64_t v);
/* v with `decimals` (0..10) digits after the point into out (at least BUF_FIXED_MAX bytes),
 * NUL-terminated; returns its length. The same text as printf("%.*f", decimals, v) for
 * every double (exactly: where its fixed-point arithmetic cannot decide the rounding it
 * asks printf), without printf on the common path (costs in headers and the access log). */
#define BUF_FIXED_MAX 352
size_t buf_fmt_fixed(char *out, double v, int decimals);
/* The 16 lower-case hex digits of v into out (17 bytes), NUL-terminated. */
void buf_fmt_hex64(char out[17], uint64_t v);
/* Inline, so that a literal's length is known where it is appended. */
static inline buf_status_t buf_appends(buf_t *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}
buf_status_t buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
buf_status_t buf_vprintf(buf_t *b, const char *fmt, va_list ap);
/* Ensure room for n more bytes; returns the write pointer or NULL. Commit with buf_commit. */
static inline char *buf_reserve(buf_t *b, size_t n, buf_status_t *st)
{
    if (!buf__has_room(b, n)) return buf__reserve_slow(b, n, st);
    if (st) *st = BUF_OK;
    return b->mem + b->start + b->len;
}
static inline void buf_commit(buf_t *b, size_t n)
{
    b->len += n;
    b->mem[b->start + b->len] = '\0';
}
void buf_consume(buf_t *b, size_t n);
/* Release memory beyond keep bytes when empty (for idle connections). */
void buf_shrink(buf_t *b, size_t keep);
/* Give back what the allocation holds beyond the data (a buffer kept long). */
void buf_fit(buf_t *b);

#endif
