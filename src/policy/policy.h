/*
 * policy — keys, authentication, rate limits, budgets and the spend log, as
 * seen by the request pipeline (api/). The pieces:
 *   keys.c      the virtual key table (hash only), counters.c the limit and
 *   budget arithmetic (in process), redis.c the same in Redis, jwt.c JWT
 *   verification, policy.c (this API) the per-request glue.
 *
 * Per request (worker thread only): api_ctx_t.pol points to a pol_req_t in
 * the request's arena, made by policy_auth_v1 (principal: key, JWT, master,
 * anonymous) and used by policy_admit (the reservations) and policy_settle
 * (called from api_account exactly once: reservations settled to the actual
 * usage or released, spend row written through the store writer, per-key
 * counters). policy_admit ends, now or after a Redis round trip, with
 * api_relay_start or an error response; while a Redis admission is in flight
 * the request's on_abort is policy's, and a reservation whose reply arrives
 * after the client left (or after the timeout) is released then.
 *
 * Process-wide (any thread): the key table, the local counters (one mutex),
 * the metrics atomics, the store pointer (set once at start).
 */
#ifndef SKULD_POLICY_POLICY_H
#define SKULD_POLICY_POLICY_H

#include <jansson.h>
#include <stdbool.h>

#include "core/buf.h"
#include "provider/provider.h"
#include "store/store.h"

struct api_ctx;

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

/* api_handle, before any /v1 endpoint. false: the request was answered
 * (401, or GET /v1/key/usage). */
bool policy_auth_v1(struct api_ctx *c);
/* admin.c, when the credential is not the master key. true: answered (403
 * for a user key; a key's own usage). false: go on with the 401. */
bool policy_admin_nonmaster(struct api_ctx *c);
/* openai.c, in place of api_relay_start: limits and budget reservation, then
 * api_relay_start(c, ep, body, stream, client_usage) or a 429/403/503. */
void policy_admit(struct api_ctx *c, endpoint_t ep, json_t *body, bool stream, bool client_usage);
/* api_account, once per request: settle or release, spend row, key usage. */
void policy_settle(struct api_ctx *c, int status);
/* Attribution for the access log (NULL when anonymous). */
const char *policy_key_id(const struct api_ctx *c);
const char *policy_team(const struct api_ctx *c);
const char *policy_user(const struct api_ctx *c);

/* /metrics: skuld_ratelimit_*, skuld_budget_*, skuld_auth_*, skuld_redis_*. */
void policy_metrics_render(buf_t *o);

/* api/admin_keys.c helpers */
typedef struct pol_key pol_key_t;
/* Usage object of a key as JSON into o (this request's snapshot for budgets);
 * may answer asynchronously: calls api_send itself. */
void policy_send_usage(struct api_ctx *c, pol_key_t *k);
/* GET /admin/budgets: every team budget of the config and every key with a
 * budget, with spend and reservations this period; answers like the above. */
void policy_send_budgets(struct api_ctx *c);

#endif
