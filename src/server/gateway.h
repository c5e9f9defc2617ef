/*
 * gateway — the process: worker threads plus the control plane.
 *
 * The main thread runs the control plane: a poll() loop over a signalfd
 * (SIGTERM/SIGINT drain, SIGHUP reload), an inotify watch on the config file
 * (reload when it is rewritten or replaced), and a pipe through which workers
 * submit admin operations. Every change of the serving snapshot — reload,
 * model registered, model removed — is made here, one at a time:
 *
 *   build a new snapshot (file text + runtime models) -> validate
 *   -> persist (runtime models) -> publish to every worker -> wait for all
 *   -> answer the admin request.
 *
 * The admin API reaches this through api/control.h (the control plane sets
 * itself there at start-up).
 *
 * Publishing hands each worker a reference through loopcall(); a worker
 * swaps its pointer on its own thread, so requests never race a swap and a
 * request keeps the snapshot it started with. Because the admin answer waits
 * for every worker, a change is visible on all workers once it is answered.
 * An invalid snapshot is rejected, logged with every error, counted in
 * skuld_config_reload_failures_total, and the old one keeps serving.
 */
#ifndef SKULD_GATEWAY_H
#define SKULD_GATEWAY_H

#include <stdbool.h>

#include "config/config.h"

struct event_base;
typedef struct gateway gateway_t;

/* Run until SIGTERM/SIGINT has drained the workers. Returns the exit code.
 * config_path NULL means the embedded default (not reloadable from disk). */
int gateway_run(config_t *cfg, const char *config_path, const char *listen_override);

#endif
