/*
 * terms.c: which terms of service an account agreed to, and the refusal an
 * account gets when the CA wants agreement to newer terms (RFC 8555 §7.3.3,
 * checklist A-10). The URL agreed to is kept in the account record; the
 * current one is acme.meta.terms_of_service. Changing that URL alone locks
 * nobody out: only acme.meta.terms_of_service_reagree makes it matter.
 *
 * §7.3.3 lets the CA refuse "to process a request without explicit agreement
 * to the new terms" and has the client agree by updating its account, so the
 * client must keep the means to do that and to wind down:
 *   refused  newOrder, finalize, a challenge response, and revokeCert signed
 *            by the account: each asks the CA to act for the account (issue,
 *            validate, revoke) under terms it has not accepted.
 *   served   every POST-as-GET (reading what exists commits to nothing new);
 *            newAccount (how a client finds the account URL it signs the
 *            re-agreement with); the account update (the way to agree, and
 *            contact changes and deactivation, which the terms cannot make
 *            the holder forgo); keyChange (a compromised key must stay
 *            replaceable); authorization deactivation (gives rights up).
 * revokeCert signed with the certificate's own key has no account and is
 * served: a compromised certificate can always be revoked.
 *
 * §7.1.2 calls termsOfServiceAgreed something the client "cannot update";
 * §7.3.3 makes re-agreement the exception, so an update may set it to true
 * and nothing else: false withdraws nothing.
 */
#include "acme/acme_int.h"

#include <stdio.h>
#include <string.h>

_Static_assert(CFG_TERMS_URL_MAX < ACME_MAX_URL && CFG_TERMS_URL_MAX < ACME_PROBLEM_URL_LEN,
               "a configured terms URL fits the account record and the problem whole");

bool
acme_terms_agree(const struct cfg_acme *ac, const cJSON *payload, struct acme_account *a)
{
    const char *tos = ac->terms_of_service;

    /* Agreeing to no terms records nothing: terms configured later still need it. */
    if (tos == NULL || strcmp(a->terms, tos) == 0)
        return false;
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(payload, "termsOfServiceAgreed")))
        return false;
    snprintf(a->terms, sizeof(a->terms), "%s", tos);
    return true;
}

/* The requests that need agreement to the current terms (see the top of the file). */
static bool
needs_agreement(const struct acme_rq *rq)
{
    if (!rq->has_acct || rq->jws.post_as_get)
        return false;
    switch (rq->res) {
    case ACME_RES_NEW_ORDER:
    case ACME_RES_FINALIZE:
    case ACME_RES_CHALLENGE:
    case ACME_RES_REVOKE_CERT:
        return true;
    default:
        return false;
    }
}

int
acme_terms_check(const struct acme_rq *rq, struct acme_problem *prob)
{
    const struct cfg_acme *ac = &rq->ctx->cfg->acme;
    const char *tos = ac->terms_of_service;

    if (!ac->terms_reagree || tos == NULL || !needs_agreement(rq))
        return 0;
    if (strcmp(rq->acct.terms, tos) == 0)
        return 0;
    acme_problem_set(prob, "userActionRequired", 403,
                     "the terms of service changed: review them, then agree by updating "
                     "the account with termsOfServiceAgreed true");
    acme_problem_set_link(prob, "terms-of-service", tos);
    acme_problem_set_instance(prob, ac->terms_instance != NULL ? ac->terms_instance : tos);
    return -1;
}
