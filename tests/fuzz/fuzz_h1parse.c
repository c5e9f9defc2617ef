/*
 * fuzz_h1parse — the upstream HTTP/1.1 response parser (src/upstream/h1parse.h).
 *
 * Feeds: any bytes as what an upstream sends on one connection, driven the
 * way upstream/h1.c drives the parser (and tests/unit/test_h1.c): bytes
 * accumulate, whatever h1p_feed() did not consume is presented again with
 * the next piece; body pieces are sometimes taken only in part
 * (h1p_body_taken with less than the piece, as when the consumer pauses), so
 * the same bytes must come again; at the end of the input, h1p_eof().
 *
 * Checks, beyond "no crash" (ASan/UBSan):
 * - whole vs split: the input fed at once and in pieces (split points from
 *   fuzz_common.h) give the same status, head lines, body bytes (chunked
 *   decoding included), ending (done / error and its message / reusable) and
 *   the same number of bytes after the response;
 * - no read past the buffer: every h1p_feed() gets an exact-size heap copy;
 * - consumption and pieces stay inside what was given, a body piece is
 *   never empty, the kept head never exceeds head_cap, the status is
 *   100..999 once the head is in.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "fuzz_common.h"
#include "upstream/h1parse.h"

#define HEAD_CAP 1024

typedef struct result {
    buf_t log; /* heads, errors, ending */
    buf_t body;
} result_t;

static void run(const uint8_t *data, size_t size, bool split, result_t *r)
{
    buf_init(&r->log, 0);
    buf_init(&r->body, 0);
    buf_t head;
    buf_init(&head, 0);
    h1p_t p;
    h1p_init(&p, &head, HEAD_CAP);
    fz_split_t cut, take;
    fz_split_init(&cut, data, size);
    take = cut;
    char *pend = malloc(size ? size : 1);
    size_t plen = 0, off = 0;
    bool over = false;
    while (!over && off < size) {
        size_t k = split ? fz_split_next(&cut, size - off) : size - off;
        memcpy(pend + plen, data + off, k);
        plen += k;
        off += k;
        char *exact = fz_dup(pend, plen);
        size_t pos = 0;
        for (;;) {
            size_t used = 0, pl = 0;
            h1p_ev_t ev = h1p_feed(&p, exact + pos, plen - pos, &used, &pl);
            FZ_CHECK(used <= plen - pos);
            pos += used;
            if (ev == H1P_MORE) break;
            if (ev == H1P_HEAD) {
                FZ_CHECK(p.status >= 100 && p.status <= 999);
                FZ_CHECK(head.len <= 2 * HEAD_CAP); /* "n:v" is kept as "n: v\r\n" */
                buf_printf(&r->log, "head %d 1.%d %zu:", p.status, p.minor, head.len);
                buf_append(&r->log, buf_data(&head), head.len);
                buf_appends(&r->log, "\n");
            } else if (ev == H1P_BODY) {
                FZ_CHECK(pl > 0 && pl <= plen - pos);
                /* take all of it, or only a part: the rest must come again */
                size_t n = fz_split_next(&take, pl);
                buf_append(&r->body, exact + pos, n);
                h1p_body_taken(&p, n);
                pos += n;
            } else if (ev == H1P_DONE) {
                buf_printf(&r->log, "done reusable=%d extra=%zu\n", h1p_reusable(&p),
                           plen - pos + (size - off));
                over = true;
                break;
            } else {
                FZ_CHECK(ev == H1P_ERROR && p.err != NULL);
                buf_printf(&r->log, "error %s\n", p.err);
                over = true;
                break;
            }
        }
        free(exact);
        memmove(pend, pend + pos, plen - pos);
        plen -= pos;
    }
    if (!over) {
        h1p_ev_t ev = h1p_eof(&p);
        FZ_CHECK(ev == H1P_DONE || ev == H1P_ERROR);
        if (ev == H1P_DONE)
            buf_printf(&r->log, "eof done reusable=%d\n", h1p_reusable(&p));
        else
            buf_printf(&r->log, "eof error %s\n", p.err ? p.err : "?");
    }
    free(pend);
    buf_free(&head);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    result_t whole, split;
    run(data, size, false, &whole);
    run(data, size, true, &split);
    fz_expect_same(&whole.log, &split.log);
    fz_expect_same(&whole.body, &split.body);
    buf_free(&whole.log);
    buf_free(&whole.body);
    buf_free(&split.log);
    buf_free(&split.body);
    return 0;
}
