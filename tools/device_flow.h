/*
 * device_flow: one Apple-like device enrollment over ACME (permanent-identifier
 * or hardware-module order, device-attest-01 answered with an attestation from
 * an Apple-like test CA, CSR from the attested key, finalize, download), shared
 * by attesta-device-sim (one device, with failure injection) and attesta-bench
 * (many devices per thread, one account each thread). Not thread-safe: one
 * struct dflow per thread.
 */
#ifndef ACMESRV_TOOLS_DEVICE_FLOW_H
#define ACMESRV_TOOLS_DEVICE_FLOW_H

#include <stdbool.h>

#include "tools/acmec.h"
#include "tools/fake_apple.h"

/* Failures a simulated device can inject; DFLOW_F_NONE enrolls honestly. */
enum dflow_fault {
    DFLOW_F_NONE,
    DFLOW_F_WRONG_NONCE,
    DFLOW_F_NO_NONCE,
    DFLOW_F_OTHER_SERIAL,
    DFLOW_F_UNTRUSTED_ROOT,
    DFLOW_F_EXPIRED_LEAF,
    DFLOW_F_NOT_YET_VALID,
    DFLOW_F_CSR_OTHER_KEY,
    DFLOW_F_TRUNCATED_CBOR,
    DFLOW_F_GARBAGE_CBOR,
    DFLOW_F_SHORT_SIG,
    DFLOW_F_ERROR_MEMBER,
    DFLOW_F__MAX
};
/* "none", "wrong-nonce", ... indexed by enum dflow_fault. */
const char *dflow_fault_name(enum dflow_fault f);
/* Name -> fault. 0/-1. */
int dflow_fault_parse(const char *name, enum dflow_fault *out);

/* Outcomes of dflow_enroll, also attesta-device-sim's exit codes. */
#define DFLOW_ISSUED 0
#define DFLOW_REFUSED 1
#define DFLOW_ERROR 2

struct dflow {
    /* inputs, all borrowed */
    struct acmec *client;      /* with its account created */
    const struct fa_ca *ca;    /* Apple-like CA; NULL = load apple_ca_dir for each flow */
    const char *apple_ca_dir;  /* used when ca is NULL */
    const char *serial, *udid; /* attested values; udid may be NULL */
    const char *identifier;    /* identifier value in the order */
    const char *identifier_type; /* "hardware-module" ("serial/type-OID" value) or NULL for
                                    "permanent-identifier" */
    const char *os_version;
    EVP_PKEY *device_key;      /* the attested key the CSR carries */
    enum pki_key_type device_key_type;
    enum dflow_fault fault;
    bool quiet;                /* no "result: ..." lines on stdout (benchmarks) */
    int poll_timeout_ms;       /* how long to wait for a processing challenge (MDM lookups,
                                  manual approval) and the order; 0 = 30 s */
    const char *hold_file;     /* or NULL: the challenge answer waits until this file exists
                                  (tests stop the server while the answer is in flight) */
    /* outputs */
    char *cert_pem;            /* issued chain after DFLOW_ISSUED, owned; dflow_clear frees */
    const char *step;          /* step that failed or was refused, static string */
    char err[ERR_LEN];         /* reason after DFLOW_ERROR or DFLOW_REFUSED */
};

/*
 * Runs the whole enrollment: DFLOW_ISSUED (cert_pem set, "result: issued"
 * printed unless quiet), DFLOW_REFUSED (the server answered with a problem;
 * "result: refused step=... type=..." printed unless quiet) or DFLOW_ERROR
 * (transport or local failure; err says which).
 */
int dflow_enroll(struct dflow *f);
/* Frees the outputs so f can run again; NULL-safe. */
void dflow_clear(struct dflow *f);

#endif
