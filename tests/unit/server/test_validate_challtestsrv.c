/*
 * test_validate_challtestsrv.c: unit.validate_challtestsrv. Runs the three
 * validators against the real pebble-challtestsrv (Let's Encrypt's challenge
 * test server) on ephemeral loopback ports, so our DNS client, HTTP parser
 * and TLS probe meet an independent implementation. Exits 77 (skip) when the
 * tool is not installed.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "acme/acme.h"
#include "config/config.h"
#include "server/srv_int.h"

#define KEYAUTH "ctstoken.Zm9vYmFyLXRodW1icHJpbnQ"

static pid_t g_child = -1;
static int g_dns, g_http, g_tls, g_mgmt;

static int free_port(int type)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sin);
    int fd = socket(AF_INET, type, 0), port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sin, &sl) == 0)
        port = ntohs(sin.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* POSTs json to the management API; 0 on a 200 answer. */
static int mgmt_post(const char *path, const char *json)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                              .sin_port = htons((uint16_t)g_mgmt)};
    char req[1024], resp[256] = "";
    int fd = socket(AF_INET, SOCK_STREAM, 0), rc = -1;
    int n = snprintf(req, sizeof(req),
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     path, strlen(json), json);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
        send(fd, req, (size_t)n, 0) == n && recv(fd, resp, sizeof(resp) - 1, 0) > 0 &&
        strncmp(resp, "HTTP/1.1 200", 12) == 0)
        rc = 0;
    close(fd);
    return rc;
}

static int start_challtestsrv(const char *bin)
{
    char a[4][64];
    g_dns = free_port(SOCK_DGRAM);
    g_http = free_port(SOCK_STREAM);
    g_tls = free_port(SOCK_STREAM);
    g_mgmt = free_port(SOCK_STREAM);
    snprintf(a[0], sizeof(a[0]), "127.0.0.1:%d", g_dns);
    snprintf(a[1], sizeof(a[1]), "127.0.0.1:%d", g_http);
    snprintf(a[2], sizeof(a[2]), "127.0.0.1:%d", g_tls);
    snprintf(a[3], sizeof(a[3]), "127.0.0.1:%d", g_mgmt);
    g_child = fork();
    if (g_child == 0) {
        execl(bin, bin, "-dns01", a[0], "-http01", a[1], "-tlsalpn01", a[2], "-management", a[3],
              "-https01", "", (char *)NULL);
        _exit(127);
    }
    /* Ready when the management API answers. */
    for (int i = 0; i < 100; i++) {
        if (mgmt_post("/add-a", "{\"host\":\"example.test\",\"addresses\":[\"127.0.0.1\"]}") == 0)
            return 0;
        usleep(100 * 1000);
    }
    return -1;
}

struct result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    bool ok;
    char detail[ACME_DETAIL_LEN + 64]; /* type, ": " and the whole detail */
};

static void done_cb(void *arg, struct acme_validation *v, bool ok, const struct acme_problem *prob)
{
    struct result *r = arg;
    pthread_mutex_lock(&r->mu);
    r->n++;
    r->ok = ok;
    snprintf(r->detail, sizeof(r->detail), "%s%s%s", prob ? prob->type : "", prob ? ": " : "",
             prob ? prob->detail : "");
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    free(v);
}

static bool run_one(enum acme_chall_type type, const char *txt, char *detail, size_t dlen)
{
    char resolver[64], err[256];
    struct cfg_acme cfg = {0};
    struct result res = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct acme_validation *v = calloc(1, sizeof(*v));
    struct timespec ts;
    unsigned char md[32];

    snprintf(resolver, sizeof(resolver), "127.0.0.1:%d", g_dns);
    cfg.resolver = resolver;
    cfg.http01_port = g_http;
    cfg.tls_alpn01_port = g_tls;
    cfg.validation_attempts = 1;
    cfg.validation_timeout = 5;
    struct srv_validator *val = srv_validator_new(&cfg, done_cb, NULL, &res, err);
    assert_non_null(val);
    snprintf(v->chall_id, sizeof(v->chall_id), "cts");
    v->type = type;
    snprintf(v->identifier, sizeof(v->identifier), "example.test");
    snprintf(v->token, sizeof(v->token), "ctstoken");
    snprintf(v->key_authz, sizeof(v->key_authz), "%s", KEYAUTH);
    EVP_Digest(KEYAUTH, strlen(KEYAUTH), md, NULL, EVP_sha256(), NULL);
    memcpy(v->key_authz_sha256, md, sizeof(md));
    snprintf(v->dns01_txt, sizeof(v->dns01_txt), "%s", txt);
    srv_validator_submit(val, v);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    pthread_mutex_lock(&res.mu);
    while (res.n < 1 && pthread_cond_timedwait(&res.cv, &res.mu, &ts) == 0)
        ;
    pthread_mutex_unlock(&res.mu);
    srv_validator_free(val);
    snprintf(detail, dlen, "%s", res.detail);
    assert_int_equal(res.n, 1);
    return res.ok;
}

static void test_challtestsrv(void **state)
{
    char detail[ACME_DETAIL_LEN + 64], json[512];
    unsigned char md[32];
    char *txt;

    EVP_Digest(KEYAUTH, strlen(KEYAUTH), md, NULL, EVP_sha256(), NULL);
    txt = b64u_encode(md, sizeof(md));
    snprintf(json, sizeof(json), "{\"host\":\"_acme-challenge.example.test.\",\"value\":\"%s\"}",
             txt);
    assert_int_equal(mgmt_post("/set-txt", json), 0);
    assert_int_equal(mgmt_post("/add-http01", "{\"token\":\"ctstoken\",\"content\":\"" KEYAUTH
                                              "\"}"), 0);
    assert_int_equal(mgmt_post("/add-tlsalpn01", "{\"host\":\"example.test\",\"content\":\"" KEYAUTH
                                                 "\"}"), 0);

    static const enum acme_chall_type types[] = {ACME_CH_HTTP01, ACME_CH_DNS01,
                                                 ACME_CH_TLSALPN01};
    for (size_t i = 0; i < nitems(types); i++)
        if (!run_one(types[i], txt, detail, sizeof(detail)))
            fail_msg("challenge type %d failed: %s", (int)types[i], detail);
    /* And a negative: the TXT we expect is not the one published. */
    assert_false(run_one(ACME_CH_DNS01, "not-the-published-value", detail, sizeof(detail)));
    print_message("negative dns-01: %s\n", detail);
    free(txt);
}

int main(void)
{
    const char *paths[] = {"/usr/bin/pebble-challtestsrv", "/usr/local/bin/pebble-challtestsrv"};
    const char *bin = NULL;
    int rc, st;
    for (size_t i = 0; i < nitems(paths); i++)
        if (access(paths[i], X_OK) == 0)
            bin = paths[i];
    if (bin == NULL) {
        printf("pebble-challtestsrv not installed: skipped\n");
        return 77;
    }
    log_set_level(LOG_LVL_WARN);
    if (start_challtestsrv(bin) != 0) {
        fprintf(stderr, "pebble-challtestsrv did not start\n");
        if (g_child > 0)
            kill(g_child, SIGTERM);
        return 1;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_challtestsrv)};
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    kill(g_child, SIGTERM);
    waitpid(g_child, &st, 0);
    return rc;
}
