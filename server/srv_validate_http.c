/*
 * srv_validate_http.c: the http-01 probe (RFC 8555 §8.3). A plain HTTP/1.1
 * GET of /.well-known/acme-challenge/<token> with Host = identifier, over a
 * bufferevent, with our own small response parser so the limits are ours:
 * headers and body are capped at 8 KiB each, redirects are followed only to
 * http:// URLs on port 80 (or the configured http-01 port), at most 10 times.
 */
#include "server/srv_validate_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "acme/acme.h"

/* Raw bytes kept per response: headers, body and chunk framing. */
#define HTTP_RAW_MAX (SRV_HTTP_HDR_MAX + SRV_HTTP_BODY_MAX + 1024)
#define HTTP_SHOW_MAX 128 /* bytes of a wrong body quoted in the problem detail */

static void set_err(char err[ERR_LEN], const char *msg)
{
    snprintf(err, ERR_LEN, "%s", msg);
}

static const char *memfind(const char *h, size_t hl, const char *n)
{
    size_t nl = strlen(n);
    for (size_t i = 0; nl <= hl && i <= hl - nl; i++)
        if (memcmp(h + i, n, nl) == 0)
            return h + i;
    return NULL;
}

/* Decodes a chunked body starting at p. 1 done, 0 need more, -1 malformed. */
static int dechunk(const char *p, size_t len, struct buf *out, char err[ERR_LEN])
{
    size_t pos = 0;
    for (;;) {
        const char *eol = memfind(p + pos, len - pos, "\r\n");
        size_t size = 0, i = pos;
        if (eol == NULL)
            return len - pos > 64 ? (set_err(err, "bad chunk header"), -1) : 0;
        for (; p + i < eol && p[i] != ';'; i++) {
            char c = p[i];
            int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
            if (d < 0 || size > SRV_HTTP_BODY_MAX) {
                set_err(err, d < 0 ? "bad chunk size" : "response body larger than 8192 bytes");
                return -1;
            }
            size = size * 16 + (size_t)d;
        }
        if (i == pos) {
            set_err(err, "bad chunk size");
            return -1;
        }
        pos = (size_t)(eol - p) + 2;
        if (size == 0)
            return 1; /* trailers are not needed */
        if (out->len + size > SRV_HTTP_BODY_MAX) {
            set_err(err, "response body larger than 8192 bytes");
            return -1;
        }
        if (len - pos < size + 2)
            return 0;
        if (memcmp(p + pos + size, "\r\n", 2) != 0) {
            set_err(err, "bad chunk framing");
            return -1;
        }
        buf_append(out, p + pos, size);
        pos += size + 2;
    }
}

/* Reads the header lines between p and end; fills out->location. */
static int headers_parse(const char *p, const char *end, struct srv_http_resp *out, long long *cl,
                         bool *chunked, char err[ERR_LEN])
{
    while (p < end) {
        const char *eol = memfind(p, (size_t)(end - p), "\r\n");
        const char *colon;
        size_t vlen;
        if (eol == NULL)
            eol = end;
        colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL) {
            set_err(err, "malformed header line");
            return -1;
        }
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        vlen = (size_t)(eol - v);
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        size_t nlen = (size_t)(colon - p);
        if (nlen == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
            char num[24];
            if (vlen == 0 || vlen >= sizeof(num)) {
                set_err(err, "bad Content-Length");
                return -1;
            }
            memcpy(num, v, vlen);
            num[vlen] = '\0';
            if (str_to_ll(num, 0, 1LL << 40, cl) != 0) {
                set_err(err, "bad Content-Length");
                return -1;
            }
        } else if (nlen == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
            *chunked = memfind(v, vlen, "chunked") != NULL;
        } else if (nlen == 8 && strncasecmp(p, "Location", 8) == 0) {
            if (vlen >= sizeof(out->location)) {
                set_err(err, "Location header too long");
                return -1;
            }
            memcpy(out->location, v, vlen);
            out->location[vlen] = '\0';
        }
        p = eol + 2;
    }
    return 0;
}

int srv_http_resp_parse(const char *raw, size_t len, bool eof, struct srv_http_resp *out,
                        struct buf *scratch, char err[ERR_LEN])
{
    size_t hlen = len < SRV_HTTP_HDR_MAX ? len : SRV_HTTP_HDR_MAX;
    const char *hend = memfind(raw, hlen, "\r\n\r\n");
    const char *eol;
    long long cl = -1;
    bool chunked = false;

    memset(out, 0, sizeof(*out));
    if (hend == NULL) {
        if (len >= SRV_HTTP_HDR_MAX || eof) {
            set_err(err, len >= SRV_HTTP_HDR_MAX ? "response headers larger than 8192 bytes"
                                                 : "connection closed before the headers ended");
            return -1;
        }
        return 0;
    }
    eol = memfind(raw, (size_t)(hend + 2 - raw), "\r\n");
    if ((size_t)(eol - raw) < 12 || memcmp(raw, "HTTP/1.", 7) != 0 || raw[8] != ' ' ||
        raw[9] < '1' || raw[9] > '5' || raw[10] < '0' || raw[10] > '9' || raw[11] < '0' ||
        raw[11] > '9') {
        set_err(err, "malformed HTTP status line");
        return -1;
    }
    out->status = (raw[9] - '0') * 100 + (raw[10] - '0') * 10 + (raw[11] - '0');
    if (headers_parse(eol + 2, hend + 2, out, &cl, &chunked, err) != 0)
        return -1;
    const char *body = hend + 4;
    size_t avail = len - (size_t)(body - raw);
    if (out->status == 204 || out->status == 304)
        return 1;
    if (chunked) {
        buf_free(scratch);
        int rc = dechunk(body, avail, scratch, err);
        if (rc == 0 && eof) {
            set_err(err, "connection closed inside a chunked body");
            return -1;
        }
        out->body = scratch->p != NULL ? scratch->p : "";
        out->body_len = scratch->len;
        return rc;
    }
    if (cl > SRV_HTTP_BODY_MAX || (cl < 0 && avail > SRV_HTTP_BODY_MAX)) {
        set_err(err, "response body larger than 8192 bytes");
        return -1;
    }
    out->body = body;
    if (cl >= 0 && avail >= (size_t)cl) {
        out->body_len = (size_t)cl;
        return 1;
    }
    if (!eof)
        return 0;
    if (cl >= 0) {
        set_err(err, "connection closed before the body was complete");
        return -1;
    }
    out->body_len = avail;
    return 1;
}

static void vhttp_connect(struct srv_vjob *job, const struct sockaddr_storage *sa);

/*
 * Follows a Location value: a path on the same host, or an http:// URL on
 * port 80 or the configured http-01 port. 0 when a new try step started.
 */
static int vhttp_redirect(struct srv_vjob *job, const char *loc, char err[ERR_LEN])
{
    char host[SRV_HOST_MAX] = "";
    int port = 80;
    const char *path = loc, *a, *aend;

    for (const char *c = loc; *c != '\0'; c++) {
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f) {
            set_err(err, "redirect Location contains invalid characters");
            return -1;
        }
    }
    if (strncasecmp(loc, "https://", 8) == 0) {
        set_err(err, "redirects to https:// are not followed");
        return -1;
    }
    if (loc[0] == '/' && loc[1] != '/') {
        snprintf(host, sizeof(host), "%s", job->host);
        port = job->port;
    } else if (strncasecmp(loc, "http://", 7) == 0) {
        a = loc + 7;
        aend = a + strcspn(a, "/?#");
        path = *aend == '/' ? aend : "/";
        const char *hs = a, *he = aend;
        if (*a == '[') {
            hs = a + 1;
            he = memchr(a, ']', (size_t)(aend - a));
            if (he == NULL) {
                set_err(err, "redirect URL has a bad host");
                return -1;
            }
        }
        const char *cs = *a == '[' ? he : hs; /* a port colon comes after any "]" */
        const char *colon = memchr(cs, ':', (size_t)(aend - cs));
        if (*a != '[' && colon != NULL)
            he = colon;
        if (colon != NULL) {
            char num[8];
            size_t nl = (size_t)(aend - colon - 1);
            long long p;
            if (nl == 0 || nl >= sizeof(num))
                goto badport;
            memcpy(num, colon + 1, nl);
            num[nl] = '\0';
            if (str_to_ll(num, 1, 65535, &p) != 0)
                goto badport;
            port = (int)p;
        }
        if (he <= hs || (size_t)(he - hs) >= sizeof(host)) {
            set_err(err, "redirect URL has a bad host");
            return -1;
        }
        memcpy(host, hs, (size_t)(he - hs));
        host[he - hs] = '\0';
    } else {
        set_err(err, "redirect to an unsupported URL");
        return -1;
    }
    if (port != 80 && port != srv_vjob_http_port(job)) {
        snprintf(err, ERR_LEN, "redirect to port %d refused (only 80)", port);
        return -1;
    }
    snprintf(job->path, sizeof(job->path), "%.*s", (int)strcspn(path, "#"), path);
    if (job->bev != NULL)
        bufferevent_free(job->bev);
    job->bev = NULL;
    buf_free(&job->rx);
    srv_vjob_resolve(job, host, port, vhttp_connect);
    return 0;
badport:
    set_err(err, "redirect URL has a bad port");
    return -1;
}

/* Judges a complete response. */
static void vhttp_judge(struct srv_vjob *job, const struct srv_http_resp *r)
{
    const char *want = job->v->key_authz;
    size_t blen = r->body_len;
    char shown[HTTP_SHOW_MAX * 4 + 1], bodycopy[HTTP_SHOW_MAX + 1];
    char err[ERR_LEN];

    if (r->status >= 300 && r->status < 400 && r->location[0] != '\0') {
        if (++job->redirects > SRV_HTTP_MAX_REDIRECTS) {
            srv_vjob_finish(job, false, "connection", "Too many redirects (more than %d)",
                            SRV_HTTP_MAX_REDIRECTS);
            return;
        }
        log_escape(r->location, 256, shown, sizeof(shown));
        log_debug("validate", "%s: following redirect to \"%s\"", job->v->chall_id, shown);
        if (vhttp_redirect(job, r->location, err) != 0)
            srv_vjob_finish(job, false, "connection", "Redirect to \"%s\": %s", shown, err);
        return;
    }
    while (blen > 0 && (r->body[blen - 1] == ' ' || r->body[blen - 1] == '\t' ||
                        r->body[blen - 1] == '\r' || r->body[blen - 1] == '\n'))
        blen--;
    size_t n = blen < HTTP_SHOW_MAX ? blen : HTTP_SHOW_MAX;
    memcpy(bodycopy, r->body, n);
    bodycopy[n] = '\0';
    log_escape(bodycopy, n, shown, sizeof(shown));
    if (r->status != 200) {
        srv_vjob_finish(job, false, "incorrectResponse",
                        "Invalid response from http://%s%s: status %d, body \"%s%s\"", job->host,
                        job->path, r->status, shown, blen > n ? "..." : "");
        return;
    }
    if (blen == strlen(want) && memcmp(r->body, want, blen) == 0) {
        srv_vjob_finish(job, true, NULL, NULL);
        return;
    }
    srv_vjob_finish(job, false, "incorrectResponse",
                    "The key authorization file from the server did not match this challenge: "
                    "expected \"%s\", got \"%s%s\"",
                    want, shown, blen > n ? "..." : "");
}

static void vhttp_process(struct srv_vjob *job, bool eof)
{
    struct srv_http_resp r;
    struct buf scratch = {0};
    char err[ERR_LEN];
    int rc = srv_http_resp_parse(job->rx.p != NULL ? job->rx.p : "", job->rx.len, eof, &r,
                                 &scratch, err);
    if (rc < 0)
        srv_vjob_finish(job, false, "incorrectResponse", "Invalid response from http://%s%s: %s",
                        job->host, job->path, err);
    else if (rc == 1)
        vhttp_judge(job, &r);
    buf_free(&scratch);
}

static void vhttp_read_cb(struct bufferevent *bev, void *arg)
{
    struct srv_vjob *job = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t room = HTTP_RAW_MAX - job->rx.len;
    size_t n = evbuffer_get_length(in);
    char chunk[4096];

    if (job->try_over)
        return;
    while (n > 0 && room > 0) {
        size_t want = n < sizeof(chunk) ? n : sizeof(chunk);
        want = want < room ? want : room;
        int got = evbuffer_remove(in, chunk, want);
        if (got <= 0)
            break;
        buf_append(&job->rx, chunk, (size_t)got);
        room -= (size_t)got;
        n -= (size_t)got;
    }
    /* Over the cap: judge what we have as if the peer had closed. */
    vhttp_process(job, room == 0);
}

static void vhttp_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct srv_vjob *job = arg;
    int e = EVUTIL_SOCKET_ERROR();

    if (job->try_over)
        return;
    if (what & BEV_EVENT_CONNECTED) {
        char hosthdr[SRV_HOST_MAX + 2];
        snprintf(hosthdr, sizeof(hosthdr), strchr(job->host, ':') != NULL ? "[%s]" : "%s",
                 job->host);
        job->phase = SRV_VP_EXCHANGE;
        evbuffer_add_printf(bufferevent_get_output(bev),
                            "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: attesta-validator\r\n"
                            "Accept: */*\r\nConnection: close\r\n\r\n",
                            job->path, hosthdr);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        vhttp_process(job, true);
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        if (job->phase == SRV_VP_CONNECT)
            srv_vjob_finish(job, false, "connection", "Connecting to %s port %d: %s", job->host,
                            job->port, evutil_socket_error_to_string(e));
        else
            srv_vjob_finish(job, false, "connection", "Reading from http://%s%s: %s", job->host,
                            job->path, evutil_socket_error_to_string(e));
    }
}

static void vhttp_connect(struct srv_vjob *job, const struct sockaddr_storage *sa)
{
    int slen = sa->ss_family == AF_INET6 ? (int)sizeof(struct sockaddr_in6)
                                         : (int)sizeof(struct sockaddr_in);

    job->bev = bufferevent_socket_new(srv_vjob_base(job), -1, BEV_OPT_CLOSE_ON_FREE);
    if (job->bev == NULL) {
        srv_vjob_finish(job, false, "serverInternal", "bufferevent_socket_new failed");
        return;
    }
    bufferevent_setcb(job->bev, vhttp_read_cb, NULL, vhttp_event_cb, job);
    bufferevent_enable(job->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(job->bev, (const struct sockaddr *)sa, slen) != 0)
        srv_vjob_finish(job, false, "connection", "Connecting to %s port %d: %s", job->host,
                        job->port, strerror(errno));
}

void srv_vhttp_start(struct srv_vjob *job)
{
    snprintf(job->path, sizeof(job->path), "/.well-known/acme-challenge/%s", job->v->token);
    srv_vjob_resolve(job, job->v->identifier, srv_vjob_http_port(job), vhttp_connect);
}
