/*
 * pipeline events — see events.h. A fixed table filled at start-up; one list
 * of subscriber indexes per event, so an event nobody wants costs a load.
 */
#include "pipeline/events.h"

#define PL_MAX_SUBS 16

typedef struct pl_sub {
    pl_sub_fn fn;
    void *ud;
} pl_sub_t;

static pl_sub_t pl_subs[PL_MAX_SUBS];
static int pl_n_subs;
static unsigned char pl_by_ev[PL_EV__COUNT][PL_MAX_SUBS];
static int pl_n_by_ev[PL_EV__COUNT];

int pl_subscribe(unsigned mask, pl_sub_fn fn, void *ud)
{
    if (pl_n_subs >= PL_MAX_SUBS || !fn) return -1;
    int i = pl_n_subs++;
    pl_subs[i] = (pl_sub_t){fn, ud};
    for (int e = 0; e < PL_EV__COUNT; e++)
        if (mask & PL_EVMASK(e)) pl_by_ev[e][pl_n_by_ev[e]++] = (unsigned char)i;
    return 0;
}

void pl_emit(pl_req_t *r, pl_event_t ev, const pl_evd_t *d)
{
    static const pl_evd_t none;
    int n = pl_n_by_ev[ev];
    for (int k = 0; k < n; k++) {
        const pl_sub_t *s = &pl_subs[pl_by_ev[ev][k]];
        s->fn(r, ev, d ? d : &none, s->ud);
    }
}
