/*
 * test_srv_tls.c: unit_server_tls. The listener's TLS profile (srv_tls.c)
 * against OpenSSL clients over an in-memory BIO pair, on the kind of
 * certificate serve makes (a P-256 leaf from pki_tls_cert_create): TLS 1.2
 * only with ECDHE and AEAD (T-2, RFC 9325), TLS 1.3 as OpenSSL ships it,
 * nothing older, no HTTP answer in the clear, and ALPN http/1.1 only, never
 * acme-tls/1 (TA-11, RFC 8737 §4).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/ssl.h>

#include "common/common.h"
#include "pki/pki.h"
#include "server/srv_plane.h"

static char g_dir[64];
static SSL_CTX *g_srv; /* the listener's context, built as serve builds it */

static int setup(void **state)
{
    const char *const names[] = {"127.0.0.1"};
    char err[ERR_LEN] = "";
    char *cert = NULL, *key = NULL, *ca_pem = NULL, *ca_key = NULL;
    struct pki_ca *ca = NULL;
    int rc = -1;

    snprintf(g_dir, sizeof(g_dir), "/tmp/attesta-tls-XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return -1;
    cert = xasprintf("%s/tls.pem", g_dir);
    key = xasprintf("%s/tls.key", g_dir);
    ca_pem = xasprintf("%s/intermediate.pem", g_dir);
    ca_key = xasprintf("%s/intermediate.key", g_dir);
    if (pki_ca_init_dir(g_dir, "tls test", err) != 0)
        goto out;
    ca = pki_ca_load("test", ca_pem, ca_key, NULL, err);
    if (ca == NULL || pki_tls_cert_create(ca, names, 1, cert, key, err) != 0)
        goto out;
    g_srv = srv_tls_ctx_new(cert, key, err);
    if (g_srv != NULL)
        rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "setup: %s\n", err);
    pki_ca_free(ca);
    free(cert);
    free(key);
    free(ca_pem);
    free(ca_key);
    return rc;
}

static int teardown(void **state)
{
    char *cmd = xasprintf("rm -rf %s", g_dir);

    SSL_CTX_free(g_srv);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", g_dir);
    free(cmd);
    return 0;
}

/* What a client offers; zero fields are OpenSSL's defaults. */
struct offer {
    int min, max;        /* protocol versions */
    const char *ciphers; /* TLS 1.2 and older suites */
    const char *alpn;    /* ALPN list in wire form (length-prefixed names) */
};

struct outcome {
    bool ok; /* both sides finished the handshake */
    int version;
    char cipher[64];
    char alpn[32]; /* "" when the server selected none */
};

static SSL_CTX *client_ctx(const struct offer *o)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());

    assert_non_null(c);
    /* Level 0 and explicit versions, so the client really offers what is under test. */
    SSL_CTX_set_security_level(c, 0);
    if (o->min != 0)
        assert_int_equal(SSL_CTX_set_min_proto_version(c, o->min), 1);
    if (o->max != 0)
        assert_int_equal(SSL_CTX_set_max_proto_version(c, o->max), 1);
    if (o->ciphers != NULL)
        assert_int_equal(SSL_CTX_set_cipher_list(c, o->ciphers), 1);
    if (o->alpn != NULL)
        assert_int_equal(
            SSL_CTX_set_alpn_protos(c, (const unsigned char *)o->alpn, strlen(o->alpn)), 0);
    return c;
}

/* Runs one handshake between a client offering o and the listener's context. */
static void handshake(const struct offer *o, struct outcome *r)
{
    SSL_CTX *cctx = client_ctx(o);
    SSL *c = SSL_new(cctx), *s = SSL_new(g_srv);
    BIO *bc = NULL, *bs = NULL;
    const unsigned char *proto = NULL;
    unsigned plen = 0;
    int rc = 0, rs = 0;

    memset(r, 0, sizeof(*r));
    assert_non_null(c);
    assert_non_null(s);
    assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
    SSL_set_bio(c, bc, bc);
    SSL_set_bio(s, bs, bs);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    /* Each side in turn until both are done or one gives up (an alert). */
    for (int i = 0; i < 16 && (rc != 1 || rs != 1); i++) {
        rc = SSL_do_handshake(c);
        if (rc <= 0 && SSL_get_error(c, rc) != SSL_ERROR_WANT_READ)
            break;
        rs = SSL_do_handshake(s);
        if (rs <= 0 && SSL_get_error(s, rs) != SSL_ERROR_WANT_READ)
            break;
    }
    r->ok = rc == 1 && rs == 1;
    if (r->ok) {
        r->version = SSL_version(s);
        snprintf(r->cipher, sizeof(r->cipher), "%s", SSL_get_cipher_name(s));
        SSL_get0_alpn_selected(c, &proto, &plen);
        snprintf(r->alpn, sizeof(r->alpn), "%.*s", (int)plen, (const char *)proto);
    }
    ERR_clear_error();
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
}

/* A TLS scan of the configured suites: every one is AEAD with ECDHE (or TLS 1.3). */
static void test_profile(void **state)
{
    STACK_OF(SSL_CIPHER) *all = SSL_CTX_get_ciphers(g_srv);
    int tls12 = 0;

    assert_non_null(all);
    for (int i = 0; i < sk_SSL_CIPHER_num(all); i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(all, i);
        int kx = SSL_CIPHER_get_kx_nid(c), auth = SSL_CIPHER_get_auth_nid(c);
        bool is13 = kx == NID_kx_any;

        print_message("[ suite    ] %s (%s)\n", SSL_CIPHER_get_name(c), SSL_CIPHER_get_version(c));
        if (!SSL_CIPHER_is_aead(c))
            fail_msg("%s is not AEAD", SSL_CIPHER_get_name(c));
        if (!is13 && (kx != NID_kx_ecdhe || (auth != NID_auth_ecdsa && auth != NID_auth_rsa)))
            fail_msg("%s: not ECDHE with a certificate", SSL_CIPHER_get_name(c));
        tls12 += !is13;
    }
    assert_true(tls12 > 0);
}

static void test_tls12_aead_accepted(void **state)
{
    /* What lego, certbot, uacme (GnuTLS), libcurl and Apple devices all offer. */
    static const char *const ok[] = {"ECDHE-ECDSA-AES128-GCM-SHA256",
                                     "ECDHE-ECDSA-AES256-GCM-SHA384",
                                     "ECDHE-ECDSA-CHACHA20-POLY1305"};
    struct offer o = {.min = TLS1_2_VERSION, .max = TLS1_2_VERSION};
    struct outcome r;

    for (size_t i = 0; i < nitems(ok); i++) {
        o.ciphers = ok[i];
        handshake(&o, &r);
        if (!r.ok || r.version != TLS1_2_VERSION || strcmp(r.cipher, ok[i]) != 0)
            fail_msg("TLS 1.2 %s: ok=%d version %x cipher %s", ok[i], r.ok, (unsigned)r.version,
                     r.cipher);
    }
    /* A default TLS 1.2 client lands on the first choice of the server. */
    o.ciphers = NULL;
    handshake(&o, &r);
    assert_true(r.ok);
    assert_string_equal(r.cipher, "ECDHE-ECDSA-AES128-GCM-SHA256");
}

static void test_tls12_weak_refused(void **state)
{
    /* CBC with a SHA-1 MAC, CBC, no forward secrecy, then all of them at once. */
    static const char *const weak[] = {
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-ECDSA-AES128-SHA256",
        "ECDHE-ECDSA-AES256-SHA384",
        "AES128-GCM-SHA256",
        "AES256-SHA",
        "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:AES128-SHA",
    };
    struct offer o = {.min = TLS1_2_VERSION, .max = TLS1_2_VERSION};
    struct outcome r;

    for (size_t i = 0; i < nitems(weak); i++) {
        o.ciphers = weak[i];
        handshake(&o, &r);
        if (r.ok)
            fail_msg("TLS 1.2 offering only %s: accepted with %s", weak[i], r.cipher);
    }
}

static void test_old_versions_refused(void **state)
{
    static const int old[] = {TLS1_VERSION, TLS1_1_VERSION};
    struct offer o = {.ciphers = "ALL:@SECLEVEL=0"};
    struct outcome r;

    for (size_t i = 0; i < nitems(old); i++) {
        o.min = TLS1_VERSION;
        o.max = old[i];
        handshake(&o, &r);
        if (r.ok)
            fail_msg("version %x accepted", (unsigned)old[i]);
    }
}

static void test_tls13_default(void **state)
{
    struct offer o = {0};
    struct outcome r;

    handshake(&o, &r);
    assert_true(r.ok);
    assert_int_equal(r.version, TLS1_3_VERSION);
    assert_non_null(strstr(r.cipher, "TLS_"));
    assert_string_equal(r.alpn, "");
}

/* T-2: a plain HTTP request to the HTTPS port gets no HTTP answer, only an alert. */
static void test_plain_http_not_answered(void **state)
{
    static const char req[] = "GET /acme/default/directory HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    SSL *s = SSL_new(g_srv);
    BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
    char *p = NULL;
    long n;
    int rs;

    assert_non_null(s);
    assert_int_equal(BIO_write(in, req, (int)sizeof(req) - 1), (int)sizeof(req) - 1);
    SSL_set_bio(s, in, out);
    SSL_set_accept_state(s);
    rs = SSL_do_handshake(s);
    assert_true(rs <= 0);
    assert_int_equal(SSL_get_error(s, rs), SSL_ERROR_SSL);
    n = BIO_get_mem_data(out, &p);
    if (n > 0 && (unsigned char)p[0] != 0x15) /* content type 21: alert */
        fail_msg("%ld bytes that are not a TLS alert: %.8s", n, p);
    ERR_clear_error();
    SSL_free(s);
}

/* TA-11: the listener never selects acme-tls/1, on either version. */
static void test_alpn_acme_tls_not_selected(void **state)
{
    static const struct {
        const char *alpn;
        const char *want;
    } rows[] = {
        {"\x0a" "acme-tls/1", ""},
        {"\x0a" "acme-tls/1" "\x08" "http/1.1", "http/1.1"},
        {"\x02" "h2" "\x08" "http/1.1", "http/1.1"},
    };
    static const int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    struct outcome r;

    for (size_t v = 0; v < nitems(versions); v++) {
        for (size_t i = 0; i < nitems(rows); i++) {
            struct offer o = {.min = versions[v], .max = versions[v], .alpn = rows[i].alpn};
            handshake(&o, &r);
            /* Refusing the handshake would do as well; a selected acme-tls/1 never. */
            if (r.ok && strcmp(r.alpn, rows[i].want) != 0)
                fail_msg("version %x, offer %zu: selected \"%s\"", (unsigned)versions[v], i,
                         r.alpn);
            assert_true(r.ok || rows[i].want[0] == '\0');
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_profile),
        cmocka_unit_test(test_tls12_aead_accepted),
        cmocka_unit_test(test_tls12_weak_refused),
        cmocka_unit_test(test_old_versions_refused),
        cmocka_unit_test(test_tls13_default),
        cmocka_unit_test(test_plain_http_not_answered),
        cmocka_unit_test(test_alpn_acme_tls_not_selected),
    };
    log_set_level(LOG_LVL_WARN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
