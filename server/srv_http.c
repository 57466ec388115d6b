/*
 * srv_http.c: the HTTPS plane's skeleton. N event loops, each a thread with
 * its own event_base, evhttp and SO_REUSEPORT listening socket (the kernel
 * spreads connections); TLS per connection through bufferevent_openssl. A
 * loop is only ever touched by its own thread; other threads talk to it
 * through its mailbox (mutex + event_active on a user event). Request
 * handling itself is in srv_reply.c.
 */
#include "server/srv_http_int.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <openssl/ssl.h>

#define LISTEN_BACKLOG 1024

static pthread_once_t libevent_once = PTHREAD_ONCE_INIT;

/*
 * The whole-request deadline. evhttp's timeout restarts at every read, so a
 * client sending one byte per second would hold its connection forever. Each
 * connection gets a timer: armed with the read timeout at accept, cleared when
 * a request has been read, re-armed with the idle (keep-alive) timeout when its
 * answer is sent, so the next request must have arrived whole by then. When it
 * fires the socket is shut down and evhttp sees EOF and frees the connection
 * the usual way. The timer lives in the connection's SSL ex_data, so it is
 * freed with the SSL.
 */
struct srv_deadline {
    struct event *timer;
    struct bufferevent *bev;
    struct timeval read_tv, idle_tv;
};
static int deadline_idx = -1;

static void deadline_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                          void *argp)
{
    struct srv_deadline *d = ptr;
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    if (d != NULL) {
        event_free(d->timer);
        free(d);
    }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct srv_deadline *d = arg;
    evutil_socket_t s = bufferevent_getfd(d->bev);
    (void)fd, (void)what;
    if (s >= 0)
        shutdown(s, SHUT_RDWR);
}

void srv_deadline_set(struct ssl_st *ssl, enum srv_deadline_phase phase)
{
    struct srv_deadline *d = ssl != NULL ? SSL_get_ex_data(ssl, deadline_idx) : NULL;
    if (d == NULL)
        return;
    if (phase == SRV_DEADLINE_OFF)
        evtimer_del(d->timer);
    else
        evtimer_add(d->timer, phase == SRV_DEADLINE_IDLE ? &d->idle_tv : &d->read_tv);
}

static void libevent_init(void)
{
    /* loops are poked from pool threads: bases need their locks */
    evthread_use_pthreads();
    /* a peer closing mid-write must be an error return, not a signal */
    signal(SIGPIPE, SIG_IGN);
    deadline_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, deadline_free);
}

/* A nonblocking listening socket on host:port with SO_REUSEPORT. -1 with err. */
static int bind_socket(const char *host, int port, char err[ERR_LEN])
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[16];
    int fd = -1, one = 1, rc;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, ERR_LEN, "listen %s:%d: %s", host, port, gai_strerror(rc));
        goto out;
    }
    fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, ERR_LEN, "socket: %s", strerror(errno));
        goto out;
    }
    /*
     * TCP_NODELAY is inherited by accepted sockets on Linux. Without it a
     * response written after its headers waits ~40 ms for the client's
     * delayed ACK (Nagle), which throttles every keep-alive client.
     */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(err, ERR_LEN, "listen %s:%d: %s", host, port, strerror(errno));
        close(fd);
        fd = -1;
    }
out:
    if (res != NULL)
        freeaddrinfo(res);
    return fd;
}

static int socket_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* evhttp asks for each accepted connection's bufferevent: TLS, server side. */
static struct bufferevent *bevcb(struct event_base *base, void *arg)
{
    struct srv_http *h = arg;
    SSL *ssl = SSL_new(h->ssl);
    struct bufferevent *bev;

    if (ssl == NULL) {
        log_err("server", "SSL_new failed");
        return NULL;
    }
    bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        log_err("server", "bufferevent_openssl_socket_new failed");
        return NULL;
    }
    /* most clients close without close_notify; that is not an error for us */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    struct srv_deadline *d = xcalloc(1, sizeof(*d));
    d->bev = bev;
    d->read_tv.tv_sec = h->o.read_timeout > 0 ? h->o.read_timeout : 10;
    d->idle_tv.tv_sec = h->o.idle_timeout > 0 ? h->o.idle_timeout : d->read_tv.tv_sec;
    d->timer = evtimer_new(base, on_deadline, d);
    if (d->timer == NULL || !SSL_set_ex_data(ssl, deadline_idx, d)) {
        if (d->timer != NULL)
            event_free(d->timer);
        free(d);
        log_err("server", "cannot arm the request deadline");
        bufferevent_free(bev);
        return NULL;
    }
    evtimer_add(d->timer, &d->read_tv);
    return bev;
}

/* The mailbox: pool answers to send, and orders from the main thread. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct srv_loop *loop = arg;
    struct srv_req *list;
    bool unbind, stop;

    pthread_mutex_lock(&loop->mu);
    list = loop->done_head;
    loop->done_head = loop->done_tail = NULL;
    unbind = loop->want_unbind;
    stop = loop->want_stop;
    pthread_mutex_unlock(&loop->mu);
    while (list != NULL) {
        struct srv_req *next = list->next;
        srv_reply_deliver(list);
        list = next;
    }
    if (unbind && loop->bound != NULL) {
        evhttp_del_accept_socket(loop->http, loop->bound);
        loop->bound = NULL;
    }
    if (stop)
        event_base_loopbreak(loop->base);
}

static void *loop_main(void *arg)
{
    struct srv_loop *loop = arg;
    /* keep running with no connection and no listener: the mailbox may still get answers */
    event_base_loop(loop->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/*
 * An event base whose epoll backend batches interest changes: evhttp turns
 * reading off and writing on for every answer and back for the next request,
 * four epoll_ctl calls per request that mostly cancel out. With the change
 * list they are applied once per loop iteration, net. (No fd is ever dup'ed
 * into the loop, the case the changelist mishandles.)
 */
static struct event_base *base_new(void)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base = NULL;
    if (cfg == NULL)
        return NULL;
    if (event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) == 0)
        base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

static int loop_init(struct srv_http *h, struct srv_loop *loop, char err[ERR_LEN])
{
    const struct srv_http_opts *o = &h->o;
    const ev_uint16_t all = EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                            EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH;

    loop->h = h;
    loop->base = base_new();
    if (loop->base == NULL || srv_alog_init(loop) != 0) {
        snprintf(err, ERR_LEN, "event_base_new failed");
        return -1;
    }
    loop->http = evhttp_new(loop->base);
    loop->wake = event_new(loop->base, -1, EV_PERSIST, on_wake, loop);
    if (loop->http == NULL || loop->wake == NULL) {
        snprintf(err, ERR_LEN, "evhttp_new failed");
        return -1;
    }
    /*
     * libevent drops an oversized request without a word (the client sees a
     * reset). Let bodies up to SRV_BODY_SLACK times the limit arrive so the
     * plane can answer them with a 413 problem document; beyond that the
     * connection is cut, which bounds the memory one request can take.
     */
    evhttp_set_max_body_size(loop->http, (ev_ssize_t)(o->max_body * SRV_BODY_SLACK));
    evhttp_set_max_headers_size(loop->http, (ev_ssize_t)o->max_headers);
    /* evhttp's own per-read timeout must not cut a keep-alive wait short */
    int read_s = o->read_timeout > 0 ? o->read_timeout : 10;
    evhttp_set_timeout(loop->http, o->idle_timeout > read_s ? o->idle_timeout : read_s);
    /* every method reaches us, so the refusal is a problem document (405) */
    evhttp_set_allowed_methods(loop->http, all);
    evhttp_set_default_content_type(loop->http, NULL);
    evhttp_set_bevcb(loop->http, bevcb, h);
    evhttp_set_gencb(loop->http, srv_reply_on_request, loop);
    loop->bound = evhttp_accept_socket_with_handle(loop->http, loop->fd);
    if (loop->bound == NULL) {
        snprintf(err, ERR_LEN, "evhttp_accept_socket_with_handle failed");
        return -1;
    }
    loop->fd = -1; /* evhttp owns and closes it now */
    return 0;
}

static void opts_copy(struct srv_http_opts *dst, const struct srv_http_opts *src)
{
    *dst = *src;
    dst->host = xstrdup(src->host != NULL ? src->host : "127.0.0.1");
    dst->tls_cert = src->tls_cert != NULL ? xstrdup(src->tls_cert) : NULL;
    dst->tls_key = src->tls_key != NULL ? xstrdup(src->tls_key) : NULL;
    dst->access_log = src->access_log != NULL ? xstrdup(src->access_log) : NULL;
    if (dst->nloops < 1)
        dst->nloops = 1;
}

struct srv_http *srv_http_new(const struct srv_http_opts *o, char err[ERR_LEN])
{
    struct srv_http *h = xcalloc(1, sizeof(*h));

    pthread_once(&libevent_once, libevent_init);
    opts_copy(&h->o, o);
    pthread_mutex_init(&h->alog_mu, NULL);
    atomic_init(&h->inflight, 0);
    atomic_init(&h->closing, false);
    h->cl = srv_connlimit_new(h->o.max_conns_per_ip);
    h->ssl = srv_tls_ctx_new(h->o.tls_cert, h->o.tls_key, err);
    if (h->ssl == NULL)
        goto fail;
    if (h->o.access_log != NULL) {
        h->alog = fopen(h->o.access_log, "ae");
        if (h->alog == NULL) {
            snprintf(err, ERR_LEN, "access log %s: %s", h->o.access_log, strerror(errno));
            goto fail;
        }
    }
    h->nloops = h->o.nloops;
    h->loops = xcalloc((size_t)h->nloops, sizeof(*h->loops));
    for (int i = 0; i < h->nloops; i++) {
        h->loops[i].fd = -1;
        pthread_mutex_init(&h->loops[i].mu, NULL);
    }
    h->port = h->o.port;
    for (int i = 0; i < h->nloops; i++) {
        /* the first bind settles an ephemeral port; the others share it */
        h->loops[i].idx = i;
        h->loops[i].fd = bind_socket(h->o.host, h->port, err);
        if (h->loops[i].fd < 0)
            goto fail;
        if (i == 0)
            h->port = socket_port(h->loops[0].fd);
        if (loop_init(h, &h->loops[i], err) != 0)
            goto fail;
    }
    return h;
fail:
    h->stopped = true;
    srv_http_free(h);
    return NULL;
}

int srv_http_port(const struct srv_http *h)
{
    return h->port;
}

int srv_http_start(struct srv_http *h, char err[ERR_LEN])
{
    for (int i = 0; i < h->nloops; i++) {
        int rc = pthread_create(&h->loops[i].thread, NULL, loop_main, &h->loops[i]);
        if (rc != 0) {
            snprintf(err, ERR_LEN, "pthread_create: %s", strerror(rc));
            return -1;
        }
        h->loops[i].started = true;
    }
    h->started = true;
    return 0;
}

static void loop_post(struct srv_loop *loop, bool unbind, bool stop)
{
    pthread_mutex_lock(&loop->mu);
    loop->want_unbind |= unbind;
    loop->want_stop |= stop;
    pthread_mutex_unlock(&loop->mu);
    event_active(loop->wake, EV_READ, 0);
}

void srv_http_stop_accepting(struct srv_http *h)
{
    atomic_store(&h->closing, true);
    for (int i = 0; i < h->nloops; i++) {
        if (h->loops[i].started)
            loop_post(&h->loops[i], true, false);
    }
}

size_t srv_http_inflight(struct srv_http *h)
{
    return atomic_load(&h->inflight);
}

bool srv_http_wait_idle(struct srv_http *h, int timeout_ms)
{
    int64_t deadline = clk_mono_ms() + timeout_ms;
    const struct timespec nap = {0, 20 * 1000 * 1000};

    while (atomic_load(&h->inflight) > 0) {
        if (clk_mono_ms() >= deadline)
            return false;
        nanosleep(&nap, NULL);
    }
    return true;
}

void srv_http_stop(struct srv_http *h)
{
    if (h->stopped)
        return;
    for (int i = 0; i < h->nloops; i++) {
        if (h->loops[i].started)
            loop_post(&h->loops[i], true, true);
    }
    for (int i = 0; i < h->nloops; i++) {
        if (h->loops[i].started)
            pthread_join(h->loops[i].thread, NULL);
        h->loops[i].started = false;
    }
    h->stopped = true;
}

static void loop_free(struct srv_loop *loop)
{
    struct srv_req *list;

    /* connections go first: their close callbacks mark pending requests gone */
    if (loop->http != NULL)
        evhttp_free(loop->http);
    /*
     * Freeing a TLS bufferevent only schedules its finalizer on the (stopped)
     * loop; run the loop once more so those finalizers free the SSL objects.
     */
    if (loop->base != NULL)
        event_base_loop(loop->base, EVLOOP_NONBLOCK);
    list = loop->done_head;
    loop->done_head = loop->done_tail = NULL;
    while (list != NULL) {
        struct srv_req *next = list->next;
        srv_reply_deliver(list);
        list = next;
    }
    /* after the last answers above: their lines are written too */
    srv_alog_free(loop);
    if (loop->wake != NULL)
        event_free(loop->wake);
    if (loop->base != NULL)
        event_base_free(loop->base);
    if (loop->fd >= 0)
        close(loop->fd);
    pthread_mutex_destroy(&loop->mu);
}

void srv_http_free(struct srv_http *h)
{
    if (h == NULL)
        return;
    srv_http_stop(h);
    for (int i = 0; h->loops != NULL && i < h->nloops; i++)
        loop_free(&h->loops[i]);
    free(h->loops);
    SSL_CTX_free(h->ssl);
    srv_connlimit_free(h->cl);
    if (h->alog != NULL)
        fclose(h->alog);
    pthread_mutex_destroy(&h->alog_mu);
    free((char *)h->o.host);
    free((char *)h->o.tls_cert);
    free((char *)h->o.tls_key);
    free((char *)h->o.access_log);
    free(h);
}
