/*
 * secure — small primitives for handling secrets.
 *
 * secure_equal() compares two byte strings in time that depends only on the
 * length of the expected value, never on where they first differ, so a
 * client cannot discover a key byte by byte from response timing.
 */
#ifndef SKULD_SECURE_H
#define SKULD_SECURE_H

#include <stdbool.h>
#include <stddef.h>

bool secure_equal(const char *given, size_t given_len, const char *expected, size_t expected_len);

#endif
