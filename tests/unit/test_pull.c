/*
 * Unit tests for src/local/pull.h: the parsers of what a server answers to
 * `skuld pull` (response head lines, the first line of an error body) and
 * the catalog's `auto` pick.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "local/pull.h"

static int feed(pull_resp_t *r, const char *line)
{
    return pull_header_line(r, line, strlen(line));
}

static void test_header_lines(void **state)
{
    (void)state;
    pull_resp_t r = {0};
    assert_int_equal(feed(&r, "HTTP/1.1 206 Partial Content\r\n"), 0);
    assert_int_equal(r.status, 206);
    assert_string_equal(r.reason, "Partial Content");
    assert_int_equal(r.range_start, -1);
    assert_int_equal(feed(&r, "content-range: bytes 1000-4999/5000\r\n"), 0);
    assert_int_equal(r.range_start, 1000);
    assert_false(r.location);
    assert_int_equal(feed(&r, "\r\n"), 1);
    /* a redirect, then the answer: every status line starts over */
    assert_int_equal(feed(&r, "HTTP/1.1 302 Found\r\n"), 0);
    assert_int_equal(feed(&r, "Location: /x\r\n"), 0);
    assert_true(r.location);
    assert_int_equal(feed(&r, "HTTP/2 404\r\n"), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.reason, "");
    assert_false(r.location);
    assert_int_equal(r.range_start, -1);
    assert_int_equal(feed(&r, "\n"), 1);
    /* odd input: no status, control bytes in the reason, a range without digits */
    assert_int_equal(feed(&r, "HTTP/1.1 abc\r\n"), 0);
    assert_int_equal(r.status, 0);
    assert_int_equal(feed(&r, "HTTP/1.1 500 a\033b\r\n"), 0);
    assert_string_equal(r.reason, "a?b");
    assert_int_equal(feed(&r, "Content-Range: bytes */5000\r\n"), 0);
    assert_int_equal(r.range_start, -1);
    assert_int_equal(feed(&r, "Content-Rangex: bytes 5-6/7\r\n"), 0);
    assert_int_equal(r.range_start, -1);
}

static void first(const char *body, size_t cap, const char *want)
{
    char out[256];
    pull_error_line(body, strlen(body), out, cap);
    assert_string_equal(out, want);
}

static void test_error_line(void **state)
{
    (void)state;
    first("\r\n  Not Found  \r\nmore", 64, "Not Found");
    first("{\"error\":\"no such model\"}", 64, "{\"error\":\"no such model\"}");
    first("", 64, "");
    first("\n\n\n", 64, "");
    first("a\033[2Jb\tc", 64, "a?[2Jb?c");
    first("abcdefgh", 5, "abcd");
    /* é is 2 bytes: a cut never splits it */
    first("\xc3\xa9\xc3\xa9\xc3\xa9", 6, "\xc3\xa9\xc3\xa9");
    first("\xc3\xa9\xc3\xa9\xc3\xa9", 5, "\xc3\xa9\xc3\xa9");
    first("x\xe2\x82\xac", 4, "x");
    first("x\xe2\x82\xac", 5, "x\xe2\x82\xac");
}

static void test_pick_auto(void **state)
{
    (void)state;
    pull_entry_t v[] = {
        {.name = "big", .ram_gb = 8, .kind = "standard"},
        {.name = "small", .ram_gb = 1.5, .kind = "ternary"},
        {.name = "mid", .ram_gb = 4},
    };
    assert_int_equal(pull_pick_auto(v, 3, 16), 0);
    assert_int_equal(pull_pick_auto(v, 3, 5), 2);
    assert_int_equal(pull_pick_auto(v, 3, 2), 1);
    assert_int_equal(pull_pick_auto(v, 3, 1), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_lines),
        cmocka_unit_test(test_error_line),
        cmocka_unit_test(test_pick_auto),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
