/*
 * Unit tests of the translation helpers the providers share
 * (provider/xlate.c, provider_content_text in provider/provider.c). The
 * providers' end-to-end translations are covered by test_golden; these pin
 * each helper's own contract, including the corner cases the golden files do
 * not reach (defaults for missing fields, no key, empty turns).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "provider/embed.h"
#include "provider/xlate.h"

/* v compactly (insertion order kept), compared with want; releases v. */
static void assert_json(json_t *v, const char *want)
{
    assert_non_null(v);
    char *s = json_dumps(v, JSON_COMPACT);
    assert_non_null(s);
    assert_string_equal(s, want);
    free(s);
    json_decref(v);
}

static json_t *parse(const char *text)
{
    json_t *v = json_loads(text, 0, NULL);
    assert_non_null(v);
    return v;
}

static void test_content_text(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    json_t *s = json_string("plain text");
    provider_content_text(&b, s, " ");
    assert_int_equal(b.len, 10);
    assert_memory_equal(buf_data(&b), "plain text", 10);
    json_decref(s);

    /* parts: text parts only, the separator only between texts (an empty
     * first part adds none), nothing for a non-text part */
    json_t *parts = parse("[{\"type\":\"text\",\"text\":\"\"},{\"type\":\"text\",\"text\":\"a\"},"
                          "{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}},"
                          "{\"type\":\"text\",\"text\":\"b\"},{\"text\":7}]");
    buf_reset(&b);
    provider_content_text(&b, parts, "\n");
    assert_int_equal(b.len, 3);
    assert_memory_equal(buf_data(&b), "a\nb", 3);
    buf_reset(&b);
    provider_content_text(&b, parts, NULL);
    assert_int_equal(b.len, 2);
    assert_memory_equal(buf_data(&b), "ab", 2);
    /* text already in out: every part is separated, an empty one too */
    buf_reset(&b);
    buf_appends(&b, "x");
    provider_content_text(&b, parts, " ");
    assert_int_equal(b.len, 6);
    assert_memory_equal(buf_data(&b), "x  a b", 6);
    /* neither a string nor an array: nothing */
    buf_reset(&b);
    provider_content_text(&b, NULL, " ");
    assert_int_equal(b.len, 0);
    json_decref(parts);
    buf_free(&b);

    arena_t *a = arena_create(0);
    json_t *two =
        parse("[{\"type\":\"text\",\"text\":\"one\"},{\"type\":\"text\",\"text\":\"two\"}]");
    assert_string_equal(xl_content_text(a, two), "one\ntwo");
    json_decref(two);
    arena_destroy(a);
}

static void test_turn_merges_same_role(void **state)
{
    (void)state;
    json_t *turns = json_array();
    xl_turn(turns, "user", "parts", parse("[1]"));
    xl_turn(turns, "user", "parts", parse("[2,3]"));
    xl_turn(turns, "model", "parts", json_array()); /* empty: nothing */
    xl_turn(turns, "model", "parts", parse("[4]"));
    xl_turn(turns, "user", "parts", parse("[5]"));
    assert_json(turns, "[{\"role\":\"user\",\"parts\":[1,2,3]},{\"role\":\"model\",\"parts\":[4]},"
                       "{\"role\":\"user\",\"parts\":[5]}]");
}

static void test_tool_decls(void **state)
{
    (void)state;
    json_t *tools =
        parse("[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":\"d\","
              "\"parameters\":{\"type\":\"object\"}}},"
              "{\"type\":\"function\",\"function\":{\"name\":\"g\",\"description\":5}},"
              "{\"type\":\"function\",\"function\":{\"description\":\"no name\"}}]");
    assert_json(xl_tool_decls(tools, "input_schema", true),
                "[{\"name\":\"f\",\"description\":\"d\",\"input_schema\":{\"type\":\"object\"}},"
                "{\"name\":\"g\",\"input_schema\":{\"type\":\"object\"}}]");
    assert_json(xl_tool_decls(tools, "parameters", false),
                "[{\"name\":\"f\",\"description\":\"d\",\"parameters\":{\"type\":\"object\"}},"
                "{\"name\":\"g\"}]");
    json_decref(tools);
}

static void test_calls_append(void **state)
{
    (void)state;
    json_t *calls =
        parse("[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
              "\"{\\\"x\\\":1}\"}},"
              "{\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"not json\"}},"
              "{\"id\":\"c3\",\"type\":\"function\",\"function\":{\"arguments\":\"{}\"}}]");
    json_t *out = parse("[\"kept\"]"), *names = json_object();
    xl_calls_append(out, calls, names, "functionCall", "args");
    assert_json(out, "[\"kept\",{\"functionCall\":{\"name\":\"f\",\"args\":{\"x\":1}}},"
                     "{\"functionCall\":{\"name\":\"g\",\"args\":{}}}]");
    assert_json(names, "{\"c1\":\"f\"}");
    json_decref(calls);
}

static void test_call(void **state)
{
    (void)state;
    json_t *name = json_string("f");
    assert_json(xl_call(json_string("id1"), name, "{\"a\":1}"),
                "{\"id\":\"id1\",\"type\":\"function\",\"function\":{\"name\":\"f\","
                "\"arguments\":\"{\\\"a\\\":1}\"}}");
    assert_int_equal(name->refcount, 1); /* borrowed */
    json_decref(name);
    assert_json(xl_call(NULL, NULL, NULL), "{\"id\":\"\",\"type\":\"function\",\"function\":"
                                           "{\"name\":\"\",\"arguments\":\"{}\"}}");
}

static void test_message(void **state)
{
    (void)state;
    assert_json(xl_message("hi", 2, json_array(), false),
                "{\"role\":\"assistant\",\"content\":\"hi\"}");
    /* no text: "" without calls, null with calls or when asked */
    assert_json(xl_message(NULL, 0, json_array(), false),
                "{\"role\":\"assistant\",\"content\":\"\"}");
    assert_json(xl_message(NULL, 0, json_array(), true),
                "{\"role\":\"assistant\",\"content\":null}");
    assert_json(xl_message("", 0, parse("[{\"id\":\"c\"}]"), false),
                "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c\"}]}");
    assert_json(xl_message("ab", 1, parse("[1]"), true),
                "{\"role\":\"assistant\",\"content\":\"a\",\"tool_calls\":[1]}");
}

static const xl_wire_t test_wire = {
    .type = "testprov",
    .stream_accept = "Accept: text/x-test",
    .version = "test-version: 1",
    .key_header = "x-test-key: ",
    .id_prefix = "chatcmpl-test",
};

struct prov_xlate {
    xl_stream_t s;
    int extra;
};

static void test_chat_only(void **state)
{
    (void)state;
    arena_t *a = arena_create(0);
    prov_call_t call = {0};
    assert_int_equal(xl_serves(a, EP_CHAT, &test_wire, &call), 0);
    assert_null(call.error);
    assert_int_equal(xl_serves(a, EP_EMBEDDINGS, &test_wire, &call), PROV_EBADREQ);
    assert_string_equal(call.error,
                        "this deployment (provider type testprov) serves chat completions only");
    arena_destroy(a);
}

static size_t count_headers(const char *const *h)
{
    size_t n = 0;
    while (h && h[n]) n++;
    return n;
}

static void test_build_end(void **state)
{
    (void)state;
    arena_t *a = arena_create(0);
    cfg_provider_t prov = {.name = "p", .type = "testprov", .api_key = "K1"};
    cfg_model_t m = {.name = "pub", .provider = &prov, .upstream_model = "up-model"};

    prov_call_t call = {0};
    assert_int_equal(xl_build_end(a, parse("{\"b\":1}"), &m, EP_CHAT, true, &test_wire,
                                  sizeof(struct prov_xlate), &call),
                     0);
    assert_int_equal(call.body_len, 7);
    assert_memory_equal(call.body, "{\"b\":1}", 7);
    assert_int_equal(count_headers(call.headers), 4);
    assert_string_equal(call.headers[0], "Content-Type: application/json");
    assert_string_equal(call.headers[1], "Accept: text/x-test");
    assert_string_equal(call.headers[2], "test-version: 1");
    assert_string_equal(call.headers[3], "x-test-key: K1");
    assert_non_null(call.xlate);
    assert_string_equal(call.xlate->s.id, "chatcmpl-test");
    assert_string_equal(call.xlate->s.model, "up-model");
    assert_int_equal(call.xlate->s.prompt, -1);
    assert_int_equal(call.xlate->s.completion, -1);
    assert_false(call.xlate->s.role_sent);
    assert_int_equal(call.xlate->extra, 0);

    /* not streamed, no key, no version header */
    xl_wire_t bare = test_wire;
    bare.version = NULL;
    prov.api_key = NULL;
    prov_call_t c2 = {0};
    assert_int_equal(
        xl_build_end(a, parse("{}"), &m, EP_CHAT, false, &bare, sizeof(struct prov_xlate), &c2), 0);
    assert_int_equal(count_headers(c2.headers), 2);
    assert_string_equal(c2.headers[1], "Accept: application/json");
    arena_destroy(a);
}

/* The probes of the two providers that authenticate them, through their ops tables. */
static void test_probe_headers(void **state)
{
    (void)state;
    arena_t *a = arena_create(0);
    cfg_provider_t prov = {.name = "p", .type = "anthropic", .api_key = "K2"};
    cfg_model_t m = {.name = "pub", .provider = &prov, .upstream_model = "up-model"};

    const char *const *h = xl_probe_headers(a, &m, &test_wire);
    assert_int_equal(count_headers(h), 2);
    assert_string_equal(h[0], "test-version: 1");
    assert_string_equal(h[1], "x-test-key: K2");

    prov.base_url = "https://api.anthropic.test/v1";
    prov_call_t c = {0};
    assert_int_equal(provider_anthropic.build_probe(a, &m, &c), 0);
    assert_string_equal(c.url, "https://api.anthropic.test/v1/models");
    assert_int_equal(count_headers(c.headers), 2);
    assert_string_equal(c.headers[0], "anthropic-version: 2023-06-01");
    assert_string_equal(c.headers[1], "x-api-key: K2");

    prov.base_url = "https://gemini.test/v1beta";
    prov_call_t g = {0};
    assert_int_equal(provider_gemini.build_probe(a, &m, &g), 0);
    assert_string_equal(g.url, "https://gemini.test/v1beta/models/up-model");
    assert_int_equal(count_headers(g.headers), 1);
    assert_string_equal(g.headers[0], "x-goog-api-key: K2");

    prov.api_key = NULL; /* no key: no key header, the version header stays */
    prov_call_t c2 = {0};
    assert_int_equal(provider_anthropic.build_probe(a, &m, &c2), 0);
    assert_int_equal(count_headers(c2.headers), 1);
    assert_string_equal(c2.headers[0], "anthropic-version: 2023-06-01");
    prov_call_t g2 = {0};
    assert_int_equal(provider_gemini.build_probe(a, &m, &g2), 0);
    assert_int_equal(count_headers(g2.headers), 0);
    arena_destroy(a);
}

static void test_error_type(void **state)
{
    (void)state;
    assert_string_equal(xl_error_type(400), "invalid_request_error");
    assert_string_equal(xl_error_type(401), "authentication_error");
    assert_string_equal(xl_error_type(403), "permission_error");
    assert_string_equal(xl_error_type(404), "invalid_request_error");
    assert_string_equal(xl_error_type(429), "rate_limit_error");
    assert_string_equal(xl_error_type(500), "server_error");
    assert_string_equal(xl_error_type(503), "server_error");
}

/* provider/embed.h: the request checks and the answer writer. */
static json_t *jparse(const char *s)
{
    json_t *v = json_loads(s, 0, NULL);
    assert_non_null(v);
    return v;
}

static void test_embed_request(void **state)
{
    (void)state;
    arena_t *a = arena_create(0);
    embed_opts_t o;
    prov_call_t c = {0};
    json_t *b = jparse("{\"model\":\"m\",\"input\":[\"a\",\"b\"],\"dimensions\":3,"
                       "\"encoding_format\":\"base64\",\"user\":\"u\"}");
    assert_int_equal(embed_request(a, b, &o, &c), 0);
    assert_true(o.base64);
    assert_int_equal(o.dims, 3);
    assert_int_equal(o.n, 2);
    size_t len;
    assert_string_equal(embed_input(b, 1, &len), "b");
    json_decref(b);
    static const struct {
        const char *body, *code, *param;
    } bad[] = {
        {"{\"input\":\"x\",\"encoding_format\":\"hex\"}", "invalid_value", "encoding_format"},
        {"{\"input\":\"x\",\"dimensions\":0}", "invalid_value", "dimensions"},
        {"{\"input\":\"x\",\"dimensions\":\"2\"}", "invalid_type", "dimensions"},
        {"{\"input\":[]}", "invalid_value", "input"},
        {"{\"input\":[[1,2]]}", "invalid_type", "input"},
        {"{\"input\":5}", "invalid_type", "input"},
        {"{\"input\":\"x\",\"truncate\":true}", "unsupported_parameter", "truncate"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        prov_call_t e = {0};
        b = jparse(bad[i].body);
        assert_int_equal(embed_request(a, b, &o, &e), PROV_EBADREQ);
        assert_string_equal(e.error_code, bad[i].code);
        assert_string_equal(e.error_param, bad[i].param);
        assert_non_null(e.error);
        json_decref(b);
    }
    arena_destroy(a);
}

static void test_embed_vector(void **state)
{
    (void)state;
    buf_t out;
    buf_init(&out, 0);
    const float v[3] = {3.0f, 4.0f, 12.0f};
    embed_opts_t o = {.n = 1};
    embed_begin(&out);
    assert_int_equal(embed_vector(&out, &o, 0, v, 3), 0);
    embed_end(&out, "m", 2);
    assert_string_equal(buf_data(&out), "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\","
                                        "\"index\":0,\"embedding\":[3,4,12]}],\"model\":\"m\","
                                        "\"usage\":{\"prompt_tokens\":2,\"total_tokens\":2}}");
    /* dimensions 2: the first two, unit length; base64 of little-endian float32 */
    buf_reset(&out);
    o.dims = 2;
    assert_int_equal(embed_vector(&out, &o, 0, v, 3), 0);
    assert_string_equal(
        buf_data(&out),
        "{\"object\":\"embedding\",\"index\":0,\"embedding\":[0.600000024,0.800000012]}");
    buf_reset(&out);
    o.base64 = true;
    assert_int_equal(embed_vector(&out, &o, 1, v, 3), 0);
    /* 0.6f = 0x3f19999a, 0.8f = 0x3f4ccccd */
    assert_string_equal(buf_data(&out),
                        ",{\"object\":\"embedding\",\"index\":1,\"embedding\":\"mpkZP83MTD8=\"}");
    /* more dimensions than the vector has: refused, nothing written */
    buf_reset(&out);
    o.dims = 4;
    assert_int_equal(embed_vector(&out, &o, 0, v, 3), -1);
    assert_int_equal(out.len, 0);
    embed_dims_error(&out, &o, 3);
    json_t *e = json_loads(buf_data(&out), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "error"), "param")),
                        "dimensions");
    json_decref(e);
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_text),  cmocka_unit_test(test_turn_merges_same_role),
        cmocka_unit_test(test_tool_decls),    cmocka_unit_test(test_calls_append),
        cmocka_unit_test(test_call),          cmocka_unit_test(test_chat_only),
        cmocka_unit_test(test_build_end),     cmocka_unit_test(test_probe_headers),
        cmocka_unit_test(test_error_type),    cmocka_unit_test(test_message),
        cmocka_unit_test(test_embed_request), cmocka_unit_test(test_embed_vector),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
