/*
 * test_resil — unit tests for the resilience modules (src/route): the
 * circuit breaker state machine (with an explicit clock), backoff and jitter
 * bounds, Retry-After, the retry budget, the request queue's ordering, and
 * the outcome classification / candidate choice.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "call/breaker.h"
#include "call/queue.h"
#include "call/resil.h"
#include "call/retry.h"

static brk_params_t params(void)
{
    brk_params_t p = {.failures = 5,
                      .rate = 0.5,
                      .window_ms = 10000,
                      .min_requests = 20,
                      .eject_ms = 1000,
                      .max_eject_ms = 4000};
    return p;
}

/* ---------- breaker ---------- */

static void test_breaker_consecutive_open_probe_close(void **state)
{
    (void)state;
    breaker_t b;
    breaker_init(&b);
    brk_params_t p = params();
    uint64_t t = 100000;
    /* 4 failures, a success resets, then 5 more open it */
    for (int i = 0; i < 4; i++) breaker_report(&b, &p, t, false, false);
    breaker_report(&b, &p, t, true, false);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(breaker_allow(&b, &p, t), BRK_ALLOW);
        breaker_report(&b, &p, t, false, false);
    }
    assert_int_equal(breaker_state(&b), BRK_CLOSED);
    breaker_report(&b, &p, t, false, false);
    assert_int_equal(breaker_state(&b), BRK_OPEN);
    assert_int_equal(breaker_allow(&b, &p, t + 999), BRK_DENY);
    /* after the ejection time: exactly one probe */
    assert_int_equal(breaker_allow(&b, &p, t + 1000), BRK_PROBE);
    assert_int_equal(breaker_state(&b), BRK_HALF_OPEN);
    assert_int_equal(breaker_allow(&b, &p, t + 1001), BRK_DENY);
    /* late outcomes of attempts admitted before it opened do not count */
    breaker_report(&b, &p, t + 1001, true, false);
    assert_int_equal(breaker_state(&b), BRK_HALF_OPEN);
    breaker_report(&b, &p, t + 1002, true, true);
    assert_int_equal(breaker_state(&b), BRK_CLOSED);
    assert_int_equal(breaker_allow(&b, &p, t + 1003), BRK_ALLOW);
    assert_int_equal(atomic_load(&b.opens), 1);
}

static void test_breaker_ejection_grows_and_resets(void **state)
{
    (void)state;
    breaker_t b;
    breaker_init(&b);
    brk_params_t p = params();
    uint64_t t = 100000;
    for (int i = 0; i < 5; i++) breaker_report(&b, &p, t, false, false);
    assert_int_equal(b.open_until_ms, t + 1000);
    /* failed probes: 2 s, 4 s, then capped at 4 s */
    t += 1000;
    assert_int_equal(breaker_allow(&b, &p, t), BRK_PROBE);
    breaker_report(&b, &p, t, false, true);
    assert_int_equal(breaker_state(&b), BRK_OPEN);
    assert_int_equal(b.open_until_ms, t + 2000);
    t += 2000;
    assert_int_equal(breaker_allow(&b, &p, t), BRK_PROBE);
    breaker_report(&b, &p, t, false, true);
    assert_int_equal(b.open_until_ms, t + 4000);
    t += 4000;
    assert_int_equal(breaker_allow(&b, &p, t), BRK_PROBE);
    breaker_report(&b, &p, t, false, true);
    assert_int_equal(b.open_until_ms, t + 4000);
    /* recovered, and stays closed longer than max_eject: the next ejection is short again */
    t += 4000;
    assert_int_equal(breaker_allow(&b, &p, t), BRK_PROBE);
    breaker_report(&b, &p, t, true, true);
    t += 4000;
    for (int i = 0; i < 5; i++) breaker_report(&b, &p, t, false, false);
    assert_int_equal(b.open_until_ms, t + 1000);
}

static void test_breaker_abandoned_probe(void **state)
{
    (void)state;
    breaker_t b;
    breaker_init(&b);
    brk_params_t p = params();
    for (int i = 0; i < 5; i++) breaker_report(&b, &p, 0, false, false);
    assert_int_equal(breaker_allow(&b, &p, 1000), BRK_PROBE);
    breaker_probe_abandon(&b); /* the client left */
    assert_int_equal(breaker_allow(&b, &p, 1001), BRK_PROBE);
}

static void test_breaker_failure_rate(void **state)
{
    (void)state;
    breaker_t b;
    breaker_init(&b);
    brk_params_t p = params();
    p.failures = 0; /* consecutive rule off */
    uint64_t t = 50000;
    /* alternating: 50% failures, opens once the window holds 20 outcomes */
    for (int i = 0; i < 19; i++) {
        breaker_report(&b, &p, t + (uint64_t)i, i % 2 == 0, false);
        assert_int_equal(breaker_state(&b), BRK_CLOSED);
    }
    breaker_report(&b, &p, t + 19, false, false);
    assert_int_equal(breaker_state(&b), BRK_OPEN);
    /* 30% failures never open it */
    breaker_t c;
    breaker_init(&c);
    for (int i = 0; i < 200; i++) breaker_report(&c, &p, t + (uint64_t)i, i % 10 >= 3, false);
    assert_int_equal(breaker_state(&c), BRK_CLOSED);
    /* old outcomes leave the window: 15 failures long ago + 10 now do not add up */
    breaker_t d;
    breaker_init(&d);
    for (int i = 0; i < 15; i++) breaker_report(&d, &p, t, false, false);
    for (int i = 0; i < 10; i++) breaker_report(&d, &p, t + 20000, i < 4, false);
    assert_int_equal(breaker_state(&d), BRK_CLOSED);
}

static void test_breaker_gateway_statuses_do_not_count(void **state)
{
    (void)state;
    assert_true(resil_is_breaker_failure(UP_OK, 500));
    assert_true(resil_is_breaker_failure(UP_OK, 503));
    assert_true(resil_is_breaker_failure(UP_TIMEOUT, 0));
    assert_true(resil_is_breaker_failure(UP_CONNECT_FAILED, 0));
    assert_true(resil_is_breaker_failure(UP_PROTOCOL_ERROR, 0));
    assert_false(resil_is_breaker_failure(UP_OK, 429)); /* rate limit, not ill health */
    assert_false(resil_is_breaker_failure(UP_OK, 400));
    assert_false(resil_is_breaker_failure(UP_OK, 200));
}

/* ---------- backoff, Retry-After, budget ---------- */

static void test_backoff_full_jitter_bounds(void **state)
{
    (void)state;
    for (int n = 0; n < 8; n++) {
        uint64_t cap = 25u << n;
        if (cap > 250) cap = 250;
        uint64_t lo = UINT64_MAX, hi = 0;
        for (int i = 0; i < 4000; i++) {
            uint64_t v = retry_backoff_ms(25, 250, n, retry_rand());
            assert_true(v <= cap);
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        /* full jitter: the whole range [0, cap] is used */
        assert_true(lo <= cap / 10);
        assert_true(hi >= cap - cap / 10);
    }
    assert_int_equal(retry_backoff_ms(25, 250, 40, 12345), 12345 % 251); /* no overflow */
}

static void test_retry_after(void **state)
{
    (void)state;
    assert_int_equal(retry_after_ms("3", 0), 3000);
    assert_int_equal(retry_after_ms(" 0 ", 0), 0);
    assert_int_equal(retry_after_ms(NULL, 0), -1);
    assert_int_equal(retry_after_ms("soon", 0), -1);
    assert_int_equal(retry_after_ms("-1", 0), -1);
    /* Wed, 21 Oct 2015 07:28:00 GMT = 1445412480 */
    assert_int_equal(retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470), 10000);
    assert_int_equal(retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490), 0);
}

static void test_retry_budget(void **state)
{
    (void)state;
    retry_budget_t b = {0};
    for (int i = 0; i < 10; i++) retry_budget_begin(&b);
    /* 20% of 10 = 2, but at least 3 */
    for (int i = 0; i < 3; i++) assert_true(retry_budget_acquire(&b, 0.2, 3));
    assert_false(retry_budget_acquire(&b, 0.2, 3));
    retry_budget_release(&b);
    assert_true(retry_budget_acquire(&b, 0.2, 3));
    for (int i = 0; i < 3; i++) retry_budget_release(&b);
    /* 100 active: 20 */
    for (int i = 0; i < 90; i++) retry_budget_begin(&b);
    int got = 0;
    while (retry_budget_acquire(&b, 0.2, 3)) got++;
    assert_int_equal(got, 20);
    assert_int_equal(atomic_load(&b.retries), 20);
}

/* ---------- queue ---------- */

static void test_queue_priority_fifo(void **state)
{
    (void)state;
    rq_t q;
    rq_init(&q);
    rq_node_t n[9];
    int cls[9] = {RQ_LOW, RQ_NORMAL, RQ_HIGH, RQ_LOW, RQ_HIGH, RQ_NORMAL, RQ_LOW, RQ_HIGH, 7};
    for (int i = 0; i < 9; i++) {
        memset(&n[i], 0, sizeof n[i]);
        n[i].ud = &n[i];
        assert_true(rq_push(&q, &n[i], cls[i], 100));
    }
    assert_int_equal(q.n, 9);
    rq_remove(&q, &n[4]);                  /* a high one leaves (timeout) */
    rq_remove(&q, &n[4]);                  /* twice is harmless */
    int want[] = {2, 7, 1, 5, 8, 0, 3, 6}; /* high FIFO, normal FIFO (7 -> normal), low FIFO */
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        rq_node_t *x = rq_pop(&q);
        assert_ptr_equal(x, &n[want[i]]);
        assert_false(x->queued);
    }
    assert_null(rq_pop(&q));
    assert_int_equal(q.n, 0);
    /* bounded */
    for (int i = 0; i < 3; i++) assert_true(rq_push(&q, &n[i], RQ_LOW, 3));
    assert_false(rq_push(&q, &n[3], RQ_HIGH, 3));
    assert_int_equal(q.n, 3);
}

static void test_queue_class_parse(void **state)
{
    (void)state;
    assert_int_equal(rq_class_parse("high", 4), RQ_HIGH);
    assert_int_equal(rq_class_parse("HIGH", 4), RQ_HIGH);
    assert_int_equal(rq_class_parse("0", 1), RQ_HIGH);
    assert_int_equal(rq_class_parse("low", 3), RQ_LOW);
    assert_int_equal(rq_class_parse("2", 1), RQ_LOW);
    assert_int_equal(rq_class_parse("normal", 6), RQ_NORMAL);
    assert_int_equal(rq_class_parse("urgent", 6), RQ_NORMAL);
    assert_int_equal(rq_class_parse(NULL, 0), RQ_NORMAL);
}

/* ---------- classification and the next candidate ---------- */

static void test_classify(void **state)
{
    (void)state;
    static const char ctx[] = "{\"error\":{\"code\":\"context_length_exceeded\"}}";
    static const char pol[] = "{\"error\":{\"code\":\"content_policy_violation\"}}";
    static const char filt[] = "{\"choices\":[{\"finish_reason\":\"content_filter\"}]}";
    assert_int_equal(resil_classify(UP_OK, 200, "{}", 2), RES_OK);
    assert_int_equal(resil_classify(UP_OK, 429, NULL, 0), RES_RETRY);
    assert_int_equal(resil_classify(UP_OK, 500, NULL, 0), RES_RETRY);
    assert_int_equal(resil_classify(UP_OK, 503, NULL, 0), RES_RETRY);
    assert_int_equal(resil_classify(UP_TIMEOUT, 0, NULL, 0), RES_RETRY);
    assert_int_equal(resil_classify(UP_CONNECT_FAILED, 0, NULL, 0), RES_RETRY);
    assert_int_equal(resil_classify(UP_OK, 400, ctx, sizeof ctx - 1), RES_CONTEXT);
    assert_int_equal(resil_classify(UP_OK, 400, pol, sizeof pol - 1), RES_POLICY);
    assert_int_equal(resil_classify(UP_OK, 200, filt, sizeof filt - 1), RES_POLICY);
    assert_int_equal(resil_classify(UP_OK, 400, "{}", 2), RES_FINAL);
    assert_int_equal(resil_classify(UP_OK, 401, NULL, 0), RES_FINAL);
}

static void test_next_candidate(void **state)
{
    (void)state;
    cfg_model_t m[4];
    memset(m, 0, sizeof m);
    m[0].context_window = 8000;
    m[1].context_window = 4000;
    m[2].context_window = 32000;
    m[3].context_window = 0; /* unknown */
    const cfg_model_t *c[4] = {&m[0], &m[1], &m[2], &m[3]};
    int tried[4] = {1, 0, 0, 0};
    /* fallbacks in order */
    assert_int_equal(resil_next_candidate(c, 4, tried, 0, RES_RETRY, 0), 1);
    /* context length: only a larger window */
    assert_int_equal(resil_next_candidate(c, 4, tried, 0, RES_CONTEXT, 0), 2);
    tried[2] = 1;
    assert_int_equal(resil_next_candidate(c, 4, tried, 0, RES_CONTEXT, 0), -1);
    assert_int_equal(resil_next_candidate(c, 4, tried, 0, RES_FINAL, 0), -1);
    /* all tried: the same deployment again only with retries_per_deployment */
    int all[4] = {1, 1, 1, 1};
    assert_int_equal(resil_next_candidate(c, 4, all, 2, RES_RETRY, 0), -1);
    assert_int_equal(resil_next_candidate(c, 4, all, 2, RES_RETRY, 1), 2);
    int twice[4] = {2, 1, 2, 2};
    assert_int_equal(resil_next_candidate(c, 4, twice, 2, RES_RETRY, 1), 1);
}

/* ---------- per-deployment state ---------- */

static void test_dep_registry_p95_and_slots(void **state)
{
    (void)state;
    resil_dep_t *d = resil_dep_get("m", "p", NULL);
    assert_non_null(d);
    assert_ptr_equal(resil_dep_get("m", "p", NULL), d); /* one per (name, provider) */
    assert_ptr_not_equal(resil_dep_get("m", "q", NULL), d);
    /* p95 needs 20 samples; below, the floor */
    for (int i = 1; i <= 19; i++) resil_dep_latency(d, (uint64_t)i * 10);
    assert_int_equal(resil_dep_p95(d, 5), 5);
    resil_dep_latency(d, 200);
    assert_int_equal(resil_dep_p95(d, 5), 190);   /* 20 samples 10..200: the 19th */
    assert_int_equal(resil_dep_p95(d, 500), 500); /* never under the floor */
    /* the ring keeps the latest 128 */
    for (int i = 0; i < 128; i++) resil_dep_latency(d, 1000);
    assert_int_equal(resil_dep_p95(d, 5), 1000);
    /* slots */
    assert_true(resil_dep_acquire(d, 2));
    assert_true(resil_dep_acquire(d, 2));
    assert_false(resil_dep_acquire(d, 2));
    resil_dep_release(d);
    assert_true(resil_dep_acquire(d, 2));
    assert_true(resil_dep_acquire(d, 0)); /* unlimited still counts */
    assert_int_equal(atomic_load(&d->active), 3);
    for (int i = 0; i < 3; i++) resil_dep_release(d);
    assert_int_equal(atomic_load(&d->active), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_breaker_consecutive_open_probe_close),
        cmocka_unit_test(test_breaker_ejection_grows_and_resets),
        cmocka_unit_test(test_breaker_abandoned_probe),
        cmocka_unit_test(test_breaker_failure_rate),
        cmocka_unit_test(test_breaker_gateway_statuses_do_not_count),
        cmocka_unit_test(test_backoff_full_jitter_bounds),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_retry_budget),
        cmocka_unit_test(test_queue_priority_fifo),
        cmocka_unit_test(test_queue_class_parse),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_next_candidate),
        cmocka_unit_test(test_dep_registry_p95_and_slots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
