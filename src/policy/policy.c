/*
 * policy.c — the per-request glue of keys, auth, limits and budgets (see
 * policy.h for the contract, counters.h for the arithmetic).
 *
 * Credentials: "Authorization: Bearer X" or "x-api-key: X" (Anthropic
 * clients). X is, in this order: the master key (constant-time compare),
 * a JWT (when auth.jwt is configured and X has a JWT's shape), or a virtual
 * key (looked up by SHA-256). Anonymous requests pass when auth.required is
 * false; a credential that is a known but revoked/expired key, or an invalid
 * JWT, is refused (401) either way; an unknown credential is refused only
 * when auth.required (SDKs send placeholder keys to open gateways).
 *
 * Admission reserves, per request, on every counter that applies:
 *   requests 1 and tokens (prompt estimate + max_tokens) on the key, team,
 *   deployment (limits.models) and global windows; and the maximum cost
 *   price.input * prompt_estimate + price.output * max_tokens on the key's
 *   and team's budget for the current period.
 * The prompt estimate is body bytes / 4 + 8 tokens (an over-estimate for
 * English and JSON); max_tokens is the request's max_tokens or
 * max_completion_tokens, else limits.default_max_tokens.
 */
#include "cache/cache.h"
#include "policy/policy.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/internal.h"
#include "core/jscan.h"
#include "core/jsonw.h"
#include "core/log.h"
#include "core/secure.h"
#include "policy/cost.h"
#include "policy/counters.h"
#include "policy/jwks.h"
#include "policy/jwt.h"
#include "policy/keys.h"
#include "policy/redis.h"
#include "policy/secrets.h"

#define POL_MAX_CHECKS 12

enum { POL_ANON = 0, POL_MASTER, POL_KEY, POL_JWT };

typedef struct pol_pending pol_pending_t;

/* A budget an admin read reports: a key's or a team's, this period. */
typedef struct pol_brow {
    pol_key_t *k;     /* the key, or NULL for a team budget */
    const char *team; /* the team (k == NULL), from the request's config snapshot */
    double budget_usd;
    int period; /* BUDGET_* */
    int64_t start, end, spent, reserved;
    char name[200]; /* the counter: bg:<scope>:<who>:<period start> */
} pol_brow_t;

/* An admin read of budget counters (a key's usage, or GET /admin/budgets). */
struct pol_usage_call {
    predis_call_t call; /* first */
    api_ctx_t *c;       /* NULL once the request is gone */
    bool list;          /* GET /admin/budgets; else rows[0] is one key's usage */
    size_t n;
    pol_brow_t rows[];
};

typedef struct pol_req {
    int kind; /* POL_* */
    pol_key_t *key;
    const char *key_id, *team, *user; /* arena copies */
    /* admission */
    bool admitting; /* policy_admit ran */
    endpoint_t ep;
    json_t *body;
    bool stream, client_usage;
    pc_check_t checks[POL_MAX_CHECKS];
    size_t n;
    bool admitted, settled, fallback;
    pol_pending_t *pending;       /* Redis admission in flight */
    struct pol_usage_call *usage; /* Redis usage read in flight */
    int64_t max_cost_nusd, tokens_reserved;
} pol_req_t;

/* ------------------------------------------------------------------------ */
/* process state and metrics */

static store_t *pol_store;
static _Atomic uint64_t pol_rl_rejects[PC_NSCOPE][2]; /* [scope][requests, tokens] */
static _Atomic uint64_t pol_budget_rejects[2];        /* key, team */
static _Atomic uint64_t pol_budget_fallbacks;
static _Atomic uint64_t pol_alerts[3];       /* 50, 80, 100 */
static _Atomic uint64_t pol_auth_fail[2];    /* 401, 403 */
static _Atomic uint64_t pol_redis_policy[2]; /* fail-open admits, fail-closed rejects */

void policy_start(store_t *store, config_t *cfg)
{
    pol_store = store;
    if (store && pol_keys_load(store) != 0) log_error("keys: cannot load keys from the store");
    if (pol_keys_count()) log_info("keys: %zu virtual key(s) loaded", pol_keys_count());
    if (store) psec_load(store, cfg->store.encryption_key);
    psec_apply(cfg);
    pol_jwks_configure(cfg);
}

void policy_prepare_snapshot(config_t *cfg)
{
    psec_apply(cfg);
    pol_jwks_configure(cfg); /* auth.jwt.jwks_url: fetched now if new, then kept fresh */
}

void policy_stop(void)
{
    pol_jwks_shutdown();
}

void policy_refresh(store_t *store)
{
    if (store) pol_keys_load(store);
}

store_t *policy_store(void)
{
    return pol_store;
}

static const char *const pol_scope_names[PC_NSCOPE] = {"key", "team", "deployment", "global"};

void policy_metrics_render(buf_t *o)
{
    buf_appends(o, "# HELP skuld_ratelimit_rejections_total Requests refused by a rate limit.\n"
                   "# TYPE skuld_ratelimit_rejections_total counter\n");
    for (int s = 0; s < PC_NSCOPE; s++)
        for (int u = 0; u < 2; u++)
            buf_printf(o, "skuld_ratelimit_rejections_total{scope=\"%s\",limit=\"%s\"} %llu\n",
                       pol_scope_names[s], u ? "tokens" : "requests",
                       (unsigned long long)atomic_load(&pol_rl_rejects[s][u]));
    buf_appends(o, "# HELP skuld_budget_rejections_total Requests refused by an exhausted budget.\n"
                   "# TYPE skuld_budget_rejections_total counter\n");
    for (int s = 0; s < 2; s++)
        buf_printf(o, "skuld_budget_rejections_total{scope=\"%s\"} %llu\n", pol_scope_names[s],
                   (unsigned long long)atomic_load(&pol_budget_rejects[s]));
    buf_printf(o,
               "# HELP skuld_budget_fallbacks_total Requests sent to budgets.fallback_model.\n"
               "# TYPE skuld_budget_fallbacks_total counter\nskuld_budget_fallbacks_total %llu\n",
               (unsigned long long)atomic_load(&pol_budget_fallbacks));
    buf_appends(o, "# HELP skuld_budget_alerts_total Budget thresholds crossed.\n"
                   "# TYPE skuld_budget_alerts_total counter\n");
    static const int th[3] = {50, 80, 100};
    for (int i = 0; i < 3; i++)
        buf_printf(o, "skuld_budget_alerts_total{threshold=\"%d\"} %llu\n", th[i],
                   (unsigned long long)atomic_load(&pol_alerts[i]));
    buf_printf(o,
               "# HELP skuld_auth_rejections_total Requests refused by authentication.\n"
               "# TYPE skuld_auth_rejections_total counter\n"
               "skuld_auth_rejections_total{status=\"401\"} %llu\n"
               "skuld_auth_rejections_total{status=\"403\"} %llu\n",
               (unsigned long long)atomic_load(&pol_auth_fail[0]),
               (unsigned long long)atomic_load(&pol_auth_fail[1]));
    buf_printf(o,
               "# HELP skuld_redis_failures_total Redis calls that failed or timed out.\n"
               "# TYPE skuld_redis_failures_total counter\nskuld_redis_failures_total %llu\n"
               "# HELP skuld_redis_policy_total Requests decided by redis.on_failure.\n"
               "# TYPE skuld_redis_policy_total counter\n"
               "skuld_redis_policy_total{on_failure=\"open\"} %llu\n"
               "skuld_redis_policy_total{on_failure=\"closed\"} %llu\n",
               (unsigned long long)predis_failures(),
               (unsigned long long)atomic_load(&pol_redis_policy[0]),
               (unsigned long long)atomic_load(&pol_redis_policy[1]));
}

static pol_req_t *pol_req(api_ctx_t *c)
{
    if (!c->pol) c->pol = arena_calloc(c->req->arena, sizeof(pol_req_t));
    return c->pol;
}

const char *policy_key_id(const api_ctx_t *c)
{
    return c->pol ? c->pol->key_id : NULL;
}
const char *policy_team(const api_ctx_t *c)
{
    return c->pol ? c->pol->team : NULL;
}
const char *policy_user(const api_ctx_t *c)
{
    return c->pol ? c->pol->user : NULL;
}

/* ------------------------------------------------------------------------ */
/* authentication */

/* The presented credential, or an empty slice. */
static http_slice_t pol_credential(http_req_t *r)
{
    http_slice_t a = http_req_header(r, "authorization");
    if (a.n > 7 && strncasecmp(a.p, "Bearer ", 7) == 0) {
        http_slice_t s = {a.p + 7, a.n - 7};
        while (s.n && s.p[0] == ' ') s.p++, s.n--;
        return s;
    }
    http_slice_t x = http_req_header(r, "x-api-key");
    if (x.n) return x;
    return (http_slice_t){NULL, 0};
}

typedef enum { PA_NONE, PA_OK, PA_UNKNOWN, PA_BAD } pa_result_t;

/* Classify the credential into p; PA_BAD: *why says why (401 always). */
static pa_result_t pol_authenticate(api_ctx_t *c, pol_req_t *p, const char **why)
{
    http_slice_t cred = pol_credential(c->req);
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
        if (pol_jwt_verify(&au->jwt, cred.p, cred.n, c->req->arena, &team, &user, why) != 0)
            return PA_BAD;
        p->kind = POL_JWT;
        p->team = team;
        p->user = user;
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
    p->key_id = k->id;
    p->team = k->team;
    p->user = k->user;
    return PA_OK;
}

/* Optional request signing: x-skuld-timestamp (unix seconds) and
 * x-skuld-signature = hex HMAC-SHA256(auth.hmac_secret,
 * "TIMESTAMP\nMETHOD\nPATH\nBODY"). */
static bool pol_hmac_ok(api_ctx_t *c, const char **why)
{
    const char *secret = c->cfg->auth.hmac_secret;
    http_req_t *r = c->req;
    http_slice_t ts = http_req_header(r, "x-skuld-timestamp");
    http_slice_t sig = http_req_header(r, "x-skuld-signature");
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
    buf_printf(&m, "%s\n%.*s\n%.*s\n", tsb, (int)r->method.n, r->method.p, (int)r->path.n,
               r->path.p);
    buf_append(&m, r->body ? r->body : "", r->body_len);
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

static void pol_send_401(api_ctx_t *c, const char *msg)
{
    atomic_fetch_add(&pol_auth_fail[0], 1);
    http_resp_header(c->req, "WWW-Authenticate", "Bearer");
    api_ctx_set_model(c, NULL);
    api_send_error(c, 401, NULL, "invalid_api_key", NULL, "%s", msg);
}

bool policy_auth_v1(api_ctx_t *c)
{
    pol_req_t *p = pol_req(c);
    if (!p) return true;
    const char *why = NULL;
    pa_result_t rc = pol_authenticate(c, p, &why);
    const cfg_auth_t *au = &c->cfg->auth;
    if (rc == PA_BAD) {
        pol_send_401(c, why);
        return false;
    }
    if (au->required && rc != PA_OK) {
        pol_send_401(c, rc == PA_NONE ? "an API key is required (Authorization: Bearer KEY or "
                                        "x-api-key)"
                                      : "invalid API key");
        return false;
    }
    if (au->hmac_secret && p->kind != POL_MASTER && !pol_hmac_ok(c, &why)) {
        pol_send_401(c, why);
        return false;
    }
    static const char usage_path[] = "/v1/key/usage";
    http_req_t *r = c->req;
    if (r->path.n == sizeof usage_path - 1 && memcmp(r->path.p, usage_path, r->path.n) == 0) {
        api_ctx_set_model(c, NULL);
        if (p->kind != POL_KEY)
            api_send_error(c, 401, NULL, "invalid_api_key", NULL,
                           "GET /v1/key/usage needs a virtual API key");
        else
            policy_send_usage(c, p->key);
        return false;
    }
    return true;
}

bool policy_admin_nonmaster(api_ctx_t *c)
{
    pol_req_t *p = pol_req(c);
    if (!p) return false;
    const char *why = NULL;
    if (pol_authenticate(c, p, &why) != PA_OK || p->kind == POL_MASTER) return false;
    /* A valid user credential: authenticated, but not allowed here — except
     * a key reading its own usage; another key's id answers 404 as if it
     * did not exist. */
    http_req_t *r = c->req;
    static const char pre[] = "/admin/keys/";
    static const char suf[] = "/usage";
    size_t pl = sizeof pre - 1, sl = sizeof suf - 1;
    bool is_get = r->method.n == 3 && memcmp(r->method.p, "GET", 3) == 0;
    if (is_get && r->path.n > pl + sl && memcmp(r->path.p, pre, pl) == 0 &&
        memcmp(r->path.p + r->path.n - sl, suf, sl) == 0) {
        size_t idl = r->path.n - pl - sl;
        if (p->kind == POL_KEY && idl == strlen(p->key->id) &&
            memcmp(r->path.p + pl, p->key->id, idl) == 0) {
            policy_send_usage(c, p->key);
        } else {
            api_send_error(c, 404, NULL, "key_not_found", NULL, "no such key");
        }
        return true;
    }
    atomic_fetch_add(&pol_auth_fail[1], 1);
    api_send_error(c, 403, NULL, "admin_forbidden", NULL,
                   "this credential may not use the admin API (the master key is required)");
    return true;
}

/* ------------------------------------------------------------------------ */
/* alerts */

typedef struct pol_alert_seen {
    struct pol_alert_seen *next;
    int level;
    char name[];
} pol_alert_seen_t;
static pthread_mutex_t pol_alert_mu = PTHREAD_MUTEX_INITIALIZER;
static pol_alert_seen_t *pol_alert_list;

/* true the first time (name, level) is seen by this process. */
static bool pol_alert_first(const char *name, int level)
{
    bool first = true;
    pthread_mutex_lock(&pol_alert_mu);
    for (pol_alert_seen_t *s = pol_alert_list; s; s = s->next)
        if (s->level == level && strcmp(s->name, name) == 0) first = false;
    if (first) {
        size_t nl = strlen(name) + 1;
        pol_alert_seen_t *s = malloc(sizeof *s + nl);
        if (s) {
            memcpy(s->name, name, nl);
            s->level = level;
            s->next = pol_alert_list;
            pol_alert_list = s;
        }
    }
    pthread_mutex_unlock(&pol_alert_mu);
    return first;
}

typedef struct pol_hook {
    char *url, *body;
} pol_hook_t;

static size_t pol_sink(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

static void *pol_webhook_main(void *arg)
{
    pol_hook_t *h = arg;
    CURL *e = curl_easy_init();
    if (e) {
        struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
        curl_easy_setopt(e, CURLOPT_URL, h->url);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, h->body);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, pol_sink);
        CURLcode rc = curl_easy_perform(e);
        if (rc != CURLE_OK) log_warn("budget: alert webhook failed: %s", curl_easy_strerror(rc));
        curl_slist_free_all(hd);
        curl_easy_cleanup(e);
    }
    free(h->url);
    free(h->body);
    free(h);
    return NULL;
}

/* A budget counter went from before to after (nano-USD) against limit. */
static void pol_alert_check(const config_t *cfg, const pc_check_t *ck, int64_t before,
                            int64_t after, bool exhausted)
{
    if (ck->limit <= 0) return;
    static const int th[3] = {50, 80, 100};
    for (int i = 0; i < 3; i++) {
        int64_t at = ck->limit / 100 * th[i];
        /* an exhausted budget (a request refused) counts as every threshold reached */
        bool crossed = (before < at && after >= at) || exhausted;
        if (!crossed || !pol_alert_first(ck->name, th[i])) continue;
        atomic_fetch_add(&pol_alerts[i], 1);
        log_warn("budget: %s reached %d%% (spent $%.6f of $%.6f)", ck->name, th[i],
                 (double)after / 1e9, (double)ck->limit / 1e9);
        if (cfg && cfg->budgets.alert_webhook) {
            pol_hook_t *h = calloc(1, sizeof *h);
            buf_t b;
            buf_init(&b, 0);
            buf_appends(&b, "{\"budget\":");
            jsonw_cstr(&b, ck->name);
            buf_printf(&b, ",\"threshold_pct\":%d,\"spent_usd\":%.9f,\"budget_usd\":%.9f}", th[i],
                       (double)after / 1e9, (double)ck->limit / 1e9);
            if (h && (h->url = strdup(cfg->budgets.alert_webhook)) && b.mem) {
                h->body = b.mem;
                pthread_t t;
                pthread_attr_t attr;
                pthread_attr_init(&attr);
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                if (pthread_create(&t, &attr, pol_webhook_main, h) != 0) {
                    free(h->url);
                    free(h->body);
                    free(h);
                }
                pthread_attr_destroy(&attr);
            } else {
                if (h) free(h->url);
                free(h);
                buf_free(&b);
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* admission */

static const char POL_LUA_ADMIT[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1])\n"
    "local nowms = now * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local out = {1, 0, now, nowms}\n"
    "for i = 1, #KEYS do\n"
    "  local kind = ARGV[4*i-3]\n"
    "  local limit = tonumber(ARGV[4*i-2])\n"
    "  local amt = tonumber(ARGV[4*i-1])\n"
    "  local used, reset = 0, 0\n"
    "  if kind == 'r' then\n"
    "    local h = redis.call('HGETALL', KEYS[i])\n"
    "    local oldest = 0\n"
    "    for j = 1, #h, 2 do\n"
    "      local s = tonumber(h[j])\n"
    "      local v = tonumber(h[j+1])\n"
    "      if s <= now - 60 then redis.call('HDEL', KEYS[i], h[j])\n"
    "      elseif v > 0 then\n"
    "        used = used + v\n"
    "        if oldest == 0 or s < oldest then oldest = s end\n"
    "      end\n"
    "    end\n"
    "    if oldest > 0 then reset = (oldest + 60) * 1000 - nowms end\n"
    "  else\n"
    "    local v = redis.call('HMGET', KEYS[i], 's', 'r')\n"
    "    used = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)\n"
    "  end\n"
    "  out[#out+1] = used\n"
    "  out[#out+1] = reset\n"
    "  if limit > 0 and used + amt > limit then\n"
    "    out[1] = 0\n"
    "    out[2] = i\n"
    "    return out\n"
    "  end\n"
    "end\n"
    "for i = 1, #KEYS do\n"
    "  local amt = tonumber(ARGV[4*i-1])\n"
    "  if ARGV[4*i-3] == 'r' then\n"
    "    redis.call('HINCRBY', KEYS[i], now, amt)\n"
    "    redis.call('EXPIRE', KEYS[i], 61)\n"
    "  else\n"
    "    redis.call('HINCRBY', KEYS[i], 'r', amt)\n"
    "    redis.call('EXPIRE', KEYS[i], tonumber(ARGV[4*i]))\n"
    "  end\n"
    "end\n"
    "return out\n";

static const char POL_LUA_SETTLE[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1])\n"
    "local out = {}\n"
    "for i = 1, #KEYS do\n"
    "  local kind = ARGV[4*i-3]\n"
    "  local slot = ARGV[4*i-2]\n"
    "  local amt = tonumber(ARGV[4*i-1])\n"
    "  local act = tonumber(ARGV[4*i])\n"
    "  local before, after = 0, 0\n"
    "  if kind == 'r' then\n"
    "    if act ~= amt and tonumber(slot) > now - 60 and"
    "       redis.call('HEXISTS', KEYS[i], slot) == 1 then\n"
    "      local v = redis.call('HINCRBY', KEYS[i], slot, act - amt)\n"
    "      if v < 0 then redis.call('HSET', KEYS[i], slot, 0) end\n"
    "    end\n"
    "  elseif redis.call('EXISTS', KEYS[i]) == 1 then\n"
    "    before = tonumber(redis.call('HGET', KEYS[i], 's') or '0')\n"
    "    local r = redis.call('HINCRBY', KEYS[i], 'r', -amt)\n"
    "    if r < 0 then redis.call('HSET', KEYS[i], 'r', 0) end\n"
    "    after = redis.call('HINCRBY', KEYS[i], 's', act)\n"
    "  end\n"
    "  out[#out+1] = before\n"
    "  out[#out+1] = after\n"
    "end\n"
    "return out\n";

/* spent and reserved of every budget counter in KEYS, flat: s1, r1, s2, r2... */
static const char POL_LUA_READ[] = "local out = {}\n"
                                   "for i, k in ipairs(KEYS) do\n"
                                   "  local v = redis.call('HMGET', k, 's', 'r')\n"
                                   "  out[2 * i - 1] = v[1]\n"
                                   "  out[2 * i] = v[2]\n"
                                   "end\n"
                                   "return out\n";

static void pol_add_rate(pol_req_t *p, int scope, const char *who, int rpm, int tpm)
{
    if (rpm > 0 && p->n < POL_MAX_CHECKS) {
        pc_check_t *k = &p->checks[p->n++];
        memset(k, 0, sizeof *k);
        snprintf(k->name, sizeof k->name, "rl:%s:%s:req", pol_scope_names[scope], who);
        k->kind = 'r', k->scope = scope, k->unit = PC_REQ, k->limit = rpm, k->amount = 1;
    }
    if (tpm > 0 && p->n < POL_MAX_CHECKS) {
        pc_check_t *k = &p->checks[p->n++];
        memset(k, 0, sizeof *k);
        snprintf(k->name, sizeof k->name, "rl:%s:%s:tok", pol_scope_names[scope], who);
        k->kind = 'r', k->scope = scope, k->unit = PC_TOK, k->limit = tpm;
        k->amount = p->tokens_reserved;
    }
}

static void pol_add_budget(pol_req_t *p, int scope, const char *who, double usd, int period)
{
    if (p->n >= POL_MAX_CHECKS) return;
    int64_t start, end;
    pc_period_bounds(period, time(NULL), &start, &end);
    pc_check_t *k = &p->checks[p->n++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "bg:%s:%s:%lld", pol_scope_names[scope], who,
             (long long)start);
    k->kind = 'b', k->scope = scope, k->unit = PC_USD;
    int64_t lim = pc_nusd(usd);
    k->limit = lim > (1ll << 52) ? (1ll << 52) : lim;
    k->amount = p->max_cost_nusd;
    k->period_end = end;
    k->ttl_s = end - start + 7 * 86400;
}

static const cfg_limit_t *pol_find_limit(const cfg_limit_t *v, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (v[i].name && strcmp(v[i].name, name) == 0) return &v[i];
    return NULL;
}

static void pol_build_checks(api_ctx_t *c, pol_req_t *p)
{
    const config_t *cfg = c->cfg;
    const cfg_model_t *m = c->model;
    int64_t mtv = 0;
    bool mt_int = false;
    if (!p->body && c->fast) { /* the fast path: only scanned (core/jscan.h) */
        mt_int = c->fast->max_tokens == JS_INT || c->fast->max_completion_tokens == JS_INT;
        mtv = c->fast->max_tokens == JS_INT ? c->fast->max_tokens_v
                                            : c->fast->max_completion_tokens_v;
    } else {
        json_t *mt = json_object_get(p->body, "max_tokens");
        if (!json_is_integer(mt)) mt = json_object_get(p->body, "max_completion_tokens");
        mt_int = json_is_integer(mt);
        mtv = mt_int ? json_integer_value(mt) : 0;
    }
    int64_t max_out = mt_int && mtv > 0 ? mtv : cfg->limits.default_max_tokens;
    if (p->ep == EP_EMBEDDINGS) max_out = 0;
    if (max_out > 100000000) max_out = 100000000;
    int64_t prompt_est = (int64_t)(c->req->body_len / 4) + 8;
    p->tokens_reserved = prompt_est + max_out;
    p->max_cost_nusd = pc_nusd(cost_usd(&m->price, (long)prompt_est, 0, (long)max_out));
    p->n = 0;
    if (p->key) pol_add_rate(p, PC_SCOPE_KEY, p->key->id, p->key->rpm, p->key->tpm);
    const cfg_limit_t *tl = pol_find_limit(cfg->limits.teams, cfg->limits.n_teams, p->team);
    if (tl) pol_add_rate(p, PC_SCOPE_TEAM, tl->name, tl->rpm, tl->tpm);
    const cfg_limit_t *dl = pol_find_limit(cfg->limits.models, cfg->limits.n_models, m->name);
    if (dl) pol_add_rate(p, PC_SCOPE_DEPLOYMENT, dl->name, dl->rpm, dl->tpm);
    pol_add_rate(p, PC_SCOPE_GLOBAL, "all", cfg->limits.rpm, cfg->limits.tpm);
    if (p->fallback) return; /* a fallback request is not charged to the exhausted budgets */
    if (p->key) pol_add_budget(p, PC_SCOPE_KEY, p->key->id, p->key->budget_usd, p->key->period);
    if (p->team)
        for (size_t i = 0; i < cfg->budgets.n_teams; i++)
            if (cfg->budgets.teams[i].name && !strcmp(cfg->budgets.teams[i].name, p->team))
                pol_add_budget(p, PC_SCOPE_TEAM, p->team, cfg->budgets.teams[i].usd,
                               cfg->budgets.teams[i].period);
}

/* "20ms", "1s", "6m0s", like OpenAI's x-ratelimit-reset-* */
static void pol_fmt_reset(char *out, size_t n, int64_t ms)
{
    if (ms < 0) ms = 0;
    if (ms < 1000)
        snprintf(out, n, "%lldms", (long long)ms);
    else if (ms < 60000)
        snprintf(out, n, "%llds", (long long)((ms + 999) / 1000));
    else
        snprintf(out, n, "%lldm%llds", (long long)(ms / 60000), (long long)(ms % 60000 / 1000));
}

/* x-ratelimit-* from the tightest window of each unit. admitted: counts
 * include this request. */
static void pol_rate_headers(api_ctx_t *c, pol_req_t *p, bool admitted)
{
    for (int unit = PC_REQ; unit <= PC_TOK; unit++) {
        const pc_check_t *best = NULL;
        int64_t best_rem = 0;
        for (size_t i = 0; i < p->n; i++) {
            const pc_check_t *k = &p->checks[i];
            if (k->kind != 'r' || k->unit != unit) continue;
            int64_t rem = k->limit - k->used - (admitted ? k->amount : 0);
            if (rem < 0) rem = 0;
            if (!best || rem < best_rem) best = k, best_rem = rem;
        }
        if (!best) continue;
        const char *u = unit == PC_REQ ? "requests" : "tokens";
        char name[48], v[32];
        snprintf(name, sizeof name, "x-ratelimit-limit-%s", u);
        http_resp_headerf(c->req, name, "%lld", (long long)best->limit);
        snprintf(name, sizeof name, "x-ratelimit-remaining-%s", u);
        http_resp_headerf(c->req, name, "%lld", (long long)best_rem);
        snprintf(name, sizeof name, "x-ratelimit-reset-%s", u);
        int64_t reset = best->reset_ms;
        if (admitted && reset <= 0) reset = PC_WINDOW_S * 1000;
        pol_fmt_reset(v, sizeof v, reset);
        http_resp_header(c->req, name, v);
    }
}

static void pol_go(api_ctx_t *c, pol_req_t *p)
{
    json_t *body = p->body;
    p->body = NULL;
    c->req->on_abort = NULL;
    cache_dispatch(c, p->ep, body, p->stream, p->client_usage); /* cache, else the relay */
}

static void pol_fail(api_ctx_t *c, pol_req_t *p)
{
    json_decref(p->body);
    p->body = NULL;
    c->req->on_abort = NULL;
}

static void pol_admit_run(api_ctx_t *c, pol_req_t *p);

/* The outcome of an admission (local or Redis): failed = index or -1. */
static void pol_admit_result(api_ctx_t *c, pol_req_t *p, bool ok, int failed, int64_t now_ms)
{
    if (ok) {
        p->admitted = true;
        pol_rate_headers(c, p, true);
        pol_go(c, p);
        return;
    }
    pc_check_t *k = &p->checks[failed];
    if (k->kind == 'b') {
        atomic_fetch_add(&pol_budget_rejects[k->scope == PC_SCOPE_TEAM], 1);
        pol_alert_check(c->cfg, k, k->used, k->used, true);
        const char *fm = c->cfg->budgets.fallback_model;
        const cfg_model_t *fb =
            c->cfg->budgets.fallback && fm ? config_find_model(c->cfg, fm, strlen(fm)) : NULL;
        if (fb && fb != c->model && !p->fallback) {
            atomic_fetch_add(&pol_budget_fallbacks, 1);
            p->fallback = true;
            c->model = fb;   /* c->ms stays the series the request started on */
            c->cands = NULL; /* the relay makes them anew: fb, then its fallbacks */
            c->n_cands = 0;
            http_resp_header(c->req, "x-skuld-budget", "fallback");
            pol_admit_run(c, p);
            return;
        }
        int64_t secs = (k->period_end * 1000 - now_ms + 999) / 1000;
        if (secs < 1) secs = 1;
        http_resp_headerf(c->req, "Retry-After", "%lld", (long long)secs);
        pol_fail(c, p);
        api_send_error(c, 429, "insufficient_quota", "budget_exceeded", NULL,
                       "the %s budget of $%.2f for this period is exhausted (resets in %llds)",
                       k->scope == PC_SCOPE_TEAM ? "team" : "key", (double)k->limit / 1e9,
                       (long long)secs);
        return;
    }
    atomic_fetch_add(&pol_rl_rejects[k->scope][k->unit == PC_TOK], 1);
    /* checks after the failed one were not evaluated */
    p->n = (size_t)failed + 1;
    pol_rate_headers(c, p, false);
    int64_t ra = (k->reset_ms + 999) / 1000;
    if (ra < 1) ra = 1;
    http_resp_headerf(c->req, "Retry-After", "%lld", (long long)ra);
    pol_fail(c, p);
    api_send_error(c, 429, NULL, "rate_limit_exceeded", NULL,
                   "rate limit reached: %s %s per minute for this %s (limit %lld); retry in %llds",
                   k->unit == PC_TOK ? "tokens" : "requests", k->unit == PC_TOK ? "used" : "made",
                   pol_scope_names[k->scope], (long long)k->limit, (long long)ra);
}

/* ---- Redis admission ---- */

struct pol_pending {
    predis_call_t call; /* first */
    api_ctx_t *c;       /* NULL once the request is gone */
    worker_t *w;
    bool fail_open;
    pc_check_t checks[POL_MAX_CHECKS];
    size_t n;
};

typedef struct pol_settle_call {
    predis_call_t call;
    pc_check_t checks[POL_MAX_CHECKS];
    size_t n;
    config_t *cfg; /* reference for alerts; NULL when none */
    worker_t *w;
    cfg_redis_t rc; /* timeout and policy only (url stays with the snapshot) */
    struct event *retry;
    int tries;
} pol_settle_call_t;

#define POL_SETTLE_TRIES 60 /* one a second: a minute of Redis being unreachable */

static void pol_settle_free(pol_settle_call_t *s)
{
    if (s->retry) event_free(s->retry);
    if (s->cfg) config_unref(s->cfg);
    free(s);
}

static void pol_settle_done(predis_call_t *call, redisReply *r, bool late)
{
    pol_settle_call_t *s = (pol_settle_call_t *)call;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 * s->n) {
        for (size_t i = 0; i < s->n; i++)
            if (s->checks[i].kind == 'b')
                pol_alert_check(s->cfg, &s->checks[i], r->element[2 * i]->integer,
                                r->element[2 * i + 1]->integer, false);
    }
    if (!late && call->timed_out) return; /* the late reply follows */
    pol_settle_free(s);
}

static void pol_settle_send(pol_settle_call_t *s);

static void pol_settle_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pol_settle_send(arg);
}

/* A settlement that could not even be sent (Redis unreachable) is retried
 * every second for a minute; one that was sent is never repeated (its
 * outcome may be unknown, and a repeat would charge twice). */
static void pol_settle_send(pol_settle_call_t *s)
{
    const char *keys[POL_MAX_CHECKS], *args[4 * POL_MAX_CHECKS];
    char names[POL_MAX_CHECKS][200], nums[POL_MAX_CHECKS][3][24];
    const pc_check_t *v = s->checks;
    for (size_t i = 0; i < s->n; i++) {
        snprintf(names[i], sizeof names[i], "skuld:%.190s", v[i].name);
        keys[i] = names[i];
        snprintf(nums[i][0], 24, "%lld", (long long)v[i].slot);
        snprintf(nums[i][1], 24, "%lld", (long long)v[i].amount);
        snprintf(nums[i][2], 24, "%lld", (long long)v[i].actual);
        args[4 * i] = v[i].kind == 'r' ? "r" : "b";
        args[4 * i + 1] = nums[i][0];
        args[4 * i + 2] = nums[i][1];
        args[4 * i + 3] = nums[i][2];
    }
    if (predis_eval(s->w, &s->rc, &s->call, POL_LUA_SETTLE, (int)s->n, keys, (int)(4 * s->n),
                    args) == 0)
        return;
    if (++s->tries < POL_SETTLE_TRIES &&
        (s->retry || (s->retry = evtimer_new(s->w->base, pol_settle_retry, s)))) {
        struct timeval tv = {1, 0};
        evtimer_add(s->retry, &tv);
        return;
    }
    log_warn("redis: a settlement could not be sent; its reservation stays until the counter "
             "expires");
    pol_settle_free(s);
}

/* Send the settlement of checks (with .actual set) to Redis; fire and forget. */
static void pol_redis_settle(worker_t *w, const cfg_redis_t *rc, config_t *cfg, const pc_check_t *v,
                             size_t n)
{
    pol_settle_call_t *s = calloc(1, sizeof *s);
    if (!s) return;
    memcpy(s->checks, v, n * sizeof *v);
    s->n = n;
    s->call.done = pol_settle_done;
    s->w = w;
    s->rc.timeout_ms = rc->timeout_ms > 1000 ? rc->timeout_ms : 1000;
    s->rc.fail_open = rc->fail_open;
    s->rc.url = NULL;
    s->cfg = cfg ? config_ref(cfg) : NULL;
    pol_settle_send(s);
}

static void pol_pending_abort(http_req_t *req)
{
    api_ctx_t *c = req->udata;
    pol_req_t *p = c->pol;
    if (p && p->pending) {
        p->pending->c = NULL;
        p->pending = NULL;
    }
    if (p) {
        json_decref(p->body);
        p->body = NULL;
    }
    c->error = "client closed the connection";
    api_account(c, 499);
}

/* Redis could not answer an admission (down, error, timeout): redis.on_failure
 * decides. Nothing was reserved, so nothing is settled. */
static void pol_redis_unavailable(api_ctx_t *c, pol_req_t *p)
{
    p->n = 0;
    if (c->cfg->redis.fail_open) {
        atomic_fetch_add(&pol_redis_policy[0], 1);
        pol_go(c, p);
    } else {
        atomic_fetch_add(&pol_redis_policy[1], 1);
        pol_fail(c, p);
        api_send_error(c, 503, NULL, "limits_unavailable", NULL,
                       "the shared limit store is unavailable (redis.on_failure: closed)");
    }
}

static void pol_admit_done(predis_call_t *call, redisReply *r, bool late)
{
    pol_pending_t *pp = (pol_pending_t *)call;
    bool ok_reply = r && r->type == REDIS_REPLY_ARRAY && r->elements >= 4 + 2 * 0;
    if (late || !pp->c) {
        /* Nobody waits for this answer (timed out, or the client left): an
         * admission that happened in Redis is released. With fail-open the
         * request ran uncounted; its request count is kept. */
        if (ok_reply && r->element[0]->integer == 1 && (late || !pp->c)) {
            for (size_t i = 0; i < pp->n; i++) {
                pp->checks[i].slot = r->element[2]->integer;
                pp->checks[i].actual = pp->checks[i].unit == PC_REQ && pp->fail_open && late
                                           ? pp->checks[i].amount
                                           : 0;
            }
            cfg_redis_t rc = {.timeout_ms = 2000};
            pol_redis_settle(pp->w, &rc, NULL, pp->checks, pp->n);
        }
        if (late || !call->timed_out) free(pp);
        return;
    }
    api_ctx_t *c = pp->c;
    pol_req_t *p = c->pol;
    p->pending = NULL;
    if (!r || !ok_reply) {
        /* unavailable, error or timeout: the configured policy decides */
        pp->c = NULL;
        if (!call->timed_out) free(pp);
        pol_redis_unavailable(c, p);
        return;
    }
    bool admitted = r->element[0]->integer == 1;
    int failed = (int)r->element[1]->integer - 1;
    int64_t now_s = r->element[2]->integer, now_ms = r->element[3]->integer;
    size_t have = (r->elements - 4) / 2;
    for (size_t i = 0; i < p->n && i < have; i++) {
        p->checks[i].used = r->element[4 + 2 * i]->integer;
        p->checks[i].reset_ms = r->element[5 + 2 * i]->integer;
        if (p->checks[i].kind == 'b')
            p->checks[i].reset_ms = p->checks[i].period_end * 1000 - now_ms;
        p->checks[i].slot = now_s;
    }
    free(pp);
    if (!admitted && (failed < 0 || (size_t)failed >= p->n)) failed = 0;
    pol_admit_result(c, p, admitted, failed, now_ms);
}

static void pol_admit_redis(api_ctx_t *c, pol_req_t *p)
{
    pol_pending_t *pp = calloc(1, sizeof *pp);
    if (!pp) {
        pol_fail(c, p);
        api_send_error(c, 500, NULL, "internal_error", NULL, "out of memory");
        return;
    }
    pp->call.done = pol_admit_done;
    pp->c = c;
    pp->w = c->w;
    pp->fail_open = c->cfg->redis.fail_open;
    memcpy(pp->checks, p->checks, p->n * sizeof p->checks[0]);
    pp->n = p->n;
    const char *keys[POL_MAX_CHECKS], *args[4 * POL_MAX_CHECKS];
    char names[POL_MAX_CHECKS][200], nums[POL_MAX_CHECKS][3][24];
    for (size_t i = 0; i < p->n; i++) {
        const pc_check_t *k = &p->checks[i];
        snprintf(names[i], sizeof names[i], "skuld:%s", k->name);
        keys[i] = names[i];
        snprintf(nums[i][0], 24, "%lld", (long long)k->limit);
        snprintf(nums[i][1], 24, "%lld", (long long)k->amount);
        snprintf(nums[i][2], 24, "%lld", (long long)(k->ttl_s > 0 ? k->ttl_s : 61));
        args[4 * i] = k->kind == 'r' ? "r" : "b";
        args[4 * i + 1] = nums[i][0];
        args[4 * i + 2] = nums[i][1];
        args[4 * i + 3] = nums[i][2];
    }
    if (predis_eval(c->w, &c->cfg->redis, &pp->call, POL_LUA_ADMIT, (int)p->n, keys,
                    (int)(4 * p->n), args) != 0) {
        free(pp);
        pol_redis_unavailable(c, p);
        return;
    }
    p->pending = pp;
    c->req->on_abort = pol_pending_abort;
}

static void pol_admit_run(api_ctx_t *c, pol_req_t *p)
{
    pol_build_checks(c, p);
    if (!p->n) {
        pol_go(c, p);
        return;
    }
    if (c->cfg->redis.url) {
        pol_admit_redis(c, p);
        return;
    }
    size_t failed = 0;
    int64_t now_ms = (int64_t)time_wall_ms();
    int ok = pc_local_admit(p->checks, p->n, now_ms, &failed);
    pol_admit_result(c, p, ok == 1, (int)failed, now_ms);
}

void policy_admit(api_ctx_t *c, endpoint_t ep, json_t *body, bool stream, bool client_usage)
{
    pol_req_t *p = pol_req(c);
    if (!p) {
        cache_dispatch(c, ep, body, stream, client_usage); /* cache, else the relay */
        return;
    }
    p->admitting = true;
    p->ep = ep;
    p->body = body;
    p->stream = stream;
    p->client_usage = client_usage;
    if (p->key && p->key->models.n) {
        bool allowed = false;
        for (size_t i = 0; i < p->key->models.n; i++)
            if (strcmp(p->key->models.v[i], c->model->name) == 0) allowed = true;
        if (!allowed) {
            atomic_fetch_add(&pol_auth_fail[1], 1);
            pol_fail(c, p);
            api_send_error(c, 403, NULL, "model_not_allowed", "model",
                           "this API key may not use the model '%s'", c->model->name);
            return;
        }
    }
    pol_admit_run(c, p);
}

/* ------------------------------------------------------------------------ */
/* settlement */

void policy_settle(api_ctx_t *c, int status)
{
    pol_req_t *p = c->pol;
    if (!p || p->settled) return;
    p->settled = true;
    if (p->pending) { /* the Redis answer will find nobody and release */
        p->pending->c = NULL;
        p->pending = NULL;
    }
    if (p->usage) {
        p->usage->c = NULL;
        p->usage = NULL;
    }
    if (p->body) {
        json_decref(p->body);
        p->body = NULL;
    }
    if (!p->admitting || !c->model) return;
    long pt = c->prompt_tokens > 0 ? c->prompt_tokens : 0;
    long ct = c->completion_tokens > 0 ? c->completion_tokens : 0;
    long cached = c->cached_tokens > 0 ? c->cached_tokens : 0;
    double cost = (pt || ct) ? cost_usd(&c->model->price, pt, cached, ct) : 0;
    int64_t cost_n = pc_nusd(cost);
    if (p->admitted && p->n) {
        for (size_t i = 0; i < p->n; i++) {
            pc_check_t *k = &p->checks[i];
            k->actual = k->unit == PC_REQ ? k->amount : k->unit == PC_TOK ? pt + ct : cost_n;
        }
        if (c->cfg->redis.url) {
            pol_redis_settle(c->w, &c->cfg->redis, c->cfg, p->checks, p->n);
        } else {
            int64_t before[POL_MAX_CHECKS], after[POL_MAX_CHECKS];
            pc_local_settle(p->checks, p->n, (int64_t)time_wall_ms(), before, after);
            for (size_t i = 0; i < p->n; i++)
                if (p->checks[i].kind == 'b')
                    pol_alert_check(c->cfg, &p->checks[i], before[i], after[i], false);
        }
    }
    if (p->key) {
        atomic_fetch_add(&p->key->requests, 1);
        atomic_fetch_add(&p->key->prompt_tokens, (uint64_t)pt);
        atomic_fetch_add(&p->key->completion_tokens, (uint64_t)ct);
        atomic_fetch_add(&p->key->spend_nusd, (uint64_t)cost_n);
    }
    if (pol_store) {
        store_spend_t row = {
            .request_id = c->request_id,
            .key_id = p->key_id,
            .team = p->team,
            .user = p->user,
            .model = c->model->name,
            .ts_ms = (int64_t)time_wall_ms(),
            .prompt_tokens = c->prompt_tokens,
            .completion_tokens = c->completion_tokens,
            .latency_ms = (int64_t)((time_mono_ns() - c->req->start_ns) / 1000000),
            .status = status,
            .cost_usd = cost,
        };
        store_spend_add(pol_store, &row, NULL, NULL, NULL);
    }
}

/* ------------------------------------------------------------------------ */
/* usage */

static void pol_usage_json(buf_t *o, const pol_key_t *k, int64_t spent, int64_t reserved,
                           int64_t pstart, int64_t pend, const char *source)
{
    buf_appends(o, "{\"id\":");
    jsonw_cstr(o, k->id);
    buf_appends(o, ",\"prefix\":");
    jsonw_cstr(o, k->prefix);
    buf_appends(o, ",\"name\":");
    k->name ? jsonw_cstr(o, k->name) : buf_appends(o, "null");
    buf_appends(o, ",\"team\":");
    k->team ? jsonw_cstr(o, k->team) : buf_appends(o, "null");
    buf_appends(o, ",\"user\":");
    k->user ? jsonw_cstr(o, k->user) : buf_appends(o, "null");
    buf_printf(o,
               ",\"period\":\"%s\",\"period_start\":%lld,\"reset_at\":%lld,"
               "\"budget_usd\":%.9g,\"spend_usd\":%.9f,\"reserved_usd\":%.9f",
               config_budget_period_name(k->period), (long long)pstart, (long long)pend,
               k->budget_usd, (double)spent / 1e9, (double)reserved / 1e9);
    if (k->budget_usd > 0) {
        double rem = k->budget_usd - (double)(spent + reserved) / 1e9;
        buf_printf(o, ",\"remaining_usd\":%.9f", rem > 0 ? rem : 0);
    }
    buf_printf(o,
               ",\"rpm\":%d,\"tpm\":%d,\"source\":\"%s\",\"instance\":{\"requests\":%llu,"
               "\"prompt_tokens\":%llu,\"completion_tokens\":%llu,\"spend_usd\":%.9f}}",
               k->rpm, k->tpm, source, (unsigned long long)atomic_load(&k->requests),
               (unsigned long long)atomic_load(&k->prompt_tokens),
               (unsigned long long)atomic_load(&k->completion_tokens),
               (double)atomic_load(&k->spend_nusd) / 1e9);
}

typedef struct pol_usage_call pol_usage_call_t;

static void pol_brow_init(pol_brow_t *b, pol_key_t *k, const char *team, double usd, int period)
{
    memset(b, 0, sizeof *b);
    b->k = k;
    b->team = team;
    b->budget_usd = usd;
    b->period = period;
    pc_period_bounds(period, time(NULL), &b->start, &b->end);
    snprintf(b->name, sizeof b->name, "bg:%s:%s:%lld", k ? "key" : "team", k ? k->id : team,
             (long long)b->start);
}

/* GET /admin/budgets: every budget with its spend this period. */
static void pol_budgets_json(buf_t *o, const pol_brow_t *v, size_t n, const char *source)
{
    buf_appends(o, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < n; i++) {
        const pol_brow_t *b = &v[i];
        buf_appends(o, i ? ",{\"scope\":" : "{\"scope\":");
        if (b->k) {
            buf_appends(o, "\"key\",\"id\":");
            jsonw_cstr(o, b->k->id);
            buf_appends(o, ",\"name\":");
            b->k->name ? jsonw_cstr(o, b->k->name) : buf_appends(o, "null");
            buf_appends(o, ",\"team\":");
            b->k->team ? jsonw_cstr(o, b->k->team) : buf_appends(o, "null");
        } else {
            buf_appends(o, "\"team\",\"team\":");
            jsonw_cstr(o, b->team);
        }
        double used = (double)(b->spent + b->reserved) / 1e9, rem = b->budget_usd - used;
        buf_printf(o,
                   ",\"period\":\"%s\",\"period_start\":%lld,\"reset_at\":%lld,"
                   "\"budget_usd\":%.9g,\"spend_usd\":%.9f,\"reserved_usd\":%.9f,"
                   "\"remaining_usd\":%.9f,\"used_pct\":%.2f}",
                   config_budget_period_name(b->period), (long long)b->start, (long long)b->end,
                   b->budget_usd, (double)b->spent / 1e9, (double)b->reserved / 1e9,
                   rem > 0 ? rem : 0, b->budget_usd > 0 ? 100.0 * used / b->budget_usd : 0);
    }
    buf_printf(o, "],\"source\":\"%s\"}", source);
}

/* Answer u's request from its rows (counters read from source). */
static void pol_usage_answer(pol_usage_call_t *u, const char *source)
{
    buf_t o;
    buf_init(&o, 0);
    if (u->list)
        pol_budgets_json(&o, u->rows, u->n, source);
    else
        pol_usage_json(&o, u->rows[0].k, u->rows[0].spent, u->rows[0].reserved, u->rows[0].start,
                       u->rows[0].end, source);
    api_send(u->c, 200, "application/json", buf_data(&o), o.len);
    buf_free(&o);
}

static void pol_usage_abort(http_req_t *req)
{
    api_ctx_t *c = req->udata;
    pol_usage_call_t *u = c->pol ? c->pol->usage : NULL;
    if (u) u->c = NULL;
    if (c->pol) c->pol->usage = NULL;
    c->error = "client closed the connection";
    api_account(c, 499);
}

static void pol_usage_done(predis_call_t *call, redisReply *r, bool late)
{
    pol_usage_call_t *u = (pol_usage_call_t *)call;
    api_ctx_t *c = u->c;
    if (!late && c) {
        c->pol->usage = NULL;
        c->req->on_abort = NULL;
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 * u->n) {
            api_send_error(c, 503, NULL, "limits_unavailable", NULL,
                           "the shared counter store is unavailable");
        } else {
            for (size_t i = 0; i < 2 * u->n; i++) {
                int64_t v = r->element[i]->type == REDIS_REPLY_STRING
                                ? strtoll(r->element[i]->str, NULL, 10)
                                : 0;
                *(i % 2 ? &u->rows[i / 2].reserved : &u->rows[i / 2].spent) = v;
            }
            pol_usage_answer(u, "redis");
        }
        u->c = NULL;
    }
    if (late || !call->timed_out) free(u);
}

/* Read the counters of u's rows (locally, or in Redis) and answer; takes u. */
static void pol_usage_read(api_ctx_t *c, pol_usage_call_t *u)
{
    u->c = c;
    if (!c->cfg->redis.url || u->n == 0) {
        for (size_t i = 0; i < u->n; i++)
            pc_local_budget(u->rows[i].name, &u->rows[i].spent, &u->rows[i].reserved);
        pol_usage_answer(u, c->cfg->redis.url ? "redis" : "local");
        free(u);
        return;
    }
    pol_req_t *p = pol_req(c);
    char(*rk)[220] = malloc(u->n * sizeof *rk);
    const char **keys = malloc(u->n * sizeof *keys);
    bool queued = false;
    if (p && rk && keys) {
        for (size_t i = 0; i < u->n; i++) {
            snprintf(rk[i], sizeof rk[i], "skuld:%s", u->rows[i].name);
            keys[i] = rk[i];
        }
        u->call.done = pol_usage_done;
        queued = predis_eval(c->w, &c->cfg->redis, &u->call, POL_LUA_READ, (int)u->n, keys, 0,
                             NULL) == 0;
    }
    free(rk);
    free(keys);
    if (queued) {
        p->usage = u;
        c->req->on_abort = pol_usage_abort;
        return;
    }
    free(u);
    api_send_error(c, 503, NULL, "limits_unavailable", NULL,
                   "the shared counter store is unavailable");
}

void policy_send_usage(api_ctx_t *c, pol_key_t *k)
{
    pol_usage_call_t *u = calloc(1, sizeof *u + sizeof(pol_brow_t));
    if (!u) {
        api_send_error(c, 500, NULL, "internal_error", NULL, "out of memory");
        return;
    }
    u->n = 1;
    pol_brow_init(&u->rows[0], k, NULL, k->budget_usd, k->period);
    pol_usage_read(c, u);
}

void policy_send_budgets(api_ctx_t *c)
{
    const cfg_budgets_t *bc = &c->cfg->budgets;
    size_t nk = 0;
    pol_key_t **keys = pol_keys_list(&nk);
    pol_usage_call_t *u = calloc(1, sizeof *u + (bc->n_teams + nk) * sizeof(pol_brow_t));
    if (!u) {
        free(keys);
        api_send_error(c, 500, NULL, "internal_error", NULL, "out of memory");
        return;
    }
    u->list = true;
    for (size_t i = 0; i < bc->n_teams; i++)
        pol_brow_init(&u->rows[u->n++], NULL, bc->teams[i].name, bc->teams[i].usd,
                      bc->teams[i].period);
    for (size_t i = 0; i < nk; i++)
        if (keys[i]->budget_usd > 0 && !keys[i]->revoked)
            pol_brow_init(&u->rows[u->n++], keys[i], NULL, keys[i]->budget_usd, keys[i]->period);
    free(keys);
    pol_usage_read(c, u);
}
