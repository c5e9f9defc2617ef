#include "core/buf.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(buf_t *b, size_t cap)
{
    b->mem = NULL;
    b->start = b->len = b->alloc = 0;
    b->cap = cap;
}

void buf_free(buf_t *b)
{
    free(b->mem);
    b->mem = NULL;
    b->start = b->len = b->alloc = 0;
}

void buf_reset(buf_t *b)
{
    b->start = b->len = 0;
    if (b->mem) b->mem[0] = '\0';
}

/* buf_reserve when the inline check found no room: the cap, compaction, growth. */
char *buf__reserve_slow(buf_t *b, size_t n, buf_status_t *st)
{
    if (b->cap && (n > b->cap || b->len > b->cap - n)) {
        if (st) *st = BUF_TOOBIG;
        return NULL;
    }
    if (n > SIZE_MAX / 2 - b->len) { /* also guards the doubling below */
        if (st) *st = BUF_NOMEM;
        return NULL;
    }
    size_t need = b->len + n + 1;
    if (b->start && b->start + need > b->alloc) {
        memmove(b->mem, b->mem + b->start, b->len);
        b->start = 0;
    }
    if (b->start + need > b->alloc) {
        size_t na = b->alloc ? b->alloc : 256;
        while (na < need) na *= 2;
        char *m = realloc(b->mem, na);
        if (!m) {
            if (st) *st = BUF_NOMEM;
            return NULL;
        }
        b->mem = m;
        b->alloc = na;
    }
    if (st) *st = BUF_OK;
    return b->mem + b->start + b->len;
}

buf_status_t buf__append_slow(buf_t *b, const void *p, size_t n)
{
    buf_status_t st;
    char *w = buf__reserve_slow(b, n, &st);
    if (!w) return st;
    if (n) memcpy(w, p, n);
    buf_commit(b, n);
    return BUF_OK;
}

size_t buf_fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do tmp[sizeof tmp - ++n] = (char)('0' + v % 10);
    while ((v /= 10));
    memcpy(out, tmp + sizeof tmp - n, n);
    out[n] = '\0';
    return n;
}

size_t buf_fmt_fixed(char *out, double v, int decimals)
{
    static const long double pow10[11] = {1e0L, 1e1L, 1e2L, 1e3L, 1e4L, 1e5L,
                                          1e6L, 1e7L, 1e8L, 1e9L, 1e10L};
    if (decimals < 0) decimals = 0;
    if (decimals > 10) decimals = 10;
    /* v * 10^d in x87 extended precision (64-bit mantissa): below 2^40 its error is under
     * 2^-24, so unless the fraction is within 1e-5 of one half, rounding it to nearest
     * gives printf's digits; anything else (negative, huge, NaN, near a tie) goes to printf. */
    long double x = (long double)v * pow10[decimals];
    if (signbit(v) || !(x < 1099511627776.0L)) /* 2^40; also false for NaN */
        return (size_t)snprintf(out, BUF_FIXED_MAX, "%.*f", decimals, v);
    long double whole = floorl(x), frac = x - whole;
    if (frac > 0.49999L && frac < 0.50001L)
        return (size_t)snprintf(out, BUF_FIXED_MAX, "%.*f", decimals, v);
    uint64_t q = (uint64_t)whole + (frac > 0.5L);
    uint64_t p10 = (uint64_t)pow10[decimals];
    size_t n = buf_fmt_u64(out, q / p10);
    if (decimals) {
        uint64_t f = q % p10;
        out[n++] = '.';
        for (int i = decimals - 1; i >= 0; i--, f /= 10) out[n + (size_t)i] = (char)('0' + f % 10);
        n += (size_t)decimals;
        out[n] = '\0';
    }
    return n;
}

void buf_fmt_hex64(char out[17], uint64_t v)
{
    static const char hx[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, v >>= 4) out[i] = hx[v & 15];
    out[16] = '\0';
}

buf_status_t buf_append_u64(buf_t *b, uint64_t v)
{
    char tmp[BUF_U64_DIGITS];
    return buf_append(b, tmp, buf_fmt_u64(tmp, v));
}

buf_status_t buf_append_i64(buf_t *b, int64_t v)
{
    if (v >= 0) return buf_append_u64(b, (uint64_t)v);
    buf_status_t st = buf_append(b, "-", 1);
    return st != BUF_OK ? st : buf_append_u64(b, (uint64_t)0 - (uint64_t)v);
}

buf_status_t buf_vprintf(buf_t *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0) return BUF_NOMEM;
    buf_status_t st;
    char *w = buf_reserve(b, (size_t)n, &st);
    if (!w) return st;
    vsnprintf(w, (size_t)n + 1, fmt, ap);
    buf_commit(b, (size_t)n);
    return BUF_OK;
}

buf_status_t buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_status_t st = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return st;
}

void buf_consume(buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->start = b->len = 0;
        if (b->mem) b->mem[0] = '\0';
        return;
    }
    b->start += n;
    b->len -= n;
}

void buf_shrink(buf_t *b, size_t keep)
{
    if (b->len == 0 && b->alloc > keep) {
        free(b->mem);
        b->mem = NULL;
        b->alloc = b->start = 0;
    }
}

void buf_fit(buf_t *b)
{
    if (!b->mem || b->start + b->len + 1 == b->alloc) return;
    if (b->start) memmove(b->mem, b->mem + b->start, b->len);
    b->start = 0;
    char *m = realloc(b->mem, b->len + 1);
    if (m) {
        b->mem = m;
        b->alloc = b->len + 1;
    }
}
