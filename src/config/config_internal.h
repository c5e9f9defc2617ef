/*
 * config_internal — what the files of the config loader share. Not for use
 * outside src/config; the public API is config.h.
 *
 * Who owns what:
 * - config.c drives a load: text -> ytree -> a calloc'd config_t, the
 *   top-level keys, the order in which sections are parsed, the defaults set
 *   before parsing, config_free and the snapshot's reference count.
 * - One file per section (server.c, store.c, providers.c, models.c,
 *   routes.c, resilience.c, redis.c, auth.c, limits.c, budgets.c, cache.c)
 *   owns that section's schema table (field_t), its parse function, its
 *   cross-checks and the freeing of what it allocated.
 * - walk.c is the table-driven mapping walker every section uses (key checks,
 *   "did you mean", typed values into a struct by offset).
 * - helpers.c holds error collection, quoting values for messages, the value
 *   parsers (integers, durations, sizes), name tables and secrets.
 *
 * Invariants:
 * - Errors go through config__err_at / config__err_pos into the loader_t and
 *   never stop the load: every error is reported, and any error fails it.
 *   They are sorted by position (stable) before being handed back, so only
 *   errors at the same position keep the order in which they were found.
 * - A message never holds a secret's value: values are quoted with SHOWN
 *   (capped at SHOW_MAX bytes, control bytes replaced), never for secrets;
 *   secrets are wiped when freed (config__free_secret).
 * - Sections are parsed in the order config.c parse_root fixes (providers,
 *   server, models, routes, store, redis, auth, limits, budgets, cache,
 *   then default_model); a section may read those parsed before it (models
 *   point into c->providers and start from server.resilience; routes,
 *   limits and budgets name models).
 * - The config_t copies every string it keeps: no pointer into the tree
 *   outlives the load. The free functions accept a half-built config (they
 *   run on the error path too).
 * - A loader_t belongs to one load on one thread; nothing here is shared.
 */
#ifndef SKULD_CONFIG_INTERNAL_H
#define SKULD_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "config/yaml_tree.h"

#define SECRET_FILE_MAX (64u << 10) /* larger secret files are refused */
#define SHOW_MAX 64                 /* bytes of a value quoted in a message */
#define COUNTOF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the loader and its errors (helpers.c) ---- */

typedef struct loader {
    const char *file;
    cfg_errors_t *errs; /* may be NULL: errors are only counted */
    size_t n_err;
    const char *const *extra; /* runtime models as JSON objects (config_build) */
    size_t n_extra;
    struct model_refs *refs; /* per model: nodes of fallbacks/on_content_policy (resolved last) */
    struct ytree **extra_trees; /* runtime models' trees, freed once references are resolved */
    bool registry;              /* parsing runtime models (config_build) */
    int (*mpos)[2];             /* routing: line/col of each model's id (or name) node */
} loader_t;

void config__err_pos(loader_t *L, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* At n's position (0:0 when n is NULL). */
void config__err_at(loader_t *L, const ynode_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Stable insertion sort by position. */
void config__sort_errors(cfg_errors_t *errs);

/* Copies a scalar for quoting in a message: at most SHOW_MAX bytes, control
 * bytes replaced by '?', "..." when cut. Never called on a secret. */
const char *config__show(char out[SHOW_MAX + 4], const char *s, size_t len);
#define SHOWN(node) config__show((char[SHOW_MAX + 4]){0}, (node)->str, (node)->len)

/* strdup, or NULL after reporting "out of memory" at `at`. */
char *config__dup_str(loader_t *L, const ynode_t *at, const char *s);

/* ---- value parsers (helpers.c; durations and sizes are public: config.h) ---- */

int config__parse_digits(const char **p, uint64_t *out);
int config__parse_int(const char *s, int64_t *out);
const char *config__fmt_size(char out[32], uint64_t v);
int config__name_index(const char *const *names, size_t n, const char *s);
const char *config__name_list(char out[160], const char *const *names, size_t n);
void config__strlist_free(cfg_strlist_t *l);

/* ---- secrets (helpers.c) ---- */

char *config__resolve_secret(loader_t *L, const ynode_t *at, const char *raw);
void config__free_secret(char *s);

/* ---- the mapping walker (walk.c) ---- */

typedef enum {
    FT_STRING,
    FT_INT,
    FT_BOOL,
    FT_SIZE,
    FT_DURATION,
    FT_NUMBER,
    FT_STRLIST,
    FT_MAPPING, /* nested section: only located by the walker, parsed by the caller */
} ftype_t;

typedef struct field {
    const char *key;
    ftype_t type;
    size_t off;        /* destination offset in the section's struct */
    int64_t min, max;  /* bounds for FT_INT, FT_SIZE (min only), FT_DURATION (min only) */
    double dmin, dmax; /* bounds for FT_NUMBER */
    bool required;
} field_t;

#define MAX_FIELDS 24 /* the most fields one walk may take */

bool config__scalar_is(const ynode_t *n, const char *s);
bool config__check_key(loader_t *L, const ynode_t *k);
bool config__duplicate_key(loader_t *L, const ynode_t *map, size_t i, const char *where);
void config__unknown_key(loader_t *L, const ynode_t *key, const char *where,
                         const char *const *valid, size_t n_valid);
bool config__want_scalar(loader_t *L, const ynode_t *v, const char *key, const char *what);
void config__walk_map_split(loader_t *L, const ynode_t *map, const char *what,
                            const field_t *fields, size_t nf, void *dst, size_t split, void *dst2,
                            const ynode_t **keys, const ynode_t **vals);
void config__walk_map(loader_t *L, const ynode_t *map, const char *what, const field_t *fields,
                      size_t nf, void *dst, const ynode_t **keys, const ynode_t **vals);
void *config__parse_items(loader_t *L, const ynode_t *seq, const char *what, const field_t *fields,
                          size_t nf, size_t size, size_t *n_out, size_t pick,
                          const ynode_t ***picked);

/* ---- sections ---- */

/* server.c */
int config__set_server_defaults(cfg_server_t *s);
void config__parse_server(loader_t *L, config_t *c, const ynode_t *map,
                          const ynode_t **default_model_at);
void config__server_free(config_t *c);

/* store.c */
void config__parse_store(loader_t *L, config_t *c, const ynode_t *map);
void config__store_free(config_t *c);

/* providers.c */
struct provider_type {
    const char *name;
    bool remote;   /* true: base_url required, api_key allowed; false: neither */
    unsigned caps; /* default capabilities of its models (CAP_*) */
};
const struct provider_type *config__find_provider_type(const char *name);
const cfg_provider_t *config__find_provider(const config_t *c, const char *name);
void config__parse_providers(loader_t *L, config_t *c, const ynode_t *seq);
void config__providers_free(config_t *c);
/* vertex.c: the vertex-only keys (project, location, publisher, token_url,
 * credentials; in that order in keys/vals): refused for other types; for
 * vertex checked, defaulted (base_url), and the service-account key loaded. */
void config__check_vertex(loader_t *L, const ynode_t *map, cfg_provider_t *p,
                          const char *credentials, const ynode_t **keys, const ynode_t **vals);

/* resilience.c */
void config__set_resilience_defaults(cfg_resilience_t *r);
void config__parse_resilience(loader_t *L, const ynode_t *map, cfg_resilience_t *r);

/* models.c */
bool config__model_name_ok(const char *s);
void config__parse_models(loader_t *L, config_t *c, const ynode_t *seq);
void config__parse_runtime_models(loader_t *L, config_t *c);
void config__models_free(config_t *c);

/* routes.c */
extern const char *const config__strategy_names[ROUTE_STRAT__COUNT];
void config__parse_routes(loader_t *L, config_t *c, const ynode_t *seq);
void config__routes_free(config_t *c);

/* redis.c, auth.c, limits.c, budgets.c (used by src/policy) */
void config__parse_redis(loader_t *L, config_t *c, const ynode_t *map);
void config__redis_free(config_t *c);
void config__parse_auth(loader_t *L, config_t *c, const ynode_t *map);
void config__auth_free(config_t *c);
void config__parse_limits(loader_t *L, config_t *c, const ynode_t *map);
void config__limits_free(config_t *c);
void config__parse_budgets(loader_t *L, config_t *c, const ynode_t *map);
void config__budgets_free(config_t *c);

/* cache.c */
void config__set_cache_defaults(cfg_cache_t *k);
void config__parse_cache(loader_t *L, config_t *c, const ynode_t *map, const ynode_t **redis_at,
                         const ynode_t **persistent_at);

#endif
