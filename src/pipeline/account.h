/*
 * pipeline account — the per-request metrics (skuld_requests_total and
 * friends, by deployment) and the access log, as subscribers of the request
 * events (events.h). Nothing else in the request path counts requests or
 * writes log lines.
 */
#ifndef SKULD_PIPELINE_ACCOUNT_H
#define SKULD_PIPELINE_ACCOUNT_H

#include "config/config.h"

/* Start-up, before workers: subscribe (after the subscribers that must run
 * first at PL_EV_FINISHED, such as the spend log). */
void pl_account_subscribe(void);
/* Every snapshot, before it serves: each deployment's metrics series. */
void pl_account_attach(config_t *cfg);

#endif
