/*
 * keys.c — see keys.h. The table is an array of entry pointers plus an
 * open-addressing index by hash (rebuilt on every change: changes are rare,
 * admin-driven), under one pthread rwlock.
 */
#include "policy/keys.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "store/store.h"

int pol_key_generate(char key[POL_KEY_LEN + 1], char id[POL_ID_LEN + 1])
{
    unsigned char r[24], i[8];
    if (RAND_bytes(r, sizeof r) != 1 || RAND_bytes(i, sizeof i) != 1) return -1;
    memcpy(key, "sk-", 3);
    secure_hex(r, sizeof r, key + 3);
    memcpy(id, "key_", 4);
    secure_hex(i, sizeof i, id + 4);
    OPENSSL_cleanse(r, sizeof r);
    return 0;
}

static char *pol_jstrdup(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v && *v ? strdup(v) : NULL;
}

char *pol_key_spec_json(const pol_key_t *k)
{
    json_t *o = json_object();
    json_t *models = json_array();
    for (size_t i = 0; i < k->models.n; i++)
        json_array_append_new(models, json_string(k->models.v[i]));
    json_object_set_new(o, "prefix", json_string(k->prefix));
    if (k->name) json_object_set_new(o, "name", json_string(k->name));
    if (k->team) json_object_set_new(o, "team", json_string(k->team));
    if (k->user) json_object_set_new(o, "user", json_string(k->user));
    json_object_set_new(o, "models", models);
    json_object_set_new(o, "rpm", json_integer(k->rpm));
    json_object_set_new(o, "tpm", json_integer(k->tpm));
    json_object_set_new(o, "budget_usd", json_real(k->budget_usd));
    json_object_set_new(o, "period", json_string(config_budget_period_name(k->period)));
    json_object_set_new(o, "expires_at", json_integer(k->expires_at));
    json_object_set_new(o, "created_at", json_integer(k->created_at));
    json_object_set_new(o, "revoked", json_boolean(k->revoked));
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}

void pol_key_free(pol_key_t *k)
{
    if (!k) return;
    free(k->name);
    free(k->team);
    free(k->user);
    for (size_t i = 0; i < k->models.n; i++) free(k->models.v[i]);
    free(k->models.v);
    free(k);
}

/* Fill k's metadata from a JSON object (admin options or stored spec). */
static int pol_key_fill(pol_key_t *k, json_t *o, char *err, size_t errlen)
{
    static const char *const known[] = {"name",       "team",   "user",       "models",
                                        "rpm",        "tpm",    "budget_usd", "period",
                                        "expires_at", "prefix", "created_at", "revoked"};
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        size_t i = 0;
        while (i < sizeof known / sizeof known[0] && strcmp(known[i], key) != 0) i++;
        if (i == sizeof known / sizeof known[0]) {
            snprintf(err, errlen, "unknown key option '%.40s'", key);
            return -1;
        }
    }
    const char *strs[] = {"name", "team", "user", "prefix", "period"};
    for (size_t i = 0; i < 5; i++) {
        v = json_object_get(o, strs[i]);
        if (v && !json_is_string(v) && !json_is_null(v)) {
            snprintf(err, errlen, "'%s' must be a string", strs[i]);
            return -1;
        }
        if (json_is_string(v) && json_string_length(v) > 200) {
            snprintf(err, errlen, "'%s' is too long", strs[i]);
            return -1;
        }
    }
    k->name = pol_jstrdup(o, "name");
    k->team = pol_jstrdup(o, "team");
    k->user = pol_jstrdup(o, "user");
    const char *pfx = json_string_value(json_object_get(o, "prefix"));
    if (pfx) snprintf(k->prefix, sizeof k->prefix, "%s", pfx);
    const char *ints[] = {"rpm", "tpm"};
    for (size_t i = 0; i < 2; i++) {
        v = json_object_get(o, ints[i]);
        if (v && !json_is_null(v) &&
            (!json_is_integer(v) || json_integer_value(v) < 0 ||
             json_integer_value(v) > INT32_MAX)) {
            snprintf(err, errlen, "'%s' must be a non-negative integer", ints[i]);
            return -1;
        }
        int n = v && json_is_integer(v) ? (int)json_integer_value(v) : 0;
        if (i == 0)
            k->rpm = n;
        else
            k->tpm = n;
    }
    v = json_object_get(o, "budget_usd");
    if (v && !json_is_null(v) && (!json_is_number(v) || json_number_value(v) < 0)) {
        snprintf(err, errlen, "'budget_usd' must be a non-negative number");
        return -1;
    }
    k->budget_usd = v && json_is_number(v) ? json_number_value(v) : 0;
    const char *per = json_string_value(json_object_get(o, "period"));
    k->period = BUDGET_MONTHLY;
    if (per) {
        int p = config_budget_period(per);
        if (p < 0) {
            snprintf(err, errlen, "'period' must be daily, weekly or monthly");
            return -1;
        }
        k->period = p;
    }
    v = json_object_get(o, "expires_at");
    if (v && !json_is_null(v) && (!json_is_integer(v) || json_integer_value(v) < 0)) {
        snprintf(err, errlen, "'expires_at' must be unix seconds");
        return -1;
    }
    k->expires_at = v && json_is_integer(v) ? json_integer_value(v) : 0;
    v = json_object_get(o, "created_at");
    k->created_at = json_is_integer(v) ? json_integer_value(v) : (int64_t)time(NULL);
    k->revoked = json_is_true(json_object_get(o, "revoked"));
    v = json_object_get(o, "models");
    if (v && !json_is_null(v)) {
        if (!json_is_array(v) || json_array_size(v) > 1000) {
            snprintf(err, errlen, "'models' must be a list of model names");
            return -1;
        }
        k->models.v = calloc(json_array_size(v) + 1, sizeof(char *));
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m)
        {
            if (!json_is_string(m)) {
                snprintf(err, errlen, "'models' must be a list of model names");
                return -1;
            }
            k->models.v[k->models.n++] = strdup(json_string_value(m));
        }
    }
    return 0;
}

pol_key_t *pol_key_from_options(const char *text, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *o = text && *text ? json_loads(text, JSON_REJECT_DUPLICATES, &jerr) : json_object();
    if (!json_is_object(o)) {
        json_decref(o);
        snprintf(err, errlen, "the body must be a JSON object of key options");
        return NULL;
    }
    if (json_object_get(o, "prefix") || json_object_get(o, "created_at") ||
        json_object_get(o, "revoked")) {
        json_decref(o);
        snprintf(err, errlen, "prefix, created_at and revoked are set by the gateway");
        return NULL;
    }
    pol_key_t *k = calloc(1, sizeof *k);
    if (!k || pol_key_fill(k, o, err, errlen) != 0) {
        json_decref(o);
        pol_key_free(k);
        return NULL;
    }
    json_decref(o);
    return k;
}

pol_key_t *pol_key_from_spec(const char *id, const char *hash_hex, const char *spec)
{
    json_error_t jerr;
    json_t *o = json_loads(spec, 0, &jerr);
    pol_key_t *k = calloc(1, sizeof *k);
    char err[128];
    if (!k || !json_is_object(o) || strlen(id) > POL_ID_LEN ||
        secure_unhex(hash_hex, k->hash, 32) != 0 || pol_key_fill(k, o, err, sizeof err) != 0) {
        json_decref(o);
        pol_key_free(k);
        return NULL;
    }
    json_decref(o);
    snprintf(k->id, sizeof k->id, "%s", id);
    return k;
}

/* ------------------------------------------------------------------------ */
/* the table */

static pthread_rwlock_t pol_keys_lock = PTHREAD_RWLOCK_INITIALIZER;
static pol_key_t **pol_keys_v; /* all entries */
static size_t pol_keys_n, pol_keys_cap;
static pol_key_t **pol_keys_idx; /* by hash, open addressing; size pol_keys_idx_cap */
static size_t pol_keys_idx_cap;

static size_t pol_hash_slot(const unsigned char h[32], size_t cap)
{
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return (size_t)(v & (cap - 1));
}

/* With the write lock held. */
static void pol_keys_reindex(void)
{
    size_t cap = 16;
    while (cap < pol_keys_n * 2 + 2) cap *= 2;
    pol_key_t **idx = calloc(cap, sizeof *idx);
    if (!idx) return; /* keep the old index: lookups of new entries fail until the next change */
    for (size_t i = 0; i < pol_keys_n; i++) {
        size_t s = pol_hash_slot(pol_keys_v[i]->hash, cap);
        while (idx[s]) s = (s + 1) & (cap - 1);
        idx[s] = pol_keys_v[i];
    }
    free(pol_keys_idx);
    pol_keys_idx = idx;
    pol_keys_idx_cap = cap;
}

static pol_key_t *pol_keys_find_id_locked(const char *id)
{
    for (size_t i = 0; i < pol_keys_n; i++)
        if (strcmp(pol_keys_v[i]->id, id) == 0) return pol_keys_v[i];
    return NULL;
}

pol_key_t *pol_keys_upsert(pol_key_t *k)
{
    pthread_rwlock_wrlock(&pol_keys_lock);
    pol_key_t *e = pol_keys_find_id_locked(k->id);
    if (e) {
        bool changed = memcmp(e->hash, k->hash, 32) != 0;
        memcpy(e->hash, k->hash, 32);
        memcpy(e->prefix, k->prefix, sizeof e->prefix);
        if (k->revoked) e->revoked = true;
        if (changed) pol_keys_reindex();
        pthread_rwlock_unlock(&pol_keys_lock);
        pol_key_free(k);
        return e;
    }
    if (pol_keys_n == pol_keys_cap) {
        size_t nc = pol_keys_cap ? pol_keys_cap * 2 : 64;
        pol_key_t **v = realloc(pol_keys_v, nc * sizeof *v);
        if (!v) {
            pthread_rwlock_unlock(&pol_keys_lock);
            pol_key_free(k);
            return NULL;
        }
        pol_keys_v = v;
        pol_keys_cap = nc;
    }
    pol_keys_v[pol_keys_n++] = k;
    pol_keys_reindex();
    pthread_rwlock_unlock(&pol_keys_lock);
    return k;
}

pol_key_t *pol_keys_find_secret(const char *secret, size_t n, bool *unusable)
{
    unsigned char h[32];
    secure_sha256(secret, n, h);
    *unusable = false;
    pol_key_t *found = NULL;
    pthread_rwlock_rdlock(&pol_keys_lock);
    if (pol_keys_idx_cap) {
        size_t s = pol_hash_slot(h, pol_keys_idx_cap);
        for (size_t probes = 0; probes < pol_keys_idx_cap && pol_keys_idx[s]; probes++) {
            if (CRYPTO_memcmp(pol_keys_idx[s]->hash, h, 32) == 0) {
                found = pol_keys_idx[s];
                break;
            }
            s = (s + 1) & (pol_keys_idx_cap - 1);
        }
    }
    if (found && (found->revoked || (found->expires_at && found->expires_at <= time(NULL)))) {
        *unusable = true;
        found = NULL;
    }
    pthread_rwlock_unlock(&pol_keys_lock);
    OPENSSL_cleanse(h, sizeof h);
    return found;
}

pol_key_t *pol_keys_find_id(const char *id)
{
    pthread_rwlock_rdlock(&pol_keys_lock);
    pol_key_t *k = pol_keys_find_id_locked(id);
    pthread_rwlock_unlock(&pol_keys_lock);
    return k;
}

pol_key_t **pol_keys_list(size_t *n)
{
    pthread_rwlock_rdlock(&pol_keys_lock);
    pol_key_t **v = malloc((pol_keys_n + 1) * sizeof *v);
    *n = 0;
    if (v) {
        memcpy(v, pol_keys_v, pol_keys_n * sizeof *v);
        *n = pol_keys_n;
    }
    pthread_rwlock_unlock(&pol_keys_lock);
    return v;
}

size_t pol_keys_count(void)
{
    pthread_rwlock_rdlock(&pol_keys_lock);
    size_t n = pol_keys_n;
    pthread_rwlock_unlock(&pol_keys_lock);
    return n;
}

void pol_keys_set_revoked(pol_key_t *k)
{
    pthread_rwlock_wrlock(&pol_keys_lock);
    k->revoked = true;
    pthread_rwlock_unlock(&pol_keys_lock);
}

void pol_keys_set_hash(pol_key_t *k, const unsigned char hash[32], const char *prefix)
{
    pthread_rwlock_wrlock(&pol_keys_lock);
    memcpy(k->hash, hash, 32);
    snprintf(k->prefix, sizeof k->prefix, "%s", prefix);
    pol_keys_reindex();
    pthread_rwlock_unlock(&pol_keys_lock);
}

static void pol_keys__loaded(void *ud, const char *id, const char *hash_hex, const char *spec)
{
    size_t *n = ud;
    pol_key_t *k = pol_key_from_spec(id, hash_hex, spec);
    if (!k) {
        log_warn("keys: stored key %s is malformed; ignored", id);
        return;
    }
    if (pol_keys_upsert(k)) (*n)++;
}

int pol_keys_load(struct store *s)
{
    size_t n = 0;
    if (!s) return 0;
    if (store_key_load(s, pol_keys__loaded, &n) != 0) return -1;
    return 0;
}
