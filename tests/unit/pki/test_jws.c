/* pki_jws.c: sign/verify round trips, tampering, alg/key mismatch, ES256 short signatures. */
#include "test_pki.h"

#include <stdlib.h>
#include <string.h>

static EVP_PKEY *key_for(const char *what)
{
    char err[ERR_LEN];
    if (strcmp(what, "P-521") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    enum pki_key_type t;
    assert_int_equal(pki_key_type_parse(what, &t), 0);
    return pki_key_generate(t, err);
}

static const struct {
    enum pki_jws_alg alg;
    const char *key;
    size_t siglen; /* expected raw signature length */
} sign_rows[] = {
    {PKI_JWS_ES256, "P-256", 64},     {PKI_JWS_ES384, "P-384", 96},   {PKI_JWS_ES512, "P-521", 132},
    {PKI_JWS_RS256, "RSA-2048", 256}, {PKI_JWS_EDDSA, "Ed25519", 64},
};

static void test_jws_roundtrip(void **state)
{
    static const char input[] = "eyJhbGciOiJFUzI1NiJ9.eyJmb28iOiJiYXIifQ";
    for (size_t i = 0; i < nitems(sign_rows); i++) {
        EVP_PKEY *key = key_for(sign_rows[i].key);
        assert_non_null(key);
        unsigned char *sig = NULL;
        size_t siglen = 0;
        assert_true(pki_jws_alg_fits_key(sign_rows[i].alg, key));
        assert_int_equal(pki_jws_sign(sign_rows[i].alg, key, input, strlen(input), &sig, &siglen),
                         0);
        assert_int_equal(siglen, sign_rows[i].siglen);
        assert_int_equal(pki_jws_verify(sign_rows[i].alg, key, input, strlen(input), sig, siglen),
                         0);
        /* A different input, a flipped signature bit, and a truncated signature all fail. */
        assert_int_equal(
            pki_jws_verify(sign_rows[i].alg, key, input, strlen(input) - 1, sig, siglen), -1);
        sig[siglen / 2] ^= 0x01;
        assert_int_equal(pki_jws_verify(sign_rows[i].alg, key, input, strlen(input), sig, siglen),
                         -1);
        sig[siglen / 2] ^= 0x01;
        assert_int_equal(
            pki_jws_verify(sign_rows[i].alg, key, input, strlen(input), sig, siglen - 1), -1);
        assert_int_equal(pki_jws_verify(sign_rows[i].alg, key, input, strlen(input), sig, 0), -1);
        free(sig);
        EVP_PKEY_free(key);
    }
}

static void test_jws_alg_key_mismatch(void **state)
{
    static const struct {
        enum pki_jws_alg alg;
        const char *key;
    } rows[] = {
        {PKI_JWS_ES256, "P-384"},    {PKI_JWS_ES384, "P-256"},    {PKI_JWS_ES512, "P-256"},
        {PKI_JWS_ES256, "RSA-2048"}, {PKI_JWS_RS256, "P-256"},    {PKI_JWS_EDDSA, "P-256"},
        {PKI_JWS_ES256, "Ed25519"},  {PKI_JWS_EDDSA, "RSA-2048"}, {PKI_JWS__MAX, "P-256"},
    };
    for (size_t i = 0; i < nitems(rows); i++) {
        EVP_PKEY *key = key_for(rows[i].key);
        unsigned char *sig = NULL;
        size_t siglen = 0;
        assert_false(pki_jws_alg_fits_key(rows[i].alg, key));
        assert_int_equal(pki_jws_sign(rows[i].alg, key, "x", 1, &sig, &siglen), -1);
        assert_null(sig);
        /* A valid signature of the key's own alg is still refused under the wrong alg. */
        enum pki_jws_alg own = EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA       ? PKI_JWS_RS256
                               : EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 ? PKI_JWS_EDDSA
                               : EVP_PKEY_get_bits(key) == 384                 ? PKI_JWS_ES384
                                                                               : PKI_JWS_ES256;
        assert_int_equal(pki_jws_sign(own, key, "x", 1, &sig, &siglen), 0);
        assert_int_equal(pki_jws_verify(own, key, "x", 1, sig, siglen), 0);
        assert_int_equal(pki_jws_verify(rows[i].alg, key, "x", 1, sig, siglen), -1);
        free(sig);
        EVP_PKEY_free(key);
    }
}

/*
 * Signs until R (half == 0) or S (half == 1) starts with a zero byte, drops
 * that byte as old Apple clients do, and checks the 63-byte form verifies.
 */
static void short_sig_case(EVP_PKEY *key, int half)
{
    char input[64];
    for (int n = 0; n < 20000; n++) {
        unsigned char *sig = NULL;
        size_t siglen = 0;
        snprintf(input, sizeof(input), "payload-%d", n);
        assert_int_equal(pki_jws_sign(PKI_JWS_ES256, key, input, strlen(input), &sig, &siglen), 0);
        if (sig[32 * half] != 0) {
            free(sig);
            continue;
        }
        unsigned char short_sig[63];
        size_t at = 32 * (size_t)half;
        memcpy(short_sig, sig, at);
        memcpy(short_sig + at, sig + at + 1, 63 - at);
        assert_int_equal(pki_jws_verify(PKI_JWS_ES256, key, input, strlen(input), short_sig, 63),
                         0);
        /* Tampered 63-byte signature fails. */
        short_sig[40] ^= 0x80;
        assert_int_equal(pki_jws_verify(PKI_JWS_ES256, key, input, strlen(input), short_sig, 63),
                         -1);
        free(sig);
        return;
    }
    fail_msg("no signature with a leading zero byte in 20000 tries");
}

static void test_jws_es256_short(void **state)
{
    char err[ERR_LEN];
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    short_sig_case(key, 0);
    short_sig_case(key, 1);

    /* A normal signature with any byte dropped is not "short", it is wrong. */
    unsigned char *sig = NULL;
    size_t siglen = 0;
    for (int n = 0;; n++) {
        assert_int_equal(pki_jws_sign(PKI_JWS_ES256, key, "m", 1, &sig, &siglen), 0);
        if (sig[0] != 0 && sig[32] != 0)
            break;
        free(sig);
    }
    assert_int_equal(pki_jws_verify(PKI_JWS_ES256, key, "m", 1, sig + 1, 63), -1);
    assert_int_equal(pki_jws_verify(PKI_JWS_ES256, key, "m", 1, sig, 63), -1);
    assert_int_equal(pki_jws_verify(PKI_JWS_ES256, key, "m", 1, sig, 62), -1);
    assert_int_equal(pki_jws_verify(PKI_JWS_ES256, key, "m", 1, sig, 61), -1);
    free(sig);
    EVP_PKEY_free(key);

    /* The retry is ES256 only: a 95-byte ES384 signature is refused. */
    key = pki_key_generate(PKI_KEY_P384, err);
    for (int n = 0; n < 20000; n++) {
        assert_int_equal(pki_jws_sign(PKI_JWS_ES384, key, &n, sizeof(n), &sig, &siglen), 0);
        if (sig[0] == 0) {
            assert_int_equal(pki_jws_verify(PKI_JWS_ES384, key, &n, sizeof(n), sig + 1, 95), -1);
            assert_int_equal(pki_jws_verify(PKI_JWS_ES384, key, &n, sizeof(n), sig, 96), 0);
            free(sig);
            break;
        }
        free(sig);
    }
    EVP_PKEY_free(key);
}

int test_pki_jws_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jws_roundtrip),
        cmocka_unit_test(test_jws_alg_key_mismatch),
        cmocka_unit_test(test_jws_es256_short),
    };
    return cmocka_run_group_tests_name("pki_jws", tests, NULL, NULL);
}
