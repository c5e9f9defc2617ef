/*
 * secrets — provider API keys kept in the store, sealed at rest, rotatable
 * without a restart (issue 8).
 *
 * Sealing: AES-256-GCM (OpenSSL EVP), key = SHA-256 of store.encryption_key
 * (an env:/file: secret), a fresh 12-byte random nonce per seal, the provider
 * name as additional authenticated data (a sealed value cannot be moved to
 * another provider). Text form "v1:" NONCE_HEX ":" CIPHERTEXT||TAG_HEX; the
 * plaintext never reaches the store or a log.
 *
 * Overrides: provider name -> plaintext key, in process memory under a mutex,
 * loaded (and unsealed) at start and changed by the admin API after the store
 * committed. psec_apply() writes them into a snapshot that is being built
 * (the gateway calls it for every new snapshot, before publishing), so a
 * rotated key takes effect through an ordinary reload.
 */
#ifndef SKULD_POLICY_SECRETS_H
#define SKULD_POLICY_SECRETS_H

#include <stddef.h>

#include "config/config.h"
#include "store/store.h"

/* "v1:..." (malloc'd) or NULL. */
char *psec_seal(const char *passphrase, const char *provider, const char *plain);
/* The plaintext (malloc'd) or NULL when tampered, wrong key or malformed. */
char *psec_open(const char *passphrase, const char *provider, const char *sealed);

/* Start-up: unseal every stored provider key (blocking; main thread). */
void psec_load(store_t *s, const char *passphrase);
/* Set the in-memory override for provider (copies plain). */
void psec_set(const char *provider, const char *plain);
/* Replace the api_key of every overridden provider in c (not yet published). */
void psec_apply(config_t *c);

#endif
