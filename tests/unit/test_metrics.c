/*
 * test_metrics — unit tests for the Prometheus counters (src/obs/metrics).
 *
 * Series are process-global, so every test uses its own model names and only
 * looks at its own lines of the exposition. The group teardown calls
 * metrics_shutdown() so LSan sees every series freed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "obs/metrics.h"

#define MS 1000000ULL /* nanoseconds */

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

static char *render(void)
{
    buf_t b;
    buf_init(&b, 0);
    metrics_render(&b);
    char *s = strdup(buf_data(&b));
    buf_free(&b);
    return s;
}

/* Is `line` a whole line of the exposition? */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n') return true;
    return false;
}

static void expect_line(const char *text, const char *line)
{
    if (!has_line(text, line)) fail_msg("missing line: %s\n--- exposition ---\n%s", line, text);
}

static void expect_no_line_with(const char *text, const char *sub)
{
    if (strstr(text, sub)) fail_msg("unexpected \"%s\" in exposition", sub);
}

static size_t count_occurrences(const char *text, const char *sub)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, sub)) != NULL; p += strlen(sub)) n++;
    return n;
}

/* ------------------------------------------------------------------------ */
/* tests                                                                     */

static void test_series_get_or_create(void **state)
{
    (void)state;
    metrics_series_t *a = metrics_series_get("goc-m", "goc-p");
    assert_non_null(a);
    assert_string_equal(a->model, "goc-m");
    assert_string_equal(a->provider, "goc-p");
    assert_ptr_equal(metrics_series_get("goc-m", "goc-p"), a);
    /* The key is the pair, compared exactly. */
    metrics_series_t *b = metrics_series_get("goc-m", "goc-q");
    metrics_series_t *c = metrics_series_get("goc-n", "goc-p");
    metrics_series_t *d = metrics_series_get("GOC-M", "goc-p");
    assert_ptr_not_equal(a, b);
    assert_ptr_not_equal(a, c);
    assert_ptr_not_equal(a, d);
    assert_ptr_not_equal(b, c);
    /* Fresh series start at zero. */
    assert_int_equal(atomic_load(&b->in_flight), 0);
    assert_int_equal(atomic_load(&b->latency_count), 0);
    /* Keys are copied: a caller's buffer may change afterwards. */
    char model[16] = "goc-copy";
    metrics_series_t *e = metrics_series_get(model, "goc-p");
    strcpy(model, "goc-zzzz");
    assert_ptr_equal(metrics_series_get("goc-copy", "goc-p"), e);
    /* ("", "") for requests that never resolved a model. */
    metrics_series_t *u = metrics_series_get("", "");
    assert_non_null(u);
    assert_ptr_equal(metrics_series_get("", ""), u);
}

static void test_begin_end(void **state)
{
    (void)state;
    metrics_series_t *s = metrics_series_get("be-m", "be-p");
    metrics_request_begin(s);
    metrics_request_begin(s);
    assert_int_equal(atomic_load(&s->in_flight), 2);
    metrics_request_end(s, 200, 1500000); /* 1.5 ms */
    assert_int_equal(atomic_load(&s->in_flight), 1);
    assert_int_equal(atomic_load(&s->requests_by_status[200]), 1);
    assert_int_equal(atomic_load(&s->latency_count), 1);
    assert_int_equal(atomic_load(&s->latency_sum_us), 1500);
    /* 1.5 ms lands in the 2.5 ms bucket (index 1), not the 1 ms one. */
    assert_int_equal(atomic_load(&s->latency_buckets[0]), 0);
    assert_int_equal(atomic_load(&s->latency_buckets[1]), 1);
    metrics_request_end(s, 404, 3 * 1000 * MS);
    assert_int_equal(atomic_load(&s->in_flight), 0);
    assert_int_equal(atomic_load(&s->requests_by_status[404]), 1);
    assert_int_equal(atomic_load(&s->requests_by_status[200]), 1);
    assert_int_equal(atomic_load(&s->latency_count), 2);
    assert_int_equal(atomic_load(&s->latency_sum_us), 1500 + 3000000);
    assert_int_equal(atomic_load(&s->latency_buckets[11]), 1); /* le=5 */
}

static void test_status_out_of_range(void **state)
{
    (void)state;
    metrics_series_t *s = metrics_series_get("oor-m", "oor-p");
    static const int statuses[] = {0, -1, 42, 99, 600, 1000, 599};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        metrics_request_begin(s);
        metrics_request_end(s, statuses[i], 0);
    }
    assert_int_equal(atomic_load(&s->requests_by_status[599]), 7);
    metrics_request_begin(s);
    metrics_request_end(s, 100, 0);
    assert_int_equal(atomic_load(&s->requests_by_status[100]), 1);
    char *t = render();
    expect_line(t, "skuld_requests_total{model=\"oor-m\",provider=\"oor-p\",status=\"599\"} 7");
    expect_line(t, "skuld_requests_total{model=\"oor-m\",provider=\"oor-p\",status=\"100\"} 1");
    free(t);
}

static void test_bucket_boundaries(void **state)
{
    (void)state;
    metrics_series_t *s = metrics_series_get("bb-m", "bb-p");
    static const struct {
        uint64_t ns;
        int bucket;
    } cases[] = {
        {0, 0},
        {1 * MS, 0}, /* le is inclusive */
        {1 * MS + 1, 1},
        {2500000, 1},
        {2500001, 2},
        {100 * MS, 6},
        {1000 * MS, 9},
        {120000 * MS, 15},
        {120000 * MS + 1000, 16}, /* +Inf */
        {3600000 * MS, 16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t before[METRICS_LATENCY_BUCKETS + 1];
        for (int b = 0; b <= METRICS_LATENCY_BUCKETS; b++)
            before[b] = atomic_load(&s->latency_buckets[b]);
        metrics_request_begin(s);
        metrics_request_end(s, 200, cases[i].ns);
        for (int b = 0; b <= METRICS_LATENCY_BUCKETS; b++) {
            uint64_t want = before[b] + (b == cases[i].bucket);
            if (atomic_load(&s->latency_buckets[b]) != want)
                fail_msg("%llu ns: bucket %d is %llu, want %llu", (unsigned long long)cases[i].ns,
                         b, (unsigned long long)atomic_load(&s->latency_buckets[b]),
                         (unsigned long long)want);
        }
    }
}

static void test_render_lines(void **state)
{
    (void)state;
    metrics_series_t *s = metrics_series_get("m", "p");
    metrics_request_begin(s);
    metrics_request_end(s, 200, 1500000);
    metrics_request_begin(s); /* one still in flight */
    metrics_upstream_error(s, UPERR_TIMEOUT);
    metrics_upstream_error(s, UPERR_TIMEOUT);
    metrics_upstream_error(s, UPERR_STATUS);
    metrics_tokens(s, 10, 5);
    metrics_tokens(s, 1, 2);
    atomic_fetch_add(&s->upstream_requests, 3);
    atomic_fetch_add(&s->stream_errors, 1);

    char *t = render();
    expect_line(t, "# TYPE skuld_requests_total counter");
    expect_line(t, "skuld_requests_total{model=\"m\",provider=\"p\",status=\"200\"} 1");
    expect_no_line_with(t, "{model=\"m\",provider=\"p\",status=\"404\"}");
    expect_line(t, "# TYPE skuld_request_duration_seconds histogram");
    static const char *const les[] = {"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
                                      "0.1",   "0.25",   "0.5",   "1",    "2.5",   "5",
                                      "10",    "30",     "60",    "120",  "+Inf"};
    for (size_t i = 0; i < sizeof les / sizeof les[0]; i++) {
        char line[160];
        snprintf(line, sizeof line,
                 "skuld_request_duration_seconds_bucket{model=\"m\",provider=\"p\",le=\"%s\"} %d",
                 les[i], i == 0 ? 0 : 1);
        expect_line(t, line);
    }
    expect_line(t, "skuld_request_duration_seconds_sum{model=\"m\",provider=\"p\"} 0.001500");
    expect_line(t, "skuld_request_duration_seconds_count{model=\"m\",provider=\"p\"} 1");
    expect_line(t, "# TYPE skuld_requests_in_flight gauge");
    expect_line(t, "skuld_requests_in_flight{model=\"m\",provider=\"p\"} 1");
    expect_line(t, "skuld_upstream_requests_total{model=\"m\",provider=\"p\"} 3");
    expect_line(t, "skuld_upstream_errors_total{model=\"m\",provider=\"p\",kind=\"connect\"} 0");
    expect_line(t, "skuld_upstream_errors_total{model=\"m\",provider=\"p\",kind=\"timeout\"} 2");
    expect_line(t, "skuld_upstream_errors_total{model=\"m\",provider=\"p\",kind=\"protocol\"} 0");
    expect_line(t, "skuld_upstream_errors_total{model=\"m\",provider=\"p\",kind=\"status\"} 1");
    expect_line(t, "skuld_stream_errors_total{model=\"m\",provider=\"p\"} 1");
    expect_line(t, "skuld_tokens_total{model=\"m\",provider=\"p\",type=\"prompt\"} 11");
    expect_line(t, "skuld_tokens_total{model=\"m\",provider=\"p\",type=\"completion\"} 7");
    expect_line(t, "skuld_build_info{version=\"" SKULD_VERSION "\"} 1");
    free(t);

    metrics_request_end(s, 200, 1500000);
    t = render();
    expect_line(t, "skuld_requests_in_flight{model=\"m\",provider=\"p\"} 0");
    expect_line(t, "skuld_requests_total{model=\"m\",provider=\"p\",status=\"200\"} 2");
    expect_line(t, "skuld_request_duration_seconds_sum{model=\"m\",provider=\"p\"} 0.003000");
    expect_line(t, "skuld_request_duration_seconds_count{model=\"m\",provider=\"p\"} 2");
    free(t);
}

static void test_cumulative_buckets(void **state)
{
    (void)state;
    metrics_series_t *s = metrics_series_get("cum-m", "cum-p");
    /* 2 requests <= 1 ms, 1 in (0.05, 0.1], 3 in (1, 2.5], 1 over 120 s */
    static const uint64_t durations[] = {500000,    1 * MS,    70 * MS,    2 * 1000 * MS,
                                         2000 * MS, 2500 * MS, 200000 * MS};
    for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
        metrics_request_begin(s);
        metrics_request_end(s, i % 2 ? 500 : 200, durations[i]);
    }
    char *t = render();
    static const struct {
        const char *le;
        int cum;
    } want[] = {{"0.001", 2}, {"0.0025", 2}, {"0.05", 2}, {"0.1", 3}, {"0.25", 3}, {"1", 3},
                {"2.5", 6},   {"5", 6},      {"60", 6},   {"120", 6}, {"+Inf", 7}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char line[160];
        snprintf(line, sizeof line,
                 "skuld_request_duration_seconds_bucket{model=\"cum-m\",provider=\"cum-p\",le="
                 "\"%s\"} %d",
                 want[i].le, want[i].cum);
        expect_line(t, line);
    }
    expect_line(t, "skuld_request_duration_seconds_count{model=\"cum-m\",provider=\"cum-p\"} 7");
    /* 0.5 + 1 + 70 + 2000 + 2000 + 2500 + 200000 ms */
    expect_line(t, "skuld_request_duration_seconds_sum{model=\"cum-m\",provider=\"cum-p\"} "
                   "206.571500");
    expect_line(t, "skuld_requests_total{model=\"cum-m\",provider=\"cum-p\",status=\"200\"} 4");
    expect_line(t, "skuld_requests_total{model=\"cum-m\",provider=\"cum-p\",status=\"500\"} 3");
    /* Bucket lines of a series are non-decreasing. */
    const char *prefix = "skuld_request_duration_seconds_bucket{model=\"cum-m\"";
    unsigned long long last = 0;
    int seen = 0;
    for (const char *p = t; (p = strstr(p, prefix)) != NULL; p++) {
        const char *sp = strchr(p, '}');
        unsigned long long v = strtoull(sp + 2, NULL, 10);
        assert_true(v >= last);
        last = v;
        seen++;
    }
    assert_int_equal(seen, METRICS_LATENCY_BUCKETS + 1);
    free(t);
}

static void test_label_escaping(void **state)
{
    (void)state;
    metrics_series_t *s = metrics_series_get("a\"b\\c", "x\ny");
    metrics_request_begin(s);
    metrics_request_end(s, 201, 0);
    char *t = render();
    expect_line(t,
                "skuld_requests_total{model=\"a\\\"b\\\\c\",provider=\"x\\ny\",status=\"201\"} 1");
    expect_line(t, "skuld_requests_in_flight{model=\"a\\\"b\\\\c\",provider=\"x\\ny\"} 0");
    /* Raw (unescaped) values never appear. */
    expect_no_line_with(t, "model=\"a\"b");
    expect_no_line_with(t, "provider=\"x\ny");
    free(t);
}

static void test_unresolved_series(void **state)
{
    (void)state;
    metrics_series_t *u = metrics_series_get("", "");
    metrics_request_begin(u);
    metrics_request_end(u, 404, 0);
    char *t = render();
    expect_line(t, "skuld_requests_total{model=\"\",provider=\"\",status=\"404\"} 1");
    expect_line(t, "skuld_requests_in_flight{model=\"\",provider=\"\"} 0");
    /* No provider: no upstream, stream error or token lines. */
    expect_no_line_with(t, "skuld_upstream_requests_total{model=\"\",provider=\"\"}");
    expect_no_line_with(t, "skuld_upstream_errors_total{model=\"\",provider=\"\"");
    expect_no_line_with(t, "skuld_stream_errors_total{model=\"\",provider=\"\"}");
    expect_no_line_with(t, "skuld_tokens_total{model=\"\",provider=\"\"");
    free(t);
}

/* Every line is a comment or `name{labels} value`; HELP/TYPE once each; a
 * series without requests has no histogram lines; creation order is kept. */
static void test_exposition_format(void **state)
{
    (void)state;
    metrics_series_t *idle = metrics_series_get("fmt-idle", "fmt-p");
    (void)idle;
    metrics_series_t *o1 = metrics_series_get("fmt-order-1", "fmt-p");
    metrics_series_t *o2 = metrics_series_get("fmt-order-2", "fmt-p");
    metrics_request_begin(o2);
    metrics_request_end(o2, 200, 0);
    metrics_request_begin(o1);
    metrics_request_end(o1, 200, 0);
    char *t = render();

    regex_t re;
    int rc = regcomp(&re,
                     "^[a-zA-Z_:][a-zA-Z0-9_:]*"
                     "(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\"\\\\n])*\",?)*\\})?"
                     " (-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?|\\+Inf)$",
                     REG_EXTENDED | REG_NOSUB);
    assert_int_equal(rc, 0);
    assert_true(strlen(t) > 0);
    assert_int_equal(t[strlen(t) - 1], '\n');
    char *copy = strdup(t);
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) continue;
        if (regexec(&re, line, 0, NULL, 0) != 0) fail_msg("malformed exposition line: %s", line);
    }
    free(copy);
    regfree(&re);

    static const char *const families[] = {"skuld_build_info",
                                           "skuld_requests_total",
                                           "skuld_request_duration_seconds",
                                           "skuld_requests_in_flight",
                                           "skuld_upstream_requests_total",
                                           "skuld_upstream_errors_total",
                                           "skuld_stream_errors_total",
                                           "skuld_tokens_total"};
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        char help[96], type[96];
        snprintf(help, sizeof help, "# HELP %s ", families[i]);
        snprintf(type, sizeof type, "# TYPE %s ", families[i]);
        assert_int_equal(count_occurrences(t, help), 1);
        assert_int_equal(count_occurrences(t, type), 1);
    }

    expect_line(t, "skuld_requests_in_flight{model=\"fmt-idle\",provider=\"fmt-p\"} 0");
    expect_no_line_with(t, "skuld_requests_total{model=\"fmt-idle\"");
    expect_no_line_with(t, "skuld_request_duration_seconds_bucket{model=\"fmt-idle\"");
    expect_no_line_with(t, "skuld_request_duration_seconds_count{model=\"fmt-idle\"");

    const char *p1 = strstr(t, "skuld_requests_total{model=\"fmt-order-1\"");
    const char *p2 = strstr(t, "skuld_requests_total{model=\"fmt-order-2\"");
    assert_non_null(p1);
    assert_non_null(p2);
    assert_true(p1 < p2); /* creation order, not update order */
    free(t);
}

/* Render appends to what the buffer already holds. */
static void test_render_appends(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    buf_appends(&b, "PREFIX\n");
    metrics_render(&b);
    static const char want[] = "PREFIX\n# HELP skuld_build_info ";
    assert_memory_equal(buf_data(&b), want, sizeof want - 1);
    buf_free(&b);
}

#define THREADS 4
#define ITERS 20000

static void *worker(void *arg)
{
    metrics_series_t **out = arg;
    for (int i = 0; i < ITERS; i++) {
        metrics_series_t *s = metrics_series_get("mt-m", "mt-p");
        if (i == 0) *out = s;
        metrics_series_get(i % 2 ? "mt-odd" : "mt-even", "mt-p");
        metrics_request_begin(s);
        metrics_tokens(s, 1, 2);
        metrics_request_end(s, i % 3 ? 200 : 500, (uint64_t)i * 1000);
    }
    return NULL;
}

static void test_concurrent_updates(void **state)
{
    (void)state;
    pthread_t th[THREADS];
    metrics_series_t *seen[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker, &seen[i]), 0);
    /* Scrape while they run. */
    for (int k = 0; k < 20; k++) free(render());
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    metrics_series_t *s = metrics_series_get("mt-m", "mt-p");
    for (int i = 0; i < THREADS; i++) assert_ptr_equal(seen[i], s);
    uint64_t total =
        atomic_load(&s->requests_by_status[200]) + atomic_load(&s->requests_by_status[500]);
    assert_int_equal(total, THREADS * ITERS);
    assert_int_equal(atomic_load(&s->in_flight), 0);
    assert_int_equal(atomic_load(&s->latency_count), THREADS * ITERS);
    assert_int_equal(atomic_load(&s->tokens_prompt), THREADS * ITERS);
    assert_int_equal(atomic_load(&s->tokens_completion), 2 * THREADS * ITERS);
    uint64_t buckets = 0;
    for (int b = 0; b <= METRICS_LATENCY_BUCKETS; b++)
        buckets += atomic_load(&s->latency_buckets[b]);
    assert_int_equal(buckets, THREADS * ITERS);
    /* Exactly one series per key despite the races on creation. */
    char *t = render();
    assert_int_equal(count_occurrences(t, "skuld_requests_in_flight{model=\"mt-odd\""), 1);
    assert_int_equal(count_occurrences(t, "skuld_requests_in_flight{model=\"mt-even\""), 1);
    assert_int_equal(count_occurrences(t, "skuld_requests_in_flight{model=\"mt-m\""), 1);
    free(t);
}

static int teardown_all(void **state)
{
    (void)state;
    metrics_shutdown();
    return 0;
}

static void test_shutdown_then_reuse(void **state)
{
    (void)state;
    /* After shutdown the registry is empty and usable again (a fresh series
     * starts from zero); the group teardown frees it. */
    metrics_series_t *s = metrics_series_get("sd-m", "sd-p");
    metrics_request_begin(s);
    metrics_request_end(s, 200, 0);
    metrics_shutdown();
    char *t = render();
    expect_no_line_with(t, "model=\"sd-m\"");
    expect_no_line_with(t, "model=\"m\"");
    free(t);
    s = metrics_series_get("sd-m", "sd-p");
    assert_int_equal(atomic_load(&s->requests_by_status[200]), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_series_get_or_create),
        cmocka_unit_test(test_begin_end),
        cmocka_unit_test(test_status_out_of_range),
        cmocka_unit_test(test_bucket_boundaries),
        cmocka_unit_test(test_render_lines),
        cmocka_unit_test(test_cumulative_buckets),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_unresolved_series),
        cmocka_unit_test(test_exposition_format),
        cmocka_unit_test(test_render_appends),
        cmocka_unit_test(test_concurrent_updates),
        cmocka_unit_test(test_shutdown_then_reuse), /* last: clears the registry */
    };
    return cmocka_run_group_tests(tests, NULL, teardown_all);
}
