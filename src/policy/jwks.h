/*
 * jwks — JSON Web Key Sets for JWT verification: parsed sets, and sets kept
 * fresh from a URL (auth.jwt.jwks_url).
 *
 * A keys_file set is parsed once per distinct file text (SHA-256 of it) and
 * kept for the life of the process (config files are few). A URL's set is
 * refcounted: the fetcher holds the current one, a verification takes a
 * reference for the time it uses a key, and a set that was replaced is freed
 * when the last verification using it ends; a fetch that returns the same
 * document keeps the set it has. So an issuer that serves a different
 * document every time costs one set, not one per fetch. Keys: RSA ("n", "e") and EC
 * ("crv" P-256/P-384/P-521, "x", "y") become PEM public keys, "oct" ("k") a
 * raw HMAC secret; other kinds are skipped.
 *
 * URL sets: one fetcher thread keeps the set of every auth.jwt.jwks_url of
 * the running config fresh. The first fetch of a URL happens when the first
 * config naming it is prepared (on the control thread, bounded by the fetch
 * timeout), so a gateway that starts with a reachable issuer verifies tokens
 * at once; after that, every jwks_refresh, in the background (later configs
 * never wait for the issuer, even while it is down). A failed fetch keeps the last good
 * set and retries after 1 s, doubling to 60 s (never later than
 * jwks_refresh). A token whose kid is not in the set asks for an early fetch
 * (at most one per 10 s per URL), for keys rotated between refreshes. A
 * fetch is GET over http or https only (no redirects), 5 s at most, and a
 * body over 1 MiB is refused. The URL comes from the config only.
 */
#ifndef SKULD_POLICY_JWKS_H
#define SKULD_POLICY_JWKS_H

#include <stddef.h>

#include "config/config.h"

typedef struct pol_jwks pol_jwks_t;

/* base64url (padding optional) -> out; length or -1. */
long pol_b64url(const char *in, size_t n, unsigned char *out, size_t cap);

/* A keys_file document's set (parsed once, kept); NULL if it is not a JWKS. Any thread. */
const pol_jwks_t *pol_jwks_of_text(const char *text, size_t len);
/* A fresh set of a JWKS document (one reference); NULL if it is not one. */
pol_jwks_t *pol_jwks_parse(const char *text, size_t len);
/* Drop a reference (a no-op for NULL and for keys_file sets). Any thread. */
void pol_jwks_release(const pol_jwks_t *set);
/* The key named kid (the only key when kid is NULL and the set has one);
 * NULL when none. *len is its length. */
const char *pol_jwks_key(const pol_jwks_t *set, const char *kid, size_t *len);

/* Control thread: keep cfg's jwks_url fresh from now on (first fetch now if
 * the URL is new); a URL of an earlier config that cfg does not name is no
 * longer fetched. */
void pol_jwks_configure(const config_t *cfg);
/* The current set fetched from url, with a reference (pol_jwks_release);
 * NULL until a fetch succeeded. Any thread. */
const pol_jwks_t *pol_jwks_acquire_url(const char *url);
/* A token named a kid that url's set lacks: fetch early (rate-limited). Any thread. */
void pol_jwks_unknown_kid(const char *url);
/* Stop the fetcher (after the workers stopped). */
void pol_jwks_shutdown(void);

#endif
