/*
 * audit.c: every enrollment decision (admission, approval, issuance,
 * supersede revocation) becomes a STORE_AUDIT record written in the same
 * commit as the state it explains, so the audit trail can never disagree with
 * what clients saw. The same JSON object is what the event sink receives,
 * after the commit. Records hold reasons and identifiers, never secrets.
 *
 * Record: id random, lookup = device serial (else the identifier), status =
 * "allowed" | "denied", data = {"stage","decision","policy","reason",
 * "account","identifier","authz"?,"roles":[..],"sources":[{source,verdict,
 * reason,status,cached,ms}],"template"?,"ca"?,"certificate"?,"supersedes"?,
 * "approval"?}.
 */
#include "acme/acme_res_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mdm/mdm.h"
#include "policy/policy.h"

static void
add_str(cJSON *obj, const char *name, const char *v)
{
    if (v != NULL && v[0] != '\0')
        cJSON_AddStringToObject(obj, name, v);
}

cJSON *
acme_audit_json(const struct acme_audit *au)
{
    cJSON *obj = cJSON_CreateObject(), *arr, *src;
    const struct mdm_result *r;
    size_t i;

    add_str(obj, "stage", au->stage);
    cJSON_AddStringToObject(obj, "decision", au->allowed ? "allowed" : "denied");
    add_str(obj, "policy", au->policy);
    add_str(obj, "device", au->lookup);
    add_str(obj, "identifier", au->identifier);
    add_str(obj, "reason", au->reason);
    add_str(obj, "account", au->account);
    add_str(obj, "authz", au->authz);
    arr = cJSON_AddArrayToObject(obj, "roles");
    for (i = 0; au->roles != NULL && i < au->roles->n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(au->roles->names[i]));
    arr = cJSON_AddArrayToObject(obj, "sources");
    for (i = 0; i < au->nmdm; i++) {
        r = &au->mdm[i];
        src = cJSON_CreateObject();
        add_str(src, "source", r->source);
        cJSON_AddStringToObject(src, "verdict", r->verdict == MDM_ALLOW ? "allow" : "deny");
        add_str(src, "reason", r->reason);
        cJSON_AddNumberToObject(src, "status", r->http_status);
        cJSON_AddBoolToObject(src, "cached", r->from_cache);
        cJSON_AddBoolToObject(src, "failed", r->failed);
        cJSON_AddNumberToObject(src, "ms", (double)r->elapsed_ms);
        cJSON_AddItemToArray(arr, src);
    }
    add_str(obj, "template", au->tpl);
    add_str(obj, "ca", au->ca);
    add_str(obj, "certificate", au->cert_serial);
    add_str(obj, "supersedes", au->supersedes);
    add_str(obj, "approval", au->approval);
    return obj;
}

void
acme_audit_make(const struct acme_audit *au, struct acme_audit_rec *out)
{
    cJSON *obj = acme_audit_json(au);

    memset(out, 0, sizeof(*out));
    if (acme_new_id(out->id) != 0) /* no randomness left: still unique enough per commit */
        snprintf(out->id, sizeof(out->id), "audit-%lld-%p", (long long)clk_now(), (void *)out);
    out->data = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    out->rec.kind = STORE_AUDIT;
    out->rec.id = out->id;
    out->rec.lookup = (char *)au->lookup;
    out->rec.status = (char *)(au->allowed ? "allowed" : "denied");
    out->rec.created = clk_now();
    out->rec.data = out->data;
}

void
acme_audit_clear(struct acme_audit_rec *r)
{
    if (r == NULL)
        return;
    free(r->data);
    memset(r, 0, sizeof(*r));
}

void
acme_emit(struct acme_ctx *ctx, const char *type, cJSON *obj)
{
    char *json;

    if (obj == NULL)
        return;
    if (ctx->event != NULL) {
        cJSON_AddStringToObject(obj, "type", type);
        json = cJSON_PrintUnformatted(obj);
        if (json != NULL)
            ctx->event(ctx->event_arg, type, json);
        free(json);
    }
    cJSON_Delete(obj);
}
