/* cache/lru and cache/key: the memory tier (LRU order, TTL, byte cap,
 * eviction, purge, concurrent use), the entry blob, and key normalisation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "cache/key.h"
#include "cache/lru.h"

static cache_key_t K(uint64_t n)
{
    cache_key_t k = {n * 0x9e3779b97f4a7c15ull, n};
    return k;
}

/* An entry whose blob is n bytes of filler. */
static cache_entry_t *mk(uint64_t n, int64_t expires, size_t len)
{
    static unsigned char fill[65536];
    return cache_entry_new(K(n), expires, CACHE_TIER_MEMORY, fill, len);
}

static bool has(cache_lru_t *l, uint64_t n, int64_t now)
{
    cache_entry_t *e = cache_lru_get(l, K(n), now);
    cache_entry_unref(e);
    return e != NULL;
}

static void test_lru_get_put(void **state)
{
    (void)state;
    cache_lru_t *l = cache_lru_new(1 << 20, 4);
    assert_false(has(l, 1, 0));
    cache_lru_put(l, mk(1, 1000, 10), 0);
    cache_entry_t *e = cache_lru_get(l, K(1), 0);
    assert_non_null(e);
    assert_int_equal(e->len, 10);
    /* a reference keeps it valid after a purge */
    assert_int_equal(cache_lru_purge(l), 1);
    assert_int_equal(e->len, 10);
    cache_entry_unref(e);
    assert_false(has(l, 1, 0));
    /* replacing a key keeps one entry */
    cache_lru_put(l, mk(2, 1000, 10), 0);
    cache_lru_put(l, mk(2, 1000, 20), 0);
    cache_lru_stats_t st;
    cache_lru_stats(l, &st);
    assert_int_equal(st.entries, 1);
    e = cache_lru_get(l, K(2), 0);
    assert_int_equal(e->len, 20);
    cache_entry_unref(e);
    cache_lru_free(l);
}

static void test_lru_ttl(void **state)
{
    (void)state;
    cache_lru_t *l = cache_lru_new(1 << 20, 1);
    cache_lru_put(l, mk(1, 100, 10), 0);
    cache_lru_put(l, mk(2, 200, 10), 0);
    assert_true(has(l, 1, 99));
    assert_false(has(l, 1, 100)); /* expires_ms is exclusive */
    assert_true(has(l, 2, 150));
    cache_lru_stats_t st;
    cache_lru_stats(l, &st);
    assert_int_equal(st.expirations, 1);
    assert_int_equal(st.entries, 1);
    /* an insertion drops expired entries at the tail first */
    cache_lru_put(l, mk(3, 1000, 10), 500);
    cache_lru_stats(l, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.expirations, 2);
    assert_int_equal(st.evictions, 0);
    cache_lru_free(l);
}

static void test_lru_byte_cap_and_eviction_order(void **state)
{
    (void)state;
    /* one shard, room for exactly 4 entries of this size */
    cache_entry_t *probe = mk(0, 1, 1000);
    size_t cost = cache_entry_cost(probe);
    cache_entry_unref(probe);
    cache_lru_t *l = cache_lru_new(4 * cost, 1);
    for (uint64_t i = 1; i <= 4; i++) cache_lru_put(l, mk(i, 1000, 1000), 0);
    cache_lru_stats_t st;
    cache_lru_stats(l, &st);
    assert_int_equal(st.entries, 4);
    assert_int_equal(st.bytes, 4 * cost);
    assert_true(has(l, 1, 0)); /* 1 is now the most recent; 2 the least */
    cache_lru_put(l, mk(5, 1000, 1000), 0);
    assert_false(has(l, 2, 0));
    assert_true(has(l, 1, 0));
    assert_true(has(l, 3, 0));
    assert_true(has(l, 5, 0));
    cache_lru_stats(l, &st);
    assert_int_equal(st.evictions, 1);
    assert_true(st.bytes <= 4 * cost);
    /* an entry bigger than the cap is not stored and evicts nothing */
    cache_lru_put(l, mk(6, 1000, 5000), 0);
    assert_false(has(l, 6, 0));
    cache_lru_stats(l, &st);
    assert_int_equal(st.entries, 4);
    /* a big one evicts as many as needed */
    cache_lru_put(l, mk(7, 1000, 2500), 0);
    cache_lru_stats(l, &st);
    assert_true(st.bytes <= 4 * cost);
    assert_true(has(l, 7, 0));
    assert_int_equal(st.entries, 2);
    cache_lru_free(l);
}

typedef struct {
    cache_lru_t *l;
    int id;
} worker_arg_t;

static void *hammer(void *arg)
{
    worker_arg_t *w = arg;
    for (uint64_t i = 0; i < 20000; i++) {
        uint64_t k = (i * 7 + (uint64_t)w->id) % 500;
        if (i % 3 == 0)
            cache_lru_put(w->l, mk(k, 1000000, 100 + k), 0);
        else
            cache_entry_unref(cache_lru_get(w->l, K(k), 0));
    }
    return NULL;
}

static void test_lru_threads(void **state)
{
    (void)state;
    cache_lru_t *l = cache_lru_new(64 * 1024, 8);
    pthread_t t[4];
    worker_arg_t a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (worker_arg_t){l, i};
        pthread_create(&t[i], NULL, hammer, &a[i]);
    }
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    cache_lru_stats_t st;
    cache_lru_stats(l, &st);
    assert_true(st.bytes <= 64 * 1024);
    assert_true(st.evictions > 0);
    cache_lru_free(l);
}

static void test_blob_roundtrip(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    const char *hdrs = "x-skuld-model: m\r\n";
    cache_blob_head(&b, 200, true, "text/event-stream", 12, 7, 3, hdrs, strlen(hdrs));
    cache_blob_frame(&b, "data: a\n\n", 9);
    cache_blob_frame(&b, "data: [DONE]\n\n", 14);
    cache_view_t v;
    assert_int_equal(cache_blob_parse(buf_data(&b), b.len, &v), 0);
    assert_int_equal(v.status, 200);
    assert_true(v.stream);
    assert_string_equal(v.ctype, "text/event-stream");
    assert_int_equal(v.prompt_tokens, 12);
    assert_int_equal(v.completion_tokens, 7);
    assert_int_equal(v.cached_tokens, 3);
    assert_int_equal(v.hdrs_len, strlen(hdrs));
    size_t pos = 0, n;
    const char *d;
    assert_true(cache_view_next(&v, &pos, &d, &n));
    assert_int_equal(n, 9);
    assert_memory_equal(d, "data: a\n\n", 9);
    assert_true(cache_view_next(&v, &pos, &d, &n));
    assert_int_equal(n, 14);
    assert_false(cache_view_next(&v, &pos, &d, &n));
    /* unknown token counts survive (-1) */
    buf_t b2;
    buf_init(&b2, 0);
    cache_blob_head(&b2, 206, false, "application/json", -1, -1, -1, "", 0);
    assert_int_equal(cache_blob_parse(buf_data(&b2), b2.len, &v), 0);
    assert_int_equal(v.prompt_tokens, -1);
    assert_int_equal(v.status, 206);
    /* what the cache never stores, a tampered value may hold: refused */
    static const struct {
        int status;
        const char *ctype, *hdrs;
    } bad_blobs[] = {
        {503, "application/json", ""},                          /* not a success */
        {200, "text/plain\r\nSet-Cookie: x=1", ""},             /* header injection via the type */
        {200, "application/json", "X-A: 1\r\nSet-Cookie: x\r"}, /* a line without its LF */
        {200, "application/json", "X-A: 1\rSet-Cookie: x=1\r\n"}, /* a lone CR */
        {200, "application/json", "X A: 1\r\n"},                  /* not a token */
        {200, "application/json", "X-A 1\r\n"},                   /* no colon */
    };
    for (size_t i = 0; i < sizeof bad_blobs / sizeof *bad_blobs; i++) {
        buf_t b3;
        buf_init(&b3, 0);
        cache_blob_head(&b3, bad_blobs[i].status, false, bad_blobs[i].ctype, 1, 1, 0,
                        bad_blobs[i].hdrs, strlen(bad_blobs[i].hdrs));
        if (cache_blob_parse(buf_data(&b3), b3.len, &v) != -1)
            fail_msg("bad blob %zu accepted (status %d, type '%s', headers '%s')", i,
                     bad_blobs[i].status, bad_blobs[i].ctype, bad_blobs[i].hdrs);
        buf_free(&b3);
    }
    /* every truncation of a valid blob is refused, never read past */
    size_t head = b.len - (4 + 9) - (4 + 14);
    for (size_t cut = 0; cut < b.len; cut++) {
        cache_view_t w;
        /* only a cut exactly between frames is a valid (shorter) blob */
        bool between = cut == head || cut == head + 4 + 9;
        assert_int_equal(cache_blob_parse(buf_data(&b), cut, &w) == 0, between);
    }
    char bad[8] = "SKC2xxxx";
    assert_int_equal(cache_blob_parse(bad, sizeof bad, &v), -1);
    buf_free(&b);
    buf_free(&b2);
}

/* ---- keys ---- */

static cfg_provider_t prov = {.name = "p", .type = "openai", .base_url = "http://u/v1"};

static cache_key_t key_of(const char *json, int mode, const cfg_model_t *m)
{
    json_error_t e;
    json_t *body = json_loads(json, 0, &e);
    assert_non_null(body);
    cache_key_in_t in = {
        .endpoint = 0, .shape = 0, .mode = mode, .model = "m", .deps = &m, .n_deps = 1};
    cache_key_t k;
    assert_int_equal(cache_key_make(&in, body, &k), 0);
    json_decref(body);
    return k;
}

static bool key_eq(cache_key_t a, cache_key_t b)
{
    return a.hi == b.hi && a.lo == b.lo;
}

static cache_key_t key_of_set(const char *name, const cfg_model_t *const *deps, size_t n)
{
    json_t *body = json_loads("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 0, NULL);
    assert_non_null(body);
    cache_key_in_t in = {.model = name, .deps = deps, .n_deps = n};
    cache_key_t k;
    assert_int_equal(cache_key_make(&in, body, &k), 0);
    json_decref(body);
    return k;
}

/* A route's candidates: their order (the live ranking) does not change the
 * key, their set does, and so does the name asked for. */
static void test_key_candidate_set(void **state)
{
    (void)state;
    cfg_model_t a = {.name = "a", .provider = &prov, .upstream_model = "up-a"};
    cfg_model_t b = {.name = "b", .provider = &prov, .upstream_model = "up-b"};
    cfg_model_t c = {.name = "c", .provider = &prov, .upstream_model = "up-c"};
    const cfg_model_t *ab[] = {&a, &b}, *ba[] = {&b, &a}, *abc[] = {&a, &b, &c}, *aa[] = {&a, &a};
    assert_true(key_eq(key_of_set("auto", ab, 2), key_of_set("auto", ba, 2)));
    assert_false(key_eq(key_of_set("auto", ab, 2), key_of_set("auto", abc, 3)));
    assert_false(key_eq(key_of_set("auto", ab, 2), key_of_set("auto", aa, 2)));
    assert_false(key_eq(key_of_set("auto", ab, 2), key_of_set("other", ab, 2)));
}

static void test_key_normalisation(void **state)
{
    (void)state;
    cfg_model_t m = {.name = "m", .provider = &prov, .upstream_model = "up-1"};
    cache_key_t a = key_of("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                           "\"max_tokens\":5,\"tools\":[{\"type\":\"function\",\"function\":{"
                           "\"name\":\"f\",\"parameters\":{\"b\":1,\"a\":2}}}]}",
                           CACHE_MODE_WHOLE, &m);
    /* key order at every level does not matter */
    cache_key_t b = key_of("{\"tools\":[{\"function\":{\"parameters\":{\"a\":2,\"b\":1},"
                           "\"name\":\"f\"},\"type\":\"function\"}],\"max_tokens\":5,"
                           "\"messages\":[{\"content\":\"hi\",\"role\":\"user\"}],\"model\":\"m\"}",
                           CACHE_MODE_WHOLE, &m);
    assert_true(key_eq(a, b));
    /* stream, stream_options and user are not part of the body's identity */
    cache_key_t c = key_of("{\"stream\":false,\"user\":\"u1\",\"stream_options\":{},"
                           "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                           "\"max_tokens\":5,\"tools\":[{\"type\":\"function\",\"function\":{"
                           "\"name\":\"f\",\"parameters\":{\"b\":1,\"a\":2}}}]}",
                           CACHE_MODE_WHOLE, &m);
    assert_true(key_eq(a, c));
    /* ...but the answer mode is (stream and non-stream entries differ) */
    cache_key_t d = key_of("{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                           "\"max_tokens\":5,\"tools\":[{\"type\":\"function\",\"function\":{"
                           "\"name\":\"f\",\"parameters\":{\"b\":1,\"a\":2}}}]}",
                           CACHE_MODE_STREAM, &m);
    assert_false(key_eq(a, d));
    /* any parameter that changes the answer changes the key */
    const char *variants[] = {
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi!\"}],\"max_tokens\":5}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":6}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":5,\"seed\":1}",
        "{\"messages\":[{\"role\":\"system\",\"content\":\"hi\"}],\"max_tokens\":5}",
    };
    cache_key_t base = key_of("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                              "\"max_tokens\":5}",
                              CACHE_MODE_WHOLE, &m);
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++)
        assert_false(key_eq(base, key_of(variants[i], CACHE_MODE_WHOLE, &m)));
    /* the deployment's identity is part of the key: a config change invalidates */
    cfg_model_t m2 = m;
    m2.upstream_model = "up-2";
    assert_false(key_eq(base, key_of("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                                     "\"max_tokens\":5}",
                                     CACHE_MODE_WHOLE, &m2)));
    cfg_provider_t prov2 = prov;
    prov2.base_url = "http://other/v1";
    m2 = m;
    m2.provider = &prov2;
    assert_false(key_eq(base, key_of("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                                     "\"max_tokens\":5}",
                                     CACHE_MODE_WHOLE, &m2)));
    /* canonical text */
    buf_t o;
    buf_init(&o, 0);
    json_t *j =
        json_loads("{\"z\":1,\"model\":\"x\",\"a\":{\"d\":[3,{\"y\":1,\"b\":2}],\"c\":true},"
                   "\"stream\":true,\"user\":\"u\"}",
                   0, NULL);
    assert_int_equal(cache_key_canonical(j, &o), 0);
    assert_string_equal(buf_data(&o), "{\"a\":{\"c\":true,\"d\":[3,{\"b\":2,\"y\":1}]},\"z\":1}");
    /* the caller's body is not changed */
    assert_non_null(json_object_get(j, "stream"));
    json_decref(j);
    buf_free(&o);
    char hex[33];
    cache_key_t hk = {0x0123456789abcdefull, 0xfedcba9876543210ull};
    cache_key_hex(hk, hex);
    assert_string_equal(hex, "0123456789abcdeffedcba9876543210");
}

static void test_temperature_rule(void **state)
{
    (void)state;
    struct {
        const char *json;
        bool plain, sampled;
    } cases[] = {
        {"{}", true, true},
        {"{\"temperature\":0}", true, true},
        {"{\"temperature\":0.0}", true, true},
        {"{\"temperature\":null}", true, true},
        {"{\"temperature\":0.2}", false, true},
        {"{\"temperature\":1}", false, true},
        {"{\"temperature\":\"0\"}", false, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *b = json_loads(cases[i].json, 0, NULL);
        assert_non_null(b);
        assert_int_equal(cache_key_cacheable(b, false), cases[i].plain);
        assert_int_equal(cache_key_cacheable(b, true), cases[i].sampled);
        json_decref(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_candidate_set),
        cmocka_unit_test(test_lru_get_put),
        cmocka_unit_test(test_lru_ttl),
        cmocka_unit_test(test_lru_byte_cap_and_eviction_order),
        cmocka_unit_test(test_lru_threads),
        cmocka_unit_test(test_blob_roundtrip),
        cmocka_unit_test(test_key_normalisation),
        cmocka_unit_test(test_temperature_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
