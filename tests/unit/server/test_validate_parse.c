/*
 * test_validate_parse.c: table tests of the validator's pure parsers, the DNS
 * answer parser (hostile messages: truncation, pointer loops, bad lengths)
 * and the http-01 response parser (limits, chunking, early close).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "server/srv_validate_int.h"

void test_validate_parsers_dns(void **state);
void test_validate_parsers_http(void **state);

/* Header for id 0x1234, QR|RD|RA, rcode, one question, an answers. */
#define HDR(rcode, an) 0x12, 0x34, 0x81, 0x80 | (rcode), 0, 1, 0, (an), 0, 0, 0, 0
/* Question "a.test" (offset 12, 8 bytes of name) type A class IN. */
#define Q_A 1, 'a', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1
#define Q_TXT 1, 'a', 4, 't', 'e', 's', 't', 0, 0, 16, 0, 1
#define RR_HEAD(type, rdlen) 0xc0, 12, 0, (type), 0, 1, 0, 0, 0, 60, 0, (rdlen)
/* Header with an answers and ar additional records. */
#define HDR_AR(flags, an, ar) 0x12, 0x34, 0x81 | (flags), 0x80, 0, 1, 0, (an), 0, 0, 0, (ar)
/* OPT pseudo-record: owner, payload 1232, extended RCODE xr, no options. */
#define OPT(owner, xr) (owner), 0, 41, 0x04, 0xd0, (xr), 0, 0, 0, 0, 0

struct dns_row {
    const char *name;
    unsigned char msg[96];
    size_t len;
    enum srv_dns_type type;
    int rc;        /* srv_dns_answer_parse result */
    size_t count;  /* addresses or TXT strings when rc == 0 */
    int rcode;
};

static const struct dns_row dns_rows[] = {
    {"A with compression", {HDR(0, 1), Q_A, RR_HEAD(1, 4), 127, 0, 0, 1}, 40, SRV_DNS_A, 0, 1, 0},
    {"TXT two strings", {HDR(0, 1), Q_TXT, RR_HEAD(16, 6), 2, 'h', 'i', 2, 'y', 'o'}, 42,
     SRV_DNS_TXT, 0, 1, 0},
    {"NXDOMAIN", {HDR(3, 0), Q_A}, 24, SRV_DNS_A, 0, 0, 3},
    {"wrong id ignored", {0x12, 0x35, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, Q_A}, 24, SRV_DNS_A, 1,
     0, 0},
    {"a query, not an answer", {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, Q_A}, 24,
     SRV_DNS_A, 1, 0, 0},
    {"short header ignored", {0x12, 0x34, 0x81}, 3, SRV_DNS_A, 1, 0, 0},
    {"other question ignored", {HDR(0, 0), Q_TXT}, 24, SRV_DNS_A, 1, 0, 0},
    {"truncated question", {HDR(0, 0), 1, 'a', 4, 't', 'e'}, 17, SRV_DNS_A, -1, 0, 0},
    {"truncated record", {HDR(0, 1), Q_A, RR_HEAD(1, 4), 127}, 37, SRV_DNS_A, -1, 0, 0},
    {"rdlength past end", {HDR(0, 1), Q_A, RR_HEAD(1, 40), 127, 0, 0, 1}, 40, SRV_DNS_A, -1, 0,
     0},
    {"pointer to itself", {HDR(0, 1), Q_A, 0xc0, 24, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4},
     40, SRV_DNS_A, -1, 0, 0},
    {"forward pointer", {HDR(0, 1), Q_A, 0xc0, 30, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4},
     40, SRV_DNS_A, -1, 0, 0},
    /* owner at 24: label "x" then a pointer back to 24: a loop through backward pointers. */
    {"backward pointer loop", {HDR(0, 1), Q_A, 1, 'x', 0xc0, 24, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4,
     1, 2, 3, 4}, 42, SRV_DNS_A, -1, 0, 0},
    {"bad label type", {HDR(0, 1), Q_A, 0x80, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4}, 39,
     SRV_DNS_A, -1, 0, 0},
    {"A with 5-byte rdata", {HDR(0, 1), Q_A, RR_HEAD(1, 5), 127, 0, 0, 1, 9}, 41, SRV_DNS_A, -1,
     0, 0},
    {"TXT string past rdata", {HDR(0, 1), Q_TXT, RR_HEAD(16, 3), 9, 'h', 'i'}, 39, SRV_DNS_TXT,
     -1, 0, 0},
    {"EDNS0 OPT in additional", {HDR_AR(0, 1, 1), Q_A, RR_HEAD(1, 4), 127, 0, 0, 1, OPT(0, 0)},
     51, SRV_DNS_A, 0, 1, 0},
    {"OPT extended rcode", {HDR_AR(0, 0, 1), Q_A, OPT(0, 1)}, 35, SRV_DNS_A, 0, 0, 16},
    {"OPT in answer section", {HDR_AR(0, 1, 0), Q_A, OPT(0, 0)}, 35, SRV_DNS_A, -1, 0, 0},
    {"OPT not owned by root", {HDR_AR(0, 0, 1), Q_A, 0xc0, 12, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0},
     36, SRV_DNS_A, -1, 0, 0},
    {"two OPT records", {HDR_AR(0, 0, 2), Q_A, OPT(0, 0), OPT(0, 0)}, 46, SRV_DNS_A, -1, 0, 0},
    {"additional count past end", {HDR_AR(0, 1, 1), Q_A, RR_HEAD(1, 4), 127, 0, 0, 1}, 40,
     SRV_DNS_A, -1, 0, 0},
    {"trailing garbage", {HDR(0, 1), Q_A, RR_HEAD(1, 4), 127, 0, 0, 1, 0xde, 0xad}, 42, SRV_DNS_A,
     -1, 0, 0},
    {"trailing garbage, NXDOMAIN", {HDR(3, 0), Q_A, 0}, 25, SRV_DNS_A, -1, 0, 0},
    /* TC: only the header and question matter, the cut records are never read. */
    {"TC answer", {HDR_AR(0x02, 1, 0), Q_TXT, RR_HEAD(16, 40), 3}, 37, SRV_DNS_TXT, 0, 0, 0},
    {"two questions", {0x12, 0x34, 0x81, 0x80, 0, 2, 0, 0, 0, 0, 0, 0, Q_A}, 24, SRV_DNS_A, -1, 0,
     0},
};

void test_validate_parsers_dns(void **state)
{
    unsigned char q[300];
    size_t qlen;
    char err[ERR_LEN];
    struct srv_dns_answer *ans = test_malloc(sizeof(*ans));

    for (size_t i = 0; i < nitems(dns_rows); i++) {
        const struct dns_row *r = &dns_rows[i];
        err[0] = '\0';
        int rc = srv_dns_answer_parse(r->msg, r->len, 0x1234, "a.test.", r->type, ans, err);
        print_message("[ dns      ] %-28s rc=%d %s\n", r->name, rc, err);
        assert_int_equal(rc, r->rc);
        if (rc == 0) {
            assert_int_equal(ans->rcode, r->rcode);
            assert_int_equal(r->type == SRV_DNS_TXT ? ans->ntxt : ans->naddrs, r->count);
            assert_int_equal(ans->truncated, strcmp(r->name, "TC answer") == 0);
        }
    }
    assert_int_equal(srv_dns_answer_parse(dns_rows[1].msg, dns_rows[1].len, 0x1234, "A.TEST",
                                          SRV_DNS_TXT, ans, err), 0);
    assert_string_equal(ans->txt[0], "hiyo");
    test_free(ans);

    assert_int_equal(srv_dns_query_fmt(7, "a.test", SRV_DNS_A, q, sizeof(q), &qlen, err), 0);
    assert_int_equal(qlen, 35);
    assert_int_equal(q[11], 1); /* ARCOUNT: the OPT record */
    assert_memory_equal(q + 12, "\x01" "a\x04test\x00\x00\x01\x00\x01", 12);
    assert_memory_equal(q + 24, "\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00", 11);
    assert_int_equal(srv_dns_query_fmt(7, "a..test", SRV_DNS_A, q, sizeof(q), &qlen, err), -1);
    assert_int_equal(srv_dns_query_fmt(7, "", SRV_DNS_A, q, sizeof(q), &qlen, err), -1);
    char longlabel[80];
    memset(longlabel, 'x', 64);
    longlabel[64] = '\0';
    assert_int_equal(srv_dns_query_fmt(7, longlabel, SRV_DNS_A, q, sizeof(q), &qlen, err), -1);

    struct sockaddr_storage ss;
    assert_int_equal(srv_dns_server_parse("127.0.0.1:5353", NULL, &ss, err), 0);
    assert_int_equal(srv_dns_server_parse("[::1]:53", NULL, &ss, err), 0);
    assert_int_equal(srv_dns_server_parse("dns.example:53", NULL, &ss, err), -1);
}

struct http_row {
    const char *name;
    const char *raw;
    bool eof;
    int rc;
    int status;
    const char *body;
};

static const struct http_row http_rows[] = {
    {"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", false, 1, 200, "abc"},
    {"need more body", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", false, 0, 0, NULL},
    {"early close", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", true, -1, 0, NULL},
    {"read to close", "HTTP/1.0 200 OK\r\n\r\nxyz\n", true, 1, 200, "xyz\n"},
    {"need headers", "HTTP/1.1 200 OK\r\nContent-", false, 0, 0, NULL},
    {"closed in headers", "HTTP/1.1 200 OK\r\nContent-", true, -1, 0, NULL},
    {"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1;x\r\nc\r\n0\r\n\r\n",
     false, 1, 200, "abc"},
    {"chunked bad size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n", false,
     -1, 0, NULL},
    {"chunked huge", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffff\r\nab\r\n",
     false, -1, 0, NULL},
    {"bad status line", "HTTP/2 200\r\n\r\n", true, -1, 0, NULL},
    {"bad content-length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", true, -1, 0, NULL},
    {"too big content-length", "HTTP/1.1 200 OK\r\nContent-Length: 9000\r\n\r\n", false, -1, 0,
     NULL},
    {"redirect", "HTTP/1.1 302 Found\r\nLocation:  /x \r\nContent-Length: 0\r\n\r\n", false, 1,
     302, ""},
    {"header without colon", "HTTP/1.1 200 OK\r\nbogus\r\n\r\n", true, -1, 0, NULL},
};

void test_validate_parsers_http(void **state)
{
    char err[ERR_LEN];
    for (size_t i = 0; i < nitems(http_rows); i++) {
        const struct http_row *r = &http_rows[i];
        struct srv_http_resp resp;
        struct buf scratch = {0};
        err[0] = '\0';
        int rc = srv_http_resp_parse(r->raw, strlen(r->raw), r->eof, &resp, &scratch, err);
        print_message("[ http     ] %-28s rc=%d %s\n", r->name, rc, err);
        assert_int_equal(rc, r->rc);
        if (rc == 1) {
            assert_int_equal(resp.status, r->status);
            assert_int_equal(resp.body_len, strlen(r->body));
            assert_memory_equal(resp.body, r->body, resp.body_len);
        }
        if (i == 12)
            assert_string_equal(resp.location, "/x");
        buf_free(&scratch);
    }
    /* Headers that never end within 8 KiB. */
    struct buf big = {0};
    struct srv_http_resp resp;
    struct buf scratch = {0};
    buf_puts(&big, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 400; i++)
        buf_puts(&big, "X-Filler: 0123456789\r\n");
    assert_int_equal(srv_http_resp_parse(big.p, big.len, false, &resp, &scratch, err), -1);
    buf_free(&big);
    buf_free(&scratch);
}
