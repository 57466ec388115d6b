/*
 * test_core_jws.c: flattened JWS parsing and verification (J-1..J-11, N-4,
 * N-7, U-3, T-4), one table row per malformed variant.
 */
#include "core_helpers.h"

#define URL "https://ca.test/acme/default/new-order"
#define NONCE "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define KID "https://ca.test/acme/default/account/abc"

static EVP_PKEY *p256, *p384, *rsa, *ed;

static int
setup(void **state)
{
    char err[ERR_LEN];

    p256 = pki_key_generate(PKI_KEY_P256, err);
    p384 = pki_key_generate(PKI_KEY_P384, err);
    rsa = pki_key_generate(PKI_KEY_RSA2048, err);
    ed = pki_key_generate(PKI_KEY_ED25519, err);
    return p256 != NULL && p384 != NULL && rsa != NULL && ed != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
    EVP_PKEY_free(p256);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ed);
    return 0;
}

/*
 * A protected header is built as {"alg":ALG <extra>}; "$JWK" in extra is
 * replaced by the P-256 key. body, when set, is sent as is.
 */
static const struct jws_case {
    const char *name;
    const char *alg;     /* NULL: no alg member */
    const char *extra;
    const char *payload;
    const char *body;
    const char *type;    /* expected problem type, NULL = parses */
} jws_cases[] = {
    {"ok jwk", "ES256", ",\"nonce\":\"" NONCE "\",\"url\":\"" URL "\",\"jwk\":$JWK", "{}", NULL,
     NULL},
    {"ok kid post-as-get", "ES256", ",\"nonce\":\"" NONCE "\",\"url\":\"" URL "\",\"kid\":\"" KID "\"",
     "", NULL, NULL},
    {"compact", NULL, NULL, NULL, "eyJhbGciOiJFUzI1NiJ9.e30.AAAA", "malformed"},
    {"bare json (J-1)", NULL, NULL, NULL, "{\"identifiers\":[]}", "malformed"},
    {"general serialization", NULL, NULL, NULL,
     "{\"payload\":\"e30\",\"signatures\":[{\"protected\":\"e30\",\"signature\":\"AA\"}]}",
     "malformed"},
    {"unprotected header", NULL, NULL, NULL,
     "{\"protected\":\"e30\",\"header\":{},\"payload\":\"e30\",\"signature\":\"AA\"}", "malformed"},
    {"detached payload", NULL, NULL, NULL, "{\"protected\":\"e30\",\"signature\":\"AA\"}",
     "malformed"},
    {"member not string", NULL, NULL, NULL,
     "{\"protected\":1,\"payload\":\"e30\",\"signature\":\"AA\"}", "malformed"},
    {"protected padded (T-4)", NULL, NULL, NULL,
     "{\"protected\":\"e30=\",\"payload\":\"e30\",\"signature\":\"AA\"}", "malformed"},
    {"protected not json", NULL, NULL, NULL,
     "{\"protected\":\"aGVsbG8\",\"payload\":\"e30\",\"signature\":\"AA\"}", "malformed"},
    {"protected array", NULL, NULL, NULL,
     "{\"protected\":\"W10\",\"payload\":\"e30\",\"signature\":\"AA\"}", "malformed"},
    {"trailing bytes", NULL, NULL, NULL,
     "{\"protected\":\"e30\",\"payload\":\"e30\",\"signature\":\"AA\"}x", "malformed"},
    {"no alg", NULL, ",\"nonce\":\"" NONCE "\",\"url\":\"" URL "\",\"jwk\":$JWK", "{}", NULL,
     "malformed"},
    {"alg none", "none", ",\"nonce\":\"" NONCE "\",\"url\":\"" URL "\",\"jwk\":$JWK", "{}", NULL,
     "badSignatureAlgorithm"},
    {"alg HS256", "HS256", ",\"nonce\":\"" NONCE "\",\"url\":\"" URL "\",\"jwk\":$JWK", "{}",
     NULL, "badSignatureAlgorithm"},
    {"alg PS256", "PS256", ",\"nonce\":\"" NONCE "\",\"url\":\"" URL "\",\"jwk\":$JWK", "{}",
     NULL, "badSignatureAlgorithm"},
    {"no nonce (N-4)", "ES256", ",\"url\":\"" URL "\",\"jwk\":$JWK", "{}", NULL, "badNonce"},
    {"nonce not b64u (N-7)", "ES256", ",\"nonce\":\"a+b/\",\"url\":\"" URL "\",\"jwk\":$JWK", "{}",
     NULL, "malformed"},
    {"nonce padded (N-7)", "ES256", ",\"nonce\":\"abc=\",\"url\":\"" URL "\",\"jwk\":$JWK", "{}",
     NULL, "malformed"},
    {"nonce empty", "ES256", ",\"nonce\":\"\",\"url\":\"" URL "\",\"jwk\":$JWK", "{}", NULL,
     "malformed"},
    {"nonce number", "ES256", ",\"nonce\":5,\"url\":\"" URL "\",\"jwk\":$JWK", "{}", NULL,
     "malformed"},
    {"no url", "ES256", ",\"nonce\":\"" NONCE "\",\"jwk\":$JWK", "{}", NULL, "malformed"},
    {"url number (U-3)", "ES256", ",\"nonce\":\"" NONCE "\",\"url\":7,\"jwk\":$JWK", "{}", NULL,
     "malformed"},
    {"jwk and kid (J-7)", "ES256",
     ",\"nonce\":\"" NONCE "\",\"url\":\"" URL "\",\"jwk\":$JWK,\"kid\":\"" KID "\"", "{}", NULL,
     "malformed"},
    {"neither jwk nor kid", "ES256", ",\"nonce\":\"" NONCE "\",\"url\":\"" URL "\"", "{}", NULL,
     "malformed"},
    {"kid not string", "ES256", ",\"nonce\":\"" NONCE "\",\"url\":\"" URL "\",\"kid\":1", "{}",
     NULL, "malformed"},
    {"jwk not object", "ES256", ",\"nonce\":\"" NONCE "\",\"url\":\"" URL "\",\"jwk\":\"x\"", "{}",
     NULL, "malformed"},
    {"crit", "ES256",
     ",\"nonce\":\"" NONCE "\",\"url\":\"" URL "\",\"jwk\":$JWK,\"crit\":[\"b64\"],\"b64\":true",
     "{}", NULL, "malformed"},
    {"b64 false (J-3)", "ES256",
     ",\"nonce\":\"" NONCE "\",\"url\":\"" URL "\",\"jwk\":$JWK,\"b64\":false", "{}", NULL,
     "malformed"},
    {"duplicate header member", "ES256",
     ",\"nonce\":\"" NONCE "\",\"url\":\"" URL "\",\"url\":\"x\",\"jwk\":$JWK", "{}", NULL,
     "malformed"},
    {"payload not json", "ES256", ",\"nonce\":\"" NONCE "\",\"url\":\"" URL "\",\"jwk\":$JWK",
     "hello", NULL, "malformed"},
    {"payload array", "ES256", ",\"nonce\":\"" NONCE "\",\"url\":\"" URL "\",\"jwk\":$JWK", "[]",
     NULL, "malformed"},
    {"payload bad utf8 (T-1)", "ES256",
     ",\"nonce\":\"" NONCE "\",\"url\":\"" URL "\",\"jwk\":$JWK", "{\"contact\":[\"\xff\"]}", NULL,
     "malformed"},
};

static char *
case_body(const struct jws_case *c)
{
    struct buf b = {0};
    char *jwk, *prot, *out;
    const char *p, *hit;
    enum pki_jws_alg alg = PKI_JWS_ES256;

    if (c->body != NULL)
        return xstrdup(c->body);
    jwk = t_jwk(p256);
    buf_puts(&b, "{");
    if (c->alg != NULL)
        buf_printf(&b, "\"alg\":\"%s\"", c->alg);
    for (p = c->extra + (c->alg == NULL ? 1 : 0); (hit = strstr(p, "$JWK")) != NULL; p = hit + 4) {
        buf_append(&b, p, (size_t)(hit - p));
        buf_puts(&b, jwk);
    }
    buf_puts(&b, p);
    buf_puts(&b, "}");
    prot = buf_take(&b);
    if (c->alg != NULL && pki_jws_alg_parse(c->alg, &alg) != 0)
        alg = PKI_JWS__MAX;
    out = t_jws_raw(p256, alg == PKI_JWS__MAX ? alg : PKI_JWS_ES256, prot, c->payload);
    free(prot);
    free(jwk);
    return out;
}

static void
test_jws_parse_table(void **state)
{
    size_t i;

    for (i = 0; i < nitems(jws_cases); i++) {
        const struct jws_case *c = &jws_cases[i];
        struct acme_problem prob = {0};
        struct acme_jws jws;
        char *body = case_body(c);
        int rc = acme_jws_parse((const unsigned char *)body, strlen(body), &jws, &prob);

        if (c->type == NULL && rc != 0)
            fail_msg("case %s: unexpected %s: %s", c->name, prob.type, prob.detail);
        if (c->type != NULL && (rc == 0 || strcmp(prob.type, c->type) != 0))
            fail_msg("case %s: want %s, got rc %d %s", c->name, c->type, rc,
                     prob.type != NULL ? prob.type : "(none)");
        if (c->type != NULL)
            assert_int_equal(prob.status, 400);
        acme_jws_clear(&jws);
        free(body);
    }
}

static void
test_jws_fields_and_verify(void **state)
{
    EVP_PKEY *keys[] = {p256, p384, rsa, ed};
    size_t i;

    for (i = 0; i < nitems(keys); i++) {
        struct acme_problem prob = {0};
        struct acme_jws jws;
        char *body = t_jws(keys[i], NONCE, URL, NULL, "{\"a\":1}");

        assert_int_equal(acme_jws_parse((const unsigned char *)body, strlen(body), &jws, &prob), 0);
        assert_string_equal(jws.url, URL);
        assert_string_equal(jws.nonce, NONCE);
        assert_null(jws.kid);
        assert_false(jws.post_as_get);
        assert_int_equal(cJSON_GetObjectItem(jws.payload, "a")->valueint, 1);
        assert_int_equal(acme_jws_key_from_jwk(&jws, &prob), 0);
        assert_int_equal(strlen(jws.thumbprint), 43);
        assert_int_equal(acme_jws_verify(&jws, jws.key, &prob), 0);
        /* Tampered signature. */
        jws.sig[3] ^= 1;
        assert_int_equal(acme_jws_verify(&jws, jws.key, &prob), -1);
        assert_string_equal(prob.type, "malformed");
        /* Key of the wrong type for alg. */
        jws.sig[3] ^= 1;
        memset(&prob, 0, sizeof(prob));
        assert_int_equal(acme_jws_verify(&jws, keys[(i + 1) % nitems(keys)], &prob), -1);
        assert_string_equal(prob.type, "badSignatureAlgorithm");
        acme_jws_clear(&jws);
        free(body);
    }
}

static void
test_jws_bad_keys(void **state)
{
    static const char *const bad_jwks[] = {
        /* J-11: off-curve point, unsupported curve, RSA 512, no kty */
        ("{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
         "\"y\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}"),
        "{\"crv\":\"secp256k1\",\"kty\":\"EC\",\"x\":\"AQ\",\"y\":\"AQ\"}",
        "{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"wJ8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAQ\"}",
        "{\"x\":\"AQ\"}",
    };
    size_t i;

    for (i = 0; i < nitems(bad_jwks); i++) {
        struct acme_problem prob = {0};
        struct acme_jws jws;
        char *prot = xasprintf("{\"alg\":\"ES256\",\"nonce\":\"%s\",\"url\":\"%s\",\"jwk\":%s}",
                               NONCE, URL, bad_jwks[i]);
        char *body = t_jws_raw(p256, PKI_JWS_ES256, prot, "{}");

        assert_int_equal(acme_jws_parse((const unsigned char *)body, strlen(body), &jws, &prob), 0);
        assert_int_equal(acme_jws_key_from_jwk(&jws, &prob), -1);
        if (strcmp(prob.type, "badPublicKey") != 0)
            fail_msg("jwk %zu: got %s", i, prob.type);
        acme_jws_clear(&jws);
        free(body);
        free(prot);
    }
}

static void
test_jws_inner(void **state)
{
    struct acme_problem prob = {0};
    struct acme_jws jws;
    char *jwk = t_jwk(p256);
    char *prot = xasprintf("{\"alg\":\"ES256\",\"url\":\"%s\",\"jwk\":%s}", URL, jwk);
    char *body = t_jws_raw(p256, PKI_JWS_ES256, prot, "{}");
    char *with_nonce = t_jws(p256, NONCE, URL, NULL, "{}");
    char *with_kid = t_jws(p256, NULL, URL, KID, "{}");

    assert_int_equal(acme_jws_parse_ex((const unsigned char *)body, strlen(body), ACME_JWS_INNER,
                                       &jws, &prob), 0);
    acme_jws_clear(&jws);
    assert_int_equal(acme_jws_parse_ex((const unsigned char *)with_nonce, strlen(with_nonce),
                                       ACME_JWS_INNER, &jws, &prob), -1);
    assert_string_equal(prob.type, "malformed");
    acme_jws_clear(&jws);
    assert_int_equal(acme_jws_parse_ex((const unsigned char *)with_kid, strlen(with_kid),
                                       ACME_JWS_INNER, &jws, &prob), -1);
    acme_jws_clear(&jws);
    /* Outer parsing of the inner JWS: no nonce → badNonce. */
    assert_int_equal(acme_jws_parse((const unsigned char *)body, strlen(body), &jws, &prob), -1);
    assert_string_equal(prob.type, "badNonce");
    acme_jws_clear(&jws);
    free(jwk);
    free(prot);
    free(body);
    free(with_nonce);
    free(with_kid);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jws_parse_table),
        cmocka_unit_test(test_jws_fields_and_verify),
        cmocka_unit_test(test_jws_bad_keys),
        cmocka_unit_test(test_jws_inner),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
