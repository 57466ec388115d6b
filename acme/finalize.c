/*
 * finalize.c: order finalization (RFC 8555 §7.4, §11.1; device-attest §3.2,
 * §8). Checks the CSR against the order (exact identifier set for network
 * names; attested key and device identifier for device orders), issues from
 * the policy's CA and records certificate and order in ONE commit, so the
 * certificate URL exists only once the certificate is durable.
 */
#include "acme/acme_res_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/policy.h"

static bool
order_has(const struct acme_order *o, enum acme_id_type t, const char *value)
{
    size_t i;

    for (i = 0; i < o->nids; i++)
        if (o->ids[i].type == t && strcmp(o->ids[i].value, value) == 0)
            return true;
    return false;
}

static bool
csr_has(const struct pki_csr *csr, enum acme_id_type t, const char *value)
{
    char **list = t == ACME_ID_DNS ? csr->dns : csr->ips;
    size_t n = t == ACME_ID_DNS ? csr->ndns : csr->nips, i;

    for (i = 0; i < n; i++)
        if (strcmp(list[i], value) == 0)
            return true;
    /* F-2: a name may sit in the CN only. */
    return csr->cn != NULL && strcmp(csr->cn, value) == 0;
}

/* F-2: the CSR asks for exactly the order's dns/ip identifiers. */
static int
check_network(const struct acme_order *o, const struct pki_csr *csr, struct acme_problem *prob)
{
    size_t i;

    if (csr->nemails + csr->nuris + csr->nperm_ids + csr->nhw_modules > 0)
        goto extra_type;
    for (i = 0; i < csr->ndns; i++)
        if (!order_has(o, ACME_ID_DNS, csr->dns[i])) {
            acme_problem_set(prob, "badCSR", 400, "CSR names %.253s, which the order does not",
                             csr->dns[i]);
            return -1;
        }
    for (i = 0; i < csr->nips; i++)
        if (!order_has(o, ACME_ID_IP, csr->ips[i])) {
            acme_problem_set(prob, "badCSR", 400, "CSR names %.64s, which the order does not",
                             csr->ips[i]);
            return -1;
        }
    if (csr->cn != NULL && csr->cn[0] != '\0' && !order_has(o, ACME_ID_DNS, csr->cn) &&
        !order_has(o, ACME_ID_IP, csr->cn)) {
        acme_problem_set(prob, "badCSR", 400, "CSR common name %.64s is not in the order", csr->cn);
        return -1;
    }
    for (i = 0; i < o->nids; i++)
        if (!csr_has(csr, o->ids[i].type, o->ids[i].value)) {
            acme_problem_set(prob, "badCSR", 400, "CSR lacks the order identifier %s",
                             o->ids[i].value);
            return -1;
        }
    return 0;
extra_type:
    acme_problem_set(prob, "badCSR", 400, "CSR asks for e-mail, URI or device names");
    return -1;
}

/*
 * DA-6: each device name of the CSR, rebuilt as pki reads it back
 * ("identifierValue[/assigner]", "hwSerialNum/hwType"), is byte for byte an
 * identifier of type t in the order (no case folding; an assigner only when
 * the order has one).
 */
static int
check_device_names(const struct acme_order *o, enum acme_id_type t, const char *what,
                   char *const *names, size_t n, struct acme_problem *prob)
{
    const char *want = o->ids[0].value;
    size_t i, k;

    for (k = 0; k < n; k++) {
        if (order_has(o, t, names[k]))
            continue;
        for (i = 0; i < o->nids; i++)
            if (o->ids[i].type == t) {
                want = o->ids[i].value;
                break;
            }
        acme_problem_set(prob, "badCSR", 400,
                         "CSR %s %.160s does not match the order identifier %.160s", what,
                         names[k], want);
        return -1;
    }
    return 0;
}

/* DA-6, DA-17, §8 step 10: device names and the attested key. */
static int
check_device(const struct acme_order *o, const struct acme_authz *az, const struct pki_csr *csr,
             struct acme_problem *prob)
{
    size_t i;

    if (csr->ndns + csr->nips + csr->nemails + csr->nuris > 0) {
        acme_problem_set(prob, "badCSR", 400, "a device CSR carries no network names");
        return -1;
    }
    if (check_device_names(o, ACME_ID_PERMANENT, "permanentIdentifier", csr->perm_ids,
                           csr->nperm_ids, prob) != 0 ||
        check_device_names(o, ACME_ID_HARDWARE, "HardwareModuleName", csr->hw_modules,
                           csr->nhw_modules, prob) != 0)
        return -1;
    if (csr->cn != NULL && csr->cn[0] != '\0' && !order_has(o, o->ids[0].type, csr->cn)) {
        acme_problem_set(prob, "badCSR", 400,
                         "CSR common name must be empty or the device identifier");
        return -1;
    }
    for (i = 0; i < o->nauthz; i++)
        if (!az[i].att.present || strcmp(az[i].att.spki_sha256, csr->spki_sha256) != 0) {
            acme_problem_set(prob, "badCSR", 400, "CSR key is not the attested key");
            return -1;
        }
    return 0;
}

/* F-7: a certificate never carries an account key, this account's or another's. */
static int
check_key(struct acme_rq *rq, const struct pki_csr *csr, struct acme_problem *prob)
{
    char thumb[44];
    int rc;

    if (rq->jws.key != NULL && pki_key_equal(csr->key, rq->jws.key))
        goto refuse;
    if (pki_jwk_thumbprint(csr->key, thumb) != 0)
        return 0; /* a key type JWK cannot express is no account key */
    /* Any policy's: one key must not be both an account and a certificate key anywhere. */
    rc = acme_account_key_in_use(rq->ctx, thumb, prob);
    if (rc != 0)
        return rc == 1 ? 0 : -1;
refuse:
    acme_problem_set(prob, "badCSR", 400, "CSR key is an account key");
    return -1;
}

/* Loads every authz of o; all must still be valid (Z-8). */
static int
load_authzs(struct acme_rq *rq, const struct acme_order *o, struct acme_authz *az,
            struct acme_problem *prob)
{
    size_t i;

    for (i = 0; i < o->nauthz; i++) {
        if (acme_authz_load(rq->ctx, o->authz[i], &az[i], prob) != 0) {
            acme_problem_set(prob, "serverInternal", 500, "order lost an authorization");
            return -1;
        }
        if (strcmp(acme_authz_status(&az[i]), "valid") != 0) {
            acme_problem_set(prob, "orderNotReady", 403, "authorization for %s is %s",
                             az[i].ident.value, acme_authz_status(&az[i]));
            return -1;
        }
    }
    return 0;
}

/* Parses the finalize payload into csr (F-1). */
static int
read_csr(struct acme_rq *rq, struct pki_csr *csr, struct acme_problem *prob)
{
    const char *b64 = acme_json_str(rq->jws.payload, "csr");
    unsigned char *der = NULL;
    size_t n, len = 0;
    char err[ERR_LEN] = "";
    int rc = -1;

    if (b64 == NULL) {
        acme_problem_set(prob, "malformed", 400, "finalize needs {\"csr\": base64url DER}");
        return -1;
    }
    n = strnlen(b64, ACME_MAX_CSR_B64 + 1);
    if (n > ACME_MAX_CSR_B64 || b64u_decode(b64, n, &der, &len) != 0) {
        acme_problem_set(prob, "malformed", 400, "csr is not base64url DER without padding");
        goto out;
    }
    /* A template may narrow the policy's key types (a Wi-Fi profile wants EC only). */
    if (pki_csr_parse(der, len, pol_key_types(rq->ctx->cfg, rq->policy), csr, err) != 0) {
        acme_problem_set(prob, "badCSR", 400, "%s", err);
        goto out;
    }
    rc = 0;
out:
    free(der);
    return rc;
}

/* Commits o with a new status (expect its version); o->version follows. */
static int
order_set_status(struct acme_ctx *ctx, struct acme_order *o, const char *status,
                 struct acme_problem *prob)
{
    struct store_rec rec;
    char *data = NULL, err[ERR_LEN] = "";
    int rc;

    acme_strlcpy(o->status, status, sizeof(o->status));
    acme_order_rec(o, &rec, &data);
    rc = store_commit(ctx->store, &(struct store_write){STORE_UPDATE, &rec, o->version}, 1, err);
    free(data);
    if (rc == 0) {
        o->version++;
        return 0;
    }
    if (rc > 0)
        acme_problem_set(prob, "orderNotReady", 403, "the order changed meanwhile");
    else
        acme_store_problem(prob, "updating an order", err);
    return -1;
}

/* Signs a rendered template request. */
static int
issue_rendered(struct acme_rq *rq, const struct acme_order *o, const struct pki_issue_req *req,
               struct pki_issued *iss, struct acme_problem *prob)
{
    char err[ERR_LEN] = "";

    if (pki_issue(acme_policy_ca(rq->ctx, rq->policy), req, iss, err) == 0)
        return 0;
    log_err("acme", "order %s: issuance failed: %s", o->id, err);
    acme_problem_set(prob, "serverInternal", 500, "certificate issuance failed");
    return -1;
}

/* The SAN each identifier type becomes in the built-in profile. */
static const enum pki_san_type san_type[ACME_ID__MAX] = {
    [ACME_ID_DNS] = PKI_SAN_DNS,
    [ACME_ID_IP] = PKI_SAN_IP,
    [ACME_ID_PERMANENT] = PKI_SAN_PERMANENT_ID,
    [ACME_ID_HARDWARE] = PKI_SAN_HW_MODULE,
};

/* Builds the built-in certificate profile and signs it. */
static int
issue(struct acme_rq *rq, const struct acme_order *o, const struct pki_csr *csr,
      struct pki_issued *iss, struct acme_problem *prob)
{
    static const char *const eku_net[] = {"serverAuth", "clientAuth"};
    static const char *const eku_dev[] = {"clientAuth"};
    struct pki_san *sans = xcalloc(o->nids, sizeof(*sans));
    struct pki_name_entry cn = {"CN", o->ids[0].value};
    struct pki_issue_req req = {0};
    bool device = acme_id_is_device(o->ids[0].type);
    char err[ERR_LEN] = "";
    size_t i;
    int rc;

    /* DA-4, DA-5: device identifiers go whole; pki splits off the assigner or hwType OID. */
    for (i = 0; i < o->nids; i++) {
        sans[i].type = san_type[o->ids[i].type];
        sans[i].value = o->ids[i].value;
    }
    req.subject_key = csr->key;
    req.subject = &cn;
    req.nsubject = strlen(cn.value) <= 64 ? 1 : 0;
    req.sans = sans;
    req.nsans = o->nids;
    req.key_usage = device ? PKI_KU_DIGITAL_SIGNATURE : 0;
    req.eku_oids = device ? (const char **)eku_dev : (const char **)eku_net;
    req.neku = device ? nitems(eku_dev) : nitems(eku_net);
    acme_issue_window(rq->ctx, rq->policy, o, &req.not_before, &req.not_after);
    rc = pki_issue(acme_policy_ca(rq->ctx, rq->policy), &req, iss, err);
    free(sans);
    if (rc != 0) {
        log_err("acme", "order %s: issuance failed: %s", o->id, err);
        acme_problem_set(prob, "serverInternal", 500, "certificate issuance failed");
    }
    return rc;
}

/* Fills the certificate record of a fresh issuance. */
static void
cert_fill(struct acme_rq *rq, const struct acme_order *o, const struct pki_csr *csr,
          const struct pki_issued *iss, struct acme_cert *c)
{
    const struct pki_ca *ca = acme_policy_ca(rq->ctx, rq->policy);

    memset(c, 0, sizeof(*c));
    acme_strlcpy(c->serial, iss->serial, sizeof(c->serial));
    acme_strlcpy(c->owner, o->owner, sizeof(c->owner));
    acme_strlcpy(c->status, "valid", sizeof(c->status));
    acme_strlcpy(c->spki, csr->spki_sha256, sizeof(c->spki));
    c->created = clk_now();
    c->expires = iss->not_after;
    acme_strlcpy(c->order, o->id, sizeof(c->order));
    acme_strlcpy(c->policy, o->policy, sizeof(c->policy));
    acme_strlcpy(c->ca, pki_ca_name(ca), sizeof(c->ca));
    c->pem = xasprintf("%s%s", iss->pem, pki_ca_chain_pem(ca));
    c->not_before = iss->not_before;
    c->not_after = iss->not_after;
    c->reason = -1;
    if (acme_id_is_device(o->ids[0].type))
        acme_ident_device_part(&o->ids[0], c->device, sizeof(c->device));
}

/* The previous certificate of the device under this policy becomes superseded. */
static int
supersede(struct acme_rq *rq, const char *key, struct acme_cert *c, struct acme_cert *old,
          bool *have_old, struct acme_problem *prob)
{
    int found;

    *have_old = false;
    if (c->device[0] == '\0')
        return 0; /* network names: several orders may rightly hold one name */
    found = acme_supersede_find(rq->ctx, key, c->policy, c->serial, old, prob);
    if (found < 0)
        return -1;
    if (found > 0)
        return 0;
    *have_old = true;
    acme_strlcpy(c->supersedes, old->serial, sizeof(c->supersedes));
    acme_strlcpy(old->superseded_by, c->serial, sizeof(old->superseded_by));
    if (rq->policy->supersede == CFG_SUPERSEDE_REVOKE) {
        acme_strlcpy(old->status, "revoked", sizeof(old->status));
        old->reason = 4; /* RFC 5280 superseded */
        old->revoked_at = clk_now();
    }
    return 0;
}

/* Sleeps a random 0..2^min(attempt,4) ms (a pool thread; the loops never wait here). */
static void
conflict_pause(int attempt)
{
    unsigned char r = 0;
    int cap_ms = 1 << (attempt < 4 ? attempt : 4);
    struct timespec ts;

    if (rand_bytes(&r, 1) != 0)
        r = 128;
    long us = (long)r * cap_ms * 1000 / 255;
    ts.tv_sec = 0;
    ts.tv_nsec = us * 1000;
    nanosleep(&ts, NULL);
}

/* One try of the issuance commit: 0 done, 1 conflict, -1 error. */
static int
record_once(struct acme_rq *rq, struct acme_order *o, const struct acme_authz *az,
            const struct pki_csr *csr, const struct pki_issued *iss, struct acme_problem *prob)
{
    struct acme_cert c = {0}, old = {0};
    struct store_rec recs[3];
    struct store_write w[4];
    struct acme_audit au = {0};
    struct acme_audit_rec ar = {0};
    struct pol_roles roles;
    char *data[3] = {NULL, NULL, NULL}, err[ERR_LEN] = "", key[ACME_MAX_IDENTIFIER + 1];
    bool have_old = false;
    size_t nw = 3;
    int rc = -1;

    cert_fill(rq, o, csr, iss, &c);
    acme_issue_key(o, az, key, sizeof(key));
    if (supersede(rq, key, &c, &old, &have_old, prob) != 0)
        goto out;
    acme_issue_roles(&az[0], &roles);
    au.stage = "issuance";
    au.allowed = true;
    au.lookup = key;
    au.policy = o->policy;
    au.reason = have_old ? "certificate issued; supersedes the previous one"
                         : "certificate issued";
    au.account = o->owner;
    au.identifier = o->ids[0].value;
    au.roles = &roles;
    au.tpl = rq->policy->template;
    au.ca = c.ca;
    au.cert_serial = c.serial;
    au.supersedes = c.supersedes;
    acme_audit_make(&au, &ar);
    acme_cert_rec(&c, &recs[0], &data[0]);
    acme_strlcpy(o->status, "valid", sizeof(o->status));
    acme_strlcpy(o->cert_serial, iss->serial, sizeof(o->cert_serial));
    acme_order_rec(o, &recs[1], &data[1]);
    w[0] = (struct store_write){STORE_INSERT, &recs[0], 0};
    w[1] = (struct store_write){STORE_UPDATE, &recs[1], o->version};
    w[2] = (struct store_write){STORE_INSERT, &ar.rec, 0};
    if (have_old) {
        acme_cert_rec(&old, &recs[2], &data[2]);
        w[nw++] = (struct store_write){STORE_UPDATE, &recs[2], old.version};
    }
    rc = store_commit(rq->ctx->store, w, nw, err);
    if (rc < 0)
        acme_store_problem(prob, "recording a certificate", err);
    if (rc == 0)
        acme_issue_events(rq->ctx, &au, &c, have_old ? &old : NULL);
out:
    free(data[0]);
    free(data[1]);
    free(data[2]);
    acme_audit_clear(&ar);
    acme_cert_clear(&old);
    acme_cert_clear(&c);
    return rc;
}

/*
 * Inserts the certificate, its audit record and the superseded one's update
 * and marks the order valid, atomically. A conflict means another issuance
 * for the device (or this order) won the race: retry with what it wrote.
 */
static int
record(struct acme_rq *rq, struct acme_order *o, const struct acme_authz *az,
       const struct pki_csr *csr, const struct pki_issued *iss, struct acme_problem *prob)
{
    struct acme_order cur = {0};
    int i, rc = 1;

    /*
     * Every concurrent issuance for one device races to supersede the same
     * previous certificate and only one wins per round, so the bound is the
     * number of finalizes that can run at once (pool threads, instances), with
     * a jittered pause so the losers do not collide again in the same group.
     */
    for (i = 0; i < ACME_ISSUE_TRIES && rc == 1; i++) {
        if (i > 0)
            conflict_pause(i);
        rc = record_once(rq, o, az, csr, iss, prob);
        if (rc != 1)
            break;
        /* Our order must still be ours and processing; else the conflict is real. */
        if (acme_order_load(rq->ctx, o->id, &cur, prob) != 0 ||
            strcmp(cur.status, "processing") != 0) {
            acme_order_clear(&cur);
            break;
        }
        o->version = cur.version;
        acme_order_clear(&cur);
    }
    if (rc == 1)
        acme_store_problem(prob, "recording a certificate", "version conflict");
    return rc == 0 ? 0 : -1;
}

/* Loads and checks the order for finalization; 0/-1. */
static int
load_ready(struct acme_rq *rq, struct acme_order *o, struct acme_problem *prob)
{
    int found = acme_order_load(rq->ctx, rq->id1, o, prob);

    if (found < 0)
        return -1;
    if (found > 0 || strcmp(o->policy, rq->policy->name) != 0) {
        acme_problem_set(prob, "malformed", 404, "no such order");
        return -1;
    }
    if (strcmp(o->owner, rq->acct.id) != 0) {
        acme_problem_set(prob, "unauthorized", 403, "this order belongs to another account");
        return -1;
    }
    if (strcmp(acme_order_status(o), "ready") != 0) {
        acme_problem_set(prob, "orderNotReady", 403, "order is %s, not ready",
                         acme_order_status(o));
        return -1;
    }
    if (!cJSON_IsObject(rq->jws.payload)) {
        acme_problem_set(prob, "malformed", 400, "finalize needs a JSON object payload");
        return -1;
    }
    return 0;
}

int
acme_h_finalize(struct acme_rq *rq, struct acme_problem *prob)
{
    struct acme_order o = {0};
    struct acme_authz *az = NULL;
    struct pki_csr csr = {0};
    struct pki_issued iss = {0};
    struct acme_problem ignore = {0};
    struct pki_issue_req req = {0};
    struct pol_rendered rend = {0};
    bool tpl = rq->policy->template != NULL;
    char *url = NULL;
    size_t i;
    int rc = -1;

    if (load_ready(rq, &o, prob) != 0 || read_csr(rq, &csr, prob) != 0 ||
        check_key(rq, &csr, prob) != 0)
        goto out;
    az = xcalloc(o.nauthz + 1, sizeof(*az));
    if (load_authzs(rq, &o, az, prob) != 0)
        goto out;
    if (acme_id_is_device(o.ids[0].type) ? check_device(&o, az, &csr, prob) != 0
                                         : check_network(&o, &csr, prob) != 0)
        goto out;
    /* Render before anything changes: a missing variable leaves the order ready. */
    if (tpl && acme_issue_render(rq, &o, az, &csr, &req, &rend, prob) != 0)
        goto out;
    /* processing guards against a second finalize issuing twice (recovery settles it). */
    if (order_set_status(rq->ctx, &o, "processing", prob) != 0)
        goto out;
    if ((tpl ? issue_rendered(rq, &o, &req, &iss, prob) : issue(rq, &o, &csr, &iss, prob)) != 0 ||
        record(rq, &o, az, &csr, &iss, prob) != 0) {
        acme_strlcpy(o.cert_serial, "", sizeof(o.cert_serial));
        (void)order_set_status(rq->ctx, &o, "ready", &ignore);
        goto out;
    }
    log_info("acme", "order %s valid: certificate %s", o.id, iss.serial);
    url = acme_url(rq->ctx, o.policy, ACME_RES_ORDER, o.id, NULL);
    acme_resp_json(rq->resp, 200, acme_order_to_json(rq->ctx, &o));
    acme_resp_header(rq->resp, "Location", "%s", url);
    rc = 0;
out:
    for (i = 0; az != NULL && i < o.nauthz; i++)
        acme_authz_clear(&az[i]);
    free(az);
    free(url);
    pki_issued_clear(&iss);
    pol_rendered_clear(&rend);
    pki_csr_clear(&csr);
    acme_order_clear(&o);
    return rc;
}
