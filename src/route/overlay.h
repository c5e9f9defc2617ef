/*
 * route overlay — runtime deployment weights over the config snapshot.
 *
 * The router reads a deployment's weight (its share among the deployments
 * of a model group, the round-robin balance) through route_weight(): the
 * weight the current overlay gives the deployment's id, else the config's
 * `weight`. The optimizer builds a new overlay and publishes it while the
 * gateway serves: no reload, no new snapshot, and a request never sees half
 * of one overlay and half of another.
 *
 * Lifetime (RCU-like): an overlay is immutable once published. Each thread
 * keeps a reference to the overlay it last used and compares one global
 * generation counter (a plain atomic load) on every read; only when it
 * changed does the thread take the mutex, drop its old reference and take
 * the current one. An overlay is freed when the last thread lets go of it,
 * so readers never wait on a writer and never touch freed memory.
 *
 * Threads: any. route_overlay_new/set on the building thread only, before
 * publish; publish from any thread.
 */
#ifndef SKULD_ROUTE_OVERLAY_H
#define SKULD_ROUTE_OVERLAY_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/buf.h"

typedef struct route_overlay route_overlay_t;

/* Room for n deployments. NULL: out of memory. */
route_overlay_t *route_overlay_new(size_t n);
#define ROUTE_OVERLAY_MAX_WEIGHT 1e6
/* Weight (0 .. ROUTE_OVERLAY_MAX_WEIGHT; fractions allowed) for the
 * deployment with this id (cfg_model_t.id). 0, or -1 when full or the
 * weight is out of range. */
int route_overlay_set(route_overlay_t *o, const char *deployment_id, double weight);
/* Drop an overlay that was never published. */
void route_overlay_discard(route_overlay_t *o);
/* Make o the overlay every selection reads from now on (takes it; NULL: back
 * to the config's weights). Returns the new generation. */
uint64_t route_overlay_publish(route_overlay_t *o);
/* The weight selection uses for m. */
double route_weight(const cfg_model_t *m);
/* Bumped by every publish (0: none yet). */
uint64_t route_overlay_generation(void);
/* The current overlay as a JSON object {"id": weight, ...} ({} when none)
 * appended to o; returns its generation. */
uint64_t route_overlay_json(buf_t *o);
/* This thread lets go of the overlay it holds (a worker thread that ends). */
void route_overlay_thread_release(void);

#endif
