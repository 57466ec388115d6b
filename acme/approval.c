/*
 * approval.c: what an admission decided, kept with the authorization (roles
 * and MDM attributes finalize renders templates from), and manual approval.
 * A policy with `approval: manual` leaves an admitted device's authz pending
 * (challenge processing) with approval "pending"; `attesta approve` writes
 * "approved" or "denied" into the stored authz, and the device's next
 * POST-as-GET of its authz, order or challenge settles it here, in one
 * commit, so no server-side timer or cross-process signal is needed.
 */
#include "acme/acme_res_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

void
acme_authz_extra_parse(const cJSON *root, struct acme_authz *a)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "decision");
    const cJSON *ap = cJSON_GetObjectItemCaseSensitive(root, "approval");

    if (cJSON_IsObject(d))
        a->decision = cJSON_Duplicate(d, 1);
    if (cJSON_IsObject(ap)) {
        acme_strlcpy(a->approval, acme_json_str(ap, "state"), sizeof(a->approval));
        acme_strlcpy(a->approval_reason, acme_json_str(ap, "reason"),
                     sizeof(a->approval_reason));
    }
}

void
acme_authz_extra_rec(const struct acme_authz *a, cJSON *root)
{
    cJSON *ap;

    if (a->decision != NULL)
        cJSON_AddItemToObject(root, "decision", cJSON_Duplicate(a->decision, 1));
    if (a->approval[0] == '\0')
        return;
    ap = cJSON_AddObjectToObject(root, "approval");
    cJSON_AddStringToObject(ap, "state", a->approval);
    if (a->approval_reason[0] != '\0')
        cJSON_AddStringToObject(ap, "reason", a->approval_reason);
}

/* The roles the decision recorded, as pol_roles (names borrowed from a->decision). */
static void
decision_roles(const struct acme_authz *a, struct pol_roles *roles)
{
    const cJSON *r;

    memset(roles, 0, sizeof(*roles));
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(a->decision, "roles"))
    {
        if (cJSON_IsString(r) && roles->n < POL_MAX_ROLES)
            roles->names[roles->n++] = r->valuestring;
    }
}

/* Index of the processing challenge of a held authz, or -1. */
static int
held_chall(const struct acme_authz *a)
{
    size_t i;

    if (strcmp(acme_authz_status(a), "pending") != 0)
        return -1;
    if (strcmp(a->approval, "approved") != 0 && strcmp(a->approval, "denied") != 0)
        return -1;
    for (i = 0; i < a->nch; i++)
        if (strcmp(a->ch[i].status, "processing") == 0)
            return (int)i;
    return -1;
}

int
acme_approval_poll(struct acme_ctx *ctx, struct acme_authz *a, struct acme_problem *prob)
{
    struct acme_settle s = {0};
    struct acme_problem fail = {0};
    struct acme_audit au = {0};
    struct acme_audit_rec ar = {0};
    struct acme_authz done = {0};
    struct pol_roles roles;
    char reason[POL_REASON_LEN];
    int idx = held_chall(a), rc = -1;
    bool ok;

    if (idx < 0)
        return 0;
    ok = strcmp(a->approval, "approved") == 0;
    if (ok)
        snprintf(reason, sizeof(reason), "policy %s: approved by an administrator", a->policy);
    else
        snprintf(reason, sizeof(reason), "policy %s: denied by an administrator: %s", a->policy,
                 a->approval_reason[0] != '\0' ? a->approval_reason : "no reason given");
    /* An administrator's no is policy refusing this device (E-18), like pol_admit's. */
    acme_problem_set(&fail, "rejectedIdentifier", 403, "%s", reason);
    decision_roles(a, &roles);
    au.stage = "approval";
    au.allowed = ok;
    au.lookup = a->att.present && a->att.serial[0] != '\0' ? a->att.serial : a->ident.value;
    au.policy = a->policy;
    au.reason = reason;
    au.account = a->owner;
    au.identifier = a->ident.value;
    au.authz = a->id;
    au.roles = &roles;
    au.approval = a->approval;
    acme_audit_make(&au, &ar);
    s.ok = ok;
    s.fail = &fail;
    s.audit = &ar.rec;
    s.loaded = a;
    if (acme_res_settle_ex(ctx, a->id, a->ch[idx].id, &s, &done, prob) != 0)
        goto out;
    log_info("acme", "authz %s approval applied: %s", a->id, ok ? "approved" : "denied");
    if (!ok)
        acme_emit(ctx, "enrollment.denied", acme_audit_json(&au));
    acme_authz_clear(a);
    *a = done;
    memset(&done, 0, sizeof(done));
    rc = 0;
out:
    acme_audit_clear(&ar);
    acme_authz_clear(&done);
    return rc;
}

int
acme_approval_poll_order(struct acme_ctx *ctx, struct acme_order *o, struct acme_problem *prob)
{
    struct acme_authz a;
    char id[ACME_MAX_ID];
    bool changed = false;
    size_t i;
    int rc = 0;

    for (i = 0; i < o->nauthz && rc == 0; i++) {
        if (acme_authz_load(ctx, o->authz[i], &a, prob) != 0)
            continue; /* a missing authz shows as the order's problem elsewhere */
        if (held_chall(&a) >= 0) {
            rc = acme_approval_poll(ctx, &a, prob);
            changed = rc == 0;
        }
        acme_authz_clear(&a);
    }
    if (rc != 0 || !changed)
        return rc;
    acme_strlcpy(id, o->id, sizeof(id));
    acme_order_clear(o);
    return acme_order_load(ctx, id, o, prob) == 0 ? 0 : -1;
}
