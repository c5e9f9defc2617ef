/*
 * Unit tests for src/route/overlay: runtime deployment weights read by the
 * router over the config's, replaced atomically while selections run.
 *
 * The concurrent test runs four selecting threads against a publisher that
 * alternates two overlays 2,000 times: odd generations give every weight to
 * grp@pa, even ones to grp@pb. A selection bracketed by two equal reads of
 * the generation ran entirely under that generation's overlay, so its pick
 * must be that overlay's deployment; one mismatch fails the test. Run under
 * ASan (make test-asan) it also shows no overlay is used after it is freed
 * or leaked.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "../common/config_fixture.h"
#include "route/overlay.h"
#include "route/router.h"

static const char *const grp_yaml =
    "providers:\n"
    "  - {name: pa, type: openai, base_url: 'http://127.0.0.1:1/v1'}\n"
    "  - {name: pb, type: openai, base_url: 'http://127.0.0.1:2/v1'}\n"
    "models:\n"
    "  - {name: grp, provider: pa, weight: 3}\n"
    "  - {name: grp, provider: pb, weight: 1}\n";

static route_live_t warm(void)
{
    route_live_t l = {.lat_ms = 10,
                      .ttft_ms = NAN,
                      .ms_per_tok = NAN,
                      .peak_ms = 10,
                      .success = 1,
                      .samples = 10,
                      .healthy = true,
                      .health_ratio = 1};
    return l;
}

static route_overlay_t *overlay_of(double wa, double wb)
{
    route_overlay_t *o = route_overlay_new(2);
    assert_non_null(o);
    assert_int_equal(route_overlay_set(o, "grp@pa", wa), 0);
    assert_int_equal(route_overlay_set(o, "grp@pb", wb), 0);
    return o;
}

static void test_overlay_weights(void **state)
{
    (void)state;
    config_t *c = cfg_ok(grp_yaml);
    const cfg_model_t *pa = &c->models[0], *pb = &c->models[1];
    assert_string_equal(pa->id, "grp@pa");
    route_overlay_publish(NULL);
    assert_true(route_weight(pa) == 3 && route_weight(pb) == 1); /* the config's */
    uint64_t g = route_overlay_publish(overlay_of(0, 2.5));
    assert_int_equal(route_overlay_generation(), g);
    assert_true(route_weight(pa) == 0 && route_weight(pb) == 2.5);
    /* a deployment the overlay does not name keeps its configured weight */
    route_overlay_t *o = route_overlay_new(1);
    assert_int_equal(route_overlay_set(o, "grp@pb", 7), 0);
    assert_int_equal(route_overlay_set(o, "grp@pb", 8), 0); /* same id: replaced */
    assert_int_equal(route_overlay_set(o, "other", 1), -1); /* full */
    assert_int_equal(route_overlay_set(o, "grp@pa", -1), -1);
    assert_int_equal(route_overlay_set(o, "grp@pa", NAN), -1);
    assert_int_equal(route_overlay_set(o, "grp@pa", ROUTE_OVERLAY_MAX_WEIGHT * 2), -1);
    route_overlay_publish(o);
    assert_true(route_weight(pa) == 3 && route_weight(pb) == 8);
    route_overlay_publish(NULL); /* back to the config */
    assert_true(route_weight(pa) == 3 && route_weight(pb) == 1);
    route_overlay_discard(overlay_of(1, 1)); /* never published */
    route_overlay_thread_release();
    config_unref(c);
}

/* Round-robin picks over the group: which deployment comes first. */
static const cfg_model_t *pick(const cfg_model_t *const *cands, route_balance_t *bal, uint64_t *rng,
                               arena_t *a)
{
    route_live_t live[2] = {warm(), warm()};
    route_features_t f;
    route_features_init(&f);
    double w[ROUTE_F__COUNT];
    route_weights_normalise(&config_default_weights, w);
    route_decision_t d;
    route_decide_among(cands, 2, live, &f, w, ROUTE_STRAT_ROUND_ROBIN, NULL, 0.8, bal, rng, a, &d);
    return d.n_order ? d.order[0] : NULL;
}

static void test_overlay_steers_selection(void **state)
{
    (void)state;
    config_t *c = cfg_ok(grp_yaml);
    const cfg_model_t *cands[2] = {&c->models[0], &c->models[1]};
    route_balance_t bal = {.mu = PTHREAD_MUTEX_INITIALIZER};
    arena_t *a = arena_create(1 << 16);
    uint64_t rng = 7;
    int n_a = 0;
    route_overlay_publish(NULL);
    for (int i = 0; i < 400; i++) n_a += pick(cands, &bal, &rng, a) == cands[0];
    assert_int_equal(n_a, 300); /* 3:1 from the config */
    route_overlay_publish(overlay_of(0, 1));
    for (int i = 0; i < 100; i++) assert_ptr_equal(pick(cands, &bal, &rng, a), cands[1]);
    route_overlay_publish(overlay_of(1, 1));
    n_a = 0;
    for (int i = 0; i < 400; i++) n_a += pick(cands, &bal, &rng, a) == cands[0];
    assert_int_equal(n_a, 200); /* 1:1 */
    route_overlay_publish(NULL);
    route_overlay_thread_release();
    free(bal.cur);
    arena_destroy(a);
    config_unref(c);
}

typedef struct sel_ctx {
    const cfg_model_t *const *cands;
    route_balance_t *bal;
    atomic_bool *stop;
    long checked, mismatched, total;
    uint64_t seed;
} sel_ctx_t;

static void *selector(void *arg)
{
    sel_ctx_t *s = arg;
    uint64_t rng = s->seed;
    while (!atomic_load(s->stop)) {
        arena_t *a = arena_create(1 << 16);
        for (int i = 0; i < 64; i++) {
            uint64_t g1 = route_overlay_generation();
            const cfg_model_t *m = pick(s->cands, s->bal, &rng, a);
            uint64_t g2 = route_overlay_generation();
            s->total++;
            if (g1 != g2 || g1 == 0) continue;
            s->checked++;
            const cfg_model_t *want = (g1 & 1) ? s->cands[0] : s->cands[1];
            if (m != want) s->mismatched++;
        }
        arena_destroy(a);
    }
    route_overlay_thread_release();
    return NULL;
}

static void test_overlay_swap_during_selection(void **state)
{
    (void)state;
    config_t *c = cfg_ok(grp_yaml);
    const cfg_model_t *cands[2] = {&c->models[0], &c->models[1]};
    route_balance_t bal = {.mu = PTHREAD_MUTEX_INITIALIZER};
    atomic_bool stop = false;
    /* start on an odd generation so every generation maps to one overlay */
    if (!(route_overlay_generation() & 1)) route_overlay_publish(NULL);
    route_overlay_publish(overlay_of(0, 1)); /* now even: grp@pb */
    enum { NT = 4 };
    pthread_t t[NT];
    sel_ctx_t ctx[NT];
    for (int i = 0; i < NT; i++) {
        ctx[i] = (sel_ctx_t){.cands = cands, .bal = &bal, .stop = &stop, .seed = 11u + (unsigned)i};
        assert_int_equal(pthread_create(&t[i], NULL, selector, &ctx[i]), 0);
    }
    for (int k = 0; k < 2000; k++) {
        bool next_odd = !(route_overlay_generation() & 1);
        uint64_t g = route_overlay_publish(next_odd ? overlay_of(1, 0) : overlay_of(0, 1));
        assert_int_equal((int)(g & 1), next_odd ? 1 : 0);
        struct timespec ts = {0, 20000}; /* 20 µs: selections run between swaps */
        nanosleep(&ts, NULL);
    }
    atomic_store(&stop, true);
    long checked = 0, mismatched = 0, total = 0;
    for (int i = 0; i < NT; i++) {
        pthread_join(t[i], NULL);
        checked += ctx[i].checked;
        mismatched += ctx[i].mismatched;
        total += ctx[i].total;
    }
    printf("overlay swap: %ld selections, %ld inside one generation, %ld mismatched\n", total,
           checked, mismatched);
    assert_int_equal(mismatched, 0);
    assert_true(checked > 1000); /* the check saw real work, not a quiet window */
    route_overlay_publish(NULL);
    route_overlay_thread_release();
    free(bal.cur);
    config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overlay_weights),
        cmocka_unit_test(test_overlay_steers_selection),
        cmocka_unit_test(test_overlay_swap_during_selection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
