/*
 * secure — small primitives for handling secrets.
 *
 * secure_equal() compares two byte strings in time that depends only on the
 * length of the expected value, never on where they first differ, so a
 * client cannot discover a key byte by byte from response timing.
 * secure_sha256() (OpenSSL) hashes keys and documents; secure_hex() and
 * secure_unhex() convert digests to and from lowercase hex.
 */
#ifndef SKULD_SECURE_H
#define SKULD_SECURE_H

#include <stdbool.h>
#include <stddef.h>

bool secure_equal(const char *given, size_t given_len, const char *expected, size_t expected_len);
void secure_sha256(const char *s, size_t n, unsigned char out[32]);
void secure_hex(const unsigned char *b, size_t n, char *out /* 2n+1 */);
/* hex must be exactly 2n hex digits; 0 or -1. */
int secure_unhex(const char *hex, unsigned char *out, size_t n);

#endif
