/*
 * attest: Apple Managed Device Attestation statements (device-attest-01).
 * Parses the CBOR attestation object, verifies the x5c chain against the
 * configured roots at a given time, and extracts the attested claims.
 * Pure and thread-safe: no I/O after att_verifier_new.
 */
#ifndef ACMESRV_ATTEST_H
#define ACMESRV_ATTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* Ceilings; struct att_limits may lower (never raise) them per verifier. */
#define ATT_MAX_ATTOBJ (64 * 1024) /* bytes of CBOR accepted */
#define ATT_MAX_X5C 4              /* certificates in attStmt.x5c */
#define ATT_MAX_DEPTH 4            /* nested CBOR containers */
#define ATT_MAX_PEM (128 * 1024)   /* bytes of a PEM chain (att_verify_chain_pem) */

/* What the leaf certificate attests. */
struct att_claims {
    char serial[64];           /* OID 1.2.840.113635.100.8.9.1, "" if absent */
    char udid[128];            /* 1.2.840.113635.100.8.9.2 */
    char os_version[32];       /* 1.2.840.113635.100.8.10.1 */
    char sepos_version[32];    /* 1.2.840.113635.100.8.10.2 */
    char llb_version[32];      /* 1.2.840.113635.100.8.10.3 */
    unsigned char nonce[32];   /* 1.2.840.113635.100.8.11.1 freshness code */
    size_t nonce_len;          /* 0 when the extension is absent */
    unsigned char *spki_der;   /* leaf SubjectPublicKeyInfo (owned) */
    size_t spki_len;
    char spki_sha256[65];      /* hex SHA-256 of spki_der */
    int64_t not_before, not_after;
};
void att_claims_clear(struct att_claims *c);

/* Why a statement was refused; ATT_ERR_INTERNAL is ours, not the device's. */
enum att_result {
    ATT_OK = 0,
    ATT_ERR_FORMAT,    /* not CBOR / wrong shape / not fmt "apple" / limits */
    ATT_ERR_CHAIN,     /* does not chain to a trusted root, or bad signature */
    ATT_ERR_VALIDITY,  /* expired or not yet valid at the verification time */
    ATT_ERR_NONCE,     /* nonce missing (when required) or not SHA-256(token) */
    ATT_ERR_IDENTITY,  /* identifier matches neither the serial nor the UDID */
    ATT_ERR_INTERNAL,
};

struct att_verifier;

/*
 * roots: PEM files with trust anchors; nroots == 0 uses the built-in Apple
 * Enterprise Attestation Root CA. NULL with err set.
 */
struct att_verifier *att_verifier_new(const char *const *roots, size_t nroots, char err[ERR_LEN]);
void att_verifier_free(struct att_verifier *v);

/* Per-verifier bounds on untrusted attestation objects (config attestation.limits). */
struct att_limits {
    size_t max_attobj; /* bytes of CBOR, 1..ATT_MAX_ATTOBJ */
    int max_depth;     /* nested CBOR containers, 2..ATT_MAX_DEPTH */
    int max_x5c;       /* certificates in x5c, 1..ATT_MAX_X5C */
};
/*
 * Sets v's limits; values outside their range mean the ceiling. Call before
 * v is shared with other threads.
 */
void att_verifier_set_limits(struct att_verifier *v, const struct att_limits *lim);

/*
 * Verifies an attestation object (raw CBOR) at time at (seconds since the
 * epoch) and fills claims. Returns ATT_OK or the reason, with err telling
 * exactly what failed (fit for a badAttestationStatement detail).
 */
enum att_result att_verify(const struct att_verifier *v, const unsigned char *cbor, size_t len,
                           int64_t at, struct att_claims *claims, char err[ERR_LEN]);
/*
 * Note for both verify calls: claims must start zeroed or hold earlier claims
 * (it is cleared first). It is filled as soon as the leaf parses, so it may
 * hold (untrusted) values after a failure: always att_claims_clear it, and
 * trust it only on ATT_OK.
 */

/* Same as att_verify for a PEM chain (leaf first), as `attesta attest inspect` reads. */
enum att_result att_verify_chain_pem(const struct att_verifier *v, const char *pem, size_t len,
                                     int64_t at, struct att_claims *claims, char err[ERR_LEN]);

/* Checks the freshness code equals SHA-256(token), constant time. */
enum att_result att_check_nonce(const struct att_claims *c, const char *token, bool required,
                                char err[ERR_LEN]);
/* Checks identifier equals the attested serial (if accept_serial) or UDID (if accept_udid). */
enum att_result att_check_identity(const struct att_claims *c, const char *identifier,
                                   bool accept_serial, bool accept_udid, char err[ERR_LEN]);

#endif
