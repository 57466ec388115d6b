/*
 * The HTTPS plane inside server/: event loops with evhttp over TLS, the
 * worker pool that runs blocking requests, per-address connection limits and
 * the access log. It knows nothing of ACME: the request handler is injected
 * (acme_is_fast/acme_handle in the binary, stubs in the unit tests), which is
 * why it only borrows the value types of acme/acme.h.
 */
#ifndef ACMESRV_SRV_PLANE_H
#define ACMESRV_SRV_PLANE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/common.h"

struct acme_request;
struct acme_response;
struct ssl_ctx_st;

/* ---- worker pool (srv_pool.c) ---- */

typedef void srv_job_fn(void *arg);
struct srv_pool;

/* Starts nthreads (>= 1) threads sharing one queue of at most max_queued jobs. */
struct srv_pool *srv_pool_new(int nthreads, size_t max_queued, char err[ERR_LEN]);
/*
 * Queues fn(arg) for a pool thread. 0 queued; -1 when max_queued jobs wait
 * already (the caller answers 503). force ignores the bound: for work that
 * must not be lost (validation results). Thread-safe.
 */
int srv_pool_submit(struct srv_pool *p, srv_job_fn *fn, void *arg, bool force);
/* Jobs queued and not yet started (for tests and metrics). */
size_t srv_pool_queued(struct srv_pool *p);
/* Threads the pool runs (fixed after srv_pool_new). */
int srv_pool_threads(const struct srv_pool *p);
/* Runs every queued job to completion, then joins the threads. NULL-safe. */
void srv_pool_free(struct srv_pool *p);

/* ---- connections per client address (srv_connlimit.c) ---- */

struct srv_connlimit;

/* max_per_ip <= 0 means unlimited (still counted). */
struct srv_connlimit *srv_connlimit_new(int max_per_ip);
/* Counts one more connection from ip; false (nothing counted) when at the limit. */
bool srv_connlimit_acquire(struct srv_connlimit *cl, const char *ip);
/* Undoes one successful acquire. */
void srv_connlimit_release(struct srv_connlimit *cl, const char *ip);
/* Open connections counted for ip. */
int srv_connlimit_count(struct srv_connlimit *cl, const char *ip);
void srv_connlimit_free(struct srv_connlimit *cl);

/* ---- TLS (srv_tls.c) ---- */

/*
 * A server SSL_CTX (TLS 1.2+, TLS 1.2 limited to ECDHE with AEAD suites,
 * server cipher preference, ALPN http/1.1 only) from a PEM chain and a PEM
 * key that must not be readable by group or others.
 * NULL with err set. Free with SSL_CTX_free.
 */
struct ssl_ctx_st *srv_tls_ctx_new(const char *cert_path, const char *key_path,
                                   char err[ERR_LEN]);

/* ---- the HTTP plane (srv_http.c, srv_reply.c) ---- */

/* True when req may be answered on the event loop (never blocks). */
typedef bool srv_is_fast_fn(void *arg, const struct acme_request *req);
/* Fills resp for req; may block when is_fast said false (runs on a pool thread). */
/* Fills resp with a problem document for req (status, short ACME type, detail). */
typedef void srv_problem_fn(void *arg, const struct acme_request *req, int status,
                            const char *type, const char *detail, struct acme_response *resp);
typedef void srv_handle_fn(void *arg, const struct acme_request *req,
                           struct acme_response *resp);

/* Bodies up to this many times max_body are read and answered with a 413 problem. */
#define SRV_BODY_SLACK 4

struct srv_http_opts {
    const char *host;       /* bind address, e.g. "127.0.0.1" or "0.0.0.0" */
    int port;               /* 0 = ephemeral; srv_http_port() tells the real one */
    int nloops;             /* event-loop threads, >= 1 */
    const char *tls_cert;   /* PEM chain */
    const char *tls_key;    /* PEM key, mode 0600 */
    size_t max_body;        /* request body limit (bytes) */
    size_t max_headers;     /* request header block limit (bytes) */
    int read_timeout;       /* seconds for a connection's first request to arrive whole */
    int idle_timeout;       /* seconds for each later request (keep-alive); <= 0: read_timeout */
    int max_conns_per_ip;   /* <= 0 = unlimited */
    const char *access_log; /* file to append to; NULL = stderr */
    struct srv_pool *pool;  /* borrowed; runs the requests is_fast refuses */
    srv_is_fast_fn *is_fast;
    srv_handle_fn *handle;
    srv_problem_fn *problem; /* NULL: the plane writes a bare problem document */
    void *handler_arg;
};

struct srv_http;

/*
 * Binds every loop's socket (SO_REUSEPORT, the first one decides an
 * ephemeral port) and loads TLS; serves nothing until srv_http_start.
 * Strings in o are copied. NULL with err set.
 */
struct srv_http *srv_http_new(const struct srv_http_opts *o, char err[ERR_LEN]);
/* The bound port. */
int srv_http_port(const struct srv_http *h);
/* Starts the loop threads. 0/-1. */
int srv_http_start(struct srv_http *h, char err[ERR_LEN]);
/* Closes the listening sockets; open connections get "Connection: close". */
void srv_http_stop_accepting(struct srv_http *h);
/* Requests handed to the pool and not answered yet. */
size_t srv_http_inflight(struct srv_http *h);
/* Waits up to timeout_ms for srv_http_inflight() to reach 0; true when it did. */
bool srv_http_wait_idle(struct srv_http *h, int timeout_ms);
/* Stops and joins the loop threads; replies arriving later are kept for srv_http_free. */
void srv_http_stop(struct srv_http *h);
/*
 * Frees everything (stopping first if needed). Call after the pool has been
 * freed, so no pool thread still holds one of our requests. NULL-safe.
 */
void srv_http_free(struct srv_http *h);

#endif
