/*
 * embed — OpenAI embeddings for every provider that does not pass the
 * request through (echo, llamacpp, gemini, ollama): what the request asks
 * for, checked once (the inputs, encoding_format, dimensions, no field the
 * deployment would drop), and the one writer of the answer, so every path
 * answers the same shape:
 *
 *   {"object":"list","data":[{"object":"embedding","index":i,"embedding":V}],
 *    "model":M,"usage":{"prompt_tokens":N,"total_tokens":N}}
 *
 * V is an array of numbers (encoding_format "float", the default), each a
 * float32 printed with 9 significant digits so it reads back exactly, or
 * with "base64" the base64 of the little-endian float32 bytes (what OpenAI
 * sends, and what the official SDK asks for by default and decodes).
 * dimensions N keeps a vector's first N components and L2-normalises them
 * (Matryoshka-style truncation, as OpenAI's text-embedding-3 models do), so
 * with dimensions every vector is unit length, also one an upstream cut
 * itself without renormalising (Gemini below its full size); asking for
 * more components than a vector has is refused.
 *
 * Pure functions over JSON and buffers; any thread.
 */
#ifndef SKULD_PROVIDER_EMBED_H
#define SKULD_PROVIDER_EMBED_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"
#include "core/buf.h"
#include "provider/provider.h"

#define EMBED_MAX_INPUTS 2048 /* inputs per request, as OpenAI */
#define EMBED_MAX_DIMS 65536  /* components of one vector, asked or answered */

typedef struct embed_opts {
    bool base64; /* encoding_format "base64" */
    int dims;    /* dimensions; 0 = as the model gives them */
    size_t n;    /* inputs */
} embed_opts_t;

/* Check an OpenAI embeddings request for a provider that answers it itself:
 * input a string or an array of 1..EMBED_MAX_INPUTS strings, encoding_format
 * "float" / "base64" / null, dimensions a positive integer / null, and no
 * field but model, input, encoding_format, dimensions and user (an end-user
 * id no such provider takes: not forwarded). 0 with o filled, or
 * PROV_EBADREQ with out->error, error_code and error_param set (a 400;
 * with a NULL arena, an unknown field's name is not quoted). */
int embed_request(arena_t *a, const json_t *body, embed_opts_t *o, prov_call_t *out);
/* The i-th input (i < o->n of a checked request). */
const char *embed_input(const json_t *body, size_t i, size_t *len);

/* The answer: begin, one vector per input in order, end. embed_vector
 * returns -1, writing nothing, when o->dims is larger than n. */
void embed_begin(buf_t *out);
int embed_vector(buf_t *out, const embed_opts_t *o, size_t index, const float *v, int n);
void embed_end(buf_t *out, const char *model, long prompt_tokens);

/* An upstream's vectors (a JSON array of o->n items: each the array of
 * numbers itself, or with key an object holding it under key) as the whole
 * answer into out. Returns status; 400 with the dimensions refusal in out
 * when a vector is shorter than o->dims; -1 when vectors is not that. */
int embed_json_answer(buf_t *out, const embed_opts_t *o, const json_t *vectors, const char *key,
                      const char *model, long prompt_tokens, int status);

/* The refusal of a dimensions larger than the model's n, as an OpenAI
 * error object (400, invalid_value, param dimensions) into out. */
void embed_dims_error(buf_t *out, const embed_opts_t *o, int n);

#endif
