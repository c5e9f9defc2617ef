/*
 * skuld — command line entry point.
 *
 *   skuld serve [-c FILE] [--listen ADDR]   run the gateway
 *   skuld check -c FILE                      validate a config
 *   skuld route explain -c FILE --model NAME --prompt TEXT
 *   skuld import litellm FILE [--strict]     convert a LiteLLM proxy config
 *   skuld version
 */
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "core/log.h"
#include "import/cli.h"
#include "local/cli.h"
#include "local/local.h"
#include "policy/cli.h"
#include "route/cli.h"
#include "server/gateway.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage:\n"
        "  skuld serve [-c FILE] [--listen ADDR]  run the gateway (embedded default without -c)\n"
        "  skuld check -c FILE                    validate a config; errors as FILE:LINE:COL\n"
        "  skuld demo-model -o PATH               write the small random-weight demo model\n"
        "    [--layers N] [--width N] [--ff N] [--heads N] [--type f32|q8_0|q4_0]\n"
        "                                         of another shape (default 2, 64, 256, 4, f32)\n"
        "  skuld pull URL [-o DIR] [--sha256 HEX] download a GGUF model (resume, checksum)\n"
        "  skuld pull --catalog FILE auto [-o DIR] pick from a catalog by available memory\n"
        "  skuld keys create|list|revoke [ID] -c FILE [options]  virtual API keys in the store\n"
        "  skuld route explain -c FILE --model NAME --prompt TEXT\n"
        "                                         the router's candidates, scores and choice\n"
        "  skuld import litellm FILE [--strict]   convert a LiteLLM proxy config.yaml to a skuld\n"
        "                                         config on stdout; what is not converted on "
        "stderr\n"
        "  skuld version                          print the version\n");
}

/* Options shared by serve and check. Returns 0, or 2 on a usage error. */
static int parse_opts(int argc, char **argv, const char **file, const char **listen)
{
    for (int i = 2; i < argc; i++) {
        if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc) {
            *file = argv[++i];
        } else if (listen && !strcmp(argv[i], "--listen") && i + 1 < argc) {
            *listen = argv[++i];
        } else {
            fprintf(stderr, "skuld: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    return 0;
}

static config_t *load(const char *file)
{
    return config_load_or_report(file, stderr);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("skuld %s\n", SKULD_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    const char *file = NULL, *listen = NULL;
    if (!strcmp(cmd, "check")) {
        if (parse_opts(argc, argv, &file, NULL)) return 2;
        if (!file) {
            fprintf(stderr, "skuld check: -c FILE is required\n");
            return 2;
        }
        config_t *cfg = load(file);
        if (!cfg) return 1;
        printf("%s: ok (%zu provider(s), %zu model(s))\n", file, cfg->n_providers, cfg->n_models);
        config_unref(cfg);
        return 0;
    }
    if (!strcmp(cmd, "serve")) {
        if (parse_opts(argc, argv, &file, &listen)) return 2;
        if (!file && local_cli_ensure_demo() != 0) return 1; /* embedded default's model */
        config_t *cfg = load(file);
        if (!cfg) return 1;
        if (local_start(cfg) != 0) { /* llamacpp models: load, start engine threads */
            config_unref(cfg);
            return 1;
        }
        int rc = gateway_run(cfg, file, listen);
        local_stop();
        config_unref(cfg);
        return rc;
    }
    if (!strcmp(cmd, "demo-model")) return local_cli_demo_model(argc, argv);
    if (!strcmp(cmd, "pull")) return local_cli_pull(argc, argv);
    if (!strcmp(cmd, "keys")) return policy_cli_keys(argc, argv);
    if (!strcmp(cmd, "route")) return route_cli(argc, argv);
    if (!strcmp(cmd, "import")) return imp_cli(argc, argv);
    fprintf(stderr, "skuld: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
