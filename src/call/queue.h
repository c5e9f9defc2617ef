/*
 * queue — the request queue used when every candidate is at capacity.
 *
 * One rq_t per worker thread (only that thread touches it): three priority
 * classes (x-skuld-priority: high, normal, low), FIFO within a class, bounded
 * by the caller's capacity. Nodes are embedded in the waiting request (no
 * allocation here); rq_remove() takes a node out from anywhere (timeout,
 * client gone).
 */
#ifndef SKULD_ROUTE_QUEUE_H
#define SKULD_ROUTE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { RQ_HIGH = 0, RQ_NORMAL, RQ_LOW, RQ_CLASSES };

typedef struct rq_node {
    struct rq_node *prev, *next;
    int cls;
    bool queued;
    void *ud;
} rq_node_t;

typedef struct rq {
    rq_node_t head[RQ_CLASSES]; /* sentinels of circular lists */
    size_t n;
} rq_t;

void rq_init(rq_t *q);
/* false when the queue already holds cap nodes. */
bool rq_push(rq_t *q, rq_node_t *node, int cls, size_t cap);
rq_node_t *rq_peek(rq_t *q); /* highest class first, oldest first */
rq_node_t *rq_pop(rq_t *q);
void rq_remove(rq_t *q, rq_node_t *node);
/* "high"/"normal"/"low" (or 0/1/2... any case); RQ_NORMAL for anything else. */
int rq_class_parse(const char *s, size_t n);

#endif
