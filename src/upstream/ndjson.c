#include "upstream/ndjson.h"

#include <stdbool.h>
#include <string.h>

void ndjson_init(ndjson_parser_t *p, size_t max_line)
{
    buf_init(&p->line, max_line + 1);
}

void ndjson_free(ndjson_parser_t *p)
{
    buf_free(&p->line);
}

/* The cap applies to every line however its bytes arrived (in one piece or
 * several): more than max_line bytes, a final CR not counted, is an error. */
static bool ndjson__too_long(const ndjson_parser_t *p, const char *l, size_t n)
{
    if (n && l[n - 1] == '\r') n--;
    return n > p->line.cap - 1;
}

static int ndjson__line(const char *l, size_t n, sse_event_fn fn, void *ud)
{
    while (n && (l[n - 1] == '\r' || l[n - 1] == ' ' || l[n - 1] == '\t')) n--;
    while (n && (*l == ' ' || *l == '\t')) l++, n--;
    return n ? fn(ud, "", l, n) : 0;
}

int ndjson_feed(ndjson_parser_t *p, const char *bytes, size_t n, sse_event_fn fn, void *ud)
{
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(bytes + i, '\n', n - i);
        if (!nl) return buf_append(&p->line, bytes + i, n - i) == BUF_OK ? 0 : -1;
        size_t seg = (size_t)(nl - (bytes + i));
        int r;
        if (p->line.len) {
            if (buf_append(&p->line, bytes + i, seg) != BUF_OK) return -1;
            if (ndjson__too_long(p, buf_data(&p->line), p->line.len)) return -1;
            r = ndjson__line(buf_data(&p->line), p->line.len, fn, ud);
            buf_reset(&p->line);
        } else {
            if (ndjson__too_long(p, bytes + i, seg)) return -1;
            r = ndjson__line(bytes + i, seg, fn, ud);
        }
        i += seg + 1;
        if (r) return r;
    }
    return 0;
}

int ndjson_finish(ndjson_parser_t *p, sse_event_fn fn, void *ud)
{
    if (!p->line.len) return 0;
    if (ndjson__too_long(p, buf_data(&p->line), p->line.len)) return -1;
    int r = ndjson__line(buf_data(&p->line), p->line.len, fn, ud);
    buf_reset(&p->line);
    return r;
}
