/* local — see local.h. */
#include "local/local.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

typedef struct local__entry {
    char *name;
    engine_t *engine;
} local__entry_t;

static local__entry_t *local__v;
static size_t local__n;

int local_start(const config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_models; i++) {
        const cfg_model_t *m = &cfg->models[i];
        if (strcmp(m->provider->type, "llamacpp") != 0) continue;
        engine_params_t p;
        engine_default_params(&p);
        p.name = m->name;
        p.path = m->path;
        p.parallel = m->parallel > 0 ? m->parallel : 4;
        if (m->context_window > 0 && m->context_window < (1 << 24))
            p.n_ctx_slot = (int)m->context_window;
        char err[512];
        engine_t *e = engine_create(&p, err, sizeof err);
        if (!e) {
            log_error("model %s: %s", m->name, err);
            local_stop();
            return -1;
        }
        local__entry_t *nv = realloc(local__v, (local__n + 1) * sizeof *nv);
        char *name = strdup(m->name);
        if (!nv || !name) {
            free(name);
            if (nv) local__v = nv;
            engine_destroy(e);
            local_stop();
            return -1;
        }
        local__v = nv;
        local__v[local__n].name = name;
        local__v[local__n].engine = e;
        local__n++;
    }
    return 0;
}

void local_stop(void)
{
    for (size_t i = 0; i < local__n; i++) {
        engine_destroy(local__v[i].engine);
        free(local__v[i].name);
    }
    free(local__v);
    local__v = NULL;
    local__n = 0;
}

engine_t *local_engine(const char *model_name)
{
    for (size_t i = 0; i < local__n; i++)
        if (strcmp(local__v[i].name, model_name) == 0) return local__v[i].engine;
    return NULL;
}

long local_count_tokens(const cfg_model_t *m, const char *text, size_t len)
{
    engine_t *e = local_engine(m->name);
    return e ? engine_count_tokens(e, text, len) : -1;
}
