/*
 * assembly — see assembly.h.
 *
 *   auth (policy) -> parse (the front end's own) -> resolve (pipeline) ->
 *   admit (policy) -> cache (cache) -> call (call)
 *
 * Subscribers at PL_EV_FINISHED run in this order: the spend and budget
 * settlement first (it reads the tokens the call recorded), then the
 * router's live stats, then the metrics and the access-log line.
 */
#include "server/assembly.h"

#include "cache/cache.h"
#include "call/call.h"
#include "call/resil.h"
#include "pipeline/account.h"
#include "pipeline/resolve.h"
#include "policy/policy.h"
#include "route/stats.h"

void gw_pipeline_setup(void)
{
    static bool done;
    if (done) return;
    done = true;
    pl_register_stage(PL_STAGE_AUTH, &policy_auth_stage);
    pl_register_stage(PL_STAGE_RESOLVE, &pl_resolve_stage);
    pl_register_stage(PL_STAGE_ADMIT, &policy_admit_stage);
    pl_register_stage(PL_STAGE_CACHE, &cache_stage);
    pl_register_stage(PL_STAGE_CALL, &call_stage);
    policy_subscribe();
    pl_resolve_subscribe();
    pl_account_subscribe();
}

void gw_snapshot_attach(config_t *cfg)
{
    pl_account_attach(cfg);
    route_stats_attach(cfg);
    resil_attach(cfg); /* resilience: breaker/concurrency state per deployment */
}
