#include "http/parser.h"

#include <string.h>
#include <strings.h>

static bool http__is_tchar(unsigned char c)
{
    if (c >= 'a' && c <= 'z') return true;
    if (c >= 'A' && c <= 'Z') return true;
    if (c >= '0' && c <= '9') return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static http_slice_t http__trim(const char *p, size_t n)
{
    while (n && (*p == ' ' || *p == '\t')) p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
    return (http_slice_t){p, n};
}

static http_parse_status_t http__fail(http_head_t *h, int status, const char *msg)
{
    h->error_status = status;
    h->error = msg;
    return HTTP_PARSE_ERROR;
}

/* Does a comma-separated header value contain token (case-insensitive)? */
static bool http__list_has(http_slice_t v, const char *token)
{
    size_t i = 0;
    while (i < v.n) {
        size_t j = i;
        while (j < v.n && v.p[j] != ',') j++;
        if (http_slice_eq_ci(http__trim(v.p + i, j - i), token)) return true;
        i = j + 1;
    }
    return false;
}

static int http__parse_u64(http_slice_t s, uint64_t *out)
{
    if (s.n == 0 || s.n > 19) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') return -1;
        v = v * 10 + (uint64_t)(s.p[i] - '0');
    }
    *out = v;
    return 0;
}

/* The first "\r\n" (or, with blank, "\r\n\r\n") in p[0..n), or NULL: memchr for the
 * '\r' (vectorised) and a compare, instead of memmem's general search per line. */
static const char *http__find_crlf(const char *p, size_t n, bool blank)
{
    const size_t need = blank ? 4 : 2;
    const char *e = p + n;
    while ((size_t)(e - p) >= need &&
           (p = memchr(p, '\r', (size_t)(e - p - (ptrdiff_t)need + 1)))) {
        if (p[1] == '\n' && (!blank || (p[2] == '\r' && p[3] == '\n'))) return p;
        p++;
    }
    return NULL;
}

http_parse_status_t http_parse_head(const char *data, size_t len, size_t max_head, http_head_t *h)
{
    memset(h, 0, offsetof(http_head_t, headers));
    h->n_headers = 0;
    h->head_len = 0;
    h->chunked = h->has_length = h->expect_continue = false;
    h->content_length = 0;
    h->error_status = 0;
    h->error = NULL;

    /* Tolerate blank lines before the request line (RFC 9112 2.2). */
    size_t skip = 0;
    while (skip + 1 < len && data[skip] == '\r' && data[skip + 1] == '\n') skip += 2;

    const char *end = http__find_crlf(data + skip, len - skip, true);
    if (!end) {
        if (len > max_head) return http__fail(h, 431, "request headers too large");
        return HTTP_PARSE_AGAIN;
    }
    size_t head_len = (size_t)(end - data) + 4;
    if (head_len > max_head) return http__fail(h, 431, "request headers too large");
    h->head_len = head_len;

    const char *p = data + skip;
    const char *line_end = http__find_crlf(p, (size_t)(end + 2 - p), false);
    /* request line: METHOD SP TARGET SP HTTP/1.x */
    const char *sp1 = memchr(p, ' ', (size_t)(line_end - p));
    if (!sp1 || sp1 == p) return http__fail(h, 400, "malformed request line");
    for (const char *q = p; q < sp1; q++)
        if (!http__is_tchar((unsigned char)*q)) return http__fail(h, 400, "malformed method");
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1));
    if (!sp2 || sp2 == sp1 + 1) return http__fail(h, 400, "malformed request line");
    size_t vlen = (size_t)(line_end - sp2 - 1);
    if (vlen != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return http__fail(h, vlen >= 5 && memcmp(sp2 + 1, "HTTP/", 5) == 0 ? 505 : 400,
                          "unsupported HTTP version");
    char minor = sp2[8];
    if (minor != '0' && minor != '1') return http__fail(h, 505, "unsupported HTTP version");
    h->minor_version = minor - '0';
    h->method = (http_slice_t){p, (size_t)(sp1 - p)};
    h->target = (http_slice_t){sp1 + 1, (size_t)(sp2 - sp1 - 1)};
    for (size_t i = 0; i < h->target.n; i++) {
        unsigned char c = (unsigned char)h->target.p[i];
        if (c <= 0x20 || c >= 0x7f) return http__fail(h, 400, "malformed request target");
    }
    const char *qm = memchr(h->target.p, '?', h->target.n);
    if (qm) {
        h->path = (http_slice_t){h->target.p, (size_t)(qm - h->target.p)};
        h->query = (http_slice_t){qm + 1, (size_t)(h->target.p + h->target.n - qm - 1)};
    } else {
        h->path = h->target;
        h->query = (http_slice_t){h->target.p + h->target.n, 0};
    }

    bool conn_close = false, conn_keep = false, has_te = false;
    p = line_end + 2;
    while (p < end + 2) {
        line_end = http__find_crlf(p, (size_t)(end + 2 - p), false);
        if (*p == ' ' || *p == '\t') return http__fail(h, 400, "obsolete header line folding");
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        if (!colon || colon == p) return http__fail(h, 400, "malformed header line");
        for (const char *q = p; q < colon; q++)
            if (!http__is_tchar((unsigned char)*q))
                return http__fail(h, 400, "malformed header name");
        for (const char *q = colon + 1; q < line_end; q++) {
            unsigned char c = (unsigned char)*q;
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return http__fail(h, 400, "invalid character in header value");
        }
        if (h->n_headers == HTTP_MAX_HEADERS) return http__fail(h, 431, "too many request headers");
        http_header_t *hd = &h->headers[h->n_headers++];
        hd->name = (http_slice_t){p, (size_t)(colon - p)};
        hd->value = http__trim(colon + 1, (size_t)(line_end - colon - 1));

        if (http_slice_eq_ci(hd->name, "content-length")) {
            uint64_t v;
            if (http__parse_u64(hd->value, &v) != 0)
                return http__fail(h, 400, "invalid Content-Length");
            if (h->has_length && v != h->content_length)
                return http__fail(h, 400, "conflicting Content-Length headers");
            h->has_length = true;
            h->content_length = v;
        } else if (http_slice_eq_ci(hd->name, "transfer-encoding")) {
            if (has_te || !http_slice_eq_ci(hd->value, "chunked"))
                return http__fail(h, 501, "unsupported Transfer-Encoding");
            has_te = true;
            h->chunked = true;
        } else if (http_slice_eq_ci(hd->name, "connection")) {
            if (http__list_has(hd->value, "close")) conn_close = true;
            if (http__list_has(hd->value, "keep-alive")) conn_keep = true;
        } else if (http_slice_eq_ci(hd->name, "expect")) {
            if (http_slice_eq_ci(hd->value, "100-continue")) h->expect_continue = true;
        }
        p = line_end + 2;
    }
    if (h->chunked && h->has_length)
        return http__fail(h, 400, "both Content-Length and Transfer-Encoding");
    h->keep_alive = h->minor_version == 1 ? !conn_close : (conn_keep && !conn_close);
    return HTTP_PARSE_OK;
}

http_slice_t http_head_get(const http_head_t *h, const char *name)
{
    for (size_t i = 0; i < h->n_headers; i++)
        if (http_slice_eq_ci(h->headers[i].name, name)) return h->headers[i].value;
    return (http_slice_t){NULL, 0};
}

enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER, CH_DONE };

#define HTTP_CHUNK_LINE_MAX 4096

static int http_hex(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

http_parse_status_t http_chunked_decode(http_chunked_t *c, const char *in, size_t len, size_t *used,
                                        buf_t *out, int *status)
{
    size_t i = 0;
    *status = 0;
    while (i < len && c->state != CH_DONE) {
        unsigned char ch = (unsigned char)in[i];
        switch (c->state) {
        case CH_SIZE: {
            int d = http_hex((char)ch);
            if (d >= 0) {
                if (c->remaining >> 56) goto bad; /* would overflow */
                c->remaining = c->remaining * 16 + (uint64_t)d;
                c->line_len++;
                i++;
            } else if (c->line_len == 0) {
                goto bad;
            } else if (ch == ';' || ch == ' ' || ch == '\t') {
                c->state = CH_EXT;
                i++;
            } else if (ch == '\r') {
                c->state = CH_SIZE_LF;
                i++;
            } else {
                goto bad;
            }
            break;
        }
        case CH_EXT:
            /* chunk-ext is visible text; a bare LF or other control byte here is
             * a known smuggling vector ("funky chunks"): reject it. */
            if (++c->line_len > HTTP_CHUNK_LINE_MAX) goto bad;
            if (ch == '\r')
                c->state = CH_SIZE_LF;
            else if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                goto bad;
            i++;
            break;
        case CH_SIZE_LF:
            if (ch != '\n') goto bad;
            i++;
            c->line_len = 0;
            c->state = c->remaining ? CH_DATA : CH_TRAILER;
            break;
        case CH_DATA: {
            size_t n = len - i;
            if (n > c->remaining) n = (size_t)c->remaining;
            if (buf_append(out, in + i, n) != BUF_OK) {
                *used = i;
                *status = 413;
                return HTTP_PARSE_ERROR;
            }
            i += n;
            c->remaining -= n;
            if (!c->remaining) c->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
            if (ch != '\r') goto bad;
            c->state = CH_DATA_LF;
            i++;
            break;
        case CH_DATA_LF:
            if (ch != '\n') goto bad;
            c->state = CH_SIZE;
            i++;
            break;
        case CH_TRAILER:
            /* Trailer lines are skipped; an empty line ("\r\n") ends the body.
             * line_len counts the bytes of the current line; cr_seen marks that
             * the last byte was CR. Every line must end in CRLF. */
            if (ch == '\n') {
                if (!c->cr_seen) goto bad;
                if (c->line_len == 1) c->state = CH_DONE; /* the line was just CR */
                c->line_len = 0;
                c->cr_seen = false;
                i++;
                break;
            }
            if (c->cr_seen) goto bad; /* CR not followed by LF */
            if (ch == '\r')
                c->cr_seen = true;
            else if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                goto bad;
            if (++c->line_len > HTTP_CHUNK_LINE_MAX) goto bad;
            i++;
            break;
        }
    }
    *used = i;
    return c->state == CH_DONE ? HTTP_PARSE_OK : HTTP_PARSE_AGAIN;
bad:
    *used = i;
    *status = 400;
    return HTTP_PARSE_ERROR;
}

const char *http_status_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 499:
        return "Client Closed Request";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

long http_pct_decode(const char *p, size_t n, char *out, size_t cap)
{
    if (cap == 0) return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)p[i];
        if (c == '%') {
            int hi = i + 2 < n ? http_hex(p[i + 1]) : -1;
            int lo = hi >= 0 ? http_hex(p[i + 2]) : -1;
            if (lo < 0) return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0 || o + 1 >= cap) return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (long)o;
}
