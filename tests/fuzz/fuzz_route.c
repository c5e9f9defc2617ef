/*
 * fuzz_route — what the router reads from a client (src/route/router.h): the
 * request body's features (text, tools, images, sizes), the constraint
 * headers x-skuld-max-cost / -max-latency-ms / -min-quality, the task
 * classifier, and a decision among a fixed set of deployments.
 *
 * Feeds: bytes 0..2 pick the endpoint, which constraint header the next
 * bytes fill, and how many of them (up to 32); the rest is the request body
 * (any JSON value).
 *
 * Checks, beyond "no crash" (ASan/UBSan, leaks):
 * - features are sane: token estimates >= 0, text within the body's limits;
 * - a constraint header is accepted (and then >= 0) or refused with a reason;
 * - the task is one the route knows (or -1);
 * - a decision orders only eligible candidates, each once, chosen within
 *   range, and its explanation is one JSON object;
 * - the needs (capabilities) are consistent, no ordered candidate lacks one,
 *   and an explicit name lacking one is decided empty with d.lacks set.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config/config.h"
#include "core/arena.h"
#include "core/buf.h"
#include "fuzz_common.h"
#include "provider/provider.h"
#include "route/router.h"

static const char CFG[] =
    "providers:\n  - {name: p, type: openai, base_url: 'http://127.0.0.1:1/v1'}\n"
    "models:\n"
    "  - {name: small, provider: p, quality: 0.4, context_window: 4096,"
    " price: {input: 0.1, output: 0.2}, capabilities: [chat]}\n"
    "  - {name: big, provider: p, quality: 0.9, context_window: 128000,"
    " price: {input: 5, output: 15}, capabilities: [chat, tools, vision, json, n]}\n"
    "  - {name: emb, provider: p, capabilities: [embeddings]}\n"
    "routes:\n"
    "  - name: auto\n"
    "    candidates: [small, big, emb]\n"
    "    tasks:\n"
    "      code: {keywords: [kotlin, \"```\"], tools: true, candidates: [big]}\n";

static config_t *cfg;

static const char *const HEADERS[] = {"x-skuld-max-cost", "x-skuld-max-latency-ms",
                                      "x-skuld-min-quality"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cfg) {
        cfg_errors_t errs = {0};
        cfg = config_load_string(CFG, sizeof CFG - 1, "fuzz.yaml", &errs);
        FZ_CHECK(cfg != NULL);
    }
    if (size < 3) return 0;
    int ep = data[0] % 3 == 0 ? EP_CHAT : data[0] % 3 == 1 ? EP_COMPLETIONS : EP_EMBEDDINGS;
    const char *header = HEADERS[data[1] % 3];
    size_t hlen = data[2] % 33;
    data += 3, size -= 3;
    if (hlen > size) hlen = size;
    char *hval = fz_dup(data, hlen);
    data += hlen, size -= hlen;

    arena_t *a = arena_create(4096);
    route_features_t f;
    route_features_init(&f);
    json_t *body = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (body) route_features_from_body(&f, a, ep, body);
    FZ_CHECK(f.prompt_tokens >= 0 && f.out_tokens >= 0);
    FZ_CHECK(f.text_len <= 64 * 1024 && (f.text || f.text_len == 0));
    /* needs: the endpoint's capability, never an unknown bit, the same without an arena */
    FZ_CHECK(f.answers >= 1 && (f.needs & ~CAP_ALL) == 0);
    if (body) {
        FZ_CHECK(f.needs & route_endpoint_need(ep));
        FZ_CHECK(route_needs_from_body(ep, body) == f.needs);
        FZ_CHECK(((f.needs & CAP_N) != 0) == (f.answers > 1));
    }
    const char *why = NULL;
    if (route_features_constraint(&f, header, hval, hlen, &why) != 0) {
        FZ_CHECK(why && why[0]);
    } else { /* the constraint the header names is set, and a number >= 0 */
        double v = header == HEADERS[0]   ? f.max_cost_usd
                   : header == HEADERS[1] ? f.max_latency_ms
                                          : f.min_quality;
        FZ_CHECK(v >= 0);
    }
    const cfg_route_t *r = &cfg->routes[0];
    int task = route_classify(&f, r);
    FZ_CHECK(task >= -1 && task < 64);

    f.explain = hlen & 1; /* detailed decisions too */
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    route_decision_t d;
    memset(&d, 0, sizeof d);
    if (route_decide(cfg, "auto", 4, &f, a, 1000, &rng, &d) == 0) {
        FZ_CHECK(d.n_order <= 3 + 3);
        for (size_t i = 0; i < d.n_ranked; i++)
            for (size_t j = i + 1; j < d.n_ranked; j++) FZ_CHECK(d.order[i] != d.order[j]);
        FZ_CHECK(d.chosen >= -1 && (d.chosen == -1 || d.n_order > 0));
        buf_t out;
        buf_init(&out, 0);
        route_explain_json(&d, &out, 16);
        json_t *ex = json_loadb(buf_data(&out), out.len, 0, NULL);
        FZ_CHECK(json_is_object(ex));
        json_decref(ex);
        buf_free(&out);
        for (size_t i = 0; i < d.n_order; i++) /* capabilities are hard */
            FZ_CHECK((f.needs & ~d.order[i]->capabilities) == 0);
    }
    /* an explicit name: its deployment when capable, else nothing and what it lacks */
    const cfg_model_t *small = config_find_model(cfg, "small", 5);
    memset(&d, 0, sizeof d);
    FZ_CHECK(route_decide(cfg, "small", 5, &f, a, 1000, &rng, &d) == 0);
    unsigned miss = f.needs & ~small->capabilities;
    FZ_CHECK(miss ? d.n_order == 0 && (d.lacks & miss) && !(d.lacks & ~miss)
                  : d.n_order == 1 && d.order[0] == small && d.lacks == 0);
    json_decref(body);
    arena_destroy(a);
    free(hval);
    return 0;
}
