/* policy/cost and upstream/ndjson: hand-computed costs, formatting, NDJSON splitting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config/cost.h"
#include "upstream/ndjson.h"

static void expect_cost(const cfg_price_t *p, long prompt, long cached, long completion,
                        const char *want)
{
    char got[48];
    cost_format(cost_usd(p, prompt, cached, completion), got, sizeof got);
    assert_string_equal(got, want);
}

static void test_cost_values(void **state)
{
    (void)state;
    cfg_price_t claude = {3, 15, 0.3}, free_ = {0, 0, 0}, gem = {1.25, 10, 0.3125};
    /* (20 * 3 + 80 * 0.3 + 10 * 15) / 1e6 = 234e-6 */
    expect_cost(&claude, 100, 80, 10, "0.000234");
    /* no cache: (100 * 3 + 10 * 15) / 1e6 = 450e-6 */
    expect_cost(&claude, 100, 0, 10, "0.00045");
    /* (60 * 1.25 + 40 * 0.3125 + 10 * 10) / 1e6 = 187.5e-6 */
    expect_cost(&gem, 100, 40, 10, "0.0001875");
    /* a million output tokens at $15 */
    expect_cost(&claude, 0, 0, 1000000, "15");
    expect_cost(&free_, 100, 0, 10, "0");
    /* unknown counts are 0; cached never exceeds prompt */
    expect_cost(&claude, -1, -1, -1, "0");
    expect_cost(&claude, 10, 50, 0, "0.000003");
}

static void test_cost_format(void **state)
{
    (void)state;
    char b[48];
    cost_format(0.1, b, sizeof b);
    assert_string_equal(b, "0.1");
    cost_format(1.0, b, sizeof b);
    assert_string_equal(b, "1");
    cost_format(1e-10, b, sizeof b);
    assert_string_equal(b, "0.0000000001");
    cost_format(-5, b, sizeof b);
    assert_string_equal(b, "0");
    cost_format(123.25, b, sizeof b);
    assert_string_equal(b, "123.25");
}

static char lines[256];
static int nlines;

static int on_line(void *ud, const char *event, const char *data, size_t len)
{
    (void)ud;
    assert_string_equal(event, "");
    strncat(lines, data, len);
    strcat(lines, "|");
    nlines++;
    return 0;
}

static void test_ndjson_split(void **state)
{
    (void)state;
    ndjson_parser_t p;
    ndjson_init(&p, 16);
    lines[0] = '\0';
    nlines = 0;
    const char *in = "{\"a\":1}\n\n{\"b\"";
    for (size_t i = 0; in[i]; i++) assert_int_equal(ndjson_feed(&p, in + i, 1, on_line, NULL), 0);
    const char *rest = ":2}\r\n  {\"c\":3}";
    assert_int_equal(ndjson_feed(&p, rest, strlen(rest), on_line, NULL), 0);
    assert_string_equal(lines, "{\"a\":1}|{\"b\":2}|");
    assert_int_equal(ndjson_finish(&p, on_line, NULL), 0);
    assert_string_equal(lines, "{\"a\":1}|{\"b\":2}|{\"c\":3}|");
    /* a line over the cap fails */
    assert_int_equal(ndjson_feed(&p, "0123456789abcdefghij", 20, on_line, NULL), -1);
    ndjson_free(&p);
}

/* The line cap does not depend on how the bytes were split (found by
 * tests/fuzz/fuzz_ndjson: a long line in one read used to pass). */
static void test_ndjson_cap_any_split(void **state)
{
    (void)state;
    const char *over = "0123456789abcdefg\n";   /* 17 bytes, cap 16 */
    const char *exact = "0123456789abcdef\r\n"; /* 16 bytes and CR: fits */
    for (size_t cut = 0; cut < strlen(over); cut++) {
        ndjson_parser_t p;
        ndjson_init(&p, 16);
        lines[0] = '\0';
        nlines = 0;
        int rc = cut ? ndjson_feed(&p, over, cut, on_line, NULL) : 0;
        if (rc == 0) rc = ndjson_feed(&p, over + cut, strlen(over) - cut, on_line, NULL);
        assert_int_equal(rc, -1);
        assert_int_equal(nlines, 0);
        ndjson_free(&p);
    }
    for (size_t cut = 0; cut < strlen(exact); cut++) {
        ndjson_parser_t p;
        ndjson_init(&p, 16);
        lines[0] = '\0';
        nlines = 0;
        assert_int_equal(ndjson_feed(&p, exact, cut, on_line, NULL), 0);
        assert_int_equal(ndjson_feed(&p, exact + cut, strlen(exact) - cut, on_line, NULL), 0);
        assert_string_equal(lines, "0123456789abcdef|");
        ndjson_free(&p);
    }
    /* an unterminated last line over the cap fails at the end too */
    ndjson_parser_t p;
    ndjson_init(&p, 16);
    assert_int_equal(ndjson_feed(&p, "0123456789abcdefg", 17, on_line, NULL), 0);
    assert_int_equal(ndjson_finish(&p, on_line, NULL), -1);
    ndjson_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cost_values),
        cmocka_unit_test(test_cost_format),
        cmocka_unit_test(test_ndjson_split),
        cmocka_unit_test(test_ndjson_cap_any_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
