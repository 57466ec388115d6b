/*
 * test_validate_srv.c: small real servers for unit_validate. Each runs in a
 * thread with blocking sockets and 100 ms polls so tsrv_stop() can end it.
 * Behaviour is chosen by the name asked for (HTTP token, DNS name, TLS SNI),
 * so one server instance serves every row of the tables.
 */
#include "test_validate_srv.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static const char *const http_routes[] = {"tok-ok",   "tok-wrong",     "tok-404",
                                          "tok-redir", "tok-redir-rel", "tok-redir-https",
                                          "tok-loop", "tok-chunked",   "tok-big"};

/* Binds 127.0.0.1:want (0: ephemeral); the port bound goes to *port. */
static int listen_port(int type, int want, int *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                              .sin_port = htons((uint16_t)want)};
    socklen_t sl = sizeof(sin);
    int fd = socket(AF_INET, type, 0), one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        (type == SOCK_STREAM && listen(fd, 16) != 0) ||
        getsockname(fd, (struct sockaddr *)&sin, &sl) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(sin.sin_port);
    return fd;
}

static int listen_on(int type, int *port)
{
    return listen_port(type, 0, port);
}

/* Waits for fd readable or stop; 1 ready, 0 stop. */
static int wait_ready(struct tsrv *s, int fd)
{
    while (!s->stop) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0)
            return 1;
    }
    return 0;
}

static void timeouts(int fd)
{
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* ---- HTTP ---- */

static void http_reply(struct tsrv *s, int c, const char *token)
{
    char out[24576];
    int n = 0;
    if (strcmp(token, "tok-ok") == 0) {
        n = snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s\n",
                     strlen(T_KEYAUTH) + 1, T_KEYAUTH);
    } else if (strcmp(token, "tok-wrong") == 0) {
        n = snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nnope\x01\"");
    } else if (strcmp(token, "tok-404") == 0) {
        n = snprintf(out, sizeof(out), "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found");
    } else if (strcmp(token, "tok-redir") == 0) {
        n = snprintf(out, sizeof(out),
                     "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/.well-known/"
                     "acme-challenge/tok-ok\r\nContent-Length: 0\r\n\r\n",
                     s->port);
    } else if (strcmp(token, "tok-redir-rel") == 0) {
        n = snprintf(out, sizeof(out), "HTTP/1.1 301 Moved\r\nLocation: /.well-known/"
                                       "acme-challenge/tok-chunked\r\nContent-Length: 0\r\n\r\n");
    } else if (strcmp(token, "tok-redir-https") == 0) {
        n = snprintf(out, sizeof(out), "HTTP/1.1 302 Found\r\nLocation: https://ok.test/x\r\n"
                                       "Content-Length: 0\r\n\r\n");
    } else if (strcmp(token, "tok-loop") == 0) {
        n = snprintf(out, sizeof(out), "HTTP/1.1 302 Found\r\nLocation: /.well-known/"
                                       "acme-challenge/tok-loop\r\nContent-Length: 0\r\n\r\n");
    } else if (strcmp(token, "tok-chunked") == 0) {
        n = snprintf(out, sizeof(out),
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n%.3s\r\n%zx\r\n%s"
                     "\r\n0\r\n\r\n",
                     T_KEYAUTH, strlen(T_KEYAUTH) - 3, &T_KEYAUTH[3]);
    } else if (strcmp(token, "tok-big") == 0) {
        n = snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n");
        memset(out + n, 'a', 20000);
        n += 20000;
    } else {
        n = snprintf(out, sizeof(out), "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n");
    }
    if (send(c, out, (size_t)n, MSG_NOSIGNAL) < 0)
        perror("http send");
}

static void http_conn(struct tsrv *s, int c)
{
    char req[4096], token[128] = "", *p, *h;
    size_t len = 0;
    timeouts(c);
    while (len < sizeof(req) - 1) {
        ssize_t n = recv(c, req + len, sizeof(req) - 1 - len, 0);
        if (n <= 0)
            return;
        len += (size_t)n;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL)
            break;
    }
    p = strstr(req, "/.well-known/acme-challenge/");
    if (p != NULL)
        sscanf(p + 28, "%127[^ ]", token);
    h = strcasestr(req, "\r\nHost: ");
    pthread_mutex_lock(&s->mu);
    if (h != NULL)
        sscanf(h + 8, "%255[^\r]", s->last_host);
    for (size_t i = 0; i < sizeof(http_routes) / sizeof(http_routes[0]); i++)
        if (strcmp(token, http_routes[i]) == 0)
            s->hits[i]++;
    pthread_mutex_unlock(&s->mu);
    http_reply(s, c, token);
}

static void *http_main(void *arg)
{
    struct tsrv *s = arg;
    while (wait_ready(s, s->fd)) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        http_conn(s, c);
        close(c);
    }
    return NULL;
}

int tsrv_http_start(struct tsrv *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->fd = listen_on(SOCK_STREAM, &s->port);
    if (s->fd < 0)
        return -1;
    return pthread_create(&s->th, NULL, http_main, s) == 0 ? 0 : -1;
}

int tsrv_http_hits(struct tsrv *s, const char *token)
{
    int n = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < sizeof(http_routes) / sizeof(http_routes[0]); i++)
        if (strcmp(token, http_routes[i]) == 0)
            n = s->hits[i];
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---- DNS ---- */

static size_t put16(unsigned char *p, size_t o, unsigned v)
{
    p[o] = (unsigned char)(v >> 8);
    p[o + 1] = (unsigned char)v;
    return o + 2;
}

/* Appends an answer RR whose owner is the question name (pointer to offset 12). */
static size_t put_rr(unsigned char *m, size_t o, unsigned type, const void *rd, size_t rdlen)
{
    o = put16(m, o, 0xc00c);
    o = put16(m, o, type);
    o = put16(m, o, 1);
    o = put16(m, o, 0);
    o = put16(m, o, 60);
    o = put16(m, o, (unsigned)rdlen);
    memcpy(m + o, rd, rdlen);
    return o + rdlen;
}

/* TXT rdata of the right value, split in two character-strings that concatenate. */
static size_t put_txt_ok(unsigned char *m, size_t o)
{
    unsigned char rd[64];
    rd[0] = 10;
    memcpy(rd + 1, T_DNS_TXT, 10);
    rd[11] = (unsigned char)(strlen(T_DNS_TXT) - 10);
    memcpy(rd + 12, &T_DNS_TXT[10], strlen(T_DNS_TXT) - 10);
    return put_rr(m, o, 16, rd, strlen(T_DNS_TXT) + 2);
}

/* About 1000 bytes: eight 100-byte TXT fillers, the right value last, an OPT record. */
static size_t put_big(unsigned char *m, size_t o)
{
    static const unsigned char opt[11] = {0, 0, 41, 0x04, 0xd0};
    unsigned char rd[101];
    rd[0] = 100;
    memset(rd + 1, 'f', 100);
    for (int i = 0; i < 8; i++)
        o = put_rr(m, o, 16, rd, sizeof(rd));
    o = put_txt_ok(m, o);
    memcpy(m + o, opt, sizeof(opt));
    put16(m, 10, 1);
    return o + sizeof(opt);
}

/*
 * Builds the answer to the query q (qlen bytes, question only) into m; returns
 * its length. "_acme-challenge.tc*" names answer TC over UDP and the full set
 * over TCP; big.test needs the EDNS0 payload the query advertised (edns).
 */
static size_t dns_answer(const unsigned char *q, size_t qlen, char *name, unsigned qtype,
                         bool tcp, unsigned edns, unsigned char *m)
{
    size_t o = qlen, an = 0;
    unsigned rcode = 0;
    memcpy(m, q, qlen);
    m[2] = 0x81;
    m[3] = 0x80;
    put16(m, 10, 0); /* the query's OPT is not echoed */
    if (strcmp(name, "nx.test") == 0 || strcmp(name, "_acme-challenge.nx.test") == 0) {
        rcode = 3;
    } else if (strcmp(name, "_acme-challenge.servfail.test") == 0) {
        rcode = 2;
    } else if (qtype == 1 && strncmp(name, "_acme", 5) != 0) {
        static const unsigned char lo[4] = {127, 0, 0, 1};
        o = put_rr(m, o, 1, lo, 4);
        an = 1;
    } else if (qtype == 16 && !tcp && strncmp(name, "_acme-challenge.tc", 18) == 0) {
        m[2] |= 0x02;
    } else if (qtype == 16 && (strcmp(name, "_acme-challenge.ok.test") == 0 ||
                               strcmp(name, "_acme-challenge.spoof.test") == 0 ||
                               strncmp(name, "_acme-challenge.tc", 18) == 0)) {
        static const char stale[] = "\x0bstale-value";
        o = put_rr(m, o, 16, stale, sizeof(stale) - 1);
        o = put_txt_ok(m, o);
        an = 2;
    } else if (qtype == 16 && strcmp(name, "_acme-challenge.big.test") == 0) {
        if (edns >= 1100) {
            o = put_big(m, o);
            an = 9;
        } else {
            m[2] |= 0x02; /* what a real server does without room for the answer */
        }
    } else if (qtype == 16 && strcmp(name, "_acme-challenge.wrong.test") == 0) {
        o = put_rr(m, o, 16, "\x0bwrong-value", 12);
        an = 1;
    } else if (qtype == 16 && strcmp(name, "_acme-challenge.cname.test") == 0) {
        static const unsigned char target[] = "\x06target\x04test";
        size_t toff = o + 12;
        o = put_rr(m, o, 5, target, sizeof(target));
        o = put16(m, o, 0xc000 | (unsigned)toff);
        o = put16(m, o, 16);
        o = put16(m, o, 1);
        o = put16(m, o, 0);
        o = put16(m, o, 60);
        o = put16(m, o, (unsigned)strlen(T_DNS_TXT) + 1);
        m[o++] = (unsigned char)strlen(T_DNS_TXT);
        memcpy(m + o, T_DNS_TXT, strlen(T_DNS_TXT));
        o += strlen(T_DNS_TXT);
        an = 2;
    } else if (qtype == 16 && strcmp(name, "_acme-challenge.trunc.test") == 0) {
        o = put_rr(m, o, 16, "\x0bwrong-value", 12) - 7; /* cut inside the rdata */
        an = 1;
    } else if (qtype == 16 && strcmp(name, "_acme-challenge.loop.test") == 0) {
        o = put16(m, o, 0xc000 | (unsigned)o); /* owner name pointing at itself */
        o = put16(m, o, 16);
        an = 1;
    }
    m[3] = (unsigned char)(0x80 | rcode);
    put16(m, 6, (unsigned)an);
    return o;
}

/*
 * Reads the question of q (n bytes) into name and *qtype and the EDNS0
 * payload of an OPT right after it into *edns (0 without one). Returns the
 * offset past the question, 0 when q is not a query we understand.
 */
static size_t dns_question(const unsigned char *q, size_t n, char name[256], unsigned *qtype,
                           unsigned *edns)
{
    size_t o = 12, nl = 0;
    if (n < 17)
        return 0;
    while (o < n && q[o] != 0 && o + 1 + q[o] < n && nl + q[o] + 2 < 256) {
        if (nl > 0)
            name[nl++] = '.';
        memcpy(name + nl, q + o + 1, q[o]);
        nl += q[o];
        o += 1 + q[o];
    }
    name[nl] = '\0';
    o++;
    if (o + 4 > n)
        return 0;
    *qtype = (unsigned)(q[o] << 8 | q[o + 1]);
    *edns = o + 15 <= n && q[o + 4] == 0 && q[o + 6] == 41 ? (unsigned)(q[o + 7] << 8 | q[o + 8])
                                                           : 0;
    return o + 4;
}

static void dns_udp_one(struct tsrv *s)
{
    unsigned char q[512], m[2048];
    char name[256] = "";
    unsigned qtype, edns;
    struct sockaddr_storage from;
    socklen_t fl = sizeof(from);
    ssize_t n = recvfrom(s->fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
    size_t qend = n > 0 ? dns_question(q, (size_t)n, name, &qtype, &edns) : 0;
    if (qend == 0)
        return;
    pthread_mutex_lock(&s->mu);
    s->hits[0]++;
    pthread_mutex_unlock(&s->mu);
    size_t alen = dns_answer(q, qend, name, qtype, false, edns, m);
    if (strcmp(name, "_acme-challenge.spoof.test") == 0) {
        /* A forged answer with another id first: must be ignored. */
        unsigned char bad[2048];
        memcpy(bad, m, alen);
        bad[0] ^= 0x55;
        bad[1] ^= 0xaa;
        sendto(s->fd, bad, alen, 0, (struct sockaddr *)&from, fl);
    }
    sendto(s->fd, m, alen, 0, (struct sockaddr *)&from, fl);
}

static bool recv_all(int c, unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = recv(c, p, n, 0);
        if (r <= 0)
            return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

/*
 * One DNS-over-TCP exchange. The tc* names choose how the framed answer goes
 * wrong: a length prefix past the data, bytes after the message, another id,
 * a prefix too short for a header. big.test is only served over UDP.
 */
static void dns_tcp_conn(struct tsrv *s, int c)
{
    unsigned char q[512], m[2048];
    char name[256] = "";
    unsigned qtype, edns;
    size_t qlen, qend, alen, plen;

    timeouts(c);
    if (!recv_all(c, q, 2) || (qlen = (size_t)(q[0] << 8 | q[1])) > sizeof(q) ||
        !recv_all(c, q, qlen) || (qend = dns_question(q, qlen, name, &qtype, &edns)) == 0 ||
        strcmp(name, "_acme-challenge.big.test") == 0)
        return;
    pthread_mutex_lock(&s->mu);
    s->hits[1]++;
    pthread_mutex_unlock(&s->mu);
    alen = dns_answer(q, qend, name, qtype, true, edns, m + 2);
    plen = alen;
    if (strcmp(name, "_acme-challenge.tcshort.test") == 0) {
        plen = alen + 400;
    } else if (strcmp(name, "_acme-challenge.tcjunk.test") == 0) {
        memcpy(m + 2 + alen, "junk", 4);
        alen = plen = alen + 4;
    } else if (strcmp(name, "_acme-challenge.tcid.test") == 0) {
        m[2] ^= 0x55;
    } else if (strcmp(name, "_acme-challenge.tcgarbage.test") == 0) {
        alen = plen = 5;
    }
    put16(m, 0, (unsigned)plen);
    if (send(c, m, alen + 2, MSG_NOSIGNAL) < 0)
        perror("dns tcp send");
}

static void *dns_main(void *arg)
{
    struct tsrv *s = arg;
    while (!s->stop) {
        struct pollfd p[2] = {{.fd = s->fd, .events = POLLIN},
                              {.fd = s->tcp_fd > 0 ? s->tcp_fd : -1, .events = POLLIN}};
        if (poll(p, 2, 100) <= 0)
            continue;
        if (p[0].revents & POLLIN)
            dns_udp_one(s);
        if (p[1].revents & POLLIN) {
            int c = accept(s->tcp_fd, NULL, NULL);
            if (c >= 0) {
                dns_tcp_conn(s, c);
                close(c);
            }
        }
    }
    return NULL;
}

/* UDP and, with tcp, TCP on the same port, as a resolver is addressed. */
static int dns_start(struct tsrv *s, bool tcp)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->fd = -1;
    for (int i = 0; i < 20 && s->fd < 0; i++) {
        int tport = 0;
        s->tcp_fd = tcp ? listen_on(SOCK_STREAM, &tport) : 0;
        if (s->tcp_fd < 0)
            return -1;
        s->fd = listen_port(SOCK_DGRAM, tport, &s->port);
        if (s->fd < 0 && s->tcp_fd > 0)
            close(s->tcp_fd); /* that UDP port is taken: try another */
    }
    if (s->fd < 0)
        return -1;
    return pthread_create(&s->th, NULL, dns_main, s) == 0 ? 0 : -1;
}

int tsrv_dns_start(struct tsrv *s)
{
    return dns_start(s, true);
}

int tsrv_dns_udp_start(struct tsrv *s)
{
    return dns_start(s, false);
}

/* ---- TLS ---- */

static EVP_PKEY *tls_key;
static struct {
    const char *name;
    X509 *cert;
} tls_certs[] = {{"ok.test", NULL}, {"badhash.test", NULL}, {"noext.test", NULL},
                 {"noalpn.test", NULL}, {"1.0.0.127.in-addr.arpa", NULL}};

static X509 *make_cert(const char *name, int mode)
{
    X509 *x = X509_new();
    X509V3_CTX v3;
    char san[300];
    unsigned char der[34] = {0x04, 0x20};
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    ASN1_OBJECT *obj = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
    X509_EXTENSION *ext;

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"acme-tls test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, tls_key);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    if (mode == 4)
        snprintf(san, sizeof(san), "IP:127.0.0.1");
    else
        snprintf(san, sizeof(san), "DNS:%s", name);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    EVP_Digest(T_KEYAUTH, strlen(T_KEYAUTH), der + 2, NULL, EVP_sha256(), NULL);
    if (mode == 1)
        der[10] ^= 1;
    if (mode != 2) {
        ASN1_OCTET_STRING_set(os, der, sizeof(der));
        ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 1, os);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(obj);
    X509_sign(x, tls_key, EVP_sha256());
    return x;
}

static int sni_cb(SSL *ssl, int *al, void *arg)
{
    struct tsrv *s = arg;
    const char *sn = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    pthread_mutex_lock(&s->mu);
    snprintf(s->last_host, sizeof(s->last_host), "%s", sn != NULL ? sn : "");
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; sn != NULL && i < sizeof(tls_certs) / sizeof(tls_certs[0]); i++) {
        if (strcmp(sn, tls_certs[i].name) == 0) {
            SSL_use_certificate(ssl, tls_certs[i].cert);
            SSL_use_PrivateKey(ssl, tls_key);
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg)
{
    struct tsrv *s = arg;
    const char *sn = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    static const unsigned char want[] = "\x0a" "acme-tls/1";
    pthread_mutex_lock(&s->mu);
    snprintf(s->last_alpn, sizeof(s->last_alpn), "%.*s", (int)(inlen > 0 ? inlen - 1 : 0),
             inlen > 0 ? (const char *)in + 1 : "");
    pthread_mutex_unlock(&s->mu);
    if (sn != NULL && strcmp(sn, "noalpn.test") == 0)
        return SSL_TLSEXT_ERR_NOACK;
    if (SSL_select_next_proto((unsigned char **)out, outlen, want, sizeof(want) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    return SSL_TLSEXT_ERR_OK;
}

static void *tls_main(void *arg)
{
    struct tsrv *s = arg;
    while (wait_ready(s, s->fd)) {
        int c = accept(s->fd, NULL, NULL);
        SSL *ssl;
        if (c < 0)
            continue;
        timeouts(c);
        ssl = SSL_new(s->ssl_ctx);
        SSL_set_fd(ssl, c);
        pthread_mutex_lock(&s->mu);
        s->hits[0]++;
        pthread_mutex_unlock(&s->mu);
        if (SSL_accept(ssl) == 1) {
            char b[16];
            /* RFC 8737 §4: the validator sends nothing and closes. */
            if (SSL_read(ssl, b, sizeof(b)) > 0) {
                pthread_mutex_lock(&s->mu);
                s->hits[1]++;
                pthread_mutex_unlock(&s->mu);
            }
        }
        SSL_free(ssl);
        close(c);
    }
    return NULL;
}

int tsrv_tls_start(struct tsrv *s)
{
    SSL_CTX *ctx;
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    if (tls_key == NULL) {
        tls_key = EVP_EC_gen("P-256");
        for (size_t i = 0; i < sizeof(tls_certs) / sizeof(tls_certs[0]); i++)
            tls_certs[i].cert = make_cert(tls_certs[i].name, (int)i == 3 ? 0 : (int)i);
    }
    ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx, tls_certs[0].cert);
    SSL_CTX_use_PrivateKey(ctx, tls_key);
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, s);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, s);
    s->ssl_ctx = ctx;
    s->fd = listen_on(SOCK_STREAM, &s->port);
    if (s->fd < 0)
        return -1;
    return pthread_create(&s->th, NULL, tls_main, s) == 0 ? 0 : -1;
}

void tsrv_stop(struct tsrv *s)
{
    s->stop = 1;
    pthread_join(s->th, NULL);
    close(s->fd);
    if (s->tcp_fd > 0)
        close(s->tcp_fd);
    if (s->ssl_ctx != NULL) {
        SSL_CTX_free(s->ssl_ctx);
        for (size_t i = 0; i < sizeof(tls_certs) / sizeof(tls_certs[0]); i++) {
            X509_free(tls_certs[i].cert);
            tls_certs[i].cert = NULL;
        }
        EVP_PKEY_free(tls_key);
        tls_key = NULL;
    }
    pthread_mutex_destroy(&s->mu);
}

int tsrv_hang_open(int *port)
{
    return listen_on(SOCK_STREAM, port);
}

int tsrv_refused_port(void)
{
    int port = 0, fd = listen_on(SOCK_STREAM, &port);
    close(fd);
    return port;
}
