/*
 * test_res_flow.c: a network order end to end through the resource handlers:
 * challenge response → validation handed out → acme_validation_done → authz
 * valid → order ready → finalize (CSR table) → certificate download →
 * renewal information → revocation; plus a failed validation and recovery.
 */
#include "test_res_helpers.h"

/* Takes the last recorded validation. */
static struct acme_validation *
take_validation(void)
{
    assert_true(T.nv > 0);
    return T.v[--T.nv];
}

/* Starts the challenge of the given type on authz az; returns its id. */
static void
start_chall(const char *az, const char *type, char chid[64])
{
    struct t_res r = {0};
    char *up;

    t_chall_id(az, type, chid);
    /* G-5: POST-as-GET does not start anything. */
    t_call(acme_h_challenge, &T.acct1, az, chid, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "pending");
    /* Z-4: a response must be an object. */
    t_call(acme_h_challenge, &T.acct1, az, chid, "[]", &r);
    assert_string_equal(r.prob.type, "malformed");
    t_call(acme_h_challenge, &T.acct2, az, chid, "{}", &r);
    assert_string_equal(r.prob.type, "unauthorized");
    /* Z-3: unknown members are ignored. */
    t_call(acme_h_challenge, &T.acct1, az, chid, "{\"foo\":1}", &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(t_str(r.json, "status"), "processing");
    up = xasprintf("<" T_BASE "/acme/default/authz/%s>;rel=\"up\"", az);
    assert_string_equal(t_hdr(&r, "Link"), up);
    free(up);
    t_res_clear(&r);
}

static void
check_validation(const struct acme_validation *v, const char *ident)
{
    unsigned char sum[32];
    char *txt, *want;

    assert_string_equal(v->identifier, ident);
    want = xasprintf("%s.%s", v->token, T.acct1.a.thumbprint);
    assert_string_equal(v->key_authz, want);
    pki_sha256(want, strlen(want), sum);
    assert_memory_equal(v->key_authz_sha256, sum, 32);
    txt = b64u_encode(sum, 32);
    assert_string_equal(v->dns01_txt, txt);
    assert_int_equal(strlen(v->dns01_txt), 43);
    free(txt);
    free(want);
}

/* Orders names, validates them all and returns the ready order. */
static void
ready_order(const char *ids_json, size_t n, char oid[64], char az[][64])
{
    struct acme_validation *v;
    struct t_res r = {0};
    char chid[64];
    size_t i;

    t_new_order("default", &T.acct1, ids_json, oid, az, n);
    for (i = 0; i < n; i++) {
        start_chall(az[i], "dns-01", chid);
        v = take_validation();
        assert_string_equal(v->chall_id, chid);
        acme_validation_done(T.ctx, v, true, NULL);
    }
    t_call(acme_h_order, &T.acct1, oid, NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "ready");
    t_res_clear(&r);
}

static void
test_validation_success(void **state)
{
    char oid[64], az[2][64], chid[64];
    struct acme_validation *v;
    struct t_res r = {0};
    const cJSON *chs;

    t_new_order(
        "default", &T.acct1,
        "[{\"type\":\"dns\",\"value\":\"*.v.example\"},{\"type\":\"dns\",\"value\":\"v.example\"}]",
        oid, az, 2);
    start_chall(az[0], "dns-01", chid);
    assert_int_equal(T.nv, 1);
    check_validation(T.v[0], "v.example");
    /* A repeated response while the first try runs returns the current state, starts nothing. */
    t_call(acme_h_challenge, &T.acct1, az[0], chid, "{}", &r);
    assert_string_equal(t_str(r.json, "status"), "processing");
    assert_non_null(t_hdr(&r, "Retry-After"));
    assert_int_equal(T.nv, 1);
    assert_int_equal(T.nretry_now, 0); /* no retry waits yet (CH-6) */
    acme_validation_done(T.ctx, take_validation(), true, NULL);
    t_call(acme_h_challenge, &T.acct1, az[0], chid, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "valid");
    assert_non_null(t_str(r.json, "validated"));
    t_call(acme_h_authz, &T.acct1, az[0], NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "valid");
    chs = cJSON_GetObjectItemCaseSensitive(r.json, "challenges");
    assert_int_equal(cJSON_GetArraySize(chs), 1); /* S-5: the one that succeeded */
    t_call(acme_h_order, &T.acct1, oid, NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "pending"); /* one authz left */

    start_chall(az[1], "http-01", chid);
    v = take_validation();
    check_validation(v, "v.example");
    acme_validation_done(T.ctx, v, true, NULL);
    t_call(acme_h_order, &T.acct1, oid, NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "ready");
    t_res_clear(&r);
}

static void
test_validation_failure(void **state)
{
    char oid[64], az[1][64], chid[64];
    struct acme_problem p = {0};
    struct t_res r = {0};
    const cJSON *err;

    t_new_order("default", &T.acct1, "[{\"type\":\"dns\",\"value\":\"f.example\"}]", oid, az, 1);
    start_chall(az[0], "http-01", chid);
    acme_problem_set(&p, "connection", 400, "port 80 refused");
    acme_validation_done(T.ctx, take_validation(), false, &p);
    t_call(acme_h_challenge, &T.acct1, az[0], chid, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "invalid");
    err = cJSON_GetObjectItemCaseSensitive(r.json, "error");
    assert_string_equal(t_str(err, "type"), ACME_ERR_NS "connection");
    t_call(acme_h_authz, &T.acct1, az[0], NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "invalid");
    t_call(acme_h_order, &T.acct1, oid, NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "invalid");
    assert_non_null(cJSON_GetObjectItemCaseSensitive(r.json, "error"));
    /* Re-posting an invalid challenge changes nothing. */
    t_call(acme_h_challenge, &T.acct1, az[0], chid, "{}", &r);
    assert_string_equal(t_str(r.json, "status"), "invalid");
    assert_int_equal(T.nv, 0);
    /* F-5: finalize on an order that is not ready. */
    t_call(acme_h_finalize, &T.acct1, oid, NULL, "{\"csr\":\"AAAA\"}", &r);
    assert_string_equal(r.prob.type, "orderNotReady");
    assert_int_equal(r.prob.status, 403);
    t_res_clear(&r);
}

/* Whose key a CSR row carries (F-7). */
enum csr_key { KEY_FRESH, KEY_OWN, KEY_OTHER_ACCOUNT, KEY_OTHER_POLICY, KEY__MAX };

struct csr_case {
    const char *name;
    const char *cn;
    const char *sans;
    bool break_sig;
    enum csr_key key;
    const char *type;
    const char *ext_name, *ext_value; /* one more requested extension (F-3) */
};

#define AB "DNS:a.fin.example,DNS:b.fin.example"

static const struct csr_case csr_cases[] = {
    {"missing name", NULL, "DNS:a.fin.example", false, KEY_FRESH, "badCSR", NULL, NULL},
    {"extra name", NULL, AB ",DNS:c.fin.example", false, KEY_FRESH, "badCSR", NULL, NULL},
    {"foreign cn", "evil.example", AB, false, KEY_FRESH, "badCSR", NULL, NULL},
    {"email san", NULL, AB ",email:x@fin.example", false, KEY_FRESH, "badCSR", NULL, NULL},
    {"bad signature", NULL, AB, true, KEY_FRESH, "badCSR", NULL, NULL},
    {"account key", NULL, AB, false, KEY_OWN, "badCSR", NULL, NULL},
    {"another account's key", NULL, AB, false, KEY_OTHER_ACCOUNT, "badCSR", NULL, NULL},
    {"an account key of another policy", NULL, AB, false, KEY_OTHER_POLICY, "badCSR", NULL, NULL},
    {"CA certificate", NULL, AB, false, KEY_FRESH, "badCSR", "basicConstraints",
     "critical,CA:TRUE"},
    {"unknown critical extension", NULL, AB, false, KEY_FRESH, "badCSR", "1.2.3.4",
     "critical,DER:0500"},
};

/* Registers key as an account of policy pol through newAccount. */
static void
register_key(const char *pol, EVP_PKEY *key)
{
    struct t_res r = {0};

    t_call_as(acme_h_new_account, pol, NULL, key, NULL, NULL, "{\"termsOfServiceAgreed\":true}",
              &r);
    if (r.rc != 0)
        fail_msg("newAccount in %s: %s", pol, r.prob.detail);
    assert_int_equal(r.resp.status, 201);
    t_res_clear(&r);
}

static void
test_finalize_table(void **state)
{
    char oid[64], az[2][64], err[ERR_LEN], *csr, *payload;
    struct t_res r = {0};
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    EVP_PKEY *devices_key = pki_key_generate(PKI_KEY_P256, err);
    EVP_PKEY *keys[KEY__MAX] = {key, T.acct1.key, T.acct2.key, devices_key};
    size_t i;

    register_key("default", T.acct2.key);
    register_key("devices", devices_key);
    ready_order("[{\"type\":\"dns\",\"value\":\"a.fin.example\"},{\"type\":\"dns\",\"value\":\"b."
                "fin.example\"}]",
                2, oid, az);
    for (i = 0; i < nitems(csr_cases); i++) {
        const struct csr_case *c = &csr_cases[i];

        csr = t_csr_ext(keys[c->key], c->cn, c->sans, c->ext_name, c->ext_value, c->break_sig);
        payload = xasprintf("{\"csr\":\"%s\"}", csr);
        t_call(acme_h_finalize, &T.acct1, oid, NULL, payload, &r);
        if (r.rc == 0 || strcmp(r.prob.type, c->type) != 0)
            fail_msg("%s: got %s (%s)", c->name, r.rc == 0 ? "success" : r.prob.type,
                     r.prob.detail);
        if (c->key != KEY_FRESH)
            assert_string_equal(r.prob.detail, "CSR key is an account key");
        free(csr);
        free(payload);
    }
    t_call(acme_h_finalize, &T.acct1, oid, NULL, "{\"csr\":\"AAAA==\"}", &r);
    assert_string_equal(r.prob.type, "malformed"); /* F-1: padding */
    t_call(acme_h_finalize, &T.acct1, oid, NULL, "{}", &r);
    assert_string_equal(r.prob.type, "malformed");
    t_call(acme_h_finalize, &T.acct2, oid, NULL, "{}", &r);
    assert_string_equal(r.prob.type, "unauthorized");
    /*
     * F-4: still ready after every refusal; names only in CN and SAN, any
     * order. F-3: an unknown non-critical extension is ignored.
     */
    csr = t_csr_ext(key, "b.fin.example", "DNS:a.fin.example", "1.2.3.4", "DER:0500", false);
    payload = xasprintf("{\"csr\":\"%s\"}", csr);
    t_call(acme_h_finalize, &T.acct1, oid, NULL, payload, &r);
    if (r.rc != 0)
        fail_msg("finalize: %s", r.prob.detail);
    assert_string_equal(t_str(r.json, "status"), "valid");
    assert_non_null(t_str(r.json, "certificate"));
    assert_non_null(t_hdr(&r, "Location"));
    t_call(acme_h_finalize, &T.acct1, oid, NULL, payload, &r);
    assert_string_equal(r.prob.type, "orderNotReady");
    free(csr);
    free(payload);
    EVP_PKEY_free(devices_key);
    EVP_PKEY_free(key);
    t_res_clear(&r);
}

/* Issues acct1 a certificate for n dns names; returns its serial, DER (b64u) and key. */
static void
issue_cert_for(const char *const *names, size_t n, char serial[64], char **der_b64,
               EVP_PKEY **key)
{
    char oid[64], az[4][64], err[ERR_LEN], *csr, *payload, *ids, *san;
    struct buf idb = {0}, sanb = {0};
    unsigned char *der = NULL;
    size_t i, len = 0;
    struct t_res r = {0};

    assert_true(n <= nitems(az));
    *key = pki_key_generate(PKI_KEY_P256, err);
    for (i = 0; i < n; i++) {
        buf_printf(&idb, "%s{\"type\":\"dns\",\"value\":\"%s\"}", i == 0 ? "[" : ",", names[i]);
        buf_printf(&sanb, "%sDNS:%s", i == 0 ? "" : ",", names[i]);
    }
    buf_puts(&idb, "]");
    ids = buf_take(&idb);
    san = buf_take(&sanb);
    ready_order(ids, n, oid, az);
    csr = t_csr(*key, NULL, san, false);
    free(san);
    payload = xasprintf("{\"csr\":\"%s\"}", csr);
    t_call(acme_h_finalize, &T.acct1, oid, NULL, payload, &r);
    assert_int_equal(r.rc, 0);
    t_last(t_str(r.json, "certificate"), 1, serial, 64);
    t_call(acme_h_cert, &T.acct1, serial, NULL, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.resp.content_type, "application/pem-certificate-chain");
    assert_int_equal(pki_pem_to_der(r.resp.body, &der, &len), 0);
    *der_b64 = b64u_encode(der, len);
    free(der);
    free(ids);
    free(csr);
    free(payload);
    t_res_clear(&r);
}

static void
issue_cert(const char *name, char serial[64], char **der_b64, EVP_PKEY **key)
{
    issue_cert_for(&name, 1, serial, der_b64, key);
}

static void
test_cert_download(void **state)
{
    char serial[64], *der;
    struct t_res r = {0};
    EVP_PKEY *key;
    const char *p;
    int n = 0;

    issue_cert("dl.example", serial, &der, &key);
    t_call(acme_h_cert, &T.acct1, serial, NULL, NULL, &r);
    /* C-2, C-3: leaf then chain, CERTIFICATE blocks only. */
    assert_true(strncmp(r.resp.body, "-----BEGIN CERTIFICATE-----", 27) == 0);
    for (p = r.resp.body; (p = strstr(p, "-----BEGIN CERTIFICATE-----")) != NULL; p++)
        n++;
    assert_true(n >= 2);
    t_call(acme_h_cert, &T.acct2, serial, NULL, NULL, &r);
    assert_string_equal(r.prob.type, "unauthorized");
    t_call(acme_h_cert, &T.acct1, "00", NULL, NULL, &r);
    assert_int_equal(r.prob.status, 404);
    free(der);
    EVP_PKEY_free(key);
    t_res_clear(&r);
}

/* RFC 9773 certID of a DER certificate (b64u). */
static char *
cert_id(const char *der_b64)
{
    unsigned char *der = NULL, *ser = NULL, *pp;
    size_t len = 0;
    const unsigned char *p;
    const ASN1_OCTET_STRING *kid;
    const ASN1_INTEGER *sn;
    X509 *x;
    char *a, *s, *out;
    int slen;

    assert_int_equal(b64u_decode(der_b64, strlen(der_b64), &der, &len), 0);
    p = der;
    x = d2i_X509(NULL, &p, (long)len);
    assert_non_null(x);
    kid = X509_get0_authority_key_id(x);
    assert_non_null(kid);
    sn = X509_get0_serialNumber(x);
    /* DER INTEGER of at most 21 bytes: tag and one length byte, then the content octets. */
    slen = i2d_ASN1_INTEGER(sn, NULL);
    assert_true(slen > 2 && slen < 128);
    ser = xmalloc((size_t)slen);
    pp = ser;
    i2d_ASN1_INTEGER(sn, &pp);
    a = b64u_encode(ASN1_STRING_get0_data(kid), (size_t)ASN1_STRING_length(kid));
    s = b64u_encode(ser + 2, (size_t)slen - 2);
    out = xasprintf("%s.%s", a, s);
    free(a);
    free(s);
    free(ser);
    free(der);
    X509_free(x);
    return out;
}

static void
test_renewal_and_revoke(void **state)
{
    char serial[64], *der, *id, *payload;
    struct t_res r = {0};
    const cJSON *win;
    EVP_PKEY *key;
    int64_t s, e;

    issue_cert("rev.example", serial, &der, &key);
    id = cert_id(der);
    t_call(acme_h_renewal_info, NULL, id, NULL, NULL, &r);
    if (r.rc != 0)
        fail_msg("ARI: %s", r.prob.detail);
    win = cJSON_GetObjectItemCaseSensitive(r.json, "suggestedWindow");
    assert_int_equal(clk_parse_rfc3339(t_str(win, "start"), &s), 0);
    assert_int_equal(clk_parse_rfc3339(t_str(win, "end"), &e), 0);
    assert_true(e > s && s > clk_now());
    assert_string_equal(t_hdr(&r, "Retry-After"), "21600");
    t_call(acme_h_renewal_info, NULL, "AAAA.AAAA", NULL, NULL, &r);
    assert_int_equal(r.prob.status, 404);
    t_call(acme_h_renewal_info, NULL, "nodot", NULL, NULL, &r);
    assert_int_equal(r.prob.status, 400);

    payload = xasprintf("{\"certificate\":\"%s\",\"reason\":7}", der);
    t_call(acme_h_revoke_cert, &T.acct1, NULL, NULL, payload, &r);
    assert_string_equal(r.prob.type, "badRevocationReason");
    free(payload);
    t_call(acme_h_revoke_cert, &T.acct1, NULL, NULL, "{\"certificate\":\"AAAA\"}", &r);
    assert_string_equal(r.prob.type, "malformed");
    t_call(acme_h_revoke_cert, &T.acct1, NULL, NULL, "{}", &r);
    assert_string_equal(r.prob.type, "malformed");
    payload = xasprintf("{\"certificate\":\"%s\",\"reason\":1}", der);
    t_call(acme_h_revoke_cert, &T.acct2, NULL, NULL, payload, &r);
    assert_string_equal(r.prob.type, "unauthorized"); /* V-4 */
    t_call_as(acme_h_revoke_cert, "default", NULL, T.acct2.key, NULL, NULL, payload, &r);
    assert_string_equal(r.prob.type, "unauthorized"); /* jwk that is not the cert key */
    t_call(acme_h_revoke_cert, &T.acct1, NULL, NULL, payload, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.resp.status, 200);
    t_call(acme_h_revoke_cert, &T.acct1, NULL, NULL, payload, &r);
    assert_string_equal(r.prob.type, "alreadyRevoked");
    assert_int_equal(r.prob.status, 400);
    /* A revoked certificate's window lies in the past. */
    t_call(acme_h_renewal_info, NULL, id, NULL, NULL, &r);
    win = cJSON_GetObjectItemCaseSensitive(r.json, "suggestedWindow");
    assert_int_equal(clk_parse_rfc3339(t_str(win, "end"), &e), 0);
    assert_true(e < clk_now());
    free(payload);
    free(id);
    free(der);
    EVP_PKEY_free(key);
    t_res_clear(&r);
}

/* V-7: the certificate key itself may revoke. */
static void
test_revoke_by_cert_key(void **state)
{
    char serial[64], *der, *payload;
    struct t_res r = {0};
    EVP_PKEY *key;

    issue_cert("jwk.example", serial, &der, &key);
    payload = xasprintf("{\"certificate\":\"%s\"}", der);
    t_call_as(acme_h_revoke_cert, "default", NULL, key, NULL, NULL, payload, &r);
    assert_int_equal(r.rc, 0);
    free(payload);
    free(der);
    EVP_PKEY_free(key);
    t_res_clear(&r);
}

/*
 * V-6: an account that did not order the certificate may revoke it once it
 * holds valid authorizations for every name in it: one of two names, a
 * pending authorization or a plain name for a wildcard are not enough.
 */
static void
test_revoke_by_authz_holder(void **state)
{
    static const char *const names[2][2] = {{"a.v6.example", "b.v6.example"}, {"*.w6.example"}};
    static const struct {
        const char *name;
        int cert;            /* index into names */
        const char *order;   /* identifier acct2 orders first, or NULL */
        bool validate;       /* ... and validates */
        const char *refused; /* problem type, or NULL: revoked */
    } steps[] = {
        {"no authorization", 0, NULL, false, "unauthorized"},
        {"one name of two", 0, "a.v6.example", true, "unauthorized"},
        {"the other one pending", 0, "b.v6.example", false, "unauthorized"},
        {"both names valid", 0, "b.v6.example", true, NULL},
        {"plain name for a wildcard", 1, "w6.example", true, "unauthorized"},
        {"wildcard valid", 1, "*.w6.example", true, NULL},
    };
    char serial[64], oid[64], az[1][64], *der[2], *payload[2], *ids;
    struct t_res r = {0};
    EVP_PKEY *key[2];
    size_t i;

    for (i = 0; i < 2; i++) {
        issue_cert_for(names[i], names[i][1] != NULL ? 2 : 1, serial, &der[i], &key[i]);
        payload[i] = xasprintf("{\"certificate\":\"%s\",\"reason\":4}", der[i]);
    }
    for (i = 0; i < nitems(steps); i++) {
        print_message("[ step     ] %s\n", steps[i].name);
        if (steps[i].order != NULL) {
            ids = xasprintf("[{\"type\":\"dns\",\"value\":\"%s\"}]", steps[i].order);
            t_new_order("default", &T.acct2, ids, oid, az, 1);
            if (steps[i].validate)
                t_settle_valid_as(&T.acct2, az[0]);
            free(ids);
        }
        t_call(acme_h_revoke_cert, &T.acct2, NULL, NULL, payload[steps[i].cert], &r);
        if (steps[i].refused != NULL) {
            assert_int_equal(r.rc, -1);
            assert_string_equal(r.prob.type, steps[i].refused);
            assert_int_equal(r.prob.status, 403);
            continue;
        }
        if (r.rc != 0)
            fail_msg("%s: %s %s", steps[i].name, r.prob.type, r.prob.detail);
        assert_int_equal(r.resp.status, 200);
        t_call(acme_h_revoke_cert, &T.acct2, NULL, NULL, payload[steps[i].cert], &r);
        assert_string_equal(r.prob.type, "alreadyRevoked");
    }
    for (i = 0; i < 2; i++) {
        free(der[i]);
        free(payload[i]);
        EVP_PKEY_free(key[i]);
    }
    t_res_clear(&r);
}

/* acme_recover: a processing challenge is validated again; a processing order settles. */
static void
test_recover(void **state)
{
    char oid[64], az[1][64], chid[64], err[ERR_LEN];
    struct acme_order o = {0};
    struct acme_problem p = {0};
    struct store_rec rec;
    struct t_res r = {0};
    char *data;

    t_new_order("default", &T.acct1, "[{\"type\":\"dns\",\"value\":\"rec.example\"}]", oid, az, 1);
    start_chall(az[0], "tls-alpn-01", chid);
    free(take_validation()); /* the crash: the validator's work is lost */
    assert_int_equal(acme_recover(T.ctx, err), 0);
    assert_int_equal(T.nv, 1);
    assert_string_equal(T.v[0]->chall_id, chid);
    acme_validation_done(T.ctx, take_validation(), true, NULL);
    /* An order stuck in processing without a certificate returns to ready. */
    assert_int_equal(acme_order_load(T.ctx, oid, &o, &p), 0);
    snprintf(o.status, sizeof(o.status), "processing");
    acme_order_rec(&o, &rec, &data);
    assert_int_equal(store_commit(T.store, &(struct store_write){STORE_UPDATE, &rec, 0}, 1, err),
                     0);
    free(data);
    acme_order_clear(&o);
    assert_int_equal(acme_recover(T.ctx, err), 0);
    t_call(acme_h_order, &T.acct1, oid, NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "ready");
    t_res_clear(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation_success),
        cmocka_unit_test(test_validation_failure),
        cmocka_unit_test(test_finalize_table),
        cmocka_unit_test(test_cert_download),
        cmocka_unit_test(test_renewal_and_revoke),
        cmocka_unit_test(test_revoke_by_cert_key),
        cmocka_unit_test(test_revoke_by_authz_holder),
        cmocka_unit_test(test_recover),
    };

    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
