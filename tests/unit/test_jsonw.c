/*
 * test_jsonw — unit tests for the streaming JSON string writer (src/core/jsonw).
 *
 * Exact-output tables for escaping and for UTF-8 handling (valid sequences
 * kept byte for byte, each byte of an invalid sequence replaced by \ufffd),
 * then a randomized property test: for a few thousand byte strings (fixed
 * seed) the output must parse with jansson and decode to what an independent
 * reference (Unicode Table 3-7 well-formedness) predicts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/jsonw.h"

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

static void expect_jsonw(const char *in, size_t n, const char *want)
{
    buf_t b;
    buf_init(&b, 0);
    jsonw_str(&b, in, n);
    if (b.len != strlen(want) || memcmp(buf_data(&b), want, b.len) != 0)
        fail_msg("jsonw_str: got %s, want %s", buf_data(&b), want);
    buf_free(&b);
}

#define EXPECT(lit, want) expect_jsonw(lit, sizeof(lit) - 1, want)

/* Length of the well-formed UTF-8 sequence at s (Unicode Table 3-7), or 0. */
static size_t ref_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t len;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c == 0xe0)
        len = 3, lo = 0xa0;
    else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef)
        len = 3;
    else if (c == 0xed)
        len = 3, hi = 0x9f;
    else if (c == 0xf0)
        len = 4, lo = 0x90;
    else if (c >= 0xf1 && c <= 0xf3)
        len = 4;
    else if (c == 0xf4)
        len = 4, hi = 0x8f;
    else
        return 0;
    if (n < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return len;
}

/* What the JSON string should decode to: invalid bytes become U+FFFD. */
static void ref_decode(const unsigned char *s, size_t n, buf_t *out)
{
    for (size_t i = 0; i < n;) {
        size_t l = ref_utf8_len(s + i, n - i);
        if (l) {
            buf_append(out, s + i, l);
            i += l;
        } else {
            buf_append(out, "\xef\xbf\xbd", 3);
            i++;
        }
    }
}

/* Whole check: output is valid JSON, contains no raw control characters,
 * is valid UTF-8 itself, and decodes to the reference. */
static void check_roundtrip(const unsigned char *s, size_t n)
{
    buf_t b, want;
    buf_init(&b, 0);
    buf_init(&want, 0);
    jsonw_str(&b, (const char *)s, n);
    ref_decode(s, n, &want);

    const unsigned char *o = (const unsigned char *)buf_data(&b);
    assert_true(b.len >= 2);
    assert_int_equal(o[0], '"');
    assert_int_equal(o[b.len - 1], '"');
    for (size_t i = 0; i < b.len;) {
        assert_true(o[i] >= 0x20);
        size_t l = ref_utf8_len(o + i, b.len - i);
        assert_true(l > 0);
        i += l;
    }

    json_error_t err;
    json_t *j = json_loadb(buf_data(&b), b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!j) fail_msg("jansson rejected %s: %s", buf_data(&b), err.text);
    assert_true(json_is_string(j));
    assert_int_equal(json_string_length(j), want.len);
    assert_memory_equal(json_string_value(j), buf_data(&want), want.len);
    /* The strict loader (no NUL allowed) accepts it whenever there is no NUL. */
    if (!memchr(s, 0, n)) {
        json_t *k = json_loads(buf_data(&b), JSON_DECODE_ANY, &err);
        if (!k) fail_msg("json_loads rejected %s: %s", buf_data(&b), err.text);
        json_decref(k);
    }
    json_decref(j);
    buf_free(&b);
    buf_free(&want);
}

/* ------------------------------------------------------------------------ */
/* exact outputs                                                             */

static void test_plain(void **state)
{
    (void)state;
    EXPECT("", "\"\"");
    EXPECT("hello world", "\"hello world\"");
    EXPECT("/path?x=1&y=<2>", "\"/path?x=1&y=<2>\"");
    EXPECT("\x7f", "\"\x7f\""); /* DEL needs no escape in JSON */
}

static void test_escapes(void **state)
{
    (void)state;
    EXPECT("\"", "\"\\\"\"");
    EXPECT("\\", "\"\\\\\"");
    EXPECT("a\"b\\c", "\"a\\\"b\\\\c\"");
    EXPECT("\"\"\\\\", "\"\\\"\\\"\\\\\\\\\"");
    EXPECT("\n\r\t", "\"\\n\\r\\t\"");
    EXPECT("line1\nline2", "\"line1\\nline2\"");
    EXPECT("\x01", "\"\\u0001\"");
    EXPECT("\x08\x0c", "\"\\u0008\\u000c\"");
    EXPECT("\x1f", "\"\\u001f\"");
    EXPECT("\x1b[0m", "\"\\u001b[0m\"");
    EXPECT("a\0b", "\"a\\u0000b\"");
    EXPECT("/", "\"/\"");
}

static void test_all_control_chars(void **state)
{
    (void)state;
    for (int c = 0; c < 0x20; c++) {
        char in = (char)c, want[16];
        if (c == '\n')
            strcpy(want, "\"\\n\"");
        else if (c == '\r')
            strcpy(want, "\"\\r\"");
        else if (c == '\t')
            strcpy(want, "\"\\t\"");
        else
            snprintf(want, sizeof want, "\"\\u%04x\"", c);
        expect_jsonw(&in, 1, want);
    }
}

static void test_valid_utf8_kept(void **state)
{
    (void)state;
    EXPECT("\xc2\x80", "\"\xc2\x80\"");                 /* U+0080 */
    EXPECT("caf\xc3\xa9", "\"caf\xc3\xa9\"");           /* é */
    EXPECT("\xdf\xbf", "\"\xdf\xbf\"");                 /* U+07FF */
    EXPECT("\xe0\xa0\x80", "\"\xe0\xa0\x80\"");         /* U+0800 */
    EXPECT("\xe2\x82\xac", "\"\xe2\x82\xac\"");         /* € */
    EXPECT("\xed\x9f\xbf", "\"\xed\x9f\xbf\"");         /* U+D7FF */
    EXPECT("\xee\x80\x80", "\"\xee\x80\x80\"");         /* U+E000 */
    EXPECT("\xef\xbf\xbd", "\"\xef\xbf\xbd\"");         /* U+FFFD itself */
    EXPECT("\xef\xbf\xbf", "\"\xef\xbf\xbf\"");         /* U+FFFF */
    EXPECT("\xf0\x90\x80\x80", "\"\xf0\x90\x80\x80\""); /* U+10000 */
    EXPECT("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\""); /* 😀 */
    EXPECT("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF */
    EXPECT("\xe6\x97\xa5\xe6\x9c\xac\"\n", "\"\xe6\x97\xa5\xe6\x9c\xac\\\"\\n\"");
}

#define FFFD "\\ufffd"

static void test_invalid_utf8_replaced(void **state)
{
    (void)state;
    /* lone continuation bytes */
    EXPECT("\x80", "\"" FFFD "\"");
    EXPECT("a\xbf"
           "b",
           "\"a" FFFD "b\"");
    EXPECT("\x80\x80", "\"" FFFD FFFD "\"");
    /* overlong encodings */
    EXPECT("\xc0\x80", "\"" FFFD FFFD "\"");
    EXPECT("\xc1\xbf", "\"" FFFD FFFD "\"");
    EXPECT("\xc0\xaf", "\"" FFFD FFFD "\"");                   /* overlong '/' */
    EXPECT("\xe0\x80\x80", "\"" FFFD FFFD FFFD "\"");          /* overlong NUL */
    EXPECT("\xe0\x9f\xbf", "\"" FFFD FFFD FFFD "\"");          /* overlong U+07FF */
    EXPECT("\xf0\x80\x80\x80", "\"" FFFD FFFD FFFD FFFD "\""); /* overlong NUL */
    EXPECT("\xf0\x8f\xbf\xbf", "\"" FFFD FFFD FFFD FFFD "\""); /* overlong U+FFFF */
    /* UTF-16 surrogates encoded in UTF-8 (CESU) */
    EXPECT("\xed\xa0\x80", "\"" FFFD FFFD FFFD "\""); /* U+D800 */
    EXPECT("\xed\xbf\xbf", "\"" FFFD FFFD FFFD "\""); /* U+DFFF */
    EXPECT("\xed\xa0\xbd\xed\xb8\x80", "\"" FFFD FFFD FFFD FFFD FFFD FFFD "\"");
    /* beyond U+10FFFF, and bytes that never appear */
    EXPECT("\xf4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"");
    EXPECT("\xf5\x80\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"");
    EXPECT("\xf8\xfe\xff", "\"" FFFD FFFD FFFD "\"");
    /* truncated sequences: at the end, and followed by ASCII */
    EXPECT("\xc3", "\"" FFFD "\"");
    EXPECT("\xe2\x82", "\"" FFFD FFFD "\"");
    EXPECT("\xf0\x9f\x98", "\"" FFFD FFFD FFFD "\"");
    EXPECT("\xe2\x82"
           "A",
           "\"" FFFD FFFD "A\"");
    EXPECT("\xf0\x9f\x98"
           "\"",
           "\"" FFFD FFFD FFFD "\\\"\"");
    /* valid sequence right after an invalid lead byte is kept */
    EXPECT("\xe2\xc3\xa9", "\"" FFFD "\xc3\xa9\"");
    EXPECT("\xff\xe2\x82\xac\xff", "\"" FFFD "\xe2\x82\xac" FFFD "\"");
}

/* A truncated multi-byte sequence at the end of n must not read past n. */
static void test_no_overread(void **state)
{
    (void)state;
    static const char *seqs[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    for (size_t k = 0; k < 3; k++) {
        size_t full = strlen(seqs[k]);
        for (size_t n = 1; n < full; n++) {
            char *heap = malloc(n); /* exactly n bytes: ASan catches overreads */
            memcpy(heap, seqs[k], n);
            buf_t b;
            buf_init(&b, 0);
            jsonw_str(&b, heap, n);
            char want[64] = "\"";
            for (size_t i = 0; i < n; i++) strcat(want, FFFD);
            strcat(want, "\"");
            assert_string_equal(buf_data(&b), want);
            buf_free(&b);
            free(heap);
        }
    }
}

static void test_cstr_and_append(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    buf_appends(&b, "{\"a\":");
    jsonw_cstr(&b, "x\"y");
    buf_appends(&b, ",\"b\":");
    jsonw_cstr(&b, NULL);
    buf_appends(&b, "}");
    assert_string_equal(buf_data(&b), "{\"a\":\"x\\\"y\",\"b\":\"\"}");
    json_error_t err;
    json_t *j = json_loads(buf_data(&b), 0, &err);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "a")), "x\"y");
    json_decref(j);
    buf_free(&b);
}

/* ------------------------------------------------------------------------ */
/* property test                                                             */

static uint64_t rng_state;

static uint32_t rng(void)
{
    /* xorshift64*: deterministic across libcs */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

static size_t put_cp(unsigned char *o, uint32_t cp)
{
    if (cp < 0x80) return o[0] = (unsigned char)cp, 1;
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Random byte strings biased toward the interesting cases. */
static size_t gen(unsigned char *o, size_t max)
{
    size_t n = 0, want = rng() % (max - 4);
    while (n < want) {
        unsigned char tmp[4];
        size_t l;
        switch (rng() % 8) {
        case 0: /* any byte */
            o[n++] = (unsigned char)rng();
            break;
        case 1: /* printable ASCII */
            o[n++] = (unsigned char)(0x20 + rng() % 95);
            break;
        case 2: /* characters that need escaping */
            o[n++] = "\"\\\n\r\t\x01\x1f\0"[rng() % 8];
            break;
        case 3: /* high bytes: continuations, leads, never-valid */
            o[n++] = (unsigned char)(0x80 + rng() % 128);
            break;
        case 4: /* a valid code point of random length */
        case 5: {
            uint32_t cp;
            do {
                static const uint32_t lim[] = {0x80, 0x800, 0x10000, 0x110000};
                cp = rng() % lim[rng() % 4];
            } while (cp >= 0xd800 && cp <= 0xdfff);
            n += put_cp(o + n, cp);
            break;
        }
        case 6: /* a valid sequence cut short */
            l = put_cp(tmp, 0x80 + rng() % (0x110000 - 0x80));
            l = 1 + rng() % (l - 1); /* put_cp gave 2..4 bytes */
            memcpy(o + n, tmp, l);
            n += l;
            break;
        default: { /* surrogate or out-of-range encoded with the normal bit pattern */
            uint32_t cp = rng() % 2 ? 0xd800 + rng() % 0x800 : 0x110000 + rng() % 0x2f0000;
            if (cp < 0x10000) {
                o[n++] = (unsigned char)(0xe0 | cp >> 12);
                o[n++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
                o[n++] = (unsigned char)(0x80 | (cp & 0x3f));
            } else {
                n += put_cp(o + n, cp);
            }
        }
        }
    }
    return n;
}

static void test_random_always_valid(void **state)
{
    (void)state;
    rng_state = 0x5eed5eed12345678ULL;
    unsigned char s[132];
    for (int iter = 0; iter < 5000; iter++) {
        size_t n = gen(s, 128);
        unsigned char *heap = malloc(n ? n : 1);
        memcpy(heap, s, n);
        check_roundtrip(heap, n);
        free(heap);
    }
    /* Uniform random bytes too, with no bias. */
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = rng() % 64;
        unsigned char *heap = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++) heap[i] = (unsigned char)rng();
        check_roundtrip(heap, n);
        free(heap);
    }
}

/* Every 1- and 2-byte string: exhaustive for short inputs. */
static void test_exhaustive_short(void **state)
{
    (void)state;
    unsigned char s[2];
    for (int a = 0; a < 256; a++) {
        s[0] = (unsigned char)a;
        check_roundtrip(s, 1);
        for (int c = 0; c < 256; c++) {
            s[1] = (unsigned char)c;
            check_roundtrip(s, 2);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_all_control_chars),
        cmocka_unit_test(test_valid_utf8_kept),
        cmocka_unit_test(test_invalid_utf8_replaced),
        cmocka_unit_test(test_no_overread),
        cmocka_unit_test(test_cstr_and_append),
        cmocka_unit_test(test_random_always_valid),
        cmocka_unit_test(test_exhaustive_short),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
