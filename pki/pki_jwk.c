/*
 * pki_jwk.c: JSON Web Keys (RFC 7517/7518): import of EC, RSA and OKP public
 * keys with validation, and the RFC 7638 canonical form and thumbprint.
 */
#include "pki/pki.h"
#include "pki/pki_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

/* A base64url JWK member is refused past this length (8192-bit modulus is 1366 chars). */
#define JWK_MEMBER_MAX 2048
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 8192
#define RSA_E_MAX_BITS 64

struct jwk_curve {
    const char *crv;   /* JOSE name */
    const char *group; /* OpenSSL group name */
    size_t coord_len;  /* bytes per coordinate */
};

static const struct jwk_curve jwk_curves[] = {
    {"P-256", "prime256v1", 32},
    {"P-384", "secp384r1", 48},
    {"P-521", "secp521r1", 66},
};

static int decode_member(const char *name, const char *v, unsigned char **out, size_t *len,
                         char err[ERR_LEN])
{
    size_t slen;

    if (v == NULL) {
        pki_set_err(err, "JWK member \"%s\" is missing", name);
        return -1;
    }
    slen = strnlen(v, JWK_MEMBER_MAX + 1);
    if (slen == 0 || slen > JWK_MEMBER_MAX || b64u_decode(v, slen, out, len) != 0) {
        pki_set_err(err, "JWK member \"%s\" is not valid base64url", name);
        return -1;
    }
    return 0;
}

/*
 * Partial public key validation (SP 800-56A 5.6.2.3.4): coordinates in range and
 * the point on the curve, not at infinity. The full check also multiplies by
 * the group order, which proves nothing more on the prime-order NIST curves
 * (cofactor 1) and costs as much as a signature verification per new key.
 */
static int public_check(EVP_PKEY *key, char err[ERR_LEN])
{
    int ok;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);

    if (ctx == NULL) {
        pki_ossl_err(err, "EVP_PKEY_CTX_new_from_pkey");
        return -1;
    }
    ok = EVP_PKEY_public_check_quick(ctx);
    EVP_PKEY_CTX_free(ctx);
    if (ok != 1) {
        pki_ossl_err(err, "EVP_PKEY_public_check_quick");
        pki_set_err(err, "JWK public key is not valid for its curve");
        return -1;
    }
    return 0;
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld, char err[ERR_LEN])
{
    EVP_PKEY *key = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);

    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1) {
        pki_ossl_err(err, "EVP_PKEY_fromdata_init");
        goto out;
    }
    if (EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        pki_ossl_err(err, "EVP_PKEY_fromdata");
        pki_set_err(err, "JWK does not describe a valid %s public key", type);
        key = NULL;
    }
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return key;
}

static EVP_PKEY *jwk_ec(const struct pki_jwk *jwk, char err[ERR_LEN])
{
    const struct jwk_curve *c = NULL;
    unsigned char *x = NULL, *y = NULL, *pt = NULL;
    size_t xlen = 0, ylen = 0;
    EVP_PKEY *key = NULL;
    OSSL_PARAM_BLD *bld = NULL;

    for (size_t i = 0; i < nitems(jwk_curves) && jwk->crv != NULL; i++) {
        if (strcmp(jwk->crv, jwk_curves[i].crv) == 0)
            c = &jwk_curves[i];
    }
    if (c == NULL) {
        pki_set_err(err, "unsupported EC curve");
        return NULL;
    }
    if (decode_member("x", jwk->x, &x, &xlen, err) != 0 ||
        decode_member("y", jwk->y, &y, &ylen, err) != 0)
        goto out;
    /* RFC 7518 §6.2.1.2: coordinates are exactly the field size, zero-padded. */
    if (xlen != c->coord_len || ylen != c->coord_len) {
        pki_set_err(err, "EC coordinates must be %zu bytes for %s", c->coord_len, c->crv);
        goto out;
    }
    pt = xmalloc(1 + 2 * c->coord_len);
    pt[0] = 0x04;
    memcpy(pt + 1, x, xlen);
    memcpy(pt + 1 + xlen, y, ylen);
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, c->group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * xlen) != 1) {
        pki_ossl_err(err, "OSSL_PARAM_BLD");
        goto out;
    }
    key = from_params("EC", bld, err);
    if (key != NULL && public_check(key, err) != 0) {
        EVP_PKEY_free(key);
        key = NULL;
    }
out:
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    free(pt);
    return key;
}

static EVP_PKEY *jwk_rsa(const struct pki_jwk *jwk, char err[ERR_LEN])
{
    unsigned char *n = NULL, *e = NULL;
    size_t nlen = 0, elen = 0;
    BIGNUM *bn = NULL, *be = NULL;
    EVP_PKEY *key = NULL;
    OSSL_PARAM_BLD *bld = NULL;

    if (decode_member("n", jwk->n, &n, &nlen, err) != 0 ||
        decode_member("e", jwk->e, &e, &elen, err) != 0)
        goto out;
    bn = BN_bin2bn(n, (int)nlen, NULL);
    be = BN_bin2bn(e, (int)elen, NULL);
    if (bn == NULL || be == NULL) {
        pki_ossl_err(err, "BN_bin2bn");
        goto out;
    }
    if (BN_num_bits(bn) < RSA_MIN_BITS || BN_num_bits(bn) > RSA_MAX_BITS) {
        pki_set_err(err, "RSA modulus is %d bits; must be %d to %d", BN_num_bits(bn), RSA_MIN_BITS,
                    RSA_MAX_BITS);
        goto out;
    }
    if (!BN_is_odd(bn) || !BN_is_odd(be) || BN_is_one(be) || BN_num_bits(be) > RSA_E_MAX_BITS ||
        BN_cmp(be, bn) >= 0) {
        pki_set_err(err, "RSA modulus or public exponent is invalid");
        goto out;
    }
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) != 1) {
        pki_ossl_err(err, "OSSL_PARAM_BLD");
        goto out;
    }
    key = from_params("RSA", bld, err);
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    free(n);
    free(e);
    return key;
}

static EVP_PKEY *jwk_okp(const struct pki_jwk *jwk, char err[ERR_LEN])
{
    unsigned char *x = NULL;
    size_t xlen = 0;
    EVP_PKEY *key = NULL;

    if (jwk->crv == NULL || strcmp(jwk->crv, "Ed25519") != 0) {
        pki_set_err(err, "unsupported OKP curve");
        return NULL;
    }
    if (decode_member("x", jwk->x, &x, &xlen, err) != 0)
        return NULL;
    if (xlen != 32) {
        pki_set_err(err, "Ed25519 public key must be 32 bytes");
        goto out;
    }
    key = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x, xlen);
    if (key == NULL)
        pki_ossl_err(err, "EVP_PKEY_new_raw_public_key_ex");
out:
    free(x);
    return key;
}

EVP_PKEY *pki_jwk_to_key(const struct pki_jwk *jwk, char err[ERR_LEN])
{
    if (jwk == NULL || jwk->kty == NULL) {
        pki_set_err(err, "JWK has no \"kty\"");
        return NULL;
    }
    if (strcmp(jwk->kty, "EC") == 0)
        return jwk_ec(jwk, err);
    if (strcmp(jwk->kty, "RSA") == 0)
        return jwk_rsa(jwk, err);
    if (strcmp(jwk->kty, "OKP") == 0)
        return jwk_okp(jwk, err);
    pki_set_err(err, "unsupported key type (kty)");
    return NULL;
}

/* base64url of a BIGNUM parameter; pad > 0 left-pads to that many bytes. */
static char *bn_param_b64u(const EVP_PKEY *key, const char *param, size_t pad)
{
    BIGNUM *bn = NULL;
    unsigned char *bin = NULL;
    char *s = NULL;
    size_t len;

    if (EVP_PKEY_get_bn_param(key, param, &bn) != 1)
        return NULL;
    len = pad > 0 ? pad : (size_t)BN_num_bytes(bn);
    if (len == 0 || (size_t)BN_num_bytes(bn) > len)
        goto out;
    bin = xmalloc(len);
    if (BN_bn2binpad(bn, bin, (int)len) != (int)len)
        goto out;
    s = b64u_encode(bin, len);
out:
    free(bin);
    BN_free(bn);
    return s;
}

static char *canonical_ec(const EVP_PKEY *key)
{
    char group[64];
    size_t glen = 0;
    const struct jwk_curve *c = NULL;
    char *x = NULL, *y = NULL, *json = NULL;

    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &glen) != 1)
        return NULL;
    for (size_t i = 0; i < nitems(jwk_curves); i++) {
        if (strcmp(group, jwk_curves[i].group) == 0)
            c = &jwk_curves[i];
    }
    if (c == NULL)
        return NULL;
    /*
     * One read of the encoded point is several times cheaper than two BIGNUM
     * exports; a key kept in compressed form (from a CSR) takes the slow way.
     */
    unsigned char pt[1 + 2 * 66];
    size_t ptlen = 0;
    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &ptlen) ==
            1 &&
        ptlen == 1 + 2 * c->coord_len && pt[0] == 0x04) {
        x = b64u_encode(pt + 1, c->coord_len);
        y = b64u_encode(pt + 1 + c->coord_len, c->coord_len);
    } else {
        ERR_clear_error();
        x = bn_param_b64u(key, OSSL_PKEY_PARAM_EC_PUB_X, c->coord_len);
        y = bn_param_b64u(key, OSSL_PKEY_PARAM_EC_PUB_Y, c->coord_len);
    }
    if (x != NULL && y != NULL)
        json = xasprintf("{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", c->crv, x, y);
    free(x);
    free(y);
    return json;
}

static char *canonical_rsa(const EVP_PKEY *key)
{
    /* RFC 7638 §3.2 (via RFC 7518 §6.3.1): no leading zero octets. */
    char *n = bn_param_b64u(key, OSSL_PKEY_PARAM_RSA_N, 0);
    char *e = bn_param_b64u(key, OSSL_PKEY_PARAM_RSA_E, 0);
    char *json = NULL;

    if (n != NULL && e != NULL)
        json = xasprintf("{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", e, n);
    free(n);
    free(e);
    return json;
}

static char *canonical_okp(const EVP_PKEY *key)
{
    unsigned char raw[32];
    size_t len = sizeof(raw);
    char *x, *json;

    if (EVP_PKEY_get_raw_public_key(key, raw, &len) != 1 || len != sizeof(raw))
        return NULL;
    x = b64u_encode(raw, len);
    json = xasprintf("{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", x);
    free(x);
    return json;
}

char *pki_jwk_canonical_json(const EVP_PKEY *key)
{
    if (key == NULL)
        return NULL;
    switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC:
        return canonical_ec(key);
    case EVP_PKEY_RSA:
        return canonical_rsa(key);
    case EVP_PKEY_ED25519:
        return canonical_okp(key);
    default:
        return NULL;
    }
}

int pki_jwk_thumbprint(const EVP_PKEY *key, char out[44])
{
    unsigned char md[32];
    char *json = pki_jwk_canonical_json(key), *enc;

    if (json == NULL)
        return -1;
    pki_sha256(json, strlen(json), md);
    free(json);
    enc = b64u_encode(md, sizeof(md));
    /* 32 bytes encode to 43 characters; out holds them plus the NUL. */
    memcpy(out, enc, 44);
    free(enc);
    return 0;
}
