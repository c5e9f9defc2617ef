/*
 * policy alerts — budget thresholds (50%, 80%, 100%) crossed by what was
 * actually spent (at settlement, never by a reservation or a refusal),
 * each (counter, threshold) once per process: a log line, the metric
 * skuld_budget_alerts_total, and a POST to budgets.alert_webhook from a
 * detached thread (5 s timeout), never from a worker loop.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonw.h"
#include "core/log.h"
#include "policy/policy_internal.h"

typedef struct pol_alert_seen {
    struct pol_alert_seen *next;
    int level;
    char name[];
} pol_alert_seen_t;
static pthread_mutex_t pol_alert_mu = PTHREAD_MUTEX_INITIALIZER;
static pol_alert_seen_t *pol_alert_list;

/* true the first time (name, level) is seen by this process. */
static bool pol_alert_first(const char *name, int level)
{
    bool first = true;
    pthread_mutex_lock(&pol_alert_mu);
    for (pol_alert_seen_t *s = pol_alert_list; s; s = s->next)
        if (s->level == level && strcmp(s->name, name) == 0) first = false;
    if (first) {
        size_t nl = strlen(name) + 1;
        pol_alert_seen_t *s = malloc(sizeof *s + nl);
        if (s) {
            memcpy(s->name, name, nl);
            s->level = level;
            s->next = pol_alert_list;
            pol_alert_list = s;
        }
    }
    pthread_mutex_unlock(&pol_alert_mu);
    return first;
}

typedef struct pol_hook {
    char *url, *body;
} pol_hook_t;

static size_t pol_sink(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

static void *pol_webhook_main(void *arg)
{
    pol_hook_t *h = arg;
    CURL *e = curl_easy_init();
    if (e) {
        struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
        curl_easy_setopt(e, CURLOPT_URL, h->url);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, h->body);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, pol_sink);
        CURLcode rc = curl_easy_perform(e);
        if (rc != CURLE_OK) log_warn("budget: alert webhook failed: %s", curl_easy_strerror(rc));
        curl_slist_free_all(hd);
        curl_easy_cleanup(e);
    }
    free(h->url);
    free(h->body);
    free(h);
    return NULL;
}

/* A budget counter went from before to after (nano-USD) against limit. */
void pol__alert_check(const config_t *cfg, const pc_check_t *ck, int64_t before, int64_t after)
{
    if (ck->limit <= 0) return;
    static const int th[3] = {50, 80, 100};
    for (int i = 0; i < 3; i++) {
        int64_t at = ck->limit / 100 * th[i];
        /* on actual spend only: a refused request (its estimate did not fit
         * what is left) crosses nothing */
        bool crossed = before < at && after >= at;
        if (!crossed || !pol_alert_first(ck->name, th[i])) continue;
        atomic_fetch_add(&pol__alerts[i], 1);
        log_warn("budget: %s reached %d%% (spent $%.6f of $%.6f)", ck->name, th[i],
                 (double)after / 1e9, (double)ck->limit / 1e9);
        if (cfg && cfg->budgets.alert_webhook) {
            pol_hook_t *h = calloc(1, sizeof *h);
            buf_t b;
            buf_init(&b, 0);
            buf_appends(&b, "{\"budget\":");
            jsonw_cstr(&b, ck->name);
            buf_printf(&b, ",\"threshold_pct\":%d,\"spent_usd\":%.9f,\"budget_usd\":%.9f}", th[i],
                       (double)after / 1e9, (double)ck->limit / 1e9);
            if (h && (h->url = strdup(cfg->budgets.alert_webhook)) && b.mem) {
                h->body = b.mem;
                pthread_t t;
                pthread_attr_t attr;
                pthread_attr_init(&attr);
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                if (pthread_create(&t, &attr, pol_webhook_main, h) != 0) {
                    free(h->url);
                    free(h->body);
                    free(h);
                }
                pthread_attr_destroy(&attr);
            } else {
                if (h) free(h->url);
                free(h);
                buf_free(&b);
            }
        }
    }
}
