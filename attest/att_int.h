/*
 * attest internals: shared between the module's files and its unit tests only.
 * The CBOR shape check (att_cbor.c), claims extraction (att_claims.c) and the
 * chain verifier (att_apple.c) meet here; OpenSSL and libcbor types stay out
 * of attest.h.
 */
#ifndef ACMESRV_ATT_INT_H
#define ACMESRV_ATT_INT_H

#include <openssl/x509.h>

#include "attest/attest.h"

#define ATT_MAX_CERT_DER (8 * 1024) /* bytes per x5c entry */
#define ATT_MAX_MAP 8               /* pairs per CBOR map */
#define ATT_MAX_ARRAY 16            /* entries per CBOR array (x5c is checked tighter) */
#define ATT_MAX_EXTRA 1024          /* bytes of an unknown member we tolerate */

/* The parsed attestation object: x5c views borrow from root. */
struct att_attobj {
    struct slice x5c[ATT_MAX_X5C];
    size_t nx5c;
    void *root; /* cbor_item_t *, owns the bytes x5c points into */
};

/*
 * Checks the limits on the raw bytes, then decodes with libcbor and checks the
 * shape {"fmt":"apple","attStmt":{"x5c":[bytes, ...]}}. 0 with out filled (clear
 * it with att_attobj_clear), -1 with err set.
 */
int att_attobj_parse(const unsigned char *p, size_t len, const struct att_limits *lim,
                     struct att_attobj *out, char err[ERR_LEN]);
/* lim with every member inside its range (out of range means the ceiling). */
void att_limits_normalize(const struct att_limits *in, struct att_limits *out);
/* Frees what att_attobj_parse kept; NULL-safe, leaves a zeroed struct. */
void att_attobj_clear(struct att_attobj *a);

/*
 * Fills c from the leaf's Apple extensions, SPKI and validity. Returns ATT_OK,
 * ATT_ERR_FORMAT (bad or duplicated claim) or ATT_ERR_INTERNAL, with err set.
 */
enum att_result att_claims_extract(X509 *leaf, struct att_claims *c, char err[ERR_LEN]);

/*
 * att_subca.c: sub CAs already verified against the verifier's roots. The
 * cache is owned by one verifier and locks internally (any thread).
 */
struct att_subca_cache;
struct att_subca_cache *att_subca_cache_new(void);
void att_subca_cache_free(struct att_subca_cache *c); /* NULL-safe */
/*
 * ATT_OK when inter is one remembered sub CA, its root is valid at `at` and
 * leaf verifies against the sub CA alone at `at`; anything else (including a
 * miss) is ATT_ERR_CHAIN, and the caller runs the full verification.
 */
enum att_result att_subca_verify(struct att_subca_cache *c, X509 *leaf, STACK_OF(X509) * inter,
                                 int64_t at);
/*
 * New reference to the remembered sub CA whose DER is exactly der (len bytes),
 * so att_verify skips parsing it; NULL on a miss.
 */
X509 *att_subca_find_der(struct att_subca_cache *c, const unsigned char *der, size_t len);
/* Remembers chain[1] after X509_verify_cert built chain = leaf, sub CA, root. */
void att_subca_remember(struct att_subca_cache *c, STACK_OF(X509) * chain);

/* Copies n bytes of untrusted data into out as an escaped, NUL-terminated string. */
void att_escape(const void *p, size_t n, char *out, size_t outlen);

#endif
