/* Shared declarations of the pki unit tests (one executable, one group per file). */
#ifndef ACMESRV_TEST_PKI_H
#define ACMESRV_TEST_PKI_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pki/pki.h"
#include "pki/pki_int.h"

#define FIXTURE_DIR ATTESTA_SOURCE_DIR "/tests/fixtures/pki"

int test_pki_jwk_run(void);
int test_pki_jws_run(void);
int test_pki_csr_run(void);
int test_pki_ca_run(void);
int test_pki_issue_run(void);
int test_pki_tlsalpn_run(void);
int test_pki_template_run(void);
int test_pki_hw_module_run(void);
int test_pki_perm_id_run(void);
int test_pki_prp_run(void);

/* Reads a fixture file into a new buffer; fails the test when missing. */
unsigned char *tp_fixture(const char *name, size_t *len);
/* A fresh private temporary directory (caller frees the path, tp_rmdir removes it). */
char *tp_tmpdir(void);
void tp_rmdir(const char *dir);
/* A CA made with pki_ca_init_dir in a temp dir and loaded from its intermediate. */
struct pki_ca *tp_ca_new(char **dir);
/* DER of a CSR for key with the given DNS SANs (NULL-terminated list), signed by key. */
unsigned char *tp_csr_der(EVP_PKEY *key, const char *cn, const char *const *dns, size_t *len);
/* The same with any SANs (borrowed; NULL or empty: no SAN extension). */
unsigned char *tp_csr_der_sans(EVP_PKEY *key, const char *cn, GENERAL_NAMES *gens, size_t *len);
/* The same with the extensions more (borrowed; NULL: none) after the SANs. */
unsigned char *tp_csr_der_exts(EVP_PKEY *key, const char *cn, GENERAL_NAMES *gens,
                               const STACK_OF(X509_EXTENSION) *more, size_t *len);
/* The SAN pki/ builds for value, through a DER round trip of GeneralNames (one name). */
GENERAL_NAMES *tp_san_round_trip(enum pki_san_type type, const char *value);
/*
 * The elements of otherName gn, asserted to be of type type_oid and to hold a
 * SEQUENCE of n elements, read with OpenSSL's SEQUENCE OF ANY parser (new).
 */
ASN1_SEQUENCE_ANY *tp_othername_seq(const GENERAL_NAME *gn, const char *type_oid, int n);
/* An otherName of type oid whose value is the DER SEQUENCE der, as given (new). */
GENERAL_NAME *tp_othername_der(const char *oid, const void *der, size_t len);
/* The certificate in a PEM string. */
X509 *tp_pem_cert(const char *pem);
/*
 * Asserts gn is otherName HardwareModuleName { hwType = type, hwSerialNum = the
 * bytes of serial } and nothing else, read with OpenSSL's SEQUENCE OF ANY parser.
 */
void tp_assert_hw_module(const GENERAL_NAME *gn, const char *serial, const char *type);

#endif
