/* demo_model — see demo_model.h. */
#include "local/demo_model.h"

#include <errno.h>
#include <ggml.h>
#include <gguf.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    uint64_t s;
} demo__rng_t;

/* splitmix64: fixed seed, so the model is the same on every machine. */
static uint64_t demo__next(demo__rng_t *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-scale, scale]. */
static void demo__fill(struct ggml_tensor *t, demo__rng_t *r, float scale)
{
    float *d = t->data;
    int64_t n = ggml_nelements(t);
    for (int64_t i = 0; i < n; i++) {
        double u = (double)(demo__next(r) >> 11) / (double)(1ull << 53);
        d[i] = (float)((u * 2.0 - 1.0) * scale);
    }
}

static void demo__ones(struct ggml_tensor *t)
{
    float *d = t->data;
    for (int64_t i = 0; i < ggml_nelements(t); i++) d[i] = 1.0f;
}

static struct ggml_tensor *demo__tensor(struct ggml_context *g, struct gguf_context *gf,
                                        const char *name, int64_t ne0, int64_t ne1)
{
    struct ggml_tensor *t = ne1 ? ggml_new_tensor_2d(g, GGML_TYPE_F32, ne0, ne1)
                                : ggml_new_tensor_1d(g, GGML_TYPE_F32, ne0);
    ggml_set_name(t, name);
    gguf_add_tensor(gf, t);
    return t;
}

/* A quantized matrix filled like demo__fill. The two vocabulary-sized matrices
 * dominate the compute of so small a model: they are Q8_0 (int8 dot products). */
static int demo__quant(struct ggml_context *g, struct gguf_context *gf, const char *name,
                       int64_t ne0, int64_t ne1, demo__rng_t *r, float scale, enum ggml_type type)
{
    struct ggml_tensor *t = ggml_new_tensor_2d(g, type, ne0, ne1);
    float *tmp = malloc((size_t)(ne0 * ne1) * sizeof *tmp);
    if (!t || !tmp) {
        free(tmp);
        return -1;
    }
    struct ggml_tensor view = {.data = tmp, .type = GGML_TYPE_F32, .ne = {ne0 * ne1, 1, 1, 1}};
    demo__fill(&view, r, scale);
    ggml_quantize_chunk(type, tmp, t->data, 0, ne1, ne0, NULL);
    free(tmp);
    ggml_set_name(t, name);
    gguf_add_tensor(gf, t);
    return 0;
}

/* A layer matrix: F32 (demo__fill, the default shape's bytes) or quantized. */
static int demo__matrix(struct ggml_context *g, struct gguf_context *gf, const char *name,
                        int64_t ne0, int64_t ne1, demo__rng_t *r, float scale, demo_wtype_t wt)
{
    if (wt == DEMO_W_F32) {
        demo__fill(demo__tensor(g, gf, name, ne0, ne1), r, scale);
        return 0;
    }
    return demo__quant(g, gf, name, ne0, ne1, r, scale,
                       wt == DEMO_W_Q8_0 ? GGML_TYPE_Q8_0 : GGML_TYPE_Q4_0);
}

static const char *const demo__wtype_names[] = {"f32", "q8_0", "q4_0"};

int demo_wtype_parse(const char *s, demo_wtype_t *out)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, demo__wtype_names[i])) {
            *out = (demo_wtype_t)i;
            return 0;
        }
    return -1;
}

const char *demo_wtype_name(demo_wtype_t t)
{
    return (unsigned)t < 3 ? demo__wtype_names[t] : "?";
}

void demo_default_shape(demo_shape_t *s)
{
    s->wtype = DEMO_W_F32;
    s->n_layer = DEMO_N_LAYER;
    s->n_embd = DEMO_N_EMBD;
    s->n_ff = DEMO_N_FF;
    s->n_head = DEMO_N_HEAD;
}

#define DEMO__VOCAB_ESTIMATE 32000ull /* the embedded SPM vocabulary */

unsigned long long demo_shape_bytes(const demo_shape_t *s)
{
    unsigned long long E = (unsigned long long)s->n_embd, F = (unsigned long long)s->n_ff;
    unsigned long long q8 = 2 * DEMO__VOCAB_ESTIMATE * E / 32 * 34; /* Q8_0: 34 bytes / 32 */
    unsigned long long L = (unsigned long long)s->n_layer, mat = L * (4 * E * E + 3 * E * F);
    unsigned long long per32 = s->wtype == DEMO_W_F32 ? 128 : s->wtype == DEMO_W_Q8_0 ? 34 : 18;
    return q8 + 4 * (E + L * 2 * E) + mat / 32 * per32;
}

int demo_shape_check(const demo_shape_t *s, char *err, size_t errlen)
{
    if (s->n_layer < 1 || s->n_layer > DEMO_MAX_LAYER) {
        snprintf(err, errlen, "layers must be between 1 and %d", DEMO_MAX_LAYER);
        return -1;
    }
    if (s->n_embd < 32 || s->n_embd > DEMO_MAX_EMBD || s->n_embd % 32 != 0) {
        snprintf(err, errlen, "width must be a multiple of 32 between 32 and %d", DEMO_MAX_EMBD);
        return -1;
    }
    if ((unsigned)s->wtype > DEMO_W_Q4_0) {
        snprintf(err, errlen, "unknown weight type");
        return -1;
    }
    if (s->n_ff < 1 || s->n_ff > DEMO_MAX_FF || (s->wtype != DEMO_W_F32 && s->n_ff % 32 != 0)) {
        snprintf(err, errlen, "ff must be between 1 and %d%s", DEMO_MAX_FF,
                 s->wtype != DEMO_W_F32 ? " and a multiple of 32 (quantized blocks)" : "");
        return -1;
    }
    if (s->n_head < 1 || s->n_head > s->n_embd || s->n_embd % s->n_head != 0 ||
        (s->n_embd / s->n_head) % 2 != 0) {
        snprintf(err, errlen, "heads must divide the width (%d) into heads of an even size",
                 s->n_embd);
        return -1;
    }
    if (demo_shape_bytes(s) > DEMO_MAX_BYTES) {
        snprintf(err, errlen, "that shape makes a %.1f GiB model; the limit is %.0f GiB",
                 (double)demo_shape_bytes(s) / (1 << 30), (double)DEMO_MAX_BYTES / (1 << 30));
        return -1;
    }
    return 0;
}

/* mkdir -p of path's directory part. */
static int demo__mkdirs(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf) return 0;
    *slash = '\0';
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

int demo_model_write(const char *path, char *err, size_t errlen)
{
    demo_shape_t s;
    demo_default_shape(&s);
    return demo_model_write_shape(path, &s, err, errlen);
}

int demo_model_write_shape(const char *path, const demo_shape_t *shape, char *err, size_t errlen)
{
    if (demo_shape_check(shape, err, errlen) != 0) return -1;
    if (demo__mkdirs(path) != 0) {
        snprintf(err, errlen, "cannot create the directory of %s: %s", path, strerror(errno));
        return -1;
    }
    size_t vlen;
    const unsigned char *vocab = demo_vocab_data(&vlen);
    struct gguf_init_params vp = {.no_alloc = true, .ctx = NULL};
    struct gguf_context *src = gguf_init_from_buffer(vocab, vlen, vp);
    if (!src) {
        snprintf(err, errlen, "the embedded vocabulary is not a valid GGUF");
        return -1;
    }
    int64_t tok_key = gguf_find_key(src, "tokenizer.ggml.tokens");
    int64_t n_vocab = tok_key >= 0 ? (int64_t)gguf_get_arr_n(src, tok_key) : 0;
    if (n_vocab <= 0) {
        gguf_free(src);
        snprintf(err, errlen, "the embedded vocabulary has no tokens");
        return -1;
    }

    const int64_t E = shape->n_embd, F = shape->n_ff, L = shape->n_layer;
    /* Room for every tensor's data at its stored type (the +1 MiB covers alignment). */
    const enum ggml_type lt = shape->wtype == DEMO_W_F32    ? GGML_TYPE_F32
                              : shape->wtype == DEMO_W_Q8_0 ? GGML_TYPE_Q8_0
                                                            : GGML_TYPE_Q4_0;
    size_t data = 2 * ggml_row_size(GGML_TYPE_Q8_0, E) * (size_t)n_vocab +
                  (size_t)L * (4 * ggml_row_size(lt, E) * (size_t)E + /* q, k, v, output */
                               2 * ggml_row_size(lt, E) * (size_t)F + /* gate, up */
                               ggml_row_size(lt, F) * (size_t)E) +    /* down */
                  (size_t)(E + 2 * L * E) * sizeof(float);
    size_t n_tensors = 3 + 9 * (size_t)L;
    struct ggml_init_params gp = {
        .mem_size = data + (n_tensors + 8) * ggml_tensor_overhead() + 1024 * 1024,
        .mem_buffer = NULL,
        .no_alloc = false,
    };
    struct ggml_context *g = ggml_init(gp);
    struct gguf_context *gf = gguf_init_empty();
    if (!g || !gf) {
        if (g) ggml_free(g);
        if (gf) gguf_free(gf);
        gguf_free(src);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* Tokenizer and the rest of the vocabulary file's metadata first, then ours on top. */
    gguf_set_kv(gf, src);
    gguf_free(src);
    gguf_set_val_str(gf, "general.architecture", "llama");
    gguf_set_val_str(gf, "general.name", "skuld-demo (random weights)");
    /* llama_ftype: 7 mostly Q8_0 (the default: F32 layers, Q8_0 vocabulary matrices), 2 Q4_0 */
    gguf_set_val_u32(gf, "general.file_type", shape->wtype == DEMO_W_Q4_0 ? 2 : 7);
    gguf_set_val_u32(gf, "llama.context_length", DEMO_N_CTX);
    gguf_set_val_u32(gf, "llama.embedding_length", (uint32_t)E);
    gguf_set_val_u32(gf, "llama.block_count", (uint32_t)L);
    gguf_set_val_u32(gf, "llama.feed_forward_length", (uint32_t)F);
    gguf_set_val_u32(gf, "llama.attention.head_count", (uint32_t)shape->n_head);
    gguf_set_val_u32(gf, "llama.attention.head_count_kv", (uint32_t)shape->n_head);
    gguf_set_val_f32(gf, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_set_val_u32(gf, "llama.rope.dimension_count", (uint32_t)(E / shape->n_head));
    gguf_set_val_f32(gf, "llama.rope.freq_base", 10000.0f);
    gguf_set_val_u32(gf, "llama.vocab_size", (uint32_t)n_vocab);

    demo__rng_t r = {.s = 0x736b756c64ull}; /* "skuld" */
    if (demo__quant(g, gf, "token_embd.weight", E, n_vocab, &r, 1.0f, GGML_TYPE_Q8_0) != 0 ||
        demo__quant(g, gf, "output.weight", E, n_vocab, &r, 0.5f, GGML_TYPE_Q8_0) != 0) {
        gguf_free(gf);
        ggml_free(g);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    demo__ones(demo__tensor(g, gf, "output_norm.weight", E, 0));
    const float w = 1.0f / sqrtf((float)E);
    const demo_wtype_t wt = shape->wtype;
    int bad = 0;
    for (int l = 0; l < L && !bad; l++) {
        char name[64];
#define DEMO_N(suffix) (snprintf(name, sizeof name, "blk.%d." suffix, l), name)
        demo__ones(demo__tensor(g, gf, DEMO_N("attn_norm.weight"), E, 0));
        bad |= demo__matrix(g, gf, DEMO_N("attn_q.weight"), E, E, &r, w, wt);
        bad |= demo__matrix(g, gf, DEMO_N("attn_k.weight"), E, E, &r, w, wt);
        bad |= demo__matrix(g, gf, DEMO_N("attn_v.weight"), E, E, &r, w, wt);
        bad |= demo__matrix(g, gf, DEMO_N("attn_output.weight"), E, E, &r, w, wt);
        demo__ones(demo__tensor(g, gf, DEMO_N("ffn_norm.weight"), E, 0));
        bad |= demo__matrix(g, gf, DEMO_N("ffn_gate.weight"), E, F, &r, w, wt);
        bad |= demo__matrix(g, gf, DEMO_N("ffn_up.weight"), E, F, &r, w, wt);
        bad |= demo__matrix(g, gf, DEMO_N("ffn_down.weight"), F, E, &r, 1.0f / sqrtf((float)F), wt);
#undef DEMO_N
    }
    if (bad) {
        gguf_free(gf);
        ggml_free(g);
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 8);
    int rc = -1;
    if (tmp) {
        snprintf(tmp, plen + 8, "%s.tmp", path);
        if (!gguf_write_to_file(gf, tmp, false)) {
            snprintf(err, errlen, "cannot write %s", tmp);
            unlink(tmp);
        } else if (rename(tmp, path) != 0) {
            snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
            unlink(tmp);
        } else {
            rc = 0;
        }
        free(tmp);
    } else {
        snprintf(err, errlen, "out of memory");
    }
    gguf_free(gf);
    ggml_free(g);
    return rc;
}

int demo_model_ensure(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) == 0) return 0;
    return demo_model_write(path, err, errlen);
}
