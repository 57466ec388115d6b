/* pki_tlsalpn.c: RFC 8737 certificate checks, pass and fail rows on certificates built here. */
#include "test_pki.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

enum ext_kind { EXT_OK, EXT_NONE, EXT_NONCRIT, EXT_SHORT, EXT_WRONG_TAG, EXT_TWICE, EXT_OTHER };

struct row {
    const char *name;
    const char *san1, *san2; /* "dns:..." or "ip:..."; NULL = none */
    enum ext_kind ext;
    const char *identifier;
    bool is_ip;
    int rc;
};

static const struct row rows[] = {
    {"dns ok", "dns:example.com", NULL, EXT_OK, "example.com", false, 0},
    {"dns case-insensitive", "dns:Example.COM", NULL, EXT_OK, "example.com", false, 0},
    {"ipv4 ok", "ip:192.0.2.1", NULL, EXT_OK, "192.0.2.1", true, 0},
    {"ipv6 ok", "ip:2001:db8::1", NULL, EXT_OK, "2001:db8::1", true, 0},
    {"hash differs", "dns:example.com", NULL, EXT_OTHER, "example.com", false, -1},
    {"extension not critical", "dns:example.com", NULL, EXT_NONCRIT, "example.com", false, -1},
    {"extension missing", "dns:example.com", NULL, EXT_NONE, "example.com", false, -1},
    {"extension 31 bytes", "dns:example.com", NULL, EXT_SHORT, "example.com", false, -1},
    {"extension not OCTET STRING", "dns:example.com", NULL, EXT_WRONG_TAG, "example.com", false,
     -1},
    {"extension twice", "dns:example.com", NULL, EXT_TWICE, "example.com", false, -1},
    {"two SANs", "dns:example.com", "dns:www.example.com", EXT_OK, "example.com", false, -1},
    {"other name", "dns:other.example.com", NULL, EXT_OK, "example.com", false, -1},
    {"name with suffix", "dns:example.com.evil", NULL, EXT_OK, "example.com", false, -1},
    {"no SAN", NULL, NULL, EXT_OK, "example.com", false, -1},
    {"IP identifier, DNS SAN", "dns:192.0.2.1", NULL, EXT_OK, "192.0.2.1", true, -1},
    {"DNS identifier, IP SAN", "ip:192.0.2.1", NULL, EXT_OK, "192.0.2.1", false, -1},
    {"other IP", "ip:192.0.2.2", NULL, EXT_OK, "192.0.2.1", true, -1},
    {"IPv4 vs IPv6", "ip:::ffff:192.0.2.1", NULL, EXT_OK, "192.0.2.1", true, -1},
};

static GENERAL_NAME *san(const char *spec)
{
    GENERAL_NAME *gn = GENERAL_NAME_new();
    if (strncmp(spec, "dns:", 4) == 0) {
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        ASN1_STRING_set(s, spec + 4, -1);
        GENERAL_NAME_set0_value(gn, GEN_DNS, s);
    } else {
        unsigned char a[16];
        int len = inet_pton(AF_INET, spec + 3, a) == 1 ? 4 : 16;
        if (len == 16)
            assert_int_equal(inet_pton(AF_INET6, spec + 3, a), 1);
        ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
        ASN1_OCTET_STRING_set(os, a, len);
        GENERAL_NAME_set0_value(gn, GEN_IPADD, os);
    }
    return gn;
}

static void add_acme_ext(X509 *x, enum ext_kind kind, const unsigned char hash[32])
{
    unsigned char val[34] = {0x04, 0x20};
    memcpy(val + 2, hash, 32);
    int vlen = 34, crit = 1, times = 1;
    if (kind == EXT_NONE)
        return;
    if (kind == EXT_NONCRIT)
        crit = 0;
    if (kind == EXT_SHORT) {
        val[1] = 31;
        vlen = 33;
    }
    if (kind == EXT_WRONG_TAG)
        val[0] = 0x0c;
    if (kind == EXT_OTHER)
        val[10] ^= 1;
    if (kind == EXT_TWICE)
        times = 2;
    ASN1_OBJECT *obj = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(os, val, vlen);
    for (int i = 0; i < times; i++) {
        X509_EXTENSION *ext = X509_EXTENSION_create_by_OBJ(NULL, obj, crit, os);
        assert_non_null(ext);
        assert_int_equal(X509_add_ext(x, ext, -1), 1);
        X509_EXTENSION_free(ext);
    }
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(obj);
}

static X509 *make_cert(EVP_PKEY *key, const struct row *r, const unsigned char hash[32])
{
    X509 *x = X509_new();
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
                               (const unsigned char *)"acme", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    if (r->san1 != NULL) {
        GENERAL_NAMES *g = sk_GENERAL_NAME_new_null();
        sk_GENERAL_NAME_push(g, san(r->san1));
        if (r->san2 != NULL)
            sk_GENERAL_NAME_push(g, san(r->san2));
        assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name, g, 0, 0), 1);
        GENERAL_NAMES_free(g);
    }
    add_acme_ext(x, r->ext, hash);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    return x;
}

static void test_tlsalpn_rows(void **state)
{
    char err[ERR_LEN];
    unsigned char hash[32];
    pki_sha256("token.thumbprint", 16, hash);
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    for (size_t i = 0; i < nitems(rows); i++) {
        X509 *x = make_cert(key, &rows[i], hash);
        err[0] = '\0';
        int rc = pki_tlsalpn01_check(x, rows[i].identifier, rows[i].is_ip, hash, err);
        print_message("tls-alpn row: %s -> %d %s\n", rows[i].name, rc, err);
        assert_int_equal(rc, rows[i].rc);
        if (rc != 0)
            assert_true(err[0] != '\0');
        X509_free(x);
    }
    assert_int_equal(pki_tlsalpn01_check(NULL, "example.com", false, hash, err), -1);
    EVP_PKEY_free(key);
}

int test_pki_tlsalpn_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tlsalpn_rows),
    };
    return cmocka_run_group_tests_name("pki_tlsalpn", tests, NULL, NULL);
}
