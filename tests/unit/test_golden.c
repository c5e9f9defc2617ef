/*
 * Golden translation tests: data files under tests/golden, one directory per
 * case, driven through the translation functions with no network.
 *
 *   tests/golden/<provider>/<case>/   provider = anthropic | gemini | ollama | azure | vertex
 *     case.json        {"stream", "status" (upstream, default 200), "expect_status",
 *                       "bearer" (azure: auth entra), "api_version" (azure),
 *                       "publisher" (vertex: google (default) or anthropic; the
 *                       access token is "TEST-KEY", installed as if fetched),
 *                       "endpoint" ("chat" (default), "count_tokens", "embeddings"),
 *                       "url", "headers" (each must be sent), "price"
 *                       {input,output,cached}, "usage" {prompt,completion,cached},
 *                       "cost_usd" (x-skuld-cost-usd as the gateway prints it)}
 *     request_in.json  OpenAI chat request      -> build()               -> request_out.json
 *     response_in.json provider body (status)   -> translate_response()  -> response_out.json
 *     stream_in.txt    provider stream bytes    -> translate_event()     -> stream_out.txt
 *                      (stream_out.txt: one OpenAI payload per line)
 *   tests/golden/messages/<case>/     the inbound Anthropic shape (/v1/messages)
 *     case.json        optional {"count": true}: /v1/messages/count_tokens
 *     request_in.json  Anthropic request        -> ashape_request()      -> request_out.json
 *                      (ashape_count_request() with "count")
 *     response_in.json OpenAI chat.completion   -> ashape_response()     -> response_out.json
 *     stream_in.txt    OpenAI SSE stream        -> ashape_stream_*()     -> stream_out.txt
 *
 * JSON is compared as JSON, ignoring "created" (a clock reading); Anthropic
 * SSE output is compared as text. SKULD_GOLDEN_UPDATE=1 rewrites the *_out
 * files from what the code produces (review the diff before committing).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/anthropic_shape.h"
#include "config/cost.h"
#include "provider/provider.h"
#include "upstream/gtoken.h"
#include "upstream/ndjson.h"
#include "upstream/sse.h"

static char golden_dir[4096];
static bool update_mode;

static char *slurp(const char *dir, const char *name, size_t *len)
{
    char p[4600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    fclose(f);
    b[got] = '\0';
    if (len) *len = got;
    return b;
}

static void spit(const char *dir, const char *name, const char *data, size_t len)
{
    char p[4600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fwrite(data, 1, len, f);
    fclose(f);
}

static json_t *load_json(const char *dir, const char *name)
{
    char *s = slurp(dir, name, NULL);
    if (!s) return NULL;
    json_error_t e;
    json_t *v = json_loads(s, 0, &e);
    if (!v) fail_msg("%s/%s: %s (line %d)", dir, name, e.text, e.line);
    free(s);
    return v;
}

static void strip_created(json_t *v)
{
    if (json_is_object(v)) {
        json_object_del(v, "created");
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) strip_created(x);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) strip_created(x);
    }
}

static char *pretty(const json_t *v)
{
    return json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS);
}

/* Compare got (JSON text) with the expected file; or write it in update mode. */
static void expect_json(const char *dir, const char *name, const char *got, size_t len)
{
    json_t *g = json_loadb(got, len, 0, NULL);
    if (!g) fail_msg("%s: produced invalid JSON for %s: %.*s", dir, name, (int)len, got);
    if (update_mode) {
        char *s = pretty(g);
        size_t n = strlen(s);
        s = realloc(s, n + 2);
        s[n++] = '\n';
        spit(dir, name, s, n);
        free(s);
        json_decref(g);
        return;
    }
    json_t *want = load_json(dir, name);
    if (!want) fail_msg("%s/%s missing", dir, name);
    strip_created(g);
    strip_created(want);
    if (!json_equal(g, want)) {
        char *a = pretty(g), *b = pretty(want);
        print_error("%s/%s differs\n--- got\n%s\n--- want\n%s\n", dir, name, a, b);
        free(a);
        free(b);
        json_decref(g);
        json_decref(want);
        fail();
    }
    json_decref(g);
    json_decref(want);
}

/* ---------- provider cases ---------- */

typedef struct collect {
    buf_t out;
    const prov_ops_t *ops;
    prov_xlate_t *x;
    json_t *last_usage;
} collect_t;

static int collect_emit(void *ud, const char *data, size_t len)
{
    collect_t *c = ud;
    buf_append(&c->out, data, len);
    buf_append(&c->out, "\n", 1);
    json_t *o = json_loadb(data, len, 0, NULL);
    json_t *u = json_object_get(o, "usage");
    if (json_is_object(u)) {
        json_decref(c->last_usage);
        c->last_usage = json_incref(u);
    }
    json_decref(o);
    return 0;
}

static int collect_event(void *ud, const char *event, const char *data, size_t len)
{
    collect_t *c = ud;
    int r = c->ops->translate_event(c->x, event, data, len, collect_emit, c);
    assert_int_equal(r, 0);
    return 0;
}

static void check_usage_cost(const char *dir, const json_t *cs, const json_t *usage)
{
    const json_t *want = json_object_get(cs, "usage");
    if (!want) return;
    assert_non_null(usage);
    long p = (long)json_integer_value(json_object_get(usage, "prompt_tokens"));
    long c = (long)json_integer_value(json_object_get(usage, "completion_tokens"));
    long k = (long)json_integer_value(
        json_object_get(json_object_get(usage, "prompt_tokens_details"), "cached_tokens"));
    if (p != json_integer_value(json_object_get(want, "prompt")) ||
        c != json_integer_value(json_object_get(want, "completion")) ||
        k != json_integer_value(json_object_get(want, "cached")))
        fail_msg("%s: usage %ld/%ld/%ld differs from case.json", dir, p, c, k);
    const json_t *pr = json_object_get(cs, "price");
    cfg_price_t price = {json_number_value(json_object_get(pr, "input")),
                         json_number_value(json_object_get(pr, "output")),
                         json_number_value(json_object_get(pr, "cached"))};
    char got[48];
    cost_format(cost_usd(&price, p, k, c), got, sizeof got);
    const char *wc = json_string_value(json_object_get(cs, "cost_usd"));
    if (wc && strcmp(got, wc) != 0) fail_msg("%s: cost %s, want %s", dir, got, wc);
}

static endpoint_t case_endpoint(const json_t *cs)
{
    const char *e = json_string_value(json_object_get(cs, "endpoint"));
    if (e && !strcmp(e, "count_tokens")) return EP_COUNT_TOKENS;
    if (e && !strcmp(e, "embeddings")) return EP_EMBEDDINGS;
    if (e && !strcmp(e, "completions")) return EP_COMPLETIONS;
    if (e && strcmp(e, "chat")) fail_msg("case.json: unknown endpoint %s", e);
    return EP_CHAT;
}

static void run_provider_case(const char *type, const char *dir)
{
    const prov_ops_t *ops = provider_ops(type);
    assert_non_null(ops);
    json_t *cs = load_json(dir, "case.json");
    if (!cs) cs = json_object();
    bool stream = json_is_true(json_object_get(cs, "stream"));
    cfg_provider_t prov = {.name = "up", .type = (char *)type, .api_key = "TEST-KEY"};
    prov.base_url = !strcmp(type, "anthropic") ? "https://api.anthropic.test/v1"
                    : !strcmp(type, "gemini")  ? "https://gemini.test/v1beta"
                    : !strcmp(type, "azure")   ? "https://res.openai.azure.test"
                    : !strcmp(type, "vertex")  ? "https://us-east5-aiplatform.test"
                                               : "http://ollama.test:11434";
    const char *ver = json_string_value(json_object_get(cs, "api_version"));
    prov.api_version = (char *)(ver ? ver : CONFIG_AZURE_API_VERSION);
    prov.bearer = json_is_true(json_object_get(cs, "bearer"));
    if (!strcmp(type, "vertex")) { /* the token as if fetched: "TEST-KEY" */
        const char *pub = json_string_value(json_object_get(cs, "publisher"));
        prov.api_key = NULL;
        prov.project = "proj-1";
        prov.location = "us-east5";
        prov.publisher = (char *)(pub ? pub : "google");
        prov.token_url = "https://oauth2.test/token";
        prov.sa_email = "sa@proj-1.iam.gserviceaccount.test";
        gtok_install(&prov, "TEST-KEY", 3600);
    }
    cfg_model_t m = {
        .name = "public", .provider = &prov, .upstream_model = "up-model", .capabilities = CAP_ALL};
    arena_t *a = arena_create(4096);
    json_t *req = load_json(dir, "request_in.json");
    bool has_req = req != NULL;
    if (!req) req = json_pack("{s:[{s:s, s:s}]}", "messages", "role", "user", "content", "hi");
    prov_call_t call = {0};
    int rc = ops->build(a, case_endpoint(cs), req, &m, stream, &call);
    if (rc == PROV_EBADREQ) {
        const char *want = json_string_value(json_object_get(cs, "build_error"));
        if (!want || !call.error || !strstr(call.error, want))
            fail_msg("%s: build refused: %s", dir, call.error ? call.error : "?");
        goto done;
    }
    assert_int_equal(rc, 0);
    if (has_req) expect_json(dir, "request_out.json", call.body, call.body_len);
    const char *url = json_string_value(json_object_get(cs, "url"));
    if (url && strcmp(url, call.url) != 0) fail_msg("%s: url %s, want %s", dir, call.url, url);
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(cs, "headers"), i, h)
    {
        bool found = false;
        for (const char *const *p = call.headers; p && *p; p++)
            if (!strcmp(*p, json_string_value(h))) found = true;
        if (!found) fail_msg("%s: header '%s' not sent", dir, json_string_value(h));
    }
    /* The key never goes into the URL (logs) or the body. */
    assert_null(strstr(call.url, "TEST-KEY"));
    assert_null(strstr(call.body, "TEST-KEY"));

    size_t len;
    char *resp = slurp(dir, "response_in.json", &len);
    if (resp) {
        int status = json_is_integer(json_object_get(cs, "status"))
                         ? (int)json_integer_value(json_object_get(cs, "status"))
                         : 200;
        int want = json_is_integer(json_object_get(cs, "expect_status"))
                       ? (int)json_integer_value(json_object_get(cs, "expect_status"))
                       : status;
        buf_t out;
        buf_init(&out, 0);
        int st = ops->translate_response(call.xlate, status, resp, len, &out);
        if (st != want) fail_msg("%s: status %d, want %d", dir, st, want);
        expect_json(dir, "response_out.json", buf_data(&out), out.len);
        json_t *o = json_loadb(buf_data(&out), out.len, 0, NULL);
        if (status < 400) check_usage_cost(dir, cs, json_object_get(o, "usage"));
        json_decref(o);
        buf_free(&out);
        free(resp);
    }
    char *sin = slurp(dir, "stream_in.txt", &len);
    if (sin) {
        collect_t c = {.ops = ops, .x = call.xlate};
        buf_init(&c.out, 0);
        if (call.framing == PROV_FRAME_NDJSON) {
            ndjson_parser_t p;
            ndjson_init(&p, 1 << 20);
            assert_int_equal(ndjson_feed(&p, sin, len, collect_event, &c), 0);
            assert_int_equal(ndjson_finish(&p, collect_event, &c), 0);
            ndjson_free(&p);
        } else {
            sse_parser_t p;
            sse_init(&p, 1 << 20);
            assert_int_equal(sse_feed(&p, sin, len, collect_event, &c), 0);
            sse_free(&p);
        }
        if (update_mode) {
            spit(dir, "stream_out.txt", buf_data(&c.out), c.out.len);
        } else {
            char *want = slurp(dir, "stream_out.txt", NULL);
            if (!want) fail_msg("%s/stream_out.txt missing", dir);
            char *gs = buf_data(&c.out), *ws = want, *gl, *wl;
            int line = 0;
            for (;;) {
                gl = strsep(&gs, "\n");
                wl = strsep(&ws, "\n");
                line++;
                if (!gl || !wl) {
                    if ((gl && *gl) || (wl && *wl)) fail_msg("%s: stream line count differs", dir);
                    break;
                }
                json_t *gj = json_loads(gl, JSON_DECODE_ANY, NULL);
                json_t *wj = json_loads(wl, JSON_DECODE_ANY, NULL);
                strip_created(gj);
                strip_created(wj);
                bool same = gj && wj ? json_equal(gj, wj) : strcmp(gl, wl) == 0;
                json_decref(gj);
                json_decref(wj);
                if (!same)
                    fail_msg("%s: stream_out.txt line %d\n got: %s\nwant: %s", dir, line, gl, wl);
            }
            free(want);
        }
        check_usage_cost(dir, cs, c.last_usage);
        json_decref(c.last_usage);
        buf_free(&c.out);
        free(sin);
    }
done:
    json_decref(req);
    json_decref(cs);
    arena_destroy(a);
}

/* ---------- inbound Anthropic shape ---------- */

typedef struct ashape_ctx {
    ashape_stream_t s;
    buf_t out;
    long prompt, cached, completion;
} ashape_ctx_t;

static int ashape_event(void *ud, const char *event, const char *data, size_t len)
{
    ashape_ctx_t *c = ud;
    if (len == 6 && !memcmp(data, "[DONE]", 6)) {
        ashape_stream_end(&c->s, c->prompt, c->cached, c->completion, &c->out);
        return 0;
    }
    json_t *o = json_loadb(data, len, 0, NULL);
    json_t *u = json_object_get(o, "usage");
    if (json_is_object(u)) {
        c->prompt = (long)json_integer_value(json_object_get(u, "prompt_tokens"));
        c->completion = (long)json_integer_value(json_object_get(u, "completion_tokens"));
        c->cached = (long)json_integer_value(
            json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens"));
    }
    bool usage_only = json_array_size(json_object_get(o, "choices")) == 0 && u;
    json_decref(o);
    if (!usage_only) assert_int_equal(ashape_stream_chunk(&c->s, data, len, &c->out), 0);
    return 0;
}

static void run_messages_case(const char *dir)
{
    json_t *in = load_json(dir, "request_in.json");
    json_t *cs = load_json(dir, "case.json");
    bool count = json_is_true(json_object_get(cs, "count"));
    json_decref(cs);
    if (in) {
        char err[256];
        const char *param = NULL;
        json_t *out = count ? ashape_count_request(in, err, sizeof err, &param)
                            : ashape_request(in, err, sizeof err, &param);
        if (!out) {
            char *e = NULL;
            if (asprintf(&e, "{\"error\":\"%s\",\"param\":\"%s\"}", err, param) < 0) fail();
            expect_json(dir, "request_out.json", e, strlen(e));
            free(e);
        } else {
            char *s = json_dumps(out, JSON_COMPACT);
            expect_json(dir, "request_out.json", s, strlen(s));
            free(s);
        }
        json_decref(out);
        json_decref(in);
    }
    size_t len;
    char *resp = slurp(dir, "response_in.json", &len);
    if (resp) {
        buf_t out;
        buf_init(&out, 0);
        assert_int_equal(ashape_response(resp, len, "public", &out), 0);
        expect_json(dir, "response_out.json", buf_data(&out), out.len);
        buf_free(&out);
        free(resp);
    }
    char *sin = slurp(dir, "stream_in.txt", &len);
    if (sin) {
        ashape_ctx_t c = {.prompt = -1, .completion = -1};
        ashape_stream_init(&c.s, "public");
        buf_init(&c.out, 0);
        sse_parser_t p;
        sse_init(&p, 1 << 20);
        assert_int_equal(sse_feed(&p, sin, len, ashape_event, &c), 0);
        sse_free(&p);
        if (update_mode) {
            spit(dir, "stream_out.txt", buf_data(&c.out), c.out.len);
        } else {
            char *want = slurp(dir, "stream_out.txt", NULL);
            if (!want || strcmp(want, buf_data(&c.out)) != 0)
                fail_msg("%s: stream_out.txt differs; got:\n%s", dir, buf_data(&c.out));
            free(want);
        }
        buf_free(&c.out);
        free(sin);
    }
}

/* ---------- driver ---------- */

typedef struct gcase {
    char type[32];
    char dir[4600];
} gcase_t;

static void golden_test(void **state)
{
    gcase_t *g = *state;
    if (!strcmp(g->type, "messages"))
        run_messages_case(g->dir);
    else
        run_provider_case(g->type, g->dir);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

int main(void)
{
    snprintf(golden_dir, sizeof golden_dir, "%s", __FILE__);
    char *slash = strrchr(golden_dir, '/');
    if (slash) *slash = '\0';
    slash = strrchr(golden_dir, '/');
    if (slash) *slash = '\0';
    strcat(golden_dir, "/golden");
    update_mode = getenv("SKULD_GOLDEN_UPDATE") && *getenv("SKULD_GOLDEN_UPDATE") == '1';

    static const char *const kinds[] = {"anthropic", "gemini", "ollama",
                                        "azure",     "vertex", "messages"};
    struct CMUnitTest *tests = NULL;
    gcase_t *cases = NULL;
    size_t n = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        char d[4300];
        snprintf(d, sizeof d, "%s/%s", golden_dir, kinds[k]);
        struct dirent **ents;
        int m = scandir(d, &ents, NULL, by_name);
        if (m < 0) {
            fprintf(stderr, "golden: no directory %s\n", d);
            return 1;
        }
        for (int i = 0; i < m; i++) {
            if (ents[i]->d_name[0] != '.') {
                cases = realloc(cases, (n + 1) * sizeof *cases);
                snprintf(cases[n].type, sizeof cases[n].type, "%s", kinds[k]);
                snprintf(cases[n].dir, sizeof cases[n].dir, "%s/%s", d, ents[i]->d_name);
                n++;
            }
            free(ents[i]);
        }
        free(ents);
    }
    tests = calloc(n, sizeof *tests);
    char **names = calloc(n, sizeof *names);
    for (size_t i = 0; i < n; i++) {
        names[i] = strdup(cases[i].dir + strlen(golden_dir) + 1);
        tests[i].name = names[i];
        tests[i].test_func = golden_test;
        tests[i].initial_state = &cases[i];
    }
    int rc = _cmocka_run_group_tests("golden", tests, n, NULL, NULL);
    gtok_shutdown(); /* the installed vertex token */
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    free(tests);
    free(cases);
    return rc;
}
