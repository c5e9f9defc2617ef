/*
 * helpers.c — what every section of the loader uses besides the walker:
 * collecting errors (config__err_at / config__err_pos, never stopping at the
 * first), quoting a value for a message (SHOWN), strict integer, duration and
 * size parsers, name tables for messages, and secrets.
 *
 * Secrets (api_key, master_key, encryption_key, hmac_secret, redis url):
 * `env:NAME` and `file:PATH` are resolved here; any other string is the
 * secret itself. A secret's value never enters an error message or a log
 * line — messages name the key or the reference (env:NAME, file:PATH).
 * Resolved secrets are wiped (explicit_bzero) before being freed. file: paths
 * are relative to the working directory and capped at SECRET_FILE_MAX.
 */
#include "config/config_internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

void config__err_pos(loader_t *L, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void config__err_pos(loader_t *L, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_errorv(L, line, col, fmt, ap);
    va_end(ap);
}

void config__err_at(loader_t *L, const ynode_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void config__err_at(loader_t *L, const ynode_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_errorv(L, n ? n->line : 0, n ? n->col : 0, fmt, ap);
    va_end(ap);
}

/* Stable insertion sort by position (lists are short). */
void config__sort_errors(cfg_errors_t *errs)
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
const char *config__show(char out[SHOW_MAX + 4], const char *s, size_t len)
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

char *config__dup_str(loader_t *L, const ynode_t *at, const char *s)
{
    char *p = strdup(s);
    if (!p) config__err_at(L, at, "out of memory");
    return p;
}

/* Strict unsigned decimal: one or more digits, no sign or spaces. Advances *p
 * past the digits. */
int config__parse_digits(const char **p, uint64_t *out)
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
    if (!s || !out || config__parse_digits(&s, &n) < 0) return -1;
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
    if (!s || !out || config__parse_digits(&s, &n) < 0) return -1;
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
const char *config__fmt_size(char out[32], uint64_t v)
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

int config__parse_int(const char *s, int64_t *out)
{
    bool neg = *s == '-';
    uint64_t v;
    if (neg) s++;
    if (config__parse_digits(&s, &v) < 0 || *s) return -1;
    if (v > (uint64_t)INT64_MAX) return -1;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

void config__strlist_free(cfg_strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

int config__name_index(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0) return (int)i;
    return -1;
}

/* "a, b, c" into out (for messages). */
const char *config__name_list(char out[160], const char *const *names, size_t n)
{
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i) strncat(out, ", ", 159 - strlen(out));
        strncat(out, names[i], 159 - strlen(out));
    }
    return out;
}

void config__free_secret(char *s)
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
        config__err_at(L, at, "api_key: cannot read file:%s: %s", path, strerror(errno));
        return NULL;
    }
    char *data = malloc(SECRET_FILE_MAX + 1);
    if (!data) {
        close(fd);
        config__err_at(L, at, "out of memory");
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
            config__err_at(L, at, "api_key: cannot read file:%s: %s", path, strerror(e));
            return NULL;
        }
        if (r == 0) break;
        len += (size_t)r;
        if (len > SECRET_FILE_MAX) {
            close(fd);
            explicit_bzero(data, len);
            free(data);
            config__err_at(L, at, "api_key: file:%s is larger than %u bytes", path,
                           SECRET_FILE_MAX);
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
        config__err_at(L, at, "api_key: file:%s %s", path, problem);
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
char *config__resolve_secret(loader_t *L, const ynode_t *at, const char *raw)
{
    if (strncmp(raw, "env:", 4) == 0) {
        const char *name = raw + 4;
        if (!env_name_ok(name)) {
            char shown[SHOW_MAX + 4];
            config__err_at(L, at, "api_key: invalid environment variable name in 'env:%s'",
                           config__show(shown, name, strlen(name)));
            return NULL;
        }
        const char *val = getenv(name);
        if (!val) {
            config__err_at(L, at, "environment variable %s is not set", name);
            return NULL;
        }
        if (!*val) {
            config__err_at(L, at, "environment variable %s is empty", name);
            return NULL;
        }
        if (!secret_clean(val)) {
            config__err_at(L, at, "environment variable %s contains control characters", name);
            return NULL;
        }
        return config__dup_str(L, at, val);
    }
    if (strncmp(raw, "file:", 5) == 0) {
        if (!raw[5]) {
            config__err_at(L, at, "api_key: 'file:' needs a path");
            return NULL;
        }
        return read_secret_file(L, at, raw + 5);
    }
    if (!*raw) {
        config__err_at(L, at, "api_key is empty");
        return NULL;
    }
    if (!secret_clean(raw)) {
        config__err_at(L, at, "api_key contains control characters");
        return NULL;
    }
    return config__dup_str(L, at, raw);
}
