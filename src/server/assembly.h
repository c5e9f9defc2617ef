/*
 * assembly — the request pipeline put together: which stage runs in which
 * place and which subscribers hear the request events, in what order. The
 * one file that names every stage; the stages name none of each other.
 */
#ifndef SKULD_SERVER_ASSEMBLY_H
#define SKULD_SERVER_ASSEMBLY_H

#include "config/config.h"

/* Once, before the workers start. */
void gw_pipeline_setup(void);
/* Every snapshot, before it serves: process-wide per-deployment state
 * (metrics series, live stats, breakers) attached to its models. */
void gw_snapshot_attach(config_t *cfg);

#endif
