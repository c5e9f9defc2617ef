#include "core/loopcall.h"

#include <event2/event.h>
#include <stdlib.h>

typedef struct loopcall_msg {
    struct event *ev;
    void (*fn)(void *);
    void *arg;
} loopcall_msg_t;

static void loopcall__run(evutil_socket_t fd, short what, void *p)
{
    loopcall_msg_t *m = p;
    m->fn(m->arg);
    event_free(m->ev); /* allowed inside the event's own callback */
    free(m);
}

int loopcall(struct event_base *base, void (*fn)(void *arg), void *arg)
{
    loopcall_msg_t *m = malloc(sizeof *m);
    if (!m) return -1;
    m->fn = fn;
    m->arg = arg;
    m->ev = event_new(base, -1, 0, loopcall__run, m);
    if (!m->ev) {
        free(m);
        return -1;
    }
    event_active(m->ev, EV_TIMEOUT, 0);
    return 0;
}
