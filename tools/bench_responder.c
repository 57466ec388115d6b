/*
 * bench_responder.c: a tiny HTTP/1.1 responder on 127.0.0.1 for the
 * benchmark. It answers http-01 validation requests from the key
 * authorizations the client threads publish (one slot per thread, so no
 * allocation on the hot path), and, under /mdm/devices?serial_number=X, a
 * device record for a mock MDM signal source. One thread serves connections
 * one at a time: validators send one short request each, and a separate
 * process (pebble-challtestsrv) would cost more than it saves.
 */
#include "tools/bench.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define TOKEN_MAX 128
#define KEYAUTH_MAX 256
#define REQ_MAX 4096

struct slot {
    char token[TOKEN_MAX];
    char keyauth[KEYAUTH_MAX];
};

struct bench_responder {
    int fd;
    int port;
    pthread_t thread;
    atomic_bool stop;
    atomic_ulong hits;
    pthread_mutex_t lock; /* guards slots */
    struct slot slots[BENCH_MAX_CLIENTS];
};

static void send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

static void reply(int fd, int status, const char *ctype, const char *body)
{
    char *msg = xasprintf("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                          "Connection: close\r\n\r\n%s",
                          status, status == 200 ? "OK" : "Not Found", ctype, strlen(body), body);
    send_all(fd, msg, strlen(msg));
    free(msg);
}

/* Key authorization for token, copied out under the lock; "" when unknown. */
static void lookup(struct bench_responder *r, const char *token, size_t len, char *out)
{
    out[0] = '\0';
    if (len == 0 || len >= TOKEN_MAX)
        return;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < BENCH_MAX_CLIENTS; i++) {
        if (strncmp(r->slots[i].token, token, len) == 0 && r->slots[i].token[len] == '\0') {
            memcpy(out, r->slots[i].keyauth, KEYAUTH_MAX);
            break;
        }
    }
    pthread_mutex_unlock(&r->lock);
}

/* Answers the request line in req (NUL-terminated). */
static void serve(struct bench_responder *r, int fd, const char *req)
{
    static const char chal[] = "GET /.well-known/acme-challenge/";
    static const char mdm[] = "GET /mdm/devices?serial_number=";
    char keyauth[KEYAUTH_MAX];
    const char *end = strpbrk(req, " \r\n");
    if (strncmp(req, chal, sizeof(chal) - 1) == 0) {
        const char *tok = req + sizeof(chal) - 1;
        end = strpbrk(tok, " \r\n");
        lookup(r, tok, end ? (size_t)(end - tok) : 0, keyauth);
        atomic_fetch_add(&r->hits, 1);
        reply(fd, keyauth[0] ? 200 : 404, "application/octet-stream", keyauth);
        return;
    }
    if (strncmp(req, mdm, sizeof(mdm) - 1) == 0) {
        /* Serial numbers are alphanumeric, so no URL decoding is needed. */
        const char *ser = req + sizeof(mdm) - 1;
        end = strpbrk(ser, " &\r\n");
        int n = end ? (int)(end - ser) : 0;
        char *body = xasprintf("[{\"serial_number\":\"%.*s\",\"mdm_enabled\":true,"
                               "\"blueprint_name\":\"Bench Macs\"}]",
                               n > 64 ? 64 : n, ser);
        atomic_fetch_add(&r->hits, 1);
        reply(fd, 200, "application/json", body);
        free(body);
        return;
    }
    reply(fd, 404, "text/plain", "");
}

/* Reads until the end of the headers (validators send no body), then answers. */
static void handle(struct bench_responder *r, int fd)
{
    char req[REQ_MAX];
    size_t len = 0;
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (len < sizeof(req) - 1) {
        ssize_t n = recv(fd, req + len, sizeof(req) - 1 - len, 0);
        if (n <= 0)
            return;
        len += (size_t)n;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL)
            break;
    }
    serve(r, fd, req);
}

static void *loop(void *arg)
{
    struct bench_responder *r = arg;
    while (!atomic_load(&r->stop)) {
        struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
        /* Wake up now and then to notice stop. */
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        int c = accept(r->fd, NULL, NULL);
        if (c < 0)
            continue;
        handle(r, c);
        close(c);
    }
    return NULL;
}

struct bench_responder *bench_responder_start(int port, char err[ERR_LEN])
{
    struct bench_responder *r = xcalloc(1, sizeof(*r));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t salen = sizeof(sa);
    int one = 1;
    pthread_mutex_init(&r->lock, NULL);
    r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r->fd < 0) {
        snprintf(err, ERR_LEN, "socket: %s", strerror(errno));
        goto err;
    }
    setsockopt(r->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(r->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(r->fd, 256) != 0 ||
        getsockname(r->fd, (struct sockaddr *)&sa, &salen) != 0) {
        snprintf(err, ERR_LEN, "responder on 127.0.0.1:%d: %s", port, strerror(errno));
        goto err;
    }
    r->port = ntohs(sa.sin_port);
    if (pthread_create(&r->thread, NULL, loop, r) != 0) {
        snprintf(err, ERR_LEN, "pthread_create failed");
        goto err;
    }
    return r;
err:
    if (r->fd >= 0)
        close(r->fd);
    pthread_mutex_destroy(&r->lock);
    free(r);
    return NULL;
}

int bench_responder_port(const struct bench_responder *r)
{
    return r->port;
}

void bench_responder_set(struct bench_responder *r, int slot, const char *token,
                         const char *keyauth)
{
    if (slot < 0 || slot >= BENCH_MAX_CLIENTS)
        return;
    pthread_mutex_lock(&r->lock);
    snprintf(r->slots[slot].token, TOKEN_MAX, "%s", token);
    snprintf(r->slots[slot].keyauth, KEYAUTH_MAX, "%s", keyauth);
    pthread_mutex_unlock(&r->lock);
}

unsigned long bench_responder_hits(const struct bench_responder *r)
{
    return atomic_load(&r->hits);
}

void bench_responder_stop(struct bench_responder *r)
{
    if (r == NULL)
        return;
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    close(r->fd);
    pthread_mutex_destroy(&r->lock);
    free(r);
}
