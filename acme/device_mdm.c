/*
 * device_mdm.c: admission of a device whose attestation verified. A policy
 * without signal sources decides at once (roles over claims and account). A
 * policy with signal sources must not hold a worker while MDMs answer: the
 * challenge goes to `processing` (claims stored, one commit), the device gets
 * 200 and polls, and one lookup per source is queued to the MDM engine,
 * which coalesces identical lookups. The engine's callbacks only copy their
 * result; the last one defers the decision to a worker, which finds the authz
 * again by id (the request that started it is long gone) and settles
 * challenge, authz, order and the audit record in one commit.
 */
#include "acme/acme_res_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mdm/mdm.h"
#include "policy/policy.h"

/* One admission waiting for its MDM answers. */
struct dm_job {
    struct acme_ctx *ctx;
    char authz_id[ACME_MAX_ID];
    char chall_id[ACME_MAX_ID];
    char eab_kid[ACME_MAX_ID * 2];
    pthread_mutex_t mu;
    size_t nsrc, left;       /* left: answers still missing (under mu) */
    struct mdm_result *res;  /* one per source, in policy order (owned copies) */
    struct dm_slot {
        struct dm_job *job;
        size_t idx;
    } *slots;
};

static void
job_free(struct dm_job *j)
{
    size_t i;

    if (j == NULL)
        return;
    for (i = 0; i < j->nsrc; i++)
        mdm_result_clear(&j->res[i]);
    pthread_mutex_destroy(&j->mu);
    free(j->res);
    free(j->slots);
    free(j);
}

void
acme_attested_claims(const struct acme_attested *att, struct att_claims *out)
{
    memset(out, 0, sizeof(*out));
    acme_strlcpy(out->serial, att->serial, sizeof(out->serial));
    acme_strlcpy(out->udid, att->udid, sizeof(out->udid));
    acme_strlcpy(out->os_version, att->os_version, sizeof(out->os_version));
    acme_strlcpy(out->sepos_version, att->sepos_version, sizeof(out->sepos_version));
    acme_strlcpy(out->spki_sha256, att->spki_sha256, sizeof(out->spki_sha256));
}

/* The stored decision: what finalize needs (roles, attributes) and why. */
static cJSON *
decision_json(const struct pol_decision *dec, const struct mdm_result *res, size_t n)
{
    cJSON *d = cJSON_CreateObject(), *roles, *mdm, *src;
    size_t i, k;

    cJSON_AddBoolToObject(d, "allowed", dec->allowed);
    cJSON_AddStringToObject(d, "reason", dec->reason);
    roles = cJSON_AddArrayToObject(d, "roles");
    for (i = 0; i < dec->roles.n; i++)
        cJSON_AddItemToArray(roles, cJSON_CreateString(dec->roles.names[i]));
    mdm = cJSON_AddObjectToObject(d, "mdm");
    for (i = 0; i < n; i++) {
        if (res[i].source == NULL)
            continue;
        src = cJSON_AddObjectToObject(mdm, res[i].source);
        for (k = 0; k < res[i].nattrs; k++)
            cJSON_AddStringToObject(src, res[i].attrs[k].name, res[i].attrs[k].value);
    }
    return d;
}

int
acme_decision_input(const cJSON *decision, struct pol_mdm *mdm, size_t maxmdm,
                    struct pol_attr *attrs, size_t maxattrs, size_t *nmdm)
{
    const cJSON *src, *v;
    size_t na = 0;

    *nmdm = 0;
    cJSON_ArrayForEach(src, cJSON_GetObjectItemCaseSensitive(decision, "mdm"))
    {
        if (*nmdm >= maxmdm)
            return -1;
        /* Only an admitted device has a decision to issue from: every source allowed. */
        mdm[*nmdm] = (struct pol_mdm){.source = src->string, .allowed = true,
                                      .attrs = attrs + na};
        cJSON_ArrayForEach(v, src)
        {
            if (!cJSON_IsString(v))
                continue;
            if (na >= maxattrs)
                return -1;
            attrs[na++] = (struct pol_attr){v->string, v->valuestring};
            mdm[*nmdm].nattrs++;
        }
        (*nmdm)++;
    }
    return 0;
}

/*
 * The problem type of a refusal. pol_admit reports the first source, in
 * policy order, that did not allow (check_sources). When that source could
 * not answer, on_failure refused for an outage, not for this device: the
 * identifier may be fine next time, so it stays `unauthorized`. Otherwise
 * the device was judged and refused, which E-18 calls rejectedIdentifier.
 */
static const char *
refusal_type(const struct mdm_result *res, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (res[i].verdict != MDM_ALLOW)
            return res[i].failed ? "unauthorized" : "rejectedIdentifier";
    }
    return "rejectedIdentifier";
}

/* Runs pol_admit and settles the outcome (with att when given) in one commit. */
static int
decide(struct acme_ctx *ctx, const struct acme_authz *a, size_t idx,
       const struct acme_attested *att, const struct mdm_result *res, size_t n,
       const char *eab_kid, struct acme_authz *out, struct acme_problem *prob)
{
    const struct cfg_policy *pol = cfg_policy_find(ctx->cfg, a->policy);
    const struct acme_attested *known = att != NULL ? att : &a->att;
    struct pol_mdm *pm = xcalloc(n + 1, sizeof(*pm));
    struct pol_attr *pa;
    struct pol_input in = {0};
    struct pol_decision dec = {0};
    struct att_claims claims;
    struct acme_problem fail = {0};
    struct acme_settle s = {0};
    struct acme_audit au = {0};
    struct acme_audit_rec ar = {0};
    size_t i, k, na = 0;
    cJSON *d = NULL;
    int rc = -1;

    for (i = 0; i < n; i++)
        na += res[i].nattrs;
    pa = xcalloc(na + 1, sizeof(*pa));
    for (na = 0, i = 0; i < n; i++) {
        pm[i] = (struct pol_mdm){res[i].source, res[i].verdict == MDM_ALLOW, res[i].reason,
                                 pa + na, res[i].nattrs};
        for (k = 0; k < res[i].nattrs; k++)
            pa[na++] = (struct pol_attr){res[i].attrs[k].name, res[i].attrs[k].value};
    }
    acme_attested_claims(known, &claims);
    in.policy = a->policy;
    in.claims = known->present ? &claims : NULL;
    in.mdm = pm;
    in.nmdm = n;
    in.eab_kid = eab_kid != NULL && eab_kid[0] != '\0' ? eab_kid : NULL;
    if (pol == NULL) {
        acme_problem_set(prob, "serverInternal", 500, "policy %s is gone", a->policy);
        goto out;
    }
    (void)pol_admit(ctx->cfg, pol, &in, &dec);
    d = decision_json(&dec, res, n);
    acme_problem_set(&fail, refusal_type(res, n), 403, "%s", dec.reason);
    au.stage = "admission";
    au.allowed = dec.allowed;
    au.lookup = known->present && known->serial[0] != '\0' ? known->serial : a->ident.value;
    au.policy = a->policy;
    au.reason = dec.reason;
    au.account = a->owner;
    au.identifier = a->ident.value;
    au.authz = a->id;
    au.roles = &dec.roles;
    au.mdm = res;
    au.nmdm = n;
    au.tpl = dec.tpl != NULL ? dec.tpl->name : NULL;
    au.approval = dec.allowed && dec.needs_approval ? "pending" : NULL;
    acme_audit_make(&au, &ar);
    s.ok = dec.allowed;
    s.hold = dec.allowed && dec.needs_approval;
    s.fail = &fail;
    s.att = att;
    s.decision = d;
    s.approval = s.hold ? "pending" : NULL;
    s.audit = &ar.rec;
    s.loaded = a;
    if (acme_res_settle_ex(ctx, a->id, a->ch[idx].id, &s, out, prob) != 0)
        goto out;
    log_info("acme", "authz %s %s: %s", a->id,
             !dec.allowed ? "refused" : s.hold ? "awaits approval" : "admitted", dec.reason);
    if (!dec.allowed)
        acme_emit(ctx, "enrollment.denied", acme_audit_json(&au));
    rc = dec.allowed ? 0 : 1;
out:
    cJSON_Delete(d);
    acme_audit_clear(&ar);
    free(pa);
    free(pm);
    return rc;
}

/* Worker: every source answered; decide unless the authz moved on meanwhile. */
static void
dm_run(void *arg)
{
    struct dm_job *j = arg;
    struct acme_authz a = {0}, done = {0};
    struct acme_problem prob = {0};
    int idx = -1;

    if (acme_authz_load(j->ctx, j->authz_id, &a, &prob) == 0)
        idx = acme_authz_find_chall(&a, j->chall_id);
    if (idx < 0 || strcmp(a.ch[idx].status, "processing") != 0 || a.approval[0] != '\0' ||
        strcmp(acme_authz_status(&a), "pending") != 0)
        goto out; /* gone, deactivated, expired or decided by a concurrent attempt */
    if (decide(j->ctx, &a, (size_t)idx, NULL, j->res, j->nsrc, j->eab_kid, &done, &prob) < 0)
        log_err("acme", "authz %s: decision lost: %s", j->authz_id, prob.detail);
out:
    acme_authz_clear(&done);
    acme_authz_clear(&a);
    job_free(j);
}

/*
 * Records one answer; the last one hands the job to a worker. A stopped
 * engine gave no verdict, and a pool that stopped runs nothing: either way
 * the challenge stays processing and the next start looks the device up
 * again (acme_recover).
 */
static void
slot_done(struct dm_slot *slot, const struct mdm_result *res)
{
    struct dm_job *j = slot->job;
    bool last, stopped = false;
    size_t i;

    pthread_mutex_lock(&j->mu);
    mdm_result_copy(&j->res[slot->idx], res);
    last = --j->left == 0;
    pthread_mutex_unlock(&j->mu);
    if (!last)
        return;
    for (i = 0; i < j->nsrc; i++)
        stopped = stopped || j->res[i].stopped;
    if (stopped || j->ctx->defer(j->ctx->defer_arg, dm_run, j) != 0) {
        log_warn("acme", "authz %s: %s; decision left for restart", j->authz_id,
                 stopped ? "MDM engine stopped" : "shutting down");
        job_free(j);
    }
}

/* MDM engine thread: copy and return (must not block). */
static void
on_mdm_done(void *arg, const struct mdm_result *res)
{
    slot_done(arg, res);
}

/* Queues one lookup per source of pol; the job frees itself once decided. */
static void
start_lookups(struct acme_ctx *ctx, const struct cfg_policy *pol, const struct acme_authz *a,
              size_t idx, const char *eab_kid)
{
    struct dm_job *j = xcalloc(1, sizeof(*j));
    struct mdm_vars vars = {a->att.serial, a->att.udid[0] != '\0' ? a->att.udid : NULL};
    struct mdm_result failed = {0};
    char err[ERR_LEN], why[ERR_LEN + 160];
    size_t i;

    j->ctx = ctx;
    acme_strlcpy(j->authz_id, a->id, sizeof(j->authz_id));
    acme_strlcpy(j->chall_id, a->ch[idx].id, sizeof(j->chall_id));
    acme_strlcpy(j->eab_kid, eab_kid, sizeof(j->eab_kid));
    pthread_mutex_init(&j->mu, NULL);
    j->nsrc = j->left = pol->nsignal_sources;
    j->res = xcalloc(j->nsrc, sizeof(*j->res));
    j->slots = xcalloc(j->nsrc, sizeof(*j->slots));
    for (i = 0; i < pol->nsignal_sources; i++) {
        j->slots[i] = (struct dm_slot){j, i};
        err[0] = '\0';
        if (ctx->mdm != NULL && mdm_lookup(ctx->mdm, pol->signal_sources[i], &vars, on_mdm_done,
                                           &j->slots[i], err) == 0)
            continue;
        /*
         * Not started: the source answers "deny" at once, with the reason. A
         * stopped engine (a request outliving shutdown) answers nothing.
         */
        snprintf(why, sizeof(why), "%s: lookup not started: %s", pol->signal_sources[i],
                 ctx->mdm == NULL ? "no MDM engine running" : err);
        failed.source = pol->signal_sources[i];
        failed.verdict = MDM_DENY;
        failed.failed = true;
        failed.stopped = ctx->mdm != NULL && mdm_engine_is_stopped(ctx->mdm);
        failed.reason = why;
        slot_done(&j->slots[i], &failed);
    }
}

int
acme_device_lookups_restart(struct acme_ctx *ctx, const struct acme_authz *a, size_t idx)
{
    const struct cfg_policy *pol = cfg_policy_find(ctx->cfg, a->policy);
    struct acme_account acct = {0};
    struct acme_problem prob = {0};

    if (pol == NULL || pol->nsignal_sources == 0 || !a->att.present || ctx->defer == NULL)
        return -1;
    if (acme_account_load(ctx, a->owner, &acct, &prob) != 0)
        return -1;
    start_lookups(ctx, pol, a, idx, acct.eab_kid);
    acme_account_clear(&acct);
    return 0;
}

int
acme_device_admit(struct acme_rq *rq, struct acme_authz *a, size_t idx,
                  const struct acme_attested *att, struct acme_problem *prob)
{
    struct acme_settle hold = {.ok = true, .hold = true, .att = att, .loaded = a};
    struct acme_authz done = {0};
    const struct acme_chall *ch;
    int rc = -1, d, ni = -1;

    if (rq->policy->nsignal_sources == 0) {
        d = decide(rq->ctx, a, idx, att, NULL, 0, rq->acct.eab_kid, &done, prob);
        if (d < 0)
            goto out;
        ni = acme_authz_find_chall(&done, a->ch[idx].id);
        if (d == 1 && ni >= 0 && done.ch[ni].error != NULL) {
            /*
             * Refused now: the device learns why in this answer, like any
             * refusal. No source was asked, so only policy can have refused.
             */
            acme_problem_set(prob, "rejectedIdentifier", 403, "%s",
                             acme_json_str(done.ch[ni].error, "detail"));
            goto out;
        }
    } else {
        /* Claims first, durably: the deferred decision reads them from the authz. */
        if (acme_res_settle_ex(rq->ctx, a->id, a->ch[idx].id, &hold, &done, prob) != 0)
            goto out;
        ni = acme_authz_find_chall(&done, a->ch[idx].id);
        if (ni >= 0 && strcmp(done.ch[ni].status, "processing") == 0 && done.approval[0] == '\0')
            start_lookups(rq->ctx, rq->policy, &done, (size_t)ni, rq->acct.eab_kid);
    }
    if (ni < 0) {
        acme_problem_set(prob, "serverInternal", 500, "challenge vanished");
        goto out;
    }
    ch = &done.ch[ni];
    acme_chall_respond(rq, &done, ch);
    rc = 0;
out:
    acme_authz_clear(&done);
    return rc;
}
