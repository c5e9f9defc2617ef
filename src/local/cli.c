/* local cli — see cli.h. */
#include "local/cli.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "local/demo_model.h"
#include "local/local.h"
#include "local/pull.h"

#define LOCAL_CLI_DEMO_USAGE                                                                       \
    "usage: skuld demo-model -o PATH [--layers N] [--width N] [--ff N] [--heads N] "               \
    "[--type f32|q8_0|q4_0]\n"

/* A whole decimal number in [1, INT_MAX]; else -1. */
static int local_cli__count(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > INT_MAX) return -1;
    return (int)v;
}

int local_cli_demo_model(int argc, char **argv)
{
    const char *out = NULL;
    demo_shape_t shape;
    demo_default_shape(&shape);
    static const struct {
        const char *flag;
        size_t off;
    } dims[] = {
        {"--layers", offsetof(demo_shape_t, n_layer)},
        {"--width", offsetof(demo_shape_t, n_embd)},
        {"--ff", offsetof(demo_shape_t, n_ff)},
        {"--heads", offsetof(demo_shape_t, n_head)},
    };
    for (int i = 2; i < argc; i++) {
        size_t d = 0;
        while (d < sizeof dims / sizeof dims[0] && strcmp(argv[i], dims[d].flag)) d++;
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(argv[i], "--type") && i + 1 < argc) {
            if (demo_wtype_parse(argv[++i], &shape.wtype) != 0) {
                fprintf(stderr, "skuld demo-model: --type is f32, q8_0 or q4_0, not '%s'\n",
                        argv[i]);
                return 2;
            }
        } else if (d < sizeof dims / sizeof dims[0] && i + 1 < argc) {
            int v = local_cli__count(argv[++i]);
            if (v < 0) {
                fprintf(stderr, "skuld demo-model: %s takes a positive whole number, not '%s'\n",
                        dims[d].flag, argv[i]);
                return 2;
            }
            *(int *)((char *)&shape + dims[d].off) = v;
        } else {
            fprintf(stderr, "skuld demo-model: unexpected argument '%s'\n", argv[i]);
            fputs(LOCAL_CLI_DEMO_USAGE, stderr);
            return 2;
        }
    }
    if (!out) {
        fputs(LOCAL_CLI_DEMO_USAGE, stderr);
        return 2;
    }
    char err[512];
    if (demo_shape_check(&shape, err, sizeof err) != 0) {
        fprintf(stderr, "skuld demo-model: %s\n", err);
        return 2;
    }
    if (demo_model_write_shape(out, &shape, err, sizeof err) != 0) {
        fprintf(stderr, "skuld demo-model: %s\n", err);
        return 1;
    }
    struct stat st;
    printf("%s: demo model written (%lld bytes, %d layers, %d wide, ff %d, %d heads, %s layers, "
           "random weights)\n",
           out, stat(out, &st) == 0 ? (long long)st.st_size : 0LL, shape.n_layer, shape.n_embd,
           shape.n_ff, shape.n_head, demo_wtype_name(shape.wtype));
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
