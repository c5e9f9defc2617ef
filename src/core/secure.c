#include "core/secure.h"

#include <openssl/evp.h>
#include <string.h>

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

void secure_sha256(const char *s, size_t n, unsigned char out[32])
{
    unsigned int len = 32;
    EVP_Digest(s, n, out, &len, EVP_sha256(), NULL);
}

void secure_hex(const unsigned char *b, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[b[i] >> 4];
        out[2 * i + 1] = hx[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int secure__hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int secure_unhex(const char *hex, unsigned char *out, size_t n)
{
    if (!hex || strlen(hex) != 2 * n) return -1;
    for (size_t i = 0; i < n; i++) {
        int a = secure__hexval(hex[2 * i]), b = secure__hexval(hex[2 * i + 1]);
        if (a < 0 || b < 0) return -1;
        out[i] = (unsigned char)(a << 4 | b);
    }
    return 0;
}
