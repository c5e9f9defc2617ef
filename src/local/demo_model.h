/*
 * demo_model — writes the small random-weight demo model (DESIGN.md "Local
 * inference"): a llama-architecture GGUF, 2 layers, 64 wide, 4 heads, 2048
 * tokens of context, with the llama SPM vocabulary (32,000 tokens) that is
 * compiled into the binary (demo_vocab.c). Weights come from a fixed-seed
 * generator, so every written file is byte-identical. It generates text
 * through real llama.cpp inference (gibberish, by construction); it exists so
 * that the gateway, its tests and its benchmarks always have a local model.
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

/* Write the demo model to path. 0 on success; -1 with a message in err. */
int demo_model_write(const char *path, char *err, size_t errlen);

/* Write it only if path does not exist yet (creating its directory). */
int demo_model_ensure(const char *path, char *err, size_t errlen);

/* The embedded vocabulary GGUF. */
const unsigned char *demo_vocab_data(size_t *len);

#endif
