/*
 * directory.c: the directory (RFC 8555 §7.1.1) and newNonce (§7.2)
 * resources. Neither touches the store, so both are acme_is_fast().
 */
#include "acme/acme_int.h"

#include <string.h>

static void
add_url(cJSON *obj, const struct acme_rq *rq, const char *name, enum acme_res res)
{
    char *url = acme_url(rq->ctx, rq->policy->name, res, NULL, NULL);

    cJSON_AddStringToObject(obj, name, url);
    free(url);
}

int
acme_h_directory(struct acme_rq *rq, struct acme_problem *prob)
{
    const struct cfg_acme *ac = &rq->ctx->cfg->acme;
    cJSON *dir = cJSON_CreateObject(), *meta;

    add_url(dir, rq, "newNonce", ACME_RES_NEW_NONCE);
    add_url(dir, rq, "newAccount", ACME_RES_NEW_ACCOUNT);
    add_url(dir, rq, "newOrder", ACME_RES_NEW_ORDER);
    add_url(dir, rq, "revokeCert", ACME_RES_REVOKE_CERT);
    add_url(dir, rq, "keyChange", ACME_RES_KEY_CHANGE);
    add_url(dir, rq, "renewalInfo", ACME_RES_RENEWAL_INFO);
    meta = cJSON_AddObjectToObject(dir, "meta");
    if (ac->terms_of_service != NULL)
        cJSON_AddStringToObject(meta, "termsOfService", ac->terms_of_service);
    if (ac->website != NULL)
        cJSON_AddStringToObject(meta, "website", ac->website);
    /* D-5: clients must learn up front that they need a key id. */
    cJSON_AddBoolToObject(meta, "externalAccountRequired", rq->policy->eab_required);
    acme_resp_json(rq->resp, 200, dir);
    return 0;
}

int
acme_h_new_nonce(struct acme_rq *rq, struct acme_problem *prob)
{
    /* N-8/N-9: HEAD answers 200, GET and POST-as-GET 204; the router adds the nonce. */
    rq->resp->status = strcmp(rq->req->method, "HEAD") == 0 ? 200 : 204;
    return 0;
}
