/*
 * bench_crypto.c: what the server's cryptography alone costs for one device
 * enrollment, timed in-process on this machine, so a measured flow rate can
 * be put against the rate the CPUs could sustain if the server did nothing
 * but cryptography. The operations mirror what attesta does per flow: one
 * ES256 JWS verification per POST, the attestation chain checked every time
 * (leaf by sub CA and sub CA by root, both P-384; X509_verify_cert caches
 * nothing), the CSR self-signature, the issuing signature with the P-256
 * intermediate, and the server's half of one TLS handshake.
 *
 * Times are the measuring thread's CPU time. The server's CPU per flow is read
 * while every core is busy, and on shared or virtual CPUs the same operation
 * costs more then (caches, hyperthread siblings the guest cannot see), so the
 * set is timed both on one thread of an otherwise idle machine and on one
 * thread per core at once; the report shows both.
 */
#include "tools/bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "pki/pki.h"
#include "tools/fake_apple.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int time_jws(struct bench_crypto *c, int iters, char err[ERR_LEN])
{
    static const char input[] = "eyJhbGciOiJFUzI1NiIsIm5vbmNlIjoiYWJjIn0.eyJzdGF0dXMiOiJ2YWxpZCJ9";
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    unsigned char *sig = NULL;
    size_t siglen = 0;
    int rc = -1;
    if (key == NULL || pki_jws_sign(PKI_JWS_ES256, key, input, strlen(input), &sig, &siglen) != 0)
        goto out;
    double t0 = now_s();
    for (int i = 0; i < iters; i++) {
        if (pki_jws_verify(PKI_JWS_ES256, key, input, strlen(input), sig, siglen) != 0) {
            snprintf(err, ERR_LEN, "JWS verification failed");
            goto out;
        }
    }
    c->jws_verify_us = (now_s() - t0) * 1e6 / iters;
    rc = 0;
out:
    free(sig);
    EVP_PKEY_free(key);
    return rc;
}

/* Times X509_verify(cert, key) per call in microseconds, or -1. */
static double time_x509_verify(X509 *cert, EVP_PKEY *key, int iters)
{
    double t0 = now_s();
    for (int i = 0; i < iters; i++)
        if (X509_verify(cert, key) != 1)
            return -1;
    return (now_s() - t0) * 1e6 / iters;
}

/* Leaf by sub CA and sub CA by root, with a chain like the simulated devices send. */
static int time_chain(struct bench_crypto *c, int iters, const char *dir, char err[ERR_LEN])
{
    struct fa_ca ca = {0};
    X509 *leaf = NULL;
    EVP_PKEY *dev = pki_key_generate(PKI_KEY_P384, err);
    int64_t now = clk_now();
    struct fa_leaf_opts o = {.serial = "BENCH0000001", .os_version = "26.1",
                             .sepos_version = "26.1", .not_before = now - 60,
                             .not_after = now + 86400};
    int rc = -1;
    if (dev == NULL || fa_ca_init_dir(dir, err) != 0 || fa_ca_load(dir, &ca, err) != 0 ||
        fa_leaf_issue(&ca, dev, &o, &leaf, err) != 0)
        goto out;
    c->leaf_verify_us = time_x509_verify(leaf, X509_get0_pubkey(ca.sub), iters);
    c->sub_verify_us = time_x509_verify(ca.sub, X509_get0_pubkey(ca.root), iters);
    if (c->leaf_verify_us < 0 || c->sub_verify_us < 0) {
        snprintf(err, ERR_LEN, "attestation chain does not verify");
        goto out;
    }
    rc = 0;
out:
    X509_free(leaf);
    fa_ca_clear(&ca);
    EVP_PKEY_free(dev);
    return rc;
}

static int time_csr(struct bench_crypto *c, int iters, char err[ERR_LEN])
{
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P384, err);
    X509_REQ *req = X509_REQ_new();
    int rc = -1;
    if (key == NULL || req == NULL || !X509_REQ_set_pubkey(req, key) ||
        X509_REQ_sign(req, key, EVP_sha256()) <= 0) {
        snprintf(err, ERR_LEN, "CSR signing failed");
        goto out;
    }
    double t0 = now_s();
    for (int i = 0; i < iters; i++) {
        if (X509_REQ_verify(req, key) != 1) {
            snprintf(err, ERR_LEN, "CSR verification failed");
            goto out;
        }
    }
    c->csr_verify_us = (now_s() - t0) * 1e6 / iters;
    rc = 0;
out:
    X509_REQ_free(req);
    EVP_PKEY_free(key);
    return rc;
}

/* ECDSA P-256 / SHA-256 over a TBSCertificate-sized buffer. */
static int time_issue(struct bench_crypto *c, int iters, char err[ERR_LEN])
{
    unsigned char tbs[700], sig[128];
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    int rc = -1;
    memset(tbs, 0x5a, sizeof(tbs));
    if (key == NULL)
        return -1;
    double t0 = now_s();
    for (int i = 0; i < iters; i++) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        size_t siglen = sizeof(sig);
        int ok = md != NULL && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
                 EVP_DigestSign(md, sig, &siglen, tbs, sizeof(tbs)) == 1;
        EVP_MD_CTX_free(md);
        if (!ok) {
            snprintf(err, ERR_LEN, "EVP_DigestSign failed");
            goto out;
        }
    }
    c->issue_sign_us = (now_s() - t0) * 1e6 / iters;
    rc = 0;
out:
    EVP_PKEY_free(key);
    return rc;
}

/* A throwaway self-signed P-256 certificate for the TLS measurement. */
static X509 *self_signed(EVP_PKEY *key)
{
    X509 *x = X509_new();
    X509_NAME *n = x ? X509_get_subject_name(x) : NULL;
    if (n == NULL || !X509_set_version(x, 2) || !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
        !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"bench", -1,
                                    -1, 0) ||
        !X509_set_issuer_name(x, n) || !X509_gmtime_adj(X509_getm_notBefore(x), -60) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), 86400) || !X509_set_pubkey(x, key) ||
        X509_sign(x, key, EVP_sha256()) <= 0) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* One full handshake over an in-memory BIO pair. 0/-1. */
static int handshake(SSL_CTX *sctx, SSL_CTX *cctx)
{
    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    BIO *bs = NULL, *bc = NULL;
    int rc = -1, sdone = 0, cdone = 0;
    if (s == NULL || c == NULL || BIO_new_bio_pair(&bs, 0, &bc, 0) != 1)
        goto out;
    SSL_set_bio(s, bs, bs);
    SSL_set_bio(c, bc, bc);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    for (int round = 0; round < 20 && !(sdone && cdone); round++) {
        if (!cdone)
            cdone = SSL_do_handshake(c) == 1;
        if (!sdone)
            sdone = SSL_do_handshake(s) == 1;
    }
    rc = sdone && cdone ? 0 : -1;
out:
    SSL_free(s);
    SSL_free(c);
    return rc;
}

static int time_tls(struct bench_crypto *c, int iters, char err[ERR_LEN])
{
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    X509 *cert = key ? self_signed(key) : NULL;
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
    int rc = -1;
    if (cert == NULL || sctx == NULL || cctx == NULL || SSL_CTX_use_certificate(sctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey(sctx, key) != 1 || SSL_CTX_set1_groups_list(sctx, "P-256") != 1 ||
        SSL_CTX_set1_groups_list(cctx, "P-256") != 1) {
        snprintf(err, ERR_LEN, "TLS setup failed");
        goto out;
    }
    /* Every flow in the measurement is a new client: no session resumption. */
    SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
    double t0 = now_s();
    for (int i = 0; i < iters; i++) {
        if (handshake(sctx, cctx) != 0) {
            snprintf(err, ERR_LEN, "loopback TLS handshake failed");
            goto out;
        }
    }
    /* Both ends ran here; the server's share is about half. */
    c->tls_half_us = (now_s() - t0) * 1e6 / iters / 2;
    rc = 0;
out:
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

/* Removes fa_ca_init_dir's four files and the directory; nothing else is created there. */
static void rm_ca_dir(const char *dir)
{
    static const char *const files[] = {"apple-root.pem", "apple-root.key", "apple-sub.pem",
                                        "apple-sub.key"};
    for (size_t i = 0; i < nitems(files); i++) {
        char *p = xasprintf("%s/%s", dir, files[i]);
        remove(p);
        free(p);
    }
    remove(dir);
}

static int measure_one(struct bench_crypto *c, int iters, char err[ERR_LEN])
{
    char dir[] = "/tmp/attesta-bench-crypto.XXXXXX";
    int rc = -1;
    memset(c, 0, sizeof(*c));
    if (mkdtemp(dir) == NULL) {
        snprintf(err, ERR_LEN, "mkdtemp failed");
        return -1;
    }
    if (time_jws(c, iters, err) != 0 || time_chain(c, iters, dir, err) != 0 ||
        time_csr(c, iters, err) != 0 || time_issue(c, iters, err) != 0 ||
        time_tls(c, iters / 4 > 0 ? iters / 4 : 1, err) != 0)
        goto out;
    rc = 0;
out:
    rm_ca_dir(dir);
    return rc;
}

struct crypto_thread {
    pthread_t id;
    int iters, rc;
    struct bench_crypto c;
    char err[ERR_LEN];
};

static void *crypto_thread_main(void *arg)
{
    struct crypto_thread *t = arg;
    t->rc = measure_one(&t->c, t->iters, t->err);
    return NULL;
}

/* Per-operation mean over the threads' results into c. */
static void average(struct bench_crypto *c, const struct crypto_thread *t, int n)
{
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < n; i++) {
        c->jws_verify_us += t[i].c.jws_verify_us / n;
        c->leaf_verify_us += t[i].c.leaf_verify_us / n;
        c->sub_verify_us += t[i].c.sub_verify_us / n;
        c->csr_verify_us += t[i].c.csr_verify_us / n;
        c->issue_sign_us += t[i].c.issue_sign_us / n;
        c->tls_half_us += t[i].c.tls_half_us / n;
    }
}

int bench_crypto_measure(struct bench_crypto *c, int iters, int threads, char err[ERR_LEN])
{
    struct crypto_thread *t;
    int started = 0, rc = 0;
    if (threads <= 1)
        return measure_one(c, iters, err);
    t = xcalloc((size_t)threads, sizeof(*t));
    for (; started < threads; started++) {
        t[started].iters = iters;
        if (pthread_create(&t[started].id, NULL, crypto_thread_main, &t[started]) != 0) {
            snprintf(err, ERR_LEN, "pthread_create failed");
            rc = -1;
            break;
        }
    }
    for (int i = 0; i < started; i++) {
        pthread_join(t[i].id, NULL);
        if (rc == 0 && t[i].rc != 0) {
            snprintf(err, ERR_LEN, "%s", t[i].err);
            rc = -1;
        }
    }
    if (rc == 0)
        average(c, t, threads);
    free(t);
    return rc;
}

double bench_crypto_flow_us(const struct bench_crypto *c, double posts)
{
    /* The server verifies each distinct sub CA once per process (attest/att_subca.c). */
    return posts * c->jws_verify_us + c->leaf_verify_us + c->csr_verify_us + c->issue_sign_us +
           c->tls_half_us;
}

void bench_crypto_print(const struct bench_crypto *c, double posts)
{
    printf("server-side crypto per device flow (this machine, CPU time per operation):\n");
    printf("  %-44s %8.1f us x %.1f\n", "ES256 JWS verification", c->jws_verify_us, posts);
    printf("  %-44s %8.1f us\n", "attestation leaf by sub CA (P-384)", c->leaf_verify_us);
    printf("  %-44s %8.1f us (once per process, not counted)\n", "sub CA by root (P-384)",
           c->sub_verify_us);
    printf("  %-44s %8.1f us\n", "CSR self-signature (P-384)", c->csr_verify_us);
    printf("  %-44s %8.1f us\n", "issuing signature (P-256)", c->issue_sign_us);
    printf("  %-44s %8.1f us\n", "TLS handshake, server half (ECDHE+ECDSA P-256)", c->tls_half_us);
    printf("  %-44s %8.1f us\n", "crypto cost per flow", bench_crypto_flow_us(c, posts));
}
