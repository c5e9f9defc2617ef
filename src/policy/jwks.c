/* jwks — see jwks.h. */
#include "policy/jwks.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/secure.h"

#define JWKS_MAX_BYTES (1u << 20)
#define JWKS_TIMEOUT_MS 5000L
#define JWKS_KICK_MS 10000u /* unknown kid: at most one early fetch per this */
#define JWKS_RETRY_MAX_MS 60000u

long pol_b64url(const char *in, size_t n, unsigned char *out, size_t cap)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '=') break;
        const char *p = in[i] ? strchr(b64, in[i]) : NULL;
        if (!p) return -1;
        acc = (acc << 6) | (unsigned)(p - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap) return -1;
            out[o++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    return (long)o;
}

/* ---------- parsed sets ---------- */

typedef struct pol_jwk {
    char kid[128];
    char *key; /* PEM public key, or the raw HMAC secret */
    size_t len;
} pol_jwk_t;

struct pol_jwks {
    struct pol_jwks *next; /* in jwks_files */
    unsigned char sum[32]; /* SHA-256 of the document */
    pol_jwk_t *v;
    size_t n;
    atomic_int refs; /* the holder's (a URL source) + one per verification using it */
    bool pinned;     /* a keys_file set: kept for the life of the process */
};

static pthread_mutex_t jwks_mu = PTHREAD_MUTEX_INITIALIZER;
static pol_jwks_t *jwks_files; /* keys_file sets, pinned: one per distinct file text */

/* A base64url member of k, decoded into a malloc'd buffer. */
static unsigned char *jwks__member(const json_t *k, const char *name, size_t *len)
{
    const char *s = json_string_value(json_object_get(k, name));
    size_t n = s ? strlen(s) : 0;
    unsigned char *out = n ? malloc(n) : NULL;
    long l = out ? pol_b64url(s, n, out, n) : -1;
    if (l <= 0) {
        free(out);
        return NULL;
    }
    *len = (size_t)l;
    return out;
}

/* PEM of the public key that params describe (type "RSA" or "EC"). */
static char *jwks__pem(const char *type, OSSL_PARAM_BLD *bld, size_t *len)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
    EVP_PKEY *pk = NULL;
    BIO *bio = NULL;
    char *out = NULL;
    if (ctx && EVP_PKEY_fromdata_init(ctx) > 0 &&
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) > 0 &&
        (bio = BIO_new(BIO_s_mem())) && PEM_write_bio_PUBKEY(bio, pk)) {
        char *data;
        long l = BIO_get_mem_data(bio, &data);
        if (l > 0 && (out = malloc((size_t)l + 1))) {
            memcpy(out, data, (size_t)l);
            out[l] = '\0';
            *len = (size_t)l;
        }
    }
    BIO_free(bio);
    EVP_PKEY_free(pk);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return out;
}

static char *jwks__rsa(const json_t *k, size_t *len)
{
    size_t nl = 0, el = 0;
    unsigned char *nb = jwks__member(k, "n", &nl), *eb = jwks__member(k, "e", &el);
    BIGNUM *n = nb ? BN_bin2bn(nb, (int)nl, NULL) : NULL;
    BIGNUM *e = eb ? BN_bin2bn(eb, (int)el, NULL) : NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    char *out = NULL;
    if (n && e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
        out = jwks__pem("RSA", bld, len);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    free(nb);
    free(eb);
    return out;
}

/* EC: the uncompressed point 04 || x || y on the named curve. */
static char *jwks__ec(const json_t *k, size_t *len)
{
    static const struct {
        const char *crv, *group;
        size_t size;
    } curves[] = {
        {"P-256", "prime256v1", 32}, {"P-384", "secp384r1", 48}, {"P-521", "secp521r1", 66}};
    const char *crv = json_string_value(json_object_get(k, "crv"));
    size_t c = 0;
    while (c < sizeof curves / sizeof *curves && (!crv || strcmp(curves[c].crv, crv) != 0)) c++;
    if (c == sizeof curves / sizeof *curves) return NULL;
    size_t xl = 0, yl = 0, sz = curves[c].size;
    unsigned char *x = jwks__member(k, "x", &xl), *y = jwks__member(k, "y", &yl);
    unsigned char point[1 + 2 * 66];
    char *out = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    if (x && y && xl == sz && yl == sz && (bld = OSSL_PARAM_BLD_new())) {
        point[0] = 0x04;
        memcpy(point + 1, x, sz);
        memcpy(point + 1 + sz, y, sz);
        if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curves[c].group, 0) &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * sz))
            out = jwks__pem("EC", bld, len);
    }
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return out;
}

pol_jwks_t *pol_jwks_parse(const char *text, size_t len)
{
    json_error_t je;
    json_t *o = json_loadb(text, len, 0, &je);
    json_t *keys = json_object_get(o, "keys");
    pol_jwks_t *set = calloc(1, sizeof *set);
    if (!set || !json_is_array(keys) ||
        !(set->v = calloc(json_array_size(keys) + 1, sizeof *set->v))) {
        json_decref(o);
        free(set);
        return NULL;
    }
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        const char *kty = json_string_value(json_object_get(k, "kty"));
        const char *kid = json_string_value(json_object_get(k, "kid"));
        pol_jwk_t *w = &set->v[set->n];
        snprintf(w->kid, sizeof w->kid, "%s", kid ? kid : "");
        if (!kty) continue;
        if (!strcmp(kty, "RSA"))
            w->key = jwks__rsa(k, &w->len);
        else if (!strcmp(kty, "EC"))
            w->key = jwks__ec(k, &w->len);
        else if (!strcmp(kty, "oct"))
            w->key = (char *)jwks__member(k, "k", &w->len);
        if (w->key) set->n++;
    }
    json_decref(o);
    secure_sha256(text, len, set->sum);
    atomic_init(&set->refs, 1);
    return set;
}

void pol_jwks_release(const pol_jwks_t *cset)
{
    pol_jwks_t *set = (pol_jwks_t *)cset;
    if (!set || set->pinned || atomic_fetch_sub(&set->refs, 1) != 1) return;
    for (size_t i = 0; i < set->n; i++) free(set->v[i].key);
    free(set->v);
    free(set);
}

const pol_jwks_t *pol_jwks_of_text(const char *text, size_t len)
{
    unsigned char sum[32];
    secure_sha256(text, len, sum);
    pthread_mutex_lock(&jwks_mu);
    pol_jwks_t *set = jwks_files;
    while (set && memcmp(set->sum, sum, 32) != 0) set = set->next;
    if (!set && (set = pol_jwks_parse(text, len))) {
        set->pinned = true;
        set->next = jwks_files;
        jwks_files = set;
    }
    pthread_mutex_unlock(&jwks_mu);
    return set;
}

const char *pol_jwks_key(const pol_jwks_t *set, const char *kid, size_t *len)
{
    for (size_t i = 0; set && i < set->n; i++)
        if ((kid && !strcmp(set->v[i].kid, kid)) || (!kid && set->n == 1)) {
            *len = set->v[i].len;
            return set->v[i].key;
        }
    return NULL;
}

/* ---------- sets fetched from URLs ---------- */

typedef struct jwks_src {
    char *url;
    uint64_t refresh_ms;
    const pol_jwks_t *set; /* last good set (one reference), or NULL */
    uint64_t due_ms;       /* next fetch (monotonic) */
    uint64_t kicked_ms;    /* last early fetch asked by an unknown kid */
    uint64_t retry_ms;     /* after a failure: the wait before the next try */
    bool live;             /* named by the running config */
    bool tried;            /* fetched at least once (the first fetch is synchronous) */
} jwks_src_t;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    jwks_src_t *v;
    size_t n;
    pthread_t thread;
    bool running, stop;
} F = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint64_t jwks__now_ms(void)
{
    return time_mono_ns() / 1000000u;
}

static size_t jwks__write(char *p, size_t size, size_t n, void *ud)
{
    return buf_append(ud, p, size * n) == BUF_OK ? size * n : 0; /* 0 aborts: too big */
}

/* GET url into a fresh set (one reference). NULL with the reason in err. */
static const pol_jwks_t *jwks__fetch(const char *url, char *err, size_t errlen)
{
    buf_t body;
    buf_init(&body, JWKS_MAX_BYTES);
    CURL *h = curl_easy_init();
    const pol_jwks_t *set = NULL;
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, JWKS_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)JWKS_MAX_BYTES);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, jwks__write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    if (rc == CURLE_WRITE_ERROR || rc == CURLE_FILESIZE_EXCEEDED)
        snprintf(err, errlen, "the key set is larger than %u bytes", JWKS_MAX_BYTES);
    else if (rc != CURLE_OK)
        snprintf(err, errlen, "%s", curl_easy_strerror(rc));
    else if (status != 200)
        snprintf(err, errlen, "HTTP status %ld", status);
    else if (!(set = pol_jwks_parse(buf_data(&body), body.len)) || set->n == 0) {
        pol_jwks_release(set);
        set = NULL;
        snprintf(err, errlen, "not a key set with usable keys");
    }
    buf_free(&body);
    return set;
}

static jwks_src_t *jwks__find(const char *url)
{
    for (size_t i = 0; i < F.n; i++)
        if (strcmp(F.v[i].url, url) == 0) return &F.v[i];
    return NULL;
}

/* Fetch s's URL now (F.mu held on entry and on return; released meanwhile). */
static void jwks__refresh(size_t idx)
{
    char *url = strdup(F.v[idx].url);
    if (!url) return;
    pthread_mutex_unlock(&F.mu);
    char err[256];
    const pol_jwks_t *set = jwks__fetch(url, err, sizeof err);
    pthread_mutex_lock(&F.mu);
    jwks_src_t *s = &F.v[idx]; /* F.v may have moved */
    uint64_t now = jwks__now_ms();
    const pol_jwks_t *old = NULL;
    if (set) {
        if (s->set && memcmp(s->set->sum, set->sum, 32) == 0) { /* unchanged: keep the old */
            old = set;
        } else {
            log_info("auth.jwt: key set from %s: %zu key(s)", url, set->n);
            old = s->set;
            s->set = set;
        }
        s->retry_ms = 0;
        s->due_ms = now + s->refresh_ms;
    } else {
        s->retry_ms = s->retry_ms ? s->retry_ms * 2 : 1000;
        if (s->retry_ms > JWKS_RETRY_MAX_MS) s->retry_ms = JWKS_RETRY_MAX_MS;
        if (s->retry_ms > s->refresh_ms) s->retry_ms = s->refresh_ms;
        s->due_ms = now + s->retry_ms;
        log_warn("auth.jwt: cannot fetch the key set from %s: %s (%s; retry in %llu ms)", url, err,
                 s->set ? "the last one stays in use" : "JWTs are refused until then",
                 (unsigned long long)s->retry_ms);
    }
    free(url);
    pol_jwks_release(old); /* verifications still using it hold their own reference */
}

static void *jwks__thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&F.mu);
    while (!F.stop) {
        uint64_t now = jwks__now_ms(), next = UINT64_MAX;
        size_t due = F.n;
        for (size_t i = 0; i < F.n; i++) {
            if (!F.v[i].live) continue;
            if (F.v[i].due_ms <= now) {
                due = i;
                break;
            }
            if (F.v[i].due_ms < next) next = F.v[i].due_ms;
        }
        if (due < F.n) {
            jwks__refresh(due);
            continue;
        }
        if (next == UINT64_MAX) {
            pthread_cond_wait(&F.cv, &F.mu);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t wait = next - now;
            ts.tv_sec += (time_t)(wait / 1000);
            ts.tv_nsec += (long)(wait % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&F.cv, &F.mu, &ts);
        }
    }
    pthread_mutex_unlock(&F.mu);
    return NULL;
}

void pol_jwks_configure(const config_t *cfg)
{
    const char *url = cfg->auth.jwt_on ? cfg->auth.jwt.jwks_url : NULL;
    pthread_mutex_lock(&F.mu);
    if (!F.running && url) {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&F.cv, &ca);
        pthread_condattr_destroy(&ca);
        F.stop = false;
        F.running = pthread_create(&F.thread, NULL, jwks__thread, NULL) == 0;
        if (!F.running) log_error("auth.jwt: cannot start the key set fetcher");
    }
    for (size_t i = 0; i < F.n; i++) F.v[i].live = false;
    jwks_src_t *s = url ? jwks__find(url) : NULL;
    if (url && !s) {
        jwks_src_t *nv = realloc(F.v, (F.n + 1) * sizeof *nv);
        char *u = strdup(url);
        if (!nv || !u) {
            free(u);
            if (nv) F.v = nv;
            pthread_mutex_unlock(&F.mu);
            log_error("auth.jwt: out of memory");
            return;
        }
        F.v = nv;
        s = &F.v[F.n++];
        *s = (jwks_src_t){.url = u};
    }
    if (s) {
        size_t idx = (size_t)(s - F.v);
        s->live = true;
        s->refresh_ms = cfg->auth.jwt.jwks_refresh_ms;
        if (!s->tried) { /* first fetch: now, so tokens verify from the start */
            s->tried = true;
            s->due_ms = UINT64_MAX; /* not the fetcher's meanwhile */
            jwks__refresh(idx);     /* (a failure retries in the background, not here) */
        } else if (F.v[idx].due_ms > jwks__now_ms() + F.v[idx].refresh_ms &&
                   F.v[idx].due_ms != UINT64_MAX) {
            F.v[idx].due_ms = jwks__now_ms() + F.v[idx].refresh_ms; /* a shorter refresh */
        }
    }
    if (F.running) pthread_cond_signal(&F.cv);
    pthread_mutex_unlock(&F.mu);
}

const pol_jwks_t *pol_jwks_acquire_url(const char *url)
{
    pthread_mutex_lock(&F.mu);
    const jwks_src_t *s = jwks__find(url);
    pol_jwks_t *set = s ? (pol_jwks_t *)s->set : NULL;
    if (set) atomic_fetch_add(&set->refs, 1);
    pthread_mutex_unlock(&F.mu);
    return set;
}

void pol_jwks_unknown_kid(const char *url)
{
    pthread_mutex_lock(&F.mu);
    jwks_src_t *s = jwks__find(url);
    uint64_t now = jwks__now_ms();
    if (s && s->live && (!s->kicked_ms || now - s->kicked_ms >= JWKS_KICK_MS) && s->due_ms > now) {
        s->kicked_ms = now;
        s->due_ms = now;
        if (F.running) pthread_cond_signal(&F.cv);
    }
    pthread_mutex_unlock(&F.mu);
}

void pol_jwks_shutdown(void)
{
    pthread_mutex_lock(&F.mu);
    bool running = F.running;
    F.stop = true;
    if (running) pthread_cond_signal(&F.cv);
    pthread_mutex_unlock(&F.mu);
    if (running) pthread_join(F.thread, NULL);
    pthread_mutex_lock(&F.mu);
    if (running) pthread_cond_destroy(&F.cv);
    for (size_t i = 0; i < F.n; i++) {
        free(F.v[i].url);
        pol_jwks_release(F.v[i].set);
    }
    free(F.v);
    F.v = NULL;
    F.n = 0;
    F.running = false;
    pthread_mutex_unlock(&F.mu);
}
