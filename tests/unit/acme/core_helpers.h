/*
 * core_helpers.h: JWS builders shared by the test_core_*.c unit tests (each
 * test is its own executable, so these are static). Keys and signatures come
 * from pki/, exactly as a client would produce them.
 */
#ifndef ACMESRV_TEST_CORE_HELPERS_H
#define ACMESRV_TEST_CORE_HELPERS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acme_fixture.h"

#include "acme/acme_int.h"

static inline char *
t_b64u(const char *s)
{
    return b64u_encode(s, strlen(s));
}

/* The key as a JWK JSON object text (canonical members). Caller frees. */
static inline char *
t_jwk(EVP_PKEY *key)
{
    char *j = pki_jwk_canonical_json(key);

    assert_non_null(j);
    return j;
}

/*
 * A flattened JWS over the given protected header and payload texts. The
 * signature uses alg_sign (a pki alg) with key; PKI_JWS__MAX gives an empty
 * signature, and mac_key (32 bytes, key unused) an HS256 MAC. Caller frees.
 */
static inline char *
t_jws_sign(EVP_PKEY *key, enum pki_jws_alg alg_sign, const unsigned char *mac_key,
           const char *prot, const char *payload)
{
    char *p64 = t_b64u(prot), *pl64 = b64u_encode(payload, strlen(payload));
    char *input = xasprintf("%s.%s", p64, pl64), *s64, *out;
    unsigned char *sig = NULL;
    size_t siglen = 0;

    if (mac_key != NULL) {
        sig = xmalloc(32);
        siglen = 32;
        assert_int_equal(pki_hmac_sha256(mac_key, 32, input, strlen(input), sig), 0);
    } else if (alg_sign != PKI_JWS__MAX) {
        assert_int_equal(pki_jws_sign(alg_sign, key, input, strlen(input), &sig, &siglen), 0);
    }
    s64 = b64u_encode(sig != NULL ? sig : (const unsigned char *)"", siglen);
    out = xasprintf("{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}", p64, pl64,
                    s64);
    free(p64);
    free(pl64);
    free(input);
    free(s64);
    free(sig);
    return out;
}

static inline char *
t_jws_raw(EVP_PKEY *key, enum pki_jws_alg alg_sign, const char *prot, const char *payload)
{
    return t_jws_sign(key, alg_sign, NULL, prot, payload);
}

/* Standard request: alg fits key; auth = jwk when kid is NULL. nonce may be NULL (omitted). */
static inline char *
t_jws(EVP_PKEY *key, const char *nonce, const char *url, const char *kid, const char *payload)
{
    enum pki_jws_alg alg = pki_key_type_of(key) == PKI_KEY_P384     ? PKI_JWS_ES384
                           : pki_key_type_of(key) == PKI_KEY_ED25519 ? PKI_JWS_EDDSA
                           : pki_key_type_of(key) == PKI_KEY_P256    ? PKI_JWS_ES256
                                                                     : PKI_JWS_RS256;
    struct buf b = {0};
    char *jwk = NULL, *prot, *out;

    buf_printf(&b, "{\"alg\":\"%s\"", pki_jws_alg_name(alg));
    if (nonce != NULL)
        buf_printf(&b, ",\"nonce\":\"%s\"", nonce);
    buf_printf(&b, ",\"url\":\"%s\"", url);
    if (kid != NULL) {
        buf_printf(&b, ",\"kid\":\"%s\"", kid);
    } else {
        jwk = t_jwk(key);
        buf_printf(&b, ",\"jwk\":%s", jwk);
    }
    buf_puts(&b, "}");
    prot = buf_take(&b);
    out = t_jws_raw(key, alg, prot, payload);
    free(prot);
    free(jwk);
    return out;
}

#endif
