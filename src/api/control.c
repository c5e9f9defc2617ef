/*
 * api control — see control.h.
 */
#include "api/control.h"

#include <stdlib.h>
#include <string.h>

static ctl_plane_t ctl_plane; /* set once at start-up, read-only afterwards */

void ctl_ticket_free(ctl_ticket_t *t)
{
    if (!t) return;
    free(t->name);
    free(t->spec);
    free(t->body);
    free(t);
}

void ctl_plane_set(const ctl_plane_t *p)
{
    ctl_plane = *p;
}

void ctl_submit(ctl_ticket_t *t)
{
    if (ctl_plane.submit) {
        ctl_plane.submit(ctl_plane.plane, t);
        return;
    }
    t->status = 503;
    t->body = strdup("{\"error\":{\"message\":\"no control plane\",\"type\":\"server_error\","
                     "\"param\":null,\"code\":\"unavailable\"}}");
    if (t->alive) t->reply(t);
    ctl_ticket_free(t);
}

const char *ctl_store_ready(char *detail, size_t n)
{
    return ctl_plane.store_ready ? ctl_plane.store_ready(ctl_plane.plane, detail, n) : NULL;
}
