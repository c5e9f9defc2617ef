/*
 * route cli — `skuld route explain`: the router's decision for one prompt
 * against a config file, as a table or JSON (no running gateway: every
 * deployment is cold).
 */
#include "route/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/provider.h"
#include "route/router.h"

/* ---------- skuld route explain ---------- */

static void rcli_usage(FILE *out)
{
    fprintf(out, "usage: skuld route explain -c FILE --model NAME --prompt TEXT\n"
                 "         [--max-tokens N] [--tools] [--image] [--json-mode]\n"
                 "         [--max-cost USD] [--max-latency-ms MS] [--min-quality Q] [--json]\n"
                 "  Live statistics are those of this process: none, so every deployment is\n"
                 "  cold (use POST /admin/route/explain on a running gateway for live ones).\n");
}

int route_cli(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[2], "explain") != 0) {
        rcli_usage(stderr);
        return 2;
    }
    const char *file = NULL, *model = NULL, *prompt = "";
    const char *cons[3] = {NULL, NULL, NULL};
    long max_tokens = 0;
    bool tools = false, image = false, json_mode = false, as_json = false;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && more)
            file = argv[++i];
        else if (!strcmp(a, "--model") && more)
            model = argv[++i];
        else if (!strcmp(a, "--prompt") && more)
            prompt = argv[++i];
        else if (!strcmp(a, "--max-tokens") && more)
            max_tokens = strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--max-cost") && more)
            cons[0] = argv[++i];
        else if (!strcmp(a, "--max-latency-ms") && more)
            cons[1] = argv[++i];
        else if (!strcmp(a, "--min-quality") && more)
            cons[2] = argv[++i];
        else if (!strcmp(a, "--tools"))
            tools = true;
        else if (!strcmp(a, "--image"))
            image = true;
        else if (!strcmp(a, "--json-mode"))
            json_mode = true;
        else if (!strcmp(a, "--json"))
            as_json = true;
        else {
            fprintf(stderr, "skuld route explain: unexpected argument '%s'\n", a);
            rcli_usage(stderr);
            return 2;
        }
    }
    if (!file || !model) {
        rcli_usage(stderr);
        return 2;
    }
    config_t *cfg = config_load_or_report(file, stderr);
    if (!cfg) return 1;
    json_t *content =
        image ? json_pack("[{s:s,s:s},{s:s,s:{s:s}}]", "type", "text", "text", prompt, "type",
                          "image_url", "image_url", "url", "data:image/png;base64,AA==")
              : json_string(prompt);
    json_t *body = json_pack("{s:s,s:[{s:s,s:o}]}", "model", model, "messages", "role", "user",
                             "content", content);
    if (max_tokens > 0) json_object_set_new(body, "max_tokens", json_integer(max_tokens));
    if (tools)
        json_object_set_new(
            body, "tools",
            json_pack("[{s:s,s:{s:s}}]", "type", "function", "function", "name", "f"));
    if (json_mode)
        json_object_set_new(body, "response_format", json_pack("{s:s}", "type", "json_object"));
    arena_t *a = arena_create(1 << 16);
    route_features_t f;
    route_features_init(&f);
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        const char *err = NULL;
        if (cons[i] && route_features_constraint(&f, route_constraint_headers[i], cons[i],
                                                 strlen(cons[i]), &err) < 0) {
            fprintf(stderr, "skuld route explain: %s: %s\n", route_constraint_headers[i], err);
            rc = 2;
        }
    }
    route_features_from_body(&f, a, EP_CHAT, body);
    f.explain = true;
    route_decision_t d;
    uint64_t rng = 0x5eed;
    if (!rc && route_decide(cfg, model, strlen(model), &f, a, 0, &rng, &d) < 0) {
        fprintf(stderr, "skuld route explain: '%s' is neither a route nor a model in %s\n", model,
                file);
        rc = 1;
    } else if (!rc) {
        buf_t o;
        buf_init(&o, 0);
        if (as_json) {
            route_explain_json(&d, &o, SIZE_MAX);
            buf_appends(&o, "\n");
        } else {
            route_explain_table(&d, &o);
        }
        fwrite(buf_data(&o), 1, o.len, stdout);
        buf_free(&o);
        rc = d.n_order ? 0 : 1;
    }
    json_decref(body);
    arena_destroy(a);
    config_unref(cfg);
    return rc;
}
