/*
 * call — calling models: the call stage (relay.c: attempts, retries,
 * fallbacks, hedging, the queue, breakers through resil.h) and the
 * deployment health probes (health.h). Nothing here selects a deployment
 * (route/ does) or writes to a client (the front end does).
 */
#ifndef SKULD_CALL_H
#define SKULD_CALL_H

#include "pipeline/pipeline.h"

/* The call stage (PL_STAGE_CALL): always PL_AGAIN; the relay resumes the
 * driver with the answer, the stream's end, or the last failure. */
extern const pl_stage_t call_stage;

#endif
