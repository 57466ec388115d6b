/* pki_jwk.c: JWK import (valid and refused keys), RFC 7638 thumbprints, alg table. */
#include "test_pki.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/x509.h>

/* RFC 7638 §3.1 example key and its published thumbprint. */
#define RFC7638_N                                                                                  \
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"      \
    "BJECPe"                                                                                       \
    "bWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"           \
    "FDW2QvzqY36"                                                                                  \
    "8QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-"                       \
    "bFTWhAI4vMQFh6WeZu0fM4lF"                                                                     \
    "d2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
#define RFC7638_TP "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

/* Public keys generated with the openssl CLI / pyca (see the report). */
#define P256_X "evGK36QFiJshlFjt8iH3nGT98sSJM2mINw-HQtqVmy8"
#define P256_Y "N68LSEVxA_jk9yh3HtihZwJVGZQXtw8WhmyeunjR8p8"
#define P256_Y_OFF "N68LSEVxA_jk9yh3HtihZwJVGZQXtw8WhmyeunjR8p4"
#define P384_X "_x-qDR-i1KCCBYZwUwhZvRkGPlu00ZI6F9w1YBgKjX5Sn0nb7jypcIARm_Yim6yB"
#define P384_Y "pEse1Qy85-kVo1TWmK0N3_bav6U5ZyFosGII4aLJ5iju4aPe5GgSumcjU-BlDfb2"
#define P521_X                                                                                     \
    "AJu6vw774SGnIZKPuojnrj9MzLHOP29jkeEEZpYvPY7ISWl4kHErLwumxLrcL_yh0MlaDdDmJy0DPsrnv4CQsLg_"
#define P521_Y                                                                                     \
    "Ac9SmT39Qz0rocedHOAXorZJS_PonCCKnCer48diwmKbL4l_YGqACqloHx8uB8nsJG5IfZ5EEfirCCj62JwMxXSG"
#define ED_X "YQkdSurz7RqE9gZULObTve0VksLMnpInW2Syi65lftE"
#define RSA1024_N                                                                                  \
    "p3vDcmaF644jRoKuBedvaHNJ9Q8HMYHNuUdm5I43hRCTYOObA2CZgJCbg-ErJ_sIeE8pTaNli2jle70-"             \
    "WgOdscv9AHdfhq"                                                                               \
    "btBTE1Sf2tW6WoV9GyaB9817FHcXON45KF5WSqQFBNBBKo8f1i3cVCzCBzX1FFiaP9B5pNkUsr-BM"

static const struct {
    const char *name;
    struct pki_jwk jwk;
    bool ok;
    int base_id;           /* expected EVP_PKEY type when ok */
    const char *canonical; /* expected canonical JSON when ok, NULL to skip */
} jwk_rows[] = {
    {"P-256",
     {"EC", "P-256", P256_X, P256_Y, NULL, NULL},
     true,
     EVP_PKEY_EC,
     "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"" P256_X "\",\"y\":\"" P256_Y "\"}"},
    {"P-384",
     {"EC", "P-384", P384_X, P384_Y, NULL, NULL},
     true,
     EVP_PKEY_EC,
     "{\"crv\":\"P-384\",\"kty\":\"EC\",\"x\":\"" P384_X "\",\"y\":\"" P384_Y "\"}"},
    {"P-521",
     {"EC", "P-521", P521_X, P521_Y, NULL, NULL},
     true,
     EVP_PKEY_EC,
     "{\"crv\":\"P-521\",\"kty\":\"EC\",\"x\":\"" P521_X "\",\"y\":\"" P521_Y "\"}"},
    {"RSA-2048 (RFC 7638)",
     {"RSA", NULL, NULL, NULL, RFC7638_N, "AQAB"},
     true,
     EVP_PKEY_RSA,
     "{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"" RFC7638_N "\"}"},
    {"Ed25519",
     {"OKP", "Ed25519", ED_X, NULL, NULL, NULL},
     true,
     EVP_PKEY_ED25519,
     "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"" ED_X "\"}"},
    {"EC point off the curve", {"EC", "P-256", P256_X, P256_Y_OFF, NULL, NULL}, false, 0, NULL},
    {"EC P-384 coords on P-256", {"EC", "P-256", P384_X, P384_Y, NULL, NULL}, false, 0, NULL},
    {"EC x 31 bytes",
     {"EC", "P-256", "evGK36QFiJshlFjt8iH3nGT98sSJM2mINw-HQtqVmw", P256_Y, NULL, NULL},
     false,
     0,
     NULL},
    {"EC y missing", {"EC", "P-256", P256_X, NULL, NULL, NULL}, false, 0, NULL},
    {"EC x padded base64", {"EC", "P-256", P256_X "=", P256_Y, NULL, NULL}, false, 0, NULL},
    {"EC x bad alphabet",
     {"EC", "P-256", "evGK36QFiJshlFjt8iH3nGT98sSJM2mINw+HQtqVmy8", P256_Y, NULL, NULL},
     false,
     0,
     NULL},
    {"EC unknown crv", {"EC", "P-192", P256_X, P256_Y, NULL, NULL}, false, 0, NULL},
    {"EC no crv", {"EC", NULL, P256_X, P256_Y, NULL, NULL}, false, 0, NULL},
    {"RSA 1024", {"RSA", NULL, NULL, NULL, RSA1024_N, "AQAB"}, false, 0, NULL},
    {"RSA even exponent", {"RSA", NULL, NULL, NULL, RFC7638_N, "AQAA"}, false, 0, NULL},
    {"RSA exponent one", {"RSA", NULL, NULL, NULL, RFC7638_N, "AQ"}, false, 0, NULL},
    {"RSA no n", {"RSA", NULL, NULL, NULL, NULL, "AQAB"}, false, 0, NULL},
    {"OKP X25519", {"OKP", "X25519", ED_X, NULL, NULL, NULL}, false, 0, NULL},
    {"OKP 31 bytes",
     {"OKP", "Ed25519", "YQkdSurz7RqE9gZULObTve0VksLMnpInW2Syi65lfg", NULL, NULL, NULL},
     false,
     0,
     NULL},
    {"kty oct", {"oct", NULL, NULL, NULL, NULL, NULL}, false, 0, NULL},
    {"kty missing", {NULL, "P-256", P256_X, P256_Y, NULL, NULL}, false, 0, NULL},
};

static void test_jwk_import(void **state)
{
    for (size_t i = 0; i < nitems(jwk_rows); i++) {
        char err[ERR_LEN] = "";
        EVP_PKEY *key = pki_jwk_to_key(&jwk_rows[i].jwk, err);
        print_message("jwk row: %s -> %s\n", jwk_rows[i].name, key != NULL ? "ok" : err);
        if (!jwk_rows[i].ok) {
            assert_null(key);
            assert_true(err[0] != '\0');
            continue;
        }
        assert_non_null(key);
        assert_int_equal(EVP_PKEY_get_base_id(key), jwk_rows[i].base_id);
        char *json = pki_jwk_canonical_json(key);
        assert_non_null(json);
        assert_string_equal(json, jwk_rows[i].canonical);
        free(json);
        EVP_PKEY_free(key);
    }
}

static void test_jwk_thumbprint_rfc7638(void **state)
{
    char err[ERR_LEN], tp[44];
    struct pki_jwk jwk = {"RSA", NULL, NULL, NULL, RFC7638_N, "AQAB"};
    EVP_PKEY *key = pki_jwk_to_key(&jwk, err);
    assert_non_null(key);
    assert_int_equal(pki_jwk_thumbprint(key, tp), 0);
    assert_string_equal(tp, RFC7638_TP);
    EVP_PKEY_free(key);
}

/* Copies the string value of member name out of flat JSON; "" when absent. */
static void member(const char *json, const char *name, char *out, size_t outlen)
{
    char *pat = xasprintf("\"%s\":\"", name);
    const char *p = strstr(json, pat);
    out[0] = '\0';
    if (p != NULL) {
        p += strlen(pat);
        size_t n = strcspn(p, "\"");
        assert_true(n < outlen);
        memcpy(out, p, n);
        out[n] = '\0';
    }
    free(pat);
}

/* A generated key exported as canonical JWK and imported back is the same key. */
static void test_jwk_roundtrip_generated(void **state)
{
    static const enum pki_key_type types[] = {PKI_KEY_P256, PKI_KEY_P384, PKI_KEY_ED25519,
                                              PKI_KEY_RSA2048};
    for (size_t i = 0; i < nitems(types); i++) {
        char err[ERR_LEN], tp1[44], tp2[44];
        EVP_PKEY *key = pki_key_generate(types[i], err);
        assert_non_null(key);
        assert_int_equal(pki_key_type_of(key), types[i]);
        EVP_PKEY *pub = NULL;
        char *json = pki_jwk_canonical_json(key);
        assert_non_null(json);
        char x[200], y[200], n[1400], e[32];
        member(json, "x", x, sizeof(x));
        member(json, "y", y, sizeof(y));
        member(json, "n", n, sizeof(n));
        member(json, "e", e, sizeof(e));
        struct pki_jwk jwk = {0};
        jwk.kty = types[i] == PKI_KEY_ED25519 ? "OKP" : types[i] == PKI_KEY_RSA2048 ? "RSA" : "EC";
        jwk.crv = types[i] == PKI_KEY_P256      ? "P-256"
                  : types[i] == PKI_KEY_P384    ? "P-384"
                  : types[i] == PKI_KEY_ED25519 ? "Ed25519"
                                                : NULL;
        jwk.x = x[0] ? x : NULL;
        jwk.y = y[0] ? y : NULL;
        jwk.n = n[0] ? n : NULL;
        jwk.e = e[0] ? e : NULL;
        pub = pki_jwk_to_key(&jwk, err);
        if (pub == NULL)
            fail_msg("re-import %s: %s", json, err);
        assert_true(pki_key_equal(key, pub));
        assert_int_equal(pki_jwk_thumbprint(key, tp1), 0);
        assert_int_equal(pki_jwk_thumbprint(pub, tp2), 0);
        assert_string_equal(tp1, tp2);
        assert_int_equal(strlen(tp1), 43);
        free(json);
        EVP_PKEY_free(pub);
        EVP_PKEY_free(key);
    }
}

/* A key held with a compressed point (as a CSR may carry it) has the same thumbprint. */
static void test_jwk_thumbprint_compressed(void **state)
{
    (void)state;
    char err[ERR_LEN], tp0[64], tp1[64], tp2[64];
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err), *comp = NULL;
    unsigned char *der = NULL;
    const unsigned char *p;
    assert_non_null(key);
    assert_int_equal(pki_jwk_thumbprint(key, tp0), 0);
    assert_int_equal(EVP_PKEY_set_utf8_string_param(key, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                                    "compressed"),
                     1);
    int len = i2d_PUBKEY(key, &der);
    assert_true(len == 59); /* 26 bytes of SPKI framing + 33-byte compressed point */
    p = der;
    comp = d2i_PUBKEY(NULL, &p, len);
    assert_non_null(comp);
    assert_int_equal(pki_jwk_thumbprint(key, tp1), 0);
    assert_int_equal(pki_jwk_thumbprint(comp, tp2), 0);
    assert_string_equal(tp0, tp1);
    assert_string_equal(tp0, tp2);
    OPENSSL_free(der);
    EVP_PKEY_free(comp);
    EVP_PKEY_free(key);
}

static void test_jws_alg_table(void **state)
{
    static const struct {
        const char *name;
        int rc;
        enum pki_jws_alg alg;
    } rows[] = {
        {"ES256", 0, PKI_JWS_ES256},
        {"ES384", 0, PKI_JWS_ES384},
        {"ES512", 0, PKI_JWS_ES512},
        {"RS256", 0, PKI_JWS_RS256},
        {"EdDSA", 0, PKI_JWS_EDDSA},
        {"none", -1, 0},
        {"HS256", -1, 0},
        {"es256", -1, 0},
        {"PS256", -1, 0},
        {"", -1, 0},
        {NULL, -1, 0},
    };
    for (size_t i = 0; i < nitems(rows); i++) {
        enum pki_jws_alg alg = PKI_JWS__MAX;
        assert_int_equal(pki_jws_alg_parse(rows[i].name, &alg), rows[i].rc);
        if (rows[i].rc == 0) {
            assert_int_equal(alg, rows[i].alg);
            assert_string_equal(pki_jws_alg_name(alg), rows[i].name);
        }
    }
    assert_string_equal(pki_jws_alg_name(PKI_JWS__MAX), "unknown");
}

static void test_key_type_names(void **state)
{
    for (int t = 0; t < PKI_KEY__MAX; t++) {
        enum pki_key_type back = PKI_KEY__MAX;
        assert_int_equal(pki_key_type_parse(pki_key_type_name((enum pki_key_type)t), &back), 0);
        assert_int_equal(back, t);
    }
    enum pki_key_type out;
    assert_int_equal(pki_key_type_parse("P-521", &out), -1);
    assert_int_equal(pki_key_type_parse("p-256", &out), -1);
    assert_int_equal(pki_key_type_parse(NULL, &out), -1);
    assert_string_equal(pki_key_type_name(PKI_KEY__MAX), "unknown");
}

static void test_digests(void **state)
{
    /* FIPS 180-2 "abc" and RFC 4231 test case 2. */
    unsigned char md[32];
    char hex[65];
    pki_sha256("abc", 3, md);
    assert_string_equal(hex_encode(md, 32, hex),
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(pki_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, md), 0);
    assert_string_equal(hex_encode(md, 32, hex),
                        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

int test_pki_jwk_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwk_import),
        cmocka_unit_test(test_jwk_thumbprint_rfc7638),
        cmocka_unit_test(test_jwk_roundtrip_generated),
        cmocka_unit_test(test_jwk_thumbprint_compressed),
        cmocka_unit_test(test_jws_alg_table),
        cmocka_unit_test(test_key_type_names),
        cmocka_unit_test(test_digests),
    };
    return cmocka_run_group_tests_name("pki_jwk", tests, NULL, NULL);
}
