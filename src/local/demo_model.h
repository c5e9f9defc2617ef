/*
 * demo_model — writes the small random-weight demo model (DESIGN.md "Local
 * inference"): a llama-architecture GGUF, 2 layers, 64 wide, 4 heads, 2048
 * tokens of context, with the llama SPM vocabulary (32,000 tokens) that is
 * compiled into the binary (demo_vocab.c). Weights come from a fixed-seed
 * generator, so every written file is byte-identical. It generates text
 * through real llama.cpp inference (gibberish, by construction); it exists so
 * that the gateway, its tests and its benchmarks always have a local model.
 *
 * The shape (layers, width, feed-forward size, heads) can be chosen
 * (demo_model_write_shape): a wider, deeper random model decodes at the speed
 * of a real model of that size, which is what the local-inference benchmark
 * needs (bench/local_inference.py). The default shape writes the same bytes as
 * demo_model_write. Layer matrices are F32 by default (or Q8_0/Q4_0, like
 * most real GGUFs), the two vocabulary-sized matrices always Q8_0.
 *
 * Written with ggml's gguf_* API to PATH.tmp, then renamed to PATH, so a
 * reader never sees a half-written model. Called from the CLI and, once at
 * startup, by the embedded default config; not thread-safe with itself on
 * the same PATH.
 */
#ifndef SKULD_LOCAL_DEMO_MODEL_H
#define SKULD_LOCAL_DEMO_MODEL_H

#include <stddef.h>

enum {
    DEMO_N_EMBD = 64,
    DEMO_N_LAYER = 2,
    DEMO_N_HEAD = 4,
    DEMO_N_FF = 256,
    DEMO_N_CTX = 2048,
};

/* Storage of the layer matrices (attention and feed-forward). */
typedef enum demo_wtype {
    DEMO_W_F32 = 0, /* the default */
    DEMO_W_Q8_0,
    DEMO_W_Q4_0,
} demo_wtype_t;

typedef struct demo_shape {
    int n_layer;        /* 1..DEMO_MAX_LAYER */
    int n_embd;         /* a multiple of 32 (Q8_0 blocks), 32..DEMO_MAX_EMBD */
    int n_ff;           /* 1..DEMO_MAX_FF; a multiple of 32 unless wtype is F32 */
    int n_head;         /* divides n_embd into heads of an even size */
    demo_wtype_t wtype; /* layer matrices */
} demo_shape_t;

/* "f32", "q8_0", "q4_0" -> 0 and *out; -1 for anything else. */
int demo_wtype_parse(const char *s, demo_wtype_t *out);
const char *demo_wtype_name(demo_wtype_t t);

enum {
    DEMO_MAX_LAYER = 128,
    DEMO_MAX_EMBD = 8192,
    DEMO_MAX_FF = 32768,
};
/* Largest model the writer builds (it holds the whole model in memory once). */
#define DEMO_MAX_BYTES (4ull << 30)

/* The default shape: DEMO_N_LAYER, DEMO_N_EMBD, DEMO_N_FF, DEMO_N_HEAD. */
void demo_default_shape(demo_shape_t *s);

/* 0 if s is a shape the writer accepts; else -1 with the reason in err. */
int demo_shape_check(const demo_shape_t *s, char *err, size_t errlen);

/* Size of the written file's tensor data in bytes (the vocabulary adds ~0.7 MB). */
unsigned long long demo_shape_bytes(const demo_shape_t *s);

/* Write the demo model (default shape) to path, creating its directory (`skuld
 * demo-model -o skuld-data/demo.gguf` in a fresh state directory: the systemd
 * unit's ExecStartPre, the image's CMD). 0 on success; -1 with a message in err. */
int demo_model_write(const char *path, char *err, size_t errlen);

/* Write a model of the given shape (checked with demo_shape_check) to path. */
int demo_model_write_shape(const char *path, const demo_shape_t *shape, char *err, size_t errlen);

/* Write it only if path does not exist yet. */
int demo_model_ensure(const char *path, char *err, size_t errlen);

/* The embedded vocabulary GGUF. */
const unsigned char *demo_vocab_data(size_t *len);

#endif
