/* local — see local.h. */
#include "local/local.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

struct local_model {
    char *name, *path;
    int parallel, n_ctx; /* as loaded: a change of either loads the model anew */
    engine_t *engine;
    atomic_int refs; /* the registry's (current or prepared set) + one per call */
};

typedef struct local_set {
    local_model_t **v; /* one reference each */
    size_t n;
} local_set_t;

static pthread_mutex_t local__mu = PTHREAD_MUTEX_INITIALIZER;
static local_set_t local__cur;     /* written by the control thread under local__mu */
static local_set_t local__pending; /* control thread only */
static bool local__prepared;

/* Models being freed on their own threads (local_stop waits for them). */
static pthread_mutex_t local__fmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t local__fcv = PTHREAD_COND_INITIALIZER;
static int local__freeing;

static void local__free(local_model_t *lm)
{
    engine_destroy(lm->engine);
    free(lm->name);
    free(lm->path);
    free(lm);
}

static void local__freed(void)
{
    pthread_mutex_lock(&local__fmu);
    local__freeing--;
    pthread_cond_broadcast(&local__fcv);
    pthread_mutex_unlock(&local__fmu);
}

static void *local__free_thread(void *arg)
{
    local__free(arg);
    local__freed();
    return NULL;
}

/* The last reference frees the model off the caller's thread: stopping an
 * engine joins its thread, which a worker loop must not wait for. */
static void local__unref(local_model_t *lm)
{
    if (!lm || atomic_fetch_sub(&lm->refs, 1) != 1) return;
    pthread_mutex_lock(&local__fmu);
    local__freeing++;
    pthread_mutex_unlock(&local__fmu);
    pthread_attr_t attr;
    pthread_t t;
    bool started = pthread_attr_init(&attr) == 0;
    if (started) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        started = pthread_create(&t, &attr, local__free_thread, lm) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!started) { /* no thread to spare: free it here */
        local__free(lm);
        local__freed();
    }
}

static local_model_t *local__find(const local_set_t *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i]->name, name) == 0) return s->v[i];
    return NULL;
}

static void local__clear(local_set_t *s)
{
    for (size_t i = 0; i < s->n; i++) local__unref(s->v[i]);
    free(s->v);
    *s = (local_set_t){0};
}

static int local__add(local_set_t *s, local_model_t *lm)
{
    local_model_t **nv = realloc(s->v, (s->n + 1) * sizeof *nv);
    if (!nv) return -1;
    s->v = nv;
    s->v[s->n++] = lm;
    return 0;
}

/* Load m's file. NULL with the reason in err. */
static local_model_t *local__load(const cfg_model_t *m, int parallel, int n_ctx, char *err,
                                  size_t errlen)
{
    engine_params_t p;
    engine_default_params(&p);
    p.name = m->name;
    p.path = m->path;
    p.parallel = parallel;
    p.n_ctx_slot = n_ctx;
    char why[512];
    local_model_t *lm = calloc(1, sizeof *lm);
    if (!lm) {
        snprintf(err, errlen, "model %s: out of memory", m->name);
        return NULL;
    }
    lm->name = strdup(m->name);
    lm->path = strdup(m->path ? m->path : "");
    lm->engine = lm->name && lm->path ? engine_create(&p, why, sizeof why) : NULL;
    if (!lm->engine) {
        snprintf(err, errlen, "model %s: %s", m->name,
                 lm->name && lm->path ? why : "out of memory");
        free(lm->name);
        free(lm->path);
        free(lm);
        return NULL;
    }
    lm->parallel = parallel;
    lm->n_ctx = n_ctx;
    atomic_init(&lm->refs, 1);
    return lm;
}

int local_prepare(const config_t *cfg, char *err, size_t errlen)
{
    local_abort();
    local_set_t next = {0};
    for (size_t i = 0; i < cfg->n_models; i++) {
        const cfg_model_t *m = &cfg->models[i];
        if (strcmp(m->provider->type, "llamacpp") != 0) continue;
        if (local__find(&next, m->name)) continue; /* a name is served by its first deployment */
        int parallel = m->parallel > 0 ? m->parallel : 4;
        int n_ctx =
            m->context_window > 0 && m->context_window < (1 << 24) ? (int)m->context_window : 0;
        /* local__cur changes only on this thread: read without the lock */
        local_model_t *lm = local__find(&local__cur, m->name);
        if (lm && strcmp(lm->path, m->path ? m->path : "") == 0 && lm->parallel == parallel &&
            lm->n_ctx == n_ctx) {
            atomic_fetch_add(&lm->refs, 1);
        } else if (!(lm = local__load(m, parallel, n_ctx, err, errlen))) {
            local__clear(&next);
            return -1;
        }
        if (local__add(&next, lm) != 0) {
            local__unref(lm);
            local__clear(&next);
            snprintf(err, errlen, "model %s: out of memory", m->name);
            return -1;
        }
    }
    local__pending = next;
    local__prepared = true;
    return 0;
}

void local_commit(void)
{
    if (!local__prepared) return;
    for (size_t i = 0; i < local__pending.n; i++) {
        const local_model_t *lm = local__pending.v[i], *was = local__find(&local__cur, lm->name);
        if (was != lm)
            log_info("local model %s: %s %s", lm->name, was ? "reloaded from" : "loaded from",
                     lm->path);
    }
    for (size_t i = 0; i < local__cur.n; i++)
        if (!local__find(&local__pending, local__cur.v[i]->name))
            log_info("local model %s: unloaded (calls in progress finish first)",
                     local__cur.v[i]->name);
    pthread_mutex_lock(&local__mu);
    local_set_t old = local__cur;
    local__cur = local__pending;
    pthread_mutex_unlock(&local__mu);
    local__pending = (local_set_t){0};
    local__prepared = false;
    local__clear(&old); /* models still current hold the new set's reference */
}

void local_abort(void)
{
    if (!local__prepared) return;
    local__clear(&local__pending);
    local__prepared = false;
}

int local_start(const config_t *cfg)
{
    char err[640];
    if (local_prepare(cfg, err, sizeof err) != 0) {
        log_error("%s", err);
        return -1;
    }
    local_commit();
    return 0;
}

void local_stop(void)
{
    local_abort();
    pthread_mutex_lock(&local__mu);
    local_set_t old = local__cur;
    local__cur = (local_set_t){0};
    pthread_mutex_unlock(&local__mu);
    local__clear(&old);
    pthread_mutex_lock(&local__fmu);
    while (local__freeing > 0) pthread_cond_wait(&local__fcv, &local__fmu);
    pthread_mutex_unlock(&local__fmu);
}

local_model_t *local_acquire(const char *model_name)
{
    pthread_mutex_lock(&local__mu);
    local_model_t *lm = local__find(&local__cur, model_name);
    if (lm) atomic_fetch_add(&lm->refs, 1);
    pthread_mutex_unlock(&local__mu);
    return lm;
}

void local_release(local_model_t *lm)
{
    local__unref(lm);
}

engine_t *local_model_engine(const local_model_t *lm)
{
    return lm ? lm->engine : NULL;
}

long local_count_tokens(const cfg_model_t *m, const char *text, size_t len)
{
    if (strcmp(m->provider->type, "llamacpp") != 0) return -1;
    local_model_t *lm = local_acquire(m->name);
    long n = lm ? engine_count_tokens(lm->engine, text, len) : -1;
    local_release(lm);
    return n;
}
