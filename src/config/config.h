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
 * Sections handled today: server, store, providers, models, routes. The others named in
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
    char *api_version;  /* azure: the api-version query parameter (CONFIG_AZURE_API_VERSION) */
    bool bearer;        /* azure: api_key is an Entra ID token sent as Authorization: Bearer
                           ("auth: entra"), not an api-key header */
    /* vertex: Vertex AI with a service-account key (config/vertex.c) */
    char *project, *location; /* the GCP project and region */
    char *publisher;          /* "google" (Gemini) or "anthropic" (Claude) */
    char *token_url;          /* the OAuth2 token endpoint (the key's token_uri, or token_url) */
    char *sa_email;           /* the key's client_email (the JWT's iss) */
    char *sa_key;             /* the key's private_key (PEM); a secret, never logged */
} cfg_provider_t;

typedef struct cfg_strlist {
    char **v;
    size_t n;
} cfg_strlist_t;

/* What a deployment can do ("capabilities:" in the config; without the key,
 * its provider type's defaults: config_default_capabilities). A request that
 * needs one a deployment lacks never reaches it (README "Capabilities"). */
enum {
    CAP_CHAT = 1u << 0,
    CAP_COMPLETIONS = 1u << 1,
    CAP_EMBEDDINGS = 1u << 2,
    CAP_VISION = 1u << 3, /* image content parts */
    CAP_TOOLS = 1u << 4,  /* tools / functions */
    CAP_JSON = 1u << 5,   /* response_format json_object / json_schema */
    CAP_AUDIO = 1u << 6,  /* input_audio content parts */
    CAP_FILES = 1u << 7,  /* file content parts */
    CAP_N = 1u << 8,      /* several answers in one call: n > 1, best_of > 1 */
    CAP_ALL = (1u << 9) - 1,
};
#define CONFIG_CAPABILITY_LIST "chat, completions, embeddings, vision, tools, json, audio, files, n"
/* "chat" -> CAP_CHAT; 0 for an unknown name. */
unsigned config_capability(const char *name);
const char *config_capability_name(unsigned cap);
/* What a deployment of provider type `type` can do when its config lists no
 * capabilities; CAP_ALL for an unknown type (refused by the loader anyway). */
unsigned config_default_capabilities(const char *type);

typedef struct cfg_price {
    double input, output, cached; /* USD per 1M tokens */
} cfg_price_t;

/*
 * Resilience settings (retries, fallbacks, breakers, hedging, deadlines,
 * queueing): one struct, one loader (config.c parse_resilience), used for
 * server.resilience (the defaults) and a model's `resilience:` override (keys
 * given there replace the defaults one by one). Durations in ms; 0 = off
 * unless said otherwise. Defaults in config.c set_resilience_defaults and in
 * the README (### Resilience).
 */
enum { CFG_HEDGE_OFF = 0, CFG_HEDGE_FIXED, CFG_HEDGE_P95 };
typedef struct cfg_resilience {
    int max_attempts;                /* upstream attempts per request, all candidates; default 3 */
    int retries_per_deployment;      /* extra attempts on one deployment (backoff); default 0 */
    uint64_t backoff_base_ms;        /* default 25ms; full jitter over base*2^n */
    uint64_t backoff_max_ms;         /* default 250ms */
    uint64_t retry_after_max_ms;     /* a longer Retry-After: no retry of that deployment; 2s */
    double retry_budget;             /* retries in flight <= budget * active requests; 0.2 */
    int retry_budget_min;            /* ... or at least this many; default 3 */
    uint64_t per_try_timeout_ms;     /* non-streamed attempt; 0 = server.request_timeout */
    uint64_t deadline_ms;            /* whole request; 0 = none (x-skuld-deadline-ms sets one) */
    int hedge;                       /* CFG_HEDGE_*; default off */
    uint64_t hedge_delay_ms;         /* CFG_HEDGE_FIXED: the delay; P95: the floor (default 10ms) */
    uint64_t first_chunk_timeout_ms; /* streams: attempt start to first event; 0 = off */
    uint64_t idle_gap_timeout_ms;  /* streams: gap between bytes; 0 = server.stream_idle_timeout */
    int breaker_failures;          /* consecutive failures that open; default 5; 0 = off */
    double breaker_failure_rate;   /* failure ratio over the window that opens; 0.5; 0 = off */
    uint64_t breaker_window_ms;    /* default 10s */
    int breaker_min_requests;      /* in the window before the rate counts; default 20 */
    uint64_t ejection_time_ms;     /* first ejection; doubles per repeat; default 30s */
    uint64_t max_ejection_time_ms; /* cap; default 300s */
    int max_concurrency;           /* attempts in flight per deployment; 0 = unlimited */
    int queue_size;                /* waiting requests per worker; default 1024 */
    uint64_t queue_timeout_ms;     /* default 5s; then 429 */
} cfg_resilience_t;

typedef struct cfg_model {
    char *name;                     /* public name clients send */
    const cfg_provider_t *provider; /* points into config_t.providers */
    char *upstream_model;           /* "model:" key; defaults to name */
    char *path;                     /* GGUF file, for local providers; NULL otherwise */
    cfg_price_t price;
    int64_t context_window; /* tokens; 0 = unknown */
    unsigned capabilities; /* CAP_* mask; the provider type's defaults when the config lists none */
    double quality;        /* prior quality 0..1; default 0.5 */
    cfg_strlist_t tags;
    int weight;                   /* relative share among deployments of one model; default 1 */
    double params_b;              /* parameter count in billions; 0 = unknown */
    char *hardware;               /* hardware class, e.g. "cpu", "gpu", "cloud"; may be NULL */
    char *region;                 /* for distance, e.g. "eu-west"; may be NULL */
    int parallel;                 /* local providers: concurrent sequences; default 4 */
    int default_max_tokens;       /* llamacpp: the cap of a request that sets neither max_tokens
                                     nor max_completion_tokens; default
                                     CONFIG_LOCAL_DEFAULT_MAX_TOKENS; 0 = the context window */
    bool runtime;                 /* registered through the admin API, not from the file */
    struct metrics_series *stats; /* attached by the gateway after load; the loader leaves NULL */
    /* resilience */
    cfg_strlist_t fallbacks;                    /* model names, tried in order after this one */
    const struct cfg_model **fallback_models;   /* resolved fallbacks (n = fallbacks.n) */
    char *on_content_policy;                    /* alternate model for content-policy refusals */
    const struct cfg_model *content_policy_alt; /* resolved; NULL = none */
    cfg_resilience_t resil;                     /* server.resilience + this model's overrides */
    struct resil_dep *dep; /* process-wide breaker/concurrency state, attached with stats */
    /* routing (issue 6) */
    char *id; /* deployment identity: "id:" key, else name when the name is unique, else
                 name@provider; names the deployment in x-skuld-model and metrics */
    int64_t cap_rpm, cap_tpm;        /* "capacity:" requests / tokens per minute; 0 = unlimited */
    int cap_concurrency;             /* "capacity:" concurrent requests; 0 = unlimited */
    int balance;                     /* ROUTE_STRAT_* for this model's deployments; -1 = unset */
    struct route_stats *rstats;      /* live stats, attached after load (route/stats.h) */
    bool rs_prepared;                /* static factors below computed by route_stats_attach */
    bool rs_local;                   /* in-process provider (no base_url): distance 1 */
    float rs_size, rs_hardware;      /* size and hardware factors */
    uint64_t rs_region_h, rs_area_h; /* hashes of region and its area (text before '-') */
} cfg_model_t;

/* ---- routing (issue 6): routes are virtual models over deployments ---- */
enum { /* scoring factors */
       ROUTE_F_QUALITY,
       ROUTE_F_LATENCY,
       ROUTE_F_COST,
       ROUTE_F_RELIABILITY,
       ROUTE_F_SIZE,
       ROUTE_F_HARDWARE,
       ROUTE_F_DISTANCE,
       ROUTE_F__COUNT
};
enum { /* selection strategies */
       ROUTE_STRAT_SCORE,
       ROUTE_STRAT_ROUND_ROBIN,
       ROUTE_STRAT_LEAST_INFLIGHT,
       ROUTE_STRAT_P2C,
       ROUTE_STRAT_SCORE_WEIGHTED,
       ROUTE_STRAT__COUNT
};
enum { /* task classes, in classification priority order after chat */
       ROUTE_TASK_CHAT,
       ROUTE_TASK_CODE,
       ROUTE_TASK_REASONING,
       ROUTE_TASK_LONG_CONTEXT,
       ROUTE_TASK_VISION,
       ROUTE_TASK__COUNT
};

typedef struct cfg_weights {
    double w[ROUTE_F__COUNT]; /* >= 0, not normalised (the scorer divides by the sum) */
} cfg_weights_t;

typedef struct cfg_task_rule {
    bool set;                    /* configured under the route's tasks: */
    cfg_strlist_t keywords;      /* case-insensitive substrings of the user text */
    int min_tokens;              /* estimated prompt tokens at least this; 0 = unset */
    cfg_strlist_t content_types; /* "image", "audio", "file" parts present */
    int tools;                   /* 1: matches when tools are present; -1 unset */
    const cfg_model_t **cands;   /* deployments for this task; NULL = the route's */
    size_t n_cands;
    bool has_weights;
    cfg_weights_t weights;
} cfg_task_rule_t;

typedef struct cfg_route {
    char *name;
    int strategy; /* ROUTE_STRAT_* */
    cfg_weights_t weights;
    const cfg_model_t **cands; /* every deployment of every candidate, file order */
    size_t n_cands;
    const cfg_model_t **fallbacks; /* tried after the ranked candidates */
    size_t n_fallbacks;
    cfg_task_rule_t tasks[ROUTE_TASK__COUNT];
    char *region;                  /* where the callers are, for the distance factor; may be NULL */
    double load_threshold;         /* share of capacity above which new work goes elsewhere; 0.8 */
    cfg_resilience_t *resil;       /* "resilience:" for requests to this route; NULL = per model */
    void *prep[ROUTE_TASK__COUNT]; /* route/: prepared candidates (one malloc each), or NULL */
} cfg_route_t;

/* Strategy / task / factor names as written in the config. */
const char *config_strategy_name(int s);
const char *config_task_name(int t);
const char *config_factor_name(int f);
extern const cfg_weights_t config_default_weights;

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
    int cpu_latency_us;              /* PM QoS request held while serving; -1 = none (default) */
    cfg_resilience_t resilience;     /* server.resilience: defaults for every model */
} cfg_server_t;

typedef struct cfg_store {
    char *url;            /* "sqlite://PATH" or "postgres://..."; NULL = no store */
    char *encryption_key; /* issue 8: seals provider API keys kept in the store (env:/file:) */
    uint64_t timeout_ms;  /* store.timeout: bound of every database call; default 5s, max 10m */
} cfg_store_t;

/* ---- keys, auth, limits, budgets (issue 8; policy/) ---- */
typedef struct cfg_redis {
    char *url;           /* redis://HOST:PORT[/DB]; NULL = counters in process memory */
    uint64_t timeout_ms; /* per command; default 50ms */
    bool fail_open;      /* on_failure: open (default, admit) | closed (reject 503) */
} cfg_redis_t;

typedef struct cfg_jwt {
    cfg_strlist_t algorithms; /* allowlist, e.g. HS256, RS256; "none" is never accepted */
    char *issuer, *audience;  /* checked when set */
    char *keys_file;          /* HMAC secret, PEM public key or JWKS; or: */
    char *key;                /* the file's content, read at load; never logged */
    size_t key_len;
    char *jwks_url;                /* a JWKS fetched and refreshed (policy/jwks.h); http(s) */
    uint64_t jwks_refresh_ms;      /* default 10m */
    char *team_claim, *user_claim; /* default "team" and "sub" */
} cfg_jwt_t;

typedef struct cfg_auth {
    bool required; /* the /v1 endpoints need a key (or a JWT when jwt is configured) */
    bool jwt_on;   /* auth.jwt present */
    cfg_jwt_t jwt;
    char *hmac_secret;       /* optional request signing (env:/file:); NULL = off */
    uint64_t hmac_window_ms; /* accepted clock skew of x-skuld-timestamp; default 5m */
} cfg_auth_t;

typedef struct cfg_limit {
    char *name;   /* team or deployment name */
    int rpm, tpm; /* 0 = unlimited */
} cfg_limit_t;

typedef struct cfg_limits {
    int rpm, tpm;           /* global, per instance group; 0 = unlimited */
    int default_max_tokens; /* reservation when a request sets no max_tokens; default 1024 */
    cfg_limit_t *teams;     /* limits.teams */
    size_t n_teams;
    cfg_limit_t *models; /* limits.models: per deployment (provider limits) */
    size_t n_models;
} cfg_limits_t;

enum { BUDGET_DAILY = 0, BUDGET_WEEKLY, BUDGET_MONTHLY };

typedef struct cfg_budget {
    char *name;
    double usd;
    int period; /* BUDGET_* */
} cfg_budget_t;

typedef struct cfg_budgets {
    bool fallback;        /* on_exceeded: reject (default) | fallback */
    char *fallback_model; /* deployment used while a budget is exhausted */
    char *alert_webhook;  /* POSTed at 50/80/100%; NULL = log line and metric only */
    cfg_budget_t *teams;
    size_t n_teams;
} cfg_budgets_t;

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
    cfg_cache_t cache; /* issue 9 (cache/) */
    cfg_server_t server;
    cfg_provider_t *providers;
    size_t n_providers;
    cfg_model_t *models;
    size_t n_models;
    /* issue 8 (policy) */
    cfg_redis_t redis;
    cfg_auth_t auth;
    cfg_limits_t limits;
    cfg_budgets_t budgets;
    cfg_route_t *routes; /* routing (issue 6) */
    size_t n_routes;
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
/* A local deployment's generation cap for requests without max_tokens, unless
 * its default_max_tokens says otherwise: without one a small model talks on
 * to the end of its context window. */
#define CONFIG_LOCAL_DEFAULT_MAX_TOKENS 512
/* The api-version an azure provider sends when its config names none (Azure OpenAI GA). */
#define CONFIG_AZURE_API_VERSION "2024-10-21"
/* What the loader takes for an azure provider's api_version (YYYY-MM-DD or
 * YYYY-MM-DD-preview) and an azure model's deployment name (1-64 of letters,
 * digits, '.', '_', '-'); shared with the LiteLLM importer. */
bool config_azure_api_version_ok(const char *s);
bool config_azure_deployment_ok(const char *s);
config_t *config_default(cfg_errors_t *errs);

/* "FILE:LINE:COL: message\n" per error. */
void config_errors_print(const cfg_errors_t *errs, FILE *out);
/* For commands: load path (NULL = the embedded default); on failure print
 * every error to out and return NULL. */
config_t *config_load_or_report(const char *path, FILE *out);
void config_errors_free(cfg_errors_t *errs);

config_t *config_ref(config_t *c);
void config_unref(config_t *c);

/* A deployment by id, else the first deployment with that public name. */
const cfg_model_t *config_find_model(const config_t *c, const char *name, size_t len);
const cfg_route_t *config_find_route(const config_t *c, const char *name, size_t len);

/* "daily" -> BUDGET_DAILY ...; -1 when unknown. And back. */
int config_budget_period(const char *s);
const char *config_budget_period_name(int period);

/* Value parsers, exposed for tests and for later sections. Return 0 or -1. */
int config_parse_duration_ms(const char *s, uint64_t *out);
int config_parse_size(const char *s, size_t *out);

#endif
