/*
 * keychange.c: account key rollover (RFC 8555 §7.3.5). The outer JWS (kid,
 * verified by the router) wraps an inner JWS signed by the new key; the
 * account row's key and lookup change in one versioned update.
 */
#include "acme/acme_int.h"

#include <stdio.h>
#include <string.h>

/* K-5..K-8: the inner payload names this account and its current key. */
static int
check_inner_payload(const struct acme_rq *rq, const struct acme_jws *inner,
                    struct acme_problem *prob)
{
    const char *account = inner->payload != NULL ? acme_json_str(inner->payload, "account") : NULL;
    const cJSON *old_jwk = cJSON_GetObjectItemCaseSensitive(inner->payload, "oldKey");
    EVP_PKEY *old = NULL;
    int rc = -1;

    if (account == NULL || !cJSON_IsObject(old_jwk)) {
        acme_problem_set(prob, "malformed", 400, "keyChange payload needs account and oldKey");
        goto out;
    }
    if (strcmp(account, rq->jws.kid) != 0) {
        acme_problem_set(prob, "unauthorized", 401, "keyChange account is not the signer");
        goto out;
    }
    old = acme_jwk_to_key(old_jwk, prob);
    if (old == NULL)
        goto out;
    if (!pki_key_equal(old, rq->jws.key)) {
        acme_problem_set(prob, "unauthorized", 401, "oldKey is not the account's current key");
        goto out;
    }
    rc = 0;
out:
    EVP_PKEY_free(old);
    return rc;
}

/*
 * Loads the account holding thumbprint in any configured policy, this one
 * first. Rows are keyed "<policy>:<thumbprint>", so the store's uniqueness
 * only guards one policy; SEC-7 wants one key per account server-wide (the
 * same reading as acme_account_key_in_use). 0 found, 1 none, -1 error.
 */
static int
find_key_holder(struct acme_rq *rq, const char *thumbprint, struct acme_account *out,
                struct acme_problem *prob)
{
    const struct cfg *cfg = rq->ctx->cfg;
    const char *pol;
    size_t i;
    int found = acme_account_find_by_thumbprint(rq->ctx, rq->policy->name, thumbprint, out, prob);

    for (i = 0; found == 1 && i < cfg->npolicies; i++) {
        pol = cfg->policies[i].name;
        if (strcmp(pol, rq->policy->name) != 0)
            found = acme_account_find_by_thumbprint(rq->ctx, pol, thumbprint, out, prob);
    }
    return found;
}

/*
 * K-9: 409 with Location when another account (or this one) already holds
 * the key. A holder under another policy gets the same answer, its URL
 * under its own directory: that is where the account lives, and the inner
 * JWS proved possession of the key, whose holder could find that account
 * anyway (newAccount onlyReturnExisting there), so the URL tells nothing new.
 */
static int
check_key_unused(struct acme_rq *rq, const char *thumbprint, struct acme_problem *prob)
{
    struct acme_account other = {0};
    char *loc;
    int found = find_key_holder(rq, thumbprint, &other, prob);

    if (found < 0)
        return -1;
    if (found == 1)
        return 0;
    loc = acme_url(rq->ctx, other.policy, ACME_RES_ACCOUNT, other.id, NULL);
    acme_resp_header(rq->resp, "Location", "%s", loc);
    free(loc);
    acme_account_clear(&other);
    acme_problem_set(prob, "malformed", 409, "the new key is already in use by an account");
    return -1;
}

static int
store_new_key(struct acme_rq *rq, const struct acme_jws *inner, struct acme_problem *prob)
{
    struct acme_account *a = &rq->acct;

    free(a->jwk_json);
    a->jwk_json = pki_jwk_canonical_json(inner->key);
    if (a->jwk_json == NULL) {
        acme_problem_set(prob, "badPublicKey", 400, "key type not supported");
        return -1;
    }
    snprintf(a->thumbprint, sizeof(a->thumbprint), "%s", inner->thumbprint);
    if (acme_account_store_update(rq->ctx, a, "key change", prob) != 0)
        return -1;
    log_info("acme", "account %s rolled over its key", a->id);
    return 0;
}

int
acme_h_key_change(struct acme_rq *rq, struct acme_problem *prob)
{
    struct acme_jws inner;
    int rc = -1;

    memset(&inner, 0, sizeof(inner));
    if (rq->jws.post_as_get) {
        acme_problem_set(prob, "malformed", 400, "keyChange payload must be a JWS");
        goto out;
    }
    /* K-2..K-4: a well-formed inner JWS with jwk, no nonce, verified by that jwk. */
    if (acme_jws_parse_ex((const unsigned char *)rq->jws.payload_raw, rq->jws.payload_len,
                          ACME_JWS_INNER, &inner, prob) != 0)
        goto out;
    if (acme_jws_key_from_jwk(&inner, prob) != 0 || acme_jws_verify(&inner, inner.key, prob) != 0)
        goto out;
    if (strcmp(inner.url, rq->jws.url) != 0) {
        acme_problem_set(prob, "unauthorized", 401, "inner url differs from the outer url");
        goto out;
    }
    if (inner.post_as_get || check_inner_payload(rq, &inner, prob) != 0)
        goto out;
    if (check_key_unused(rq, inner.thumbprint, prob) != 0 || store_new_key(rq, &inner, prob) != 0)
        goto out;
    acme_resp_json(rq->resp, 200, acme_account_to_json(rq->ctx, &rq->acct));
    rc = 0;
out:
    if (rc != 0 && prob->type == NULL)
        acme_problem_set(prob, "malformed", 400, "keyChange payload needs account and oldKey");
    acme_jws_clear(&inner);
    return rc;
}
