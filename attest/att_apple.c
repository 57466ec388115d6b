/*
 * att_apple: the Apple MDA chain. One immutable X509_STORE per verifier (the
 * built-in Apple Enterprise Attestation Root CA or configured PEM roots),
 * shared by threads; each verification gets its own X509_STORE_CTX with the
 * caller's time. No purpose is set: 2026 leaves carry Apple's own EKU
 * 1.2.840.113635.100.4.24, which any TLS purpose would refuse.
 */
#include "attest/att_int.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Apple Enterprise Attestation Root CA, SHA-256 of DER ccf59ef8...f05b (the copy step-ca pins). */
static const char apple_root_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIICJDCCAamgAwIBAgIUQsDCuyxyfFxeq/bxpm8frF15hzcwCgYIKoZIzj0EAwMw\n"
    "UTEtMCsGA1UEAwwkQXBwbGUgRW50ZXJwcmlzZSBBdHRlc3RhdGlvbiBSb290IENB\n"
    "MRMwEQYDVQQKDApBcHBsZSBJbmMuMQswCQYDVQQGEwJVUzAeFw0yMjAyMTYxOTAx\n"
    "MjRaFw00NzAyMjAwMDAwMDBaMFExLTArBgNVBAMMJEFwcGxlIEVudGVycHJpc2Ug\n"
    "QXR0ZXN0YXRpb24gUm9vdCBDQTETMBEGA1UECgwKQXBwbGUgSW5jLjELMAkGA1UE\n"
    "BhMCVVMwdjAQBgcqhkjOPQIBBgUrgQQAIgNiAAT6Jigq+Ps9Q4CoT8t8q+UnOe2p\n"
    "oT9nRaUfGhBTbgvqSGXPjVkbYlIWYO+1zPk2Sz9hQ5ozzmLrPmTBgEWRcHjA2/y7\n"
    "7GEicps9wn2tj+G89l3INNDKETdxSPPIZpPj8VmjQjBAMA8GA1UdEwEB/wQFMAMB\n"
    "Af8wHQYDVR0OBBYEFPNqTQGd8muBpV5du+UIbVbi+d66MA4GA1UdDwEB/wQEAwIB\n"
    "BjAKBggqhkjOPQQDAwNpADBmAjEA1xpWmTLSpr1VH4f8Ypk8f3jMUKYz4QPG8mL5\n"
    "8m9sX/b2+eXpTv2pH4RZgJjucnbcAjEA4ZSB6S45FlPuS/u4pTnzoz632rA+xW/T\n"
    "ZwFEh9bhKjJ+5VQ9/Do1os0u3LEkgN/r\n"
    "-----END CERTIFICATE-----\n";

struct att_verifier {
    X509_STORE *store;
    struct att_limits limits;
    struct att_subca_cache *subca; /* sub CAs already verified against store (owned) */
};

void att_verifier_set_limits(struct att_verifier *v, const struct att_limits *lim)
{
    att_limits_normalize(lim, &v->limits);
}

/* Adds every certificate in bio to store; at least one. 0/-1. */
static int add_pem_roots(X509_STORE *store, BIO *bio, const char *name, char err[ERR_LEN])
{
    int n = 0;

    for (;;) {
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (x == NULL)
            break;
        int ok = X509_STORE_add_cert(store, x);
        X509_free(x);
        if (ok != 1) {
            snprintf(err, ERR_LEN, "%s: X509_STORE_add_cert failed", name);
            return -1;
        }
        n++;
    }
    unsigned long e = ERR_peek_last_error();
    ERR_clear_error();
    /* The loop ends on "no start line" at EOF; anything else is a broken block. */
    if (n == 0 || (e != 0 && ERR_GET_REASON(e) != PEM_R_NO_START_LINE)) {
        snprintf(err, ERR_LEN, "%s: no valid PEM certificate", name);
        return -1;
    }
    return 0;
}

struct att_verifier *att_verifier_new(const char *const *roots, size_t nroots, char err[ERR_LEN])
{
    struct att_verifier *v = xcalloc(1, sizeof(*v));
    BIO *bio = NULL;
    bool ok = false;

    v->subca = att_subca_cache_new();

    att_limits_normalize(NULL, &v->limits);
    v->store = X509_STORE_new();
    if (v->store == NULL) {
        snprintf(err, ERR_LEN, "X509_STORE_new failed");
        goto out;
    }
    if (nroots == 0) {
        bio = BIO_new_mem_buf(apple_root_pem, (int)(sizeof(apple_root_pem) - 1));
        if (bio == NULL || add_pem_roots(v->store, bio, "built-in Apple root", err) != 0)
            goto out;
    }
    for (size_t i = 0; i < nroots; i++) {
        BIO_free(bio);
        bio = BIO_new_file(roots[i], "r");
        if (bio == NULL) {
            snprintf(err, ERR_LEN, "%s: cannot open attestation root", roots[i]);
            ERR_clear_error();
            goto out;
        }
        if (add_pem_roots(v->store, bio, roots[i], err) != 0)
            goto out;
    }
    ok = true;
out:
    BIO_free(bio);
    if (!ok) {
        att_verifier_free(v);
        v = NULL;
    }
    return v;
}

void att_verifier_free(struct att_verifier *v)
{
    if (v == NULL)
        return;
    X509_STORE_free(v->store);
    att_subca_cache_free(v->subca);
    free(v);
}

static enum att_result verify_chain(const struct att_verifier *v, X509 *leaf,
                                    STACK_OF(X509) * inter, int64_t at, char err[ERR_LEN])
{
    enum att_result r = ATT_ERR_INTERNAL;
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    char when[32];

    if (att_subca_verify(v->subca, leaf, inter, at) == ATT_OK) {
        r = ATT_OK;
        goto out;
    }
    if (ctx == NULL || X509_STORE_CTX_init(ctx, v->store, leaf, inter) != 1) {
        snprintf(err, ERR_LEN, "X509_STORE_CTX_init failed");
        goto out;
    }
    /* Per-verification parameters live on the ctx so the shared store stays immutable. */
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_time(param, (time_t)at);
    X509_VERIFY_PARAM_set_depth(param, ATT_MAX_X5C);
    if (X509_verify_cert(ctx) == 1) {
        att_subca_remember(v->subca, X509_STORE_CTX_get0_chain(ctx));
        r = ATT_OK;
        goto out;
    }
    int code = X509_STORE_CTX_get_error(ctx);
    r = (code == X509_V_ERR_CERT_HAS_EXPIRED || code == X509_V_ERR_CERT_NOT_YET_VALID)
            ? ATT_ERR_VALIDITY
            : ATT_ERR_CHAIN;
    snprintf(err, ERR_LEN, "x5c chain does not verify at %s: %s (depth %d)",
             clk_fmt_rfc3339(at, when), X509_verify_cert_error_string(code),
             X509_STORE_CTX_get_error_depth(ctx));
out:
    X509_STORE_CTX_free(ctx);
    ERR_clear_error();
    return r;
}

/*
 * Claims first, so a caller that only inspects still sees them when the chain
 * fails; only an ATT_OK result makes them trustworthy.
 */
static enum att_result verify_certs(const struct att_verifier *v, X509 *leaf,
                                    STACK_OF(X509) * inter, int64_t at, struct att_claims *claims,
                                    char err[ERR_LEN])
{
    enum att_result r = att_claims_extract(leaf, claims, err);

    if (r != ATT_OK)
        return r;
    if (X509_check_ca(leaf) != 0) {
        snprintf(err, ERR_LEN, "x5c[0] is a CA certificate, not an attestation leaf");
        return ATT_ERR_CHAIN;
    }
    return verify_chain(v, leaf, inter, at, err);
}

/* DER with nothing after the certificate. */
static X509 *parse_der(const struct slice *s, size_t idx, char err[ERR_LEN])
{
    const unsigned char *p = s->p;
    X509 *x = d2i_X509(NULL, &p, (long)s->len);

    if (x == NULL || p != s->p + s->len) {
        snprintf(err, ERR_LEN, "attStmt.x5c[%zu] is not a DER certificate", idx);
        X509_free(x);
        ERR_clear_error();
        return NULL;
    }
    return x;
}

enum att_result att_verify(const struct att_verifier *v, const unsigned char *cbor, size_t len,
                           int64_t at, struct att_claims *claims, char err[ERR_LEN])
{
    enum att_result r = ATT_ERR_FORMAT;
    struct att_attobj obj;
    X509 *leaf = NULL;
    STACK_OF(X509) *inter = sk_X509_new_null();

    att_claims_clear(claims);
    if (att_attobj_parse(cbor, len, &v->limits, &obj, err) != 0)
        goto out;
    if (inter == NULL) {
        snprintf(err, ERR_LEN, "sk_X509_new_null failed");
        r = ATT_ERR_INTERNAL;
        goto out;
    }
    leaf = parse_der(&obj.x5c[0], 0, err);
    if (leaf == NULL)
        goto out;
    for (size_t i = 1; i < obj.nx5c; i++) {
        /* A sub CA seen before is reused: decoding its key is most of a parse. */
        X509 *x = att_subca_find_der(v->subca, obj.x5c[i].p, obj.x5c[i].len);
        if (x == NULL)
            x = parse_der(&obj.x5c[i], i, err);
        if (x == NULL)
            goto out;
        if (sk_X509_push(inter, x) <= 0) {
            X509_free(x);
            snprintf(err, ERR_LEN, "sk_X509_push failed");
            r = ATT_ERR_INTERNAL;
            goto out;
        }
    }
    r = verify_certs(v, leaf, inter, at, claims, err);
out:
    att_attobj_clear(&obj);
    X509_free(leaf);
    sk_X509_pop_free(inter, X509_free);
    return r;
}

/* Reads up to ATT_MAX_X5C certificates, each at most ATT_MAX_CERT_DER bytes. */
static enum att_result read_pem_chain(BIO *bio, X509 **leaf, STACK_OF(X509) * inter,
                                      char err[ERR_LEN])
{
    size_t n = 0;

    for (;;) {
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (x == NULL)
            break;
        int der_len = i2d_X509(x, NULL);
        if (n == ATT_MAX_X5C || der_len <= 0 || der_len > ATT_MAX_CERT_DER) {
            X509_free(x);
            snprintf(err, ERR_LEN, "PEM chain: certificate %zu is too large or one too many", n);
            return ATT_ERR_FORMAT;
        }
        if (n == 0) {
            *leaf = x;
        } else if (sk_X509_push(inter, x) <= 0) {
            X509_free(x);
            snprintf(err, ERR_LEN, "sk_X509_push failed");
            return ATT_ERR_INTERNAL;
        }
        n++;
    }
    unsigned long e = ERR_peek_last_error();
    ERR_clear_error();
    if (n == 0 || (e != 0 && ERR_GET_REASON(e) != PEM_R_NO_START_LINE)) {
        snprintf(err, ERR_LEN, "PEM chain: %s", n == 0 ? "no certificate" : "a broken PEM block");
        return ATT_ERR_FORMAT;
    }
    return ATT_OK;
}

enum att_result att_verify_chain_pem(const struct att_verifier *v, const char *pem, size_t len,
                                     int64_t at, struct att_claims *claims, char err[ERR_LEN])
{
    enum att_result r = ATT_ERR_FORMAT;
    X509 *leaf = NULL;
    STACK_OF(X509) *inter = sk_X509_new_null();
    BIO *bio = NULL;

    att_claims_clear(claims);
    if (pem == NULL || len == 0 || len > ATT_MAX_PEM) {
        snprintf(err, ERR_LEN, "PEM chain is empty or over %d bytes", ATT_MAX_PEM);
        goto out;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL || inter == NULL) {
        snprintf(err, ERR_LEN, "BIO_new_mem_buf failed");
        r = ATT_ERR_INTERNAL;
        goto out;
    }
    r = read_pem_chain(bio, &leaf, inter, err);
    if (r != ATT_OK)
        goto out;
    r = verify_certs(v, leaf, inter, at, claims, err);
out:
    BIO_free(bio);
    X509_free(leaf);
    sk_X509_pop_free(inter, X509_free);
    return r;
}
