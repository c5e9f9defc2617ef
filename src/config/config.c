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
} model_raw_t;

/* Keys parsed into model_raw_t (resolved below) or straight into cfg_model_t. */
enum { M_NAME, M_PROVIDER, M_MODEL, M_CAPABILITIES, M__RAW };
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
    MD_PARALLEL
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
};

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
    walk_map_split(L, map, "model", fields, COUNTOF(fields), &raw, M__RAW, m, keys, vals);
    name_nodes[idx] = NULL;

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

    if (raw.name) {
        if (!model_name_ok(raw.name)) {
            err_at(L, vals[M_NAME], "invalid model name '%s' (must be non-empty, no whitespace)",
                   SHOWN(vals[M_NAME]));
        } else {
            for (size_t j = 0; j < idx; j++) {
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

    if (m->provider && m->path && find_provider_type(m->provider->type)->remote)
        err_at(L, keys[M__RAW + MD_PATH], "path is only for local providers, not type '%s'",
               m->provider->type);
    if (m->provider && !m->path && strcmp(m->provider->type, "llamacpp") == 0)
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
    /* The raw master_key is replaced by its resolution (env:/file:/literal). */
    char *raw_key = c->server.master_key;
    c->server.master_key = raw_key ? resolve_secret(L, vals[S_MASTER_KEY], raw_key) : NULL;
    free_secret(raw_key);
}

static const field_t store_fields[] = {
    {.key = "url", .type = FT_STRING, .off = offsetof(cfg_store_t, url), .required = true},
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
}

/* ---- redis ---- */

static const field_t redis_fields[] = {
    {.key = "url", .type = FT_STRING, .off = offsetof(cfg_redis_t, url), .required = true},
    {.key = "timeout", .type = FT_DURATION, .off = offsetof(cfg_redis_t, timeout_ms), .min = 1},
    {.key = "on_failure", .type = FT_MAPPING}, /* located by the walker, parsed below */
};

static void parse_redis(loader_t *L, config_t *c, const ynode_t *map)
{
    const ynode_t *keys[COUNTOF(redis_fields)], *vals[COUNTOF(redis_fields)];
    walk_map(L, map, "redis", redis_fields, COUNTOF(redis_fields), &c->redis, keys, vals);
    const ynode_t *of = vals[2];
    if (of) {
        if (scalar_is(of, "open"))
            c->redis.fail_open = true;
        else if (scalar_is(of, "closed"))
            c->redis.fail_open = false;
        else
            err_at(L, of, "redis on_failure must be 'open' or 'closed'");
    }
    /* The URL may carry a password: env:NAME / file:PATH like any secret. */
    char *raw = c->redis.url;
    c->redis.url = raw ? resolve_secret(L, vals[0], raw) : NULL;
    free_secret(raw);
    const char *u = c->redis.url;
    if (u && strncmp(u, "redis://", 8) != 0)
        err_at(L, vals[0], "redis url must start with redis://");
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

static void set_cache_defaults(cfg_cache_t *k, cfg_redis_t *r)
{
    k->ttl_ms = 60000;
    k->max_bytes = 64u << 20;
    k->max_entry_bytes = 4u << 20;
    k->shards = 16;
    k->dedupe.enabled = true;
    k->dedupe.window_ms = 5000;
    k->dedupe.max_joiners = 1000;
    r->timeout_ms = 50;
    r->fail_open = true;
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
    "routes", "auth", "limits", "budgets", "telemetry", "optimizer",
};

static const char *const top_sections[] = {"server", "providers", "models",
                                           "store",  "redis",     "cache"};
enum { T_SERVER, T_PROVIDERS, T_MODELS, T_STORE, T_REDIS, T_CACHE };

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
    for (size_t i = 0; i < L->n_extra; i++) ytree_free(trees[i]);
    free(trees);
}

static void parse_root(loader_t *L, config_t *c, const ynode_t *root)
{
    const ynode_t *sec[COUNTOF(top_sections)] = {NULL};

    if (!root || ytree_is_null(root)) { /* empty file: all defaults */
        if (L->n_extra && (c->models = calloc(L->n_extra, sizeof(*c->models)))) {
            const ynode_t **names = calloc(L->n_extra, sizeof(*names));
            if (names) parse_extra_models(L, c, names);
            free(names);
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

    const ynode_t *models = section(L, sec[T_MODELS], "models", YNODE_SEQUENCE);
    size_t n_file = models ? models->n : 0, total = n_file + L->n_extra;
    if (total) {
        const ynode_t **names = calloc(total, sizeof(*names));
        c->models = calloc(total, sizeof(*c->models));
        if (!names || !c->models) {
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
        }
        free(names);
    }

    const ynode_t *store = section(L, sec[T_STORE], "store", YNODE_MAPPING);
    if (store) parse_store(L, c, store);

    const ynode_t *redis = section(L, sec[T_REDIS], "redis", YNODE_MAPPING);
    if (redis) parse_redis(L, c, redis);
    const ynode_t *cache = section(L, sec[T_CACHE], "cache", YNODE_MAPPING);
    if (cache) {
        const ynode_t *redis_at = NULL, *persistent_at = NULL;
        parse_cache(L, c, cache, &redis_at, &persistent_at);
        if (c->cache.redis && !c->redis.url)
            err_at(L, redis_at, "cache.redis needs a top-level redis section with a url");
        if (c->cache.persistent && !c->store.url)
            err_at(L, persistent_at, "cache.persistent needs a store section with a url");
    }

    const ynode_t *server = section(L, sec[T_SERVER], "server", YNODE_MAPPING);
    if (server) {
        const ynode_t *dm_at = NULL;
        parse_server(L, c, server, &dm_at);
        const char *dm = c->server.default_model;
        if (dm && dm_at && !config_find_model(c, dm, strlen(dm)))
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
        config__strlist_free(&m->tags);
    }
    free(c->models);
    free(c->server.listen);
    free(c->server.default_model);
    free_secret(c->server.master_key);
    free(c->store.url);
    free_secret(c->redis.url);
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
        set_cache_defaults(&c->cache, &c->redis);
        c->text_len = len;
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
        const char *n = c->models[i].name;
        if (n && strlen(n) == len && memcmp(n, name, len) == 0) return &c->models[i];
    }
    return NULL;
}
