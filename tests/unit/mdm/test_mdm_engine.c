/*
 * Engine tests for mdm/: the real engine thread, libcurl and libevent against
 * the mock MDM (tests/mockmdm/mock_mdm.py, started here with python3 on an
 * ephemeral port). Each test gets a fresh engine (so a fresh cache), resets
 * the mock, sets its failure mode and checks the verdict, the reason and the
 * number of requests the mock saw. Skipped when python3 is missing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mdm/mdm_int.h"

#define PYTHON "/usr/bin/python3"

struct env {
    pid_t mock;
    int port;
    char cfg_path[64];
    struct cfg *cfg;
    struct mdm_engine *eng;
};

static struct env E;

static size_t sink(char *p, size_t s, size_t n, void *arg)
{
    buf_append(arg, p, s * n);
    return s * n;
}

/* A blocking request to the mock's control plane; returns the body (caller frees). */
static char *mock_http(const char *path, const char *json)
{
    struct buf b = {0};
    char url[128];
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", E.port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (json != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return buf_take(&b);
}

static void mock_mode(const char *json)
{
    free(mock_http("/_reset", ""));
    if (json != NULL)
        free(mock_http("/_control", json));
}

/* Requests the mock counted for path (NULL = total). */
static int mock_count(const char *path)
{
    char *s = mock_http("/_stats", NULL);
    cJSON *j = cJSON_Parse(s);
    const cJSON *n = path != NULL
                         ? cJSON_GetObjectItem(cJSON_GetObjectItem(j, "requests"), path)
                         : cJSON_GetObjectItem(j, "total");
    int v = cJSON_IsNumber(n) ? n->valueint : 0;
    cJSON_Delete(j);
    free(s);
    return v;
}

static const char cfg_fmt[] =
    "signal_sources:\n"
    "  kandji:\n"
    "    type: http\n"
    "    request: {url: \"http://127.0.0.1:%1$d/api/v1/devices?serial_number=${/attest/serial|urlencode}\"}\n"
    "    auth: {type: bearer, token_env: MDMTEST_KANDJI_TOKEN}\n"
    "    records: $\n"
    "    match: {field: serial_number, equals: \"${/attest/serial}\"}\n"
    "    conditions: [{path: mdm_enabled, op: is_true}, {path: is_removed, op: equals, value: false}]\n"
    "    attributes: {user_email: user.email, blueprint: blueprint_name}\n"
    "    timeout: 1s\n"
    "    retry: {attempts: 3, deadline: 5s}\n"
    "  kandji_open:\n"
    "    type: http\n"
    "    request: {url: \"http://127.0.0.1:%1$d/api/v1/devices?serial_number=${/attest/serial|urlencode}\"}\n"
    "    auth: {type: bearer, token_env: MDMTEST_KANDJI_TOKEN}\n"
    "    match: {field: serial_number}\n"
    "    retry: {attempts: 2, deadline: 5s}\n"
    "    on_failure: allow\n"
    "  jamf:\n"
    "    type: http\n"
    "    request: {url: \"http://127.0.0.1:%1$d/api/v2/computers-inventory?filter=hardware.serialNumber%%3D%%3D%%22${/attest/serial|urlencode}%%22\"}\n"
    "    auth: {type: oauth2_client_credentials, token_url: \"http://127.0.0.1:%1$d/api/oauth/token\",\n"
    "           client_id: jamf-client, client_secret_env: MDMTEST_JAMF_SECRET}\n"
    "    records: results\n"
    "    match: {field: hardware.serialNumber}\n"
    "    conditions: [{path: general.remoteManagement.managed, op: is_true}]\n";

static int group_setup(void **state)
{
    int fds[2];
    char line[32] = "";
    if (access(PYTHON, X_OK) != 0)
        return 0; /* tests skip */
    if (pipe(fds) != 0)
        return -1;
    E.mock = fork();
    if (E.mock == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execl(PYTHON, "python3", MOCK_MDM, "0", MOCK_DEVICES, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    if (f == NULL || fgets(line, sizeof(line), f) == NULL)
        return -1;
    fclose(f);
    long long port = 0;
    line[strcspn(line, "\n")] = '\0';
    if (str_to_ll(line, 1, 65535, &port) != 0)
        return -1;
    E.port = (int)port;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    log_set_level(LOG_LVL_WARN);
    snprintf(E.cfg_path, sizeof(E.cfg_path), "/tmp/attesta-mdm-test-%d.yaml", (int)getpid());
    f = fopen(E.cfg_path, "w");
    if (f == NULL)
        return -1;
    fprintf(f, cfg_fmt, E.port);
    fclose(f);
    setenv("MDMTEST_KANDJI_TOKEN", "kandji-test-token-s3cr3t", 1);
    setenv("MDMTEST_JAMF_SECRET", "jamf-secret-s3cr3t", 1);
    char err[CFG_ERR_LEN];
    E.cfg = cfg_load(E.cfg_path, err);
    if (E.cfg == NULL) {
        fprintf(stderr, "config: %s\n", err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    if (E.mock > 0) {
        kill(E.mock, SIGTERM);
        waitpid(E.mock, NULL, 0);
    }
    cfg_free(E.cfg);
    unlink(E.cfg_path);
    return 0;
}

static int setup(void **state)
{
    char err[ERR_LEN];
    if (E.mock <= 0)
        return 0;
    mock_mode(NULL);
    E.eng = mdm_engine_new(E.cfg, err);
    return E.eng != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    mdm_engine_free(E.eng);
    E.eng = NULL;
    return 0;
}

static void lookup(const char *source, const char *serial, struct mdm_result *res)
{
    char err[ERR_LEN];
    struct mdm_vars v = {.serial = serial};
    if (mdm_lookup_wait(E.eng, source, &v, res, err) != 0)
        fail_msg("lookup: %s", err);
}

#define SKIP_WITHOUT_MOCK()                                                                        \
    do {                                                                                           \
        if (E.mock <= 0)                                                                           \
            skip();                                                                                \
    } while (0)

static void expect(const struct mdm_result *r, enum mdm_verdict v, const char *reason)
{
    if (r->verdict != v || r->reason == NULL || strstr(r->reason, reason) == NULL)
        fail_msg("verdict %d reason \"%s\", wanted %d \"%s\"", r->verdict,
                 r->reason ? r->reason : "", v, reason);
}

/* A table of single lookups: mode, source, serial, verdict, reason, requests to the API. */
static const struct {
    const char *name, *mode, *source, *serial;
    enum mdm_verdict verdict;
    const char *reason;
    int requests;
} cases[] = {
    {"found", NULL, "kandji", "C02ABC123XYZ", MDM_ALLOW, "kandji: device found, 2 conditions", 1},
    {"unknown", NULL, "kandji", "NOSUCHSERIAL", MDM_DENY,
     "kandji: no device with serial_number \"NOSUCHSERIAL\" (no records)", 1},
    {"partial", NULL, "kandji", "C02ABC123", MDM_DENY,
     "kandji: no device with serial_number \"C02ABC123\" (2 records, none matched exactly)", 1},
    {"condition", NULL, "kandji", "C02UNMANAGED1", MDM_DENY,
     "kandji: condition mdm_enabled is_true failed (value false)", 1},
    {"500 deny", "{\"mode\":\"500\"}", "kandji", "C02ABC123XYZ", MDM_DENY,
     "kandji: HTTP 500 after 3 attempts (on_failure: deny)", 3},
    {"500 allow", "{\"mode\":\"500\"}", "kandji_open", "C02ABC123XYZ", MDM_ALLOW,
     "kandji_open: HTTP 500 after 2 attempts (on_failure: allow)", 2},
    {"slow", "{\"mode\":\"slow\",\"delay\":2.5}", "kandji", "C02ABC123XYZ", MDM_DENY,
     "kandji: timed out after 1s (on_failure: deny)", 1},
    {"malformed", "{\"mode\":\"malformed\"}", "kandji", "C02ABC123XYZ", MDM_DENY,
     "kandji: malformed answer: malformed JSON", 1},
    {"oversized", "{\"mode\":\"oversized\"}", "kandji", "C02ABC123XYZ", MDM_DENY,
     "kandji: answer larger than 4194304 bytes", 1},
    {"html", "{\"mode\":\"html\"}", "kandji", "C02ABC123XYZ", MDM_DENY,
     "kandji: unexpected content type text/html", 1},
    {"badcreds bearer", "{\"mode\":\"badcreds\"}", "kandji", "C02ABC123XYZ", MDM_DENY,
     "kandji: authentication failed (HTTP 401)", 1},
    {"badcreds oauth2", "{\"mode\":\"badcreds\"}", "jamf", "C02ABC123XYZ", MDM_DENY,
     "jamf: authentication failed (HTTP 401)", 0},
    {"jamf found", NULL, "jamf", "C02ABC123XYZ", MDM_ALLOW, "jamf: device found", 1},
    {"jamf unmanaged", NULL, "jamf", "C02UNMANAGED1", MDM_DENY,
     "condition general.remoteManagement.managed is_true failed (value false)", 1},
};

static void test_table(void **state)
{
    SKIP_WITHOUT_MOCK();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mdm_result r;
        char err[ERR_LEN];
        mdm_engine_free(E.eng);
        E.eng = mdm_engine_new(E.cfg, err);
        assert_non_null(E.eng);
        mock_mode(cases[i].mode);
        lookup(cases[i].source, cases[i].serial, &r);
        print_message("  %-16s %s\n", cases[i].name, r.reason);
        expect(&r, cases[i].verdict, cases[i].reason);
        int api = mock_count("/api/v1/devices") + mock_count("/api/v2/computers-inventory");
        if (api != cases[i].requests)
            fail_msg("%s: %d API requests, wanted %d", cases[i].name, api, cases[i].requests);
        assert_false(r.from_cache);
        mdm_result_clear(&r);
    }
}

static void test_found_details(void **state)
{
    struct mdm_result r;
    SKIP_WITHOUT_MOCK();
    lookup("kandji", "C02ABC123XYZ", &r);
    expect(&r, MDM_ALLOW, "device found");
    assert_int_equal(r.http_status, 200);
    assert_string_equal(mdm_result_attr_get(&r, "user_email"), "alice@example.com");
    assert_string_equal(mdm_result_attr_get(&r, "blueprint"), "Corp Macs");
    assert_int_equal(r.nconds, 2);
    assert_true(r.conds[0].pass && r.conds[1].pass);
    assert_non_null(strstr(r.record_json, "\"serial_number\":\t\"C02ABC123XYZ\""));
    mdm_result_clear(&r);
}

static void test_retry_after(void **state)
{
    struct mdm_result r;
    SKIP_WITHOUT_MOCK();
    mock_mode("{\"mode\":\"429\",\"retry_after\":1,\"count\":1}");
    lookup("kandji", "C02ABC123XYZ", &r);
    expect(&r, MDM_ALLOW, "device found");
    assert_int_equal(mock_count("/api/v1/devices"), 2);
    assert_true(r.elapsed_ms >= 900);
    mdm_result_clear(&r);
}

static void test_cache(void **state)
{
    struct mdm_result r;
    SKIP_WITHOUT_MOCK();
    lookup("kandji", "C02ABC123XYZ", &r);
    assert_false(r.from_cache);
    mdm_result_clear(&r);
    lookup("kandji", "C02ABC123XYZ", &r);
    assert_true(r.from_cache);
    expect(&r, MDM_ALLOW, "device found");
    assert_string_equal(mdm_result_attr_get(&r, "user_email"), "alice@example.com");
    mdm_result_clear(&r);
    /* negative cache */
    lookup("kandji", "NOSUCHSERIAL", &r);
    mdm_result_clear(&r);
    lookup("kandji", "NOSUCHSERIAL", &r);
    assert_true(r.from_cache);
    expect(&r, MDM_DENY, "no device");
    mdm_result_clear(&r);
    assert_int_equal(mock_count("/api/v1/devices"), 2);
    /* failures are not cached */
    mock_mode("{\"mode\":\"html\"}");
    lookup("kandji", "C02UNMANAGED1", &r);
    mdm_result_clear(&r);
    lookup("kandji", "C02UNMANAGED1", &r);
    assert_false(r.from_cache);
    mdm_result_clear(&r);
    assert_int_equal(mock_count("/api/v1/devices"), 2);
}

static void test_oauth2_token_reuse(void **state)
{
    struct mdm_result r;
    static const char *serials[] = {"C02ABC123XYZ", "C02ABC123XYZ9", "C02UNMANAGED1", "NOPE"};
    SKIP_WITHOUT_MOCK();
    for (size_t i = 0; i < 4; i++) {
        lookup("jamf", serials[i], &r);
        assert_false(r.failed);
        mdm_result_clear(&r);
    }
    assert_int_equal(mock_count("/api/oauth/token"), 1);
    assert_int_equal(mock_count("/api/v2/computers-inventory"), 4);
    /* A revoked token: the 401 drops it once, a new one is fetched, the lookup succeeds. */
    free(mock_http("/_control", "{\"revoke_tokens\":true}"));
    lookup("jamf", "C02ABC123", &r);
    assert_false(r.failed);
    expect(&r, MDM_DENY, "jamf: no device with hardware.serialNumber \"C02ABC123\"");
    mdm_result_clear(&r);
    assert_int_equal(mock_count("/api/v2/computers-inventory"), 6);
    assert_int_equal(mock_count("/api/oauth/token"), 2);
}

struct many {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, allowed, stopped;
};

static void many_done(void *arg, const struct mdm_result *res)
{
    struct many *m = arg;
    pthread_mutex_lock(&m->mu);
    m->done++;
    m->allowed += res->verdict == MDM_ALLOW;
    m->stopped += res->stopped && res->failed && res->verdict == MDM_DENY;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

static void test_coalesce_100(void **state)
{
    struct many m = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct mdm_vars v = {.serial = "C02ABC123XYZ"};
    char err[ERR_LEN];
    SKIP_WITHOUT_MOCK();
    mock_mode("{\"mode\":\"slow\",\"delay\":0.3}");
    for (int i = 0; i < 100; i++)
        assert_int_equal(mdm_lookup(E.eng, "kandji", &v, many_done, &m, err), 0);
    pthread_mutex_lock(&m.mu);
    while (m.done < 100)
        pthread_cond_wait(&m.cv, &m.mu);
    pthread_mutex_unlock(&m.mu);
    assert_int_equal(m.allowed, 100);
    assert_int_equal(mock_count("/api/v1/devices"), 1);
}

static void test_bad_input(void **state)
{
    char err[ERR_LEN], big[200];
    struct mdm_vars v = {.serial = "X"};
    SKIP_WITHOUT_MOCK();
    assert_int_equal(mdm_lookup(E.eng, "nosuch", &v, many_done, NULL, err), -1);
    assert_non_null(strstr(err, "unknown signal source"));
    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    v.serial = big;
    assert_int_equal(mdm_lookup(E.eng, "kandji", &v, many_done, NULL, err), -1);
    v.serial = "";
    assert_int_equal(mdm_lookup(E.eng, "kandji", &v, many_done, NULL, err), -1);
}

static void test_missing_secret(void **state)
{
    char err[ERR_LEN];
    SKIP_WITHOUT_MOCK();
    unsetenv("MDMTEST_KANDJI_TOKEN");
    struct mdm_engine *eng = mdm_engine_new(E.cfg, err);
    setenv("MDMTEST_KANDJI_TOKEN", "kandji-test-token-s3cr3t", 1);
    assert_null(eng);
    assert_string_equal(err, "signal_sources.kandji.auth.token_env: environment variable "
                             "MDMTEST_KANDJI_TOKEN is not set");
}

/* Freeing the engine with lookups in flight completes them with "engine stopped". */
static void test_stop_pending(void **state)
{
    struct many m = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct mdm_vars v = {.serial = "C02ABC123XYZ"};
    char err[ERR_LEN];
    SKIP_WITHOUT_MOCK();
    mock_mode("{\"mode\":\"slow\",\"delay\":0.5}");
    for (int i = 0; i < 5; i++)
        assert_int_equal(mdm_lookup(E.eng, "kandji", &v, many_done, &m, err), 0);
    usleep(100 * 1000);
    mdm_engine_free(E.eng);
    E.eng = NULL;
    assert_int_equal(m.done, 5);
    assert_int_equal(m.allowed, 0);
}

static void wait_mock_requests(int n)
{
    for (int i = 0; i < 100 && mock_count("/api/v1/devices") < n; i++)
        usleep(20 * 1000);
    assert_true(mock_count("/api/v1/devices") >= n);
}

/*
 * What a request outliving shutdown sees: the stop cuts a slow lookup short
 * without a verdict (even where on_failure allows), then the stopped engine
 * refuses lookups at once, without a callback, until it is freed.
 */
static void test_lookup_after_stop(void **state)
{
    struct many m = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct mdm_vars v = {.serial = "C02ABC123XYZ"};
    struct mdm_result r;
    char err[ERR_LEN];
    int64_t t0;
    SKIP_WITHOUT_MOCK();
    mock_mode("{\"mode\":\"slow\",\"delay\":3}");
    assert_int_equal(mdm_lookup(E.eng, "kandji_open", &v, many_done, &m, err), 0);
    wait_mock_requests(1);
    assert_false(mdm_engine_is_stopped(E.eng));
    t0 = clk_mono_ms();
    mdm_engine_stop(E.eng);
    assert_true(clk_mono_ms() - t0 < 1000);
    assert_int_equal(m.done, 1);
    assert_int_equal(m.stopped, 1);
    assert_int_equal(m.allowed, 0);
    assert_true(mdm_engine_is_stopped(E.eng));
    t0 = clk_mono_ms();
    assert_int_equal(mdm_lookup(E.eng, "kandji_open", &v, many_done, &m, err), -1);
    assert_string_equal(err, "the MDM engine is stopped");
    assert_int_equal(mdm_lookup_wait(E.eng, "kandji", &v, &r, err), -1);
    assert_null(r.reason);
    mdm_engine_stop(E.eng);
    assert_true(clk_mono_ms() - t0 < 200);
    assert_int_equal(m.done, 1);
}

struct racer {
    pthread_t th;
    struct many *m;
    int accepted;
};

static void *race_lookups(void *arg)
{
    struct racer *rc = arg;
    struct mdm_vars v = {.serial = "C02ABC123XYZ"};
    char err[ERR_LEN];
    /* Bounded: every accepted lookup waits on the one fetch until the stop. */
    while (rc->accepted < 20000 && mdm_lookup(E.eng, "kandji", &v, many_done, rc->m, err) == 0)
        rc->accepted++;
    return NULL;
}

/* Lookups racing the stop: each accepted one is answered exactly once before stop returns. */
static void test_stop_race(void **state)
{
    struct many m = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct racer rc[4] = {0};
    int accepted = 0, done;
    SKIP_WITHOUT_MOCK();
    mock_mode("{\"mode\":\"slow\",\"delay\":2}");
    for (size_t i = 0; i < nitems(rc); i++) {
        rc[i].m = &m;
        assert_int_equal(pthread_create(&rc[i].th, NULL, race_lookups, &rc[i]), 0);
    }
    wait_mock_requests(1);
    mdm_engine_stop(E.eng);
    pthread_mutex_lock(&m.mu);
    done = m.done;
    pthread_mutex_unlock(&m.mu);
    for (size_t i = 0; i < nitems(rc); i++) {
        pthread_join(rc[i].th, NULL);
        accepted += rc[i].accepted;
    }
    assert_true(accepted > 0);
    assert_int_equal(done, accepted);
    assert_int_equal(m.done, accepted);
    assert_int_equal(m.allowed, 0);
}

int run_engine_tests(void);
int run_engine_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_found_details, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oauth2_token_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coalesce_100, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_after_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_race, setup, teardown),
    };
    return cmocka_run_group_tests_name("mdm_engine", tests, group_setup, group_teardown);
}
