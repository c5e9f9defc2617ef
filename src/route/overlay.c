/*
 * route overlay — see overlay.h. An overlay is an open-addressing table
 * keyed by deployment id (XXH3), sized at twice the entries it may hold.
 */
#include "route/overlay.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/jsonw.h"

typedef struct ov_entry {
    char *id; /* NULL: empty slot */
    uint64_t h;
    double weight;
} ov_entry_t;

struct route_overlay {
    int refs; /* under ov_mu once published */
    size_t n, cap, mask;
    ov_entry_t slots[];
};

static pthread_mutex_t ov_mu = PTHREAD_MUTEX_INITIALIZER;
static route_overlay_t *ov_cur; /* ov_mu */
static _Atomic uint64_t ov_gen;
static _Thread_local route_overlay_t *ov_mine; /* this thread's reference */
static _Thread_local uint64_t ov_mine_gen;

route_overlay_t *route_overlay_new(size_t n)
{
    size_t slots = 8;
    while (slots < 2 * n) slots *= 2;
    route_overlay_t *o = calloc(1, sizeof *o + slots * sizeof(ov_entry_t));
    if (!o) return NULL;
    o->cap = n;
    o->mask = slots - 1;
    return o;
}

static void ov_free(route_overlay_t *o)
{
    if (!o) return;
    for (size_t i = 0; i <= o->mask; i++) free(o->slots[i].id);
    free(o);
}

void route_overlay_discard(route_overlay_t *o)
{
    ov_free(o);
}

int route_overlay_set(route_overlay_t *o, const char *id, double weight)
{
    if (!o || !id || !(weight >= 0) || !(weight <= ROUTE_OVERLAY_MAX_WEIGHT)) return -1;
    uint64_t h = XXH3_64bits(id, strlen(id));
    for (size_t i = h & o->mask;; i = (i + 1) & o->mask) {
        ov_entry_t *e = &o->slots[i];
        if (e->id && e->h == h && strcmp(e->id, id) == 0) {
            e->weight = weight;
            return 0;
        }
        if (!e->id) {
            if (o->n >= o->cap || !(e->id = strdup(id))) return -1;
            e->h = h;
            e->weight = weight;
            o->n++;
            return 0;
        }
    }
}

static bool ov_lookup(const route_overlay_t *o, const char *id, double *w)
{
    uint64_t h = XXH3_64bits(id, strlen(id));
    for (size_t i = h & o->mask;; i = (i + 1) & o->mask) {
        const ov_entry_t *e = &o->slots[i];
        if (!e->id) return false;
        if (e->h == h && strcmp(e->id, id) == 0) {
            *w = e->weight;
            return true;
        }
    }
}

/* ov_mu held. */
static void ov_unref_locked(route_overlay_t *o)
{
    if (o && --o->refs == 0) ov_free(o);
}

uint64_t route_overlay_publish(route_overlay_t *o)
{
    pthread_mutex_lock(&ov_mu);
    route_overlay_t *old = ov_cur;
    if (o) o->refs = 1; /* the table's own */
    ov_cur = o;
    uint64_t g = atomic_fetch_add_explicit(&ov_gen, 1, memory_order_release) + 1;
    ov_unref_locked(old);
    pthread_mutex_unlock(&ov_mu);
    return g;
}

uint64_t route_overlay_generation(void)
{
    return atomic_load_explicit(&ov_gen, memory_order_acquire);
}

/* This thread's view of the current overlay (NULL: none). */
static const route_overlay_t *ov_get(void)
{
    if (atomic_load_explicit(&ov_gen, memory_order_acquire) == ov_mine_gen) return ov_mine;
    pthread_mutex_lock(&ov_mu);
    ov_unref_locked(ov_mine);
    ov_mine = ov_cur;
    if (ov_mine) ov_mine->refs++;
    ov_mine_gen = atomic_load_explicit(&ov_gen, memory_order_relaxed);
    pthread_mutex_unlock(&ov_mu);
    return ov_mine;
}

double route_weight(const cfg_model_t *m)
{
    const route_overlay_t *o = ov_get();
    double w;
    if (o && m->id && ov_lookup(o, m->id, &w)) return w;
    return (double)m->weight;
}

void route_overlay_thread_release(void)
{
    pthread_mutex_lock(&ov_mu);
    ov_unref_locked(ov_mine);
    ov_mine = NULL;
    ov_mine_gen = 0;
    pthread_mutex_unlock(&ov_mu);
}

uint64_t route_overlay_json(buf_t *o)
{
    pthread_mutex_lock(&ov_mu);
    uint64_t g = atomic_load_explicit(&ov_gen, memory_order_relaxed);
    buf_appends(o, "{");
    size_t k = 0;
    for (size_t i = 0; ov_cur && i <= ov_cur->mask; i++) {
        const ov_entry_t *e = &ov_cur->slots[i];
        if (!e->id) continue;
        buf_appends(o, k++ ? "," : "");
        jsonw_cstr(o, e->id);
        buf_printf(o, ":%.17g", e->weight);
    }
    buf_appends(o, "}");
    pthread_mutex_unlock(&ov_mu);
    return g;
}
