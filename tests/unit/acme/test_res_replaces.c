/*
 * test_res_replaces.c: newOrder `replaces` (RFC 9773 §5; ARI-9 to ARI-12,
 * E-26): accepted, recorded on both sides and shown; refused when malformed,
 * unknown, another account's, sharing no identifier or already replaced; free
 * again once the replacing order is invalid; two racing commits for one
 * certificate; renewals in their window spared the orders-per-hour limit.
 * Authorization reuse is off so every order has its own pending authz to fail.
 */
#include "test_res_helpers.h"

/* The stored certificate record of serial (caller clears). */
static void
load_cert(const char *serial, struct acme_cert *c)
{
    struct acme_problem p = {0};

    assert_int_equal(acme_cert_load(T.ctx, serial, c, &p), 0);
}

/* RFC 9773 §4.1 certID of the stored certificate serial, from its PEM. Caller frees. */
static char *
ari_id(const char *serial)
{
    struct acme_cert c;
    unsigned char *der = NULL, content[32];
    size_t len = 0, n;
    const ASN1_STRING *kid, *sn;
    char err[ERR_LEN], *aki, *ser, *out;
    X509 *x;

    load_cert(serial, &c);
    assert_int_equal(pki_pem_to_der(c.pem, &der, &len), 0);
    x = pki_cert_parse_der(der, len, err);
    assert_non_null(x);
    kid = X509_get0_authority_key_id(x);
    sn = X509_get0_serialNumber(x);
    assert_non_null(kid);
    /* The INTEGER's content octets: the magnitude, after a zero byte when its top bit is set. */
    n = (size_t)ASN1_STRING_length(sn);
    assert_true(n > 0 && n < sizeof(content) - 1);
    content[0] = 0;
    memcpy(content + 1, ASN1_STRING_get0_data(sn), n);
    aki = b64u_encode(ASN1_STRING_get0_data(kid), (size_t)ASN1_STRING_length(kid));
    ser = content[1] & 0x80 ? b64u_encode(content, n + 1) : b64u_encode(content + 1, n);
    out = xasprintf("%s.%s", aki, ser);
    free(aki);
    free(ser);
    X509_free(x);
    free(der);
    acme_cert_clear(&c);
    return out;
}

/*
 * Orders name as acct1, validates it and finalizes: the new certificate's
 * serial into serial, its certID returned (caller frees).
 */
static char *
issue(const char *name, char serial[64])
{
    char oid[64], az[1][64], err[ERR_LEN], *ids, *san, *csr, *payload;
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    struct t_res r = {0};

    ids = xasprintf("[{\"type\":\"dns\",\"value\":\"%s\"}]", name);
    t_new_order("default", &T.acct1, ids, oid, az, 1);
    t_settle_valid(az[0]);
    san = xasprintf("DNS:%s", name);
    csr = t_csr(key, NULL, san, false);
    payload = xasprintf("{\"csr\":\"%s\"}", csr);
    t_call(acme_h_finalize, &T.acct1, oid, NULL, payload, &r);
    if (r.rc != 0)
        fail_msg("finalize: %s", r.prob.detail);
    t_last(t_str(r.json, "certificate"), 1, serial, 64);
    free(payload);
    free(csr);
    free(san);
    free(ids);
    EVP_PKEY_free(key);
    t_res_clear(&r);
    return ari_id(serial);
}

/* newOrder as acct for name with `replaces` set to the JSON value replaces_json. */
static void
replace(const struct t_acct *acct, const char *name, const char *replaces_json, struct t_res *r)
{
    char *payload = xasprintf("{\"identifiers\":[{\"type\":\"dns\",\"value\":\"%s\"}],"
                              "\"replaces\":%s}",
                              name, replaces_json);

    t_call(acme_h_new_order, acct, NULL, NULL, payload, r);
    free(payload);
}

/* replace() with a certID string; the new order's id into oid when it is accepted. */
static void
replace_id(const struct t_acct *acct, const char *name, const char *certid, struct t_res *r,
           char oid[64])
{
    char *quoted = xasprintf("\"%s\"", certid);

    replace(acct, name, quoted, r);
    free(quoted);
    if (r->rc == 0)
        t_last(t_hdr(r, "Location"), 1, oid, 64);
}

static void
expect_problem(const struct t_res *r, const char *type, int status)
{
    assert_int_equal(r->rc, -1);
    assert_string_equal(r->prob.type, type);
    assert_int_equal(r->prob.status, status);
}

/* Fails the pending order oid by failing its one authz's dns-01 challenge. */
static void
fail_order(const char *oid)
{
    struct acme_problem p = {0};
    struct t_res r = {0};
    char az[64], chid[64];

    t_call(acme_h_order, &T.acct1, oid, NULL, NULL, &r);
    t_last(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "authorizations"), 0)
               ->valuestring,
           1, az, sizeof(az));
    t_chall_id(az, "dns-01", chid);
    t_call(acme_h_challenge, &T.acct1, az, chid, "{}", &r);
    assert_int_equal(r.rc, 0);
    acme_problem_set(&p, "dns", 400, "no TXT record");
    acme_validation_done(T.ctx, T.v[--T.nv], false, &p);
    t_call(acme_h_order, &T.acct1, oid, NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "invalid");
    t_res_clear(&r);
}

static int
setup(void **state)
{
    t_setup(state);
    T.cfg->acme.authz_reuse = false;
    T.cfg->acme.orders_per_hour = 0;
    return 0;
}

/* ARI-9, ARI-12: accepted; shown in the response and every later view; both sides recorded. */
static void
test_recorded_and_shown(void **state)
{
    char serial[64], oid[64], *id;
    struct t_res r = {0};
    struct acme_cert c;

    id = issue("ok.ari.example", serial);
    replace_id(&T.acct1, "ok.ari.example", id, &r, oid);
    if (r.rc != 0)
        fail_msg("replaces: %s", r.prob.detail);
    assert_int_equal(r.resp.status, 201);
    assert_string_equal(t_str(r.json, "replaces"), id);
    t_call(acme_h_order, &T.acct1, oid, NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "replaces"), id);
    load_cert(serial, &c);
    assert_string_equal(c.replaced_by, oid);
    acme_cert_clear(&c);
    /* renewalInfo answers as before. */
    t_call(acme_h_renewal_info, NULL, id, NULL, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(r.json, "suggestedWindow"));
    /* An order without `replaces` shows none. */
    t_call(acme_h_new_order, &T.acct1, NULL, NULL,
           "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"ok.ari.example\"}]}", &r);
    assert_int_equal(r.rc, 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(r.json, "replaces"));
    free(id);
    t_res_clear(&r);
}

/* ARI-5 applied to `replaces`: malformed values and unknown certificates. */
static void
test_malformed_and_unknown(void **state)
{
    static const char *const bad[] = {
        "\"nodot\"",        "\"a.b.c\"",  "\"AAAA=.AAAA\"", "\"AAAA.AA AA\"", "\".AAAA\"",
        "\"AAAA.\"",        "\"\"",       "42",             "null",           "[\"AAAA.AAAA\"]",
        "\"A.AAAA\"", /* impossible base64url length */
    };
    char *huge = xcalloc(ACME_MAX_CERT_ID + 8, 1), *quoted;
    struct t_res r = {0};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        replace(&T.acct1, "m.ari.example", bad[i], &r);
        if (r.rc == 0)
            fail_msg("accepted replaces %s", bad[i]);
        expect_problem(&r, "malformed", 400);
    }
    /* Longer than any certID; then a first part of 68 chars (decodable, but over the bound). */
    for (i = 0; i < 2; i++) {
        memset(huge, 'A', ACME_MAX_CERT_ID + 2);
        huge[i == 0 ? ACME_ARI_MAX_PART : 68] = '.';
        if (i == 1)
            huge[68 + 5] = '\0';
        quoted = xasprintf("\"%s\"", huge);
        replace(&T.acct1, "m.ari.example", quoted, &r);
        expect_problem(&r, "malformed", 400);
        free(quoted);
    }
    replace(&T.acct1, "m.ari.example", "\"AAAA.AAAA\"", &r);
    expect_problem(&r, "malformed", 404);
    free(huge);
    t_res_clear(&r);
}

/* ARI-10: another account's certificate, and a certificate sharing no identifier. */
static void
test_other_account_and_identifiers(void **state)
{
    char serial[64], oid[64], *id, *payload;
    struct t_res r = {0};
    struct acme_cert c;

    id = issue("own.ari.example", serial);
    replace_id(&T.acct2, "own.ari.example", id, &r, oid);
    expect_problem(&r, "unauthorized", 403);
    replace_id(&T.acct1, "elsewhere.ari.example", id, &r, oid);
    expect_problem(&r, "malformed", 400);
    load_cert(serial, &c);
    assert_string_equal(c.replaced_by, "");
    acme_cert_clear(&c);
    /* One shared identifier is enough. */
    payload = xasprintf("{\"identifiers\":[{\"type\":\"dns\",\"value\":\"new.ari.example\"},"
                        "{\"type\":\"dns\",\"value\":\"own.ari.example\"}],\"replaces\":\"%s\"}",
                        id);
    t_call(acme_h_new_order, &T.acct1, NULL, NULL, payload, &r);
    assert_int_equal(r.rc, 0);
    free(payload);
    free(id);
    t_res_clear(&r);
}

/* E-26, ARI-11: 409 while the replacing order lives; free again once it is invalid. */
static void
test_already_replaced(void **state)
{
    char serial[64], first[64], second[64], *id;
    struct t_res r = {0};
    struct acme_cert c;

    id = issue("again.ari.example", serial);
    replace_id(&T.acct1, "again.ari.example", id, &r, first);
    assert_int_equal(r.rc, 0);
    replace_id(&T.acct1, "again.ari.example", id, &r, second);
    expect_problem(&r, "alreadyReplaced", 409);
    assert_string_equal(t_str(r.json, "type"), ACME_ERR_NS "alreadyReplaced");
    fail_order(first);
    replace_id(&T.acct1, "again.ari.example", id, &r, second);
    if (r.rc != 0)
        fail_msg("after invalid: %s", r.prob.detail);
    load_cert(serial, &c);
    assert_string_equal(c.replaced_by, second);
    acme_cert_clear(&c);
    replace_id(&T.acct1, "again.ari.example", id, &r, first);
    expect_problem(&r, "alreadyReplaced", 409);
    free(id);
    t_res_clear(&r);
}

/*
 * Concurrency: an order staged from a read of the certificate taken before a
 * rival order committed conflicts, and its retry reads the rival and gets 409.
 */
static void
test_race(void **state)
{
    const struct cfg_policy *pol = cfg_policy_find(T.cfg, "default");
    struct acme_order late = {0};
    struct acme_replacing st = {0};
    struct acme_problem p = {0};
    struct store_write w;
    struct t_res r = {0};
    char serial[64], winner[64], err[ERR_LEN], *id;
    struct acme_cert c;

    id = issue("race.ari.example", serial);
    snprintf(late.id, sizeof(late.id), "lateorderAAAAAAAAAAAAA");
    snprintf(late.replaces, sizeof(late.replaces), "%s", id);
    assert_int_equal(acme_replaces_stage(T.ctx, pol, &late, &st, &w, &p), 1);
    replace_id(&T.acct1, "race.ari.example", id, &r, winner);
    assert_int_equal(r.rc, 0);
    assert_int_equal(store_commit(T.store, &w, 1, err), 1);
    load_cert(serial, &c);
    assert_string_equal(c.replaced_by, winner);
    acme_cert_clear(&c);
    assert_int_equal(acme_replaces_stage(T.ctx, pol, &late, &st, &w, &p), -1);
    assert_string_equal(p.type, "alreadyReplaced");
    assert_int_equal(p.status, 409);
    acme_replacing_clear(&st);
    free(id);
    t_res_clear(&r);
}

/* A newOrder without `replaces` as acct1: accepted, or refused with status. */
static void
plain_order(int status)
{
    struct t_res r = {0};

    t_call(acme_h_new_order, &T.acct1, NULL, NULL,
           "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"plain.ari.example\"}]}", &r);
    if (status == 0)
        assert_int_equal(r.rc, 0);
    else
        assert_int_equal(r.prob.status, status);
    t_res_clear(&r);
}

/* ARI-10 SHOULD: a first renewal inside the window is not counted against orders_per_hour. */
static void
test_rate_limit_exemption(void **state)
{
    char serial[64], oid[64], *id;
    struct t_res r = {0};
    struct acme_cert c;

    id = issue("rl.ari.example", serial);
    load_cert(serial, &c);
    T.cfg->acme.orders_per_hour = 1;
    /* Before the window a renewal counts like any order. */
    plain_order(0);
    replace_id(&T.acct1, "rl.ari.example", id, &r, oid);
    expect_problem(&r, "rateLimited", 429);
    /* In the window, the earlier orders aged out of the hour: one plain order fits, not two. */
    clk_set_fixed(acme_renewal_start(T.ctx, &c) + 3600);
    plain_order(0);
    plain_order(429);
    replace_id(&T.acct1, "rl.ari.example", id, &r, oid);
    if (r.rc != 0)
        fail_msg("renewal in window: %s", r.prob.detail);
    /* A second attempt at the same certificate counts again. */
    fail_order(oid);
    replace_id(&T.acct1, "rl.ari.example", id, &r, oid);
    expect_problem(&r, "rateLimited", 429);
    T.cfg->acme.orders_per_hour = 0;
    clk_set_fixed(-1);
    acme_cert_clear(&c);
    free(id);
    t_res_clear(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recorded_and_shown),
        cmocka_unit_test(test_malformed_and_unknown),
        cmocka_unit_test(test_other_account_and_identifiers),
        cmocka_unit_test(test_already_replaced),
        cmocka_unit_test(test_race),
        cmocka_unit_test(test_rate_limit_exemption),
    };

    return cmocka_run_group_tests(tests, setup, t_teardown);
}
