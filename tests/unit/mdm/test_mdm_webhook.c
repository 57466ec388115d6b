/*
 * Unit tests for mdm/mdm_webhook.c: the signed event token (checked with an
 * independent HMAC-SHA256 from OpenSSL, not libjwt), the retry schedule, and
 * secret errors that name the key but never the value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "mdm/mdm_int.h"

static const char event_json[] = "{\"serial\":\"C02XK1ABCD\",\"order\":\"o1\",\"sans\":[\"a\",\"b\"]}";

/* Decodes the base64url segment [p, p+n) into a NUL-terminated string. */
static char *seg(const char *p, size_t n)
{
    unsigned char *out = NULL;
    size_t len = 0;
    assert_int_equal(b64u_decode(p, n, &out, &len), 0);
    return (char *)out;
}

static void test_jwt_signature(void **state)
{
    char err[ERR_LEN];
    const char *key = "webhook-secret-0123456789";
    char *tok = mdm_webhook_jwt("certificate.issued", event_json, key, 1700000000, "jti-1", err);
    if (tok == NULL)
        fail_msg("%s", err);
    const char *d1 = strchr(tok, '.'), *d2 = d1 != NULL ? strchr(d1 + 1, '.') : NULL;
    assert_non_null(d2);
    assert_null(strchr(d2 + 1, '.'));

    /* header: HS256 */
    char *htext = seg(tok, (size_t)(d1 - tok));
    cJSON *hdr = cJSON_Parse(htext);
    free(htext);
    assert_non_null(hdr);
    assert_string_equal(cJSON_GetObjectItem(hdr, "alg")->valuestring, "HS256");
    cJSON_Delete(hdr);

    /* claims */
    char *payload = seg(d1 + 1, (size_t)(d2 - d1 - 1));
    cJSON *c = cJSON_Parse(payload);
    assert_non_null(c);
    assert_string_equal(cJSON_GetObjectItem(c, "iss")->valuestring, "attesta");
    assert_string_equal(cJSON_GetObjectItem(c, "typ")->valuestring, "certificate.issued");
    assert_string_equal(cJSON_GetObjectItem(c, "jti")->valuestring, "jti-1");
    assert_int_equal((long long)cJSON_GetObjectItem(c, "iat")->valuedouble, 1700000000LL);
    const cJSON *ev = cJSON_GetObjectItem(c, "event");
    assert_true(cJSON_IsObject(ev));
    assert_string_equal(cJSON_GetObjectItem(ev, "serial")->valuestring, "C02XK1ABCD");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(ev, "sans")), 2);
    cJSON_Delete(c);
    free(payload);

    /* signature: HMAC-SHA256(key, header "." payload), computed here independently */
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    assert_non_null(HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)tok,
                         (size_t)(d2 - tok), mac, &maclen));
    char *want = b64u_encode(mac, maclen);
    assert_string_equal(d2 + 1, want);
    free(want);

    /* another key gives another signature */
    char *tok2 = mdm_webhook_jwt("certificate.issued", event_json, "other", 1700000000, "jti-1",
                                 err);
    assert_non_null(tok2);
    assert_string_not_equal(strrchr(tok2, '.'), strrchr(tok, '.'));
    free(tok2);
    free(tok);
}

static void test_jwt_rejects_non_objects(void **state)
{
    char err[ERR_LEN];
    const char *bad[] = {"[1,2]", "\"x\"", "{not json", "", "{\"a\":1} trailing"};
    for (size_t i = 0; i < nitems(bad); i++) {
        char *tok = mdm_webhook_jwt("certificate.revoked", bad[i], "k", 1, "j", err);
        if (tok != NULL)
            fail_msg("accepted event %s", bad[i]);
    }
    assert_null(mdm_webhook_jwt("certificate.revoked", NULL, "k", 1, "j", err));
}

static void test_backoff(void **state)
{
    /* 1s doubling, capped at 60s */
    assert_int_equal(mdm_webhook_backoff_ms(1, 1, -1), 1000);
    assert_int_equal(mdm_webhook_backoff_ms(1, 2, -1), 2000);
    assert_int_equal(mdm_webhook_backoff_ms(1, 3, -1), 4000);
    assert_int_equal(mdm_webhook_backoff_ms(1, 6, -1), 32000);
    assert_int_equal(mdm_webhook_backoff_ms(1, 7, -1), 60000);
    assert_int_equal(mdm_webhook_backoff_ms(1, 1000, -1), 60000);
    assert_int_equal(mdm_webhook_backoff_ms(5, 2, -1), 10000);
    assert_int_equal(mdm_webhook_backoff_ms(60, 1, -1), 60000);
    /* Retry-After wins, also when longer than the cap, up to its own limit */
    assert_int_equal(mdm_webhook_backoff_ms(1, 1, 0), 0);
    assert_int_equal(mdm_webhook_backoff_ms(1, 3, 7), 7000);
    assert_int_equal(mdm_webhook_backoff_ms(1, 1, 120), 120000);
    assert_int_equal(mdm_webhook_backoff_ms(1, 1, 100000), MDM_WH_RETRY_AFTER_MAX * 1000);
}

/* A missing secret fails start-up naming the key; the value of a set one never shows. */
static void test_secret_errors(void **state)
{
    char err[ERR_LEN];
    struct cfg_webhook w = {.name = "siem", .url = "http://127.0.0.1:9/",
                            .secret_env = "ATTESTA_TEST_WH_UNSET", .types = 7, .timeout = 1,
                            .attempts = 1, .backoff = 1};
    struct cfg cfg = {.events = {.webhooks = &w, .nwebhooks = 1}};
    unsetenv("ATTESTA_TEST_WH_UNSET");
    assert_null(mdm_webhooks_new(&cfg, err));
    assert_non_null(strstr(err, "events.webhooks[0].secret_env"));
    assert_non_null(strstr(err, "ATTESTA_TEST_WH_UNSET"));

    w.secret_env = NULL;
    w.secret_file = "/nonexistent/attesta-secret";
    assert_null(mdm_webhooks_new(&cfg, err));
    assert_non_null(strstr(err, "events.webhooks[0].secret_file"));

    /* Started and stopped with an event queued for an unreachable receiver: nothing leaks. */
    setenv("ATTESTA_TEST_WH_SET", "topsecret-value", 1);
    w.secret_file = NULL;
    w.secret_env = "ATTESTA_TEST_WH_SET";
    struct mdm_webhooks *wh = mdm_webhooks_new(&cfg, err);
    if (wh == NULL)
        fail_msg("%s", err);
    mdm_webhooks_send(wh, "certificate.issued", event_json);
    mdm_webhooks_send(wh, "not.a.type", event_json);
    assert_int_equal(mdm_webhooks_configure(wh, &cfg, err), 0);
    mdm_webhooks_free(wh);
    unsetenv("ATTESTA_TEST_WH_SET");
}

int run_webhook_tests(void);
int run_webhook_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt_signature),
        cmocka_unit_test(test_jwt_rejects_non_objects),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_secret_errors),
    };
    return cmocka_run_group_tests_name("mdm_webhook", tests, NULL, NULL);
}
