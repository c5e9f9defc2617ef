/*
 * cache lru — see lru.h.
 */
#include "cache/lru.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---------- blob ---------- */

static void put_u32(buf_t *o, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    buf_append(o, b, 4);
}

static void put_i64(buf_t *o, long v)
{
    uint64_t u = (uint64_t)(int64_t)v;
    put_u32(o, (uint32_t)(u >> 32));
    put_u32(o, (uint32_t)u);
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static long get_i64(const unsigned char *p)
{
    return (long)(int64_t)((uint64_t)get_u32(p) << 32 | get_u32(p + 4));
}

void cache_blob_head(buf_t *out, int status, bool stream, const char *ctype, long ptok, long ctok,
                     long cached, const char *hdrs, size_t hdrs_len)
{
    size_t cl = ctype ? strlen(ctype) : 0;
    if (cl > 255) cl = 255;
    unsigned char h[8] = {'S',
                          'K',
                          'C',
                          '1',
                          (unsigned char)(status >> 8),
                          (unsigned char)status,
                          stream ? 1 : 0,
                          (unsigned char)cl};
    buf_append(out, h, 8);
    buf_append(out, ctype, cl);
    put_i64(out, ptok);
    put_i64(out, ctok);
    put_i64(out, cached);
    put_u32(out, (uint32_t)hdrs_len);
    buf_append(out, hdrs, hdrs_len);
}

void cache_blob_frame(buf_t *out, const void *data, size_t len)
{
    put_u32(out, (uint32_t)len);
    buf_append(out, data, len);
}

/* Text a header value may hold: no CR, LF or NUL (nothing a replay could
 * turn into another header line). */
static bool blob_text_ok(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0') return false;
    return true;
}

/* Header lines as cache.c records them: "Name: value\r\n", Name a token. */
static bool blob_hdrs_ok(const unsigned char *p, size_t n)
{
    const unsigned char *end = p + n;
    while (p < end) {
        const unsigned char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol || eol == p || eol[-1] != '\r') return false;
        const unsigned char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p) return false;
        for (const unsigned char *q = p; q < colon; q++)
            if (*q <= ' ' || *q >= 127 || strchr("\"(),/:;<=>?@[\\]{}", *q)) return false;
        if (!blob_text_ok(colon + 1, (size_t)(eol - 1 - (colon + 1)))) return false;
        p = eol + 1;
    }
    return true;
}

int cache_blob_parse(const void *blob, size_t len, cache_view_t *v)
{
    const unsigned char *p = blob, *end = p + len;
    if (len < 8 || memcmp(p, "SKC1", 4) != 0) return -1;
    v->status = p[4] << 8 | p[5];
    v->stream = p[6] != 0;
    size_t cl = p[7];
    p += 8;
    if (v->status < 200 || v->status > 299) return -1; /* only successful answers are stored */
    if ((size_t)(end - p) < cl + 24 + 4 || !blob_text_ok(p, cl)) return -1;
    memcpy(v->ctype, p, cl);
    v->ctype[cl] = '\0';
    p += cl;
    v->prompt_tokens = get_i64(p);
    v->completion_tokens = get_i64(p + 8);
    v->cached_tokens = get_i64(p + 16);
    p += 24;
    size_t hl = get_u32(p);
    p += 4;
    if ((size_t)(end - p) < hl || !blob_hdrs_ok(p, hl)) return -1;
    v->hdrs = (const char *)p;
    v->hdrs_len = hl;
    p += hl;
    v->frames = p;
    v->frames_len = (size_t)(end - p);
    /* every frame length must fit */
    size_t pos = 0;
    const char *d;
    size_t n;
    while (cache_view_next(v, &pos, &d, &n)) {
    }
    return pos == v->frames_len ? 0 : -1;
}

bool cache_view_next(const cache_view_t *v, size_t *pos, const char **data, size_t *len)
{
    if (*pos + 4 > v->frames_len) return false;
    size_t n = get_u32(v->frames + *pos);
    if (n > v->frames_len - *pos - 4) return false;
    *data = (const char *)v->frames + *pos + 4;
    *len = n;
    *pos += 4 + n;
    return true;
}

/* ---------- entries ---------- */

cache_entry_t *cache_entry_new(cache_key_t key, int64_t expires_ms, int origin, const void *blob,
                               size_t len)
{
    cache_entry_t *e = malloc(sizeof *e + len);
    if (!e) return NULL;
    memset(e, 0, sizeof *e);
    e->key = key;
    e->expires_ms = expires_ms;
    e->origin = origin;
    e->len = len;
    atomic_init(&e->refs, 1);
    memcpy(e->blob, blob, len);
    return e;
}

cache_entry_t *cache_entry_ref(cache_entry_t *e)
{
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    return e;
}

void cache_entry_unref(cache_entry_t *e)
{
    if (e && atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1) free(e);
}

size_t cache_entry_cost(const cache_entry_t *e)
{
    return sizeof *e + e->len;
}

/* ---------- sharded LRU ---------- */

typedef struct lru_shard {
    pthread_mutex_t mu;
    cache_entry_t **tab;
    size_t nbuckets, count, bytes, cap;
    size_t charged; /* bytes other holders keep against this cap (cache_lru_charge), in bytes */
    cache_entry_t *head, *tail; /* head = most recent */
    uint64_t evictions, expirations;
} lru_shard_t;

struct cache_lru {
    unsigned n;
    lru_shard_t *s;
};

cache_lru_t *cache_lru_new(size_t max_bytes, unsigned shards)
{
    if (shards == 0) shards = 1;
    cache_lru_t *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->n = shards;
    l->s = calloc(shards, sizeof *l->s);
    if (!l->s) {
        free(l);
        return NULL;
    }
    for (unsigned i = 0; i < shards; i++) {
        pthread_mutex_init(&l->s[i].mu, NULL);
        l->s[i].cap = max_bytes / shards;
    }
    return l;
}

static void shard_unlink(lru_shard_t *s, cache_entry_t *e)
{
    size_t b = (size_t)(e->key.lo % s->nbuckets);
    cache_entry_t **pp = &s->tab[b];
    while (*pp && *pp != e) pp = &(*pp)->hnext;
    if (*pp) *pp = e->hnext;
    if (e->prev)
        e->prev->next = e->next;
    else
        s->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->tail = e->prev;
    e->prev = e->next = e->hnext = NULL;
    e->linked = false;
    s->count--;
    s->bytes -= cache_entry_cost(e);
    cache_entry_unref(e);
}

static void shard_clear(lru_shard_t *s)
{
    while (s->head) shard_unlink(s, s->head);
}

void cache_lru_free(cache_lru_t *l)
{
    if (!l) return;
    for (unsigned i = 0; i < l->n; i++) {
        shard_clear(&l->s[i]);
        free(l->s[i].tab);
        pthread_mutex_destroy(&l->s[i].mu);
    }
    free(l->s);
    free(l);
}

static lru_shard_t *shard_of(cache_lru_t *l, cache_key_t k)
{
    return &l->s[(k.hi >> 32) % l->n];
}

static cache_entry_t *shard_find(lru_shard_t *s, cache_key_t k)
{
    if (!s->nbuckets) return NULL;
    for (cache_entry_t *e = s->tab[k.lo % s->nbuckets]; e; e = e->hnext)
        if (e->key.hi == k.hi && e->key.lo == k.lo) return e;
    return NULL;
}

static void shard_to_front(lru_shard_t *s, cache_entry_t *e)
{
    if (s->head == e) return;
    e->prev->next = e->next; /* e is not head, so prev != NULL */
    if (e->next)
        e->next->prev = e->prev;
    else
        s->tail = e->prev;
    e->prev = NULL;
    e->next = s->head;
    s->head->prev = e;
    s->head = e;
}

cache_entry_t *cache_lru_get(cache_lru_t *l, cache_key_t key, int64_t now_ms)
{
    lru_shard_t *s = shard_of(l, key);
    pthread_mutex_lock(&s->mu);
    cache_entry_t *e = shard_find(s, key);
    if (e && e->expires_ms <= now_ms) {
        s->expirations++;
        shard_unlink(s, e);
        e = NULL;
    }
    if (e) {
        shard_to_front(s, e);
        cache_entry_ref(e);
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

static int shard_grow(lru_shard_t *s)
{
    size_t nb = s->nbuckets ? s->nbuckets * 2 : 256;
    cache_entry_t **tab = calloc(nb, sizeof *tab);
    if (!tab) return -1;
    for (size_t i = 0; i < s->nbuckets; i++) {
        cache_entry_t *e = s->tab[i], *next;
        for (; e; e = next) {
            next = e->hnext;
            size_t b = (size_t)(e->key.lo % nb);
            e->hnext = tab[b];
            tab[b] = e;
        }
    }
    free(s->tab);
    s->tab = tab;
    s->nbuckets = nb;
    return 0;
}

void cache_lru_put(cache_lru_t *l, cache_entry_t *e, int64_t now_ms)
{
    lru_shard_t *s = shard_of(l, e->key);
    size_t cost = cache_entry_cost(e);
    pthread_mutex_lock(&s->mu);
    if (cost > s->cap || (s->count + 1 > s->nbuckets && shard_grow(s) < 0)) {
        pthread_mutex_unlock(&s->mu);
        cache_entry_unref(e);
        return;
    }
    cache_entry_t *old = shard_find(s, e->key);
    if (old) shard_unlink(s, old);
    /* expired entries at the tail go first, then the least recently used */
    while (s->tail && s->tail->expires_ms <= now_ms) {
        s->expirations++;
        shard_unlink(s, s->tail);
    }
    while (s->tail && s->bytes + cost > s->cap) {
        s->evictions++;
        shard_unlink(s, s->tail);
    }
    if (s->bytes + cost > s->cap) { /* what others hold leaves no room */
        pthread_mutex_unlock(&s->mu);
        cache_entry_unref(e);
        return;
    }
    size_t b = (size_t)(e->key.lo % s->nbuckets);
    e->hnext = s->tab[b];
    s->tab[b] = e;
    e->prev = NULL;
    e->next = s->head;
    if (s->head) s->head->prev = e;
    s->head = e;
    if (!s->tail) s->tail = e;
    e->linked = true;
    s->count++;
    s->bytes += cost;
    pthread_mutex_unlock(&s->mu);
}

bool cache_lru_charge(cache_lru_t *l, cache_key_t key, size_t bytes, int64_t now_ms)
{
    lru_shard_t *s = shard_of(l, key);
    pthread_mutex_lock(&s->mu);
    bool ok = bytes <= s->cap;
    while (ok && s->tail && s->tail->expires_ms <= now_ms) {
        s->expirations++;
        shard_unlink(s, s->tail);
    }
    while (ok && s->tail && s->bytes + bytes > s->cap) {
        s->evictions++;
        shard_unlink(s, s->tail);
    }
    ok = ok && s->bytes + bytes <= s->cap;
    if (ok) {
        s->bytes += bytes;
        s->charged += bytes;
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

void cache_lru_uncharge(cache_lru_t *l, cache_key_t key, size_t bytes)
{
    lru_shard_t *s = shard_of(l, key);
    pthread_mutex_lock(&s->mu);
    size_t n = bytes < s->charged ? bytes : s->charged;
    s->charged -= n;
    s->bytes -= n;
    pthread_mutex_unlock(&s->mu);
}

size_t cache_lru_purge(cache_lru_t *l)
{
    size_t n = 0;
    for (unsigned i = 0; i < l->n; i++) {
        pthread_mutex_lock(&l->s[i].mu);
        n += l->s[i].count;
        shard_clear(&l->s[i]);
        pthread_mutex_unlock(&l->s[i].mu);
    }
    return n;
}

void cache_lru_stats(cache_lru_t *l, cache_lru_stats_t *out)
{
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < l->n; i++) {
        pthread_mutex_lock(&l->s[i].mu);
        out->bytes += l->s[i].bytes;
        out->entries += l->s[i].count;
        out->evictions += l->s[i].evictions;
        out->expirations += l->s[i].expirations;
        pthread_mutex_unlock(&l->s[i].mu);
    }
}
