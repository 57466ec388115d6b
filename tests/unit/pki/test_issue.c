/* pki_issue.c and pki_cert.c: issued certificates checked with OpenSSL, serials, DER/PEM. */
#include "test_pki.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

static const struct pki_name_entry subject[] = {
    {"CN", "host.example.com"},
    {"O", "Ex, Inc/CN=evil+OU=\"x\""}, /* DN syntax in a value must stay data */
};
static const struct pki_san all_sans[] = {
    {PKI_SAN_DNS, "host.example.com"},  {PKI_SAN_IP, "192.0.2.1"},
    {PKI_SAN_IP, "2001:db8::2"},        {PKI_SAN_EMAIL, "a@example.com"},
    {PKI_SAN_URI, "urn:x:1"},           {PKI_SAN_PERMANENT_ID, "C02XK0ABJGH5"},
    {PKI_SAN_UPN, "user@corp.example"},
    /* DA-5: a UTF-8 serial keeps its bytes in hwSerialNum. */
    {PKI_SAN_HW_MODULE, "S\xc3\xa9rial\xe2\x80\x94" "42/1.2.3.4"},
};

/* Verifies leaf up to the root the test CA dir holds, at the current time. */
static int chain_verify(X509 *leaf, const struct pki_ca *ca, const char *dir)
{
    char *rp = xasprintf("%s/root.pem", dir);
    X509_STORE *store = X509_STORE_new();
    assert_int_equal(X509_STORE_load_file(store, rp), 1);
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    sk_X509_push(untrusted, pki_ca_cert(ca));
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, leaf, untrusted);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
    int ok = X509_verify_cert(ctx);
    if (ok != 1)
        print_message("verify: %s\n", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted);
    X509_STORE_free(store);
    free(rp);
    return ok;
}

static bool ext_critical(X509 *x, int nid)
{
    int idx = X509_get_ext_by_NID(x, nid, -1);
    assert_true(idx >= 0);
    return X509_EXTENSION_get_critical(X509_get_ext(x, idx)) == 1;
}

static void check_sans(X509 *x)
{
    GENERAL_NAMES *g = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_non_null(g);
    assert_int_equal(sk_GENERAL_NAME_num(g), nitems(all_sans));
    const GENERAL_NAME *gn = sk_GENERAL_NAME_value(g, 0);
    assert_int_equal(gn->type, GEN_DNS);
    assert_memory_equal(ASN1_STRING_get0_data(gn->d.dNSName), "host.example.com", 16);
    gn = sk_GENERAL_NAME_value(g, 1);
    assert_int_equal(gn->type, GEN_IPADD);
    assert_memory_equal(ASN1_STRING_get0_data(gn->d.iPAddress), "\xc0\x00\x02\x01", 4);
    gn = sk_GENERAL_NAME_value(g, 2);
    assert_int_equal(ASN1_STRING_length(gn->d.iPAddress), 16);
    assert_int_equal(sk_GENERAL_NAME_value(g, 3)->type, GEN_EMAIL);
    assert_int_equal(sk_GENERAL_NAME_value(g, 4)->type, GEN_URI);
    /* otherName permanentIdentifier: exact DER of SEQUENCE { UTF8String }. */
    gn = sk_GENERAL_NAME_value(g, 5);
    assert_int_equal(gn->type, GEN_OTHERNAME);
    char oid[64];
    OBJ_obj2txt(oid, sizeof(oid), gn->d.otherName->type_id, 1);
    assert_string_equal(oid, "1.3.6.1.5.5.7.8.3");
    unsigned char *der = NULL;
    int n = i2d_ASN1_TYPE(gn->d.otherName->value, &der);
    assert_int_equal(n, 16);
    assert_memory_equal(der,
                        "\x30\x0e\x0c\x0c"
                        "C02XK0ABJGH5",
                        16);
    OPENSSL_free(der);
    gn = sk_GENERAL_NAME_value(g, 6);
    OBJ_obj2txt(oid, sizeof(oid), gn->d.otherName->type_id, 1);
    assert_string_equal(oid, "1.3.6.1.4.1.311.20.2.3");
    assert_int_equal(gn->d.otherName->value->type, V_ASN1_UTF8STRING);
    tp_assert_hw_module(sk_GENERAL_NAME_value(g, 7), "S\xc3\xa9rial\xe2\x80\x94" "42", "1.2.3.4");
    GENERAL_NAMES_free(g);
}

static void test_issue_full(void **state)
{
    char err[ERR_LEN], *dir = NULL;
    struct pki_ca *ca = tp_ca_new(&dir);
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    struct pki_issue_req req = {
        .subject_key = key,
        .subject = subject,
        .nsubject = nitems(subject),
        .sans = all_sans,
        .nsans = nitems(all_sans),
        .not_before = clk_now() - 60,
        .not_after = pki_ca_not_after(ca) + 86400 * 30,
    };
    struct pki_issued iss;
    assert_int_equal(pki_issue(ca, &req, &iss, err), 0);
    X509 *x = tp_pem_cert(iss.pem);

    assert_int_equal(X509_verify(x, X509_get0_pubkey(pki_ca_cert(ca))), 1);
    assert_int_equal(chain_verify(x, ca, dir), 1);
    assert_true(pki_cert_issued_by(x, ca));
    assert_true(pki_key_equal(X509_get0_pubkey(x), key));
    assert_int_equal(X509_get_version(x), X509_VERSION_3);
    assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);

    /* Serial: positive, more than 128 bits, matching both hex forms. */
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    assert_false(BN_is_negative(bn));
    assert_true(BN_num_bits(bn) > 128);
    BN_free(bn);
    assert_int_equal(strlen(iss.serial), 34);
    char hex[41];
    assert_int_equal(pki_cert_serial_hex(x, hex), 0);
    assert_string_equal(hex, iss.serial);

    /* Validity: clamped to the CA. */
    assert_int_equal(iss.not_after, pki_ca_not_after(ca));
    int64_t na = 0, nb = 0;
    assert_int_equal(pki_asn1_time_get(X509_get0_notAfter(x), &na), 0);
    assert_int_equal(pki_asn1_time_get(X509_get0_notBefore(x), &nb), 0);
    assert_int_equal(na, pki_ca_not_after(ca));
    assert_int_equal(nb, req.not_before);

    /* Subject entries kept verbatim, in order. */
    const X509_NAME *name = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_entry_count(name), 2);
    char buf[128];
    X509_NAME_get_text_by_NID(name, NID_organizationName, buf, sizeof(buf));
    assert_string_equal(buf, subject[1].value);
    assert_int_equal(X509_NAME_get_index_by_NID(name, NID_organizationalUnitName, -1), -1);

    /* Extensions. */
    assert_int_equal(X509_check_ca(x), 0);
    assert_true(ext_critical(x, NID_basic_constraints));
    assert_true(ext_critical(x, NID_key_usage));
    assert_false(ext_critical(x, NID_subject_alt_name));
    assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
    assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER);
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x);
    assert_non_null(X509_get0_subject_key_id(x));
    assert_non_null(aki);
    assert_int_equal(ASN1_OCTET_STRING_cmp(aki, X509_get0_subject_key_id(pki_ca_cert(ca))), 0);
    check_sans(x);

    X509_free(x);
    pki_issued_clear(&iss);
    pki_issued_clear(&iss);
    EVP_PKEY_free(key);
    pki_ca_free(ca);
    tp_rmdir(dir);
    free(dir);
}

/* Subject key types, key usage defaults, EKU choices, SAN-only certificates. */
static void test_issue_variants(void **state)
{
    static const char *client[] = {"clientAuth"};
    static const char *both[] = {"serverAuth", "1.3.6.1.5.5.7.3.2"};
    static const struct pki_san one_san[] = {{PKI_SAN_PERMANENT_ID, "ABC"}};
    static const struct {
        const char *name;
        enum pki_key_type type;
        bool with_subject;
        unsigned ku;
        const char **eku;
        size_t neku;
        uint32_t want_ku, want_xku;
    } rows[] = {
        {"RSA default KU", PKI_KEY_RSA2048, true, 0, NULL, 0,
         KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT, XKU_SSL_SERVER},
        {"Ed25519 clientAuth SAN-only", PKI_KEY_ED25519, false, 0, client, 1, KU_DIGITAL_SIGNATURE,
         XKU_SSL_CLIENT},
        {"P-384 explicit KU, both EKUs", PKI_KEY_P384, true,
         PKI_KU_DIGITAL_SIGNATURE | PKI_KU_KEY_AGREEMENT, both, 2,
         KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT, XKU_SSL_SERVER | XKU_SSL_CLIENT},
        {"no EKU", PKI_KEY_P256, true, PKI_KU_NON_REPUDIATION, client, 0, KU_NON_REPUDIATION, 0},
    };
    char err[ERR_LEN], *dir = NULL;
    struct pki_ca *ca = tp_ca_new(&dir);
    for (size_t i = 0; i < nitems(rows); i++) {
        print_message("issue row: %s\n", rows[i].name);
        EVP_PKEY *key = pki_key_generate(rows[i].type, err);
        struct pki_issue_req req = {
            .subject_key = key,
            .subject = subject,
            .nsubject = rows[i].with_subject ? 1 : 0,
            .sans = one_san,
            .nsans = 1,
            .key_usage = rows[i].ku,
            .eku_oids = rows[i].eku,
            .neku = rows[i].neku,
            .not_before = clk_now(),
            .not_after = clk_now() + 86400,
        };
        struct pki_issued iss;
        assert_int_equal(pki_issue(ca, &req, &iss, err), 0);
        X509 *x = tp_pem_cert(iss.pem);
        assert_true(pki_cert_issued_by(x, ca));
        assert_int_equal(X509_get_key_usage(x), rows[i].want_ku);
        if (rows[i].want_xku == 0)
            assert_int_equal(X509_get_ext_by_NID(x, NID_ext_key_usage, -1), -1);
        else
            assert_int_equal(X509_get_extended_key_usage(x), rows[i].want_xku);
        assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(x)),
                         rows[i].with_subject ? 1 : 0);
        /* RFC 5280: SAN critical exactly when the subject is empty. */
        assert_int_equal(ext_critical(x, NID_subject_alt_name), !rows[i].with_subject);
        assert_int_equal(iss.not_after, req.not_after);
        X509_free(x);
        pki_issued_clear(&iss);
        EVP_PKEY_free(key);
    }
    pki_ca_free(ca);
    tp_rmdir(dir);
    free(dir);
}

static void test_issue_refused(void **state)
{
    static const struct pki_san bad_ip[] = {{PKI_SAN_IP, "300.1.1.1"}};
    static const struct pki_san bad_dns[] = {{PKI_SAN_DNS, "a b.example"}};
    static const struct pki_san bad_upn[] = {{PKI_SAN_UPN, "\xff\xfe"}};
    static const struct pki_san null_val[] = {{PKI_SAN_URI, NULL}};
    static const struct pki_san bad_type[] = {{PKI_SAN__MAX, "x"}};
    static const struct pki_name_entry bad_field[] = {{"NoSuchField", "x"}};
    static const struct pki_name_entry empty_val[] = {{"CN", ""}};
    static const struct pki_name_entry long_cn[] = {
        {"CN", "a-very-long-common-name-that-exceeds-the-sixty-four-character-upper-bound.ex"}};
    static const char *bad_eku[] = {"notAnEkuName"};
    static const struct pki_san ok_san[] = {{PKI_SAN_DNS, "ok.example"}};
    static const struct {
        const char *name;
        const struct pki_san *sans;
        const struct pki_name_entry *subj;
        const char **eku;
        unsigned ku;
        int64_t nb_off, na_off; /* relative to now; na 0 = CA notAfter + 1 day */
        bool no_key;
    } rows[] = {
        {"bad IP", bad_ip, NULL, NULL, 0, 0, 3600, false},
        {"DNS with space", bad_dns, NULL, NULL, 0, 0, 3600, false},
        {"UPN not UTF-8", bad_upn, NULL, NULL, 0, 0, 3600, false},
        {"NULL SAN value", null_val, NULL, NULL, 0, 0, 3600, false},
        {"unknown SAN type", bad_type, NULL, NULL, 0, 0, 3600, false},
        {"unknown subject field", ok_san, bad_field, NULL, 0, 0, 3600, false},
        {"empty subject value", ok_san, empty_val, NULL, 0, 0, 3600, false},
        {"CN over 64 chars", ok_san, long_cn, NULL, 0, 0, 3600, false},
        {"unknown EKU", ok_san, NULL, bad_eku, 0, 0, 3600, false},
        {"unknown KU bits", ok_san, NULL, NULL, 0x100, 0, 3600, false},
        {"not_after before not_before", ok_san, NULL, NULL, 0, 3600, 60, false},
        {"no subject key", ok_san, NULL, NULL, 0, 0, 3600, true},
        {"neither subject nor SANs", NULL, NULL, NULL, 0, 0, 3600, false},
    };
    char err[ERR_LEN], *dir = NULL;
    struct pki_ca *ca = tp_ca_new(&dir);
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    for (size_t i = 0; i < nitems(rows); i++) {
        struct pki_issue_req req = {
            .subject_key = rows[i].no_key ? NULL : key,
            .subject = rows[i].subj,
            .nsubject = rows[i].subj != NULL ? 1 : 0,
            .sans = rows[i].sans,
            .nsans = rows[i].sans != NULL ? 1 : 0,
            .key_usage = rows[i].ku,
            .eku_oids = rows[i].eku,
            .neku = rows[i].eku != NULL ? 1 : 0,
            .not_before = clk_now() + rows[i].nb_off,
            .not_after = clk_now() + rows[i].na_off,
        };
        struct pki_issued iss;
        err[0] = '\0';
        int rc = pki_issue(ca, &req, &iss, err);
        print_message("refused row: %s -> %d %s\n", rows[i].name, rc, err);
        assert_int_equal(rc, -1);
        assert_true(err[0] != '\0');
        assert_null(iss.pem);
    }
    /* Validity that starts after the CA expires is empty once clamped. */
    struct pki_issue_req late = {.subject_key = key,
                                 .sans = ok_san,
                                 .nsans = 1,
                                 .not_before = pki_ca_not_after(ca) + 1,
                                 .not_after = pki_ca_not_after(ca) + 86400};
    struct pki_issued iss;
    assert_int_equal(pki_issue(ca, &late, &iss, err), -1);
    EVP_PKEY_free(key);
    pki_ca_free(ca);
    tp_rmdir(dir);
    free(dir);
}

static unsigned char fill_byte;
static int fill_source(void *buf, size_t n)
{
    memset(buf, fill_byte, n);
    return 0;
}
static int failing_source(void *buf, size_t n)
{
    return -1;
}

static void test_issue_serial_seam(void **state)
{
    static const struct {
        unsigned char fill;
        const char *serial;
    } rows[] = {
        {0x00, "0100000000000000000000000000000000"},
        {0xff, "7fffffffffffffffffffffffffffffffff"},
        {0x80, "0180808080808080808080808080808080"},
        {0x42, "4242424242424242424242424242424242"},
    };
    static const struct pki_san san[] = {{PKI_SAN_DNS, "s.example"}};
    char err[ERR_LEN], *dir = NULL;
    struct pki_ca *ca = tp_ca_new(&dir);
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    struct pki_issue_req req = {.subject_key = key,
                                .sans = san,
                                .nsans = 1,
                                .not_before = clk_now(),
                                .not_after = clk_now() + 3600};
    for (size_t i = 0; i < nitems(rows); i++) {
        struct pki_issued iss;
        fill_byte = rows[i].fill;
        rand_set_source(fill_source);
        int rc = pki_issue(ca, &req, &iss, err);
        rand_set_source(NULL);
        assert_int_equal(rc, 0);
        assert_string_equal(iss.serial, rows[i].serial);
        X509 *x = tp_pem_cert(iss.pem);
        char hex[41];
        assert_int_equal(pki_cert_serial_hex(x, hex), 0);
        assert_string_equal(hex, rows[i].serial);
        X509_free(x);
        pki_issued_clear(&iss);
    }
    struct pki_issued iss;
    rand_set_source(failing_source);
    assert_int_equal(pki_issue(ca, &req, &iss, err), -1);
    rand_set_source(NULL);
    EVP_PKEY_free(key);
    pki_ca_free(ca);
    tp_rmdir(dir);
    free(dir);
}

static void test_cert_parse_and_issuer(void **state)
{
    static const struct pki_san san[] = {{PKI_SAN_DNS, "p.example"}};
    char err[ERR_LEN], *dir = NULL, *dir2 = NULL;
    struct pki_ca *ca = tp_ca_new(&dir), *other = tp_ca_new(&dir2);
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    struct pki_issue_req req = {.subject_key = key,
                                .sans = san,
                                .nsans = 1,
                                .not_before = clk_now(),
                                .not_after = clk_now() + 3600};
    struct pki_issued iss;
    assert_int_equal(pki_issue(ca, &req, &iss, err), 0);
    unsigned char *der = NULL;
    size_t len = 0;
    assert_int_equal(pki_pem_to_der(iss.pem, &der, &len), 0);
    X509 *x = pki_cert_parse_der(der, len, err);
    assert_non_null(x);
    char hex[41];
    assert_int_equal(pki_cert_serial_hex(x, hex), 0);
    assert_string_equal(hex, iss.serial);
    assert_true(pki_cert_issued_by(x, ca));
    assert_false(pki_cert_issued_by(x, other));
    assert_false(pki_cert_issued_by(pki_ca_cert(ca), ca)); /* signed by the root */
    X509_free(x);

    /* Same issuer name, same AKI, broken signature: not issued by ca. */
    unsigned char *bad = xmalloc(len + 1);
    memcpy(bad, der, len);
    bad[len - 3] ^= 0x01;
    x = pki_cert_parse_der(bad, len, err);
    assert_non_null(x);
    assert_false(pki_cert_issued_by(x, ca));
    X509_free(x);

    unsigned char *big = xcalloc(1, 64 * 1024 + 1);
    memcpy(big, der, len);
    assert_null(pki_cert_parse_der(der, len - 5, err));
    assert_null(pki_cert_parse_der(big, len + 1, err));
    assert_null(pki_cert_parse_der(der, 0, err));
    assert_null(pki_cert_parse_der(big, 64 * 1024 + 1, err)); /* oversize */
    assert_null(pki_cert_parse_der((const unsigned char *)"\x30\x03\x02\x01\x01", 5, err));
    unsigned char *d2 = NULL;
    size_t l2 = 0;
    assert_int_equal(pki_pem_to_der("not a pem", &d2, &l2), -1);
    assert_null(d2);
    assert_int_equal(pki_pem_to_der(NULL, &d2, &l2), -1);

    free(big);
    free(bad);
    free(der);
    pki_issued_clear(&iss);
    EVP_PKEY_free(key);
    pki_ca_free(ca);
    pki_ca_free(other);
    tp_rmdir(dir);
    tp_rmdir(dir2);
    free(dir);
    free(dir2);
}

/* A P-384 CA signs with SHA-384. */
static void test_issue_digest_by_ca_key(void **state)
{
    static const struct pki_san san[] = {{PKI_SAN_DNS, "d.example"}};
    char err[ERR_LEN], *dir = NULL;
    struct pki_ca *ca = tp_ca_new(&dir);
    char *rp = xasprintf("%s/root.pem", dir), *rk = xasprintf("%s/root.key", dir);
    struct pki_ca *root = pki_ca_load("root", rp, rk, NULL, err);
    assert_non_null(root);
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    struct pki_issue_req req = {.subject_key = key,
                                .sans = san,
                                .nsans = 1,
                                .not_before = clk_now(),
                                .not_after = clk_now() + 3600};
    struct pki_issued iss;
    assert_int_equal(pki_issue(root, &req, &iss, err), 0);
    X509 *x = tp_pem_cert(iss.pem);
    assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA384);
    assert_true(pki_cert_issued_by(x, root));
    X509_free(x);
    pki_issued_clear(&iss);
    EVP_PKEY_free(key);
    pki_ca_free(root);
    pki_ca_free(ca);
    free(rp);
    free(rk);
    tp_rmdir(dir);
    free(dir);
}

static void test_tls_cert_create(void **state)
{
    static const char *const names[] = {"localhost", "127.0.0.1", "::1"};
    char err[ERR_LEN], *dir = NULL;
    struct pki_ca *ca = tp_ca_new(&dir);
    char *cp = xasprintf("%s/tls.pem", dir), *kp = xasprintf("%s/tls.key", dir);
    assert_int_equal(pki_tls_cert_create(ca, names, nitems(names), cp, kp, err), 0);
    struct stat st;
    assert_int_equal(stat(kp, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    STACK_OF(X509) *certs = pki_read_certs(cp, 8, err);
    assert_non_null(certs);
    assert_int_equal(sk_X509_num(certs), 3); /* leaf, intermediate, root */
    X509 *leaf = sk_X509_value(certs, 0);
    EVP_PKEY *key = pki_key_load(kp, err);
    assert_non_null(key);
    assert_int_equal(X509_check_private_key(leaf, key), 1);
    assert_int_equal(pki_key_type_of(key), PKI_KEY_P256);
    assert_true(pki_cert_issued_by(leaf, ca));
    assert_int_equal(X509_check_host(leaf, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(leaf, "::1", 0), 1);
    assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER);
    assert_int_equal(pki_tls_cert_create(ca, names, 0, cp, kp, err), -1);
    EVP_PKEY_free(key);
    sk_X509_pop_free(certs, X509_free);
    free(cp);
    free(kp);
    pki_ca_free(ca);
    tp_rmdir(dir);
    free(dir);
}

int test_pki_issue_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue_full),
        cmocka_unit_test(test_issue_variants),
        cmocka_unit_test(test_issue_refused),
        cmocka_unit_test(test_issue_serial_seam),
        cmocka_unit_test(test_cert_parse_and_issuer),
        cmocka_unit_test(test_issue_digest_by_ca_key),
        cmocka_unit_test(test_tls_cert_create),
    };
    return cmocka_run_group_tests_name("pki_issue", tests, NULL, NULL);
}
