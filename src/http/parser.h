/*
 * http parser — pure functions that read an HTTP/1.1 request head and decode a
 * chunked body. No I/O, no libevent: the connection code in http/server.c
 * feeds them bytes, and tests feed them tables.
 *
 * http_parse_head() is called with everything received so far. It returns
 * HTTP_PARSE_AGAIN until the blank line ending the head is present, then
 * either HTTP_PARSE_OK with the head split into slices that point into the
 * caller's bytes, or HTTP_PARSE_ERROR with the status to answer (400, 431,
 * 501, 505). Smuggling defences: a request with both Content-Length and
 * Transfer-Encoding, conflicting Content-Lengths, an unknown transfer coding,
 * or obsolete line folding is rejected.
 */
#ifndef SKULD_HTTP_PARSER_H
#define SKULD_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"

#define HTTP_MAX_HEADERS 100

typedef enum { HTTP_PARSE_OK = 0, HTTP_PARSE_AGAIN = 1, HTTP_PARSE_ERROR = -1 } http_parse_status_t;

typedef struct http_slice {
    const char *p;
    size_t n;
} http_slice_t;

typedef struct http_header {
    http_slice_t name;
    http_slice_t value;
} http_header_t;

typedef struct http_head {
    http_slice_t method;
    http_slice_t target; /* path and query as sent */
    http_slice_t path;   /* target up to '?' */
    http_slice_t query;  /* after '?', may be empty */
    int minor_version;   /* 0 or 1 */
    http_header_t headers[HTTP_MAX_HEADERS];
    size_t n_headers;
    size_t head_len; /* bytes of the head, blank line included */
    bool chunked;
    bool has_length;
    uint64_t content_length;
    bool keep_alive;      /* from version and Connection header */
    bool expect_continue; /* Expect: 100-continue */
    int error_status;     /* when HTTP_PARSE_ERROR */
    const char *error;    /* static message when HTTP_PARSE_ERROR */
} http_head_t;

http_parse_status_t http_parse_head(const char *data, size_t len, size_t max_head, http_head_t *h);

/* Case-insensitive header lookup in a parsed head; NULL slice p when absent. */
http_slice_t http_head_get(const http_head_t *h, const char *name);

/* A path segment percent-decoded into out, NUL-terminated (clients encode
 * path parameters with encodeURIComponent: "org/model" arrives as
 * "org%2Fmodel"). The decoded length, or -1 for a bad escape, a decoded NUL,
 * or a result that does not fit cap - 1 bytes. */
long http_pct_decode(const char *p, size_t n, char *out, size_t cap);

typedef struct http_chunked {
    int state;
    uint64_t remaining; /* bytes left in the current chunk */
    size_t line_len;    /* bytes of the current size/trailer line seen */
    bool cr_seen;       /* trailer: the previous byte was CR */
} http_chunked_t;

/*
 * Decode a chunked body from in[0..len). Decoded bytes are appended to out
 * (whose cap enforces the body limit). *used receives the bytes of in that
 * were consumed. Returns HTTP_PARSE_OK once the last chunk and trailers are
 * read, HTTP_PARSE_AGAIN when more input is needed, HTTP_PARSE_ERROR on bad
 * framing (status 400) or when out is full (status 413) — see *status.
 */
http_parse_status_t http_chunked_decode(http_chunked_t *c, const char *in, size_t len, size_t *used,
                                        buf_t *out, int *status);

const char *http_status_reason(int status);

/* s is lit, ASCII case-insensitively (header names, tokens). Inline: a literal's length
 * is known at the call, and most calls fail on it without comparing a byte. */
static inline bool http_slice_eq_ci(http_slice_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && strncasecmp(s.p, lit, n) == 0;
}

/* s is exactly lit (case-sensitive: paths, methods). Inline: on the dispatch path. */
static inline bool http_slice_eq(http_slice_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

#endif
