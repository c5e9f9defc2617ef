/*
 * cli.c — `skuld import litellm FILE [--strict]` (see cli.h). The only file
 * of src/import that does I/O: it reads the input, prints the output and the
 * diagnostics, and turns the result into an exit status.
 */
#include "import/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "import/import.h"

static int usage(void)
{
    fprintf(stderr, "usage: skuld import litellm FILE [--strict]\n"
                    "  writes the equivalent skuld config to stdout; what cannot be mapped is\n"
                    "  listed on stderr (--strict: exit 1 if anything was not converted)\n");
    return 2;
}

int imp_cli(int argc, char **argv)
{
    const char *file = NULL;
    bool strict = false;
    if (argc < 3 || strcmp(argv[2], "litellm") != 0) {
        if (argc >= 3)
            fprintf(stderr, "skuld import: unknown source '%s' (known: litellm)\n", argv[2]);
        return usage();
    }
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--strict")) {
            strict = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "skuld import: unknown option '%s'\n", argv[i]);
            return usage();
        } else if (!file) {
            file = argv[i];
        } else {
            fprintf(stderr, "skuld import: unexpected argument '%s'\n", argv[i]);
            return usage();
        }
    }
    if (!file) return usage();

    cfg_errors_t errs = {0};
    size_t len = 0;
    char *text = config_read_file(file, &len, &errs);
    if (!text) {
        config_errors_print(&errs, stderr); /* FILE: cannot open / too large */
        config_errors_free(&errs);
        return 1;
    }
    imp_result_t r;
    int rc = imp_litellm_convert(text, len, file, &r);
    free(text);
    imp_result_print(&r, file, stderr);
    int status = 0;
    if (rc != 0) {
        fprintf(stderr, "%s: nothing converted (%zu error(s))\n", file, r.n_errors);
        status = 1;
    } else {
        fwrite(r.yaml, 1, r.yaml_len, stdout);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            fprintf(stderr, "skuld import: cannot write the output\n");
            status = 1;
        } else if (r.n_not_converted) {
            fprintf(stderr, "%s: %zu setting(s) not converted%s\n", file, r.n_not_converted,
                    strict ? " (--strict: exit 1)" : "");
            if (strict) status = 1;
        }
    }
    imp_result_free(&r);
    return status;
}
