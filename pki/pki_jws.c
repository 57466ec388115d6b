/*
 * pki_jws.c: JWS signature algorithms (RFC 7518 §3, RFC 8037): the alg
 * table, key fit, and verification/signing with the JOSE raw R||S form for
 * ECDSA, including the ES256 short-signature retry for older Apple clients.
 */
#include "pki/pki.h"
#include "pki/pki_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>

/* A JWS signature longer than this is refused outright (RSA-8192 is 1024 bytes). */
#define JWS_SIG_MAX 1024

struct jws_alg_info {
    const char *name;
    int base_id;       /* EVP_PKEY_EC / _RSA / _ED25519 */
    const char *group; /* EC group the alg requires, else NULL */
    const char *md;    /* digest name, NULL for EdDSA */
    size_t coord_len;  /* EC: bytes of R and of S */
};

static const struct jws_alg_info jws_algs[PKI_JWS__MAX] = {
    [PKI_JWS_ES256] = {"ES256", EVP_PKEY_EC, "prime256v1", "SHA256", 32},
    [PKI_JWS_ES384] = {"ES384", EVP_PKEY_EC, "secp384r1", "SHA384", 48},
    [PKI_JWS_ES512] = {"ES512", EVP_PKEY_EC, "secp521r1", "SHA512", 66},
    [PKI_JWS_RS256] = {"RS256", EVP_PKEY_RSA, NULL, "SHA256", 0},
    [PKI_JWS_EDDSA] = {"EdDSA", EVP_PKEY_ED25519, NULL, NULL, 0},
};
_Static_assert(nitems(jws_algs) == PKI_JWS__MAX, "jws_algs out of sync");

int pki_jws_alg_parse(const char *name, enum pki_jws_alg *out)
{
    if (name == NULL)
        return -1;
    for (size_t i = 0; i < nitems(jws_algs); i++) {
        if (strcmp(name, jws_algs[i].name) == 0) {
            *out = (enum pki_jws_alg)i;
            return 0;
        }
    }
    return -1;
}

const char *pki_jws_alg_name(enum pki_jws_alg alg)
{
    if ((unsigned)alg >= PKI_JWS__MAX)
        return "unknown";
    return jws_algs[alg].name;
}

bool pki_jws_alg_fits_key(enum pki_jws_alg alg, const EVP_PKEY *key)
{
    char group[64];
    size_t glen = 0;

    if ((unsigned)alg >= PKI_JWS__MAX || key == NULL)
        return false;
    if (EVP_PKEY_get_base_id(key) != jws_algs[alg].base_id)
        return false;
    if (jws_algs[alg].group == NULL)
        return true;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &glen) != 1)
        return false;
    return strcmp(group, jws_algs[alg].group) == 0;
}

/* DER ECDSA-Sig-Value from R (rlen bytes) and S (slen bytes). 0/-1. */
static int raw_to_der(const unsigned char *r, size_t rlen, const unsigned char *s, size_t slen,
                      unsigned char **der, size_t *derlen)
{
    int rc = -1, n;
    unsigned char *p = NULL;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *br = BN_bin2bn(r, (int)rlen, NULL);
    BIGNUM *bs = BN_bin2bn(s, (int)slen, NULL);

    if (es == NULL || br == NULL || bs == NULL || ECDSA_SIG_set0(es, br, bs) != 1)
        goto out;
    br = bs = NULL; /* owned by es now */
    n = i2d_ECDSA_SIG(es, &p);
    if (n <= 0)
        goto out;
    *der = pki_ossl_to_heap(p, (size_t)n);
    *derlen = (size_t)n;
    rc = 0;
out:
    BN_free(br);
    BN_free(bs);
    ECDSA_SIG_free(es);
    return rc;
}

static int verify_der(const struct jws_alg_info *a, EVP_PKEY *key, const void *input, size_t inlen,
                      const unsigned char *sig, size_t siglen)
{
    int ok = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    if (ctx != NULL && EVP_DigestVerifyInit_ex(ctx, NULL, a->md, NULL, NULL, key, NULL) == 1)
        ok = EVP_DigestVerify(ctx, sig, siglen, input, inlen);
    EVP_MD_CTX_free(ctx);
    /* A failed verification leaves errors on the queue; they are expected, not news. */
    ERR_clear_error();
    return ok == 1 ? 0 : -1;
}

/* R is rlen bytes at sig, S the rest; each is left-padded by its DER integer form. */
static int verify_ec_split(const struct jws_alg_info *a, EVP_PKEY *key, const void *input,
                           size_t inlen, const unsigned char *sig, size_t siglen, size_t rlen)
{
    unsigned char *der = NULL;
    size_t derlen = 0;
    int rc;

    if (raw_to_der(sig, rlen, sig + rlen, siglen - rlen, &der, &derlen) != 0)
        return -1;
    rc = verify_der(a, key, input, inlen, der, derlen);
    free(der);
    return rc;
}

int pki_jws_verify(enum pki_jws_alg alg, EVP_PKEY *key, const void *input, size_t inlen,
                   const unsigned char *sig, size_t siglen)
{
    const struct jws_alg_info *a;
    size_t missing;

    if (!pki_jws_alg_fits_key(alg, key) || sig == NULL || siglen == 0 || siglen > JWS_SIG_MAX)
        return -1;
    a = &jws_algs[alg];
    if (a->base_id != EVP_PKEY_EC)
        return verify_der(a, key, input, inlen, sig, siglen);
    if (siglen == 2 * a->coord_len)
        return verify_ec_split(a, key, input, inlen, sig, siglen, a->coord_len);
    if (alg != PKI_JWS_ES256 || siglen < 2 * a->coord_len - 2 || siglen > 2 * a->coord_len)
        return -1;
    /*
     * Older Apple clients drop leading zero bytes of R and/or S. We cannot tell
     * which half lost them, so try every split; each is a real ECDSA verify.
     */
    missing = 2 * a->coord_len - siglen;
    for (size_t rlost = 0; rlost <= missing; rlost++) {
        if (verify_ec_split(a, key, input, inlen, sig, siglen, a->coord_len - rlost) == 0)
            return 0;
    }
    return -1;
}

/* DER ECDSA-Sig-Value to raw R||S, each coord_len bytes. */
static int der_to_raw(const unsigned char *der, size_t derlen, size_t coord_len,
                      unsigned char **raw, size_t *rawlen)
{
    const unsigned char *p = der;
    const BIGNUM *r = NULL, *s = NULL;
    unsigned char *out;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);

    if (es == NULL)
        return -1;
    ECDSA_SIG_get0(es, &r, &s);
    out = xmalloc(2 * coord_len);
    if (BN_bn2binpad(r, out, (int)coord_len) != (int)coord_len ||
        BN_bn2binpad(s, out + coord_len, (int)coord_len) != (int)coord_len) {
        free(out);
        ECDSA_SIG_free(es);
        return -1;
    }
    ECDSA_SIG_free(es);
    *raw = out;
    *rawlen = 2 * coord_len;
    return 0;
}

int pki_jws_sign(enum pki_jws_alg alg, EVP_PKEY *key, const void *input, size_t inlen,
                 unsigned char **sig, size_t *siglen)
{
    int rc = -1;
    const struct jws_alg_info *a;
    unsigned char *der = NULL;
    size_t derlen = 0;
    EVP_MD_CTX *ctx = NULL;

    *sig = NULL;
    *siglen = 0;
    if (!pki_jws_alg_fits_key(alg, key))
        return -1;
    a = &jws_algs[alg];
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestSignInit_ex(ctx, NULL, a->md, NULL, NULL, key, NULL) != 1 ||
        EVP_DigestSign(ctx, NULL, &derlen, input, inlen) != 1) {
        pki_ossl_err(NULL, "EVP_DigestSignInit_ex");
        goto out;
    }
    der = xmalloc(derlen);
    if (EVP_DigestSign(ctx, der, &derlen, input, inlen) != 1) {
        pki_ossl_err(NULL, "EVP_DigestSign");
        goto out;
    }
    if (a->base_id == EVP_PKEY_EC) {
        if (der_to_raw(der, derlen, a->coord_len, sig, siglen) != 0)
            goto out;
    } else {
        *sig = der;
        *siglen = derlen;
        der = NULL;
    }
    rc = 0;
out:
    free(der);
    EVP_MD_CTX_free(ctx);
    return rc;
}
