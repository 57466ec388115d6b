/*
 * Unit tests for the HTTPS plane (server/srv_plane.h): the worker pool, the
 * per-address connection count, and the real evhttp+TLS plane with a stub
 * handler, driven by an OpenSSL client on 127.0.0.1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "acme/acme.h"
#include "common/common.h"
#include "server/srv_plane.h"

/* ------------------------------------------------------------------ pool */

static atomic_int ran;
static atomic_int gate_open, gate_entered;

static void job_count(void *arg)
{
    atomic_fetch_add(&ran, 1);
}

static void job_gate(void *arg)
{
    const struct timespec nap = {0, 1000 * 1000};
    atomic_store(&gate_entered, 1);
    while (!atomic_load(&gate_open))
        nanosleep(&nap, NULL);
    atomic_fetch_add(&ran, 1);
}

static void test_pool_runs_all(void **state)
{
    char err[ERR_LEN];
    struct srv_pool *p = srv_pool_new(4, 1000, err);
    assert_non_null(p);
    atomic_store(&ran, 0);
    for (int i = 0; i < 500; i++)
        assert_int_equal(srv_pool_submit(p, job_count, NULL, false), 0);
    srv_pool_free(p);
    assert_int_equal(atomic_load(&ran), 500);
}

static void test_pool_bound(void **state)
{
    char err[ERR_LEN];
    const struct timespec nap = {0, 1000 * 1000};
    struct srv_pool *p = srv_pool_new(1, 2, err);
    assert_non_null(p);
    atomic_store(&ran, 0);
    atomic_store(&gate_open, 0);
    atomic_store(&gate_entered, 0);
    assert_int_equal(srv_pool_submit(p, job_gate, NULL, false), 0);
    while (!atomic_load(&gate_entered))
        nanosleep(&nap, NULL);
    /* the only thread is busy: two may wait, the third is refused unless forced */
    assert_int_equal(srv_pool_submit(p, job_count, NULL, false), 0);
    assert_int_equal(srv_pool_submit(p, job_count, NULL, false), 0);
    assert_int_equal(srv_pool_submit(p, job_count, NULL, false), -1);
    assert_int_equal(srv_pool_queued(p), 2);
    assert_int_equal(srv_pool_submit(p, job_count, NULL, true), 0);
    atomic_store(&gate_open, 1);
    srv_pool_free(p);
    assert_int_equal(atomic_load(&ran), 4);
}

/* ------------------------------------------------------------ conn limit */

static void test_connlimit(void **state)
{
    struct srv_connlimit *cl = srv_connlimit_new(2);
    assert_true(srv_connlimit_acquire(cl, "10.0.0.1"));
    assert_true(srv_connlimit_acquire(cl, "10.0.0.1"));
    assert_false(srv_connlimit_acquire(cl, "10.0.0.1"));
    assert_int_equal(srv_connlimit_count(cl, "10.0.0.1"), 2);
    assert_true(srv_connlimit_acquire(cl, "2001:db8::1"));
    srv_connlimit_release(cl, "10.0.0.1");
    assert_int_equal(srv_connlimit_count(cl, "10.0.0.1"), 1);
    assert_true(srv_connlimit_acquire(cl, "10.0.0.1"));
    srv_connlimit_release(cl, "10.0.0.1");
    srv_connlimit_release(cl, "10.0.0.1");
    srv_connlimit_release(cl, "2001:db8::1");
    assert_int_equal(srv_connlimit_count(cl, "10.0.0.1"), 0);
    assert_int_equal(srv_connlimit_count(cl, "2001:db8::1"), 0);
    srv_connlimit_free(cl);

    cl = srv_connlimit_new(0); /* unlimited, still counted */
    for (int i = 0; i < 1000; i++)
        assert_true(srv_connlimit_acquire(cl, "192.0.2.7"));
    assert_int_equal(srv_connlimit_count(cl, "192.0.2.7"), 1000);
    srv_connlimit_free(cl); /* frees live entries too (ASan checks) */
}

/* ------------------------------------------------------------ the plane */


struct plane {
    char dir[64];
    char cert[96], key[96], alog[96];
    struct srv_pool *pool;
    struct srv_http *http;
    int port;
};

static atomic_int slow_done, slow_started;

static bool stub_is_fast(void *arg, const struct acme_request *req)
{
    return strncmp(req->path, "/fast", 5) == 0;
}

/* Answers "METHOD PATH BODY"; /slow sleeps first so a client can leave meanwhile. */
static void stub_handle(void *arg, const struct acme_request *req, struct acme_response *resp)
{
    if (strcmp(req->path, "/slow") == 0) {
        const struct timespec nap = {0, 300 * 1000 * 1000};
        atomic_fetch_add(&slow_started, 1);
        nanosleep(&nap, NULL);
        atomic_fetch_add(&slow_done, 1);
    }
    resp->status = 200;
    resp->content_type = "text/plain";
    resp->body = xasprintf("%s %s %.*s", req->method, req->path, (int)req->body_len,
                           (const char *)req->body);
    resp->body_len = strlen(resp->body);
    resp->headers[0].name = "Replay-Nonce";
    resp->headers[0].value = xstrdup("nonce-1");
    resp->nheaders = 1;
}

/* A self-signed P-256 certificate for 127.0.0.1, key 0600. */
static void make_cert(const char *cert_path, const char *key_path)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *fp;

    assert_non_null(key);
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"127.0.0.1", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, key);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    fp = fopen(cert_path, "w");
    assert_non_null(fp);
    PEM_write_X509(fp, x);
    fclose(fp);
    fp = fopen(key_path, "w");
    assert_non_null(fp);
    assert_int_equal(chmod(key_path, 0600), 0);
    PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL);
    fclose(fp);
    X509_free(x);
    EVP_PKEY_free(key);
}

static int plane_start(struct plane *pl, int max_conns, size_t max_queued)
{
    char err[ERR_LEN];
    struct srv_http_opts o = {0};

    snprintf(pl->dir, sizeof(pl->dir), "/tmp/attesta-plane-XXXXXX");
    if (mkdtemp(pl->dir) == NULL)
        return -1;
    snprintf(pl->cert, sizeof(pl->cert), "%s/tls.pem", pl->dir);
    snprintf(pl->key, sizeof(pl->key), "%s/tls.key", pl->dir);
    snprintf(pl->alog, sizeof(pl->alog), "%s/access.log", pl->dir);
    make_cert(pl->cert, pl->key);
    pl->pool = srv_pool_new(2, max_queued, err);
    o.host = "127.0.0.1";
    o.port = 0;
    o.nloops = 2;
    o.tls_cert = pl->cert;
    o.tls_key = pl->key;
    o.max_body = 1024;
    o.max_headers = 4096;
    o.read_timeout = 1;
    o.max_conns_per_ip = max_conns;
    o.access_log = pl->alog;
    o.pool = pl->pool;
    o.is_fast = stub_is_fast;
    o.handle = stub_handle;
    pl->http = srv_http_new(&o, err);
    if (pl->http == NULL) {
        fprintf(stderr, "srv_http_new: %s\n", err);
        return -1;
    }
    pl->port = srv_http_port(pl->http);
    return srv_http_start(pl->http, err);
}

static int plane_setup(void **state)
{
    struct plane *pl = xcalloc(1, sizeof(*pl));
    *state = pl;
    return plane_start(pl, 0, 16);
}

static int plane_teardown(void **state)
{
    struct plane *pl = *state;
    char cmd[128];
    if (pl->http != NULL) {
        srv_http_stop_accepting(pl->http);
        srv_http_wait_idle(pl->http, 2000);
        srv_http_stop(pl->http);
    }
    srv_pool_free(pl->pool);
    srv_http_free(pl->http);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", pl->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", pl->dir);
    free(pl);
    return 0;
}

/* ---- a small blocking TLS client ---- */

struct client {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    char buf[16384];
    size_t have;
};

struct http_resp {
    int status;
    char headers[4096];
    char body[4096];
    size_t body_len;
};

static void client_close(struct client *c)
{
    if (c->ssl != NULL)
        SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

static struct client *client_open(int port)
{
    struct client *c = xcalloc(1, sizeof(*c));
    struct sockaddr_in sin = {0};
    struct timeval tv = {5, 0};

    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    c->ctx = SSL_CTX_new(TLS_client_method());
    c->ssl = SSL_new(c->ctx);
    SSL_set_fd(c->ssl, c->fd);
    assert_int_equal(SSL_connect(c->ssl), 1);
    return c;
}

static void client_send(struct client *c, const char *s)
{
    assert_int_equal(SSL_write(c->ssl, s, (int)strlen(s)), (int)strlen(s));
}

/* Reads more bytes into c->buf; false on close, error or timeout. */
static bool client_fill(struct client *c)
{
    int n;
    if (c->have >= sizeof(c->buf) - 1)
        return false;
    n = SSL_read(c->ssl, c->buf + c->have, (int)(sizeof(c->buf) - 1 - c->have));
    if (n <= 0)
        return false;
    c->have += (size_t)n;
    c->buf[c->have] = '\0';
    return true;
}

/* One response; head = the request was HEAD (no body whatever Content-Length says). */
static bool client_read(struct client *c, struct http_resp *r, bool head)
{
    char *end, *cl;
    size_t hlen, blen = 0;

    memset(r, 0, sizeof(*r));
    c->buf[c->have] = '\0';
    while ((end = strstr(c->buf, "\r\n\r\n")) == NULL) {
        if (!client_fill(c))
            return false;
    }
    hlen = (size_t)(end - c->buf) + 4;
    if (sscanf(c->buf, "HTTP/1.1 %d", &r->status) != 1)
        return false;
    snprintf(r->headers, sizeof(r->headers), "%.*s", (int)hlen, c->buf);
    cl = strcasestr(r->headers, "\r\nContent-Length: ");
    if (cl != NULL && !head)
        blen = strtoul(cl + 18, NULL, 10);
    while (c->have < hlen + blen) {
        if (!client_fill(c))
            return false;
    }
    memcpy(r->body, c->buf + hlen, blen < sizeof(r->body) - 1 ? blen : sizeof(r->body) - 1);
    r->body_len = blen;
    memmove(c->buf, c->buf + hlen + blen, c->have - hlen - blen);
    c->have -= hlen + blen;
    c->buf[c->have] = '\0';
    return true;
}

/* True when the server closed the connection (read returns EOF or error). */
static bool client_closed(struct client *c)
{
    char b[256];
    int n = SSL_read(c->ssl, b, sizeof(b));
    return n <= 0;
}

static void test_keepalive_fast_and_pool(void **state)
{
    struct plane *pl = *state;
    struct client *c = client_open(pl->port);
    struct http_resp r;

    client_send(c, "GET /fast/a?x=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(client_read(c, &r, false));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "GET /fast/a ");
    assert_non_null(strstr(r.headers, "Server: attesta"));
    assert_non_null(strstr(r.headers, "Replay-Nonce: nonce-1"));
    assert_non_null(strstr(r.headers, "Content-Type: text/plain"));
    /* same connection, answered by a pool thread */
    client_send(c, "POST /pool HTTP/1.1\r\nHost: t\r\nContent-Type: application/jose+json\r\n"
                   "Content-Length: 5\r\n\r\nhello");
    assert_true(client_read(c, &r, false));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "POST /pool hello");
    client_close(c);
}

static void test_head_has_no_body(void **state)
{
    struct plane *pl = *state;
    struct client *c = client_open(pl->port);
    struct http_resp r;

    client_send(c, "HEAD /fast/nonce HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(client_read(c, &r, true));
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "Content-Length: 17"));
    /* had a body been sent, it would now sit in front of the next status line */
    client_send(c, "GET /fast/b HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(client_read(c, &r, false));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "GET /fast/b ");
    client_close(c);
}

static void test_body_over_limit(void **state)
{
    struct plane *pl = *state;
    struct client *c = client_open(pl->port);
    struct http_resp r;
    char *big = xmalloc(2001);

    memset(big, 'a', 2000);
    big[2000] = '\0';
    client_send(c, "POST /pool HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n");
    /* the server may refuse before reading it all: no assert on this write */
    (void)SSL_write(c->ssl, big, 2000);
    assert_true(client_read(c, &r, false));
    assert_int_equal(r.status, 413);
    free(big);
    client_close(c);
}

static void test_slow_client_dropped(void **state)
{
    struct plane *pl = *state;
    struct client *c = client_open(pl->port);
    int64_t t0 = clk_mono_ms(), dt;

    client_send(c, "GET /fast/a HTTP/1.1\r\nHo");
    assert_true(client_closed(c));
    dt = clk_mono_ms() - t0;
    /* read_timeout is 1 s; the client's own timeout would be 5 s */
    assert_true(dt >= 800);
    assert_true(dt < 4000);
    client_close(c);
}

static void test_method_not_allowed(void **state)
{
    struct plane *pl = *state;
    struct client *c = client_open(pl->port);
    struct http_resp r;

    client_send(c, "DELETE /fast/a HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(client_read(c, &r, false));
    assert_int_equal(r.status, 405);
    assert_non_null(strstr(r.headers, "Content-Type: application/problem+json"));
    assert_non_null(strstr(r.headers, "Allow: GET, HEAD, POST"));
    assert_non_null(strstr(r.body, "urn:ietf:params:acme:error:malformed"));
    client_close(c);
}

static void test_client_leaves_before_pool_answers(void **state)
{
    struct plane *pl = *state;
    struct client *c = client_open(pl->port);
    struct http_resp r;
    int before = atomic_load(&slow_done);

    int started = atomic_load(&slow_started);

    client_send(c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    /* leave once the pool thread has the request (closing earlier may lose it in TLS) */
    for (int i = 0; i < 300 && atomic_load(&slow_started) == started; i++) {
        const struct timespec nap = {0, 10 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
    assert_int_equal(atomic_load(&slow_started), started + 1);
    client_close(c);
    /* the pool finishes, the loop finds the request gone and drops the answer */
    for (int i = 0; i < 300 && atomic_load(&slow_done) == before; i++) {
        const struct timespec nap = {0, 10 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
    assert_int_equal(atomic_load(&slow_done), before + 1);
    assert_true(srv_http_wait_idle(pl->http, 3000));
    c = client_open(pl->port);
    client_send(c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(client_read(c, &r, false));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "GET /slow ");
    client_close(c);
}

static void test_shutdown_with_request_pending(void **state)
{
    struct plane *pl = *state;
    struct client *c = client_open(pl->port);
    const struct timespec nap = {0, 50 * 1000 * 1000};

    client_send(c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    nanosleep(&nap, NULL);
    /* stop while /slow is still on a pool thread: its answer must be dropped cleanly */
    srv_http_stop_accepting(pl->http);
    srv_http_stop(pl->http);
    srv_pool_free(pl->pool);
    srv_http_free(pl->http);
    pl->pool = NULL;
    pl->http = NULL;
    assert_true(client_closed(c));
    client_close(c);
}

static void test_conn_limit_per_ip(void **state)
{
    struct plane *pl = xcalloc(1, sizeof(*pl));
    struct client *a, *b;
    struct http_resp r;
    const struct timespec nap = {0, 100 * 1000 * 1000};

    *state = pl;
    assert_int_equal(plane_start(pl, 1, 16), 0);
    a = client_open(pl->port);
    client_send(a, "GET /fast/a HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(client_read(a, &r, false));
    assert_int_equal(r.status, 200);
    b = client_open(pl->port);
    client_send(b, "GET /fast/a HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(client_read(b, &r, false));
    assert_int_equal(r.status, 429);
    assert_true(client_closed(b));
    client_close(b);
    client_close(a);
    nanosleep(&nap, NULL);
    b = client_open(pl->port);
    client_send(b, "GET /fast/a HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(client_read(b, &r, false));
    assert_int_equal(r.status, 200);
    client_close(b);
}

static void test_access_log_written(void **state)
{
    struct plane *pl = *state;
    struct client *c = client_open(pl->port);
    struct http_resp r;
    char line[512] = "";
    FILE *fp;

    client_send(c, "GET /fast/log\x01me HTTP/1.1\r\nHost: t\r\n\r\n");
    if (client_read(c, &r, false)) {
        /* evhttp may refuse the control byte itself; either way nothing raw is logged */
    }
    client_close(c);
    c = client_open(pl->port);
    client_send(c, "GET /fast/logged HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(client_read(c, &r, false));
    client_close(c);
    /* each loop writes its lines at most SRV_ALOG_FLUSH_MS after the first one */
    for (int tries = 0; tries < 100 && strstr(line, "GET /fast/logged") == NULL; tries++) {
        const struct timespec nap = {0, 20 * 1000 * 1000};
        nanosleep(&nap, NULL);
        fp = fopen(pl->alog, "r");
        assert_non_null(fp);
        while (fgets(line, sizeof(line), fp) != NULL) {
            assert_null(strchr(line, '\x01'));
            if (strstr(line, "\"GET /fast/logged\" 200 17 ") != NULL)
                break;
            line[0] = '\0';
        }
        fclose(fp);
    }
    assert_non_null(strstr(line, "127.0.0.1 \"GET /fast/logged\" 200"));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (getenv("UNIT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("UNIT_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_runs_all),
        cmocka_unit_test(test_pool_bound),
        cmocka_unit_test(test_connlimit),
        cmocka_unit_test_setup_teardown(test_keepalive_fast_and_pool, plane_setup,
                                        plane_teardown),
        cmocka_unit_test_setup_teardown(test_head_has_no_body, plane_setup, plane_teardown),
        cmocka_unit_test_setup_teardown(test_body_over_limit, plane_setup, plane_teardown),
        cmocka_unit_test_setup_teardown(test_slow_client_dropped, plane_setup, plane_teardown),
        cmocka_unit_test_setup_teardown(test_method_not_allowed, plane_setup, plane_teardown),
        cmocka_unit_test_setup_teardown(test_client_leaves_before_pool_answers, plane_setup,
                                        plane_teardown),
        cmocka_unit_test_setup_teardown(test_access_log_written, plane_setup, plane_teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_with_request_pending, plane_setup,
                                        plane_teardown),
        cmocka_unit_test_teardown(test_conn_limit_per_ip, plane_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
