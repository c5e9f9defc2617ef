/*
 * walk.c — the table-driven mapping walker. A section describes its keys as a
 * field_t table (key, type, offset into the section's struct, bounds,
 * required); config__walk_map checks every key of a mapping against it
 * (unknown keys get a "did you mean", duplicates name the first line), parses
 * each typed value into the struct and reports missing required keys at the
 * mapping. FT_MAPPING fields are only located (keys[]/vals[]): the section
 * parses them itself. A value that fails to parse leaves the field as it was
 * (the default). config__parse_items does the same for a list of mappings.
 */
#include "config/config_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool config__scalar_is(const ynode_t *n, const char *s)
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
void config__unknown_key(loader_t *L, const ynode_t *key, const char *where,
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
        config__err_at(L, key, "unknown key '%s' %s (did you mean '%s'?)", SHOWN(key), where, best);
        return;
    }
    char list[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < n_valid && used < sizeof(list); i++) {
        int w = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", valid[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
    config__err_at(L, key, "unknown key '%s' %s (valid keys: %s)", SHOWN(key), where, list);
}

/* Reports a duplicate of an earlier key in the same mapping; returns true if
 * pairs[i]'s key repeats one of pairs[0..i-1]. */
bool config__duplicate_key(loader_t *L, const ynode_t *map, size_t i, const char *where)
{
    const ynode_t *k = map->pairs[i].key;
    for (size_t j = 0; j < i; j++) {
        const ynode_t *p = map->pairs[j].key;
        if (p->kind == YNODE_SCALAR && p->len == k->len && memcmp(p->str, k->str, k->len) == 0) {
            config__err_at(L, k, "duplicate key '%s' %s (first at line %d)", SHOWN(k), where,
                           p->line);
            return true;
        }
    }
    return false;
}

/* A key must be a non-null scalar. */
bool config__check_key(loader_t *L, const ynode_t *k)
{
    if (k->kind != YNODE_SCALAR || ytree_is_null(k)) {
        config__err_at(L, k, "expected a key name, got %s", ytree_kind_name(k));
        return false;
    }
    return true;
}

/* The value must be a non-null scalar with no NUL byte. */
bool config__want_scalar(loader_t *L, const ynode_t *v, const char *key, const char *what)
{
    if (v->kind != YNODE_SCALAR || ytree_is_null(v)) {
        config__err_at(L, v, "%s: expected %s, got %s", key, what, ytree_kind_name(v));
        return false;
    }
    if (strlen(v->str) != v->len) {
        config__err_at(L, v, "%s: value must not contain a NUL byte", key);
        return false;
    }
    return true;
}

static void parse_field(loader_t *L, const field_t *f, const ynode_t *v, void *dst)
{
    char *at = (char *)dst + f->off;
    char tmp[32];

    switch (f->type) {
    case FT_STRING: {
        if (!config__want_scalar(L, v, f->key, "a string")) return;
        char *s = config__dup_str(L, v, v->str);
        if (!s) return;
        free(*(char **)at);
        *(char **)at = s;
        return;
    }
    case FT_INT: {
        if (!config__want_scalar(L, v, f->key, "an integer")) return;
        int64_t n;
        if (v->style != YSTYLE_PLAIN) {
            config__err_at(L, v, "%s: expected an integer, got a quoted string", f->key);
            return;
        }
        if (config__parse_int(v->str, &n) < 0) {
            config__err_at(L, v, "%s: expected an integer, got '%s'", f->key, SHOWN(v));
            return;
        }
        if (n < f->min || n > f->max) {
            config__err_at(L, v, "%s must be between %lld and %lld", f->key, (long long)f->min,
                           (long long)f->max);
            return;
        }
        *(int *)at = (int)n;
        return;
    }
    case FT_BOOL:
        if (!config__want_scalar(L, v, f->key, "true or false")) return;
        if (v->style == YSTYLE_PLAIN &&
            (strcasecmp(v->str, "true") == 0 || strcasecmp(v->str, "yes") == 0)) {
            *(bool *)at = true;
        } else if (v->style == YSTYLE_PLAIN &&
                   (strcasecmp(v->str, "false") == 0 || strcasecmp(v->str, "no") == 0)) {
            *(bool *)at = false;
        } else {
            config__err_at(L, v, "%s: expected true or false, got '%s'", f->key, SHOWN(v));
        }
        return;
    case FT_SIZE: {
        if (!config__want_scalar(L, v, f->key, "a size")) return;
        size_t n;
        if (config_parse_size(v->str, &n) < 0) {
            config__err_at(L, v,
                           "%s: invalid size '%s' (use e.g. 512KiB, 4MiB, 1GiB, 4MB or a number of "
                           "bytes)",
                           f->key, SHOWN(v));
            return;
        }
        if ((uint64_t)n < (uint64_t)f->min) {
            config__err_at(L, v, "%s must be at least %s", f->key,
                           config__fmt_size(tmp, (uint64_t)f->min));
            return;
        }
        *(size_t *)at = n;
        return;
    }
    case FT_NUMBER: {
        if (!config__want_scalar(L, v, f->key, "a number")) return;
        char *end = NULL;
        errno = 0;
        double d = strtod(v->str, &end);
        if (v->style != YSTYLE_PLAIN || !*v->str || *end || errno || d != d) {
            config__err_at(L, v, "%s: expected a number, got '%s'", f->key, SHOWN(v));
            return;
        }
        if (d < f->dmin || d > f->dmax) {
            config__err_at(L, v, "%s must be between %g and %g", f->key, f->dmin, f->dmax);
            return;
        }
        *(double *)at = d;
        return;
    }
    case FT_STRLIST: {
        if (v->kind != YNODE_SEQUENCE) {
            config__err_at(L, v, "%s: expected a list, got %s", f->key, ytree_kind_name(v));
            return;
        }
        cfg_strlist_t *l = (cfg_strlist_t *)at;
        char **items = calloc(v->n + 1, sizeof(*items));
        if (!items) {
            config__err_at(L, v, "out of memory");
            return;
        }
        size_t n = 0;
        for (size_t i = 0; i < v->n; i++) {
            const ynode_t *it = v->items[i];
            if (it->kind != YNODE_SCALAR || ytree_is_null(it)) {
                config__err_at(L, it, "%s: expected a string, got %s", f->key, ytree_kind_name(it));
                continue;
            }
            char *d = config__dup_str(L, it, it->str);
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
        if (!config__want_scalar(L, v, f->key, "a duration")) return;
        uint64_t ms;
        if (config_parse_duration_ms(v->str, &ms) < 0) {
            config__err_at(L, v,
                           "%s: invalid duration '%s' (use e.g. 250ms, 30s, 5m, 1h or a number of "
                           "seconds)",
                           f->key, SHOWN(v));
            return;
        }
        if (ms < (uint64_t)f->min) {
            config__err_at(L, v, "%s must be at least %lldms", f->key, (long long)f->min);
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
void config__walk_map_split(loader_t *L, const ynode_t *map, const char *what,
                            const field_t *fields, size_t nf, void *dst, size_t split, void *dst2,
                            const ynode_t **keys, const ynode_t **vals)
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
        if (!config__check_key(L, k) || config__duplicate_key(L, map, i, where)) continue;
        size_t f = 0;
        while (f < nf && !config__scalar_is(k, fields[f].key)) f++;
        if (f == nf) {
            config__unknown_key(L, k, where, valid, nf);
            continue;
        }
        keys[f] = k;
        vals[f] = v;
        if (fields[f].type != FT_MAPPING) parse_field(L, &fields[f], v, f < split ? dst : dst2);
    }
    for (size_t f = 0; f < nf; f++)
        if (fields[f].required && !keys[f])
            config__err_at(L, map, "%s is missing required key '%s'", what, fields[f].key);
}

/* The common case: every field stores into dst. */
void config__walk_map(loader_t *L, const ynode_t *map, const char *what, const field_t *fields,
                      size_t nf, void *dst, const ynode_t **keys, const ynode_t **vals)
{
    config__walk_map_split(L, map, what, fields, nf, dst, nf, NULL, keys, vals);
}

/* A sequence of mappings, each walked with `fields` into items of `size` bytes;
 * when `picked` is given, it receives per item the value node of field `pick`
 * (NULL where absent) for the caller to parse itself. */
void *config__parse_items(loader_t *L, const ynode_t *seq, const char *what, const field_t *fields,
                          size_t nf, size_t size, size_t *n_out, size_t pick,
                          const ynode_t ***picked)
{
    *n_out = 0;
    if (!seq || ytree_is_null(seq)) return NULL;
    if (seq->kind != YNODE_SEQUENCE) {
        config__err_at(L, seq, "%s: expected a list", what);
        return NULL;
    }
    char *items = calloc(seq->n + 1, size);
    if (picked) *picked = calloc(seq->n + 1, sizeof **picked);
    if (!items || (picked && !*picked)) {
        config__err_at(L, seq, "out of memory");
        free(items);
        return NULL;
    }
    for (size_t i = 0; i < seq->n; i++) {
        const ynode_t *it = seq->items[i];
        if (it->kind != YNODE_MAPPING) {
            config__err_at(L, it, "%s: expected a mapping", what);
            continue;
        }
        const ynode_t *keys[MAX_FIELDS], *vals[MAX_FIELDS];
        config__walk_map(L, it, what, fields, nf, items + *n_out * size, keys, vals);
        if (picked) (*picked)[*n_out] = vals[pick];
        (*n_out)++;
    }
    return items;
}
