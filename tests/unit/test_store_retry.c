/*
 * test_store_retry — the store writer's backoff and retry queue
 * (src/store/store_retry.c): order, due times, attempt bound, cap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "store/store_internal.h"

#define MS 1000000ull

static store__op_t *chain(store__op_t *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ops[i].next = i + 1 < n ? &ops[i + 1] : NULL;
        ops[i].kind = STORE__OP_SPEND_ADD;
    }
    return n ? &ops[0] : NULL;
}

static size_t count(const store__op_t *op)
{
    size_t n = 0;
    for (; op; op = op->next) n++;
    return n;
}

static void test_backoff_doubles_to_the_cap(void **state)
{
    (void)state;
    unsigned b = 0, seen[10];
    for (int i = 0; i < 10; i++) seen[i] = b = store__backoff_next(b);
    assert_int_equal(seen[0], STORE__BACKOFF_MIN_MS);
    assert_int_equal(seen[1], 2 * STORE__BACKOFF_MIN_MS);
    assert_int_equal(seen[5], 32 * STORE__BACKOFF_MIN_MS);
    assert_int_equal(seen[6], STORE__BACKOFF_MAX_MS);
    assert_int_equal(seen[9], STORE__BACKOFF_MAX_MS);
}

static void test_new_failures_wait_then_come_back_in_order(void **state)
{
    (void)state;
    store__retryq_t q = {0};
    store__op_t a[3] = {{0}}, b[2] = {{0}}, *gone = NULL;
    uint64_t t = 1000 * MS;
    assert_int_equal(store__retryq_put(&q, chain(a, 3), false, true, t, &gone), 3);
    assert_null(gone);
    assert_int_equal(q.due_ns, t + STORE__BACKOFF_MIN_MS * MS);
    /* more failures later: appended, the due time stays */
    assert_int_equal(store__retryq_put(&q, chain(b, 2), false, true, t + 10 * MS, &gone), 2);
    assert_int_equal(q.due_ns, t + STORE__BACKOFF_MIN_MS * MS);
    assert_int_equal(q.n, 5);
    size_t n;
    assert_null(store__retryq_take(&q, 64, t + 50 * MS, false, &n)); /* not due */
    assert_int_equal(n, 0);
    store__op_t *got = store__retryq_take(&q, 4, t + 50 * MS, true, &n); /* forced (closing) */
    assert_int_equal(n, 4);
    assert_ptr_equal(got, &a[0]);
    assert_ptr_equal(got->next->next->next, &b[0]);
    assert_null(b[0].next);
    assert_int_equal(q.n, 1);
    assert_ptr_equal(q.head, &b[1]);
    assert_ptr_equal(q.tail, &b[1]);
    assert_int_equal(a[0].attempts, 1);
}

static void test_failed_round_goes_back_to_the_head_with_longer_backoff(void **state)
{
    (void)state;
    store__retryq_t q = {0};
    store__op_t a[2] = {{0}}, b[2] = {{0}}, *gone = NULL;
    uint64_t t = 0;
    store__retryq_put(&q, chain(a, 2), false, true, t, &gone);
    store__retryq_put(&q, chain(b, 2), false, true, t, &gone);
    size_t n;
    t = q.due_ns;
    store__op_t *got = store__retryq_take(&q, 2, t, false, &n);
    assert_ptr_equal(got, &a[0]);
    assert_int_equal(n, 2);
    /* the round failed again: back in front, order kept, backoff doubled */
    store__retryq_put(&q, got, true, true, t, &gone);
    assert_ptr_equal(q.head, &a[0]);
    assert_ptr_equal(a[1].next, &b[0]);
    assert_ptr_equal(q.tail, &b[1]);
    assert_int_equal(q.due_ns, t + 2 * STORE__BACKOFF_MIN_MS * MS);
    assert_int_equal(a[0].attempts, 2);
    assert_int_equal(b[0].attempts, 1);
    /* unreachable (nothing really tried): not counted */
    got = store__retryq_take(&q, 2, q.due_ns, false, &n);
    store__retryq_put(&q, got, true, false, t, &gone);
    assert_int_equal(a[0].attempts, 2);
    /* a round that commits: the rest is due at once, the backoff resets */
    got = store__retryq_take(&q, 2, q.due_ns, false, &n);
    store__retryq_ok(&q, t + 7 * MS);
    assert_int_equal(q.due_ns, t + 7 * MS);
    assert_int_equal(q.backoff_ms, 0);
    assert_non_null(store__retryq_take(&q, 64, t + 7 * MS, false, &n));
    assert_int_equal(n, 2);
    assert_int_equal(q.n, 0);
    assert_null(q.head);
    assert_null(q.tail);
}

static void test_attempts_are_bounded(void **state)
{
    (void)state;
    store__retryq_t q = {0};
    store__op_t a[2] = {{0}}, *gone = NULL;
    a[0].attempts = STORE__RETRY_ATTEMPTS; /* its last attempt just failed */
    a[1].attempts = STORE__RETRY_ATTEMPTS - 1;
    assert_int_equal(store__retryq_put(&q, chain(a, 2), true, true, 0, &gone), 1);
    assert_ptr_equal(gone, &a[0]);
    assert_null(a[0].next);
    assert_ptr_equal(q.head, &a[1]);
    /* and gone is appended to, not overwritten */
    store__op_t c[1] = {{0}};
    c[0].attempts = STORE__RETRY_ATTEMPTS;
    store__retryq_put(&q, chain(c, 1), false, true, 0, &gone);
    assert_int_equal(count(gone), 2);
    assert_ptr_equal(gone->next, &c[0]);
}

static void test_the_queue_is_capped(void **state)
{
    (void)state;
    store__retryq_t q = {0};
    size_t n = STORE__QUEUE_MAX + 3;
    store__op_t *ops = calloc(n, sizeof *ops), *gone = NULL;
    assert_non_null(ops);
    assert_int_equal(store__retryq_put(&q, chain(ops, n), false, true, 0, &gone), STORE__QUEUE_MAX);
    assert_int_equal(count(gone), 3);
    assert_int_equal(q.n, STORE__QUEUE_MAX);
    free(ops);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_doubles_to_the_cap),
        cmocka_unit_test(test_new_failures_wait_then_come_back_in_order),
        cmocka_unit_test(test_failed_round_goes_back_to_the_head_with_longer_backoff),
        cmocka_unit_test(test_attempts_are_bounded),
        cmocka_unit_test(test_the_queue_is_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
