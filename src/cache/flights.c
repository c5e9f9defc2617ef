/*
 * cache flights — the table of identical requests in progress and, for
 * cache.dedupe.window after they finish, their results (cache_internal.h).
 * A shard's mutex guards its chains and its window queue; a flight is
 * referenced by the table, the queue, its leader and each joiner.
 */
#include <stdlib.h>

#include "cache/cache_internal.h"
#include "core/log.h"

cache_flight_t *fl__new(cache_key_t key, int shape, size_t max, size_t max_entry)
{
    cache_flight_t *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->key = key;
    f->shape = shape;
    f->max_entry = max_entry;
    atomic_init(&f->refs, 1);
    pthread_mutex_init(&f->mu, NULL);
    buf_init(&f->hdrs, 64 * 1024);
    buf_init(&f->frames, max);
    f->ptok = f->ctok = f->cached = -1;
    return f;
}

void fl__unref(cache_flight_t *f)
{
    if (!f || atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1) return;
    if (f->charged && cache__g.mem) cache_lru_uncharge(cache__g.mem, f->key, f->charged);
    buf_free(&f->hdrs);
    buf_free(&f->frames);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

fl_shard_t *fl__shard(cache_key_t k)
{
    return &cache__g.fl[(k.hi >> 40) % FL_SHARDS];
}

size_t fl__bucket(cache_key_t k)
{
    return (size_t)(k.lo % FL_BUCKETS);
}

/* Shard lock held: unlink f from the table (drops the table's reference
 * into *drop for the caller to release after unlocking). */
void fl__unlink_locked(fl_shard_t *s, cache_flight_t *f, cache_flight_t **drop)
{
    if (!f->in_table) return;
    cache_flight_t **pp = &s->tab[fl__bucket(f->key)];
    while (*pp && *pp != f) pp = &(*pp)->hnext;
    if (*pp) *pp = f->hnext;
    f->hnext = NULL;
    f->in_table = false;
    *drop = f;
}

/* Shard lock held: retire window flights whose time is up. Returns a chain
 * (through qnext) of references to drop after unlocking. */
cache_flight_t *fl__expire_locked(fl_shard_t *s, int64_t now)
{
    cache_flight_t *dropq = NULL;
    while (s->qhead && s->qhead->until_ms <= now) {
        cache_flight_t *f = s->qhead;
        s->qhead = f->qnext;
        if (!s->qhead) s->qtail = NULL;
        cache_flight_t *d = NULL;
        fl__unlink_locked(s, f, &d);
        if (d) fl__unref(d); /* the table's reference; the queue's is still held */
        f->qnext = dropq;
        dropq = f;
    }
    return dropq;
}

void fl__drop_chain(cache_flight_t *f)
{
    while (f) {
        cache_flight_t *next = f->qnext;
        fl__unref(f);
        f = next;
    }
}

cache_flight_t *fl__find_locked(fl_shard_t *s, cache_key_t k)
{
    for (cache_flight_t *f = s->tab[fl__bucket(k)]; f; f = f->hnext)
        if (f->key.hi == k.hi && f->key.lo == k.lo) return f;
    return NULL;
}

/* Take f out of the table (new arrivals will not find it). */
void fl__remove(cache_flight_t *f)
{
    fl_shard_t *s = fl__shard(f->key);
    cache_flight_t *d = NULL;
    pthread_mutex_lock(&s->mu);
    fl__unlink_locked(s, f, &d);
    pthread_mutex_unlock(&s->mu);
    if (d) fl__unref(d);
}

/* A finished flight serves its result until f->until_ms, then leaves the table. */
void fl__retire(cache_flight_t *f)
{
    fl_shard_t *s = fl__shard(f->key);
    pthread_mutex_lock(&s->mu);
    if (f->in_table) {
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed); /* the queue's */
        f->qnext = NULL;
        if (s->qtail)
            s->qtail->qnext = f;
        else
            s->qhead = f;
        s->qtail = f;
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---------- replaying to a client ---------- */

bool fl__charge(cache_flight_t *f)
{
    if (!cache__g.mem) return false;
    buf_fit(&f->frames); /* kept for the window: no slack from doubling */
    buf_fit(&f->hdrs);
    size_t bytes = sizeof *f + f->frames.alloc + f->hdrs.alloc;
    if (!cache_lru_charge(cache__g.mem, f->key, bytes, (int64_t)time_wall_ms())) return false;
    f->charged = bytes;
    return true;
}
