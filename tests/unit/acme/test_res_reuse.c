/*
 * test_res_reuse.c: authorization reuse (S-4): which stored authorizations a
 * new order may rely on, newOrder listing them (ready at once, expiry pulled
 * in, off by configuration), deactivation reaching every order relying on
 * one; and the orders list in pages (L-3): cursor decoding and walks over
 * more orders than a page.
 */
#include "test_res_helpers.h"

#define DAY 86400

struct reuse_case {
    const char *name;
    const char *owner;   /* the stored authz's account */
    const char *policy;  /* its policy; the new order's is qpolicy */
    const char *qpolicy;
    const char *type;    /* identifier type, stored and ordered */
    const char *stored;  /* the stored authz's identifier, as ordered */
    const char *ordered; /* the new order's identifier */
    const char *status;
    int64_t expires_in;  /* seconds from now */
    enum acme_chall_type proof;
    unsigned offer;      /* the new order's policy's challenges; 0: as configured */
    bool want;
};

#define A1 "acct1AAAAAAAAAAAAAAAAA"
#define A2 "acct2BBBBBBBBBBBBBBBBB"
#define VALID(n, v) n, A1, "default", "default", "dns", v, v, "valid"

static const struct reuse_case reuse_cases[] = {
    {VALID("valid", "r1.example"), 7 * DAY, ACME_CH_DNS01, 0, true},
    {"ip", A1, "default", "default", "ip", "192.0.2.50", "192.0.2.50", "valid", 7 * DAY,
     ACME_CH_HTTP01, 0, true},
    {VALID("same wildcard", "*.r2.example"), 7 * DAY, ACME_CH_DNS01, 0, true},
    {VALID("just past the margin", "r3.example"), DAY + 60, ACME_CH_HTTP01, 0, true},
    {VALID("expired", "r4.example"), -10, ACME_CH_DNS01, 0, false},
    {VALID("within the margin", "r5.example"), DAY - 60, ACME_CH_DNS01, 0, false},
    {VALID("proof no longer offered", "r6.example"), 7 * DAY, ACME_CH_TLSALPN01,
     CFG_CH_HTTP01 | CFG_CH_DNS01, false},
    {"deactivated", A1, "default", "default", "dns", "r7.example", "r7.example", "deactivated",
     7 * DAY, ACME_CH_DNS01, 0, false},
    {"revoked", A1, "default", "default", "dns", "r8.example", "r8.example", "revoked", 7 * DAY,
     ACME_CH_DNS01, 0, false},
    {"invalid", A1, "default", "default", "dns", "r9.example", "r9.example", "invalid", 7 * DAY,
     ACME_CH_DNS01, 0, false},
    {"pending", A1, "default", "default", "dns", "r10.example", "r10.example", "pending",
     7 * DAY, ACME_CH_DNS01, 0, false},
    {"other account", A2, "default", "default", "dns", "r11.example", "r11.example", "valid",
     7 * DAY, ACME_CH_DNS01, 0, false},
    {"other policy", A1, "other", "default", "dns", "r12.example", "r12.example", "valid", 7 * DAY,
     ACME_CH_DNS01, 0, false},
    {"wildcard for a plain name", A1, "default", "default", "dns", "*.r13.example", "r13.example",
     "valid", 7 * DAY, ACME_CH_DNS01, 0, false},
    {"plain name for a wildcard", A1, "default", "default", "dns", "r14.example",
     "*.r14.example", "valid", 7 * DAY, ACME_CH_DNS01, 0, false},
    {"other name", A1, "default", "default", "dns", "r15.example", "r15b.example", "valid",
     7 * DAY, ACME_CH_DNS01, 0, false},
    {"device identifier", A1, "devices", "devices", "permanent-identifier", "SERIALREUSE1",
     "SERIALREUSE1", "valid", 7 * DAY, ACME_CH_DEVICE_ATTEST01, 0, false},
};

/* Stores the authz a row describes, as newOrder and a settlement would have left it. */
static void
put_authz(const char *id, const struct reuse_case *c)
{
    struct acme_authz a = {0};
    struct store_rec rec;
    struct store_write w = {STORE_INSERT, &rec, 0};
    char *data, err[ERR_LEN];

    acme_strlcpy(a.id, id, sizeof(a.id));
    acme_strlcpy(a.owner, c->owner, sizeof(a.owner));
    acme_strlcpy(a.status, c->status, sizeof(a.status));
    acme_strlcpy(a.policy, c->policy, sizeof(a.policy));
    acme_strlcpy(a.order, id, sizeof(a.order));
    a.created = clk_now() - 60;
    a.expires = clk_now() + c->expires_in;
    assert_int_equal(acme_id_type_parse(c->type, &a.ident.type), 0);
    a.wildcard = strncmp(c->stored, "*.", 2) == 0;
    acme_strlcpy(a.ident.value, c->stored + (a.wildcard ? 2 : 0), sizeof(a.ident.value));
    a.nch = 1;
    a.ch[0].type = c->proof;
    snprintf(a.ch[0].id, sizeof(a.ch[0].id), "c%s", id);
    acme_strlcpy(a.ch[0].token, "token", sizeof(a.ch[0].token));
    acme_strlcpy(a.ch[0].status, strcmp(c->status, "pending") == 0 ? "pending" : "valid",
                 sizeof(a.ch[0].status));
    acme_authz_key(a.owner, a.policy, a.ident.type, a.wildcard, a.ident.value, a.lookup);
    acme_authz_rec(&a, &rec, &data);
    assert_int_equal(store_commit(T.store, &w, 1, err), 0);
    free(data);
}

/* Each row's authz in the store, then a new order's search for it. */
static void
test_reuse_rules(void **state)
{
    struct acme_order o = {0};
    struct acme_problem prob = {0};
    struct acme_ident id = {0};
    struct acme_authz got;
    struct cfg_policy pol;
    char azid[32];
    size_t i;
    int rc;

    o.created = clk_now();
    for (i = 0; i < nitems(reuse_cases); i++) {
        const struct reuse_case *c = &reuse_cases[i];

        snprintf(azid, sizeof(azid), "reuse%02zu", i);
        put_authz(azid, c);
        pol = *cfg_policy_find(T.cfg, c->qpolicy);
        if (c->offer != 0)
            pol.challenges = c->offer;
        assert_int_equal(acme_id_type_parse(c->type, &id.type), 0);
        acme_strlcpy(id.value, c->ordered, sizeof(id.value));
        rc = acme_authz_find_reusable(T.ctx, &pol, A1, &id,
                                      acme_authz_reuse_until(&T.cfg->acme, &o), &got, &prob);
        if (rc != (c->want ? 0 : 1))
            fail_msg("%s: got %d", c->name, rc);
        if (c->want)
            assert_string_equal(got.id, azid);
        acme_authz_clear(&got);
    }
}

/* The margin is one order lifetime when that is shorter than a day; notBefore pushes it. */
static void
test_reuse_until(void **state)
{
    struct cfg_acme acme = {.order_lifetime = 7 * DAY};
    struct acme_order o = {.created = 1000};

    assert_int_equal(acme_authz_reuse_until(&acme, &o), 1000 + DAY);
    acme.order_lifetime = 3600;
    assert_int_equal(acme_authz_reuse_until(&acme, &o), 1000 + 3600);
    o.not_before = 1000 + 2 * DAY;
    assert_int_equal(acme_authz_reuse_until(&acme, &o), 1000 + 2 * DAY);
}

static char *
ids_json(const char *a, const char *b)
{
    return b == NULL ? xasprintf("[{\"type\":\"dns\",\"value\":\"%s\"}]", a)
                     : xasprintf("[{\"type\":\"dns\",\"value\":\"%s\"},"
                                 "{\"type\":\"dns\",\"value\":\"%s\"}]",
                                 a, b);
}

/* An order of acct for name (and other) through the handler; its status into status. */
static void
order_of(const struct t_acct *acct, const char *name, const char *other, char oid[64],
         char az[][64], char status[16])
{
    char *ids = ids_json(name, other);
    struct t_res r = {0};

    t_new_order("default", acct, ids, oid, az, other != NULL ? 2 : 1);
    t_call(acme_h_order, acct, oid, NULL, NULL, &r);
    snprintf(status, 16, "%s", t_str(r.json, "status"));
    free(ids);
    t_res_clear(&r);
}

static void
test_new_order_reuses(void **state)
{
    char o1[64], a1[1][64], o2[64], a2[2][64], st[16], err[ERR_LEN], *csr, *payload;
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    struct acme_authz az;
    struct acme_problem prob = {0};
    struct t_res r = {0};
    int64_t exp;

    order_of(&T.acct1, "again.example", NULL, o1, a1, st);
    t_settle_valid(a1[0]);
    /* S-4: the same name again lists the same authz, and the order is ready at once. */
    order_of(&T.acct1, "again.example", NULL, o2, a2, st);
    assert_string_equal(a2[0], a1[0]);
    assert_string_equal(st, "ready");
    t_call(acme_h_order, &T.acct1, o2, NULL, NULL, &r);
    assert_int_equal(clk_parse_rfc3339(t_str(r.json, "expires"), &exp), 0);
    assert_int_equal(acme_authz_load(T.ctx, a1[0], &az, &prob), 0);
    assert_true(exp <= az.expires);
    acme_authz_clear(&az);
    csr = t_csr(key, NULL, "DNS:again.example", false);
    payload = xasprintf("{\"csr\":\"%s\"}", csr);
    t_call(acme_h_finalize, &T.acct1, o2, NULL, payload, &r);
    if (r.rc != 0)
        fail_msg("finalize: %s", r.prob.detail);
    assert_string_equal(t_str(r.json, "status"), "valid");
    /* One reused and one fresh: pending until the fresh one is valid. */
    order_of(&T.acct1, "again.example", "fresh.example", o2, a2, st);
    assert_string_equal(a2[0], a1[0]);
    assert_string_not_equal(a2[1], a1[0]);
    assert_string_equal(st, "pending");
    /* Never another account's. */
    order_of(&T.acct2, "again.example", NULL, o2, a2, st);
    assert_string_not_equal(a2[0], a1[0]);
    assert_string_equal(st, "pending");
    /* acme.authz_reuse: false asks for a fresh proof every time. */
    T.cfg->acme.authz_reuse = false;
    order_of(&T.acct1, "again.example", NULL, o2, a2, st);
    T.cfg->acme.authz_reuse = true;
    assert_string_not_equal(a2[0], a1[0]);
    assert_string_equal(st, "pending");
    free(csr);
    free(payload);
    EVP_PKEY_free(key);
    t_res_clear(&r);
}

/* S-12: deactivating a reused authz invalidates every unfinished order relying on it. */
static void
test_deactivate_reused(void **state)
{
    char o1[64], a1[1][64], o2[64], a2[1][64], st[16];
    struct t_res r = {0};

    order_of(&T.acct1, "deact-reuse.example", NULL, o1, a1, st);
    t_settle_valid(a1[0]);
    order_of(&T.acct1, "deact-reuse.example", NULL, o2, a2, st);
    assert_string_equal(a2[0], a1[0]);
    t_call(acme_h_authz, &T.acct1, a1[0], NULL, "{\"status\":\"deactivated\"}", &r);
    assert_int_equal(r.rc, 0);
    t_call(acme_h_order, &T.acct1, o1, NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "invalid");
    t_call(acme_h_order, &T.acct1, o2, NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "invalid");
    order_of(&T.acct1, "deact-reuse.example", NULL, o2, a2, st);
    assert_string_not_equal(a2[0], a1[0]);
    assert_string_equal(st, "pending");
    t_res_clear(&r);
}

/* A reused authz pulls the order's expiry in; one about to expire is not reused. */
static void
test_reuse_window(void **state)
{
    char o1[64], a1[1][64], o2[64], a2[1][64], st[16];
    struct acme_problem prob = {0};
    struct acme_authz az;
    struct acme_order o;

    order_of(&T.acct1, "window.example", NULL, o1, a1, st);
    t_settle_valid(a1[0]);
    assert_int_equal(acme_authz_load(T.ctx, a1[0], &az, &prob), 0);
    clk_set_fixed(az.expires - 2 * DAY);
    order_of(&T.acct1, "window.example", NULL, o2, a2, st);
    assert_string_equal(a2[0], a1[0]);
    assert_int_equal(acme_order_load(T.ctx, o2, &o, &prob), 0);
    assert_int_equal(o.expires, az.expires);
    acme_order_clear(&o);
    clk_set_fixed(az.expires - 3600);
    order_of(&T.acct1, "window.example", NULL, o2, a2, st);
    assert_string_not_equal(a2[0], a1[0]);
    clk_set_fixed(-1);
    acme_authz_clear(&az);
}

/* ---------------------------------------------------------------- orders list pages */

static void
test_cursor_parse(void **state)
{
    static const struct {
        const char *name;
        const char *text; /* base64url-encoded before parsing, unless raw */
        size_t len;       /* 0: strlen(text) */
        bool raw, ok;
    } rows[] = {
        {"round trip", "1700000000.abcDEF_-123", 0, false, true},
        {"zero time", "0.a", 0, false, true},
        {"empty", "", 0, true, false},
        {"not base64url", "!!!!", 0, true, false},
        {"padding", "MC5h=", 0, true, false},
        {"no dot", "1700000000", 0, false, false},
        {"no time", ".abc", 0, false, false},
        {"leading zero", "0123.abc", 0, false, false},
        {"sign", "+5.abc", 0, false, false},
        {"negative", "-5.abc", 0, false, false},
        {"overflow", "99999999999999999999.a", 0, false, false},
        {"empty id", "5.", 0, false, false},
        {"bad id char", "5.a/b", 0, false, false},
        {"dot in id", "5.a.b", 0, false, false},
        {"NUL inside", "5.a\0b", 5, false, false},
        {"id too long",
         "5.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0, false, false},
    };
    struct acme_cursor c, back = {.created = 1700000000, .id = "abcDEF_-123"};
    struct acme_problem prob;
    char *tok, *longtok = xcalloc(ACME_MAX_CURSOR + 2, 1);
    size_t i;

    for (i = 0; i < nitems(rows); i++) {
        tok = rows[i].raw ? xstrdup(rows[i].text)
                          : b64u_encode(rows[i].text,
                                        rows[i].len != 0 ? rows[i].len : strlen(rows[i].text));
        memset(&prob, 0, sizeof(prob));
        if ((acme_cursor_parse(tok, &c, &prob) == 0) != rows[i].ok)
            fail_msg("%s: %s", rows[i].name, rows[i].ok ? "refused" : "accepted");
        if (!rows[i].ok)
            assert_string_equal(prob.type, "malformed");
        free(tok);
    }
    tok = acme_cursor_fmt(&back);
    assert_int_equal(acme_cursor_parse(tok, &c, &prob), 0);
    assert_int_equal(c.created, back.created);
    assert_string_equal(c.id, back.id);
    free(tok);
    memset(longtok, 'A', ACME_MAX_CURSOR + 1);
    assert_int_equal(acme_cursor_parse(longtok, &c, &prob), -1);
    free(longtok);
}

#define NPAGED (2 * ACME_ORDERS_PAGE + 30)

/* The cursor of r's next link (checked to be the orders URL), or NULL without one. */
static char *
next_query(const struct t_res *r, const char *acct)
{
    const char *link = t_hdr(r, "Link"), *tok;
    char *prefix = xasprintf("<" T_BASE "/acme/default/account/%s/orders?cursor=", acct);
    char *q = NULL;

    if (link != NULL) {
        assert_true(strncmp(link, prefix, strlen(prefix)) == 0);
        tok = link + strlen(prefix);
        assert_non_null(strstr(tok, ">;rel=\"next\""));
        q = xasprintf("cursor=%.*s", (int)strcspn(tok, ">"), tok);
    }
    free(prefix);
    return q;
}

/*
 * L-3, L-2: following next links lists every order once, hidden (invalid)
 * ones never, with orders arriving between pages (listed at most once: one
 * made in the cursor's second may sort after it).
 */
static void
test_orders_pages(void **state)
{
    static char oids[NPAGED + 8][64];
    char az[1][64], *q = NULL, id[64];
    struct t_res r = {0};
    struct t_acct a;
    const cJSON *it;
    size_t i, j, seen = 0, pages = 0, n;
    size_t made = NPAGED;
    bool *hit = xcalloc(NPAGED + 8, sizeof(bool));
    int saved = T.cfg->acme.orders_per_hour;

    t_acct_init(&a, "acct4DDDDDDDDDDDDDDDDD");
    T.cfg->acme.orders_per_hour = 0;
    for (i = 0; i < NPAGED; i++) {
        t_new_order("default", &a, "[{\"type\":\"dns\",\"value\":\"page.example\"}]", oids[i], az,
                    1);
        if (i % 70 == 3) { /* hidden from now on (L-2) */
            t_call(acme_h_authz, &a, az[0], NULL, "{\"status\":\"deactivated\"}", &r);
            assert_int_equal(r.rc, 0);
            hit[i] = true;
        }
    }
    n = NPAGED - 4;
    do {
        T.query = q;
        t_call(acme_h_account_orders, &a, a.a.id, NULL, NULL, &r);
        T.query = NULL;
        assert_int_equal(r.rc, 0);
        assert_true(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "orders")) <=
                    ACME_ORDERS_PAGE);
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(r.json, "orders"))
        {
            t_last(it->valuestring, 1, id, sizeof(id));
            for (j = 0; j < made && strcmp(oids[j], id) != 0; j++)
                ;
            if (j == made || hit[j])
                fail_msg("page %zu lists %s: %s", pages, id, j == made ? "unknown" : "again");
            hit[j] = true;
            seen += j < NPAGED ? 1 : 0;
        }
        free(q);
        q = next_query(&r, a.a.id);
        pages++;
        assert_true(made < NPAGED + 8);
        t_new_order("default", &a, "[{\"type\":\"dns\",\"value\":\"late.example\"}]",
                    oids[made++], az, 1);
    } while (q != NULL);
    assert_int_equal(seen, n);
    assert_int_equal(pages, 3);
    T.cfg->acme.orders_per_hour = saved;
    EVP_PKEY_free(a.key);
    free(hit);
    t_res_clear(&r);
}

static void
test_orders_bad_query(void **state)
{
    static const char *const queries[] = {"cursor=", "cursor=%%%", "cursor=MTIz", "page=2",
                                          "cursorx=MS5h"};
    struct t_res r = {0};
    size_t i;

    for (i = 0; i < nitems(queries); i++) {
        T.query = queries[i];
        t_call(acme_h_account_orders, &T.acct1, T.acct1.a.id, NULL, NULL, &r);
        T.query = NULL;
        if (r.rc == 0 || strcmp(r.prob.type, "malformed") != 0 || r.prob.status != 400)
            fail_msg("%s: not refused as malformed", queries[i]);
    }
    T.query = "";
    t_call(acme_h_account_orders, &T.acct1, T.acct1.a.id, NULL, NULL, &r);
    T.query = NULL;
    assert_int_equal(r.rc, 0);
    t_res_clear(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse_rules),       cmocka_unit_test(test_reuse_until),
        cmocka_unit_test(test_new_order_reuses),  cmocka_unit_test(test_deactivate_reused),
        cmocka_unit_test(test_reuse_window),      cmocka_unit_test(test_cursor_parse),
        cmocka_unit_test(test_orders_pages),      cmocka_unit_test(test_orders_bad_query),
    };

    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
