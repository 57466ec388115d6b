/*
 * issue.c: what finalize adds for enrollment policies: the certificate
 * rendered from the policy's template (variables from the CSR, the attested
 * claims and the MDM attributes the admission stored with the authz), the
 * previous certificate of the same device and policy that a new one
 * supersedes, and the issuance record (audit + supersede + revocation in the
 * commit that stores the certificate, events after it).
 */
#include "acme/acme_res_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

/* MDM sources and attributes a stored decision can hand to a template. */
#define MAX_SOURCES 16
#define MAX_ATTRS 128
/* Issuance records looked at to find the certificate a new one supersedes. */
#define SUPERSEDE_SCAN 32

void
acme_issue_key(const struct acme_order *o, const struct acme_authz *az, char *out, size_t len)
{
    if (o->nauthz > 0 && az[0].att.present && az[0].att.serial[0] != '\0')
        acme_strlcpy(out, az[0].att.serial, len);
    else
        acme_ident_device_part(&o->ids[0], out, len);
}

void
acme_issue_roles(const struct acme_authz *az, struct pol_roles *roles)
{
    const cJSON *r;

    memset(roles, 0, sizeof(*roles));
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(az->decision, "roles"))
    {
        if (cJSON_IsString(r) && roles->n < POL_MAX_ROLES)
            roles->names[roles->n++] = r->valuestring;
    }
}

void
acme_issue_window(const struct acme_ctx *ctx, const struct cfg_policy *pol,
                  const struct acme_order *o, int64_t *not_before, int64_t *not_after)
{
    *not_before = o->not_before != 0 ? o->not_before : clk_now();
    *not_after = o->not_after != 0 ? o->not_after : *not_before + pol_cert_validity(ctx->cfg, pol);
}

int
acme_issue_render(struct acme_rq *rq, const struct acme_order *o, const struct acme_authz *az,
                  const struct pki_csr *csr, struct pki_issue_req *req,
                  struct pol_rendered *store, struct acme_problem *prob)
{
    struct pol_mdm mdm[MAX_SOURCES];
    struct pol_attr attrs[MAX_ATTRS];
    struct att_claims claims;
    struct pol_input in = {0};
    char err[ERR_LEN] = "";
    size_t nmdm = 0;
    int64_t nb, na;

    memset(req, 0, sizeof(*req));
    if (o->nauthz > 0 && az[0].decision != NULL &&
        acme_decision_input(az[0].decision, mdm, MAX_SOURCES, attrs, MAX_ATTRS, &nmdm) != 0) {
        acme_problem_set(prob, "serverInternal", 500, "too many MDM attributes to render");
        return -1;
    }
    in.policy = rq->policy->name;
    if (o->nauthz > 0 && az[0].att.present) {
        acme_attested_claims(&az[0].att, &claims);
        in.claims = &claims;
    }
    in.mdm = mdm;
    in.nmdm = nmdm;
    in.eab_kid = rq->acct.eab_kid[0] != '\0' ? rq->acct.eab_kid : NULL;
    in.csr = csr;
    /* A hardware_module_name SAN takes the ordered "serial/type-OID" whole (DA-5). */
    in.identifier = acme_id_is_device(o->ids[0].type) ? o->ids[0].value : NULL;
    acme_issue_window(rq->ctx, rq->policy, o, &nb, &na);
    if (pol_render(rq->ctx->cfg, rq->policy, &in, nb, req, store, err) != 0) {
        /* The template names the variable that had no value: the client can act on it. */
        acme_problem_set(prob, "badCSR", 400, "%s", err);
        return -1;
    }
    req->subject_key = csr->key;
    req->not_after = na; /* O-3: a requested notAfter, not nb + the template's validity */
    return 0;
}

struct find_arg {
    struct acme_ctx *ctx;
    const char *policy, *exclude;
    struct acme_cert *old;
    int found; /* 0 found, 1 none, -1 error */
    struct acme_problem *prob;
};

/* The newest issuance of the policy decides: its certificate, if still current. */
static int
find_one(void *arg, const struct store_rec *rec)
{
    struct find_arg *fa = arg;
    cJSON *d = cJSON_Parse(rec->data != NULL ? rec->data : "");
    const char *stage = acme_json_str(d, "stage"), *pol = acme_json_str(d, "policy");
    const char *serial = acme_json_str(d, "certificate");
    int stop = 0, rc;

    if (stage == NULL || strcmp(stage, "issuance") != 0 || pol == NULL ||
        strcmp(pol, fa->policy) != 0 || serial == NULL || strcmp(serial, fa->exclude) == 0)
        goto out;
    stop = 1;
    rc = acme_cert_load(fa->ctx, serial, fa->old, fa->prob);
    if (rc == 0 && (strcmp(fa->old->status, "valid") != 0 || fa->old->superseded_by[0] != '\0')) {
        acme_cert_clear(fa->old);
        rc = 1;
    }
    fa->found = rc;
out:
    cJSON_Delete(d);
    return stop;
}

int
acme_supersede_find(struct acme_ctx *ctx, const char *key, const char *policy,
                    const char *exclude, struct acme_cert *old, struct acme_problem *prob)
{
    struct store_filter f = {.lookup = key, .limit = SUPERSEDE_SCAN, .newest_first = true};
    struct find_arg fa = {ctx, policy, exclude, old, 1, prob};
    char err[ERR_LEN] = "";

    memset(old, 0, sizeof(*old));
    if (store_list(ctx->store, STORE_AUDIT, &f, find_one, &fa, err) != 0) {
        acme_store_problem(prob, "finding the certificate to supersede", err);
        return -1;
    }
    return fa.found;
}

/* Events once the issuance is durable. */
void
acme_issue_events(struct acme_ctx *ctx, const struct acme_audit *au, const struct acme_cert *c,
                  const struct acme_cert *old)
{
    cJSON *obj = acme_audit_json(au);

    cJSON_AddNumberToObject(obj, "not_before", (double)c->not_before);
    cJSON_AddNumberToObject(obj, "not_after", (double)c->not_after);
    acme_emit(ctx, "certificate.issued", obj);
    if (old == NULL || strcmp(old->status, "revoked") != 0)
        return;
    obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "certificate", old->serial);
    cJSON_AddStringToObject(obj, "policy", old->policy);
    cJSON_AddStringToObject(obj, "ca", old->ca);
    cJSON_AddStringToObject(obj, "device", au->lookup);
    cJSON_AddNumberToObject(obj, "reason", old->reason);
    cJSON_AddStringToObject(obj, "superseded_by", c->serial);
    acme_emit(ctx, "certificate.revoked", obj);
}
