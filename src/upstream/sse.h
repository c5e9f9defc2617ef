/*
 * sse — incremental parser for server-sent events (text/event-stream).
 *
 * Bytes are fed as they arrive, split anywhere; each complete event (ended by
 * a blank line) is delivered once with its "event:" name (may be empty) and
 * its data lines joined by '\n'. Lines may end in LF or CRLF. Comments (":")
 * and unknown fields are skipped. One event's data is capped (max_event) so a
 * hostile upstream cannot grow memory without bound, and so is one line
 * (max_event + 64 bytes, any field): the same cap whether the line arrives in
 * one read or several, so the network's splits never change the outcome.
 */
#ifndef SKULD_SSE_H
#define SKULD_SSE_H

#include <stddef.h>

#include "core/buf.h"

typedef struct sse_parser {
    buf_t line; /* partial line carried between feeds */
    buf_t data; /* data of the event being assembled */
    char event[64];
    int has_data;
} sse_parser_t;

/* Return non-zero from the callback to stop; sse_feed then returns that value. */
typedef int (*sse_event_fn)(void *ud, const char *event, const char *data, size_t len);

void sse_init(sse_parser_t *p, size_t max_event);
void sse_free(sse_parser_t *p);
/* 0 when all bytes were consumed, -1 when an event exceeded max_event, or the callback's value. */
int sse_feed(sse_parser_t *p, const char *bytes, size_t n, sse_event_fn fn, void *ud);

#endif
