/*
 * pki_cert.c: reading certificates: bounded DER parsing, serial numbers as
 * hex, issuer checks against a CA, PEM <-> DER and PEM chain files.
 */
#include "pki/pki.h"
#include "pki/pki_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

/* Serials above this many bytes do not fit char[41] (RFC 5280 caps them at 20). */
#define SERIAL_MAX_BYTES 20

X509 *pki_cert_parse_der(const unsigned char *der, size_t len, char err[ERR_LEN])
{
    const unsigned char *p = der;
    X509 *x;

    if (der == NULL || len == 0 || len > PKI_CERT_DER_MAX) {
        pki_set_err(err, "certificate is empty or larger than %d bytes", PKI_CERT_DER_MAX);
        return NULL;
    }
    x = d2i_X509(NULL, &p, (long)len);
    if (x == NULL || p != der + len) {
        pki_ossl_err(err, "d2i_X509");
        pki_set_err(err, "not a single DER certificate");
        X509_free(x);
        return NULL;
    }
    return x;
}

int pki_cert_serial_hex(const X509 *cert, char out[41])
{
    const ASN1_INTEGER *sn = cert != NULL ? X509_get0_serialNumber(cert) : NULL;
    const unsigned char *p;
    int len;

    out[0] = '\0';
    if (sn == NULL || ASN1_STRING_type(sn) != V_ASN1_INTEGER)
        return -1;
    p = ASN1_STRING_get0_data(sn);
    len = ASN1_STRING_length(sn);
    /* The magnitude is stored without DER's sign padding; strip any stray leading zeros. */
    while (len > 1 && p[0] == 0) {
        p++;
        len--;
    }
    if (len <= 0 || len > SERIAL_MAX_BYTES)
        return -1;
    hex_encode(p, (size_t)len, out);
    return 0;
}

bool pki_cert_issued_by(X509 *cert, const struct pki_ca *ca)
{
    EVP_PKEY *pub;
    bool ok;

    if (cert == NULL || ca == NULL)
        return false;
    if (X509_check_issued(ca->cert, cert) != X509_V_OK) {
        ERR_clear_error();
        return false;
    }
    pub = X509_get0_pubkey(ca->cert);
    ok = pub != NULL && X509_verify(cert, pub) == 1;
    ERR_clear_error();
    return ok;
}

int pki_pem_to_der(const char *pem, unsigned char **der, size_t *len)
{
    int rc = -1, n;
    unsigned char *p = NULL;
    X509 *x = NULL;
    BIO *bio = NULL;

    *der = NULL;
    *len = 0;
    if (pem == NULL)
        return -1;
    bio = BIO_new_mem_buf(pem, -1);
    if (bio == NULL)
        goto out;
    x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (x == NULL)
        goto out;
    n = i2d_X509(x, &p);
    if (n <= 0)
        goto out;
    *der = pki_ossl_to_heap(p, (size_t)n);
    *len = (size_t)n;
    rc = 0;
out:
    if (rc != 0)
        pki_ossl_err(NULL, "pki_pem_to_der");
    X509_free(x);
    BIO_free(bio);
    return rc;
}

char *pki_cert_pem(X509 *x, char err[ERR_LEN])
{
    char *data = NULL, *pem = NULL;
    long n;
    BIO *bio = BIO_new(BIO_s_mem());

    if (bio == NULL || PEM_write_bio_X509(bio, x) != 1) {
        pki_ossl_err(err, "PEM_write_bio_X509");
        goto out;
    }
    n = BIO_get_mem_data(bio, &data);
    if (n <= 0) {
        pki_ossl_err(err, "BIO_get_mem_data");
        goto out;
    }
    pem = xstrndup(data, (size_t)n);
out:
    BIO_free(bio);
    return pem;
}

STACK_OF(X509) * pki_read_certs(const char *path, int max, char err[ERR_LEN])
{
    bool ok = false;
    char *pem = NULL;
    size_t len = 0;
    BIO *bio = NULL;
    X509 *x;
    STACK_OF(X509) *sk = NULL;

    if (file_read(path, PKI_FILE_MAX, false, &pem, &len, err) != 0)
        return NULL;
    bio = BIO_new_mem_buf(pem, (int)len);
    sk = sk_X509_new_null();
    if (bio == NULL || sk == NULL) {
        pki_ossl_err(err, "BIO_new_mem_buf");
        goto out;
    }
    for (;;) {
        x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (x == NULL)
            break;
        if (sk_X509_num(sk) >= max || sk_X509_push(sk, x) <= 0) {
            X509_free(x);
            pki_set_err(err, "%s holds more than %d certificates", path, max);
            goto out;
        }
    }
    /* Reading stops with a "no start line" error at the end; anything else is real. */
    if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE || sk_X509_num(sk) == 0) {
        pki_ossl_err(err, "PEM_read_bio_X509");
        pki_set_err(err, "%s: no readable PEM certificate", path);
        goto out;
    }
    ERR_clear_error();
    ok = true;
out:
    if (!ok) {
        sk_X509_pop_free(sk, X509_free);
        sk = NULL;
    }
    BIO_free(bio);
    free(pem);
    return sk;
}
