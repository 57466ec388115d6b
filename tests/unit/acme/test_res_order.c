/*
 * test_res_order.c: newOrder (identifier checks, subproblems, limits,
 * validity window, challenges offered), POST-as-GET on orders and authzs,
 * access control, the orders list and authorization deactivation.
 */
#include "test_res_helpers.h"

struct order_case {
    const char *name;
    const char *payload;
    const char *type; /* NULL: accepted (201) */
    size_t nsub;
};

static const struct order_case order_cases[] = {
    {"empty object", "{}", "malformed", 0},
    {"empty list", "{\"identifiers\":[]}", "malformed", 0},
    {"not an array", "{\"identifiers\":\"example.org\"}", "malformed", 0},
    {"plain dns", "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"www.example.org\"}]}", NULL, 0},
    {"wildcard", "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"*.example.org\"}]}", NULL, 0},
    {"ipv4", "{\"identifiers\":[{\"type\":\"ip\",\"value\":\"192.0.2.7\"}]}", NULL, 0},
    {"ipv6", "{\"identifiers\":[{\"type\":\"ip\",\"value\":\"2001:db8::1\"}]}", NULL, 0},
    {"a-label", "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"xn--bcher-kva.example\"}]}", NULL,
     0},
    {"duplicates collapse",
     "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.example\"},{\"type\":\"dns\",\"value\":\"a."
     "example\"}]}",
     NULL, 0},
    {"upper case", "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"Example.org\"}]}", "malformed",
     1},
    {"trailing dot", "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"example.org.\"}]}",
     "malformed", 1},
    {"inner wildcard", "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.*.example.org\"}]}",
     "malformed", 1},
    {"double wildcard", "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"*.*.example.org\"}]}",
     "malformed", 1},
    {"broken a-label", "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"xn--a.example\"}]}",
     "malformed", 1},
    {"hyphen edge", "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"-a.example\"}]}", "malformed",
     1},
    {"empty label", "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a..example\"}]}", "malformed",
     1},
    {"numeric tld", "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"1.2.3.4\"}]}", "malformed", 1},
    {"ip leading zero", "{\"identifiers\":[{\"type\":\"ip\",\"value\":\"010.0.0.1\"}]}",
     "malformed", 1},
    {"ipv6 upper", "{\"identifiers\":[{\"type\":\"ip\",\"value\":\"2001:DB8::1\"}]}", "malformed",
     1},
    {"ipv6 long form", "{\"identifiers\":[{\"type\":\"ip\",\"value\":\"2001:db8:0:0:0:0:0:1\"}]}",
     "malformed", 1},
    {"email type", "{\"identifiers\":[{\"type\":\"email\",\"value\":\"a@b.example\"}]}",
     "unsupportedIdentifier", 1},
    {"device type here",
     "{\"identifiers\":[{\"type\":\"permanent-identifier\",\"value\":\"ABC\"}]}",
     "unsupportedIdentifier", 1},
    {"value missing", "{\"identifiers\":[{\"type\":\"dns\"}]}", "malformed", 1},
    {"one good two bad",
     "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"ok.example\"},{\"type\":\"dns\",\"value\":"
     "\"BAD.example\"},{\"type\":\"email\",\"value\":\"x@y\"}]}",
     "compound", 2},
    {"bad notAfter",
     "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.example\"}],\"notAfter\":\"soon\"}",
     "malformed", 0},
    {"notAfter too far",
     "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.example\"}],\"notAfter\":\"2099-01-01T00:"
     "00:00Z\"}",
     "malformed", 0},
};

static void
test_new_order_table(void **state)
{
    struct t_res r = {0};
    const cJSON *subs, *sub;
    size_t i;

    for (i = 0; i < nitems(order_cases); i++) {
        const struct order_case *c = &order_cases[i];

        t_call(acme_h_new_order, &T.acct1, NULL, NULL, c->payload, &r);
        if (c->type == NULL) {
            if (r.rc != 0)
                fail_msg("%s: refused: %s", c->name, r.prob.detail);
            assert_int_equal(r.resp.status, 201);
            assert_string_equal(t_str(r.json, "status"), "pending");
            assert_non_null(t_hdr(&r, "Location"));
            continue;
        }
        if (r.rc == 0)
            fail_msg("%s: accepted", c->name);
        if (strcmp(r.prob.type, c->type) != 0)
            fail_msg("%s: got %s (%s)", c->name, r.prob.type, r.prob.detail);
        assert_int_equal(r.prob.nsub, c->nsub);
        /* P-3/P-4: identifiers only inside subproblems. */
        assert_null(cJSON_GetObjectItemCaseSensitive(r.json, "identifier"));
        subs = cJSON_GetObjectItemCaseSensitive(r.json, "subproblems");
        cJSON_ArrayForEach(sub, subs)
        {
            if (strcmp(c->name, "value missing") != 0)
                assert_non_null(cJSON_GetObjectItemCaseSensitive(sub, "identifier"));
        }
    }
    t_res_clear(&r);
}

static void
test_too_many(void **state)
{
    struct t_res r = {0};
    size_t saved = T.cfg->acme.max_identifiers;

    T.cfg->acme.max_identifiers = 2;
    t_call(
        acme_h_new_order, &T.acct1, NULL, NULL,
        "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.example\"},"
        "{\"type\":\"dns\",\"value\":\"b.example\"},{\"type\":\"dns\",\"value\":\"c.example\"}]}",
        &r);
    T.cfg->acme.max_identifiers = saved;
    assert_int_equal(r.rc, -1);
    assert_string_equal(r.prob.type, "malformed");
    t_res_clear(&r);
}

static void
test_rate_limit(void **state)
{
    struct t_res r = {0};
    struct t_acct a;
    int saved = T.cfg->acme.orders_per_hour, i;

    t_acct_init(&a, "acct3CCCCCCCCCCCCCCCCC");
    T.cfg->acme.orders_per_hour = 2;
    for (i = 0; i < 2; i++) {
        t_call(acme_h_new_order, &a, NULL, NULL,
               "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"rl.example\"}]}", &r);
        assert_int_equal(r.rc, 0);
    }
    t_call(acme_h_new_order, &a, NULL, NULL,
           "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"rl.example\"}]}", &r);
    T.cfg->acme.orders_per_hour = saved;
    assert_int_equal(r.rc, -1);
    assert_string_equal(r.prob.type, "rateLimited");
    assert_non_null(t_hdr(&r, "Retry-After"));
    EVP_PKEY_free(a.key);
    t_res_clear(&r);
}

/* CH-2, CH-3, S-7: challenges offered per identifier kind, tokens, wildcard stripping. */
static void
test_authz_shape(void **state)
{
    char oid[64], az[3][64];
    struct t_res r = {0};
    const cJSON *chs, *ch;
    const char *tok;

    t_new_order(
        "default", &T.acct1,
        "[{\"type\":\"dns\",\"value\":\"*.w.example\"},{\"type\":\"dns\",\"value\":\"p.example\"},"
        "{\"type\":\"ip\",\"value\":\"192.0.2.1\"}]",
        oid, az, 3);
    t_call(acme_h_authz, &T.acct1, az[0], NULL, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(t_str(cJSON_GetObjectItemCaseSensitive(r.json, "identifier"), "value"),
                        "w.example");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r.json, "wildcard")));
    chs = cJSON_GetObjectItemCaseSensitive(r.json, "challenges");
    assert_int_equal(cJSON_GetArraySize(chs), 1);
    assert_string_equal(t_str(cJSON_GetArrayItem(chs, 0), "type"), "dns-01");
    assert_non_null(t_hdr(&r, "Retry-After"));

    t_call(acme_h_authz, &T.acct1, az[1], NULL, NULL, &r);
    assert_null(cJSON_GetObjectItemCaseSensitive(r.json, "wildcard"));
    chs = cJSON_GetObjectItemCaseSensitive(r.json, "challenges");
    assert_int_equal(cJSON_GetArraySize(chs), 3);
    cJSON_ArrayForEach(ch, chs)
    {
        tok = t_str(ch, "token");
        assert_true(
            strlen(tok) >= 22 &&
            strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
                strlen(tok));
        assert_string_equal(t_str(ch, "status"), "pending");
        assert_non_null(strstr(t_str(ch, "url"), "/acme/default/chall/"));
    }
    t_call(acme_h_authz, &T.acct1, az[2], NULL, NULL, &r);
    chs = cJSON_GetObjectItemCaseSensitive(r.json, "challenges");
    assert_int_equal(cJSON_GetArraySize(chs), 2); /* ip: http-01 and tls-alpn-01 */
    t_res_clear(&r);
}

/* G-3, Z-1, L-1, L-2: other accounts read nothing; the list holds only the owner's orders. */
static void
test_access_and_list(void **state)
{
    char oid[64], az[1][64], path[64];
    struct t_res r = {0};
    const cJSON *arr, *it;
    bool found = false;

    t_new_order("default", &T.acct1, "[{\"type\":\"dns\",\"value\":\"acl.example\"}]", oid, az, 1);
    t_call(acme_h_order, &T.acct2, oid, NULL, NULL, &r);
    assert_int_equal(r.prob.status, 403);
    assert_string_equal(r.prob.type, "unauthorized");
    t_call(acme_h_authz, &T.acct2, az[0], NULL, NULL, &r);
    assert_string_equal(r.prob.type, "unauthorized");
    t_call(acme_h_order, &T.acct1, "nosuchorder", NULL, NULL, &r);
    assert_int_equal(r.prob.status, 404);
    t_call_as(acme_h_order, "devices", &T.acct1, NULL, oid, NULL, NULL, &r);
    assert_int_equal(r.prob.status, 404); /* another directory's order */

    t_call(acme_h_order, &T.acct1, oid, NULL, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_non_null(t_str(r.json, "finalize"));
    assert_non_null(t_str(r.json, "expires"));
    assert_non_null(t_hdr(&r, "Retry-After"));

    t_call(acme_h_account_orders, &T.acct1, T.acct2.a.id, NULL, NULL, &r);
    assert_string_equal(r.prob.type, "unauthorized");
    t_call(acme_h_account_orders, &T.acct1, T.acct1.a.id, NULL, NULL, &r);
    assert_int_equal(r.rc, 0);
    arr = cJSON_GetObjectItemCaseSensitive(r.json, "orders");
    cJSON_ArrayForEach(it, arr)
    {
        t_last(it->valuestring, 1, path, sizeof(path));
        found = found || strcmp(path, oid) == 0;
    }
    assert_true(found);
    t_res_clear(&r);
}

/* Z-7, S-12, L-2: deactivation by the owner only; the order turns invalid and leaves the list. */
static void
test_deactivate(void **state)
{
    char oid[64], az[1][64], path[64];
    struct t_res r = {0};
    const cJSON *it;

    t_new_order("default", &T.acct1, "[{\"type\":\"dns\",\"value\":\"deact.example\"}]", oid, az,
                1);
    t_call(acme_h_authz, &T.acct2, az[0], NULL, "{\"status\":\"deactivated\"}", &r);
    assert_string_equal(r.prob.type, "unauthorized");
    t_call(acme_h_authz, &T.acct1, az[0], NULL, "{\"status\":\"valid\"}", &r);
    assert_string_equal(r.prob.type, "malformed");
    t_call(acme_h_authz, &T.acct1, az[0], NULL, "{\"status\":\"deactivated\"}", &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(t_str(r.json, "status"), "deactivated");
    t_call(acme_h_order, &T.acct1, oid, NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "invalid");
    assert_non_null(cJSON_GetObjectItemCaseSensitive(r.json, "error"));
    t_call(acme_h_authz, &T.acct1, az[0], NULL, "{\"status\":\"deactivated\"}", &r);
    assert_int_equal(r.rc, -1); /* already deactivated */
    t_call(acme_h_account_orders, &T.acct1, T.acct1.a.id, NULL, NULL, &r);
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(r.json, "orders"))
    {
        t_last(it->valuestring, 1, path, sizeof(path));
        assert_string_not_equal(path, oid);
    }
    t_res_clear(&r);
}

/* S-14: an unfinished order past its expiry reads invalid. */
static void
test_expiry(void **state)
{
    char oid[64], az[1][64];
    struct t_res r = {0};

    t_new_order("default", &T.acct1, "[{\"type\":\"dns\",\"value\":\"exp.example\"}]", oid, az, 1);
    clk_set_fixed(clk_now() + T.cfg->acme.order_lifetime + 10);
    t_call(acme_h_order, &T.acct1, oid, NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "invalid");
    t_call(acme_h_authz, &T.acct1, az[0], NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "expired");
    clk_set_fixed(-1);
    t_res_clear(&r);
}

/* S-12: an order whose authz lives shorter than orders do expires with it. */
static void
test_expires_with_authz(void **state)
{
    char oid[64], az[1][64], *expires;
    struct t_res r = {0};
    int64_t saved = T.cfg->acme.authz_lifetime;

    T.cfg->acme.authz_lifetime = 3600;
    t_new_order("default", &T.acct1, "[{\"type\":\"dns\",\"value\":\"short.example\"}]", oid,
                az, 1);
    T.cfg->acme.authz_lifetime = saved;
    t_call(acme_h_authz, &T.acct1, az[0], NULL, NULL, &r);
    expires = xstrdup(t_str(r.json, "expires"));
    t_call(acme_h_order, &T.acct1, oid, NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "expires"), expires);
    clk_set_fixed(clk_now() + 3600 + 10);
    t_call(acme_h_order, &T.acct1, oid, NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "invalid");
    clk_set_fixed(-1);
    free(expires);
    t_res_clear(&r);
}

#define NET_ID (CFG_ID_DNS | CFG_ID_IP)
#define DEV_ID (CFG_ID_PERMANENT | CFG_ID_HARDWARE)
#define NET_CH (CFG_CH_HTTP01 | CFG_CH_DNS01 | CFG_CH_TLSALPN01)
#define ID(t, v) "{\"type\":\"" t "\",\"value\":\"" v "\"}"

struct reject_case {
    const char *name;
    unsigned identifiers, challenges; /* the policy's CFG_ID_* and CFG_CH_* for the row */
    const char *ids;                  /* the identifiers array */
    const char *type;                 /* top-level problem type */
    const char *sub[2];               /* subproblem types in order; NULL past the last */
};

static const struct reject_case reject_cases[] = {
    {"wildcard without dns-01", NET_ID, CFG_CH_HTTP01 | CFG_CH_TLSALPN01,
     "[" ID("dns", "*.rj.example") "]", "rejectedIdentifier", {"rejectedIdentifier"}},
    {"dns name, no network challenge", NET_ID | DEV_ID, CFG_CH_DEVICE_ATTEST01,
     "[" ID("dns", "rj.example") "]", "rejectedIdentifier", {"rejectedIdentifier"}},
    {"ip with dns-01 only", NET_ID, CFG_CH_DNS01, "[" ID("ip", "192.0.2.9") "]",
     "rejectedIdentifier", {"rejectedIdentifier"}},
    {"device without device-attest-01", NET_ID | CFG_ID_PERMANENT, NET_CH,
     "[" ID("permanent-identifier", "C02RJ0001") "]", "rejectedIdentifier",
     {"rejectedIdentifier"}},
    {"two refused", NET_ID, CFG_CH_DNS01, "[" ID("ip", "192.0.2.9") "," ID("ip", "192.0.2.10") "]",
     "rejectedIdentifier", {"rejectedIdentifier", "rejectedIdentifier"}},
    /* E-9: different types make the top level compound. */
    {"refused and malformed", NET_ID, CFG_CH_HTTP01,
     "[" ID("dns", "*.rj.example") "," ID("dns", "BAD.example") "]", "compound",
     {"rejectedIdentifier", "malformed"}},
    /* One certificate profile per order: refused as a whole, no identifier is at fault. */
    {"device and network mixed", NET_ID | DEV_ID, NET_CH | CFG_CH_DEVICE_ATTEST01,
     "[" ID("dns", "rj.example") "," ID("permanent-identifier", "C02RJ0001") "]",
     "rejectedIdentifier", {NULL}},
};

/*
 * E-18: well-formed identifiers the directory's policy refuses are
 * rejectedIdentifier, each in a subproblem naming it (P-3). The policy's
 * identifier types and challenges are set for the row and restored.
 */
static void
test_rejected_identifier(void **state)
{
    struct cfg_policy *pol = (struct cfg_policy *)cfg_policy_find(T.cfg, "default");
    unsigned saved_ids = pol->identifiers, saved_ch = pol->challenges;
    const cJSON *subs, *sub, *id;
    struct t_res r = {0};
    char *payload, *want;
    size_t i, n;

    for (i = 0; i < nitems(reject_cases); i++) {
        const struct reject_case *c = &reject_cases[i];

        print_message("[ row      ] %s\n", c->name);
        pol->identifiers = c->identifiers;
        pol->challenges = c->challenges;
        payload = xasprintf("{\"identifiers\":%s}", c->ids);
        t_call(acme_h_new_order, &T.acct1, NULL, NULL, payload, &r);
        pol->identifiers = saved_ids;
        pol->challenges = saved_ch;
        free(payload);
        if (r.rc == 0)
            fail_msg("%s: accepted", c->name);
        assert_string_equal(r.prob.type, c->type);
        assert_int_equal(r.resp.status, 400);
        subs = cJSON_GetObjectItemCaseSensitive(r.json, "subproblems");
        for (n = 0; n < nitems(c->sub) && c->sub[n] != NULL; n++) {
            sub = cJSON_GetArrayItem(subs, (int)n);
            want = xasprintf(ACME_ERR_NS "%s", c->sub[n]);
            assert_string_equal(t_str(sub, "type"), want);
            free(want);
            id = cJSON_GetObjectItemCaseSensitive(sub, "identifier");
            assert_non_null(strstr(c->ids, t_str(id, "value")));
        }
        assert_int_equal(cJSON_GetArraySize(subs), (int)n);
    }
    t_res_clear(&r);
}

/*
 * E-19: the store failing under newOrder is 500 serverInternal whose detail
 * names the step, not the store's message, file or SQL. File modes do not
 * stop root (CI runs tests as root), so the database file is moved away
 * instead: this thread's first read of the fresh store has nothing to open.
 */
static void
test_new_order_store_down(void **state)
{
    static const char *const leaks[] = {"sqlite", "SQL", "database", ".db", "/tmp", "no such"};
    char err[ERR_LEN], *db = xasprintf("%s/down.db", T.dir), *gone = xasprintf("%s.gone", db);
    struct store *saved = T.store, *down = store_open("sqlite", db, err);
    struct acme_ctx *ctx = T.ctx;
    struct t_res r = {0};
    size_t i;

    assert_non_null(down);
    T.store = down;
    T.ctx = t_ctx_new(t_validate, 0);
    T.store = saved;
    assert_int_equal(rename(db, gone), 0);
    t_call(acme_h_new_order, &T.acct1, NULL, NULL,
           "{\"identifiers\":[" ID("dns", "down.example") "]}", &r);
    acme_ctx_free(T.ctx);
    T.ctx = ctx;
    store_close(down);
    assert_int_equal(r.rc, -1);
    assert_string_equal(r.prob.type, "serverInternal");
    assert_int_equal(r.resp.status, 500);
    assert_string_equal(t_str(r.json, "type"), ACME_ERR_NS "serverInternal");
    for (i = 0; i < nitems(leaks); i++)
        if (strstr(r.resp.body, leaks[i]) != NULL)
            fail_msg("the problem shows \"%s\": %s", leaks[i], r.resp.body);
    free(db);
    free(gone);
    t_res_clear(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_order_table), cmocka_unit_test(test_too_many),
        cmocka_unit_test(test_rate_limit),      cmocka_unit_test(test_authz_shape),
        cmocka_unit_test(test_access_and_list), cmocka_unit_test(test_deactivate),
        cmocka_unit_test(test_expiry),          cmocka_unit_test(test_expires_with_authz),
        cmocka_unit_test(test_rejected_identifier), cmocka_unit_test(test_new_order_store_down),
    };

    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
