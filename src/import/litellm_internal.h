/*
 * litellm_internal — what the files of the LiteLLM converter share. Not for
 * use outside src/import; the public API is import.h.
 *
 * Who owns what:
 * - litellm.c drives a conversion: text -> ytree (config/yaml_tree.h, every
 *   node with its line:col) -> the top-level sections -> the skuld document
 *   (emit.h) -> text. It owns the diagnostics, the key walker and the value
 *   readers.
 * - litellm_settings.c maps router_settings, litellm_settings and
 *   general_settings (resilience, cache, redis, store, auth).
 * - litellm_models.c owns model_list: each entry becomes one deployment
 *   (provider type from the model's prefix, providers shared by equal
 *   type/base_url/api_key), model groups with balance and weights, and the
 *   fallbacks, aliases and their checks against the converted names.
 * - litellm_azure.c checks an azure/ entry against the azure type's rules
 *   (deployment name, base_url, api_key) and resolves its api_version.
 *
 * Invariants:
 * - Everything lives in the conversion's arena (imp_conv_t.a) and dies with
 *   it; diagnostics are copied into the imp_result_t with malloc.
 * - A value that reaches the document passed the same checks skuld's loader
 *   makes (src/config): names without whitespace, base URLs, secrets without
 *   control characters and not starting with env:/file:, numbers in range.
 *   What fails them is reported (not converted) instead of written.
 * - Messages name keys and env:NAME references, never a secret's value; a
 *   value is quoted in a message only through imp__show() and only for
 *   non-secret keys (a provider prefix, a strategy, a cache type, a name).
 */
#ifndef SKULD_IMPORT_LITELLM_INTERNAL_H
#define SKULD_IMPORT_LITELLM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/yaml_tree.h"
#include "core/arena.h"
#include "import/emit.h"
#include "import/import.h"

#define IMP_SHOW_MAX 64

typedef struct imp_prov {
    const char *name;        /* unique among providers */
    const char *type;        /* skuld provider type */
    const char *base_url;    /* no trailing slash */
    const char *api_key;     /* as written to the output: "env:NAME" or a literal; NULL = none */
    const char *api_version; /* azure: written as api_version; NULL for other types */
    bool entra;              /* azure: api_key is an Entra ID token (auth: entra) */
} imp_prov_t;

typedef struct imp_dep {
    const ynode_t *at; /* the model_list item */
    size_t index;      /* in model_list */
    const char *name;  /* model_name */
    const char *upstream;
    const char *id; /* explicit deployment id, or NULL (skuld's default) */
    const ynode_t *id_at;
    size_t prov;
    bool has_weight, has_rpm, has_tpm;
    double weight;
    int64_t rpm, tpm;
    bool has_in, has_out, has_cached;
    double p_in, p_out, p_cached; /* USD per 1M tokens */
    int64_t context_window;       /* 0 = unknown */
    bool has_timeout, has_max_par;
    uint64_t timeout_ms;
    int64_t max_par;
    const char *capability; /* "embeddings" / "completions" or NULL (all) */
    int64_t out_weight;     /* weight written; -1 = none */
    const char *balance;    /* written for groups of several deployments; NULL = none */
    size_t model;           /* index in imp_conv_t.models */
} imp_dep_t;

/* A public model name: the group of its deployments, with what skuld keeps
 * per model (fallbacks, the content-policy alternate), written on each of
 * its deployments. */
typedef struct imp_model {
    const char *name;
    size_t n_deps, first; /* deployments; the first one's index in deps */
    const char **fb;      /* fallback model names, in order, no duplicates */
    size_t n_fb, cap_fb;
    const char *on_policy;
} imp_model_t;

/* A model_name of model_list that was not converted (for fallback messages). */
typedef struct imp_skipped {
    const char *name;
} imp_skipped_t;

/* An optional setting: set or not, and where it came from. */
typedef struct imp_opt {
    bool set;
    int64_t v;
    const ynode_t *at;
} imp_opt_t;

typedef struct imp_route {
    const char *name, *target;
} imp_route_t;

typedef struct imp_conv {
    arena_t *a;
    const char *file;
    imp_result_t *res;
    bool oom;
    /* model_list */
    imp_dep_t *deps;
    size_t n_deps;
    imp_prov_t *provs;
    size_t n_provs;
    imp_skipped_t *skipped;
    size_t n_skipped;
    imp_model_t *models; /* one per distinct model_name among deps, first-seen order */
    size_t n_models;
    /* routing_strategy, resolved (litellm.c reads it, litellm_models.c applies it) */
    const char *strategy; /* LiteLLM's name; NULL = simple-shuffle (the default) */
    const ynode_t *strategy_at;
    /* resilience: server.resilience keys */
    imp_opt_t num_retries, per_try_ms, breaker_failures, ejection_ms, max_concurrency;
    bool breaker_off;
    /* routes from model_group_alias */
    imp_route_t *routes;
    size_t n_routes;
    /* cache, redis, store, auth */
    bool cache_on, cache_redis;
    imp_opt_t cache_ttl_ms;
    const char *redis_url; /* as written: a literal redis:// URL or env:REDIS_URL */
    const char *store_url;
    const char *master_key; /* as written */
} imp_conv_t;

/* ---- diagnostics (litellm.c) ---- */

void imp__nc(imp_conv_t *c, const ynode_t *at, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void imp__warn(imp_conv_t *c, const ynode_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void imp__err(imp_conv_t *c, const ynode_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A value or key for a message: at most IMP_SHOW_MAX bytes, control bytes as '?'.
 * Never called on a secret. */
const char *imp__show(imp_conv_t *c, const char *s, size_t len);
/* "parent.key" / "parent[i]" in the arena (key sanitised with imp__show). */
const char *imp__path(imp_conv_t *c, const char *parent, const char *key);
const char *imp__index(imp_conv_t *c, const char *parent, size_t i);

/* ---- reading LiteLLM values (litellm.c) ---- */

/* One known key of a mapping: the walker fills val (NULL when absent or
 * null) and at (the key node). */
typedef struct imp_key {
    const char *key;
    const ynode_t *val, *at;
} imp_key_t;

/* An unsupported key with the reason it is not converted. */
typedef struct imp_reason {
    const char *key, *why;
} imp_reason_t;

/* Walks mapping map (path names it): fills keys[] for known keys; reports every
 * other key as not converted (with its reason from `reasons`, else `other`);
 * a key that appears again later is reported (LiteLLM, like PyYAML, keeps the
 * last one). map must be a mapping. */
void imp__walk(imp_conv_t *c, const ynode_t *map, const char *path, imp_key_t *keys, size_t nk,
               const imp_reason_t *reasons, size_t nr, const char *other);
const ynode_t *imp__kv(const imp_key_t *keys, size_t nk, const char *key);
const ynode_t *imp__kat(const imp_key_t *keys, size_t nk, const char *key);

/* A scalar's text, or NULL after an error ("expected a string") at v. */
const char *imp__scalar(imp_conv_t *c, const ynode_t *v, const char *path);
/* "os.environ/NAME": NAME (a valid variable name) or NULL. *bad set when the
 * prefix is there but the name is not a valid variable name. */
const char *imp__env_ref(imp_conv_t *c, const ynode_t *v, bool *bad);
/* Typed readers: 1 = read, 0 = not converted (reported, e.g. os.environ/),
 * -1 = bad input (reported as an error). */
int imp__number(imp_conv_t *c, const ynode_t *v, const char *path, double *out);
int imp__integer(imp_conv_t *c, const ynode_t *v, const char *path, int64_t lo, int64_t hi,
                 int64_t *out);
int imp__boolean(imp_conv_t *c, const ynode_t *v, const char *path, bool *out);
/* Seconds (a number) as milliseconds for a skuld duration: 1 / 0 / -1 as above. */
int imp__seconds(imp_conv_t *c, const ynode_t *v, const char *path, uint64_t *ms);
/* A secret for the output: os.environ/NAME -> "env:NAME"; a literal is
 * carried with a warning (or refused: control characters, env:/file: prefix).
 * NULL = not converted (reported). what names it in messages. */
const char *imp__secret(imp_conv_t *c, const ynode_t *v, const char *path, const char *what);
/* skuld's rule for model names and ids: non-empty, no whitespace/control bytes. */
bool imp__name_ok(const char *s, size_t len);
bool imp__has_nul(const ynode_t *v);

bool imp__env_not_here(imp_conv_t *c, const ynode_t *v, const char *path);
bool imp__secret_clean(const char *s, size_t len);
const ynode_t *imp__mapping_or_err(imp_conv_t *c, const ynode_t *v, const char *path);

/* ---- settings (litellm_settings.c) ---- */

void imp__settings(imp_conv_t *c, const ynode_t *router, const ynode_t *litellm);
void imp__general(imp_conv_t *c, const ynode_t *general);

/* ---- azure/ entries (litellm_azure.c) ---- */

/* An azure/ entry as litellm_models.c has read it. */
typedef struct imp_azure_in {
    const ynode_t *model; /* litellm_params.model */
    const char *model_path, *params_path;
    const char *deployment;  /* after "azure/", non-empty */
    const ynode_t *api_base; /* present */
    const char *api_base_path;
    const char *base;       /* api_base as base_url_ok read it */
    const ynode_t *api_key; /* NULL when absent */
    const char *api_key_path;
    const ynode_t *api_version; /* NULL when absent */
    const char *api_version_path;
    const ynode_t *ad_token; /* azure_ad_token, NULL when absent */
    const char *ad_token_path;
} imp_azure_in_t;

/* true when the entry can be written, with *api_version set and, for an
 * entry with azure_ad_token and no api_key, *key the token and *entra true;
 * *key comes in as litellm_models.c read api_key (or its default), NULL when
 * not converted. false after a not-converted report or an error (the entry
 * is skipped). */
bool imp__azure(imp_conv_t *c, const imp_azure_in_t *in, const char **key, const char **api_version,
                bool *entra);

/* ---- model_list (litellm_models.c) ---- */

void imp__model_list(imp_conv_t *c, const ynode_t *seq);
/* The fallbacks settings: a list of {model: [fallback, ...]} (kind
 * "fallbacks", "context_window_fallbacks" or "content_policy_fallbacks"). */
void imp__fallbacks(imp_conv_t *c, const ynode_t *v, const char *path, const char *kind);
void imp__default_fallbacks(imp_conv_t *c, const ynode_t *v, const char *path);
void imp__aliases(imp_conv_t *c, const ynode_t *v, const char *path);
/* After every section: balance and weights per group, default fallbacks. */
void imp__finish_models(imp_conv_t *c);
/* The longest fallback list of any model. */
size_t imp__longest_fallbacks(const imp_conv_t *c);
/* The most candidates of any model: its deployments plus those of each of
 * its fallbacks (for max_attempts). */
size_t imp__most_candidates(const imp_conv_t *c);
/* providers:, models: and routes: into root. */
void imp__emit_models(imp_conv_t *c, imp_doc_t *d, imp_node_t *root);

#endif
