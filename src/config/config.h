/*
 * config — the configuration snapshot and its loader.
 *
 * A config_t is immutable once config_load_*() returns it and is shared by
 * reference count: every request takes a reference when it starts and drops it
 * when it ends, so a reload (issue: configuration) can swap in a new snapshot
 * while requests in flight keep the one they started with.
 *
 * The loader reads YAML (libyaml), rejects unknown keys, resolves secrets
 * written `env:NAME` or `file:PATH`, parses durations ("250ms", "30s", "5m",
 * "1h") and sizes ("4MiB", "512KiB", "1GiB", plain bytes), checks
 * cross-references, and reports every error it finds, each with the file, line
 * and column of the offending node ("FILE:LINE:COL: message"). It never logs
 * or prints a secret's value; messages name the reference ("env:OPENAI_KEY").
 *
 * Sections handled today: server, providers, models. The others named in
 * DESIGN.md are rejected ("section 'X' is not supported by this version yet")
 * until their issue lands; any other unknown key is an error too.
 */
#ifndef SKULD_CONFIG_H
#define SKULD_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct cfg_provider {
    char *name;
    char *type;         /* "openai", "echo" (built-in local model) */
    char *base_url;     /* no trailing slash; NULL for local types */
    char *api_key;      /* resolved secret; NULL when none; never logged */
    char *health_check; /* probe method: "models" (default), "chat" (1-token completion), "none" */
} cfg_provider_t;

typedef struct cfg_strlist {
    char **v;
    size_t n;
} cfg_strlist_t;

/* What a deployment can do ("capabilities:" in the config). */
enum {
    CAP_CHAT = 1u << 0,
    CAP_COMPLETIONS = 1u << 1,
    CAP_EMBEDDINGS = 1u << 2,
    CAP_VISION = 1u << 3,
    CAP_TOOLS = 1u << 4,
    CAP_JSON = 1u << 5,
    CAP_ALL = (1u << 6) - 1,
};
/* "chat" -> CAP_CHAT; 0 for an unknown name. */
unsigned config_capability(const char *name);
const char *config_capability_name(unsigned cap);

typedef struct cfg_price {
    double input, output, cached; /* USD per 1M tokens */
} cfg_price_t;

typedef struct cfg_model {
    char *name;                     /* public name clients send */
    const cfg_provider_t *provider; /* points into config_t.providers */
    char *upstream_model;           /* "model:" key; defaults to name */
    char *path;                     /* GGUF file, for local providers; NULL otherwise */
    cfg_price_t price;
    int64_t context_window; /* tokens; 0 = unknown */
    unsigned capabilities;  /* CAP_* mask; CAP_ALL when the config lists none */
    double quality;         /* prior quality 0..1; default 0.5 */
    cfg_strlist_t tags;
    int weight;                   /* relative share among deployments of one model; default 1 */
    double params_b;              /* parameter count in billions; 0 = unknown */
    char *hardware;               /* hardware class, e.g. "cpu", "gpu", "cloud"; may be NULL */
    char *region;                 /* for distance, e.g. "eu-west"; may be NULL */
    int parallel;                 /* local providers: concurrent sequences; default 4 */
    bool runtime;                 /* registered through the admin API, not from the file */
    struct metrics_series *stats; /* attached by the gateway after load; the loader leaves NULL */
} cfg_model_t;

typedef struct cfg_server {
    char *listen;            /* "HOST:PORT", "[V6]:PORT" or ":PORT"; default 127.0.0.1:8080 */
    int workers;             /* 0 = number of cores */
    size_t max_body_bytes;   /* default 4MiB */
    size_t max_header_bytes; /* default 16KiB */
    size_t max_upstream_body_bytes;  /* default 32MiB (non-streamed upstream answers) */
    uint64_t connect_timeout_ms;     /* default 5s */
    uint64_t request_timeout_ms;     /* default 600s; whole non-streamed upstream call */
    uint64_t stream_idle_timeout_ms; /* default 120s; longest gap between stream bytes */
    uint64_t client_idle_timeout_ms; /* default 75s; idle keep-alive client connection */
    uint64_t drain_timeout_ms;       /* default 30s; SIGTERM grace for in-flight requests */
    char *default_model;             /* used when a request omits "model"; may be NULL */
    bool access_log;                 /* default true: one JSON line per request on stdout */
    char *master_key;                /* admin API secret (env:/file:); NULL = admin API off */
    uint64_t health_interval_ms;     /* deployment probe period; 0 = off; default 30s */
} cfg_server_t;

typedef struct cfg_store {
    char *url; /* "sqlite://PATH" or "postgres://..."; NULL = no store */
} cfg_store_t;

/* redis: shared state between instances (limits, budgets, cache). */
typedef struct cfg_redis {
    char *url;           /* "redis://HOST:PORT[/DB]"; NULL = no Redis */
    uint64_t timeout_ms; /* per command; default 50ms */
    bool fail_open;      /* on_failure: open (default) | closed */
} cfg_redis_t;

/* cache: response cache and in-flight de-duplication (src/cache). */
typedef struct cfg_dedupe {
    bool enabled;       /* default true when the cache section is present */
    uint64_t window_ms; /* a finished identical request is served from its result; default 5s */
    int max_joiners;    /* requests sharing one upstream call besides its leader; default 1000 */
} cfg_dedupe_t;

typedef struct cfg_cache {
    bool present;           /* a cache section was given */
    bool enabled;           /* exact response cache; default false */
    uint64_t ttl_ms;        /* default 60s */
    size_t max_bytes;       /* memory tier cap; default 64MiB (read at start) */
    size_t max_entry_bytes; /* largest answer stored; default 4MiB */
    int shards;             /* memory tier shards; default 16 (read at start) */
    bool cache_sampled;     /* also cache requests with temperature > 0; default false */
    bool persistent;        /* persistent tier in the store; default false */
    bool redis;             /* Redis tier (needs redis.url); default false */
    cfg_dedupe_t dedupe;
} cfg_cache_t;

typedef struct config {
    atomic_int refs;
    uint64_t generation; /* set by the gateway when the snapshot is published */
    char *source;        /* file path, or "<embedded>" */
    char *text;          /* the YAML this snapshot was built from */
    size_t text_len;
    cfg_store_t store;
    cfg_redis_t redis;
    cfg_cache_t cache;
    cfg_server_t server;
    cfg_provider_t *providers;
    size_t n_providers;
    cfg_model_t *models;
    size_t n_models;
} config_t;

typedef struct cfg_error {
    char *file;
    int line; /* 1-based */
    int col;  /* 1-based */
    char *msg;
} cfg_error_t;

typedef struct cfg_errors {
    cfg_error_t *v;
    size_t n;
} cfg_errors_t;

/* Load and validate. On any error returns NULL and fills errs (all errors). */
config_t *config_load_file(const char *path, cfg_errors_t *errs);
config_t *config_load_string(const char *yaml, size_t len, const char *name, cfg_errors_t *errs);

/*
 * Build a snapshot from YAML text plus deployments registered at runtime:
 * extra[i] is one model as a JSON object with the same keys as a config model.
 * Errors in extra[i] are reported with the file name "registry". A runtime
 * model may not reuse a name from the file.
 */
config_t *config_build(const char *yaml, size_t len, const char *name, const char *const *extra,
                       size_t n_extra, cfg_errors_t *errs);
/* Read a config file (capped at 16 MiB) into a malloc'd NUL-terminated string. */
char *config_read_file(const char *path, size_t *len, cfg_errors_t *errs);

/* The embedded default used by `skuld serve` without -c. */
extern const char config_embedded_yaml[];
config_t *config_default(cfg_errors_t *errs);

/* "FILE:LINE:COL: message\n" per error. */
void config_errors_print(const cfg_errors_t *errs, FILE *out);
void config_errors_free(cfg_errors_t *errs);

config_t *config_ref(config_t *c);
void config_unref(config_t *c);

const cfg_model_t *config_find_model(const config_t *c, const char *name, size_t len);

/* Value parsers, exposed for tests and for later sections. Return 0 or -1. */
int config_parse_duration_ms(const char *s, uint64_t *out);
int config_parse_size(const char *s, size_t *out);

#endif
