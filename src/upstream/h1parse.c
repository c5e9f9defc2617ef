#include "upstream/h1parse.h"

#include <string.h>
#include <strings.h>

enum {
    S_STATUS = 0,
    S_HEADER,
    S_BODY_CL,
    S_CHUNK_SIZE,
    S_CHUNK_DATA,
    S_CHUNK_END, /* the CRLF after a chunk's data */
    S_TRAILER,
    S_BODY_CLOSE,
    S_DONE,
    S_ERROR,
};

void h1p_init(h1p_t *p, buf_t *head, size_t head_cap)
{
    memset(p, 0, sizeof *p);
    p->head = head;
    p->head_cap = head_cap;
    if (head) buf_reset(head);
}

static h1p_ev_t h1p_fail(h1p_t *p, const char *why)
{
    p->state = S_ERROR;
    p->err = why;
    return H1P_ERROR;
}

static bool h1p_is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Does the comma-separated list v[0..n) contain token tok (case-insensitive)? */
static bool h1p_has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        size_t s = i;
        while (i < n && v[i] != ',') i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
        if (e - s == tl && strncasecmp(v + s, tok, tl) == 0) return true;
    }
    return false;
}

static h1p_ev_t h1p_status_line(h1p_t *p, const char *l, size_t n)
{
    /* HTTP/1.x SP 3DIGIT [SP reason] */
    if (n < 12 || memcmp(l, "HTTP/1.", 7) != 0 || (l[7] != '0' && l[7] != '1') || l[8] != ' ')
        return h1p_fail(p, "bad status line");
    if (l[9] < '1' || l[9] > '5' || l[10] < '0' || l[10] > '9' || l[11] < '0' || l[11] > '9' ||
        (n > 12 && l[12] != ' '))
        return h1p_fail(p, "bad status code");
    int minor = l[7] - '0';
    int status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
    h1p_t keep = *p;
    memset(p, 0, sizeof *p);
    p->head = keep.head;
    p->head_cap = keep.head_cap;
    if (p->head) buf_reset(p->head);
    p->status = status;
    p->minor = minor;
    p->state = S_HEADER;
    return H1P_MORE;
}

static h1p_ev_t h1p_header_line(h1p_t *p, const char *l, size_t n)
{
    if (l[0] == ' ' || l[0] == '\t') return h1p_fail(p, "obsolete header line folding");
    const char *colon = memchr(l, ':', n);
    if (!colon || colon == l) return h1p_fail(p, "bad header line");
    size_t nl = (size_t)(colon - l);
    for (size_t i = 0; i < nl; i++)
        if (!h1p_is_tchar((unsigned char)l[i])) return h1p_fail(p, "bad header name");
    const char *v = colon + 1, *end = l + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
    size_t vl = (size_t)(end - v);
    for (size_t i = 0; i < vl; i++)
        if ((unsigned char)v[i] < 0x20 && v[i] != '\t') return h1p_fail(p, "bad header value");

    p->head_bytes += n + 2;
    if (p->head_bytes > p->head_cap) return h1p_fail(p, "response headers too large");
    if (p->status >= 200 && p->head) {
        /* "name: value\r\n", normalised, in one reservation */
        char *w = buf_reserve(p->head, nl + vl + 4, NULL);
        if (!w) return h1p_fail(p, "response headers too large");
        memcpy(w, l, nl);
        memcpy(w + nl, ": ", 2);
        memcpy(w + nl + 2, v, vl);
        memcpy(w + nl + 2 + vl, "\r\n", 2);
        buf_commit(p->head, nl + vl + 4);
    }
    if (nl == 14 && strncasecmp(l, "content-length", 14) == 0) {
        if (!vl || vl > 18) return h1p_fail(p, "bad Content-Length");
        uint64_t cl = 0;
        for (size_t i = 0; i < vl; i++) {
            if (v[i] < '0' || v[i] > '9') return h1p_fail(p, "bad Content-Length");
            cl = cl * 10 + (uint64_t)(v[i] - '0');
        }
        if (p->has_cl && cl != p->remaining) return h1p_fail(p, "conflicting Content-Length");
        p->has_cl = true;
        p->remaining = cl;
    } else if (nl == 17 && strncasecmp(l, "transfer-encoding", 17) == 0) {
        /* The final coding must be chunked: we asked for no other. */
        const char *last = v + vl;
        while (last > v && last[-1] != ',') last--;
        while (last < v + vl && (*last == ' ' || *last == '\t')) last++;
        size_t ll = (size_t)(v + vl - last);
        if (ll != 7 || strncasecmp(last, "chunked", 7) != 0)
            return h1p_fail(p, "unsupported Transfer-Encoding");
        if (p->chunked) return h1p_fail(p, "chunked applied twice");
        p->chunked = true;
    } else if (nl == 10 && strncasecmp(l, "connection", 10) == 0) {
        if (h1p_has_token(v, vl, "close")) p->close = true;
        if (h1p_has_token(v, vl, "keep-alive")) p->keep_alive_hdr = true;
    }
    return H1P_MORE;
}

/* The blank line after the headers. */
static h1p_ev_t h1p_end_of_head(h1p_t *p)
{
    if (p->status < 200) {
        if (p->status == 101) return h1p_fail(p, "unexpected 101 Switching Protocols");
        p->state = S_STATUS; /* an interim response: the real one follows */
        p->head_bytes = 0;
        if (p->head) buf_reset(p->head);
        return H1P_MORE;
    }
    if (p->status == 204 || p->status == 304) {
        p->state = S_DONE;
    } else if (p->chunked) {
        if (p->has_cl) p->close = true; /* a message smuggling both: do not reuse */
        p->state = S_CHUNK_SIZE;
    } else if (p->has_cl) {
        p->state = p->remaining ? S_BODY_CL : S_DONE;
    } else {
        p->state = S_BODY_CLOSE;
        p->close = true;
    }
    return H1P_HEAD;
}

static h1p_ev_t h1p_chunk_size(h1p_t *p, const char *l, size_t n)
{
    uint64_t sz = 0;
    size_t i = 0;
    for (; i < n; i++) {
        char ch = l[i];
        int d = (ch >= '0' && ch <= '9')   ? ch - '0'
                : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10
                : (ch >= 'A' && ch <= 'F') ? ch - 'A' + 10
                                           : -1;
        if (d < 0) break;
        if (i >= 15) return h1p_fail(p, "chunk size too large");
        sz = sz * 16 + (uint64_t)d;
    }
    if (i == 0) return h1p_fail(p, "bad chunk size");
    while (i < n && (l[i] == ' ' || l[i] == '\t')) i++;
    if (i < n && l[i] != ';') return h1p_fail(p, "bad chunk size");
    /* ";name=value" extensions: ignored */
    if (sz == 0) {
        p->state = S_TRAILER;
    } else {
        p->remaining = sz;
        p->state = S_CHUNK_DATA;
    }
    return H1P_MORE;
}

h1p_ev_t h1p_feed(h1p_t *p, const char *data, size_t len, size_t *used, size_t *piece_len)
{
    size_t u = 0;
    *piece_len = 0;
    for (;;) {
        switch (p->state) {
        case S_DONE:
            *used = u;
            return H1P_DONE;
        case S_ERROR:
            *used = u;
            return H1P_ERROR;
        case S_BODY_CL:
        case S_CHUNK_DATA:
        case S_BODY_CLOSE: {
            size_t avail = len - u;
            *used = u;
            if (!avail) return H1P_MORE;
            if (p->state != S_BODY_CLOSE && avail > p->remaining) avail = (size_t)p->remaining;
            *piece_len = avail;
            return H1P_BODY;
        }
        default:
            break;
        }
        /* Line states. */
        const char *l = data + u;
        size_t avail = len - u;
        const char *nlp = memchr(l, '\n', avail < H1P_MAX_LINE + 2 ? avail : H1P_MAX_LINE + 2);
        if (!nlp) {
            *used = u;
            if (avail > H1P_MAX_LINE + 1) return h1p_fail(p, "line too long");
            return H1P_MORE;
        }
        size_t n = (size_t)(nlp - l);
        u += n + 1;
        if (n && l[n - 1] == '\r') n--;
        if (n > H1P_MAX_LINE) {
            *used = u;
            return h1p_fail(p, "line too long");
        }
        h1p_ev_t ev = H1P_MORE;
        switch (p->state) {
        case S_STATUS:
            ev = h1p_status_line(p, l, n);
            break;
        case S_HEADER:
            ev = n ? h1p_header_line(p, l, n) : h1p_end_of_head(p);
            break;
        case S_CHUNK_SIZE:
            ev = h1p_chunk_size(p, l, n);
            break;
        case S_CHUNK_END:
            if (n)
                ev = h1p_fail(p, "missing CRLF after chunk data");
            else
                p->state = S_CHUNK_SIZE;
            break;
        case S_TRAILER:
            if (!n) {
                p->state = S_DONE;
            } else {
                p->trailer_bytes += n + 2;
                if (p->trailer_bytes > p->head_cap) ev = h1p_fail(p, "trailers too large");
            }
            break;
        }
        if (ev != H1P_MORE) {
            *used = u;
            return ev;
        }
    }
}

void h1p_body_taken(h1p_t *p, size_t n)
{
    if (p->state == S_BODY_CLOSE || !n) return;
    p->remaining -= n;
    if (p->remaining) return;
    p->state = p->state == S_BODY_CL ? S_DONE : S_CHUNK_END;
}

h1p_ev_t h1p_eof(h1p_t *p)
{
    if (p->state == S_BODY_CLOSE) {
        p->state = S_DONE;
        return H1P_DONE;
    }
    if (p->state == S_DONE) return H1P_DONE;
    return h1p_fail(p, p->state == S_STATUS && !p->status ? "connection closed before a response"
                                                          : "connection closed mid-response");
}

bool h1p_reusable(const h1p_t *p)
{
    if (p->state != S_DONE || p->close) return false;
    return p->minor >= 1 || p->keep_alive_hdr;
}
