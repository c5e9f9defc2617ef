/*
 * jwt.c — see jwt.h.
 */
#include "policy/jwt.h"

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

/* base64url-decode the header segment and return its "alg" (malloc'd) or NULL. */
static char *pol_jwt_header_alg(const char *tok, size_t n)
{
    const char *dot = memchr(tok, '.', n);
    if (!dot) return NULL;
    size_t hl = (size_t)(dot - tok);
    if (hl > 2048) return NULL;
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char out[1600];
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < hl; i++) {
        if (tok[i] == '=') break;
        const char *p = strchr(b64, tok[i]);
        if (!p || !*p) return NULL;
        acc = (acc << 6) | (unsigned)(p - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= sizeof out - 1) return NULL;
            out[o++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    json_error_t je;
    json_t *h = json_loadb((const char *)out, o, 0, &je);
    const char *alg = json_string_value(json_object_get(h, "alg"));
    char *r = alg ? strdup(alg) : NULL;
    json_decref(h);
    return r;
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
    char *alg = pol_jwt_header_alg(tok, n);
    bool allowed = false;
    for (size_t i = 0; alg && i < j->algorithms.n; i++)
        if (strcmp(j->algorithms.v[i], alg) == 0) allowed = true;
    if (!allowed) {
        free(alg);
        *why = "JWT algorithm not allowed";
        return -1;
    }
    char *t = strndup(tok, n);
    jwt_t *jwt = NULL;
    int rc = t ? jwt_decode(&jwt, t, (const unsigned char *)j->key, (int)j->key_len) : -1;
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
