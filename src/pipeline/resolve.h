/*
 * pipeline resolve — where pure selection (route/) meets the request: the
 * resolve stage (the name asked for -> r->cands, r->model) and the live
 * statistics the router reads, fed from the request events. Worker thread.
 */
#ifndef SKULD_PIPELINE_RESOLVE_H
#define SKULD_PIPELINE_RESOLVE_H

#include "pipeline/pipeline.h"
#include "route/router.h"

extern const pl_stage_t pl_resolve_stage;
/* Start-up: the live-stats subscriber (first byte, finished). */
void pl_resolve_subscribe(void);
/* The constraint headers of r into f; -1 with *header and *err set when one is malformed. */
int pl_route_constraints(pl_req_t *r, route_features_t *f, const char **header, const char **err);

#endif
