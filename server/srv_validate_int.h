/*
 * srv_validate_int.h: declarations shared by the challenge validator's files
 * (srv_validate.c: thread, queue, attempts; srv_validate_dns.c: a small DNS
 * stub client; srv_validate_dnstcp.c: its TCP fallback; srv_validate_http.c:
 * http-01; srv_validate_tls.c: tls-alpn-01)
 * and by its unit tests. Everything here runs on the validator thread.
 */
#ifndef ACMESRV_SRV_VALIDATE_INT_H
#define ACMESRV_SRV_VALIDATE_INT_H

#include "server/srv_int.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/common.h"

struct event_base;
struct event;
struct bufferevent;
struct ssl_ctx_st;
struct acme_validation;

/* ---- DNS messages (pure, srv_validate_dns.c) ---- */

#define SRV_DNS_MSG_MAX 4096   /* UDP answers larger than this are refused */
#define SRV_DNS_EDNS_UDP 1232  /* EDNS0 payload we advertise (DNS flag day 2020) */
#define SRV_DNS_QUERY_MAX 300  /* header, a 255-byte name, QTYPE/QCLASS, the OPT record */
#define SRV_DNS_NAME_MAX 255   /* presentation form, without the trailing dot */
#define SRV_DNS_MAX_ADDRS 8
#define SRV_DNS_MAX_TXT 16
#define SRV_DNS_TXT_MAX 512    /* one TXT record's strings, concatenated */

enum srv_dns_type { SRV_DNS_A = 1, SRV_DNS_CNAME = 5, SRV_DNS_TXT = 16, SRV_DNS_AAAA = 28 };
enum srv_dns_rcode { SRV_DNS_NOERROR = 0, SRV_DNS_SERVFAIL = 2, SRV_DNS_NXDOMAIN = 3 };

/* What an answer held for the question asked (CNAME chains followed). */
struct srv_dns_answer {
    int rcode;                              /* enum srv_dns_rcode or another RCODE */
    bool truncated;                         /* TC bit set: nothing else is filled */
    size_t naddrs;
    struct sockaddr_storage addrs[SRV_DNS_MAX_ADDRS]; /* port 0 */
    size_t ntxt;
    char txt[SRV_DNS_MAX_TXT][SRV_DNS_TXT_MAX + 1];
};

/*
 * Builds a recursive query for name (presentation form, an optional trailing
 * dot) with an EDNS0 OPT record advertising SRV_DNS_EDNS_UDP into out (outlen
 * bytes). *len is the message length. 0/-1 with err (name too long, bad label).
 */
int srv_dns_query_fmt(uint16_t id, const char *name, enum srv_dns_type type, unsigned char *out,
                      size_t outlen, size_t *len, char err[ERR_LEN]);
/*
 * Parses msg as the answer to (id, name, type) with strict bounds checks
 * (compression pointers must point backwards, hop limit, rdlength inside the
 * message, every section walked, no trailing bytes, at most one OPT and only
 * in the additional section). Returns 0 and fills out (only rcode and
 * truncated when TC is set: ask again over TCP); 1 when the message is not an
 * answer to this question (wrong id or question: ignore it on UDP); -1 with
 * err when malformed.
 */
int srv_dns_answer_parse(const unsigned char *msg, size_t len, uint16_t id, const char *name,
                         enum srv_dns_type type, struct srv_dns_answer *out, char err[ERR_LEN]);

/* ---- DNS queries on the loop (srv_validate_dns.c) ---- */

struct srv_dnsq;
/* Called once with the answer, or with NULL and err when the query failed. */
typedef void srv_dnsq_done_fn(void *arg, const struct srv_dns_answer *ans, const char *err);
/*
 * Sends one query (random id, fresh socket on a random port, resent every
 * second) to the server at ns; a truncated (TC) answer repeats it over TCP
 * to the same address. The caller's try timer bounds the whole query.
 * done is never called synchronously. NULL with err.
 */
struct srv_dnsq *srv_dnsq_start(struct event_base *base, const struct sockaddr_storage *ns,
                                const char *name, enum srv_dns_type type, srv_dnsq_done_fn *done,
                                void *arg, char err[ERR_LEN]);
/* Cancels the query; done is not called afterwards. NULL-safe. */
void srv_dnsq_free(struct srv_dnsq *q);
/* ---- DNS over TCP, the TC fallback (srv_validate_dnstcp.c) ---- */

struct srv_dnstcp;
/*
 * Called once with the framed answer (msg borrowed for the call, len bytes,
 * not parsed) or with NULL and err (connect, send, read or framing failure).
 */
typedef void srv_dnstcp_done_fn(void *arg, const unsigned char *msg, size_t len,
                                const char *err);
/*
 * Connects to ns over TCP without blocking and sends query (qlen bytes, at
 * most SRV_DNS_QUERY_MAX) with its 2-byte length prefix (RFC 1035 §4.2.2),
 * then reads one length-prefixed answer. done is never called synchronously.
 * The caller's timer bounds the exchange. NULL with err.
 */
struct srv_dnstcp *srv_dnstcp_start(struct event_base *base, const struct sockaddr_storage *ns,
                                    const unsigned char *query, size_t qlen,
                                    srv_dnstcp_done_fn *done, void *arg, char err[ERR_LEN]);
/* Cancels the exchange; done is not called afterwards. NULL-safe. */
void srv_dnstcp_free(struct srv_dnstcp *t);

/*
 * Resolver address: "host:port" (IPv4, or "[v6]:port"; port 53 when
 * missing), or when spec is NULL the first nameserver of resolv_conf. 0/-1.
 */
int srv_dns_server_parse(const char *spec, const char *resolv_conf, struct sockaddr_storage *out,
                         char err[ERR_LEN]);

/* ---- one validation job (srv_validate.c) ---- */

#define SRV_HTTP_HDR_MAX 8192
#define SRV_HTTP_BODY_MAX 8192
#define SRV_HTTP_MAX_REDIRECTS 10
#define SRV_HOST_MAX 256
#define SRV_PATH_MAX 1024

/* Where a try is, so a timeout reports the right problem type. */
enum srv_vphase { SRV_VP_DNS, SRV_VP_CONNECT, SRV_VP_EXCHANGE };

struct srv_vjob {
    struct srv_validator *val;
    struct acme_validation *v;
    struct srv_vjob *next;       /* validator's list of live jobs */
    int attempt;                 /* 1-based number of the current try */
    bool try_over;               /* the current try has a result; ignore late events */
    bool ok;
    const char *ptype;           /* problem type of the current try's failure */
    char detail[512];
    struct event *try_timer;     /* per-try timeout */
    struct event *step_ev;       /* deferred finish / retry delay */
    bool step_start;             /* step_ev starts a try (else it finishes one) */
    int64_t early_ms;            /* clk_mono_ms of the last retry brought forward, else 0 */
    enum srv_vphase phase;
    /* Per-try resources, released by srv_vjob_reset_try(). */
    struct srv_dnsq *dnsq;
    bool dns_aaaa;               /* the A lookup came back empty; AAAA asked */
    void (*addr_cb)(struct srv_vjob *job, const struct sockaddr_storage *sa);
    struct bufferevent *bev;
    struct buf rx;               /* http-01 raw response */
    char host[SRV_HOST_MAX];     /* current http host (Host header) */
    int port;
    char path[SRV_PATH_MAX];
    int redirects;
};

/* The loop and settings all jobs share (srv_validate.c). */
struct event_base *srv_vjob_base(const struct srv_vjob *job);
const struct sockaddr_storage *srv_vjob_resolver(const struct srv_vjob *job);
int srv_vjob_http_port(const struct srv_vjob *job);
int srv_vjob_tls_port(const struct srv_vjob *job);
struct ssl_ctx_st *srv_vjob_ssl_ctx(const struct srv_vjob *job);

/*
 * Ends the current try: ok, or failed with a problem type ("connection",
 * "dns", ...) and a printf detail. Later calls for the same try are ignored.
 * Resources are released later, outside the caller's callback.
 */
void srv_vjob_finish(struct srv_vjob *job, bool ok, const char *ptype, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Looks up host (an IP literal needs no lookup) and calls connected(job, sa)
 * with its first address at port, or finishes the try with a "dns" problem.
 */
typedef void srv_vjob_addr_fn(struct srv_vjob *job, const struct sockaddr_storage *sa);
void srv_vjob_resolve(struct srv_vjob *job, const char *host, int port, srv_vjob_addr_fn *cb);

/* Per-type try starters. */
void srv_vhttp_start(struct srv_vjob *job);
void srv_vdns01_start(struct srv_vjob *job);
void srv_vtls_start(struct srv_vjob *job);

/* ---- http-01 response parsing (pure, srv_validate_http.c) ---- */

struct srv_http_resp {
    int status;
    char location[SRV_PATH_MAX];    /* empty when absent */
    const char *body;               /* points into the raw buffer (or dechunked copy) */
    size_t body_len;
};
/*
 * Parses raw (len bytes; eof when the peer closed). Returns 1 when the
 * response is complete, 0 when more bytes are needed, -1 with err when
 * malformed or over the limits. Chunked bodies are decoded into *scratch
 * (caller frees with buf_free).
 */
int srv_http_resp_parse(const char *raw, size_t len, bool eof, struct srv_http_resp *out,
                        struct buf *scratch, char err[ERR_LEN]);

#endif
