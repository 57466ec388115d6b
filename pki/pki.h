/*
 * pki: keys, JWK/JWS signature primitives, CSRs, certificate authorities and
 * issuance. The only module besides attest/ that talks to OpenSSL; it exposes
 * EVP_PKEY and X509 where wrapping them would add nothing.
 *
 * Every function is thread-safe unless it says otherwise. Errors go to a
 * caller-provided `char err[ERR_LEN]` sink and never contain key material.
 */
#ifndef ACMESRV_PKI_H
#define ACMESRV_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/common.h"

/* ---------------------------------------------------------------- keys */

enum pki_key_type {
    PKI_KEY_P256,
    PKI_KEY_P384,
    PKI_KEY_RSA2048,
    PKI_KEY_RSA3072,
    PKI_KEY_RSA4096,
    PKI_KEY_ED25519,
    PKI_KEY__MAX
};

/* A new key of the given type, or NULL (err filled). Caller frees with EVP_PKEY_free. */
EVP_PKEY *pki_key_generate(enum pki_key_type type, char err[ERR_LEN]);
/* The type of key, or PKI_KEY__MAX when it is none we issue for or accept. */
enum pki_key_type pki_key_type_of(const EVP_PKEY *key);
/* "P-256", "P-384", "RSA-2048", ... for logs and config; "unknown" otherwise. */
const char *pki_key_type_name(enum pki_key_type type);
/* Parses pki_key_type_name() output back. 0/-1. */
int pki_key_type_parse(const char *name, enum pki_key_type *out);
/*
 * Writes the private key as PKCS#8 PEM to path atomically (temp file, fsync,
 * rename), created with mode 0600. 0/-1.
 */
int pki_key_save(const EVP_PKEY *key, const char *path, char err[ERR_LEN]);
/*
 * Loads a PEM private key. Refuses a file readable or writable by group or
 * others ("key file X has mode 0644; must be 0600"). NULL on error.
 */
EVP_PKEY *pki_key_load(const char *path, char err[ERR_LEN]);
/* DER SubjectPublicKeyInfo of key into *der (caller frees with free()). 0/-1. */
int pki_key_spki_der(const EVP_PKEY *key, unsigned char **der, size_t *len);
/* SHA-256 of the DER SubjectPublicKeyInfo, hex (65 bytes). 0/-1. */
int pki_key_spki_sha256_hex(const EVP_PKEY *key, char out[65]);
/* True when both keys are the same public key. */
bool pki_key_equal(const EVP_PKEY *a, const EVP_PKEY *b);

/* ---------------------------------------------------------------- digests */

void pki_sha256(const void *data, size_t len, unsigned char out[32]);
/* HMAC-SHA256 (EAB, the nonce permutation key). 0/-1. */
int pki_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                    unsigned char out[32]);
/*
 * A keyed pseudorandom permutation of 16-byte blocks (AES-256 on one block),
 * for values that must look random to anyone without the key yet map back to
 * what they encode without stored state (nonces). Each call is one block and
 * allocates nothing. NOT thread-safe: calls on one object must be serialised
 * by the caller (acme/nonce.c makes them under its own mutex).
 * pki_prp_new: NULL on failure; the key is copied into OpenSSL's schedule,
 * the caller keeps and wipes its own. Free is NULL-safe. encrypt/decrypt 0/-1.
 */
#define PKI_PRP_KEY 32
#define PKI_PRP_BLOCK 16
struct pki_prp;
struct pki_prp *pki_prp_new(const unsigned char key[PKI_PRP_KEY]);
void pki_prp_free(struct pki_prp *p);
int pki_prp_encrypt(struct pki_prp *p, const unsigned char in[PKI_PRP_BLOCK],
                    unsigned char out[PKI_PRP_BLOCK]);
int pki_prp_decrypt(struct pki_prp *p, const unsigned char in[PKI_PRP_BLOCK],
                    unsigned char out[PKI_PRP_BLOCK]);

/* ---------------------------------------------------------------- JWK / JWS */

/*
 * Members of a JSON Web Key as base64url strings, borrowed from the caller's
 * parsed JSON (acme/ owns JSON parsing). Unused members are NULL.
 */
struct pki_jwk {
    const char *kty; /* "EC", "RSA", "OKP" */
    const char *crv; /* "P-256", "P-384", "P-521", "Ed25519" */
    const char *x, *y;
    const char *n, *e;
};

/*
 * Builds a public key from a JWK. Refuses unsupported kty/crv, points not on
 * the curve, RSA moduli under 2048 bits or over 8192, and even/one exponents.
 * NULL with err set to a reason fit for a badPublicKey detail.
 */
EVP_PKEY *pki_jwk_to_key(const struct pki_jwk *jwk, char err[ERR_LEN]);
/*
 * The RFC 7638 thumbprint input members for key, as a JSON object string in
 * lexicographic member order (caller frees), e.g. {"crv":"P-256","kty":"EC",...}.
 * Also serves as the canonical JWK to store. NULL when the key type is unsupported.
 */
char *pki_jwk_canonical_json(const EVP_PKEY *key);
/* base64url(SHA-256(pki_jwk_canonical_json(key))) into out (44 bytes). 0/-1. */
int pki_jwk_thumbprint(const EVP_PKEY *key, char out[44]);

enum pki_jws_alg {
    PKI_JWS_ES256,
    PKI_JWS_ES384,
    PKI_JWS_ES512,
    PKI_JWS_RS256,
    PKI_JWS_EDDSA,
    PKI_JWS__MAX
};
/* "ES256"... -> enum. 0/-1 (unknown, "none", HS*). */
int pki_jws_alg_parse(const char *name, enum pki_jws_alg *out);
const char *pki_jws_alg_name(enum pki_jws_alg alg);
/* True when key's type and curve fit alg (ES256 needs P-256, RS256 RSA, EdDSA Ed25519). */
bool pki_jws_alg_fits_key(enum pki_jws_alg alg, const EVP_PKEY *key);
/*
 * Verifies a JWS signature over input. EC signatures are raw R||S as JOSE
 * requires; for ES256, 62- and 63-byte signatures (R or S that lost leading
 * zero bytes, seen from older Apple clients) are left-padded and retried.
 * 0 when valid, -1 otherwise.
 */
int pki_jws_verify(enum pki_jws_alg alg, EVP_PKEY *key, const void *input, size_t inlen,
                   const unsigned char *sig, size_t siglen);
/* Signs input (clients, simulator, tests). *sig is malloc'd raw JOSE form. 0/-1. */
int pki_jws_sign(enum pki_jws_alg alg, EVP_PKEY *key, const void *input, size_t inlen,
                 unsigned char **sig, size_t *siglen);

/* ---------------------------------------------------------------- CSR */

#define PKI_CSR_MAX_NAMES 100

/* A parsed, signature-checked PKCS#10 request. */
struct pki_csr {
    X509_REQ *req;   /* owned */
    EVP_PKEY *key;   /* owned reference to the request's public key */
    char *cn;        /* subject commonName (UTF-8) or NULL */
    char **dns;      /* dNSName SANs, lower-cased, as in the CSR */
    size_t ndns;
    char **ips;      /* iPAddress SANs in canonical text form (inet_ntop) */
    size_t nips;
    char **emails;   /* rfc822Name SANs */
    size_t nemails;
    char **uris;     /* uniformResourceIdentifier SANs */
    size_t nuris;
    char **perm_ids; /* permanentIdentifier otherName SANs (RFC 4043) rebuilt as
                        "identifierValue[/assigner]", the permanent-identifier form */
    size_t nperm_ids;
    char **hw_modules; /* HardwareModuleName otherName SANs (RFC 4108) rebuilt as
                          "hwSerialNum/hwType", the hardware-module identifier form */
    size_t nhw_modules;
    char spki_sha256[65]; /* hex SHA-256 of the request's SubjectPublicKeyInfo DER */
};
/*
 * Parses a DER CSR (at most 16 KiB), verifies its self-signature and that its
 * key is one of the `allowed` types (bitmask of 1u << enum pki_key_type).
 * -1 with err set to a reason fit for a badCSR detail.
 */
int pki_csr_parse(const unsigned char *der, size_t len, unsigned allowed_keys,
                  struct pki_csr *out, char err[ERR_LEN]);
/* Frees what pki_csr_parse allocated; zero-initialised or NULL is fine. */
void pki_csr_clear(struct pki_csr *csr);

/* ---------------------------------------------------------------- CA and issuance */

/* An issuing CA: certificate, private key and the chain served above it. */
struct pki_ca;

/*
 * Loads an issuing CA from PEM files. chain_path may be NULL; otherwise the
 * certificates in it (issuer first, up to the root) are served after the CA
 * certificate. The key must be 0600 and match the certificate. NULL on error.
 */
struct pki_ca *pki_ca_load(const char *name, const char *cert_path, const char *key_path,
                           const char *chain_path, char err[ERR_LEN]);
void pki_ca_free(struct pki_ca *ca);
const char *pki_ca_name(const struct pki_ca *ca);
/* Borrowed issuing certificate. */
X509 *pki_ca_cert(const struct pki_ca *ca);
/* PEM of the CA certificate followed by its chain (borrowed). */
const char *pki_ca_chain_pem(const struct pki_ca *ca);
/* notAfter of the CA certificate; an issued certificate never outlives it. */
int64_t pki_ca_not_after(const struct pki_ca *ca);

/*
 * Creates, when they do not exist yet, DIR/root.pem, DIR/root.key,
 * DIR/intermediate.pem and DIR/intermediate.key: a P-384 root ("<name> Root CA",
 * 10 years) and a P-256 issuing intermediate ("<name> Issuing CA", 5 years,
 * pathlen 0). Existing files are left untouched. Keys are 0600. 0/-1.
 */
int pki_ca_init_dir(const char *dir, const char *name, char err[ERR_LEN]);

/* Subject alternative name kinds a template can produce. */
enum pki_san_type {
    PKI_SAN_DNS,
    PKI_SAN_IP,
    PKI_SAN_EMAIL,
    PKI_SAN_URI,
    PKI_SAN_PERMANENT_ID, /* otherName 1.3.6.1.5.5.7.8.3, RFC 4043 PermanentIdentifier; value
                             "value[/dotted-OID]": identifierValue bytes as written, assigner */
    PKI_SAN_UPN,          /* otherName 1.3.6.1.4.1.311.20.2.3 */
    PKI_SAN_HW_MODULE,    /* otherName 1.3.6.1.5.5.7.8.4, RFC 4108 HardwareModuleName; value
                             "serial/dotted-OID": hwSerialNum bytes as written, hwType */
    PKI_SAN__MAX
};

struct pki_name_entry {
    const char *field; /* short name or OID text: "CN", "O", "OU", "C", "2.5.4.5" */
    const char *value; /* UTF-8, added as one X.509 name entry (never parsed as a DN) */
};

struct pki_san {
    enum pki_san_type type;
    const char *value;
};

/* Key usage bits (RFC 5280 order). */
#define PKI_KU_DIGITAL_SIGNATURE 0x01u
#define PKI_KU_NON_REPUDIATION 0x02u
#define PKI_KU_KEY_ENCIPHERMENT 0x04u
#define PKI_KU_DATA_ENCIPHERMENT 0x08u
#define PKI_KU_KEY_AGREEMENT 0x10u

/* Everything that shapes one certificate; all strings borrowed. */
struct pki_issue_req {
    EVP_PKEY *subject_key;                /* from the CSR */
    const struct pki_name_entry *subject; /* may be empty: SAN-only certificate */
    size_t nsubject;
    const struct pki_san *sans;
    size_t nsans;
    unsigned key_usage;    /* PKI_KU_* bits; 0 = digitalSignature (+ keyEncipherment for RSA) */
    const char **eku_oids; /* dotted OIDs or "serverAuth" / "clientAuth"; NULL = serverAuth */
    size_t neku;
    int64_t not_before; /* seconds since the epoch */
    int64_t not_after;  /* clamped to the CA's notAfter */
};

/* An issued certificate. */
struct pki_issued {
    char *pem;       /* leaf PEM only (caller frees) */
    char serial[41]; /* lower-case hex of the 128-bit (+1 byte) positive random serial */
    int64_t not_before, not_after;
};

/*
 * A certificate template as pki/ reads it (policy/ converts the config form,
 * so pki/ never depends on config/). Subject and SAN values are text with
 * ${/path} variables; "$$" is a literal "$". All strings borrowed.
 */
struct pki_template {
    const char *name;                     /* for error messages */
    const struct pki_name_entry *subject; /* in order; values are templates */
    size_t nsubject;
    const struct pki_san *sans;           /* values are templates */
    size_t nsans;
    unsigned key_usage;                   /* PKI_KU_* bits; 0 = pki_issue's default */
    const char *const *eku;               /* names or dotted OIDs; none = pki_issue's default */
    size_t neku;
    int64_t validity;                     /* seconds, > 0 */
};

/*
 * Variable lookup for pki_template_render: 0 with *val and *len (len bytes, may
 * hold a NUL, which rendering refuses; borrowed until render returns), or -1
 * when the variable has no value.
 */
typedef int pki_var_fn(void *arg, const char *path, const char **val, size_t *len);

#define PKI_TPL_MAX_VALUE 1024 /* bytes of one rendered value */

/* What a rendered pki_issue_req points into; owned by the caller. */
struct pki_tpl_out {
    struct pki_name_entry *subject;
    struct pki_san *sans;
    char **strings;
    size_t nstrings;
};

/*
 * Renders tpl into req: subject entries (one X.509 entry each, never a pasted
 * DN), SANs, key usage, EKU and not_before..not_before+validity. Leaves
 * req->subject_key alone. A variable without a value refuses the whole
 * certificate ("template wifi: ${/mdm/kandji/user_email} has no value"), as do
 * values that are empty, not UTF-8, hold control characters or exceed the
 * X.520 upper bound of their field (CN, O, OU 64; C 2; others 128; email 254).
 * req points into store until pki_tpl_out_clear. 0/-1 with err.
 */
int pki_template_render(const struct pki_template *tpl, pki_var_fn *lookup, void *arg,
                        int64_t not_before, struct pki_issue_req *req, struct pki_tpl_out *store,
                        char err[ERR_LEN]);
/* Frees what a render stored and zeroes it; zeroed storage is fine. */
void pki_tpl_out_clear(struct pki_tpl_out *store);

/* Issues and signs a certificate from ca. 0/-1. */
int pki_issue(const struct pki_ca *ca, const struct pki_issue_req *req, struct pki_issued *out,
              char err[ERR_LEN]);
void pki_issued_clear(struct pki_issued *iss);

/*
 * Creates the HTTPS listener certificate (P-256, names as dNSName or iPAddress
 * SANs, serverAuth) signed by ca, written to cert_path (leaf + chain PEM) and
 * key_path (0600). 0/-1.
 */
int pki_tls_cert_create(const struct pki_ca *ca, const char *const *names, size_t nnames,
                        const char *cert_path, const char *key_path, char err[ERR_LEN]);

/* ---------------------------------------------------------------- certificates */

/* Parses one DER certificate (revokeCert). NULL on error. Caller X509_free()s. */
X509 *pki_cert_parse_der(const unsigned char *der, size_t len, char err[ERR_LEN]);
/* The serial as lower-case hex without leading zeros beyond what pki_issue writes. 0/-1. */
int pki_cert_serial_hex(const X509 *cert, char out[41]);
/* True when ca issued cert (issuer name matches and the signature verifies). */
bool pki_cert_issued_by(X509 *cert, const struct pki_ca *ca);
/* PEM of the first certificate in a PEM string converted to DER (caller frees). 0/-1. */
int pki_pem_to_der(const char *pem, unsigned char **der, size_t *len);

/* ---------------------------------------------------------------- tls-alpn-01 */

/*
 * RFC 8737 checks on the certificate a tls-alpn-01 target presented: exactly
 * one SAN, a dNSName (or iPAddress) equal to identifier; a critical
 * id-pe-acmeIdentifier extension (1.3.6.1.5.5.7.1.31) holding an OCTET STRING
 * equal to SHA-256(key authorization). 0 when it passes, -1 with err.
 */
int pki_tlsalpn01_check(X509 *peer, const char *identifier, bool is_ip,
                        const unsigned char keyauth_sha256[32], char err[ERR_LEN]);

#endif
