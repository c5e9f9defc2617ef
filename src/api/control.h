/*
 * api control — the one narrow header through which the admin API reaches
 * the control plane (server/gateway.c), which sets itself here at start-up.
 *
 * An admin change (reload, model registered or removed) is a ticket: the
 * worker submits it, the control plane applies it (build, validate,
 * persist, publish to every worker) and answers by running reply(ticket) on
 * the worker's loop; a worker whose client left sets ticket->alive = false
 * first and the reply is then dropped. The api includes nothing of server/.
 */
#ifndef SKULD_API_CONTROL_H
#define SKULD_API_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;

typedef enum { CTL_RELOAD, CTL_MODEL_PUT, CTL_MODEL_DELETE } ctl_op_t;

typedef struct ctl_ticket {
    ctl_op_t op;
    char *name; /* CTL_MODEL_DELETE */
    char *spec; /* CTL_MODEL_PUT: JSON object */
    struct event_base *base;
    void (*reply)(struct ctl_ticket *t);
    void *ud;
    bool alive;
    /* result */
    int status;
    char *body; /* JSON */
} ctl_ticket_t;

void ctl_ticket_free(ctl_ticket_t *t);

typedef struct ctl_plane {
    /* From a worker loop; takes ownership of t (freed after reply). */
    void (*submit)(void *plane, ctl_ticket_t *t);
    /* For /readyz (never waits on the database): NULL when ready, else the
     * error code with a one-line detail (store_readiness). */
    const char *(*store_ready)(void *plane, char *detail, size_t n);
    void *plane;
} ctl_plane_t;

/* Start-up, before the workers run (the control plane). */
void ctl_plane_set(const ctl_plane_t *p);
/* Workers. Without a control plane (tests): submit answers 503, store_ready ready. */
void ctl_submit(ctl_ticket_t *t);
const char *ctl_store_ready(char *detail, size_t n);

#endif
