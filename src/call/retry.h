/*
 * retry — backoff with full jitter, Retry-After, and the retry budget.
 *
 * Backoff (AWS "full jitter"): the n-th retry (n = 0 first) waits a uniform
 * random time in [0, min(max, base * 2^n)]; a Retry-After from the upstream
 * raises that wait to at least its value.
 *
 * Budget (Envoy's retry budget): process-wide counts of active requests and
 * of retries in flight (a retry is in flight from the decision to retry until
 * its attempt ends, backoff included). A retry may start only while
 * retries < max(min, ratio * active requests). Atomics, any thread.
 */
#ifndef SKULD_ROUTE_RETRY_H
#define SKULD_ROUTE_RETRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

uint64_t retry_backoff_ms(uint64_t base_ms, uint64_t max_ms, int n, uint64_t rnd);
/* Retry-After (delta seconds or an HTTP date) in ms from now; -1 when absent or unreadable. */
int64_t retry_after_ms(const char *value, int64_t now_epoch_s);

typedef struct retry_budget {
    atomic_long active;  /* client requests in flight */
    atomic_long retries; /* retries in flight */
} retry_budget_t;

extern retry_budget_t retry_budget_global;

void retry_budget_begin(retry_budget_t *b);
void retry_budget_end(retry_budget_t *b);
bool retry_budget_acquire(retry_budget_t *b, double ratio, int min);
void retry_budget_release(retry_budget_t *b);

/* A small per-thread PRNG (xorshift64*), seeded from the clock and thread. */
uint64_t retry_rand(void);

#endif
