#include "core/secure.h"

bool secure_equal(const char *given, size_t given_len, const char *expected, size_t expected_len)
{
    /* Walk the whole expected value whatever was given; fold every difference
     * (and a length mismatch) into one accumulator. */
    volatile unsigned char acc = (unsigned char)(given_len != expected_len);
    for (size_t i = 0; i < expected_len; i++) {
        unsigned char g = i < given_len ? (unsigned char)given[i] : 0;
        acc |= (unsigned char)(g ^ (unsigned char)expected[i]);
    }
    return acc == 0;
}
