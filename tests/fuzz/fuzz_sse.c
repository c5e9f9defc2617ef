/*
 * fuzz_sse — the server-sent events parser (src/upstream/sse.h).
 *
 * Feeds: any bytes as a text/event-stream body, to one sse_parser_t with a
 * small event cap (MAX_EVENT), fed whole and fed in pieces (split points
 * from fuzz_common.h). The callback asks to stop (returns 7) on an event
 * whose data is "stop", to exercise the early-return path.
 *
 * Checks, beyond "no crash" (ASan/UBSan, leaks):
 * - whole vs split: the same events (name, data) in the same order and the
 *   same ending (all consumed, -1 for a cap exceeded, or the callback's 7):
 *   how the bytes were split on the network must not change what the client
 *   sees;
 * - every event's data is at most MAX_EVENT bytes and its name is a
 *   NUL-terminated string shorter than the parser's event field.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "fuzz_common.h"
#include "upstream/sse.h"

#define MAX_EVENT 256

static int on_event(void *ud, const char *event, const char *data, size_t len)
{
    buf_t *log = ud;
    size_t el = strlen(event);
    FZ_CHECK(el < sizeof((sse_parser_t *)0)->event);
    FZ_CHECK(len <= MAX_EVENT);
    buf_printf(log, "event %zu:", el);
    buf_append(log, event, el);
    buf_printf(log, " data %zu:", len);
    buf_append(log, data, len);
    buf_appends(log, "\n");
    return len == 4 && memcmp(data, "stop", 4) == 0 ? 7 : 0;
}

typedef struct ctx {
    sse_parser_t p;
    buf_t log;
} ctx_t;

static int feed(void *ud, const char *piece, size_t n)
{
    ctx_t *c = ud;
    return sse_feed(&c->p, piece, n, on_event, &c->log);
}

static void run(const uint8_t *data, size_t size, bool split, buf_t *log)
{
    ctx_t c;
    buf_init(&c.log, 0);
    sse_init(&c.p, MAX_EVENT);
    int rc = fz_feed(data, size, split, feed, &c);
    FZ_CHECK(rc == 0 || rc == -1 || rc == 7);
    buf_printf(&c.log, "end %d\n", rc);
    sse_free(&c.p);
    *log = c.log;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_whole_vs_split(data, size, run);
    return 0;
}
