/* Helpers for the attest unit tests: vector files, CBOR building and a throwaway PKI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "test_att.h"

unsigned char *t_read_vec(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s%s", VEC_DIR, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char *p = xmalloc(256 * 1024);
    size_t n = fread(p, 1, 256 * 1024 - 1, f);
    fclose(f);
    p[n] = '\0';
    *len = n;
    return p;
}

unsigned char *t_pem_der(const char *name, int idx, size_t *len)
{
    size_t plen = 0;
    unsigned char *pem = t_read_vec(name, &plen);
    BIO *bio = BIO_new_mem_buf(pem, (int)plen);
    X509 *x = NULL;
    for (int i = 0; i <= idx; i++) {
        X509_free(x);
        x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        assert_non_null(x);
    }
    unsigned char *der = t_der(x, len);
    X509_free(x);
    BIO_free(bio);
    free(pem);
    return der;
}

void cb_head(struct buf *b, int major, uint64_t arg)
{
    unsigned char h[9];
    size_t n = 0;
    if (arg < 24) {
        h[n++] = (unsigned char)((major << 5) | (int)arg);
    } else if (arg <= 0xff) {
        h[n++] = (unsigned char)((major << 5) | 24);
        h[n++] = (unsigned char)arg;
    } else if (arg <= 0xffff) {
        h[n++] = (unsigned char)((major << 5) | 25);
        h[n++] = (unsigned char)(arg >> 8);
        h[n++] = (unsigned char)arg;
    } else {
        h[n++] = (unsigned char)((major << 5) | 26);
        for (int s = 24; s >= 0; s -= 8)
            h[n++] = (unsigned char)(arg >> s);
    }
    buf_append(b, h, n);
}

void cb_text(struct buf *b, const char *s)
{
    cb_head(b, 3, strlen(s));
    buf_append(b, s, strlen(s));
}

void cb_bytes(struct buf *b, const void *p, size_t n)
{
    cb_head(b, 2, n);
    if (n > 0)
        buf_append(b, p, n);
}

void cb_attobj(struct buf *b, const struct slice *ders, size_t n)
{
    cb_head(b, 5, 2);
    cb_text(b, "fmt");
    cb_text(b, "apple");
    cb_text(b, "attStmt");
    cb_head(b, 5, 1);
    cb_text(b, "x5c");
    cb_head(b, 4, n);
    for (size_t i = 0; i < n; i++)
        cb_bytes(b, ders[i].p, ders[i].len);
}

EVP_PKEY *t_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    return k;
}

static void add_ext(X509 *x, const struct t_ext *e)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(e->oid, 1);
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    assert_non_null(obj);
    assert_int_equal(ASN1_OCTET_STRING_set(os, e->val, (int)e->len), 1);
    X509_EXTENSION *ext = X509_EXTENSION_create_by_OBJ(NULL, obj, e->critical, os);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(obj);
}

X509 *t_cert(EVP_PKEY *key, EVP_PKEY *signer, X509 *issuer, int ca, int64_t nb, int64_t na,
             const struct t_ext *exts, size_t n)
{
    static long serial = 1;
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    char cn[32];
    snprintf(cn, sizeof(cn), "attest test %ld", serial);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name);
    ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb);
    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na);
    X509_set_pubkey(x, key);
    X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints,
                                             ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    X509_add_ext(x, bc, -1);
    X509_EXTENSION_free(bc);
    if (ca) {
        X509_EXTENSION *ku =
            X509V3_EXT_conf_nid(NULL, NULL, NID_key_usage, "critical,keyCertSign,cRLSign");
        X509_add_ext(x, ku, -1);
        X509_EXTENSION_free(ku);
    }
    for (size_t i = 0; i < n; i++)
        add_ext(x, &exts[i]);
    assert_true(X509_sign(x, signer, EVP_sha256()) > 0);
    X509_NAME_free(name);
    return x;
}

char *t_write_pem(X509 *x)
{
    char *path = xstrdup("/tmp/att_test_root_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    return path;
}

unsigned char *t_der(X509 *x, size_t *len)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    assert_true(n > 0);
    *len = (size_t)n;
    return der;
}
