/*
 * emit.c — the YAML output tree and its writer (see emit.h for the quoting
 * rules and what they guarantee).
 *
 * Nodes live in the document's arena. Mappings and sequences keep a singly
 * linked list with a tail pointer, so appending is O(1) and order is
 * insertion order. The writer is recursive over the tree, whose depth the
 * converter fixes (at most 5 levels), and writes into a capped buf_t.
 */
#include "import/emit.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/arena.h"

typedef enum { N_MAP, N_SEQ, N_STR, N_INT, N_REAL, N_BOOL, N_DUR } nkind_t;

typedef struct imp_item {
    const char *key; /* mappings only */
    imp_node_t *v;
    struct imp_item *next;
} imp_item_t;

struct imp_node {
    nkind_t kind;
    const char *s; /* N_STR */
    size_t len;
    int64_t i;  /* N_INT, N_BOOL */
    uint64_t u; /* N_DUR: milliseconds */
    double r;   /* N_REAL */
    imp_item_t *head, *tail;
    size_t n;
};

struct imp_doc {
    arena_t *arena;
    bool failed; /* an allocation failed: imp_emit refuses */
};

imp_doc_t *imp_doc_create(void)
{
    arena_t *a = arena_create(8192);
    if (!a) return NULL;
    imp_doc_t *d = arena_calloc(a, sizeof *d);
    if (!d) {
        arena_destroy(a);
        return NULL;
    }
    d->arena = a;
    return d;
}

void imp_doc_free(imp_doc_t *d)
{
    if (d) arena_destroy(d->arena);
}

static imp_node_t *node(imp_doc_t *d, nkind_t k)
{
    if (!d) return NULL;
    imp_node_t *n = arena_calloc(d->arena, sizeof *n);
    if (!n) {
        d->failed = true;
        return NULL;
    }
    n->kind = k;
    return n;
}

imp_node_t *imp_map(imp_doc_t *d)
{
    return node(d, N_MAP);
}

imp_node_t *imp_seq(imp_doc_t *d)
{
    return node(d, N_SEQ);
}

imp_node_t *imp_str(imp_doc_t *d, const char *s, size_t len)
{
    imp_node_t *n = node(d, N_STR);
    if (!n) return NULL;
    n->s = arena_strndup(d->arena, s ? s : "", s ? len : 0);
    n->len = s ? len : 0;
    if (!n->s) {
        d->failed = true;
        return NULL;
    }
    return n;
}

imp_node_t *imp_cstr(imp_doc_t *d, const char *s)
{
    return imp_str(d, s, s ? strlen(s) : 0);
}

imp_node_t *imp_int(imp_doc_t *d, int64_t v)
{
    imp_node_t *n = node(d, N_INT);
    if (n) n->i = v;
    return n;
}

imp_node_t *imp_real(imp_doc_t *d, double v)
{
    imp_node_t *n = node(d, N_REAL);
    if (n) n->r = isfinite(v) ? v : 0;
    return n;
}

imp_node_t *imp_bool(imp_doc_t *d, bool v)
{
    imp_node_t *n = node(d, N_BOOL);
    if (n) n->i = v;
    return n;
}

imp_node_t *imp_dur(imp_doc_t *d, uint64_t ms)
{
    imp_node_t *n = node(d, N_DUR);
    if (n) n->u = ms;
    return n;
}

static imp_node_t *append(imp_doc_t *d, imp_node_t *c, const char *key, imp_node_t *v)
{
    if (!d || !c || !v) {
        if (d && c && !v) d->failed = true; /* a constructor failed */
        return NULL;
    }
    imp_item_t *it = arena_calloc(d->arena, sizeof *it);
    if (!it || (key && !(it->key = arena_strdup(d->arena, key)))) {
        d->failed = true;
        return NULL;
    }
    it->v = v;
    if (c->tail)
        c->tail->next = it;
    else
        c->head = it;
    c->tail = it;
    c->n++;
    return v;
}

imp_node_t *imp_map_add(imp_doc_t *d, imp_node_t *map, const char *key, imp_node_t *v)
{
    if (!map || map->kind != N_MAP || !key || !imp_plain_ok(key, strlen(key))) {
        if (d) d->failed = true;
        return NULL;
    }
    return append(d, map, key, v);
}

imp_node_t *imp_seq_add(imp_doc_t *d, imp_node_t *seq, imp_node_t *v)
{
    if (!seq || seq->kind != N_SEQ) {
        if (d) d->failed = true;
        return NULL;
    }
    return append(d, seq, NULL, v);
}

imp_node_t *imp_map_get(const imp_node_t *map, const char *key)
{
    if (!map || map->kind != N_MAP) return NULL;
    for (const imp_item_t *it = map->head; it; it = it->next)
        if (strcmp(it->key, key) == 0) return it->v;
    return NULL;
}

size_t imp_node_count(const imp_node_t *n)
{
    return n ? n->n : 0;
}

/* ---- quoting ---- */

static bool word_is(const char *s, size_t len, const char *w)
{
    if (strlen(w) != len) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != w[i]) return false;
    }
    return true;
}

bool imp_plain_ok(const char *s, size_t len)
{
    static const char *const reserved[] = {"y",   "n",    "yes",   "no",  "on",
                                           "off", "true", "false", "null"};
    if (len == 0 || len > 256) return false;
    char c0 = s[0];
    if (!((c0 >= 'A' && c0 <= 'Z') || (c0 >= 'a' && c0 <= 'z') || c0 == '_' || c0 == '/'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '/' || c == '@' || c == '+' || c == '-';
        if (!ok) return false;
    }
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (word_is(s, len, reserved[i])) return false;
    return true;
}

/* Decodes one UTF-8 sequence at s[0..left); returns its length and the code
 * point, or 0 when it is not valid UTF-8 (overlong, surrogate, > U+10FFFF,
 * truncated). */
static size_t utf8_next(const unsigned char *s, size_t left, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        n = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (left < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return n;
}

static int write_quoted(buf_t *o, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    if (buf_append(o, "\"", 1) != BUF_OK) return -1;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_next(s + i, len - i, &cp);
        if (!n) return -2;
        const char *esc = NULL;
        char tmp[16];
        switch (cp) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case 0:
            esc = "\\0";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case 0x85:
            esc = "\\N";
            break;
        case 0x2028:
            esc = "\\L";
            break;
        case 0x2029:
            esc = "\\P";
            break;
        default:
            if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f)) {
                snprintf(tmp, sizeof tmp, "\\x%02X", (unsigned)cp);
                esc = tmp;
            } else if (cp == 0xfeff || cp == 0xfffe || cp == 0xffff) {
                snprintf(tmp, sizeof tmp, "\\u%04X", (unsigned)cp);
                esc = tmp;
            }
        }
        buf_status_t st = esc ? buf_appends(o, esc) : buf_append(o, s + i, n);
        if (st != BUF_OK) return -1;
        i += n;
    }
    return buf_append(o, "\"", 1) == BUF_OK ? 0 : -1;
}

/* Fixed notation with at most 9 decimals, trailing zeros dropped: "2.5",
 * "421", "0.15". Never an exponent (YAML 1.1 reads "1e-05" as a string). */
static int write_real(buf_t *o, double v)
{
    char tmp[400];
    if (!isfinite(v)) v = 0;
    int w = snprintf(tmp, sizeof tmp, "%.9f", v);
    if (w < 0 || (size_t)w >= sizeof tmp) return -1;
    char *dot = strchr(tmp, '.');
    if (dot) {
        char *e = tmp + w;
        while (e > dot + 1 && e[-1] == '0') *--e = '\0';
        if (e == dot + 1) *dot = '\0';
    }
    if (strcmp(tmp, "-0") == 0) strcpy(tmp, "0");
    return buf_appends(o, tmp) == BUF_OK ? 0 : -1;
}

static int write_scalar(buf_t *o, const imp_node_t *n)
{
    switch (n->kind) {
    case N_STR:
        if (imp_plain_ok(n->s, n->len)) return buf_append(o, n->s, n->len) == BUF_OK ? 0 : -1;
        return write_quoted(o, n->s, n->len);
    case N_INT:
        return buf_append_i64(o, n->i) == BUF_OK ? 0 : -1;
    case N_REAL:
        return write_real(o, n->r);
    case N_BOOL:
        return buf_appends(o, n->i ? "true" : "false") == BUF_OK ? 0 : -1;
    case N_DUR:
        if (n->u % 1000 == 0 && n->u)
            return buf_printf(o, "%llus", (unsigned long long)(n->u / 1000)) == BUF_OK ? 0 : -1;
        return buf_printf(o, "%llums", (unsigned long long)n->u) == BUF_OK ? 0 : -1;
    default:
        return -1;
    }
}

static int indent(buf_t *o, int level)
{
    for (int i = 0; i < level; i++)
        if (buf_append(o, "  ", 2) != BUF_OK) return -1;
    return 0;
}

static bool is_coll(const imp_node_t *n)
{
    return n->kind == N_MAP || n->kind == N_SEQ;
}

static int write_node(buf_t *o, const imp_node_t *n, int level, bool inline_first);

/* After "key:" or "- ": a scalar or an empty collection stays on the line; a
 * collection starts on the next line (a mapping under "- " starts on it). */
static int write_value(buf_t *o, const imp_node_t *v, int level)
{
    int rc;
    if (!is_coll(v)) {
        if (buf_append(o, " ", 1) != BUF_OK) return -1;
        rc = write_scalar(o, v);
        if (rc) return rc;
        return buf_append(o, "\n", 1) == BUF_OK ? 0 : -1;
    }
    if (!v->n) return buf_appends(o, v->kind == N_MAP ? " {}\n" : " []\n") == BUF_OK ? 0 : -1;
    if (buf_append(o, "\n", 1) != BUF_OK) return -1;
    return write_node(o, v, level, false);
}

static int write_node(buf_t *o, const imp_node_t *n, int level, bool inline_first)
{
    int rc;
    for (const imp_item_t *it = n->head; it; it = it->next) {
        bool first_inline = inline_first && it == n->head;
        if (!first_inline && indent(o, level) < 0) return -1;
        if (n->kind == N_MAP) {
            if (buf_appends(o, it->key) != BUF_OK || buf_append(o, ":", 1) != BUF_OK) return -1;
            rc = write_value(o, it->v, level + 1);
        } else if (it->v->kind == N_MAP && it->v->n) {
            /* "- key: v" then the mapping's other keys aligned under it */
            if (buf_append(o, "- ", 2) != BUF_OK) return -1;
            rc = write_node(o, it->v, level + 1, true);
        } else {
            if (buf_append(o, "-", 1) != BUF_OK) return -1;
            rc = write_value(o, it->v, level + 1);
        }
        if (rc) return rc;
    }
    return 0;
}

int imp_emit(imp_doc_t *d, const imp_node_t *root, const char *comment, buf_t *out,
             const char **bad)
{
    const char *why = NULL;
    if (!d || d->failed || !root || root->kind != N_MAP) why = "out of memory";
    for (const char *p = comment; !why && p && *p;) {
        size_t l = strcspn(p, "\n");
        if (buf_append(out, "# ", 2) != BUF_OK) why = "out of memory";
        for (size_t i = 0; !why && i < l; i++) {
            unsigned char c = (unsigned char)p[i];
            char ch = c < 0x20 || c == 0x7f ? '?' : (char)c;
            if (buf_append(out, &ch, 1) != BUF_OK) why = "out of memory";
        }
        if (!why && buf_append(out, "\n", 1) != BUF_OK) why = "out of memory";
        p += l;
        if (*p) p++;
    }
    if (!why) {
        int rc = root->n ? write_node(out, root, 0, false) : (buf_appends(out, "{}\n") ? -1 : 0);
        if (rc == -2)
            why = "a string is not valid UTF-8";
        else if (rc)
            why = "out of memory";
    }
    if (why && bad) *bad = why;
    return why ? -1 : 0;
}
