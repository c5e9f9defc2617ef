/*
 * litellm.c — `skuld import litellm`: the driver of a conversion, its
 * diagnostics, the key walker and the readers of LiteLLM values. model_list
 * is litellm_models.c's, the settings sections litellm_settings.c's.
 *
 * A conversion: text -> ytree (positions kept) -> each top-level section into
 * the imp_conv_t (litellm_internal.h) -> the skuld document, built with
 * emit.h in the order of README's configuration reference -> text. Nothing
 * here does I/O or reads the environment: an `os.environ/NAME` value becomes
 * skuld's `env:NAME` where skuld reads secrets, and is reported as not
 * converted where it does not.
 *
 * Errors (bad input) are collected, never stop the walk, and make the
 * conversion fail with no output; diagnostics are sorted by position (stable).
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
bool imp__env_not_here(imp_conv_t *c, const ynode_t *v, const char *path)
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
    if (imp__env_not_here(c, v, path)) return 0;
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
    if (imp__env_not_here(c, v, path)) return 0;
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

bool imp__secret_clean(const char *s, size_t len)
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
    if (!imp__secret_clean(v->str, v->len)) {
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

/* ---------------------------------------------------------------- sections */

const ynode_t *imp__mapping_or_err(imp_conv_t *c, const ynode_t *v, const char *path)
{
    if (!v) return NULL;
    if (v->kind != YNODE_MAPPING) {
        imp__err(c, v, "%s: expected a mapping, got %s", path, ytree_kind_name(v));
        return NULL;
    }
    return v;
}

/* ---------------------------------------------------------------- output */

static void emit_doc(imp_conv_t *c, imp_doc_t *d, imp_node_t *root)
{
    imp_node_t *server = imp_map(d);
    if (c->master_key) imp_map_add(d, server, "master_key", imp_cstr(d, c->master_key));
    imp_node_t *res = imp_map(d);
    /* skuld tries every deployment of the model, then those of its fallbacks,
     * all within max_attempts; LiteLLM retries num_retries times, then falls
     * back. So: the most candidates of any model, plus num_retries. */
    size_t longest = imp__longest_fallbacks(c), cands = imp__most_candidates(c);
    if (c->num_retries.set || longest) {
        int64_t want = (int64_t)(cands ? cands : 1) + (c->num_retries.set ? c->num_retries.v : 0);
        if (!c->num_retries.set && want <= 3) want = 0; /* skuld's default 3 already covers it */
        if (want > 10) {
            imp__warn(c, c->num_retries.set ? c->num_retries.at : NULL,
                      "server.resilience.max_attempts: the deployments of a model and of its "
                      "fallbacks plus num_retries make %lld attempts; skuld allows at most 10",
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
    const ynode_t *rs = imp__mapping_or_err(c, KV(k, "router_settings"), "router_settings");
    const ynode_t *ls = imp__mapping_or_err(c, KV(k, "litellm_settings"), "litellm_settings");
    imp__settings(c, rs, ls);
    const ynode_t *gs = imp__mapping_or_err(c, KV(k, "general_settings"), "general_settings");
    if (gs) imp__general(c, gs);
    const ynode_t *ev =
        imp__mapping_or_err(c, KV(k, "environment_variables"), "environment_variables");
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
