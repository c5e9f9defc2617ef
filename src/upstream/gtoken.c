/* gtoken — see gtoken.h. */
#include "upstream/gtoken.h"

#include <curl/curl.h>
#include <jansson.h>
#include <jwt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"

#define GTOK_SCOPE "https://www.googleapis.com/auth/cloud-platform"
#define GTOK_GRANT "urn:ietf:params:oauth:grant-type:jwt-bearer"
#define GTOK_LIFETIME_S 3600
#define GTOK_MARGIN_S 300
#define GTOK_TIMEOUT_MS 10000L
#define GTOK_MAX_BYTES (64u << 10)
#define GTOK_RETRY_MAX_MS 60000u

typedef struct gtok_src {
    char *url, *email, *key; /* key: the PEM private key (wiped when freed) */
    char *token;             /* the access token, or NULL */
    uint64_t expires_ms;     /* monotonic: token valid until */
    uint64_t due_ms;         /* next fetch */
    uint64_t retry_ms;
    char err[200]; /* the last failure, for the client's 503 */
    bool live;
} gtok_src_t;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    gtok_src_t *v;
    size_t n;
    pthread_t thread;
    bool running, stop;
} G = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint64_t gtok_now_ms(void)
{
    return time_mono_ns() / 1000000u;
}

static void gtok_wipe(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static gtok_src_t *gtok_find(const char *url, const char *email)
{
    for (size_t i = 0; i < G.n; i++)
        if (!strcmp(G.v[i].url, url) && !strcmp(G.v[i].email, email)) return &G.v[i];
    return NULL;
}

/* The signed assertion (malloc'd), or NULL. */
static char *gtok_assertion(const char *url, const char *email, const char *key)
{
    jwt_t *j = NULL;
    char *out = NULL;
    long now = (long)time(NULL);
    if (jwt_new(&j) != 0) return NULL;
    if (jwt_add_grant(j, "iss", email) == 0 && jwt_add_grant(j, "scope", GTOK_SCOPE) == 0 &&
        jwt_add_grant(j, "aud", url) == 0 && jwt_add_grant_int(j, "iat", now) == 0 &&
        jwt_add_grant_int(j, "exp", now + GTOK_LIFETIME_S) == 0 &&
        jwt_set_alg(j, JWT_ALG_RS256, (const unsigned char *)key, (int)strlen(key)) == 0)
        out = jwt_encode_str(j);
    jwt_free(j);
    return out;
}

static size_t gtok_write(char *p, size_t size, size_t n, void *ud)
{
    return buf_append(ud, p, size * n) == BUF_OK ? size * n : 0;
}

/* POST the grant; the token (malloc'd) and its lifetime, or NULL with err. */
static char *gtok_fetch(const char *url, const char *email, const char *key, long *expires_in,
                        char *err, size_t errlen)
{
    char *jwt = gtok_assertion(url, email, key);
    if (!jwt) {
        snprintf(err, errlen, "cannot sign the token request with the service-account key");
        return NULL;
    }
    CURL *h = curl_easy_init();
    buf_t body, form;
    buf_init(&body, GTOK_MAX_BYTES);
    buf_init(&form, 0);
    buf_appends(&form, "grant_type=" GTOK_GRANT "&assertion=");
    buf_appends(&form, jwt); /* base64url and dots: nothing to escape */
    gtok_wipe(jwt);
    char *tok = NULL;
    if (!h || !buf_data(&form)) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, GTOK_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, buf_data(&form));
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)form.len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, gtok_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    json_t *o = rc == CURLE_OK ? json_loadb(buf_data(&body), body.len, 0, NULL) : NULL;
    const char *at = json_string_value(json_object_get(o, "access_token"));
    json_t *ei = json_object_get(o, "expires_in");
    const char *oerr = json_string_value(json_object_get(o, "error"));
    if (rc != CURLE_OK)
        snprintf(err, errlen, "token endpoint unreachable: %s", curl_easy_strerror(rc));
    else if (status != 200)
        snprintf(err, errlen, "token endpoint answered HTTP %ld%s%.80s", status, oerr ? ": " : "",
                 oerr ? oerr : "");
    else if (!at || !*at || !json_is_integer(ei) || json_integer_value(ei) <= 0)
        snprintf(err, errlen, "token endpoint answered without access_token and expires_in");
    else if ((tok = strdup(at)) != NULL)
        *expires_in = (long)json_integer_value(ei);
    else
        snprintf(err, errlen, "out of memory");
    json_decref(o);
out:
    if (h) curl_easy_cleanup(h);
    if (form.len) explicit_bzero((char *)buf_data(&form), form.len);
    buf_free(&form);
    buf_free(&body);
    return tok;
}

/* Fetch G.v[idx]'s token now (G.mu held on entry and return; released meanwhile). */
static void gtok_refresh(size_t idx)
{
    char *url = strdup(G.v[idx].url), *email = strdup(G.v[idx].email);
    char *key = strdup(G.v[idx].key);
    char err[200] = "out of memory";
    long ttl = 0;
    char *tok = NULL;
    pthread_mutex_unlock(&G.mu);
    if (url && email && key) tok = gtok_fetch(url, email, key, &ttl, err, sizeof err);
    pthread_mutex_lock(&G.mu);
    gtok_src_t *s = &G.v[idx]; /* G.v may have moved */
    uint64_t now = gtok_now_ms();
    if (tok) {
        gtok_wipe(s->token);
        s->token = tok;
        s->expires_ms = now + (uint64_t)ttl * 1000u;
        long margin = ttl / 2 < GTOK_MARGIN_S ? ttl / 2 : GTOK_MARGIN_S;
        s->due_ms = now + (uint64_t)(ttl - margin) * 1000u;
        s->retry_ms = 0;
        s->err[0] = '\0';
        log_info("vertex: access token for %s: valid %ld s", email, ttl);
    } else {
        s->retry_ms = s->retry_ms ? s->retry_ms * 2 : 1000;
        if (s->retry_ms > GTOK_RETRY_MAX_MS) s->retry_ms = GTOK_RETRY_MAX_MS;
        s->due_ms = now + s->retry_ms;
        snprintf(s->err, sizeof s->err, "%s", err);
        log_warn("vertex: cannot get an access token for %s from %s: %s (retry in %llu ms)",
                 email ? email : "?", url ? url : "?", err, (unsigned long long)s->retry_ms);
    }
    free(url);
    free(email);
    gtok_wipe(key);
}

static void *gtok_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&G.mu);
    while (!G.stop) {
        uint64_t now = gtok_now_ms(), next = UINT64_MAX;
        size_t due = G.n;
        for (size_t i = 0; i < G.n; i++) {
            if (!G.v[i].live) continue;
            if (G.v[i].due_ms <= now) {
                due = i;
                break;
            }
            if (G.v[i].due_ms < next) next = G.v[i].due_ms;
        }
        if (due < G.n) {
            gtok_refresh(due);
            continue;
        }
        if (next == UINT64_MAX) {
            pthread_cond_wait(&G.cv, &G.mu);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t wait = next - now;
            ts.tv_sec += (time_t)(wait / 1000);
            ts.tv_nsec += (long)(wait % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&G.cv, &G.mu, &ts);
        }
    }
    pthread_mutex_unlock(&G.mu);
    return NULL;
}

/* A new source for p (G.mu held); its index, or G.n when out of memory. */
static size_t gtok_add(const cfg_provider_t *p)
{
    gtok_src_t *nv = realloc(G.v, (G.n + 1) * sizeof *nv);
    if (!nv) return G.n;
    G.v = nv;
    gtok_src_t s = {.url = strdup(p->token_url),
                    .email = strdup(p->sa_email),
                    .key = strdup(p->sa_key ? p->sa_key : "")};
    if (!s.url || !s.email || !s.key) {
        free(s.url);
        free(s.email);
        gtok_wipe(s.key);
        return G.n;
    }
    G.v[G.n] = s;
    return G.n++;
}

void gtok_configure(const config_t *cfg)
{
    pthread_mutex_lock(&G.mu);
    for (size_t i = 0; i < G.n; i++) G.v[i].live = false;
    bool any = false;
    for (size_t i = 0; i < cfg->n_providers; i++) {
        const cfg_provider_t *p = &cfg->providers[i];
        if (!p->type || strcmp(p->type, "vertex") != 0 || !p->sa_key || !p->token_url) continue;
        any = true;
        gtok_src_t *s = gtok_find(p->token_url, p->sa_email);
        if (s && strcmp(s->key, p->sa_key) != 0) { /* the same account, a new key */
            gtok_wipe(s->key);
            s->key = strdup(p->sa_key);
            s->due_ms = 0;
        }
        if (s) {
            s->live = true;
            continue;
        }
        size_t idx = gtok_add(p);
        if (idx == G.n) {
            log_error("vertex: out of memory");
            continue;
        }
        G.v[idx].live = true;
        G.v[idx].due_ms = UINT64_MAX; /* not the fetcher's meanwhile */
        gtok_refresh(idx);            /* the first token now; a failure retries later */
    }
    if (any && !G.running) {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&G.cv, &ca);
        pthread_condattr_destroy(&ca);
        G.stop = false;
        G.running = pthread_create(&G.thread, NULL, gtok_thread, NULL) == 0;
        if (!G.running) log_error("vertex: cannot start the access token fetcher");
    }
    if (G.running) pthread_cond_signal(&G.cv);
    pthread_mutex_unlock(&G.mu);
}

void gtok_install(const cfg_provider_t *p, const char *token, long ttl_s)
{
    pthread_mutex_lock(&G.mu);
    gtok_src_t *s = gtok_find(p->token_url, p->sa_email);
    if (!s) {
        size_t idx = gtok_add(p);
        s = idx < G.n ? &G.v[idx] : NULL;
        if (s) s->due_ms = UINT64_MAX;
    }
    char *t = s ? strdup(token) : NULL;
    if (t) {
        gtok_wipe(s->token);
        s->token = t;
        s->expires_ms = gtok_now_ms() + (uint64_t)ttl_s * 1000u;
    }
    pthread_mutex_unlock(&G.mu);
}

const char *gtok_bearer(arena_t *a, const cfg_provider_t *p, const char **why)
{
    const char *h = NULL;
    *why = NULL;
    if (!p->token_url || !p->sa_email) return NULL;
    pthread_mutex_lock(&G.mu);
    gtok_src_t *s = gtok_find(p->token_url, p->sa_email);
    if (s && s->token && gtok_now_ms() < s->expires_ms)
        h = arena_concat(a, "Authorization: Bearer ", s->token);
    else
        *why = arena_printf(a, "no Vertex AI access token: %s",
                            s && s->err[0] ? s->err : "not fetched yet");
    pthread_mutex_unlock(&G.mu);
    return h;
}

void gtok_shutdown(void)
{
    pthread_mutex_lock(&G.mu);
    bool running = G.running;
    G.stop = true;
    if (running) pthread_cond_signal(&G.cv);
    pthread_mutex_unlock(&G.mu);
    if (running) pthread_join(G.thread, NULL);
    pthread_mutex_lock(&G.mu);
    if (running) pthread_cond_destroy(&G.cv);
    for (size_t i = 0; i < G.n; i++) {
        free(G.v[i].url);
        free(G.v[i].email);
        gtok_wipe(G.v[i].key);
        gtok_wipe(G.v[i].token);
    }
    free(G.v);
    G.v = NULL;
    G.n = 0;
    G.running = false;
    pthread_mutex_unlock(&G.mu);
}
