/*
 * route hooks — see hooks.h. The request's routing state (route_track_t)
 * lives in its arena; the deployment counted in flight is remembered so the
 * count is released exactly once even when another deployment answered.
 */
#include "route/hooks.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/internal.h"
#include "core/jsonw.h"
#include "core/log.h"
#include "route/router.h"

#define EXPLAIN_HEADER_CANDS 16 /* candidates in the x-skuld-explain header */

typedef struct route_track {
    route_stats_t *counted; /* in flight on this deployment's stats */
    uint64_t t0_ns;
    int64_t ttft_ns; /* -1 until the first byte */
} route_track_t;

static uint64_t *hk_rng(void)
{
    static _Thread_local uint64_t rng;
    if (!rng) rng = (time_mono_ns() ^ (uint64_t)(uintptr_t)&rng) | 1;
    return &rng;
}

static const char *const hk_constraints[] = {"x-skuld-max-cost", "x-skuld-max-latency-ms",
                                             "x-skuld-min-quality"};

/* Constraint headers into f; -1 after answering 400. */
static int hk_headers(api_ctx_t *c, route_features_t *f)
{
    for (size_t i = 0; i < sizeof hk_constraints / sizeof *hk_constraints; i++) {
        http_slice_t v = http_req_header(c->req, hk_constraints[i]);
        if (!v.p) continue;
        const char *err = NULL;
        if (route_features_constraint(f, hk_constraints[i], v.p, v.n, &err) < 0) {
            api_ctx_set_model(c, NULL);
            api_send_error(c, 400, NULL, "invalid_header", hk_constraints[i], "%s: %s",
                           hk_constraints[i], err);
            return -1;
        }
    }
    return 0;
}

static bool hk_explain_wanted(api_ctx_t *c)
{
    http_slice_t v = http_req_header(c->req, "x-skuld-explain");
    return v.n == 1 && (v.p[0] == '1');
}

bool route_api_needs_body(api_ctx_t *c, const char *name, size_t name_len)
{
    return !name || config_find_route(c->cfg, name, name_len) != NULL || hk_explain_wanted(c);
}

int route_api_resolve(api_ctx_t *c, int ep, const json_t *body, const char *name, size_t name_len)
{
    if (!name) {
        api_ctx_set_model(c, NULL);
        api_send_error(c, 404, NULL, "model_not_found", "model",
                       "no model given and no server.default_model configured");
        return -1;
    }
    route_features_t f;
    route_features_init(&f);
    if (hk_headers(c, &f) < 0) return -1;
    /* the features come from the body only when the router will score */
    if (route_api_needs_body(c, name, name_len))
        route_features_from_body(&f, c->req->arena, ep, body);
    f.explain = hk_explain_wanted(c);
    route_decision_t d;
    if (route_decide(c->cfg, name, name_len, &f, c->req->arena, 0, hk_rng(), &d) < 0) {
        api_ctx_set_model(c, NULL);
        api_send_error(c, 404, NULL, "model_not_found", "model", "The model '%.*s' does not exist",
                       (int)(name_len > 200 ? 200 : name_len), name);
        return -1;
    }
    if (f.explain) {
        buf_t o;
        buf_init(&o, 0);
        route_explain_json(&d, &o, EXPLAIN_HEADER_CANDS);
        http_resp_header(c->req, "x-skuld-explain", buf_data(&o));
        buf_free(&o);
    }
    if (!d.n_order) {
        buf_t r;
        buf_init(&r, 0);
        route_reasons(&d, &r);
        api_ctx_set_model(c, NULL);
        api_send_error(c, 422, "invalid_request_error", "no_eligible_deployment", "model",
                       "no deployment of '%s' can serve this request: %s", d.target,
                       buf_data(&r) ? buf_data(&r) : "no candidates");
        buf_free(&r);
        return -1;
    }
    c->cands = arena_alloc(c->req->arena, d.n_order * sizeof *c->cands);
    if (!c->cands) {
        api_ctx_set_model(c, NULL);
        api_send_error(c, 500, NULL, "internal_error", NULL, "out of memory");
        return -1;
    }
    memcpy(c->cands, d.order, d.n_order * sizeof *c->cands);
    c->n_cands = d.n_order;
    if (d.is_route) { /* a route's resilience settings apply to every attempt */
        const cfg_route_t *rt = config_find_route(c->cfg, name, name_len);
        if (rt && rt->resil) c->resil = rt->resil;
    }
    api_ctx_set_model(c, c->cands[0]);
    route_track_t *t = arena_calloc(c->req->arena, sizeof *t);
    if (t) {
        t->counted = c->cands[0]->rstats;
        t->t0_ns = time_mono_ns();
        t->ttft_ns = -1;
        route_stats_begin(t->counted, t->t0_ns / 1000000u);
        c->route_track = t;
    }
    return 0;
}

void route_api_first_byte(api_ctx_t *c)
{
    route_track_t *t = c->route_track;
    if (t && t->ttft_ns < 0) t->ttft_ns = (int64_t)(time_mono_ns() - t->t0_ns);
}

void route_api_account(api_ctx_t *c, int status)
{
    route_track_t *t = c->route_track;
    if (!t) return;
    c->route_track = NULL;
    route_stats_leave(t->counted);
    if (status == 499 || !c->model) return; /* the client left: says nothing about the deployment */
    /* Answered without an upstream attempt (a cache hit, a de-duplicated
     * joiner, the gateway's own 400/429): nothing measured about the deployment. */
    if (c->attempts == 0) return;
    uint64_t now = time_mono_ns();
    bool ok = status < 500 && status != 429 && !(status == 200 && c->error);
    long out = c->completion_tokens, total = 0;
    if (c->prompt_tokens > 0) total += c->prompt_tokens;
    if (out > 0) total += out;
    route_stats_end(c->model->rstats, ok, (double)(now - t->t0_ns) / 1e6,
                    t->ttft_ns >= 0 ? (double)t->ttft_ns / 1e6 : -1, out, total, now / 1000000u);
}

void route_api_models(const config_t *cfg, buf_t *o, bool first)
{
    for (size_t i = 0; i < cfg->n_routes; i++) {
        buf_appends(o, first && i == 0 ? "{\"id\":" : ",{\"id\":");
        jsonw_cstr(o, cfg->routes[i].name);
        buf_appends(o, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"skuld-route\"}");
    }
}

static int hk_endpoint(const char *s)
{
    if (!s || !strcmp(s, "chat")) return EP_CHAT;
    if (!strcmp(s, "completions")) return EP_COMPLETIONS;
    if (!strcmp(s, "embeddings")) return EP_EMBEDDINGS;
    return -1;
}

/* POST /admin/route/explain: {"model":..., "messages"|"prompt"|"input":...,
 * "endpoint":"chat"|"completions"|"embeddings"} and the constraint headers ->
 * the decision as JSON (200 even when nothing is eligible: choice null). */
void route_api_explain(api_ctx_t *c)
{
    json_error_t jerr;
    json_t *body = json_loadb(c->req->body, c->req->body_len, 0, &jerr);
    if (!json_is_object(body)) {
        json_decref(body);
        api_send_error(c, 400, NULL, "invalid_json", NULL, "the body must be a JSON object");
        return;
    }
    int ep = hk_endpoint(json_string_value(json_object_get(body, "endpoint")));
    const char *name = json_string_value(json_object_get(body, "model"));
    if (!name) name = c->cfg->server.default_model;
    if (ep < 0 || !name) {
        json_decref(body);
        api_send_error(c, 400, NULL, "invalid_request", ep < 0 ? "endpoint" : "model",
                       ep < 0 ? "endpoint must be chat, completions or embeddings"
                              : "model is required (no server.default_model)");
        return;
    }
    route_features_t f;
    route_features_init(&f);
    if (hk_headers(c, &f) < 0) {
        json_decref(body);
        return;
    }
    route_features_from_body(&f, c->req->arena, ep, body);
    f.explain = true;
    route_decision_t d;
    int rc = route_decide(c->cfg, name, strlen(name), &f, c->req->arena, 0, hk_rng(), &d);
    if (rc < 0) {
        api_send_error(c, 404, NULL, "model_not_found", "model", "no model or route named '%.128s'",
                       name);
        json_decref(body);
        return;
    }
    json_decref(body);
    buf_t o;
    buf_init(&o, 0);
    route_explain_json(&d, &o, SIZE_MAX);
    api_send(c, 200, "application/json", buf_data(&o), o.len);
    buf_free(&o);
}

/* ---------- skuld route explain ---------- */

static void hk_usage(FILE *out)
{
    fprintf(out, "usage: skuld route explain -c FILE --model NAME --prompt TEXT\n"
                 "         [--max-tokens N] [--tools] [--image] [--json-mode]\n"
                 "         [--max-cost USD] [--max-latency-ms MS] [--min-quality Q] [--json]\n"
                 "  Live statistics are those of this process: none, so every deployment is\n"
                 "  cold (use POST /admin/route/explain on a running gateway for live ones).\n");
}

int route_cli(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[2], "explain") != 0) {
        hk_usage(stderr);
        return 2;
    }
    const char *file = NULL, *model = NULL, *prompt = "";
    const char *cons[3] = {NULL, NULL, NULL};
    long max_tokens = 0;
    bool tools = false, image = false, json_mode = false, as_json = false;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && more)
            file = argv[++i];
        else if (!strcmp(a, "--model") && more)
            model = argv[++i];
        else if (!strcmp(a, "--prompt") && more)
            prompt = argv[++i];
        else if (!strcmp(a, "--max-tokens") && more)
            max_tokens = strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--max-cost") && more)
            cons[0] = argv[++i];
        else if (!strcmp(a, "--max-latency-ms") && more)
            cons[1] = argv[++i];
        else if (!strcmp(a, "--min-quality") && more)
            cons[2] = argv[++i];
        else if (!strcmp(a, "--tools"))
            tools = true;
        else if (!strcmp(a, "--image"))
            image = true;
        else if (!strcmp(a, "--json-mode"))
            json_mode = true;
        else if (!strcmp(a, "--json"))
            as_json = true;
        else {
            fprintf(stderr, "skuld route explain: unexpected argument '%s'\n", a);
            hk_usage(stderr);
            return 2;
        }
    }
    if (!file || !model) {
        hk_usage(stderr);
        return 2;
    }
    config_t *cfg = config_load_or_report(file, stderr);
    if (!cfg) return 1;
    json_t *content =
        image ? json_pack("[{s:s,s:s},{s:s,s:{s:s}}]", "type", "text", "text", prompt, "type",
                          "image_url", "image_url", "url", "data:image/png;base64,AA==")
              : json_string(prompt);
    json_t *body = json_pack("{s:s,s:[{s:s,s:o}]}", "model", model, "messages", "role", "user",
                             "content", content);
    if (max_tokens > 0) json_object_set_new(body, "max_tokens", json_integer(max_tokens));
    if (tools)
        json_object_set_new(
            body, "tools",
            json_pack("[{s:s,s:{s:s}}]", "type", "function", "function", "name", "f"));
    if (json_mode)
        json_object_set_new(body, "response_format", json_pack("{s:s}", "type", "json_object"));
    arena_t *a = arena_create(1 << 16);
    route_features_t f;
    route_features_init(&f);
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        const char *err = NULL;
        if (cons[i] &&
            route_features_constraint(&f, hk_constraints[i], cons[i], strlen(cons[i]), &err) < 0) {
            fprintf(stderr, "skuld route explain: %s: %s\n", hk_constraints[i], err);
            rc = 2;
        }
    }
    route_features_from_body(&f, a, EP_CHAT, body);
    f.explain = true;
    route_decision_t d;
    uint64_t rng = 0x5eed;
    if (!rc && route_decide(cfg, model, strlen(model), &f, a, 0, &rng, &d) < 0) {
        fprintf(stderr, "skuld route explain: '%s' is neither a route nor a model in %s\n", model,
                file);
        rc = 1;
    } else if (!rc) {
        buf_t o;
        buf_init(&o, 0);
        if (as_json) {
            route_explain_json(&d, &o, SIZE_MAX);
            buf_appends(&o, "\n");
        } else {
            route_explain_table(&d, &o);
        }
        fwrite(buf_data(&o), 1, o.len, stdout);
        buf_free(&o);
        rc = d.n_order ? 0 : 1;
    }
    json_decref(body);
    arena_destroy(a);
    config_unref(cfg);
    return rc;
}
