/*
 * secrets.c — see secrets.h.
 */
#include "policy/secrets.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "policy/keys.h"

#define PSEC_MAX 4096

static int psec_key(const char *pass, unsigned char key[32])
{
    if (!pass || !*pass) return -1;
    secure_sha256(pass, strlen(pass), key);
    return 0;
}

char *psec_seal(const char *pass, const char *provider, const char *plain)
{
    unsigned char key[32], nonce[12], tag[16];
    size_t pl = strlen(plain);
    if (pl > PSEC_MAX || psec_key(pass, key) != 0 || RAND_bytes(nonce, sizeof nonce) != 1)
        return NULL;
    unsigned char *ct = malloc(pl + 1);
    char *out = malloc(3 + 24 + 1 + 2 * (pl + 16) + 1);
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0;
    bool ok = ct && out && x && EVP_EncryptInit_ex(x, EVP_aes_256_gcm(), NULL, key, nonce) == 1 &&
              EVP_EncryptUpdate(x, NULL, &len, (const unsigned char *)provider,
                                (int)strlen(provider)) == 1 &&
              EVP_EncryptUpdate(x, ct, &len, (const unsigned char *)plain, (int)pl) == 1 &&
              EVP_EncryptFinal_ex(x, ct + len, &fin) == 1 &&
              EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
    EVP_CIPHER_CTX_free(x);
    OPENSSL_cleanse(key, sizeof key);
    if (!ok) {
        free(ct);
        free(out);
        return NULL;
    }
    memcpy(out, "v1:", 3);
    secure_hex(nonce, 12, out + 3);
    out[27] = ':';
    secure_hex(ct, pl, out + 28);
    secure_hex(tag, 16, out + 28 + 2 * pl);
    free(ct);
    return out;
}

char *psec_open(const char *pass, const char *provider, const char *sealed)
{
    size_t sl = sealed ? strlen(sealed) : 0;
    if (sl < 28 + 32 || strncmp(sealed, "v1:", 3) != 0 || sealed[27] != ':' || (sl - 28) % 2)
        return NULL;
    size_t cl = (sl - 28) / 2 - 16; /* ciphertext bytes */
    unsigned char key[32], nonce[12], tag[16];
    unsigned char *ct = malloc(cl + 16 + 1);
    char *plain = malloc(cl + 1);
    char nh[25];
    memcpy(nh, sealed + 3, 24);
    nh[24] = '\0';
    bool ok = ct && plain && psec_key(pass, key) == 0 && secure_unhex(nh, nonce, 12) == 0 &&
              secure_unhex(sealed + 28, ct, cl + 16) == 0;
    if (ok) {
        memcpy(tag, ct + cl, 16);
        EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
        int len = 0, fin = 0;
        ok = x && EVP_DecryptInit_ex(x, EVP_aes_256_gcm(), NULL, key, nonce) == 1 &&
             EVP_DecryptUpdate(x, NULL, &len, (const unsigned char *)provider,
                               (int)strlen(provider)) == 1 &&
             EVP_DecryptUpdate(x, (unsigned char *)plain, &len, ct, (int)cl) == 1 &&
             EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1 &&
             EVP_DecryptFinal_ex(x, (unsigned char *)plain + len, &fin) == 1;
        EVP_CIPHER_CTX_free(x);
        if (ok) plain[cl] = '\0';
    }
    OPENSSL_cleanse(key, sizeof key);
    free(ct);
    if (!ok) {
        if (plain) OPENSSL_cleanse(plain, cl + 1);
        free(plain);
        return NULL;
    }
    return plain;
}

/* ---- overrides ---- */

typedef struct psec_entry {
    struct psec_entry *next;
    char *provider, *plain;
} psec_entry_t;

static pthread_mutex_t psec_mu = PTHREAD_MUTEX_INITIALIZER;
static psec_entry_t *psec_list;

void psec_set(const char *provider, const char *plain)
{
    pthread_mutex_lock(&psec_mu);
    psec_entry_t *e = psec_list;
    while (e && strcmp(e->provider, provider) != 0) e = e->next;
    if (!e && (e = calloc(1, sizeof *e)) && (e->provider = strdup(provider))) {
        e->next = psec_list;
        psec_list = e;
    }
    if (e && e->provider) {
        if (e->plain) {
            OPENSSL_cleanse(e->plain, strlen(e->plain));
            free(e->plain);
        }
        e->plain = strdup(plain);
    }
    pthread_mutex_unlock(&psec_mu);
}

void psec_apply(config_t *c)
{
    pthread_mutex_lock(&psec_mu);
    for (psec_entry_t *e = psec_list; e; e = e->next) {
        for (size_t i = 0; i < c->n_providers; i++) {
            cfg_provider_t *p = &c->providers[i];
            if (!p->base_url || strcmp(p->name, e->provider) != 0 || !e->plain) continue;
            char *nk = strdup(e->plain);
            if (!nk) continue;
            if (p->api_key) {
                OPENSSL_cleanse(p->api_key, strlen(p->api_key));
                free(p->api_key);
            }
            p->api_key = nk;
        }
    }
    pthread_mutex_unlock(&psec_mu);
}

typedef struct psec_load_ctx {
    const char *pass;
    size_t n, bad;
} psec_load_ctx_t;

static void psec__loaded(void *ud, const char *provider, const char *sealed)
{
    psec_load_ctx_t *l = ud;
    char *plain = psec_open(l->pass, provider, sealed);
    if (!plain) {
        l->bad++;
        log_error("secrets: the stored api_key of provider '%s' cannot be unsealed (wrong "
                  "store.encryption_key or tampered); the config's value is used",
                  provider);
        return;
    }
    psec_set(provider, plain);
    OPENSSL_cleanse(plain, strlen(plain));
    free(plain);
    l->n++;
}

void psec_load(store_t *s, const char *passphrase)
{
    if (!s) return;
    psec_load_ctx_t l = {.pass = passphrase};
    if (!passphrase) {
        /* nothing can be unsealed; say so only if something is stored */
        l.pass = "";
    }
    store_secret_load(s, psec__loaded, &l);
    if (l.n) log_info("secrets: %zu provider key(s) loaded from the store", l.n);
}
