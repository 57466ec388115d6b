/* Shared helpers for the attest unit tests: vector files, CBOR building, test PKI. */
#ifndef ACMESRV_TEST_ATT_H
#define ACMESRV_TEST_ATT_H

#include <openssl/x509.h>

#include "attest/att_int.h"

#define VEC_DIR ATTESTA_SHARED_DIR "/vectors/apple/"

/* Reads a vector file into a new buffer (NUL-terminated); fails the test if missing. */
unsigned char *t_read_vec(const char *name, size_t *len);
/* DER of the idx-th certificate in a PEM vector file; caller frees. */
unsigned char *t_pem_der(const char *name, int idx, size_t *len);

/* Minimal CBOR encoding into a struct buf. */
void cb_head(struct buf *b, int major, uint64_t arg);
void cb_text(struct buf *b, const char *s);
void cb_bytes(struct buf *b, const void *p, size_t n);
/* {"fmt":"apple","attStmt":{"x5c":[ders...]}} */
void cb_attobj(struct buf *b, const struct slice *ders, size_t n);

/* A non-Apple extension to put on a test certificate. */
struct t_ext {
    const char *oid;
    const void *val;
    size_t len;
    int critical;
};
/* A fresh P-256 key. */
EVP_PKEY *t_key(void);
/*
 * Certificate for key signed by signer (issuer == NULL: self-signed), CA or
 * not, valid [nb, na], with the given raw-value extensions.
 */
X509 *t_cert(EVP_PKEY *key, EVP_PKEY *signer, X509 *issuer, int ca, int64_t nb, int64_t na,
             const struct t_ext *exts, size_t n);
/* Writes x as PEM to a new temp file; returns its path (caller unlinks and frees). */
char *t_write_pem(X509 *x);
/* DER of x as a new buffer. */
unsigned char *t_der(X509 *x, size_t *len);

int t_cbor_group(void);

#endif
