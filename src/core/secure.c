#include "core/secure.h"

#include <openssl/evp.h>
#include <pthread.h>
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

/* EVP_Digest() allocates a context and looks SHA-256 up in the provider
 * tables on every call (about 5,000 instructions, more than the hash of a
 * key): the algorithm is fetched once, and each thread keeps one context,
 * freed by the key's destructor when the thread ends. */
static EVP_MD *secure__md;
static pthread_key_t secure__ctx_key;
static pthread_once_t secure__once = PTHREAD_ONCE_INIT;

static void secure__ctx_free(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void secure__init(void)
{
    secure__md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (pthread_key_create(&secure__ctx_key, secure__ctx_free) != 0) {
        EVP_MD_free(secure__md);
        secure__md = NULL;
    }
}

void secure_sha256(const char *s, size_t n, unsigned char out[32])
{
    unsigned int len = 32;
    pthread_once(&secure__once, secure__init);
    EVP_MD_CTX *ctx = secure__md ? pthread_getspecific(secure__ctx_key) : NULL;
    if (secure__md && !ctx && (ctx = EVP_MD_CTX_new()) &&
        pthread_setspecific(secure__ctx_key, ctx) != 0) {
        EVP_MD_CTX_free(ctx);
        ctx = NULL;
    }
    if (ctx && EVP_DigestInit_ex2(ctx, secure__md, NULL) == 1 && EVP_DigestUpdate(ctx, s, n) == 1 &&
        EVP_DigestFinal_ex(ctx, out, &len) == 1)
        return;
    EVP_Digest(s, n, out, &len, EVP_sha256(), NULL); /* out of memory: the slow way */
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
