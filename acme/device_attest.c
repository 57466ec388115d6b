/*
 * device_attest.c: the device-attest-01 response (draft-ietf-acme-device-attest
 * §5; apple-device-attest.md §8 steps 2-9). The attestation is checked while
 * the request waits: chain, validity, freshness (SHA-256 of the token) and
 * identity. A refusal settles challenge, authz and order invalid in one commit
 * and answers badAttestationStatement, so the device learns why at once; an
 * internal fault leaves everything pending and answers serverInternal.
 */
#include "acme/acme_res_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Base64url characters that can carry ATT_MAX_ATTOBJ bytes. */
#define ATTOBJ_B64_MAX ((ATT_MAX_ATTOBJ / 3 + 1) * 4)

/* Decodes the attObj member into *cbor. 0, or -1 with prob (malformed, challenge untouched). */
static int
decode_attobj(const cJSON *payload, unsigned char **cbor, size_t *len, struct acme_problem *prob)
{
    const char *b64 = acme_json_str(payload, "attObj");
    size_t n;

    *cbor = NULL;
    if (b64 == NULL || b64[0] == '\0') {
        acme_problem_set(prob, "malformed", 400,
                         "device-attest-01 needs a non-empty attObj string");
        return -1;
    }
    n = strnlen(b64, ATTOBJ_B64_MAX + 1);
    if (n > ATTOBJ_B64_MAX) {
        acme_problem_set(prob, "malformed", 400, "attObj exceeds %d bytes", ATT_MAX_ATTOBJ);
        return -1;
    }
    if (b64u_decode(b64, n, cbor, len) != 0 || *len == 0 || *len > ATT_MAX_ATTOBJ) {
        free(*cbor);
        *cbor = NULL;
        acme_problem_set(prob, "malformed", 400, "attObj is not base64url without padding");
        return -1;
    }
    return 0;
}

/* Runs att_verify, the freshness and the identity checks (DA-11 .. DA-14). */
static enum att_result
verify(struct acme_rq *rq, const struct acme_authz *a, const struct acme_chall *ch,
       const unsigned char *cbor, size_t len, struct att_claims *claims, char err[ERR_LEN])
{
    const struct cfg_attestation *ac = &rq->ctx->cfg->attestation;
    char device[ACME_MAX_IDENTIFIER + 1];
    enum att_result r;

    if (rq->ctx->attest == NULL) {
        acme_strlcpy(err, "no attestation verifier configured", ERR_LEN);
        return ATT_ERR_INTERNAL;
    }
    r = att_verify(rq->ctx->attest, cbor, len, clk_now(), claims, err);
    if (r != ATT_OK)
        return r;
    r = att_check_nonce(claims, ch->token, ac->require_nonce, err);
    if (r != ATT_OK)
        return r;
    /* "SERIAL/1.2.3" names the device by its part before the assigner OID. */
    acme_ident_device_part(&a->ident, device, sizeof(device));
    return att_check_identity(claims, device, ac->accept_serial, ac->accept_udid, err);
}

/* Settles a refusal (audited) and turns it into the answer (DA-15, DA-16). */
static int
refuse(struct acme_rq *rq, const struct acme_authz *a, const struct acme_chall *ch, const char *why,
       bool identity, struct acme_problem *prob)
{
    struct acme_problem fail = {0}, sprob = {0};
    struct acme_settle s = {0};
    struct acme_audit au = {0};
    struct acme_audit_rec ar = {0};
    char device[ACME_MAX_IDENTIFIER + 1];

    acme_problem_set(&fail, "badAttestationStatement", 400, "%s", why);
    if (identity)
        acme_problem_add_sub(&fail, "rejectedIdentifier", acme_id_type_str[a->ident.type],
                             a->ident.value, "the attestation names another device");
    acme_ident_device_part(&a->ident, device, sizeof(device));
    au.stage = "attestation";
    au.lookup = device;
    au.policy = a->policy;
    au.reason = fail.detail;
    au.account = a->owner;
    au.identifier = a->ident.value;
    au.authz = a->id;
    acme_audit_make(&au, &ar);
    s.fail = &fail;
    s.audit = &ar.rec;
    s.loaded = a;
    if (acme_res_settle_ex(rq->ctx, a->id, ch->id, &s, NULL, &sprob) != 0) {
        acme_audit_clear(&ar);
        *prob = sprob;
        return -1;
    }
    log_info("acme", "authz %s device-attest-01 refused: %s", a->id, why);
    acme_emit(rq->ctx, "enrollment.denied", acme_audit_json(&au));
    acme_audit_clear(&ar);
    *prob = fail;
    return -1;
}

static void
claims_to_attested(const struct att_claims *c, struct acme_attested *out)
{
    memset(out, 0, sizeof(*out));
    out->present = true;
    acme_strlcpy(out->serial, c->serial, sizeof(out->serial));
    acme_strlcpy(out->udid, c->udid, sizeof(out->udid));
    acme_strlcpy(out->os_version, c->os_version, sizeof(out->os_version));
    acme_strlcpy(out->sepos_version, c->sepos_version, sizeof(out->sepos_version));
    acme_strlcpy(out->spki_sha256, c->spki_sha256, sizeof(out->spki_sha256));
}

int
acme_device_attest(struct acme_rq *rq, struct acme_authz *a, size_t idx, struct acme_problem *prob)
{
    struct att_claims claims = {0};
    struct acme_attested att;
    const struct acme_chall *ch = &a->ch[idx];
    const char *derr;
    unsigned char *cbor = NULL;
    size_t len = 0;
    char err[ERR_LEN] = "";
    enum att_result r;
    int rc = -1;

    /* Step 2: only a pending challenge of a pending authz is answered; else its state. */
    if (strcmp(acme_authz_status(a), "pending") != 0 || strcmp(ch->status, "pending") != 0) {
        acme_chall_respond(rq, a, ch);
        return 0;
    }
    /* Step 3: a device that reports its own failure gives up the challenge. */
    if (cJSON_GetObjectItemCaseSensitive(rq->jws.payload, "error") != NULL) {
        derr = acme_json_str(cJSON_GetObjectItemCaseSensitive(rq->jws.payload, "error"), "detail");
        snprintf(err, sizeof(err), "the device reported an error%s%.200s", derr != NULL ? ": " : "",
                 derr != NULL ? derr : "");
        return refuse(rq, a, ch, err, false, prob);
    }
    if (decode_attobj(rq->jws.payload, &cbor, &len, prob) != 0)
        goto out;
    r = verify(rq, a, ch, cbor, len, &claims, err);
    if (r == ATT_ERR_INTERNAL) {
        log_err("acme", "authz %s device-attest-01: %s", a->id, err);
        acme_problem_set(prob, "serverInternal", 500, "attestation could not be checked");
        goto out;
    }
    if (r != ATT_OK) {
        rc = refuse(rq, a, ch, err, r == ATT_ERR_IDENTITY, prob);
        goto out;
    }
    claims_to_attested(&claims, &att);
    log_info("acme", "authz %s device-attest-01 verified (serial %s)", a->id, att.serial);
    rc = acme_device_admit(rq, a, idx, &att, prob);
out:
    free(cbor);
    att_claims_clear(&claims);
    return rc;
}
