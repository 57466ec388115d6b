/*
 * srv_validate_dnstcp.c: DNS over TCP for the validator's stub client. A UDP
 * answer with TC set is incomplete, so the query is repeated here (RFC 7766
 * §5), which lets a TXT set larger than the EDNS0 payload still validate and
 * moves the exchange off spoofable UDP (SEC-2). Transport only: the caller
 * parses the answer with the same id and question checks as for UDP.
 */
#include "server/srv_validate_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

struct srv_dnstcp {
    evutil_socket_t fd;
    struct event *wr_ev;        /* connect completion, then the query */
    struct event *rd_ev;        /* the answer, once the query is out */
    unsigned char out[2 + SRV_DNS_QUERY_MAX];
    size_t outlen, outoff;
    unsigned char hdr[2];       /* the answer's length prefix */
    size_t hdroff;
    unsigned char *msg;         /* msglen bytes, allocated once hdr is complete */
    size_t msglen, msgoff;
    srv_dnstcp_done_fn *done;
    void *arg;
};

/* Reports a failure; done may free t, so the caller returns right after. */
static void tcp_fail(struct srv_dnstcp *t, const char *what, int e)
{
    char err[ERR_LEN];

    snprintf(err, sizeof(err), "DNS over TCP: %s%s%s", what, e != 0 ? ": " : "",
             e != 0 ? strerror(e) : "");
    event_del(t->wr_ev);
    event_del(t->rd_ev);
    t->done(t->arg, NULL, 0, err);
}

static void tcp_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct srv_dnstcp *t = arg;
    int soerr = 0;
    socklen_t sl = sizeof(soerr);

    /* The first writable event ends the non-blocking connect: did it work? */
    if (t->outoff == 0 && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0)) {
        tcp_fail(t, "connecting to the resolver", soerr != 0 ? soerr : errno);
        return;
    }
    ssize_t n = send(fd, t->out + t->outoff, t->outlen - t->outoff, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            tcp_fail(t, "sending the query", errno);
        return;
    }
    t->outoff += (size_t)n;
    if (t->outoff < t->outlen)
        return;
    if (event_del(t->wr_ev) != 0 || event_add(t->rd_ev, NULL) != 0)
        tcp_fail(t, "event setup failed", 0);
}

/* The length prefix is complete: size the answer buffer (at most 65535 by construction). */
static void tcp_hdr_done(struct srv_dnstcp *t)
{
    t->msglen = ((size_t)t->hdr[0] << 8) | t->hdr[1];
    if (t->msglen < 12)
        tcp_fail(t, "answer shorter than a DNS header", 0);
    else
        t->msg = xmalloc(t->msglen);
}

static void tcp_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct srv_dnstcp *t = arg;
    bool in_hdr = t->msg == NULL;
    unsigned char *dst = in_hdr ? t->hdr + t->hdroff : t->msg + t->msgoff;
    size_t want = in_hdr ? sizeof(t->hdr) - t->hdroff : t->msglen - t->msgoff;
    ssize_t n = recv(fd, dst, want, 0);
    char what_s[96];

    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            tcp_fail(t, "reading the answer", errno);
        return;
    }
    if (n == 0) {
        /* A length prefix larger than what follows ends here. */
        snprintf(what_s, sizeof(what_s), "connection closed after %zu of %zu answer bytes",
                 t->msgoff, t->msglen);
        tcp_fail(t, in_hdr ? "connection closed before the answer" : what_s, 0);
        return;
    }
    if (in_hdr) {
        t->hdroff += (size_t)n;
        if (t->hdroff == sizeof(t->hdr))
            tcp_hdr_done(t);
        return;
    }
    t->msgoff += (size_t)n;
    if (t->msgoff < t->msglen)
        return;
    event_del(t->rd_ev);
    /* done may free t: touch nothing of t afterwards. */
    t->done(t->arg, t->msg, t->msglen, NULL);
}

struct srv_dnstcp *srv_dnstcp_start(struct event_base *base, const struct sockaddr_storage *ns,
                                    const unsigned char *query, size_t qlen,
                                    srv_dnstcp_done_fn *done, void *arg, char err[ERR_LEN])
{
    struct srv_dnstcp *t = xcalloc(1, sizeof(*t)), *ret = NULL;
    socklen_t slen = ns->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                               : sizeof(struct sockaddr_in);

    t->fd = -1;
    t->done = done;
    t->arg = arg;
    if (qlen > SRV_DNS_QUERY_MAX) {
        snprintf(err, ERR_LEN, "DNS over TCP: query too long");
        goto out;
    }
    t->out[0] = (unsigned char)(qlen >> 8);
    t->out[1] = (unsigned char)qlen;
    memcpy(t->out + 2, query, qlen);
    t->outlen = qlen + 2;
    t->fd = socket(ns->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (t->fd < 0 ||
        (connect(t->fd, (const struct sockaddr *)ns, slen) != 0 && errno != EINPROGRESS)) {
        snprintf(err, ERR_LEN, "DNS over TCP: connecting to the resolver: %s", strerror(errno));
        goto out;
    }
    t->wr_ev = event_new(base, t->fd, EV_WRITE | EV_PERSIST, tcp_write_cb, t);
    t->rd_ev = event_new(base, t->fd, EV_READ | EV_PERSIST, tcp_read_cb, t);
    if (t->wr_ev == NULL || t->rd_ev == NULL || event_add(t->wr_ev, NULL) != 0) {
        snprintf(err, ERR_LEN, "DNS over TCP: event setup failed");
        goto out;
    }
    ret = t;
    t = NULL;
out:
    srv_dnstcp_free(t);
    return ret;
}

void srv_dnstcp_free(struct srv_dnstcp *t)
{
    if (t == NULL)
        return;
    if (t->wr_ev != NULL)
        event_free(t->wr_ev);
    if (t->rd_ev != NULL)
        event_free(t->rd_ev);
    if (t->fd >= 0)
        close(t->fd);
    free(t->msg);
    free(t);
}
