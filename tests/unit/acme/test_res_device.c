/*
 * test_res_device.c: device-attest-01 through the resource handlers with the
 * real Apple vector attobj_WRPWFW61H9.cbor at a fixed time inside its leaf
 * window: identifier syntax (DA-1..DA-3), refusals that settle everything
 * invalid (nonce, identity, validity, device error), malformed responses that
 * leave the challenge pending, success with the attestation recorded, the
 * attested-key check at finalize (DA-17), the PermanentIdentifier assigner
 * (DA-4) and the hardware-module certificate (DA-5), each with its CSR check
 * (DA-6).
 */
#include "test_res_helpers.h"

#include <openssl/conf.h>

#define VECTOR ATTESTA_SHARED_DIR "/vectors/apple/attobj_WRPWFW61H9.cbor"
/* 2026-06-01T00:00:00Z, inside the leaf's 2026-04-28 .. 2026-07-28 window. */
#define IN_WINDOW 1780272000
#define AFTER_WINDOW 1790000000

static char *
attobj_payload(void)
{
    size_t len = 0;
    unsigned char *cbor = t_read_file(VECTOR, &len);
    char *b64 = b64u_encode(cbor, len), *out;

    out = xasprintf("{\"attObj\":\"%s\",\"extra\":1}", b64);
    free(b64);
    free(cbor);
    return out;
}

/* A devices-policy order for value; returns authz and challenge ids. */
static void
device_order(const char *type, const char *value, char oid[64], char az[64], char ch[64])
{
    char azs[1][64], *ids = xasprintf("[{\"type\":\"%s\",\"value\":\"%s\"}]", type, value);
    struct t_res r = {0};
    const cJSON *chs;

    t_new_order("devices", &T.acct1, ids, oid, azs, 1);
    snprintf(az, 64, "%s", azs[0]);
    t_call_as(acme_h_authz, "devices", &T.acct1, NULL, az, NULL, NULL, &r);
    chs = cJSON_GetObjectItemCaseSensitive(r.json, "challenges");
    assert_int_equal(cJSON_GetArraySize(chs), 1); /* CH-3: device-attest-01 only */
    assert_string_equal(t_str(cJSON_GetArrayItem(chs, 0), "type"), "device-attest-01");
    t_last(t_str(cJSON_GetArrayItem(chs, 0), "url"), 1, ch, 64);
    free(ids);
    t_res_clear(&r);
}

/* The published preimage of this leaf's freshness code (vectors README): made the token. */
#define KNOWN_TOKEN                                                                                \
    "qKxKds4zZk81flmOxcOmQVYSL0xkeg88tLBfXd7ghhJ/QYjW5ZKBAzASJ0TPwseWv38jW61NESGDtGsJqdzJ9Q=="

static void
inject_token(const char *az)
{
    struct acme_authz a = {0};
    struct acme_problem prob = {0};
    struct store_rec rec;
    char *data, err[ERR_LEN];

    assert_int_equal(acme_authz_load(T.ctx, az, &a, &prob), 0);
    snprintf(a.ch[0].token, sizeof(a.ch[0].token), "%s", KNOWN_TOKEN);
    acme_authz_rec(&a, &rec, &data);
    assert_int_equal(
        store_commit(T.store, &(struct store_write){STORE_UPDATE, &rec, a.version}, 1, err), 0);
    free(data);
    acme_authz_clear(&a);
}

/* A device order whose challenge the vector answers (token injected); r gets the answer. */
static void
attested_order(const char *type, const char *value, const char *payload, char oid[64],
               char az[64], char ch[64], struct t_res *r)
{
    device_order(type, value, oid, az, ch);
    inject_token(az);
    t_call_as(acme_h_challenge, "devices", &T.acct1, NULL, az, ch, payload, r);
    if (r->rc != 0)
        fail_msg("device-attest-01: %s", r->prob.detail);
}

/* Pretends the device attested key (its private key is not public). */
static void
bind_key(const char *az, EVP_PKEY *key)
{
    struct acme_authz a = {0};
    struct acme_problem prob = {0};
    struct store_rec rec;
    char *data, err[ERR_LEN];

    assert_int_equal(acme_authz_load(T.ctx, az, &a, &prob), 0);
    assert_int_equal(pki_key_spki_sha256_hex(key, a.att.spki_sha256), 0);
    acme_authz_rec(&a, &rec, &data);
    assert_int_equal(
        store_commit(T.store, &(struct store_write){STORE_UPDATE, &rec, a.version}, 1, err), 0);
    free(data);
    acme_authz_clear(&a);
}

/* otherName type ids as DER TLVs, and each SAN the vector's device gets, byte for byte. */
#define TLV_PERM_ID "\x06\x08\x2b\x06\x01\x05\x05\x07\x08\x03"
#define TLV_HW_MODULE "\x06\x08\x2b\x06\x01\x05\x05\x07\x08\x04"
/* otherName { permanentIdentifier, [0] { SEQUENCE { UTF8String "WRPWFW61H9" } } } */
#define SAN_PERM_ID TLV_PERM_ID "\xa0\x0e\x30\x0c\x0c\x0a" "WRPWFW61H9"
/* otherName { permanentIdentifier, [0] { SEQUENCE { UTF8String "WRPW...", OID 1.2.3.4 } } } */
#define SAN_PERM_ID_ASSIGNER TLV_PERM_ID "\xa0\x13\x30\x11\x0c\x0a" "WRPWFW61H9\x06\x03\x2a\x03\x04"
/* otherName { hardwareModuleName, [0] { SEQUENCE { OID 1.2.3.4, OCTET STRING "WRPW..." } } } */
#define SAN_HW_MODULE TLV_HW_MODULE "\xa0\x13\x30\x11\x06\x03\x2a\x03\x04\x04\x0a" "WRPWFW61H9"

/*
 * DA-4, DA-5, §8 step 10: clientAuth only, CN = the identifier, the SAN san
 * (san_len bytes) and no otherName of type absent.
 */
static void
check_device_cert(const char *url, const char *want_cn, const char *san, size_t san_len,
                  const char *absent)
{
    char serial[64], cn[64];
    unsigned char *der = NULL;
    const unsigned char *p;
    struct t_res r = {0};
    size_t len = 0;
    X509 *x;

    t_last(url, 1, serial, sizeof(serial));
    t_call_as(acme_h_cert, "devices", &T.acct1, NULL, serial, NULL, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(pki_pem_to_der(r.resp.body, &der, &len), 0);
    p = der;
    x = d2i_X509(NULL, &p, (long)len);
    assert_non_null(x);
    assert_true(X509_get_extended_key_usage(x) & XKU_SSL_CLIENT);
    assert_false(X509_get_extended_key_usage(x) & XKU_SSL_SERVER);
    assert_true(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE);
    assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
                                          sizeof(cn)) > 0);
    assert_string_equal(cn, want_cn);
    assert_non_null(memmem(der, len, san, san_len));
    assert_null(memmem(der, len, absent, 10));
    X509_free(x);
    free(der);
    t_res_clear(&r);
}

static const char *
status_of(acme_handler_fn *h, const char *id1, const char *id2)
{
    static char st[16];
    struct t_res r = {0};

    t_call_as(h, "devices", &T.acct1, NULL, id1, id2, NULL, &r);
    snprintf(st, sizeof(st), "%s", t_str(r.json, "status"));
    t_res_clear(&r);
    return st;
}

struct id_case {
    const char *type;
    const char *value;
    bool ok;
};

static const struct id_case id_cases[] = {
    {"permanent-identifier", "ABCDEF123456", true},
    {"permanent-identifier", "ABCDEF123456/1.2.3.4", true},
    {"permanent-identifier", "", false},
    {"permanent-identifier", "ABC/", false},
    {"permanent-identifier", "ABC/1.40", false},
    {"permanent-identifier", "ABC/3.1", false},
    {"permanent-identifier", "ABC/1.2.03", false},
    {"permanent-identifier", "/1.2.3", false},
    {"permanent-identifier", "AB\\u0001C", false},
    {"hardware-module", "ABCD/1.2.3.4", true},
    {"hardware-module", "ABCD", false},
    {"hardware-module", "/1.2.3", false},
    {"dns", "example.org", false}, /* not offered by the devices directory */
};

static void
test_device_identifiers(void **state)
{
    struct t_res r = {0};
    char *p;
    size_t i;

    for (i = 0; i < nitems(id_cases); i++) {
        p = xasprintf("{\"identifiers\":[{\"type\":\"%s\",\"value\":\"%s\"}]}", id_cases[i].type,
                      id_cases[i].value);
        t_call_as(acme_h_new_order, "devices", &T.acct1, NULL, NULL, NULL, p, &r);
        if ((r.rc == 0) != id_cases[i].ok)
            fail_msg("%s %s: rc %d (%s)", id_cases[i].type, id_cases[i].value, r.rc, r.prob.detail);
        if (!id_cases[i].ok && strcmp(id_cases[i].type, "dns") != 0)
            assert_string_equal(r.prob.type, "malformed");
        free(p);
    }
    t_res_clear(&r);
}

/* Malformed responses: 400 malformed, the challenge stays pending (DA-9). */
static void
test_malformed_response(void **state)
{
    static const char *const bad[] = {
        "{}",
        "{\"attObj\":\"\"}",
        "{\"attObj\":\"oWNmbXQ=\"}",
        "{\"attObj\":\"@@@\"}",
        "{\"attObj\":5}",
    };
    char oid[64], az[64], ch[64];
    struct t_res r = {0};
    size_t i;

    clk_set_fixed(IN_WINDOW);
    device_order("permanent-identifier", "WRPWFW61H9", oid, az, ch);
    for (i = 0; i < nitems(bad); i++) {
        t_call_as(acme_h_challenge, "devices", &T.acct1, NULL, az, ch, bad[i], &r);
        assert_int_equal(r.rc, -1);
        assert_string_equal(r.prob.type, "malformed");
        assert_string_equal(status_of(acme_h_challenge, az, ch), "pending");
    }
    clk_set_fixed(-1);
    t_res_clear(&r);
}

/* Refusal: badAttestationStatement 400, then challenge, authz and order invalid (DA-15). */
static void
expect_refusal(const char *value, int64_t at, const char *payload, const char *detail_part,
               const char *sub_type, bool known_token)
{
    char oid[64], az[64], ch[64];
    struct t_res r = {0};
    const cJSON *err;

    clk_set_fixed(at);
    device_order("permanent-identifier", value, oid, az, ch);
    if (known_token)
        inject_token(az);
    t_call_as(acme_h_challenge, "devices", &T.acct1, NULL, az, ch, payload, &r);
    assert_int_equal(r.rc, -1);
    assert_int_equal(r.prob.status, 400);
    assert_string_equal(r.prob.type, "badAttestationStatement");
    if (strstr(r.prob.detail, detail_part) == NULL)
        fail_msg("detail \"%s\" lacks \"%s\"", r.prob.detail, detail_part);
    if (sub_type != NULL) {
        assert_int_equal(r.prob.nsub, 1);
        assert_string_equal(r.prob.sub[0].type, sub_type);
        assert_string_equal(r.prob.sub[0].id_value, value);
    }
    t_call_as(acme_h_challenge, "devices", &T.acct1, NULL, az, ch, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "invalid");
    err = cJSON_GetObjectItemCaseSensitive(r.json, "error");
    assert_string_equal(t_str(err, "type"), ACME_ERR_NS "badAttestationStatement");
    assert_string_equal(status_of(acme_h_authz, az, NULL), "invalid");
    assert_string_equal(status_of(acme_h_order, oid, NULL), "invalid");
    clk_set_fixed(-1);
    t_res_clear(&r);
}

static void
test_refusals(void **state)
{
    char *p = attobj_payload();

    /* The vector's freshness code was made for another nonce than our random token. */
    expect_refusal("WRPWFW61H9", IN_WINDOW, p, "nonce", NULL, false);
    expect_refusal("WRPWFW61H9", AFTER_WINDOW, p, "", NULL, true);
    expect_refusal("WRPWFW61H9", IN_WINDOW, "{\"error\":{\"detail\":\"user declined\"}}",
                   "user declined", NULL, false);
    /* DA-14: right nonce, another device. */
    expect_refusal("ZZZZZZ0000", IN_WINDOW, p, "", "rejectedIdentifier", true);
    free(p);
}

/* Success (the token is the known preimage): valid everywhere, then the CSR key must be the
 * attested one. */
static void
test_success_and_key_binding(void **state)
{
    char oid[64], az[64], ch[64], err[ERR_LEN], *p = attobj_payload(), *csr, *fin;
    struct acme_authz a = {0};
    struct acme_problem prob = {0};
    struct t_res r = {0};
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);

    clk_set_fixed(IN_WINDOW);
    attested_order("permanent-identifier", "WRPWFW61H9", p, oid, az, ch, &r);
    assert_string_equal(t_str(r.json, "status"), "valid");
    assert_non_null(t_str(r.json, "validated"));
    assert_non_null(t_hdr(&r, "Link"));
    assert_string_equal(status_of(acme_h_authz, az, NULL), "valid");
    assert_string_equal(status_of(acme_h_order, oid, NULL), "ready");
    /* DA-20: the attested attributes, never the attObj. */
    assert_int_equal(acme_authz_load(T.ctx, az, &a, &prob), 0);
    assert_true(a.att.present);
    assert_string_equal(a.att.serial, "WRPWFW61H9");
    assert_string_equal(a.att.udid, "00006021-0014182A11C0201E");
    assert_string_equal(a.att.os_version, "26.2");
    assert_int_equal(strlen(a.att.spki_sha256), 64);
    acme_authz_clear(&a);
    /* Re-posting returns the current state. */
    t_call_as(acme_h_challenge, "devices", &T.acct1, NULL, az, ch, p, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(t_str(r.json, "status"), "valid");

    csr = t_csr(key, "WRPWFW61H9", NULL, false);
    fin = xasprintf("{\"csr\":\"%s\"}", csr);
    t_call_as(acme_h_finalize, "devices", &T.acct1, NULL, oid, NULL, fin, &r);
    assert_int_equal(r.rc, -1);
    assert_string_equal(r.prob.type, "badCSR");
    assert_non_null(strstr(r.prob.detail, "not the attested key"));
    assert_string_equal(status_of(acme_h_order, oid, NULL), "ready");
    /* With the attested key (injected: the device's private key is not public) it issues. */
    bind_key(az, key);
    t_call_as(acme_h_finalize, "devices", &T.acct1, NULL, oid, NULL, fin, &r);
    if (r.rc != 0)
        fail_msg("finalize: %s", r.prob.detail);
    assert_string_equal(t_str(r.json, "status"), "valid");
    check_device_cert(t_str(r.json, "certificate"), "WRPWFW61H9", SAN_PERM_ID,
                      sizeof(SAN_PERM_ID) - 1, TLV_HW_MODULE);
    clk_set_fixed(-1);
    free(csr);
    free(fin);
    free(p);
    EVP_PKEY_free(key);
    t_res_clear(&r);
}

/*
 * A CSR whose one SAN is an otherName of type type_oid holding the SEQUENCE
 * that the OpenSSL generator section cnf ("[seq]\n...") describes.
 */
static char *
othername_csr(EVP_PKEY *key, const char *type_oid, char *cnf)
{
    char *san = xasprintf("otherName:%s;SEQUENCE:seq", type_oid);
    BIO *bio = BIO_new_mem_buf(cnf, -1);
    CONF *conf = NCONF_new(NULL);
    X509_REQ *req = X509_REQ_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    unsigned char *der = NULL;
    long eline = 0;
    int len;
    char *out;

    assert_int_equal(NCONF_load_bio(conf, bio, &eline), 1);
    X509V3_set_ctx(&v3, NULL, NULL, req, NULL, 0);
    X509V3_set_nconf(&v3, conf);
    ext = X509V3_EXT_nconf_nid(conf, &v3, NID_subject_alt_name, san);
    assert_non_null(ext);
    sk_X509_EXTENSION_push(exts, ext);
    assert_int_equal(X509_REQ_add_extensions(req, exts), 1);
    assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
    assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
    len = i2d_X509_REQ(req, &der);
    assert_true(len > 0);
    out = b64u_encode(der, (size_t)len);
    OPENSSL_free(der);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    NCONF_free(conf);
    BIO_free(bio);
    free(san);
    free(cnf);
    return out;
}

/* HardwareModuleName {oid, serial}. */
static char *
hw_module_csr(EVP_PKEY *key, const char *serial, const char *oid)
{
    return othername_csr(key, "1.3.6.1.5.5.7.8.4",
                         xasprintf("[seq]\nhwType = OID:%s\nhwSerialNum = OCTETSTRING:%s\n",
                                   oid, serial));
}

/* PermanentIdentifier {value[, assigner]}; assigner NULL: none. */
static char *
perm_id_csr(EVP_PKEY *key, const char *value, const char *assigner)
{
    return othername_csr(key, "1.3.6.1.5.5.7.8.3",
                         xasprintf("[seq]\nidentifierValue = UTF8:%s\n%s%s\n", value,
                                   assigner != NULL ? "assigner = OID:" : "",
                                   assigner != NULL ? assigner : ""));
}

/* Finalizes order oid with csr (base64url); the result lands in r. */
static void
finalize_with(const char *oid, char *csr, struct t_res *r)
{
    char *fin = xasprintf("{\"csr\":\"%s\"}", csr);

    t_call_as(acme_h_finalize, "devices", &T.acct1, NULL, oid, NULL, fin, r);
    free(fin);
    free(csr);
}

/* A ready device order for value whose attested key is key (its private half is ours). */
static void
ready_order(const char *type, const char *value, EVP_PKEY *key, char oid[64])
{
    char az[64], ch[64], *p = attobj_payload();
    struct t_res r = {0};

    attested_order(type, value, p, oid, az, ch, &r);
    bind_key(az, key);
    free(p);
    t_res_clear(&r);
}

/*
 * DA-6: finalizing order oid with csr (taken) is badCSR naming the CSR's
 * device name got and the order identifier ident; the order stays ready.
 */
static void
expect_mismatch(const char *oid, char *csr, const char *got, const char *ident)
{
    char *want = xasprintf("%s does not match the order identifier %s", got, ident);
    struct t_res r = {0};

    finalize_with(oid, csr, &r);
    assert_int_equal(r.rc, -1);
    assert_string_equal(r.prob.type, "badCSR");
    if (strstr(r.prob.detail, want) == NULL)
        fail_msg("detail \"%s\" lacks \"%s\"", r.prob.detail, want);
    assert_string_equal(status_of(acme_h_order, oid, NULL), "ready");
    free(want);
    t_res_clear(&r);
}

/* Finalizing order oid with csr (taken) issues a certificate that check_device_cert accepts. */
static void
expect_issued(const char *oid, char *csr, const char *want_cn, const char *san, size_t san_len,
              const char *absent)
{
    struct t_res r = {0};

    finalize_with(oid, csr, &r);
    if (r.rc != 0)
        fail_msg("finalize: %s", r.prob.detail);
    check_device_cert(t_str(r.json, "certificate"), want_cn, san, san_len, absent);
    t_res_clear(&r);
}

/*
 * DA-5, DA-6: a hardware-module order. A CSR HardwareModuleName must be the
 * identifier byte for byte (badCSR naming both otherwise, order still ready);
 * the certificate carries the HardwareModuleName and no permanentIdentifier.
 */
static void
test_hardware_module(void **state)
{
    static const struct {
        const char *serial, *oid;
    } wrong[] = {
        {"wrpwfw61h9", "1.2.3.4"}, /* case */
        {"WRPWFW61H8", "1.2.3.4"}, /* serial */
        {"WRPWFW61H9", "1.2.3.5"}, /* type */
    };
    char oid[64], err[ERR_LEN], got[128];
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    size_t i;

    clk_set_fixed(IN_WINDOW);
    ready_order("hardware-module", "WRPWFW61H9/1.2.3.4", key, oid);
    for (i = 0; i < nitems(wrong); i++) {
        snprintf(got, sizeof(got), "HardwareModuleName %s/%s", wrong[i].serial, wrong[i].oid);
        expect_mismatch(oid, hw_module_csr(key, wrong[i].serial, wrong[i].oid), got,
                        "WRPWFW61H9/1.2.3.4");
    }
    expect_issued(oid, hw_module_csr(key, "WRPWFW61H9", "1.2.3.4"), "WRPWFW61H9/1.2.3.4",
                  SAN_HW_MODULE, sizeof(SAN_HW_MODULE) - 1, TLV_PERM_ID);
    clk_set_fixed(-1);
    EVP_PKEY_free(key);
}

/*
 * DA-4, DA-6: a permanent-identifier order with an assigner. A CSR
 * PermanentIdentifier must rebuild to the identifier byte for byte, assigner
 * included (badCSR naming both otherwise, order still ready); the certificate
 * carries identifierValue and assigner.
 */
static void
test_permanent_assigner(void **state)
{
    static const struct {
        const char *value, *assigner; /* assigner NULL: none */
    } wrong[] = {
        {"WRPWFW61H9", "1.2.3.5"}, /* assigner */
        {"WRPWFW61H9", NULL},      /* assigner missing */
        {"wrpwfw61h9", "1.2.3.4"}, /* case */
    };
    char oid[64], err[ERR_LEN], got[128];
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    size_t i;

    clk_set_fixed(IN_WINDOW);
    /* DA-14: the attested serial is compared with the part before the assigner. */
    ready_order("permanent-identifier", "WRPWFW61H9/1.2.3.4", key, oid);
    for (i = 0; i < nitems(wrong); i++) {
        snprintf(got, sizeof(got), "permanentIdentifier %s%s%s", wrong[i].value,
                 wrong[i].assigner != NULL ? "/" : "",
                 wrong[i].assigner != NULL ? wrong[i].assigner : "");
        expect_mismatch(oid, perm_id_csr(key, wrong[i].value, wrong[i].assigner), got,
                        "WRPWFW61H9/1.2.3.4");
    }
    expect_issued(oid, perm_id_csr(key, "WRPWFW61H9", "1.2.3.4"), "WRPWFW61H9/1.2.3.4",
                  SAN_PERM_ID_ASSIGNER, sizeof(SAN_PERM_ID_ASSIGNER) - 1, TLV_HW_MODULE);

    /* An order without an assigner refuses a CSR that adds one. */
    ready_order("permanent-identifier", "WRPWFW61H9", key, oid);
    expect_mismatch(oid, perm_id_csr(key, "WRPWFW61H9", "1.2.3.4"),
                    "permanentIdentifier WRPWFW61H9/1.2.3.4", "WRPWFW61H9");
    expect_issued(oid, perm_id_csr(key, "WRPWFW61H9", NULL), "WRPWFW61H9", SAN_PERM_ID,
                  sizeof(SAN_PERM_ID) - 1, TLV_HW_MODULE);
    clk_set_fixed(-1);
    EVP_PKEY_free(key);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_identifiers),
        cmocka_unit_test(test_malformed_response),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_success_and_key_binding),
        cmocka_unit_test(test_hardware_module),
        cmocka_unit_test(test_permanent_assigner),
    };

    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
