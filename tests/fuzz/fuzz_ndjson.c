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

static void run(const uint8_t *data, size_t size, bool split, buf_t *log)
{
    buf_init(log, 0);
    ndjson_parser_t p;
    ndjson_init(&p, MAX_LINE);
    fz_split_t r;
    fz_split_init(&r, data, size);
    size_t off = 0;
    int rc = 0;
    while (off < size && rc == 0) {
        size_t k = split ? fz_split_next(&r, size - off) : size - off;
        char *piece = fz_dup(data + off, k);
        rc = ndjson_feed(&p, piece, k, on_line, log);
        free(piece);
        off += k;
    }
    if (rc == 0) rc = ndjson_finish(&p, on_line, log);
    FZ_CHECK(rc == 0 || rc == -1 || rc == 7);
    buf_printf(log, "end %d\n", rc);
    ndjson_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    buf_t whole, split;
    run(data, size, false, &whole);
    run(data, size, true, &split);
    if (whole.len != split.len || memcmp(buf_data(&whole), buf_data(&split), whole.len) != 0) {
        fprintf(stderr, "whole:\n%s\nsplit:\n%s\n", buf_data(&whole), buf_data(&split));
        FZ_CHECK(!"whole and split feeding disagree");
    }
    buf_free(&whole);
    buf_free(&split);
    return 0;
}
