#include "core/jsonw.h"

#include <stdint.h>

/* Length of a valid UTF-8 sequence starting at s (n bytes available), or 0. */
static size_t jsonw__utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) return 0;
    if (cp >= 0xd800 && cp <= 0xdfff) return 0;
    return len;
}

void jsonw_str(buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    buf_append(b, "\"", 1);
    size_t run = 0; /* bytes that need no escaping, flushed in one append */
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            run++;
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t l = jsonw__utf8_len(p + i, n - i);
            if (l) {
                run += l;
                i += l;
                continue;
            }
        }
        if (run) buf_append(b, p + i - run, run), run = 0;
        char esc[8];
        switch (c) {
        case '"':
            buf_append(b, "\\\"", 2);
            break;
        case '\\':
            buf_append(b, "\\\\", 2);
            break;
        case '\n':
            buf_append(b, "\\n", 2);
            break;
        case '\r':
            buf_append(b, "\\r", 2);
            break;
        case '\t':
            buf_append(b, "\\t", 2);
            break;
        default:
            if (c < 0x20) {
                esc[0] = '\\', esc[1] = 'u', esc[2] = '0', esc[3] = '0';
                esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
                buf_append(b, esc, 6);
            } else {
                buf_append(b, "\\ufffd", 6); /* invalid UTF-8 byte */
            }
        }
        i++;
    }
    if (run) buf_append(b, p + n - run, run);
    buf_append(b, "\"", 1);
}
