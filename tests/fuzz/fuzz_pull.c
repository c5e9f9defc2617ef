/*
 * fuzz_pull — the parsers of what a server answers to `skuld pull`
 * (src/local/pull.h): the lines of a response head (pull_header_line, as
 * libcurl hands them over) and the first line of an error body
 * (pull_error_line).
 *
 * Feeds: byte 0 bit 0 picks the mode (0: a head, cut into lines at each
 * '\n' and fed in order; 1: an error body), bits 1-7 the output buffer size
 * for an error line (1..128); the rest is the bytes.
 *
 * Checks, beyond "no crash" (ASan/UBSan):
 * - a head: the status is 0 or 100..999, the reason a NUL-terminated string
 *   without control bytes, range_start -1 or >= 0; 1 is returned exactly for
 *   the lines that are empty but for CR/LF;
 * - an error line: NUL-terminated within its buffer, no control byte, no
 *   CR/LF, no leading or trailing blank, made of bytes of the body's first
 *   non-empty line in order, and valid UTF-8 whenever that line is.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "local/pull.h"

static bool utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t k = c < 0x80             ? 1
                   : (c & 0xe0) == 0xc0 ? 2
                   : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4
                                        : 0;
        if (!k || i + k > n) return false;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xc0) != 0x80) return false;
        i += k;
    }
    return true;
}

static void check_head(const char *d, size_t n)
{
    pull_resp_t r;
    memset(&r, 0, sizeof r);
    r.range_start = -1;
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(d + i, '\n', n - i);
        size_t len = nl ? (size_t)(nl - (d + i)) + 1 : n - i;
        bool blank = true;
        for (size_t k = 0; k < len; k++) blank = blank && (d[i + k] == '\r' || d[i + k] == '\n');
        int rc = pull_header_line(&r, d + i, len);
        FZ_CHECK(rc == (blank ? 1 : 0));
        FZ_CHECK(r.status == 0 || (r.status >= 100 && r.status <= 999));
        FZ_CHECK(memchr(r.reason, '\0', sizeof r.reason) != NULL);
        for (const char *p = r.reason; *p; p++) FZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
        FZ_CHECK(r.range_start >= -1);
        i += len;
    }
}

static void check_line(const char *d, size_t n, size_t cap)
{
    char *out = malloc(cap);
    pull_error_line(d, n, out, cap);
    size_t len = strnlen(out, cap);
    FZ_CHECK(len < cap);
    /* the first non-empty line of the body, as pull_error_line finds it */
    size_t i = 0;
    while (i < n && (d[i] == '\r' || d[i] == '\n' || d[i] == ' ' || d[i] == '\t')) i++;
    size_t e = i;
    while (e < n && d[e] != '\r' && d[e] != '\n') e++;
    FZ_CHECK(len <= e - i);
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)out[k];
        FZ_CHECK(c >= 0x20 && c != 0x7f);
        unsigned char src = (unsigned char)d[i + k];
        FZ_CHECK(c == src || (c == '?' && (src < 0x20 || src == 0x7f)));
    }
    if (len) FZ_CHECK(out[0] != ' ' && out[0] != '\t' && out[len - 1] != ' ');
    if (utf8_valid((const unsigned char *)d + i, e - i))
        FZ_CHECK(utf8_valid((const unsigned char *)out, len));
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *d = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] & 1)
        check_line(d, n, 1 + (size_t)(data[0] >> 1));
    else
        check_head(d, n);
    return 0;
}
