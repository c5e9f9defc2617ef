/*
 * import — converting another gateway's configuration into a skuld config
 * (`skuld import litellm FILE [--strict]`, README "Coming from LiteLLM").
 *
 * What it owns: the converter's core, a pure function from the text of a
 * LiteLLM proxy config.yaml to the text of an equivalent skuld config (YAML)
 * plus a list of diagnostics. It does no I/O, reads no environment variable,
 * and allocates nothing that survives imp_result_free(); the command line
 * (cli.c) reads the file, calls it, and prints. So the fuzz target links it
 * without libevent, curl or llama.cpp (tests/fuzz/fuzz_import_litellm.c).
 *
 * Invariants:
 * - On success (return 0) out->yaml is a NUL-terminated YAML document whose
 *   every key is one skuld's loader accepts and whose every value passes the
 *   loader's checks; `skuld check` accepts it once the environment variables
 *   it names (env:NAME) are set. Strings are quoted by the emitter (emit.h)
 *   whenever a plain scalar could be read back as something else.
 * - On bad input (not YAML, wrong shapes, too many entries) it returns -1,
 *   out->yaml is NULL and out->diags holds at least one IMP_ERROR.
 * - Diagnostics carry the 1-based line:col of the LiteLLM node they are about
 *   (src/config/yaml_tree.h keeps them) and are sorted by position. Whatever
 *   could not be mapped is one IMP_NOT_CONVERTED diagnostic naming its key
 *   path and why. No diagnostic ever holds a secret's value (api keys,
 *   passwords, the master key, database URLs, environment_variables values):
 *   messages name keys and env:NAME references only.
 * - A literal secret of the LiteLLM file may be carried into the output (the
 *   user asked for a conversion); each one is an IMP_WARNING recommending
 *   env:NAME.
 * - The input is capped at IMP_MAX_INPUT bytes and IMP_MAX_DEPLOYMENTS
 *   deployments, so work and output stay linear in the input.
 *
 * Threads: none of its own; a call touches only its own arguments.
 */
#ifndef SKULD_IMPORT_H
#define SKULD_IMPORT_H

#include <stddef.h>
#include <stdio.h>

#define IMP_MAX_INPUT (16u << 20) /* larger inputs are refused */
#define IMP_MAX_DEPLOYMENTS 10000 /* model_list entries */
#define IMP_MAX_LIST 1000         /* items of one fallbacks list, aliases, ... */

typedef enum {
    IMP_NOT_CONVERTED, /* "FILE:L:C: not converted: KEY (reason)" */
    IMP_WARNING,       /* "FILE:L:C: warning: message" (converted, but read this) */
    IMP_ERROR,         /* "FILE:L:C: error: message" (bad input: nothing written) */
} imp_diag_kind_t;

typedef struct imp_diag {
    imp_diag_kind_t kind;
    int line, col; /* 1-based; 0:0 when the diagnostic has no position */
    char *msg;     /* for IMP_NOT_CONVERTED: "KEY (reason)" */
} imp_diag_t;

typedef struct imp_result {
    char *yaml; /* the skuld config; NULL on bad input */
    size_t yaml_len;
    imp_diag_t *diags;
    size_t n_diags;
    size_t n_not_converted, n_warnings, n_errors;
} imp_result_t;

/* Convert a LiteLLM proxy config (text, len bytes; need not be NUL-terminated)
 * into a skuld config. `file` names the input in the output's header comment.
 * Returns 0, or -1 on bad input (out->diags says why). out is always filled
 * and must be released with imp_result_free(). */
int imp_litellm_convert(const char *text, size_t len, const char *file, imp_result_t *out);
void imp_result_free(imp_result_t *r);

/* Every diagnostic as one line, "FILE:LINE:COL: ..." (FILE: ... without a
 * position). */
void imp_result_print(const imp_result_t *r, const char *file, FILE *out);

#endif
