/*
 * policy — keys, authentication, rate limits, budgets and the spend log, as
 * stages of the request pipeline (pipeline/pipeline.h). The pieces:
 *   keys.c      the virtual key table (hash only), counters.c the limit and
 *   budget arithmetic (in process), redis.c the same in Redis, jwt.c JWT
 *   verification; auth.c, admit.c, settle.c, alerts.c, usage.c the
 *   per-request glue (policy_internal.h).
 *
 * Per request (worker thread only): r->pol points to a pol_req_t in the
 * request's arena, made by the auth stage (principal: key, JWT, master,
 * anonymous) and used by the admit stage (the reservations) and the
 * settlement subscriber (at PL_EV_FINISHED, exactly once: reservations
 * settled to the actual usage or released, spend row written through the
 * store writer, per-key counters). The admit stage ends, now or after a
 * Redis round trip, with PL_NEXT or an error; while a Redis admission is in
 * flight the request's on_abort is policy's, and a reservation whose reply
 * arrives after the client left (or after the timeout) is released then.
 * Files: policy_internal.h.
 *
 * Process-wide (any thread): the key table, the local counters (one mutex),
 * the metrics atomics, the store pointer (set once at start).
 */
#ifndef SKULD_POLICY_POLICY_H
#define SKULD_POLICY_POLICY_H

#include <jansson.h>
#include <stdbool.h>

#include "core/buf.h"
#include "pipeline/pipeline.h"
#include "store/store.h"

/* Start-up (main thread, before the workers): keep the store, load keys and
 * stored provider keys (applied to cfg, not yet published). */
void policy_start(store_t *store, config_t *cfg);
/* Control thread, for every snapshot built before it is published: stored
 * provider keys override the config's (policy/secrets.h); a new
 * auth.jwt.jwks_url is fetched (policy/jwks.h). */
void policy_prepare_snapshot(config_t *cfg);
/* After the workers stopped: the JWKS fetcher ends. */
void policy_stop(void);
/* Control thread, every few seconds: refresh keys from the store (blocking). */
void policy_refresh(store_t *store);
store_t *policy_store(void);

/* The auth stage: the principal (r->key_id, team, user), 401s, GET
 * /v1/key/usage. The admit stage: the key's allowed models (403), rate
 * limits and budget reservations (429, or a redirect to resolve with
 * budgets.fallback_model), locally or in Redis (503 when it is down and
 * redis.on_failure is closed). */
extern const pl_stage_t policy_auth_stage;
extern const pl_stage_t policy_admit_stage;
/* May r's principal see the model or route `name` (GET /v1/models and
 * /v1/models/{id})? A virtual key with a `models` list sees only the names
 * it lists (the names the admit stage lets it use); every other principal
 * (anonymous, master key, JWT, a key without a list) sees everything.
 * After the auth stage. */
bool policy_model_visible(pl_req_t *r, const char *name);
/* Start-up: the settlement subscriber (reservations settled or released,
 * spend row, key usage) at PL_EV_FINISHED. */
void policy_subscribe(void);

/* /metrics: skuld_ratelimit_*, skuld_budget_*, skuld_auth_*, skuld_redis_*. */
void policy_metrics_render(buf_t *o);

/* The admin API, when the credential is not the master key: true when r is
 * answered (403 for a user key; a key's own usage), *rc what to resume with.
 * false: go on with the 401. */
bool policy_admin_nonmaster(pl_req_t *r, pl_rc_t *rc);
/* GET /admin/keys/{id}/usage: the usage object of a key (this request's
 * snapshot for budgets); may answer asynchronously (PL_AGAIN). */
typedef struct pol_key pol_key_t;
pl_rc_t policy_usage(pl_req_t *r, pol_key_t *k);
/* GET /admin/budgets: every team budget of the config and every key with a
 * budget, with spend and reservations this period; answers like the above. */
pl_rc_t policy_budgets(pl_req_t *r);

#endif
