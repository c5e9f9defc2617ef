/*
 * ndjson — incremental splitter for newline-delimited JSON streams
 * (application/x-ndjson, Ollama's streaming format), the sibling of sse.h.
 *
 * Bytes are fed as they arrive, split anywhere; each complete non-blank line
 * (LF or CRLF) is delivered once through the same callback type as SSE
 * events, with an empty event name. A line is capped (max_line bytes, a final
 * CR not counted) so a hostile upstream cannot grow memory without bound; the
 * cap is the same whether the line arrives in one read or several. A last line without a newline is
 * delivered by ndjson_finish().
 */
#ifndef SKULD_NDJSON_H
#define SKULD_NDJSON_H

#include <stddef.h>

#include "core/buf.h"
#include "upstream/sse.h"

typedef struct ndjson_parser {
    buf_t line; /* partial line carried between feeds */
} ndjson_parser_t;

void ndjson_init(ndjson_parser_t *p, size_t max_line);
void ndjson_free(ndjson_parser_t *p);
/* 0 when all bytes were consumed, -1 when a line exceeded max_line, or the callback's value. */
int ndjson_feed(ndjson_parser_t *p, const char *bytes, size_t n, sse_event_fn fn, void *ud);
/* Deliver a pending unterminated line, if any. */
int ndjson_finish(ndjson_parser_t *p, sse_event_fn fn, void *ud);

#endif
