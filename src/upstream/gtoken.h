/*
 * gtoken — Google OAuth2 access tokens for service-account keys (the vertex
 * provider): the JWT-bearer grant (RFC 7523). A JWT {iss: client_email,
 * scope: cloud-platform, aud: token endpoint, iat, exp: iat + 3600} signed
 * RS256 with the key's private key (libjwt) is POSTed to the token endpoint
 * as grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=JWT;
 * the answer's access_token is cached until it expires.
 *
 * One fetcher thread keeps every configured key's token fresh, as jwks.c
 * does for key sets: gtok_configure (at start and on every reload, off the
 * event loop) registers each vertex provider's key and fetches a new one's
 * token at once; the thread refreshes a token when expires_in minus a
 * margin (5 minutes, or half the lifetime when that is shorter) has passed,
 * and after a failure retries with backoff (1 s doubling to 60 s) while the
 * old token, if still valid, stays in use. Requests never wait on the
 * network: gtok_bearer copies the cached token (under the module's mutex),
 * or reports why there is none (the last fetch error).
 */
#ifndef SKULD_UPSTREAM_GTOKEN_H
#define SKULD_UPSTREAM_GTOKEN_H

#include <stddef.h>

#include "config/config.h"
#include "core/arena.h"

/* Register the key of every vertex provider of cfg (new ones fetched now). */
void gtok_configure(const config_t *cfg);
/* "Authorization: Bearer TOKEN" for p's key, an arena copy; NULL when no valid
 * token is cached, with *why (arena copy) saying what the last fetch got. */
const char *gtok_bearer(arena_t *a, const cfg_provider_t *p, const char **why);
/* Cache token for p's key as if fetched, valid ttl_s seconds and never
 * refreshed unless p is also configured (a token obtained elsewhere; the
 * golden tests use it). */
void gtok_install(const cfg_provider_t *p, const char *token, long ttl_s);
/* Stop the fetcher and wipe the cached tokens. */
void gtok_shutdown(void);

#endif
