/*
 * fuzz_csr: pki_csr_parse on arbitrary DER with every key type allowed, the
 * finalize path's first contact with client bytes. Accepted requests have
 * their names walked the way policy checks will read them. The self-signature
 * is checked before the names are read, and mutations break it, so every
 * input that OpenSSL can decode is also re-signed with a fixed key and parsed
 * again: that is what reaches the SAN and subject code.
 */
#include "pki/pki.h"

#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(char *const *v, size_t n)
{
    /* Each name must be a real NUL-terminated string. */
    for (size_t i = 0; i < n; i++)
        if (v[i] == NULL || strlen(v[i]) > 1u << 16)
            abort();
}

static void parse_one(const uint8_t *data, size_t size)
{
    struct pki_csr csr;
    char err[ERR_LEN];
    unsigned char *copy;
    char thumb[44];

    copy = xmalloc(size != 0 ? size : 1);
    memcpy(copy, data, size);
    memset(&csr, 0, sizeof(csr));
    err[0] = '\0';
    if (pki_csr_parse(copy, size, (1u << PKI_KEY__MAX) - 1, &csr, err) == 0) {
        if (csr.key == NULL || csr.req == NULL)
            abort();
        if (csr.cn != NULL)
            (void)strlen(csr.cn);
        walk(csr.dns, csr.ndns);
        walk(csr.ips, csr.nips);
        walk(csr.emails, csr.nemails);
        walk(csr.uris, csr.nuris);
        walk(csr.perm_ids, csr.nperm_ids);
        walk(csr.hw_modules, csr.nhw_modules);
        (void)pki_jwk_thumbprint(csr.key, thumb);
    } else if (err[0] == '\0') {
        abort(); /* a refusal must carry a badCSR detail */
    }
    pki_csr_clear(&csr);
    free(copy);
}

/* Re-signs what d2i_X509_REQ accepts with a fixed P-256 key and parses the result. */
static void parse_resigned(const uint8_t *data, size_t size)
{
    static EVP_PKEY *key;
    const unsigned char *p = data;
    unsigned char *der = NULL;
    X509_REQ *req;
    char err[ERR_LEN];
    int len;

    if (key == NULL) {
        key = pki_key_generate(PKI_KEY_P256, err);
        if (key == NULL)
            abort();
    }
    req = d2i_X509_REQ(NULL, &p, (long)size);
    if (req == NULL)
        return;
    if (X509_REQ_set_pubkey(req, key) == 1 && X509_REQ_sign(req, key, EVP_sha256()) > 0) {
        len = i2d_X509_REQ(req, &der);
        if (len > 0)
            parse_one(der, (size_t)len);
        OPENSSL_free(der);
    }
    X509_REQ_free(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_one(data, size);
    parse_resigned(data, size);
    return 0;
}
