/*
 * mock-upstream vertex — Google's OAuth2 token endpoint and the Vertex AI
 * paths, for the vertex provider's tests.
 *
 *   POST /oauth2/token   the JWT-bearer grant: form fields grant_type
 *       (urn:ietf:params:oauth:grant-type:jwt-bearer) and assertion, a JWT
 *       whose RS256 signature must verify with --vertex-pubkey (a PEM public
 *       key) and whose claims must hold iss, scope cloud-platform, aud ending
 *       in /oauth2/token, exp in the future and iat not in it. Answers
 *       {"access_token","expires_in","token_type":"Bearer"}, expires_in =
 *       --vertex-ttl (default 3600); else 400/401 {"error","error_description"}
 *       as Google's. The token is "mvt.<n>.<expiry, ms since the epoch>".
 *   POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:
 *       generateContent | streamGenerateContent  -> the Gemini shape
 *   POST .../publishers/anthropic/models/{m}:rawPredict | streamRawPredict
 *       -> the Anthropic shape; the body must have anthropic_version
 *       "vertex-2023-10-16" and no model (else 400)
 *   Both need "Authorization: Bearer" a token this mock issued and that has
 *   not expired (else 401 UNAUTHENTICATED, as Google's).
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "vertex.h"

static EVP_PKEY *mvx_pub;
static long mvx_ttl = 3600;
static unsigned long mvx_issued;

int mvx_init(const char *pubkey_path, long ttl)
{
    if (ttl > 0) mvx_ttl = ttl;
    if (!pubkey_path) return 0;
    FILE *f = fopen(pubkey_path, "r");
    if (!f) return -1;
    mvx_pub = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    return mvx_pub ? 0 : -1;
}

static long long mvx_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void mvx_send(struct evhttp_request *req, int status, json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, s, strlen(s));
    free(s);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, status, status == 200 ? "OK" : "Error", b);
    evbuffer_free(b);
}

static void mvx_oauth_error(struct evhttp_request *req, int status, const char *err,
                            const char *desc)
{
    mvx_send(req, status, json_pack("{s:s, s:s}", "error", err, "error_description", desc));
}

/* base64url -> bytes (malloc'd), or NULL. */
static unsigned char *mvx_b64url(const char *in, size_t n, size_t *out_len)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char *out = malloc(n + 1);
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; out && i < n; i++) {
        const char *p = in[i] ? strchr(al, in[i]) : NULL;
        if (!p) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)(p - al);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    if (out) out[o] = 0;
    *out_len = o;
    return out;
}

/* The value of form field name in a urlencoded body (no decoding needed for
 * the values this endpoint takes), malloc'd, or NULL. */
static char *mvx_form(const char *body, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = body; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > nl && !strncmp(p, name, nl) && p[nl] == '=') {
            char *v = malloc(len - nl);
            memcpy(v, p + nl + 1, len - nl - 1);
            v[len - nl - 1] = 0;
            return v;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

/* Why the assertion is refused, or NULL when it is good. */
static const char *mvx_check(const char *jwt)
{
    const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d2) return "the assertion is not a JWT";
    size_t hl, cl, sl;
    unsigned char *hdr = mvx_b64url(jwt, (size_t)(d1 - jwt), &hl);
    unsigned char *cl_ = mvx_b64url(d1 + 1, (size_t)(d2 - d1 - 1), &cl);
    unsigned char *sig = mvx_b64url(d2 + 1, strlen(d2 + 1), &sl);
    json_t *h = hdr ? json_loadb((char *)hdr, hl, 0, NULL) : NULL;
    json_t *c = cl_ ? json_loadb((char *)cl_, cl, 0, NULL) : NULL;
    const char *why = NULL;
    const char *alg = json_string_value(json_object_get(h, "alg"));
    const char *aud = json_string_value(json_object_get(c, "aud"));
    const char *scope = json_string_value(json_object_get(c, "scope"));
    long long now = mvx_now_ms() / 1000;
    json_int_t exp = json_integer_value(json_object_get(c, "exp"));
    json_int_t iat = json_integer_value(json_object_get(c, "iat"));
    if (!h || !c || !sig) {
        why = "the assertion is not a JWT";
    } else if (!alg || strcmp(alg, "RS256")) {
        why = "the assertion is not signed RS256";
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        int ok =
            mvx_pub && ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, mvx_pub) == 1 &&
            EVP_DigestVerify(ctx, sig, sl, (const unsigned char *)jwt, (size_t)(d2 - jwt)) == 1;
        EVP_MD_CTX_free(ctx);
        if (!ok)
            why = "Invalid JWT Signature.";
        else if (!json_is_string(json_object_get(c, "iss")))
            why = "the assertion has no iss";
        else if (!scope || strcmp(scope, "https://www.googleapis.com/auth/cloud-platform"))
            why = "the assertion's scope is not cloud-platform";
        else if (!aud || strlen(aud) < 13 || strcmp(aud + strlen(aud) - 13, "/oauth2/token"))
            why = "the assertion's aud is not this token endpoint";
        else if (exp <= now)
            why = "the assertion has expired";
        else if (iat > now + 60 || exp - iat > 3600)
            why = "the assertion's iat/exp are not valid";
    }
    json_decref(h);
    json_decref(c);
    free(hdr);
    free(cl_);
    free(sig);
    return why;
}

void mvx_token(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    char *body = malloc(len + 1);
    evbuffer_copyout(in, body, len);
    body[len] = 0;
    char *grant = mvx_form(body, "grant_type"), *jwt = mvx_form(body, "assertion");
    free(body);
    const char *why;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        mvx_oauth_error(req, 405, "invalid_request", "use POST");
    } else if (!grant || (strcmp(grant, "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer") &&
                          strcmp(grant, "urn:ietf:params:oauth:grant-type:jwt-bearer"))) {
        mvx_oauth_error(req, 400, "unsupported_grant_type", "Invalid grant_type.");
    } else if (!jwt) {
        mvx_oauth_error(req, 400, "invalid_request", "Missing required parameter: assertion");
    } else if ((why = mvx_check(jwt)) != NULL) {
        mvx_oauth_error(req, 400, "invalid_grant", why);
    } else {
        char tok[64];
        snprintf(tok, sizeof tok, "mvt.%lu.%lld", ++mvx_issued, mvx_now_ms() + mvx_ttl * 1000);
        mvx_send(req, 200,
                 json_pack("{s:s, s:I, s:s}", "access_token", tok, "expires_in",
                           (json_int_t)mvx_ttl, "token_type", "Bearer"));
    }
    free(grant);
    free(jwt);
}

static bool mvx_fail(struct evhttp_request *req, int status, const char *st, const char *msg)
{
    mvx_send(
        req, status,
        json_pack("{s:{s:i, s:s, s:s}}", "error", "code", status, "message", msg, "status", st));
    return false;
}

bool mvx_route(struct evhttp_request *req, const char *path, const json_t *body, bool *anthropic,
               bool *stream)
{
    const char *pub = strstr(path, "/publishers/");
    const char *colon = pub ? strrchr(pub, ':') : NULL;
    if (!pub || !colon || !strstr(pub, "/models/") || !strstr(path, "/locations/"))
        return mvx_fail(req, 404, "NOT_FOUND", "unknown Vertex AI path");
    const char *method = colon + 1;
    *anthropic = !strncmp(pub, "/publishers/anthropic/", 22);
    bool google = !strncmp(pub, "/publishers/google/", 19);
    if (*anthropic && (!strcmp(method, "rawPredict") || !strcmp(method, "streamRawPredict")))
        *stream = method[0] == 's';
    else if (google &&
             (!strcmp(method, "generateContent") || !strcmp(method, "streamGenerateContent")))
        *stream = method[0] == 's';
    else
        return mvx_fail(req, 404, "NOT_FOUND", "unknown publisher or method");
    const char *authz = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    unsigned long n = 0;
    long long exp = 0;
    if (!authz || sscanf(authz, "Bearer mvt.%lu.%lld", &n, &exp) != 2 || n == 0 || n > mvx_issued ||
        exp <= mvx_now_ms())
        return mvx_fail(req, 401, "UNAUTHENTICATED",
                        "Request had invalid authentication credentials.");
    if (*anthropic) {
        const char *v = json_string_value(json_object_get(body, "anthropic_version"));
        if (!v || strcmp(v, "vertex-2023-10-16"))
            return mvx_fail(req, 400, "INVALID_ARGUMENT",
                            "anthropic_version: must be vertex-2023-10-16");
        if (json_object_get(body, "model"))
            return mvx_fail(req, 400, "INVALID_ARGUMENT", "model: Extra inputs are not permitted");
    }
    return true;
}
