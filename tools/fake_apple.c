/*
 * fake_apple.c: Apple-like attestation chains and attestation objects for the
 * device simulator and tests.
 */
#include "tools/fake_apple.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "pki/pki.h"

#define OID_SERIAL "1.2.840.113635.100.8.9.1"
#define OID_UDID "1.2.840.113635.100.8.9.2"
#define OID_OS "1.2.840.113635.100.8.10.1"
#define OID_SEPOS "1.2.840.113635.100.8.10.2"
#define OID_NONCE "1.2.840.113635.100.8.11.1"

static void ossl_err(char err[ERR_LEN], const char *what)
{
    unsigned long e = ERR_get_error();
    char reason[160] = "";
    if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    snprintf(err, ERR_LEN, "%s failed%s%s", what, e ? ": " : "", reason);
    ERR_clear_error();
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value, char err[ERR_LEN])
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL || !X509_add_ext(x, ext, -1)) {
        X509_EXTENSION_free(ext);
        ossl_err(err, "adding an extension");
        return -1;
    }
    X509_EXTENSION_free(ext);
    return 0;
}

/* Apple puts the raw value bytes directly inside the extnValue OCTET STRING. */
static int add_raw_ext(X509 *x, const char *oid, const void *data, size_t len, char err[ERR_LEN])
{
    int rc = -1;
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    X509_EXTENSION *ext = NULL;
    if (obj == NULL || os == NULL || len > INT_MAX ||
        !ASN1_OCTET_STRING_set(os, data, (int)len)) {
        ossl_err(err, "building an Apple extension");
        goto out;
    }
    ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
    if (ext == NULL || !X509_add_ext(x, ext, -1)) {
        ossl_err(err, "adding an Apple extension");
        goto out;
    }
    rc = 0;
out:
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(obj);
    return rc;
}

static X509 *cert_new(EVP_PKEY *pub, const char *cn, X509 *issuer, int64_t nb, int64_t na,
                      char err[ERR_LEN])
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    if (x == NULL || name == NULL || rand_bytes(serial, sizeof(serial)) != 0)
        goto fail;
    serial[0] &= 0x7f;
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL ||
        !X509_set_version(x, 2) || !X509_set_pubkey(x, pub) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
                                    -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                    (const unsigned char *)"Attesta Test Apple", -1, -1, 0) ||
        !X509_set_subject_name(x, name) ||
        !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) ||
        ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na) == NULL)
        goto fail;
    BN_free(bn);
    X509_NAME_free(name);
    return x;
fail:
    ossl_err(err, "building a certificate");
    BN_free(bn);
    X509_NAME_free(name);
    X509_free(x);
    return NULL;
}

static int cert_sign(X509 *x, EVP_PKEY *key, char err[ERR_LEN])
{
    if (X509_sign(x, key, EVP_sha384()) <= 0) {
        ossl_err(err, "X509_sign");
        return -1;
    }
    return 0;
}

static int pem_write(const char *path, X509 *x, char err[ERR_LEN])
{
    FILE *fp = fopen(path, "we");
    if (fp == NULL || !PEM_write_X509(fp, x)) {
        snprintf(err, ERR_LEN, "cannot write %.200s", path);
        if (fp != NULL)
            fclose(fp);
        return -1;
    }
    return fclose(fp) == 0 ? 0 : -1;
}

static X509 *pem_read(const char *path, char err[ERR_LEN])
{
    FILE *fp = fopen(path, "re");
    X509 *x = fp ? PEM_read_X509(fp, NULL, NULL, NULL) : NULL;
    if (fp != NULL)
        fclose(fp);
    if (x == NULL)
        snprintf(err, ERR_LEN, "cannot read a certificate from %.200s", path);
    return x;
}

static int ca_make(struct fa_ca *ca, char err[ERR_LEN])
{
    int64_t now = clk_now();
    ca->root_key = pki_key_generate(PKI_KEY_P384, err);
    ca->sub_key = pki_key_generate(PKI_KEY_P384, err);
    if (ca->root_key == NULL || ca->sub_key == NULL)
        return -1;
    ca->root = cert_new(ca->root_key, "Attesta Test Apple Root CA", NULL, now - 3600,
                        now + 20LL * 365 * 86400, err);
    if (ca->root == NULL || add_ext(ca->root, ca->root, NID_basic_constraints, "critical,CA:TRUE", err) ||
        add_ext(ca->root, ca->root, NID_key_usage, "critical,keyCertSign,cRLSign", err) ||
        add_ext(ca->root, ca->root, NID_subject_key_identifier, "hash", err) ||
        cert_sign(ca->root, ca->root_key, err))
        return -1;
    ca->sub = cert_new(ca->sub_key, "Attesta Test Apple Sub CA 1", ca->root, now - 3600,
                       now + 10LL * 365 * 86400, err);
    if (ca->sub == NULL ||
        add_ext(ca->sub, ca->root, NID_basic_constraints, "critical,CA:TRUE,pathlen:0", err) ||
        add_ext(ca->sub, ca->root, NID_key_usage, "critical,keyCertSign,cRLSign", err) ||
        add_ext(ca->sub, ca->root, NID_subject_key_identifier, "hash", err) ||
        add_ext(ca->sub, ca->root, NID_authority_key_identifier, "keyid", err) ||
        cert_sign(ca->sub, ca->root_key, err))
        return -1;
    return 0;
}

struct fa_paths {
    char root[PATH_MAX], root_key[PATH_MAX], sub[PATH_MAX], sub_key[PATH_MAX];
};

static void paths(const char *dir, struct fa_paths *p)
{
    snprintf(p->root, sizeof(p->root), "%s/apple-root.pem", dir);
    snprintf(p->root_key, sizeof(p->root_key), "%s/apple-root.key", dir);
    snprintf(p->sub, sizeof(p->sub), "%s/apple-sub.pem", dir);
    snprintf(p->sub_key, sizeof(p->sub_key), "%s/apple-sub.key", dir);
}

int fa_ca_init_dir(const char *dir, char err[ERR_LEN])
{
    struct fa_paths p;
    struct fa_ca ca = {0};
    struct stat st;
    int rc = -1;
    paths(dir, &p);
    if (stat(p.sub_key, &st) == 0)
        return 0;
    if (mkdir(dir, 0700) != 0 && stat(dir, &st) != 0) {
        snprintf(err, ERR_LEN, "cannot create %s", dir);
        return -1;
    }
    if (ca_make(&ca, err) != 0 || pki_key_save(ca.root_key, p.root_key, err) != 0 ||
        pki_key_save(ca.sub_key, p.sub_key, err) != 0 || pem_write(p.root, ca.root, err) != 0 ||
        pem_write(p.sub, ca.sub, err) != 0)
        goto out;
    rc = 0;
out:
    fa_ca_clear(&ca);
    return rc;
}

int fa_ca_load(const char *dir, struct fa_ca *out, char err[ERR_LEN])
{
    struct fa_paths p;
    paths(dir, &p);
    memset(out, 0, sizeof(*out));
    out->root = pem_read(p.root, err);
    out->sub = pem_read(p.sub, err);
    out->root_key = out->root ? pki_key_load(p.root_key, err) : NULL;
    out->sub_key = out->sub ? pki_key_load(p.sub_key, err) : NULL;
    if (out->root == NULL || out->sub == NULL || out->root_key == NULL || out->sub_key == NULL) {
        fa_ca_clear(out);
        return -1;
    }
    return 0;
}

void fa_ca_clear(struct fa_ca *ca)
{
    X509_free(ca->root);
    X509_free(ca->sub);
    EVP_PKEY_free(ca->root_key);
    EVP_PKEY_free(ca->sub_key);
    memset(ca, 0, sizeof(*ca));
}

static int add_claim(X509 *x, const char *oid, const char *value, char err[ERR_LEN])
{
    return value != NULL ? add_raw_ext(x, oid, value, strlen(value), err) : 0;
}

int fa_leaf_issue(const struct fa_ca *ca, EVP_PKEY *device_key, const struct fa_leaf_opts *o,
                  X509 **out, char err[ERR_LEN])
{
    char cn[65];
    unsigned char rnd[32];
    *out = NULL;
    if (rand_bytes(rnd, sizeof(rnd)) != 0)
        return -1;
    hex_encode(rnd, sizeof(rnd), cn);
    X509 *x = cert_new(device_key, cn, ca->sub, o->not_before, o->not_after, err);
    if (x == NULL || add_ext(x, ca->sub, NID_basic_constraints, "critical,CA:FALSE", err) ||
        add_ext(x, ca->sub, NID_key_usage,
                "critical,digitalSignature,nonRepudiation,keyEncipherment,dataEncipherment",
                err) ||
        add_claim(x, OID_SERIAL, o->serial, err) || add_claim(x, OID_UDID, o->udid, err) ||
        add_claim(x, OID_OS, o->os_version, err) || add_claim(x, OID_SEPOS, o->sepos_version, err) ||
        (o->nonce_len > 0 && add_raw_ext(x, OID_NONCE, o->nonce, o->nonce_len, err)) ||
        cert_sign(x, ca->sub_key, err)) {
        X509_free(x);
        return -1;
    }
    *out = x;
    return 0;
}

/* CBOR major type + argument, definite length (RFC 8949 §3). */
static void cbor_head(struct buf *b, unsigned major, uint64_t n)
{
    unsigned char h[9];
    size_t len;
    if (n < 24) {
        h[0] = (unsigned char)(major << 5 | n);
        len = 1;
    } else if (n <= 0xff) {
        h[0] = (unsigned char)(major << 5 | 24);
        h[1] = (unsigned char)n;
        len = 2;
    } else if (n <= 0xffff) {
        h[0] = (unsigned char)(major << 5 | 25);
        h[1] = (unsigned char)(n >> 8);
        h[2] = (unsigned char)n;
        len = 3;
    } else {
        h[0] = (unsigned char)(major << 5 | 26);
        for (int i = 0; i < 4; i++)
            h[1 + i] = (unsigned char)(n >> (24 - 8 * i));
        len = 5;
    }
    buf_append(b, h, len);
}

static void cbor_text(struct buf *b, const char *s)
{
    cbor_head(b, 3, strlen(s));
    buf_append(b, s, strlen(s));
}

int fa_attobj_build(X509 *const *certs, size_t ncerts, unsigned char **cbor, size_t *len)
{
    struct buf b = {0};
    cbor_head(&b, 5, 2);
    cbor_text(&b, "fmt");
    cbor_text(&b, "apple");
    cbor_text(&b, "attStmt");
    cbor_head(&b, 5, 1);
    cbor_text(&b, "x5c");
    cbor_head(&b, 4, ncerts);
    for (size_t i = 0; i < ncerts; i++) {
        unsigned char *der = NULL;
        int n = i2d_X509(certs[i], &der);
        if (n <= 0) {
            buf_free(&b);
            return -1;
        }
        cbor_head(&b, 2, (uint64_t)n);
        buf_append(&b, der, (size_t)n);
        OPENSSL_free(der);
    }
    *len = b.len;
    *cbor = (unsigned char *)buf_take(&b);
    return 0;
}
