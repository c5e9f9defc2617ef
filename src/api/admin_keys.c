/*
 * admin_keys — /admin/keys: virtual API keys (issue 8). Master key only
 * (admin.c checked it), except GET /admin/keys/ID/usage, which a key may
 * call for itself (policy_admin_nonmaster).
 *
 *   POST   /admin/keys               create: {name, team, user, models, rpm, tpm,
 *                                    budget_usd, period, expires_at} -> 201
 *                                    {"key":"sk-...","id":...,...}; the key is
 *                                    shown this once
 *   GET    /admin/keys               list (ids, prefixes, settings; never keys)
 *   GET    /admin/keys/ID            one key
 *   GET    /admin/keys/ID/usage      spend and reservations this period, counts
 *   POST   /admin/keys/ID/revoke     revoke (also DELETE /admin/keys/ID)
 *   POST   /admin/keys/ID/rotate     a new secret for the same id and settings
 *   PUT    /admin/providers/NAME/api_key  {"api_key":"..."}: a provider's key,
 *                                    sealed into the store, live after a reload
 *
 * Changes are written through the store writer (with a store) and applied to
 * the in-memory table when the write committed, then answered; without a
 * store they live in memory until restart. If the client leaves first the
 * change still happens, the answer is dropped.
 */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "core/jsonw.h"
#include "policy/keys.h"
#include "policy/policy.h"
#include "policy/secrets.h"
#include "api/control.h"

enum { AK_CREATE, AK_REVOKE, AK_ROTATE };

typedef struct ak_pending {
    api_ctx_t *c; /* NULL once the client left */
    int op;
    pol_key_t *fresh; /* AK_CREATE: the new entry (owned until upserted) */
    pol_key_t *entry; /* AK_REVOKE, AK_ROTATE */
    char secret[POL_KEY_LEN + 1];
    unsigned char hash[32];
    char prefix[16];
} ak_pending_t;

static void ak_key_json(buf_t *o, const pol_key_t *k)
{
    char *spec = pol_key_spec_json(k);
    json_error_t je;
    json_t *j = spec ? json_loads(spec, 0, &je) : NULL;
    free(spec);
    if (!j) {
        buf_appends(o, "{}");
        return;
    }
    json_object_set_new(j, "id", json_string(k->id));
    char *txt = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    buf_appends(o, txt ? txt : "{}");
    free(txt);
}

static void ak_abort(pl_req_t *r)
{
    api_ctx_t *c = r->fe_ud;
    ak_pending_t *p = c->pol_admin;
    if (p) p->c = NULL;
    c->pol_admin = NULL;
}

static void ak_finish(ak_pending_t *p, int rc, const char *err)
{
    api_ctx_t *c = p->c;
    if (rc >= 0) {
        if (p->op == AK_CREATE) {
            p->entry = pol_keys_upsert(p->fresh);
            p->fresh = NULL;
        } else if (p->op == AK_REVOKE) {
            pol_keys_set_revoked(p->entry);
        } else {
            pol_keys_set_hash(p->entry, p->hash, p->prefix);
        }
    }
    if (c) {
        c->pol_admin = NULL;
        c->r->on_abort = NULL;
        if (rc < 0 || !p->entry) {
            api_send_error(c, 503, NULL, "store_unavailable", NULL,
                           "the key change could not be stored");
        } else {
            buf_t o;
            buf_init(&o, 0);
            if (p->op == AK_REVOKE) {
                buf_appends(&o, "{\"revoked\":true,\"id\":");
                jsonw_cstr(&o, p->entry->id);
                buf_appends(&o, "}");
            } else {
                buf_appends(&o, "{\"key\":");
                jsonw_cstr(&o, p->secret);
                buf_appends(&o, ",\"id\":");
                jsonw_cstr(&o, p->entry->id);
                buf_appends(&o, ",\"details\":");
                ak_key_json(&o, p->entry);
                buf_appends(&o, "}");
            }
            api_send(c, p->op == AK_CREATE ? 201 : 200, "application/json", buf_data(&o), o.len);
            OPENSSL_cleanse(o.mem, o.cap);
            buf_free(&o);
        }
    }
    (void)err;
    pol_key_free(p->fresh);
    OPENSSL_cleanse(p->secret, sizeof p->secret);
    free(p);
}

static void ak_written(void *ud, int rc, const char *err)
{
    ak_finish(ud, rc, err);
}

/* Persist spec for id, then ak_finish. */
static void ak_commit(api_ctx_t *c, ak_pending_t *p, const char *id, const char *spec)
{
    store_t *s = policy_store();
    if (!s) {
        ak_finish(p, 0, NULL);
        return;
    }
    char hex[65];
    secure_hex(p->op == AK_REVOKE ? p->entry->hash : p->hash, 32, hex);
    p->c = c;
    c->pol_admin = p;
    c->r->on_abort = ak_abort;
    store_key_put(s, id, hex, spec, c->env->base, ak_written, p);
}

/* Persist key k (its stored spec) for the pending change p; answers 500 if
 * the spec cannot be built. */
static void ak_commit_key(api_ctx_t *c, ak_pending_t *p, const pol_key_t *k, const char *id)
{
    char *spec = pol_key_spec_json(k);
    if (!spec) {
        p->c = NULL;
        ak_finish(p, -1, NULL);
        api_send_error(c, 500, NULL, "internal_error", NULL, "out of memory");
        return;
    }
    ak_commit(c, p, id, spec);
    free(spec);
}

static void ak_create(api_ctx_t *c)
{
    char err[160];
    pol_key_t *k = pol_key_from_options(c->req->body, err, sizeof err);
    if (!k) {
        api_send_error(c, 400, NULL, "invalid_key_options", NULL, "%s", err);
        return;
    }
    ak_pending_t *p = calloc(1, sizeof *p);
    if (!p || pol_key_generate(p->secret, k->id) != 0) {
        free(p);
        pol_key_free(k);
        api_send_error(c, 500, NULL, "internal_error", NULL, "cannot generate a key");
        return;
    }
    p->op = AK_CREATE;
    p->c = c;
    secure_sha256(p->secret, strlen(p->secret), k->hash);
    memcpy(p->hash, k->hash, 32);
    snprintf(k->prefix, sizeof k->prefix, "%.11s", p->secret);
    p->fresh = k;
    ak_commit_key(c, p, k, k->id);
}

static void ak_change(api_ctx_t *c, pol_key_t *k, int op)
{
    ak_pending_t *p = calloc(1, sizeof *p);
    if (!p) {
        api_send_error(c, 500, NULL, "internal_error", NULL, "out of memory");
        return;
    }
    p->op = op;
    p->c = c;
    p->entry = k;
    /* the stored spec of the changed key, built from a private copy */
    pol_key_t tmp = *k;
    if (op == AK_REVOKE) {
        tmp.revoked = true;
    } else {
        char id[POL_ID_LEN + 1];
        if (pol_key_generate(p->secret, id) != 0) {
            free(p);
            api_send_error(c, 500, NULL, "internal_error", NULL, "cannot generate a key");
            return;
        }
        secure_sha256(p->secret, strlen(p->secret), p->hash);
        snprintf(p->prefix, sizeof p->prefix, "%.11s", p->secret);
        memcpy(tmp.prefix, p->prefix, sizeof tmp.prefix);
    }
    ak_commit_key(c, p, &tmp, k->id);
}

static bool ak_method(http_req_t *r, const char *m)
{
    size_t n = strlen(m);
    return r->method.n == n && memcmp(r->method.p, m, n) == 0;
}

static bool ak_provider_key(api_ctx_t *c);

bool api_admin_keys(api_ctx_t *c)
{
    if (ak_provider_key(c)) return true;
    http_req_t *r = c->req;
    static const char base[] = "/admin/keys";
    size_t bl = sizeof base - 1;
    if (r->path.n < bl || memcmp(r->path.p, base, bl) != 0) return false;
    if (r->path.n == bl) {
        if (ak_method(r, "POST")) {
            ak_create(c);
        } else if (ak_method(r, "GET")) {
            size_t n = 0;
            pol_key_t **v = pol_keys_list(&n);
            buf_t o;
            buf_init(&o, 0);
            buf_appends(&o, "{\"object\":\"list\",\"data\":[");
            for (size_t i = 0; v && i < n; i++) {
                if (i) buf_appends(&o, ",");
                ak_key_json(&o, v[i]);
            }
            buf_appends(&o, "]}");
            free(v);
            api_send(c, 200, "application/json", buf_data(&o), o.len);
            buf_free(&o);
        } else {
            api_send_error(c, 405, NULL, "method_not_allowed", NULL,
                           "use GET or POST on /admin/keys");
        }
        return true;
    }
    if (r->path.p[bl] != '/') return false;
    /* /admin/keys/ID[/ACTION] */
    const char *rest = r->path.p + bl + 1;
    size_t rl = r->path.n - bl - 1;
    const char *slash = memchr(rest, '/', rl);
    size_t idl = slash ? (size_t)(slash - rest) : rl;
    const char *action = slash ? slash + 1 : "";
    size_t al = slash ? rl - idl - 1 : 0;
    char id[POL_ID_LEN + 1];
    pol_key_t *k = NULL;
    if (idl && idl <= POL_ID_LEN) {
        memcpy(id, rest, idl);
        id[idl] = '\0';
        k = pol_keys_find_id(id);
    }
    if (!k) {
        api_send_error(c, 404, NULL, "key_not_found", NULL, "no such key");
        return true;
    }
#define AK_ACTION(s) (al == sizeof(s) - 1 && memcmp(action, s, al) == 0)
    if (al == 0 && ak_method(r, "GET")) {
        buf_t o;
        buf_init(&o, 0);
        ak_key_json(&o, k);
        api_send(c, 200, "application/json", buf_data(&o), o.len);
        buf_free(&o);
    } else if ((al == 0 && ak_method(r, "DELETE")) ||
               (AK_ACTION("revoke") && ak_method(r, "POST"))) {
        ak_change(c, k, AK_REVOKE);
    } else if (AK_ACTION("rotate") && ak_method(r, "POST")) {
        if (k->revoked)
            api_send_error(c, 409, NULL, "key_revoked", NULL, "a revoked key cannot be rotated");
        else
            ak_change(c, k, AK_ROTATE);
    } else if (AK_ACTION("usage") && ak_method(r, "GET")) {
        pl_resume(c->r, policy_usage(c->r, k));
    } else {
        api_send_error(c, 404, NULL, "not_found", NULL, "unknown key endpoint");
    }
#undef AK_ACTION
    return true;
}

/* ------------------------------------------------------------------------ */
/* PUT|POST /admin/providers/NAME/api_key {"api_key":"..."}: seal the key
 * (policy/secrets.h) into the store, then reload so every worker's snapshot
 * uses it; answered once served. Needs store.url and store.encryption_key. */

typedef struct ak_secret {
    api_ctx_t *c; /* NULL once the client left */
    char *provider, *plain;
} ak_secret_t;

static void ak_secret_free(ak_secret_t *p)
{
    if (p->plain) OPENSSL_cleanse(p->plain, strlen(p->plain));
    free(p->plain);
    free(p->provider);
    free(p);
}

static void ak_ticket_abort(pl_req_t *r)
{
    api_ctx_t *c = r->fe_ud;
    if (c->ticket) c->ticket->alive = false;
    if (c->pol_admin) ((ak_secret_t *)c->pol_admin)->c = NULL;
    c->pol_admin = NULL;
}

static void ak_reloaded(ctl_ticket_t *t)
{
    api_ctx_t *c = t->ud;
    c->ticket = NULL;
    c->r->on_abort = NULL;
    if (t->status != 200) {
        api_send(c, t->status, "application/json", t->body, strlen(t->body));
        return;
    }
    const char *g = strstr(t->body, "\"generation\":");
    buf_t o;
    buf_init(&o, 0);
    buf_appends(&o, "{\"rotated\":true,\"persisted\":true,\"generation\":");
    buf_appends(&o, g ? g + 13 : "null}");
    api_send(c, 200, "application/json", buf_data(&o), o.len);
    buf_free(&o);
}

static void ak_secret_written(void *ud, int rc, const char *err)
{
    ak_secret_t *p = ud;
    api_ctx_t *c = p->c;
    (void)err;
    if (rc >= 0) psec_set(p->provider, p->plain);
    if (c) {
        c->pol_admin = NULL;
        ctl_ticket_t *t = rc >= 0 ? calloc(1, sizeof *t) : NULL;
        if (!t) {
            c->r->on_abort = NULL;
            api_send_error(c, 503, NULL, "store_unavailable", NULL,
                           "the provider key could not be stored");
        } else {
            t->op = CTL_RELOAD;
            t->base = c->env->base;
            t->reply = ak_reloaded;
            t->ud = c;
            t->alive = true;
            c->ticket = t;
            ctl_submit(t);
        }
    }
    ak_secret_free(p);
}

static bool ak_provider_key(api_ctx_t *c)
{
    http_req_t *r = c->req;
    static const char pre[] = "/admin/providers/", suf[] = "/api_key";
    size_t pl = sizeof pre - 1, sl = sizeof suf - 1;
    if (r->path.n <= pl + sl || memcmp(r->path.p, pre, pl) != 0 ||
        memcmp(r->path.p + r->path.n - sl, suf, sl) != 0)
        return false;
    if (!ak_method(r, "PUT") && !ak_method(r, "POST")) {
        api_send_error(c, 405, NULL, "method_not_allowed", NULL, "use PUT");
        return true;
    }
    size_t nl = r->path.n - pl - sl;
    const cfg_provider_t *prov = NULL;
    for (size_t i = 0; i < c->cfg->n_providers; i++)
        if (strlen(c->cfg->providers[i].name) == nl &&
            memcmp(c->cfg->providers[i].name, r->path.p + pl, nl) == 0)
            prov = &c->cfg->providers[i];
    if (!prov || !prov->base_url) {
        api_send_error(c, 404, NULL, "provider_not_found", NULL, "no remote provider of that name");
        return true;
    }
    store_t *s = policy_store();
    const char *pass = c->cfg->store.encryption_key;
    if (!s || !pass) {
        api_send_error(c, 409, NULL, "encryption_not_configured", NULL,
                       "storing provider keys needs store.url and store.encryption_key");
        return true;
    }
    json_error_t je;
    json_t *b = json_loadb(r->body ? r->body : "", r->body_len, 0, &je);
    const char *k = json_string_value(json_object_get(b, "api_key"));
    bool clean = k && *k && strlen(k) <= 4096;
    for (const char *q = k; clean && *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f) clean = false;
    if (!clean) {
        json_decref(b);
        api_send_error(c, 400, NULL, "invalid_api_key_value", "api_key",
                       "the body must be {\"api_key\":\"...\"} (printable, at most 4096 bytes)");
        return true;
    }
    ak_secret_t *p = calloc(1, sizeof *p);
    char *sealed = psec_seal(pass, prov->name, k);
    if (!p || !sealed || !(p->provider = strdup(prov->name)) || !(p->plain = strdup(k))) {
        json_decref(b);
        free(sealed);
        if (p) ak_secret_free(p);
        api_send_error(c, 500, NULL, "internal_error", NULL, "cannot seal the key");
        return true;
    }
    json_decref(b); /* the body copy in the arena stays until the request ends */
    p->c = c;
    c->pol_admin = p;
    c->r->on_abort = ak_ticket_abort;
    store_secret_put(s, prov->name, sealed, c->env->base, ak_secret_written, p);
    free(sealed);
    return true;
}
