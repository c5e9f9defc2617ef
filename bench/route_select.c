/*
 * bench/route-select — one model selection over N candidate deployments.
 *
 *   build/bench/route-select [N=1000] [ITERATIONS=20000]
 *
 * Builds a config with N deployments (varied price, quality, size, hardware,
 * region) behind one route `auto`, gives every deployment warm live stats
 * (route_stats_end with varied latencies), then times route_decide() for a
 * chat request -- features extracted once, as the request path does before
 * calling the router -- with a fresh request arena each time (as a request
 * has). Three runs: without the selection cache, with it while live stats
 * change between selections, with it while they do not. Prints
 * p50/p90/p99/max in microseconds. Single thread; the figures in
 * bench/BENCHMARKS.md are medians of several runs.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "core/buf.h"
#include "provider/provider.h"
#include "route/router.h"
#include "route/stats.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    int iters = argc > 2 ? atoi(argv[2]) : 20000;
    if (n < 1 || iters < 100) return 2;
    static const char *const hw[] = {"gpu", "cpu", "cloud", "npu"};
    static const char *const region[] = {"eu-west", "us-east", "eu-central", "ap-south"};
    buf_t y;
    buf_init(&y, 0);
    buf_appends(&y, "providers:\n  - {name: p, type: openai, base_url: 'http://127.0.0.1:1/v1'}\n"
                    "models:\n");
    for (int i = 0; i < n; i++)
        buf_printf(&y,
                   "  - {name: d%d, provider: p, quality: %.3f, params_b: %d, hardware: %s, "
                   "region: %s, price: {input: %.2f, output: %.2f}, context_window: 128000}\n",
                   i, 0.5 + (i % 50) / 100.0, 1 + i % 400, hw[i % 4], region[i % 4], 0.1 + (i % 37),
                   0.3 + (i % 41));
    buf_appends(&y, "routes:\n  - name: auto\n    region: eu-west\n    candidates: [");
    for (int i = 0; i < n; i++) buf_printf(&y, "%sd%d", i ? ", " : "", i);
    buf_appends(&y, "]\n");
    cfg_errors_t errs = {0};
    config_t *cfg = config_load_string(buf_data(&y), y.len, "bench", &errs);
    buf_free(&y);
    if (!cfg) {
        config_errors_print(&errs, stderr);
        return 1;
    }
    route_stats_attach(cfg);
    uint64_t t = route_now_ms();
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 5; k++)
            route_stats_end(cfg->models[i].rstats, true, 50.0 + (i * 7919) % 2000, 20.0 + i % 100,
                            100, 150, t);

    json_t *body = json_loads("{\"model\":\"auto\",\"max_tokens\":200,\"messages\":[{\"role\":"
                              "\"user\",\"content\":\"Summarise the following paragraph in two "
                              "sentences, please.\"}]}",
                              0, NULL);
    arena_t *fa = arena_create(4096);
    route_features_t f;
    route_features_init(&f);
    route_features_from_body(&f, fa, EP_CHAT, body);

    uint64_t *lat = malloc((size_t)iters * sizeof *lat), rng = 1;
    /* three runs: no selection cache; the cache with a live-stats change
     * between selections (an entry lives ROUTE_CACHE_TTL_MS); the cache with
     * no stats change (ROUTE_CACHE_IDLE_MS) */
    static const char *const modes[] = {"uncached", "cached, stats changing", "cached, stats idle"};
    for (int mode = 0; mode < 3; mode++) {
        route_cache_enabled = mode > 0;
        const char *chosen = NULL;
        for (int i = 0; i < iters + iters / 10; i++) {
            if (mode == 1) /* one completion elsewhere: bumps the stats epoch */
                route_stats_end(cfg->models[i % n].rstats, true, 50.0 + (i * 7919) % 2000, 20.0,
                                100, 150, route_now_ms());
            uint64_t t0 = now_ns();
            arena_t *a = arena_create(16384);
            route_decision_t d;
            route_decide(cfg, "auto", 4, &f, a, 0, &rng, &d);
            chosen = d.n_order ? d.order[0]->id : "(none)";
            arena_destroy(a);
            uint64_t dt = now_ns() - t0;
            if (i >= iters / 10) lat[i - iters / 10] = dt; /* the first 10%: warm-up */
        }
        qsort(lat, (size_t)iters, sizeof *lat, cmp_u64);
        printf("route-select: %d candidates, %d selections, %-22s p50 %6.2f us  p90 %6.2f us  "
               "p99 %6.2f us  max %8.2f us  (choice %s)\n",
               n, iters, modes[mode], lat[iters / 2] / 1e3, lat[iters * 9 / 10] / 1e3,
               lat[iters * 99 / 100] / 1e3, lat[iters - 1] / 1e3, chosen);
    }
    free(lat);
    json_decref(body);
    arena_destroy(fa);
    config_unref(cfg);
    route_stats_shutdown();
    route_balance_shutdown();
    return 0;
}
