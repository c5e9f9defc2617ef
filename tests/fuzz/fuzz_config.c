/*
 * fuzz_config — the config loader (config_load_string, src/config/config.h)
 * on YAML text: libyaml, the line/column tree (yaml_tree.c) and every
 * section's table-driven validation.
 *
 * Feeds: any bytes as the text of a config file.
 *
 * Checks, beyond "no crash" (ASan/UBSan) and "no leak" (LeakSanitizer, on
 * both the success and the error path):
 * - the loader returns a config XOR a non-empty error list;
 * - every error names the file it was given, a 1-based line and column
 *   within the text, and a message;
 * - a config it returns is refcounted: config_ref/config_unref pairs release
 *   it exactly once.
 * Secrets (env:/file:) may be named by the text; the dictionary does not
 * suggest them, and a missing one is just an error.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fz_dup(data, size);
    /* An upper bound on libyaml's line numbers: it breaks lines at LF, CR,
     * CRLF, NEL (C2 85), LS and PS (E2 80 A8/A9); an error may point one line
     * past the last one (end of stream). */
    size_t lines = 2;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n' || data[i] == '\r' || data[i] == 0x85 || data[i] == 0xa8 ||
                 data[i] == 0xa9;
    cfg_errors_t errs;
    memset(&errs, 0, sizeof errs);
    config_t *c = config_load_string(text, size, "fuzz.yaml", &errs);
    if (c) {
        FZ_CHECK(errs.n == 0);
        config_t *r = config_ref(c);
        FZ_CHECK(r == c);
        config_unref(r);
        config_unref(c);
    } else {
        FZ_CHECK(errs.n > 0);
        for (size_t i = 0; i < errs.n; i++) {
            const cfg_error_t *e = &errs.v[i];
            FZ_CHECK(e->msg != NULL);
            FZ_CHECK(e->file != NULL && strcmp(e->file, "fuzz.yaml") == 0);
            FZ_CHECK(e->line >= 1 && (size_t)e->line <= lines);
            FZ_CHECK(e->col >= 1);
        }
    }
    config_errors_free(&errs);
    free(text);
    return 0;
}
