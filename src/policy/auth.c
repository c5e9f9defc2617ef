/*
 * policy auth — the auth stage (policy_internal.h).
 *
 * Credentials: "Authorization: Bearer X" or "x-api-key: X" (Anthropic
 * clients). X is, in this order: the master key (constant-time compare),
 * a JWT (when auth.jwt is configured and X has a JWT's shape), or a virtual
 * key (looked up by SHA-256). Anonymous requests pass when auth.required is
 * false; a credential that is a known but revoked/expired key, or an invalid
 * JWT, is refused (401) either way; an unknown credential is refused only
 * when auth.required (SDKs send placeholder keys to open gateways).
 * Optional request signing: auth.hmac_secret.
 */
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/secure.h"
#include "policy/jwt.h"
#include "policy/policy_internal.h"

/* The presented credential, or an empty slice. */
static pl_slice_t pol_credential(pl_req_t *r)
{
    pl_slice_t a = pl_req_header(r, "authorization");
    if (a.n > 7 && strncasecmp(a.p, "Bearer ", 7) == 0) {
        pl_slice_t s = {a.p + 7, a.n - 7};
        while (s.n && s.p[0] == ' ') s.p++, s.n--;
        return s;
    }
    pl_slice_t x = pl_req_header(r, "x-api-key");
    if (x.n) return x;
    return (pl_slice_t){NULL, 0};
}

typedef enum { PA_NONE, PA_OK, PA_UNKNOWN, PA_BAD } pa_result_t;

/* Classify the credential into p; PA_BAD: *why says why (401 always). */
static pa_result_t pol_authenticate(pl_req_t *c, pol_req_t *p, const char **why)
{
    pl_slice_t cred = pol_credential(c);
    if (!cred.n) return PA_NONE;
    if (cred.n > 8192) {
        *why = "credential too long";
        return PA_BAD;
    }
    const char *mk = c->cfg->server.master_key;
    if (mk && secure_equal(cred.p, cred.n, mk, strlen(mk))) {
        p->kind = POL_MASTER;
        return PA_OK;
    }
    const cfg_auth_t *au = &c->cfg->auth;
    if (au->jwt_on && pol_jwt_shape(cred.p, cred.n)) {
        const char *team, *user;
        if (pol_jwt_verify(&au->jwt, cred.p, cred.n, c->arena, &team, &user, why) != 0)
            return PA_BAD;
        p->kind = POL_JWT;
        c->team = team;
        c->user = user;
        return PA_OK;
    }
    bool unusable = false;
    pol_key_t *k = pol_keys_find_secret(cred.p, cred.n, &unusable);
    if (unusable) {
        *why = "this API key was revoked or has expired";
        return PA_BAD;
    }
    if (!k) return PA_UNKNOWN;
    p->kind = POL_KEY;
    p->key = k;
    c->key_id = k->id;
    c->team = k->team;
    c->user = k->user;
    return PA_OK;
}

/* Optional request signing: x-skuld-timestamp (unix seconds) and
 * x-skuld-signature = hex HMAC-SHA256(auth.hmac_secret,
 * "TIMESTAMP\nMETHOD\nPATH\nBODY"). */
static bool pol_hmac_ok(pl_req_t *c, const char **why)
{
    const char *secret = c->cfg->auth.hmac_secret;
    pl_slice_t ts = pl_req_header(c, "x-skuld-timestamp");
    pl_slice_t sig = pl_req_header(c, "x-skuld-signature");
    if (!ts.n || !sig.n || ts.n > 20 || sig.n != 64) {
        *why = "request signature required (x-skuld-timestamp, x-skuld-signature)";
        return false;
    }
    char tsb[24];
    memcpy(tsb, ts.p, ts.n);
    tsb[ts.n] = '\0';
    char *end;
    long long t = strtoll(tsb, &end, 10);
    long long now = (long long)time(NULL);
    long long win = (long long)(c->cfg->auth.hmac_window_ms / 1000);
    if (*end || t < now - win || t > now + win) {
        *why = "request timestamp outside the accepted window";
        return false;
    }
    unsigned char mac[32];
    unsigned int ml = 32;
    buf_t m;
    buf_init(&m, 0);
    buf_printf(&m, "%s\n%.*s\n%.*s\n", tsb, (int)c->method_len, c->method, (int)c->path_len,
               c->path);
    buf_append(&m, c->raw ? c->raw : "", c->raw_len);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)buf_data(&m), m.len, mac,
         &ml);
    buf_free(&m);
    char hex[65];
    secure_hex(mac, 32, hex);
    char given[65];
    for (size_t i = 0; i < 64; i++) given[i] = (char)(sig.p[i] | 0x20); /* lower-case hex */
    given[64] = '\0';
    if (!secure_equal(given, 64, hex, 64)) {
        *why = "request signature invalid";
        return false;
    }
    return true;
}

static pl_rc_t pol_401(pl_req_t *c, const char *msg)
{
    atomic_fetch_add(&pol__auth_fail[0], 1);
    pl_header(c, "WWW-Authenticate", "Bearer");
    return pl_fail(c, 401, NULL, "invalid_api_key", NULL, "%s", msg);
}

static bool pol_path_is(const pl_req_t *c, const char *path)
{
    size_t n = strlen(path);
    return c->path_len == n && memcmp(c->path, path, n) == 0;
}

static pl_rc_t pol_auth_run(pl_req_t *c)
{
    pol_req_t *p = pol__req(c);
    if (!p) return PL_NEXT;
    const char *why = NULL;
    pa_result_t rc = pol_authenticate(c, p, &why);
    const cfg_auth_t *au = &c->cfg->auth;
    if (rc == PA_BAD) return pol_401(c, why);
    if (au->required && rc != PA_OK)
        return pol_401(c, rc == PA_NONE ? "an API key is required (Authorization: Bearer KEY or "
                                          "x-api-key)"
                                        : "invalid API key");
    if (au->hmac_secret && p->kind != POL_MASTER && !pol_hmac_ok(c, &why)) return pol_401(c, why);
    if (pol_path_is(c, "/v1/key/usage")) {
        pl_set_model(c, NULL);
        if (p->kind != POL_KEY)
            return pl_fail(c, 401, NULL, "invalid_api_key", NULL,
                           "GET /v1/key/usage needs a virtual API key");
        return policy_usage(c, p->key);
    }
    return PL_NEXT;
}

const pl_stage_t policy_auth_stage = {"auth", pol_auth_run};

bool policy_admin_nonmaster(pl_req_t *c, pl_rc_t *out)
{
    pol_req_t *p = pol__req(c);
    if (!p) return false;
    const char *why = NULL;
    if (pol_authenticate(c, p, &why) != PA_OK || p->kind == POL_MASTER) return false;
    /* A valid user credential: authenticated, but not allowed here — except
     * a key reading its own usage; another key's id answers 404 as if it
     * did not exist. */
    static const char pre[] = "/admin/keys/";
    static const char suf[] = "/usage";
    size_t pl = sizeof pre - 1, sl = sizeof suf - 1;
    bool is_get = c->method_len == 3 && memcmp(c->method, "GET", 3) == 0;
    if (is_get && c->path_len > pl + sl && memcmp(c->path, pre, pl) == 0 &&
        memcmp(c->path + c->path_len - sl, suf, sl) == 0) {
        size_t idl = c->path_len - pl - sl;
        if (p->kind == POL_KEY && idl == strlen(p->key->id) &&
            memcmp(c->path + pl, p->key->id, idl) == 0)
            *out = policy_usage(c, p->key);
        else
            *out = pl_fail(c, 404, NULL, "key_not_found", NULL, "no such key");
        return true;
    }
    atomic_fetch_add(&pol__auth_fail[1], 1);
    *out = pl_fail(c, 403, NULL, "admin_forbidden", NULL,
                   "this credential may not use the admin API (the master key is required)");
    return true;
}
