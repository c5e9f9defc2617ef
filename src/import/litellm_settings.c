/*
 * litellm_settings.c — LiteLLM's router_settings, litellm_settings and
 * general_settings as skuld's server.resilience, fallbacks (through
 * litellm_models.c), routes, cache, redis, store, server.master_key and auth.
 *
 * Mapping (README "Coming from LiteLLM" has the table):
 * - num_retries -> server.resilience.retries_per_deployment, and
 *   max_attempts = num_retries + the most candidates of any model (its
 *   deployments and those of its fallbacks; at most 10; litellm.c writes it):
 *   skuld tries every deployment of a model before its fallbacks, all within
 *   max_attempts;
 * - timeout / request_timeout -> per_try_timeout; allowed_fails ->
 *   breaker_failures = allowed_fails + 1 (LiteLLM cools a deployment down
 *   once it fails more than allowed_fails times); cooldown_time ->
 *   ejection_time and max_ejection_time (a fixed cooldown, as in LiteLLM);
 *   disable_cooldowns, or cooldown_time 0, -> both breakers off;
 * - router_settings wins over litellm_settings for one setting (LiteLLM's
 *   Router takes router_settings directly); their fallbacks lists merge;
 * - cache (type redis, the proxy's default, or local) -> cache: and redis:;
 *   host/port/password become one redis:// URL, or env:REDIS_URL (with a
 *   warning saying what to set) when any of them comes from the environment;
 *   the router's redis_* settings give the redis section when there is no
 *   Redis cache;
 * - general_settings.master_key -> server.master_key and auth.required
 *   (LiteLLM then refuses calls without a key); database_url -> store.url.
 */
#include "import/litellm_internal.h"

#include <stdio.h>
#include <string.h>

#define NK(a) (sizeof(a) / sizeof((a)[0]))
#define KV(keys, name) imp__kv(keys, NK(keys), name)

/* ---------------------------------------------------------------- settings */

/* Where the settings of router_settings and litellm_settings differ in name. */
typedef struct settings_src {
    const char *path; /* "router_settings" */
    const ynode_t *num_retries, *timeout, *allowed_fails, *cooldown_time, *disable_cooldowns,
        *max_par;
} settings_src_t;

static void set_opt(imp_conv_t *c, imp_opt_t *o, int64_t v, const ynode_t *at, const char *path,
                    const char *winner)
{
    if (o->set) {
        imp__nc(c, at, path, "%s takes precedence", winner);
        return;
    }
    o->set = true;
    o->v = v;
    o->at = at;
}

static void resilience_from(imp_conv_t *c, const settings_src_t *s)
{
    int64_t n;
    uint64_t ms;
    bool b;
    const char *winner = "router_settings";
    if (s->num_retries &&
        imp__integer(c, s->num_retries, imp__path(c, s->path, "num_retries"), 0, 1000, &n) > 0)
        set_opt(c, &c->num_retries, n, s->num_retries, imp__path(c, s->path, "num_retries"),
                "router_settings.num_retries");
    if (s->timeout) {
        const char *p = imp__path(
            c, s->path, strcmp(s->path, "router_settings") == 0 ? "timeout" : "request_timeout");
        if (imp__seconds(c, s->timeout, p, &ms) > 0) {
            if (ms == 0)
                imp__nc(c, s->timeout, p, "0 seconds: skuld's per_try_timeout 0 means off");
            else
                set_opt(c, &c->per_try_ms, (int64_t)ms, s->timeout, p, "router_settings.timeout");
        }
    }
    if (s->disable_cooldowns) {
        const char *p = imp__path(c, s->path, "disable_cooldowns");
        if (imp__boolean(c, s->disable_cooldowns, p, &b) > 0 && b) c->breaker_off = true;
    }
    if (s->allowed_fails) {
        const char *p = imp__path(c, s->path, "allowed_fails");
        if (imp__integer(c, s->allowed_fails, p, 0, 999, &n) > 0)
            set_opt(c, &c->breaker_failures, n + 1, s->allowed_fails, p,
                    "router_settings.allowed_fails");
    }
    if (s->cooldown_time) {
        const char *p = imp__path(c, s->path, "cooldown_time");
        if (imp__seconds(c, s->cooldown_time, p, &ms) > 0) {
            if (ms == 0)
                c->breaker_off = true;
            else
                set_opt(c, &c->ejection_ms, (int64_t)ms, s->cooldown_time, p,
                        "router_settings.cooldown_time");
        }
    }
    if (s->max_par) {
        const char *p = imp__path(c, s->path, "default_max_parallel_requests");
        if (imp__integer(c, s->max_par, p, 0, 1000000, &n) > 0)
            set_opt(c, &c->max_concurrency, n, s->max_par, p, winner);
    }
}

/* host, port, password (and db) of a Redis, from router_settings or
 * cache_params, as one URL. */
typedef struct redis_src {
    const char *path;
    const ynode_t *host, *port, *password, *db, *at;
    const char *host_key, *port_key, *password_key;
} redis_src_t;

static bool redis_src_any(const redis_src_t *r)
{
    return r->host || r->port || r->password || r->db;
}

/* A literal piece of a Redis URL: no '@', '/', ':' (host) and no control bytes. */
static bool url_piece_ok(const ynode_t *v, const char *forbid, size_t max)
{
    if (v->kind != YNODE_SCALAR || !v->len || v->len >= max || strlen(v->str) != v->len)
        return false;
    for (size_t i = 0; i < v->len; i++) {
        unsigned char ch = (unsigned char)v->str[i];
        if (ch <= 0x20 || ch == 0x7f || strchr(forbid, ch)) return false;
    }
    return true;
}

static const char *redis_url(imp_conv_t *c, const redis_src_t *r)
{
    const char *envs[3] = {NULL, NULL, NULL};
    size_t n_env = 0;
    bool ok = true;
    const ynode_t *parts[3] = {r->host, r->port, r->password};
    const char *keys[3] = {r->host_key, r->port_key, r->password_key};
    for (int i = 0; i < 3; i++) {
        if (!parts[i]) continue;
        const char *p = imp__path(c, r->path, keys[i]);
        if (parts[i]->kind != YNODE_SCALAR) {
            imp__err(c, parts[i], "%s: expected a string, got %s", p, ytree_kind_name(parts[i]));
            return NULL;
        }
        bool bad;
        const char *e = imp__env_ref(c, parts[i], &bad);
        if (e) {
            envs[n_env++] = e;
        } else if (bad) {
            imp__nc(c, parts[i], p, "os.environ/ with an invalid variable name");
            ok = false;
        }
    }
    if (!ok) return NULL;
    if (n_env || !r->host) {
        /* what REDIS_URL should hold: literal host and port, $VAR for the others */
        char tmpl[400], list[200] = "";
        const char *pw = NULL, *host = "$REDIS_HOST", *port = "";
        char portbuf[80] = "";
        for (size_t i = 0; i < n_env; i++) {
            if (i) strncat(list, ", ", sizeof list - strlen(list) - 1);
            strncat(list, envs[i], sizeof list - strlen(list) - 1);
        }
        if (r->password) pw = imp__env_ref(c, r->password, NULL) ? "$" : "PASSWORD";
        if (r->host)
            host = imp__env_ref(c, r->host, NULL)
                       ? arena_printf(c->a, "$%s", imp__env_ref(c, r->host, NULL))
                       : imp__show(c, r->host->str, r->host->len);
        if (r->port) {
            const char *pe = imp__env_ref(c, r->port, NULL);
            snprintf(portbuf, sizeof portbuf, ":%s%s", pe ? "$" : "",
                     pe ? pe : imp__show(c, r->port->str, r->port->len));
            port = portbuf;
        } else if (!r->host) {
            port = ":$REDIS_PORT";
        }
        if (r->password && pw[0] == '$')
            pw = arena_printf(c->a, "$%s", imp__env_ref(c, r->password, NULL));
        else if (!r->host && !r->password)
            pw = "$REDIS_PASSWORD";
        snprintf(tmpl, sizeof tmpl, "redis://%s%s%s%s%s", pw ? ":" : "", pw ? pw : "",
                 pw ? "@" : "", host ? host : "?", port);
        imp__warn(c, r->at,
                  "%s: LiteLLM reads the Redis %s from the environment (%s); skuld takes one "
                  "URL, written as env:REDIS_URL: set REDIS_URL=%s before starting skuld",
                  r->path, r->host ? "settings" : "host, port and password",
                  n_env ? list : "REDIS_HOST, REDIS_PORT, REDIS_PASSWORD", tmpl);
        return "env:REDIS_URL";
    }
    if (!url_piece_ok(r->host, "@:/", 256)) {
        imp__nc(c, r->host, imp__path(c, r->path, r->host_key),
                "a Redis host for skuld's redis:// URL must be a name or IPv4 address");
        return NULL;
    }
    int64_t port = 0, db = 0;
    if (r->port &&
        imp__integer(c, r->port, imp__path(c, r->path, r->port_key), 1, 65535, &port) <= 0)
        return NULL;
    if (r->db && imp__integer(c, r->db, imp__path(c, r->path, "redis_db"), 0, 1000000, &db) <= 0)
        return NULL;
    if (r->password) {
        const char *p = imp__path(c, r->path, r->password_key);
        if (!url_piece_ok(r->password, "@/", 256)) {
            imp__nc(c, r->password, p,
                    "the password cannot be written into skuld's redis:// URL (empty, too long, "
                    "or with '@', '/', spaces or control characters): set REDIS_URL and use "
                    "env:REDIS_URL");
            return NULL;
        }
        imp__warn(c, r->password,
                  "%s is a literal password: carried into redis.url as it is; keep it out of the "
                  "file with url: env:REDIS_URL",
                  p);
    }
    char *u =
        arena_printf(c->a, "redis://%s%s%s%s", r->password ? ":" : "",
                     r->password ? r->password->str : "", r->password ? "@" : "", r->host->str);
    if (u && port) u = arena_printf(c->a, "%s:%lld", u, (long long)port);
    if (u && r->db) u = arena_printf(c->a, "%s/%lld", u, (long long)db);
    if (!u) c->oom = true;
    return u;
}

static const imp_reason_t router_reasons[] = {
    {"routing_strategy_args", "skuld's balancing strategies take no arguments"},
    {"retry_policy", "skuld retries every retryable failure alike (README: Resilience)"},
    {"allowed_fails_policy", "skuld's breakers count every failure alike"},
    {"enable_pre_call_checks", "skuld always checks the context window before a call"},
    {"redis_url", "give redis_host, redis_port and redis_password instead"},
    {"max_fallbacks", "skuld bounds fallbacks with max_attempts"},
    {"stream_timeout", "no exact equivalent (see first_chunk_timeout, idle_gap_timeout)"},
    {"enable_tag_filtering", "no tag-based routing in skuld"},
    {"provider_budget_config", "use skuld's budgets section"},
};

static const imp_reason_t litellm_reasons[] = {
    {"drop_params", "skuld forwards every parameter as the client sent it"},
    {"set_verbose", "see skuld's access log and /metrics"},
    {"json_logs", "skuld's access log is JSON already"},
    {"success_callback", "no callbacks in skuld: see /metrics and the access log"},
    {"failure_callback", "no callbacks in skuld: see /metrics and the access log"},
    {"callbacks", "no callbacks in skuld: see /metrics and the access log"},
    {"service_callback", "no callbacks in skuld: see /metrics and the access log"},
    {"max_budget", "use skuld's budgets section"},
    {"budget_duration", "use skuld's budgets section"},
    {"stream_timeout", "no exact equivalent (see first_chunk_timeout, idle_gap_timeout)"},
    {"max_parallel_requests", "set max_concurrency per model in skuld's resilience"},
};

static const imp_reason_t general_reasons[] = {
    {"alerting", "skuld alerts through budgets.alert_webhook and /metrics"},
    {"store_model_in_db", "skuld keeps models registered at runtime in its store always"},
    {"database_connection_pool_limit", "skuld's store has a fixed writer thread"},
    {"database_connection_timeout", "no equivalent"},
    {"disable_spend_logs", "skuld always writes spend rows when a store is configured"},
    {"allowed_routes", "no per-route access control in skuld"},
};

static void cache_section(imp_conv_t *c, const ynode_t *on, const ynode_t *params, redis_src_t *rs)
{
    bool enabled = false;
    if (on && imp__boolean(c, on, "litellm_settings.cache", &enabled) <= 0) on = NULL;
    const ynode_t *pm = imp__mapping_or_err(c, params, "litellm_settings.cache_params");
    if (!enabled) {
        if (pm) imp__nc(c, params, "litellm_settings.cache_params", "cache is not on");
        return;
    }
    imp_key_t k[] = {
        {.key = "type"}, {.key = "host"}, {.key = "port"}, {.key = "password"}, {.key = "ttl"}};
    static const imp_reason_t why[] = {
        {"namespace", "skuld's Redis keys are skuld:cache:*"},
        {"supported_call_types", "skuld caches every endpoint alike"},
        {"mode", "skuld's cache is on for every request (x-skuld-cache: no-cache skips it)"},
        {"default_in_memory_ttl", "one ttl for every tier in skuld"},
        {"default_in_redis_ttl", "one ttl for every tier in skuld"},
        {"ssl", "Debian 12's hiredis has no TLS (README: Cache)"},
    };
    if (pm)
        imp__walk(c, pm, "litellm_settings.cache_params", k, NK(k), why, NK(why),
                  "no skuld equivalent");
    const ynode_t *type = pm ? KV(k, "type") : NULL;
    const char *t = "redis"; /* the proxy's default */
    if (type && !(t = imp__scalar(c, type, "litellm_settings.cache_params.type"))) return;
    if (strcmp(t, "local") == 0) {
        c->cache_on = true;
    } else if (strcmp(t, "redis") == 0) {
        c->cache_on = true;
        c->cache_redis = true;
        rs->path = "litellm_settings.cache_params";
        rs->host = KV(k, "host");
        rs->port = KV(k, "port");
        rs->password = KV(k, "password");
        rs->at = type ? type : on;
        rs->host_key = "host";
        rs->port_key = "port";
        rs->password_key = "password";
    } else {
        imp__nc(c, type, "litellm_settings.cache_params.type",
                "cache type '%s' has no skuld equivalent: skuld has the exact memory and Redis "
                "caches",
                imp__show(c, t, type->len));
        return;
    }
    const ynode_t *ttl = KV(k, "ttl");
    uint64_t ms;
    if (ttl && imp__seconds(c, ttl, "litellm_settings.cache_params.ttl", &ms) > 0) {
        if (ms == 0) {
            imp__nc(c, ttl, "litellm_settings.cache_params.ttl", "0 seconds");
        } else {
            c->cache_ttl_ms.set = true;
            c->cache_ttl_ms.v = (int64_t)ms;
        }
    } else if (!ttl) {
        imp__warn(c, type ? type : on,
                  "litellm_settings.cache: no ttl; LiteLLM keeps entries until they are evicted, "
                  "skuld's cache.ttl defaults to 60s");
    }
}

void imp__general(imp_conv_t *c, const ynode_t *gs)
{
    imp_key_t k[] = {{.key = "master_key"}, {.key = "database_url"}};
    imp__walk(c, gs, "general_settings", k, NK(k), general_reasons, NK(general_reasons),
              "no skuld equivalent");
    const ynode_t *mk = KV(k, "master_key");
    if (mk) c->master_key = imp__secret(c, mk, "general_settings.master_key", "master key");
    const ynode_t *db = KV(k, "database_url");
    if (db && !imp__env_not_here(c, db, "general_settings.database_url")) {
        const char *u = imp__scalar(c, db, "general_settings.database_url");
        if (!u) return;
        if (strncmp(u, "postgres://", 11) != 0 && strncmp(u, "postgresql://", 13) != 0) {
            imp__nc(c, db, "general_settings.database_url",
                    "skuld's store takes postgres:// or postgresql:// URLs (or sqlite://)");
        } else if (!imp__secret_clean(u, db->len)) {
            imp__nc(c, db, "general_settings.database_url", "contains control characters");
        } else {
            c->store_url = u;
            const char *rest = strstr(u, "://") + 3;
            const char *at = strchr(rest, '@');
            if (at && memchr(rest, ':', (size_t)(at - rest)))
                imp__warn(c, db,
                          "general_settings.database_url holds a password: carried into "
                          "store.url as it is (skuld's store.url is not read from the "
                          "environment)");
        }
    }
}

void imp__settings(imp_conv_t *c, const ynode_t *rs, const ynode_t *ls)
{
    imp_key_t rk[] = {{.key = "routing_strategy"},
                      {.key = "num_retries"},
                      {.key = "timeout"},
                      {.key = "allowed_fails"},
                      {.key = "cooldown_time"},
                      {.key = "disable_cooldowns"},
                      {.key = "fallbacks"},
                      {.key = "context_window_fallbacks"},
                      {.key = "content_policy_fallbacks"},
                      {.key = "default_fallbacks"},
                      {.key = "model_group_alias"},
                      {.key = "redis_host"},
                      {.key = "redis_port"},
                      {.key = "redis_password"},
                      {.key = "redis_db"},
                      {.key = "default_max_parallel_requests"}};
    imp_key_t lk[] = {{.key = "num_retries"},
                      {.key = "request_timeout"},
                      {.key = "allowed_fails"},
                      {.key = "cooldown_time"},
                      {.key = "disable_cooldowns"},
                      {.key = "fallbacks"},
                      {.key = "context_window_fallbacks"},
                      {.key = "content_policy_fallbacks"},
                      {.key = "default_fallbacks"},
                      {.key = "cache"},
                      {.key = "cache_params"}};
    for (size_t i = 0; i < NK(rk); i++) rk[i].val = rk[i].at = NULL;
    for (size_t i = 0; i < NK(lk); i++) lk[i].val = lk[i].at = NULL;
    if (rs)
        imp__walk(c, rs, "router_settings", rk, NK(rk), router_reasons, NK(router_reasons),
                  "no skuld equivalent");
    if (ls)
        imp__walk(c, ls, "litellm_settings", lk, NK(lk), litellm_reasons, NK(litellm_reasons),
                  "no skuld equivalent");

    const ynode_t *strat = KV(rk, "routing_strategy");
    if (strat) {
        c->strategy = imp__scalar(c, strat, "router_settings.routing_strategy");
        c->strategy_at = strat;
    }
    settings_src_t r = {"router_settings",
                        KV(rk, "num_retries"),
                        KV(rk, "timeout"),
                        KV(rk, "allowed_fails"),
                        KV(rk, "cooldown_time"),
                        KV(rk, "disable_cooldowns"),
                        KV(rk, "default_max_parallel_requests")};
    settings_src_t l = {"litellm_settings",
                        KV(lk, "num_retries"),
                        KV(lk, "request_timeout"),
                        KV(lk, "allowed_fails"),
                        KV(lk, "cooldown_time"),
                        KV(lk, "disable_cooldowns"),
                        NULL};
    resilience_from(c, &r);
    resilience_from(c, &l);
    if (c->breaker_off && c->breaker_failures.set)
        imp__nc(c, c->breaker_failures.at, "allowed_fails", "cooldowns are disabled");

    /* fallbacks: general ones first, defaults for models without, then the
     * context-window ones appended, then content policy alternates */
    imp__fallbacks(c, KV(rk, "fallbacks"), "router_settings.fallbacks", "fallbacks");
    imp__fallbacks(c, KV(lk, "fallbacks"), "litellm_settings.fallbacks", "fallbacks");
    imp__default_fallbacks(c, KV(rk, "default_fallbacks"), "router_settings.default_fallbacks");
    imp__default_fallbacks(c, KV(lk, "default_fallbacks"), "litellm_settings.default_fallbacks");
    imp__fallbacks(c, KV(rk, "context_window_fallbacks"),
                   "router_settings.context_window_fallbacks", "context_window_fallbacks");
    imp__fallbacks(c, KV(lk, "context_window_fallbacks"),
                   "litellm_settings.context_window_fallbacks", "context_window_fallbacks");
    imp__fallbacks(c, KV(rk, "content_policy_fallbacks"),
                   "router_settings.content_policy_fallbacks", "content_policy_fallbacks");
    imp__fallbacks(c, KV(lk, "content_policy_fallbacks"),
                   "litellm_settings.content_policy_fallbacks", "content_policy_fallbacks");
    imp__aliases(c, KV(rk, "model_group_alias"), "router_settings.model_group_alias");

    redis_src_t cache_rs = {0};
    cache_section(c, KV(lk, "cache"), KV(lk, "cache_params"), &cache_rs);
    redis_src_t router_rs = {.path = "router_settings",
                             .host = KV(rk, "redis_host"),
                             .port = KV(rk, "redis_port"),
                             .password = KV(rk, "redis_password"),
                             .db = KV(rk, "redis_db"),
                             .host_key = "redis_host",
                             .port_key = "redis_port",
                             .password_key = "redis_password"};
    router_rs.at = router_rs.host       ? router_rs.host
                   : router_rs.port     ? router_rs.port
                   : router_rs.password ? router_rs.password
                                        : router_rs.db;
    if (c->cache_redis) {
        c->redis_url = redis_url(c, &cache_rs);
        if (!c->redis_url) {
            c->cache_redis = false;
            imp__nc(c, cache_rs.at, "litellm_settings.cache_params",
                    "the Redis tier needs a Redis URL: only the memory cache is converted");
        }
        if (redis_src_any(&router_rs))
            imp__nc(c, router_rs.at, "router_settings.redis_host",
                    "skuld has one redis section, shared by limits and the cache: the cache's "
                    "Redis is used");
    } else if (redis_src_any(&router_rs)) {
        c->redis_url = redis_url(c, &router_rs);
    }
}
