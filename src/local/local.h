/*
 * local — the embedded models of a config: one engine (local/engine.h) per
 * model whose provider type is `llamacpp`, loaded at startup before the
 * worker loops run and stopped after they have ended.
 *
 * The registry is written only by local_start/local_stop on the main thread;
 * in between it is read-only, so worker loops look engines up without a lock.
 * It is also where the rest of the gateway gets exact token counts for a
 * local model (limits and cost use them).
 */
#ifndef SKULD_LOCAL_H
#define SKULD_LOCAL_H

#include <stddef.h>

#include "config/config.h"
#include "local/engine.h"

/* Load every llamacpp model of cfg. 0, or -1 after logging why. */
int local_start(const config_t *cfg);
void local_stop(void);

/* The engine serving the deployment named name; NULL when none. */
engine_t *local_engine(const char *model_name);

/* Exact token count of text for a local deployment; -1 when m is not local. Any thread. */
long local_count_tokens(const cfg_model_t *m, const char *text, size_t len);

/* Where the embedded default keeps its demo model (relative to the working directory). */
#define LOCAL_DEMO_MODEL_PATH "skuld-data/demo.gguf"

#endif
