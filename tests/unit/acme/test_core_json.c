/*
 * test_core_json.c: untrusted JSON parsing, problem documents, nonces and the
 * rate limiter of acme/ (core).
 */
#include "core_helpers.h"

static const struct json_case {
    const char *name;
    const char *text;
    size_t len; /* 0 = strlen */
    bool ok;
} json_cases[] = {
    {"object", "{\"a\":1,\"b\":[1,2,{\"c\":\"d\"}]}", 0, true},
    {"whitespace around", "  {\"a\":1}\n", 0, true},
    {"utf8 2/3/4 byte", "{\"a\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}", 0, true},
    {"depth 16", "[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]", 0, true},
    {"brackets in strings do not count", "{\"a\":\"[[[[[[[[[[[[[[[[[[[[\"}", 0, true},
    {"empty", "", 0, false},
    {"not json", "hello", 0, false},
    {"duplicate key", "{\"a\":1,\"a\":2}", 0, false},
    {"nested duplicate key", "{\"x\":{\"b\":1,\"c\":2,\"b\":3}}", 0, false},
    {"duplicate in array object", "[{\"k\":1,\"k\":1}]", 0, false},
    {"depth 17", "[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]", 0, false},
    {"trailing bytes", "{\"a\":1}x", 0, false},
    {"two values", "{} {}", 0, false},
    {"embedded NUL then garbage", "{}\0garbage", 10, false},
    {"bad utf8 lone continuation", "{\"a\":\"\x80\"}", 0, false},
    {"overlong utf8", "{\"a\":\"\xc0\xaf\"}", 0, false},
    {"utf8 surrogate", "{\"a\":\"\xed\xa0\x80\"}", 0, false},
    {"truncated utf8", "{\"a\":\"\xe2\x82\"}", 0, false},
    {"above U+10FFFF", "{\"a\":\"\xf4\x90\x80\x80\"}", 0, false},
    {"unterminated", "{\"a\":", 0, false},
};

static void
test_json_table(void **state)
{
    size_t i;

    for (i = 0; i < nitems(json_cases); i++) {
        const struct json_case *c = &json_cases[i];
        struct acme_problem prob = {0};
        size_t len = c->len != 0 ? c->len : strlen(c->text);
        cJSON *j = acme_json_parse(c->text, len, &prob);
        if (c->ok != (j != NULL))
            fail_msg("case %s: expected %s", c->name, c->ok ? "ok" : "failure");
        if (!c->ok) {
            assert_string_equal(prob.type, "malformed");
            assert_int_equal(prob.status, 400);
        }
        cJSON_Delete(j);
    }
}

static void
test_json_helpers(void **state)
{
    struct acme_problem prob = {0};
    struct acme_response resp = {0};
    cJSON *j = acme_json_parse("{\"s\":\"x\",\"n\":1}", 15, &prob);

    assert_non_null(j);
    assert_string_equal(acme_json_str(j, "s"), "x");
    assert_null(acme_json_str(j, "n"));
    assert_null(acme_json_str(j, "missing"));
    acme_resp_json(&resp, 201, j);
    assert_int_equal(resp.status, 201);
    assert_string_equal(resp.content_type, "application/json");
    assert_string_equal(resp.body, "{\"s\":\"x\",\"n\":1}");
    for (int i = 0; i < ACME_MAX_HEADERS + 3; i++)
        acme_resp_header(&resp, "X-N", "%d", i);
    assert_int_equal(resp.nheaders, ACME_MAX_HEADERS);
    assert_string_equal(resp.headers[3].value, "3");
    acme_response_clear(&resp);
    acme_response_clear(NULL);
}

static void
test_problem_json(void **state)
{
    struct acme_problem prob = {0};
    struct acme_response resp = {0};
    cJSON *j;
    const cJSON *sub, *alg;

    acme_problem_set(&prob, "rejectedIdentifier", 403, "%d refused", 2);
    acme_problem_add_sub(&prob, "rejectedIdentifier", "dns", "a.example", "no %s", "a");
    acme_problem_add_sub(&prob, "urn:example:private", NULL, NULL, "private");
    prob.retry_after = 30;
    acme_problem_respond(&prob, &resp);
    assert_int_equal(resp.status, 403);
    assert_string_equal(resp.content_type, "application/problem+json");
    assert_int_equal(resp.nheaders, 1);
    assert_string_equal(resp.headers[0].name, "Retry-After");
    assert_string_equal(resp.headers[0].value, "30");
    j = cJSON_Parse(resp.body);
    assert_string_equal(acme_json_str(j, "type"), ACME_ERR_NS "rejectedIdentifier");
    assert_string_equal(acme_json_str(j, "detail"), "2 refused");
    assert_int_equal(cJSON_GetObjectItem(j, "status")->valueint, 403);
    assert_null(cJSON_GetObjectItem(j, "identifier"));
    sub = cJSON_GetObjectItem(j, "subproblems");
    assert_int_equal(cJSON_GetArraySize(sub), 2);
    assert_string_equal(acme_json_str(cJSON_GetObjectItem(cJSON_GetArrayItem(sub, 0),
                                                           "identifier"), "value"),
                        "a.example");
    assert_string_equal(acme_json_str(cJSON_GetArrayItem(sub, 1), "type"),
                        "urn:example:private");
    assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(sub, 1), "identifier"));
    cJSON_Delete(j);
    acme_response_clear(&resp);

    /* J-10: badSignatureAlgorithm lists the algorithms. */
    memset(&prob, 0, sizeof(prob));
    acme_problem_set(&prob, "badSignatureAlgorithm", 400, "no");
    j = acme_problem_to_json(&prob);
    alg = cJSON_GetObjectItem(j, "algorithms");
    assert_true(cJSON_IsArray(alg));
    assert_string_equal(cJSON_GetArrayItem(alg, 0)->valuestring, "ES256");
    cJSON_Delete(j);
    for (int i = 0; i < ACME_MAX_SUBPROBLEMS + 2; i++)
        acme_problem_add_sub(&prob, "malformed", "dns", "x", "x");
    assert_int_equal(prob.nsub, ACME_MAX_SUBPROBLEMS);
}

/* instance in the body and an extra Link; a URL too long to keep whole is left out. */
static void
test_problem_instance_link(void **state)
{
    struct acme_problem prob = {0};
    struct acme_response resp = {0};
    char *longurl = xmalloc(ACME_PROBLEM_URL_LEN + 1);
    cJSON *j;

    acme_problem_set(&prob, "userActionRequired", 403, "agree");
    acme_problem_set_link(&prob, "terms-of-service", "https://ca.test/tos/2");
    acme_problem_set_instance(&prob, "https://ca.test/agree");
    acme_problem_respond(&prob, &resp);
    assert_int_equal(resp.status, 403);
    assert_int_equal(resp.nheaders, 1);
    assert_string_equal(resp.headers[0].name, "Link");
    assert_string_equal(resp.headers[0].value, "<https://ca.test/tos/2>;rel=\"terms-of-service\"");
    j = cJSON_Parse(resp.body);
    assert_string_equal(acme_json_str(j, "instance"), "https://ca.test/agree");
    cJSON_Delete(j);
    acme_response_clear(&resp);

    memset(longurl, 'a', ACME_PROBLEM_URL_LEN);
    longurl[ACME_PROBLEM_URL_LEN] = '\0';
    acme_problem_set_link(&prob, "terms-of-service", longurl);
    acme_problem_set_instance(&prob, longurl);
    acme_problem_respond(&prob, &resp);
    assert_int_equal(resp.nheaders, 0);
    j = cJSON_Parse(resp.body);
    assert_null(cJSON_GetObjectItem(j, "instance"));
    cJSON_Delete(j);
    acme_response_clear(&resp);
    acme_problem_set_link(NULL, "x", "https://x");
    acme_problem_set_instance(NULL, "https://x");
    free(longurl);
}

static void
test_nonce_once(void **state)
{
    struct acme_nonces *n = acme_nonces_new(1024);
    char *a = acme_nonce_issue(n), *b = acme_nonce_issue(n);
    char forged[64];

    assert_string_not_equal(a, b);
    assert_int_equal(strlen(a), 22);
    assert_int_equal(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     22);
    assert_true(acme_nonce_consume(n, b));
    assert_false(acme_nonce_consume(n, b));
    assert_true(acme_nonce_consume(n, a));
    assert_false(acme_nonce_consume(n, a));
    /* Altered, garbage, wrong length, padding, not base64url, NULL. */
    snprintf(forged, sizeof(forged), "%s", a);
    forged[20] = forged[20] == 'A' ? 'B' : 'A';
    assert_false(acme_nonce_consume(n, forged));
    assert_false(acme_nonce_consume(n, "garbage"));
    assert_false(acme_nonce_consume(n, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    assert_false(acme_nonce_consume(n, "AAAAAAAAAAAAAAAAAAAA=="));
    assert_false(acme_nonce_consume(n, "+AAAAAAAAAAAAAAAAAAAAA"));
    assert_false(acme_nonce_consume(n, ""));
    assert_false(acme_nonce_consume(n, NULL));
    free(a);
    free(b);
    acme_nonces_free(n);
}

static void
test_nonce_window(void **state)
{
    struct acme_nonces *n = acme_nonces_new(100); /* rounded up to 128 */
    struct acme_nonces *other = acme_nonces_new(100);
    char *first = acme_nonce_issue(n), *last = NULL, *mid = NULL;
    int i;

    for (i = 0; i < 127; i++) {
        free(last);
        last = acme_nonce_issue(n);
        if (i == 60)
            mid = xstrdup(last);
    }
    /* 128 issued: the first is still inside the window. */
    assert_false(acme_nonce_consume(other, first)); /* another key never accepts it */
    free(last);
    last = acme_nonce_issue(n); /* evicts the first */
    assert_false(acme_nonce_consume(n, first));
    assert_true(acme_nonce_consume(n, mid));
    assert_true(acme_nonce_consume(n, last));
    free(first);
    free(mid);
    free(last);
    acme_nonces_free(n);
    acme_nonces_free(other);
    acme_nonces_free(NULL);
}

static void
test_ratelimit(void **state)
{
    struct acme_ratelimit *rl = acme_ratelimit_new();
    int retry = -1, i;

    clk_set_fixed(1000000);
    for (i = 0; i < 3; i++) {
        assert_int_equal(acme_ratelimit_check(rl, "acct1", 3, &retry), 0);
        clk_set_fixed(1000000 + 10 * (i + 1));
    }
    assert_int_equal(acme_ratelimit_check(rl, "acct1", 3, &retry), 1);
    assert_int_equal(retry, 3600 - 30);
    assert_int_equal(acme_ratelimit_check(rl, "acct2", 3, &retry), 0);
    assert_int_equal(acme_ratelimit_check(rl, "acct1", 0, &retry), 0);
    clk_set_fixed(1000000 + 3600);
    assert_int_equal(acme_ratelimit_check(rl, "acct1", 3, &retry), 0);
    assert_int_equal(acme_ratelimit_check(rl, "acct1", 3, &retry), 1);
    assert_int_equal(retry, 10);
    clk_set_fixed(1000000 + 100000); /* everything idle: entries are dropped */
    assert_int_equal(acme_ratelimit_check(rl, "acct3", 1, &retry), 0);
    clk_set_fixed(-1);
    acme_ratelimit_free(rl);
    acme_ratelimit_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_table),  cmocka_unit_test(test_json_helpers),
        cmocka_unit_test(test_problem_json), cmocka_unit_test(test_problem_instance_link),
        cmocka_unit_test(test_nonce_once),
        cmocka_unit_test(test_nonce_window), cmocka_unit_test(test_ratelimit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
