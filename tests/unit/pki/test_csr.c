/* pki_csr.c and the PermanentIdentifier codec: valid and refused CSRs. */
#include "test_pki.h"

#include <stdlib.h>
#include <string.h>

#define ALL_KEYS ((1u << PKI_KEY__MAX) - 1)
#define EC_ONLY ((1u << PKI_KEY_P256) | (1u << PKI_KEY_P384))

static void assert_list(char **got, size_t ngot, const char *const *want)
{
    size_t n = 0;
    while (want[n] != NULL)
        n++;
    assert_int_equal(ngot, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(got[i], want[i]);
}

static void test_csr_fixture_names(void **state)
{
    static const char *const dns[] = {"device.example.com", "www.example.com", NULL};
    static const char *const ips[] = {"192.0.2.7", "2001:db8::1", NULL};
    static const char *const emails[] = {"ops@example.com", NULL};
    static const char *const uris[] = {"urn:example:1", NULL};
    static const char *const perm[] = {"C02XK0ABJGH5", NULL};
    size_t len;
    unsigned char *der = tp_fixture("csr_p256_sans.der", &len);
    struct pki_csr csr;
    char err[ERR_LEN];

    assert_int_equal(pki_csr_parse(der, len, EC_ONLY, &csr, err), 0);
    assert_string_equal(csr.cn, "Device.Example.COM");
    assert_list(csr.dns, csr.ndns, dns);
    assert_list(csr.ips, csr.nips, ips);
    assert_list(csr.emails, csr.nemails, emails);
    assert_list(csr.uris, csr.nuris, uris);
    assert_list(csr.perm_ids, csr.nperm_ids, perm);
    assert_int_equal(pki_key_type_of(csr.key), PKI_KEY_P256);
    pki_csr_clear(&csr);
    pki_csr_clear(&csr); /* clearing twice is harmless */
    pki_csr_clear(NULL);
    free(der);
}

enum mutation { M_NONE, M_FLIP_SIG, M_TRAILING, M_TRUNCATE, M_OVERSIZE, M_EMPTY, M_GARBAGE };

static const struct {
    const char *name;
    const char *fixture; /* NULL: a generated Ed25519 CSR */
    enum mutation mut;
    unsigned allowed;
    int rc;
} csr_rows[] = {
    {"P-256 with SANs", "csr_p256_sans.der", M_NONE, EC_ONLY, 0},
    {"RSA-2048 allowed", "csr_rsa2048.der", M_NONE, ALL_KEYS, 0},
    {"RSA-2048 not allowed", "csr_rsa2048.der", M_NONE, EC_ONLY, -1},
    {"RSA-1024 never allowed", "csr_rsa1024.der", M_NONE, ALL_KEYS, -1},
    {"Ed25519 allowed", NULL, M_NONE, 1u << PKI_KEY_ED25519, 0},
    {"Ed25519 not allowed", NULL, M_NONE, EC_ONLY, -1},
    {"P-256 not in mask", "csr_p256_sans.der", M_NONE, 1u << PKI_KEY_P384, -1},
    {"bad EC signature", "csr_p256_sans.der", M_FLIP_SIG, ALL_KEYS, -1},
    {"bad RSA signature", "csr_rsa2048.der", M_FLIP_SIG, ALL_KEYS, -1},
    {"bad Ed25519 signature", NULL, M_FLIP_SIG, ALL_KEYS, -1},
    {"trailing byte", "csr_p256_sans.der", M_TRAILING, ALL_KEYS, -1},
    {"truncated", "csr_p256_sans.der", M_TRUNCATE, ALL_KEYS, -1},
    {"oversize (16 KiB + 1)", "csr_p256_sans.der", M_OVERSIZE, ALL_KEYS, -1},
    {"empty", "csr_p256_sans.der", M_EMPTY, ALL_KEYS, -1},
    {"garbage", "csr_p256_sans.der", M_GARBAGE, ALL_KEYS, -1},
};

static unsigned char *row_der(size_t i, size_t *len)
{
    unsigned char *der;
    if (csr_rows[i].fixture != NULL) {
        der = tp_fixture(csr_rows[i].fixture, len);
    } else {
        static const char *const dns[] = {"ed.example.com", NULL};
        char err[ERR_LEN];
        EVP_PKEY *key = pki_key_generate(PKI_KEY_ED25519, err);
        der = tp_csr_der(key, NULL, dns, len);
        EVP_PKEY_free(key);
    }
    der = xrealloc(der, 16 * 1024 + 2);
    switch (csr_rows[i].mut) {
    case M_NONE:
        break;
    case M_FLIP_SIG:
        der[*len - 2] ^= 0x5a; /* inside the signature BIT STRING */
        break;
    case M_TRAILING:
        der[(*len)++] = 0;
        break;
    case M_TRUNCATE:
        *len -= 10;
        break;
    case M_OVERSIZE:
        memset(der + *len, 0, 16 * 1024 + 1 - *len);
        *len = 16 * 1024 + 1;
        break;
    case M_EMPTY:
        *len = 0;
        break;
    case M_GARBAGE:
        memcpy(der, "\x30\x82\xff\xffhello", 9);
        *len = 9;
        break;
    }
    return der;
}

static void test_csr_table(void **state)
{
    for (size_t i = 0; i < nitems(csr_rows); i++) {
        size_t len = 0;
        unsigned char *der = row_der(i, &len);
        struct pki_csr csr;
        char err[ERR_LEN] = "";
        int rc = pki_csr_parse(der, len, csr_rows[i].allowed, &csr, err);
        print_message("csr row: %s -> %d %s\n", csr_rows[i].name, rc, err);
        assert_int_equal(rc, csr_rows[i].rc);
        if (rc == 0) {
            assert_non_null(csr.req);
            assert_non_null(csr.key);
            assert_true(csr.ndns >= 1);
        } else {
            assert_true(err[0] != '\0');
            assert_null(csr.req);
            assert_null(csr.key);
        }
        pki_csr_clear(&csr);
        free(der);
    }
}

/* F-3: requested extensions the CA will not honour refuse the CSR; others are ignored. */
static void test_csr_extensions(void **state)
{
    static const char *const dns[] = {"ext.example.com", NULL};
    static const struct {
        const char *name, *value; /* OpenSSL config syntax */
        const char *refusal;      /* NULL: accepted; else a word of the reason */
    } rows[] = {
        {"basicConstraints", "critical,CA:TRUE", "cA=TRUE"},
        {"basicConstraints", "CA:TRUE,pathlen:0", "cA=TRUE"},
        {"basicConstraints", "critical,CA:FALSE", NULL},
        {"keyUsage", "critical,digitalSignature,keyCertSign", NULL},
        {"extendedKeyUsage", "critical,serverAuth", NULL},
        {"1.2.3.4", "critical,DER:0500", "1.2.3.4"},
        {"1.2.3.4", "DER:0500", NULL},
        {"tlsfeature", "critical,status_request", "1.3.6.1.5.5.7.1.24"},
        {"tlsfeature", "status_request", NULL},
    };
    char err[ERR_LEN];
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    GENERAL_NAMES *gens = tp_san_round_trip(PKI_SAN_DNS, dns[0]);

    for (size_t i = 0; i < nitems(rows); i++) {
        STACK_OF(X509_EXTENSION) *more = sk_X509_EXTENSION_new_null();
        X509_EXTENSION *ext = X509V3_EXT_nconf(NULL, NULL, rows[i].name, rows[i].value);
        struct pki_csr csr;
        size_t len = 0;
        unsigned char *der;
        int rc;

        assert_non_null(ext);
        sk_X509_EXTENSION_push(more, ext);
        der = tp_csr_der_exts(key, NULL, gens, more, &len);
        err[0] = '\0';
        rc = pki_csr_parse(der, len, EC_ONLY, &csr, err);
        print_message("csr extension: %s=%s -> %d %s\n", rows[i].name, rows[i].value, rc, err);
        assert_int_equal(rc, rows[i].refusal == NULL ? 0 : -1);
        if (rows[i].refusal != NULL)
            assert_non_null(strstr(err, rows[i].refusal));
        else
            assert_list(csr.dns, csr.ndns, dns);
        pki_csr_clear(&csr);
        sk_X509_EXTENSION_pop_free(more, X509_EXTENSION_free);
        free(der);
    }
    GENERAL_NAMES_free(gens);
    EVP_PKEY_free(key);
}

static void test_perm_id_codec(void **state)
{
    static const struct {
        const char *name;
        const char *der;
        size_t len;
        int rc;
        const char *value; /* NULL: absent */
    } rows[] = {
        {"value",
         "\x30\x08\x0c\x06"
         "ABC123",
         10, 0, "ABC123"},
        /* DA-6: the assigner rebuilds as the identifier's "/OID" part. */
        {"value + assigner",
         "\x30\x0d\x0c\x06"
         "ABC123\x06\x03\x2a\x03\x04",
         15, 0, "ABC123/1.2.3.4"},
        {"value + long-arc assigner",
         "\x30\x0a\x0c\x01"
         "A\x06\x05\x88\x37\x83\x82\x01",
         12, 0, "A/2.999.49409"},
        {"value with /",
         "\x30\x07\x0c\x05"
         "A/1.2",
         9, -1, NULL},
        {"non-minimal assigner arc",
         "\x30\x08\x0c\x01"
         "A\x06\x03\x2a\x80\x03",
         10, -1, NULL},
        {"empty assigner",
         "\x30\x05\x0c\x01"
         "A\x06\x00",
         7, -1, NULL},
        {"context-tagged assigner",
         "\x30\x08\x0c\x01"
         "A\x86\x03\x2a\x03\x04",
         10, -1, NULL},
        {"constructed assigner",
         "\x30\x08\x0c\x01"
         "A\x26\x03\x2a\x03\x04",
         10, -1, NULL},
        {"assigner overruns",
         "\x30\x08\x0c\x01"
         "A\x06\x04\x2a\x03\x04",
         10, -1, NULL},
        {"utf-8 value", "\x30\x05\x0c\x03\xc3\xa9x", 7, 0, "\xc3\xa9x"},
        {"empty sequence", "\x30\x00", 2, 0, NULL},
        {"assigner only", "\x30\x05\x06\x03\x2a\x03\x04", 7, 0, NULL},
        {"wrong outer tag",
         "\x31\x08\x0c\x06"
         "ABC123",
         10, -1, NULL},
        {"outer length short",
         "\x30\x07\x0c\x06"
         "ABC123",
         10, -1, NULL},
        {"outer length long",
         "\x30\x09\x0c\x06"
         "ABC123",
         10, -1, NULL},
        {"inner length overruns",
         "\x30\x08\x0c\x07"
         "ABC123",
         10, -1, NULL},
        {"invalid utf-8", "\x30\x04\x0c\x02\xff\xfe", 6, -1, NULL},
        {"NUL in value",
         "\x30\x05\x0c\x03"
         "a\0b",
         7, -1, NULL},
        {"two values",
         "\x30\x06\x0c\x01"
         "a\x0c\x01"
         "b",
         8, -1, NULL},
        {"two assigners", "\x30\x0a\x06\x03\x2a\x03\x04\x06\x03\x2a\x03\x04", 12, -1, NULL},
        {"assigner then value",
         "\x30\x08\x06\x03\x2a\x03\x04\x0c\x01"
         "a",
         10, -1, NULL},
        {"PrintableString value",
         "\x30\x03\x13\x01"
         "a",
         5, -1, NULL},
        {"indefinite length",
         "\x30\x80\x0c\x01"
         "a\0\0",
         7, -1, NULL},
        {"empty input", "", 0, -1, NULL},
    };
    for (size_t i = 0; i < nitems(rows); i++) {
        char *out = (char *)"unset";
        int rc = pki_perm_id_parse((const unsigned char *)rows[i].der, rows[i].len, &out);
        print_message("perm id row: %s -> %d\n", rows[i].name, rc);
        assert_int_equal(rc, rows[i].rc);
        if (rows[i].value != NULL)
            assert_string_equal(out, rows[i].value);
        else
            assert_null(out);
        free(out);
    }
}

int test_pki_csr_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csr_fixture_names),
        cmocka_unit_test(test_csr_table),
        cmocka_unit_test(test_csr_extensions),
        cmocka_unit_test(test_perm_id_codec),
    };
    return cmocka_run_group_tests_name("pki_csr", tests, NULL, NULL);
}
