/*
 * Unit tests for pki/pki_template.c: variable substitution inside literal
 * text, hostile values (DN injection, quotes, NUL, control characters,
 * malformed UTF-8, over-long), missing variables, and that an issued
 * certificate keeps each rendered value as one X.509 name entry.
 */
#include "test_pki.h"

#include <stdlib.h>
#include <string.h>

/* Variables from a fixed table; the value's length may include a NUL. */
struct vars {
    const char *names[4];
    const char *values[4];
    size_t lens[4];
};

static int lookup(void *arg, const char *path, const char **val, size_t *len)
{
    const struct vars *v = arg;
    for (size_t i = 0; i < 4 && v->names[i] != NULL; i++) {
        if (strcmp(v->names[i], path) == 0) {
            *val = v->values[i];
            *len = v->lens[i] != 0 ? v->lens[i] : strlen(v->values[i]);
            return 0;
        }
    }
    return -1;
}

static const struct pki_name_entry subject[] = {
    {"CN", "${/attest/serial}"}, {"O", "Example Corp"}, {"OU", "x-${/mdm/k/bp}-$$-$x"},
};
static const struct pki_san sans[] = {
    {PKI_SAN_EMAIL, "${/attest/serial}@corp.example"},
    {PKI_SAN_PERMANENT_ID, "${/attest/serial}"},
};
static const char *const eku[] = {"clientAuth"};
static const struct pki_template tpl = {
    .name = "wifi", .subject = subject, .nsubject = 3, .sans = sans, .nsans = 2,
    .key_usage = PKI_KU_DIGITAL_SIGNATURE, .eku = eku, .neku = 1, .validity = 86400,
};

static const struct {
    const char *name, *serial, *bp;
    size_t serial_len; /* 0 = strlen */
    const char *err;   /* NULL = renders */
} rows[] = {
    {"plain", "C02X", "Corp", 0, NULL},
    {"dn injection", "CN=evil,O=x", "a+b=c", 0, NULL},
    {"quotes", "\"'\\", "<>;#", 0, NULL},
    {"unicode", "C02X", "Zürich 東京", 0, NULL},
    {"nul", "C02X\0evil", "Corp", 9, "template wifi: ${/attest/serial} holds a NUL byte"},
    {"missing", "C02X", NULL, 0, "template wifi: ${/mdm/k/bp} has no value"},
    {"empty", "", "Corp", 0, "template wifi: ${/attest/serial} has no value"},
    {"tab", "C02X\tY", "Corp", 0,
     "template wifi: subject CN is not UTF-8 text without control characters"},
    {"del", "C02X\x7f", "Corp", 0,
     "template wifi: subject CN is not UTF-8 text without control characters"},
    {"c1", "C02X\xc2\x85", "Corp", 0,
     "template wifi: subject CN is not UTF-8 text without control characters"},
    {"overlong", "C02X\xc0\xaf", "Corp", 0,
     "template wifi: subject CN is not UTF-8 text without control characters"},
    {"surrogate", "C02X\xed\xa0\x80", "Corp", 0,
     "template wifi: subject CN is not UTF-8 text without control characters"},
    {"truncated", "C02X\xe6\x9d", "Corp", 0,
     "template wifi: subject CN is not UTF-8 text without control characters"},
    {"long OU", "C02X", "12345678901234567890123456789012345678901234567890123456789012", 0,
     "template wifi: subject OU is 69 characters; at most 64 allowed"},
};

static void test_template_render_table(void **state)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct vars v = {{"/attest/serial", rows[i].bp != NULL ? "/mdm/k/bp" : NULL},
                         {rows[i].serial, rows[i].bp},
                         {rows[i].serial_len, 0}};
        struct pki_issue_req req = {0};
        struct pki_tpl_out st;
        char err[ERR_LEN] = "";
        int rc = pki_template_render(&tpl, lookup, &v, 500, &req, &st, err);
        if (rows[i].err != NULL) {
            if (rc != -1 || strcmp(err, rows[i].err) != 0)
                fail_msg("%s: rc %d err \"%s\"", rows[i].name, rc, err);
            assert_null(st.subject);
            continue;
        }
        if (rc != 0)
            fail_msg("%s: %s", rows[i].name, err);
        assert_string_equal(req.subject[0].value, rows[i].serial);
        char *ou = xasprintf("x-%s-$-$x", rows[i].bp);
        assert_string_equal(req.subject[2].value, ou);
        free(ou);
        assert_int_equal(req.not_after, 500 + 86400);
        assert_int_equal(req.nsans, 2);
        pki_tpl_out_clear(&st);
    }
}

static void test_template_bad_template(void **state)
{
    struct pki_template t = tpl;
    struct pki_name_entry bad[] = {{"CN", "${/attest/serial"}, {"C", "usa"}};
    struct vars v = {{"/attest/serial"}, {"S"}, {0}};
    struct pki_issue_req req = {0};
    struct pki_tpl_out st;
    char err[ERR_LEN];
    t.subject = bad;
    t.nsubject = 1;
    assert_int_equal(pki_template_render(&t, lookup, &v, 0, &req, &st, err), -1);
    assert_string_equal(err, "template wifi: subject CN: malformed ${...}");
    t.subject = &bad[1];
    assert_int_equal(pki_template_render(&t, lookup, &v, 0, &req, &st, err), -1);
    assert_string_equal(err, "template wifi: subject C is 3 characters; at most 2 allowed");
    bad[1].value = "u1";
    assert_int_equal(pki_template_render(&t, lookup, &v, 0, &req, &st, err), -1);
    assert_string_equal(err, "template wifi: subject C must be two capital letters");
    t.nsubject = 0;
    t.nsans = 0;
    assert_int_equal(pki_template_render(&t, lookup, &v, 0, &req, &st, err), -1);
    assert_int_equal(pki_template_render(&tpl, NULL, NULL, 0, &req, &st, err), -1);
    assert_string_equal(err, "template wifi: ${/attest/serial} has no value");
    pki_tpl_out_clear(NULL);
}

/* The rendered DN-looking value stays one CN entry in the issued certificate. */
static void test_template_issue(void **state)
{
    char *dir = NULL, err[ERR_LEN] = "";
    struct pki_ca *ca = tp_ca_new(&dir);
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    struct vars v = {{"/attest/serial", "/mdm/k/bp"}, {"CN=evil,O=x", "OU=a+CN=b"}, {0}};
    struct pki_issue_req req = {.subject_key = key};
    struct pki_tpl_out st;
    struct pki_issued iss = {0};
    assert_non_null(key);
    assert_int_equal(pki_template_render(&tpl, lookup, &v, clk_now(), &req, &st, err), 0);
    req.subject_key = key;
    if (pki_issue(ca, &req, &iss, err) != 0)
        fail_msg("pki_issue: %s", err);
    X509 *x = tp_pem_cert(iss.pem);
    X509_NAME *name = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_entry_count(name), 3);
    int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    assert_int_equal(idx, 0);
    assert_int_equal(X509_NAME_get_index_by_NID(name, NID_commonName, idx), -1);
    ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    assert_int_equal(ASN1_STRING_length(cn), 11);
    assert_memory_equal(ASN1_STRING_get0_data(cn), "CN=evil,O=x", 11);
    X509_free(x);
    pki_issued_clear(&iss);
    pki_tpl_out_clear(&st);
    EVP_PKEY_free(key);
    pki_ca_free(ca);
    tp_rmdir(dir);
    free(dir);
}

int test_pki_template_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_template_render_table),
        cmocka_unit_test(test_template_bad_template),
        cmocka_unit_test(test_template_issue),
    };
    return cmocka_run_group_tests_name("pki_template", tests, NULL, NULL);
}
