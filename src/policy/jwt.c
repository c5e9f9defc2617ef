/*
 * jwt.c — see jwt.h.
 */
#include "policy/jwt.h"

#include "policy/jwks.h"
#include "policy/keys.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
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

/* The verification key for a token: the plain key, or the JWKS entry named
 * by kid (the only entry when the token has no kid), from keys_file or from
 * jwks_url. */
static const char *pol_jwt_pick_key(const cfg_jwt_t *j, const char *kid, size_t *len,
                                    const pol_jwks_t **hold)
{
    *hold = NULL;
    if (j->jwks_url) { /* the set stays ours (*hold) until the key has been used */
        const pol_jwks_t *set = pol_jwks_acquire_url(j->jwks_url);
        const char *key = pol_jwks_key(set, kid, len);
        if (!key) {
            pol_jwks_release(set);
            pol_jwks_unknown_kid(j->jwks_url); /* rotated since the last fetch? */
            return NULL;
        }
        *hold = set;
        return key;
    }
    const char *t = j->key;
    while (*t == ' ' || *t == '\n' || *t == '\r' || *t == '\t') t++;
    if (*t != '{') {
        *len = j->key_len;
        return j->key;
    }
    return pol_jwks_key(pol_jwks_of_text(j->key, j->key_len), kid, len);
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
    if (!j->key && !j->jwks_url) {
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
    const pol_jwks_t *hold;
    const char *key = pol_jwt_pick_key(j, kid, &klen, &hold);
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
        pol_jwks_release(hold);
        free(alg);
        *why = "JWT algorithm does not match the key";
        return -1;
    }
    char *t = strndup(tok, n);
    jwt_t *jwt = NULL;
    int rc = t ? jwt_decode(&jwt, t, (const unsigned char *)key, (int)klen) : -1;
    free(t);
    pol_jwks_release(hold); /* the key is not used after this */
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
