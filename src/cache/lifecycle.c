/*
 * cache lifecycle — start-up (the memory tier sized, the persistent tier
 * loaded), shutdown, POST /admin/cache/purge and the skuld_cache_* /
 * skuld_dedupe_* metrics (cache_internal.h).
 */
#include <malloc.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_internal.h"
#include "cache/redis.h"
#include "core/log.h"

const char *const cache__src_name[SRC_N] = {"memory", "redis", "store", "flight", "window"};
cache_state_t cache__g;

pl_rc_t cache_admin_purge(pl_req_t *c)
{
    size_t mem = cache__g.on ? cache_lru_purge(cache__g.mem) : 0;
    size_t win = 0;
    if (cache__g.on) {
        for (int i = 0; i < FL_SHARDS; i++) {
            fl_shard_t *s = &cache__g.fl[i];
            pthread_mutex_lock(&s->mu);
            for (cache_flight_t *f = s->qhead; f; f = f->qnext) {
                cache_flight_t *d = NULL;
                fl__unlink_locked(s, f, &d);
                /* the table's reference; the queue still holds one until it expires */
                if (d) atomic_fetch_sub_explicit(&d->refs, 1, memory_order_relaxed);
                win += d != NULL;
            }
            pthread_mutex_unlock(&s->mu);
        }
    }
    const config_t *cfg = c->cfg;
    bool redis = false, store = false;
    if (cache__g.on && cfg->cache.redis && cfg->redis.url)
        redis = cache_redis_purge(c->env->base, c->env->id, &cfg->redis) == 0;
    if (cache__g.on && cache__g.store && cfg->cache.persistent) {
        store_cache_purge(cache__g.store, INT64_MAX, NULL, NULL, NULL);
        store = true;
    }
    malloc_trim(0); /* the purged entries' pages go back to the kernel now */
    buf_t o;
    buf_init(&o, 0);
    buf_printf(&o, "{\"purged\":{\"memory\":%zu,\"window\":%zu},\"redis\":\"%s\",\"store\":\"%s\"}",
               mem, win, redis ? "queued" : "off", store ? "queued" : "off");
    pl_rc_t rc = pl_answer(c, 200, buf_data(&o), o.len);
    buf_free(&o);
    return rc;
}

/* ---------- metrics ---------- */

void cache_metrics_render(buf_t *o)
{
    if (!cache__g.on) return;
    cache_lru_stats_t st;
    cache_lru_stats(cache__g.mem, &st);
#define LD(x) (unsigned long long)atomic_load_explicit(&(x), memory_order_relaxed)
    buf_appends(o, "# HELP skuld_cache_hits_total Requests answered from a stored or shared "
                   "answer, by tier.\n# TYPE skuld_cache_hits_total counter\n");
    for (int i = 0; i < SRC_N; i++)
        buf_printf(o, "skuld_cache_hits_total{tier=\"%s\"} %llu\n", cache__src_name[i],
                   LD(cache__g.hits[i]));
    buf_printf(o,
               "# HELP skuld_cache_misses_total Lookups that found nothing, by tier.\n"
               "# TYPE skuld_cache_misses_total counter\n"
               "skuld_cache_misses_total{tier=\"memory\"} %llu\n"
               "skuld_cache_misses_total{tier=\"redis\"} %llu\n",
               LD(cache__g.miss_memory), LD(cache__g.miss_redis));
    buf_printf(o,
               "# HELP skuld_cache_bypass_total Requests not looked up (no-cache, sampled, not "
               "keyable).\n# TYPE skuld_cache_bypass_total counter\n"
               "skuld_cache_bypass_total %llu\n",
               LD(cache__g.bypass));
    buf_printf(o,
               "# HELP skuld_cache_stores_total Answers written, by tier.\n"
               "# TYPE skuld_cache_stores_total counter\n"
               "skuld_cache_stores_total{tier=\"memory\"} %llu\n"
               "skuld_cache_stores_total{tier=\"redis\"} %llu\n"
               "skuld_cache_stores_total{tier=\"store\"} %llu\n",
               LD(cache__g.stores[CACHE_TIER_MEMORY]), LD(cache__g.stores[CACHE_TIER_REDIS]),
               LD(cache__g.stores[CACHE_TIER_STORE]));
    buf_printf(o,
               "# HELP skuld_cache_bytes Bytes held, by tier.\n# TYPE skuld_cache_bytes gauge\n"
               "skuld_cache_bytes{tier=\"memory\"} %llu\n"
               "# HELP skuld_cache_entries Entries held, by tier.\n"
               "# TYPE skuld_cache_entries gauge\n"
               "skuld_cache_entries{tier=\"memory\"} %llu\n"
               "# HELP skuld_cache_evictions_total Entries evicted to fit max_bytes, by tier.\n"
               "# TYPE skuld_cache_evictions_total counter\n"
               "skuld_cache_evictions_total{tier=\"memory\"} %llu\n"
               "# HELP skuld_cache_expirations_total Entries dropped past their ttl, by tier.\n"
               "# TYPE skuld_cache_expirations_total counter\n"
               "skuld_cache_expirations_total{tier=\"memory\"} %llu\n"
               "# HELP skuld_cache_loaded_total Entries loaded from the persistent tier at "
               "start.\n# TYPE skuld_cache_loaded_total counter\n"
               "skuld_cache_loaded_total{tier=\"store\"} %llu\n"
               "# HELP skuld_cache_errors_total Tier failures (timeouts, refused connections).\n"
               "# TYPE skuld_cache_errors_total counter\n"
               "skuld_cache_errors_total{tier=\"redis\"} %llu\n",
               (unsigned long long)st.bytes, (unsigned long long)st.entries,
               (unsigned long long)st.evictions, (unsigned long long)st.expirations,
               LD(cache__g.store_loaded), (unsigned long long)cache_redis_errors());
    buf_printf(o,
               "# HELP skuld_dedupe_joined_total Requests that joined an identical call in "
               "flight.\n# TYPE skuld_dedupe_joined_total counter\n"
               "skuld_dedupe_joined_total %llu\n"
               "# HELP skuld_dedupe_rejected_total Requests that found a call in flight with "
               "max_joiners reached.\n# TYPE skuld_dedupe_rejected_total counter\n"
               "skuld_dedupe_rejected_total %llu\n"
               "# HELP skuld_dedupe_orphaned_total Shared calls whose leader's client left.\n"
               "# TYPE skuld_dedupe_orphaned_total counter\n"
               "skuld_dedupe_orphaned_total %llu\n"
               "# HELP skuld_cache_saved_upstream_calls_total Upstream calls not made thanks "
               "to a hit, a join or the window.\n"
               "# TYPE skuld_cache_saved_upstream_calls_total counter\n"
               "skuld_cache_saved_upstream_calls_total %llu\n"
               "# HELP skuld_cache_saved_cost_usd_total What those calls would have cost.\n"
               "# TYPE skuld_cache_saved_cost_usd_total counter\n"
               "skuld_cache_saved_cost_usd_total %.9f\n",
               LD(cache__g.joined), LD(cache__g.rejected), LD(cache__g.orphaned),
               LD(cache__g.saved_calls), (double)LD(cache__g.saved_nanousd) / 1e9);
#undef LD
}

/* ---------- lifecycle ---------- */

static void load_one(void *ud, const char *hex, const char *value, int64_t expires_ms)
{
    (void)ud;
    if (strlen(hex) != 32) return;
    cache_key_t k;
    char part[17];
    memcpy(part, hex, 16);
    part[16] = '\0';
    k.hi = strtoull(part, NULL, 16);
    k.lo = strtoull(hex + 16, NULL, 16);
    size_t vl = strlen(value);
    if (vl % 4) return;
    unsigned char *blob = malloc(vl / 4 * 3 + 1);
    if (!blob) return;
    int n = EVP_DecodeBlock(blob, (const unsigned char *)value, (int)vl);
    if (n >= 0) {
        if (vl >= 1 && value[vl - 1] == '=') n--;
        if (vl >= 2 && value[vl - 2] == '=') n--;
    }
    cache_view_t v;
    if (n > 0 && cache_blob_parse(blob, (size_t)n, &v) == 0) {
        cache_entry_t *e = cache_entry_new(k, expires_ms, CACHE_TIER_STORE, blob, (size_t)n);
        if (e) {
            cache_lru_put(cache__g.mem, e, (int64_t)time_wall_ms());
            cache__cnt(&cache__g.store_loaded);
        }
    }
    free(blob);
}

void cache_init(const config_t *cfg, store_t *store)
{
    if (cache__g.on) return;
    cache__g.mem = cache_lru_new(cfg->cache.max_bytes, (unsigned)cfg->cache.shards);
    if (!cache__g.mem) {
        log_error("cache: out of memory; the cache is off");
        return;
    }
    for (int i = 0; i < FL_SHARDS; i++) pthread_mutex_init(&cache__g.fl[i].mu, NULL);
    cache__g.on = true;
    cache__g.store = store; /* writes when a snapshot says cache.persistent */
    if (store && cfg->cache.persistent && cfg->cache.enabled) {
        int64_t now = (int64_t)time_wall_ms();
        store_cache_purge(store, now, NULL, NULL, NULL); /* expired rows */
        if (store_cache_load(store, now, load_one, NULL) != 0)
            log_warn("cache: could not load the persistent tier");
        log_info("cache: %llu entr%s loaded from the store",
                 (unsigned long long)atomic_load(&cache__g.store_loaded),
                 atomic_load(&cache__g.store_loaded) == 1 ? "y" : "ies");
    }
}

void cache_shutdown(void)
{
    if (!cache__g.on) return;
    cache__g.on = false;
    for (int i = 0; i < FL_SHARDS; i++) {
        fl_shard_t *s = &cache__g.fl[i];
        pthread_mutex_lock(&s->mu);
        cache_flight_t *q = fl__expire_locked(s, INT64_MAX);
        for (size_t b = 0; b < FL_BUCKETS; b++) {
            cache_flight_t *f = s->tab[b], *next;
            for (; f; f = next) {
                next = f->hnext;
                f->in_table = false;
                fl__unref(f);
            }
            s->tab[b] = NULL;
        }
        pthread_mutex_unlock(&s->mu);
        fl__drop_chain(q);
        pthread_mutex_destroy(&s->mu);
    }
    cache_lru_free(cache__g.mem);
    cache__g.mem = NULL;
    cache__g.store = NULL;
}
