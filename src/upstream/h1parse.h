/*
 * h1parse — incremental parser for HTTP/1.1 responses (the native upstream
 * client's framing, src/upstream/h1.c).
 *
 * Pull style, no callbacks: h1p_feed() looks at the unconsumed bytes the
 * caller holds and returns the next event. The caller keeps what was not
 * consumed (an incomplete line) and presents it again, followed by more
 * bytes, on the next call; so the parser needs no line buffer of its own and
 * a message can be split at any byte boundary. A body piece is returned
 * WITHOUT being consumed: the caller takes it with h1p_body_taken() (or not,
 * when its consumer pauses; the same bytes then come again as the same piece).
 *
 * Framing (RFC 9112 section 6.3): 1xx responses are skipped (101 is an
 * error: we never ask to upgrade); 204/304 have no body; chunked wins over
 * Content-Length (and then the connection is not reused); Content-Length
 * must be digits and agree when repeated; otherwise the body runs until the
 * connection closes (h1p_eof). Chunk extensions and trailers are skipped.
 * Caps: a line (status, header, chunk size, trailer) at most H1P_MAX_LINE
 * bytes, the final response's header lines at most head_cap bytes in all.
 * The final response's header lines are kept in `head` as "Name: value\r\n".
 */
#ifndef SKULD_UPSTREAM_H1PARSE_H
#define SKULD_UPSTREAM_H1PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define H1P_MAX_LINE 8192

typedef enum {
    H1P_MORE = 0, /* everything usable consumed: give the rest again with more bytes */
    H1P_HEAD,     /* the final status line and headers are in (p->status, p->head) */
    H1P_BODY,     /* a body piece at *piece (not consumed: see h1p_body_taken) */
    H1P_DONE,     /* the response is complete; bytes after it are not part of it */
    H1P_ERROR,    /* bad framing or a cap exceeded: p->err says which */
} h1p_ev_t;

typedef struct h1p {
    int state;
    int status;
    int minor; /* HTTP/1.<minor> */
    bool chunked, has_cl, close, keep_alive_hdr;
    uint64_t remaining; /* Content-Length left, or the current chunk's bytes left */
    size_t head_bytes, head_cap, trailer_bytes;
    buf_t *head; /* caller's; reset at each status line */
    const char *err;
} h1p_t;

void h1p_init(h1p_t *p, buf_t *head, size_t head_cap);
/* Next event from data[0..len). *used = bytes consumed. For H1P_BODY, the piece is
 * data[*used .. *used + *piece_len) and is not counted in *used. */
h1p_ev_t h1p_feed(h1p_t *p, const char *data, size_t len, size_t *used, size_t *piece_len);
/* The caller took n bytes of the last piece (n <= its length). */
void h1p_body_taken(h1p_t *p, size_t n);
/* The connection closed: H1P_DONE when that ends the body (close-delimited), else H1P_ERROR. */
h1p_ev_t h1p_eof(h1p_t *p);
/* After H1P_DONE: may the connection carry another request? */
bool h1p_reusable(const h1p_t *p);

#endif
