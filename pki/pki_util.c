/*
 * pki_util.c: the plumbing every pki/ file shares: OpenSSL error reporting,
 * time conversion, and the SHA-256 / HMAC-SHA256 digests of the public API.
 * Key and certificate files go through common/file.c.
 */
#include "pki/pki_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>

void pki_set_err(char err[ERR_LEN], const char *fmt, ...)
{
    if (err == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, ERR_LEN, fmt, ap);
    va_end(ap);
}

void pki_ossl_err(char err[ERR_LEN], const char *what)
{
    unsigned long code = ERR_peek_last_error();
    const char *reason = code != 0 ? ERR_reason_error_string(code) : NULL;
    pki_set_err(err, "%s: %s", what, reason != NULL ? reason : "failed");
    log_debug("pki", "%s failed: %s", what, reason != NULL ? reason : "no OpenSSL error");
    ERR_clear_error();
}

int pki_asn1_time_get(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return -1;
    *out = (int64_t)timegm(&tm);
    return 0;
}

const EVP_MD *pki_sign_md(const EVP_PKEY *key)
{
    switch (pki_key_type_of(key)) {
    case PKI_KEY_P384:
        return EVP_sha384();
    case PKI_KEY_ED25519:
        return NULL;
    default:
        return EVP_sha256();
    }
}

unsigned char *pki_ossl_to_heap(unsigned char *p, size_t len)
{
    unsigned char *q = xmalloc(len);
    memcpy(q, p, len);
    OPENSSL_free(p);
    return q;
}

void pki_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    /* A digest that silently left out unset would be compared later; stop instead. */
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32) {
        log_err("pki", "EVP_Digest(SHA-256) failed");
        abort();
    }
}

int pki_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                    unsigned char out[32])
{
    size_t n = 0;
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen, data, len, out, 32, &n) ==
            NULL ||
        n != 32) {
        pki_ossl_err(NULL, "EVP_Q_mac(HMAC-SHA256)");
        return -1;
    }
    return 0;
}

