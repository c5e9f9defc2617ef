/*
 * fuzz_import_litellm — the LiteLLM converter (imp_litellm_convert,
 * src/import/import.h) on YAML text: libyaml, the line/column tree, every
 * section's mapping, the emitter's quoting, and skuld's own loader on what
 * it writes.
 *
 * Feeds: any bytes as the text of a LiteLLM config.yaml.
 *
 * Checks, beyond "no crash" (ASan/UBSan) and "no leak" (LeakSanitizer):
 * - it returns 0 with a NUL-terminated output of yaml_len bytes and no
 *   error, XOR -1 with no output and at least one error;
 * - the counters match the diagnostics; every diagnostic has a message, a
 *   position within the text (or none) and they are sorted by position;
 *   a not-converted one reads "KEY (reason)";
 * - printed, every diagnostic is one line starting with the file name;
 * - the output is a config skuld's loader accepts (config_load_string)
 *   once every env:NAME it names is set: the README's promise that the
 *   result passes `skuld check`. REDIS_URL is set to a redis:// URL, every
 *   other variable to a plain secret.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "fuzz_common.h"
#include "import/import.h"

/* setenv for each env:NAME of the output (names as the loader accepts them). */
static void set_env_refs(const char *y)
{
    for (const char *p = strstr(y, "env:"); p; p = strstr(p + 4, "env:")) {
        const char *s = p + 4, *e = s;
        while ((*e >= 'A' && *e <= 'Z') || (*e >= 'a' && *e <= 'z') || (*e >= '0' && *e <= '9') ||
               *e == '_')
            e++;
        if (e == s || (*s >= '0' && *s <= '9')) continue;
        /* Any length: the loader puts no bound on a name, so neither may this. */
        char *name = strndup(s, (size_t)(e - s));
        FZ_CHECK(name != NULL);
        setenv(name, strcmp(name, "REDIS_URL") == 0 ? "redis://127.0.0.1:6379" : "fuzz-secret", 1);
        free(name);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fz_dup(data, size);
    size_t lines = 2; /* libyaml breaks lines at LF, CR, NEL, LS and PS */
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n' || data[i] == '\r' || data[i] == 0x85 || data[i] == 0xa8 ||
                 data[i] == 0xa9;

    imp_result_t r;
    int rc = imp_litellm_convert(text, size, "fuzz.yaml", &r);
    FZ_CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        FZ_CHECK(r.yaml != NULL && r.n_errors == 0);
        FZ_CHECK(strlen(r.yaml) == r.yaml_len);
    } else {
        FZ_CHECK(r.yaml == NULL && r.yaml_len == 0 && r.n_errors > 0);
    }
    size_t nc = 0, warn = 0, err = 0;
    for (size_t i = 0; i < r.n_diags; i++) {
        const imp_diag_t *d = &r.diags[i];
        FZ_CHECK(d->msg != NULL && d->msg[0] != '\0');
        FZ_CHECK(strchr(d->msg, '\n') == NULL);
        FZ_CHECK((d->line == 0 && d->col == 0) || (d->line >= 1 && d->col >= 1));
        FZ_CHECK((size_t)d->line <= lines);
        if (i)
            FZ_CHECK(r.diags[i - 1].line < d->line ||
                     (r.diags[i - 1].line == d->line && r.diags[i - 1].col <= d->col));
        if (d->kind == IMP_NOT_CONVERTED) {
            size_t n = strlen(d->msg);
            FZ_CHECK(n >= 4 && d->msg[n - 1] == ')' && strstr(d->msg, " (") != NULL);
            nc++;
        } else if (d->kind == IMP_WARNING) {
            warn++;
        } else {
            FZ_CHECK(d->kind == IMP_ERROR);
            err++;
        }
    }
    FZ_CHECK(nc == r.n_not_converted && warn == r.n_warnings && err == r.n_errors);

    char *printed = NULL;
    size_t plen = 0;
    FILE *mem = open_memstream(&printed, &plen);
    FZ_CHECK(mem != NULL);
    imp_result_print(&r, "fuzz.yaml", mem);
    FZ_CHECK(fclose(mem) == 0);
    size_t nl = 0;
    for (const char *l = printed; l < printed + plen; nl++) {
        FZ_CHECK(strncmp(l, "fuzz.yaml:", 10) == 0);
        const char *e = memchr(l, '\n', (size_t)(printed + plen - l));
        FZ_CHECK(e != NULL);
        l = e + 1;
    }
    FZ_CHECK(nl == r.n_diags);
    free(printed);

    if (rc == 0) {
        set_env_refs(r.yaml);
        cfg_errors_t errs;
        memset(&errs, 0, sizeof errs);
        config_t *c = config_load_string(r.yaml, r.yaml_len, "imported.yaml", &errs);
        if (!c) {
            fprintf(stderr, "--- imported config\n%s--- its errors\n", r.yaml);
            config_errors_print(&errs, stderr);
        }
        FZ_CHECK(c != NULL);
        config_unref(c);
        config_errors_free(&errs);
    }
    imp_result_free(&r);
    free(text);
    return 0;
}
