/*
 * yaml_tree — builds a ynode_t tree from libyaml events (see yaml_tree.h).
 *
 * The builder is a recursive descent over the event stream: build_node()
 * consumes one node's events (a scalar, or a collection up to its END event)
 * and returns the node. Every event it receives is deleted by it, on success
 * and on error alike. All memory comes from the tree's arena; collection
 * arrays grow by doubling inside the arena (the abandoned copies are bounded by
 * the final size, and the whole arena dies with the tree).
 *
 * Errors stop the build: the first one is reported in ytree_error_t with a
 * 1-based position and the partially built tree is freed.
 */
#include "config/yaml_tree.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "core/arena.h"

struct ytree {
    arena_t *arena;
    ynode_t *root;
};

typedef struct builder {
    yaml_parser_t parser;
    arena_t *arena;
    ytree_error_t *err;
    const char *data;
    size_t len;
} builder_t;

static int mark_int(size_t v)
{
    return v >= (size_t)0x7fffffff ? 0x7fffffff : (int)v + 1;
}

static void fail_at(builder_t *b, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail_at(builder_t *b, int line, int col, const char *fmt, ...)
{
    va_list ap;
    b->err->line = line;
    b->err->col = col;
    va_start(ap, fmt);
    vsnprintf(b->err->msg, sizeof(b->err->msg), fmt, ap);
    va_end(ap);
}

static void fail_oom(builder_t *b)
{
    fail_at(b, 0, 0, "out of memory while parsing YAML");
}

/* Turns libyaml's error state into a positioned message. Reader errors (bad
 * encoding) carry a byte offset instead of a mark; we count lines ourselves. */
static void fail_parser(builder_t *b)
{
    yaml_parser_t *p = &b->parser;
    const char *problem = p->problem ? p->problem : "invalid YAML";

    switch (p->error) {
    case YAML_MEMORY_ERROR:
        fail_oom(b);
        return;
    case YAML_READER_ERROR: {
        size_t off = p->problem_offset < b->len ? p->problem_offset : b->len;
        int line = 1, col = 1;
        for (size_t i = 0; i < off; i++) {
            if (b->data[i] == '\n') {
                line++;
                col = 1;
            } else if (col < 0x7fffffff) {
                col++;
            }
        }
        if (p->problem_value >= 0)
            fail_at(b, line, col, "%s (byte 0x%02x)", problem, (unsigned)p->problem_value & 0xffu);
        else
            fail_at(b, line, col, "%s", problem);
        return;
    }
    default:
        break;
    }
    int line = mark_int(p->problem_mark.line), col = mark_int(p->problem_mark.column);
    if (p->context)
        fail_at(b, line, col, "%s (%s started at line %d, column %d)", problem, p->context,
                mark_int(p->context_mark.line), mark_int(p->context_mark.column));
    else
        fail_at(b, line, col, "%s", problem);
}

static int next_event(builder_t *b, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&b->parser, ev)) {
        fail_parser(b);
        return -1;
    }
    return 0;
}

static ynode_t *new_node(builder_t *b, ynode_kind_t kind, const yaml_mark_t *m)
{
    ynode_t *n = arena_calloc(b->arena, sizeof(*n));
    if (!n) {
        fail_oom(b);
        return NULL;
    }
    n->kind = kind;
    n->line = mark_int(m->line);
    n->col = mark_int(m->column);
    return n;
}

/* Grows *arr (elements of size `elem`, `n` used, `*cap` allocated) so one more
 * fits. */
static int grow(builder_t *b, void **arr, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap) return 0;
    size_t ncap = *cap ? *cap * 2 : 4;
    if (ncap > ((size_t)-1) / elem) {
        fail_oom(b);
        return -1;
    }
    void *p = arena_alloc(b->arena, ncap * elem);
    if (!p) {
        fail_oom(b);
        return -1;
    }
    if (n) memcpy(p, *arr, n * elem);
    *arr = p;
    *cap = ncap;
    return 0;
}

static int reject_anchor(builder_t *b, const yaml_event_t *ev, const yaml_char_t *anchor)
{
    if (!anchor) return 0;
    fail_at(b, mark_int(ev->start_mark.line), mark_int(ev->start_mark.column),
            "anchors are not supported (&%.64s)", (const char *)anchor);
    return -1;
}

static ystyle_t map_style(yaml_scalar_style_t s)
{
    switch (s) {
    case YAML_SINGLE_QUOTED_SCALAR_STYLE:
        return YSTYLE_SINGLE_QUOTED;
    case YAML_DOUBLE_QUOTED_SCALAR_STYLE:
        return YSTYLE_DOUBLE_QUOTED;
    case YAML_LITERAL_SCALAR_STYLE:
        return YSTYLE_LITERAL;
    case YAML_FOLDED_SCALAR_STYLE:
        return YSTYLE_FOLDED;
    default:
        return YSTYLE_PLAIN;
    }
}

static ynode_t *build_node(builder_t *b, yaml_event_t *ev, int depth);

static ynode_t *build_scalar(builder_t *b, yaml_event_t *ev)
{
    if (reject_anchor(b, ev, ev->data.scalar.anchor) < 0) return NULL;
    ynode_t *n = new_node(b, YNODE_SCALAR, &ev->start_mark);
    if (!n) return NULL;
    n->style = map_style(ev->data.scalar.style);
    n->len = ev->data.scalar.length;
    n->str = arena_strndup(b->arena, (const char *)ev->data.scalar.value, n->len);
    if (!n->str) {
        fail_oom(b);
        return NULL;
    }
    return n;
}

/* Consumes a collection's children up to and including its END event; the
 * START event was already turned into n and deleted by build_node(). */
static int build_sequence(builder_t *b, ynode_t *n, int depth)
{
    size_t cap = 0;
    for (;;) {
        yaml_event_t ev;
        if (next_event(b, &ev) < 0) return -1;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        ynode_t *item = build_node(b, &ev, depth + 1);
        if (!item) return -1;
        if (grow(b, (void **)&n->items, n->n, &cap, sizeof(*n->items)) < 0) return -1;
        n->items[n->n++] = item;
    }
}

static int build_mapping(builder_t *b, ynode_t *n, int depth)
{
    size_t cap = 0;
    for (;;) {
        yaml_event_t ev;
        if (next_event(b, &ev) < 0) return -1;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        ynode_t *key = build_node(b, &ev, depth + 1);
        if (!key) return -1;
        /* libyaml always emits a value event (an empty scalar for "key:"). */
        if (next_event(b, &ev) < 0) return -1;
        ynode_t *value = build_node(b, &ev, depth + 1);
        if (!value) return -1;
        if (grow(b, (void **)&n->pairs, n->n, &cap, sizeof(*n->pairs)) < 0) return -1;
        n->pairs[n->n].key = key;
        n->pairs[n->n].value = value;
        n->n++;
    }
}

/* Builds the node that starts with *ev; always deletes *ev. */
static ynode_t *build_node(builder_t *b, yaml_event_t *ev, int depth)
{
    ynode_t *n = NULL;
    int line = mark_int(ev->start_mark.line), col = mark_int(ev->start_mark.column);

    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        n = build_scalar(b, ev);
        yaml_event_delete(ev);
        return n;
    case YAML_ALIAS_EVENT:
        fail_at(b, line, col, "aliases are not supported (*%.64s)",
                (const char *)ev->data.alias.anchor);
        yaml_event_delete(ev);
        return NULL;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
        const yaml_char_t *anchor =
            seq ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor;
        if (reject_anchor(b, ev, anchor) < 0) {
            yaml_event_delete(ev);
            return NULL;
        }
        if (depth >= YTREE_MAX_DEPTH) {
            fail_at(b, line, col, "nesting deeper than %d levels is not supported",
                    YTREE_MAX_DEPTH);
            yaml_event_delete(ev);
            return NULL;
        }
        n = new_node(b, seq ? YNODE_SEQUENCE : YNODE_MAPPING, &ev->start_mark);
        yaml_event_delete(ev);
        if (!n) return NULL;
        if ((seq ? build_sequence(b, n, depth) : build_mapping(b, n, depth)) < 0) return NULL;
        return n;
    }
    default:
        fail_at(b, line, col, "unexpected YAML event %d", (int)ev->type);
        yaml_event_delete(ev);
        return NULL;
    }
}

/* Stream grammar: STREAM_START (DOCUMENT_START node DOCUMENT_END)? STREAM_END.
 * A second document is an error. */
static int build_stream(builder_t *b, ynode_t **root)
{
    yaml_event_t ev;
    if (next_event(b, &ev) < 0) return -1;
    yaml_event_delete(&ev); /* STREAM_START */

    if (next_event(b, &ev) < 0) return -1;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        return 0;
    }
    yaml_event_delete(&ev); /* DOCUMENT_START */

    if (next_event(b, &ev) < 0) return -1;
    *root = build_node(b, &ev, 0);
    if (!*root) return -1;

    if (next_event(b, &ev) < 0) return -1;
    yaml_event_delete(&ev); /* DOCUMENT_END */

    if (next_event(b, &ev) < 0) return -1;
    if (ev.type != YAML_STREAM_END_EVENT) {
        fail_at(b, mark_int(ev.start_mark.line), mark_int(ev.start_mark.column),
                "multiple YAML documents are not supported");
        yaml_event_delete(&ev);
        return -1;
    }
    yaml_event_delete(&ev);
    return 0;
}

ytree_t *ytree_parse(const char *data, size_t len, ytree_error_t *err)
{
    builder_t b = {.err = err, .data = data, .len = len};
    memset(err, 0, sizeof(*err));

    ytree_t *t = calloc(1, sizeof(*t));
    if (!t || !(t->arena = arena_create(4096))) {
        free(t);
        fail_oom(&b);
        return NULL;
    }
    b.arena = t->arena;
    if (!yaml_parser_initialize(&b.parser)) {
        ytree_free(t);
        fail_oom(&b);
        return NULL;
    }
    yaml_parser_set_input_string(&b.parser, (const unsigned char *)data, len);
    int rc = build_stream(&b, &t->root);
    yaml_parser_delete(&b.parser);
    if (rc < 0) {
        ytree_free(t);
        return NULL;
    }
    return t;
}

void ytree_free(ytree_t *t)
{
    if (!t) return;
    arena_destroy(t->arena);
    free(t);
}

const ynode_t *ytree_root(const ytree_t *t)
{
    return t->root;
}

bool ytree_is_null(const ynode_t *n)
{
    if (!n || n->kind != YNODE_SCALAR || n->style != YSTYLE_PLAIN) return false;
    return n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
           strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0;
}

const ynode_t *ytree_map_get(const ynode_t *map, const char *key)
{
    if (!map || map->kind != YNODE_MAPPING) return NULL;
    size_t klen = strlen(key);
    for (size_t i = 0; i < map->n; i++) {
        const ynode_t *k = map->pairs[i].key;
        if (k->kind == YNODE_SCALAR && k->len == klen && memcmp(k->str, key, klen) == 0)
            return map->pairs[i].value;
    }
    return NULL;
}

const char *ytree_kind_name(const ynode_t *n)
{
    if (!n) return "nothing";
    switch (n->kind) {
    case YNODE_MAPPING:
        return "a mapping";
    case YNODE_SEQUENCE:
        return "a sequence";
    default:
        return ytree_is_null(n) ? "null" : "a scalar";
    }
}
