/*
 * local — the embedded models of the running config: one engine
 * (local/engine.h) per model whose provider type is `llamacpp`.
 *
 * The registry maps a deployment name to a refcounted local_model_t (its
 * engine and what it was loaded from). It changes on the control thread only,
 * in two steps, so that a reload either takes effect whole or not at all:
 *
 *   local_prepare(cfg)  loads what cfg needs and the registry lacks (a new
 *                       name, or a known name with another path, slot count
 *                       or context); on any failure it unloads what it
 *                       loaded and the registry is untouched;
 *   local_commit()      makes the prepared set current: every llamacpp model
 *                       of cfg, reused or new; names cfg no longer has leave;
 *   local_abort()       drops a prepared set that will not be published.
 *
 * Lookups (local_acquire) take a reference under a mutex, from any thread; a
 * call keeps its model for its whole life, so a reload that removes or
 * replaces a model never cuts the calls running on it: the old engine is
 * freed when its last call releases it (on a detached thread, so that a
 * worker loop never waits for an engine thread to stop). local_stop waits for
 * those and frees the rest.
 *
 * It is also where the rest of the gateway gets exact token counts for a
 * local model (limits and cost use them).
 */
#ifndef SKULD_LOCAL_H
#define SKULD_LOCAL_H

#include <stddef.h>

#include "config/config.h"
#include "local/engine.h"

typedef struct local_model local_model_t;

/* At start: load every llamacpp model of cfg and make it current. 0, or -1
 * after logging why. */
int local_start(const config_t *cfg);
/* After the workers stopped: free every model (waits for pending frees). */
void local_stop(void);

/* Control thread. 0: prepared (commit or abort next); -1: a model could not
 * be loaded, err says which and why, nothing changed. A prepare replaces a
 * set prepared earlier and not committed (it is aborted first). */
int local_prepare(const config_t *cfg, char *err, size_t errlen);
void local_commit(void);
void local_abort(void);

/* The model serving the deployment named name, with a reference the caller
 * gives back with local_release; NULL when none. Any thread. */
local_model_t *local_acquire(const char *model_name);
void local_release(local_model_t *lm);
engine_t *local_model_engine(const local_model_t *lm);

/* Exact token count of text for a local deployment; -1 when m is not local. Any thread. */
long local_count_tokens(const cfg_model_t *m, const char *text, size_t len);

/* Where the embedded default keeps its demo model (relative to the working directory). */
#define LOCAL_DEMO_MODEL_PATH "skuld-data/demo.gguf"

#endif
