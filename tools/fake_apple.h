/*
 * fake_apple: an "Apple-like" attestation CA for tests and the device
 * simulator: a root and sub CA of our own, leaves carrying Apple's OIDs
 * (serial, UDID, OS versions, freshness nonce) over a device key, and the
 * CBOR attestation object Apple devices send. Never trusted by a production
 * configuration: only a server told to trust this root accepts its leaves.
 */
#ifndef ACMESRV_TOOLS_FAKE_APPLE_H
#define ACMESRV_TOOLS_FAKE_APPLE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/common.h"

struct fa_ca {
    X509 *root;
    EVP_PKEY *root_key;
    X509 *sub;
    EVP_PKEY *sub_key;
};

/*
 * Creates DIR/apple-root.pem, apple-root.key, apple-sub.pem, apple-sub.key
 * (P-384, like Apple's) unless they exist. 0/-1.
 */
int fa_ca_init_dir(const char *dir, char err[ERR_LEN]);
/* Loads what fa_ca_init_dir made. 0/-1. */
int fa_ca_load(const char *dir, struct fa_ca *out, char err[ERR_LEN]);
void fa_ca_clear(struct fa_ca *ca);

struct fa_leaf_opts {
    const char *serial;         /* 1.2.840.113635.100.8.9.1, NULL = omit */
    const char *udid;           /* 1.2.840.113635.100.8.9.2, NULL = omit */
    const char *os_version;     /* 1.2.840.113635.100.8.10.1 */
    const char *sepos_version;  /* 1.2.840.113635.100.8.10.2 */
    const unsigned char *nonce; /* 1.2.840.113635.100.8.11.1 raw bytes */
    size_t nonce_len;           /* 0 = no nonce extension */
    int64_t not_before, not_after;
};

/* Issues a leaf for device_key under ca's sub CA. *out is owned by the caller. 0/-1. */
int fa_leaf_issue(const struct fa_ca *ca, EVP_PKEY *device_key, const struct fa_leaf_opts *o,
                  X509 **out, char err[ERR_LEN]);
/*
 * Encodes {"fmt":"apple","attStmt":{"x5c":[leaf, chain...]}} as definite-length
 * CBOR with the key order real devices use. *cbor is malloc'd. 0/-1.
 */
int fa_attobj_build(X509 *const *certs, size_t ncerts, unsigned char **cbor, size_t *len);

#endif
