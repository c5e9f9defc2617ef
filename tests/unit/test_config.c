/*
 * test_config — unit tests for the configuration loader (src/config).
 *
 * Each test loads an inline YAML string (or a temporary file) and checks
 * either the resulting snapshot or the exact errors, positions included.
 * Value parsers are tested as data tables, and so are the documents that
 * must fail with exactly one error (err_case_t, expect_cases(): a failing
 * case quotes its document). Every config and error list is freed so the
 * tests run clean under ASan/LSan.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "config/yaml_tree.h"

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

static config_t *load(const char *yaml, cfg_errors_t *errs)
{
    return config_load_string(yaml, strlen(yaml), "test.yaml", errs);
}

/* Loads yaml expecting failure; returns the errors (caller frees). */
static cfg_errors_t load_fail(const char *yaml)
{
    cfg_errors_t errs = {0};
    config_t *c = load(yaml, &errs);
    if (c) {
        config_unref(c);
        fail_msg("expected errors, config loaded from:\n%s", yaml);
    }
    assert_true(errs.n > 0);
    return errs;
}

static void dump(const cfg_errors_t *errs)
{
    config_errors_print(errs, stderr);
}

/* Loads yaml expecting success: no errors (printed if any), a config. */
static config_t *load_ok(const char *yaml)
{
    cfg_errors_t errs = {0};
    config_t *c = load(yaml, &errs);
    if (!c) dump(&errs);
    assert_non_null(c);
    assert_int_equal(errs.n, 0);
    return c;
}

/* Index of the error at line:col whose message contains `sub`, or -1. */
static int find_err(const cfg_errors_t *errs, int line, int col, const char *sub)
{
    for (size_t i = 0; i < errs->n; i++)
        if (errs->v[i].line == line && errs->v[i].col == col && strstr(errs->v[i].msg, sub))
            return (int)i;
    return -1;
}

static void expect_err(const cfg_errors_t *errs, int line, int col, const char *sub)
{
    if (find_err(errs, line, col, sub) < 0) {
        dump(errs);
        fail_msg("no error at %d:%d containing \"%s\"", line, col, sub);
    }
}

/* Loads a one-error document and checks that error's position and text.
 * A failure quotes the document, so a case in a table is named. */
static void expect_only(const char *yaml, int line, int col, const char *sub)
{
    cfg_errors_t errs = load_fail(yaml);
    if (errs.n != 1) {
        dump(&errs);
        fail_msg("expected 1 error, got %zu, from:\n%s", errs.n, yaml);
    }
    if (find_err(&errs, line, col, sub) < 0) {
        dump(&errs);
        fail_msg("no error at %d:%d containing \"%s\", from:\n%s", line, col, sub, yaml);
    }
    config_errors_free(&errs);
}

/* One case for expect_only(): the document (after a common prefix) fails
 * with exactly one error, at line:col, whose message contains msg. */
typedef struct {
    const char *yaml;
    int line, col;
    const char *msg;
} err_case_t;

static void expect_cases_n(const err_case_t *cases, size_t n, const char *prefix)
{
    char y[2048];
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(y, sizeof y, "%s%s", prefix, cases[i].yaml);
        assert_true(len > 0 && (size_t)len < sizeof y);
        expect_only(y, cases[i].line, cases[i].col, cases[i].msg);
    }
}

#define expect_cases(cases, prefix) expect_cases_n(cases, sizeof(cases) / sizeof(cases[0]), prefix)

/* Creates the file named by the mkstemp() template `path` holding `content`. */
static void write_temp(char *path, const char *content)
{
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
}

static const char *PROVIDERS_OK = "providers:\n"
                                  "  - name: local\n"
                                  "    type: echo\n";

/* ------------------------------------------------------------------------ */
/* successful loads                                                          */

static void test_full_config(void **state)
{
    (void)state;
    const char *yaml = "# every key this version knows\n"
                       "server:\n"
                       "  listen: \"[::1]:9090\"\n"
                       "  workers: 4\n"
                       "  max_body_bytes: 8MiB\n"
                       "  max_header_bytes: 32KiB\n"
                       "  max_upstream_body_bytes: 1GiB\n"
                       "  connect_timeout: 250ms\n"
                       "  request_timeout: 5m\n"
                       "  stream_idle_timeout: 1h\n"
                       "  client_idle_timeout: 30\n"
                       "  drain_timeout: 0s\n"
                       "  default_model: gpt\n"
                       "  access_log: false\n"
                       "providers:\n"
                       "  - name: openai-main\n"
                       "    type: openai\n"
                       "    base_url: https://api.openai.com/v1//\n"
                       "    api_key: sk-inline-test\n"
                       "  - name: local.echo_1\n"
                       "    type: echo\n"
                       "models:\n"
                       "  - name: gpt\n"
                       "    provider: openai-main\n"
                       "    model: gpt-4o-mini\n"
                       "  - name: echo\n"
                       "    provider: local.echo_1\n";
    config_t *c = load_ok(yaml);

    assert_string_equal(c->source, "test.yaml");
    assert_int_equal(atomic_load(&c->refs), 1);
    assert_string_equal(c->server.listen, "[::1]:9090");
    assert_int_equal(c->server.workers, 4);
    assert_int_equal(c->server.max_body_bytes, 8u << 20);
    assert_int_equal(c->server.max_header_bytes, 32u << 10);
    assert_int_equal(c->server.max_upstream_body_bytes, 1u << 30);
    assert_int_equal(c->server.connect_timeout_ms, 250);
    assert_int_equal(c->server.request_timeout_ms, 300000);
    assert_int_equal(c->server.stream_idle_timeout_ms, 3600000);
    assert_int_equal(c->server.client_idle_timeout_ms, 30000);
    assert_int_equal(c->server.drain_timeout_ms, 0);
    assert_string_equal(c->server.default_model, "gpt");
    assert_false(c->server.access_log);

    assert_int_equal(c->n_providers, 2);
    assert_string_equal(c->providers[0].name, "openai-main");
    assert_string_equal(c->providers[0].type, "openai");
    assert_string_equal(c->providers[0].base_url, "https://api.openai.com/v1");
    assert_string_equal(c->providers[0].api_key, "sk-inline-test");
    assert_string_equal(c->providers[1].name, "local.echo_1");
    assert_string_equal(c->providers[1].type, "echo");
    assert_null(c->providers[1].base_url);
    assert_null(c->providers[1].api_key);

    assert_int_equal(c->n_models, 2);
    assert_string_equal(c->models[0].name, "gpt");
    assert_ptr_equal(c->models[0].provider, &c->providers[0]);
    assert_string_equal(c->models[0].upstream_model, "gpt-4o-mini");
    assert_string_equal(c->models[1].name, "echo");
    assert_ptr_equal(c->models[1].provider, &c->providers[1]);
    assert_string_equal(c->models[1].upstream_model, "echo");
    config_unref(c);
}

static void check_defaults(const config_t *c)
{
    assert_string_equal(c->server.listen, "127.0.0.1:8080");
    assert_int_equal(c->server.workers, 0);
    assert_int_equal(c->server.max_body_bytes, 4u << 20);
    assert_int_equal(c->server.max_header_bytes, 16u << 10);
    assert_int_equal(c->server.max_upstream_body_bytes, 32u << 20);
    assert_int_equal(c->server.connect_timeout_ms, 5000);
    assert_int_equal(c->server.request_timeout_ms, 600000);
    assert_int_equal(c->server.stream_idle_timeout_ms, 120000);
    assert_int_equal(c->server.client_idle_timeout_ms, 75000);
    assert_int_equal(c->server.drain_timeout_ms, 30000);
    assert_null(c->server.default_model);
    assert_true(c->server.access_log);
}

static void test_defaults(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "",
        "# only a comment\n",
        "---\n",
        "server:\n",
        "server: {}\nproviders: []\nmodels: ~\n",
        "providers:\n  - name: e\n    type: echo\nmodels:\n  - name: m\n    provider: e\n",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        cfg_errors_t errs = {0};
        config_t *c = load(docs[i], &errs);
        if (!c) {
            dump(&errs);
            fail_msg("document %zu failed", i);
        }
        check_defaults(c);
        config_unref(c);
    }

    /* the upstream model id defaults to the public name */
    cfg_errors_t errs = {0};
    config_t *c = load(docs[5], &errs);
    assert_non_null(c);
    assert_string_equal(c->models[0].upstream_model, "m");
    config_unref(c);
}

static void test_booleans_and_workers(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        bool want;
    } bools[] = {{"true", true},   {"yes", true}, {"True", true},
                 {"false", false}, {"no", false}, {"FALSE", false}};
    for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
        char yaml[128];
        snprintf(yaml, sizeof(yaml), "server:\n  access_log: %s\n  workers: 256\n", bools[i].v);
        cfg_errors_t errs = {0};
        config_t *c = load(yaml, &errs);
        assert_non_null(c);
        assert_int_equal(c->server.access_log, bools[i].want);
        assert_int_equal(c->server.workers, 256);
        config_unref(c);
    }
}

static void test_secret_env(void **state)
{
    (void)state;
    setenv("SKULD_TEST_API_KEY", "sk-from-env-42", 1);
    cfg_errors_t errs = {0};
    config_t *c = load("providers:\n"
                       "  - name: up\n"
                       "    type: openai\n"
                       "    base_url: http://127.0.0.1:1\n"
                       "    api_key: env:SKULD_TEST_API_KEY\n",
                       &errs);
    if (!c) dump(&errs);
    assert_non_null(c);
    assert_string_equal(c->providers[0].api_key, "sk-from-env-42");
    config_unref(c);
    unsetenv("SKULD_TEST_API_KEY");
}

static void test_secret_file(void **state)
{
    (void)state;
    char path[] = "/tmp/skuld_test_secret_XXXXXX";
    const char *content = "sk-from-file-7 \n\n";
    write_temp(path, content);

    char yaml[256];
    snprintf(yaml, sizeof(yaml),
             "providers:\n"
             "  - name: up\n"
             "    type: openai\n"
             "    base_url: http://127.0.0.1:1\n"
             "    api_key: file:%s\n",
             path);
    cfg_errors_t errs = {0};
    config_t *c = load(yaml, &errs);
    if (!c) dump(&errs);
    assert_non_null(c);
    assert_string_equal(c->providers[0].api_key, "sk-from-file-7");
    config_unref(c);
    unlink(path);

    /* the file is gone now: strerror in the message, at the value */
    errs = load_fail(yaml);
    assert_int_equal(errs.n, 1);
    expect_err(&errs, 5, 14, "No such file or directory");
    expect_err(&errs, 5, 14, path);
    config_errors_free(&errs);
}

static void test_secret_env_missing(void **state)
{
    (void)state;
    unsetenv("SKULD_TEST_NOT_SET");
    expect_only("providers:\n"
                "  - name: up\n"
                "    type: openai\n"
                "    base_url: http://127.0.0.1:1\n"
                "    api_key: env:SKULD_TEST_NOT_SET\n",
                5, 14, "environment variable SKULD_TEST_NOT_SET is not set");
    expect_only("providers:\n"
                "  - name: up\n"
                "    type: openai\n"
                "    base_url: http://127.0.0.1:1\n"
                "    api_key: env:BAD-NAME\n",
                5, 14, "invalid environment variable name");
}

/* ------------------------------------------------------------------------ */
/* errors                                                                    */

static void test_three_errors(void **state)
{
    (void)state;
    const char *yaml = "server:\n"                             /* 1 */
                       "  lisen: 127.0.0.1:9000\n"             /* 2 */
                       "  connect_timeout: 5x\n"               /* 3 */
                       "providers:\n"                          /* 4 */
                       "  - name: up\n"                        /* 5 */
                       "    type: openai\n"                    /* 6 */
                       "    base_url: http://localhost:9999\n" /* 7 */
                       "models:\n"                             /* 8 */
                       "  - name: m1\n"                        /* 9 */
                       "    provider: nope\n";                 /* 10 */
    cfg_errors_t errs = load_fail(yaml);
    if (errs.n != 3) dump(&errs);
    assert_int_equal(errs.n, 3);
    /* sorted by position */
    assert_int_equal(errs.v[0].line, 2);
    assert_int_equal(errs.v[0].col, 3);
    assert_string_equal(errs.v[0].msg, "unknown key 'lisen' in server (did you mean 'listen'?)");
    assert_int_equal(errs.v[1].line, 3);
    assert_int_equal(errs.v[1].col, 20);
    assert_non_null(strstr(errs.v[1].msg, "connect_timeout: invalid duration '5x'"));
    assert_int_equal(errs.v[2].line, 10);
    assert_int_equal(errs.v[2].col, 15);
    assert_string_equal(errs.v[2].msg, "provider 'nope' is not defined in providers");
    for (size_t i = 0; i < errs.n; i++) assert_string_equal(errs.v[i].file, "test.yaml");

    /* the printed form */
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    assert_non_null(f);
    config_errors_print(&errs, f);
    fclose(f);
    assert_non_null(strstr(out, "test.yaml:2:3: unknown key 'lisen' in server (did you mean "
                                "'listen'?)\ntest.yaml:3:20: connect_timeout: invalid duration "));
    assert_non_null(
        strstr(out, "\ntest.yaml:10:15: provider 'nope' is not defined in providers\n"));
    free(out);
    config_errors_free(&errs);
    assert_null(errs.v);
    assert_int_equal(errs.n, 0);
}

static void test_unknown_keys(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"server:\n  frobnicate: 1\n", 2, 3,
         "unknown key 'frobnicate' in server (valid keys: listen, workers,"},
        {"srever:\n  listen: :1\n", 1, 1,
         "unknown key 'srever' at top level (did you mean 'server'?)"},
        {"providers:\n  - name: a\n    type: echo\n    tpye: x\n", 4, 5,
         "unknown key 'tpye' in provider (did you mean 'type'?)"},
        {"models:\n  - name: a\n    provider: b\n    colour: red\n"
         "providers:\n  - name: b\n    type: echo\n",
         4, 5, "unknown key 'colour' in model"},
        {"server:\n  listen: :1\n  listen: :2\n", 3, 3,
         "duplicate key 'listen' in server (first at line 2)"},
        {"optimizer:\n  enabled: true\n", 1, 1,
         "section 'optimizer' is not supported by this version yet"},
        {"telemetry: {}\n", 1, 1, "section 'telemetry' is not supported by this version"},
    };
    expect_cases(cases, "");
}

static void test_wrong_types(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"server: [1, 2]\n", 1, 9, "server: expected a mapping, got a sequence"},
        {"providers:\n  name: x\n", 2, 3, "providers: expected a sequence, got a mapping"},
        {"providers:\n  - echo\n", 2, 5, "providers: expected a mapping, got a scalar"},
        {"- a\n- b\n", 1, 1, "expected a mapping at top level, got a sequence"},
        {"server:\n  workers: \"4\"\n", 2, 12, "workers: expected an integer, got a quoted string"},
        {"server:\n  workers: four\n", 2, 12, "workers: expected an integer, got 'four'"},
        {"server:\n  workers: 257\n", 2, 12, "workers must be between 0 and 256"},
        {"server:\n  workers: -1\n", 2, 12, "workers must be between 0 and 256"},
        {"server:\n  workers: 99999999999999999999999\n", 2, 12, "workers: expected an integer"},
        {"server:\n  access_log: maybe\n", 2, 15, "access_log: expected true or false"},
        {"server:\n  access_log: \"true\"\n", 2, 15, "access_log: expected true or false"},
        {"server:\n  listen: {a: 1}\n", 2, 11, "listen: expected a string, got a mapping"},
        {"server:\n  listen:\n", 2, 10, "listen: expected a string, got null"},
        {"server:\n  max_header_bytes: 512\n", 2, 21, "max_header_bytes must be at least 1KiB"},
        {"server:\n  max_body_bytes: 4mb\n", 2, 19, "max_body_bytes: invalid size '4mb'"},
        {"server:\n  request_timeout: 0\n", 2, 20, "request_timeout must be at least 1ms"},
        {"server:\n  listen: \"a\\0b:1\"\n", 2, 11, "must not contain a NUL byte"},
        {"? [a, b]\n: 1\n", 1, 3, "expected a key name, got a sequence"},
    };
    expect_cases(cases, "");
}

static void test_missing_required(void **state)
{
    (void)state;
    expect_only("providers:\n  - name: up\n", 2, 5, "provider is missing required key 'type'");
    expect_only("providers:\n  - type: echo\n", 2, 5, "provider is missing required key 'name'");
    expect_only("providers:\n  - name: up\n    type: openai\n", 2, 5,
                "provider is missing required key 'base_url' (required for type 'openai')");
    cfg_errors_t errs = load_fail("providers:\n  - name: p\n    type: echo\n"
                                  "models:\n  - model: x\n");
    assert_int_equal(errs.n, 2);
    expect_err(&errs, 5, 5, "model is missing required key 'name'");
    expect_err(&errs, 5, 5, "model is missing required key 'provider'");
    config_errors_free(&errs);
}

static void test_syntax_error(void **state)
{
    (void)state;
    cfg_errors_t errs = load_fail("server:\n"
                                  "  listen: :1\n"
                                  " workers: 2\n");
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.v[0].file, "test.yaml");
    assert_int_equal(errs.v[0].line, 3);
    assert_int_equal(errs.v[0].col, 2);
    assert_non_null(strstr(errs.v[0].msg, "did not find expected key"));
    config_errors_free(&errs);

    errs = load_fail("server:\n  listen: \"unterminated\n");
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.v[0].line, 3);
    assert_int_equal(errs.v[0].col, 1);
    assert_non_null(strstr(errs.v[0].msg, "found unexpected end of stream"));
    assert_non_null(strstr(errs.v[0].msg, "line 2, column 11"));
    config_errors_free(&errs);

    errs = load_fail("server:\n  listen: \xff\n");
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.v[0].line, 2);
    assert_int_equal(errs.v[0].col, 11);
    config_errors_free(&errs);
}

static void test_anchors_rejected(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"a: &x 1\n", 1, 4, "anchors are not supported"},
        {"providers:\n  - &p {name: a, type: echo}\n", 2, 5, "anchors are not supported"},
        {"a: 1\nb: *x\n", 2, 4, "aliases are not supported"},
        {"server: {}\n---\nserver: {}\n", 2, 1, "multiple YAML documents"},
    };
    expect_cases(cases, "");
}

static void test_deep_nesting(void **state)
{
    (void)state;
    char yaml[512];
    size_t n = 0;
    for (int i = 0; i < 100; i++) yaml[n++] = '[';
    for (int i = 0; i < 100; i++) yaml[n++] = ']';
    yaml[n] = '\0';
    cfg_errors_t errs = load_fail(yaml);
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.v[0].msg, "nesting deeper than"));
    config_errors_free(&errs);
}

static void test_duplicate_names(void **state)
{
    (void)state;
    const char *yaml = "providers:\n"      /* 1 */
                       "  - name: a\n"     /* 2 */
                       "    type: echo\n"  /* 3 */
                       "  - name: a\n"     /* 4 */
                       "    type: echo\n"  /* 5 */
                       "models:\n"         /* 6 */
                       "  - name: m\n"     /* 7 */
                       "    provider: a\n" /* 8 */
                       "  - name: m\n"     /* 9 */
                       "    provider: a\n";
    cfg_errors_t errs = load_fail(yaml);
    assert_int_equal(errs.n, 2);
    expect_err(&errs, 4, 11, "duplicate provider name 'a' (first at line 2)");
    /* a model group may share a name, but not two deployments on one provider */
    expect_err(&errs, 9, 11, "duplicate deployment id 'm@a' (first at line 7)");
    config_errors_free(&errs);
}

static void test_names(void **state)
{
    (void)state;
    expect_only("providers:\n  - name: \"bad name\"\n    type: echo\n", 2, 11,
                "invalid provider name 'bad name'");
    expect_only("providers:\n  - name: \"\"\n    type: echo\n", 2, 11, "invalid provider name ''");
    cfg_errors_t errs = load_fail("providers:\n  - name: p\n    type: echo\n"
                                  "models:\n  - name: \"two words\"\n    provider: p\n");
    expect_err(&errs, 5, 11, "invalid model name 'two words'");
    config_errors_free(&errs);
    expect_only("providers:\n  - name: p\n    type: echo\n"
                "models:\n  - name: m\n    provider: p\n"
                "server:\n  default_model: nope\n",
                8, 18, "default_model 'nope' is not a configured model");
}

static void test_provider_type_unknown(void **state)
{
    (void)state;
    expect_only("providers:\n  - name: a\n    type: bedrock\n", 3, 11,
                "unknown provider type 'bedrock' (supported: openai, echo");
    /* a model referring to a provider with a bad type is not a second error */
    expect_only("providers:\n  - name: a\n    type: nope\nmodels:\n  - name: m\n    provider: a\n",
                3, 11, "unknown provider type 'nope'");
    /* Found by tests/fuzz/fuzz_config: a model on a provider whose type is
     * missing (strcmp on NULL) or unknown with a path (NULL->remote) crashed
     * the loader; only the provider's own error is reported. */
    expect_only("providers:\n  - name: a\nmodels:\n  - name: m\n    provider: a\n", 2, 5,
                "missing required key 'type'");
    expect_only("providers:\n  - name: a\nmodels:\n  - name: m\n    provider: a\n"
                "    path: x.gguf\n",
                2, 5, "missing required key 'type'");
    expect_only("providers:\n  - name: a\n    type: nope\nmodels:\n  - name: m\n"
                "    provider: a\n    path: x.gguf\n",
                3, 11, "unknown provider type 'nope'");
}

static void test_base_url(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *want; /* NULL: error expected */
    } cases[] = {
        {"http://localhost:8000", "http://localhost:8000"},
        {"https://api.example.com/v1/", "https://api.example.com/v1"},
        {"https://api.example.com///", "https://api.example.com"},
        {"ftp://example.com", NULL},
        {"example.com", NULL},
        {"http://", NULL},
        {"https:///", NULL},
        {"\"http://a b\"", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml),
                 "providers:\n  - name: a\n    type: openai\n    base_url: %s\n", cases[i].in);
        cfg_errors_t errs = {0};
        config_t *c = load(yaml, &errs);
        if (cases[i].want) {
            if (!c) dump(&errs);
            assert_non_null(c);
            assert_string_equal(c->providers[0].base_url, cases[i].want);
            config_unref(c);
        } else {
            if (c) fail_msg("base_url %s accepted", cases[i].in);
            assert_int_equal(errs.n, 1);
            assert_int_equal(errs.v[0].line, 4);
            assert_int_equal(errs.v[0].col, 15);
            assert_non_null(strstr(errs.v[0].msg, "base_url"));
            config_errors_free(&errs);
        }
    }
    expect_only("providers:\n  - name: a\n    type: echo\n    base_url: http://x\n", 4, 5,
                "base_url is not allowed for provider type 'echo'");
}

static void test_listen(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        bool ok;
    } cases[] = {
        {"127.0.0.1:8080", true},
        {"localhost:1", true},
        {":8080", true},
        {"0.0.0.0:65535", true},
        {"\"[::]:0\"", true},
        {"\"[::1]:443\"", true},
        {":0", true},
        {"127.0.0.1", false},
        {"127.0.0.1:65536", false},
        {"127.0.0.1:-1", false},
        {"\"127.0.0.1:\"", false},
        {"::1:80", false},
        {"\"[::1]\"", false},
        {"\"[nothex]:80\"", false},
        {"\"[]:80\"", false},
        {"host name:80", false},
        {":080808", false},
        {"a:80x", false},
        {"\"[::1]80\"", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[128];
        snprintf(yaml, sizeof(yaml), "server:\n  listen: %s\n", cases[i].in);
        cfg_errors_t errs = {0};
        config_t *c = load(yaml, &errs);
        if (cases[i].ok) {
            if (!c) dump(&errs);
            assert_non_null(c);
            config_unref(c);
        } else {
            if (c) fail_msg("listen %s accepted", cases[i].in);
            assert_int_equal(errs.n, 1);
            assert_int_equal(errs.v[0].line, 2);
            assert_int_equal(errs.v[0].col, 11);
            assert_non_null(strstr(errs.v[0].msg, "invalid listen address"));
            config_errors_free(&errs);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* value parsers                                                             */

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int ok;
        uint64_t ms;
    } cases[] = {
        {"250ms", 1, 250},
        {"30s", 1, 30000},
        {"5m", 1, 300000},
        {"1h", 1, 3600000},
        {"30", 1, 30000},
        {"0", 1, 0},
        {"0ms", 1, 0},
        {"007s", 1, 7000},
        {"18446744073709551615ms", 1, UINT64_MAX},
        {"18446744073709551616ms", 0, 0}, /* digits overflow */
        {"18446744073709551615s", 0, 0},  /* multiplication overflow */
        {"5124095576031h", 0, 0},         /* just over UINT64_MAX ms */
        {"5124095576030h", 1, 5124095576030ull * 3600000ull},
        {"", 0, 0},
        {"s", 0, 0},
        {"-5s", 0, 0},
        {"+5s", 0, 0},
        {" 5s", 0, 0},
        {"5s ", 0, 0},
        {"5 s", 0, 0},
        {"1.5s", 0, 0},
        {"5sec", 0, 0},
        {"5d", 0, 0},
        {"5S", 0, 0},
        {"5msx", 0, 0},
        {"abc", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t out = 12345;
        int rc = config_parse_duration_ms(cases[i].in, &out);
        if (cases[i].ok) {
            if (rc != 0) fail_msg("duration '%s' rejected", cases[i].in);
            assert_int_equal(out, cases[i].ms);
        } else {
            if (rc != -1) fail_msg("duration '%s' accepted", cases[i].in);
            assert_int_equal(out, 12345); /* untouched on failure */
        }
    }
    uint64_t out;
    assert_int_equal(config_parse_duration_ms(NULL, &out), -1);
}

static void test_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int ok;
        size_t bytes;
    } cases[] = {
        {"4MiB", 1, 4u << 20},
        {"512KiB", 1, 512u << 10},
        {"1GiB", 1, 1u << 30},
        {"100B", 1, 100},
        {"4MB", 1, 4000000},
        {"4KB", 1, 4000},
        {"2GB", 1, 2000000000},
        {"1TiB", 1, (size_t)1 << 40},
        {"1234", 1, 1234},
        {"0", 1, 0},
        {"18446744073709551615", 1, SIZE_MAX},
        {"18446744073709551616", 0, 0}, /* digits overflow */
        {"17179869184GiB", 0, 0},       /* 2^34 GiB = 2^64: multiplication overflow */
        {"17179869183GiB", 1, (size_t)17179869183ull << 30},
        {"", 0, 0},
        {"MiB", 0, 0},
        {"-1", 0, 0},
        {"4mib", 0, 0},
        {"4 MiB", 0, 0},
        {"4M", 0, 0},
        {"1.5GiB", 0, 0},
        {"4MiBs", 0, 0},
        {"lots", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t out = 12345;
        int rc = config_parse_size(cases[i].in, &out);
        if (cases[i].ok) {
            if (rc != 0) fail_msg("size '%s' rejected", cases[i].in);
            assert_int_equal(out, cases[i].bytes);
        } else {
            if (rc != -1) fail_msg("size '%s' accepted", cases[i].in);
            assert_int_equal(out, 12345);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* lifecycle and lookups                                                     */

static void test_embedded_default(void **state)
{
    (void)state;
    cfg_errors_t errs = {0};
    config_t *c = config_default(&errs);
    if (!c) dump(&errs);
    assert_non_null(c);
    assert_string_equal(c->source, "<embedded>");
    assert_string_equal(c->server.listen, "127.0.0.1:8080");
    assert_string_equal(c->server.default_model, "demo");
    assert_int_equal(c->n_providers, 2);
    assert_string_equal(c->providers[0].name, "local");
    assert_string_equal(c->providers[0].type, "llamacpp");
    assert_string_equal(c->providers[1].name, "builtin");
    assert_string_equal(c->providers[1].type, "echo");
    assert_int_equal(c->n_models, 2);
    assert_string_equal(c->models[0].name, "demo");
    assert_string_equal(c->models[0].path, "skuld-data/demo.gguf");
    assert_ptr_equal(c->models[0].provider, &c->providers[0]);
    assert_string_equal(c->models[1].name, "echo");
    assert_ptr_equal(c->models[1].provider, &c->providers[1]);
    assert_ptr_equal(config_find_model(c, "echo", 4), &c->models[1]);
    config_unref(c);
}

static void test_refcount(void **state)
{
    (void)state;
    cfg_errors_t errs = {0};
    config_t *c = config_default(&errs);
    assert_non_null(c);
    assert_int_equal(atomic_load(&c->refs), 1);
    assert_ptr_equal(config_ref(c), c);
    assert_ptr_equal(config_ref(c), c);
    assert_int_equal(atomic_load(&c->refs), 3);
    config_unref(c);
    config_unref(c);
    assert_int_equal(atomic_load(&c->refs), 1);
    assert_string_equal(c->models[0].name, "demo"); /* still alive */
    config_unref(c);                                /* freed: LSan checks */
    config_unref(NULL);
    assert_null(config_ref(NULL));
}

static void test_find_model(void **state)
{
    (void)state;
    cfg_errors_t errs = {0};
    char yaml[256];
    snprintf(yaml, sizeof(yaml),
             "%smodels:\n  - {name: gpt, provider: local}\n"
             "  - {name: gpt-4o, provider: local}\n",
             PROVIDERS_OK);
    config_t *c = load(yaml, &errs);
    assert_non_null(c);
    const char *body = "gpt-4o\", \"stream\": true";
    assert_ptr_equal(config_find_model(c, body, 6), &c->models[1]);
    assert_ptr_equal(config_find_model(c, body, 3), &c->models[0]);
    assert_null(config_find_model(c, body, 5));
    assert_null(config_find_model(c, "", 0));
    assert_null(config_find_model(c, "GPT", 3));
    config_unref(c);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/skuld_test_config_XXXXXX";
    const char *yaml = "server:\n  listen: :0\n  bogus: 1\n";
    write_temp(path, yaml);

    cfg_errors_t errs = {0};
    assert_null(config_load_file(path, &errs));
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.v[0].file, path);
    assert_int_equal(errs.v[0].line, 3);
    assert_int_equal(errs.v[0].col, 3);
    config_errors_free(&errs);

    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    yaml = "server:\n  listen: :0\n";
    assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    config_t *c = config_load_file(path, &errs);
    assert_non_null(c);
    assert_string_equal(c->source, path);
    assert_string_equal(c->server.listen, ":0");
    config_unref(c);
    unlink(path);

    assert_null(config_load_file(path, &errs));
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.v[0].line, 0);
    assert_non_null(strstr(errs.v[0].msg, "No such file or directory"));
    config_errors_free(&errs);

    /* a NULL error list is allowed: the load still fails */
    assert_null(load("server:\n  bogus: 1\n", NULL));
}

/* No secret value may appear in any message, whatever error sits next to it. */
static void test_secret_never_in_errors(void **state)
{
    (void)state;
    const char *secret = "sk-SUPERSECRET-0123456789";
    setenv("SKULD_TEST_SECRET", secret, 1);
    setenv("SKULD_TEST_SECRET_CTL", "sk-SUPERSECRET-0123456789\r\nX-Evil: 1", 1);
    char path[] = "/tmp/skuld_test_secret_XXXXXX";
    const char *fcontent = "sk-SUPERSECRET-0123456789\nsecond line\n";
    write_temp(path, fcontent);

    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "providers:\n"
             "  - name: e1\n" /* api_key on a local provider */
             "    type: echo\n"
             "    api_key: %s\n"
             "  - name: o1\n" /* inline key next to a bad base_url and unknown key */
             "    type: openai\n"
             "    base_url: ftp://nope\n"
             "    api_key: %s\n"
             "    api_kye: %s\n"
             "  - name: o2\n" /* inline key but missing base_url */
             "    type: openai\n"
             "    api_key: \"%s\"\n"
             "  - name: o3\n" /* env secret with control characters */
             "    type: openai\n"
             "    base_url: http://x\n"
             "    api_key: env:SKULD_TEST_SECRET_CTL\n"
             "  - name: o4\n" /* file secret with a newline inside */
             "    type: openai\n"
             "    base_url: http://x\n"
             "    api_key: file:%s\n"
             "  - name: o5\n" /* inline key with a control character */
             "    type: openai\n"
             "    base_url: http://x\n"
             "    api_key: \"%s\\u0007\"\n"
             "  - name: o6\n" /* api_key of the wrong type */
             "    type: openai\n"
             "    base_url: http://x\n"
             "    api_key: [%s]\n"
             "  - name: o7\n" /* env secret fine, bad type */
             "    type: nope\n"
             "    api_key: env:SKULD_TEST_SECRET\n"
             "  - name: bad name\n"
             "    type: echo\n",
             secret, secret, secret, secret, path, secret, secret);
    cfg_errors_t errs = load_fail(yaml);
    if (errs.n != 10) dump(&errs);
    assert_int_equal(errs.n, 10);
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    assert_non_null(f);
    config_errors_print(&errs, f);
    fclose(f);
    if (strstr(out, "SUPERSECRET")) {
        fputs(out, stderr);
        fail_msg("a secret appears in the errors");
    }
    expect_err(&errs, 4, 5, "api_key is not allowed for provider type 'echo'");
    expect_err(&errs, 16, 14, "environment variable SKULD_TEST_SECRET_CTL contains control");
    expect_err(&errs, 20, 14, "contains control characters");
    expect_err(&errs, 24, 14, "api_key contains control characters");
    expect_err(&errs, 28, 14, "api_key: expected a string, got a sequence");
    expect_err(&errs, 32, 11, "invalid provider name 'bad name'");
    free(out);
    config_errors_free(&errs);
    unlink(path);
    unsetenv("SKULD_TEST_SECRET");
    unsetenv("SKULD_TEST_SECRET_CTL");
}

static void test_ytree_positions(void **state)
{
    (void)state;
    const char *y = "a:\n  - x\n  - 'y'\nb: {c: 12}\n";
    ytree_error_t err;
    ytree_t *t = ytree_parse(y, strlen(y), &err);
    assert_non_null(t);
    const ynode_t *root = ytree_root(t);
    assert_int_equal(root->kind, YNODE_MAPPING);
    assert_int_equal(root->n, 2);
    const ynode_t *a = ytree_map_get(root, "a");
    assert_int_equal(a->kind, YNODE_SEQUENCE);
    assert_int_equal(a->n, 2);
    assert_int_equal(a->items[0]->line, 2);
    assert_int_equal(a->items[0]->col, 5);
    assert_int_equal(a->items[0]->style, YSTYLE_PLAIN);
    assert_int_equal(a->items[1]->style, YSTYLE_SINGLE_QUOTED);
    assert_string_equal(a->items[1]->str, "y");
    const ynode_t *c = ytree_map_get(ytree_map_get(root, "b"), "c");
    assert_non_null(c);
    assert_int_equal(c->line, 4);
    assert_int_equal(c->col, 8);
    assert_string_equal(c->str, "12");
    assert_null(ytree_map_get(root, "zz"));
    assert_null(ytree_map_get(a, "x"));
    ytree_free(t);

    t = ytree_parse("", 0, &err);
    assert_non_null(t);
    assert_null(ytree_root(t));
    ytree_free(t);
}

/* Deployment metadata: every key parsed into cfg_model_t, defaults otherwise. */
static void test_model_metadata(void **state)
{
    (void)state;
    const char *y = "providers:\n"
                    "  - {name: p, type: openai, base_url: 'http://h/v1'}\n"
                    "  - {name: e, type: echo}\n"
                    "models:\n"
                    "  - name: a\n"
                    "    provider: p\n"
                    "    price: {input: 2.5, output: 10, cached: 1.25}\n"
                    "    context_window: 128000\n"
                    "    capabilities: [chat, vision, tools]\n"
                    "    quality: 0.9\n"
                    "    tags: [fast, cheap]\n"
                    "    weight: 3\n"
                    "    params_b: 70\n"
                    "    hardware: cloud\n"
                    "    region: eu-west\n"
                    "  - name: b\n"
                    "    provider: e\n"
                    "    path: /models/b.gguf\n"
                    "    parallel: 8\n";
    config_t *c = load_ok(y);
    const cfg_model_t *a = config_find_model(c, "a", 1), *b = config_find_model(c, "b", 1);
    assert_true(a->price.input == 2.5 && a->price.output == 10 && a->price.cached == 1.25);
    assert_int_equal(a->context_window, 128000);
    assert_int_equal(a->capabilities, CAP_CHAT | CAP_VISION | CAP_TOOLS);
    assert_true(a->quality == 0.9);
    assert_int_equal(a->tags.n, 2);
    assert_string_equal(a->tags.v[1], "cheap");
    assert_int_equal(a->weight, 3);
    assert_true(a->params_b == 70);
    assert_string_equal(a->hardware, "cloud");
    assert_string_equal(a->region, "eu-west");
    assert_null(a->path);
    /* defaults */
    assert_int_equal(b->capabilities, CAP_CHAT | CAP_COMPLETIONS | CAP_EMBEDDINGS); /* echo's */
    assert_true(b->quality == 0.5);
    assert_int_equal(b->weight, 1);
    assert_int_equal(b->context_window, 0);
    assert_int_equal(b->parallel, 8);
    assert_string_equal(b->path, "/models/b.gguf");
    assert_int_equal(config_capability("vision"), CAP_VISION);
    assert_int_equal(config_capability("nope"), 0);
    assert_string_equal(config_capability_name(CAP_JSON), "json");
    config_unref(c);
}

/* Without `capabilities:` a model gets its provider type's; a list replaces them. */
static void test_capability_defaults(void **state)
{
    (void)state;
    const char *y = "providers:\n"
                    "  - {name: o, type: openai, base_url: 'http://h/v1'}\n"
                    "  - {name: a, type: anthropic, base_url: 'http://h'}\n"
                    "  - {name: g, type: gemini, base_url: 'http://h'}\n"
                    "  - {name: l, type: ollama, base_url: 'http://h'}\n"
                    "  - {name: e, type: echo}\n"
                    "models:\n"
                    "  - {name: mo, provider: o}\n"
                    "  - {name: ma, provider: a}\n"
                    "  - {name: mg, provider: g}\n"
                    "  - {name: ml, provider: l}\n"
                    "  - {name: me, provider: e}\n"
                    "  - {name: mx, provider: e, capabilities: [chat, tools, json, n]}\n"
                    "  - {name: my, provider: o, capabilities: [embeddings]}\n";
    config_t *c = load_ok(y);
    const unsigned text = CAP_CHAT | CAP_COMPLETIONS | CAP_EMBEDDINGS;
    const unsigned rich = CAP_CHAT | CAP_EMBEDDINGS | CAP_VISION | CAP_TOOLS | CAP_JSON;
    assert_int_equal(config_find_model(c, "mo", 2)->capabilities, CAP_ALL);
    assert_int_equal(config_find_model(c, "ma", 2)->capabilities,
                     CAP_CHAT | CAP_VISION | CAP_TOOLS);
    assert_int_equal(config_find_model(c, "mg", 2)->capabilities, rich);
    assert_int_equal(config_find_model(c, "ml", 2)->capabilities, rich);
    assert_int_equal(config_find_model(c, "me", 2)->capabilities, text);
    assert_int_equal(config_find_model(c, "mx", 2)->capabilities,
                     CAP_CHAT | CAP_TOOLS | CAP_JSON | CAP_N);
    assert_int_equal(config_find_model(c, "my", 2)->capabilities, CAP_EMBEDDINGS);
    assert_int_equal(config_default_capabilities("llamacpp"), text);
    assert_int_equal(config_default_capabilities("openai"), CAP_ALL);
    assert_int_equal(config_capability("n"), CAP_N);
    assert_int_equal(config_capability("audio"), CAP_AUDIO);
    assert_string_equal(config_capability_name(CAP_FILES), "files");
    config_unref(c);
}

static void test_model_metadata_errors(void **state)
{
    (void)state;
    const char *y = "providers:\n"
                    "  - {name: p, type: openai, base_url: 'http://h/v1'}\n"
                    "models:\n"
                    "  - name: a\n"
                    "    provider: p\n"
                    "    capabilities: [chat, jsn]\n"
                    "    price: {input: -1, outptu: 2}\n"
                    "    quality: 1.5\n"
                    "    path: /x.gguf\n"
                    "    tags: fast\n"
                    "    params_b: lots\n";
    cfg_errors_t errs = load_fail(y);
    expect_err(&errs, 6, 26, "unknown capability 'jsn'");
    expect_err(&errs, 7, 20, "input must be between 0 and");
    expect_err(&errs, 7, 24, "unknown key 'outptu' in price");
    expect_err(&errs, 8, 14, "quality must be between 0 and 1");
    expect_err(&errs, 9, 5, "path is only for local providers");
    expect_err(&errs, 10, 11, "tags: expected a list");
    expect_err(&errs, 11, 15, "params_b: expected a number");
    assert_int_equal(errs.n, 7);
    config_errors_free(&errs);
}

/* store.timeout (issue 26): default 5s, a duration between 100ms and 10m. */
static void test_store_timeout(void **state)
{
    (void)state;
    config_t *c = load_ok("store:\n  url: sqlite:///tmp/x.db\n");
    assert_int_equal(c->store.timeout_ms, 5000);
    config_unref(c);
    c = load_ok("store:\n  url: sqlite:///tmp/x.db\n  timeout: 1500ms\n");
    assert_int_equal(c->store.timeout_ms, 1500);
    config_unref(c);
    cfg_errors_t e = load_fail("store:\n  url: sqlite:///tmp/x.db\n  timeout: 50ms\n");
    expect_err(&e, 3, 12, "timeout must be at least 100ms");
    config_errors_free(&e);
    e = load_fail("store:\n  url: sqlite:///tmp/x.db\n  timeout: 11m\n");
    expect_err(&e, 3, 12, "store timeout must be at most 10m");
    config_errors_free(&e);
    e = load_fail("store:\n  url: sqlite:///tmp/x.db\n  timeout: soon\n");
    expect_err(&e, 3, 12, "invalid duration");
    config_errors_free(&e);
}

static void test_store_master_key_health(void **state)
{
    (void)state;
    setenv("SKULD_T_MASTER", "m4ster-secret", 1);
    const char *y = "server:\n"
                    "  master_key: env:SKULD_T_MASTER\n"
                    "  health_interval: 250ms\n"
                    "store:\n"
                    "  url: sqlite:///tmp/x.db\n"
                    "providers:\n"
                    "  - {name: p, type: openai, base_url: 'http://h/v1', health_check: chat}\n";
    config_t *c = load_ok(y);
    assert_string_equal(c->server.master_key, "m4ster-secret");
    assert_int_equal(c->server.health_interval_ms, 250);
    assert_string_equal(c->store.url, "sqlite:///tmp/x.db");
    assert_string_equal(c->providers[0].health_check, "chat");
    config_unref(c);

    cfg_errors_t e = load_fail("store:\n  url: mysql://x\n"
                               "providers:\n"
                               "  - {name: p, type: openai, base_url: 'http://h/v1', "
                               "health_check: sometimes}\n");
    expect_err(&e, 2, 8, "store url must start with sqlite://");
    expect_err(&e, 4, 68, "health_check must be models, chat or none");
    assert_int_equal(e.n, 2);
    config_errors_free(&e);
}

/* azure: api_version defaulted and checked, auth api-key|entra, api_key
 * required, base_url without query or /openai, deployment names that fit a
 * URL path segment; the azure-only keys refused for other types. */
static void test_provider_azure(void **state)
{
    (void)state;
    setenv("SKULD_T_AZ", "az-secret", 1);
    config_t *c = load_ok("providers:\n"
                          "  - {name: a, type: azure, base_url: 'https://r.openai.azure.com/', "
                          "api_key: env:SKULD_T_AZ}\n"
                          "  - {name: b, type: azure, base_url: 'https://r.openai.azure.com', "
                          "api_key: env:SKULD_T_AZ, auth: entra, api_version: 2025-01-01-preview}\n"
                          "models:\n  - {name: m, provider: a, model: gpt-4o.dep_1}\n"
                          "  - {name: n, provider: b}\n");
    assert_string_equal(c->providers[0].api_version, CONFIG_AZURE_API_VERSION);
    assert_string_equal(c->providers[0].base_url, "https://r.openai.azure.com");
    assert_false(c->providers[0].bearer);
    assert_string_equal(c->providers[0].api_key, "az-secret");
    assert_string_equal(c->providers[1].api_version, "2025-01-01-preview");
    assert_true(c->providers[1].bearer);
    assert_string_equal(c->models[0].upstream_model, "gpt-4o.dep_1");
    config_unref(c);

    static const struct {
        const char *yaml;
        int line, col;
        const char *msg;
    } bad[] = {
        {"providers:\n  - {name: a, type: azure, base_url: 'https://r', api_key: k, "
         "api_version: '2024-10'}\n",
         2, 76, "api_version '2024-10' is not an Azure OpenAI API version"},
        {"providers:\n  - {name: a, type: azure, base_url: 'https://r', api_key: k, "
         "api_version: 2024-10-21-beta}\n",
         2, 76, "is not an Azure OpenAI API version"},
        {"providers:\n  - {name: a, type: azure, base_url: 'https://r', api_key: k, auth: aad}\n",
         2, 69, "auth must be api-key or entra, not 'aad'"},
        {"providers:\n  - {name: a, type: azure, base_url: 'https://r'}\n", 2, 5,
         "provider type 'azure' needs api_key"},
        {"providers:\n  - {name: a, type: azure, base_url: 'https://r?x=1', api_key: k}\n", 2, 38,
         "must not have a query"},
        {"providers:\n  - {name: a, type: azure, base_url: 'https://r/openai/', api_key: k}\n", 2,
         38, "without /openai"},
        {"providers:\n  - {name: a, type: openai, base_url: 'http://h', api_version: 2024-10-21}\n",
         2, 51, "api_version is only for provider type 'azure'"},
        {"providers:\n  - {name: a, type: openai, base_url: 'http://h', auth: entra}\n", 2, 51,
         "auth is only for provider type 'azure'"},
        {"providers:\n  - {name: a, type: azure, base_url: 'https://r', api_key: k}\n"
         "models:\n  - {name: m, provider: a, model: 'dep/../x'}\n",
         4, 35, "an azure deployment name"},
        {"providers:\n  - {name: a, type: azure, base_url: 'https://r', api_key: k}\n"
         "models:\n  - {name: 'm?x', provider: a}\n",
         4, 12, "an azure deployment name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_only(bad[i].yaml, bad[i].line, bad[i].col, bad[i].msg);
}

/* config_build: file text + runtime models (JSON); errors name "registry". */
static void test_build_with_runtime_models(void **state)
{
    (void)state;
    const char *y = "providers:\n  - {name: p, type: openai, base_url: 'http://h/v1'}\n"
                    "models:\n  - {name: filem, provider: p}\n";
    const char *extra[] = {"{\"name\":\"rt\",\"provider\":\"p\",\"tags\":[\"x\"]}"};
    cfg_errors_t errs = {0};
    config_t *c = config_build(y, strlen(y), "f.yaml", extra, 1, &errs);
    if (!c) dump(&errs);
    assert_non_null(c);
    assert_int_equal(c->n_models, 2);
    const cfg_model_t *rt = config_find_model(c, "rt", 2);
    assert_non_null(rt);
    assert_true(rt->runtime);
    assert_false(config_find_model(c, "filem", 5)->runtime);
    assert_string_equal(rt->tags.v[0], "x");
    assert_string_equal(c->text, y);
    config_unref(c);

    const char *bad[] = {"{\"name\":\"filem\",\"provider\":\"p\"}",
                         "{\"name\":\"r2\",\"provider\":\"nope\"}", "[1]"};
    c = config_build(y, strlen(y), "f.yaml", bad, 3, &errs);
    assert_null(c);
    assert_int_equal(errs.n, 3);
    for (size_t i = 0; i < errs.n; i++) assert_string_equal(errs.v[i].file, "registry");
    config_errors_free(&errs);
}

/* ------------------------------------------------------------------------ */
/* resilience (issue 7): server.resilience, model overrides, fallbacks       */

static const char resil_base[] = "providers:\n"
                                 "  - name: p\n"
                                 "    type: echo\n";

static void test_resilience_defaults_and_overrides(void **state)
{
    (void)state;
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "server:\n"
             "  resilience:\n"
             "    max_attempts: 4\n"
             "    backoff_base: 10ms\n"
             "    hedge_delay: p95\n"
             "    breaker_failures: 7\n"
             "%s"
             "models:\n"
             "  - name: a\n"
             "    provider: p\n"
             "    fallbacks: [b, c]\n"
             "    on_content_policy: c\n"
             "    resilience:\n"
             "      max_attempts: 2\n"
             "      hedge_delay: 200ms\n"
             "      max_concurrency: 8\n"
             "  - name: b\n"
             "    provider: p\n"
             "  - name: c\n"
             "    provider: p\n"
             "    resilience: {hedge_delay: off, queue_timeout: 1s}\n",
             resil_base);
    config_t *c = load_ok(yaml);
    const cfg_resilience_t *d = &c->server.resilience;
    assert_int_equal(d->max_attempts, 4);
    assert_int_equal(d->backoff_base_ms, 10);
    assert_int_equal(d->backoff_max_ms, 250); /* default kept */
    assert_int_equal(d->hedge, CFG_HEDGE_P95);
    assert_int_equal(d->breaker_failures, 7);
    assert_true(d->retry_budget > 0.19 && d->retry_budget < 0.21);
    assert_int_equal(d->retry_budget_min, 3);
    const cfg_model_t *a = config_find_model(c, "a", 1), *b = config_find_model(c, "b", 1),
                      *cm = config_find_model(c, "c", 1);
    /* a: its own keys over the server's */
    assert_int_equal(a->resil.max_attempts, 2);
    assert_int_equal(a->resil.hedge, CFG_HEDGE_FIXED);
    assert_int_equal(a->resil.hedge_delay_ms, 200);
    assert_int_equal(a->resil.max_concurrency, 8);
    assert_int_equal(a->resil.backoff_base_ms, 10);
    assert_int_equal(a->resil.breaker_failures, 7);
    /* b: the server's */
    assert_int_equal(b->resil.max_attempts, 4);
    assert_int_equal(b->resil.hedge, CFG_HEDGE_P95);
    assert_int_equal(cm->resil.hedge, CFG_HEDGE_OFF);
    assert_int_equal(cm->resil.queue_timeout_ms, 1000);
    /* references resolved */
    assert_int_equal(a->fallbacks.n, 2);
    assert_ptr_equal(a->fallback_models[0], b);
    assert_ptr_equal(a->fallback_models[1], cm);
    assert_ptr_equal(a->content_policy_alt, cm);
    assert_null(b->content_policy_alt);
    config_unref(c);
}

static void test_resilience_plain_defaults(void **state)
{
    (void)state;
    config_t *c = load("{}", NULL);
    assert_non_null(c);
    const cfg_resilience_t *d = &c->server.resilience;
    assert_int_equal(d->max_attempts, 3);
    assert_int_equal(d->retries_per_deployment, 0);
    assert_int_equal(d->hedge, CFG_HEDGE_OFF);
    assert_int_equal(d->breaker_failures, 5);
    assert_int_equal(d->ejection_time_ms, 30000);
    assert_int_equal(d->max_ejection_time_ms, 300000);
    assert_int_equal(d->max_concurrency, 0);
    assert_int_equal(d->queue_size, 1024);
    assert_int_equal(d->queue_timeout_ms, 5000);
    config_unref(c);
}

static void test_resilience_errors(void **state)
{
    (void)state;
    char yaml[2048];
    /* unknown fallback, at the list item */
    snprintf(yaml, sizeof yaml,
             "%s"
             "models:\n"
             "  - name: a\n"
             "    provider: p\n"
             "    fallbacks: [b, nope]\n"
             "  - name: b\n"
             "    provider: p\n",
             resil_base);
    expect_only(yaml, 7, 20, "fallbacks: 'nope' is not a configured model");
    /* itself */
    snprintf(yaml, sizeof yaml,
             "%s"
             "models:\n"
             "  - name: a\n"
             "    provider: p\n"
             "    fallbacks:\n"
             "      - a\n",
             resil_base);
    expect_only(yaml, 8, 9, "cannot fall back to itself");
    /* unknown alternate */
    snprintf(yaml, sizeof yaml,
             "%s"
             "models:\n"
             "  - name: a\n"
             "    provider: p\n"
             "    on_content_policy: zz\n",
             resil_base);
    expect_only(yaml, 7, 24, "on_content_policy: 'zz' is not a configured model");
    /* bad hedge, unknown key, out of range */
    expect_only("server:\n  resilience:\n    hedge_delay: soon\n", 3, 18,
                "hedge_delay: expected off, p95 or a duration");
    expect_only("server:\n  resilience:\n    max_atempts: 3\n", 3, 5,
                "unknown key 'max_atempts' in resilience (did you mean 'max_attempts'?)");
    expect_only("server:\n  resilience:\n    retry_budget: -1\n", 3, 19,
                "retry_budget must be between");
    expect_only("server:\n  resilience: 3\n", 2, 15, "resilience: expected a mapping");
    snprintf(yaml, sizeof yaml,
             "%s"
             "models:\n"
             "  - name: a\n"
             "    provider: p\n"
             "    resilience:\n"
             "      breaker_failure_rate: 2\n",
             resil_base);
    expect_only(yaml, 8, 29, "breaker_failure_rate must be between 0 and 1");
}

static void test_resilience_runtime_model_refs(void **state)
{
    (void)state;
    const char *extra[] = {"{\"name\":\"r1\",\"provider\":\"p\",\"fallbacks\":[\"a\"]}",
                           "{\"name\":\"r2\",\"provider\":\"p\",\"fallbacks\":[\"missing\"]}"};
    char yaml[512];
    snprintf(yaml, sizeof yaml, "%smodels:\n  - name: a\n    provider: p\n", resil_base);
    cfg_errors_t errs = {0};
    config_t *c = config_build(yaml, strlen(yaml), "test.yaml", extra, 1, &errs);
    if (!c) dump(&errs);
    assert_non_null(c);
    assert_ptr_equal(config_find_model(c, "r1", 2)->fallback_models[0],
                     config_find_model(c, "a", 1));
    config_unref(c);
    c = config_build(yaml, strlen(yaml), "test.yaml", extra, 2, &errs);
    assert_null(c);
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.v[0].file, "registry");
    assert_non_null(strstr(errs.v[0].msg, "'missing' is not a configured model"));
    config_errors_free(&errs);
}

/* ------------------------------------------------------------------------ */
/* issue 8: redis, auth, limits, budgets                                     */

static void test_policy_sections(void **state)
{
    (void)state;
    char kf[] = "/tmp/skuld-jwtkey-XXXXXX";
    write_temp(kf, "sekret\n");
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "providers:\n  - {name: p, type: echo}\n"
             "models:\n  - {name: a, provider: p}\n  - {name: local, provider: p}\n"
             "redis:\n  url: redis://127.0.0.1:6380/2\n  timeout: 80ms\n  on_failure: closed\n"
             "auth:\n  required: true\n  jwt:\n    algorithms: [HS256]\n    issuer: iss\n"
             "    audience: aud\n    keys_file: %s\n"
             "limits:\n  rpm: 1000\n  tpm: 50000\n  default_max_tokens: 256\n"
             "  teams:\n    - {name: research, rpm: 10, tpm: 100}\n"
             "  models:\n    - {name: a, rpm: 5}\n"
             "budgets:\n  on_exceeded: fallback\n  fallback_model: local\n"
             "  teams:\n    - {name: research, budget_usd: 12.5, period: weekly}\n",
             kf);
    cfg_errors_t errs = {0};
    config_t *c = config_load_string(yaml, strlen(yaml), "t.yaml", &errs);
    if (!c) dump(&errs);
    assert_non_null(c);
    assert_string_equal(c->redis.url, "redis://127.0.0.1:6380/2");
    assert_int_equal(c->redis.timeout_ms, 80);
    assert_false(c->redis.fail_open);
    assert_true(c->auth.required);
    assert_true(c->auth.jwt_on);
    assert_string_equal(c->auth.jwt.key, "sekret");
    assert_string_equal(c->auth.jwt.user_claim, "sub");
    assert_int_equal(c->limits.rpm, 1000);
    assert_int_equal(c->limits.default_max_tokens, 256);
    assert_int_equal(c->limits.n_teams, 1);
    assert_int_equal(c->limits.teams[0].tpm, 100);
    assert_int_equal(c->limits.models[0].rpm, 5);
    assert_true(c->budgets.fallback);
    assert_int_equal(c->budgets.n_teams, 1);
    assert_int_equal(c->budgets.teams[0].period, BUDGET_WEEKLY);
    assert_true(c->budgets.teams[0].usd == 12.5);
    config_unref(c);
    unlink(kf);
    /* defaults without the sections */
    c = config_load_string(PROVIDERS_OK, strlen(PROVIDERS_OK), "t.yaml", &errs);
    assert_non_null(c);
    assert_int_equal(c->redis.timeout_ms, 50);
    assert_true(c->redis.fail_open);
    assert_false(c->auth.required);
    assert_int_equal(c->limits.default_max_tokens, 1024);
    config_unref(c);
}

static void test_policy_errors(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"redis:\n  url: http://x\n", 2, 8, "redis url must start with redis://"},
        {"redis:\n  url: redis://x\n  on_failure: maybe\n", 3, 15,
         "on_failure must be open or closed"},
        {"auth:\n  jwt:\n    algorithms: [none]\n    keys_file: /etc/hostname\n", 3, 17,
         "'none' is not allowed"},
        {"limits:\n  teams:\n    - {name: x, rpm: -1}\n", 3, 22, "rpm must be between 0 and"},
        {"limits:\n  models:\n    - {name: nope, rpm: 1}\n", 3, 5,
         "'nope' is not a configured model"},
        {"budgets:\n  teams:\n    - {name: x, budget_usd: 1, period: yearly}\n", 3, 40,
         "period must be daily, weekly or monthly"},
        {"budgets:\n  on_exceeded: fallback\n", 2, 16, "needs budgets.fallback_model"},
    };
    expect_cases(cases, "");
}

/* a route's resilience: over server.resilience; none = NULL (the models' own) */
static void test_route_resilience(void **state)
{
    (void)state;
    const char *y = "server:\n  resilience: {max_attempts: 4, backoff_base: 10ms}\n"
                    "providers:\n  - {name: a, type: echo}\n"
                    "models:\n  - {name: m, provider: a}\n"
                    "routes:\n"
                    "  - {name: r1, candidates: [m], resilience: {hedge_delay: 150ms}}\n"
                    "  - {name: r2, candidates: [m]}\n";
    config_t *c = load_ok(y);
    const cfg_route_t *r1 = config_find_route(c, "r1", 2), *r2 = config_find_route(c, "r2", 2);
    assert_non_null(r1->resil);
    assert_int_equal(r1->resil->hedge, CFG_HEDGE_FIXED);
    assert_int_equal(r1->resil->hedge_delay_ms, 150);
    assert_int_equal(r1->resil->max_attempts, 4);     /* from the server */
    assert_int_equal(r1->resil->backoff_base_ms, 10); /* from the server */
    assert_null(r2->resil);
    config_unref(c);
    expect_only("providers:\n  - {name: a, type: echo}\nmodels:\n  - {name: m, provider: a}\n"
                "routes:\n  - {name: r, candidates: [m], resilience: {max_attempts: 99}}\n",
                6, 59, "max_attempts must be between 1 and 10");
}

/* routing (issue 6): model groups, deployment ids, routes and their errors */
static void test_routes(void **state)
{
    (void)state;
    const char *y = "providers:\n"                                                      /* 1 */
                    "  - {name: a, type: echo}\n"                                       /* 2 */
                    "  - {name: b, type: echo}\n"                                       /* 3 */
                    "models:\n"                                                         /* 4 */
                    "  - {name: m, provider: a, capacity: {rpm: 60, concurrency: 4}}\n" /* 5 */
                    "  - {name: m, provider: b, balance: p2c}\n"                        /* 6 */
                    "  - {name: solo, provider: a, id: solo-1}\n"                       /* 7 */
                    "routes:\n"                                                         /* 8 */
                    "  - name: auto\n"                                                  /* 9 */
                    "    candidates: [m, solo]\n"                                       /* 10 */
                    "    strategy: score_weighted\n"                                    /* 11 */
                    "    weights: {cost: 0.5, quality: 0}\n"                            /* 12 */
                    "    fallbacks: [solo-1]\n"                                         /* 13 */
                    "    region: eu-west\n"                                             /* 14 */
                    "    load_threshold: 0.5\n"                                         /* 15 */
                    "    tasks:\n"                                                      /* 16 */
                    "      code: {keywords: [rust], tools: true, candidates: [m@b]}\n"
                    "server:\n  default_model: auto\n";
    cfg_errors_t errs = {0};
    config_t *c = load(y, &errs);
    if (!c) dump(&errs);
    assert_non_null(c);
    assert_int_equal(c->n_models, 3);
    assert_string_equal(c->models[0].id, "m@a");
    assert_string_equal(c->models[1].id, "m@b");
    assert_string_equal(c->models[2].id, "solo-1");
    assert_int_equal(c->models[0].cap_rpm, 60);
    assert_int_equal(c->models[0].cap_concurrency, 4);
    assert_int_equal(c->models[1].balance, ROUTE_STRAT_P2C);
    assert_int_equal(c->models[0].balance, -1);
    assert_ptr_equal(config_find_model(c, "m@b", 3), &c->models[1]);
    assert_ptr_equal(config_find_model(c, "m", 1), &c->models[0]);
    assert_int_equal(c->n_routes, 1);
    const cfg_route_t *r = config_find_route(c, "auto", 4);
    assert_non_null(r);
    assert_int_equal(r->strategy, ROUTE_STRAT_SCORE_WEIGHTED);
    assert_int_equal(r->n_cands, 3);
    assert_ptr_equal(r->cands[2], &c->models[2]);
    assert_int_equal(r->n_fallbacks, 1);
    assert_true(r->weights.w[ROUTE_F_COST] == 0.5);
    assert_true(r->weights.w[ROUTE_F_QUALITY] == 0);
    assert_true(r->weights.w[ROUTE_F_LATENCY] == config_default_weights.w[ROUTE_F_LATENCY]);
    assert_string_equal(r->region, "eu-west");
    assert_true(r->load_threshold == 0.5);
    const cfg_task_rule_t *t = &r->tasks[ROUTE_TASK_CODE];
    assert_true(t->set);
    assert_int_equal(t->tools, 1);
    assert_int_equal(t->n_cands, 1);
    assert_ptr_equal(t->cands[0], &c->models[1]);
    assert_false(r->tasks[ROUTE_TASK_CHAT].set);
    config_unref(c);
    /* a unique name is its own id */
    c = load("providers:\n  - {name: a, type: echo}\nmodels:\n  - {name: x, provider: a}\n", &errs);
    assert_non_null(c);
    assert_string_equal(c->models[0].id, "x");
    config_unref(c);
}

static void test_route_errors(void **state)
{
    (void)state;
    const char *head = "providers:\n  - {name: a, type: echo}\n" /* 1-2 */
                       "models:\n  - {name: m, provider: a}\n"   /* 3-4 */
                       "routes:\n";                              /* 5 */
    static const err_case_t routes[] = {
        {"  - {name: auto, candidates: [m, nope]}\n", 6, 34,
         "candidates: 'nope' is not a configured model or deployment id"},
        {"  - {name: auto}\n", 6, 5, "route is missing required key 'candidates'"},
        {"  - {name: auto, candidates: []}\n", 6, 30, "candidates: the list is empty"},
        {"  - {name: auto, candidates: [m], strategy: fastest}\n", 6, 45,
         "unknown strategy 'fastest' (known: score, round_robin, least_inflight, p2c, "
         "score_weighted)"},
        {"  - {name: auto, candidates: [m], weights: {speed: 1}}\n", 6, 45,
         "unknown key 'speed' in weights"},
        {"  - {name: auto, candidates: [m], weights: {cost: -1}}\n", 6, 51,
         "cost must be between 0 and 1000"},
        {"  - {name: auto, candidates: [m], weights: {quality: 0, latency: 0, cost: 0, "
         "reliability: 0, size: 0, hardware: 0, distance: 0}}\n",
         6, 44, "weights: at least one weight must be above 0"},
        {"  - {name: auto, candidates: [m], fallbacks: [zz]}\n", 6, 47,
         "fallbacks: 'zz' is not a configured model or deployment id"},
        {"  - {name: m, candidates: [m]}\n", 6, 12,
         "route name 'm' is already a model name or deployment id"},
        {"  - {name: auto, candidates: [m], tasks: {poetry: {}}}\n", 6, 43,
         "unknown key 'poetry' in tasks"},
        {"  - {name: auto, candidates: [m], tasks: {code: {candidates: [q]}}}\n", 6, 63,
         "candidates: 'q' is not a configured model or deployment id"},
        {"  - {name: auto, candidates: [m], tasks: {vision: {content_types: [smell]}}}\n", 6, 68,
         "unknown content type 'smell'"},
        {"  - {name: auto, candidates: [m], load_threshold: 2}\n", 6, 51,
         "load_threshold must be between 0.01 and 1"},
        {"  - {name: auto, candidates: [m]}\n  - {name: auto, candidates: [m]}\n", 7, 12,
         "duplicate route name 'auto'"},
    };
    expect_cases(routes, head);
    static const err_case_t deployments[] = {
        {"providers:\n  - {name: a, type: echo}\nmodels:\n"
         "  - {name: m, provider: a, balance: random}\n",
         4, 37, "unknown balance strategy 'random'"},
        {"providers:\n  - {name: a, type: echo}\n  - {name: b, type: echo}\nmodels:\n"
         "  - {name: m, provider: a, balance: p2c}\n"
         "  - {name: m, provider: b, balance: least_inflight}\n",
         6, 12, "deployments of one model must use the same balance strategy"},
        {"providers:\n  - {name: a, type: echo}\nmodels:\n"
         "  - {name: m, provider: a}\n  - {name: n, provider: a, id: m}\n",
         5, 32, "duplicate deployment id 'm' (first at line 4)"},
        {"providers:\n  - {name: a, type: echo}\nmodels:\n"
         "  - {name: m, provider: a, id: m1}\n  - {name: n, provider: a, id: m}\n",
         5, 32, "deployment id 'm' is the name of another model"},
        {"providers:\n  - {name: a, type: echo}\nmodels:\n"
         "  - {name: m, provider: a, capacity: {rpm: -2}}\n",
         4, 44, "rpm must be between 0 and"},
    };
    expect_cases(deployments, "");
}

/* ---- cache and redis sections (issue 9) ---- */

static void test_cache_section(void **state)
{
    (void)state;
    cfg_errors_t errs = {0};
    config_t *c = load("store: {url: 'sqlite:///tmp/x.db'}\n"
                       "redis: {url: 'redis://127.0.0.1:6390', timeout: 20ms, on_failure: closed}\n"
                       "cache:\n  enabled: true\n  ttl: 30s\n  max_bytes: 8MiB\n  shards: 4\n"
                       "  cache_sampled: true\n  persistent: true\n  redis: true\n"
                       "  dedupe: {window: 2s, max_joiners: 7}\n",
                       &errs);
    if (!c) dump(&errs);
    assert_non_null(c);
    assert_true(c->cache.present);
    assert_true(c->cache.enabled);
    assert_int_equal(c->cache.ttl_ms, 30000);
    assert_int_equal(c->cache.max_bytes, 8u << 20);
    assert_int_equal(c->cache.max_entry_bytes, 4u << 20);
    assert_int_equal(c->cache.shards, 4);
    assert_true(c->cache.cache_sampled);
    assert_true(c->cache.persistent);
    assert_true(c->cache.redis);
    assert_true(c->cache.dedupe.enabled);
    assert_int_equal(c->cache.dedupe.window_ms, 2000);
    assert_int_equal(c->cache.dedupe.max_joiners, 7);
    assert_string_equal(c->redis.url, "redis://127.0.0.1:6390");
    assert_int_equal(c->redis.timeout_ms, 20);
    assert_false(c->redis.fail_open);
    config_unref(c);

    c = load("cache: {}\n", &errs);
    assert_non_null(c);
    assert_true(c->cache.present);
    assert_false(c->cache.enabled);
    assert_int_equal(c->cache.ttl_ms, 60000);
    assert_int_equal(c->cache.max_bytes, 64u << 20);
    assert_int_equal(c->cache.shards, 16);
    assert_false(c->cache.cache_sampled);
    assert_true(c->cache.dedupe.enabled);
    assert_int_equal(c->cache.dedupe.window_ms, 5000);
    assert_int_equal(c->cache.dedupe.max_joiners, 1000);
    assert_int_equal(c->redis.timeout_ms, 50);
    assert_true(c->redis.fail_open);
    config_unref(c);

    /* the URL may hold a password: it is a secret reference like any other */
    setenv("SKULD_TEST_REDIS_URL", "redis://:s3cret@127.0.0.1:6391/2", 1);
    c = load("redis: {url: env:SKULD_TEST_REDIS_URL}\n", &errs);
    assert_non_null(c);
    assert_string_equal(c->redis.url, "redis://:s3cret@127.0.0.1:6391/2");
    config_unref(c);
    unsetenv("SKULD_TEST_REDIS_URL");

    c = load("server: {}\n", &errs);
    assert_non_null(c);
    assert_false(c->cache.present);
    assert_null(c->redis.url);
    config_unref(c);
}

static void test_cache_errors(void **state)
{
    (void)state;
    static const err_case_t cases[] = {
        {"cache: {enabled: true, redis: true}\n", 1, 31,
         "cache.redis needs a top-level redis section"},
        {"cache: {persistent: true}\n", 1, 21, "cache.persistent needs a store section"},
        {"cache: {ttl: 0s}\n", 1, 14, "ttl"},
        {"cache: {dedupe: {windw: 1s}}\n", 1, 18, "did you mean 'window'"},
        {"cache: {max_bytes: 1MiB, max_entry_bytes: 2MiB}\n", 1, 43,
         "max_entry_bytes is larger than max_bytes"},
        {"redis: {url: 'http://x'}\n", 1, 14, "redis url must start with redis://"},
        {"redis: {url: 'redis://x', on_failure: maybe}\n", 1, 39,
         "on_failure must be open or closed"},
        {"redis: {timeout: 1s}\n", 1, 8, "missing required key 'url'"},
    };
    expect_cases(cases, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_timeout),
        cmocka_unit_test(test_store_master_key_health),
        cmocka_unit_test(test_provider_azure),
        cmocka_unit_test(test_build_with_runtime_models),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_route_resilience),
        cmocka_unit_test(test_route_errors),
        cmocka_unit_test(test_model_metadata),
        cmocka_unit_test(test_capability_defaults),
        cmocka_unit_test(test_model_metadata_errors),
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_booleans_and_workers),
        cmocka_unit_test(test_secret_env),
        cmocka_unit_test(test_secret_file),
        cmocka_unit_test(test_secret_env_missing),
        cmocka_unit_test(test_three_errors),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_anchors_rejected),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_duplicate_names),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_provider_type_unknown),
        cmocka_unit_test(test_base_url),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_embedded_default),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_find_model),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_secret_never_in_errors),
        cmocka_unit_test(test_ytree_positions),
        cmocka_unit_test(test_resilience_defaults_and_overrides),
        cmocka_unit_test(test_resilience_plain_defaults),
        cmocka_unit_test(test_resilience_errors),
        cmocka_unit_test(test_resilience_runtime_model_refs),
        cmocka_unit_test(test_policy_sections),
        cmocka_unit_test(test_policy_errors),
        cmocka_unit_test(test_cache_section),
        cmocka_unit_test(test_cache_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
