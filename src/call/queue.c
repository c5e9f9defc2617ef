/*
 * queue — see queue.h.
 */
#include "call/queue.h"

#include <strings.h>

void rq_init(rq_t *q)
{
    for (int c = 0; c < RQ_CLASSES; c++) q->head[c].prev = q->head[c].next = &q->head[c];
    q->n = 0;
}

bool rq_push(rq_t *q, rq_node_t *node, int cls, size_t cap)
{
    if (q->n >= cap) return false;
    if (cls < 0 || cls >= RQ_CLASSES) cls = RQ_NORMAL;
    rq_node_t *h = &q->head[cls];
    node->cls = cls;
    node->next = h;
    node->prev = h->prev;
    h->prev->next = node;
    h->prev = node;
    node->queued = true;
    q->n++;
    return true;
}

rq_node_t *rq_peek(rq_t *q)
{
    for (int c = 0; c < RQ_CLASSES; c++)
        if (q->head[c].next != &q->head[c]) return q->head[c].next;
    return NULL;
}

void rq_remove(rq_t *q, rq_node_t *node)
{
    if (!node->queued) return;
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = NULL;
    node->queued = false;
    q->n--;
}

rq_node_t *rq_pop(rq_t *q)
{
    rq_node_t *n = rq_peek(q);
    if (n) rq_remove(q, n);
    return n;
}

int rq_class_parse(const char *s, size_t n)
{
    if (!s) return RQ_NORMAL;
    if ((n == 4 && !strncasecmp(s, "high", 4)) || (n == 1 && s[0] == '0')) return RQ_HIGH;
    if ((n == 3 && !strncasecmp(s, "low", 3)) || (n == 1 && s[0] == '2')) return RQ_LOW;
    return RQ_NORMAL;
}
