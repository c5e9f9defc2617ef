/*
 * auth.c — the auth section (issue 8, used by src/policy): whether /v1 needs
 * a key, JWT verification (an algorithm allowlist that never admits "none",
 * issuer, audience, a key file read here or a JWKS URL fetched later, claim
 * names) and request signing (hmac_secret, a secret; hmac_window).
 */
#include "config/config_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JWT(f) offsetof(cfg_jwt_t, f)
enum {
    J_ALGS,
    J_ISSUER,
    J_AUDIENCE,
    J_KEYS_FILE,
    J_JWKS_URL,
    J_JWKS_REFRESH,
    J_TEAM_CLAIM,
    J_USER_CLAIM
};
static const field_t jwt_fields[] = {
    [J_ALGS] = {.key = "algorithms", .type = FT_STRLIST, .off = JWT(algorithms), .required = true},
    [J_ISSUER] = {.key = "issuer", .type = FT_STRING, .off = JWT(issuer)},
    [J_AUDIENCE] = {.key = "audience", .type = FT_STRING, .off = JWT(audience)},
    [J_KEYS_FILE] = {.key = "keys_file", .type = FT_STRING, .off = JWT(keys_file)},
    [J_JWKS_URL] = {.key = "jwks_url", .type = FT_STRING, .off = JWT(jwks_url)},
    [J_JWKS_REFRESH] = {.key = "jwks_refresh", .type = FT_DURATION, .off = JWT(jwks_refresh_ms)},
    [J_TEAM_CLAIM] = {.key = "team_claim", .type = FT_STRING, .off = JWT(team_claim)},
    [J_USER_CLAIM] = {.key = "user_claim", .type = FT_STRING, .off = JWT(user_claim)},
};

static const char *const jwt_alg_names[] = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                            "RS512", "ES256", "ES384", "ES512"};

static void parse_jwt(loader_t *L, cfg_jwt_t *j, const ynode_t *map)
{
    const ynode_t *keys[COUNTOF(jwt_fields)], *vals[COUNTOF(jwt_fields)];
    config__walk_map(L, map, "auth.jwt", jwt_fields, COUNTOF(jwt_fields), j, keys, vals);
    for (size_t i = 0; i < j->algorithms.n; i++) {
        size_t k = 0;
        while (k < COUNTOF(jwt_alg_names) && strcmp(jwt_alg_names[k], j->algorithms.v[i]) != 0) k++;
        if (k == COUNTOF(jwt_alg_names))
            config__err_at(L, vals[J_ALGS],
                           "auth.jwt.algorithms: '%.32s' is not allowed (HS256..512, "
                           "RS256..512, ES256..512; never none)",
                           j->algorithms.v[i]);
    }
    if (vals[J_ALGS] && !j->algorithms.n)
        config__err_at(L, vals[J_ALGS], "auth.jwt.algorithms must name at least one algorithm");
    if (!!j->keys_file == !!j->jwks_url)
        config__err_at(L, map, "auth.jwt needs exactly one of keys_file and jwks_url");
    if (j->jwks_url && strncmp(j->jwks_url, "https://", 8) != 0 &&
        strncmp(j->jwks_url, "http://", 7) != 0)
        config__err_at(L, vals[J_JWKS_URL], "auth.jwt.jwks_url must be an http:// or https:// URL");
    if (vals[J_JWKS_REFRESH] && j->jwks_refresh_ms < 1000)
        config__err_at(L, vals[J_JWKS_REFRESH], "auth.jwt.jwks_refresh must be at least 1s");
    if (!j->jwks_refresh_ms) j->jwks_refresh_ms = 10 * 60 * 1000;
    if (j->keys_file) {
        FILE *f = fopen(j->keys_file, "rb");
        if (!f) {
            config__err_at(L, vals[J_KEYS_FILE], "auth.jwt.keys_file: cannot read %s: %s",
                           j->keys_file, strerror(errno));
        } else {
            char *data = malloc(SECRET_FILE_MAX + 1);
            size_t n = data ? fread(data, 1, SECRET_FILE_MAX + 1, f) : 0;
            fclose(f);
            if (!data || n == 0 || n > SECRET_FILE_MAX) {
                config__err_at(L, vals[J_KEYS_FILE], "auth.jwt.keys_file: %s is empty or too large",
                               j->keys_file);
                free(data);
            } else {
                while (n && (data[n - 1] == '\n' || data[n - 1] == '\r')) n--;
                data[n] = '\0';
                j->key = data;
                j->key_len = n;
            }
        }
    }
    if (!j->team_claim) j->team_claim = strdup("team");
    if (!j->user_claim) j->user_claim = strdup("sub");
}

#define AUT(f) offsetof(cfg_auth_t, f)
enum { A_REQUIRED, A_JWT, A_HMAC_SECRET, A_HMAC_WINDOW };
static const field_t auth_fields[] = {
    [A_REQUIRED] = {.key = "required", .type = FT_BOOL, .off = AUT(required)},
    [A_JWT] = {.key = "jwt", .type = FT_MAPPING},
    [A_HMAC_SECRET] = {.key = "hmac_secret", .type = FT_STRING, .off = AUT(hmac_secret)},
    [A_HMAC_WINDOW] = {.key = "hmac_window",
                       .type = FT_DURATION,
                       .off = AUT(hmac_window_ms),
                       .min = 1000},
};

void config__parse_auth(loader_t *L, config_t *c, const ynode_t *map)
{
    const ynode_t *keys[COUNTOF(auth_fields)], *vals[COUNTOF(auth_fields)];
    c->auth.hmac_window_ms = 300000;
    config__walk_map(L, map, "auth", auth_fields, COUNTOF(auth_fields), &c->auth, keys, vals);
    char *raw = c->auth.hmac_secret;
    c->auth.hmac_secret = raw ? config__resolve_secret(L, vals[A_HMAC_SECRET], raw) : NULL;
    config__free_secret(raw);
    const ynode_t *j = vals[A_JWT];
    if (j && j->kind != YNODE_MAPPING) {
        config__err_at(L, j, "auth.jwt: expected a mapping");
    } else if (j) {
        c->auth.jwt_on = true;
        parse_jwt(L, &c->auth.jwt, j);
    }
}

void config__auth_free(config_t *c)
{
    config__strlist_free(&c->auth.jwt.algorithms);
    free(c->auth.jwt.issuer);
    free(c->auth.jwt.audience);
    free(c->auth.jwt.keys_file);
    free(c->auth.jwt.jwks_url);
    config__free_secret(c->auth.jwt.key);
    free(c->auth.jwt.team_claim);
    free(c->auth.jwt.user_claim);
    config__free_secret(c->auth.hmac_secret);
}
