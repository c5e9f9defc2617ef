/* policy: limit windows, budget periods and reserve-then-settle arithmetic,
 * key hashing and the key table, JWT verification (issue 8). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "core/arena.h"
#include "policy/counters.h"
#include "policy/jwt.h"
#include "policy/keys.h"
#include "policy/secrets.h"

static void test_window(void **state)
{
    (void)state;
    pc_window_t w;
    memset(&w, 0, sizeof w);
    int64_t oldest;
    assert_int_equal(pc_window_sum(&w, 1000, &oldest), 0);
    assert_int_equal(oldest, 0);
    pc_window_add(&w, 1000, 3);
    pc_window_add(&w, 1030, 2);
    pc_window_add(&w, 1059, 1);
    assert_int_equal(pc_window_sum(&w, 1059, &oldest), 6);
    assert_int_equal(oldest, 1000);
    /* second 1000 leaves the window at 1060 */
    assert_int_equal(pc_window_sum(&w, 1060, &oldest), 3);
    assert_int_equal(oldest, 1030);
    /* a bucket reused 60 s later starts from zero */
    pc_window_add(&w, 1060, 4);
    assert_int_equal(pc_window_sum(&w, 1060, NULL), 7);
    /* settle: adjust a live bucket, never below zero; a dead one is ignored */
    pc_window_adjust(&w, 1061, 1060, -10);
    assert_int_equal(pc_window_sum(&w, 1061, NULL), 3);
    pc_window_adjust(&w, 1100, 1030, +5);
    assert_int_equal(pc_window_sum(&w, 1100, NULL), 0 + 1 + 0); /* 1059 still live, 1030 gone */
}

/* The window's memo against a full scan of its buckets, over random adds, settles
 * (up and down, live and dead buckets) and reads, the clock mostly forward, sometimes
 * back, sometimes jumping past the window. */
static int64_t ref_window_sum(const pc_window_t *w, int64_t now, int64_t *oldest)
{
    int64_t sum = 0, old = 0;
    for (int i = 0; i < PC_WINDOW_S; i++) {
        int64_t s = w->sec[i];
        if (s > now - PC_WINDOW_S && s <= now && w->cnt[i] > 0) {
            sum += w->cnt[i];
            if (!old || s < old) old = s;
        }
    }
    *oldest = old;
    return sum;
}

static void test_window_memo(void **state)
{
    (void)state;
    srand(27);
    for (int round = 0; round < 200; round++) {
        pc_window_t w;
        memset(&w, 0, sizeof w);
        int64_t now = 1000000 + rand() % 1000, slots[64];
        int ns = 0;
        for (int op = 0; op < 2000; op++) {
            int r = rand() % 100;
            if (r < 10)
                now += rand() % 3;
            else if (r < 11)
                now -= rand() % 3;
            else if (r < 12)
                now += 55 + rand() % 10;
            if (r < 40) {
                pc_window_add(&w, now, rand() % 5);
                if (ns < 64) slots[ns++] = now;
            } else if (r < 60 && ns) {
                pc_window_adjust(&w, now, slots[rand() % ns], rand() % 9 - 6);
            } else {
                int64_t o1, o2;
                int64_t got = pc_window_sum(&w, now, &o1), want = ref_window_sum(&w, now, &o2);
                assert_int_equal(got, want);
                assert_int_equal(o1, o2);
            }
        }
    }
}

static void test_periods(void **state)
{
    (void)state;
    int64_t s, e;
    /* 2026-11-23 02:45:00 UTC is a Monday */
    time_t t = 1795401900;
    pc_period_bounds(BUDGET_DAILY, t, &s, &e);
    assert_int_equal(s, 1795392000); /* 2026-11-23 00:00 */
    assert_int_equal(e, 1795392000 + 86400);
    pc_period_bounds(BUDGET_WEEKLY, t, &s, &e);
    assert_int_equal(s, 1795392000); /* Monday */
    assert_int_equal(e, 1795392000 + 7 * 86400);
    pc_period_bounds(BUDGET_WEEKLY, t + 6 * 86400, &s, &e); /* Sunday: same week */
    assert_int_equal(s, 1795392000);
    pc_period_bounds(BUDGET_MONTHLY, t, &s, &e);
    assert_int_equal(s, 1793491200);                          /* 2026-11-01 */
    assert_int_equal(e, 1796083200);                          /* 2026-12-01 */
    pc_period_bounds(BUDGET_MONTHLY, 1798761600 + 5, &s, &e); /* 2027-01-01: year wraps */
    assert_int_equal(s, 1798761600);
    pc_period_bounds(BUDGET_MONTHLY, 1798761600 - 1, &s, &e); /* 2026-12-31 23:59:59 */
    assert_int_equal(s, 1796083200);
    assert_int_equal(e, 1798761600);
    assert_int_equal(pc_nusd(1.0), 1000000000);
    assert_int_equal(pc_nusd(0.000000001), 1);
    assert_int_equal(pc_nusd(-3), 0);
}

static pc_check_t budget(const char *name, int64_t limit, int64_t amount)
{
    pc_check_t k;
    memset(&k, 0, sizeof k);
    snprintf(k.name, sizeof k.name, "%s", name);
    k.kind = 'b';
    k.unit = PC_USD;
    k.limit = limit;
    k.amount = amount;
    k.period_end = 2000000000;
    return k;
}

static void test_local_reserve_settle(void **state)
{
    (void)state;
    int64_t now = 1795401900000;
    pc_check_t a = budget("t:b1", 100, 40);
    size_t failed = 99;
    assert_int_equal(pc_local_admit(&a, 1, now, &failed), 1);
    pc_check_t b = a;
    assert_int_equal(pc_local_admit(&b, 1, now, &failed), 1);
    pc_check_t c = a;
    /* 40 + 40 reserved: a third maximum of 40 does not fit in 100 */
    assert_int_equal(pc_local_admit(&c, 1, now, &failed), 0);
    assert_int_equal(failed, 0);
    assert_int_equal(c.used, 80);
    /* settle a to 10 actual and release b (error) */
    a.actual = 10;
    b.actual = 0;
    int64_t before, after;
    pc_local_settle(&a, 1, now, &before, &after);
    assert_int_equal(before, 0);
    assert_int_equal(after, 10);
    pc_local_settle(&b, 1, now, NULL, NULL);
    int64_t spent, reserved;
    pc_local_budget("t:b1", &spent, &reserved);
    assert_int_equal(spent, 10);
    assert_int_equal(reserved, 0);
    /* all-or-nothing: a window that fits and a budget that does not -> no change */
    pc_check_t two[2];
    memset(two, 0, sizeof two);
    snprintf(two[0].name, sizeof two[0].name, "t:w1");
    two[0].kind = 'r', two[0].unit = PC_REQ, two[0].limit = 5, two[0].amount = 1;
    two[1] = budget("t:b1", 100, 95);
    assert_int_equal(pc_local_admit(two, 2, now, &failed), 0);
    assert_int_equal(failed, 1);
    two[1].amount = 1;
    assert_int_equal(pc_local_admit(two, 2, now, &failed), 1);
    assert_int_equal(two[0].used, 0); /* the rejected attempt did not count */
}

typedef struct race {
    int admitted;
    int64_t spent_actual;
} race_t;

static void *race_main(void *arg)
{
    race_t *r = arg;
    for (int i = 0; i < 2000; i++) {
        pc_check_t k = budget("t:race", 1000000, 700); /* max 700, actual 500 */
        size_t failed;
        if (pc_local_admit(&k, 1, 1795401900000, &failed) == 1) {
            r->admitted++;
            k.actual = 500;
            r->spent_actual += 500;
            pc_local_settle(&k, 1, 1795401900000, NULL, NULL);
        }
    }
    return NULL;
}

/* Concurrent reserve-then-settle never overspends. */
static void test_local_race(void **state)
{
    (void)state;
    pthread_t t[4];
    race_t r[4];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, race_main, &r[i]);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    int64_t spent, reserved, sum = 0;
    for (int i = 0; i < 4; i++) sum += r[i].spent_actual;
    pc_local_budget("t:race", &spent, &reserved);
    assert_int_equal(reserved, 0);
    assert_int_equal(spent, sum);
    assert_true(spent <= 1000000);
    assert_true(spent > 1000000 - 700); /* used up to the last maximum that fit */
}

static void test_key_hashing(void **state)
{
    (void)state;
    unsigned char h[32];
    char hex[65];
    secure_sha256("abc", 3, h);
    secure_hex(h, 32, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    unsigned char back[32];
    assert_int_equal(secure_unhex(hex, back, 32), 0);
    assert_memory_equal(back, h, 32);
    assert_int_equal(secure_unhex("zz", back, 1), -1);
    char key[POL_KEY_LEN + 1], id[POL_ID_LEN + 1], key2[POL_KEY_LEN + 1];
    assert_int_equal(pol_key_generate(key, id), 0);
    assert_int_equal(strlen(key), POL_KEY_LEN);
    assert_int_equal(strncmp(key, "sk-", 3), 0);
    assert_int_equal(pol_key_generate(key2, id), 0);
    assert_string_not_equal(key, key2);

    /* options -> spec -> key round trip; the spec never holds the secret */
    char err[128];
    pol_key_t *k = pol_key_from_options(
        "{\"rpm\":5,\"tpm\":100,\"budget_usd\":2.5,\"period\":\"daily\",\"team\":\"t\","
        "\"user\":\"u\",\"models\":[\"a\",\"b\"],\"name\":\"n\"}",
        err, sizeof err);
    assert_non_null(k);
    snprintf(k->id, sizeof k->id, "%s", id);
    secure_sha256(key, strlen(key), k->hash);
    snprintf(k->prefix, sizeof k->prefix, "%.11s", key);
    char *spec = pol_key_spec_json(k);
    assert_null(strstr(spec, key));
    secure_hex(k->hash, 32, hex);
    pol_key_t *k2 = pol_key_from_spec(id, hex, spec);
    assert_non_null(k2);
    assert_int_equal(k2->rpm, 5);
    assert_int_equal(k2->period, BUDGET_DAILY);
    assert_int_equal(k2->models.n, 2);
    assert_string_equal(k2->team, "t");
    free(spec);
    pol_key_free(k2);
    assert_null(pol_key_from_options("{\"rpm\":-1}", err, sizeof err));
    assert_null(pol_key_from_options("{\"bogus\":1}", err, sizeof err));
    assert_null(pol_key_from_options("{\"period\":\"yearly\"}", err, sizeof err));

    /* the table: found by the secret, not by anything else; revoked -> unusable */
    pol_key_t *e = pol_keys_upsert(k);
    bool unusable;
    assert_ptr_equal(pol_keys_find_secret(key, strlen(key), &unusable), e);
    assert_null(pol_keys_find_secret(key2, strlen(key2), &unusable));
    assert_false(unusable);
    assert_null(pol_keys_find_secret(hex, strlen(hex), &unusable)); /* the hash is no key */
    pol_keys_set_revoked(e);
    assert_null(pol_keys_find_secret(key, strlen(key), &unusable));
    assert_true(unusable);
    assert_ptr_equal(pol_keys_find_id(id), e);
}

static char *make_jwt(jwt_alg_t alg, const char *secret, long exp, const char *aud)
{
    jwt_t *j = NULL;
    jwt_new(&j);
    jwt_add_grant(j, "sub", "alice");
    jwt_add_grant(j, "team", "research");
    jwt_add_grant(j, "iss", "me");
    if (aud) jwt_add_grant(j, "aud", aud);
    jwt_add_grant_int(j, "exp", exp);
    jwt_set_alg(j, alg, (const unsigned char *)secret, secret ? (int)strlen(secret) : 0);
    char *t = jwt_encode_str(j);
    jwt_free(j);
    return t;
}

static void test_jwt(void **state)
{
    (void)state;
    cfg_jwt_t cfg;
    memset(&cfg, 0, sizeof cfg);
    char *algs[] = {"HS256"};
    cfg.algorithms.v = algs;
    cfg.algorithms.n = 1;
    cfg.issuer = "me";
    cfg.audience = "skuld";
    cfg.key = "secret-0123456789-secret-0123456789";
    cfg.key_len = strlen(cfg.key);
    cfg.team_claim = "team";
    cfg.user_claim = "sub";
    arena_t *a = arena_create(1024);
    const char *team, *user, *why = NULL;
    long later = (long)time(NULL) + 600;
    char *ok = make_jwt(JWT_ALG_HS256, cfg.key, later, "skuld");
    assert_true(pol_jwt_shape(ok, strlen(ok)));
    assert_int_equal(pol_jwt_verify(&cfg, ok, strlen(ok), a, &team, &user, &why), 0);
    assert_string_equal(team, "research");
    assert_string_equal(user, "alice");
    char *wrong_key = make_jwt(JWT_ALG_HS256, "another-secret-another-secret-xx", later, "skuld");
    assert_int_equal(pol_jwt_verify(&cfg, wrong_key, strlen(wrong_key), a, &team, &user, &why), -1);
    char *expired = make_jwt(JWT_ALG_HS256, cfg.key, (long)time(NULL) - 10, "skuld");
    assert_int_equal(pol_jwt_verify(&cfg, expired, strlen(expired), a, &team, &user, &why), -1);
    assert_string_equal(why, "JWT expired");
    char *aud = make_jwt(JWT_ALG_HS256, cfg.key, later, "someone-else");
    assert_int_equal(pol_jwt_verify(&cfg, aud, strlen(aud), a, &team, &user, &why), -1);
    char *none = make_jwt(JWT_ALG_NONE, NULL, later, "skuld");
    assert_int_equal(pol_jwt_verify(&cfg, none, strlen(none), a, &team, &user, &why), -1);
    assert_string_equal(why, "JWT algorithm not allowed");
    char *hs512 = make_jwt(JWT_ALG_HS512, cfg.key, later, "skuld"); /* not in the allowlist */
    assert_int_equal(pol_jwt_verify(&cfg, hs512, strlen(hs512), a, &team, &user, &why), -1);
    assert_false(pol_jwt_shape("sk-abc", 6));
    free(ok);
    free(wrong_key);
    free(expired);
    free(aud);
    free(none);
    free(hs512);
    arena_destroy(a);
}

static void b64url(const unsigned char *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        if (i + 1 < n) out[o++] = t[v >> 6 & 63];
        if (i + 2 < n) out[o++] = t[v & 63];
    }
    out[o] = '\0';
}

/* A BIGNUM parameter of pk, base64url; size > 0 pads it to that many bytes
 * (EC coordinates), 0 keeps its natural length (RSA n, e). */
static char *bn_b64(EVP_PKEY *pk, const char *name, int size)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(pk, name, &bn), 1);
    unsigned char buf[600];
    int n = size > 0 ? BN_bn2binpad(bn, buf, size) : BN_bn2bin(bn, buf);
    assert_true(n > 0);
    BN_free(bn);
    char *out = malloc(1000);
    b64url(buf, (size_t)n, out);
    return out;
}

/* auth.jwt with a JWKS keys_file's text and an allowlist */
static cfg_jwt_t jwks_cfg(char **algs, size_t n, char *jwks)
{
    cfg_jwt_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.algorithms.v = algs;
    cfg.algorithms.n = n;
    cfg.key = jwks;
    cfg.key_len = strlen(jwks);
    return cfg;
}

static char *sign(jwt_alg_t alg, const unsigned char *key, int klen, const char *kid)
{
    jwt_t *j = NULL;
    jwt_new(&j);
    jwt_add_grant(j, "sub", "bob");
    jwt_add_grant_int(j, "exp", (long)time(NULL) + 600);
    if (kid) jwt_add_header(j, "kid", kid);
    jwt_set_alg(j, alg, key, klen);
    char *t = jwt_encode_str(j);
    jwt_free(j);
    return t;
}

/* keys_file as a JWKS: an RSA key and an HMAC key, chosen by kid */
static void test_jwks(void **state)
{
    (void)state;
    EVP_PKEY *pk = EVP_RSA_gen(2048);
    assert_non_null(pk);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL);
    char *priv;
    long pl = BIO_get_mem_data(b, &priv);
    char *n = bn_b64(pk, OSSL_PKEY_PARAM_RSA_N, 0), *e = bn_b64(pk, OSSL_PKEY_PARAM_RSA_E, 0);
    const char *hs = "hs-secret-for-the-jwks-0123456789";
    char hs64[100];
    b64url((const unsigned char *)hs, strlen(hs), hs64);
    char jwks[4096];
    snprintf(jwks, sizeof jwks,
             "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r1\",\"n\":\"%s\",\"e\":\"%s\"},"
             "{\"kty\":\"oct\",\"kid\":\"h1\",\"k\":\"%s\"}]}",
             n, e, hs64);
    char *algs[] = {"RS256", "HS256"};
    cfg_jwt_t cfg = jwks_cfg(algs, 2, jwks);
    arena_t *a = arena_create(1024);
    const char *team, *user, *why = NULL;
    char *rs = sign(JWT_ALG_RS256, (const unsigned char *)priv, (int)pl, "r1");
    assert_int_equal(pol_jwt_verify(&cfg, rs, strlen(rs), a, &team, &user, &why), 0);
    assert_string_equal(user, "bob");
    char *rs_bad_kid = sign(JWT_ALG_RS256, (const unsigned char *)priv, (int)pl, "nope");
    assert_int_equal(pol_jwt_verify(&cfg, rs_bad_kid, strlen(rs_bad_kid), a, &team, &user, &why),
                     -1);
    char *h = sign(JWT_ALG_HS256, (const unsigned char *)hs, (int)strlen(hs), "h1");
    assert_int_equal(pol_jwt_verify(&cfg, h, strlen(h), a, &team, &user, &why), 0);
    /* the RSA public key used as an HMAC secret (algorithm confusion) fails */
    BIO *pb = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(pb, pk);
    char *pub;
    long publ = BIO_get_mem_data(pb, &pub);
    char *conf = sign(JWT_ALG_HS256, (const unsigned char *)pub, (int)publ, "r1");
    assert_int_equal(pol_jwt_verify(&cfg, conf, strlen(conf), a, &team, &user, &why), -1);
    assert_string_equal(why, "JWT algorithm does not match the key");
    BIO_free(pb);
    free(rs);
    free(rs_bad_kid);
    free(h);
    free(conf);
    free(n);
    free(e);
    BIO_free(b);
    EVP_PKEY_free(pk);
    arena_destroy(a);
}

/* JWKS EC keys (P-256 and P-384), chosen by kid; a P-256 key does not verify
 * a token signed by another P-256 key; an EC key is never an HMAC secret */
static void test_jwks_ec(void **state)
{
    (void)state;
    static const struct {
        const char *crv;
        int size;
        jwt_alg_t alg;
    } curves[] = {{"P-256", 32, JWT_ALG_ES256}, {"P-384", 48, JWT_ALG_ES384}};
    EVP_PKEY *pk[2], *other = EVP_EC_gen("P-256");
    char *priv[2], *x[2], *y[2];
    long pl[2];
    BIO *bio[2];
    for (int i = 0; i < 2; i++) {
        pk[i] = EVP_EC_gen(curves[i].crv);
        assert_non_null(pk[i]);
        bio[i] = BIO_new(BIO_s_mem());
        PEM_write_bio_PrivateKey(bio[i], pk[i], NULL, NULL, 0, NULL, NULL);
        pl[i] = BIO_get_mem_data(bio[i], &priv[i]);
        x[i] = bn_b64(pk[i], OSSL_PKEY_PARAM_EC_PUB_X, curves[i].size);
        y[i] = bn_b64(pk[i], OSSL_PKEY_PARAM_EC_PUB_Y, curves[i].size);
    }
    char jwks[2048];
    snprintf(jwks, sizeof jwks,
             "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"e256\",\"crv\":\"P-256\",\"x\":\"%s\","
             "\"y\":\"%s\"},{\"kty\":\"EC\",\"kid\":\"e384\",\"crv\":\"P-384\",\"x\":\"%s\","
             "\"y\":\"%s\"},{\"kty\":\"EC\",\"kid\":\"bad\",\"crv\":\"P-999\",\"x\":\"%s\","
             "\"y\":\"%s\"}]}",
             x[0], y[0], x[1], y[1], x[0], y[0]);
    char *algs[] = {"ES256", "ES384", "HS256"};
    cfg_jwt_t cfg = jwks_cfg(algs, 3, jwks);
    arena_t *a = arena_create(1024);
    const char *team, *user, *why = NULL;
    char *t256 = sign(curves[0].alg, (const unsigned char *)priv[0], (int)pl[0], "e256");
    char *t384 = sign(curves[1].alg, (const unsigned char *)priv[1], (int)pl[1], "e384");
    char *wrong = sign(curves[0].alg, (const unsigned char *)priv[0], (int)pl[0], "e384");
    char *bad = sign(curves[0].alg, (const unsigned char *)priv[0], (int)pl[0], "bad");
    assert_int_equal(pol_jwt_verify(&cfg, t256, strlen(t256), a, &team, &user, &why), 0);
    assert_string_equal(user, "bob");
    assert_int_equal(pol_jwt_verify(&cfg, t384, strlen(t384), a, &team, &user, &why), 0);
    assert_int_equal(pol_jwt_verify(&cfg, wrong, strlen(wrong), a, &team, &user, &why), -1);
    assert_int_equal(pol_jwt_verify(&cfg, bad, strlen(bad), a, &team, &user, &why), -1);
    assert_string_equal(why, "JWT key id unknown"); /* an unknown curve is skipped */
    BIO *ob = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(ob, other, NULL, NULL, 0, NULL, NULL);
    char *opriv;
    long opl = BIO_get_mem_data(ob, &opriv);
    char *forged = sign(JWT_ALG_ES256, (const unsigned char *)opriv, (int)opl, "e256");
    assert_int_equal(pol_jwt_verify(&cfg, forged, strlen(forged), a, &team, &user, &why), -1);
    assert_string_equal(why, "JWT signature invalid");
    char *conf = sign(JWT_ALG_HS256, (const unsigned char *)"e256-as-secret", 14, "e256");
    assert_int_equal(pol_jwt_verify(&cfg, conf, strlen(conf), a, &team, &user, &why), -1);
    assert_string_equal(why, "JWT algorithm does not match the key");
    free(t256);
    free(t384);
    free(wrong);
    free(bad);
    free(forged);
    free(conf);
    for (int i = 0; i < 2; i++) {
        free(x[i]);
        free(y[i]);
        BIO_free(bio[i]);
        EVP_PKEY_free(pk[i]);
    }
    BIO_free(ob);
    EVP_PKEY_free(other);
    arena_destroy(a);
}

static void test_seal(void **state)
{
    (void)state;
    char *a = psec_seal("passphrase", "openai", "sk-provider-secret");
    char *b = psec_seal("passphrase", "openai", "sk-provider-secret");
    assert_non_null(a);
    assert_null(strstr(a, "sk-provider-secret"));
    assert_string_not_equal(a, b); /* fresh nonce every time */
    char *p = psec_open("passphrase", "openai", a);
    assert_string_equal(p, "sk-provider-secret");
    free(p);
    assert_null(psec_open("wrong", "openai", a));     /* wrong key */
    assert_null(psec_open("passphrase", "other", a)); /* bound to its provider */
    a[40] = a[40] == '0' ? '1' : '0';                 /* tampered */
    assert_null(psec_open("passphrase", "openai", a));
    assert_null(psec_open("passphrase", "openai", "v1:zz"));
    free(a);
    free(b);
    /* overrides replace a remote provider's key in a snapshot being built */
    cfg_provider_t prov[2] = {{.name = "openai", .base_url = "http://x", .api_key = strdup("old")},
                              {.name = "local"}};
    config_t c = {.providers = prov, .n_providers = 2};
    psec_set("openai", "new-key");
    psec_set("local", "ignored");
    psec_apply(&c);
    assert_string_equal(prov[0].api_key, "new-key");
    assert_null(prov[1].api_key);
    free(prov[0].api_key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window),     cmocka_unit_test(test_window_memo),
        cmocka_unit_test(test_periods),    cmocka_unit_test(test_local_reserve_settle),
        cmocka_unit_test(test_local_race), cmocka_unit_test(test_key_hashing),
        cmocka_unit_test(test_jwt),        cmocka_unit_test(test_seal),
        cmocka_unit_test(test_jwks),       cmocka_unit_test(test_jwks_ec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
