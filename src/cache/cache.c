/*
 * cache — the response cache and in-flight de-duplication; design in cache.h.
 *
 * Objects:
 *   cache_flight_t  one upstream call and what its client was sent, shared
 *                   by the leader (which records into it through the http
 *                   tap) and its joiners. malloc'd, reference counted
 *                   (atomic): the leader's tap, the flight table, the window
 *                   queue and each joiner hold one. Its mutex guards state,
 *                   frames, headers and the joiner list. Frames only grow
 *                   while the flight runs and never change after, so a
 *                   joiner keeps a byte offset into them.
 *   cache_joiner_t  a request waiting on someone else's flight. malloc'd;
 *                   references: its owner (until it answers, leaves, or
 *                   re-dispatches) plus one per pending pump (loopcall).
 *   cache_req_t     the leader's per-request state, in its request arena;
 *                   reachable from req->tap_ud while the tap is set.
 *
 * Lock order: flight-table shard, then flight. Nothing else nests.
 */
#include "cache/cache.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache/key.h"
#include "cache/lru.h"
#include "cache/redis.h"
#include "core/log.h"
#include "core/loopcall.h"
#include "config/cost.h"
#include "store/store.h"

#include "cache/cache_internal.h"

static bool hdr_skip(const char *name, size_t n)
{
    static const char *const skip[] = {"x-request-id",     "x-skuld-cache", "x-skuld-cache-source",
                                       "x-skuld-cost-usd", "content-type",  "content-length"};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (strlen(skip[i]) == n && strncasecmp(name, skip[i], n) == 0) return true;
    return false;
}

/* Copy the replayable lines of a "Name: value\r\n" block. */
static void hdrs_filter(buf_t *out, const char *h, size_t len)
{
    const char *p = h, *end = h + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *next = eol ? eol + 1 : end;
        const char *colon = memchr(p, ':', (size_t)(next - p));
        if (colon && !hdr_skip(p, (size_t)(colon - p))) buf_append(out, p, (size_t)(next - p));
        p = next;
    }
}

static void hdrs_replay(pl_req_t *req, const char *h, size_t len)
{
    const char *p = h, *end = h + len;
    char name[128], value[1024];
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *next = eol ? eol + 1 : end;
        const char *colon = memchr(p, ':', (size_t)(next - p));
        if (colon && (size_t)(colon - p) < sizeof name) {
            size_t nl = (size_t)(colon - p);
            memcpy(name, p, nl);
            name[nl] = '\0';
            const char *v = colon + 1;
            while (v < next && *v == ' ') v++;
            const char *ve = next;
            while (ve > v && (ve[-1] == '\n' || ve[-1] == '\r')) ve--;
            size_t vl = (size_t)(ve - v);
            if (vl < sizeof value && !hdr_skip(name, nl)) {
                memcpy(value, v, vl);
                value[vl] = '\0';
                pl_header(req, name, value);
            }
        }
        p = next;
    }
}

static void count_saved(pl_req_t *c, long ptok, long cached, long ctok)
{
    cache__cnt(&cache__g.saved_calls);
    if (!c->model || (ptok <= 0 && ctok <= 0)) return;
    double usd = cost_usd(&c->model->price, ptok, cached, ctok);
    if (usd > 0)
        atomic_fetch_add_explicit(&cache__g.saved_nanousd, (uint_fast64_t)(usd * 1e9 + 0.5),
                                  memory_order_relaxed);
}

/* The request's cache outcome: the x-skuld-cache response header and the
 * access log's "cache" field. */
static void cache_mark(pl_req_t *c, const char *outcome)
{
    c->cache_status = outcome;
    pl_header(c, "x-skuld-cache", outcome);
}

static void release_entry(void *e)
{
    cache_entry_unref(e);
}

/* Answer c with a stored blob: a whole answer, or a stream replayed now.
 * e (may be NULL) holds v's bytes: it is kept until the answer is out;
 * without it a whole answer is copied. */
static pl_rc_t serve_view(pl_req_t *c, const cache_view_t *v, int src, cache_entry_t *e)
{
    cache__cnt(&cache__g.hits[src]);
    count_saved(c, v->prompt_tokens, v->cached_tokens, v->completion_tokens);
    hdrs_replay(c, v->hdrs, v->hdrs_len);
    cache_mark(c, "hit");
    pl_header(c, "x-skuld-cache-source", cache__src_name[src]);
    size_t pos = 0;
    const char *d;
    size_t n;
    const char *ctype = v->ctype[0] ? arena_strdup(c->arena, v->ctype) : NULL;
    if (!v->stream) {
        if (!cache_view_next(v, &pos, &d, &n)) {
            d = "";
            n = 0;
        }
        if (e) cache_entry_ref(e);
        return pl_replay(c, v->status, ctype ? ctype : "application/json", d, n,
                         e ? release_entry : NULL, e);
    }
    pl_replay_start(c, v->status, ctype ? ctype : "text/event-stream");
    while (cache_view_next(v, &pos, &d, &n))
        if (pl_replay_frame(c, d, n) != 0) break;
    return PL_DONE;
}

static pl_rc_t serve_entry(pl_req_t *c, cache_entry_t *e, int src)
{
    cache_view_t v;
    if (cache_blob_parse(e->blob, e->len, &v) == 0) return serve_view(c, &v, src, e);
    return pl_fail(c, 500, NULL, "cache_corrupt", NULL, "a cache entry could not be read");
}

/* ---------- joiners ---------- */

static void joiner_unref(cache_joiner_t *j)
{
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) != 1) return;
    fl__unref(j->f);
    free(j);
}

/* Flight lock held. */
static void joiner_unlink_locked(cache_flight_t *f, cache_joiner_t *j)
{
    cache_joiner_t **pp = &f->joiners;
    while (*pp && *pp != j) pp = &(*pp)->next;
    if (*pp) {
        *pp = j->next;
        f->n_joiners--;
    }
    j->next = NULL;
}

static void joiner_pump(void *arg);

/* Flight lock held: make every joiner look at the flight again, on its loop. */
static void flight_notify_locked(cache_flight_t *f)
{
    for (cache_joiner_t *j = f->joiners; j; j = j->next) {
        if (j->pump_pending) continue;
        j->pump_pending = true;
        atomic_fetch_add_explicit(&j->refs, 1, memory_order_relaxed);
        if (loopcall(j->base, joiner_pump, j) != 0) {
            j->pump_pending = false;
            atomic_fetch_sub_explicit(&j->refs, 1, memory_order_relaxed);
        }
    }
}

static void joiner_abort(pl_req_t *req);
static void joiner_drain(pl_req_t *req);
static void cache_dispatch_again(cache_joiner_t *j);

static void release_flight(void *f)
{
    fl__unref(f);
}

/* On the joiner's loop: deliver whatever the flight has that j has not seen. */
static void joiner_deliver(cache_joiner_t *j)
{
    cache_flight_t *f = j->f;
    pl_req_t *c = j->c;
    if (!c) return;
    pthread_mutex_lock(&f->mu);
    if (f->state == F_ORPHANED && !j->started) {
        joiner_unlink_locked(f, j);
        pthread_mutex_unlock(&f->mu);
        cache_dispatch_again(j);
        return;
    }
    bool finished = f->state != F_RUNNING;
    if (f->stream_started) {
        if (!j->started) {
            j->started = true;
            hdrs_replay(c, buf_data(&f->hdrs), f->hdrs.len);
            cache_mark(c, "hit");
            pl_header(c, "x-skuld-cache-source", cache__src_name[j->src]);
            pl_replay_start(c, f->status, arena_strdup(c->arena, f->ctype));
        }
        cache_view_t v = {.frames = (const unsigned char *)buf_data(&f->frames),
                          .frames_len = f->frames.len};
        size_t pos = j->sent;
        const char *d;
        size_t n;
        bool blocked = false;
        while (!(blocked = pl_out_pending(c) > PL_OUT_HIGH_WATER) &&
               cache_view_next(&v, &pos, &d, &n)) {
            pl_replay_frame(c, d, n);
            j->sent = pos;
        }
        if (blocked) { /* a slow reader: go on when its queue drains */
            c->on_drain = joiner_drain;
            pthread_mutex_unlock(&f->mu);
            return;
        }
        c->on_drain = NULL;
        if (!finished) {
            pthread_mutex_unlock(&f->mu);
            return;
        }
        pl_rc_t rc = PL_DONE;
        if (f->state == F_ORPHANED || (f->state == F_FAILED && f->overflow)) {
            rc =
                pl_stream_fail(c, "upstream_stream_error",
                               f->state == F_ORPHANED ? "the shared upstream call was cancelled"
                                                      : "the shared answer was too large to relay");
            c->error = "shared upstream call failed";
        } else if (f->state == F_FAILED) {
            c->error = "shared upstream call failed";
        }
        joiner_unlink_locked(f, j);
        long pt = f->ptok, ct = f->ctok, ca = f->cached;
        int st = f->state;
        pthread_mutex_unlock(&f->mu);
        if (st == F_DONE) count_saved(c, pt, ca, ct);
        c->on_abort = NULL;
        j->c = NULL;
        pl_resume(c, rc);
        joiner_unref(j);
        return;
    }
    if (!finished) {
        pthread_mutex_unlock(&f->mu);
        return;
    }
    /* a whole answer (or an error) */
    joiner_unlink_locked(f, j);
    cache_view_t v = {.frames = (const unsigned char *)buf_data(&f->frames),
                      .frames_len = f->frames.len};
    size_t pos = 0;
    const char *d = NULL;
    size_t n = 0;
    bool have = cache_view_next(&v, &pos, &d, &n);
    c->on_abort = NULL;
    j->c = NULL;
    pl_rc_t rc;
    if (f->state == F_DONE || (f->state == F_FAILED && have)) {
        hdrs_replay(c, buf_data(&f->hdrs), f->hdrs.len);
        cache_mark(c, "hit");
        pl_header(c, "x-skuld-cache-source", cache__src_name[j->src]);
        if (f->state == F_DONE)
            count_saved(c, f->ptok, f->cached, f->ctok);
        else
            c->error = "shared upstream call failed";
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed); /* until answered */
        rc = pl_replay(c, f->status,
                       arena_strdup(c->arena, f->ctype[0] ? f->ctype : "application/json"),
                       have ? d : "", have ? n : 0, release_flight, f);
    } else {
        c->error = "shared upstream call failed";
        cache_mark(c, "hit");
        rc = pl_fail(c, 502, NULL, "upstream_error", NULL,
                     "the shared upstream call failed before an answer");
    }
    pthread_mutex_unlock(&f->mu);
    pl_resume(c, rc);
    joiner_unref(j);
}

static void joiner_drain(pl_req_t *c)
{
    joiner_deliver(c->wait_ud);
}

static void joiner_pump(void *arg)
{
    cache_joiner_t *j = arg;
    pthread_mutex_lock(&j->f->mu);
    j->pump_pending = false;
    pthread_mutex_unlock(&j->f->mu);
    joiner_deliver(j);
    joiner_unref(j);
}

static void joiner_abort(pl_req_t *c)
{
    cache_joiner_t *j = c->wait_ud;
    pthread_mutex_lock(&j->f->mu);
    joiner_unlink_locked(j->f, j);
    pthread_mutex_unlock(&j->f->mu);
    j->c = NULL;
    joiner_unref(j);
}

/* ---------- the leader ---------- */

typedef struct cache_wait cache_wait_t;

typedef struct cache_req {
    pl_req_t *c;
    cache_key_t key;
    cache_flight_t *f; /* recording (and, when registered, shared) */
    bool registered;
    bool store; /* store a complete answer in the tiers */
    bool redis; /* Redis tier in use for this request */
    uint64_t ttl_ms, window_ms;
    cache_wait_t *wait; /* the Redis lookup in progress */
} cache_req_t;

struct cache_wait {
    cache_req_t *cr; /* NULL once the leader left */
};

static bool frame_is_error(const char *d, size_t n)
{
    return (n >= 15 && memcmp(d, "data: {\"error\"", 14) == 0) ||
           (n >= 12 && memcmp(d, "event: error", 12) == 0);
}

/* A stream is complete when its last frame ends it and no frame is an error. */
static bool stream_complete(const cache_flight_t *f)
{
    cache_view_t v = {.frames = (const unsigned char *)buf_data(&f->frames),
                      .frames_len = f->frames.len};
    size_t pos = 0;
    const char *d, *last = NULL;
    size_t n, last_n = 0;
    while (cache_view_next(&v, &pos, &d, &n)) {
        if (frame_is_error(d, n)) return false;
        last = d;
        last_n = n;
    }
    if (!last) return false;
    return (last_n >= 12 && memmem(last, last_n, "data: [DONE]", 12)) ||
           memmem(last, last_n, "event: message_stop", 19);
}

/* On the store's writer thread: the final outcome of a persistent-tier write
 * (a failed one is retried there first, and counted by the store). */
static void b64_stored(void *ud, int rc, const char *err)
{
    (void)ud;
    (void)err;
    if (rc == 0) cache__cnt(&cache__g.stores[CACHE_TIER_STORE]);
}

static void b64_put(cache_req_t *cr, const char *blob, size_t len, int64_t expires_ms)
{
    size_t out = 4 * ((len + 2) / 3) + 1;
    char *b = malloc(out);
    if (!b) return;
    EVP_EncodeBlock((unsigned char *)b, (const unsigned char *)blob, (int)len);
    char hex[33];
    cache_key_hex(cr->key, hex);
    /* counted once the entry is committed, not when it is queued (issue 26) */
    store_cache_put(cache__g.store, hex, b, expires_ms, NULL, b64_stored, NULL);
    free(b);
}

/* A complete answer: into every tier this request may write. */
static void store_answer(cache_req_t *cr, cache_flight_t *f)
{
    pl_req_t *c = cr->c;
    const config_t *cfg = c->cfg ? c->cfg : c->env->cfg;
    buf_t blob;
    buf_init(&blob, 0);
    cache_blob_head(&blob, f->status, f->stream_started, f->ctype, f->ptok, f->ctok, f->cached,
                    buf_data(&f->hdrs), f->hdrs.len);
    buf_append(&blob, buf_data(&f->frames), f->frames.len);
    if (blob.len <= cfg->cache.max_entry_bytes) {
        int64_t now = (int64_t)time_wall_ms(), exp = now + (int64_t)cr->ttl_ms;
        cache_entry_t *e =
            cache_entry_new(cr->key, exp, CACHE_TIER_MEMORY, buf_data(&blob), blob.len);
        if (e) {
            cache_lru_put(cache__g.mem, e, now);
            cache__cnt(&cache__g.stores[CACHE_TIER_MEMORY]);
        }
        if (cr->redis) {
            cache_redis_set(c->env->base, c->env->id, &cfg->redis, cr->key, buf_data(&blob),
                            blob.len, cr->ttl_ms);
            cache__cnt(&cache__g.stores[CACHE_TIER_REDIS]);
        }
        if (cache__g.store && cfg->cache.persistent) b64_put(cr, buf_data(&blob), blob.len, exp);
    }
    buf_free(&blob);
}

/* The flight's end, made visible in one step. The caller has put a good
 * answer into the memory tier already; then the state and the end of the
 * window change together under f->mu, and the table keeps the flight for the
 * window or drops it. An identical request arriving at any moment finds the
 * answer in the memory tier, or the flight running, or the flight in its
 * window: never a finished flight without a window while the memory tier
 * still misses (which made it call the upstream a second time). */
static void flight_finish(cache_req_t *cr, cache_flight_t *f, int state)
{
    /* the window keeps what the cache would: answers up to max_entry_bytes */
    bool window = state == F_DONE && !f->overflow && cr->registered && cr->window_ms &&
                  f->frames.len <= f->max_entry;
    pthread_mutex_lock(&f->mu);
    if (window) window = fl__charge(f); /* the window's copy counts against cache.max_bytes */
    f->until_ms = window ? (int64_t)time_wall_ms() + (int64_t)cr->window_ms : 0;
    f->state = state;
    flight_notify_locked(f);
    pthread_mutex_unlock(&f->mu);
    if (window)
        fl__retire(f);
    else if (cr->registered)
        fl__remove(f);
}

/* The leader's answer is complete (END / BODY) or gone (ABORT). */
static void leader_finish(cache_req_t *cr, int state)
{
    cache_flight_t *f = cr->f;
    pl_req_t *c = cr->c;
    pl_tap(c, NULL, NULL);
    cr->f = NULL;
    pthread_mutex_lock(&f->mu);
    if (f->overflow && state == F_DONE) state = F_FAILED; /* joiners missed frames */
    if (state != F_ORPHANED) {
        f->ptok = c->prompt_tokens;
        f->ctok = c->completion_tokens;
        f->cached = c->cached_tokens;
    }
    pthread_mutex_unlock(&f->mu);
    /* the leader alone wrote the flight's fields: they are read here unlocked */
    if (state == F_DONE && cr->store) store_answer(cr, f);
    flight_finish(cr, f, state);
    fl__unref(f);
}

static void leader_tap(pl_req_t *req, const pl_tap_ev_t *ev, void *ud)
{
    cache_req_t *cr = ud;
    cache_flight_t *f = cr->f;
    const char *data = ev->data;
    size_t len = ev->len;
    int status = ev->status;
    (void)req;
    switch (ev->kind) {
    case PL_TAP_START:
    case PL_TAP_BODY:
        pthread_mutex_lock(&f->mu);
        f->status = status;
        snprintf(f->ctype, sizeof f->ctype, "%s", ev->ctype ? ev->ctype : "");
        hdrs_filter(&f->hdrs, ev->hdrs, ev->hdrs_len);
        if (ev->kind == PL_TAP_START) {
            f->stream_started = true;
            flight_notify_locked(f);
            pthread_mutex_unlock(&f->mu);
            return;
        }
        size_t before = f->frames.len;
        if (buf_append(&f->frames, "\0\0\0\0", 4) != BUF_OK ||
            buf_append(&f->frames, data, len) != BUF_OK) {
            f->frames.len = before; /* no half frame: joiners get a 502 */
            f->overflow = true;
        } else {
            unsigned char *p = (unsigned char *)buf_data(&f->frames) + f->frames.len - len - 4;
            p[0] = (unsigned char)(len >> 24);
            p[1] = (unsigned char)(len >> 16);
            p[2] = (unsigned char)(len >> 8);
            p[3] = (unsigned char)len;
        }
        pthread_mutex_unlock(&f->mu);
        leader_finish(cr, status >= 200 && status < 300 ? F_DONE : F_FAILED);
        return;
    case PL_TAP_DATA: {
        pthread_mutex_lock(&f->mu);
        if (!f->overflow && f->n_joiners == 0 && f->frames.len + len + 4 > f->max_entry) {
            /* Too big to store and nobody to share it with: stop recording
             * (and sharing), so a long stream costs no memory here. */
            f->overflow = true;
            buf_free(&f->frames);
            pthread_mutex_unlock(&f->mu);
            if (cr->registered) fl__remove(f);
            return;
        }
        if (!f->overflow) {
            unsigned char hdr[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                                    (unsigned char)(len >> 8), (unsigned char)len};
            size_t was = f->frames.len;
            if (buf_append(&f->frames, hdr, 4) != BUF_OK ||
                buf_append(&f->frames, data, len) != BUF_OK) {
                /* Too big to share: joiners get what they have and an error. */
                f->frames.len = was;
                f->overflow = true;
                f->state = F_FAILED;
                flight_notify_locked(f);
                pthread_mutex_unlock(&f->mu);
                if (cr->registered) fl__remove(f);
                return;
            }
        }
        flight_notify_locked(f);
        pthread_mutex_unlock(&f->mu);
        return;
    }
    case PL_TAP_END: {
        pthread_mutex_lock(&f->mu);
        bool complete = f->status >= 200 && f->status < 300 && stream_complete(f);
        pthread_mutex_unlock(&f->mu);
        leader_finish(cr, complete ? F_DONE : F_FAILED);
        return;
    }
    case PL_TAP_ABORT:
        cache__cnt(&cache__g.orphaned);
        leader_finish(cr, F_ORPHANED);
        return;
    }
}

/* The client left during the Redis lookup: the reply finds nobody. */
static void leader_wait_abort(pl_req_t *c)
{
    cache_req_t *cr = c->wait_ud;
    if (cr->wait) cr->wait->cr = NULL;
    cr->wait = NULL;
}

/* The Redis answer for a leader (on its loop). */
static void leader_redis_done(void *ud, int rc, const char *val, size_t len)
{
    cache_wait_t *w = ud;
    cache_req_t *cr = w->cr;
    free(w);
    if (!cr) return; /* the leader's client left meanwhile */
    cr->wait = NULL;
    cache_view_t v;
    if (rc == 1 && cache_blob_parse(val, len, &v) == 0) {
        pl_req_t *c = cr->c;
        cache_flight_t *f = cr->f;
        /* The flight finishes with this answer: joiners get it too. */
        pthread_mutex_lock(&f->mu);
        f->status = v.status;
        snprintf(f->ctype, sizeof f->ctype, "%s", v.ctype);
        f->stream_started = v.stream;
        buf_append(&f->hdrs, v.hdrs, v.hdrs_len);
        if (buf_append(&f->frames, v.frames, v.frames_len) != BUF_OK) f->overflow = true;
        pthread_mutex_unlock(&f->mu);
        pl_tap(c, NULL, NULL);
        cr->f = NULL;
        pthread_mutex_lock(&f->mu);
        f->ptok = v.prompt_tokens;
        f->ctok = v.completion_tokens;
        f->cached = v.cached_tokens;
        pthread_mutex_unlock(&f->mu);
        int64_t now = (int64_t)time_wall_ms();
        cache_entry_t *e =
            cache_entry_new(cr->key, now + (int64_t)cr->ttl_ms, CACHE_TIER_REDIS, val, len);
        if (e) cache_lru_put(cache__g.mem, e, now); /* before the flight shows it is done */
        flight_finish(cr, f, f->overflow ? F_FAILED : F_DONE);
        fl__unref(f);
        c->on_abort = NULL;
        pl_resume(c, serve_view(c, &v, SRC_REDIS, NULL));
        return;
    }
    cache__cnt(&cache__g.miss_redis);
    cache_mark(cr->c, "miss");
    cr->c->on_abort = NULL;
    pl_resume(cr->c, PL_NEXT); /* the call */
}

/* ---------- dispatch ---------- */

typedef struct cache_hdr {
    bool no_cache, no_store;
    uint64_t ttl_ms; /* 0 = config */
} cache_hdr_t;

/* x-skuld-cache: no-cache | no-store | ttl=SECONDS (comma separated). -1 if malformed. */
static int parse_req_header(pl_slice_t v, cache_hdr_t *h)
{
    memset(h, 0, sizeof *h);
    size_t i = 0;
    while (i < v.n) {
        while (i < v.n && (v.p[i] == ' ' || v.p[i] == ',' || v.p[i] == '\t')) i++;
        size_t s = i;
        while (i < v.n && v.p[i] != ',') i++;
        size_t e = i;
        while (e > s && (v.p[e - 1] == ' ' || v.p[e - 1] == '\t')) e--;
        size_t n = e - s;
        const char *t = v.p + s;
        if (n == 0) continue;
        if (n == 8 && strncasecmp(t, "no-cache", 8) == 0) {
            h->no_cache = true;
        } else if (n == 8 && strncasecmp(t, "no-store", 8) == 0) {
            h->no_store = true;
        } else if (n > 4 && strncasecmp(t, "ttl=", 4) == 0) {
            uint64_t secs = 0;
            for (size_t k = 4; k < n; k++) {
                if (t[k] < '0' || t[k] > '9' || secs > 100000000) return -1;
                secs = secs * 10 + (uint64_t)(t[k] - '0');
            }
            if (secs == 0) {
                h->no_store = true; /* ttl=0: nothing to keep */
            } else {
                h->ttl_ms = secs * 1000;
            }
        } else {
            return -1;
        }
    }
    return 0;
}

/* The name the client asked for (a model or a route): requests for one route
 * share entries whichever of its deployments the ranking puts first. */
static const char *cache_asked_name(const pl_req_t *c)
{
    return c->asked ? c->asked : c->model->name;
}

/* The one condition for "the cache or de-duplication looks at this request". */
static bool cache_looks(const pl_req_t *c)
{
    const cfg_cache_t *cc = &c->cfg->cache;
    return cache__g.on && cc->present && (cc->enabled || cc->dedupe.enabled) &&
           c->ep != EP_MODELS && c->ep != EP_COUNT_TOKENS; /* a count is cheap and not an answer */
}

static pl_rc_t cache_run(pl_req_t *c)
{
    const cfg_cache_t *cc = &c->cfg->cache;
    int ep = c->ep;
    bool stream = c->stream, client_usage = c->client_usage;
    if (!cache_looks(c)) return PL_NEXT;
    cache_hdr_t h;
    pl_slice_t hv = pl_req_header(c, "x-skuld-cache");
    if (parse_req_header(hv, &h) != 0)
        return pl_fail(c, 400, NULL, "invalid_header", NULL,
                       "x-skuld-cache must be no-cache, no-store or ttl=SECONDS");
    json_t *body = pl_body(c);
    cache_key_t key;
    cache_key_in_t kin = {
        .endpoint = ep,
        .shape = c->shape,
        .mode = !stream        ? CACHE_MODE_WHOLE
                : client_usage ? CACHE_MODE_STREAM_USAGE
                               : CACHE_MODE_STREAM,
        .model = cache_asked_name(c),
        .deps = c->cands && c->n_cands ? c->cands : &c->model,
        .n_deps = c->cands && c->n_cands ? c->n_cands : 1,
    };
    bool eligible = body && cache_key_cacheable(body, cc->cache_sampled) &&
                    cache_key_make(&kin, body, &key) == 0;
    if (!eligible) {
        cache__cnt(&cache__g.bypass);
        cache_mark(c, "bypass");
        return PL_NEXT;
    }
    int64_t now = (int64_t)time_wall_ms();
    if (cc->enabled && !h.no_cache) {
        cache_entry_t *e = cache_lru_get(cache__g.mem, key, now);
        if (e) {
            pl_rc_t rc = serve_entry(c, e, e->origin == CACHE_TIER_STORE ? SRC_STORE : SRC_MEMORY);
            cache_entry_unref(e);
            return rc;
        }
        cache__cnt(&cache__g.miss_memory);
    }

    cache_req_t *cr = arena_calloc(c->arena, sizeof *cr);
    if (!cr) return pl_fail(c, 500, NULL, "internal_error", NULL, "out of memory");
    cr->c = c;
    cr->key = key;
    cr->store = cc->enabled && !h.no_store;
    cr->ttl_ms = h.ttl_ms ? h.ttl_ms : cc->ttl_ms;
    cr->window_ms = cc->dedupe.enabled && !h.no_store ? cc->dedupe.window_ms : 0;
    if (cr->window_ms > cr->ttl_ms) cr->window_ms = cr->ttl_ms; /* never older than its ttl */
    cr->redis = cc->enabled && cc->redis && c->cfg->redis.url;
    size_t max = c->cfg->server.max_upstream_body_bytes;
    if (cc->max_entry_bytes > max) max = cc->max_entry_bytes;

    if (cc->dedupe.enabled && !h.no_cache) {
        fl_shard_t *s = fl__shard(key);
        pthread_mutex_lock(&s->mu);
        cache_flight_t *dropq = fl__expire_locked(s, now);
        cache_flight_t *f = fl__find_locked(s, key);
        if (f) {
            pthread_mutex_lock(&f->mu);
            bool window = f->state == F_DONE && f->until_ms > now;
            bool running = f->state == F_RUNNING && !f->overflow &&
                           f->n_joiners < (size_t)cc->dedupe.max_joiners;
            if (window || running) {
                cache_joiner_t *j = calloc(1, sizeof *j);
                if (j) {
                    atomic_init(&j->refs, 1);
                    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
                    j->f = f;
                    j->c = c;
                    j->base = c->env->base;
                    j->src = window ? SRC_WINDOW : SRC_FLIGHT;
                    j->next = f->joiners;
                    f->joiners = j;
                    f->n_joiners++;
                    pthread_mutex_unlock(&f->mu);
                    pthread_mutex_unlock(&s->mu);
                    fl__drop_chain(dropq);
                    cache__cnt(&cache__g.hits[window ? SRC_WINDOW : SRC_FLIGHT]);
                    if (!window) cache__cnt(&cache__g.joined);
                    c->wait_ud = j;
                    c->on_abort = joiner_abort;
                    joiner_deliver(j); /* the frames so far (or the whole result) now */
                    return PL_AGAIN;
                }
            }
            bool stale = f->state != F_RUNNING; /* window over, failed or orphaned */
            if (!stale)
                cache__cnt(
                    &cache__g.rejected); /* over max_joiners: this request calls on its own */
            pthread_mutex_unlock(&f->mu);
            if (stale) {
                cache_flight_t *d = NULL;
                fl__unlink_locked(s, f, &d);
                if (d) atomic_fetch_sub_explicit(&d->refs, 1, memory_order_relaxed);
                f = NULL;
            }
        }
        if (!f) {
            cr->f = fl__new(key, c->shape, max, cc->max_entry_bytes);
            if (cr->f) {
                atomic_fetch_add_explicit(&cr->f->refs, 1, memory_order_relaxed); /* table's */
                cr->f->in_table = true;
                size_t b = fl__bucket(key);
                cr->f->hnext = s->tab[b];
                s->tab[b] = cr->f;
                cr->registered = true;
            }
        }
        pthread_mutex_unlock(&s->mu);
        fl__drop_chain(dropq);
    }
    if (!cr->f && cr->store)
        cr->f = fl__new(key, c->shape, max, cc->max_entry_bytes); /* record only */
    if (!cr->f) { /* nothing to record (or out of memory): a plain call */
        cache_mark(c, h.no_cache ? "bypass" : "miss");
        if (h.no_cache) cache__cnt(&cache__g.bypass);
        return PL_NEXT;
    }
    pl_tap(c, leader_tap, cr);
    if (cr->redis && !h.no_cache) {
        cache_wait_t *w = calloc(1, sizeof *w);
        if (w) {
            w->cr = cr;
            cr->wait = w;
            if (cache_redis_get(c->env->base, c->env->id, &c->cfg->redis, key, leader_redis_done,
                                w) == 0) {
                c->wait_ud = cr;
                c->on_abort = leader_wait_abort;
                return PL_AGAIN;
            }
            cr->wait = NULL;
            free(w);
        }
        cache__cnt(&cache__g.miss_redis);
    }
    if (h.no_cache) cache__cnt(&cache__g.bypass);
    cache_mark(c, h.no_cache ? "bypass" : "miss");
    return PL_NEXT;
}

/* The leader left before this joiner got anything: start over. */
static void cache_dispatch_again(cache_joiner_t *j)
{
    pl_req_t *c = j->c;
    j->c = NULL;
    c->on_abort = NULL;
    c->on_drain = NULL;
    c->wait_ud = NULL;
    joiner_unref(j);
    pl_resume(c, pl_redirect(c, PL_STAGE_CACHE));
}

const pl_stage_t cache_stage = {"cache", cache_run};
