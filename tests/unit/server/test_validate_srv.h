/*
 * test_validate_srv.h: the real local servers unit_validate probes: an HTTP
 * responder, a UDP DNS server and a TLS (acme-tls/1) responder, each on
 * 127.0.0.1:<ephemeral> in its own thread.
 */
#ifndef TEST_VALIDATE_SRV_H
#define TEST_VALIDATE_SRV_H

#include <pthread.h>
#include <stdbool.h>

#define T_KEYAUTH "tok.thumbprint-for-tests"
#define T_DNS_TXT "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"

struct tsrv {
    int fd;
    int tcp_fd;              /* dns: TCP listener on the same port, 0 when none */
    int port;
    pthread_t th;
    volatile int stop;
    pthread_mutex_t mu;
    int hits[16];            /* http: requests per route; tls: handshakes; dns: UDP, TCP */
    char last_host[256];     /* http: last Host header; tls: last SNI */
    char last_alpn[64];      /* tls: ALPN list offered, wire form made printable */
    void *ssl_ctx;
};

int tsrv_http_start(struct tsrv *s);
/* Requests seen for token since start. */
int tsrv_http_hits(struct tsrv *s, const char *token);
/* DNS over UDP and TCP on one port. */
int tsrv_dns_start(struct tsrv *s);
/* DNS over UDP only: TCP to its port is refused. */
int tsrv_dns_udp_start(struct tsrv *s);
int tsrv_tls_start(struct tsrv *s);
void tsrv_stop(struct tsrv *s);
/* A listening socket that never accepts (127.0.0.1); returns its fd, port in *port. */
int tsrv_hang_open(int *port);
/* A port where nothing listens. */
int tsrv_refused_port(void);

#endif
