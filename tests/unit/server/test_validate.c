/*
 * test_validate.c: unit_validate. Table-driven rows run the real validator
 * thread against real local servers (test_validate_srv.c): http-01, dns-01
 * and tls-alpn-01 outcomes, retries, timeouts, retries brought forward
 * (CH-6); plus table tests of the pure
 * DNS and HTTP response parsers with malformed input.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "acme/acme.h"
#include "config/config.h"
#include "server/srv_validate_int.h"
#include "test_validate_srv.h"

static struct tsrv g_http, g_dns, g_dns_udp, g_tls;
static int g_hang_fd, g_hang_port, g_refused_port;
static int g_retry_delay = 1; /* make_val's retry_delay; the CH-6 tests raise it */

struct result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    bool ok;
    char type[32];
    char detail[ACME_DETAIL_LEN];
    int nretry;               /* retry notices */
    char retry_type[32];      /* the last notice's problem type */
    int64_t next_attempt;     /* and its next try time */
};

static void done_cb(void *arg, struct acme_validation *v, bool ok, const struct acme_problem *prob)
{
    struct result *r = arg;
    pthread_mutex_lock(&r->mu);
    r->n++;
    r->ok = ok;
    snprintf(r->type, sizeof(r->type), "%s", prob != NULL && prob->type ? prob->type : "");
    snprintf(r->detail, sizeof(r->detail), "%s", prob != NULL ? prob->detail : "");
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    free(v);
}

static void retry_cb(void *arg, const struct acme_validation *v, const struct acme_problem *prob,
                     int64_t next_attempt)
{
    struct result *r = arg;
    pthread_mutex_lock(&r->mu);
    r->nretry++;
    snprintf(r->retry_type, sizeof(r->retry_type), "%s", prob->type);
    r->next_attempt = next_attempt;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Waits until *count (a field of r) reaches n; false after 20 s so a hang fails the test. */
static bool wait_count(struct result *r, const int *count, int n)
{
    struct timespec ts;
    bool got;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    pthread_mutex_lock(&r->mu);
    while (*count < n && pthread_cond_timedwait(&r->cv, &r->mu, &ts) == 0)
        ;
    got = *count >= n;
    pthread_mutex_unlock(&r->mu);
    return got;
}

/* Waits until n results arrived. */
static bool wait_results(struct result *r, int n)
{
    return wait_count(r, &r->n, n);
}

/* Waits until n retry notices arrived. */
static bool wait_retries(struct result *r, int n)
{
    return wait_count(r, &r->nretry, n);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* P_UDPONLY: the resolver answers UDP only, TCP to it is refused (dns-01 rows). */
enum port_kind { P_GOOD, P_HANG, P_REFUSED, P_UDPONLY };

struct vrow {
    const char *name;
    enum acme_chall_type type;
    const char *ident;
    bool is_ip;
    const char *token;
    enum port_kind pk;
    int timeout;
    bool ok;
    const char *ptype;      /* expected problem type when !ok */
    const char *detail_has; /* substring of the detail, or NULL */
};

static const struct vrow rows[] = {
    {"http ok", ACME_CH_HTTP01, "ok.test", false, "tok-ok", P_GOOD, 5, true, NULL, NULL},
    {"http ip literal", ACME_CH_HTTP01, "127.0.0.1", true, "tok-ok", P_GOOD, 5, true, NULL, NULL},
    {"http wrong body", ACME_CH_HTTP01, "ok.test", false, "tok-wrong", P_GOOD, 5, false,
     "incorrectResponse", "got \"nope\\x01\\x22\""},
    {"http 404", ACME_CH_HTTP01, "ok.test", false, "tok-404", P_GOOD, 5, false,
     "incorrectResponse", "status 404"},
    {"http redirect absolute", ACME_CH_HTTP01, "ok.test", false, "tok-redir", P_GOOD, 5, true,
     NULL, NULL},
    {"http redirect relative, chunked", ACME_CH_HTTP01, "ok.test", false, "tok-redir-rel",
     P_GOOD, 5, true, NULL, NULL},
    {"http redirect to https", ACME_CH_HTTP01, "ok.test", false, "tok-redir-https", P_GOOD, 5,
     false, "connection", "https"},
    {"http redirect loop", ACME_CH_HTTP01, "ok.test", false, "tok-loop", P_GOOD, 5, false,
     "connection", "Too many redirects"},
    {"http chunked", ACME_CH_HTTP01, "ok.test", false, "tok-chunked", P_GOOD, 5, true, NULL, NULL},
    {"http body too big", ACME_CH_HTTP01, "ok.test", false, "tok-big", P_GOOD, 5, false,
     "incorrectResponse", "larger than 8192"},
    {"http refused", ACME_CH_HTTP01, "ok.test", false, "tok-ok", P_REFUSED, 5, false,
     "connection", "Connecting to ok.test"},
    {"http timeout", ACME_CH_HTTP01, "ok.test", false, "tok-ok", P_HANG, 1, false, "connection",
     "no answer in 1s"},
    {"http nxdomain", ACME_CH_HTTP01, "nx.test", false, "tok-ok", P_GOOD, 5, false, "dns",
     "NXDOMAIN"},
    {"dns ok", ACME_CH_DNS01, "ok.test", false, NULL, P_GOOD, 5, true, NULL, NULL},
    {"dns via cname", ACME_CH_DNS01, "cname.test", false, NULL, P_GOOD, 5, true, NULL, NULL},
    {"dns spoofed id ignored", ACME_CH_DNS01, "spoof.test", false, NULL, P_GOOD, 5, true, NULL,
     NULL},
    {"dns wrong txt", ACME_CH_DNS01, "wrong.test", false, NULL, P_GOOD, 5, false,
     "incorrectResponse", "wrong-value"},
    {"dns no txt", ACME_CH_DNS01, "empty.test", false, NULL, P_GOOD, 5, false,
     "incorrectResponse", "No TXT record"},
    {"dns nxdomain", ACME_CH_DNS01, "nx.test", false, NULL, P_GOOD, 5, false, "dns", "NXDOMAIN"},
    {"dns servfail", ACME_CH_DNS01, "servfail.test", false, NULL, P_GOOD, 5, false, "dns",
     "SERVFAIL"},
    {"dns truncated answer", ACME_CH_DNS01, "trunc.test", false, NULL, P_GOOD, 5, false, "dns",
     "malformed"},
    {"dns compression loop", ACME_CH_DNS01, "loop.test", false, NULL, P_GOOD, 5, false, "dns",
     "compression pointer"},
    {"dns resolver silent", ACME_CH_DNS01, "ok.test", false, NULL, P_REFUSED, 2, false, "dns",
     NULL},
    {"dns TC, retried over TCP", ACME_CH_DNS01, "tc.test", false, NULL, P_GOOD, 5, true, NULL,
     NULL},
    {"dns TC, TCP refused", ACME_CH_DNS01, "tcrefused.test", false, NULL, P_UDPONLY, 5, false,
     "dns", "refused"},
    {"dns EDNS0 1000-byte answer", ACME_CH_DNS01, "big.test", false, NULL, P_GOOD, 5, true, NULL,
     NULL},
    {"dns TCP length past data", ACME_CH_DNS01, "tcshort.test", false, NULL, P_GOOD, 5, false,
     "dns", "closed after"},
    {"dns TCP trailing garbage", ACME_CH_DNS01, "tcjunk.test", false, NULL, P_GOOD, 5, false,
     "dns", "trailing bytes"},
    {"dns TCP other id", ACME_CH_DNS01, "tcid.test", false, NULL, P_GOOD, 5, false, "dns",
     "does not match"},
    {"dns TCP length too short", ACME_CH_DNS01, "tcgarbage.test", false, NULL, P_GOOD, 5, false,
     "dns", "shorter than a DNS header"},
    {"tls ok", ACME_CH_TLSALPN01, "ok.test", false, NULL, P_GOOD, 5, true, NULL, NULL},
    {"tls ip (reverse SNI)", ACME_CH_TLSALPN01, "127.0.0.1", true, NULL, P_GOOD, 5, true, NULL,
     NULL},
    {"tls no alpn", ACME_CH_TLSALPN01, "noalpn.test", false, NULL, P_GOOD, 5, false,
     "incorrectResponse", "ALPN"},
    {"tls wrong hash", ACME_CH_TLSALPN01, "badhash.test", false, NULL, P_GOOD, 5, false,
     "incorrectResponse", "Incorrect validation certificate"},
    {"tls missing extension", ACME_CH_TLSALPN01, "noext.test", false, NULL, P_GOOD, 5, false,
     "incorrectResponse", "Incorrect validation certificate"},
    {"tls unknown sni", ACME_CH_TLSALPN01, "other.test", false, NULL, P_GOOD, 5, false, "tls",
     "handshake"},
    {"tls refused", ACME_CH_TLSALPN01, "ok.test", false, NULL, P_REFUSED, 5, false, "connection",
     NULL},
    {"tls timeout", ACME_CH_TLSALPN01, "ok.test", false, NULL, P_HANG, 1, false, "connection",
     "Timeout"},
};

static struct acme_validation *make_v(const struct vrow *r)
{
    struct acme_validation *v = calloc(1, sizeof(*v));
    snprintf(v->chall_id, sizeof(v->chall_id), "%s", r->name);
    v->type = r->type;
    snprintf(v->identifier, sizeof(v->identifier), "%s", r->ident);
    v->is_ip = r->is_ip;
    snprintf(v->token, sizeof(v->token), "%s", r->token != NULL ? r->token : "tok");
    snprintf(v->key_authz, sizeof(v->key_authz), "%s", T_KEYAUTH);
    EVP_Digest(T_KEYAUTH, strlen(T_KEYAUTH), v->key_authz_sha256, NULL, EVP_sha256(), NULL);
    snprintf(v->dns01_txt, sizeof(v->dns01_txt), "%s", T_DNS_TXT);
    return v;
}

static struct srv_validator *make_val(const struct vrow *r, int attempts, struct result *res)
{
    char resolver[64], err[256];
    struct cfg_acme cfg;
    struct srv_validator *val;
    int port = r->pk == P_HANG ? g_hang_port : r->pk == P_REFUSED ? g_refused_port : 0;
    int dns_port = g_dns.port;

    memset(&cfg, 0, sizeof(cfg));
    /* "resolver silent": a port where no DNS server answers. */
    if (r->type == ACME_CH_DNS01 && r->pk == P_REFUSED)
        dns_port = g_refused_port;
    else if (r->pk == P_UDPONLY)
        dns_port = g_dns_udp.port;
    snprintf(resolver, sizeof(resolver), "127.0.0.1:%d", dns_port);
    cfg.resolver = resolver;
    cfg.http01_port = port != 0 ? port : g_http.port;
    cfg.tls_alpn01_port = port != 0 ? port : g_tls.port;
    cfg.validation_attempts = attempts;
    cfg.validation_timeout = r->timeout;
    cfg.validation_retry_delay = g_retry_delay;
    val = srv_validator_new(&cfg, done_cb, retry_cb, res, err);
    if (val == NULL)
        print_error("srv_validator_new: %s\n", err);
    return val;
}

static void test_rows(void **state)
{
    for (size_t i = 0; i < nitems(rows); i++) {
        const struct vrow *r = &rows[i];
        struct result res = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
        struct srv_validator *val = make_val(r, 1, &res);
        assert_non_null(val);
        srv_validator_submit(val, make_v(r));
        bool got = wait_results(&res, 1);
        srv_validator_free(val);
        print_message("[ row      ] %-32s ok=%d %s: %s\n", r->name, res.ok, res.type, res.detail);
        assert_true(got);
        assert_int_equal(res.ok, r->ok);
        if (!r->ok) {
            assert_string_equal(res.type, r->ptype);
            if (r->detail_has != NULL && strstr(res.detail, r->detail_has) == NULL)
                fail_msg("row %s: detail lacks \"%s\"", r->name, r->detail_has);
        }
    }
}

static const struct vrow *row_named(const char *name)
{
    for (size_t i = 0; i < nitems(rows); i++)
        if (strcmp(rows[i].name, name) == 0)
            return &rows[i];
    fail_msg("no row %s", name);
    return NULL;
}

static void test_http_request_shape(void **state)
{
    struct result res = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct srv_validator *val = make_val(&rows[0], 1, &res);
    assert_non_null(val);
    srv_validator_submit(val, make_v(&rows[0]));
    assert_true(wait_results(&res, 1));
    srv_validator_free(val);
    assert_string_equal(g_http.last_host, "ok.test");
}

static void test_tls_client_hello(void **state)
{
    const struct vrow *r = row_named("tls ok");
    struct result res = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct srv_validator *val = make_val(r, 1, &res);
    srv_validator_submit(val, make_v(r));
    assert_true(wait_results(&res, 1));
    srv_validator_free(val);
    assert_true(res.ok);
    usleep(200 * 1000); /* the server thread records after the handshake */
    pthread_mutex_lock(&g_tls.mu);
    assert_string_equal(g_tls.last_host, "ok.test");
    assert_string_equal(g_tls.last_alpn, "acme-tls/1");
    assert_int_equal(g_tls.hits[1], 0); /* no application data, RFC 8737 §4 */
    pthread_mutex_unlock(&g_tls.mu);
}

/*
 * attempts = 2: the responder sees two requests, spaced by the retry delay;
 * the failed first try is reported before the verdict, with the time of the
 * second (rounded up to the next second).
 */
static void test_retries(void **state)
{
    const struct vrow *r = &rows[2]; /* http wrong body */
    struct result res = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    int before = tsrv_http_hits(&g_http, "tok-wrong");
    int64_t start = clk_now();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct srv_validator *val = make_val(r, 2, &res);
    srv_validator_submit(val, make_v(r));
    assert_true(wait_results(&res, 1));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    srv_validator_free(val);
    assert_false(res.ok);
    assert_int_equal(res.n, 1);
    assert_int_equal(tsrv_http_hits(&g_http, "tok-wrong") - before, 2);
    assert_true(t1.tv_sec - t0.tv_sec >= 1 || t1.tv_nsec >= t0.tv_nsec);
    assert_int_equal(res.nretry, 1);
    assert_string_equal(res.retry_type, "incorrectResponse");
    assert_true(res.next_attempt >= start + 1);
    assert_true(res.next_attempt <= clk_now() + 1);
}

static int dns_tcp_hits(void)
{
    pthread_mutex_lock(&g_dns.mu);
    int n = g_dns.hits[1];
    pthread_mutex_unlock(&g_dns.mu);
    return n;
}

/* SEC-2: a TC answer is asked again over TCP; a 1000-byte EDNS0 answer needs no TCP. */
static void test_dns_tcp_fallback(void **state)
{
    static const char *const names[] = {"dns TC, retried over TCP", "dns EDNS0 1000-byte answer"};
    for (size_t i = 0; i < nitems(names); i++) {
        const struct vrow *r = row_named(names[i]);
        struct result res = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
        int before = dns_tcp_hits();
        struct srv_validator *val = make_val(r, 1, &res);
        srv_validator_submit(val, make_v(r));
        assert_true(wait_results(&res, 1));
        srv_validator_free(val);
        assert_true(res.ok);
        assert_int_equal(dns_tcp_hits() - before, i == 0 ? 1 : 0);
    }
}

/*
 * CH-6, retry_delay 10 s and 2 attempts: asked while the retry waits, the
 * second try runs at once, the verdict comes well before 10 s, and the job
 * still makes exactly 2 tries; asking once it is done (or for a challenge
 * nobody validates) changes nothing.
 */
static void test_retry_now(void **state)
{
    const struct vrow *r = row_named("http wrong body");
    struct result res = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    int before = tsrv_http_hits(&g_http, "tok-wrong");
    struct srv_validator *val;
    int64_t t0;

    g_retry_delay = 10;
    val = make_val(r, 2, &res);
    g_retry_delay = 1;
    assert_non_null(val);
    assert_int_equal(srv_validator_retry_now(val, "nobody"), 0);
    srv_validator_submit(val, make_v(r));
    assert_true(wait_retries(&res, 1));
    t0 = mono_ms();
    assert_int_equal(srv_validator_retry_now(val, r->name), 0);
    assert_true(wait_results(&res, 1));
    print_message("[ early    ] verdict %lld ms after the ask\n", (long long)(mono_ms() - t0));
    assert_true(mono_ms() - t0 < 5000);
    assert_false(res.ok);
    assert_int_equal(res.nretry, 1);
    assert_int_equal(srv_validator_retry_now(val, r->name), 0);
    usleep(300 * 1000);
    srv_validator_free(val);
    assert_int_equal(res.n, 1);
    assert_int_equal(tsrv_http_hits(&g_http, "tok-wrong") - before, 2);
}

/*
 * CH-6 rate limit, retry_delay 10 s (gap 5 s, 4 s on the loop) and 3
 * attempts: the first ask moves try 2; asks right after try 2 failed are
 * ignored, so try 3 keeps its 10 s delay; a stopped validator refuses asks.
 */
static void test_retry_now_limited(void **state)
{
    const struct vrow *r = row_named("http wrong body");
    struct result res = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    int before = tsrv_http_hits(&g_http, "tok-wrong");
    struct srv_validator *val;

    g_retry_delay = 10;
    val = make_val(r, 3, &res);
    g_retry_delay = 1;
    assert_non_null(val);
    srv_validator_submit(val, make_v(r));
    assert_true(wait_retries(&res, 1));
    srv_validator_retry_now(val, r->name);
    assert_true(wait_retries(&res, 2));
    srv_validator_retry_now(val, r->name);
    srv_validator_retry_now(val, r->name);
    usleep(1500 * 1000);
    assert_int_equal(tsrv_http_hits(&g_http, "tok-wrong") - before, 2);
    assert_int_equal(res.n, 0);
    srv_validator_stop(val);
    assert_int_equal(srv_validator_retry_now(val, r->name), -1);
    srv_validator_free(val);
    assert_int_equal(res.n, 0);
}

/* Many submits from several threads at once all complete, each exactly once. */
static void *submit_main(void *arg)
{
    struct srv_validator *val = arg;
    for (int i = 0; i < 10; i++)
        srv_validator_submit(val, make_v(i % 2 ? &rows[0] : &rows[13]));
    return NULL;
}

static void test_concurrent(void **state)
{
    struct result res = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct srv_validator *val = make_val(&rows[0], 1, &res);
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, submit_main, val);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_true(wait_results(&res, 30));
    srv_validator_free(val);
    assert_int_equal(res.n, 30);
}

/* Free with validations still in flight: no callback, no leak, no hang. */
static void test_free_in_flight(void **state)
{
    const struct vrow *r = row_named("http timeout");
    struct result res = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct srv_validator *val = make_val(r, 3, &res);
    for (int i = 0; i < 5; i++)
        srv_validator_submit(val, make_v(r));
    usleep(100 * 1000);
    srv_validator_free(val);
    assert_int_equal(res.n, 0);
}

/*
 * Shutdown: a stopped validator drops what it holds and refuses later
 * submits (the caller keeps v), as the hand-off of a request that outlived
 * shutdown_timeout needs; stopping twice and freeing afterwards are fine.
 */
static void test_submit_after_stop(void **state)
{
    const struct vrow *r = row_named("http timeout"); /* still running when stopped */
    struct result res = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct srv_validator *val = make_val(r, 3, &res);
    struct acme_validation *v = make_v(r);
    assert_non_null(val);
    assert_int_equal(srv_validator_submit(val, make_v(r)), 0);
    usleep(50 * 1000);
    srv_validator_stop(val);
    assert_int_equal(srv_validator_submit(val, v), -1);
    free(v);
    srv_validator_stop(val);
    usleep(100 * 1000);
    assert_int_equal(res.n, 0);
    srv_validator_free(val);
    srv_validator_stop(NULL);
}

static int setup(void **state)
{
    if (tsrv_http_start(&g_http) != 0 || tsrv_dns_start(&g_dns) != 0 ||
        tsrv_dns_udp_start(&g_dns_udp) != 0 || tsrv_tls_start(&g_tls) != 0)
        return -1;
    g_hang_fd = tsrv_hang_open(&g_hang_port);
    g_refused_port = tsrv_refused_port();
    return g_hang_fd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    tsrv_stop(&g_http);
    tsrv_stop(&g_dns);
    tsrv_stop(&g_dns_udp);
    tsrv_stop(&g_tls);
    close(g_hang_fd);
    return 0;
}

void test_validate_parsers_dns(void **state);
void test_validate_parsers_http(void **state);

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_parsers_dns),
        cmocka_unit_test(test_validate_parsers_http),
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_http_request_shape),
        cmocka_unit_test(test_tls_client_hello),
        cmocka_unit_test(test_dns_tcp_fallback),
        cmocka_unit_test(test_retries),
        cmocka_unit_test(test_retry_now),
        cmocka_unit_test(test_retry_now_limited),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_free_in_flight),
        cmocka_unit_test(test_submit_after_stop),
    };
    /* The test servers write to peers that hang up early. */
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LVL_WARN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
