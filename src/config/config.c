/*
 * config — loads and validates the YAML configuration into a config_t.
 *
 * Pipeline: bytes -> ytree (yaml_tree.c, positions kept) -> walk the tree
 * section by section into a freshly malloc'd config_t -> cross-reference
 * checks. The tree is freed before returning; the config_t copies every
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
 * Secrets (api_key): `env:NAME` and `file:PATH` are resolved here; any other
 * string is the key itself. A secret's value never enters an error message or
 * a log line — messages name the key or the reference (env:NAME, file:PATH).
 * Resolved secrets are wiped (explicit_bzero) before being freed. file: paths
 * are relative to the working directory.
 *
 * Schema: the server section is table-driven (field_t: key, type, offset,
 * bounds); providers and models reuse the same walker and then run their own
 * checks. Sections named in DESIGN.md but not implemented yet are rejected by
 * name (unsupported_sections) so users learn they are recognised but pending.
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config/yaml_tree.h"
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
                                    "  - name: echo\n"
                                    "    provider: builtin\n";

#define CONFIG_FILE_MAX (16u << 20) /* larger config files are refused */
#define SECRET_FILE_MAX (64u << 10) /* larger secret files are refused */
#define SHOW_MAX 64                 /* bytes of a value quoted in a message */

/* ------------------------------------------------------------------------ */
/* Error collection                                                          */

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

static void add_errorv(loader_t *L, int line, int col, const char *fmt, va_list ap)
{
    char msg[512];
    L->n_err++;
    if (!L->errs) return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    cfg_error_t *v = realloc(L->errs->v, (L->errs->n + 1) * sizeof(*v));
    if (!v) return; /* counted above, so the load still fails */
    L->errs->v = v;
    cfg_error_t *e = &v[L->errs->n];
    e->file = strdup(L->file);
    e->msg = strdup(msg);
    e->line = line;
    e->col = col;
    if (!e->file || !e->msg) {
        free(e->file);
        free(e->msg);
        return;
    }
    L->errs->n++;
}

static void err_pos(loader_t *L, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void err_pos(loader_t *L, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_errorv(L, line, col, fmt, ap);
    va_end(ap);
}

static void err_at(loader_t *L, const ynode_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err_at(loader_t *L, const ynode_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_errorv(L, n ? n->line : 0, n ? n->col : 0, fmt, ap);
    va_end(ap);
}

/* Stable insertion sort by position (lists are short). */
static void sort_errors(cfg_errors_t *errs)
{
    for (size_t i = 1; i < errs->n; i++) {
        cfg_error_t e = errs->v[i];
        size_t j = i;
        while (j > 0 && (errs->v[j - 1].line > e.line ||
                         (errs->v[j - 1].line == e.line && errs->v[j - 1].col > e.col))) {
            errs->v[j] = errs->v[j - 1];
            j--;
        }
        errs->v[j] = e;
    }
}

/* Copies a scalar for quoting in a message: at most SHOW_MAX bytes, control
 * bytes replaced by '?', "..." when cut. Never called on a secret. */
static const char *show(char out[SHOW_MAX + 4], const char *s, size_t len)
{
    size_t n = len < SHOW_MAX ? len : SHOW_MAX;
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

#define SHOWN(node) show((char[SHOW_MAX + 4]){0}, (node)->str, (node)->len)

static char *dup_str(loader_t *L, const ynode_t *at, const char *s)
{
    char *p = strdup(s);
    if (!p) err_at(L, at, "out of memory");
    return p;
}

/* ------------------------------------------------------------------------ */
/* Value parsers                                                             */

/* Strict unsigned decimal: one or more digits, no sign or spaces. Advances *p
 * past the digits. */
static int parse_digits(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (!isdigit((unsigned char)*s)) return -1;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *p = s;
    *out = v;
    return 0;
}

int config_parse_duration_ms(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    uint64_t n;
    if (!s || !out || parse_digits(&s, &n) < 0) return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(s, units[i].unit) != 0) continue;
        if (n > UINT64_MAX / units[i].ms) return -1;
        *out = n * units[i].ms;
        return 0;
    }
    return -1;
}

int config_parse_size(const char *s, size_t *out)
{
    static const struct {
        const char *unit;
        uint64_t mul;
    } units[] = {
        {"", 1},
        {"B", 1},
        {"KB", 1000},
        {"MB", 1000 * 1000},
        {"GB", 1000 * 1000 * 1000},
        {"TB", 1000ull * 1000 * 1000 * 1000},
        {"KiB", 1ull << 10},
        {"MiB", 1ull << 20},
        {"GiB", 1ull << 30},
        {"TiB", 1ull << 40},
    };
    uint64_t n;
    if (!s || !out || parse_digits(&s, &n) < 0) return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(s, units[i].unit) != 0) continue;
        if (n > UINT64_MAX / units[i].mul) return -1;
        uint64_t v = n * units[i].mul;
        if (v > SIZE_MAX) return -1;
        *out = (size_t)v;
        return 0;
    }
    return -1;
}

/* Human form of a size for messages: 1024 -> "1KiB". */
static const char *fmt_size(char out[32], uint64_t v)
{
    static const char *const names[] = {"B", "KiB", "MiB", "GiB"};
    int i = 0;
    while (i < 3 && v >= 1024 && v % 1024 == 0) {
        v /= 1024;
        i++;
    }
    snprintf(out, 32, "%llu%s", (unsigned long long)v, names[i]);
    return out;
}

/* ------------------------------------------------------------------------ */
/* Generic mapping walker                                                    */

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

#define MAX_FIELDS 24
#define COUNTOF(a) (sizeof(a) / sizeof((a)[0]))

static bool scalar_is(const ynode_t *n, const char *s)
{
    size_t len = strlen(s);
    return n->kind == YNODE_SCALAR && n->len == len && memcmp(n->str, s, len) == 0;
}

/* Edit distance (optimal string alignment: insert, delete, substitute, swap
 * two neighbours) of two short strings; 99 for long input. */
static size_t edit_distance(const char *a, size_t la, const char *b)
{
    size_t lb = strlen(b);
    if (la > 32 || lb > 32) return 99;
    size_t d[33][33];
    for (size_t i = 0; i <= la; i++) d[i][0] = i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* "unknown key 'lisen' in server (did you mean 'listen'?)" or, with no close
 * match, "(valid keys: listen, workers, ...)". */
static void unknown_key(loader_t *L, const ynode_t *key, const char *where,
                        const char *const *valid, size_t n_valid)
{
    const char *best = NULL;
    size_t best_d = 99;
    for (size_t i = 0; i < n_valid; i++) {
        size_t d = edit_distance(key->str, key->len, valid[i]);
        size_t limit = strlen(valid[i]) <= 4 ? 1 : 2;
        if (d <= limit && d < best_d) {
            best = valid[i];
            best_d = d;
        }
    }
    if (best) {
        err_at(L, key, "unknown key '%s' %s (did you mean '%s'?)", SHOWN(key), where, best);
        return;
    }
    char list[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < n_valid && used < sizeof(list); i++) {
        int w = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", valid[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
    err_at(L, key, "unknown key '%s' %s (valid keys: %s)", SHOWN(key), where, list);
}

/* Reports a duplicate of an earlier key in the same mapping; returns true if
 * pairs[i]'s key repeats one of pairs[0..i-1]. */
static bool duplicate_key(loader_t *L, const ynode_t *map, size_t i, const char *where)
{
    const ynode_t *k = map->pairs[i].key;
    for (size_t j = 0; j < i; j++) {
        const ynode_t *p = map->pairs[j].key;
        if (p->kind == YNODE_SCALAR && p->len == k->len && memcmp(p->str, k->str, k->len) == 0) {
            err_at(L, k, "duplicate key '%s' %s (first at line %d)", SHOWN(k), where, p->line);
            return true;
        }
    }
    return false;
}

/* A key must be a non-null scalar. */
static bool check_key(loader_t *L, const ynode_t *k)
{
    if (k->kind != YNODE_SCALAR || ytree_is_null(k)) {
        err_at(L, k, "expected a key name, got %s", ytree_kind_name(k));
        return false;
    }
    return true;
}

/* The value must be a non-null scalar with no NUL byte. */
static bool want_scalar(loader_t *L, const ynode_t *v, const char *key, const char *what)
{
    if (v->kind != YNODE_SCALAR || ytree_is_null(v)) {
        err_at(L, v, "%s: expected %s, got %s", key, what, ytree_kind_name(v));
        return false;
    }
    if (strlen(v->str) != v->len) {
        err_at(L, v, "%s: value must not contain a NUL byte", key);
        return false;
    }
    return true;
}

static int parse_int(const char *s, int64_t *out)
{
    bool neg = *s == '-';
    uint64_t v;
    if (neg) s++;
    if (parse_digits(&s, &v) < 0 || *s) return -1;
    if (v > (uint64_t)INT64_MAX) return -1;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

static void config__strlist_free(cfg_strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void parse_field(loader_t *L, const field_t *f, const ynode_t *v, void *dst)
{
    char *at = (char *)dst + f->off;
    char tmp[32];

    switch (f->type) {
    case FT_STRING: {
        if (!want_scalar(L, v, f->key, "a string")) return;
        char *s = dup_str(L, v, v->str);
        if (!s) return;
        free(*(char **)at);
        *(char **)at = s;
        return;
    }
    case FT_INT: {
        if (!want_scalar(L, v, f->key, "an integer")) return;
        int64_t n;
        if (v->style != YSTYLE_PLAIN) {
            err_at(L, v, "%s: expected an integer, got a quoted string", f->key);
            return;
        }
        if (parse_int(v->str, &n) < 0) {
            err_at(L, v, "%s: expected an integer, got '%s'", f->key, SHOWN(v));
            return;
        }
        if (n < f->min || n > f->max) {
            err_at(L, v, "%s must be between %lld and %lld", f->key, (long long)f->min,
                   (long long)f->max);
            return;
        }
        *(int *)at = (int)n;
        return;
    }
    case FT_BOOL:
        if (!want_scalar(L, v, f->key, "true or false")) return;
        if (v->style == YSTYLE_PLAIN &&
            (strcasecmp(v->str, "true") == 0 || strcasecmp(v->str, "yes") == 0)) {
            *(bool *)at = true;
        } else if (v->style == YSTYLE_PLAIN &&
                   (strcasecmp(v->str, "false") == 0 || strcasecmp(v->str, "no") == 0)) {
            *(bool *)at = false;
        } else {
            err_at(L, v, "%s: expected true or false, got '%s'", f->key, SHOWN(v));
        }
        return;
    case FT_SIZE: {
        if (!want_scalar(L, v, f->key, "a size")) return;
        size_t n;
        if (config_parse_size(v->str, &n) < 0) {
            err_at(L, v,
                   "%s: invalid size '%s' (use e.g. 512KiB, 4MiB, 1GiB, 4MB or a number of "
                   "bytes)",
                   f->key, SHOWN(v));
            return;
        }
        if ((uint64_t)n < (uint64_t)f->min) {
            err_at(L, v, "%s must be at least %s", f->key, fmt_size(tmp, (uint64_t)f->min));
            return;
        }
        *(size_t *)at = n;
        return;
    }
    case FT_NUMBER: {
        if (!want_scalar(L, v, f->key, "a number")) return;
        char *end = NULL;
        errno = 0;
        double d = strtod(v->str, &end);
        if (v->style != YSTYLE_PLAIN || !*v->str || *end || errno || d != d) {
            err_at(L, v, "%s: expected a number, got '%s'", f->key, SHOWN(v));
            return;
        }
        if (d < f->dmin || d > f->dmax) {
            err_at(L, v, "%s must be between %g and %g", f->key, f->dmin, f->dmax);
            return;
        }
        *(double *)at = d;
        return;
    }
    case FT_STRLIST: {
        if (v->kind != YNODE_SEQUENCE) {
            err_at(L, v, "%s: expected a list, got %s", f->key, ytree_kind_name(v));
            return;
        }
        cfg_strlist_t *l = (cfg_strlist_t *)at;
        char **items = calloc(v->n + 1, sizeof(*items));
        if (!items) {
            err_at(L, v, "out of memory");
            return;
        }
        size_t n = 0;
        for (size_t i = 0; i < v->n; i++) {
            const ynode_t *it = v->items[i];
            if (it->kind != YNODE_SCALAR || ytree_is_null(it)) {
                err_at(L, it, "%s: expected a string, got %s", f->key, ytree_kind_name(it));
                continue;
            }
            char *d = dup_str(L, it, it->str);
            if (d) items[n++] = d;
        }
        config__strlist_free(l);
        l->v = items;
        l->n = n;
        return;
    }
    case FT_MAPPING: /* located by the walker, parsed by the section's code */
        return;
    case FT_DURATION: {
        if (!want_scalar(L, v, f->key, "a duration")) return;
        uint64_t ms;
        if (config_parse_duration_ms(v->str, &ms) < 0) {
            err_at(L, v,
                   "%s: invalid duration '%s' (use e.g. 250ms, 30s, 5m, 1h or a number of "
                   "seconds)",
                   f->key, SHOWN(v));
            return;
        }
        if (ms < (uint64_t)f->min) {
            err_at(L, v, "%s must be at least %lldms", f->key, (long long)f->min);
            return;
        }
        *(uint64_t *)at = ms;
        return;
    }
    }
}

/* Walks mapping `map` against `fields`, storing parsed values into dst (fields
 * before index `split`) or dst2 (the rest). For each field found,
 * keys[i]/vals[i] are set to its nodes (NULL if absent). `what` names the
 * section in messages ("server", "provider"). */
static void walk_map_split(loader_t *L, const ynode_t *map, const char *what, const field_t *fields,
                           size_t nf, void *dst, size_t split, void *dst2, const ynode_t **keys,
                           const ynode_t **vals)
{
    const char *valid[MAX_FIELDS];
    char where[64];
    snprintf(where, sizeof(where), "in %s", what);
    for (size_t i = 0; i < nf; i++) {
        valid[i] = fields[i].key;
        keys[i] = vals[i] = NULL;
    }

    for (size_t i = 0; i < map->n; i++) {
        const ynode_t *k = map->pairs[i].key, *v = map->pairs[i].value;
        if (!check_key(L, k) || duplicate_key(L, map, i, where)) continue;
        size_t f = 0;
        while (f < nf && !scalar_is(k, fields[f].key)) f++;
        if (f == nf) {
            unknown_key(L, k, where, valid, nf);
            continue;
        }
        keys[f] = k;
        vals[f] = v;
        if (fields[f].type != FT_MAPPING) parse_field(L, &fields[f], v, f < split ? dst : dst2);
    }
    for (size_t f = 0; f < nf; f++)
        if (fields[f].required && !keys[f])
            err_at(L, map, "%s is missing required key '%s'", what, fields[f].key);
}

/* The common case: every field stores into dst. */
static void walk_map(loader_t *L, const ynode_t *map, const char *what, const field_t *fields,
                     size_t nf, void *dst, const ynode_t **keys, const ynode_t **vals)
{
    walk_map_split(L, map, what, fields, nf, dst, nf, NULL, keys, vals);
}

/* ------------------------------------------------------------------------ */
/* Secrets                                                                   */

static void free_secret(char *s)
{
    if (!s) return;
    explicit_bzero(s, strlen(s));
    free(s);
}

/* A secret goes into an HTTP header: no control characters. */
static bool secret_clean(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
    return true;
}

static char *read_secret_file(loader_t *L, const ynode_t *at, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_at(L, at, "api_key: cannot read file:%s: %s", path, strerror(errno));
        return NULL;
    }
    char *data = malloc(SECRET_FILE_MAX + 1);
    if (!data) {
        close(fd);
        err_at(L, at, "out of memory");
        return NULL;
    }
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, data + len, SECRET_FILE_MAX + 1 - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            explicit_bzero(data, len);
            free(data);
            err_at(L, at, "api_key: cannot read file:%s: %s", path, strerror(e));
            return NULL;
        }
        if (r == 0) break;
        len += (size_t)r;
        if (len > SECRET_FILE_MAX) {
            close(fd);
            explicit_bzero(data, len);
            free(data);
            err_at(L, at, "api_key: file:%s is larger than %u bytes", path, SECRET_FILE_MAX);
            return NULL;
        }
    }
    close(fd);
    while (len > 0 && isspace((unsigned char)data[len - 1])) len--;
    data[len] = '\0';
    const char *problem = NULL;
    if (len == 0)
        problem = "is empty";
    else if (memchr(data, '\0', len))
        problem = "contains a NUL byte";
    else if (!secret_clean(data))
        problem = "contains control characters";
    if (problem) {
        explicit_bzero(data, len);
        free(data);
        err_at(L, at, "api_key: file:%s %s", path, problem);
        return NULL;
    }
    return data;
}

static bool env_name_ok(const char *s)
{
    if (!*s || isdigit((unsigned char)*s)) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_') return false;
    return true;
}

/* Resolves `raw` (the YAML value, owned by the caller) into a fresh string, or
 * returns NULL after reporting an error at `at`. Messages name the reference,
 * never the value. */
static char *resolve_secret(loader_t *L, const ynode_t *at, const char *raw)
{
    if (strncmp(raw, "env:", 4) == 0) {
        const char *name = raw + 4;
        if (!env_name_ok(name)) {
            char shown[SHOW_MAX + 4];
            err_at(L, at, "api_key: invalid environment variable name in 'env:%s'",
                   show(shown, name, strlen(name)));
            return NULL;
        }
        const char *val = getenv(name);
        if (!val) {
            err_at(L, at, "environment variable %s is not set", name);
            return NULL;
        }
        if (!*val) {
            err_at(L, at, "environment variable %s is empty", name);
            return NULL;
        }
        if (!secret_clean(val)) {
            err_at(L, at, "environment variable %s contains control characters", name);
            return NULL;
        }
        return dup_str(L, at, val);
    }
    if (strncmp(raw, "file:", 5) == 0) {
        if (!raw[5]) {
            err_at(L, at, "api_key: 'file:' needs a path");
            return NULL;
        }
        return read_secret_file(L, at, raw + 5);
    }
    if (!*raw) {
        err_at(L, at, "api_key is empty");
        return NULL;
    }
    if (!secret_clean(raw)) {
        err_at(L, at, "api_key contains control characters");
        return NULL;
    }
    return dup_str(L, at, raw);
}

/* ------------------------------------------------------------------------ */
/* providers                                                                 */

/* Provider types this version implements. Later provider types (anthropic,
 * gemini, ollama, llamacpp, ...) are added to this array, each with its file
 * in src/provider. */
static const struct provider_type {
    const char *name;
    bool remote; /* true: base_url required, api_key allowed; false: neither */
} provider_types[] = {
    {"openai", true},    {"echo", false},
    {"llamacpp", false}, /* embedded llama.cpp; models need `path` */
    {"anthropic", true}, {"gemini", true},
    {"ollama", true},
};

static const struct provider_type *find_provider_type(const char *name)
{
    for (size_t i = 0; i < COUNTOF(provider_types); i++)
        if (strcmp(provider_types[i].name, name) == 0) return &provider_types[i];
    return NULL;
}

enum { P_NAME, P_TYPE, P_BASE_URL, P_API_KEY, P_HEALTH_CHECK };
static const field_t provider_fields[] = {
    [P_NAME] = {.key = "name",
                .type = FT_STRING,
                .off = offsetof(cfg_provider_t, name),
                .required = true},
    [P_TYPE] = {.key = "type",
                .type = FT_STRING,
                .off = offsetof(cfg_provider_t, type),
                .required = true},
    [P_BASE_URL] = {.key = "base_url",
                    .type = FT_STRING,
                    .off = offsetof(cfg_provider_t, base_url)},
    [P_API_KEY] = {.key = "api_key", .type = FT_STRING, .off = offsetof(cfg_provider_t, api_key)},
    [P_HEALTH_CHECK] = {.key = "health_check",
                        .type = FT_STRING,
                        .off = offsetof(cfg_provider_t, health_check)},
};

static bool provider_name_ok(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-') return false;
    return true;
}

/* http:// or https://, a non-empty rest without whitespace; trailing slashes
 * are stripped in place. */
static void check_base_url(loader_t *L, const ynode_t *at, char *url)
{
    size_t skip = strncmp(url, "http://", 7) == 0 ? 7 : strncmp(url, "https://", 8) == 0 ? 8 : 0;
    if (!skip) {
        err_at(L, at, "base_url must start with http:// or https://");
        return;
    }
    size_t len = strlen(url);
    while (len > skip && url[len - 1] == '/') url[--len] = '\0';
    if (len == skip || url[skip] == '/') {
        err_at(L, at, "base_url '%s' has no host", SHOWN(at));
        return;
    }
    for (const char *p = url; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            err_at(L, at, "base_url must not contain spaces or control characters");
            return;
        }
    }
}

static void parse_provider(loader_t *L, const ynode_t *map, cfg_provider_t *p,
                           const ynode_t **name_nodes, size_t idx)
{
    const ynode_t *keys[COUNTOF(provider_fields)], *vals[COUNTOF(provider_fields)];
    walk_map(L, map, "provider", provider_fields, COUNTOF(provider_fields), p, keys, vals);
    name_nodes[idx] = NULL;

    /* The raw api_key (FT_STRING) is replaced by its resolution below; wipe it
     * on every path so the literal does not linger in freed memory. */
    char *raw_key = p->api_key;
    p->api_key = NULL;

    if (p->name) {
        if (!provider_name_ok(p->name)) {
            err_at(L, vals[P_NAME],
                   "invalid provider name '%s' (use letters, digits, '.', '_' and '-')",
                   SHOWN(vals[P_NAME]));
        } else {
            for (size_t j = 0; j < idx; j++) {
                if (name_nodes[j] && strcmp(name_nodes[j]->str, p->name) == 0) {
                    err_at(L, vals[P_NAME], "duplicate provider name '%s' (first at line %d)",
                           p->name, name_nodes[j]->line);
                    break;
                }
            }
            name_nodes[idx] = vals[P_NAME];
        }
    }

    const struct provider_type *pt = NULL;
    if (p->type) {
        pt = find_provider_type(p->type);
        if (!pt) {
            char list[128] = "";
            for (size_t i = 0; i < COUNTOF(provider_types); i++) {
                if (i) strncat(list, ", ", sizeof(list) - strlen(list) - 1);
                strncat(list, provider_types[i].name, sizeof(list) - strlen(list) - 1);
            }
            err_at(L, vals[P_TYPE], "unknown provider type '%s' (supported: %s)",
                   SHOWN(vals[P_TYPE]), list);
        }
    }

    if (pt && !pt->remote) {
        if (keys[P_BASE_URL])
            err_at(L, keys[P_BASE_URL], "base_url is not allowed for provider type '%s'", pt->name);
        if (keys[P_API_KEY])
            err_at(L, keys[P_API_KEY], "api_key is not allowed for provider type '%s'", pt->name);
        free(p->base_url);
        p->base_url = NULL;
    } else {
        if (pt && !keys[P_BASE_URL])
            err_at(L, map, "provider is missing required key 'base_url' (required for type '%s')",
                   pt->name);
        if (p->base_url) check_base_url(L, vals[P_BASE_URL], p->base_url);
        if (raw_key) p->api_key = resolve_secret(L, vals[P_API_KEY], raw_key);
    }
    free_secret(raw_key);

    const char *hc = p->health_check;
    if (hc && strcmp(hc, "models") != 0 && strcmp(hc, "chat") != 0 && strcmp(hc, "none") != 0)
        err_at(L, vals[P_HEALTH_CHECK], "health_check must be models, chat or none, not '%s'",
               SHOWN(vals[P_HEALTH_CHECK]));
}

/* ------------------------------------------------------------------------ */
/* models                                                                    */

typedef struct model_raw {
    char *name;
    char *provider;
    char *model;
    cfg_strlist_t capabilities;
    char *id;      /* routing */
    char *balance; /* routing */
} model_raw_t;

/* Keys parsed into model_raw_t (resolved below) or straight into cfg_model_t. */
enum { M_NAME, M_PROVIDER, M_MODEL, M_CAPABILITIES, M_ID, M_BALANCE, M__RAW };
static const field_t model_fields[] = {
    [M_NAME] = {.key = "name",
                .type = FT_STRING,
                .off = offsetof(model_raw_t, name),
                .required = true},
    [M_PROVIDER] = {.key = "provider",
                    .type = FT_STRING,
                    .off = offsetof(model_raw_t, provider),
                    .required = true},
    [M_MODEL] = {.key = "model", .type = FT_STRING, .off = offsetof(model_raw_t, model)},
    [M_CAPABILITIES] = {.key = "capabilities",
                        .type = FT_STRLIST,
                        .off = offsetof(model_raw_t, capabilities)},
    [M_ID] = {.key = "id", .type = FT_STRING, .off = offsetof(model_raw_t, id)},
    [M_BALANCE] = {.key = "balance", .type = FT_STRING, .off = offsetof(model_raw_t, balance)},
};

#define MDL(f) offsetof(cfg_model_t, f)
enum {
    MD_PATH,
    MD_PRICE,
    MD_CONTEXT,
    MD_QUALITY,
    MD_TAGS,
    MD_WEIGHT,
    MD_PARAMS,
    MD_HARDWARE,
    MD_REGION,
    MD_PARALLEL,
    MD_FALLBACKS,
    MD_ON_CONTENT_POLICY,
    MD_RESILIENCE,
    MD_CAPACITY
};
static const field_t model_meta_fields[] = {
    [MD_PATH] = {.key = "path", .type = FT_STRING, .off = MDL(path)},
    [MD_PRICE] = {.key = "price", .type = FT_MAPPING},
    [MD_CONTEXT] = {.key = "context_window",
                    .type = FT_INT,
                    .off = MDL(context_window),
                    .min = 1,
                    .max = INT32_MAX},
    [MD_QUALITY] = {.key = "quality", .type = FT_NUMBER, .off = MDL(quality), .dmin = 0, .dmax = 1},
    [MD_TAGS] = {.key = "tags", .type = FT_STRLIST, .off = MDL(tags)},
    [MD_WEIGHT] = {.key = "weight", .type = FT_INT, .off = MDL(weight), .min = 0, .max = 1000000},
    [MD_PARAMS] =
        {.key = "params_b", .type = FT_NUMBER, .off = MDL(params_b), .dmin = 0, .dmax = 100000},
    [MD_HARDWARE] = {.key = "hardware", .type = FT_STRING, .off = MDL(hardware)},
    [MD_REGION] = {.key = "region", .type = FT_STRING, .off = MDL(region)},
    [MD_PARALLEL] = {.key = "parallel", .type = FT_INT, .off = MDL(parallel), .min = 1, .max = 256},
    [MD_FALLBACKS] = {.key = "fallbacks", .type = FT_STRLIST, .off = MDL(fallbacks)},
    [MD_ON_CONTENT_POLICY] = {.key = "on_content_policy",
                              .type = FT_STRING,
                              .off = MDL(on_content_policy)},
    [MD_RESILIENCE] = {.key = "resilience", .type = FT_MAPPING},
    [MD_CAPACITY] = {.key = "capacity", .type = FT_MAPPING},
};

/* ------------------------------------------------------------------------ */
/* resilience (server.resilience and a model's resilience:)                  */

typedef struct model_refs {
    const ynode_t *fallbacks;         /* the list node, or NULL */
    const ynode_t *on_content_policy; /* the value node, or NULL */
} model_refs_t;

#define RSL(f) offsetof(cfg_resilience_t, f)
enum { R_HEDGE = 9 };
static const field_t resilience_fields[] = {
    {.key = "max_attempts", .type = FT_INT, .off = RSL(max_attempts), .min = 1, .max = 10},
    {.key = "retries_per_deployment",
     .type = FT_INT,
     .off = RSL(retries_per_deployment),
     .min = 0,
     .max = 10},
    {.key = "backoff_base", .type = FT_DURATION, .off = RSL(backoff_base_ms), .min = 1},
    {.key = "backoff_max", .type = FT_DURATION, .off = RSL(backoff_max_ms), .min = 1},
    {.key = "retry_after_max", .type = FT_DURATION, .off = RSL(retry_after_max_ms), .min = 0},
    {.key = "retry_budget", .type = FT_NUMBER, .off = RSL(retry_budget), .dmin = 0, .dmax = 10},
    {.key = "retry_budget_min",
     .type = FT_INT,
     .off = RSL(retry_budget_min),
     .min = 0,
     .max = 100000},
    {.key = "per_try_timeout", .type = FT_DURATION, .off = RSL(per_try_timeout_ms), .min = 0},
    {.key = "deadline", .type = FT_DURATION, .off = RSL(deadline_ms), .min = 0},
    [R_HEDGE] = {.key = "hedge_delay", .type = FT_MAPPING}, /* off | DURATION | p95 */
    {.key = "first_chunk_timeout",
     .type = FT_DURATION,
     .off = RSL(first_chunk_timeout_ms),
     .min = 0},
    {.key = "idle_gap_timeout", .type = FT_DURATION, .off = RSL(idle_gap_timeout_ms), .min = 0},
    {.key = "breaker_failures",
     .type = FT_INT,
     .off = RSL(breaker_failures),
     .min = 0,
     .max = 1000},
    {.key = "breaker_failure_rate",
     .type = FT_NUMBER,
     .off = RSL(breaker_failure_rate),
     .dmin = 0,
     .dmax = 1},
    {.key = "breaker_window", .type = FT_DURATION, .off = RSL(breaker_window_ms), .min = 100},
    {.key = "breaker_min_requests",
     .type = FT_INT,
     .off = RSL(breaker_min_requests),
     .min = 1,
     .max = 1000000},
    {.key = "ejection_time", .type = FT_DURATION, .off = RSL(ejection_time_ms), .min = 1},
    {.key = "max_ejection_time", .type = FT_DURATION, .off = RSL(max_ejection_time_ms), .min = 1},
    {.key = "max_concurrency",
     .type = FT_INT,
     .off = RSL(max_concurrency),
     .min = 0,
     .max = 1000000},
    {.key = "queue_size", .type = FT_INT, .off = RSL(queue_size), .min = 0, .max = 1000000},
    {.key = "queue_timeout", .type = FT_DURATION, .off = RSL(queue_timeout_ms), .min = 1},
};
#undef RSL

static void set_resilience_defaults(cfg_resilience_t *r)
{
    memset(r, 0, sizeof *r);
    r->max_attempts = 3;
    r->retries_per_deployment = 0;
    r->backoff_base_ms = 25;
    r->backoff_max_ms = 250;
    r->retry_after_max_ms = 2000;
    r->retry_budget = 0.2;
    r->retry_budget_min = 3;
    r->hedge = CFG_HEDGE_OFF;
    r->hedge_delay_ms = 10;
    r->breaker_failures = 5;
    r->breaker_failure_rate = 0.5;
    r->breaker_window_ms = 10000;
    r->breaker_min_requests = 20;
    r->ejection_time_ms = 30000;
    r->max_ejection_time_ms = 300000;
    r->queue_size = 1024;
    r->queue_timeout_ms = 5000;
}

/* Walks a `resilience:` mapping into r (which holds the defaults to override). */
static void parse_resilience(loader_t *L, const ynode_t *map, cfg_resilience_t *r)
{
    if (map->kind != YNODE_MAPPING) {
        err_at(L, map, "resilience: expected a mapping, got %s", ytree_kind_name(map));
        return;
    }
    const ynode_t *keys[COUNTOF(resilience_fields)], *vals[COUNTOF(resilience_fields)];
    walk_map(L, map, "resilience", resilience_fields, COUNTOF(resilience_fields), r, keys, vals);
    const ynode_t *h = vals[R_HEDGE];
    if (h) {
        uint64_t ms;
        if (h->kind != YNODE_SCALAR || ytree_is_null(h)) {
            err_at(L, h, "hedge_delay: expected off, p95 or a duration, got %s",
                   ytree_kind_name(h));
        } else if (scalar_is(h, "off")) {
            r->hedge = CFG_HEDGE_OFF;
        } else if (scalar_is(h, "p95")) {
            r->hedge = CFG_HEDGE_P95;
        } else if (config_parse_duration_ms(h->str, &ms) == 0 && ms > 0) {
            r->hedge = CFG_HEDGE_FIXED;
            r->hedge_delay_ms = ms;
        } else {
            err_at(L, h, "hedge_delay: expected off, p95 or a duration like 200ms, got '%s'",
                   SHOWN(h));
        }
    }
    if (r->backoff_max_ms < r->backoff_base_ms)
        err_at(L, map, "resilience: backoff_max must be at least backoff_base");
    if (r->max_ejection_time_ms < r->ejection_time_ms)
        err_at(L, map, "resilience: max_ejection_time must be at least ejection_time");
}

/* routing: a deployment's capacity, for the load threshold */
typedef struct cap_raw {
    int rpm, tpm, concurrency;
} cap_raw_t;
static const field_t capacity_fields[] = {
    {.key = "rpm", .type = FT_INT, .off = offsetof(cap_raw_t, rpm), .min = 0, .max = INT32_MAX},
    {.key = "tpm", .type = FT_INT, .off = offsetof(cap_raw_t, tpm), .min = 0, .max = INT32_MAX},
    {.key = "concurrency",
     .type = FT_INT,
     .off = offsetof(cap_raw_t, concurrency),
     .min = 0,
     .max = 1000000},
};

static const char *const strategy_names[ROUTE_STRAT__COUNT] = {
    "score", "round_robin", "least_inflight", "p2c", "score_weighted"};
static const char *const task_names[ROUTE_TASK__COUNT] = {"chat", "code", "reasoning",
                                                          "long_context", "vision"};
static const char *const factor_names[ROUTE_F__COUNT] = {
    "quality", "latency", "cost", "reliability", "size", "hardware", "distance"};

/* The plan's weights (size 20%, hardware 15%, reliability 20%, latency 25%,
 * distance 10%, cost 10%) plus quality 20%; the scorer divides by the sum. */
const cfg_weights_t config_default_weights = {.w = {
                                                  [ROUTE_F_QUALITY] = 0.20,
                                                  [ROUTE_F_LATENCY] = 0.25,
                                                  [ROUTE_F_COST] = 0.10,
                                                  [ROUTE_F_RELIABILITY] = 0.20,
                                                  [ROUTE_F_SIZE] = 0.20,
                                                  [ROUTE_F_HARDWARE] = 0.15,
                                                  [ROUTE_F_DISTANCE] = 0.10,
                                              }};

const char *config_strategy_name(int i)
{
    return i >= 0 && i < ROUTE_STRAT__COUNT ? strategy_names[i] : "?";
}
const char *config_task_name(int i)
{
    return i >= 0 && i < ROUTE_TASK__COUNT ? task_names[i] : "?";
}
const char *config_factor_name(int i)
{
    return i >= 0 && i < ROUTE_F__COUNT ? factor_names[i] : "?";
}

static int name_index(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0) return (int)i;
    return -1;
}

/* "a, b, c" into out (for messages). */
static const char *name_list(char out[160], const char *const *names, size_t n)
{
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i) strncat(out, ", ", 159 - strlen(out));
        strncat(out, names[i], 159 - strlen(out));
    }
    return out;
}

#define PRC(f) offsetof(cfg_price_t, f)
static const field_t price_fields[] = {
    {.key = "input", .type = FT_NUMBER, .off = PRC(input), .dmin = 0, .dmax = 1e6},
    {.key = "output", .type = FT_NUMBER, .off = PRC(output), .dmin = 0, .dmax = 1e6},
    {.key = "cached", .type = FT_NUMBER, .off = PRC(cached), .dmin = 0, .dmax = 1e6},
};

static const char *const capability_names[] = {"chat",   "completions", "embeddings",
                                               "vision", "tools",       "json"};

unsigned config_capability(const char *name)
{
    for (size_t i = 0; i < COUNTOF(capability_names); i++)
        if (strcmp(capability_names[i], name) == 0) return 1u << i;
    return 0;
}

const char *config_capability_name(unsigned cap)
{
    for (size_t i = 0; i < COUNTOF(capability_names); i++)
        if (cap == 1u << i) return capability_names[i];
    return "?";
}

static bool model_name_ok(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s)) return false;
    return true;
}

static const cfg_provider_t *find_provider(const config_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_providers; i++)
        if (c->providers[i].name && strcmp(c->providers[i].name, name) == 0)
            return &c->providers[i];
    return NULL;
}

static void parse_model(loader_t *L, config_t *c, const ynode_t *map, cfg_model_t *m,
                        const ynode_t **name_nodes, size_t idx)
{
    model_raw_t raw = {0};
    /* One walk over both tables: the first fills raw, the second the model. */
    field_t fields[COUNTOF(model_fields) + COUNTOF(model_meta_fields)];
    memcpy(fields, model_fields, sizeof model_fields);
    memcpy(fields + M__RAW, model_meta_fields, sizeof model_meta_fields);
    const ynode_t *keys[COUNTOF(fields)], *vals[COUNTOF(fields)];
    m->quality = 0.5;
    m->weight = 1;
    m->parallel = 4;
    m->capabilities = CAP_ALL;
    m->resil = c->server.resilience;
    m->balance = -1;
    walk_map_split(L, map, "model", fields, COUNTOF(fields), &raw, M__RAW, m, keys, vals);
    name_nodes[idx] = NULL;
    if (vals[M__RAW + MD_RESILIENCE]) parse_resilience(L, vals[M__RAW + MD_RESILIENCE], &m->resil);
    if (L->refs) {
        L->refs[idx].fallbacks = vals[M__RAW + MD_FALLBACKS];
        L->refs[idx].on_content_policy = vals[M__RAW + MD_ON_CONTENT_POLICY];
    }

    const ynode_t *price = vals[M__RAW + MD_PRICE];
    if (price) {
        if (price->kind != YNODE_MAPPING) {
            err_at(L, price, "price: expected a mapping (input, output, cached), got %s",
                   ytree_kind_name(price));
        } else {
            const ynode_t *pk[COUNTOF(price_fields)], *pv[COUNTOF(price_fields)];
            walk_map(L, price, "price", price_fields, COUNTOF(price_fields), &m->price, pk, pv);
        }
    }
    if (keys[M_CAPABILITIES]) {
        m->capabilities = 0;
        const ynode_t *list = vals[M_CAPABILITIES];
        for (size_t i = 0; i < raw.capabilities.n; i++) {
            unsigned cap = config_capability(raw.capabilities.v[i]);
            if (!cap)
                err_at(L, list->items[i],
                       "unknown capability '%s' (known: chat, completions, embeddings, vision, "
                       "tools, json)",
                       SHOWN(list->items[i]));
            m->capabilities |= cap;
        }
    }
    config__strlist_free(&raw.capabilities);

    const ynode_t *cap = vals[M__RAW + MD_CAPACITY];
    if (cap) {
        if (cap->kind != YNODE_MAPPING) {
            err_at(L, cap, "capacity: expected a mapping (rpm, tpm, concurrency), got %s",
                   ytree_kind_name(cap));
        } else {
            cap_raw_t cr = {0};
            const ynode_t *ck[COUNTOF(capacity_fields)], *cv[COUNTOF(capacity_fields)];
            walk_map(L, cap, "capacity", capacity_fields, COUNTOF(capacity_fields), &cr, ck, cv);
            m->cap_rpm = cr.rpm;
            m->cap_tpm = cr.tpm;
            m->cap_concurrency = cr.concurrency;
        }
    }
    /* The slots resilience enforces are the router's capacity too, unless
     * capacity.concurrency says otherwise: the router then steers new work
     * away before the slots run out (and requests queue). */
    if (!m->cap_concurrency && m->resil.max_concurrency > 0)
        m->cap_concurrency = m->resil.max_concurrency;
    if (raw.balance) {
        m->balance = name_index(strategy_names + 1, ROUTE_STRAT__COUNT - 1, raw.balance);
        if (m->balance < 0) {
            char list[160];
            err_at(L, vals[M_BALANCE], "unknown balance strategy '%s' (known: %s)",
                   SHOWN(vals[M_BALANCE]),
                   name_list(list, strategy_names + 1, ROUTE_STRAT__COUNT - 1));
        } else {
            m->balance += 1;
        }
        free(raw.balance);
    }
    if (raw.id && !model_name_ok(raw.id))
        err_at(L, vals[M_ID], "invalid deployment id '%s' (must be non-empty, no whitespace)",
               SHOWN(vals[M_ID]));
    m->id = raw.id; /* NULL: assigned by assign_ids() once every model is known */
    if (L->mpos) {
        const ynode_t *at = vals[M_ID] ? vals[M_ID] : vals[M_NAME] ? vals[M_NAME] : map;
        L->mpos[idx][0] = at->line;
        L->mpos[idx][1] = at->col;
    }

    if (raw.name) {
        if (!model_name_ok(raw.name)) {
            err_at(L, vals[M_NAME], "invalid model name '%s' (must be non-empty, no whitespace)",
                   SHOWN(vals[M_NAME]));
        } else {
            /* Deployments in the file may share a public name (a model group);
             * a runtime model may not reuse any name. */
            for (size_t j = 0; L->registry && j < idx; j++) {
                if (name_nodes[j] && strcmp(name_nodes[j]->str, raw.name) == 0) {
                    err_at(L, vals[M_NAME], "duplicate model name '%s' (first at line %d)",
                           raw.name, name_nodes[j]->line);
                    break;
                }
            }
            name_nodes[idx] = vals[M_NAME];
        }
    }
    if (raw.provider) {
        m->provider = find_provider(c, raw.provider);
        if (!m->provider)
            err_at(L, vals[M_PROVIDER], "provider '%s' is not defined in providers",
                   SHOWN(vals[M_PROVIDER]));
    }
    if (raw.model && !*raw.model) err_at(L, vals[M_MODEL], "model must not be empty");

    /* NULL when the provider's type is missing or unknown (reported with the provider) */
    const struct provider_type *mpt =
        m->provider && m->provider->type ? find_provider_type(m->provider->type) : NULL;
    if (mpt && m->path && mpt->remote)
        err_at(L, keys[M__RAW + MD_PATH], "path is only for local providers, not type '%s'",
               m->provider->type);
    if (mpt && !m->path && strcmp(mpt->name, "llamacpp") == 0)
        err_at(L, map, "model '%s': provider type llamacpp needs 'path' (a GGUF file)",
               raw.name ? raw.name : "?");

    m->name = raw.name;
    if (raw.model)
        m->upstream_model = raw.model;
    else if (raw.name)
        m->upstream_model = dup_str(L, map, raw.name);
    free(raw.provider);
}

/* ------------------------------------------------------------------------ */
/* deployment ids and routes (routing, issue 6)                              */

/* A deployment's id: explicit, else its name when no other deployment shares
 * it, else name@provider. Ids are unique and no id is another model's name. */
static void assign_ids(loader_t *L, config_t *c)
{
    for (size_t i = 0; i < c->n_models; i++) {
        cfg_model_t *m = &c->models[i];
        if (m->id || !m->name) continue;
        bool shared = false;
        for (size_t j = 0; j < c->n_models && !shared; j++)
            shared = j != i && !m->runtime && !c->models[j].runtime && c->models[j].name &&
                     strcmp(c->models[j].name, m->name) == 0;
        if (shared && m->provider) {
            size_t n = strlen(m->name) + strlen(m->provider->name) + 2;
            m->id = malloc(n);
            if (m->id) snprintf(m->id, n, "%s@%s", m->name, m->provider->name);
        } else {
            m->id = strdup(m->name);
        }
        if (!m->id) err_pos(L, 0, 0, "out of memory");
    }
    for (size_t i = 0; i < c->n_models; i++) {
        const cfg_model_t *m = &c->models[i];
        int line = L->mpos ? L->mpos[i][0] : 0, col = L->mpos ? L->mpos[i][1] : 0;
        if (!m->id) continue;
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++) {
            const cfg_model_t *o = &c->models[j];
            if (m->runtime && o->name && m->name && strcmp(o->name, m->name) == 0)
                continue; /* reported as a duplicate model name already */
            if (o->id && strcmp(o->id, m->id) == 0) {
                err_pos(L, line, col,
                        "duplicate deployment id '%s' (first at line %d): deployments sharing a "
                        "name need different providers or an explicit 'id'",
                        m->id, L->mpos ? L->mpos[j][0] : 0);
                dup = true;
            }
        }
        for (size_t j = 0; j < c->n_models && !dup; j++) {
            const cfg_model_t *o = &c->models[j];
            if (o->name && strcmp(o->name, m->id) == 0 && (!m->name || strcmp(m->name, o->name))) {
                err_pos(L, line, col, "deployment id '%s' is the name of another model", m->id);
                break;
            }
        }
    }
    /* One balance strategy per model group. */
    for (size_t i = 0; i < c->n_models; i++) {
        const cfg_model_t *m = &c->models[i];
        for (size_t j = 0; j < i && m->balance >= 0 && m->name; j++) {
            const cfg_model_t *o = &c->models[j];
            if (o->name && strcmp(o->name, m->name) == 0 && o->balance >= 0 &&
                o->balance != m->balance) {
                err_pos(L, L->mpos ? L->mpos[i][0] : 0, L->mpos ? L->mpos[i][1] : 0,
                        "model '%s': deployments of one model must use the same balance "
                        "strategy ('%s' at line %d)",
                        m->name, strategy_names[o->balance], L->mpos ? L->mpos[j][0] : 0);
                break;
            }
        }
    }
}

const cfg_route_t *config_find_route(const config_t *c, const char *name, size_t len)
{
    if (!c || !name) return NULL;
    for (size_t i = 0; i < c->n_routes; i++) {
        const char *n = c->routes[i].name;
        if (n && strlen(n) == len && memcmp(n, name, len) == 0) return &c->routes[i];
    }
    return NULL;
}

/* Resolves a list of model names / deployment ids (a sequence node) into the
 * deployments they stand for: a name gives all of its deployments, an id one.
 * Unknown names are errors at the item. Duplicates are kept once. */
static void resolve_models(loader_t *L, const config_t *c, const ynode_t *list, const char *what,
                           const cfg_model_t ***out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (!list) return;
    if (list->kind != YNODE_SEQUENCE) {
        err_at(L, list, "%s: expected a list of model names, got %s", what, ytree_kind_name(list));
        return;
    }
    const cfg_model_t **v = calloc(c->n_models + 1, sizeof(*v));
    if (!v) {
        err_at(L, list, "out of memory");
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < list->n; i++) {
        const ynode_t *it = list->items[i];
        if (!want_scalar(L, it, what, "a model name")) continue;
        bool found = false;
        for (size_t k = 0; k < c->n_models; k++) {
            const cfg_model_t *m = &c->models[k];
            bool hit = (m->name && strcmp(m->name, it->str) == 0) ||
                       (m->id && strcmp(m->id, it->str) == 0);
            if (!hit) continue;
            found = true;
            bool dup = false;
            for (size_t d = 0; d < n && !dup; d++) dup = v[d] == m;
            if (!dup) v[n++] = m;
        }
        if (!found)
            err_at(L, it, "%s: '%s' is not a configured model or deployment id", what, SHOWN(it));
    }
    *out = v;
    *n_out = n;
}

#define WGT(i) (offsetof(cfg_weights_t, w) + (i) * sizeof(double))
static const field_t weight_fields[ROUTE_F__COUNT] = {
    [ROUTE_F_QUALITY] = {.key = "quality",
                         .type = FT_NUMBER,
                         .off = WGT(ROUTE_F_QUALITY),
                         .dmax = 1000},
    [ROUTE_F_LATENCY] = {.key = "latency",
                         .type = FT_NUMBER,
                         .off = WGT(ROUTE_F_LATENCY),
                         .dmax = 1000},
    [ROUTE_F_COST] = {.key = "cost", .type = FT_NUMBER, .off = WGT(ROUTE_F_COST), .dmax = 1000},
    [ROUTE_F_RELIABILITY] = {.key = "reliability",
                             .type = FT_NUMBER,
                             .off = WGT(ROUTE_F_RELIABILITY),
                             .dmax = 1000},
    [ROUTE_F_SIZE] = {.key = "size", .type = FT_NUMBER, .off = WGT(ROUTE_F_SIZE), .dmax = 1000},
    [ROUTE_F_HARDWARE] = {.key = "hardware",
                          .type = FT_NUMBER,
                          .off = WGT(ROUTE_F_HARDWARE),
                          .dmax = 1000},
    [ROUTE_F_DISTANCE] = {.key = "distance",
                          .type = FT_NUMBER,
                          .off = WGT(ROUTE_F_DISTANCE),
                          .dmax = 1000},
};
#undef WGT

/* weights: {factor: number >= 0}; keys not given keep their defaults. */
static void parse_weights(loader_t *L, const ynode_t *v, cfg_weights_t *w)
{
    *w = config_default_weights;
    if (v->kind != YNODE_MAPPING) {
        err_at(L, v,
               "weights: expected a mapping (quality, latency, cost, reliability, size, "
               "hardware, distance), got %s",
               ytree_kind_name(v));
        return;
    }
    const ynode_t *k[ROUTE_F__COUNT], *vv[ROUTE_F__COUNT];
    walk_map(L, v, "weights", weight_fields, ROUTE_F__COUNT, w, k, vv);
    double sum = 0;
    for (int i = 0; i < ROUTE_F__COUNT; i++) sum += w->w[i];
    if (!(sum > 0)) err_at(L, v, "weights: at least one weight must be above 0");
}

typedef struct task_raw {
    cfg_strlist_t keywords, content_types;
    int min_tokens;
    bool tools;
} task_raw_t;
enum { TK_KEYWORDS, TK_MIN_TOKENS, TK_CONTENT_TYPES, TK_TOOLS, TK_CANDIDATES, TK_WEIGHTS };
static const field_t task_fields[] = {
    [TK_KEYWORDS] = {.key = "keywords", .type = FT_STRLIST, .off = offsetof(task_raw_t, keywords)},
    [TK_MIN_TOKENS] = {.key = "min_tokens",
                       .type = FT_INT,
                       .off = offsetof(task_raw_t, min_tokens),
                       .min = 1,
                       .max = INT32_MAX},
    [TK_CONTENT_TYPES] = {.key = "content_types",
                          .type = FT_STRLIST,
                          .off = offsetof(task_raw_t, content_types)},
    [TK_TOOLS] = {.key = "tools", .type = FT_BOOL, .off = offsetof(task_raw_t, tools)},
    [TK_CANDIDATES] = {.key = "candidates", .type = FT_MAPPING},
    [TK_WEIGHTS] = {.key = "weights", .type = FT_MAPPING},
};

static void parse_task(loader_t *L, const config_t *c, const ynode_t *map, cfg_task_rule_t *t)
{
    task_raw_t raw = {0};
    const ynode_t *k[COUNTOF(task_fields)], *v[COUNTOF(task_fields)];
    walk_map(L, map, "task", task_fields, COUNTOF(task_fields), &raw, k, v);
    t->set = true;
    t->keywords = raw.keywords;
    t->content_types = raw.content_types;
    t->min_tokens = raw.min_tokens;
    t->tools = k[TK_TOOLS] ? raw.tools : -1;
    static const char *const ctypes[] = {"image", "audio", "file"};
    for (size_t i = 0; i < t->content_types.n; i++)
        if (name_index(ctypes, COUNTOF(ctypes), t->content_types.v[i]) < 0)
            err_at(L, v[TK_CONTENT_TYPES]->items[i],
                   "unknown content type '%s' (known: image, audio, file)", t->content_types.v[i]);
    if (v[TK_CANDIDATES]) {
        resolve_models(L, c, v[TK_CANDIDATES], "candidates", &t->cands, &t->n_cands);
        if (v[TK_CANDIDATES]->kind == YNODE_SEQUENCE && !v[TK_CANDIDATES]->n)
            err_at(L, v[TK_CANDIDATES], "candidates: the list is empty");
    }
    if (v[TK_WEIGHTS]) {
        t->has_weights = true;
        parse_weights(L, v[TK_WEIGHTS], &t->weights);
    }
}

enum {
    R_NAME,
    R_CANDIDATES,
    R_STRATEGY,
    R_WEIGHTS,
    R_FALLBACKS,
    R_TASKS,
    R_REGION,
    R_LOAD,
    R_RESILIENCE
};
typedef struct route_raw {
    char *name, *strategy, *region;
    double load_threshold;
} route_raw_t;
static const field_t route_fields[] = {
    [R_NAME] = {.key = "name",
                .type = FT_STRING,
                .off = offsetof(route_raw_t, name),
                .required = true},
    [R_CANDIDATES] = {.key = "candidates", .type = FT_MAPPING, .required = true},
    [R_STRATEGY] = {.key = "strategy", .type = FT_STRING, .off = offsetof(route_raw_t, strategy)},
    [R_WEIGHTS] = {.key = "weights", .type = FT_MAPPING},
    [R_FALLBACKS] = {.key = "fallbacks", .type = FT_MAPPING},
    [R_TASKS] = {.key = "tasks", .type = FT_MAPPING},
    [R_REGION] = {.key = "region", .type = FT_STRING, .off = offsetof(route_raw_t, region)},
    [R_LOAD] = {.key = "load_threshold",
                .type = FT_NUMBER,
                .off = offsetof(route_raw_t, load_threshold),
                .dmin = 0.01,
                .dmax = 1},
    [R_RESILIENCE] = {.key = "resilience", .type = FT_MAPPING},
};

static void parse_route(loader_t *L, config_t *c, const ynode_t *map, cfg_route_t *r, size_t idx)
{
    route_raw_t raw = {.load_threshold = 0.8};
    const ynode_t *k[COUNTOF(route_fields)], *v[COUNTOF(route_fields)];
    walk_map(L, map, "route", route_fields, COUNTOF(route_fields), &raw, k, v);
    r->name = raw.name;
    r->region = raw.region;
    r->load_threshold = raw.load_threshold;
    if (v[R_RESILIENCE]) { /* the server's defaults, then the route's keys */
        r->resil = calloc(1, sizeof *r->resil);
        if (!r->resil) {
            err_at(L, map, "out of memory");
        } else {
            *r->resil = c->server.resilience;
            parse_resilience(L, v[R_RESILIENCE], r->resil);
        }
    }
    r->weights = config_default_weights;
    r->strategy = ROUTE_STRAT_SCORE;
    for (int t = 0; t < ROUTE_TASK__COUNT; t++) r->tasks[t].tools = -1;
    if (raw.name) {
        if (!model_name_ok(raw.name))
            err_at(L, v[R_NAME], "invalid route name '%s' (must be non-empty, no whitespace)",
                   SHOWN(v[R_NAME]));
        else if (config_find_model(c, raw.name, strlen(raw.name)))
            err_at(L, v[R_NAME], "route name '%s' is already a model name or deployment id",
                   SHOWN(v[R_NAME]));
        for (size_t j = 0; j < idx; j++)
            if (c->routes[j].name && strcmp(c->routes[j].name, raw.name) == 0) {
                err_at(L, v[R_NAME], "duplicate route name '%s'", SHOWN(v[R_NAME]));
                break;
            }
    }
    if (raw.strategy) {
        int s = name_index(strategy_names, ROUTE_STRAT__COUNT, raw.strategy);
        char list[160];
        if (s < 0)
            err_at(L, v[R_STRATEGY], "unknown strategy '%s' (known: %s)", SHOWN(v[R_STRATEGY]),
                   name_list(list, strategy_names, ROUTE_STRAT__COUNT));
        else
            r->strategy = s;
        free(raw.strategy);
    }
    if (v[R_CANDIDATES]) {
        resolve_models(L, c, v[R_CANDIDATES], "candidates", &r->cands, &r->n_cands);
        if (v[R_CANDIDATES]->kind == YNODE_SEQUENCE && !v[R_CANDIDATES]->n)
            err_at(L, v[R_CANDIDATES], "candidates: the list is empty");
    }
    if (v[R_FALLBACKS])
        resolve_models(L, c, v[R_FALLBACKS], "fallbacks", &r->fallbacks, &r->n_fallbacks);
    if (v[R_WEIGHTS]) parse_weights(L, v[R_WEIGHTS], &r->weights);
    const ynode_t *tasks = v[R_TASKS];
    if (tasks && tasks->kind != YNODE_MAPPING) {
        err_at(L, tasks, "tasks: expected a mapping of task name to rules, got %s",
               ytree_kind_name(tasks));
    } else if (tasks) {
        for (size_t i = 0; i < tasks->n; i++) {
            const ynode_t *tk = tasks->pairs[i].key, *tv = tasks->pairs[i].value;
            if (!check_key(L, tk) || duplicate_key(L, tasks, i, "in tasks")) continue;
            int t = name_index(task_names, ROUTE_TASK__COUNT, tk->str);
            if (t < 0) {
                unknown_key(L, tk, "in tasks", task_names, ROUTE_TASK__COUNT);
                continue;
            }
            if (tv->kind != YNODE_MAPPING) {
                err_at(L, tv, "tasks.%s: expected a mapping, got %s", task_names[t],
                       ytree_kind_name(tv));
                continue;
            }
            parse_task(L, c, tv, &r->tasks[t]);
        }
    }
}

static void route_free(cfg_route_t *r)
{
    free(r->name);
    free(r->region);
    free(r->resil);
    free(r->cands);
    free(r->fallbacks);
    for (int t = 0; t < ROUTE_TASK__COUNT; t++) {
        free(r->prep[t]);
        config__strlist_free(&r->tasks[t].keywords);
        config__strlist_free(&r->tasks[t].content_types);
        free(r->tasks[t].cands);
    }
}

/* ------------------------------------------------------------------------ */
/* server                                                                    */

enum {
    S_LISTEN,
    S_WORKERS,
    S_MAX_BODY,
    S_MAX_HEADER,
    S_MAX_UPSTREAM_BODY,
    S_CONNECT_TIMEOUT,
    S_REQUEST_TIMEOUT,
    S_STREAM_IDLE_TIMEOUT,
    S_CLIENT_IDLE_TIMEOUT,
    S_DRAIN_TIMEOUT,
    S_DEFAULT_MODEL,
    S_ACCESS_LOG,
    S_MASTER_KEY,
    S_HEALTH_INTERVAL,
    S_CPU_LATENCY,
    S_RESILIENCE,
};

#define SRV(f) offsetof(cfg_server_t, f)
static const field_t server_fields[] = {
    [S_LISTEN] = {.key = "listen", .type = FT_STRING, .off = SRV(listen)},
    [S_WORKERS] = {.key = "workers", .type = FT_INT, .off = SRV(workers), .min = 0, .max = 256},
    [S_MAX_BODY] = {.key = "max_body_bytes", .type = FT_SIZE, .off = SRV(max_body_bytes), .min = 1},
    [S_MAX_HEADER] = {.key = "max_header_bytes",
                      .type = FT_SIZE,
                      .off = SRV(max_header_bytes),
                      .min = 1024},
    [S_MAX_UPSTREAM_BODY] = {.key = "max_upstream_body_bytes",
                             .type = FT_SIZE,
                             .off = SRV(max_upstream_body_bytes),
                             .min = 1},
    [S_CONNECT_TIMEOUT] = {.key = "connect_timeout",
                           .type = FT_DURATION,
                           .off = SRV(connect_timeout_ms),
                           .min = 1},
    [S_REQUEST_TIMEOUT] = {.key = "request_timeout",
                           .type = FT_DURATION,
                           .off = SRV(request_timeout_ms),
                           .min = 1},
    [S_STREAM_IDLE_TIMEOUT] = {.key = "stream_idle_timeout",
                               .type = FT_DURATION,
                               .off = SRV(stream_idle_timeout_ms),
                               .min = 1},
    [S_CLIENT_IDLE_TIMEOUT] = {.key = "client_idle_timeout",
                               .type = FT_DURATION,
                               .off = SRV(client_idle_timeout_ms),
                               .min = 1},
    [S_DRAIN_TIMEOUT] = {.key = "drain_timeout",
                         .type = FT_DURATION,
                         .off = SRV(drain_timeout_ms),
                         .min = 0},
    [S_DEFAULT_MODEL] = {.key = "default_model", .type = FT_STRING, .off = SRV(default_model)},
    [S_ACCESS_LOG] = {.key = "access_log", .type = FT_BOOL, .off = SRV(access_log)},
    [S_MASTER_KEY] = {.key = "master_key", .type = FT_STRING, .off = SRV(master_key)},
    [S_HEALTH_INTERVAL] = {.key = "health_interval",
                           .type = FT_DURATION,
                           .off = SRV(health_interval_ms),
                           .min = 0},
    [S_CPU_LATENCY] = {.key = "cpu_latency_us",
                       .type = FT_INT,
                       .off = SRV(cpu_latency_us),
                       .min = 0,
                       .max = 1000000},
    [S_RESILIENCE] = {.key = "resilience", .type = FT_MAPPING},
};
#undef SRV

static int set_server_defaults(cfg_server_t *s)
{
    s->listen = strdup("127.0.0.1:8080");
    s->workers = 0;
    s->max_body_bytes = 4u << 20;
    s->max_header_bytes = 16u << 10;
    s->max_upstream_body_bytes = 32u << 20;
    s->connect_timeout_ms = 5000;
    s->request_timeout_ms = 600000;
    s->stream_idle_timeout_ms = 120000;
    s->client_idle_timeout_ms = 75000;
    s->drain_timeout_ms = 30000;
    s->default_model = NULL;
    s->access_log = true;
    s->master_key = NULL;
    s->health_interval_ms = 30000;
    s->cpu_latency_us = -1;
    set_resilience_defaults(&s->resilience);
    return s->listen ? 0 : -1;
}

/* HOST:PORT, [IPV6]:PORT or :PORT; port 0..65535 (0 = any free port). */
static bool listen_ok(const char *s)
{
    const char *port;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        char host[INET6_ADDRSTRLEN];
        struct in6_addr a;
        size_t hlen = close ? (size_t)(close - s - 1) : 0;
        if (!close || close[1] != ':' || hlen == 0 || hlen >= sizeof(host)) return false;
        memcpy(host, s + 1, hlen);
        host[hlen] = '\0';
        if (inet_pton(AF_INET6, host, &a) != 1) return false;
        port = close + 2;
    } else {
        const char *colon = strchr(s, ':');
        if (!colon || strchr(colon + 1, ':')) return false;
        for (const char *h = s; h < colon; h++)
            if (!isalnum((unsigned char)*h) && *h != '.' && *h != '-') return false;
        port = colon + 1;
    }
    uint64_t p;
    if (strlen(port) > 5 || parse_digits(&port, &p) < 0 || *port || p > 65535) return false;
    return true;
}

static void parse_server(loader_t *L, config_t *c, const ynode_t *map,
                         const ynode_t **default_model_at)
{
    const ynode_t *keys[COUNTOF(server_fields)], *vals[COUNTOF(server_fields)];
    walk_map(L, map, "server", server_fields, COUNTOF(server_fields), &c->server, keys, vals);
    if (vals[S_LISTEN] && c->server.listen && !listen_ok(c->server.listen))
        err_at(L, vals[S_LISTEN],
               "invalid listen address '%s' (expected HOST:PORT, [IPV6]:PORT or :PORT with "
               "port 0..65535)",
               SHOWN(vals[S_LISTEN]));
    *default_model_at = vals[S_DEFAULT_MODEL];
    if (vals[S_RESILIENCE]) parse_resilience(L, vals[S_RESILIENCE], &c->server.resilience);
    /* The raw master_key is replaced by its resolution (env:/file:/literal). */
    char *raw_key = c->server.master_key;
    c->server.master_key = raw_key ? resolve_secret(L, vals[S_MASTER_KEY], raw_key) : NULL;
    free_secret(raw_key);
}

static const field_t store_fields[] = {
    {.key = "url", .type = FT_STRING, .off = offsetof(cfg_store_t, url), .required = true},
    {.key = "encryption_key", .type = FT_STRING, .off = offsetof(cfg_store_t, encryption_key)},
};

static void parse_store(loader_t *L, config_t *c, const ynode_t *map)
{
    const ynode_t *keys[COUNTOF(store_fields)], *vals[COUNTOF(store_fields)];
    walk_map(L, map, "store", store_fields, COUNTOF(store_fields), &c->store, keys, vals);
    const char *u = c->store.url;
    if (u && strncmp(u, "sqlite://", 9) != 0 && strncmp(u, "postgres://", 11) != 0 &&
        strncmp(u, "postgresql://", 13) != 0)
        err_at(L, vals[0], "store url must start with sqlite://, postgres:// or postgresql://");
    if (u && strncmp(u, "sqlite://", 9) == 0 && !u[9])
        err_at(L, vals[0], "store url sqlite:// needs a file path (sqlite://PATH)");
    char *raw = c->store.encryption_key; /* issue 8: a secret, resolved like api_key */
    c->store.encryption_key = raw ? resolve_secret(L, vals[1], raw) : NULL;
    free_secret(raw);
}

/* ------------------------------------------------------------------------ */
/* issue 8: redis, auth, limits, budgets (used by src/policy)                */

#define RDS(f) offsetof(cfg_redis_t, f)
enum { R_URL, R_TIMEOUT, R_ON_FAILURE };
static const field_t redis_fields[] = {
    [R_URL] = {.key = "url", .type = FT_STRING, .off = RDS(url), .required = true},
    [R_TIMEOUT] = {.key = "timeout", .type = FT_DURATION, .off = RDS(timeout_ms), .min = 1},
    [R_ON_FAILURE] = {.key = "on_failure", .type = FT_MAPPING},
};

static void parse_redis(loader_t *L, config_t *c, const ynode_t *map)
{
    const ynode_t *keys[COUNTOF(redis_fields)], *vals[COUNTOF(redis_fields)];
    walk_map(L, map, "redis", redis_fields, COUNTOF(redis_fields), &c->redis, keys, vals);
    /* The URL may carry a password: env:NAME / file:PATH like any secret. */
    char *raw = c->redis.url;
    c->redis.url = raw ? resolve_secret(L, vals[R_URL], raw) : NULL;
    free_secret(raw);
    if (c->redis.url && strncmp(c->redis.url, "redis://", 8) != 0)
        err_at(L, vals[R_URL], "redis url must start with redis://");
    const ynode_t *of = vals[R_ON_FAILURE];
    if (of) {
        if (scalar_is(of, "open"))
            c->redis.fail_open = true;
        else if (scalar_is(of, "closed"))
            c->redis.fail_open = false;
        else
            err_at(L, of, "on_failure must be open or closed");
    }
}

#define JWT(f) offsetof(cfg_jwt_t, f)
enum {
    J_ALGS,
    J_ISSUER,
    J_AUDIENCE,
    J_KEYS_FILE,
    J_JWKS_URL,
    J_JWKS_REFRESH,
    J_TEAM_CLAIM,
    J_USER_CLAIM
};
static const field_t jwt_fields[] = {
    [J_ALGS] = {.key = "algorithms", .type = FT_STRLIST, .off = JWT(algorithms), .required = true},
    [J_ISSUER] = {.key = "issuer", .type = FT_STRING, .off = JWT(issuer)},
    [J_AUDIENCE] = {.key = "audience", .type = FT_STRING, .off = JWT(audience)},
    [J_KEYS_FILE] = {.key = "keys_file", .type = FT_STRING, .off = JWT(keys_file)},
    [J_JWKS_URL] = {.key = "jwks_url", .type = FT_STRING, .off = JWT(jwks_url)},
    [J_JWKS_REFRESH] = {.key = "jwks_refresh", .type = FT_DURATION, .off = JWT(jwks_refresh_ms)},
    [J_TEAM_CLAIM] = {.key = "team_claim", .type = FT_STRING, .off = JWT(team_claim)},
    [J_USER_CLAIM] = {.key = "user_claim", .type = FT_STRING, .off = JWT(user_claim)},
};

static const char *const jwt_alg_names[] = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                            "RS512", "ES256", "ES384", "ES512"};

static void parse_jwt(loader_t *L, cfg_jwt_t *j, const ynode_t *map)
{
    const ynode_t *keys[COUNTOF(jwt_fields)], *vals[COUNTOF(jwt_fields)];
    walk_map(L, map, "auth.jwt", jwt_fields, COUNTOF(jwt_fields), j, keys, vals);
    for (size_t i = 0; i < j->algorithms.n; i++) {
        size_t k = 0;
        while (k < COUNTOF(jwt_alg_names) && strcmp(jwt_alg_names[k], j->algorithms.v[i]) != 0) k++;
        if (k == COUNTOF(jwt_alg_names))
            err_at(L, vals[J_ALGS],
                   "auth.jwt.algorithms: '%.32s' is not allowed (HS256..512, "
                   "RS256..512, ES256..512; never none)",
                   j->algorithms.v[i]);
    }
    if (vals[J_ALGS] && !j->algorithms.n)
        err_at(L, vals[J_ALGS], "auth.jwt.algorithms must name at least one algorithm");
    if (!!j->keys_file == !!j->jwks_url)
        err_at(L, map, "auth.jwt needs exactly one of keys_file and jwks_url");
    if (j->jwks_url && strncmp(j->jwks_url, "https://", 8) != 0 &&
        strncmp(j->jwks_url, "http://", 7) != 0)
        err_at(L, vals[J_JWKS_URL], "auth.jwt.jwks_url must be an http:// or https:// URL");
    if (vals[J_JWKS_REFRESH] && j->jwks_refresh_ms < 1000)
        err_at(L, vals[J_JWKS_REFRESH], "auth.jwt.jwks_refresh must be at least 1s");
    if (!j->jwks_refresh_ms) j->jwks_refresh_ms = 10 * 60 * 1000;
    if (j->keys_file) {
        FILE *f = fopen(j->keys_file, "rb");
        if (!f) {
            err_at(L, vals[J_KEYS_FILE], "auth.jwt.keys_file: cannot read %s: %s", j->keys_file,
                   strerror(errno));
        } else {
            char *data = malloc(SECRET_FILE_MAX + 1);
            size_t n = data ? fread(data, 1, SECRET_FILE_MAX + 1, f) : 0;
            fclose(f);
            if (!data || n == 0 || n > SECRET_FILE_MAX) {
                err_at(L, vals[J_KEYS_FILE], "auth.jwt.keys_file: %s is empty or too large",
                       j->keys_file);
                free(data);
            } else {
                while (n && (data[n - 1] == '\n' || data[n - 1] == '\r')) n--;
                data[n] = '\0';
                j->key = data;
                j->key_len = n;
            }
        }
    }
    if (!j->team_claim) j->team_claim = strdup("team");
    if (!j->user_claim) j->user_claim = strdup("sub");
}

#define AUT(f) offsetof(cfg_auth_t, f)
enum { A_REQUIRED, A_JWT, A_HMAC_SECRET, A_HMAC_WINDOW };
static const field_t auth_fields[] = {
    [A_REQUIRED] = {.key = "required", .type = FT_BOOL, .off = AUT(required)},
    [A_JWT] = {.key = "jwt", .type = FT_MAPPING},
    [A_HMAC_SECRET] = {.key = "hmac_secret", .type = FT_STRING, .off = AUT(hmac_secret)},
    [A_HMAC_WINDOW] = {.key = "hmac_window",
                       .type = FT_DURATION,
                       .off = AUT(hmac_window_ms),
                       .min = 1000},
};

static void parse_auth(loader_t *L, config_t *c, const ynode_t *map)
{
    const ynode_t *keys[COUNTOF(auth_fields)], *vals[COUNTOF(auth_fields)];
    c->auth.hmac_window_ms = 300000;
    walk_map(L, map, "auth", auth_fields, COUNTOF(auth_fields), &c->auth, keys, vals);
    char *raw = c->auth.hmac_secret;
    c->auth.hmac_secret = raw ? resolve_secret(L, vals[A_HMAC_SECRET], raw) : NULL;
    free_secret(raw);
    const ynode_t *j = vals[A_JWT];
    if (j && j->kind != YNODE_MAPPING) {
        err_at(L, j, "auth.jwt: expected a mapping");
    } else if (j) {
        c->auth.jwt_on = true;
        parse_jwt(L, &c->auth.jwt, j);
    }
}

#define LIM(f) offsetof(cfg_limit_t, f)
static const field_t limit_item_fields[] = {
    {.key = "name", .type = FT_STRING, .off = LIM(name), .required = true},
    {.key = "rpm", .type = FT_INT, .off = LIM(rpm), .min = 0, .max = INT32_MAX},
    {.key = "tpm", .type = FT_INT, .off = LIM(tpm), .min = 0, .max = INT32_MAX},
};

#define BGT(f) offsetof(cfg_budget_t, f)
enum { BI_NAME, BI_USD, BI_PERIOD };
static const field_t budget_item_fields[] = {
    [BI_NAME] = {.key = "name", .type = FT_STRING, .off = BGT(name), .required = true},
    [BI_USD] = {.key = "budget_usd",
                .type = FT_NUMBER,
                .off = BGT(usd),
                .dmin = 0,
                .dmax = 1e12,
                .required = true},
    [BI_PERIOD] = {.key = "period", .type = FT_MAPPING},
};

static const char *const budget_period_names[] = {
    [BUDGET_DAILY] = "daily", [BUDGET_WEEKLY] = "weekly", [BUDGET_MONTHLY] = "monthly"};

int config_budget_period(const char *s)
{
    for (int p = 0; s && p < (int)COUNTOF(budget_period_names); p++)
        if (!strcmp(s, budget_period_names[p])) return p;
    return -1;
}

const char *config_budget_period_name(int period)
{
    return period >= 0 && period < (int)COUNTOF(budget_period_names) ? budget_period_names[period]
                                                                     : "unknown";
}

/* A sequence of mappings, each walked with `fields` into items of `size` bytes. */
static void *parse_items(loader_t *L, const ynode_t *seq, const char *what, const field_t *fields,
                         size_t nf, size_t size, size_t *n_out, const ynode_t ***periods)
{
    *n_out = 0;
    if (!seq || ytree_is_null(seq)) return NULL;
    if (seq->kind != YNODE_SEQUENCE) {
        err_at(L, seq, "%s: expected a list", what);
        return NULL;
    }
    char *items = calloc(seq->n + 1, size);
    if (periods) *periods = calloc(seq->n + 1, sizeof **periods);
    if (!items || (periods && !*periods)) {
        err_at(L, seq, "out of memory");
        free(items);
        return NULL;
    }
    for (size_t i = 0; i < seq->n; i++) {
        const ynode_t *it = seq->items[i];
        if (it->kind != YNODE_MAPPING) {
            err_at(L, it, "%s: expected a mapping", what);
            continue;
        }
        const ynode_t *keys[MAX_FIELDS], *vals[MAX_FIELDS];
        walk_map(L, it, what, fields, nf, items + *n_out * size, keys, vals);
        if (periods) (*periods)[*n_out] = vals[BI_PERIOD];
        (*n_out)++;
    }
    return items;
}

enum { LI_RPM, LI_TPM, LI_DEFMAX, LI_TEAMS, LI_MODELS };
static const field_t limits_fields[] = {
    [LI_RPM] = {.key = "rpm",
                .type = FT_INT,
                .off = offsetof(cfg_limits_t, rpm),
                .min = 0,
                .max = INT32_MAX},
    [LI_TPM] = {.key = "tpm",
                .type = FT_INT,
                .off = offsetof(cfg_limits_t, tpm),
                .min = 0,
                .max = INT32_MAX},
    [LI_DEFMAX] = {.key = "default_max_tokens",
                   .type = FT_INT,
                   .off = offsetof(cfg_limits_t, default_max_tokens),
                   .min = 1,
                   .max = 10000000},
    [LI_TEAMS] = {.key = "teams", .type = FT_MAPPING},
    [LI_MODELS] = {.key = "models", .type = FT_MAPPING},
};

static void parse_limits(loader_t *L, config_t *c, const ynode_t *map)
{
    const ynode_t *keys[COUNTOF(limits_fields)], *vals[COUNTOF(limits_fields)];
    walk_map(L, map, "limits", limits_fields, COUNTOF(limits_fields), &c->limits, keys, vals);
    c->limits.teams =
        parse_items(L, vals[LI_TEAMS], "limits.teams", limit_item_fields,
                    COUNTOF(limit_item_fields), sizeof(cfg_limit_t), &c->limits.n_teams, NULL);
    c->limits.models =
        parse_items(L, vals[LI_MODELS], "limits.models", limit_item_fields,
                    COUNTOF(limit_item_fields), sizeof(cfg_limit_t), &c->limits.n_models, NULL);
    for (size_t i = 0; i < c->limits.n_models; i++) {
        const char *n = c->limits.models[i].name;
        if (n && !config_find_model(c, n, strlen(n)))
            err_at(L, vals[LI_MODELS], "limits.models: '%.64s' is not a configured model", n);
    }
}

enum { BU_ON_EXCEEDED, BU_FALLBACK, BU_WEBHOOK, BU_TEAMS };
static const field_t budgets_fields[] = {
    [BU_ON_EXCEEDED] = {.key = "on_exceeded", .type = FT_MAPPING},
    [BU_FALLBACK] = {.key = "fallback_model",
                     .type = FT_STRING,
                     .off = offsetof(cfg_budgets_t, fallback_model)},
    [BU_WEBHOOK] = {.key = "alert_webhook",
                    .type = FT_STRING,
                    .off = offsetof(cfg_budgets_t, alert_webhook)},
    [BU_TEAMS] = {.key = "teams", .type = FT_MAPPING},
};

static void parse_budgets(loader_t *L, config_t *c, const ynode_t *map)
{
    const ynode_t *keys[COUNTOF(budgets_fields)], *vals[COUNTOF(budgets_fields)];
    walk_map(L, map, "budgets", budgets_fields, COUNTOF(budgets_fields), &c->budgets, keys, vals);
    const ynode_t *oe = vals[BU_ON_EXCEEDED];
    if (oe) {
        if (scalar_is(oe, "reject"))
            c->budgets.fallback = false;
        else if (scalar_is(oe, "fallback"))
            c->budgets.fallback = true;
        else
            err_at(L, oe, "on_exceeded must be reject or fallback");
    }
    const char *fm = c->budgets.fallback_model;
    if (c->budgets.fallback && !fm)
        err_at(L, oe, "on_exceeded: fallback needs budgets.fallback_model");
    if (fm && !config_find_model(c, fm, strlen(fm)))
        err_at(L, vals[BU_FALLBACK], "budgets.fallback_model '%.64s' is not a configured model",
               fm);
    const ynode_t **periods = NULL;
    c->budgets.teams = parse_items(L, vals[BU_TEAMS], "budgets.teams", budget_item_fields,
                                   COUNTOF(budget_item_fields), sizeof(cfg_budget_t),
                                   &c->budgets.n_teams, &periods);
    for (size_t i = 0; i < c->budgets.n_teams; i++) {
        const ynode_t *p = periods[i];
        c->budgets.teams[i].period = BUDGET_MONTHLY;
        if (p) {
            int v = p->kind == YNODE_SCALAR ? config_budget_period(p->str) : -1;
            if (v < 0)
                err_at(L, p, "period must be daily, weekly or monthly");
            else
                c->budgets.teams[i].period = v;
        }
    }
    free(periods);
}

static void config_policy_free(config_t *c)
{
    free_secret(c->redis.url);
    config__strlist_free(&c->auth.jwt.algorithms);
    free(c->auth.jwt.issuer);
    free(c->auth.jwt.audience);
    free(c->auth.jwt.keys_file);
    free(c->auth.jwt.jwks_url);
    free_secret(c->auth.jwt.key);
    free(c->auth.jwt.team_claim);
    free(c->auth.jwt.user_claim);
    free_secret(c->auth.hmac_secret);
    for (size_t i = 0; i < c->limits.n_teams; i++) free(c->limits.teams[i].name);
    free(c->limits.teams);
    for (size_t i = 0; i < c->limits.n_models; i++) free(c->limits.models[i].name);
    free(c->limits.models);
    free(c->budgets.fallback_model);
    free(c->budgets.alert_webhook);
    for (size_t i = 0; i < c->budgets.n_teams; i++) free(c->budgets.teams[i].name);
    free(c->budgets.teams);
}

/* ---- cache ---- */

enum {
    C_ENABLED,
    C_TTL,
    C_MAX_BYTES,
    C_MAX_ENTRY,
    C_SHARDS,
    C_SAMPLED,
    C_PERSISTENT,
    C_REDIS,
    C_DEDUPE
};
#define CCH(f) offsetof(cfg_cache_t, f)
static const field_t cache_fields[] = {
    [C_ENABLED] = {.key = "enabled", .type = FT_BOOL, .off = CCH(enabled)},
    [C_TTL] = {.key = "ttl", .type = FT_DURATION, .off = CCH(ttl_ms), .min = 1},
    [C_MAX_BYTES] = {.key = "max_bytes", .type = FT_SIZE, .off = CCH(max_bytes), .min = 1024},
    [C_MAX_ENTRY] = {.key = "max_entry_bytes",
                     .type = FT_SIZE,
                     .off = CCH(max_entry_bytes),
                     .min = 64},
    [C_SHARDS] = {.key = "shards", .type = FT_INT, .off = CCH(shards), .min = 1, .max = 256},
    [C_SAMPLED] = {.key = "cache_sampled", .type = FT_BOOL, .off = CCH(cache_sampled)},
    [C_PERSISTENT] = {.key = "persistent", .type = FT_BOOL, .off = CCH(persistent)},
    [C_REDIS] = {.key = "redis", .type = FT_BOOL, .off = CCH(redis)},
    [C_DEDUPE] = {.key = "dedupe", .type = FT_MAPPING},
};
#undef CCH

#define DDP(f) offsetof(cfg_dedupe_t, f)
static const field_t dedupe_fields[] = {
    {.key = "enabled", .type = FT_BOOL, .off = DDP(enabled)},
    {.key = "window", .type = FT_DURATION, .off = DDP(window_ms), .min = 0},
    {.key = "max_joiners", .type = FT_INT, .off = DDP(max_joiners), .min = 0, .max = 1000000},
};
#undef DDP

static void set_cache_defaults(cfg_cache_t *k)
{
    k->ttl_ms = 60000;
    k->max_bytes = 64u << 20;
    k->max_entry_bytes = 4u << 20;
    k->shards = 16;
    k->dedupe.enabled = true;
    k->dedupe.window_ms = 5000;
    k->dedupe.max_joiners = 1000;
}

static void parse_cache(loader_t *L, config_t *c, const ynode_t *map, const ynode_t **redis_at,
                        const ynode_t **persistent_at)
{
    const ynode_t *keys[COUNTOF(cache_fields)], *vals[COUNTOF(cache_fields)];
    c->cache.present = true;
    walk_map(L, map, "cache", cache_fields, COUNTOF(cache_fields), &c->cache, keys, vals);
    const ynode_t *d = vals[C_DEDUPE];
    if (d && !ytree_is_null(d)) {
        if (d->kind != YNODE_MAPPING) {
            err_at(L, d, "cache.dedupe: expected a mapping, got %s", ytree_kind_name(d));
        } else {
            const ynode_t *dk[COUNTOF(dedupe_fields)], *dv[COUNTOF(dedupe_fields)];
            walk_map(L, d, "cache.dedupe", dedupe_fields, COUNTOF(dedupe_fields), &c->cache.dedupe,
                     dk, dv);
        }
    }
    if (c->cache.max_entry_bytes > c->cache.max_bytes && vals[C_MAX_ENTRY])
        err_at(L, vals[C_MAX_ENTRY], "cache max_entry_bytes is larger than max_bytes");
    else if (c->cache.max_entry_bytes > c->cache.max_bytes)
        c->cache.max_entry_bytes = c->cache.max_bytes;
    *redis_at = vals[C_REDIS];
    *persistent_at = vals[C_PERSISTENT];
}

/* ------------------------------------------------------------------------ */
/* top level                                                                 */

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
        err_at(L, v, "%s: expected %s, got %s", name,
               kind == YNODE_MAPPING ? "a mapping" : "a sequence", ytree_kind_name(v));
        return NULL;
    }
    return v;
}

/* Runtime models (config_build): each a JSON object, parsed with the same
 * rules as a model in the file; errors name the file "registry". The trees
 * must outlive the loop because duplicate-name checks keep their nodes. */
static void parse_extra_models(loader_t *L, config_t *c, const ynode_t **names)
{
    if (!L->n_extra) return;
    ytree_t **trees = calloc(L->n_extra, sizeof(*trees));
    if (!trees) {
        err_pos(L, 0, 0, "out of memory");
        return;
    }
    const char *file = L->file;
    L->file = "registry";
    L->registry = true;
    for (size_t i = 0; i < L->n_extra; i++) {
        ytree_error_t yerr;
        trees[i] = ytree_parse(L->extra[i], strlen(L->extra[i]), &yerr);
        if (!trees[i]) {
            err_pos(L, yerr.line, yerr.col, "%s", yerr.msg);
            continue;
        }
        const ynode_t *root = ytree_root(trees[i]);
        if (!root || root->kind != YNODE_MAPPING) {
            err_pos(L, 1, 1, "a model must be a JSON object");
            continue;
        }
        size_t idx = c->n_models++;
        parse_model(L, c, root, &c->models[idx], names, idx);
        c->models[idx].runtime = true;
    }
    L->file = file;
    L->registry = false;
    L->extra_trees = trees; /* freed by parse_root after resolve_model_refs */
}

static void free_extra_trees(loader_t *L)
{
    if (!L->extra_trees) return;
    for (size_t i = 0; i < L->n_extra; i++) ytree_free(L->extra_trees[i]);
    free(L->extra_trees);
    L->extra_trees = NULL;
}

/* fallbacks and on_content_policy name other models: resolved once all are loaded. */
static void resolve_model_refs(loader_t *L, config_t *c, size_t n_file)
{
    for (size_t i = 0; i < c->n_models; i++) {
        cfg_model_t *m = &c->models[i];
        const model_refs_t *rf = L->refs ? &L->refs[i] : NULL;
        const char *file = L->file;
        if (i >= n_file) L->file = "registry";
        if (m->fallbacks.n) {
            m->fallback_models = calloc(m->fallbacks.n, sizeof *m->fallback_models);
            if (!m->fallback_models) err_pos(L, 0, 0, "out of memory");
        }
        for (size_t j = 0; j < m->fallbacks.n && m->fallback_models; j++) {
            const char *n = m->fallbacks.v[j];
            const ynode_t *at = rf && rf->fallbacks && j < rf->fallbacks->n
                                    ? rf->fallbacks->items[j]
                                    : (rf ? rf->fallbacks : NULL);
            const cfg_model_t *f = config_find_model(c, n, strlen(n));
            if (!f)
                err_at(L, at, "fallbacks: '%s' is not a configured model", n);
            else if (f == m)
                err_at(L, at, "fallbacks: model '%s' cannot fall back to itself", n);
            m->fallback_models[j] = f;
        }
        if (m->on_content_policy) {
            const char *n = m->on_content_policy;
            const cfg_model_t *f = config_find_model(c, n, strlen(n));
            if (!f)
                err_at(L, rf ? rf->on_content_policy : NULL,
                       "on_content_policy: '%s' is not a configured model", n);
            else if (f == m)
                err_at(L, rf ? rf->on_content_policy : NULL,
                       "on_content_policy: model '%s' cannot be its own alternate", n);
            m->content_policy_alt = f;
        }
        L->file = file;
    }
}

static void parse_root(loader_t *L, config_t *c, const ynode_t *root)
{
    const ynode_t *sec[COUNTOF(top_sections)] = {NULL};

    if (!root || ytree_is_null(root)) { /* empty file: all defaults */
        if (L->n_extra && (c->models = calloc(L->n_extra, sizeof(*c->models)))) {
            const ynode_t **names = calloc(L->n_extra, sizeof(*names));
            L->refs = calloc(L->n_extra, sizeof(*L->refs));
            if (names) parse_extra_models(L, c, names);
            free(names);
            assign_ids(L, c); /* before references: they may name ids */
            resolve_model_refs(L, c, 0);
            free(L->refs);
            L->refs = NULL;
            free_extra_trees(L);
        }
        return;
    }
    if (root->kind != YNODE_MAPPING) {
        err_at(L, root, "expected a mapping at top level, got %s", ytree_kind_name(root));
        return;
    }
    for (size_t i = 0; i < root->n; i++) {
        const ynode_t *k = root->pairs[i].key;
        if (!check_key(L, k) || duplicate_key(L, root, i, "at top level")) continue;
        size_t s = 0;
        while (s < COUNTOF(top_sections) && !scalar_is(k, top_sections[s])) s++;
        if (s < COUNTOF(top_sections)) {
            sec[s] = root->pairs[i].value;
            continue;
        }
        size_t u = 0;
        while (u < COUNTOF(unsupported_sections) && !scalar_is(k, unsupported_sections[u])) u++;
        if (u < COUNTOF(unsupported_sections))
            err_at(L, k, "section '%s' is not supported by this version yet",
                   unsupported_sections[u]);
        else
            unknown_key(L, k, "at top level", top_sections, COUNTOF(top_sections));
    }

    /* Providers first: models point into c->providers, which must not move. */
    const ynode_t *provs = section(L, sec[T_PROVIDERS], "providers", YNODE_SEQUENCE);
    if (provs && provs->n) {
        const ynode_t **names = calloc(provs->n, sizeof(*names));
        c->providers = calloc(provs->n, sizeof(*c->providers));
        if (!names || !c->providers) {
            err_at(L, provs, "out of memory");
        } else {
            for (size_t i = 0; i < provs->n; i++) {
                const ynode_t *item = provs->items[i];
                if (item->kind != YNODE_MAPPING) {
                    err_at(L, item, "providers: expected a mapping, got %s", ytree_kind_name(item));
                    continue;
                }
                size_t idx = c->n_providers++;
                parse_provider(L, item, &c->providers[idx], names, idx);
            }
        }
        free(names);
    }

    /* The server section first: models start from server.resilience. */
    const ynode_t *server = section(L, sec[T_SERVER], "server", YNODE_MAPPING);
    const ynode_t *dm_at = NULL;
    if (server) parse_server(L, c, server, &dm_at);

    const ynode_t *models = section(L, sec[T_MODELS], "models", YNODE_SEQUENCE);
    size_t n_file = models ? models->n : 0, total = n_file + L->n_extra;
    if (total) {
        const ynode_t **names = calloc(total, sizeof(*names));
        c->models = calloc(total, sizeof(*c->models));
        L->refs = calloc(total, sizeof(*L->refs));
        L->mpos = calloc(total, sizeof(*L->mpos));
        if (!names || !c->models || !L->refs || !L->mpos) {
            err_pos(L, 0, 0, "out of memory");
        } else {
            for (size_t i = 0; i < n_file; i++) {
                const ynode_t *item = models->items[i];
                if (item->kind != YNODE_MAPPING) {
                    err_at(L, item, "models: expected a mapping, got %s", ytree_kind_name(item));
                    continue;
                }
                size_t idx = c->n_models++;
                parse_model(L, c, item, &c->models[idx], names, idx);
            }
            parse_extra_models(L, c, names);
            assign_ids(L, c); /* before references: they may name ids */
            resolve_model_refs(L, c, n_file);
        }
        free(names);
        free(L->refs);
        L->refs = NULL;
        free(L->mpos);
        L->mpos = NULL;
        free_extra_trees(L);
    }

    const ynode_t *routes = section(L, sec[T_ROUTES], "routes", YNODE_SEQUENCE);
    if (routes && routes->n) {
        c->routes = calloc(routes->n, sizeof(*c->routes));
        if (!c->routes) {
            err_at(L, routes, "out of memory");
        } else {
            for (size_t i = 0; i < routes->n; i++) {
                const ynode_t *item = routes->items[i];
                if (item->kind != YNODE_MAPPING) {
                    err_at(L, item, "routes: expected a mapping, got %s", ytree_kind_name(item));
                    continue;
                }
                size_t idx = c->n_routes++;
                parse_route(L, c, item, &c->routes[idx], idx);
            }
        }
    }

    const ynode_t *store = section(L, sec[T_STORE], "store", YNODE_MAPPING);
    if (store) parse_store(L, c, store);

    /* issue 8 (policy): after models, which limits and budgets name */
    const ynode_t *redis = section(L, sec[T_REDIS], "redis", YNODE_MAPPING);
    if (redis) parse_redis(L, c, redis);
    const ynode_t *auth = section(L, sec[T_AUTH], "auth", YNODE_MAPPING);
    if (auth) parse_auth(L, c, auth);
    const ynode_t *limits = section(L, sec[T_LIMITS], "limits", YNODE_MAPPING);
    if (limits) parse_limits(L, c, limits);
    const ynode_t *budgets = section(L, sec[T_BUDGETS], "budgets", YNODE_MAPPING);
    if (budgets) parse_budgets(L, c, budgets);

    const ynode_t *cache = section(L, sec[T_CACHE], "cache", YNODE_MAPPING);
    if (cache) {
        const ynode_t *redis_at = NULL, *persistent_at = NULL;
        parse_cache(L, c, cache, &redis_at, &persistent_at);
        if (c->cache.redis && !c->redis.url)
            err_at(L, redis_at, "cache.redis needs a top-level redis section with a url");
        if (c->cache.persistent && !c->store.url)
            err_at(L, persistent_at, "cache.persistent needs a store section with a url");
    }

    if (server) {
        const char *dm = c->server.default_model;
        if (dm && dm_at && !config_find_model(c, dm, strlen(dm)) &&
            !config_find_route(c, dm, strlen(dm)))
            err_at(L, dm_at, "default_model '%s' is not a configured model", SHOWN(dm_at));
    }
}

/* ------------------------------------------------------------------------ */
/* lifecycle                                                                 */

static void config_free(config_t *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n_providers; i++) {
        cfg_provider_t *p = &c->providers[i];
        free(p->name);
        free(p->type);
        free(p->base_url);
        free(p->health_check);
        free_secret(p->api_key);
    }
    free(c->providers);
    for (size_t i = 0; i < c->n_models; i++) {
        cfg_model_t *m = &c->models[i];
        free(m->name);
        free(m->upstream_model);
        free(m->path);
        free(m->hardware);
        free(m->region);
        free(m->id);
        config__strlist_free(&m->tags);
        config__strlist_free(&m->fallbacks);
        free(m->fallback_models);
        free(m->on_content_policy);
    }
    free(c->models);
    for (size_t i = 0; i < c->n_routes; i++) route_free(&c->routes[i]);
    free(c->routes);
    free(c->server.listen);
    free(c->server.default_model);
    free_secret(c->server.master_key);
    free(c->store.url);
    free_secret(c->store.encryption_key);
    config_policy_free(c);
    free(c->text);
    free(c->source);
    free(c);
}

static config_t *load(loader_t *L, const char *data, size_t len)
{
    ytree_error_t yerr;
    ytree_t *t = ytree_parse(data, len, &yerr);
    if (!t) {
        err_pos(L, yerr.line, yerr.col, "%s", yerr.msg);
        return NULL;
    }
    config_t *c = calloc(1, sizeof(*c));
    if (!c || !(c->source = strdup(L->file)) || !(c->text = strndup(data, len)) ||
        set_server_defaults(&c->server) < 0) {
        err_pos(L, 0, 0, "out of memory");
    } else {
        set_cache_defaults(&c->cache);
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
        if (L->errs) sort_errors(L->errs);
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
        err_pos(&L, 0, 0, "cannot open: %s", strerror(errno));
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
        err_pos(&L, 0, 0, "file is larger than %u bytes", CONFIG_FILE_MAX);
    else if (st != BUF_OK)
        err_pos(&L, 0, 0, "out of memory");
    else if (read_errno)
        err_pos(&L, 0, 0, "cannot read: %s", strerror(read_errno));
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

/* Linear scan over the deployments. A hash index built at load time (keyed by
 * name) can replace this body without changing callers. */
const cfg_model_t *config_find_model(const config_t *c, const char *name, size_t len)
{
    if (!c || !name) return NULL;
    for (size_t i = 0; i < c->n_models; i++) {
        const char *n = c->models[i].id;
        if (n && strlen(n) == len && memcmp(n, name, len) == 0) return &c->models[i];
    }
    for (size_t i = 0; i < c->n_models; i++) {
        const char *n = c->models[i].name;
        if (n && strlen(n) == len && memcmp(n, name, len) == 0) return &c->models[i];
    }
    return NULL;
}
