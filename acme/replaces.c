/*
 * replaces.c: newOrder `replaces` (RFC 9773 §5). A renewing client names the
 * certificate it replaces by its ARI certID. The order records the certID and
 * shows it; the certificate records the order (replaced_by), so "is it
 * already replaced?" is one read of that order, not a scan. The certificate's
 * update rides in the order's own commit, conditional on the version the
 * check read: of two orders racing for one certificate only one commits, and
 * the other, retried by order.c, finds the winner and gets alreadyReplaced.
 * A replacing order that ends invalid frees the certificate for another.
 */
#include "acme/acme_res_int.h"

#include <stdlib.h>
#include <string.h>

/* The `replaces` member: 0 with *id NULL when absent, 0 with *id, -1 when not a bounded string. */
static int
certid_member(const cJSON *payload, const char **id)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(payload, "replaces");

    *id = NULL;
    if (r == NULL)
        return 0;
    if (!cJSON_IsString(r) || strnlen(r->valuestring, ACME_MAX_CERT_ID + 1) > ACME_MAX_CERT_ID)
        return -1;
    *id = r->valuestring;
    return 0;
}

/* ARI-11: 0 when no order that is not invalid replaces c, else -1 (prob set). */
static int
check_free(struct acme_ctx *ctx, const struct acme_cert *c, struct acme_problem *prob)
{
    struct acme_order o = {0};
    int found, rc = -1;

    if (c->replaced_by[0] == '\0')
        return 0;
    found = acme_order_load(ctx, c->replaced_by, &o, prob);
    if (found < 0)
        goto out;
    /* Expiry makes an unfinished order invalid too (acme_order_status). */
    if (found == 0 && strcmp(acme_order_status(&o), "invalid") != 0) {
        acme_problem_set(prob, "alreadyReplaced", 409,
                         "another order that is not invalid already replaces this certificate");
        goto out;
    }
    rc = 0;
out:
    acme_order_clear(&o);
    return rc;
}

/* ARI-10: 0 when o names an identifier the order that produced c named, else -1. */
static int
check_shared(struct acme_ctx *ctx, const struct acme_cert *c, const struct acme_order *o,
             struct acme_problem *prob)
{
    struct acme_order prev = {0};
    bool shared = false;
    size_t i, j;
    int found = acme_order_load(ctx, c->order, &prev, prob);

    for (i = 0; found == 0 && i < prev.nids && !shared; i++)
        for (j = 0; j < o->nids && !shared; j++)
            shared = prev.ids[i].type == o->ids[j].type &&
                     strcmp(prev.ids[i].value, o->ids[j].value) == 0;
    acme_order_clear(&prev);
    if (found < 0)
        return -1;
    if (!shared) {
        acme_problem_set(prob, "malformed", 400,
                         "the order shares no identifier with the certificate it replaces");
        return -1;
    }
    return 0;
}

int
acme_replaces_read(struct acme_rq *rq, const cJSON *payload, struct acme_order *o,
                   struct acme_problem *prob)
{
    struct acme_cert c = {0};
    const char *id;
    int rc = -1;

    if (certid_member(payload, &id) != 0) {
        acme_problem_set(prob, "malformed", 400, "replaces must be an ARI certID string");
        goto out;
    }
    if (id == NULL)
        return 0;
    if (acme_cert_by_ari_id(rq->ctx, rq->policy, id, &c, prob) != 0)
        goto out;
    /* ARI-10 names only the same account; this CA knows no wider subscriber. */
    if (strcmp(c.owner, rq->acct.id) != 0) {
        acme_problem_set(prob, "unauthorized", 403,
                         "the certificate to replace was issued to another account");
        goto out;
    }
    if (check_shared(rq->ctx, &c, o, prob) != 0 || check_free(rq->ctx, &c, prob) != 0)
        goto out;
    acme_strlcpy(o->replaces, id, sizeof(o->replaces));
    rc = 0;
out:
    acme_cert_clear(&c);
    return rc;
}

bool
acme_replaces_is_renewal(struct acme_rq *rq)
{
    struct acme_problem ignored = {0};
    struct acme_cert c = {0};
    const char *id;
    bool yes;

    if (certid_member(rq->jws.payload, &id) != 0 || id == NULL ||
        acme_cert_by_ari_id(rq->ctx, rq->policy, id, &c, &ignored) != 0)
        return false;
    /*
     * Only the first attempt at replacing a certificate is free: otherwise an
     * account could order without limit by letting each replacing order fail.
     */
    yes = strcmp(c.owner, rq->acct.id) == 0 && c.replaced_by[0] == '\0' &&
          clk_now() >= acme_renewal_start(rq->ctx, &c);
    acme_cert_clear(&c);
    return yes;
}

void
acme_replacing_clear(struct acme_replacing *st)
{
    if (st == NULL)
        return;
    free(st->data);
    acme_cert_clear(&st->cert);
    memset(st, 0, sizeof(*st));
}

int
acme_replaces_stage(struct acme_ctx *ctx, const struct cfg_policy *pol,
                    const struct acme_order *o, struct acme_replacing *st,
                    struct store_write *w, struct acme_problem *prob)
{
    acme_replacing_clear(st);
    if (o->replaces[0] == '\0')
        return 0;
    /* Read again on every try: a conflict may mean another order took it meanwhile. */
    if (acme_cert_by_ari_id(ctx, pol, o->replaces, &st->cert, prob) != 0 ||
        check_free(ctx, &st->cert, prob) != 0)
        return -1;
    acme_strlcpy(st->cert.replaced_by, o->id, sizeof(st->cert.replaced_by));
    acme_cert_rec(&st->cert, &st->rec, &st->data);
    *w = (struct store_write){STORE_UPDATE, &st->rec, st->cert.version};
    return 1;
}

void
acme_replaces_add(const struct acme_order *o, cJSON *obj)
{
    if (o->replaces[0] != '\0')
        cJSON_AddStringToObject(obj, "replaces", o->replaces);
}
