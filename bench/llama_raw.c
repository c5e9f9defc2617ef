/*
 * llama-raw — single-stream generation speed of plain libllama, the
 * reference that bench/local_inference.py compares skuld against.
 *
 *   llama-raw MODEL.gguf [--tokens N] [--threads N] [--prompt TEXT] [--runs N] [--parallel N]
 *             [--warmup N]
 *
 * Loads MODEL like the engine does (CPU backends from the library directory,
 * n_threads = cores available unless given), decodes the prompt, then
 * generates N tokens greedily one llama_decode per token (stopping only at
 * end of generation), and prints one JSON line per run:
 *   {"tokens":N,"seconds":S,"tokens_per_s":R}
 * timed from the first generated token's decode to the last, excluding the
 * prompt, as the gateway measurement does (first content chunk to last).
 * --parallel N (N > 1): N sequences decoded together, one batch of N tokens
 * per step, greedy (argmax) each: the engine's batching ceiling without the
 * gateway; tokens counts all sequences.
 * --warmup N: first an untimed, unprinted run of N tokens (first touches of
 * the weights, KV cells and thread start-up), so one process can give one
 * steady figure.
 */
#include <dlfcn.h>
#include <ggml-backend.h>
#include <libgen.h>
#include <llama.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void quiet(enum ggml_log_level level, const char *text, void *ud)
{
    if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static int32_t argmax(struct llama_context *ctx, const struct llama_vocab *vocab, int i)
{
    const float *l = llama_get_logits_ith(ctx, i);
    int n = llama_vocab_n_tokens(vocab), best = 0;
    for (int k = 1; k < n; k++)
        if (l[k] > l[best]) best = k;
    return best;
}

static int parallel_runs(struct llama_context *ctx, const struct llama_vocab *vocab,
                         const int32_t *toks, int n_prompt, int n_gen_arg, int par, int runs,
                         int threads, int warm)
{
    struct llama_batch b = llama_batch_init(n_prompt > par ? n_prompt : par, 0, 1);
    int32_t *next = calloc((size_t)par, sizeof *next);
    for (int r = warm > 0 ? -1 : 0; r < runs; r++) {
        int n_gen = r < 0 ? warm : n_gen_arg;
        llama_memory_clear(llama_get_memory(ctx), true);
        for (int s = 0; s < par; s++) {
            b.n_tokens = 0;
            for (int i = 0; i < n_prompt; i++) {
                b.token[i] = toks[i];
                b.pos[i] = i;
                b.n_seq_id[i] = 1;
                b.seq_id[i][0] = s;
                b.logits[i] = i == n_prompt - 1;
                b.n_tokens++;
            }
            if (llama_decode(ctx, b) != 0) return 1;
            next[s] = argmax(ctx, vocab, n_prompt - 1);
        }
        double t0 = now_s();
        char piece[256];
        for (int step = 1; step < n_gen; step++) {
            b.n_tokens = 0;
            for (int s = 0; s < par; s++) {
                llama_token_to_piece(vocab, next[s], piece, sizeof piece, 0, false);
                b.token[s] = next[s];
                b.pos[s] = n_prompt + step - 1;
                b.n_seq_id[s] = 1;
                b.seq_id[s][0] = s;
                b.logits[s] = true;
                b.n_tokens++;
            }
            if (llama_decode(ctx, b) != 0) return 1;
            for (int s = 0; s < par; s++) next[s] = argmax(ctx, vocab, s);
        }
        double dt = now_s() - t0;
        if (r < 0) continue;
        printf("{\"tokens\":%d,\"seconds\":%.6f,\"tokens_per_s\":%.1f,\"threads\":%d,"
               "\"parallel\":%d}\n",
               n_gen * par, dt, (double)(n_gen - 1) * par / dt, threads, par);
    }
    free(next);
    llama_batch_free(b);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: llama-raw MODEL.gguf [--tokens N] [--threads N] [--prompt TEXT] "
                        "[--runs N] [--parallel N] [--warmup N]\n");
        return 2;
    }
    const char *path = argv[1], *prompt = "Hello, tell me a story about a gateway.";
    int n_gen = 256, threads = 0, runs = 1, par = 1, warm = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tokens"))
            n_gen = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--prompt"))
            prompt = argv[i + 1];
        else if (!strcmp(argv[i], "--runs"))
            runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--parallel"))
            par = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup"))
            warm = atoi(argv[i + 1]);
    }
    if (threads <= 0) {
        cpu_set_t set;
        threads = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    }
    llama_log_set(quiet, NULL);
    Dl_info info;
    char dir[4096] = SKULD_LLAMA_LIB_DIR;
    if (dladdr((void *)ggml_backend_load_all_from_path, &info) && info.dli_fname &&
        strchr(info.dli_fname, '/')) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s", info.dli_fname);
        snprintf(dir, sizeof dir, "%s", dirname(tmp));
    }
    ggml_backend_load_all_from_path(dir);
    llama_backend_init();

    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(path, mp);
    if (!model) {
        fprintf(stderr, "llama-raw: cannot load %s\n", path);
        return 1;
    }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 4096;
    cp.n_batch = 512;
    cp.n_ubatch = 512;
    cp.n_seq_max = par > 1 ? (uint32_t)par : 1;
    cp.kv_unified = false;
    if (par > 1) cp.n_ctx = 4096 * (uint32_t)par;
    cp.n_threads = cp.n_threads_batch = threads;
    cp.no_perf = true;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) return 1;
    int32_t toks[1024];
    int n_prompt = llama_tokenize(vocab, prompt, (int32_t)strlen(prompt), toks, 1024, true, false);
    if (n_prompt <= 0) return 1;
    if (n_gen + n_prompt > 4096) n_gen = 4096 - n_prompt;
    if (warm + n_prompt > 4096) warm = 4096 - n_prompt;

    if (par > 1) return parallel_runs(ctx, vocab, toks, n_prompt, n_gen, par, runs, threads, warm);
    struct llama_sampler *smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(smpl, llama_sampler_init_greedy());
    for (int r = warm > 0 ? -1 : 0; r < runs; r++) {
        int n = r < 0 ? warm : n_gen;
        llama_memory_clear(llama_get_memory(ctx), true);
        llama_sampler_reset(smpl);
        struct llama_batch b = llama_batch_get_one(toks, n_prompt);
        if (llama_decode(ctx, b) != 0) return 1;
        int32_t tok = llama_sampler_sample(smpl, ctx, -1);
        double t0 = now_s();
        int produced = 1;
        char piece[256];
        while (produced < n && !llama_vocab_is_eog(vocab, tok)) {
            llama_token_to_piece(vocab, tok, piece, sizeof piece, 0, false);
            b = llama_batch_get_one(&tok, 1);
            if (llama_decode(ctx, b) != 0) return 1;
            tok = llama_sampler_sample(smpl, ctx, -1);
            produced++;
        }
        double dt = now_s() - t0;
        if (r < 0) continue;
        printf("{\"tokens\":%d,\"seconds\":%.6f,\"tokens_per_s\":%.1f,\"threads\":%d}\n", produced,
               dt, (produced - 1) / dt, threads);
    }
    llama_sampler_free(smpl);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
