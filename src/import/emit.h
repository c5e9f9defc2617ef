/*
 * emit — a small YAML output tree and its block-style writer, for configs
 * skuld writes itself (`skuld import`).
 *
 * What it owns: an imp_doc_t holds every node in one arena; imp_doc_free()
 * releases them at once. Nodes are built bottom-up (imp_map, imp_seq, the
 * scalar constructors) and linked with imp_map_add / imp_seq_add; keys and
 * strings are copied, so the caller's buffers may go away.
 *
 * Invariants of the text written by imp_emit():
 * - it re-parses (libyaml, PyYAML) to exactly the tree that was built: a
 *   string is written plain only when it is made of [A-Za-z0-9_./@+-], starts
 *   with a letter, '_' or '/', and is none of the words YAML 1.1 or 1.2
 *   resolve to a boolean or null (yes, no, on, off, y, n, true, false, null,
 *   any case); every other string is double-quoted with escapes for '"', '\',
 *   control characters, DEL, C1 controls, U+2028/U+2029 (which libyaml would
 *   otherwise fold as line breaks), U+FEFF and the non-characters
 *   U+FFFE/U+FFFF.
 * - numbers are written in a form both YAML 1.1 and 1.2 read as numbers
 *   (integers as digits; reals in fixed notation with a dot, never an
 *   exponent), durations as skuld writes them ("30s", "250ms").
 * - keys are the caller's identifiers and must be plain-safe (imp_map_add
 *   rejects others), so no user data ever becomes a key.
 * - block style, two spaces per level; an empty mapping or sequence is {} / [].
 * A string that is not valid UTF-8 cannot be represented (YAML escapes name
 * code points, not bytes): imp_emit() then fails.
 *
 * Threads: a document belongs to the thread that builds it.
 */
#ifndef SKULD_IMPORT_EMIT_H
#define SKULD_IMPORT_EMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct imp_doc imp_doc_t;
typedef struct imp_node imp_node_t;

imp_doc_t *imp_doc_create(void);
void imp_doc_free(imp_doc_t *d);

/* Constructors; each returns NULL only when out of memory (then every later
 * call on the document fails too, and imp_emit reports it). */
imp_node_t *imp_map(imp_doc_t *d);
imp_node_t *imp_seq(imp_doc_t *d);
imp_node_t *imp_str(imp_doc_t *d, const char *s, size_t len);
imp_node_t *imp_cstr(imp_doc_t *d, const char *s);
imp_node_t *imp_int(imp_doc_t *d, int64_t v);
imp_node_t *imp_real(imp_doc_t *d, double v); /* finite; fixed notation, 9 decimals at most */
imp_node_t *imp_bool(imp_doc_t *d, bool v);
imp_node_t *imp_dur(imp_doc_t *d, uint64_t ms); /* "30s" when whole seconds, else "250ms" */

/* Appends key: v (keys keep insertion order; v NULL is ignored). Returns v. */
imp_node_t *imp_map_add(imp_doc_t *d, imp_node_t *map, const char *key, imp_node_t *v);
/* Appends v to a sequence. Returns v. */
imp_node_t *imp_seq_add(imp_doc_t *d, imp_node_t *seq, imp_node_t *v);
/* The value under key in map (first one), or NULL. */
imp_node_t *imp_map_get(const imp_node_t *map, const char *key);
/* Items of a sequence / pairs of a mapping. */
size_t imp_node_count(const imp_node_t *n);

/* true when s may be written as a plain scalar and reads back as that string. */
bool imp_plain_ok(const char *s, size_t len);

/* Writes the document: `comment` lines first ("# " + each line, control
 * characters replaced), then root (a mapping). Returns 0, or -1 when out of
 * memory, when a string is not valid UTF-8, or when the document had an
 * allocation failure; `bad` (may be NULL) then gets a short reason. */
int imp_emit(imp_doc_t *d, const imp_node_t *root, const char *comment, buf_t *out,
             const char **bad);

#endif
