/*
 * litellm.c — `skuld import litellm`: the driver of a conversion, its
 * diagnostics, the readers of LiteLLM values, and the settings sections
 * (router_settings, litellm_settings, general_settings). model_list is
 * litellm_models.c's.
 *
 * A conversion: text -> ytree (positions kept) -> each top-level section into
 * the imp_conv_t (litellm_internal.h) -> the skuld document, built with
 * emit.h in the order of README's configuration reference -> text. Nothing
 * here does I/O or reads the environment: an `os.environ/NAME` value becomes
 * skuld's `env:NAME` where skuld reads secrets, and is reported as not
 * converted where it does not.
 *
 * Settings (README "Importing a LiteLLM config" has the table):
 * - num_retries -> server.resilience.retries_per_deployment, and
 *   max_attempts = 1 + num_retries + the longest fallback list (capped at
 *   10): skuld counts fallbacks in max_attempts, LiteLLM does not;
 * - timeout / request_timeout -> per_try_timeout; allowed_fails ->
 *   breaker_failures = allowed_fails + 1 (LiteLLM cools a deployment down
 *   once it fails more than allowed_fails times); cooldown_time ->
 *   ejection_time and max_ejection_time (a fixed cooldown, as in LiteLLM);
 *   disable_cooldowns or cooldown_time 0 -> both breakers off;
 * - router_settings wins over litellm_settings for the same setting (as in
 *   LiteLLM, where router_settings configure the Router directly); the
 *   fallbacks lists of both are merged;
 * - cache (type redis, the proxy's default, or local) -> cache: and redis:;
 *   redis host/port/password become one redis:// URL, or env:REDIS_URL when
 *   any of them comes from the environment;
 * - general_settings.master_key -> server.master_key and auth.required
 *   (LiteLLM then refuses calls without a key); database_url -> store.url.
 *
 * Errors (bad input) are collected, never stop the walk, and make the
 * conversion fail with no output; diagnostics are sorted by position.
 */
#include "import/litellm_internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OUT_MAX (256u << 20) /* cap on the written config */

/* ---------------------------------------------------------------- diagnostics */

static void add_msg(imp_conv_t *c, imp_diag_kind_t kind, const ynode_t *at, const char *msg)
{
    imp_result_t *r = c->res;
    if (kind == IMP_ERROR) r->n_errors++; /* counted even when the copy fails */
    imp_diag_t *v = realloc(r->diags, (r->n_diags + 1) * sizeof *v);
    if (v) r->diags = v;
    char *m = v ? strdup(msg) : NULL;
    if (!m) {
        c->oom = true;
        return;
    }
    v[r->n_diags].kind = kind;
    v[r->n_diags].line = at ? at->line : 0;
    v[r->n_diags].col = at ? at->col : 0;
    v[r->n_diags].msg = m;
    r->n_diags++;
    if (kind == IMP_NOT_CONVERTED) r->n_not_converted++;
    if (kind == IMP_WARNING) r->n_warnings++;
}

void imp__nc(imp_conv_t *c, const ynode_t *at, const char *key, const char *fmt, ...)
{
    char why[512], msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof msg, "%s (%s)", key, why);
    add_msg(c, IMP_NOT_CONVERTED, at, msg);
}

void imp__warn(imp_conv_t *c, const ynode_t *at, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    add_msg(c, IMP_WARNING, at, msg);
}

void imp__err(imp_conv_t *c, const ynode_t *at, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    add_msg(c, IMP_ERROR, at, msg);
}

const char *imp__show(imp_conv_t *c, const char *s, size_t len)
{
    size_t n = len < IMP_SHOW_MAX ? len : IMP_SHOW_MAX;
    char *out = arena_alloc(c->a, n + 4);
    if (!out) {
        c->oom = true;
        return "?";
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    if (n < len) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

const char *imp__path(imp_conv_t *c, const char *parent, const char *key)
{
    const char *k = imp__show(c, key, strlen(key));
    char *p = parent && *parent ? arena_printf(c->a, "%s.%s", parent, k) : arena_strdup(c->a, k);
    if (!p) c->oom = true;
    return p ? p : "?";
}

const char *imp__index(imp_conv_t *c, const char *parent, size_t i)
{
    char *p = arena_printf(c->a, "%s[%zu]", parent, i);
    if (!p) c->oom = true;
    return p ? p : "?";
}

/* ---------------------------------------------------------------- the walker */

static bool key_eq(const ynode_t *a, const ynode_t *b)
{
    return a->kind == YNODE_SCALAR && b->kind == YNODE_SCALAR && a->len == b->len &&
           memcmp(a->str, b->str, a->len) == 0;
}

void imp__walk(imp_conv_t *c, const ynode_t *map, const char *path, imp_key_t *keys, size_t nk,
               const imp_reason_t *reasons, size_t nr, const char *other)
{
    for (size_t k = 0; k < nk; k++) keys[k].val = keys[k].at = NULL;
    if (map->n > IMP_MAX_LIST) {
        imp__err(c, map, "%s: more than %d keys", path, IMP_MAX_LIST);
        return;
    }
    for (size_t i = 0; i < map->n; i++) {
        const ynode_t *k = map->pairs[i].key, *v = map->pairs[i].value;
        if (k->kind != YNODE_SCALAR || ytree_is_null(k) || strlen(k->str) != k->len) {
            imp__nc(c, k, imp__path(c, path, "?"), "not a key name");
            continue;
        }
        const char *kp = imp__path(c, path, k->str);
        const ynode_t *later = NULL;
        for (size_t j = i + 1; j < map->n && !later; j++)
            if (key_eq(k, map->pairs[j].key)) later = map->pairs[j].key;
        if (later) {
            imp__nc(c, k, kp, "duplicate key: the one at line %d is used, as LiteLLM does",
                    later->line);
            continue;
        }
        size_t f = 0;
        while (f < nk && strcmp(keys[f].key, k->str) != 0) f++;
        if (f < nk) {
            keys[f].at = k;
            keys[f].val = ytree_is_null(v) ? NULL : v;
            continue;
        }
        if (ytree_is_null(v)) continue; /* "key:" with nothing: nothing to convert */
        const char *why = other;
        for (size_t r = 0; r < nr; r++)
            if (strcmp(reasons[r].key, k->str) == 0) why = reasons[r].why;
        imp__nc(c, k, kp, "%s", why);
    }
}

const ynode_t *imp__kv(const imp_key_t *keys, size_t nk, const char *key)
{
    for (size_t i = 0; i < nk; i++)
        if (strcmp(keys[i].key, key) == 0) return keys[i].val;
    return NULL;
}

const ynode_t *imp__kat(const imp_key_t *keys, size_t nk, const char *key)
{
    for (size_t i = 0; i < nk; i++)
        if (strcmp(keys[i].key, key) == 0) return keys[i].at;
    return NULL;
}

#define KV(keys, name) imp__kv(keys, sizeof keys / sizeof keys[0], name)
#define KAT(keys, name) imp__kat(keys, sizeof keys / sizeof keys[0], name)
#define NK(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------- values */

bool imp__has_nul(const ynode_t *v)
{
    return v->kind == YNODE_SCALAR && strlen(v->str) != v->len;
}

bool imp__name_ok(const char *s, size_t len)
{
    if (!len || strlen(s) != len) return false;
    for (size_t i = 0; i < len; i++)
        if (isspace((unsigned char)s[i]) || iscntrl((unsigned char)s[i])) return false;
    return true;
}

const char *imp__scalar(imp_conv_t *c, const ynode_t *v, const char *path)
{
    if (v->kind != YNODE_SCALAR) {
        imp__err(c, v, "%s: expected a string, got %s", path, ytree_kind_name(v));
        return NULL;
    }
    return v->str;
}

static bool env_name_ok(const char *s)
{
    if (!*s || isdigit((unsigned char)*s)) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_') return false;
    return true;
}

const char *imp__env_ref(imp_conv_t *c, const ynode_t *v, bool *bad)
{
    static const char pre[] = "os.environ/";
    if (bad) *bad = false;
    if (v->kind != YNODE_SCALAR || strncmp(v->str, pre, sizeof pre - 1) != 0) return NULL;
    const char *name = v->str + sizeof pre - 1;
    if (imp__has_nul(v) || !env_name_ok(name)) {
        if (bad) *bad = true;
        return NULL;
    }
    (void)c;
    return name;
}

/* A value from the environment where skuld reads none: reported. */
static bool env_not_here(imp_conv_t *c, const ynode_t *v, const char *path)
{
    bool bad;
    const char *name = imp__env_ref(c, v, &bad);
    if (name)
        imp__nc(c, v, path,
                "read from the environment variable %s when LiteLLM starts; skuld reads this "
                "setting from the file: write the value",
                name);
    else if (bad)
        imp__nc(c, v, path, "os.environ/ with an invalid variable name");
    return name || bad;
}

int imp__number(imp_conv_t *c, const ynode_t *v, const char *path, double *out)
{
    if (env_not_here(c, v, path)) return 0;
    if (v->kind != YNODE_SCALAR) {
        imp__err(c, v, "%s: expected a number, got %s", path, ytree_kind_name(v));
        return -1;
    }
    const char *s = v->str;
    bool chars_ok = *s && !imp__has_nul(v);
    for (const char *p = s; chars_ok && *p; p++)
        chars_ok = isdigit((unsigned char)*p) || *p == '.' || *p == '-' || *p == '+' || *p == 'e' ||
                   *p == 'E';
    char *end = NULL;
    errno = 0;
    double d = chars_ok ? strtod(s, &end) : 0;
    if (!chars_ok || !end || *end || errno || !isfinite(d)) {
        imp__err(c, v, "%s: expected a number, got '%s'", path, imp__show(c, s, v->len));
        return -1;
    }
    *out = d;
    return 1;
}

int imp__integer(imp_conv_t *c, const ynode_t *v, const char *path, int64_t lo, int64_t hi,
                 int64_t *out)
{
    double d;
    int rc = imp__number(c, v, path, &d);
    if (rc <= 0) return rc;
    if (d != floor(d)) {
        imp__err(c, v, "%s: expected an integer, got '%s'", path, imp__show(c, v->str, v->len));
        return -1;
    }
    if (d < (double)lo || d > (double)hi) {
        imp__nc(c, v, path, "%s is outside skuld's range %lld..%lld", imp__show(c, v->str, v->len),
                (long long)lo, (long long)hi);
        return 0;
    }
    *out = (int64_t)d;
    return 1;
}

int imp__boolean(imp_conv_t *c, const ynode_t *v, const char *path, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    if (env_not_here(c, v, path)) return 0;
    if (v->kind == YNODE_SCALAR && !imp__has_nul(v)) {
        for (size_t i = 0; i < 3; i++) {
            if (strcasecmp(v->str, yes[i]) == 0) return *out = true, 1;
            if (strcasecmp(v->str, no[i]) == 0) return *out = false, 1;
        }
    }
    imp__err(c, v, "%s: expected true or false, got %s", path,
             v->kind == YNODE_SCALAR ? imp__show(c, v->str, v->len) : ytree_kind_name(v));
    return -1;
}

int imp__seconds(imp_conv_t *c, const ynode_t *v, const char *path, uint64_t *ms)
{
    double s;
    int rc = imp__number(c, v, path, &s);
    if (rc <= 0) return rc;
    if (s < 0 || s > 1e9) {
        imp__nc(c, v, path, "%s seconds is outside skuld's range", imp__show(c, v->str, v->len));
        return 0;
    }
    uint64_t m = (uint64_t)llround(s * 1000);
    *ms = s > 0 && m == 0 ? 1 : m;
    return 1;
}

static bool secret_clean(const char *s, size_t len)
{
    if (strlen(s) != len) return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
    return true;
}

const char *imp__secret(imp_conv_t *c, const ynode_t *v, const char *path, const char *what)
{
    if (v->kind != YNODE_SCALAR) {
        imp__err(c, v, "%s: expected a string, got %s", path, ytree_kind_name(v));
        return NULL;
    }
    bool bad;
    const char *env = imp__env_ref(c, v, &bad);
    if (env) {
        char *s = arena_printf(c->a, "env:%s", env);
        if (!s) c->oom = true;
        return s;
    }
    if (bad) {
        imp__nc(c, v, path, "os.environ/ with an invalid variable name for skuld's env:NAME");
        return NULL;
    }
    if (!v->len) {
        imp__nc(c, v, path, "empty");
        return NULL;
    }
    if (!secret_clean(v->str, v->len)) {
        imp__nc(c, v, path, "the literal %s contains control characters, which skuld refuses",
                what);
        return NULL;
    }
    if (strncmp(v->str, "env:", 4) == 0 || strncmp(v->str, "file:", 5) == 0) {
        imp__nc(c, v, path,
                "the literal %s starts with env: or file:, which skuld would read as a "
                "reference: write it as os.environ/NAME",
                what);
        return NULL;
    }
    imp__warn(c, v,
              "%s is a literal %s: carried into the output as it is; keep it out of the file "
              "with env:NAME (os.environ/NAME in LiteLLM)",
              path, what);
    return v->str;
}

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

static const ynode_t *mapping_or_err(imp_conv_t *c, const ynode_t *v, const char *path)
{
    if (!v) return NULL;
    if (v->kind != YNODE_MAPPING) {
        imp__err(c, v, "%s: expected a mapping, got %s", path, ytree_kind_name(v));
        return NULL;
    }
    return v;
}

static void cache_section(imp_conv_t *c, const ynode_t *on, const ynode_t *params, redis_src_t *rs)
{
    bool enabled = false;
    if (on && imp__boolean(c, on, "litellm_settings.cache", &enabled) <= 0) on = NULL;
    const ynode_t *pm = mapping_or_err(c, params, "litellm_settings.cache_params");
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

static void general_section(imp_conv_t *c, const ynode_t *gs)
{
    imp_key_t k[] = {{.key = "master_key"}, {.key = "database_url"}};
    imp__walk(c, gs, "general_settings", k, NK(k), general_reasons, NK(general_reasons),
              "no skuld equivalent");
    const ynode_t *mk = KV(k, "master_key");
    if (mk) c->master_key = imp__secret(c, mk, "general_settings.master_key", "master key");
    const ynode_t *db = KV(k, "database_url");
    if (db && !env_not_here(c, db, "general_settings.database_url")) {
        const char *u = imp__scalar(c, db, "general_settings.database_url");
        if (!u) return;
        if (strncmp(u, "postgres://", 11) != 0 && strncmp(u, "postgresql://", 13) != 0) {
            imp__nc(c, db, "general_settings.database_url",
                    "skuld's store takes postgres:// or postgresql:// URLs (or sqlite://)");
        } else if (!secret_clean(u, db->len)) {
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

static void settings(imp_conv_t *c, const ynode_t *rs, const ynode_t *ls)
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

/* ---------------------------------------------------------------- output */

static void emit_doc(imp_conv_t *c, imp_doc_t *d, imp_node_t *root)
{
    imp_node_t *server = imp_map(d);
    if (c->master_key) imp_map_add(d, server, "master_key", imp_cstr(d, c->master_key));
    imp_node_t *res = imp_map(d);
    size_t longest = imp__longest_fallbacks(c);
    if (c->num_retries.set || longest) {
        int64_t want = 1 + (c->num_retries.set ? c->num_retries.v : 0) + (int64_t)longest;
        if (!c->num_retries.set && want < 3) want = 0; /* skuld's default 3 already covers it */
        if (want > 10) {
            imp__warn(c, c->num_retries.set ? c->num_retries.at : NULL,
                      "server.resilience.max_attempts: 1 + num_retries + the longest fallback "
                      "list is %lld; skuld allows at most 10",
                      (long long)want);
            want = 10;
        }
        if (want) imp_map_add(d, res, "max_attempts", imp_int(d, want));
    }
    if (c->num_retries.set)
        imp_map_add(d, res, "retries_per_deployment",
                    imp_int(d, c->num_retries.v > 10 ? 10 : c->num_retries.v));
    if (c->per_try_ms.set)
        imp_map_add(d, res, "per_try_timeout", imp_dur(d, (uint64_t)c->per_try_ms.v));
    if (c->breaker_off) {
        imp_map_add(d, res, "breaker_failures", imp_int(d, 0));
        imp_map_add(d, res, "breaker_failure_rate", imp_int(d, 0));
    } else {
        if (c->breaker_failures.set)
            imp_map_add(d, res, "breaker_failures", imp_int(d, c->breaker_failures.v));
        if (c->ejection_ms.set) {
            imp_map_add(d, res, "ejection_time", imp_dur(d, (uint64_t)c->ejection_ms.v));
            imp_map_add(d, res, "max_ejection_time", imp_dur(d, (uint64_t)c->ejection_ms.v));
        }
    }
    if (c->max_concurrency.set)
        imp_map_add(d, res, "max_concurrency", imp_int(d, c->max_concurrency.v));
    if (imp_node_count(res)) imp_map_add(d, server, "resilience", res);
    if (imp_node_count(server)) imp_map_add(d, root, "server", server);

    if (c->store_url) {
        imp_node_t *store = imp_map_add(d, root, "store", imp_map(d));
        imp_map_add(d, store, "url", imp_cstr(d, c->store_url));
    }
    imp__emit_models(c, d, root);
    if (c->master_key) {
        imp_node_t *auth = imp_map_add(d, root, "auth", imp_map(d));
        imp_map_add(d, auth, "required", imp_bool(d, true));
    }
    if (c->redis_url) {
        imp_node_t *redis = imp_map_add(d, root, "redis", imp_map(d));
        imp_map_add(d, redis, "url", imp_cstr(d, c->redis_url));
    }
    if (c->cache_on) {
        imp_node_t *cache = imp_map_add(d, root, "cache", imp_map(d));
        imp_map_add(d, cache, "enabled", imp_bool(d, true));
        if (c->cache_ttl_ms.set)
            imp_map_add(d, cache, "ttl", imp_dur(d, (uint64_t)c->cache_ttl_ms.v));
        if (c->cache_redis) imp_map_add(d, cache, "redis", imp_bool(d, true));
    }
}

static void convert(imp_conv_t *c, const ynode_t *root)
{
    if (!root || ytree_is_null(root)) return; /* an empty file: an empty config */
    if (root->kind != YNODE_MAPPING) {
        imp__err(c, root,
                 "expected a mapping at top level (model_list, router_settings, ...), "
                 "got %s",
                 ytree_kind_name(root));
        return;
    }
    imp_key_t k[] = {{.key = "model_list"},
                     {.key = "router_settings"},
                     {.key = "litellm_settings"},
                     {.key = "general_settings"},
                     {.key = "environment_variables"}};
    static const imp_reason_t why[] = {
        {"include", "convert each included file on its own"},
        {"credential_list", "write each credential into its provider (litellm_credential_name)"},
        {"guardrails", "no guardrails in skuld"},
        {"mcp_servers", "no MCP in skuld"},
    };
    imp__walk(c, root, "", k, NK(k), why, NK(why), "no skuld equivalent");
    const ynode_t *ml = KV(k, "model_list");
    if (ml && ml->kind != YNODE_SEQUENCE)
        imp__err(c, ml, "model_list: expected a list, got %s", ytree_kind_name(ml));
    else if (ml)
        imp__model_list(c, ml);
    const ynode_t *rs = mapping_or_err(c, KV(k, "router_settings"), "router_settings");
    const ynode_t *ls = mapping_or_err(c, KV(k, "litellm_settings"), "litellm_settings");
    settings(c, rs, ls);
    const ynode_t *gs = mapping_or_err(c, KV(k, "general_settings"), "general_settings");
    if (gs) general_section(c, gs);
    const ynode_t *ev = mapping_or_err(c, KV(k, "environment_variables"), "environment_variables");
    for (size_t i = 0; ev && i < ev->n && i < IMP_MAX_LIST; i++) {
        const ynode_t *key = ev->pairs[i].key;
        if (key->kind != YNODE_SCALAR) continue;
        imp__nc(c, key, imp__path(c, "environment_variables", key->str),
                "LiteLLM sets it from the file; set it in skuld's environment");
    }
    imp__finish_models(c);
}

/* Stable by position; diagnostics without one first. */
static void sort_diags(imp_result_t *r)
{
    for (size_t i = 1; i < r->n_diags; i++) {
        imp_diag_t e = r->diags[i];
        size_t j = i;
        while (j > 0 && (r->diags[j - 1].line > e.line ||
                         (r->diags[j - 1].line == e.line && r->diags[j - 1].col > e.col))) {
            r->diags[j] = r->diags[j - 1];
            j--;
        }
        r->diags[j] = e;
    }
}

int imp_litellm_convert(const char *text, size_t len, const char *file, imp_result_t *out)
{
    memset(out, 0, sizeof *out);
    imp_conv_t conv = {.file = file ? file : "<input>", .res = out};
    imp_conv_t *c = &conv;
    if (len > IMP_MAX_INPUT) {
        imp__err(c, NULL, "the file is larger than %u bytes", IMP_MAX_INPUT);
        return -1;
    }
    if (!(c->a = arena_create(16384))) {
        imp__err(c, NULL, "out of memory");
        return -1;
    }
    ytree_error_t yerr;
    ytree_t *t = ytree_parse(text, len, &yerr);
    if (!t) {
        /* not YAML (or a construct skuld's reader refuses: anchors, aliases) */
        ynode_t at = {.line = yerr.line, .col = yerr.col};
        imp__err(c, yerr.line ? &at : NULL, "not a YAML document LiteLLM could read: %s", yerr.msg);
        arena_destroy(c->a);
        return -1;
    }
    convert(c, ytree_root(t));
    int rc = -1;
    if (!out->n_errors && !c->oom) {
        imp_doc_t *d = imp_doc_create();
        imp_node_t *root = imp_map(d);
        emit_doc(c, d, root);
        char *comment = arena_printf(c->a,
                                     "skuld config converted by `skuld import litellm` from %s\n"
                                     "check it with: skuld check -c FILE",
                                     c->file);
        buf_t b;
        buf_init(&b, OUT_MAX);
        const char *bad = "out of memory";
        if (d && comment && !c->oom && imp_emit(d, root, comment, &b, &bad) == 0) {
            out->yaml = malloc(b.len + 1);
            if (out->yaml) {
                memcpy(out->yaml, buf_data(&b), b.len);
                out->yaml[b.len] = '\0';
                out->yaml_len = b.len;
                rc = 0;
            }
        } else {
            imp__err(c, NULL, "cannot write the skuld config: %s", bad);
        }
        buf_free(&b);
        imp_doc_free(d);
    }
    if (c->oom) imp__err(c, NULL, "out of memory");
    if (rc != 0 && out->yaml) {
        free(out->yaml);
        out->yaml = NULL;
        out->yaml_len = 0;
    }
    if (rc != 0 && !out->n_errors) imp__err(c, NULL, "out of memory");
    ytree_free(t);
    arena_destroy(c->a);
    sort_diags(out);
    return rc;
}

void imp_result_free(imp_result_t *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_diags; i++) free(r->diags[i].msg);
    free(r->diags);
    free(r->yaml);
    memset(r, 0, sizeof *r);
}

void imp_result_print(const imp_result_t *r, const char *file, FILE *out)
{
    static const char *const kinds[] = {"not converted", "warning", "error"};
    for (size_t i = 0; i < r->n_diags; i++) {
        const imp_diag_t *d = &r->diags[i];
        if (d->line > 0)
            fprintf(out, "%s:%d:%d: %s: %s\n", file, d->line, d->col, kinds[d->kind], d->msg);
        else
            fprintf(out, "%s: %s: %s\n", file, kinds[d->kind], d->msg);
    }
}
