/*
 * Private to srv_http.c (loops, sockets, lifecycle) and srv_reply.c (one
 * request from evhttp to the handler and back). Not for other modules.
 *
 * Threads: each struct srv_loop is touched only by its own loop thread,
 * except `mu`-protected members, which pool threads and the main thread use
 * to hand work to the loop (then event_active on `wake`).
 */
#ifndef ACMESRV_SRV_HTTP_INT_H
#define ACMESRV_SRV_HTTP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "acme/acme.h"
#include "server/srv_plane.h"

struct event_base;
struct event;
struct evhttp;
struct evhttp_bound_socket;
struct evhttp_request;

#define SRV_PEER_MAX 64   /* longest peer address text */
#define SRV_METHOD_MAX 16 /* longest method name we copy */
#define SRV_ALOG_BUF 32768 /* access log bytes a loop holds before writing them */
#define SRV_ALOG_FLUSH_MS 100 /* and the longest it holds a line */

struct srv_req;

struct srv_loop {
    struct srv_http *h;
    int idx;
    pthread_t thread;
    bool started;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound; /* NULL once no longer accepting */
    int fd;                            /* listening socket until evhttp owns it */
    struct event *wake;                /* persistent user event: "look at the mailbox" */
    /*
     * Access log lines not yet written: one write(2) per SRV_ALOG_BUF bytes or
     * SRV_ALOG_FLUSH_MS instead of one per request. Loop thread only (and the
     * thread freeing the plane once the loop stopped).
     */
    char *alog_buf;
    size_t alog_len;
    struct event *alog_timer;    /* armed while alog_len > 0 */
    int64_t alog_sec;            /* the second alog_ts shows */
    char alog_ts[32];            /* RFC 3339 time, formatted once per second */
    /* mailbox, under mu */
    pthread_mutex_t mu;
    struct srv_req *done_head, *done_tail; /* answered by the pool, to send */
    bool want_unbind;
    bool want_stop;
};

struct srv_http {
    struct srv_http_opts o; /* strings owned (copied) */
    struct ssl_ctx_st *ssl;
    struct srv_connlimit *cl;
    FILE *alog; /* NULL = stderr */
    pthread_mutex_t alog_mu;
    struct srv_loop *loops;
    int nloops;
    int port;
    bool started;
    bool stopped;
    atomic_size_t inflight;
    atomic_bool closing; /* answers carry "Connection: close" */
};

/*
 * One client connection, made at its first request. Freed in the evhttp
 * close callback, which is also how a pending request learns its peer left.
 */
struct srv_conn {
    struct srv_http *h;
    struct srv_req *pending; /* request the pool is working on, or NULL */
    char ip[SRV_PEER_MAX];
    bool counted; /* holds a srv_connlimit slot */
};

/* One request; everything the handler sees is a copy owned here. */
struct srv_req {
    struct srv_loop *loop;
    struct evhttp_request *req; /* NULL once the connection went away */
    struct srv_conn *conn;      /* NULL once the connection went away */
    int64_t t0;                 /* clk_mono_ms at arrival */
    bool head;                  /* HEAD: no body is sent */
    char method[SRV_METHOD_MAX];
    char peer[SRV_PEER_MAX];
    char *path;
    char *query; /* NULL when the URI has none */
    char *content_type;
    unsigned char *body;
    struct acme_request areq;
    struct acme_response resp;
    struct srv_req *next; /* mailbox link */
};

/* srv_http.c */
struct ssl_st;
enum srv_deadline_phase {
    SRV_DEADLINE_OFF,  /* a request is being answered */
    SRV_DEADLINE_READ, /* the first request must arrive within read_timeout */
    SRV_DEADLINE_IDLE, /* after an answer, the next one within idle_timeout */
};
/*
 * Arms (again, from now) or clears the whole-request deadline of the connection
 * whose SSL this is: when it expires the connection is shut down. Loop thread only.
 */
void srv_deadline_set(struct ssl_st *ssl, enum srv_deadline_phase phase);

/* srv_reply.c */
/* srv_alog.c */
/* Adds r's access log line to its loop's buffer. Loop thread, or after it stopped. */
void srv_alog_line(struct srv_loop *loop, const struct srv_req *r, int status, size_t bytes,
                   const char *note);
/* Writes loop's pending lines (under h->alog_mu). Loop thread, or after it stopped. */
void srv_alog_flush(struct srv_loop *loop);
/* The loop's buffer and flush timer, on loop->base. 0/-1. */
int srv_alog_init(struct srv_loop *loop);
/* Flushes, then frees the buffer and timer. Once the loop stopped. Idempotent. */
void srv_alog_free(struct srv_loop *loop);
/* The evhttp generic callback (arg = struct srv_loop *). */
void srv_reply_on_request(struct evhttp_request *req, void *arg);
/* Sends (or drops, when its peer left) an answer the pool finished, then frees it. */
void srv_reply_deliver(struct srv_req *r);
/* Frees a request that will never be answered (shutdown). NULL-safe. */
void srv_req_free(struct srv_req *r);

#endif
