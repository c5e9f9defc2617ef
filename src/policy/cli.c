/*
 * cli.c — see cli.h.
 *
 *   skuld keys create -c FILE [--name N] [--team T] [--user U] [--rpm N]
 *                     [--tpm N] [--budget-usd X] [--period P]
 *                     [--models a,b] [--expires-at UNIX]
 *       prints {"key":"sk-...","id":"key_..."} (the key, once)
 *   skuld keys list -c FILE          one JSON object per key (no secrets)
 *   skuld keys revoke ID -c FILE
 */
#include "policy/cli.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "policy/keys.h"
#include "store/store.h"

typedef struct cli_wait {
    int rc;
    char err[256];
} cli_wait_t;

static void cli_done(void *ud, int rc, const char *err)
{
    cli_wait_t *w = ud;
    w->rc = rc;
    if (err) snprintf(w->err, sizeof w->err, "%s", err);
}

static void cli_list_one(void *ud, const char *id, const char *hash, const char *spec)
{
    (void)hash;
    json_error_t je;
    json_t *o = json_loads(spec, 0, &je);
    if (!o) return;
    json_object_set_new(o, "id", json_string(id));
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    if (s) printf("%s\n", s);
    free(s);
    json_decref(o);
    (*(int *)ud)++;
}

typedef struct cli_find {
    const char *id;
    char *hash, *spec;
} cli_find_t;

static void cli_find_one(void *ud, const char *id, const char *hash, const char *spec)
{
    cli_find_t *f = ud;
    if (strcmp(id, f->id) != 0) return;
    f->hash = strdup(hash);
    f->spec = strdup(spec);
}

static int cli_usage(void)
{
    fprintf(stderr,
            "usage: skuld keys create|list|revoke [ID] -c FILE [options]\n"
            "  create options: --name N --team T --user U --rpm N --tpm N "
            "--budget-usd X --period daily|weekly|monthly --models a,b --expires-at UNIX\n");
    return 2;
}

int policy_cli_keys(int argc, char **argv)
{
    if (argc < 3) return cli_usage();
    const char *sub = argv[2], *file = NULL, *id = NULL;
    json_t *opts = json_object();
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && v) {
            file = v, i++;
        } else if (!strncmp(a, "--", 2) && v && !strcmp(sub, "create")) {
            const char *k = a + 2;
            if (!strcmp(k, "rpm") || !strcmp(k, "tpm") || !strcmp(k, "expires-at"))
                json_object_set_new(opts, !strcmp(k, "expires-at") ? "expires_at" : k,
                                    json_integer(strtoll(v, NULL, 10)));
            else if (!strcmp(k, "budget-usd"))
                json_object_set_new(opts, "budget_usd", json_real(strtod(v, NULL)));
            else if (!strcmp(k, "models")) {
                json_t *arr = json_array();
                char *dup = strdup(v), *save = NULL;
                for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save))
                    json_array_append_new(arr, json_string(t));
                free(dup);
                json_object_set_new(opts, "models", arr);
            } else if (!strcmp(k, "name") || !strcmp(k, "team") || !strcmp(k, "user") ||
                       !strcmp(k, "period"))
                json_object_set_new(opts, k, json_string(v));
            else {
                fprintf(stderr, "skuld keys: unknown option %s\n", a);
                json_decref(opts);
                return 2;
            }
            i++;
        } else if (a[0] != '-' && !id) {
            id = a;
        } else {
            fprintf(stderr, "skuld keys: unexpected argument '%s'\n", a);
            json_decref(opts);
            return 2;
        }
    }
    if (!file) {
        json_decref(opts);
        fprintf(stderr, "skuld keys: -c FILE is required\n");
        return 2;
    }
    config_t *cfg = config_load_or_report(file, stderr);
    if (!cfg) {
        json_decref(opts);
        return 1;
    }
    if (!cfg->store.url) {
        fprintf(stderr, "skuld keys: %s has no store.url; keys need a store\n", file);
        config_unref(cfg);
        json_decref(opts);
        return 1;
    }
    char err[512];
    store_t *s = store_open(cfg->store.url, (int)cfg->store.timeout_ms, err, sizeof err);
    config_unref(cfg);
    if (!s) {
        fprintf(stderr, "skuld keys: %s\n", err);
        json_decref(opts);
        return 1;
    }
    int rc = 0;
    cli_wait_t w = {.rc = -1};
    if (!strcmp(sub, "create")) {
        char *text = json_dumps(opts, JSON_COMPACT);
        pol_key_t *k = pol_key_from_options(text, err, sizeof err);
        free(text);
        char secret[POL_KEY_LEN + 1];
        if (!k || pol_key_generate(secret, k->id) != 0) {
            fprintf(stderr, "skuld keys create: %s\n", k ? "cannot generate a key" : err);
            pol_key_free(k);
            rc = 1;
        } else {
            secure_sha256(secret, strlen(secret), k->hash);
            snprintf(k->prefix, sizeof k->prefix, "%.11s", secret);
            char hex[65];
            secure_hex(k->hash, 32, hex);
            char *spec = pol_key_spec_json(k);
            store_key_put(s, k->id, hex, spec, NULL, cli_done, &w);
            store_close(s); /* drains: the callback has run */
            s = NULL;
            free(spec);
            if (w.rc < 0) {
                fprintf(stderr, "skuld keys create: %s\n", w.err);
                rc = 1;
            } else {
                printf("{\"key\":\"%s\",\"id\":\"%s\"}\n", secret, k->id);
            }
            OPENSSL_cleanse(secret, sizeof secret);
            pol_key_free(k);
        }
    } else if (!strcmp(sub, "list")) {
        int n = 0;
        rc = store_key_load(s, cli_list_one, &n) == 0 ? 0 : 1;
    } else if (!strcmp(sub, "revoke") && id) {
        cli_find_t f = {.id = id};
        if (store_key_load(s, cli_find_one, &f) != 0 || !f.spec) {
            fprintf(stderr, "skuld keys revoke: no key %s\n", id);
            rc = 1;
        } else {
            json_error_t je;
            json_t *o = json_loads(f.spec, 0, &je);
            json_object_set_new(o, "revoked", json_true());
            char *spec = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
            json_decref(o);
            store_key_put(s, id, f.hash, spec, NULL, cli_done, &w);
            store_close(s);
            s = NULL;
            free(spec);
            if (w.rc < 0) {
                fprintf(stderr, "skuld keys revoke: %s\n", w.err);
                rc = 1;
            } else {
                printf("{\"revoked\":true,\"id\":\"%s\"}\n", id);
            }
        }
        free(f.hash);
        free(f.spec);
    } else {
        rc = cli_usage();
    }
    if (s) store_close(s);
    json_decref(opts);
    return rc;
}
