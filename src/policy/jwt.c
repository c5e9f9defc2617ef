/*
 * jwt.c — see jwt.h.
 */
#include "policy/jwt.h"

#include "policy/keys.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POL_JWT_MAX 8192

bool pol_jwt_shape(const char *tok, size_t n)
{
    if (n < 5 || n > POL_JWT_MAX) return false;
    int dots = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = tok[i];
        if (ch == '.')
            dots++;
        else if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                   (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '='))
            return false;
    }
    return dots == 2;
}

/* base64url (padding optional) -> out; length or -1. */
static long pol_b64url(const char *in, size_t n, unsigned char *out, size_t cap)
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

/* The header's "alg" and "kid" (malloc'd; NULL when absent). -1 if malformed. */
static int pol_jwt_header(const char *tok, size_t n, char **alg, char **kid)
{
    *alg = *kid = NULL;
    const char *dot = memchr(tok, '.', n);
    if (!dot || (size_t)(dot - tok) > 2048) return -1;
    unsigned char out[1600];
    long o = pol_b64url(tok, (size_t)(dot - tok), out, sizeof out);
    if (o < 0) return -1;
    json_error_t je;
    json_t *h = json_loadb((const char *)out, (size_t)o, 0, &je);
    const char *a = json_string_value(json_object_get(h, "alg"));
    const char *k = json_string_value(json_object_get(h, "kid"));
    if (a) *alg = strdup(a);
    if (k) *kid = strdup(k);
    json_decref(h);
    return h ? 0 : -1;
}

/* ---- JWKS: a keys_file holding {"keys":[...]} (RSA "n"/"e", or "oct" "k") ---- */

typedef struct pol_jwk {
    char kid[128];
    char *key; /* PEM public key, or the raw HMAC secret */
    size_t len;
} pol_jwk_t;

typedef struct pol_jwks {
    struct pol_jwks *next;
    unsigned char sum[32]; /* SHA-256 of the file's text: the cache key */
    pol_jwk_t *v;
    size_t n;
} pol_jwks_t;

static pthread_mutex_t pol_jwks_mu = PTHREAD_MUTEX_INITIALIZER;
static pol_jwks_t *pol_jwks_cache; /* parsed sets, never freed (one per distinct file text) */

static BIGNUM *pol_bn_b64(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s);
    unsigned char *buf = malloc(n + 1);
    long l = buf ? pol_b64url(s, n, buf, n + 1) : -1;
    BIGNUM *bn = l > 0 ? BN_bin2bn(buf, (int)l, NULL) : NULL;
    free(buf);
    return bn;
}

static char *pol_rsa_pem(const char *n64, const char *e64, size_t *len)
{
    BIGNUM *n = pol_bn_b64(n64), *e = pol_bn_b64(e64);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pk = NULL;
    BIO *bio = NULL;
    char *out = NULL;
    if (!n || !e || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
        !(params = OSSL_PARAM_BLD_to_param(bld)) ||
        !(ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) ||
        EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) <= 0 ||
        !(bio = BIO_new(BIO_s_mem())) || !PEM_write_bio_PUBKEY(bio, pk))
        goto out;
    char *data;
    long l = BIO_get_mem_data(bio, &data);
    if (l > 0 && (out = malloc((size_t)l + 1))) {
        memcpy(out, data, (size_t)l);
        out[l] = '\0';
        *len = (size_t)l;
    }
out:
    BIO_free(bio);
    EVP_PKEY_free(pk);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return out;
}

static pol_jwks_t *pol_jwks_parse(const char *text)
{
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
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
        if (kty && !strcmp(kty, "RSA")) {
            w->key = pol_rsa_pem(json_string_value(json_object_get(k, "n")),
                                 json_string_value(json_object_get(k, "e")), &w->len);
        } else if (kty && !strcmp(kty, "oct")) {
            const char *kk = json_string_value(json_object_get(k, "k"));
            size_t kl = kk ? strlen(kk) : 0;
            w->key = kl ? malloc(kl + 1) : NULL;
            long l = w->key ? pol_b64url(kk, kl, (unsigned char *)w->key, kl) : -1;
            if (l <= 0) {
                free(w->key);
                w->key = NULL;
            } else {
                w->len = (size_t)l;
            }
        }
        if (w->key) set->n++;
    }
    json_decref(o);
    return set;
}

/* The verification key for a token: the plain key, or the JWKS entry named
 * by kid (the only entry when the token has no kid). */
static const char *pol_jwt_pick_key(const cfg_jwt_t *j, const char *kid, size_t *len)
{
    const char *t = j->key;
    while (*t == ' ' || *t == '\n' || *t == '\r' || *t == '\t') t++;
    if (*t != '{') {
        *len = j->key_len;
        return j->key;
    }
    unsigned char sum[32];
    pol_sha256(j->key, j->key_len, sum);
    pthread_mutex_lock(&pol_jwks_mu);
    pol_jwks_t *set = pol_jwks_cache;
    while (set && memcmp(set->sum, sum, 32) != 0) set = set->next;
    if (!set && (set = pol_jwks_parse(j->key))) {
        memcpy(set->sum, sum, 32);
        set->next = pol_jwks_cache;
        pol_jwks_cache = set;
    }
    pthread_mutex_unlock(&pol_jwks_mu);
    if (!set) return NULL;
    for (size_t i = 0; i < set->n; i++)
        if ((kid && !strcmp(set->v[i].kid, kid)) || (!kid && set->n == 1)) {
            *len = set->v[i].len;
            return set->v[i].key;
        }
    return NULL;
}

static bool pol_jwt_aud_ok(jwt_t *jwt, const char *want)
{
    const char *s = jwt_get_grant(jwt, "aud");
    if (s) return strcmp(s, want) == 0;
    char *js = jwt_get_grants_json(jwt, "aud");
    bool ok = false;
    if (js) {
        json_error_t je;
        json_t *a = json_loads(js, JSON_DECODE_ANY, &je);
        size_t i;
        json_t *v;
        json_array_foreach(a, i, v)
        {
            if (json_is_string(v) && strcmp(json_string_value(v), want) == 0) ok = true;
        }
        json_decref(a);
        free(js);
    }
    return ok;
}

int pol_jwt_verify(const cfg_jwt_t *j, const char *tok, size_t n, arena_t *a, const char **team,
                   const char **user, const char **why)
{
    *team = *user = NULL;
    if (!j->key) {
        *why = "JWT verification key not loaded";
        return -1;
    }
    char *alg = NULL, *kid = NULL;
    pol_jwt_header(tok, n, &alg, &kid);
    bool allowed = false;
    for (size_t i = 0; alg && i < j->algorithms.n; i++)
        if (strcmp(j->algorithms.v[i], alg) == 0) allowed = true;
    if (!allowed) {
        free(alg);
        free(kid);
        *why = "JWT algorithm not allowed";
        return -1;
    }
    size_t klen = 0;
    const char *key = pol_jwt_pick_key(j, kid, &klen);
    free(kid);
    if (!key) {
        free(alg);
        *why = "JWT key id unknown";
        return -1;
    }
    /* A public key is never an HMAC secret, nor a secret a public key (the
     * algorithm-confusion attack: HS256 signed with the RSA public key). */
    bool is_pem = strncmp(key, "-----BEGIN", 10) == 0;
    if (is_pem != (alg[0] != 'H')) {
        free(alg);
        *why = "JWT algorithm does not match the key";
        return -1;
    }
    char *t = strndup(tok, n);
    jwt_t *jwt = NULL;
    int rc = t ? jwt_decode(&jwt, t, (const unsigned char *)key, (int)klen) : -1;
    free(t);
    if (rc != 0 || !jwt) {
        free(alg);
        *why = "JWT signature invalid";
        return -1;
    }
    int ret = -1;
    if (jwt_get_alg(jwt) == JWT_ALG_NONE || strcmp(jwt_alg_str(jwt_get_alg(jwt)), alg) != 0) {
        *why = "JWT algorithm not allowed";
        goto out;
    }
    time_t now = time(NULL);
    errno = 0;
    long exp = jwt_get_grant_int(jwt, "exp");
    if (errno == ENOENT || exp <= 0) {
        *why = "JWT has no exp claim";
        goto out;
    }
    if ((time_t)exp <= now) {
        *why = "JWT expired";
        goto out;
    }
    errno = 0;
    long nbf = jwt_get_grant_int(jwt, "nbf");
    if (errno != ENOENT && nbf > 0 && (time_t)nbf > now + 5) {
        *why = "JWT not valid yet";
        goto out;
    }
    if (j->issuer) {
        const char *iss = jwt_get_grant(jwt, "iss");
        if (!iss || strcmp(iss, j->issuer) != 0) {
            *why = "JWT issuer not accepted";
            goto out;
        }
    }
    if (j->audience && !pol_jwt_aud_ok(jwt, j->audience)) {
        *why = "JWT audience not accepted";
        goto out;
    }
    const char *tm = jwt_get_grant(jwt, j->team_claim ? j->team_claim : "team");
    const char *us = jwt_get_grant(jwt, j->user_claim ? j->user_claim : "sub");
    if (tm && strlen(tm) <= 200) *team = arena_strdup(a, tm);
    if (us && strlen(us) <= 200) *user = arena_strdup(a, us);
    ret = 0;
out:
    free(alg);
    jwt_free(jwt);
    return ret;
}
