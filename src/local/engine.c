/* engine — see engine.h for the design (threads, batching, hand-back). */
#include "local/engine.h"

#include <dlfcn.h>
#include <errno.h>
#include <ggml-backend.h>
#include <libgen.h>
#include <llama.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

#define ENGINE_MAX_PIECE 256
#define ENGINE_MAX_STOP_LEN 256

struct engine_job {
    atomic_int refs;
    atomic_bool cancelled;
    pthread_mutex_t mu;
    engine_t *e;
    bool embed;
    /* input, owned by the job, read by the engine thread only */
    int32_t *tokens;
    int n_tokens;
    int32_t **etok;
    int *en;
    int ecount;
    engine_sampling_t s;
    char *stop[4];
    engine_notify_fn notify;
    void *ud;
    struct engine_job *next; /* engine queue, under engine.mu */
    /* under mu */
    bool released, notified;
    buf_t text;       /* everything generated; the engine appends */
    size_t published; /* prefix of text safe to hand out */
    size_t taken;     /* prefix already handed out */
    engine_state_t state;
    long n_gen;
    const char *error;
    float *emb; /* ecount * n_embd, when an embedding job is done */
};

typedef struct engine__slot {
    int id; /* llama seq_id */
    engine_job_t *job;
    struct llama_sampler *smpl;
    int n_fed;   /* prompt tokens already in the batch stream */
    int n_past;  /* positions in the KV cache */
    int i_batch; /* index of this slot's logits in the current batch, or -1 */
    int32_t next;
    int max_tokens;
} engine__slot_t;

struct engine {
    engine_params_t p;
    char *name, *path;
    struct llama_model *model;
    const struct llama_vocab *vocab;
    struct llama_context *ctx;
    struct llama_context *ectx; /* embeddings, engine thread only, created on first use */
    int n_ctx_slot, n_threads, n_embd;
    char *tmpl; /* model's chat template, or NULL: "chatml" fallback */
    struct llama_batch batch;
    engine__slot_t *slots;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu; /* guards the queue, stop, busy */
    pthread_cond_t cv;
    bool stop;
    engine_job_t *head, *tail;
    atomic_int busy, waiting;
};

/* ---------- process-wide llama.cpp set-up ---------- */

static void engine__log(enum ggml_log_level level, const char *text, void *ud)
{
    if (level != GGML_LOG_LEVEL_ERROR) return; /* its warnings are mostly tuning notes */
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r')) n--;
    if (n) log_warn("llama.cpp: %.*s", (int)n, text);
}

static void engine__global_init(void)
{
    llama_log_set(engine__log, NULL);
    /* The CPU backends (one per CPU family) sit next to libggml: find them from
     * where the dynamic linker found it, else the directory the build linked. */
    const char *env = getenv("SKULD_LLAMA_LIB_DIR");
    char dir[4096] = SKULD_LLAMA_LIB_DIR;
    Dl_info info;
    if (env && *env) {
        snprintf(dir, sizeof dir, "%s", env);
    } else if (dladdr((void *)ggml_backend_load_all_from_path, &info) && info.dli_fname &&
               strchr(info.dli_fname, '/')) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s", info.dli_fname);
        snprintf(dir, sizeof dir, "%s", dirname(tmp));
    }
    ggml_backend_load_all_from_path(dir);
    llama_backend_init();
    if (ggml_backend_dev_count() == 0) log_error("llama.cpp: no compute backend found in %s", dir);
}

static pthread_once_t engine__once = PTHREAD_ONCE_INIT;

static int engine__cores(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* ---------- jobs ---------- */

static void engine__job_unref(engine_job_t *j)
{
    if (atomic_fetch_sub(&j->refs, 1) != 1) return;
    free(j->tokens);
    for (int i = 0; i < j->ecount; i++) free(j->etok ? j->etok[i] : NULL);
    free(j->etok);
    free(j->en);
    for (int i = 0; i < 4; i++) free(j->stop[i]);
    free(j->emb);
    buf_free(&j->text);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* Under j->mu: tell the owner there is something to take. */
static void engine__notify_locked(engine_job_t *j)
{
    if (!j->released && !j->notified && j->notify) {
        j->notified = true;
        j->notify(j->ud);
    }
}

static engine_job_t *engine__job_new(engine_t *e, engine_notify_fn notify, void *ud)
{
    engine_job_t *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    atomic_init(&j->refs, 2);
    atomic_init(&j->cancelled, false);
    pthread_mutex_init(&j->mu, NULL);
    buf_init(&j->text, 0);
    j->e = e;
    j->notify = notify;
    j->ud = ud;
    return j;
}

static void engine__enqueue(engine_t *e, engine_job_t *j)
{
    pthread_mutex_lock(&e->mu);
    if (e->tail)
        e->tail->next = j;
    else
        e->head = j;
    e->tail = j;
    atomic_fetch_add(&e->waiting, 1);
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void engine_default_sampling(engine_sampling_t *s)
{
    memset(s, 0, sizeof *s);
    s->temperature = 1.0f;
    s->top_p = 1.0f;
}

engine_job_t *engine_submit(engine_t *e, const int32_t *tokens, int n, const engine_sampling_t *s,
                            engine_notify_fn notify, void *ud)
{
    engine_job_t *j = engine__job_new(e, notify, ud);
    if (!j) return NULL;
    j->tokens = malloc((size_t)(n > 0 ? n : 1) * sizeof *j->tokens);
    if (!j->tokens) {
        atomic_store(&j->refs, 1);
        engine__job_unref(j);
        return NULL;
    }
    memcpy(j->tokens, tokens, (size_t)n * sizeof *tokens);
    j->n_tokens = n;
    j->s = *s;
    for (int i = 0; i < s->n_stop && i < 4; i++) {
        j->stop[i] = strndup(s->stop[i], ENGINE_MAX_STOP_LEN);
        j->s.stop[i] = j->stop[i];
    }
    engine__enqueue(e, j);
    return j;
}

engine_job_t *engine_submit_embed(engine_t *e, int32_t *const *tokens, const int *n, int count,
                                  engine_notify_fn notify, void *ud)
{
    engine_job_t *j = engine__job_new(e, notify, ud);
    if (!j) return NULL;
    j->embed = true;
    j->etok = calloc((size_t)count, sizeof *j->etok);
    j->en = calloc((size_t)count, sizeof *j->en);
    bool ok = j->etok && j->en;
    for (int i = 0; ok && i < count; i++) {
        j->etok[i] = malloc((size_t)(n[i] > 0 ? n[i] : 1) * sizeof(int32_t));
        if (!j->etok[i]) {
            ok = false;
            break;
        }
        memcpy(j->etok[i], tokens[i], (size_t)n[i] * sizeof(int32_t));
        j->en[i] = n[i];
        j->ecount = i + 1;
    }
    if (!ok) {
        j->ecount = count;
        atomic_store(&j->refs, 1);
        engine__job_unref(j);
        return NULL;
    }
    engine__enqueue(e, j);
    return j;
}

void engine_job_take(engine_job_t *j, buf_t *out, engine_result_t *res)
{
    pthread_mutex_lock(&j->mu);
    if (j->published > j->taken) {
        buf_append(out, buf_data(&j->text) + j->taken, j->published - j->taken);
        j->taken = j->published;
    }
    j->notified = false;
    res->state = j->taken == j->text.len ? j->state : ENGINE_RUNNING;
    res->completion_tokens = j->n_gen;
    res->error = j->error;
    pthread_mutex_unlock(&j->mu);
}

const float *engine_job_embeddings(const engine_job_t *j, int *count)
{
    *count = j->ecount;
    return j->emb;
}

void engine_job_release(engine_job_t *j)
{
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    j->released = true;
    pthread_mutex_unlock(&j->mu);
    atomic_store(&j->cancelled, true);
    engine_t *e = j->e;
    pthread_mutex_lock(&e->mu);
    pthread_cond_signal(&e->cv); /* a waiting job is dropped at the next step */
    pthread_mutex_unlock(&e->mu);
    engine__job_unref(j);
}

/* ---------- text hand-back: whole UTF-8, stop strings held back ---------- */

/* Length of the longest prefix of s[0..n) that ends on a whole UTF-8 sequence. */
static size_t engine__utf8_whole(const char *s, size_t n)
{
    for (size_t back = 1; back <= 4 && back <= n; back++) {
        unsigned char c = (unsigned char)s[n - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte */
        size_t need = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
        return need > back ? n - back : n;
    }
    return n;
}

/* Engine thread, under j->mu, after appending from old_len: finish at a stop
 * string, else publish what cannot be the start of one. True when stopped. */
static bool engine__scan_stops(engine_job_t *j, size_t old_len)
{
    char *t = buf_data(&j->text);
    size_t len = j->text.len, cut = len, hold = 0;
    bool hit = false;
    for (int i = 0; i < j->s.n_stop && i < 4; i++) {
        const char *st = j->stop[i];
        size_t sl = st ? strlen(st) : 0;
        if (!sl) continue;
        size_t from = old_len >= sl - 1 ? old_len - (sl - 1) : 0;
        if (from < j->published) from = j->published;
        char *p = len > from ? memmem(t + from, len - from, st, sl) : NULL;
        if (p && (size_t)(p - t) < cut) {
            cut = (size_t)(p - t);
            hit = true;
        }
        for (size_t k = sl - 1; k > hold && !hit; k--)
            if (k <= len && memcmp(t + len - k, st, k) == 0) hold = k;
    }
    if (hit) {
        j->text.len = cut;
        t[cut] = '\0';
        j->published = cut;
        return true;
    }
    size_t safe = engine__utf8_whole(t, len - hold);
    if (safe > j->published) j->published = safe;
    return false;
}

/* ---------- the engine thread ---------- */

static void engine__finish(engine_t *e, engine__slot_t *sl, engine_state_t st, const char *error)
{
    engine_job_t *j = sl->job;
    llama_memory_seq_rm(llama_get_memory(e->ctx), sl->id, -1, -1);
    if (sl->smpl) llama_sampler_free(sl->smpl);
    sl->smpl = NULL;
    sl->job = NULL;
    atomic_fetch_sub(&e->busy, 1);
    pthread_mutex_lock(&j->mu);
    j->state = st;
    j->error = error;
    j->published = j->text.len;
    engine__notify_locked(j);
    pthread_mutex_unlock(&j->mu);
    engine__job_unref(j);
}

static struct llama_sampler *engine__sampler(const engine_sampling_t *s)
{
    struct llama_sampler_chain_params cp = llama_sampler_chain_default_params();
    cp.no_perf = true;
    struct llama_sampler *c = llama_sampler_chain_init(cp);
    if (!c) return NULL;
    if (s->temperature <= 0.0f) {
        llama_sampler_chain_add(c, llama_sampler_init_greedy());
        return c;
    }
    if (s->top_k > 0) llama_sampler_chain_add(c, llama_sampler_init_top_k(s->top_k));
    if (s->top_p > 0.0f && s->top_p < 1.0f)
        llama_sampler_chain_add(c, llama_sampler_init_top_p(s->top_p, 1));
    llama_sampler_chain_add(c, llama_sampler_init_temp(s->temperature));
    llama_sampler_chain_add(c, llama_sampler_init_dist(s->has_seed ? s->seed : LLAMA_DEFAULT_SEED));
    return c;
}

static void engine__embed(engine_t *e, engine_job_t *j)
{
    const char *err = NULL;
    float *emb = calloc((size_t)j->ecount * (size_t)e->n_embd, sizeof *emb);
    if (!emb) err = "out of memory";
    if (!err && !e->ectx) {
        struct llama_context_params cp = llama_context_default_params();
        cp.n_ctx = (uint32_t)e->n_ctx_slot;
        cp.n_batch = cp.n_ubatch = (uint32_t)e->n_ctx_slot;
        cp.n_seq_max = 1;
        cp.n_threads = cp.n_threads_batch = e->n_threads;
        cp.embeddings = true;
        cp.pooling_type = LLAMA_POOLING_TYPE_MEAN;
        cp.no_perf = true;
        e->ectx = llama_init_from_model(e->model, cp);
        if (!e->ectx) err = "cannot create the embedding context";
    }
    struct llama_batch b = {0};
    if (!err) {
        b = llama_batch_init(e->n_ctx_slot, 0, 1);
        for (int i = 0; i < j->ecount && !err && !atomic_load(&j->cancelled); i++) {
            llama_memory_clear(llama_get_memory(e->ectx), true);
            b.n_tokens = 0;
            for (int k = 0; k < j->en[i] && k < e->n_ctx_slot; k++) {
                b.token[k] = j->etok[i][k];
                b.pos[k] = k;
                b.n_seq_id[k] = 1;
                b.seq_id[k][0] = 0;
                b.logits[k] = true;
                b.n_tokens++;
            }
            const float *v = NULL;
            if (b.n_tokens > 0 && llama_decode(e->ectx, b) == 0)
                v = llama_get_embeddings_seq(e->ectx, 0);
            if (!v) {
                err = "embedding decode failed";
                break;
            }
            double norm = 0;
            for (int d = 0; d < e->n_embd; d++) norm += (double)v[d] * v[d];
            norm = norm > 0 ? sqrt(norm) : 1.0;
            for (int d = 0; d < e->n_embd; d++)
                emb[(size_t)i * (size_t)e->n_embd + (size_t)d] = (float)(v[d] / norm);
        }
        llama_batch_free(b);
    }
    pthread_mutex_lock(&j->mu);
    if (err) {
        free(emb);
        j->state = ENGINE_FAILED;
        j->error = err;
    } else {
        j->emb = emb;
        j->state = ENGINE_STOP;
    }
    engine__notify_locked(j);
    pthread_mutex_unlock(&j->mu);
    engine__job_unref(j);
}

/* Move waiting jobs into free slots; embedding jobs run right here. Under e->mu. */
static void engine__admit(engine_t *e, engine_job_t **embeds)
{
    while (e->head) {
        engine_job_t *j = e->head;
        engine__slot_t *free_slot = NULL;
        if (!j->embed && !atomic_load(&j->cancelled)) {
            for (int i = 0; i < e->p.parallel && !free_slot; i++)
                if (!e->slots[i].job) free_slot = &e->slots[i];
            if (!free_slot) return;
        }
        e->head = j->next;
        if (!e->head) e->tail = NULL;
        j->next = NULL;
        atomic_fetch_sub(&e->waiting, 1);
        if (atomic_load(&j->cancelled)) {
            engine__job_unref(j);
        } else if (j->embed) {
            j->next = *embeds;
            *embeds = j;
        } else {
            free_slot->job = j;
            free_slot->n_fed = 0;
            free_slot->n_past = 0;
            free_slot->i_batch = -1;
            free_slot->smpl = engine__sampler(&j->s);
            int room = e->n_ctx_slot - j->n_tokens;
            free_slot->max_tokens =
                j->s.max_tokens > 0 && j->s.max_tokens < room ? j->s.max_tokens : room;
            atomic_fetch_add(&e->busy, 1);
        }
    }
}

static void engine__batch_add(struct llama_batch *b, int32_t tok, int pos, int seq, bool logits)
{
    int i = b->n_tokens++;
    b->token[i] = tok;
    b->pos[i] = pos;
    b->n_seq_id[i] = 1;
    b->seq_id[i][0] = seq;
    b->logits[i] = logits;
}

/* Greedy: the highest logit, read in place (llama_sampler_sample would first
 * copy the whole vocabulary into a candidate array, per slot, per token). */
static int32_t engine__argmax(engine_t *e, int i_batch)
{
    const float *l = llama_get_logits_ith(e->ctx, i_batch);
    if (!l) return llama_vocab_eos(e->vocab);
    int n = llama_vocab_n_tokens(e->vocab), best = 0;
    for (int k = 1; k < n; k++)
        if (l[k] > l[best]) best = k;
    return best;
}

/* One continuous-batching step: returns false when there is nothing to do. */
static bool engine__step(engine_t *e)
{
    struct llama_batch *b = &e->batch;
    b->n_tokens = 0;
    const int P = e->p.parallel;
    for (int i = 0; i < P; i++) {
        engine__slot_t *sl = &e->slots[i];
        if (!sl->job) continue;
        if (atomic_load(&sl->job->cancelled)) {
            engine__finish(e, sl, ENGINE_STOP, NULL); /* client left: free the slot now */
            continue;
        }
        if (!sl->smpl || sl->job->n_tokens >= e->n_ctx_slot || sl->job->n_tokens == 0) {
            engine__finish(e, sl, ENGINE_FAILED,
                           sl->smpl ? "prompt does not fit the context" : "out of memory");
            continue;
        }
        sl->i_batch = -1;
        if (sl->n_fed == sl->job->n_tokens) { /* generating: its last sampled token */
            sl->i_batch = b->n_tokens;
            engine__batch_add(b, sl->next, sl->n_past++, sl->id, true);
        }
    }
    /* prompts of joining slots, as much as fits */
    for (int i = 0; i < P && b->n_tokens < e->p.n_batch; i++) {
        engine__slot_t *sl = &e->slots[i];
        if (!sl->job || sl->n_fed == sl->job->n_tokens) continue;
        while (sl->n_fed < sl->job->n_tokens && b->n_tokens < e->p.n_batch) {
            bool last = sl->n_fed + 1 == sl->job->n_tokens;
            if (last) sl->i_batch = b->n_tokens;
            engine__batch_add(b, sl->job->tokens[sl->n_fed++], sl->n_past++, sl->id, last);
        }
    }
    if (b->n_tokens == 0) return false;

    if (llama_decode(e->ctx, *b) != 0) {
        log_error("engine %s: llama_decode failed on a batch of %d token(s)", e->name, b->n_tokens);
        for (int i = 0; i < P; i++)
            if (e->slots[i].job) engine__finish(e, &e->slots[i], ENGINE_FAILED, "decode failed");
        return true;
    }
    for (int i = 0; i < P; i++) {
        engine__slot_t *sl = &e->slots[i];
        if (!sl->job || sl->i_batch < 0) continue;
        engine_job_t *j = sl->job;
        int32_t tok = j->s.temperature <= 0.0f
                          ? engine__argmax(e, sl->i_batch)
                          : llama_sampler_sample(sl->smpl, e->ctx, sl->i_batch);
        sl->i_batch = -1;
        sl->next = tok;
        if (llama_vocab_is_eog(e->vocab, tok)) {
            engine__finish(e, sl, ENGINE_STOP, NULL);
            continue;
        }
        char piece[ENGINE_MAX_PIECE];
        int n = llama_token_to_piece(e->vocab, tok, piece, sizeof piece, 0, false);
        if (n < 0) n = 0;
        /* byte tokens can decode to NUL, which JSON consumers (jansson) refuse: drop it */
        int w = 0;
        for (int k = 0; k < n; k++)
            if (piece[k] != '\0') piece[w++] = piece[k];
        n = w;
        pthread_mutex_lock(&j->mu);
        size_t old = j->text.len;
        buf_append(&j->text, piece, (size_t)n);
        j->n_gen++;
        bool stopped = engine__scan_stops(j, old);
        long gen = j->n_gen;
        if (!stopped && j->published > j->taken) engine__notify_locked(j);
        pthread_mutex_unlock(&j->mu);
        if (stopped)
            engine__finish(e, sl, ENGINE_STOP, NULL);
        else if (gen >= sl->max_tokens || sl->n_past >= e->n_ctx_slot)
            engine__finish(e, sl, ENGINE_LENGTH, NULL);
    }
    return true;
}

static void *engine__main(void *arg)
{
    engine_t *e = arg;
    for (;;) {
        engine_job_t *embeds = NULL;
        pthread_mutex_lock(&e->mu);
        for (;;) {
            if (e->stop) break;
            engine__admit(e, &embeds);
            if (embeds || atomic_load(&e->busy) > 0) break;
            pthread_cond_wait(&e->cv, &e->mu);
        }
        bool stop = e->stop;
        pthread_mutex_unlock(&e->mu);
        if (stop) {
            for (engine_job_t *j = embeds, *nx; j; j = nx) {
                nx = j->next;
                engine__job_unref(j);
            }
            break;
        }
        while (embeds) {
            engine_job_t *j = embeds;
            embeds = j->next;
            engine__embed(e, j);
        }
        engine__step(e);
    }
    return NULL;
}

/* ---------- create / destroy ---------- */

void engine_default_params(engine_params_t *p)
{
    memset(p, 0, sizeof *p);
    p->parallel = 4;
    p->n_batch = 512;
}

engine_t *engine_create(const engine_params_t *p, char *err, size_t errlen)
{
    pthread_once(&engine__once, engine__global_init);
    engine_t *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->p = *p;
    if (e->p.parallel < 1) e->p.parallel = 1;
    if (e->p.n_batch < 32) e->p.n_batch = 512;
    e->name = strdup(p->name ? p->name : "local");
    e->path = strdup(p->path ? p->path : "");
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    if (!e->name || !e->path) goto oom;
    if (access(e->path, R_OK) != 0) {
        snprintf(err, errlen, "cannot read model file %s: %s", e->path, strerror(errno));
        goto fail;
    }
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    e->model = llama_model_load_from_file(e->path, mp);
    if (!e->model) {
        snprintf(err, errlen, "llama.cpp could not load %s as a GGUF model", e->path);
        goto fail;
    }
    e->vocab = llama_model_get_vocab(e->model);
    e->n_embd = llama_model_n_embd(e->model);
    int train = llama_model_n_ctx_train(e->model);
    e->n_ctx_slot = p->n_ctx_slot > 0 ? p->n_ctx_slot : (train > 0 && train < 4096 ? train : 4096);
    const char *env_threads = getenv("SKULD_LLAMA_THREADS");
    e->n_threads = p->n_threads > 0                       ? p->n_threads
                   : env_threads && atoi(env_threads) > 0 ? atoi(env_threads)
                                                          : engine__cores();
    const char *t = llama_model_chat_template(e->model, NULL);
    if (t) {
        llama_chat_message probe = {"user", "x"};
        char tmp[8];
        if (llama_chat_apply_template(t, &probe, 1, true, tmp, sizeof tmp) >= 0)
            e->tmpl = strdup(t);
    }

    struct llama_context_params cp = llama_context_default_params();
    cp.n_seq_max = (uint32_t)e->p.parallel;
    cp.n_ctx = (uint32_t)(e->n_ctx_slot * e->p.parallel);
    cp.n_batch = (uint32_t)e->p.n_batch;
    cp.n_ubatch = (uint32_t)e->p.n_batch;
    cp.n_threads = cp.n_threads_batch = e->n_threads;
    cp.kv_unified = false; /* each slot its own n_ctx_slot cells */
    cp.no_perf = true;
    e->ctx = llama_init_from_model(e->model, cp);
    if (!e->ctx) {
        snprintf(err, errlen, "llama.cpp could not create a context for %s", e->path);
        goto fail;
    }
    /* llama.cpp may pad the context up and clamp the batch down: keep the
     * configured limit, never more than it gave, and its batch size. */
    if ((int)llama_n_ctx_seq(e->ctx) < e->n_ctx_slot) e->n_ctx_slot = (int)llama_n_ctx_seq(e->ctx);
    if ((int)llama_n_batch(e->ctx) < e->p.n_batch) e->p.n_batch = (int)llama_n_batch(e->ctx);
    e->batch = llama_batch_init(e->p.n_batch + e->p.parallel, 0, 1);
    e->slots = calloc((size_t)e->p.parallel, sizeof *e->slots);
    if (!e->slots) goto oom;
    for (int i = 0; i < e->p.parallel; i++) e->slots[i].id = i;
    /* Signals belong to the main thread (sigwait in the gateway): the engine
     * thread starts with every signal blocked, or SIGTERM could land on it. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int prc = pthread_create(&e->thread, NULL, engine__main, e);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (prc != 0) {
        snprintf(err, errlen, "cannot start the engine thread");
        goto fail;
    }
    e->thread_started = true;
    log_info("engine %s: %s loaded, %d slot(s) of %d tokens, %d thread(s), chat template %s",
             e->name, e->path, e->p.parallel, e->n_ctx_slot, e->n_threads,
             engine_template_source(e));
    return e;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    engine_destroy(e);
    return NULL;
}

void engine_destroy(engine_t *e)
{
    if (!e) return;
    if (e->thread_started) {
        pthread_mutex_lock(&e->mu);
        e->stop = true;
        pthread_cond_signal(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
    }
    for (int i = 0; e->slots && i < e->p.parallel; i++)
        if (e->slots[i].job) engine__finish(e, &e->slots[i], ENGINE_FAILED, "engine stopped");
    while (e->head) {
        engine_job_t *j = e->head;
        e->head = j->next;
        engine__job_unref(j);
    }
    free(e->slots);
    if (e->batch.token) llama_batch_free(e->batch);
    if (e->ectx) llama_free(e->ectx);
    if (e->ctx) llama_free(e->ctx);
    if (e->model) llama_model_free(e->model);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e->tmpl);
    free(e->name);
    free(e->path);
    free(e);
}

/* ---------- accessors and tokenizing (any thread) ---------- */

int engine_n_ctx_slot(const engine_t *e)
{
    return e->n_ctx_slot;
}

int engine_n_threads(const engine_t *e)
{
    return e->n_threads;
}

int engine_n_embd(const engine_t *e)
{
    return e->n_embd;
}

const char *engine_template_source(const engine_t *e)
{
    return e->tmpl ? "gguf" : "chatml (fallback)";
}

void engine_load(engine_t *e, int *busy, int *waiting)
{
    *busy = atomic_load(&e->busy);
    *waiting = atomic_load(&e->waiting);
}

int engine_tokenize(const engine_t *e, const char *text, size_t len, bool parse_special,
                    int32_t **out)
{
    *out = NULL;
    if (len > INT32_MAX / 2) return -1;
    int cap = (int)len + 8;
    int32_t *v = malloc((size_t)cap * sizeof *v);
    if (!v) return -1;
    int n = llama_tokenize(e->vocab, text, (int32_t)len, v, cap, true, parse_special);
    if (n < 0 && n != INT32_MIN) {
        cap = -n;
        int32_t *nv = realloc(v, (size_t)cap * sizeof *v);
        if (!nv) {
            free(v);
            return -1;
        }
        v = nv;
        n = llama_tokenize(e->vocab, text, (int32_t)len, v, cap, true, parse_special);
    }
    if (n < 0) {
        free(v);
        return -1;
    }
    *out = v;
    return n;
}

long engine_count_tokens(const engine_t *e, const char *text, size_t len)
{
    int32_t *v;
    int n = engine_tokenize(e, text, len, false, &v);
    free(v);
    return n;
}

int engine_chat_prompt(const engine_t *e, const engine_msg_t *msgs, size_t n, buf_t *out)
{
    llama_chat_message *m = calloc(n ? n : 1, sizeof *m);
    if (!m) return -1;
    size_t total = 64;
    for (size_t i = 0; i < n; i++) {
        m[i].role = msgs[i].role;
        m[i].content = msgs[i].content;
        total += strlen(msgs[i].content) + strlen(msgs[i].role) + 32;
    }
    const char *tmpl = e->tmpl ? e->tmpl : "chatml";
    bool fallback = !e->tmpl;
    int rc = -1;
    for (int attempt = 0; attempt < 3; attempt++) {
        if (total > INT32_MAX) break;
        buf_status_t st;
        char *p = buf_reserve(out, total, &st);
        if (!p) break;
        int32_t k = llama_chat_apply_template(tmpl, m, n, true, p, (int32_t)total);
        if (k < 0 && !fallback) {
            tmpl = "chatml"; /* the model's template turned out unsupported */
            fallback = true;
            continue;
        }
        if (k < 0) break;
        if ((size_t)k <= total) {
            buf_commit(out, (size_t)k);
            rc = 0;
            break;
        }
        total = (size_t)k;
    }
    free(m);
    return rc;
}
