/*
 * test_jscan — unit tests for the request-body scanner (src/core/jscan).
 *
 * The invariant under test: jscan_body() accepts only what
 * json_loadb(JSON_REJECT_DUPLICATES) accepts as an object, and then reports
 * the same types/values for the fields the gateway reads. A table of bodies
 * jansson rejects (each must be rejected), a table of valid ones (each must be
 * accepted, with field checks), then random mutations of valid bodies (fixed
 * seed): whenever the scanner accepts, jansson must accept and agree.
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

#include "core/jscan.h"
#include "../common/jscan_oracle.h"

/* If the scanner accepts, jansson must accept and agree on every field
 * (the oracle is shared with tests/fuzz/fuzz_jscan.c). */
static int check_agree(const char *b, size_t n)
{
    char why[1024];
    int rc = jscan_oracle(b, n, why, sizeof why);
    if (rc == JSCAN_ORACLE_DISAGREE) fail_msg("%s", why);
    return rc;
}

static const char *const rejected[] = {
    "",
    " ",
    "[]",
    "[1]",
    "\"x\"",
    "1",
    "null",
    "{",
    "}",
    "{\"a\":1,}",
    "{\"a\":1,,\"b\":2}",
    "{,}",
    "{\"a\" 1}",
    "{\"a\":}",
    "{a:1}",
    "{'a':1}",
    "{\"a\":[1,]}",
    "{\"a\":[,1]}",
    "{\"a\":[1 2]}",
    "{\"a\":1}x",
    "{\"a\":1}{}",
    "{\"a\":1} ,",
    "{\"a\":01}",
    "{\"a\":-01}",
    "{\"a\":1.}",
    "{\"a\":.5}",
    "{\"a\":-}",
    "{\"a\":+1}",
    "{\"a\":1e}",
    "{\"a\":1e+}",
    "{\"a\":0x10}",
    "{\"a\":NaN}",
    "{\"a\":Infinity}",
    "{\"a\":-Infinity}",
    "{\"a\":1e400}",
    "{\"a\":-1e400}",
    "{\"a\":99999999999999999999}",
    "{\"a\":-99999999999999999999}",
    "{\"a\":9223372036854775808}",
    "{\"a\":tru}",
    "{\"a\":truex}",
    "{\"a\":True}",
    "{\"a\":nul}",
    "{\"a\":fals}",
    "{\"a\":\"x}",
    "{\"a\":\"\\x\"}",
    "{\"a\":\"\\'\"}",
    "{\"a\":\"\\u12\"}",
    "{\"a\":\"\\u12G4\"}",
    "{\"a\":\"\\u0000\"}",
    "{\"a\":\"\\uD800\"}",
    "{\"a\":\"\\uD800x\"}",
    "{\"a\":\"\\uD800\\u0041\"}",
    "{\"a\":\"\\uDC00\"}",
    "{\"a\":\"\\uDFFF\\uD800\"}",
    "{\"a\":\"\\uDBFF\\uDBFF\"}",
    "{\"a\":\"tab\there\"}",
    "{\"a\":\"nl\nhere\"}",
    "{\"a\":\"\x01\"}",
    "{\"a\":\"\x1f\"}",
    "{\"a\":\"\xc0\x80\"}",
    "{\"a\":\"\xc1\xbf\"}",
    "{\"a\":\"\xe0\x80\x80\"}",
    "{\"a\":\"\xed\xa0\x80\"}",
    "{\"a\":\"\xf0\x80\x80\x80\"}",
    "{\"a\":\"\xf4\x90\x80\x80\"}",
    "{\"a\":\"\xf5\x80\x80\x80\"}",
    "{\"a\":\"\xff\"}",
    "{\"a\":\"\x80\"}",
    "{\"a\":\"\xc3\"}",
    "{\"a\":\"\xe2\x82\"}",
    "{\"a\":1,\"a\":2}",
    "{\"model\":\"x\",\"model\":\"y\"}",
    "{\"a\":{\"b\":1,\"b\":2}}",
    "{\"a\":[{\"b\":1,\"b\":2}]}",
    "{\"a\\u0062\":1}",          /* escaped key: not sure, jansson's path */
    "{\"a\\u0062\":1,\"ab\":2}", /* a duplicate spelled differently */
    "{\"model\":\"g\\u0070t\"}", /* escaped model: jansson's path */
    "\xef\xbb\xbf{\"a\":1}",
    "{\"a\":1 /* c */}",
    "{\"a\":1}\f",
    "{\"a\"\f:1}",
};

static void test_rejects(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rejected / sizeof *rejected; i++) {
        const char *b = rejected[i];
        size_t n = strlen(b);
        jscan_t s;
        if (jscan_body(b, n, &s) == 0) fail_msg("accepted #%zu: '%s'", i, b);
    }
    jscan_t s;
    assert_int_not_equal(jscan_body("{\"a\":1}\0", 8, &s), 0);    /* a NUL after the object */
    assert_int_not_equal(jscan_body("{\"a\":\"\0\"}", 8, &s), 0); /* a NUL in a string */
    /* every entry except the escaped key/model is rejected by jansson too */
    size_t rejected_by_jansson = 0;
    for (size_t i = 0; i < sizeof rejected / sizeof *rejected; i++) {
        json_t *j = json_loadb(rejected[i], strlen(rejected[i]), JSON_REJECT_DUPLICATES, NULL);
        if (!j || !json_is_object(j)) rejected_by_jansson++;
        json_decref(j);
    }
    assert_int_equal(rejected_by_jansson, sizeof rejected / sizeof *rejected - 2);
}

static const char *const accepted[] = {
    "{}",
    " \t\r\n{ } \r\n",
    "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
    "{\"model\":\"m\",\"prompt\":\"p\",\"stream\":true,\"stream_options\":{\"include_usage\":true}"
    "}",
    "{\"model\":\"m\",\"input\":[\"a\",\"b\"],\"stream\":null}",
    "{\"model\":\"m\",\"messages\":[],\"stream\":false,\"stream_options\":{\"include_usage\":false}"
    "}",
    "{\"model\":\"m\",\"stream_options\":[1],\"stream\":\"yes\"}",
    "{\"model\":7,\"max_tokens\":100,\"max_completion_tokens\":5}",
    "{\"model\":null,\"max_tokens\":1.5,\"max_completion_tokens\":-3}",
    "{\"max_tokens\":1e3,\"max_completion_tokens\":0}",
    "{\"max_tokens\":-9223372036854775808,\"a\":9223372036854775807}",
    "{\"a\":-0,\"b\":0.0e-0,\"c\":1E+2,\"d\":-1.25e-3,\"e\":1e-300}",
    "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
    "{\"a\":\"\\u00e9\\uD83D\\uDE00\\uFFFF\\u0001\"}",
    "{\"a\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xef\xbf\xbf\x7f\"}",
    "{\"a\":{\"b\":{\"c\":[[[[true,false,null]]]]}}}",
    "{\"a\":1,\"b\":{\"a\":1},\"c\":[{\"a\":1},{\"a\":2}]}",
    "{\"model\":\"\",\"messages\":[{\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}]}",
    "{\"stream_options\":{\"include_usage\":true,\"x\":{\"include_usage\":false}}}",
    "{\"x\":{\"model\":\"inner\"},\"model\":\"outer\"}",
    "{\"model\":\"a b/c:d\"}",
};

static void test_accepts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof accepted / sizeof *accepted; i++) {
        if (check_agree(accepted[i], strlen(accepted[i])) != 0)
            fail_msg("rejected #%zu: '%s'", i, accepted[i]);
    }
    jscan_t s;
    assert_int_equal(jscan_body(accepted[3], strlen(accepted[3]), &s), 0);
    assert_int_equal(s.stream, JS_TRUE);
    assert_int_equal(s.include_usage, JS_TRUE);
    assert_false(s.u_escape);
    assert_int_equal(jscan_body(accepted[13], strlen(accepted[13]), &s), 0);
    assert_true(s.u_escape);
    assert_int_equal(jscan_body(accepted[7], strlen(accepted[7]), &s), 0);
    assert_int_equal(s.max_tokens_v, 100);
    assert_int_equal(s.max_completion_tokens_v, 5);
    assert_int_equal(jscan_body(accepted[19], strlen(accepted[19]), &s), 0);
    assert_int_equal(s.model_len, 5);
    assert_memory_equal(s.model_p, "outer", 5);
}

static void test_depth(void **state)
{
    (void)state;
    char b[2 * 3000 + 16];
    for (int depth = 1; depth < 3000; depth = depth < 40 ? depth + 1 : depth * 2) {
        size_t n = 0;
        n += (size_t)sprintf(b + n, "{\"a\":");
        for (int i = 0; i < depth; i++) b[n++] = '[';
        for (int i = 0; i < depth; i++) b[n++] = ']';
        b[n++] = '}';
        check_agree(b, n); /* accepts up to its own depth limit, then defers */
        b[n - 2] = ',';    /* unbalanced: always rejected */
        jscan_t s;
        assert_int_not_equal(jscan_body(b, n, &s), 0);
    }
    /* shallow nesting is accepted */
    const char *ok = "{\"a\":[[[[[[[[[[{}]]]]]]]]]]}";
    assert_int_equal(check_agree(ok, strlen(ok)), 0);
}

static void test_many_keys(void **state)
{
    (void)state;
    char b[8192];
    size_t n = 0;
    b[n++] = '{';
    for (int i = 0; i < 200; i++) n += (size_t)sprintf(b + n, "%s\"k%d\":%d", i ? "," : "", i, i);
    b[n++] = '}';
    check_agree(b, n); /* may defer to jansson, must not disagree */
    n = 0;
    b[n++] = '{';
    for (int i = 0; i < 200; i++)
        n += (size_t)sprintf(b + n, "%s\"k%d\":%d", i ? "," : "", i == 199 ? 3 : i, i);
    b[n++] = '}';
    jscan_t s;
    assert_int_not_equal(jscan_body(b, n, &s), 0); /* a duplicate among many keys */
}

/* Random mutations of valid bodies: the scanner never accepts what jansson
 * rejects, and accepts most of what jansson accepts (sanity: it is useful). */
static void test_mutations(void **state)
{
    (void)state;
    static const char alphabet[] =
        "{}[],:\"\\ \t\n0123456789.-+eEtrufalsn\x01\x7f\x80\xc3\xa9\xed\xf0u";
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    size_t both = 0, jansson_only = 0, agreed_reject = 0;
    for (int iter = 0; iter < 60000; iter++) {
        const char *base = accepted[iter % (sizeof accepted / sizeof *accepted)];
        char b[512];
        size_t n = strlen(base);
        memcpy(b, base, n);
        int muts = 1 + (int)(iter % 3);
        for (int m = 0; m < muts; m++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            size_t pos = n ? (size_t)(rng % n) : 0;
            char ch = alphabet[(rng >> 32) % (sizeof alphabet - 1)];
            switch ((rng >> 48) % 3) {
            case 0: /* replace */
                if (n) b[pos] = ch;
                break;
            case 1: /* insert */
                if (n + 1 < sizeof b) {
                    memmove(b + pos + 1, b + pos, n - pos);
                    b[pos] = ch;
                    n++;
                }
                break;
            default: /* delete */
                if (n) {
                    memmove(b + pos, b + pos + 1, n - pos - 1);
                    n--;
                }
            }
        }
        int rc = check_agree(b, n); /* fails the test on a disagreement */
        json_t *j = json_loadb(b, n, JSON_REJECT_DUPLICATES, NULL);
        bool jok = j && json_is_object(j);
        json_decref(j);
        if (rc == 0)
            both++;
        else if (jok)
            jansson_only++;
        else
            agreed_reject++;
    }
    print_message("mutations: both accept %zu, jansson only %zu, both reject %zu\n", both,
                  jansson_only, agreed_reject);
    assert_true(both > 1000);
    assert_true(agreed_reject > 1000);
}

static int usage_agree(const char *b, size_t n)
{
    char why[2048];
    int rc = jscan_usage_oracle(b, n, why, sizeof why);
    if (rc == JSCAN_ORACLE_DISAGREE) fail_msg("%s", why);
    return rc;
}

/* jscan_usage: the token counts of an answer's usage object, as jansson reads them. */
static void test_usage(void **state)
{
    (void)state;
    jscan_usage_t u;
    const char *ok = " {\"prompt_tokens\": 12, \"completion_tokens\":7,\"total_tokens\":19,"
                     "\"prompt_tokens_details\":{\"cached_tokens\":4,\"audio_tokens\":0},"
                     "\"completion_tokens_details\":{\"reasoning_tokens\":1}}\n}";
    assert_int_equal(jscan_usage(ok, strlen(ok), &u), 0); /* the body's '}' after it is ignored */
    assert_int_equal(u.prompt_tokens, JS_INT);
    assert_int_equal(u.prompt_tokens_v, 12);
    assert_int_equal(u.completion_tokens_v, 7);
    assert_int_equal(u.cached_tokens, JS_INT);
    assert_int_equal(u.cached_tokens_v, 4);
    assert_int_equal(usage_agree(ok, strlen(ok)), 0);
    /* a cached_tokens outside prompt_tokens_details is not the cached count */
    const char *outside =
        "{\"cached_tokens\":5,\"completion_tokens_details\":{\"cached_tokens\":6}}";
    assert_int_equal(jscan_usage(outside, strlen(outside), &u), 0);
    assert_int_equal(u.cached_tokens, JS_ABSENT);
    assert_int_equal(u.prompt_tokens, JS_ABSENT);
    /* not integers: reported as such, accounting ignores them */
    const char *reals = "{\"prompt_tokens\":1.5,\"completion_tokens\":\"3\"}";
    assert_int_equal(jscan_usage(reals, strlen(reals), &u), 0);
    assert_int_equal(u.prompt_tokens, JS_REAL);
    assert_int_equal(u.completion_tokens, JS_STRING);
    /* deferred to jansson: duplicates, escaped keys, not an object, truncated, too big */
    static const char *const defer[] = {
        "{\"prompt_tokens\":1,\"prompt_tokens\":2}",
        "{\"prompt\\u005ftokens\":1}",
        "null",
        "[1]",
        "{\"prompt_tokens\":1",
        "{\"prompt_tokens\":99999999999999999999}",
        "",
    };
    for (size_t i = 0; i < sizeof defer / sizeof *defer; i++)
        assert_int_not_equal(jscan_usage(defer[i], strlen(defer[i]), &u), 0);
    /* mutations through the oracle: never accepts what jansson rejects or disagrees */
    static const char alphabet[] = "{}[],:\"\\ 0123456789.-eEtrufalsn_pomcdk\x80\xc3";
    uint64_t rng = 0x2545f4914f6cdd1dull;
    size_t n_ok = 0;
    for (int iter = 0; iter < 40000; iter++) {
        char b[512];
        size_t n = strlen(ok);
        memcpy(b, ok, n);
        for (int m = 0; m < 1 + iter % 3; m++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            size_t pos = (size_t)(rng % n);
            char ch = alphabet[(rng >> 32) % (sizeof alphabet - 1)];
            if ((rng >> 48) % 2)
                b[pos] = ch;
            else if (n > 1)
                memmove(b + pos, b + pos + 1, n - pos - 1), n--;
        }
        if (usage_agree(b, n) == 0) n_ok++;
    }
    print_message("usage mutations: scanner accepted %zu of 40000\n", n_ok);
    assert_true(n_ok > 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rejects),   cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_depth),     cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_mutations), cmocka_unit_test(test_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
