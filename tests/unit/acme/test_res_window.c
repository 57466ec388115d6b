/*
 * test_res_window.c: an order's requested validity window (O-2, O-3) under a
 * policy with a certificate template and under the built-in profile: the
 * certificate carries exactly the requested notBefore/notAfter, a window the
 * template's validity cannot hold is refused at newOrder, and without a
 * notAfter the template's validity decides.
 */
#include "test_res_helpers.h"

/* "default" renders template web (2 days); "plain" keeps the built-in profile (90 days). */
static const char window_yaml[] =
    "templates:\n"
    "  web:\n"
    "    validity: 2d\n"
    "    san: {dns: [\"${/csr/san/dnsname}\"]}\n"
    "enrollment_policies:\n"
    "  default: {identifiers: [dns], challenges: [dns-01], template: web}\n"
    "  plain: {identifiers: [dns], challenges: [dns-01]}\n";

#define TPL_VALIDITY (2 * 86400)

/* The shared environment, its config replaced by window_yaml. */
static int
setup(void **state)
{
    char err[CFG_ERR_LEN], *path;
    FILE *f;

    t_setup(state);
    path = xasprintf("%s/window.yaml", T.dir);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(window_yaml, f) >= 0, 1);
    fclose(f);
    acme_ctx_free(T.ctx);
    cfg_free(T.cfg);
    T.cfg = cfg_load(path, err);
    if (T.cfg == NULL)
        fail_msg("%s", err);
    T.ctx = t_ctx_new(t_validate, 0);
    free(path);
    return 0;
}

/* newOrder for name under pol with extra members (",\"notAfter\":..."). */
static void
new_order(const char *pol, const char *name, const char *extra, struct t_res *r)
{
    char *payload =
        xasprintf("{\"identifiers\":[{\"type\":\"dns\",\"value\":\"%s\"}]%s}", name, extra);

    t_call_as(acme_h_new_order, pol, &T.acct1, NULL, NULL, NULL, payload, r);
    free(payload);
}

/* Validates the order's one authz through dns-01 under pol. */
static void
settle(const char *pol, const struct t_res *order)
{
    const cJSON *azs = cJSON_GetObjectItemCaseSensitive(order->json, "authorizations"), *ch;
    struct t_res r = {0};
    char az[64], chid[64];

    t_last(cJSON_GetArrayItem(azs, 0)->valuestring, 1, az, sizeof(az));
    t_call_as(acme_h_authz, pol, &T.acct1, NULL, az, NULL, NULL, &r);
    ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "challenges"), 0);
    t_last(t_str(ch, "url"), 1, chid, sizeof(chid));
    t_call_as(acme_h_challenge, pol, &T.acct1, NULL, az, chid, "{}", &r);
    assert_int_equal(r.rc, 0);
    assert_true(T.nv > 0);
    acme_validation_done(T.ctx, T.v[--T.nv], true, NULL);
    t_res_clear(&r);
}

/* Orders name under pol with extra members, finalizes it and returns the certificate. */
static X509 *
issue(const char *pol, const char *name, const char *extra)
{
    struct t_res r = {0};
    char oid[64], serial[64], err[ERR_LEN], *san, *csr, *payload;
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    unsigned char *der = NULL;
    size_t len = 0;
    X509 *cert;

    new_order(pol, name, extra, &r);
    if (r.rc != 0)
        fail_msg("%s: newOrder refused: %s", name, r.prob.detail);
    t_last(t_hdr(&r, "Location"), 1, oid, sizeof(oid));
    settle(pol, &r);
    san = xasprintf("DNS:%s", name);
    csr = t_csr(key, NULL, san, false);
    payload = xasprintf("{\"csr\":\"%s\"}", csr);
    t_call_as(acme_h_finalize, pol, &T.acct1, NULL, oid, NULL, payload, &r);
    if (r.rc != 0)
        fail_msg("%s: finalize: %s", name, r.prob.detail);
    t_last(t_str(r.json, "certificate"), 1, serial, sizeof(serial));
    t_call_as(acme_h_cert, pol, &T.acct1, NULL, serial, NULL, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(pki_pem_to_der(r.resp.body, &der, &len), 0);
    cert = pki_cert_parse_der(der, len, err);
    assert_non_null(cert);
    free(der);
    free(payload);
    free(csr);
    free(san);
    EVP_PKEY_free(key);
    t_res_clear(&r);
    return cert;
}

/* The window members for nb..na (na 0: notBefore only). */
static char *
window(int64_t nb, int64_t na)
{
    char b[32], a[32];

    if (na == 0)
        return xasprintf(",\"notBefore\":\"%s\"", clk_fmt_rfc3339(nb, b));
    return xasprintf(",\"notBefore\":\"%s\",\"notAfter\":\"%s\"", clk_fmt_rfc3339(nb, b),
                     clk_fmt_rfc3339(na, a));
}

static void
check_dates(X509 *cert, int64_t nb, int64_t na)
{
    assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notBefore(cert), (time_t)nb), 0);
    assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notAfter(cert), (time_t)na), 0);
    X509_free(cert);
}

/* O-3: the certificate carries the requested window, templated or built-in. */
static void
test_window_honoured(void **state)
{
    int64_t nb = clk_now() + 3600, na = nb + 86400;
    char *w = window(nb, na);

    (void)state;
    check_dates(issue("default", "tpl.window.example", w), nb, na);
    check_dates(issue("plain", "plain.window.example", w), nb, na);
    free(w);
    /* Without notAfter, the template's validity runs from the requested notBefore. */
    w = window(nb, 0);
    check_dates(issue("default", "tpl-nb.window.example", w), nb, nb + TPL_VALIDITY);
    free(w);
}

/* O-2: a window the template's validity cannot hold is refused, not shortened. */
static void
test_window_beyond_template(void **state)
{
    int64_t nb = clk_now() + 60;
    struct t_res r = {0};
    char *w = window(nb, nb + TPL_VALIDITY + 3600);

    (void)state;
    new_order("default", "long.window.example", w, &r);
    assert_int_equal(r.rc, -1);
    assert_string_equal(r.prob.type, "malformed");
    assert_int_equal(r.prob.status, 400);
    /* The same window is within the built-in profile's 90 days. */
    new_order("plain", "long.window.example", w, &r);
    if (r.rc != 0)
        fail_msg("plain: %s", r.prob.detail);
    free(w);
    w = window(nb, nb + TPL_VALIDITY);
    new_order("default", "edge.window.example", w, &r);
    if (r.rc != 0)
        fail_msg("exactly the template's validity: %s", r.prob.detail);
    free(w);
    t_res_clear(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_honoured),
        cmocka_unit_test(test_window_beyond_template),
    };

    return cmocka_run_group_tests(tests, setup, t_teardown);
}
