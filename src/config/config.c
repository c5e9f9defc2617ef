/*
 * config.c — drives a load of the YAML configuration into a config_t, and
 * owns the snapshot's lifecycle.
 *
 * Pipeline: bytes -> ytree (yaml_tree.c, positions kept) -> walk the tree
 * section by section into a freshly calloc'd config_t -> cross-reference
 * checks. parse_root fixes the order (providers, server, models, routes,
 * store, redis, auth, limits, budgets, cache, then default_model); each
 * section's schema and checks live in its own file (config_internal.h lists
 * them). The tree is freed before returning; the config_t copies every
 * string it keeps, so it owns all of its memory (plain malloc: it outlives
 * requests) and config_free() releases it when the last reference drops.
 *
 * Errors: a loader_t collects every error (never stops at the first), each
 * with the file name and the 1-based line:col of the node at fault — a key's
 * position for unknown/duplicate/misplaced keys, a value's position for bad
 * values and broken cross-references, a mapping's position for a missing
 * required key. They are sorted by position before being handed back. On any
 * error the half-built config is freed and NULL returned.
 *
 * Sections named in DESIGN.md but not implemented yet are rejected by name
 * (unsupported_sections) so users learn they are recognised but pending.
 */
#include "config/config_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

/* The configuration `skuld serve` runs without -c. */
/* The demo model (skuld-data/demo.gguf, LOCAL_DEMO_MODEL_PATH in local/local.h) is
 * written by `skuld serve` before this config is loaded, when it is absent. */
const char config_embedded_yaml[] = "server:\n"
                                    "  listen: 127.0.0.1:8080\n"
                                    "  default_model: demo\n"
                                    "store:\n"
                                    "  url: sqlite://skuld.db\n"
                                    "providers:\n"
                                    "  - name: local\n"
                                    "    type: llamacpp\n"
                                    "  - name: builtin\n"
                                    "    type: echo\n"
                                    "models:\n"
                                    "  - name: demo\n"
                                    "    provider: local\n"
                                    "    path: skuld-data/demo.gguf\n"
                                    "    default_max_tokens: 64\n"
                                    "  - name: echo\n"
                                    "    provider: builtin\n";

#define CONFIG_FILE_MAX (16u << 20) /* larger config files are refused */

/* Sections DESIGN.md names that later versions implement. */
static const char *const unsupported_sections[] = {
    "telemetry",
    "optimizer",
};

static const char *const top_sections[] = {"server", "providers", "models",  "store",  "redis",
                                           "auth",   "limits",    "budgets", "routes", "cache"};
enum {
    T_SERVER,
    T_PROVIDERS,
    T_MODELS,
    T_STORE,
    T_REDIS,
    T_AUTH,
    T_LIMITS,
    T_BUDGETS,
    T_ROUTES,
    T_CACHE
};

/* A section value: null means "empty"; otherwise it must be `kind`. */
static const ynode_t *section(loader_t *L, const ynode_t *v, const char *name, ynode_kind_t kind)
{
    if (!v || ytree_is_null(v)) return NULL;
    if (v->kind != kind) {
        config__err_at(L, v, "%s: expected %s, got %s", name,
                       kind == YNODE_MAPPING ? "a mapping" : "a sequence", ytree_kind_name(v));
        return NULL;
    }
    return v;
}

static void parse_root(loader_t *L, config_t *c, const ynode_t *root)
{
    const ynode_t *sec[COUNTOF(top_sections)] = {NULL};

    if (!root || ytree_is_null(root)) { /* empty file: all defaults */
        config__parse_runtime_models(L, c);
        return;
    }
    if (root->kind != YNODE_MAPPING) {
        config__err_at(L, root, "expected a mapping at top level, got %s", ytree_kind_name(root));
        return;
    }
    for (size_t i = 0; i < root->n; i++) {
        const ynode_t *k = root->pairs[i].key;
        if (!config__check_key(L, k) || config__duplicate_key(L, root, i, "at top level")) continue;
        size_t s = 0;
        while (s < COUNTOF(top_sections) && !config__scalar_is(k, top_sections[s])) s++;
        if (s < COUNTOF(top_sections)) {
            sec[s] = root->pairs[i].value;
            continue;
        }
        size_t u = 0;
        while (u < COUNTOF(unsupported_sections) && !config__scalar_is(k, unsupported_sections[u]))
            u++;
        if (u < COUNTOF(unsupported_sections))
            config__err_at(L, k, "section '%s' is not supported by this version yet",
                           unsupported_sections[u]);
        else
            config__unknown_key(L, k, "at top level", top_sections, COUNTOF(top_sections));
    }

    /* Providers first: models point into c->providers, which must not move. */
    const ynode_t *provs = section(L, sec[T_PROVIDERS], "providers", YNODE_SEQUENCE);
    if (provs && provs->n) config__parse_providers(L, c, provs);

    /* The server section first: models start from server.resilience. */
    const ynode_t *server = section(L, sec[T_SERVER], "server", YNODE_MAPPING);
    const ynode_t *dm_at = NULL;
    if (server) config__parse_server(L, c, server, &dm_at);

    const ynode_t *models = section(L, sec[T_MODELS], "models", YNODE_SEQUENCE);
    config__parse_models(L, c, models);

    const ynode_t *routes = section(L, sec[T_ROUTES], "routes", YNODE_SEQUENCE);
    if (routes && routes->n) config__parse_routes(L, c, routes);

    const ynode_t *store = section(L, sec[T_STORE], "store", YNODE_MAPPING);
    if (store) config__parse_store(L, c, store);

    /* issue 8 (policy): after models, which limits and budgets name */
    const ynode_t *redis = section(L, sec[T_REDIS], "redis", YNODE_MAPPING);
    if (redis) config__parse_redis(L, c, redis);
    const ynode_t *auth = section(L, sec[T_AUTH], "auth", YNODE_MAPPING);
    if (auth) config__parse_auth(L, c, auth);
    const ynode_t *limits = section(L, sec[T_LIMITS], "limits", YNODE_MAPPING);
    if (limits) config__parse_limits(L, c, limits);
    const ynode_t *budgets = section(L, sec[T_BUDGETS], "budgets", YNODE_MAPPING);
    if (budgets) config__parse_budgets(L, c, budgets);

    const ynode_t *cache = section(L, sec[T_CACHE], "cache", YNODE_MAPPING);
    if (cache) {
        const ynode_t *redis_at = NULL, *persistent_at = NULL;
        config__parse_cache(L, c, cache, &redis_at, &persistent_at);
        if (c->cache.redis && !c->redis.url)
            config__err_at(L, redis_at, "cache.redis needs a top-level redis section with a url");
        if (c->cache.persistent && !c->store.url)
            config__err_at(L, persistent_at, "cache.persistent needs a store section with a url");
    }

    if (server) {
        const char *dm = c->server.default_model;
        if (dm && dm_at && !config_find_model(c, dm, strlen(dm)) &&
            !config_find_route(c, dm, strlen(dm)))
            config__err_at(L, dm_at, "default_model '%s' is not a configured model", SHOWN(dm_at));
    }
}

static void config_free(config_t *c)
{
    if (!c) return;
    config__providers_free(c);
    config__models_free(c);
    config__routes_free(c);
    config__server_free(c);
    config__store_free(c);
    config__redis_free(c); /* issue 8 (policy) */
    config__auth_free(c);
    config__limits_free(c);
    config__budgets_free(c);
    free(c->text);
    free(c->source);
    free(c);
}

static config_t *load(loader_t *L, const char *data, size_t len)
{
    ytree_error_t yerr;
    ytree_t *t = ytree_parse(data, len, &yerr);
    if (!t) {
        config__err_pos(L, yerr.line, yerr.col, "%s", yerr.msg);
        return NULL;
    }
    config_t *c = calloc(1, sizeof(*c));
    if (!c || !(c->source = strdup(L->file)) || !(c->text = strndup(data, len)) ||
        config__set_server_defaults(&c->server) < 0) {
        config__err_pos(L, 0, 0, "out of memory");
    } else {
        config__set_cache_defaults(&c->cache);
        c->text_len = len;
        c->limits.default_max_tokens = 1024; /* issue 8 defaults */
        c->redis.timeout_ms = 50;            /* redis: 50 ms per command, fail open */
        c->redis.fail_open = true;
        c->auth.hmac_window_ms = 300000;
        atomic_init(&c->refs, 1);
        parse_root(L, c, ytree_root(t));
    }
    ytree_free(t);
    if (L->n_err) {
        config_free(c);
        if (L->errs) config__sort_errors(L->errs);
        return NULL;
    }
    return c;
}

static void errs_reset(cfg_errors_t *errs)
{
    if (errs) {
        errs->v = NULL;
        errs->n = 0;
    }
}

config_t *config_load_string(const char *yaml, size_t len, const char *name, cfg_errors_t *errs)
{
    loader_t L = {.file = name ? name : "<string>", .errs = errs};
    errs_reset(errs);
    return load(&L, yaml, len);
}

char *config_read_file(const char *path, size_t *len, cfg_errors_t *errs)
{
    loader_t L = {.file = path, .errs = errs};
    FILE *f = fopen(path, "rb");
    if (!f) {
        config__err_pos(&L, 0, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    buf_t b;
    buf_init(&b, CONFIG_FILE_MAX);
    buf_status_t st = BUF_OK;
    for (;;) {
        char *w = buf_reserve(&b, 8192, &st);
        if (!w) break;
        size_t r = fread(w, 1, 8192, f);
        buf_commit(&b, r);
        if (r < 8192) break;
    }
    int read_errno = ferror(f) ? errno : 0;
    fclose(f);
    if (st == BUF_TOOBIG)
        config__err_pos(&L, 0, 0, "file is larger than %u bytes", CONFIG_FILE_MAX);
    else if (st != BUF_OK)
        config__err_pos(&L, 0, 0, "out of memory");
    else if (read_errno)
        config__err_pos(&L, 0, 0, "cannot read: %s", strerror(read_errno));
    if (L.n_err) {
        buf_free(&b);
        return NULL;
    }
    *len = b.len;
    if (!b.mem) return strdup(""); /* empty file */
    return b.mem; /* buf keeps data NUL-terminated from offset 0 (nothing consumed) */
}

config_t *config_build(const char *yaml, size_t len, const char *name, const char *const *extra,
                       size_t n_extra, cfg_errors_t *errs)
{
    loader_t L = {
        .file = name ? name : "<string>", .errs = errs, .extra = extra, .n_extra = n_extra};
    errs_reset(errs);
    return load(&L, yaml, len);
}

config_t *config_load_or_report(const char *path, FILE *out)
{
    cfg_errors_t errs = {0};
    config_t *cfg = path ? config_load_file(path, &errs) : config_default(&errs);
    if (!cfg) config_errors_print(&errs, out);
    config_errors_free(&errs);
    return cfg;
}

config_t *config_load_file(const char *path, cfg_errors_t *errs)
{
    errs_reset(errs);
    size_t len;
    char *text = config_read_file(path, &len, errs);
    if (!text) return NULL;
    loader_t L = {.file = path, .errs = errs};
    config_t *c = load(&L, text, len);
    free(text);
    return c;
}

config_t *config_default(cfg_errors_t *errs)
{
    return config_load_string(config_embedded_yaml, sizeof(config_embedded_yaml) - 1, "<embedded>",
                              errs);
}

void config_errors_print(const cfg_errors_t *errs, FILE *out)
{
    if (!errs) return;
    for (size_t i = 0; i < errs->n; i++) {
        const cfg_error_t *e = &errs->v[i];
        if (e->line > 0)
            fprintf(out, "%s:%d:%d: %s\n", e->file, e->line, e->col, e->msg);
        else
            fprintf(out, "%s: %s\n", e->file, e->msg);
    }
}

void config_errors_free(cfg_errors_t *errs)
{
    if (!errs) return;
    for (size_t i = 0; i < errs->n; i++) {
        free(errs->v[i].file);
        free(errs->v[i].msg);
    }
    free(errs->v);
    errs->v = NULL;
    errs->n = 0;
}

config_t *config_ref(config_t *c)
{
    if (c) atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void config_unref(config_t *c)
{
    if (!c) return;
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) config_free(c);
}
