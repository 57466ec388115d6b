/*
 * bench_light.c: the light client for the nonce and directory workloads.
 * One thread drives every connection (keep-alive HTTPS, one OpenSSL session
 * each) through epoll and non-blocking SSL_read/SSL_write, with one request
 * in flight per connection (a closed loop, as the threaded client). The
 * threaded libcurl client costs about as much CPU per request as the server
 * it measures, and on a machine it shares with that server the ratio of two
 * servers' requests/s is then mostly the client's; this one costs a few
 * microseconds per request, so the figures are the servers'. HTTP parsing is
 * the least that still checks every answer: status line, headers to the blank
 * line, Content-Length, Replay-Nonce, Connection: close.
 */
#include "tools/bench.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tools/acmec.h"

#define LIGHT_BUF 16384          /* largest response accepted (the directory is < 1 KiB) */
#define LIGHT_SETUP_US 10000000  /* handshakes before the clock starts */
#define LIGHT_DRAIN_US 5000000   /* answers still in flight at the deadline */
#define LIGHT_MAX_FAILS 10       /* consecutive failures before a connection is given up */

enum lc_state { LC_HANDSHAKE, LC_IDLE, LC_WRITING, LC_READING, LC_DEAD };

struct lconn {
    int fd;
    SSL *ssl;
    enum lc_state st;
    uint32_t events; /* what epoll watches for this fd */
    int fails;       /* consecutive failed requests or connections */
    int64_t t0;      /* when the current request was first written */
    size_t len;      /* response bytes in buf */
    char buf[LIGHT_BUF + 1]; /* NUL-terminated after len */
};

/* One parsed response. */
struct lresp {
    int status;
    size_t head_len, body_len;
    bool has_nonce, close;
};

struct light {
    const struct bench_opts *o;
    SSL_CTX *ctx;
    int ep, port;
    bool head;      /* nonce: HEAD, no body in the answer */
    bool running;   /* clock started: idle connections send */
    bool stopping;  /* deadline passed: no new requests */
    char *req;      /* the request, written verbatim every time */
    size_t req_len;
    struct lconn *c;
    int n;
    long started, errors;
    uint32_t *lat;  /* microseconds of each successful request */
    size_t nlat, cap;
    char first_err[ERR_LEN];
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void note_err(struct light *l, const char *what, const char *detail)
{
    l->errors++;
    if (l->first_err[0] == '\0')
        snprintf(l->first_err, ERR_LEN, "%.40s%s%.200s", what, detail[0] ? ": " : "", detail);
}

/* "https://127.0.0.1:PORT/path" into port and path (borrowed from url). 0/-1. */
static int parse_url(const char *url, int *port, const char **path)
{
    static const char pfx[] = "https://127.0.0.1:";
    char num[8];
    long long v;
    const char *p, *slash;
    if (strncmp(url, pfx, sizeof(pfx) - 1) != 0)
        return -1;
    p = url + sizeof(pfx) - 1;
    slash = strchr(p, '/');
    if (slash == NULL || slash == p || (size_t)(slash - p) >= sizeof(num))
        return -1;
    memcpy(num, p, (size_t)(slash - p));
    num[slash - p] = '\0';
    if (str_to_ll(num, 1, 65535, &v) != 0)
        return -1;
    *port = (int)v;
    *path = slash;
    return 0;
}

/* The target URL (newNonce comes from the directory, fetched once before the clock). */
static int light_request(struct light *l, char err[ERR_LEN])
{
    const struct bench_opts *o = l->o;
    struct acmec *client = NULL;
    const char *url = o->directory, *path;
    int rc = -1, dport;
    if (parse_url(o->directory, &dport, &path) != 0) {
        snprintf(err, ERR_LEN, "directory must be https://127.0.0.1:PORT/...");
        goto out;
    }
    if (l->head) {
        client = acmec_new(o->directory, o->trust, err);
        if (client == NULL)
            goto out;
        url = acmec_dir(client, "newNonce");
    }
    if (url == NULL || parse_url(url, &l->port, &path) != 0 || l->port != dport) {
        snprintf(err, ERR_LEN, "newNonce is not on the directory's 127.0.0.1 port");
        goto out;
    }
    l->req = xasprintf("%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: attesta-bench\r\n"
                       "Accept: */*\r\n\r\n",
                       l->head ? "HEAD" : "GET", path, l->port);
    l->req_len = strlen(l->req);
    rc = 0;
out:
    acmec_free(client);
    return rc;
}

/* Peer verification against the trust file, as the threaded client does. */
static SSL_CTX *light_ctx_new(const char *trust, char err[ERR_LEN])
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || trust == NULL || SSL_CTX_load_verify_locations(ctx, trust, NULL) != 1) {
        snprintf(err, ERR_LEN, "TLS client setup failed (trust %s)", trust ? trust : "missing");
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* a whole record per read(2) instead of header and body separately */
    SSL_CTX_set_read_ahead(ctx, 1);
    return ctx;
}

static int watch(struct light *l, struct lconn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (c->events == events)
        return 0;
    c->events = events;
    return epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_close(struct lconn *c)
{
    SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->events = 0;
}

/* TCP to 127.0.0.1 (loopback: connect returns at once), then a TLS session in progress. */
static int conn_open(struct light *l, struct lconn *c, char err[ERR_LEN])
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)l->port)};
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    int one = 1;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        fcntl(c->fd, F_SETFL, O_NONBLOCK) != 0) {
        snprintf(err, ERR_LEN, "connect 127.0.0.1:%d: %s", l->port, strerror(errno));
        goto fail;
    }
    c->ssl = SSL_new(l->ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 ||
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), "127.0.0.1") != 1) {
        snprintf(err, ERR_LEN, "SSL_new failed");
        goto fail;
    }
    SSL_set_connect_state(c->ssl);
    c->events = EPOLLOUT;
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        snprintf(err, ERR_LEN, "epoll_ctl: %s", strerror(errno));
        goto fail;
    }
    c->st = LC_HANDSHAKE;
    c->len = 0;
    return 0;
fail:
    conn_close(c);
    c->st = LC_DEAD;
    ERR_clear_error();
    return -1;
}

/* A failed request or connection: counted, then a fresh connection (or give up). */
static void conn_fail(struct light *l, struct lconn *c, const char *what, const char *detail)
{
    char err[ERR_LEN];
    note_err(l, what, detail);
    ERR_clear_error();
    conn_close(c);
    c->st = LC_DEAD;
    if (++c->fails >= LIGHT_MAX_FAILS || l->stopping)
        return;
    if (conn_open(l, c, err) != 0)
        note_err(l, "reconnect", err);
}

/* What an SSL call that did not complete wants: 0 = wait (epoll set), -1 = failed. */
static int ssl_wait(struct light *l, struct lconn *c, int ret, char detail[ERR_LEN])
{
    int e = SSL_get_error(c->ssl, ret);
    unsigned long code;
    if (e == SSL_ERROR_WANT_READ)
        return watch(l, c, EPOLLIN);
    if (e == SSL_ERROR_WANT_WRITE)
        return watch(l, c, EPOLLOUT);
    code = ERR_peek_error();
    if (SSL_get_verify_result(c->ssl) != X509_V_OK)
        snprintf(detail, ERR_LEN, "certificate: %s",
                 X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
    else if (code != 0)
        ERR_error_string_n(code, detail, ERR_LEN);
    else if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0))
        snprintf(detail, ERR_LEN, "connection closed by the server");
    else
        snprintf(detail, ERR_LEN, "TLS error %d (%s)", e, strerror(errno));
    return -1;
}

static void conn_send(struct light *l, struct lconn *c);

static void conn_handshake(struct light *l, struct lconn *c)
{
    char detail[ERR_LEN];
    int r = SSL_connect(c->ssl);
    if (r == 1) {
        c->st = LC_IDLE;
        if (l->running)
            conn_send(l, c);
        return;
    }
    if (ssl_wait(l, c, r, detail) != 0)
        conn_fail(l, c, "handshake", detail);
}

/* Writes the request (again, after WANT_WRITE) unless the run is over. */
static void conn_send(struct light *l, struct lconn *c)
{
    char detail[ERR_LEN];
    int r;
    if (c->st == LC_IDLE) {
        if (l->stopping || (l->o->count > 0 && l->started >= l->o->count))
            return;
        l->started++;
        c->t0 = now_us();
        c->len = 0;
        c->st = LC_WRITING;
    }
    /* Without partial writes SSL_write sends all of it or must be repeated as is. */
    r = SSL_write(c->ssl, l->req, (int)l->req_len);
    if (r > 0) {
        c->st = LC_READING;
        if (watch(l, c, EPOLLIN) != 0)
            conn_fail(l, c, "epoll_ctl", strerror(errno));
        return;
    }
    if (ssl_wait(l, c, r, detail) != 0)
        conn_fail(l, c, "write", detail);
}

/* The value of header line p (of length n) when its name is `name` ("x-y:"), else NULL. */
static const char *header_is(const char *p, size_t n, const char *name)
{
    size_t k = strlen(name);
    if (n < k || strncasecmp(p, name, k) != 0)
        return NULL;
    p += k;
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Decimal digits up to the end of the line into *out. 0/-1. */
static int parse_len(const char *v, size_t *out)
{
    size_t n = 0;
    if (*v < '0' || *v > '9')
        return -1;
    for (; *v >= '0' && *v <= '9'; v++) {
        if (n > LIGHT_BUF)
            return -1;
        n = n * 10 + (size_t)(*v - '0');
    }
    *out = n;
    return *v == '\r' || *v == ' ' || *v == '\t' ? 0 : -1;
}

/* One header line p of length n into r. 0, or -1 with detail. */
static int header_line(const char *p, size_t n, struct lresp *r, bool *have_cl,
                       char detail[ERR_LEN])
{
    const char *len = header_is(p, n, "content-length:");
    const char *nonce = header_is(p, n, "replay-nonce:");
    const char *conn = header_is(p, n, "connection:");
    if (len != NULL) {
        *have_cl = true;
        if (parse_len(len, &r->body_len) == 0)
            return 0;
        snprintf(detail, ERR_LEN, "bad Content-Length");
        return -1;
    }
    if (nonce != NULL)
        r->has_nonce = *nonce != '\r';
    if (conn != NULL)
        r->close = strncasecmp(conn, "close", 5) == 0;
    if (header_is(p, n, "transfer-encoding:") != NULL) {
        snprintf(detail, ERR_LEN, "Transfer-Encoding is not supported by the light client");
        return -1;
    }
    return 0;
}

/* Status line and headers up to hend (buf is NUL-terminated) into r. 0, or -1 with detail. */
static int parse_headers(const char *b, const char *hend, struct lresp *r, bool *have_cl,
                         char detail[ERR_LEN])
{
    const char *p = strstr(b, "\r\n") + 2;
    if (strncmp(b, "HTTP/1.", 7) != 0 || b[8] != ' ' || b[9] < '1' || b[9] > '5' ||
        b[10] < '0' || b[10] > '9' || b[11] < '0' || b[11] > '9') {
        snprintf(detail, ERR_LEN, "bad status line");
        return -1;
    }
    r->status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
    /* hend + 2 is the blank line that ends the headers */
    while (p < hend + 2) {
        const char *eol = strstr(p, "\r\n");
        if (header_line(p, (size_t)(eol - p), r, have_cl, detail) != 0)
            return -1;
        p = eol + 2;
    }
    return 0;
}

/* 1 = a whole answer is in c->buf (r filled), 0 = more to read, -1 = malformed (detail). */
static int parse_resp(const struct light *l, const struct lconn *c, struct lresp *r,
                      char detail[ERR_LEN])
{
    const char *hend = strstr(c->buf, "\r\n\r\n");
    bool have_cl = false;
    memset(r, 0, sizeof(*r));
    if (hend == NULL)
        return 0;
    r->head_len = (size_t)(hend - c->buf) + 4;
    if (parse_headers(c->buf, hend, r, &have_cl, detail) != 0)
        return -1;
    /* RFC 9112 6.3: HEAD, 1xx, 204 and 304 answers end with their headers */
    if (l->head || r->status < 200 || r->status == 204 || r->status == 304) {
        r->body_len = 0;
    } else if (!have_cl) {
        snprintf(detail, ERR_LEN, "HTTP %d without Content-Length", r->status);
        return -1;
    }
    if (r->body_len > LIGHT_BUF - r->head_len) {
        snprintf(detail, ERR_LEN, "answer larger than %d bytes", LIGHT_BUF);
        return -1;
    }
    if (c->len < r->head_len + r->body_len)
        return 0;
    if (c->len > r->head_len + r->body_len) {
        snprintf(detail, ERR_LEN, "bytes after the answer (one request was in flight)");
        return -1;
    }
    return 1;
}

/* nonce: 200/204 with a Replay-Nonce; directory: 200 with a JSON object naming newNonce. */
static bool answer_ok(const struct light *l, const struct lconn *c, const struct lresp *r,
                      char detail[ERR_LEN])
{
    cJSON *json;
    bool ok;
    if (l->head) {
        ok = (r->status == 200 || r->status == 204) && r->has_nonce;
        if (!ok)
            snprintf(detail, ERR_LEN, "HTTP %d%s", r->status,
                     r->has_nonce ? "" : " without Replay-Nonce");
        return ok;
    }
    if (r->status != 200) {
        snprintf(detail, ERR_LEN, "HTTP %d", r->status);
        return false;
    }
    json = cJSON_ParseWithLength(c->buf + r->head_len, r->body_len);
    ok = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(json, "newNonce"));
    cJSON_Delete(json);
    if (!ok)
        snprintf(detail, ERR_LEN, "directory body is not JSON with newNonce");
    return ok;
}

/* A whole answer arrived: counted, then the next request on this connection. */
static void conn_done(struct light *l, struct lconn *c, const struct lresp *r)
{
    char detail[ERR_LEN] = "", err[ERR_LEN];
    int64_t dt = now_us() - c->t0;
    if (answer_ok(l, c, r, detail)) {
        if (l->nlat == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 65536;
            l->lat = xrealloc(l->lat, l->cap * sizeof(*l->lat));
        }
        l->lat[l->nlat++] = (uint32_t)(dt > UINT32_MAX ? UINT32_MAX : dt);
        c->fails = 0;
    } else {
        note_err(l, "answer", detail);
    }
    c->st = LC_IDLE;
    if (!r->close) {
        conn_send(l, c);
        return;
    }
    /* the server ends the connection: not an error, but the next request needs a new one */
    conn_close(c);
    c->st = LC_DEAD;
    if (!l->stopping && conn_open(l, c, err) != 0)
        note_err(l, "reconnect", err);
}

static void conn_read(struct light *l, struct lconn *c)
{
    char detail[ERR_LEN];
    struct lresp r;
    for (;;) {
        if (c->len == LIGHT_BUF) {
            conn_fail(l, c, "read", "answer too large");
            return;
        }
        int n = SSL_read(c->ssl, c->buf + c->len, (int)(LIGHT_BUF - c->len));
        if (n <= 0) {
            if (ssl_wait(l, c, n, detail) != 0)
                conn_fail(l, c, "read", detail);
            return;
        }
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
        int pr = parse_resp(l, c, &r, detail);
        if (pr < 0) {
            conn_fail(l, c, "answer", detail);
            return;
        }
        if (pr == 1) {
            conn_done(l, c, &r);
            return;
        }
    }
}

/*
 * Readable while nothing was asked: TLS 1.3 session tickets after the
 * handshake (consumed inside SSL_read), or the server closing the connection.
 */
static void conn_idle_read(struct lconn *c)
{
    char tmp[256];
    int n = SSL_read(c->ssl, tmp, (int)sizeof(tmp));
    if (n <= 0 && SSL_get_error(c->ssl, n) == SSL_ERROR_WANT_READ)
        return;
    ERR_clear_error();
    conn_close(c);
    c->st = LC_DEAD;
}

static void conn_event(struct light *l, struct lconn *c)
{
    switch (c->st) {
    case LC_HANDSHAKE: conn_handshake(l, c); break;
    case LC_WRITING: conn_send(l, c); break;
    case LC_READING: conn_read(l, c); break;
    case LC_IDLE: conn_idle_read(c); break;
    default: break;
    }
}

static bool busy(const struct light *l)
{
    for (int i = 0; i < l->n; i++) {
        enum lc_state st = l->c[i].st;
        if (st == LC_HANDSHAKE || st == LC_WRITING || st == LC_READING)
            return true;
    }
    return false;
}

/* Serves events until no connection has anything in progress or `until` passes. 0/-1. */
static int drive(struct light *l, int64_t until, char err[ERR_LEN])
{
    struct epoll_event evs[64];
    while (busy(l)) {
        int64_t left = until - now_us();
        if (left <= 0)
            return 0;
        int n = epoll_wait(l->ep, evs, (int)nitems(evs), (int)((left + 999) / 1000));
        if (n < 0 && errno != EINTR) {
            snprintf(err, ERR_LEN, "epoll_wait: %s", strerror(errno));
            return -1;
        }
        for (int i = 0; i < n; i++)
            conn_event(l, evs[i].data.ptr);
    }
    return 0;
}

/* Connections and their handshakes, before the clock starts. 0/-1. */
static int light_setup(struct light *l, char err[ERR_LEN])
{
    if (light_request(l, err) != 0)
        return -1;
    l->ctx = light_ctx_new(l->o->trust, err);
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    if (l->ctx == NULL || l->ep < 0) {
        if (l->ep < 0)
            snprintf(err, ERR_LEN, "epoll_create1: %s", strerror(errno));
        return -1;
    }
    l->n = l->o->clients;
    l->c = xcalloc((size_t)l->n, sizeof(*l->c));
    for (int i = 0; i < l->n; i++)
        l->c[i].fd = -1;
    for (int i = 0; i < l->n; i++) {
        if (conn_open(l, &l->c[i], err) != 0)
            return -1;
    }
    if (drive(l, now_us() + LIGHT_SETUP_US, err) != 0)
        return -1;
    for (int i = 0; i < l->n; i++) {
        if (l->c[i].st != LC_IDLE) {
            snprintf(err, ERR_LEN, "connection %d: %.200s", i,
                     l->first_err[0] ? l->first_err : "handshake timed out");
            return -1;
        }
    }
    return 0;
}

int bench_light_run(const struct bench_opts *o, pid_t server_pid, struct bench_result *res,
                    char err[ERR_LEN])
{
    struct light l = {.o = o, .ep = -1, .head = o->workload == BW_NONCE};
    double cpu0, cpu1;
    int64_t t0;
    int rc = -1;
    if (light_setup(&l, err) != 0)
        goto out;
    cpu0 = server_pid > 0 ? bench_proc_cpu_s(server_pid) : -1;
    t0 = now_us();
    l.running = true;
    for (int i = 0; i < l.n; i++)
        conn_send(&l, &l.c[i]);
    if (drive(&l, t0 + (int64_t)(o->duration * 1e6), err) != 0)
        goto out;
    /* as the threaded client: requests under way at the deadline still count */
    l.stopping = true;
    if (drive(&l, now_us() + LIGHT_DRAIN_US, err) != 0)
        goto out;
    res->elapsed_s = (double)(now_us() - t0) / 1e6;
    cpu1 = server_pid > 0 ? bench_proc_cpu_s(server_pid) : -1;
    res->server_cpu_s = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
    res->server_rss_kib = server_pid > 0 ? bench_proc_rss_kib(server_pid) : -1;
    bench_result_summarize(l.lat, l.nlat, l.nlat, res);
    res->errors = l.errors;
    snprintf(res->first_err, ERR_LEN, "%s", l.first_err);
    rc = 0;
out:
    for (int i = 0; l.c != NULL && i < l.n; i++)
        conn_close(&l.c[i]);
    if (l.ep >= 0)
        close(l.ep);
    SSL_CTX_free(l.ctx);
    free(l.c);
    free(l.req);
    free(l.lat);
    return rc;
}
