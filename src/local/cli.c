/* local cli — see cli.h. */
#include "local/cli.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "local/demo_model.h"
#include "local/local.h"
#include "local/pull.h"

int local_cli_demo_model(int argc, char **argv)
{
    const char *out = NULL;
    for (int i = 2; i < argc; i++) {
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc) {
            out = argv[++i];
        } else {
            fprintf(stderr, "skuld demo-model: unexpected argument '%s'\n", argv[i]);
            out = NULL;
            break;
        }
    }
    if (!out) {
        fprintf(stderr, "usage: skuld demo-model -o PATH\n");
        return 2;
    }
    char err[512];
    if (demo_model_write(out, err, sizeof err) != 0) {
        fprintf(stderr, "skuld demo-model: %s\n", err);
        return 1;
    }
    struct stat st;
    printf("%s: demo model written (%lld bytes, %d layers, %d wide, random weights)\n", out,
           stat(out, &st) == 0 ? (long long)st.st_size : 0LL, DEMO_N_LAYER, DEMO_N_EMBD);
    return 0;
}

int local_cli_ensure_demo(void)
{
    struct stat st;
    if (stat(LOCAL_DEMO_MODEL_PATH, &st) == 0) return 0;
    log_info("writing the demo model to %s (first run)", LOCAL_DEMO_MODEL_PATH);
    char err[512];
    if (demo_model_ensure(LOCAL_DEMO_MODEL_PATH, err, sizeof err) != 0) {
        log_error("cannot write the demo model: %s", err);
        return -1;
    }
    return 0;
}

int local_cli_pull(int argc, char **argv)
{
    return pull_main(argc, argv);
}
