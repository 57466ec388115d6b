/*
 * pki_util.c: the plumbing every pki/ file shares: OpenSSL error reporting,
 * time conversion, and the SHA-256 / HMAC-SHA256 digests of the public API.
 * Key and certificate files go through common/file.c.
 */
#include "pki/pki_int.h"

#include <pthread.h>
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

#define HMAC_SPARE 8

/*
 * Duplicating the template allocates a MAC context and three digest contexts
 * per call; a used context that is re-initialised without a key (which keeps
 * the padded key) allocates nothing. So finished contexts wait in `spare`
 * and are taken again; the template is only duplicated when none is free.
 */
struct pki_hmac {
    EVP_MAC_CTX *tmpl; /* keyed, never updated: only duplicated */
    pthread_mutex_t mu;
    EVP_MAC_CTX *spare[HMAC_SPARE]; /* keyed, ready for EVP_MAC_init(NULL key) */
    size_t nspare;
};

struct pki_hmac *pki_hmac_new(const void *key, size_t keylen)
{
    struct pki_hmac *h = NULL;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                           OSSL_PARAM_construct_end()};

    if (ctx == NULL || EVP_MAC_init(ctx, key, keylen, params) != 1) {
        pki_ossl_err(NULL, "EVP_MAC_init(HMAC-SHA256)");
        EVP_MAC_CTX_free(ctx);
        goto out;
    }
    h = xcalloc(1, sizeof(*h));
    h->tmpl = ctx;
    pthread_mutex_init(&h->mu, NULL);
out:
    EVP_MAC_free(mac); /* the ctx holds its own reference */
    return h;
}

void pki_hmac_free(struct pki_hmac *h)
{
    if (h == NULL)
        return;
    EVP_MAC_CTX_free(h->tmpl);
    for (size_t i = 0; i < h->nspare; i++)
        EVP_MAC_CTX_free(h->spare[i]);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

int pki_hmac_sha256_keyed(struct pki_hmac *h, const void *data, size_t len,
                          unsigned char out[32])
{
    size_t n = 0;
    int rc = -1;
    EVP_MAC_CTX *ctx = NULL;

    pthread_mutex_lock(&h->mu);
    if (h->nspare > 0)
        ctx = h->spare[--h->nspare];
    pthread_mutex_unlock(&h->mu);
    /* a spare context restarts from the template's key; else a fresh copy of it */
    if (ctx != NULL && EVP_MAC_init(ctx, NULL, 0, NULL) != 1) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    if (ctx == NULL)
        ctx = EVP_MAC_CTX_dup(h->tmpl);
    if (ctx == NULL || EVP_MAC_update(ctx, data, len) != 1 ||
        EVP_MAC_final(ctx, out, &n, 32) != 1 || n != 32) {
        pki_ossl_err(NULL, "EVP_MAC_final(HMAC-SHA256)");
        goto out;
    }
    rc = 0;
    pthread_mutex_lock(&h->mu);
    if (h->nspare < HMAC_SPARE) {
        h->spare[h->nspare++] = ctx;
        ctx = NULL;
    }
    pthread_mutex_unlock(&h->mu);
out:
    EVP_MAC_CTX_free(ctx);
    return rc;
}
