/*
 * test_res_account_limit.c: acme.limits.accounts_per_ip_hour (SEC-3): new
 * accounts per client address per hour, IPv6 grouped by /64; answers that
 * create nothing are not counted; the table stays within its fixed size.
 */
#include "test_res_helpers.h"

#define T_NOW 1700000040 /* on a minute: the counters have one-minute slots */

/* newAccount from peer with a fresh key (or key when not NULL); r holds the answer. */
static void
new_account(const char *peer, EVP_PKEY *key, const char *payload, struct t_res *r)
{
    char err[ERR_LEN];
    EVP_PKEY *k = key != NULL ? key : pki_key_generate(PKI_KEY_P256, err);

    assert_non_null(k);
    T.peer = peer;
    t_call_as(acme_h_new_account, "default", NULL, k, NULL, NULL,
              payload != NULL ? payload : "{\"termsOfServiceAgreed\":true}", r);
    T.peer = NULL;
    if (key == NULL)
        EVP_PKEY_free(k);
}

/* Asserts the answer is 201 (created). */
static void
expect_created(const char *peer)
{
    struct t_res r = {0};

    new_account(peer, NULL, NULL, &r);
    if (r.rc != 0)
        fail_msg("newAccount from %s: %s", peer, r.prob.detail);
    assert_int_equal(r.resp.status, 201);
    t_res_clear(&r);
}

/* Asserts the answer is 429 rateLimited with a Retry-After within the hour. */
static void
expect_limited(const char *peer)
{
    struct t_res r = {0};
    const char *ra;

    new_account(peer, NULL, NULL, &r);
    assert_int_equal(r.rc, -1);
    assert_int_equal(r.resp.status, 429);
    assert_string_equal(r.prob.type, "rateLimited");
    assert_string_equal(t_str(r.json, "type"), ACME_ERR_NS "rateLimited");
    ra = t_hdr(&r, "Retry-After");
    assert_non_null(ra);
    assert_true(atoi(ra) >= 1 && atoi(ra) <= 3600);
    t_res_clear(&r);
}

static void
test_limit_reached(void **state)
{
    int saved = T.cfg->acme.accounts_per_ip_hour;

    clk_set_fixed(T_NOW);
    T.cfg->acme.accounts_per_ip_hour = 3;
    for (int i = 0; i < 3; i++)
        expect_created("192.0.2.10");
    expect_limited("192.0.2.10");
    /* Another address, even the next one, has its own count. */
    expect_created("192.0.2.11");
    /* An hour after the first creations the window has room again. */
    clk_set_fixed(T_NOW + 3600);
    expect_created("192.0.2.10");
    T.cfg->acme.accounts_per_ip_hour = saved;
}

/* Retry-After points at the moment the oldest creation leaves the window. */
static void
test_retry_after(void **state)
{
    int saved = T.cfg->acme.accounts_per_ip_hour;
    struct t_res r = {0};

    T.cfg->acme.accounts_per_ip_hour = 2;
    clk_set_fixed(T_NOW);
    expect_created("198.51.100.1");
    clk_set_fixed(T_NOW + 600);
    expect_created("198.51.100.1");
    clk_set_fixed(T_NOW + 1200);
    new_account("198.51.100.1", NULL, NULL, &r);
    assert_int_equal(r.resp.status, 429);
    assert_string_equal(t_hdr(&r, "Retry-After"), "2400");
    t_res_clear(&r);
    clk_set_fixed(T_NOW + 3600);
    expect_created("198.51.100.1");
    T.cfg->acme.accounts_per_ip_hour = saved;
}

static void
test_ipv6_grouped_by_64(void **state)
{
    int saved = T.cfg->acme.accounts_per_ip_hour;

    clk_set_fixed(T_NOW);
    T.cfg->acme.accounts_per_ip_hour = 2;
    expect_created("2001:db8:1:2::1");
    expect_created("2001:db8:1:2:ffff:ffff:ffff:fffe");
    /* A third address of the same /64, with a zone for good measure. */
    expect_limited("2001:db8:1:2:a:b:c:d%eth0");
    /* The neighbouring /64 is someone else. */
    expect_created("2001:db8:1:3::1");
    /* v4-mapped addresses count per IPv4 address, not per ::ffff:0:0/64. */
    expect_created("::ffff:203.0.113.1");
    expect_created("::ffff:203.0.113.1");
    expect_limited("203.0.113.1");
    expect_created("::ffff:203.0.113.2");
    T.cfg->acme.accounts_per_ip_hour = saved;
}

/* Only creations count: existing-account answers and onlyReturnExisting do not. */
static void
test_only_creations_count(void **state)
{
    int saved = T.cfg->acme.accounts_per_ip_hour;
    struct t_res r = {0};
    char err[ERR_LEN];
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);

    assert_non_null(key);
    clk_set_fixed(T_NOW);
    T.cfg->acme.accounts_per_ip_hour = 2;
    new_account("192.0.2.50", key, NULL, &r);
    assert_int_equal(r.resp.status, 201);
    for (int i = 0; i < 5; i++) {
        new_account("192.0.2.50", key, NULL, &r);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.resp.status, 200);
        new_account("192.0.2.50", NULL, "{\"onlyReturnExisting\":true}", &r);
        assert_int_equal(r.rc, -1);
        assert_string_equal(r.prob.type, "accountDoesNotExist");
        new_account("192.0.2.50", key, "{\"onlyReturnExisting\":true}", &r);
        assert_int_equal(r.resp.status, 200);
    }
    t_res_clear(&r);
    expect_created("192.0.2.50");
    expect_limited("192.0.2.50");
    /* Over the limit, a key's existing account is still answered. */
    new_account("192.0.2.50", key, NULL, &r);
    assert_int_equal(r.resp.status, 200);
    t_res_clear(&r);
    EVP_PKEY_free(key);
    T.cfg->acme.accounts_per_ip_hour = saved;
}

static void
test_zero_is_unlimited(void **state)
{
    int saved = T.cfg->acme.accounts_per_ip_hour;

    clk_set_fixed(T_NOW);
    T.cfg->acme.accounts_per_ip_hour = 0;
    for (int i = 0; i < 20; i++)
        expect_created("192.0.2.99");
    /* They were still counted: a limit set later applies to them. */
    T.cfg->acme.accounts_per_ip_hour = 20;
    expect_limited("192.0.2.99");
    T.cfg->acme.accounts_per_ip_hour = saved;
}

/* Many distinct addresses: the table never holds more than its capacity. */
static void
test_eviction_bounds_memory(void **state)
{
    struct acme_iplimit *rl = acme_iplimit_new(64);
    char peer[64];
    int retry = 0;

    clk_set_fixed(T_NOW);
    assert_int_equal(acme_iplimit_capacity(rl), 64);
    acme_iplimit_add(rl, "10.0.0.1");
    assert_int_equal(acme_iplimit_check(rl, "10.0.0.1", 1, &retry), 1);
    assert_true(retry > 0 && retry <= 3600);
    for (int i = 0; i < 20000; i++) {
        snprintf(peer, sizeof(peer), "2001:db8:%x:%x::1", i >> 8, i & 0xff);
        acme_iplimit_add(rl, peer);
        assert_true(acme_iplimit_used(rl) <= 64);
    }
    assert_int_equal(acme_iplimit_used(rl), 64);
    /* The oldest entry was evicted, so its address starts again from zero. */
    assert_int_equal(acme_iplimit_check(rl, "10.0.0.1", 1, &retry), 0);
    assert_int_equal(retry, 0);
    /* A recent one is still there. */
    assert_int_equal(acme_iplimit_check(rl, "2001:db8:4e:1f::9", 1, &retry), 1);
    /* No address and no limit are never limited. */
    assert_int_equal(acme_iplimit_check(rl, NULL, 1, &retry), 0);
    assert_int_equal(acme_iplimit_check(rl, "2001:db8:4e:1f::9", 0, &retry), 0);
    acme_iplimit_free(rl);
    acme_iplimit_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_reached),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_ipv6_grouped_by_64),
        cmocka_unit_test(test_only_creations_count),
        cmocka_unit_test(test_zero_is_unlimited),
        cmocka_unit_test(test_eviction_bounds_memory),
    };

    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
