/*
 * Unit tests for mdm/mdm_webhook.c: the signed event token (checked with an
 * independent HMAC-SHA256 from OpenSSL, not libjwt), the retry schedule,
 * secret errors that name the key but never the value, and the shutdown
 * drain against receivers made here (answering, refusing, never answering).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
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
    mdm_webhooks_send(wh, "ev-1", "certificate.issued", event_json);
    mdm_webhooks_send(wh, "ev-2", "not.a.type", event_json);
    assert_int_equal(mdm_webhooks_configure(wh, &cfg, err), 0);
    mdm_webhooks_free(wh);
    unsetenv("ATTESTA_TEST_WH_SET");
}

/* ---- shutdown drain ---- */

struct drain_result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    size_t left;
};

static void on_drained(void *arg, size_t undelivered)
{
    struct drain_result *r = arg;
    pthread_mutex_lock(&r->mu);
    r->done = true;
    r->left = undelivered;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Waits up to ms for the drain to end, so a hang fails instead of blocking the run. */
static bool drain_wait(struct drain_result *r, int ms)
{
    struct timespec ts;
    bool done;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->mu);
    while (!r->done && pthread_cond_timedwait(&r->cv, &r->mu, &ts) == 0)
        ;
    done = r->done;
    pthread_mutex_unlock(&r->mu);
    return done;
}

/* A listening socket on 127.0.0.1:0; *port gets its port. */
static int listen_any(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 64), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Answers each POST with 200 after 50 ms, one connection at a time, and counts them. */
struct receiver {
    int fd;
    pthread_t thread;
    int answered;
};

static void *receiver_main(void *arg)
{
    struct receiver *rv = arg;
    char buf[8192];
    for (;;) {
        int c = accept(rv->fd, NULL, NULL);
        size_t n = 0;
        const char *hdr_end = NULL, *cl;
        if (c < 0)
            return NULL;
        while (n < sizeof(buf) - 1) { /* the whole request: headers, then Content-Length bytes */
            ssize_t k = read(c, buf + n, sizeof(buf) - 1 - n);
            if (k <= 0)
                break;
            n += (size_t)k;
            buf[n] = '\0';
            hdr_end = strstr(buf, "\r\n\r\n");
            cl = strstr(buf, "Content-Length: ");
            if (hdr_end != NULL && cl != NULL &&
                n >= (size_t)(hdr_end + 4 - buf) + strtoul(cl + 16, NULL, 10))
                break;
        }
        usleep(50000);
        static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                                 "Connection: close\r\n\r\n";
        if (hdr_end != NULL && write(c, ok, sizeof(ok) - 1) == (ssize_t)(sizeof(ok) - 1))
            rv->answered++;
        close(c);
    }
}

/* One webhook at url: backoff in seconds, a 30 s attempt timeout, 5 attempts. */
static struct mdm_webhooks *drain_sender(const char *url, int64_t backoff)
{
    char err[ERR_LEN];
    struct cfg_webhook w = {.name = "drain", .url = (char *)url, .secret_env = "ATTESTA_TEST_WH",
                            .types = 7, .timeout = 30, .attempts = 5, .backoff = backoff};
    struct cfg cfg = {.events = {.webhooks = &w, .nwebhooks = 1}};
    struct mdm_webhooks *wh;
    setenv("ATTESTA_TEST_WH", "drain-secret", 1);
    wh = mdm_webhooks_new(&cfg, err);
    if (wh == NULL)
        fail_msg("%s", err);
    return wh;
}

static void send_events(struct mdm_webhooks *wh, int n)
{
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof(id), "ev-%d", i);
        mdm_webhooks_send(wh, id, "certificate.issued", event_json);
    }
}

/* Ten events behind a slow receiver (4 in flight at most): all are delivered in the drain. */
static void test_drain_delivers_queued(void **state)
{
    struct drain_result r = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct receiver rv = {0};
    char url[64];
    int port;
    rv.fd = listen_any(&port);
    assert_int_equal(pthread_create(&rv.thread, NULL, receiver_main, &rv), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", port);
    struct mdm_webhooks *wh = drain_sender(url, 1);
    send_events(wh, 10);
    int64_t t0 = clk_mono_ms();
    mdm_webhooks_drain(wh, 10000, on_drained, &r);
    mdm_webhooks_send(wh, "late", "certificate.issued", event_json); /* refused: draining */
    assert_true(drain_wait(&r, 15000));
    assert_int_equal(r.left, 0);
    assert_true(clk_mono_ms() - t0 < 10000);
    mdm_webhooks_free(wh);
    shutdown(rv.fd, SHUT_RDWR);
    pthread_join(rv.thread, NULL);
    close(rv.fd);
    assert_int_equal(rv.answered, 10);
}

/* Connection refused: a retry due within the drain is made, one due after it is not waited for. */
static void test_drain_retry_schedule(void **state)
{
    static const struct {
        const char *name;
        int64_t backoff, drain_ms, min_ms, max_ms;
    } rows[] = {
        {"first retry after the deadline", 5, 3000, 0, 1500},
        {"second retry after the deadline", 1, 2500, 900, 2400}, /* tries at 0 and 1 s */
        {"no drain at all", 1, 0, 0, 1000},
    };
    char url[64];
    int port, fd = listen_any(&port);
    close(fd); /* nobody listens there any more */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", port);
    for (size_t i = 0; i < nitems(rows); i++) {
        struct drain_result r = {.mu = PTHREAD_MUTEX_INITIALIZER,
                                 .cv = PTHREAD_COND_INITIALIZER};
        struct mdm_webhooks *wh = drain_sender(url, rows[i].backoff);
        send_events(wh, 3);
        int64_t t0 = clk_mono_ms();
        mdm_webhooks_drain(wh, rows[i].drain_ms, on_drained, &r);
        if (!drain_wait(&r, 10000))
            fail_msg("%s: the drain did not end", rows[i].name);
        int64_t ms = clk_mono_ms() - t0;
        if (r.left != 3 || ms < rows[i].min_ms || ms > rows[i].max_ms)
            fail_msg("%s: %zu left after %lld ms", rows[i].name, r.left, (long long)ms);
        mdm_webhooks_free(wh);
    }
}

/* A receiver that never answers: the deadline, or a cut, ends the attempts in flight. */
static void test_drain_deadline_and_cut(void **state)
{
    char url[64];
    int port, fd = listen_any(&port); /* connections wait in the backlog, never answered */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", port);
    for (int cut = 0; cut < 2; cut++) {
        struct drain_result r = {.mu = PTHREAD_MUTEX_INITIALIZER,
                                 .cv = PTHREAD_COND_INITIALIZER};
        struct mdm_webhooks *wh = drain_sender(url, 1);
        send_events(wh, 6); /* 4 in flight, 2 queued */
        int64_t t0 = clk_mono_ms();
        mdm_webhooks_drain(wh, cut ? 20000 : 600, on_drained, &r);
        if (cut) {
            usleep(200000);
            assert_false(drain_wait(&r, 0));
            mdm_webhooks_drain_cut(wh);
        }
        assert_true(drain_wait(&r, 10000));
        int64_t ms = clk_mono_ms() - t0;
        assert_int_equal(r.left, 6);
        if (ms < (cut ? 150 : 550) || ms > 3000)
            fail_msg("%s: ended after %lld ms", cut ? "cut" : "deadline", (long long)ms);
        mdm_webhooks_free(wh);
    }
    close(fd);
}

int run_webhook_tests(void);
int run_webhook_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt_signature),
        cmocka_unit_test(test_jwt_rejects_non_objects),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_secret_errors),
        cmocka_unit_test(test_drain_delivers_queued),
        cmocka_unit_test(test_drain_retry_schedule),
        cmocka_unit_test(test_drain_deadline_and_cut),
    };
    return cmocka_run_group_tests_name("mdm_webhook", tests, NULL, NULL);
}
