/*
 * srv_validate_tls.c: the tls-alpn-01 probe (RFC 8737). A TLS 1.2+ handshake
 * offering only ALPN "acme-tls/1" with SNI = identifier (the reverse-DNS
 * name for IP identifiers, RFC 8738 §6), no chain verification (the
 * certificate is self-signed by design), then pki_tlsalpn01_check() on the
 * presented certificate. No application data is sent (RFC 8737 §4).
 */
#include "server/srv_validate_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "acme/acme.h"
#include "pki/pki.h"

static const unsigned char acme_alpn[] = "\x0a" "acme-tls/1";

/* Declared in srv_validate.c, which owns the context's lifetime. */
SSL_CTX *srv_vtls_ctx_new(char err[ERR_LEN]);

SSL_CTX *srv_vtls_ctx_new(char err[ERR_LEN])
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(err, ERR_LEN, "SSL_CTX_new failed");
        ERR_clear_error();
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* RFC 8737 §4: TLS 1.2 or later only. */
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_alpn_protos(ctx, acme_alpn, sizeof(acme_alpn) - 1) != 0) {
        snprintf(err, ERR_LEN, "SSL_CTX setup failed");
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return ctx;
}

/* RFC 8738 §6: "1.0.0.127.in-addr.arpa" or the nibble form under ip6.arpa. 0/-1. */
static int reverse_name(const char *ip, char *out, size_t outlen)
{
    unsigned char a[16];
    size_t o = 0;

    if (inet_pton(AF_INET, ip, a) == 1) {
        snprintf(out, outlen, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
        return 0;
    }
    if (inet_pton(AF_INET6, ip, a) != 1 || outlen < 16 * 4 + 9)
        return -1;
    for (int i = 15; i >= 0; i--) {
        static const char hex[] = "0123456789abcdef";
        out[o++] = hex[a[i] & 0x0f];
        out[o++] = '.';
        out[o++] = hex[a[i] >> 4];
        out[o++] = '.';
    }
    snprintf(out + o, outlen - o, "ip6.arpa");
    return 0;
}

static void vtls_verdict(struct srv_vjob *job, SSL *ssl)
{
    const unsigned char *proto = NULL;
    unsigned plen = 0;
    X509 *peer = NULL;
    char err[ERR_LEN];

    /*
     * The target answered but not as RFC 8737 §3 asks: incorrectResponse
     * (E-13, TA-5..TA-7). `unauthorized` is the requester's lack of rights
     * (E-21), which says nothing about what the target served.
     */
    SSL_get0_alpn_selected(ssl, &proto, &plen);
    if (plen != sizeof(acme_alpn) - 2 || memcmp(proto, acme_alpn + 1, plen) != 0) {
        srv_vjob_finish(job, false, "incorrectResponse",
                        "Cannot negotiate ALPN protocol \"acme-tls/1\" with %s port %d",
                        job->host, job->port);
        return;
    }
    peer = SSL_get1_peer_certificate(ssl);
    if (peer == NULL) {
        srv_vjob_finish(job, false, "incorrectResponse", "No certificate from %s port %d",
                        job->host, job->port);
        return;
    }
    if (pki_tlsalpn01_check(peer, job->v->identifier, job->v->is_ip, job->v->key_authz_sha256,
                            err) == 0)
        srv_vjob_finish(job, true, NULL, NULL);
    else
        srv_vjob_finish(job, false, "incorrectResponse",
                        "Incorrect validation certificate for tls-alpn-01 challenge: %s", err);
    X509_free(peer);
}

static void vtls_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct srv_vjob *job = arg;
    int serr = EVUTIL_SOCKET_ERROR();
    unsigned long oerr;
    char ebuf[160] = "";

    if (job->try_over)
        return;
    if (what & BEV_EVENT_CONNECTED) {
        vtls_verdict(job, bufferevent_openssl_get_ssl(bev));
        return;
    }
    oerr = bufferevent_get_openssl_error(bev);
    if (oerr != 0) {
        ERR_error_string_n(oerr, ebuf, sizeof(ebuf));
        while (bufferevent_get_openssl_error(bev) != 0)
            ;
        srv_vjob_finish(job, false, "tls", "TLS handshake with %s port %d failed: %s", job->host,
                        job->port, ebuf);
    } else if (job->phase == SRV_VP_CONNECT && (what & BEV_EVENT_EOF) == 0) {
        srv_vjob_finish(job, false, "connection", "Connecting to %s port %d: %s", job->host,
                        job->port, evutil_socket_error_to_string(serr));
    } else {
        srv_vjob_finish(job, false, "tls", "TLS handshake with %s port %d failed: %s",
                        job->host, job->port,
                        (what & BEV_EVENT_EOF) ? "connection closed" : "error");
    }
}

static void vtls_tcp_event_cb(struct bufferevent *bev, short what, void *arg);

static void vtls_connect(struct srv_vjob *job, const struct sockaddr_storage *sa)
{
    int slen = sa->ss_family == AF_INET6 ? (int)sizeof(struct sockaddr_in6)
                                         : (int)sizeof(struct sockaddr_in);

    /* Plain TCP first, so a refused connect and a failed handshake stay distinct. */
    job->bev = bufferevent_socket_new(srv_vjob_base(job), -1, BEV_OPT_CLOSE_ON_FREE);
    if (job->bev == NULL) {
        srv_vjob_finish(job, false, "serverInternal", "bufferevent_socket_new failed");
        return;
    }
    bufferevent_setcb(job->bev, NULL, NULL, vtls_tcp_event_cb, job);
    bufferevent_enable(job->bev, EV_READ);
    if (bufferevent_socket_connect(job->bev, (const struct sockaddr *)sa, slen) != 0)
        srv_vjob_finish(job, false, "connection", "Connecting to %s port %d failed", job->host,
                        job->port);
}

/* TCP is up: wrap the socket in TLS and start the handshake. */
static void vtls_tcp_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct srv_vjob *job = arg;
    char sni[SRV_HOST_MAX];
    SSL *ssl = NULL;
    struct bufferevent *tls = NULL;

    if (job->try_over)
        return;
    if ((what & BEV_EVENT_CONNECTED) == 0) {
        vtls_event_cb(bev, what, arg);
        return;
    }
    job->phase = SRV_VP_EXCHANGE;
    if (job->v->is_ip) {
        if (reverse_name(job->v->identifier, sni, sizeof(sni)) != 0) {
            srv_vjob_finish(job, false, "malformed", "bad IP identifier");
            return;
        }
    } else {
        snprintf(sni, sizeof(sni), "%s", job->v->identifier);
    }
    ssl = SSL_new(srv_vjob_ssl_ctx(job));
    if (ssl == NULL || SSL_set_tlsext_host_name(ssl, sni) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        srv_vjob_finish(job, false, "serverInternal", "SSL_new failed");
        return;
    }
    /* The filter takes the TCP bufferevent and, on success, the SSL. */
    tls = bufferevent_openssl_filter_new(srv_vjob_base(job), bev, ssl,
                                         BUFFEREVENT_SSL_CONNECTING,
                                         BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (tls == NULL) {
        /* libevent already freed ssl (BEV_OPT_CLOSE_ON_FREE). */
        srv_vjob_finish(job, false, "serverInternal", "bufferevent_openssl_filter_new failed");
        return;
    }
    job->bev = tls;
    bufferevent_setcb(tls, NULL, NULL, vtls_event_cb, job);
    bufferevent_enable(tls, EV_READ);
}

void srv_vtls_start(struct srv_vjob *job)
{
    srv_vjob_resolve(job, job->v->identifier, srv_vjob_tls_port(job), vtls_connect);
}
