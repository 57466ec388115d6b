/*
 * srv_reply.c: one HTTP request's trip through the plane. The evhttp callback
 * copies the request into a struct srv_req, answers fast requests on the
 * loop and hands the rest to the pool; the pool thread's answer comes back
 * through the loop's mailbox and is sent here. A request whose connection
 * closed meanwhile is detected through the connection's close callback
 * (which clears srv_req.req), so no reply ever touches a freed evhttp object.
 */
#include "server/srv_http_int.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>

#define PROBLEM_CT "application/problem+json"

static const struct {
    enum evhttp_cmd_type cmd;
    const char *name;
} methods[] = {
    {EVHTTP_REQ_GET, "GET"},         {EVHTTP_REQ_POST, "POST"},
    {EVHTTP_REQ_HEAD, "HEAD"},       {EVHTTP_REQ_PUT, "PUT"},
    {EVHTTP_REQ_DELETE, "DELETE"},   {EVHTTP_REQ_OPTIONS, "OPTIONS"},
    {EVHTTP_REQ_TRACE, "TRACE"},     {EVHTTP_REQ_CONNECT, "CONNECT"},
    {EVHTTP_REQ_PATCH, "PATCH"},
};

static const char *method_name(enum evhttp_cmd_type cmd)
{
    for (size_t i = 0; i < nitems(methods); i++) {
        if (methods[i].cmd == cmd)
            return methods[i].name;
    }
    return "OTHER";
}

static void resp_clear(struct acme_response *resp)
{
    free(resp->body);
    for (size_t i = 0; i < resp->nheaders && i < ACME_MAX_HEADERS; i++)
        free(resp->headers[i].value);
    memset(resp, 0, sizeof(*resp));
}

void srv_req_free(struct srv_req *r)
{
    if (r == NULL)
        return;
    resp_clear(&r->resp);
    free(r->path);
    free(r->query);
    free(r->content_type);
    free(r->body);
    free(r);
}

/* Copies what the handler needs, so it never touches evhttp from a pool thread. */
static struct srv_req *req_new(struct srv_loop *loop, struct evhttp_request *req)
{
    struct srv_req *r = xcalloc(1, sizeof(*r));
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    char *addr = NULL;
    ev_uint16_t port = 0;

    r->loop = loop;
    r->req = req;
    r->t0 = clk_mono_ms();
    r->head = evhttp_request_get_command(req) == EVHTTP_REQ_HEAD;
    snprintf(r->method, sizeof(r->method), "%s", method_name(evhttp_request_get_command(req)));
    r->path = xstrdup(path != NULL && path[0] != '\0' ? path : "/");
    r->query = query != NULL ? xstrdup(query) : NULL;
    r->content_type = ct != NULL ? xstrdup(ct) : NULL;
    r->body = xmalloc(len + 1);
    if (len > 0 && evbuffer_copyout(in, r->body, len) != (ev_ssize_t)len)
        len = 0;
    r->body[len] = '\0';
    evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &port);
    snprintf(r->peer, sizeof(r->peer), "%s", addr != NULL ? addr : "?");

    r->areq.method = r->method;
    r->areq.path = r->path;
    r->areq.query = r->query;
    r->areq.content_type = r->content_type;
    r->areq.body = r->body;
    r->areq.body_len = len;
    r->areq.peer = r->peer;
    return r;
}

static SSL *conn_ssl(struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    return bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;
}

/* evhttp close callback: the connection is going away (runs on its loop). */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct srv_conn *conn = arg;
    SSL *ssl = conn_ssl(evcon);

    if (conn->pending != NULL) {
        /* the pool still works on it; the reply will find req == NULL and drop */
        conn->pending->req = NULL;
        conn->pending->conn = NULL;
    }
    if (conn->counted)
        srv_connlimit_release(conn->h->cl, conn->ip);
    if (ssl != NULL)
        SSL_set_app_data(ssl, NULL);
    /* reset_ and free may both report the close; only the first one counts */
    evhttp_connection_set_closecb(evcon, NULL, NULL);
    free(conn);
}

/*
 * The connection's state, made at its first request. The limit is checked
 * here rather than at accept() because evhttp 2.1 offers no accept hook;
 * silent connections are bounded by the read timeout instead.
 */
static struct srv_conn *conn_get(struct srv_http *h, struct evhttp_request *req, const char *ip)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    SSL *ssl = conn_ssl(evcon);
    struct srv_conn *conn = ssl != NULL ? SSL_get_app_data(ssl) : NULL;

    if (conn != NULL || ssl == NULL)
        return conn;
    conn = xcalloc(1, sizeof(*conn));
    conn->h = h;
    snprintf(conn->ip, sizeof(conn->ip), "%s", ip);
    conn->counted = srv_connlimit_acquire(h->cl, ip);
    SSL_set_app_data(ssl, conn);
    evhttp_connection_set_closecb(evcon, on_conn_close, conn);
    return conn;
}

/* Sends r->resp on the loop thread (or logs that the peer left) and frees r. */
static void send_and_free(struct srv_req *r)
{
    struct srv_http *h = r->loop->h;
    struct evkeyvalq *oh;
    struct evbuffer *body = NULL;
    size_t len = r->resp.body != NULL ? r->resp.body_len : 0;
    int status = r->resp.status != 0 ? r->resp.status : 500;

    if (r->req == NULL) {
        srv_alog_line(r->loop, r, status, 0, " (client gone)");
        srv_req_free(r);
        return;
    }
    /* the next request on this connection has idle_timeout from now */
    srv_deadline_set(conn_ssl(evhttp_request_get_connection(r->req)), SRV_DEADLINE_IDLE);
    oh = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(oh, "Server", "attesta");
    if (r->resp.content_type != NULL)
        evhttp_add_header(oh, "Content-Type", r->resp.content_type);
    for (size_t i = 0; i < r->resp.nheaders && i < ACME_MAX_HEADERS; i++) {
        if (r->resp.headers[i].name != NULL && r->resp.headers[i].value != NULL)
            evhttp_add_header(oh, r->resp.headers[i].name, r->resp.headers[i].value);
    }
    if (atomic_load(&h->closing))
        evhttp_add_header(oh, "Connection", "close");
    if (r->head) {
        /* HEAD: the headers GET would send, without the body */
        char cl[32];
        snprintf(cl, sizeof(cl), "%zu", len);
        evhttp_add_header(oh, "Content-Length", cl);
    } else if (len > 0) {
        body = evbuffer_new();
        evbuffer_add(body, r->resp.body, len);
    }
    evhttp_send_reply(r->req, status, NULL, body);
    if (body != NULL)
        evbuffer_free(body); /* not NULL-safe in libevent 2.1 */
    srv_alog_line(r->loop, r, status, r->head ? 0 : len, "");
    srv_req_free(r);
}

/* A problem document made by the plane itself (the handler never saw the request). */
static void send_problem(struct srv_req *r, int status, const char *type, const char *detail,
                         const char *hname, const char *hvalue)
{
    struct srv_http *h = r->loop->h;
    resp_clear(&r->resp);
    if (h->o.problem != NULL) {
        h->o.problem(h->o.handler_arg, &r->areq, status, type, detail, &r->resp);
    } else {
        r->resp.status = status;
        r->resp.content_type = PROBLEM_CT;
        r->resp.body = xasprintf("{\"type\":\"urn:ietf:params:acme:error:%s\",\"detail\":\"%s\","
                                 "\"status\":%d}",
                                 type, detail, status);
        r->resp.body_len = strlen(r->resp.body);
    }
    if (hname != NULL && r->resp.nheaders < nitems(r->resp.headers)) {
        r->resp.headers[r->resp.nheaders].name = hname;
        r->resp.headers[r->resp.nheaders].value = xstrdup(hvalue);
        r->resp.nheaders++;
    }
    send_and_free(r);
}

/* Pool thread: the blocking part, then back to the owning loop's mailbox. */
static void run_job(void *arg)
{
    struct srv_req *r = arg;
    struct srv_loop *loop = r->loop;
    struct srv_http *h = loop->h;

    h->o.handle(h->o.handler_arg, &r->areq, &r->resp);
    pthread_mutex_lock(&loop->mu);
    r->next = NULL;
    if (loop->done_tail != NULL)
        loop->done_tail->next = r;
    else
        loop->done_head = r;
    loop->done_tail = r;
    pthread_mutex_unlock(&loop->mu);
    event_active(loop->wake, EV_READ, 0);
}

void srv_reply_deliver(struct srv_req *r)
{
    atomic_fetch_sub(&r->loop->h->inflight, 1);
    if (r->conn != NULL)
        r->conn->pending = NULL;
    r->conn = NULL;
    send_and_free(r);
}

static bool method_allowed(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "POST") == 0;
}

void srv_reply_on_request(struct evhttp_request *req, void *arg)
{
    struct srv_loop *loop = arg;
    struct srv_http *h = loop->h;
    struct srv_req *r = req_new(loop, req);
    struct srv_conn *conn = conn_get(h, req, r->peer);

    /* the request is in: its read deadline no longer applies */
    srv_deadline_set(conn_ssl(evhttp_request_get_connection(req)), SRV_DEADLINE_OFF);

    if (conn != NULL && !conn->counted) {
        send_problem(r, 429, "rateLimited", "too many connections from your address",
                     "Connection", "close");
        return;
    }
    if (!method_allowed(r->method)) {
        send_problem(r, 405, "malformed", "method not allowed", "Allow", "GET, HEAD, POST");
        return;
    }
    if (r->areq.body_len > h->o.max_body) {
        char detail[96];
        snprintf(detail, sizeof(detail), "request body of %zu bytes exceeds the limit of %zu",
                 r->areq.body_len, h->o.max_body);
        send_problem(r, 413, "malformed", detail, "Connection", "close");
        return;
    }
    if (h->o.is_fast(h->o.handler_arg, &r->areq)) {
        h->o.handle(h->o.handler_arg, &r->areq, &r->resp);
        send_and_free(r);
        return;
    }
    r->conn = conn;
    if (conn != NULL)
        conn->pending = r;
    atomic_fetch_add(&h->inflight, 1);
    if (srv_pool_submit(h->o.pool, run_job, r, false) != 0) {
        atomic_fetch_sub(&h->inflight, 1);
        if (conn != NULL)
            conn->pending = NULL;
        r->conn = NULL;
        send_problem(r, 503, "serverInternal", "server busy, retry later", "Retry-After", "1");
    }
}
