/*
 * srv_validate_dns.c: the validator's own DNS stub client. evdns has no TXT
 * lookup, so dns-01 needs a client anyway; http-01 and tls-alpn-01 use the
 * same one for A/AAAA so every lookup goes to the one configured resolver.
 * Messages from the network are untrusted: every read is bounds-checked and
 * compression pointers must point backwards with a hop limit.
 */
#include "server/srv_validate_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/util.h>

#include "acme/acme.h"

#define DNS_HDR_LEN 12
#define DNS_MAX_HOPS 16     /* compression pointers followed per name */
#define DNS_MAX_RR 32       /* answer records examined */
#define DNS_MAX_CHAIN 8     /* CNAME hops followed */
#define DNS_CLASS_IN 1
#define DNS_TYPE_OPT 41
#define DNS_OPT_LEN 11      /* root owner, type, payload size, TTL, empty rdata */
#define DNS_RESEND_MS 1000

static void set_err(char err[ERR_LEN], const char *msg)
{
    if (err != NULL)
        snprintf(err, ERR_LEN, "%s", msg);
}

static uint16_t rd16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

/* Copies name without its trailing dot into out (SRV_DNS_NAME_MAX + 1). 0/-1. */
static int name_trim(const char *name, char *out)
{
    size_t n = strlen(name);
    if (n > 0 && name[n - 1] == '.')
        n--;
    if (n == 0 || n > SRV_DNS_NAME_MAX)
        return -1;
    memcpy(out, name, n);
    out[n] = '\0';
    return 0;
}

int srv_dns_query_fmt(uint16_t id, const char *name, enum srv_dns_type type, unsigned char *out,
                      size_t outlen, size_t *len, char err[ERR_LEN])
{
    char nm[SRV_DNS_NAME_MAX + 1];
    size_t o = DNS_HDR_LEN;
    const char *p;

    if (name_trim(name, nm) != 0 || outlen < DNS_HDR_LEN + strlen(nm) + 2 + 4 + DNS_OPT_LEN) {
        set_err(err, "DNS name empty or too long");
        return -1;
    }
    memset(out, 0, DNS_HDR_LEN);
    out[0] = (unsigned char)(id >> 8);
    out[1] = (unsigned char)id;
    out[2] = 0x01; /* RD: we ask a recursive resolver */
    out[5] = 1;    /* QDCOUNT */
    out[11] = 1;   /* ARCOUNT: the OPT record */
    p = nm;
    while (*p != '\0') {
        const char *dot = strchr(p, '.');
        size_t l = dot != NULL ? (size_t)(dot - p) : strlen(p);
        if (l == 0 || l > 63) {
            set_err(err, "DNS name has an empty or over-long label");
            return -1;
        }
        out[o++] = (unsigned char)l;
        memcpy(out + o, p, l);
        o += l;
        p += l;
        if (*p == '.')
            p++;
    }
    out[o++] = 0;
    out[o++] = 0;
    out[o++] = (unsigned char)type;
    out[o++] = 0;
    out[o++] = DNS_CLASS_IN;
    /* EDNS0 (RFC 6891): answers up to the flag-day size come over UDP, not TC. */
    memset(out + o, 0, DNS_OPT_LEN);
    out[o + 2] = DNS_TYPE_OPT;
    out[o + 3] = (unsigned char)(SRV_DNS_EDNS_UDP >> 8);
    out[o + 4] = (unsigned char)(SRV_DNS_EDNS_UDP & 0xff);
    o += DNS_OPT_LEN;
    *len = o;
    return 0;
}

/*
 * Reads the possibly compressed name at *off into out (SRV_DNS_NAME_MAX + 1,
 * dotted, no trailing dot, "" for the root) and moves *off past it. 0/-1.
 */
static int read_name(const unsigned char *msg, size_t len, size_t *off, char *out,
                     char err[ERR_LEN])
{
    size_t pos = *off, o = 0, next = 0;
    int hops = 0;
    bool jumped = false;

    for (;;) {
        if (pos >= len) {
            set_err(err, "malformed DNS response: name runs past the message");
            return -1;
        }
        unsigned c = msg[pos];
        if (c == 0) {
            if (!jumped)
                next = pos + 1;
            break;
        }
        if ((c & 0xc0) == 0xc0) {
            if (pos + 1 >= len) {
                set_err(err, "malformed DNS response: truncated compression pointer");
                return -1;
            }
            size_t ptr = ((size_t)(c & 0x3f) << 8) | msg[pos + 1];
            /* Backwards only, and a hop limit: pointer loops are the classic attack. */
            if (ptr >= pos || ++hops > DNS_MAX_HOPS) {
                set_err(err, "malformed DNS response: bad compression pointer");
                return -1;
            }
            if (!jumped)
                next = pos + 2;
            jumped = true;
            pos = ptr;
            continue;
        }
        if ((c & 0xc0) != 0 || pos + 1 + c > len) {
            set_err(err, "malformed DNS response: bad label");
            return -1;
        }
        if (o + (o > 0 ? 1 : 0) + c > SRV_DNS_NAME_MAX) {
            set_err(err, "malformed DNS response: name too long");
            return -1;
        }
        if (o > 0)
            out[o++] = '.';
        for (unsigned i = 0; i < c; i++) {
            unsigned char ch = msg[pos + 1 + i];
            /* Such bytes never match a name we ask for; refusing keeps out[] printable. */
            if (ch <= 0x20 || ch >= 0x7f || ch == '.') {
                set_err(err, "malformed DNS response: unexpected byte in a label");
                return -1;
            }
            out[o++] = (char)ch;
        }
        pos += 1 + c;
    }
    out[o] = '\0';
    *off = next;
    return 0;
}

struct dns_rr {
    char owner[SRV_DNS_NAME_MAX + 1];
    uint16_t type;
    uint16_t cls;
    size_t rdoff;
    uint16_t rdlen;
};

/* Reads the record at *off, its rdata bounded by the message, and moves past it. */
static int rr_read(const unsigned char *msg, size_t len, size_t *off, struct dns_rr *rr,
                   char err[ERR_LEN])
{
    if (read_name(msg, len, off, rr->owner, err) != 0)
        return -1;
    if (*off + 10 > len) {
        set_err(err, "malformed DNS response: truncated record");
        return -1;
    }
    rr->type = rd16(msg + *off);
    rr->cls = rd16(msg + *off + 2);
    rr->rdlen = rd16(msg + *off + 8);
    rr->rdoff = *off + 10;
    if (rr->rdlen > len - rr->rdoff) {
        set_err(err, "malformed DNS response: rdlength past the message");
        return -1;
    }
    *off = rr->rdoff + rr->rdlen;
    return 0;
}

/*
 * Walks every section from off, keeping class-IN answer records in rrs.
 * Trailing bytes mean counts and data disagree: a bad length like any other.
 * One root-owned OPT may sit in the additional section (RFC 6891 §6.1.1).
 */
static int sections_read(const unsigned char *msg, size_t len, size_t off, struct dns_rr *rrs,
                         size_t *nrr, int *rcode, char err[ERR_LEN])
{
    unsigned an = rd16(msg + 6), an_ns = an + rd16(msg + 8), all = an_ns + rd16(msg + 10);
    bool opt = false;

    *nrr = 0;
    for (unsigned i = 0; i < all; i++) {
        struct dns_rr rr;
        if (rr_read(msg, len, &off, &rr, err) != 0)
            return -1;
        if (rr.type == DNS_TYPE_OPT) {
            if (i < an_ns || opt || rr.owner[0] != '\0') {
                set_err(err, "malformed DNS response: misplaced OPT record");
                return -1;
            }
            opt = true;
            *rcode |= msg[rr.rdoff - 6] << 4; /* TTL's first byte: EXTENDED-RCODE */
        } else if (i < an && rr.cls == DNS_CLASS_IN && *nrr < DNS_MAX_RR) {
            rrs[(*nrr)++] = rr;
        }
    }
    if (off != len) {
        set_err(err, "malformed DNS response: trailing bytes after the last record");
        return -1;
    }
    return 0;
}

/* Concatenates the character-strings of one TXT rdata into out. 0/-1. */
static int txt_read(const unsigned char *rd, size_t rdlen, char *out, char err[ERR_LEN])
{
    size_t i = 0, o = 0;
    while (i < rdlen) {
        size_t l = rd[i++];
        if (l > rdlen - i) {
            set_err(err, "malformed DNS response: TXT string past rdata");
            return -1;
        }
        for (size_t k = 0; k < l && o < SRV_DNS_TXT_MAX; k++)
            out[o++] = rd[i + k] == '\0' ? '?' : (char)rd[i + k];
        i += l;
    }
    out[o] = '\0';
    return 0;
}

/* Collects the records of the wanted type owned by name or a CNAME it leads to. */
static int answer_collect(const unsigned char *msg, const struct dns_rr *rrs, size_t nrr,
                          const char *name, enum srv_dns_type type, struct srv_dns_answer *out,
                          char err[ERR_LEN])
{
    char chain[DNS_MAX_CHAIN + 1][SRV_DNS_NAME_MAX + 1];
    size_t nchain = 1;

    snprintf(chain[0], sizeof(chain[0]), "%s", name);
    for (size_t hop = 0; hop < DNS_MAX_CHAIN; hop++) {
        bool found = false;
        for (size_t i = 0; i < nrr && !found; i++) {
            if (rrs[i].type != SRV_DNS_CNAME || strcasecmp(rrs[i].owner, chain[nchain - 1]) != 0)
                continue;
            size_t off = rrs[i].rdoff;
            if (read_name(msg, rrs[i].rdoff + rrs[i].rdlen, &off, chain[nchain], err) != 0)
                return -1;
            nchain++;
            found = true;
        }
        if (!found)
            break;
    }
    for (size_t i = 0; i < nrr; i++) {
        bool mine = false;
        for (size_t c = 0; c < nchain; c++)
            mine = mine || strcasecmp(rrs[i].owner, chain[c]) == 0;
        if (!mine || rrs[i].type != (uint16_t)type)
            continue;
        const unsigned char *rd = msg + rrs[i].rdoff;
        if (type == SRV_DNS_TXT && out->ntxt < SRV_DNS_MAX_TXT) {
            if (txt_read(rd, rrs[i].rdlen, out->txt[out->ntxt], err) != 0)
                return -1;
            out->ntxt++;
        } else if ((type == SRV_DNS_A || type == SRV_DNS_AAAA) && out->naddrs < SRV_DNS_MAX_ADDRS) {
            struct sockaddr_storage *ss = &out->addrs[out->naddrs];
            memset(ss, 0, sizeof(*ss));
            if (type == SRV_DNS_A && rrs[i].rdlen == 4) {
                struct sockaddr_in *sin = (struct sockaddr_in *)ss;
                sin->sin_family = AF_INET;
                memcpy(&sin->sin_addr, rd, 4);
            } else if (type == SRV_DNS_AAAA && rrs[i].rdlen == 16) {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
                sin6->sin6_family = AF_INET6;
                memcpy(&sin6->sin6_addr, rd, 16);
            } else {
                set_err(err, "malformed DNS response: bad address length");
                return -1;
            }
            out->naddrs++;
        }
    }
    return 0;
}

int srv_dns_answer_parse(const unsigned char *msg, size_t len, uint16_t id, const char *name,
                         enum srv_dns_type type, struct srv_dns_answer *out, char err[ERR_LEN])
{
    char want[SRV_DNS_NAME_MAX + 1], qname[SRV_DNS_NAME_MAX + 1];
    struct dns_rr rrs[DNS_MAX_RR];
    size_t off = DNS_HDR_LEN, nrr = 0;

    memset(out, 0, sizeof(*out));
    /* Not even a header, another id, or not a response: not ours; keep waiting. */
    if (len < DNS_HDR_LEN || rd16(msg) != id || (msg[2] & 0x80) == 0)
        return 1;
    if (name_trim(name, want) != 0) {
        set_err(err, "bad query name");
        return -1;
    }
    out->rcode = msg[3] & 0x0f;
    out->truncated = (msg[2] & 0x02) != 0;
    if (rd16(msg + 4) != 1) {
        set_err(err, "malformed DNS response: question count is not 1");
        return -1;
    }
    if (read_name(msg, len, &off, qname, err) != 0)
        return -1;
    if (off + 4 > len) {
        set_err(err, "malformed DNS response: truncated question");
        return -1;
    }
    if (strcasecmp(qname, want) != 0 || rd16(msg + off) != (uint16_t)type)
        return 1;
    off += 4;
    /* Its records are never used (the query goes again over TCP), so they need no parsing. */
    if (out->truncated)
        return 0;
    if (sections_read(msg, len, off, rrs, &nrr, &out->rcode, err) != 0)
        return -1;
    if (out->rcode != SRV_DNS_NOERROR)
        return 0;
    return answer_collect(msg, rrs, nrr, want, type, out, err);
}

/* ---- resolver address ---- */

static int addr_parse(const char *s, struct sockaddr_storage *out)
{
    int slen = (int)sizeof(*out);
    memset(out, 0, sizeof(*out));
    if (evutil_parse_sockaddr_port(s, (struct sockaddr *)out, &slen) != 0)
        return -1;
    if (out->ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)out;
        if (sin->sin_port == 0)
            sin->sin_port = htons(53);
    } else if (out->ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
        if (sin6->sin6_port == 0)
            sin6->sin6_port = htons(53);
    } else {
        return -1;
    }
    return 0;
}

int srv_dns_server_parse(const char *spec, const char *resolv_conf, struct sockaddr_storage *out,
                         char err[ERR_LEN])
{
    char line[512];
    FILE *f = NULL;
    int rc = -1;

    if (spec != NULL) {
        if (addr_parse(spec, out) != 0) {
            snprintf(err, ERR_LEN, "resolver \"%.64s\": expected IP:port", spec);
            goto out;
        }
        rc = 0;
        goto out;
    }
    f = fopen(resolv_conf, "r");
    if (f == NULL) {
        snprintf(err, ERR_LEN, "%s: %s", resolv_conf, strerror(errno));
        goto out;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char addr[128];
        /* "%127s" bounds the copy; sscanf on a local line is fine here. */
        if (sscanf(line, " nameserver %127s", addr) == 1 && addr_parse(addr, out) == 0) {
            rc = 0;
            goto out;
        }
    }
    snprintf(err, ERR_LEN, "%s: no usable nameserver", resolv_conf);
out:
    if (f != NULL)
        fclose(f);
    return rc;
}

/* ---- one query on the loop ---- */

struct srv_dnsq {
    evutil_socket_t fd;
    struct event *rd_ev;
    struct event *resend_ev;
    struct event_base *base;
    struct sockaddr_storage ns;
    struct srv_dnstcp *tcp;     /* set once a TC answer moved the query to TCP */
    uint16_t id;
    enum srv_dns_type type;
    char name[SRV_DNS_NAME_MAX + 1];
    unsigned char query[SRV_DNS_QUERY_MAX];
    size_t qlen;
    srv_dnsq_done_fn *done;
    void *arg;
};

static void dnsq_resend_cb(evutil_socket_t fd, short what, void *arg)
{
    struct srv_dnsq *q = arg;
    /* A lost datagram is normal for UDP; the try timer bounds the total wait. */
    if (send(q->fd, q->query, q->qlen, 0) < 0)
        log_debug("validate", "DNS resend for %s: %s", q->name, strerror(errno));
}

static void dnsq_tcp_done(void *arg, const unsigned char *msg, size_t len, const char *terr)
{
    struct srv_dnsq *q = arg;
    char err[ERR_LEN] = "";
    struct srv_dns_answer *ans = NULL;
    int rc = -1;

    if (terr != NULL) {
        snprintf(err, sizeof(err), "DNS query for %.128s: %s", q->name, terr);
        goto out;
    }
    ans = xmalloc(sizeof(*ans));
    rc = srv_dns_answer_parse(msg, len, q->id, q->name, q->type, ans, err);
    /* Unlike a stray datagram, the only message on our connection cannot be ignored. */
    if (rc == 1 || (rc == 0 && ans->truncated)) {
        snprintf(err, sizeof(err), "DNS answer over TCP for %.128s: %s", q->name,
                 rc == 1 ? "id or question does not match the query" : "truncated");
        rc = -1;
    }
out:
    /* done may free q, and with it msg: touch neither afterwards. */
    q->done(q->arg, rc == 0 ? ans : NULL, rc == 0 ? NULL : err);
    free(ans);
}

/* TC: the answer did not fit in UDP; ask the same resolver again over TCP (RFC 7766 §5). */
static void dnsq_to_tcp(struct srv_dnsq *q)
{
    char err[ERR_LEN];

    /* The UDP exchange is over: no more resends, and late datagrams are not read. */
    event_del(q->rd_ev);
    event_del(q->resend_ev);
    log_debug("validate", "DNS answer for %s truncated, retrying over TCP", q->name);
    q->tcp = srv_dnstcp_start(q->base, &q->ns, q->query, q->qlen, dnsq_tcp_done, q, err);
    if (q->tcp == NULL)
        q->done(q->arg, NULL, err);
}

static void dnsq_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct srv_dnsq *q = arg;
    unsigned char msg[SRV_DNS_MSG_MAX];
    char err[ERR_LEN] = "";
    struct srv_dns_answer *ans = NULL;
    ssize_t n = recv(q->fd, msg, sizeof(msg), 0);

    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        /* ICMP port unreachable comes back as ECONNREFUSED on a connected socket. */
        snprintf(err, sizeof(err), "DNS query for %.128s: %s", q->name, strerror(errno));
        q->done(q->arg, NULL, err);
        return;
    }
    ans = xmalloc(sizeof(*ans));
    int rc = srv_dns_answer_parse(msg, (size_t)n, q->id, q->name, q->type, ans, err);
    if (rc == 1) {
        log_debug("validate", "ignoring an unrelated DNS message for %s", q->name);
        free(ans);
        return;
    }
    if (rc == 0 && ans->truncated) {
        free(ans);
        dnsq_to_tcp(q);
        return;
    }
    /* done may free q: touch nothing of q afterwards. */
    if (rc == 0)
        q->done(q->arg, ans, NULL);
    else
        q->done(q->arg, NULL, err);
    free(ans);
}

struct srv_dnsq *srv_dnsq_start(struct event_base *base, const struct sockaddr_storage *ns,
                                const char *name, enum srv_dns_type type, srv_dnsq_done_fn *done,
                                void *arg, char err[ERR_LEN])
{
    struct srv_dnsq *q = xcalloc(1, sizeof(*q));
    socklen_t slen = ns->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                               : sizeof(struct sockaddr_in);
    struct timeval tv = {DNS_RESEND_MS / 1000, (DNS_RESEND_MS % 1000) * 1000};

    q->fd = -1;
    q->base = base;
    q->ns = *ns;
    q->type = type;
    q->done = done;
    q->arg = arg;
    snprintf(q->name, sizeof(q->name), "%s", name);
    if (rand_bytes(&q->id, sizeof(q->id)) != 0) {
        set_err(err, "no randomness for the DNS query id");
        goto err;
    }
    if (srv_dns_query_fmt(q->id, name, type, q->query, sizeof(q->query), &q->qlen, err) != 0)
        goto err;
    /* A fresh socket per query: the kernel picks a random ephemeral source port. */
    q->fd = socket(ns->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (q->fd < 0 || connect(q->fd, (const struct sockaddr *)ns, slen) != 0 ||
        send(q->fd, q->query, q->qlen, 0) < 0) {
        snprintf(err, ERR_LEN, "DNS query for %.128s: %s", name, strerror(errno));
        goto err;
    }
    q->rd_ev = event_new(base, q->fd, EV_READ | EV_PERSIST, dnsq_read_cb, q);
    q->resend_ev = event_new(base, -1, EV_PERSIST, dnsq_resend_cb, q);
    if (q->rd_ev == NULL || q->resend_ev == NULL || event_add(q->rd_ev, NULL) != 0 ||
        event_add(q->resend_ev, &tv) != 0) {
        set_err(err, "DNS query: event setup failed");
        goto err;
    }
    return q;
err:
    srv_dnsq_free(q);
    return NULL;
}

void srv_dnsq_free(struct srv_dnsq *q)
{
    if (q == NULL)
        return;
    if (q->rd_ev != NULL)
        event_free(q->rd_ev);
    if (q->resend_ev != NULL)
        event_free(q->resend_ev);
    srv_dnstcp_free(q->tcp);
    if (q->fd >= 0)
        close(q->fd);
    free(q);
}

/* ---- dns-01 (RFC 8555 §8.4) ---- */

static void vdns01_done(void *arg, const struct srv_dns_answer *ans, const char *err)
{
    struct srv_vjob *job = arg;
    char shown[SRV_DNS_TXT_MAX];

    if (ans == NULL) {
        srv_vjob_finish(job, false, "dns", "DNS problem: %s", err);
    } else if (ans->rcode == SRV_DNS_NXDOMAIN) {
        srv_vjob_finish(job, false, "dns", "DNS problem: NXDOMAIN looking up TXT for %s",
                        job->host);
    } else if (ans->rcode != SRV_DNS_NOERROR) {
        srv_vjob_finish(job, false, "dns", "DNS problem: %s (rcode %d) looking up TXT for %s",
                        ans->rcode == SRV_DNS_SERVFAIL ? "SERVFAIL" : "server error", ans->rcode,
                        job->host);
    } else if (ans->ntxt == 0) {
        /*
         * NOERROR without TXT: DNS worked and the name exists, the client's
         * record is what is missing (DN-3, E-13), unlike NXDOMAIN or SERVFAIL
         * above, which are `dns` (E-11).
         */
        srv_vjob_finish(job, false, "incorrectResponse", "No TXT record found at %s", job->host);
    } else {
        for (size_t i = 0; i < ans->ntxt; i++) {
            if (strcmp(ans->txt[i], job->v->dns01_txt) == 0) {
                srv_vjob_finish(job, true, NULL, NULL);
                return;
            }
        }
        log_escape(ans->txt[0], 64, shown, sizeof(shown));
        srv_vjob_finish(job, false, "incorrectResponse",
                        "Incorrect TXT record \"%s\"%s found at %s", shown,
                        ans->ntxt > 1 ? " (and others)" : "", job->host);
    }
}

void srv_vdns01_start(struct srv_vjob *job)
{
    char err[ERR_LEN];

    job->phase = SRV_VP_DNS;
    if (strlen(job->v->identifier) > SRV_DNS_NAME_MAX - 16) {
        srv_vjob_finish(job, false, "dns", "DNS problem: name too long");
        return;
    }
    snprintf(job->host, sizeof(job->host), "_acme-challenge.%.239s", job->v->identifier);
    job->dnsq = srv_dnsq_start(srv_vjob_base(job), srv_vjob_resolver(job), job->host,
                               SRV_DNS_TXT, vdns01_done, job, err);
    if (job->dnsq == NULL)
        srv_vjob_finish(job, false, "dns", "DNS problem: %s", err);
}
