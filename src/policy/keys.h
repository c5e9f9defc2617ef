/*
 * keys — virtual API keys: generation, hashing, the in-memory table.
 *
 * A key is "sk-" followed by 48 hex digits (24 random bytes from OpenSSL's
 * RAND_bytes). It is shown once, when created or rotated; what is kept — in
 * memory and in the store (api_keys table) — is its SHA-256 and a short
 * display prefix ("sk-1a2b3c4d"). A presented credential is hashed and looked
 * up by hash; the final comparison is CRYPTO_memcmp (constant time).
 *
 * The table: every key known to this process (revoked ones included), loaded
 * from the store at start, changed by the admin API after the store committed,
 * and refreshed from the store every few seconds by the control thread (so a
 * key created or revoked on another instance sharing the database takes effect
 * here too). Entries are never freed while the process runs, so a request may
 * keep a pol_key_t pointer for its whole life without a reference count; the
 * only fields that change after insertion are `hash` (rotation) and `revoked`
 * (both under the table's write lock; readers copy what they need under the
 * read lock). The usage atomics are this instance's counters.
 *
 * Threads: lookups from worker loops (read lock, a hash probe, no I/O);
 * changes from worker loops (admin callbacks) or the control thread (write
 * lock, no I/O inside).
 */
#ifndef SKULD_POLICY_KEYS_H
#define SKULD_POLICY_KEYS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/secure.h" /* secure_sha256, secure_hex: the key hashes */

#define POL_KEY_LEN 51 /* "sk-" + 48 hex */
#define POL_ID_LEN 20  /* "key_" + 16 hex */

typedef struct pol_key {
    char id[POL_ID_LEN + 1];
    unsigned char hash[32];
    char prefix[16];
    char *name, *team, *user; /* may be NULL; immutable */
    cfg_strlist_t models;     /* allowed public model names; empty = all */
    int rpm, tpm;             /* 0 = unlimited */
    double budget_usd;        /* 0 = no budget (spend still tracked) */
    int period;               /* BUDGET_* */
    int64_t expires_at;       /* unix seconds; 0 = never */
    int64_t created_at;
    bool revoked;
    /* this instance's usage since start */
    _Atomic uint64_t requests, prompt_tokens, completion_tokens;
    _Atomic uint64_t spend_nusd; /* nano-USD */
} pol_key_t;

/* A fresh secret and id (RAND_bytes); 0 or -1. */
int pol_key_generate(char key[POL_KEY_LEN + 1], char id[POL_ID_LEN + 1]);

/* Metadata as stored (JSON object; never the secret). Caller frees. */
char *pol_key_spec_json(const pol_key_t *k);
/* Build a key from its id, hash (hex) and spec; NULL if malformed. */
pol_key_t *pol_key_from_spec(const char *id, const char *hash_hex, const char *spec);
/* Parse the admin/CLI options object into a new key (no hash yet); NULL and
 * a message in err when invalid. */
pol_key_t *pol_key_from_options(const char *json, char *err, size_t errlen);
void pol_key_free(pol_key_t *k);

/* ---- the table ---- */
/* Insert k (the table takes ownership), or, if k->id is known, update that
 * entry's hash and revoked flag and free k. Returns the entry. */
pol_key_t *pol_keys_upsert(pol_key_t *k);
/* The entry for a presented secret, or NULL. *revoked_or_expired tells an
 * unknown secret from a known but unusable one. */
pol_key_t *pol_keys_find_secret(const char *secret, size_t n, bool *unusable);
pol_key_t *pol_keys_find_id(const char *id);
/* Snapshot of the entries (pointers stay valid); caller frees the array. */
pol_key_t **pol_keys_list(size_t *n);
size_t pol_keys_count(void);
/* Revoke / rotate an entry in memory (after the store committed). */
void pol_keys_set_revoked(pol_key_t *k);
void pol_keys_set_hash(pol_key_t *k, const unsigned char hash[32], const char *prefix);

/* Control thread: load or refresh the table from the store (blocking). */
struct store;
int pol_keys_load(struct store *s);

#endif
