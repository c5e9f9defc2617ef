/*
 * fuzz_ndjson — the newline-delimited JSON splitter (src/upstream/ndjson.h).
 *
 * Feeds: any bytes as an application/x-ndjson body, to one ndjson_parser_t
 * with a small line cap (MAX_LINE), fed whole and fed in pieces (split
 * points from fuzz_common.h), then ndjson_finish(). The callback asks to
 * stop (returns 7) on the line "stop".
 *
 * Checks, beyond "no crash" (ASan/UBSan, leaks):
 * - whole vs split: the same lines in the same order and the same ending
 *   (all consumed, -1 for a line over the cap, or the callback's 7);
 * - every delivered line is non-empty, at most MAX_LINE bytes, holds no LF
 *   and is trimmed (no space or tab at either end, no CR at the end); the
 *   event name is "".
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "fuzz_common.h"
#include "upstream/ndjson.h"

#define MAX_LINE 256

static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

static int on_line(void *ud, const char *event, const char *data, size_t len)
{
    buf_t *log = ud;
    FZ_CHECK(event && event[0] == '\0');
    FZ_CHECK(len > 0 && len <= MAX_LINE);
    FZ_CHECK(memchr(data, '\n', len) == NULL);
    FZ_CHECK(!blank(data[0]) && !blank(data[len - 1]) && data[len - 1] != '\r');
    buf_printf(log, "line %zu:", len);
    buf_append(log, data, len);
    buf_appends(log, "\n");
    return len == 4 && memcmp(data, "stop", 4) == 0 ? 7 : 0;
}

typedef struct ctx {
    ndjson_parser_t p;
    buf_t log;
} ctx_t;

static int feed(void *ud, const char *piece, size_t n)
{
    ctx_t *c = ud;
    return ndjson_feed(&c->p, piece, n, on_line, &c->log);
}

static void run(const uint8_t *data, size_t size, bool split, buf_t *log)
{
    ctx_t c;
    buf_init(&c.log, 0);
    ndjson_init(&c.p, MAX_LINE);
    int rc = fz_feed(data, size, split, feed, &c);
    if (rc == 0) rc = ndjson_finish(&c.p, on_line, &c.log);
    FZ_CHECK(rc == 0 || rc == -1 || rc == 7);
    buf_printf(&c.log, "end %d\n", rc);
    ndjson_free(&c.p);
    *log = c.log;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_whole_vs_split(data, size, run);
    return 0;
}
