/*
 * yaml_tree — a small YAML node tree with source positions, built from
 * libyaml's event parser.
 *
 * The config loader walks this tree instead of libyaml events so it can look
 * keys up, check cross-references and report every error with a position.
 *
 * Ownership: a ytree_t owns every node, pair array and string below it in one
 * arena; ytree_free() releases them all at once. Nodes are immutable after
 * ytree_parse() returns and nothing in them may be kept past ytree_free():
 * the loader copies what it keeps.
 *
 * Invariants:
 * - line and col are 1-based (libyaml's marks are 0-based) and point at the
 *   node's first character (for a block mapping, its first key).
 * - a scalar's str is NUL-terminated; len counts its bytes and may be larger
 *   than strlen(str) when the YAML escaped a NUL ("\0"). Callers that want a C
 *   string must check len == strlen(str).
 * - mapping pairs keep document order; duplicate keys are kept (the loader
 *   reports them, YAML forbids them).
 * - a document holds at most one root node; an empty stream has root NULL.
 * - anchors, aliases and multiple documents are rejected as errors; tags are
 *   ignored. Nesting is limited to YTREE_MAX_DEPTH levels so a hostile file
 *   cannot exhaust the stack.
 */
#ifndef SKULD_YAML_TREE_H
#define SKULD_YAML_TREE_H

#include <stdbool.h>
#include <stddef.h>

#define YTREE_MAX_DEPTH 64

typedef enum { YNODE_SCALAR, YNODE_MAPPING, YNODE_SEQUENCE } ynode_kind_t;

typedef enum {
    YSTYLE_PLAIN,         /* 123, true, hello */
    YSTYLE_SINGLE_QUOTED, /* '123' */
    YSTYLE_DOUBLE_QUOTED, /* "123" */
    YSTYLE_LITERAL,       /* | block */
    YSTYLE_FOLDED,        /* > block */
} ystyle_t;

typedef struct ynode ynode_t;

typedef struct ypair {
    ynode_t *key;
    ynode_t *value;
} ypair_t;

struct ynode {
    ynode_kind_t kind;
    int line; /* 1-based */
    int col;  /* 1-based */
    /* YNODE_SCALAR */
    ystyle_t style;
    const char *str; /* NUL-terminated */
    size_t len;
    /* YNODE_MAPPING: pairs[n]; YNODE_SEQUENCE: items[n] */
    ypair_t *pairs;
    ynode_t **items;
    size_t n;
};

typedef struct ytree ytree_t;

typedef struct ytree_error {
    int line; /* 1-based; 0 when the error has no position */
    int col;
    char msg[256];
} ytree_error_t;

/* Parse len bytes of YAML. Returns NULL and fills err on a syntax error, an
 * unsupported construct (anchor, alias, second document, too deep) or when out
 * of memory. */
ytree_t *ytree_parse(const char *data, size_t len, ytree_error_t *err);
void ytree_free(ytree_t *t);

/* The document's root node; NULL for an empty stream. */
const ynode_t *ytree_root(const ytree_t *t);

/* A plain scalar that YAML reads as null: empty, "~", "null", "Null", "NULL". */
bool ytree_is_null(const ynode_t *n);

/* First value whose key is the scalar `key` in mapping `map`; NULL if absent or
 * if map is not a mapping. */
const ynode_t *ytree_map_get(const ynode_t *map, const char *key);

/* "a mapping", "a sequence", "a string" (for messages). */
const char *ytree_kind_name(const ynode_t *n);

#endif
