/*
 * health — periodic probe of every deployment.
 *
 * Runs on one worker's loop (worker 0) with a timer every
 * server.health_interval. Each tick probes each deployment of that worker's
 * current snapshot through the provider's build_probe (a cheap authenticated
 * GET, e.g. the models list) on the worker's own upstream pool, so probing
 * never blocks and reuses keep-alive connections. A deployment of a local
 * provider (no build_probe) counts as up. A probe still running when the next
 * tick comes is not doubled. Results land in the deployment's metrics series
 * (probes, successes, up, last probe time), from which /metrics and
 * /admin/models report availability and uptime, and are handed to an
 * optional sink (the store) for persistence.
 */
#ifndef SKULD_HEALTH_H
#define SKULD_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

struct pl_env;
typedef struct health health_t;

/* Called on the probing loop after each probe result. */
typedef void (*health_sink_fn)(void *ud, const char *model, uint64_t probes, uint64_t successes,
                               int64_t last_ms, bool up);

/* Start probing on the worker env's loop (call on its thread): its current
 * snapshot, its upstream pool. interval_ms 0 = no probes. */
health_t *health_start(struct pl_env *env, uint64_t interval_ms, health_sink_fn sink, void *ud);
/* Stop and cancel probes in flight (on the env's thread). */
void health_stop(health_t *h);

#endif
