/*
 * fuzz_model_spec — a deployment registered at runtime (POST /admin/models):
 * its JSON spec goes through config_build() next to a fixed config file, the
 * path every admin model change and every restore from the store takes.
 *
 * Feeds: any bytes as the JSON text of one model spec.
 *
 * Checks, beyond "no crash" (ASan/UBSan) and "no leak" (both paths):
 * - config_build returns a config XOR a non-empty error list;
 * - errors in the spec are reported under the file name "registry" (the
 *   file's own text is valid, so every error is the spec's);
 * - a config it returns holds the file's model plus the registered one, as a
 *   runtime model, under the name the spec gives (when the spec is JSON, as
 *   the admin API sends it; the loader reads YAML, a superset).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config/config.h"
#include "fuzz_common.h"

static const char BASE[] = "providers:\n"
                           "  - {name: p, type: openai, base_url: 'http://127.0.0.1:1/v1'}\n"
                           "  - {name: a, type: anthropic, base_url: 'http://127.0.0.1:2'}\n"
                           "models:\n"
                           "  - {name: base, provider: p}\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *spec = malloc(size + 1); /* config_build takes C strings (the admin API's json_dumps) */
    if (!spec) abort();
    memcpy(spec, data, size);
    spec[size] = '\0';
    const char *extra[1] = {spec};
    cfg_errors_t errs = {0};
    config_t *c = config_build(BASE, sizeof BASE - 1, "fuzz.yaml", extra, 1, &errs);
    FZ_CHECK((c != NULL) != (errs.n > 0));
    for (size_t i = 0; i < errs.n; i++) {
        FZ_CHECK(errs.v[i].file && !strcmp(errs.v[i].file, "registry"));
        FZ_CHECK(errs.v[i].msg && errs.v[i].msg[0]);
    }
    if (c) {
        FZ_CHECK(c->n_models == 2);
        FZ_CHECK(c->models[0].runtime != c->models[1].runtime);
        FZ_CHECK(!strcmp(c->models[c->models[0].runtime ? 1 : 0].name, "base"));
        /* the admin API sends JSON (the loader reads the spec as YAML, a
         * superset): when it is JSON, the model is there under its name */
        json_t *j = json_loads(spec, 0, NULL);
        const char *name = json_string_value(json_object_get(j, "name"));
        if (name && !memchr(name, '\0', json_string_length(json_object_get(j, "name")))) {
            const cfg_model_t *m = config_find_model(c, name, strlen(name));
            FZ_CHECK(m && m->runtime);
        }
        json_decref(j);
        config_unref(c);
    }
    config_errors_free(&errs);
    free(spec);
    return 0;
}
