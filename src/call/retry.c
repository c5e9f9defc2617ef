/*
 * retry — see retry.h.
 */
#include "call/retry.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

retry_budget_t retry_budget_global;

uint64_t retry_backoff_ms(uint64_t base_ms, uint64_t max_ms, int n, uint64_t rnd)
{
    uint64_t cap = base_ms;
    for (int i = 0; i < n && cap < max_ms; i++) cap *= 2;
    if (cap > max_ms) cap = max_ms;
    return rnd % (cap + 1);
}

int64_t retry_after_ms(const char *v, int64_t now_epoch_s)
{
    if (!v) return -1;
    while (*v == ' ') v++;
    if (isdigit((unsigned char)*v)) {
        char *end;
        unsigned long long s = strtoull(v, &end, 10);
        while (*end == ' ') end++;
        if (*end || s > 86400ull * 365) return -1;
        return (int64_t)s * 1000;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *e = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!e) return -1;
    int64_t at = (int64_t)timegm(&tm);
    return at <= now_epoch_s ? 0 : (at - now_epoch_s) * 1000;
}

void retry_budget_begin(retry_budget_t *b)
{
    atomic_fetch_add_explicit(&b->active, 1, memory_order_relaxed);
}

void retry_budget_end(retry_budget_t *b)
{
    atomic_fetch_sub_explicit(&b->active, 1, memory_order_relaxed);
}

bool retry_budget_acquire(retry_budget_t *b, double ratio, int min)
{
    long active = atomic_load_explicit(&b->active, memory_order_relaxed);
    long limit = (long)(ratio * (double)active);
    if (limit < min) limit = min;
    long cur = atomic_load_explicit(&b->retries, memory_order_relaxed);
    while (cur < limit)
        if (atomic_compare_exchange_weak_explicit(&b->retries, &cur, cur + 1, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return true;
    return false;
}

void retry_budget_release(retry_budget_t *b)
{
    atomic_fetch_sub_explicit(&b->retries, 1, memory_order_relaxed);
}

uint64_t retry_rand(void)
{
    static _Thread_local uint64_t s;
    if (!s) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&s;
        if (!s) s = 0x9e3779b97f4a7c15ull;
    }
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545f4914f6cdd1dull;
}
