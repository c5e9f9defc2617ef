/*
 * route balance — choosing among deployments that serve one model (or one
 * route whose strategy is not plain scoring).
 *
 * The pickers are pure over their inputs. Smooth weighted round-robin keeps
 * its counters in a route_balance_t shared by the workers (process-lifetime,
 * one per model group or route, created on first use under a global mutex;
 * its own mutex is held for the O(n) pick). The random pickers use the
 * caller's per-thread xorshift state, so they take no lock.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "route/router.h"

uint64_t route_rand(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform double in [0, 1). */
static double bal_unit(uint64_t *rng)
{
    return (double)(route_rand(rng) >> 11) * (1.0 / 9007199254740992.0);
}

int route_swrr(int64_t *cur, const int64_t *w, size_t n)
{
    int64_t total = 0;
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        if (w[i] <= 0) continue;
        cur[i] += w[i];
        total += w[i];
        if (best < 0 || cur[i] > cur[best]) best = (int)i;
    }
    if (best >= 0) cur[best] -= total;
    return best;
}

int route_least_inflight(const route_cand_t *c, const bool *ok, size_t n)
{
    int best = -1;
    for (size_t i = 0; i < n; i++)
        if (ok[i] && (best < 0 || c[i].live.in_flight < c[best].live.in_flight)) best = (int)i;
    return best;
}

static double bal_p2c_cost(const route_cand_t *c)
{
    double peak = isfinite(c->live.peak_ms) && !c->live.cold ? c->live.peak_ms : 0;
    return peak * (double)(c->live.in_flight + 1);
}

int route_p2c(const route_cand_t *c, const bool *ok, size_t n, uint64_t *rng)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ok[i];
    if (k == 0) return -1;
    /* the a-th and b-th ok candidates, a != b */
    size_t a = (size_t)(route_rand(rng) % k), b = a;
    if (k > 1) {
        b = (size_t)(route_rand(rng) % (k - 1));
        if (b >= a) b++;
    }
    int ia = -1, ib = -1;
    for (size_t i = 0, j = 0; i < n; i++) {
        if (!ok[i]) continue;
        if (j == a) ia = (int)i;
        if (j == b) ib = (int)i;
        j++;
    }
    double ca = bal_p2c_cost(&c[ia]), cb = bal_p2c_cost(&c[ib]);
    if (cb < ca) return ib;
    if (ca < cb) return ia;
    return ia < ib ? ia : ib;
}

int route_score_weighted(const route_cand_t *c, const bool *ok, size_t n, uint64_t *rng)
{
    double sum = 0;
    int last = -1;
    for (size_t i = 0; i < n; i++)
        if (ok[i] && c[i].total > 0) {
            sum += c[i].total;
            last = (int)i;
        }
    if (last < 0) {
        for (size_t i = 0; i < n; i++)
            if (ok[i]) return (int)i;
        return -1;
    }
    double x = bal_unit(rng) * sum;
    for (size_t i = 0; i < n; i++) {
        if (!ok[i] || !(c[i].total > 0)) continue;
        x -= c[i].total;
        if (x < 0) return (int)i;
    }
    return last;
}

typedef struct bal_node {
    char *key;
    route_balance_t b;
    struct bal_node *next;
} bal_node_t;

static pthread_mutex_t bal_mu = PTHREAD_MUTEX_INITIALIZER;
static bal_node_t *bal_head;

route_balance_t *route_balance_get(const char *key)
{
    pthread_mutex_lock(&bal_mu);
    bal_node_t *n = bal_head;
    while (n && strcmp(n->key, key) != 0) n = n->next;
    if (!n && (n = calloc(1, sizeof *n)) != NULL) {
        if (!(n->key = strdup(key))) {
            free(n);
            n = NULL;
        } else {
            pthread_mutex_init(&n->b.mu, NULL);
            n->next = bal_head;
            bal_head = n;
        }
    }
    pthread_mutex_unlock(&bal_mu);
    return n ? &n->b : NULL;
}

void route_balance_shutdown(void)
{
    pthread_mutex_lock(&bal_mu);
    while (bal_head) {
        bal_node_t *n = bal_head;
        bal_head = n->next;
        pthread_mutex_destroy(&n->b.mu);
        free(n->b.cur);
        free(n->key);
        free(n);
    }
    pthread_mutex_unlock(&bal_mu);
}
