#include "upstream/sse.h"

#include <string.h>

void sse_init(sse_parser_t *p, size_t max_event)
{
    /* A line carries "data: " and maybe CR besides the data the cap is about. */
    buf_init(&p->line, max_event + 64);
    buf_init(&p->data, max_event);
    p->event[0] = '\0';
    p->has_data = 0;
}

void sse_free(sse_parser_t *p)
{
    buf_free(&p->line);
    buf_free(&p->data);
}

static int sse__line(sse_parser_t *p, const char *l, size_t n, sse_event_fn fn, void *ud)
{
    if (n && l[n - 1] == '\r') n--;
    if (n == 0) { /* blank line: dispatch */
        int r = 0;
        if (p->has_data) r = fn(ud, p->event, buf_data(&p->data), p->data.len);
        buf_reset(&p->data);
        p->event[0] = '\0';
        p->has_data = 0;
        return r;
    }
    if (l[0] == ':') return 0;
    const char *colon = memchr(l, ':', n);
    size_t fl = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    size_t vl = colon ? n - fl - 1 : 0;
    if (vl && *v == ' ') v++, vl--;
    if (fl == 4 && memcmp(l, "data", 4) == 0) {
        if (p->has_data && buf_append(&p->data, "\n", 1) != BUF_OK) return -1;
        if (buf_append(&p->data, v, vl) != BUF_OK) return -1;
        p->has_data = 1;
    } else if (fl == 5 && memcmp(l, "event", 5) == 0) {
        if (vl >= sizeof p->event) vl = sizeof p->event - 1;
        memcpy(p->event, v, vl);
        p->event[vl] = '\0';
    }
    return 0;
}

int sse_feed(sse_parser_t *p, const char *bytes, size_t n, sse_event_fn fn, void *ud)
{
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(bytes + i, '\n', n - i);
        if (!nl) {
            if (buf_append(&p->line, bytes + i, n - i) != BUF_OK) return -1;
            return 0;
        }
        size_t seg = (size_t)(nl - (bytes + i));
        int r;
        if (p->line.len) {
            if (buf_append(&p->line, bytes + i, seg) != BUF_OK) return -1;
            r = sse__line(p, buf_data(&p->line), p->line.len, fn, ud);
            buf_reset(&p->line);
        } else {
            /* the same line cap whether or not the line arrived in one piece */
            if (seg > p->line.cap) return -1;
            r = sse__line(p, bytes + i, seg, fn, ud);
        }
        i += seg + 1;
        if (r) return r;
    }
    return 0;
}
