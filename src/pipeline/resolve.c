/*
 * pipeline resolve — the resolve stage and the router's live-stats
 * subscriber (resolve.h).
 *
 * Stage: r->asked -> route_decide() (explicit model -> its deployments,
 * balanced; route -> the router's ranking plus the route's fallbacks) ->
 * route_with_fallbacks() (each candidate's own fallbacks) = r->cands, and
 * r->model = r->cands[0]. This is the only place a candidate list is made:
 * a budget fallback redirects here with r->asked changed. Capabilities are
 * hard (README "Capabilities"): what the request needs (route/features.c:
 * tools, images, audio, files, JSON mode, n > 1, the endpoint) = r->needs,
 * and no candidate or fallback lacks any of it. For an explicit name whose
 * deployments all lack nothing the body is not read; otherwise the scanned
 * (fast) body is parsed only when its bytes could ask for a missing one.
 * Errors: 404 unknown name, 400 bad constraint header, 400
 * model_capability_missing (an explicit name none of whose deployments can),
 * 422 nothing eligible (with the reason per candidate: "lacks capability
 * 'tools'"), 503 with Retry-After when nothing is eligible because of health
 * (an outage: a route's healthy fallbacks are tried before that).
 *
 * Subscriber: the request's routing state (route_track_t, in its arena)
 * counts it in flight on the first deployment chosen and is released exactly
 * once at PL_EV_FINISHED, when a deployment that answered (an upstream
 * attempt was made) gets its latency, time to first byte, tokens and outcome.
 */
#include "pipeline/resolve.h"

#include <string.h>

#include "core/jscan.h"
#include "core/log.h"
#include "pipeline/events.h"
#include "route/router.h"

#define EXPLAIN_HEADER_CANDS 16 /* candidates in the x-skuld-explain header */

typedef struct route_track {
    route_stats_t *counted; /* in flight on this deployment's stats */
    uint64_t t0_ns;
    int64_t ttft_ns; /* -1 until the first byte */
} route_track_t;

static uint64_t *rs_rng(void)
{
    static _Thread_local uint64_t rng;
    if (!rng) rng = (time_mono_ns() ^ (uint64_t)(uintptr_t)&rng) | 1;
    return &rng;
}

int pl_route_constraints(pl_req_t *r, route_features_t *f, const char **header, const char **err)
{
    for (size_t i = 0; i < ROUTE_N_CONSTRAINTS; i++) {
        pl_slice_t v = pl_req_header(r, route_constraint_headers[i]);
        if (!v.p) continue;
        if (route_features_constraint(f, route_constraint_headers[i], v.p, v.n, err) < 0) {
            *header = route_constraint_headers[i];
            return -1;
        }
    }
    return 0;
}

static bool rs_explain_wanted(pl_req_t *r)
{
    pl_slice_t v = pl_req_header(r, "x-skuld-explain");
    return v.n == 1 && v.p[0] == '1';
}

/* What an explicit name's request needs, when some deployment lacks `lacks`:
 * the endpoint's capability, and what the body asks for. A scanned body is
 * parsed only when its bytes could ask for a capability in lacks. */
static unsigned rs_explicit_needs(pl_req_t *r, unsigned lacks)
{
    unsigned base = route_endpoint_need(r->ep);
    if (!(lacks & ~(CAP_CHAT | CAP_COMPLETIONS | CAP_EMBEDDINGS))) return base;
    const jscan_t *s = r->body ? NULL : r->fast;
    bool parse = !s || s->u_escape;
    if (!parse && (lacks & CAP_N))
        parse = (s->n == JS_INT && s->n_v > 1) || (s->best_of == JS_INT && s->best_of_v > 1);
    static const struct {
        unsigned cap;
        const char *word;
    } words[] = {{CAP_TOOLS, "tools"},  {CAP_TOOLS, "functions"}, {CAP_JSON, "response_format"},
                 {CAP_VISION, "image"}, {CAP_AUDIO, "audio"},     {CAP_FILES, "file"}};
    for (size_t i = 0; !parse && i < sizeof words / sizeof *words; i++)
        parse = (lacks & words[i].cap) &&
                memmem(r->raw, r->raw_len, words[i].word, strlen(words[i].word)) != NULL;
    if (!parse) return base;
    const json_t *body = pl_body(r);
    return body ? route_needs_from_body(r->ep, body) : base;
}

/* What the request asks for that a capability names, for the 400. */
/* Whether the request's n asks for several answers (else it was best_of). */
static bool rs_n_asked(const pl_req_t *r)
{
    if (r->body) {
        const json_t *n = json_object_get(r->body, "n");
        return json_is_integer(n) && json_integer_value(n) > 1;
    }
    return r->fast && r->fast->n == JS_INT && r->fast->n_v > 1;
}

/* The request field that asked for what the model lacks. */
static const char *rs_cap_param(const pl_req_t *r, unsigned cap)
{
    if (cap == CAP_N) return rs_n_asked(r) ? "n" : "best_of";
    switch (cap) {
    case CAP_TOOLS:
        return "tools";
    case CAP_JSON:
        return "response_format";
    case CAP_VISION:
    case CAP_AUDIO:
    case CAP_FILES:
        return "messages";
    default:
        return "model";
    }
}

static const char *rs_cap_what(unsigned cap)
{
    switch (cap) {
    case CAP_TOOLS:
        return "tools or functions";
    case CAP_JSON:
        return "a JSON response_format";
    case CAP_N:
        return "several answers (n or best_of > 1)";
    case CAP_VISION:
        return "image input";
    case CAP_AUDIO:
        return "audio input";
    case CAP_FILES:
        return "file input";
    case CAP_COMPLETIONS:
        return "text completions";
    case CAP_EMBEDDINGS:
        return "embeddings";
    default:
        return "chat completions";
    }
}

static void rs_track_leave(pl_req_t *r)
{
    route_track_t *t = r->route_track;
    if (!t) return;
    r->route_track = NULL;
    route_stats_leave(t->counted);
}

static pl_rc_t rs_run(pl_req_t *r)
{
    if (!r->asked)
        return pl_fail(r, 404, NULL, "model_not_found", "model",
                       "no model given and no server.default_model configured");
    route_features_t f;
    route_features_init(&f);
    const char *hdr = NULL, *err = NULL;
    if (pl_route_constraints(r, &f, &hdr, &err) < 0)
        return pl_fail(r, 400, NULL, "invalid_header", hdr, "%s: %s", hdr, err);
    /* The router reads the body only for a route (scoring) or an explanation. */
    bool route = config_find_route(r->cfg, r->asked, r->asked_len) != NULL;
    f.explain = rs_explain_wanted(r);
    if (route || f.explain) {
        route_features_from_body(&f, r->arena, r->ep, pl_body(r));
    } else {
        unsigned lacks = route_name_lacks(r->cfg, r->asked, r->asked_len);
        f.needs = lacks ? rs_explicit_needs(r, lacks) : route_endpoint_need(r->ep);
    }
    /* Counting a request's tokens on a model named directly needs only that it
     * counts chats (the tools are counted as text); a route picks the
     * deployment the request itself would go to. */
    if (r->ep == EP_COUNT_TOKENS && !route) f.needs = route_endpoint_need(r->ep);
    route_decision_t d;
    if (route_decide(r->cfg, r->asked, r->asked_len, &f, r->arena, 0, rs_rng(), &d) < 0)
        return pl_fail(r, 404, NULL, "model_not_found", "model", "The model '%.*s' does not exist",
                       (int)(r->asked_len > 200 ? 200 : r->asked_len), r->asked);
    if (f.explain) {
        buf_t o;
        buf_init(&o, 0);
        route_explain_json(&d, &o, EXPLAIN_HEADER_CANDS);
        pl_header(r, "x-skuld-explain", buf_data(&o));
        buf_free(&o);
    }
    if (!d.n_order && d.lacks) {
        unsigned cap = d.lacks & -d.lacks;
        return pl_fail(r, 400, NULL, "model_capability_missing", rs_cap_param(r, cap),
                       "the model '%s' lacks the capability '%s' this request needs (%s)", d.target,
                       route_cap_first_name(cap), rs_cap_what(cap));
    }
    if (!d.n_order) {
        buf_t why;
        buf_init(&why, 0);
        route_reasons(&d, &why);
        const char *reasons = buf_data(&why) ? buf_data(&why) : "no candidates";
        pl_rc_t rc;
        if (d.unavailable) { /* an outage, not a bad request: the client may retry */
            uint64_t s = (r->cfg->server.health_interval_ms + 999) / 1000;
            pl_headerf(r, "Retry-After", "%llu", (unsigned long long)(s ? s : 1));
            rc = pl_fail(r, 503, "server_error", "no_deployment_available", "model",
                         "no deployment of '%s' is available now: %s", d.target, reasons);
        } else {
            rc = pl_fail(r, 422, "invalid_request_error", "no_eligible_deployment", "model",
                         "no deployment of '%s' can serve this request: %s", d.target, reasons);
        }
        buf_free(&why);
        return rc;
    }
    r->needs = f.needs;
    r->cands = route_with_fallbacks(r->arena, d.order, d.n_order, f.needs, &r->n_cands);
    if (!r->cands) return pl_fail(r, 500, NULL, "internal_error", NULL, "out of memory");
    r->resil = NULL;
    if (d.is_route) { /* a route's resilience settings apply to every attempt */
        const cfg_route_t *rt = config_find_route(r->cfg, r->asked, r->asked_len);
        if (rt && rt->resil) r->resil = rt->resil;
    }
    pl_set_model(r, r->cands[0]);
    rs_track_leave(r); /* resolved again (a budget fallback): the first choice is released */
    /* A token count says nothing of how the deployment answers (latency,
     * tokens/s): the router's live stats leave it out. */
    if (r->ep == EP_COUNT_TOKENS) return PL_NEXT;
    route_track_t *t = arena_calloc(r->arena, sizeof *t);
    if (t) {
        t->counted = r->cands[0]->rstats;
        t->t0_ns = time_mono_ns();
        t->ttft_ns = -1;
        route_stats_begin(t->counted, t->t0_ns / 1000000u);
        r->route_track = t;
    }
    return PL_NEXT;
}

static void rs_finished(pl_req_t *r)
{
    route_track_t *t = r->route_track;
    if (!t) return;
    rs_track_leave(r);
    int status = r->status;
    if (status == 499 || !r->model) return; /* the client left: says nothing about the deployment */
    /* Answered without an upstream attempt (a cache hit, a de-duplicated
     * joiner, the gateway's own 400/429): nothing measured about the deployment. */
    if (r->attempts == 0) return;
    uint64_t now = time_mono_ns();
    bool ok = status < 500 && status != 429 && !(status == 200 && r->error);
    long out = r->completion_tokens, total = 0;
    if (r->prompt_tokens > 0) total += r->prompt_tokens;
    if (out > 0) total += out;
    route_stats_end(r->model->rstats, ok, (double)(now - t->t0_ns) / 1e6,
                    t->ttft_ns >= 0 ? (double)t->ttft_ns / 1e6 : -1, out, total, now / 1000000u);
}

static void rs_event(pl_req_t *r, pl_event_t ev, const pl_evd_t *d, void *ud)
{
    (void)d;
    (void)ud;
    if (ev == PL_EV_FIRST_BYTE) {
        route_track_t *t = r->route_track;
        if (t && t->ttft_ns < 0) t->ttft_ns = (int64_t)(time_mono_ns() - t->t0_ns);
    } else {
        rs_finished(r);
    }
}

const pl_stage_t pl_resolve_stage = {"resolve", rs_run};

void pl_resolve_subscribe(void)
{
    pl_subscribe(PL_EVMASK(PL_EV_FIRST_BYTE) | PL_EVMASK(PL_EV_FINISHED), rs_event, NULL);
}
