/*
 * HardwareModuleName (RFC 4108 §5, device-attest DA-5/DA-6): the SAN pki/
 * builds from a hardware-module identifier, decoded with OpenSSL's generic
 * parsers rather than ours, and the codec that reads it back from a CSR
 * (issuance: test_issue.c).
 */
#include "test_pki.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#define OID_HWM "1.3.6.1.5.5.7.8.4"
#define EC_ONLY ((1u << PKI_KEY_P256) | (1u << PKI_KEY_P384))

void tp_assert_hw_module(const GENERAL_NAME *gn, const char *serial, const char *type)
{
    char txt[160];
    ASN1_SEQUENCE_ANY *seq = tp_othername_seq(gn, OID_HWM, 2);
    const ASN1_TYPE *hw_type = sk_ASN1_TYPE_value(seq, 0);
    const ASN1_TYPE *hw_serial = sk_ASN1_TYPE_value(seq, 1);
    assert_int_equal(hw_type->type, V_ASN1_OBJECT);
    assert_true(OBJ_obj2txt(txt, sizeof(txt), hw_type->value.object, 1) > 0);
    assert_string_equal(txt, type);
    assert_int_equal(hw_serial->type, V_ASN1_OCTET_STRING);
    assert_int_equal(ASN1_STRING_length(hw_serial->value.octet_string), strlen(serial));
    assert_memory_equal(ASN1_STRING_get0_data(hw_serial->value.octet_string), serial,
                        strlen(serial));
    sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
}

static void test_hw_module_san_der(void **state)
{
    static const struct {
        const char *value, *serial, *type;
    } rows[] = {
        {"C02XK0ABJGH5/1.3.6.1.4.1.99999.1.2", "C02XK0ABJGH5", "1.3.6.1.4.1.99999.1.2"},
        /* UTF-8 serial: bytes as ordered, not normalised (é precomposed, then combining). */
        {"S\xc3\xa9rie-e\xcc\x81-\xe2\x82\xac/2.999.1", "S\xc3\xa9rie-e\xcc\x81-\xe2\x82\xac",
         "2.999.1"},
        {"abcDEF/1.2.3", "abcDEF", "1.2.3"},
    };
    for (size_t i = 0; i < nitems(rows); i++) {
        GENERAL_NAMES *gens = tp_san_round_trip(PKI_SAN_HW_MODULE, rows[i].value);
        tp_assert_hw_module(sk_GENERAL_NAME_value(gens, 0), rows[i].serial, rows[i].type);
        GENERAL_NAMES_free(gens);
    }

    /* Exact DER: SEQUENCE { OID 1.2.3, OCTET STRING "AB" }. */
    char err[ERR_LEN];
    GENERAL_NAME *gn = pki_san_to_general_name(PKI_SAN_HW_MODULE, "AB/1.2.3", err);
    unsigned char *der = NULL;
    assert_non_null(gn);
    int n = i2d_ASN1_TYPE(gn->d.otherName->value, &der);
    assert_int_equal(n, 10);
    assert_memory_equal(der, "\x30\x08\x06\x02\x2a\x03\x04\x02" "AB", 10);
    OPENSSL_free(der);
    GENERAL_NAME_free(gn);
}

static void test_hw_module_san_refused(void **state)
{
    static const char *const bad[] = {
        "ABCD",                   /* the type OID is mandatory */
        "/1.2.3",                 /* empty serial */
        "AB/",                    /* empty OID */
        "AB/1.2.03",              /* leading zero OpenSSL would drop */
        "AB/1.2.3/4",             /* a second "/" */
        "AB/1.2.3 ",              /* trailing space */
        "AB/commonName",          /* names are not OIDs here */
        "AB/2.5.4.3.",            /* trailing dot */
        "A\xff" "B/1.2.3",        /* serial not UTF-8 */
        "AB/1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.26.27.28.29.30."
        "31.32.33.34.35.36.37.38.39.40.41.42.43.44.45.46.47.48.49.50", /* OID text over 128 */
    };
    for (size_t i = 0; i < nitems(bad); i++) {
        char err[ERR_LEN] = "";
        GENERAL_NAME *gn = pki_san_to_general_name(PKI_SAN_HW_MODULE, bad[i], err);
        if (gn != NULL)
            fail_msg("accepted %s", bad[i]);
        assert_non_null(strstr(err, "HardwareModuleName"));
    }
}

static void test_hw_module_codec(void **state)
{
    static const struct {
        const char *name;
        const char *der;
        size_t len;
        const char *value; /* NULL: refused */
    } rows[] = {
        {"plain", "\x30\x08\x06\x02\x2a\x03\x04\x02" "AB", 10, "AB/1.2.3"},
        {"utf-8 serial", "\x30\x09\x06\x02\x2a\x03\x04\x03\xc3\xa9x", 11, "\xc3\xa9x/1.2.3"},
        {"serial then type", "\x30\x08\x04\x02" "AB\x06\x02\x2a\x03", 10, NULL},
        {"no serial", "\x30\x04\x06\x02\x2a\x03", 6, NULL},
        {"context-tagged type", "\x30\x08\x86\x02\x2a\x03\x04\x02" "AB", 10, NULL},
        {"constructed type", "\x30\x08\x26\x02\x2a\x03\x04\x02" "AB", 10, NULL},
        {"no type", "\x30\x04\x04\x02" "AB", 6, NULL},
        {"empty sequence", "\x30\x00", 2, NULL},
        {"empty serial", "\x30\x06\x06\x02\x2a\x03\x04\x00", 8, NULL},
        {"serial with /", "\x30\x09\x06\x02\x2a\x03\x04\x03" "A/B", 11, NULL},
        {"serial with NUL", "\x30\x09\x06\x02\x2a\x03\x04\x03" "A\0B", 11, NULL},
        {"serial not UTF-8", "\x30\x08\x06\x02\x2a\x03\x04\x02\xff\xfe", 10, NULL},
        {"UTF8String serial", "\x30\x08\x06\x02\x2a\x03\x0c\x02" "AB", 10, NULL},
        {"non-minimal OID arc", "\x30\x09\x06\x03\x2a\x80\x03\x04\x02" "AB", 11, NULL},
        {"extra element", "\x30\x0a\x06\x02\x2a\x03\x04\x02" "AB\x05\x00", 12, NULL},
        {"outer length short", "\x30\x07\x06\x02\x2a\x03\x04\x02" "AB", 10, NULL},
        {"trailing byte", "\x30\x08\x06\x02\x2a\x03\x04\x02" "AB\x00", 11, NULL},
        {"wrong outer tag", "\x31\x08\x06\x02\x2a\x03\x04\x02" "AB", 10, NULL},
        {"indefinite length", "\x30\x80\x06\x02\x2a\x03\x04\x02" "AB\0\0", 12, NULL},
        {"empty input", "", 0, NULL},
    };
    for (size_t i = 0; i < nitems(rows); i++) {
        char *out = (char *)"unset";
        int rc = pki_hw_module_parse((const unsigned char *)rows[i].der, rows[i].len, &out);
        print_message("hw module row: %s -> %d\n", rows[i].name, rc);
        assert_int_equal(rc, rows[i].value != NULL ? 0 : -1);
        if (rows[i].value != NULL)
            assert_string_equal(out, rows[i].value);
        else
            assert_null(out);
        free(out);
    }
}

/* A CSR naming value as HardwareModuleName (and ABC as permanentIdentifier) parses to it. */
static void test_hw_module_csr(void **state)
{
    static const char *const values[] = {
        "WRPWFW61H9/1.2.840.113635.100.8.1",
        "wrpwfw61h9/1.2.840.113635.100.8.1", /* case kept: finalize compares bytes */
        ("\xc3\x9c" "ber-7/2.25.1"), /* split: \x9c must not swallow the "b" */
    };
    char err[ERR_LEN] = "";
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    assert_non_null(key);
    for (size_t i = 0; i < nitems(values); i++) {
        GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
        sk_GENERAL_NAME_push(gens, pki_san_to_general_name(PKI_SAN_HW_MODULE, values[i], err));
        sk_GENERAL_NAME_push(gens, pki_san_to_general_name(PKI_SAN_PERMANENT_ID, "ABC", err));
        size_t len = 0;
        unsigned char *der = tp_csr_der_sans(key, NULL, gens, &len);
        struct pki_csr csr;
        assert_int_equal(pki_csr_parse(der, len, EC_ONLY, &csr, err), 0);
        assert_int_equal(csr.nhw_modules, 1);
        assert_string_equal(csr.hw_modules[0], values[i]);
        assert_int_equal(csr.nperm_ids, 1);
        assert_string_equal(csr.perm_ids[0], "ABC");
        pki_csr_clear(&csr);
        free(der);
        GENERAL_NAMES_free(gens);
    }
    EVP_PKEY_free(key);
}

/* A HardwareModuleName that cannot rebuild to an identifier refuses the CSR. */
static void test_hw_module_csr_malformed(void **state)
{
    static const unsigned char slash_serial[] = "\x30\x09\x06\x02\x2a\x03\x04\x03" "A/B";
    char err[ERR_LEN] = "";
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    size_t len = 0;
    struct pki_csr csr;

    sk_GENERAL_NAME_push(gens, tp_othername_der(OID_HWM, slash_serial, sizeof(slash_serial) - 1));
    unsigned char *der = tp_csr_der_sans(key, NULL, gens, &len);
    assert_int_equal(pki_csr_parse(der, len, EC_ONLY, &csr, err), -1);
    assert_string_equal(err, "malformed HardwareModuleName in subjectAltName");
    assert_null(csr.req);
    free(der);
    GENERAL_NAMES_free(gens);
    EVP_PKEY_free(key);
}

int test_pki_hw_module_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hw_module_san_der),
        cmocka_unit_test(test_hw_module_san_refused),
        cmocka_unit_test(test_hw_module_codec),
        cmocka_unit_test(test_hw_module_csr),
        cmocka_unit_test(test_hw_module_csr_malformed),
    };
    return cmocka_run_group_tests_name("pki_hw_module", tests, NULL, NULL);
}
