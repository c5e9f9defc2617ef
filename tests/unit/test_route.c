/*
 * Unit tests for src/route: every factor and its normalisation, weights,
 * each constraint, the task classifier, the balancing strategies (smooth
 * WRR's exact sequence; distributions over 10,000 picks), the decision for
 * routes, model groups and deployment ids, live stats, and explanations.
 * Live stats are given as plain route_live_t arrays: no network, no clock.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "../common/config_fixture.h"
#include "provider/provider.h"
#include "route/router.h"
#include "obs/metrics.h"
#include "route/stats.h"

#define EPS 1e-9

static route_live_t warm(double lat_ms)
{
    route_live_t l = {.lat_ms = lat_ms,
                      .ttft_ms = NAN,
                      .ms_per_tok = NAN,
                      .peak_ms = lat_ms,
                      .success = 1,
                      .samples = 10,
                      .healthy = true,
                      .health_ratio = 1};
    return l;
}

static route_live_t cold(void)
{
    route_live_t l = warm(NAN);
    l.cold = true;
    l.samples = 0;
    return l;
}

/* ---------- factors ---------- */

static void test_factor_quality(void **state)
{
    (void)state;
    cfg_model_t m = {.quality = 0.7};
    assert_float_equal(route_score_quality(&m), 0.7, EPS);
    m.quality = 1.5;
    assert_float_equal(route_score_quality(&m), 1.0, EPS);
    m.quality = -1;
    assert_float_equal(route_score_quality(&m), 0.0, EPS);
}

static void test_factor_size(void **state)
{
    (void)state;
    assert_float_equal(route_score_size(0), 0.5, EPS); /* unknown */
    assert_float_equal(route_score_size(7), log(8) / log(1001), EPS);
    assert_float_equal(route_score_size(70), log(71) / log(1001), EPS);
    assert_float_equal(route_score_size(1000), 1.0, EPS);
    assert_float_equal(route_score_size(5000), 1.0, EPS); /* capped */
    assert_true(route_score_size(8) < route_score_size(70));
}

static void test_factor_hardware(void **state)
{
    (void)state;
    assert_float_equal(route_score_hardware("gpu"), 1.0, EPS);
    assert_float_equal(route_score_hardware("GPU"), 1.0, EPS);
    assert_float_equal(route_score_hardware("tpu"), 1.0, EPS);
    assert_float_equal(route_score_hardware("cloud"), 0.8, EPS);
    assert_float_equal(route_score_hardware("npu"), 0.6, EPS);
    assert_float_equal(route_score_hardware("cpu"), 0.3, EPS);
    assert_float_equal(route_score_hardware("abacus"), 0.5, EPS);
    assert_float_equal(route_score_hardware(NULL), 0.5, EPS);
}

static void test_factor_distance(void **state)
{
    (void)state;
    cfg_provider_t remote = {.name = "r", .type = "openai", .base_url = "http://x"};
    cfg_provider_t local = {.name = "l", .type = "echo"};
    cfg_model_t m = {.provider = &remote, .region = "eu-west"};
    assert_float_equal(route_score_distance("eu-west", &m), 1.0, EPS);
    assert_float_equal(route_score_distance("eu-central", &m), 0.6, EPS);
    assert_float_equal(route_score_distance("us-east", &m), 0.2, EPS);
    assert_float_equal(route_score_distance(NULL, &m), 0.5, EPS);
    m.region = NULL;
    assert_float_equal(route_score_distance("eu-west", &m), 0.5, EPS);
    m.provider = &local; /* in-process: no network at all */
    assert_float_equal(route_score_distance("us-east", &m), 1.0, EPS);
}

static void test_factor_reliability(void **state)
{
    (void)state;
    route_live_t l = warm(100);
    assert_float_equal(route_score_reliability(&l), 1.0, EPS);
    l.success = 0.8;
    l.health_ratio = 0.5;
    assert_float_equal(route_score_reliability(&l), 0.4, EPS);
    l.success = 1.5;
    l.health_ratio = 1;
    assert_float_equal(route_score_reliability(&l), 1.0, EPS);
}

static void test_factor_relative(void **state)
{
    (void)state;
    assert_float_equal(route_score_relative(100, 100), 1.0, EPS);
    assert_float_equal(route_score_relative(100, 400), 0.25, EPS);
    assert_float_equal(route_score_relative(100, 50), 1.0, EPS); /* capped */
    assert_float_equal(route_score_relative(100, 0), 1.0, EPS);
    assert_float_equal(route_score_relative(0, 10), 0.0, EPS);
}

static void test_estimates(void **state)
{
    (void)state;
    cfg_model_t m = {.price = {.input = 2, .output = 10}};
    route_features_t f;
    route_features_init(&f);
    f.prompt_tokens = 1000;
    f.out_tokens = 500;
    assert_float_equal(route_est_cost(&m, &f), (2.0 * 1000 + 10.0 * 500) / 1e6, 1e-15);
    route_live_t l = cold();
    assert_true(isnan(route_est_latency(&l, &f)));
    l = warm(800);
    assert_float_equal(route_est_latency(&l, &f), 800, EPS); /* no ttft/tps: whole latency */
    l.ttft_ms = 200;
    l.ms_per_tok = 20; /* 500 tokens at 50/s = 10 s */
    assert_float_equal(route_est_latency(&l, &f), 200 + 10000, EPS);
}

static void test_weights(void **state)
{
    (void)state;
    double w[ROUTE_F__COUNT], sum = 0;
    route_weights_normalise(&config_default_weights, w);
    for (int i = 0; i < ROUTE_F__COUNT; i++) sum += w[i];
    assert_float_equal(sum, 1.0, EPS);
    /* the plan's weights plus quality 0.2, divided by 1.2 */
    assert_float_equal(w[ROUTE_F_LATENCY], 0.25 / 1.2, EPS);
    assert_float_equal(w[ROUTE_F_SIZE], 0.20 / 1.2, EPS);
    assert_float_equal(w[ROUTE_F_RELIABILITY], 0.20 / 1.2, EPS);
    assert_float_equal(w[ROUTE_F_HARDWARE], 0.15 / 1.2, EPS);
    assert_float_equal(w[ROUTE_F_DISTANCE], 0.10 / 1.2, EPS);
    assert_float_equal(w[ROUTE_F_COST], 0.10 / 1.2, EPS);
    assert_float_equal(w[ROUTE_F_QUALITY], 0.20 / 1.2, EPS);
    cfg_weights_t only_cost = {.w = {[ROUTE_F_COST] = 3}};
    route_weights_normalise(&only_cost, w);
    assert_float_equal(w[ROUTE_F_COST], 1.0, EPS);
    assert_float_equal(w[ROUTE_F_LATENCY], 0.0, EPS);
    cfg_weights_t zero = {{0}};
    route_weights_normalise(&zero, w);
    assert_float_equal(w[ROUTE_F_LATENCY], 0.25 / 1.2, EPS);
}

/* The total is the weighted sum of the factors; relative factors use the
 * best eligible candidate; cold latency is optimistic (1). */
static void test_score_all(void **state)
{
    (void)state;
    cfg_provider_t p = {.name = "p", .type = "openai", .base_url = "http://x"};
    cfg_model_t a = {.id = "a",
                     .name = "a",
                     .provider = &p,
                     .quality = 0.9,
                     .price = {1, 1, 0},
                     .capabilities = CAP_ALL};
    cfg_model_t b = {.id = "b",
                     .name = "b",
                     .provider = &p,
                     .quality = 0.5,
                     .price = {4, 4, 0},
                     .capabilities = CAP_ALL};
    cfg_model_t cm = {.id = "c",
                      .name = "c",
                      .provider = &p,
                      .quality = 0.5,
                      .price = {1, 1, 0},
                      .capabilities = CAP_ALL};
    route_cand_t c[3] = {{.m = &a, .live = warm(100)}, {.m = &b, .live = warm(400)}, {.m = &cm}};
    c[2].live = cold();
    route_features_t f;
    route_features_init(&f);
    f.prompt_tokens = 1000;
    f.out_tokens = 0;
    for (int i = 0; i < 3; i++) {
        c[i].est_cost_usd = route_est_cost(c[i].m, &f);
        c[i].est_latency_ms = route_est_latency(&c[i].live, &f);
        assert_true(route_check(&c[i], &f));
    }
    double w[ROUTE_F__COUNT];
    route_weights_normalise(&config_default_weights, w);
    route_score_all(c, 3, w, NULL);
    assert_float_equal(c[0].f[ROUTE_F_LATENCY], 1.0, EPS);
    assert_float_equal(c[1].f[ROUTE_F_LATENCY], 0.25, EPS);
    assert_float_equal(c[2].f[ROUTE_F_LATENCY], 1.0, EPS); /* cold */
    assert_float_equal(c[1].f[ROUTE_F_COST], (1e-3 + 1e-9) / (4e-3 + 1e-9), 1e-9);
    for (int i = 0; i < 3; i++) {
        double t = 0;
        for (int k = 0; k < ROUTE_F__COUNT; k++) t += w[k] * c[i].f[k];
        assert_float_equal(c[i].total, t, EPS);
        for (int k = 0; k < ROUTE_F__COUNT; k++) assert_true(c[i].f[k] >= 0 && c[i].f[k] <= 1);
    }
    assert_true(c[0].total > c[1].total);
}

/* ---------- constraints ---------- */

static void test_constraints(void **state)
{
    (void)state;
    cfg_provider_t p = {.name = "p", .type = "openai", .base_url = "http://x"};
    cfg_model_t m = {.id = "m",
                     .name = "m",
                     .provider = &p,
                     .quality = 0.6,
                     .capabilities = CAP_CHAT,
                     .context_window = 1000,
                     .price = {10, 10, 0}};
    route_cand_t c = {.m = &m, .live = warm(500)};
    route_features_t f;
    route_features_init(&f);
    f.prompt_tokens = 100;
    f.out_tokens = 100;
#define CHECK(expect_ok, substr)                                                                   \
    do {                                                                                           \
        c.est_cost_usd = route_est_cost(&m, &f);                                                   \
        c.est_latency_ms = route_est_latency(&c.live, &f);                                         \
        assert_int_equal(route_check(&c, &f), expect_ok);                                          \
        if (!(expect_ok)) {                                                                        \
            if (!strstr(c.reason, substr)) fail_msg("reason '%s' lacks '%s'", c.reason, substr);   \
        }                                                                                          \
    } while (0)
    CHECK(true, "");
    f.needs |= CAP_TOOLS;
    CHECK(false, "lacks capability 'tools'");
    f.needs = CAP_CHAT | CAP_VISION;
    CHECK(false, "lacks capability 'vision'");
    f.needs = CAP_CHAT | CAP_JSON;
    CHECK(false, "lacks capability 'json'");
    f.needs = CAP_EMBEDDINGS;
    CHECK(false, "lacks capability 'embeddings'");
    f.needs = CAP_CHAT;
    f.prompt_tokens = 950; /* + 100 out > 1000 */
    CHECK(false, "context window 1000 < estimated 1050 tokens");
    f.prompt_tokens = 100;
    c.live.healthy = false;
    CHECK(false, "unhealthy");
    c.live.healthy = true;
    f.min_quality = 0.7;
    CHECK(false, "quality 0.60 < x-skuld-min-quality 0.70");
    f.min_quality = 0.6;
    CHECK(true, "");
    f.max_cost_usd = 0.001; /* est 200 tokens x $10/M = $0.002 */
    CHECK(false, "x-skuld-max-cost");
    f.max_cost_usd = 0.002;
    CHECK(true, "");
    f.max_latency_ms = 400;
    CHECK(false, "estimated latency 500ms > x-skuld-max-latency-ms 400");
    c.live = cold(); /* unknown latency is not filtered */
    CHECK(true, "");
#undef CHECK
}

static void test_constraint_headers(void **state)
{
    (void)state;
    route_features_t f;
    route_features_init(&f);
    const char *err = NULL;
    assert_int_equal(route_features_constraint(&f, "x-skuld-max-cost", "0.05", 4, &err), 0);
    assert_float_equal(f.max_cost_usd, 0.05, EPS);
    assert_int_equal(route_features_constraint(&f, "x-skuld-max-latency-ms", "250", 3, &err), 0);
    assert_float_equal(f.max_latency_ms, 250, EPS);
    assert_int_equal(route_features_constraint(&f, "x-skuld-min-quality", "0.8", 3, &err), 0);
    assert_float_equal(f.min_quality, 0.8, EPS);
    assert_int_equal(route_features_constraint(&f, "x-skuld-min-quality", "1.5", 3, &err), -1);
    assert_int_equal(route_features_constraint(&f, "x-skuld-max-cost", "abc", 3, &err), -1);
    assert_int_equal(route_features_constraint(&f, "x-skuld-max-cost", "-1", 2, &err), -1);
    assert_int_equal(route_features_constraint(&f, "x-skuld-max-cost", "", 0, &err), -1);
    assert_int_equal(route_features_constraint(&f, "x-skuld-max-cost", "nan", 3, &err), -1);
}

static void test_features(void **state)
{
    (void)state;
    arena_t *a = arena_create(4096);
    json_t *b = json_loads("{\"messages\":[{\"role\":\"system\",\"content\":\"SYSTEM SECRET\"},"
                           "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"AbCd "
                           "efgh\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}],"
                           "\"tools\":[{\"type\":\"function\"}],\"max_tokens\":77,"
                           "\"response_format\":{\"type\":\"json_object\"},\"stream\":true}",
                           0, NULL);
    assert_non_null(b);
    route_features_t f;
    route_features_init(&f);
    route_features_from_body(&f, a, EP_CHAT, b);
    assert_true(f.tools && f.image && f.json_mode && f.stream);
    assert_int_equal(f.needs, CAP_CHAT | CAP_TOOLS | CAP_VISION | CAP_JSON);
    assert_int_equal(f.out_tokens, 77);
    /* (13 + 9 bytes) / 4 + 4 per message */
    assert_int_equal(f.prompt_tokens, 22 / 4 + 8);
    assert_string_equal(f.text, "abcd efgh"); /* user text only, lower-cased */
    json_decref(b);
    b = json_loads("{\"input\":\"hello\"}", 0, NULL);
    route_features_init(&f);
    route_features_from_body(&f, a, EP_EMBEDDINGS, b);
    assert_int_equal(f.needs, CAP_EMBEDDINGS);
    assert_int_equal(f.out_tokens, 0);
    json_decref(b);
    arena_destroy(a);
}

/* Needs beyond the first test's: audio and file parts, functions, n and best_of. */
static void test_needs(void **state)
{
    (void)state;
    json_t *b = json_loads("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                           "\"input_audio\"},{\"type\":\"file\"}]}],\"functions\":[{}],"
                           "\"n\":2}",
                           0, NULL);
    assert_non_null(b);
    assert_int_equal(route_needs_from_body(EP_CHAT, b),
                     CAP_CHAT | CAP_AUDIO | CAP_FILES | CAP_TOOLS | CAP_N);
    /* a token count on a route needs what the chat would (n aside); embeddings have no n */
    assert_int_equal(route_needs_from_body(EP_COUNT_TOKENS, b),
                     CAP_CHAT | CAP_AUDIO | CAP_FILES | CAP_TOOLS);
    json_decref(b);
    b = json_loads("{\"prompt\":\"x\",\"best_of\":3,\"n\":1}", 0, NULL);
    assert_int_equal(route_needs_from_body(EP_COMPLETIONS, b), CAP_COMPLETIONS | CAP_N);
    json_decref(b);
    b = json_loads("{\"input\":\"x\",\"n\":4}", 0, NULL);
    assert_int_equal(route_needs_from_body(EP_EMBEDDINGS, b), CAP_EMBEDDINGS);
    json_decref(b);
    b = json_loads("{\"messages\":[],\"tools\":[],\"n\":1,\"response_format\":{\"type\":"
                   "\"text\"}}",
                   0, NULL);
    assert_int_equal(route_needs_from_body(EP_CHAT, b), CAP_CHAT);
    json_decref(b);
    assert_string_equal(route_cap_first_name(CAP_N | CAP_TOOLS), "tools");
}

/* An explicit name keeps only the deployments that have what is needed. */
static void test_decide_capabilities(void **state)
{
    (void)state;
    config_t *c = cfg_ok("providers:\n"
                         "  - {name: o, type: openai, base_url: 'http://h/v1'}\n"
                         "  - {name: e, type: echo}\n"
                         "models:\n"
                         "  - {name: m, id: m-e, provider: e}\n"
                         "  - {name: m, id: m-o, provider: o}\n"
                         "  - {name: loc, provider: e}\n"
                         "  - {name: up, provider: o, fallbacks: [loc]}\n");
    route_stats_attach(c);
    arena_t *a = arena_create(4096);
    uint64_t rng = 3;
    route_features_t f;
    route_features_init(&f);
    route_decision_t d;
    assert_int_equal(route_name_lacks(c, "m", 1),
                     CAP_ALL & ~(CAP_CHAT | CAP_COMPLETIONS | CAP_EMBEDDINGS));
    assert_int_equal(route_name_lacks(c, "m-o", 3), 0);
    assert_int_equal(route_name_lacks(c, "up", 2), route_name_lacks(c, "loc", 3)); /* fallback */
    f.needs = CAP_CHAT | CAP_TOOLS;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(route_decide(c, "m", 1, &f, a, 0, &rng, &d), 0);
        assert_int_equal(d.n_order, 1);
        assert_string_equal(d.order[0]->id, "m-o");
        assert_int_equal(d.lacks, 0);
    }
    assert_int_equal(route_decide(c, "loc", 3, &f, a, 0, &rng, &d), 0);
    assert_int_equal(d.n_order, 0);
    assert_int_equal(d.lacks, CAP_TOOLS);
    /* fallbacks that lack a need are left out of the candidate list */
    assert_int_equal(route_decide(c, "up", 2, &f, a, 0, &rng, &d), 0);
    size_t n = 0;
    const cfg_model_t **v = route_with_fallbacks(a, d.order, d.n_order, f.needs, &n);
    assert_int_equal(n, 1);
    v = route_with_fallbacks(a, d.order, d.n_order, CAP_CHAT, &n);
    assert_int_equal(n, 2);
    assert_string_equal(v[1]->id, "loc");
    arena_destroy(a);
    config_unref(c);
}

/* ---------- classifier ---------- */

static int classify_text(const char *text, const cfg_route_t *r)
{
    static char lower[256]; /* as route_features_from_body leaves it */
    size_t n = strlen(text) < 255 ? strlen(text) : 255;
    for (size_t i = 0; i < n; i++)
        lower[i] = text[i] >= 'A' && text[i] <= 'Z' ? (char)(text[i] + 32) : text[i];
    lower[n] = '\0';
    text = lower;
    route_features_t f;
    route_features_init(&f);
    f.text = text;
    f.text_len = strlen(text);
    f.prompt_tokens = (long)strlen(text) / 4;
    return route_classify(&f, r);
}

static void test_classifier_builtin(void **state)
{
    (void)state;
    assert_int_equal(classify_text("hello, how are you?", NULL), ROUTE_TASK_CHAT);
    assert_int_equal(classify_text("Fix this Python function", NULL), ROUTE_TASK_CODE);
    assert_int_equal(classify_text("```c\nint x;\n```", NULL), ROUTE_TASK_CODE);
    assert_int_equal(classify_text("Prove that there are infinitely many primes", NULL),
                     ROUTE_TASK_REASONING);
    assert_int_equal(classify_text("think step by step", NULL), ROUTE_TASK_REASONING);
    route_features_t f;
    route_features_init(&f);
    f.prompt_tokens = ROUTE_LONG_CONTEXT_TOKENS;
    assert_int_equal(route_classify(&f, NULL), ROUTE_TASK_LONG_CONTEXT);
    f.image = true; /* vision before long context */
    assert_int_equal(route_classify(&f, NULL), ROUTE_TASK_VISION);
    f.image = false;
    f.prompt_tokens = 10;
    f.text = "write code";
    assert_int_equal(route_classify(&f, NULL), ROUTE_TASK_CODE);
    f.text = NULL;
    f.tools = true; /* tools alone are not code by default */
    assert_int_equal(route_classify(&f, NULL), ROUTE_TASK_CHAT);
}

static void test_classifier_configured(void **state)
{
    (void)state;
    config_t *c = cfg_ok("providers:\n  - {name: p, type: echo}\n"
                         "models:\n  - {name: a, provider: p}\n  - {name: b, provider: p}\n"
                         "routes:\n  - name: auto\n    candidates: [a, b]\n    tasks:\n"
                         "      code: {keywords: [kotlin], tools: true, candidates: [b]}\n"
                         "      reasoning: {weights: {quality: 5}}\n"
                         "      long_context: {min_tokens: 100}\n"
                         "      vision: {content_types: [audio]}\n");
    const cfg_route_t *r = &c->routes[0];
    assert_int_equal(classify_text("some Kotlin please", r), ROUTE_TASK_CODE);
    /* the configured keywords replace the built-in ones */
    assert_int_equal(classify_text("fix this python function", r), ROUTE_TASK_CHAT);
    /* reasoning configures no criteria: the built-in rule stays */
    assert_int_equal(classify_text("prove it", r), ROUTE_TASK_REASONING);
    route_features_t f;
    route_features_init(&f);
    f.tools = true;
    assert_int_equal(route_classify(&f, r), ROUTE_TASK_CODE);
    f.tools = false;
    f.prompt_tokens = 100;
    assert_int_equal(route_classify(&f, r), ROUTE_TASK_LONG_CONTEXT);
    f.prompt_tokens = 1;
    f.image = true; /* vision now means audio */
    assert_int_equal(route_classify(&f, r), ROUTE_TASK_CHAT);
    f.audio = true;
    assert_int_equal(route_classify(&f, r), ROUTE_TASK_VISION);
    config_unref(c);
}

/* ---------- balancing ---------- */

static void test_swrr_sequence(void **state)
{
    (void)state;
    int64_t cur[3] = {0}, w[3] = {5, 1, 1};
    const char *expect = "aabacaa"
                         "aabacaa";
    char got[15] = {0};
    for (int i = 0; i < 14; i++) got[i] = (char)('a' + route_swrr(cur, w, 3));
    assert_string_equal(got, expect);
    int64_t cur2[3] = {0}, w2[3] = {2, 0, 1}; /* weight 0: never */
    for (int i = 0; i < 9; i++) assert_int_not_equal(route_swrr(cur2, w2, 3), 1);
    int64_t cur3[2] = {0}, w3[2] = {0, 0};
    assert_int_equal(route_swrr(cur3, w3, 2), -1);
    /* exact shares over 10,000 picks */
    int64_t cur4[3] = {0}, w4[3] = {3, 2, 5};
    int n[3] = {0};
    for (int i = 0; i < 10000; i++) n[route_swrr(cur4, w4, 3)]++;
    assert_int_equal(n[0], 3000);
    assert_int_equal(n[1], 2000);
    assert_int_equal(n[2], 5000);
}

static void test_least_inflight(void **state)
{
    (void)state;
    route_cand_t c[3] = {{.live = warm(1)}, {.live = warm(1)}, {.live = warm(1)}};
    c[0].live.in_flight = 5;
    c[1].live.in_flight = 2;
    c[2].live.in_flight = 2;
    bool ok[3] = {true, true, true};
    assert_int_equal(route_least_inflight(c, ok, 3), 1); /* tie: lowest index */
    ok[1] = false;
    assert_int_equal(route_least_inflight(c, ok, 3), 2);
    /* simulated: each pick adds one in flight -> even spread over 10,000 */
    int n[3] = {0};
    ok[1] = true;
    for (int i = 0; i < 3; i++) c[i].live.in_flight = 0;
    for (int i = 0; i < 10000; i++) {
        int p = route_least_inflight(c, ok, 3);
        n[p]++;
        c[p].live.in_flight++;
    }
    for (int i = 0; i < 3; i++) assert_true(abs(n[i] - 3333) <= 1);
}

static void test_p2c(void **state)
{
    (void)state;
    route_cand_t c[3] = {{.live = warm(10)}, {.live = warm(100)}, {.live = warm(1000)}};
    bool ok[3] = {true, true, true};
    uint64_t rng = 42;
    int n[3] = {0};
    for (int i = 0; i < 10000; i++) n[route_p2c(c, ok, 3, &rng)]++;
    /* two distinct of three uniformly: the fastest wins whenever drawn (2/3),
     * the middle one when paired with the slowest (1/3), the slowest never */
    assert_true(abs(n[0] - 6667) < 250);
    assert_true(abs(n[1] - 3333) < 250);
    assert_int_equal(n[2], 0);
    /* in flight multiplies the peak latency: a busy fast one loses */
    c[0].live.in_flight = 20; /* 10 x 21 = 210 > 100 x 1 */
    memset(n, 0, sizeof n);
    for (int i = 0; i < 10000; i++) n[route_p2c(c, ok, 3, &rng)]++;
    assert_true(n[1] > n[0]);
    /* only one ok */
    ok[0] = ok[1] = false;
    assert_int_equal(route_p2c(c, ok, 3, &rng), 2);
}

static void test_score_weighted(void **state)
{
    (void)state;
    route_cand_t c[3] = {{.total = 0.5}, {.total = 0.3}, {.total = 0.2}};
    bool ok[3] = {true, true, true};
    uint64_t rng = 7;
    int n[3] = {0};
    for (int i = 0; i < 10000; i++) n[route_score_weighted(c, ok, 3, &rng)]++;
    assert_true(abs(n[0] - 5000) < 250);
    assert_true(abs(n[1] - 3000) < 250);
    assert_true(abs(n[2] - 2000) < 250);
    ok[0] = false;
    memset(n, 0, sizeof n);
    for (int i = 0; i < 10000; i++) n[route_score_weighted(c, ok, 3, &rng)]++;
    assert_int_equal(n[0], 0);
    assert_true(abs(n[1] - 6000) < 250);
}

/* ---------- decisions ---------- */

static const char *const three_yaml =
    "providers:\n"
    "  - {name: pa, type: openai, base_url: 'http://127.0.0.1:1/v1'}\n"
    "  - {name: pb, type: openai, base_url: 'http://127.0.0.1:2/v1'}\n"
    "  - {name: pc, type: openai, base_url: 'http://127.0.0.1:3/v1'}\n"
    "models:\n"
    "  - {name: fast, provider: pa, price: {input: 2, output: 2}, quality: 0.8}\n"
    "  - {name: slow, provider: pb, price: {input: 1, output: 1}, quality: 0.8}\n"
    "  - {name: pricey, provider: pc, price: {input: 20, output: 20}, quality: 0.95}\n"
    "  - {name: grp, provider: pa, weight: 3, capacity: {concurrency: 10}}\n"
    "  - {name: grp, provider: pb, weight: 1}\n"
    "routes:\n"
    "  - {name: auto, candidates: [fast, slow, pricey], fallbacks: [grp@pb]}\n"
    "  - {name: lb, candidates: [fast, slow], strategy: least_inflight, load_threshold: 0.5}\n";

static void test_decide_among(void **state)
{
    (void)state;
    config_t *c = cfg_ok(three_yaml);
    const cfg_model_t *cands[3] = {&c->models[0], &c->models[1], &c->models[2]};
    route_live_t live[3] = {warm(100), warm(1000), warm(300)};
    route_features_t f;
    route_features_init(&f);
    f.explain = true;
    f.prompt_tokens = 100;
    double w[ROUTE_F__COUNT];
    route_weights_normalise(&config_default_weights, w);
    arena_t *a = arena_create(4096);
    uint64_t rng = 1;
    route_decision_t d = {0};
    route_decide_among(cands, 3, live, &f, w, ROUTE_STRAT_SCORE, NULL, 0.8, NULL, &rng, a, &d);
    assert_int_equal(d.n_order, 3);
    assert_string_equal(d.order[0]->id, "fast");
    assert_int_equal(d.chosen, 0);
    for (size_t i = 1; i < d.n_order; i++) { /* ranked by total */
        const route_cand_t *prev = NULL, *cur = NULL;
        for (size_t k = 0; k < 3; k++) {
            if (d.cands[k].m == d.order[i - 1]) prev = &d.cands[k];
            if (d.cands[k].m == d.order[i]) cur = &d.cands[k];
        }
        assert_true(prev->total >= cur->total);
    }
    /* a cold deployment is explored first, whatever its total */
    live[1] = cold();
    route_decide_among(cands, 3, live, &f, w, ROUTE_STRAT_SCORE, NULL, 0.8, NULL, &rng, a, &d);
    assert_string_equal(d.order[0]->id, "slow");
    assert_string_equal(d.order[1]->id, "fast");
    live[1] = warm(1000);
    /* fast gets slow: the choice moves */
    live[0] = warm(5000);
    route_decide_among(cands, 3, live, &f, w, ROUTE_STRAT_SCORE, NULL, 0.8, NULL, &rng, a, &d);
    assert_string_not_equal(d.order[0]->id, "fast");
    /* max cost filters the pricey one; min quality the others */
    live[0] = warm(100);
    f.max_cost_usd = 0.005; /* pricey: 356 tokens x $20/M = $0.00712 */
    route_decide_among(cands, 3, live, &f, w, ROUTE_STRAT_SCORE, NULL, 0.8, NULL, &rng, a, &d);
    assert_int_equal(d.n_order, 2);
    assert_false(d.cands[2].eligible);
    f.max_cost_usd = -1;
    f.min_quality = 0.9;
    route_decide_among(cands, 3, live, &f, w, ROUTE_STRAT_SCORE, NULL, 0.8, NULL, &rng, a, &d);
    assert_int_equal(d.n_order, 1);
    assert_string_equal(d.order[0]->id, "pricey");
    f.min_quality = 0.99; /* nothing left */
    route_decide_among(cands, 3, live, &f, w, ROUTE_STRAT_SCORE, NULL, 0.8, NULL, &rng, a, &d);
    assert_int_equal(d.n_order, 0);
    assert_int_equal(d.chosen, -1);
    buf_t r;
    buf_init(&r, 0);
    route_reasons(&d, &r);
    assert_non_null(strstr(buf_data(&r), "fast: quality 0.80 < x-skuld-min-quality 0.99"));
    assert_non_null(strstr(buf_data(&r), "pricey: quality 0.95 < x-skuld-min-quality 0.99"));
    buf_free(&r);
    arena_destroy(a);
    config_unref(c);
}

/* At 80% of a capacity a deployment is ranked after those below it. */
static void test_load_threshold(void **state)
{
    (void)state;
    config_t *c = cfg_ok(three_yaml);
    const cfg_model_t *cands[2] = {&c->models[3], &c->models[4]}; /* grp@pa cap 10, grp@pb */
    route_live_t live[2] = {warm(10), warm(500)};
    route_features_t f;
    route_features_init(&f);
    f.explain = true;
    double w[ROUTE_F__COUNT];
    route_weights_normalise(&config_default_weights, w);
    arena_t *a = arena_create(4096);
    uint64_t rng = 1;
    route_decision_t d;
    live[0].in_flight = 7;
    route_decide_among(cands, 2, live, &f, w, ROUTE_STRAT_SCORE, NULL, 0.8, NULL, &rng, a, &d);
    assert_string_equal(d.order[0]->id, "grp@pa");
    live[0].in_flight = 8; /* 8 >= 0.8 x 10 */
    route_decide_among(cands, 2, live, &f, w, ROUTE_STRAT_SCORE, NULL, 0.8, NULL, &rng, a, &d);
    assert_string_equal(d.order[0]->id, "grp@pb");
    assert_true(d.cands[0].over_load);
    assert_int_equal(d.n_order, 2); /* still a fallback */
    /* the balancing strategies skip it too */
    route_balance_t bal = {.mu = PTHREAD_MUTEX_INITIALIZER};
    for (int i = 0; i < 20; i++) {
        route_decide_among(cands, 2, live, &f, w, ROUTE_STRAT_ROUND_ROBIN, NULL, 0.8, &bal, &rng, a,
                           &d);
        assert_string_equal(d.order[0]->id, "grp@pb");
    }
    free(bal.cur);
    arena_destroy(a);
    config_unref(c);
}

static void test_decide_config(void **state)
{
    (void)state;
    config_t *c = cfg_ok(three_yaml);
    route_stats_attach(c);
    arena_t *a = arena_create(4096);
    uint64_t rng = 3;
    route_features_t f;
    route_features_init(&f);
    route_decision_t d;
    assert_int_equal(route_decide(c, "nope", 4, &f, a, 0, &rng, &d), -1);
    /* a route: ranked candidates then the fallback */
    assert_int_equal(route_decide(c, "auto", 4, &f, a, 0, &rng, &d), 0);
    assert_true(d.is_route);
    assert_int_equal(d.n_ranked, 3);
    assert_int_equal(d.n_order, 4);
    assert_string_equal(d.order[3]->id, "grp@pb");
    /* a model group: smooth WRR by weight 3:1 */
    int n_pa = 0;
    for (int i = 0; i < 400; i++) {
        assert_int_equal(route_decide(c, "grp", 3, &f, a, 0, &rng, &d), 0);
        assert_false(d.is_route);
        assert_int_equal(d.n_order, 2);
        n_pa += !strcmp(d.order[0]->id, "grp@pa");
    }
    assert_int_equal(n_pa, 300);
    /* a deployment id: exactly that one */
    assert_int_equal(route_decide(c, "grp@pb", 6, &f, a, 0, &rng, &d), 0);
    assert_int_equal(d.n_order, 1);
    assert_string_equal(d.order[0]->id, "grp@pb");
    /* explicit names are never filtered by constraints */
    f.min_quality = 1;
    f.max_cost_usd = 0;
    assert_int_equal(route_decide(c, "pricey", 6, &f, a, 0, &rng, &d), 0);
    assert_int_equal(d.n_order, 1);
    assert_int_equal(route_decide(c, "auto", 4, &f, a, 0, &rng, &d), 0);
    assert_int_equal(d.n_order, 0); /* but a route is */
    /* least in flight route */
    route_features_init(&f);
    route_stats_begin(c->models[0].rstats, route_now_ms());
    assert_int_equal(route_decide(c, "lb", 2, &f, a, 0, &rng, &d), 0);
    assert_string_equal(d.order[0]->id, "slow");
    route_stats_leave(c->models[0].rstats);
    assert_int_equal(route_decide(c, "lb", 2, &f, a, 0, &rng, &d), 0);
    assert_string_equal(d.order[0]->id, "fast");
    arena_destroy(a);
    config_unref(c);
}

/* ---------- live stats ---------- */

static void test_stats(void **state)
{
    (void)state;
    route_stats_t *s = route_stats_get("test-stats-dep");
    assert_ptr_equal(s, route_stats_get("test-stats-dep"));
    route_stats_reset(s);
    cfg_model_t m = {.id = "test-stats-dep", .rstats = s};
    route_live_t l;
    uint64_t t = 1000000;
    route_stats_read(&m, t, &l);
    assert_true(l.cold);
    assert_float_equal(l.success, 1, EPS);
    route_stats_begin(s, t);
    route_stats_read(&m, t, &l);
    assert_int_equal(l.in_flight, 1);
    route_stats_leave(s);
    route_stats_end(s, true, 100, 40, 60, 100, t); /* first sample taken as is */
    route_stats_end(s, true, 200, 40, 60, 100, t + 1000);
    route_stats_end(s, true, 200, 40, 60, 100, t + 2000);
    route_stats_read(&m, t + 2000, &l);
    assert_false(l.cold);
    assert_int_equal(l.in_flight, 0);
    double e = 100 + 0.3 * (200 - 100);
    e = e + 0.3 * (200 - e);
    assert_float_equal(l.lat_ms, e, 1e-9);
    assert_float_equal(l.ttft_ms, 40, 1e-9);
    /* 60 tokens in 60 ms, then in 160 ms after the first byte */
    double mpt1 = 60.0 / 60, mpt2 = 160.0 / 60; /* ms per token */
    double te = mpt1 + 0.3 * (mpt2 - mpt1);
    te = te + 0.3 * (mpt2 - te);
    assert_float_equal(l.ms_per_tok, te, 1e-9);
    assert_float_equal(l.peak_ms, 200, 1e-9);                  /* jumped to the higher sample */
    route_stats_end(s, true, 100, -1, 0, 0, t + 2000 + 10000); /* one tau later */
    route_stats_read(&m, t + 12000, &l);
    assert_float_equal(l.peak_ms, 200 * exp(-1) + 100 * (1 - exp(-1)), 1e-6);
    route_stats_end(s, false, 5, -1, 0, 0, t + 12000);
    route_stats_read(&m, t + 12000, &l);
    assert_float_equal(l.success, 0.9, 1e-9);
    assert_int_equal(l.samples, 4); /* failures are not latency samples */
    route_stats_read(&m, t + 12000 + ROUTE_STALE_MS + 1, &l);
    assert_true(l.cold); /* stale */
    /* requests per minute: 3 begun in this minute (read when a capacity is set) */
    route_stats_reset(s);
    m.cap_rpm = 100;
    uint64_t m0 = 60000 * 100;
    for (int i = 0; i < 3; i++) {
        route_stats_begin(s, m0 + 1000);
        route_stats_leave(s);
    }
    route_stats_read(&m, m0 + 2000, &l);
    assert_float_equal(l.rpm, 3, 1e-9);
    route_stats_read(&m, m0 + 60000 + 30000, &l); /* next minute, half way: half of 3 */
    assert_float_equal(l.rpm, 1.5, 1e-9);
}

static void test_explain(void **state)
{
    (void)state;
    config_t *c = cfg_ok(three_yaml);
    arena_t *a = arena_create(4096);
    uint64_t rng = 3;
    route_features_t f;
    route_features_init(&f);
    f.explain = true;
    route_decision_t d;
    assert_int_equal(route_decide(c, "auto", 4, &f, a, 0, &rng, &d), 0);
    buf_t o;
    buf_init(&o, 0);
    route_explain_json(&d, &o, 16);
    json_error_t je;
    json_t *j = json_loadb(buf_data(&o), o.len, 0, &je);
    assert_non_null(j);
    assert_null(memchr(buf_data(&o), '\n', o.len));
    assert_string_equal(json_string_value(json_object_get(j, "target")), "auto");
    assert_string_equal(json_string_value(json_object_get(j, "task")), "chat");
    assert_string_equal(json_string_value(json_object_get(j, "choice")), d.order[0]->id);
    assert_int_equal(json_array_size(json_object_get(j, "candidates")), 3);
    json_t *c0 = json_array_get(json_object_get(j, "candidates"), 0);
    assert_int_equal(json_object_size(json_object_get(c0, "factors")), ROUTE_F__COUNT);
    json_decref(j);
    buf_reset(&o);
    route_explain_table(&d, &o);
    assert_non_null(strstr(buf_data(&o), "choice: "));
    assert_non_null(strstr(buf_data(&o), "(fallback)"));
    buf_free(&o);
    arena_destroy(a);
    config_unref(c);
}

/* The prepared fast path (no details) and the detailed path rank alike, for
 * random live stats; the selection cache returns the same ranking and
 * notices a health change at once. */
static void test_fast_path_and_cache(void **state)
{
    (void)state;
    buf_t y;
    buf_init(&y, 0);
    buf_appends(&y, "providers:\n  - {name: p, type: openai, base_url: 'http://h:1/v1'}\n"
                    "  - {name: l, type: echo}\nmodels:\n");
    for (int i = 0; i < 60; i++)
        buf_printf(&y,
                   "  - {name: d%d, provider: %s, quality: %.2f, params_b: %d, hardware: %s, "
                   "region: %s, price: {input: %d, output: %d}%s}\n",
                   i, i % 7 ? "p" : "l", 0.4 + (i % 13) / 25.0, i * 3 % 200, i % 3 ? "gpu" : "cpu",
                   i % 2 ? "eu-west" : "us-east", i % 9, (i * 5) % 11,
                   i % 10 == 3 ? ", capabilities: [chat]" : "");
    buf_appends(&y, "routes:\n  - name: auto\n    region: eu-central\n    candidates: [");
    for (int i = 0; i < 60; i++) buf_printf(&y, "%sd%d", i ? ", " : "", i);
    buf_appends(&y, "]\n");
    config_t *c = cfg_ok(buf_data(&y));
    buf_free(&y);
    for (size_t i = 0; i < c->n_models; i++) /* as api_init does */
        c->models[i].stats = metrics_series_get(c->models[i].id, c->models[i].provider->name);
    route_stats_attach(c);
    uint64_t now = route_now_ms(), rng = 5;
    for (int i = 0; i < 60; i++) {
        route_stats_reset(c->models[i].rstats);
        for (int k = 0; k < (i % 11 == 0 ? 1 : 4); k++) /* every 11th stays cold */
            route_stats_end(c->models[i].rstats, i % 5 != 0, 40.0 + (i * 37) % 900, 10.0 + i % 30,
                            50 + i, 80 + i, now);
    }
    arena_t *a = arena_create(1 << 16);
    route_features_t f;
    route_features_init(&f);
    f.prompt_tokens = 300;
    f.out_tokens = 120;
    f.needs = CAP_CHAT | CAP_TOOLS; /* filters some */
    route_cache_enabled = false;
    for (int variant = 0; variant < 3; variant++) {
        if (variant == 1) f.max_cost_usd = 0.001;
        if (variant == 2) f.min_quality = 0.6;
        route_decision_t fast, slow;
        f.explain = false;
        assert_int_equal(route_decide(c, "auto", 4, &f, a, 0, &rng, &fast), 0);
        assert_false(fast.detailed);
        f.explain = true;
        assert_int_equal(route_decide(c, "auto", 4, &f, a, 0, &rng, &slow), 0);
        assert_true(slow.detailed);
        assert_true(fast.n_order > 1);
        assert_int_equal(fast.n_order, slow.n_order);
        for (size_t j = 0; j < fast.n_order; j++) assert_ptr_equal(fast.order[j], slow.order[j]);
        assert_int_equal(fast.chosen, slow.chosen);
    }
    /* the cache: same ranking, flagged; a kept deployment going down is a miss */
    route_cache_enabled = true;
    f.explain = false;
    route_decision_t d1, d2, d3;
    assert_int_equal(route_decide(c, "auto", 4, &f, a, 0, &rng, &d1), 0);
    assert_false(d1.cached);
    assert_int_equal(route_decide(c, "auto", 4, &f, a, 0, &rng, &d2), 0);
    assert_true(d2.cached);
    assert_int_equal(d1.n_order, d2.n_order);
    for (size_t j = 0; j < d1.n_order; j++) assert_ptr_equal(d1.order[j], d2.order[j]);
    const cfg_model_t *top = d1.order[0];
    atomic_store(&top->stats->health_probes, 1);
    atomic_store(&top->stats->health_up, false);
    assert_int_equal(route_decide(c, "auto", 4, &f, a, 0, &rng, &d3), 0);
    assert_false(d3.cached);
    assert_ptr_not_equal(d3.order[0], top);
    atomic_store(&top->stats->health_up, true);
    /* another key (other tokens) is another entry */
    f.out_tokens = 7;
    assert_int_equal(route_decide(c, "auto", 4, &f, a, 0, &rng, &d3), 0);
    assert_false(d3.cached);
    arena_destroy(a);
    config_unref(c);
}

/* The ranking against a reference: for many random configurations and live
 * stats, the prepared fast path's ranked deployments are exactly the first
 * ROUTE_RANK_MAX of every eligible candidate of the detailed decision sorted
 * by (under the load threshold, cold first, total descending, config order)
 * -- the full sort the pruned top-K selection must reproduce. Candidates
 * include cold ones, unhealthy and partly healthy ones (health probes),
 * over-capacity ones, filtered ones and exact ties of total. */
static const route_decision_t *ref_d;
static int ref_rank_cls(const route_cand_t *c)
{
    return (c->over_load ? 2 : 0) + (c->live.cold ? 0 : 1);
}
/* The total as the ranking sums it (the static factors, reliability, then
 * latency and cost); the explanation's total adds the factors in another
 * order and may differ from it in the last bit. */
static double ref_total(const route_cand_t *c)
{
    const double *w = ref_d->weights, *f = c->f;
    double base = route_static_sum(w, f[ROUTE_F_QUALITY], f[ROUTE_F_SIZE], f[ROUTE_F_HARDWARE],
                                   f[ROUTE_F_DISTANCE]) +
                  w[ROUTE_F_RELIABILITY] * f[ROUTE_F_RELIABILITY];
    return base + w[ROUTE_F_LATENCY] * f[ROUTE_F_LATENCY] + w[ROUTE_F_COST] * f[ROUTE_F_COST];
}
static int ref_cmp(const void *pa, const void *pb)
{
    const route_cand_t *a = &ref_d->cands[*(const size_t *)pa],
                       *b = &ref_d->cands[*(const size_t *)pb];
    int ca = ref_rank_cls(a), cb = ref_rank_cls(b);
    if (ca != cb) return ca < cb ? -1 : 1;
    double ta = ref_total(a), tb = ref_total(b);
    if (ta != tb) return ta > tb ? -1 : 1;
    size_t ia = *(const size_t *)pa, ib = *(const size_t *)pb;
    return ia < ib ? -1 : ia > ib;
}

static void test_rank_reference(void **state)
{
    (void)state;
    uint64_t seed = 12345;
    for (int round = 0; round < 12; round++) {
        int n = round < 4 ? 5 + round * 6 : 40 + round * 37; /* up to ~450 */
        buf_t y;
        buf_init(&y, 0);
        buf_appends(&y, "providers:\n  - {name: p, type: openai, base_url: 'http://h:1/v1'}\n"
                        "  - {name: l, type: echo}\nmodels:\n");
        for (int i = 0; i < n; i++) {
            uint64_t r = route_rand(&seed);
            /* few distinct values: ties of total happen */
            buf_printf(&y,
                       "  - {name: r%dd%d, provider: %s, quality: %.2f, params_b: %d, "
                       "hardware: %s, region: %s, price: {input: %d, output: %d}%s%s}\n",
                       round, i, r % 9 ? "p" : "l", 0.5 + (double)(r % 4) / 10,
                       (int)((r >> 8) % 3) * 50, (r >> 12) % 2 ? "gpu" : "cpu",
                       (r >> 14) % 2 ? "eu-west" : "us-east", (int)((r >> 16) % 3),
                       (int)((r >> 20) % 4), (r >> 24) % 13 == 0 ? ", capabilities: [chat]" : "",
                       (r >> 28) % 7 == 0 ? ", capacity: {concurrency: 4}" : "");
        }
        buf_printf(&y, "routes:\n  - name: auto\n    region: eu-central\n    candidates: [");
        for (int i = 0; i < n; i++) buf_printf(&y, "%sr%dd%d", i ? ", " : "", round, i);
        buf_appends(&y, "]\n");
        config_t *c = cfg_ok(buf_data(&y));
        buf_free(&y);
        for (size_t i = 0; i < c->n_models; i++)
            c->models[i].stats = metrics_series_get(c->models[i].id, c->models[i].provider->name);
        route_stats_attach(c);
        uint64_t now = route_now_ms(), rng = 9;
        for (int i = 0; i < n; i++) {
            cfg_model_t *m = &c->models[i];
            route_stats_reset(m->rstats);
            uint64_t r = route_rand(&seed);
            int samples = r % 6 == 0 ? 1 : 3 + (int)((r >> 4) % 3); /* some stay cold */
            for (int k = 0; k < samples; k++) /* few distinct latencies: ties */
                route_stats_end(m->rstats, (r >> 8) % 5 != 0, 100.0 * (double)(1 + (r >> 10) % 8),
                                (r >> 14) % 4 ? 20.0 * (double)(1 + (r >> 16) % 3) : -1, 40, 60,
                                now);
            atomic_store(&m->rstats->in_flight, (int64_t)((r >> 20) % 5));
            atomic_store(&m->stats->health_probes, 0);
            atomic_store(&m->stats->health_successes, 0);
            atomic_store(&m->stats->health_up, true);
            if ((r >> 24) % 5 == 0) { /* probed: some down, some partly successful */
                atomic_store(&m->stats->health_probes, 8);
                atomic_store(&m->stats->health_successes, 3 + (r >> 28) % 6);
                atomic_store(&m->stats->health_up, (r >> 32) % 4 != 0);
            }
        }
        arena_t *a = arena_create(1 << 16);
        route_cache_enabled = false;
        for (int variant = 0; variant < 4; variant++) {
            route_features_t f;
            route_features_init(&f);
            f.prompt_tokens = 200 + 100 * variant;
            f.out_tokens = variant == 3 ? 0 : 50 * (variant + 1);
            f.needs = CAP_CHAT | (variant & 1 ? CAP_TOOLS : 0);
            if (variant == 2) f.max_cost_usd = 0.0008;
            if (variant == 3) f.max_latency_ms = 450;
            route_decision_t fast, slow;
            assert_int_equal(route_decide(c, "auto", 4, &f, a, 0, &rng, &fast), 0);
            f.explain = true;
            assert_int_equal(route_decide(c, "auto", 4, &f, a, 0, &rng, &slow), 0);
            assert_true(slow.detailed);
            size_t *idx = malloc((size_t)n * sizeof *idx), k = 0;
            assert_non_null(idx);
            for (int i = 0; i < n; i++)
                if (slow.cands[i].eligible) idx[k++] = (size_t)i;
            ref_d = &slow;
            qsort(idx, k, sizeof *idx, ref_cmp);
            size_t want = k < ROUTE_RANK_MAX ? k : ROUTE_RANK_MAX;
            if (!k) { /* nothing eligible: both answer with the reasons */
                assert_int_equal(fast.n_order, 0);
                assert_int_equal(slow.n_order, 0);
            } else {
                assert_false(fast.detailed);
                assert_int_equal(fast.n_ranked, want);
                assert_int_equal(slow.n_ranked, want);
                for (size_t j = 0; j < want; j++) {
                    assert_ptr_equal(fast.order[j], slow.cands[idx[j]].m);
                    assert_ptr_equal(slow.order[j], slow.cands[idx[j]].m);
                }
                assert_int_equal(fast.chosen, (int)idx[0]);
            }
            free(idx);
        }
        route_cache_enabled = true;
        arena_destroy(a);
        config_unref(c);
    }
}

/* max_concurrency (resilience) is the router's concurrency capacity unless
 * capacity.concurrency is set; the load threshold applies to it */
static void test_capacity_from_max_concurrency(void **state)
{
    (void)state;
    config_t *c =
        cfg_ok("providers:\n  - {name: p, type: openai, base_url: 'http://127.0.0.1:1/v1'}\n"
               "models:\n"
               "  - {name: a, provider: p, resilience: {max_concurrency: 10}}\n"
               "  - {name: b, provider: p, resilience: {max_concurrency: 10},"
               " capacity: {concurrency: 4}}\n"
               "  - {name: c, provider: p}\n");
    assert_int_equal(c->models[0].cap_concurrency, 10);
    assert_int_equal(c->models[1].cap_concurrency, 4);
    assert_int_equal(c->models[2].cap_concurrency, 0);
    route_live_t l = warm(100);
    l.in_flight = 7;
    assert_false(route_over_load_live(&c->models[0], &l, 0.8));
    l.in_flight = 8;
    assert_true(route_over_load_live(&c->models[0], &l, 0.8));
    assert_false(route_over_load_live(&c->models[2], &l, 0.8));
    config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_factor_quality),
        cmocka_unit_test(test_factor_size),
        cmocka_unit_test(test_factor_hardware),
        cmocka_unit_test(test_factor_distance),
        cmocka_unit_test(test_factor_reliability),
        cmocka_unit_test(test_factor_relative),
        cmocka_unit_test(test_estimates),
        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_score_all),
        cmocka_unit_test(test_constraints),
        cmocka_unit_test(test_constraint_headers),
        cmocka_unit_test(test_features),
        cmocka_unit_test(test_needs),
        cmocka_unit_test(test_decide_capabilities),
        cmocka_unit_test(test_classifier_builtin),
        cmocka_unit_test(test_classifier_configured),
        cmocka_unit_test(test_swrr_sequence),
        cmocka_unit_test(test_least_inflight),
        cmocka_unit_test(test_p2c),
        cmocka_unit_test(test_score_weighted),
        cmocka_unit_test(test_decide_among),
        cmocka_unit_test(test_load_threshold),
        cmocka_unit_test(test_decide_config),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_explain),
        cmocka_unit_test(test_fast_path_and_cache),
        cmocka_unit_test(test_rank_reference),
        cmocka_unit_test(test_capacity_from_max_concurrency),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    route_balance_shutdown();
    route_stats_shutdown();
    metrics_shutdown();
    return rc;
}
