/*
 * engine — one loaded GGUF model and the thread that runs it (llama.cpp).
 *
 * Ownership and threads. An engine_t owns a llama_model, one llama_context
 * with `parallel` sequences (slots), an optional second context for
 * embeddings (created on first use), and one engine thread. Only the engine
 * thread calls llama_decode and the samplers; nothing else touches the
 * contexts. The model's vocabulary is read-only after load, so tokenizing
 * (engine_tokenize, engine_count_tokens, engine_chat_prompt) is safe from any
 * thread, and worker loops do it to size and validate a request before it is
 * queued.
 *
 * Continuous batching. Jobs wait in a FIFO until a slot is free; every step
 * the thread builds one llama_batch holding the next token of every
 * generating slot plus as many prompt tokens of joining slots as fit in
 * n_batch, decodes it once, and samples each slot whose logits it produced.
 * A job that finishes (end of generation, stop string, max_tokens, context
 * full) or is cancelled leaves at the next step: its sequence is removed from
 * the KV cache and the slot takes the next waiting job.
 *
 * Handing results back. A job is shared by the engine and one owner (a
 * provider call on a worker loop), with a reference count and a mutex. The
 * engine appends generated text under the mutex and calls the owner's notify
 * function (which must be thread-safe: the llamacpp provider calls
 * event_active on its own event) at most once until the owner takes the
 * text with engine_job_take. engine_job_release drops the owner's side: the
 * job is cancelled if still running, and notify is never called after
 * release returns, so the owner may free what notify touches right away.
 *
 * Text handed out is always whole UTF-8 and never includes a stop string or
 * any prefix of one that might still complete.
 */
#ifndef SKULD_LOCAL_ENGINE_H
#define SKULD_LOCAL_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct engine engine_t;
typedef struct engine_job engine_job_t;

typedef struct engine_params {
    const char *name; /* for log lines */
    const char *path; /* GGUF file */
    int parallel;     /* slots (concurrent sequences); default 4 */
    int n_ctx_slot;   /* context per slot in tokens; 0 = model's training context, at most 4096 */
    int n_threads;    /* 0 = cores available to this process */
    int n_batch;      /* tokens per decode step; default 512 */
} engine_params_t;

void engine_default_params(engine_params_t *p);

/* Load the model and start the engine thread. NULL with a message in err on failure. */
engine_t *engine_create(const engine_params_t *p, char *err, size_t errlen);
/* Stop the thread, cancel what is left, free everything. No job may be held by an owner. */
void engine_destroy(engine_t *e);

/* Context per slot: the longest prompt + completion one request may use. */
int engine_n_ctx_slot(const engine_t *e);
int engine_n_threads(const engine_t *e);
int engine_n_embd(const engine_t *e);

/* Exact token count of text in the model's vocabulary (with BOS when the model adds one).
 * Any thread. -1 on failure. */
long engine_count_tokens(const engine_t *e, const char *text, size_t len);

/* Tokenize into a malloc'd array (free()). parse_special: render "<|im_start|>" etc. as
 * control tokens, for chat-templated text. Any thread. Returns count, or -1. */
int engine_tokenize(const engine_t *e, const char *text, size_t len, bool parse_special,
                    int32_t **out);

typedef struct engine_msg {
    const char *role;
    const char *content;
} engine_msg_t;

/* Apply the model's chat template (GGUF tokenizer.chat_template, through
 * llama_chat_apply_template); when the GGUF has none or llama.cpp does not
 * recognise it, the built-in "chatml" template. Appends the prompt to out.
 * Returns 0, or -1 (out of memory). Any thread. */
int engine_chat_prompt(const engine_t *e, const engine_msg_t *msgs, size_t n, buf_t *out);
/* "gguf" or "chatml (fallback)": which template engine_chat_prompt uses. */
const char *engine_template_source(const engine_t *e);

typedef struct engine_sampling {
    float temperature; /* <= 0: greedy */
    float top_p;       /* 1 = off */
    int top_k;         /* 0 = off */
    uint32_t seed;     /* used when has_seed */
    bool has_seed;
    int max_tokens;      /* 0 = until the context is full */
    const char *stop[4]; /* stop strings (copied at submit) */
    int n_stop;
} engine_sampling_t;

void engine_default_sampling(engine_sampling_t *s);

typedef void (*engine_notify_fn)(void *ud);

/* Queue a generation for tokens (copied). The job holds two references: one
 * for the engine, one for the caller (drop it with engine_job_release). */
engine_job_t *engine_submit(engine_t *e, const int32_t *tokens, int n, const engine_sampling_t *s,
                            engine_notify_fn notify, void *ud);

/* Queue an embedding of each token list (copied): mean-pooled, L2-normalised. */
engine_job_t *engine_submit_embed(engine_t *e, int32_t *const *tokens, const int *n, int count,
                                  engine_notify_fn notify, void *ud);

typedef enum {
    ENGINE_RUNNING = 0,
    ENGINE_STOP,   /* end of generation token or a stop string */
    ENGINE_LENGTH, /* max_tokens, or the context is full */
    ENGINE_FAILED, /* decode error */
} engine_state_t;

typedef struct engine_result {
    engine_state_t state;
    long completion_tokens; /* generated so far */
    const char *error;      /* when ENGINE_FAILED */
} engine_result_t;

/* Owner side: append the text produced since the last call to out and report
 * the state. Re-arms notify. */
void engine_job_take(engine_job_t *j, buf_t *out, engine_result_t *res);
/* When an embedding job has finished: its vectors, count * engine_n_embd floats. */
const float *engine_job_embeddings(const engine_job_t *j, int *count);
/* Drop the owner's reference (cancels a running job). */
void engine_job_release(engine_job_t *j);

/* Number of slots in use and jobs waiting (racy snapshot, for tests and metrics). */
void engine_load(engine_t *e, int *busy, int *waiting);

#endif
