/*
 * revoke.c: revokeCert (RFC 8555 §7.6). The certificate must be one this CA
 * issued and recorded; the requester is the ordering account, an account
 * holding valid authorizations for every identifier (kid), or the holder of
 * the certificate key (jwk). The revocation is a versioned store update.
 */
#include "acme/acme_res_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 5280 §5.3.1 reason codes; 7 is unassigned there. */
static const int allowed_reasons[] = {0, 1, 2, 3, 4, 5, 6, 8, 9, 10};
#define ALLOWED_REASONS_TEXT "0, 1, 2, 3, 4, 5, 6, 8, 9, 10"

static int
read_reason(const cJSON *payload, int *reason, struct acme_problem *prob)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(payload, "reason");
    size_t i;

    *reason = -1;
    if (r == NULL)
        return 0;
    for (i = 0; cJSON_IsNumber(r) && i < nitems(allowed_reasons); i++) {
        if (r->valuedouble == (double)allowed_reasons[i]) {
            *reason = allowed_reasons[i];
            return 0;
        }
    }
    acme_problem_set(prob, "badRevocationReason", 400,
                     "reason must be one of " ALLOWED_REASONS_TEXT);
    return -1;
}

/* The DER certificate of the payload; malformed unless it parses. */
static X509 *
read_cert(const cJSON *payload, struct acme_problem *prob)
{
    const char *b64 = acme_json_str(payload, "certificate");
    unsigned char *der = NULL;
    size_t n, len = 0;
    char err[ERR_LEN] = "";
    X509 *x = NULL;

    if (b64 == NULL) {
        acme_problem_set(prob, "malformed", 400, "revokeCert needs a certificate");
        return NULL;
    }
    n = strnlen(b64, ACME_MAX_CERT_B64 + 1);
    if (n <= ACME_MAX_CERT_B64 && b64u_decode(b64, n, &der, &len) == 0)
        x = pki_cert_parse_der(der, len, err);
    if (x == NULL)
        acme_problem_set(prob, "malformed", 400, "certificate is not base64url DER X.509");
    free(der);
    return x;
}

struct cover {
    const struct acme_order *o;
    bool *covered;
};

/* Marks the order identifiers a valid authz of the account covers (V-6). */
static int
cover_one(void *arg, const struct store_rec *rec)
{
    struct cover *cv = arg;
    cJSON *d = cJSON_Parse(rec->data != NULL ? rec->data : "");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(d, "identifier");
    const char *type = acme_json_str(id, "type"), *value = acme_json_str(id, "value");
    bool wild = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "wildcard"));
    const char *want;
    size_t i;

    for (i = 0; type != NULL && value != NULL && rec->expires >= clk_now() && i < cv->o->nids;
         i++) {
        want = cv->o->ids[i].value;
        if (strcmp(type, acme_id_type_str[cv->o->ids[i].type]) != 0)
            continue;
        if (wild ? strncmp(want, "*.", 2) == 0 && strcmp(want + 2, value) == 0
                 : strcmp(want, value) == 0)
            cv->covered[i] = true;
    }
    cJSON_Delete(d);
    return 0;
}

static bool
holds_authzs(struct acme_rq *rq, const struct acme_cert *c)
{
    struct acme_order o = {0};
    struct acme_problem ignore = {0};
    struct store_filter f = {0};
    struct cover cv;
    char err[ERR_LEN] = "";
    bool ok = false;
    size_t i;

    if (acme_order_load(rq->ctx, c->order, &o, &ignore) != 0 || o.nids == 0)
        goto out;
    cv.o = &o;
    cv.covered = xcalloc(o.nids, sizeof(bool));
    f.owner = rq->acct.id;
    f.status = "valid";
    if (store_list(rq->ctx->store, STORE_AUTHZ, &f, cover_one, &cv, err) == 0)
        for (ok = true, i = 0; i < o.nids; i++)
            ok = ok && cv.covered[i];
    free(cv.covered);
out:
    acme_order_clear(&o);
    return ok;
}

/* V-4 .. V-7: who may revoke c. */
static int
may_revoke(struct acme_rq *rq, const struct acme_cert *c, X509 *x, struct acme_problem *prob)
{
    if (rq->has_acct) {
        if (strcmp(c->owner, rq->acct.id) == 0 || holds_authzs(rq, c))
            return 0;
    } else if (rq->jws.key != NULL && pki_key_equal(rq->jws.key, X509_get0_pubkey(x))) {
        return 0;
    }
    acme_problem_set(prob, "unauthorized", 403, "this key may not revoke that certificate");
    return -1;
}

/* Marks c revoked with a versioned update; retried when it changed meanwhile. */
static int
mark_revoked(struct acme_rq *rq, struct acme_cert *c, int reason, struct acme_problem *prob)
{
    struct store_rec rec;
    char *data = NULL, err[ERR_LEN] = "", serial[41];
    int i, rc = 1;

    acme_strlcpy(serial, c->serial, sizeof(serial));
    for (i = 0; i < ACME_COMMIT_TRIES && rc == 1; i++) {
        if (i > 0) {
            acme_cert_clear(c);
            if (acme_cert_load(rq->ctx, serial, c, prob) != 0)
                return -1;
        }
        if (strcmp(c->status, "revoked") == 0) {
            acme_problem_set(prob, "alreadyRevoked", 400, "certificate is already revoked");
            return -1;
        }
        acme_strlcpy(c->status, "revoked", sizeof(c->status));
        c->reason = reason;
        c->revoked_at = clk_now();
        acme_cert_rec(c, &rec, &data);
        rc = store_commit(rq->ctx->store, &(struct store_write){STORE_UPDATE, &rec, c->version}, 1,
                          err);
        free(data);
        data = NULL;
    }
    if (rc != 0) {
        acme_store_problem(prob, "revoking a certificate", rc > 0 ? "kept changing" : err);
        return -1;
    }
    return 0;
}

/* certificate.revoked for the event sink, once the revocation is durable. */
static void
emit_revoked(struct acme_rq *rq, const struct acme_cert *c)
{
    cJSON *obj = cJSON_CreateObject();

    cJSON_AddStringToObject(obj, "certificate", c->serial);
    cJSON_AddStringToObject(obj, "policy", c->policy);
    cJSON_AddStringToObject(obj, "ca", c->ca);
    if (c->device[0] != '\0')
        cJSON_AddStringToObject(obj, "device", c->device);
    cJSON_AddNumberToObject(obj, "reason", c->reason);
    cJSON_AddStringToObject(obj, "account", rq->has_acct ? rq->acct.id : "");
    acme_emit(rq->ctx, "certificate.revoked", obj);
}

int
acme_h_revoke_cert(struct acme_rq *rq, struct acme_problem *prob)
{
    struct acme_cert c = {0};
    const struct pki_ca *ca;
    char serial[41];
    X509 *x = NULL;
    int rc = -1, reason, found = 1;

    if (!cJSON_IsObject(rq->jws.payload)) {
        acme_problem_set(prob, "malformed", 400, "revokeCert needs a JSON object payload");
        goto out;
    }
    if (read_reason(rq->jws.payload, &reason, prob) != 0)
        goto out;
    x = read_cert(rq->jws.payload, prob);
    if (x == NULL)
        goto out;
    if (pki_cert_serial_hex(x, serial) == 0)
        found = acme_cert_load(rq->ctx, serial, &c, prob);
    if (found < 0)
        goto out;
    ca = found == 0 ? acme_ca_by_name(rq->ctx, c.ca) : NULL;
    if (ca == NULL || !pki_cert_issued_by(x, ca) || strcmp(c.policy, rq->policy->name) != 0) {
        acme_problem_set(prob, "malformed", 404, "this CA did not issue that certificate");
        goto out;
    }
    if (may_revoke(rq, &c, x, prob) != 0 || mark_revoked(rq, &c, reason, prob) != 0)
        goto out;
    log_info("acme", "certificate %s revoked (reason %d)", c.serial, reason);
    emit_revoked(rq, &c);
    free(rq->resp->body);
    rq->resp->body = NULL;
    rq->resp->body_len = 0;
    rq->resp->status = 200;
    rc = 0;
out:
    X509_free(x);
    acme_cert_clear(&c);
    return rc;
}
