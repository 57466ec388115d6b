/*
 * PermanentIdentifier (RFC 4043, device-attest DA-4/DA-6) with its assigner:
 * the SAN pki/ builds from a permanent-identifier "value[/assigner-OID]",
 * decoded with OpenSSL's generic parsers rather than ours, its exact DER,
 * refused values, the CSR read-back (also from OpenSSL's own encoder) and a
 * template SAN rendered from the ordered identifier (codec rows: test_csr.c).
 */
#include "test_pki.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/conf.h>
#include <openssl/x509v3.h>

#define OID_PID "1.3.6.1.5.5.7.8.3"
#define EC_ONLY ((1u << PKI_KEY_P256) | (1u << PKI_KEY_P384))
#define APPLE_ID "C02XK0SIMUL8/1.2.840.113635.100.6.1.1"

/*
 * Asserts gn is otherName PermanentIdentifier { identifierValue = the bytes of
 * value, assigner = assigner } (no assigner element when assigner is NULL).
 */
static void assert_perm_id(const GENERAL_NAME *gn, const char *value, const char *assigner)
{
    char txt[160];
    ASN1_SEQUENCE_ANY *seq = tp_othername_seq(gn, OID_PID, assigner != NULL ? 2 : 1);
    const ASN1_TYPE *e = sk_ASN1_TYPE_value(seq, 0);

    assert_int_equal(e->type, V_ASN1_UTF8STRING);
    assert_int_equal(ASN1_STRING_length(e->value.utf8string), strlen(value));
    assert_memory_equal(ASN1_STRING_get0_data(e->value.utf8string), value, strlen(value));
    if (assigner != NULL) {
        e = sk_ASN1_TYPE_value(seq, 1);
        assert_int_equal(e->type, V_ASN1_OBJECT);
        assert_true(OBJ_obj2txt(txt, sizeof(txt), e->value.object, 1) > 0);
        assert_string_equal(txt, assigner);
    }
    sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
}

static void test_perm_id_san_der(void **state)
{
    static const struct {
        const char *value, *id_value, *assigner; /* assigner NULL: none written */
    } rows[] = {
        {"ABC123/1.2.3.4", "ABC123", "1.2.3.4"},
        {"ABC123", "ABC123", NULL},
        {APPLE_ID, "C02XK0SIMUL8", "1.2.840.113635.100.6.1.1"},
        /* UTF-8 value: bytes as ordered, not normalised (é precomposed, then combining). */
        {"S\xc3\xa9rie-e\xcc\x81/2.999.1", "S\xc3\xa9rie-e\xcc\x81", "2.999.1"},
        {"abcDEF/0.39", "abcDEF", "0.39"},
    };
    for (size_t i = 0; i < nitems(rows); i++) {
        GENERAL_NAMES *gens = tp_san_round_trip(PKI_SAN_PERMANENT_ID, rows[i].value);
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, 0);
        const ASN1_STRING *seq = gn->d.otherName->value->value.sequence;
        char *back = NULL;

        assert_perm_id(gn, rows[i].id_value, rows[i].assigner);
        /* What pki writes, pki reads back as the identifier it came from (DA-6). */
        assert_int_equal(
            pki_perm_id_parse(ASN1_STRING_get0_data(seq), (size_t)ASN1_STRING_length(seq), &back),
            0);
        assert_string_equal(back, rows[i].value);
        free(back);
        GENERAL_NAMES_free(gens);
    }

    /* Exact DER: SEQUENCE { UTF8String "ABC123", OID 1.2.3.4 }, then without the OID. */
    static const struct {
        const char *value, *der;
        int len;
    } exact[] = {
        {"ABC123/1.2.3.4",
         "\x30\x0d\x0c\x06"
         "ABC123"
         "\x06\x03\x2a\x03\x04",
         15},
        {"ABC123",
         "\x30\x08\x0c\x06"
         "ABC123",
         10},
    };
    for (size_t i = 0; i < nitems(exact); i++) {
        char err[ERR_LEN] = "";
        GENERAL_NAME *gn = pki_san_to_general_name(PKI_SAN_PERMANENT_ID, exact[i].value, err);
        unsigned char *der = NULL;
        assert_non_null(gn);
        assert_int_equal(i2d_ASN1_TYPE(gn->d.otherName->value, &der), exact[i].len);
        assert_memory_equal(der, exact[i].der, exact[i].len);
        OPENSSL_free(der);
        GENERAL_NAME_free(gn);
    }
}

static void test_perm_id_san_refused(void **state)
{
    static const char *const bad[] = {
        "",               /* empty */
        "/1.2.3",         /* empty value */
        "ABC/",           /* empty assigner */
        "ABC/1",          /* one arc */
        "ABC/1.40",       /* second arc >= 40 under 1 */
        "ABC/3.1",        /* first arc > 2 */
        "ABC/1.2.03",     /* leading zero OpenSSL would drop */
        "ABC/1.2.3/4",    /* a second "/" */
        "ABC/1.2.3 ",     /* trailing space */
        "ABC/ 1.2.3",     /* leading space */
        "ABC/commonName", /* names are not OIDs here */
        "ABC/2.5.4.3.",   /* trailing dot */
        "ABC/1..2",       /* empty arc */
        "ABC/-1.2",       /* sign */
        "A\xff"
        "B/1.2.3", /* value not UTF-8 */
        "AB/1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.26.27.28.29.30."
        "31.32.33.34.35.36.37.38.39.40.41.42.43.44.45.46.47.48.49.50", /* OID text over 128 */
    };
    for (size_t i = 0; i < nitems(bad); i++) {
        char err[ERR_LEN] = "";
        GENERAL_NAME *gn = pki_san_to_general_name(PKI_SAN_PERMANENT_ID, bad[i], err);
        if (gn != NULL)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_non_null(strstr(err, "permanentIdentifier"));
    }
}

/* A CSR whose SAN is PermanentIdentifier from OpenSSL's generator ("" assigner: none). */
static unsigned char *openssl_perm_id_csr(EVP_PKEY *key, const char *value, const char *assigner,
                                          size_t *len)
{
    char *cnf = xasprintf("[pid]\nidentifierValue = UTF8:%s\n%s%s\n", value,
                          assigner[0] != '\0' ? "assigner = OID:" : "", assigner);
    BIO *bio = BIO_new_mem_buf(cnf, -1);
    CONF *conf = NCONF_new(NULL);
    X509V3_CTX v3;
    long eline = 0;

    assert_int_equal(NCONF_load_bio(conf, bio, &eline), 1);
    X509V3_set_ctx(&v3, NULL, NULL, NULL, NULL, 0);
    X509V3_set_nconf(&v3, conf);
    X509_EXTENSION *ext =
        X509V3_EXT_nconf_nid(conf, &v3, NID_subject_alt_name, "otherName:" OID_PID ";SEQUENCE:pid");
    assert_non_null(ext);
    GENERAL_NAMES *gens = X509V3_EXT_d2i(ext);
    assert_non_null(gens);
    unsigned char *der = tp_csr_der_sans(key, NULL, gens, len);
    GENERAL_NAMES_free(gens);
    X509_EXTENSION_free(ext);
    NCONF_free(conf);
    BIO_free(bio);
    free(cnf);
    return der;
}

/* The CSR reads back "identifierValue[/assigner]", from our encoder and from OpenSSL's. */
static void test_perm_id_csr(void **state)
{
    static const struct {
        const char *value, *assigner;
    } rows[] = {
        {"ABC123", "1.2.3.4"},
        {"ABC123", ""},
        {"abc123", "1.2.840.113635.100.6.1.1"}, /* case kept: finalize compares bytes */
    };
    char err[ERR_LEN] = "";
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    assert_non_null(key);
    for (size_t i = 0; i < nitems(rows); i++) {
        char *want = rows[i].assigner[0] != '\0'
                         ? xasprintf("%s/%s", rows[i].value, rows[i].assigner)
                         : xstrdup(rows[i].value);
        for (int ours = 0; ours < 2; ours++) {
            GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
            size_t len = 0;
            unsigned char *der;
            struct pki_csr csr;

            if (ours) {
                sk_GENERAL_NAME_push(gens,
                                     pki_san_to_general_name(PKI_SAN_PERMANENT_ID, want, err));
                der = tp_csr_der_sans(key, NULL, gens, &len);
            } else {
                der = openssl_perm_id_csr(key, rows[i].value, rows[i].assigner, &len);
            }
            if (pki_csr_parse(der, len, EC_ONLY, &csr, err) != 0)
                fail_msg("%s (ours %d): %s", want, ours, err);
            assert_int_equal(csr.nperm_ids, 1);
            assert_string_equal(csr.perm_ids[0], want);
            pki_csr_clear(&csr);
            free(der);
            GENERAL_NAMES_free(gens);
        }
        free(want);
    }
    EVP_PKEY_free(key);
}

/* A PermanentIdentifier that cannot rebuild to an identifier refuses the CSR. */
static void test_perm_id_csr_malformed(void **state)
{
    static const struct {
        const char *der;
        size_t len;
    } rows[] = {
        /* identifierValue "A/1.2.3" would read back as the identifier "A" with an assigner. */
        {"\x30\x09\x0c\x07"
         "A/1.2.3",
         11},
        /* assigner with a non-minimal arc */
        {"\x30\x08\x0c\x01"
         "A\x06\x03\x2a\x80\x03",
         10},
        /* assigner alone: nothing to compare with an identifier */
        {"\x30\x04\x06\x02\x2a\x03", 6},
    };
    char err[ERR_LEN] = "";
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    for (size_t i = 0; i < nitems(rows); i++) {
        GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
        size_t len = 0;
        struct pki_csr csr;

        sk_GENERAL_NAME_push(gens, tp_othername_der(OID_PID, rows[i].der, rows[i].len));
        unsigned char *der = tp_csr_der_sans(key, NULL, gens, &len);
        assert_int_equal(pki_csr_parse(der, len, EC_ONLY, &csr, err), -1);
        assert_string_equal(err, "malformed permanentIdentifier in subjectAltName");
        assert_null(csr.req);
        free(der);
        GENERAL_NAMES_free(gens);
    }
    EVP_PKEY_free(key);
}

static int device_lookup(void *arg, const char *path, const char **val, size_t *len)
{
    if (strcmp(path, "/device/identifier") != 0)
        return -1;
    *val = arg;
    *len = strlen(arg);
    return 0;
}

/* A template SAN from ${/device/identifier} writes the ordered assigner too. */
static void test_perm_id_template(void **state)
{
    static const struct pki_san sans[] = {{PKI_SAN_PERMANENT_ID, "${/device/identifier}"}};
    static const struct pki_template tpl = {
        .name = "dev", .sans = sans, .nsans = 1, .validity = 3600};
    char *dir = NULL, err[ERR_LEN] = "";
    struct pki_ca *ca = tp_ca_new(&dir);
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    struct pki_issue_req req = {0};
    struct pki_tpl_out st;
    struct pki_issued iss = {0};

    assert_non_null(key);
    if (pki_template_render(&tpl, device_lookup, (void *)APPLE_ID, clk_now(), &req, &st, err) != 0)
        fail_msg("render: %s", err);
    req.subject_key = key;
    if (pki_issue(ca, &req, &iss, err) != 0)
        fail_msg("pki_issue: %s", err);
    X509 *x = tp_pem_cert(iss.pem);
    GENERAL_NAMES *g = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_non_null(g);
    assert_int_equal(sk_GENERAL_NAME_num(g), 1);
    assert_perm_id(sk_GENERAL_NAME_value(g, 0), "C02XK0SIMUL8", "1.2.840.113635.100.6.1.1");
    GENERAL_NAMES_free(g);
    X509_free(x);
    pki_issued_clear(&iss);
    pki_tpl_out_clear(&st);

    /* A rendered value whose tail is no OID stops issuance rather than writing it whole. */
    assert_int_equal(
        pki_template_render(&tpl, device_lookup, (void *)"C02X/1.2.03", clk_now(), &req, &st, err),
        0);
    req.subject_key = key;
    assert_int_equal(pki_issue(ca, &req, &iss, err), -1);
    assert_non_null(strstr(err, "permanentIdentifier"));
    pki_issued_clear(&iss);
    pki_tpl_out_clear(&st);
    EVP_PKEY_free(key);
    pki_ca_free(ca);
    tp_rmdir(dir);
    free(dir);
}

int test_pki_perm_id_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_perm_id_san_der),  cmocka_unit_test(test_perm_id_san_refused),
        cmocka_unit_test(test_perm_id_csr),      cmocka_unit_test(test_perm_id_csr_malformed),
        cmocka_unit_test(test_perm_id_template),
    };
    return cmocka_run_group_tests_name("pki_perm_id", tests, NULL, NULL);
}
