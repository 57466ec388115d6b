/*
 * pki_int.h: declarations shared by the pki/ source files and its unit tests
 * only: error reporting, file I/O for keys and certificates, the CA object and
 * certificate-building helpers.
 */
#ifndef ACMESRV_PKI_INT_H
#define ACMESRV_PKI_INT_H

#include "pki/pki.h"

#include <sys/types.h>

#include <openssl/x509v3.h>

/* Key and certificate files larger than this are refused when read. */
#define PKI_FILE_MAX (256 * 1024)
/* A certificate's DER is refused above this size (revokeCert input). */
#define PKI_CERT_DER_MAX (64 * 1024)
/* Certificates accepted in a CA chain file. */
#define PKI_CHAIN_MAX 8
/* otherName type ids. */
#define PKI_OID_PERMANENT_ID "1.3.6.1.5.5.7.8.3"
#define PKI_OID_HW_MODULE_NAME "1.3.6.1.5.5.7.8.4"
#define PKI_OID_UPN "1.3.6.1.4.1.311.20.2.3"
#define PKI_OID_ACME_IDENTIFIER "1.3.6.1.5.5.7.1.31"

struct pki_ca {
    char *name;
    X509 *cert;
    EVP_PKEY *key;
    char *chain_pem; /* CA certificate followed by the chain file's certificates */
    int64_t not_after;
};

/* Fills err with "what: <OpenSSL reason>", logs it at debug level, and drains the queue. */
void pki_ossl_err(char err[ERR_LEN], const char *what);
/* printf into err (NULL-safe). */
void pki_set_err(char err[ERR_LEN], const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ASN1_TIME to seconds since the epoch. 0/-1. */
int pki_asn1_time_get(const ASN1_TIME *t, int64_t *out);
/* The digest a CA key signs with: SHA-256 (P-256, RSA), SHA-384 (P-384), NULL (Ed25519). */
const EVP_MD *pki_sign_md(const EVP_PKEY *key);
/* Copies an OpenSSL allocation of len bytes into an xmalloc one, freeing the original. */
unsigned char *pki_ossl_to_heap(unsigned char *p, size_t len);

/* 17-byte positive random serial; hex (34 chars) into hex when not NULL. 0/-1. */
int pki_serial_set(X509 *x, char hex[41], char err[ERR_LEN]);
/* Adds an extension from a fixed configuration string (never untrusted input). 0/-1. */
int pki_ext_add_conf(X509 *x, X509 *issuer, int nid, const char *value, char err[ERR_LEN]);
/* Adds the subject/authority key identifiers (issuer may be x itself). 0/-1. */
int pki_ext_add_key_ids(X509 *x, X509 *issuer, char err[ERR_LEN]);
/* Signs x with key, picking the digest via pki_sign_md. 0/-1. */
int pki_cert_sign(X509 *x, EVP_PKEY *key, char err[ERR_LEN]);
/* PEM of one certificate (caller frees). NULL on error. */
char *pki_cert_pem(X509 *x, char err[ERR_LEN]);
/* Reads every certificate of a PEM file (at most max). NULL on error or when empty. */
STACK_OF(X509) * pki_read_certs(const char *path, int max, char err[ERR_LEN]);

/* Builds one GeneralName from a SAN kind and its text form. NULL with err. */
GENERAL_NAME *pki_san_to_general_name(enum pki_san_type type, const char *value, char err[ERR_LEN]);
/*
 * Reads an RFC 4043 PermanentIdentifier from its DER SEQUENCE into *out as
 * "identifierValue" or, with an assigner, "identifierValue/assigner" (dotted
 * OID), the form of a permanent-identifier. *out is NULL when the optional
 * identifierValue is absent. Refuses a value that is not 1..1024 bytes of
 * UTF-8 or holds NUL or "/", since it would rebuild to another identifier.
 * 0/-1 (*out NULL).
 */
int pki_perm_id_parse(const unsigned char *der, size_t len, char **out);
/*
 * Reads an RFC 4108 HardwareModuleName from its DER SEQUENCE into *out as
 * "hwSerialNum/hwType" (dotted OID), the form of a hardware-module identifier.
 * Refuses a serial that is not 1..1024 bytes of UTF-8 or holds NUL or "/",
 * since no identifier could rebuild from it. 0/-1 (*out NULL).
 */
int pki_hw_module_parse(const unsigned char *der, size_t len, char **out);

#endif
