/*
 * jwt — bearer JWT verification with libjwt (auth.jwt in the config).
 *
 * Order of checks: the header's "alg" must be in auth.jwt.algorithms (read
 * from the header before any verification, so "none" and anything else not
 * listed is refused without trusting libjwt's defaults); then the signature
 * with the configured key (HMAC secret or PEM public key, libjwt/OpenSSL);
 * (auth.jwt.keys_file: an HMAC secret, a PEM public key, or a JWKS document
 * {"keys":[...]}; or auth.jwt.jwks_url, a JWKS kept fresh by policy/jwks.h;
 * a JWKS key is chosen by the token's "kid");
 * then exp (required, and in the future), nbf, iss and aud (string or array)
 * when configured. Claims auth.jwt.team_claim / user_claim give the team and
 * user. Pure apart from libjwt; any thread.
 */
#ifndef SKULD_POLICY_JWT_H
#define SKULD_POLICY_JWT_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "core/arena.h"

/* Does the credential look like a JWT (three base64url parts)? */
bool pol_jwt_shape(const char *tok, size_t n);
/* 0 valid (team/user set, arena strings or NULL), -1 invalid (*why set). */
int pol_jwt_verify(const cfg_jwt_t *j, const char *tok, size_t n, arena_t *a, const char **team,
                   const char **user, const char **why);

#endif
