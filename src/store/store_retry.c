/*
 * store_retry.c — the writer's backoff and its retry queue (issue 26).
 *
 * A log-like write (spend row, cache entry, health counters: no one waits
 * for it) that fails on a live connection — SQLite read-only or locked,
 * PostgreSQL read-only, disk full — is not dropped: it goes to the retry
 * queue, a FIFO the writer thread alone touches. The whole queue shares one
 * due time and one doubling backoff (100 ms to 5 s): when due, the writer
 * takes a batch from its head; if that commits, the backoff resets and the
 * next batch is due at once, so the queue drains at full speed once the
 * database takes writes again; if it fails, the batch goes back to the head
 * (order kept) and the backoff doubles. Each op counts its failed attempts;
 * past STORE__RETRY_ATTEMPTS (about 45 s of backoff for the head) or past
 * the queue cap it is given up, and the caller counts and logs it: bounded
 * memory, bounded attempts, never silent.
 *
 * Pure list logic with explicit clocks (tests/unit/test_store_retry.c).
 */
#include "store/store_internal.h"

unsigned store__backoff_next(unsigned cur_ms)
{
    if (cur_ms < STORE__BACKOFF_MIN_MS) return STORE__BACKOFF_MIN_MS;
    return cur_ms >= STORE__BACKOFF_MAX_MS / 2 ? STORE__BACKOFF_MAX_MS : cur_ms * 2;
}

size_t store__retryq_put(store__retryq_t *q, store__op_t *ops, bool front, bool count,
                         uint64_t now_ns, store__op_t **gone)
{
    store__op_t *keep = NULL, **kt = &keep, *last = NULL;
    store__op_t **gt = gone;
    while (*gt) gt = &(*gt)->next;
    size_t nk = 0;
    bool was_empty = q->n == 0;
    for (store__op_t *op = ops, *next; op; op = next) {
        next = op->next;
        op->next = NULL;
        if (count) op->attempts++;
        if (op->attempts > STORE__RETRY_ATTEMPTS || q->n + nk >= STORE__QUEUE_MAX) {
            *gt = op;
            gt = &op->next;
            continue;
        }
        *kt = op;
        kt = &op->next;
        last = op;
        nk++;
    }
    if (!nk) return 0;
    if (front) {
        last->next = q->head;
        q->head = keep;
        if (!q->tail) q->tail = last;
    } else {
        if (q->tail)
            q->tail->next = keep;
        else
            q->head = keep;
        q->tail = last;
    }
    q->n += nk;
    if (front || was_empty) {
        q->backoff_ms = store__backoff_next(front ? q->backoff_ms : 0);
        q->due_ns = now_ns + (uint64_t)q->backoff_ms * 1000000ull;
    }
    return nk;
}

store__op_t *store__retryq_take(store__retryq_t *q, size_t max, uint64_t now_ns, bool force,
                                size_t *n)
{
    *n = 0;
    if (!q->head || (!force && now_ns < q->due_ns)) return NULL;
    store__op_t *out = q->head, *last = q->head;
    *n = 1;
    while (*n < max && last->next) {
        last = last->next;
        (*n)++;
    }
    q->head = last->next;
    if (!q->head) q->tail = NULL;
    last->next = NULL;
    q->n -= *n;
    return out;
}

void store__retryq_ok(store__retryq_t *q, uint64_t now_ns)
{
    q->backoff_ms = 0;
    q->due_ns = now_ns;
}
