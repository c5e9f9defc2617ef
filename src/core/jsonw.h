/*
 * jsonw — append JSON text to a buf_t without building a tree.
 *
 * For hot paths (access log, SSE framing, small responses) where jansson's
 * tree would cost allocations. Strings are escaped per RFC 8259; invalid
 * UTF-8 bytes are replaced by U+FFFD so output is always valid JSON.
 */
#ifndef SKULD_JSONW_H
#define SKULD_JSONW_H

#include <stddef.h>

#include "core/buf.h"

/* Appends "..." with escaping. */
void jsonw_str(buf_t *b, const char *s, size_t n);
static inline void jsonw_cstr(buf_t *b, const char *s)
{
    jsonw_str(b, s ? s : "", s ? __builtin_strlen(s) : 0);
}

#endif
