/*
 * fuzz_attobj: device-attest-01 attestation objects. Every input goes through
 * att_verify (CBOR) and att_verify_chain_pem (the same bytes read as a PEM
 * chain) against the built-in Apple root, at a fixed time inside the windows
 * of the real leaves in the seed corpus so the success path stays reachable.
 */
#include "attest/attest.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 2026-05-10T00:00:00Z: the WRPWFW61H9, WV0NCDC2TX and HH0K6TJY0J leaves are valid. */
#define FUZZ_AT 1778371200

static struct att_verifier *verifier(void)
{
    static struct att_verifier *v;
    char err[ERR_LEN];

    /* Built once: the root store is read-only after att_verifier_new. */
    if (v == NULL) {
        v = att_verifier_new(NULL, 0, err);
        if (v == NULL)
            abort();
    }
    return v;
}

static void check_claims(enum att_result r, struct att_claims *c)
{
    char err[ERR_LEN];

    /* What a verified statement hands on is read by the ACME layer next. */
    if (r == ATT_OK) {
        (void)att_check_nonce(c, "token", false, err);
        (void)att_check_nonce(c, "token", true, err);
        (void)att_check_identity(c, c->serial, true, true, err);
        (void)att_check_identity(c, "WRPWFW61H9", true, false, err);
    }
    att_claims_clear(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct att_claims c;
    char err[ERR_LEN];
    unsigned char *copy;
    enum att_result r;

    /* An exact-size heap copy so ASan sees any read past len. */
    copy = xmalloc(size != 0 ? size : 1);
    memcpy(copy, data, size);

    memset(&c, 0, sizeof(c));
    err[0] = '\0';
    r = att_verify(verifier(), copy, size, FUZZ_AT, &c, err);
    if (r != ATT_OK && err[0] == '\0')
        abort(); /* a refusal must say why */
    check_claims(r, &c);

    memset(&c, 0, sizeof(c));
    err[0] = '\0';
    r = att_verify_chain_pem(verifier(), (const char *)copy, size, FUZZ_AT, &c, err);
    if (r != ATT_OK && err[0] == '\0')
        abort();
    check_claims(r, &c);

    free(copy);
    return 0;
}
