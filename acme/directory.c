/*
 * directory.c: the directory (RFC 8555 §7.1.1) and newNonce (§7.2)
 * resources. Neither touches the store, so both are acme_is_fast().
 */
#include "acme/acme_int.h"

#include <string.h>

static void
add_url(cJSON *obj, const struct acme_ctx *ctx, const struct cfg_policy *pol, const char *name,
        enum acme_res res)
{
    char *url = acme_url(ctx, pol->name, res, NULL, NULL);

    cJSON_AddStringToObject(obj, name, url);
    free(url);
}

char *
acme_directory_fmt(const struct acme_ctx *ctx, const struct cfg_policy *pol)
{
    const struct cfg_acme *ac = &ctx->cfg->acme;
    cJSON *dir = cJSON_CreateObject(), *meta;
    char *text;

    add_url(dir, ctx, pol, "newNonce", ACME_RES_NEW_NONCE);
    add_url(dir, ctx, pol, "newAccount", ACME_RES_NEW_ACCOUNT);
    add_url(dir, ctx, pol, "newOrder", ACME_RES_NEW_ORDER);
    add_url(dir, ctx, pol, "revokeCert", ACME_RES_REVOKE_CERT);
    add_url(dir, ctx, pol, "keyChange", ACME_RES_KEY_CHANGE);
    add_url(dir, ctx, pol, "renewalInfo", ACME_RES_RENEWAL_INFO);
    meta = cJSON_AddObjectToObject(dir, "meta");
    if (ac->terms_of_service != NULL)
        cJSON_AddStringToObject(meta, "termsOfService", ac->terms_of_service);
    if (ac->website != NULL)
        cJSON_AddStringToObject(meta, "website", ac->website);
    /* D-5: clients must learn up front that they need a key id. */
    cJSON_AddBoolToObject(meta, "externalAccountRequired", pol->eab_required);
    text = cJSON_PrintUnformatted(dir);
    cJSON_Delete(dir);
    return text;
}

int
acme_h_directory(struct acme_rq *rq, struct acme_problem *prob)
{
    const struct acme_ctx *ctx = rq->ctx;
    size_t i = acme_policy_index(ctx, rq->policy);

    /* the document is fixed for the ctx's life: built once (acme_ctx_new), copied here */
    bool cached = ctx->dir_body != NULL && i < ctx->cfg->npolicies && ctx->dir_body[i] != NULL &&
                  ctx->dir_eab[i] == rq->policy->eab_required;
    char *body;

    body = cached ? xstrdup(ctx->dir_body[i]) : acme_directory_fmt(ctx, rq->policy);
    if (body == NULL) {
        acme_problem_set(prob, "serverInternal", 500, "directory could not be encoded");
        return -1;
    }
    free(rq->resp->body);
    rq->resp->body = body;
    rq->resp->body_len = strlen(body);
    rq->resp->status = 200;
    rq->resp->content_type = "application/json";
    return 0;
}

int
acme_h_new_nonce(struct acme_rq *rq, struct acme_problem *prob)
{
    /* N-8/N-9: HEAD answers 200, GET and POST-as-GET 204; the router adds the nonce. */
    rq->resp->status = strcmp(rq->req->method, "HEAD") == 0 ? 200 : 204;
    return 0;
}
