/*
 * cert.c: the certificate resource (RFC 8555 §7.4.2, §9.1): the stored form of
 * an issued certificate and its download as application/pem-certificate-chain
 * by the account that ordered it.
 */
#include "acme/acme_res_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
acme_cert_clear(struct acme_cert *c)
{
    if (c == NULL)
        return;
    free(c->pem);
    memset(c, 0, sizeof(*c));
}

static int64_t
num(const cJSON *obj, const char *name, int64_t dflt)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, name);

    return cJSON_IsNumber(n) ? (int64_t)n->valuedouble : dflt;
}

static int
cert_parse_data(struct acme_cert *c, const char *data)
{
    cJSON *root = cJSON_Parse(data != NULL ? data : "");
    const char *pem;
    int rc = -1;

    if (!cJSON_IsObject(root))
        goto out;
    pem = acme_json_str(root, "pem");
    if (pem == NULL)
        goto out;
    c->pem = xstrdup(pem);
    acme_strlcpy(c->order, acme_json_str(root, "order"), sizeof(c->order));
    acme_strlcpy(c->policy, acme_json_str(root, "policy"), sizeof(c->policy));
    acme_strlcpy(c->ca, acme_json_str(root, "ca"), sizeof(c->ca));
    c->not_before = num(root, "not_before", 0);
    c->not_after = num(root, "not_after", 0);
    c->reason = (int)num(root, "revoked_reason", -1);
    c->revoked_at = num(root, "revoked_at", 0);
    acme_strlcpy(c->device, acme_json_str(root, "device"), sizeof(c->device));
    acme_strlcpy(c->supersedes, acme_json_str(root, "supersedes"), sizeof(c->supersedes));
    acme_strlcpy(c->superseded_by, acme_json_str(root, "superseded_by"),
                 sizeof(c->superseded_by));
    acme_strlcpy(c->replaced_by, acme_json_str(root, "replaced_by"), sizeof(c->replaced_by));
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

static int
cert_fill(void *arg, const struct store_rec *rec)
{
    struct acme_cert *c = arg;

    acme_strlcpy(c->serial, rec->id, sizeof(c->serial));
    acme_strlcpy(c->owner, rec->owner, sizeof(c->owner));
    acme_strlcpy(c->status, rec->status, sizeof(c->status));
    acme_strlcpy(c->spki, rec->lookup, sizeof(c->spki));
    c->created = rec->created;
    c->expires = rec->expires;
    c->version = rec->version;
    return cert_parse_data(c, rec->data);
}

int
acme_cert_load(struct acme_ctx *ctx, const char *serial, struct acme_cert *out,
               struct acme_problem *prob)
{
    memset(out, 0, sizeof(*out));
    out->reason = -1;
    int rc = acme_rec_load(ctx, STORE_CERT, serial, "a certificate record", cert_fill, out, prob);
    if (rc < 0)
        acme_cert_clear(out);
    return rc;
}

void
acme_cert_rec(const struct acme_cert *c, struct store_rec *rec, char **data)
{
    cJSON *d = cJSON_CreateObject();

    cJSON_AddStringToObject(d, "order", c->order);
    cJSON_AddStringToObject(d, "policy", c->policy);
    cJSON_AddStringToObject(d, "ca", c->ca);
    cJSON_AddStringToObject(d, "pem", c->pem != NULL ? c->pem : "");
    cJSON_AddNumberToObject(d, "not_before", (double)c->not_before);
    cJSON_AddNumberToObject(d, "not_after", (double)c->not_after);
    if (c->reason >= 0)
        cJSON_AddNumberToObject(d, "revoked_reason", c->reason);
    if (c->revoked_at != 0)
        cJSON_AddNumberToObject(d, "revoked_at", (double)c->revoked_at);
    if (c->device[0] != '\0')
        cJSON_AddStringToObject(d, "device", c->device);
    if (c->supersedes[0] != '\0')
        cJSON_AddStringToObject(d, "supersedes", c->supersedes);
    if (c->superseded_by[0] != '\0')
        cJSON_AddStringToObject(d, "superseded_by", c->superseded_by);
    if (c->replaced_by[0] != '\0')
        cJSON_AddStringToObject(d, "replaced_by", c->replaced_by);
    *data = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    memset(rec, 0, sizeof(*rec));
    rec->kind = STORE_CERT;
    rec->id = (char *)c->serial;
    rec->owner = (char *)c->owner;
    rec->lookup = (char *)c->spki;
    rec->status = (char *)c->status;
    rec->created = c->created;
    rec->expires = c->expires;
    rec->data = *data;
}

struct pki_ca *
acme_ca_by_name(const struct acme_ctx *ctx, const char *name)
{
    size_t i;

    for (i = 0; name != NULL && i < ctx->ncas; i++)
        if (strcmp(pki_ca_name(ctx->cas[i]), name) == 0)
            return ctx->cas[i];
    return NULL;
}

int
acme_h_cert(struct acme_rq *rq, struct acme_problem *prob)
{
    struct acme_cert c;
    int rc = -1, found;

    found = acme_cert_load(rq->ctx, rq->id1, &c, prob);
    if (found < 0)
        goto out;
    if (found > 0 || strcmp(c.policy, rq->policy->name) != 0) {
        acme_problem_set(prob, "malformed", 404, "no such certificate");
        goto out;
    }
    if (strcmp(c.owner, rq->acct.id) != 0) {
        acme_problem_set(prob, "unauthorized", 403, "this certificate belongs to another account");
        goto out;
    }
    /* C-1, C-2: the stored PEM is leaf then chain, CERTIFICATE blocks only. */
    free(rq->resp->body);
    rq->resp->status = 200;
    rq->resp->content_type = "application/pem-certificate-chain";
    rq->resp->body = c.pem;
    rq->resp->body_len = strlen(c.pem);
    c.pem = NULL;
    rc = 0;
out:
    acme_cert_clear(&c);
    return rc;
}
