/*
 * account.c: account records and the newAccount / account resources
 * (RFC 8555 §7.3, §7.3.1-§7.3.3, §7.3.6). An account is a STORE_ACCOUNT row:
 * lookup "<policy>:<thumbprint>" finds it by key, data holds the JSON below.
 */
#include "acme/acme_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_CONTACT_LEN 320

void
acme_account_clear(struct acme_account *a)
{
    if (a == NULL)
        return;
    cJSON_Delete(a->contact);
    free(a->jwk_json);
    memset(a, 0, sizeof(*a));
}

char *
acme_account_serialize(const struct acme_account *a)
{
    cJSON *o = cJSON_CreateObject();
    char *s;

    cJSON_AddStringToObject(o, "policy", a->policy);
    cJSON_AddStringToObject(o, "status", a->status);
    if (a->contact != NULL)
        cJSON_AddItemToObject(o, "contact", cJSON_Duplicate(a->contact, 1));
    cJSON_AddStringToObject(o, "jwk", a->jwk_json != NULL ? a->jwk_json : "");
    cJSON_AddStringToObject(o, "thumbprint", a->thumbprint);
    cJSON_AddStringToObject(o, "eab_kid", a->eab_kid);
    if (a->terms[0] != '\0')
        cJSON_AddStringToObject(o, "terms", a->terms);
    cJSON_AddNumberToObject(o, "created", (double)a->created);
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* The store record for a (lookup and data allocated; free with account_rec_free). */
static void
account_rec(const struct acme_account *a, struct store_rec *rec)
{
    memset(rec, 0, sizeof(*rec));
    rec->kind = STORE_ACCOUNT;
    rec->id = (char *)a->id;
    rec->lookup = xasprintf("%s:%s", a->policy, a->thumbprint);
    rec->status = (char *)a->status;
    rec->created = a->created;
    rec->data = acme_account_serialize(a);
}

static void
account_rec_free(struct store_rec *rec)
{
    free(rec->lookup);
    free(rec->data);
}

int
acme_account_store_update(struct acme_ctx *ctx, const struct acme_account *a, const char *what,
                          struct acme_problem *prob)
{
    struct store_rec rec;
    char err[ERR_LEN] = "";
    int st;

    account_rec(a, &rec);
    struct store_write w = {.op = STORE_UPDATE, .rec = &rec, .expect_version = a->version};
    st = store_commit(ctx->store, &w, 1, err);
    account_rec_free(&rec);
    if (st == 1) {
        acme_problem_set(prob, "malformed", 409, "account changed concurrently; retry");
        return -1;
    }
    if (st != 0) {
        log_err("acme", "account %s %s: %s", a->id, what, err);
        acme_problem_set(prob, "serverInternal", 500, "storage error");
        return -1;
    }
    return 0;
}

int
acme_account_parse(const struct store_rec *rec, struct acme_account *out,
                   struct acme_problem *prob)
{
    cJSON *o = rec->data != NULL ? cJSON_Parse(rec->data) : NULL;
    const char *policy = acme_json_str(o, "policy"), *jwk = acme_json_str(o, "jwk");
    const char *tp = acme_json_str(o, "thumbprint"), *eab = acme_json_str(o, "eab_kid");
    const char *terms = acme_json_str(o, "terms"); /* absent in records older than terms.c */
    const char *status = rec->status != NULL ? rec->status : acme_json_str(o, "status");
    const cJSON *contact = cJSON_GetObjectItemCaseSensitive(o, "contact");
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (policy == NULL || jwk == NULL || tp == NULL || status == NULL) {
        acme_problem_set(prob, "serverInternal", 500, "account record unreadable");
        goto out;
    }
    snprintf(out->id, sizeof(out->id), "%s", rec->id);
    snprintf(out->policy, sizeof(out->policy), "%s", policy);
    snprintf(out->status, sizeof(out->status), "%s", status);
    snprintf(out->thumbprint, sizeof(out->thumbprint), "%s", tp);
    snprintf(out->eab_kid, sizeof(out->eab_kid), "%s", eab != NULL ? eab : "");
    snprintf(out->terms, sizeof(out->terms), "%s", terms != NULL ? terms : "");
    out->jwk_json = xstrdup(jwk);
    if (cJSON_IsArray(contact))
        out->contact = cJSON_Duplicate(contact, 1);
    out->created = rec->created;
    out->version = rec->version;
    rc = 0;
out:
    cJSON_Delete(o);
    return rc;
}

/* Maps a store_get result onto the 0 / 1 / -1 contract. */
static int
load_result(int st, struct store_rec *rec, const char *err, struct acme_account *out,
            struct acme_problem *prob)
{
    if (st < 0) {
        log_err("acme", "account read: %s", err);
        acme_problem_set(prob, "serverInternal", 500, "storage error");
        return -1;
    }
    if (st == 1)
        return 1;
    st = acme_account_parse(rec, out, prob);
    store_rec_clear(rec);
    return st;
}

int
acme_account_load(struct acme_ctx *ctx, const char *id, struct acme_account *out,
                  struct acme_problem *prob)
{
    struct store_rec rec = {0};
    char err[ERR_LEN] = "";
    int st = store_get(ctx->store, STORE_ACCOUNT, id, &rec, err);

    return load_result(st, &rec, err, out, prob);
}

/* The account row of policy holding the key: store_get_by_lookup's 0 / 1 / -1. */
static int
get_by_key(struct acme_ctx *ctx, const char *policy, const char *thumbprint,
           struct store_rec *rec, char err[ERR_LEN])
{
    char *lookup = xasprintf("%s:%s", policy, thumbprint);
    int st = store_get_by_lookup(ctx->store, STORE_ACCOUNT, lookup, rec, err);

    free(lookup);
    return st;
}

int
acme_account_find_by_thumbprint(struct acme_ctx *ctx, const char *policy,
                                const char *thumbprint, struct acme_account *out,
                                struct acme_problem *prob)
{
    struct store_rec rec = {0};
    char err[ERR_LEN] = "";
    int st = get_by_key(ctx, policy, thumbprint, &rec, err);

    return load_result(st, &rec, err, out, prob);
}

int
acme_account_key_in_use(struct acme_ctx *ctx, const char *thumbprint, struct acme_problem *prob)
{
    struct store_rec rec = {0};
    char err[ERR_LEN] = "";
    size_t i;
    int st = 1;

    /* Rows are keyed per policy: one indexed read per configured policy, never a scan. */
    for (i = 0; st == 1 && i < ctx->cfg->npolicies; i++) {
        st = get_by_key(ctx, ctx->cfg->policies[i].name, thumbprint, &rec, err);
        store_rec_clear(&rec);
    }
    if (st < 0) {
        log_err("acme", "account key lookup: %s", err);
        acme_problem_set(prob, "serverInternal", 500, "storage error");
    }
    return st;
}

cJSON *
acme_account_to_json(const struct acme_ctx *ctx, const struct acme_account *a)
{
    cJSON *o = cJSON_CreateObject();
    char *orders = acme_url(ctx, a->policy, ACME_RES_ACCOUNT_ORDERS, a->id, NULL);

    cJSON_AddStringToObject(o, "status", a->status);
    if (a->contact != NULL)
        cJSON_AddItemToObject(o, "contact", cJSON_Duplicate(a->contact, 1));
    cJSON_AddStringToObject(o, "orders", orders);
    free(orders);
    return o;
}

/* Domain part of a mailto address: dot-separated LDH labels. */
static bool
domain_ok(const char *d)
{
    size_t label = 0, dots = 0;
    const char *p;

    for (p = d; *p != '\0'; p++) {
        if (*p == '.') {
            if (label == 0 || p[-1] == '-')
                return false;
            label = 0;
            dots++;
            continue;
        }
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-'))
            return false;
        label++;
        if (label > 63 || (label == 1 && *p == '-'))
            return false;
    }
    return label > 0 && p[-1] != '-' && dots > 0;
}

/* one plain mailto address per contact. */
static int
mailto_check(const char *c, struct acme_problem *prob)
{
    const char *addr, *at, *p;

    if (strncasecmp(c, "mailto:", 7) != 0) {
        acme_problem_set(prob, "unsupportedContact", 400,
                         "only mailto: contact URLs are supported");
        return -1;
    }
    addr = c + 7;
    at = strchr(addr, '@');
    if (strlen(c) > MAX_CONTACT_LEN || strpbrk(addr, "?,%") != NULL) {
        acme_problem_set(prob, "invalidContact", 400,
                         "contact must be one mailto address without header fields");
        return -1;
    }
    if (at == NULL || at == addr || strchr(at + 1, '@') != NULL || !domain_ok(at + 1)) {
        acme_problem_set(prob, "invalidContact", 400, "contact is not an email address");
        return -1;
    }
    for (p = addr; p < at; p++) {
        if (*p <= 0x20 || *p >= 0x7f || strchr("()<>[]\\;:\"", *p) != NULL) {
            acme_problem_set(prob, "invalidContact", 400, "contact local part is invalid");
            return -1;
        }
    }
    return 0;
}

int
acme_contact_check(const cJSON *contact, struct acme_problem *prob)
{
    const cJSON *c;
    int n = 0;

    if (!cJSON_IsArray(contact)) {
        acme_problem_set(prob, "malformed", 400, "contact must be an array of URLs");
        return -1;
    }
    cJSON_ArrayForEach(c, contact) {
        if (!cJSON_IsString(c)) {
            acme_problem_set(prob, "malformed", 400, "contact entries must be strings");
            return -1;
        }
        n++;
        if (n > ACME_MAX_CONTACTS) {
            acme_problem_set(prob, "invalidContact", 400, "at most %d contacts",
                             ACME_MAX_CONTACTS);
            return -1;
        }
        if (mailto_check(c->valuestring, prob) != 0)
            return -1;
    }
    return 0;
}

/* Answers with the account object and its URL in Location. */
static int
respond_account(struct acme_rq *rq, const struct acme_account *a, int status, const cJSON *eab)
{
    char *loc = acme_url(rq->ctx, a->policy, ACME_RES_ACCOUNT, a->id, NULL);
    cJSON *body = acme_account_to_json(rq->ctx, a);

    /* the binding is echoed exactly as the client sent it. */
    if (eab != NULL)
        cJSON_AddItemToObject(body, "externalAccountBinding", cJSON_Duplicate(eab, 1));
    acme_resp_header(rq->resp, "Location", "%s", loc);
    free(loc);
    acme_resp_json(rq->resp, status, body);
    return 0;
}

/*
 * Stores a new account, binding the EAB record in the same commit when there is
 * one. 0 stored, 1 conflict (id taken or EAB bound meanwhile), -1 error (prob set).
 */
static int
insert_account(struct acme_rq *rq, struct acme_account *a, struct store_rec *eab_rec,
               struct acme_problem *prob)
{
    struct store_rec rec;
    struct store_write w[2];
    char err[ERR_LEN] = "";
    size_t n = 1;
    int st;

    account_rec(a, &rec);
    w[0] = (struct store_write){.op = STORE_INSERT, .rec = &rec};
    if (eab_rec != NULL) {
        free(eab_rec->status);
        eab_rec->status = xstrdup("bound");
        free(eab_rec->lookup);
        eab_rec->lookup = xstrdup(a->id);
        w[1] = (struct store_write){
            .op = STORE_UPDATE, .rec = eab_rec, .expect_version = eab_rec->version};
        n = 2;
    }
    st = store_commit(rq->ctx->store, w, n, err);
    if (st < 0) {
        log_err("acme", "account %s insert: %s", a->id, err);
        acme_problem_set(prob, "serverInternal", 500, "storage error");
    }
    account_rec_free(&rec);
    return st;
}

/*
 * The id a key's account gets first: derived from policy and thumbprint, so two
 * concurrent newAccount requests with one key collide in the store instead of
 * creating two accounts (the lookup column is not unique).
 */
static void
key_account_id(const char *policy, const char *thumbprint, char out[ACME_MAX_ID])
{
    unsigned char h[32];
    char *seed = xasprintf("attesta-account:%s:%s", policy, thumbprint);
    pki_sha256(seed, strlen(seed), h);
    free(seed);
    char *id = b64u_encode(h, 16);
    snprintf(out, ACME_MAX_ID, "%s", id);
    free(id);
}

/*
 * Inserts a; on a conflict, answers with the account a concurrent request made
 * for the same key (*existing = true), or retries once under a random id (the
 * derived one belongs to an account that has since changed its key). 0/-1.
 */
static int
insert_or_find(struct acme_rq *rq, struct acme_account *a, struct store_rec *eab_rec,
               bool *existing, struct acme_problem *prob)
{
    *existing = false;
    for (int attempt = 0; attempt < 2; attempt++) {
        int st = insert_account(rq, a, eab_rec, prob);
        if (st <= 0)
            return st;
        struct acme_account twin = {0};
        int found = acme_account_find_by_thumbprint(rq->ctx, a->policy, a->thumbprint, &twin,
                                                    prob);
        if (found == 0) {
            acme_account_clear(a);
            *a = twin;
            *existing = true;
            return 0;
        }
        acme_account_clear(&twin);
        if (found < 0)
            return -1;
        if (eab_rec != NULL) {
            acme_problem_set(prob, "unauthorized", 401, "external account key already bound");
            return -1;
        }
        if (acme_new_id(a->id) != 0)
            break;
    }
    acme_problem_set(prob, "serverInternal", 500, "cannot allocate an account id");
    return -1;
}

/* Checks the new-account-only members; EAB last since it costs a store read. */
static int
new_account_checks(struct acme_rq *rq, struct acme_problem *prob)
{
    const cJSON *p = rq->jws.payload;
    const cJSON *contact = cJSON_GetObjectItemCaseSensitive(p, "contact");

    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "onlyReturnExisting"))) {
        acme_problem_set(prob, "accountDoesNotExist", 400, "no account for this key");
        return -1;
    }
    if (rq->ctx->cfg->acme.terms_of_service != NULL &&
        !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "termsOfServiceAgreed"))) {
        acme_problem_set(prob, "malformed", 400, "you must agree to the terms of service (%s)",
                         rq->ctx->cfg->acme.terms_of_service);
        return -1;
    }
    if (contact != NULL && acme_contact_check(contact, prob) != 0)
        return -1;
    if (cJSON_GetObjectItemCaseSensitive(p, "externalAccountBinding") == NULL &&
        rq->policy->eab_required) {
        acme_problem_set(prob, "externalAccountRequired", 400,
                         "policy %s requires an external account binding", rq->policy->name);
        return -1;
    }
    return 0;
}

/*
 * SEC-3: refuses a new account when the client's address (IPv6: its /64) made
 * acme.limits.accounts_per_ip_hour of them in the last hour. Only creations
 * count (the caller adds one after a 201): answering a key's existing account
 * or onlyReturnExisting costs nothing but a read. Checking before and counting
 * after lets concurrent requests overshoot by at most the number of workers.
 */
static int
check_account_rate(struct acme_rq *rq, struct acme_problem *prob)
{
    int retry = 0;

    if (rq->req == NULL ||
        acme_iplimit_check(rq->ctx->acct_rate, rq->req->peer,
                           rq->ctx->cfg->acme.accounts_per_ip_hour, &retry) == 0)
        return 0;
    acme_problem_set(prob, "rateLimited", 429, "too many new accounts from this address");
    prob->retry_after = retry > 0 ? retry : 60;
    return -1;
}

int
acme_h_new_account(struct acme_rq *rq, struct acme_problem *prob)
{
    struct acme_account a = {0};
    struct store_rec eab_rec = {0};
    const cJSON *contact, *eab;
    bool bound = false, existing = false;
    int rc = -1, found;

    if (rq->jws.post_as_get) {
        acme_problem_set(prob, "malformed", 400, "newAccount needs a JSON object payload");
        goto out;
    }
    /* a key that already has an account gets that account back, request ignored. */
    found = acme_account_find_by_thumbprint(rq->ctx, rq->policy->name, rq->jws.thumbprint, &a,
                                            prob);
    if (found < 0)
        goto out;
    if (found == 0) {
        rc = respond_account(rq, &a, 200, NULL);
        goto out;
    }
    if (new_account_checks(rq, prob) != 0)
        goto out;
    if (check_account_rate(rq, prob) != 0)
        goto out;
    eab = cJSON_GetObjectItemCaseSensitive(rq->jws.payload, "externalAccountBinding");
    if (eab != NULL) {
        if (acme_eab_verify(rq->ctx, eab, &rq->jws, &eab_rec, prob) != 0)
            goto out;
        bound = true;
        snprintf(a.eab_kid, sizeof(a.eab_kid), "%s", eab_rec.id);
    }
    key_account_id(rq->policy->name, rq->jws.thumbprint, a.id);
    snprintf(a.policy, sizeof(a.policy), "%s", rq->policy->name);
    snprintf(a.status, sizeof(a.status), "valid");
    snprintf(a.thumbprint, sizeof(a.thumbprint), "%s", rq->jws.thumbprint);
    contact = cJSON_GetObjectItemCaseSensitive(rq->jws.payload, "contact");
    a.contact = contact != NULL ? cJSON_Duplicate(contact, 1) : NULL;
    a.jwk_json = pki_jwk_canonical_json(rq->jws.key);
    a.created = clk_now();
    a.version = 1;
    acme_terms_agree(&rq->ctx->cfg->acme, rq->jws.payload, &a);
    if (a.jwk_json == NULL) {
        acme_problem_set(prob, "badPublicKey", 400, "key type not supported");
        goto out;
    }
    if (insert_or_find(rq, &a, bound ? &eab_rec : NULL, &existing, prob) != 0)
        goto out;
    if (existing) {
        rc = respond_account(rq, &a, 200, NULL);
        goto out;
    }
    if (rq->req != NULL)
        acme_iplimit_add(rq->ctx->acct_rate, rq->req->peer);
    log_info("acme", "account %s created in %s", a.id, a.policy);
    rc = respond_account(rq, &a, 201, eab);
out:
    /* The record's data holds the MAC key. */
    if (eab_rec.data != NULL)
        secure_wipe(eab_rec.data, strlen(eab_rec.data));
    store_rec_clear(&eab_rec);
    acme_account_clear(&a);
    return rc;
}

/* applies contact and deactivation; terms agreement is terms.c's, the rest ignored. */
static int
apply_update(const cJSON *p, struct acme_account *a, bool *changed, struct acme_problem *prob)
{
    const cJSON *contact = cJSON_GetObjectItemCaseSensitive(p, "contact");
    const char *status = acme_json_str(p, "status");

    *changed = false;
    if (contact != NULL) {
        if (acme_contact_check(contact, prob) != 0)
            return -1;
        cJSON_Delete(a->contact);
        a->contact = cJSON_Duplicate(contact, 1);
        *changed = true;
    }
    if (status != NULL && strcmp(status, "deactivated") == 0) {
        snprintf(a->status, sizeof(a->status), "deactivated");
        *changed = true;
    }
    return 0;
}

int
acme_h_account(struct acme_rq *rq, struct acme_problem *prob)
{
    struct acme_account *a = &rq->acct;
    bool changed = false;
    int rc = -1;

    if (strcmp(rq->id1, a->id) != 0) {
        acme_problem_set(prob, "unauthorized", 403, "request signed by another account");
        goto out;
    }
    if (!rq->jws.post_as_get) {
        if (apply_update(rq->jws.payload, a, &changed, prob) != 0)
            goto out;
        /* §7.3.3: re-agreement to changed terms is an update with termsOfServiceAgreed. */
        if (acme_terms_agree(&rq->ctx->cfg->acme, rq->jws.payload, a)) {
            log_info("acme", "account %s agreed to the terms of service", a->id);
            changed = true;
        }
    }
    if (changed) {
        if (acme_account_store_update(rq->ctx, a, "update", prob) != 0)
            goto out;
        if (strcmp(a->status, "deactivated") == 0) {
            log_info("acme", "account %s deactivated", a->id);
            acme_orders_cancel_for_account(rq->ctx, a->id);
        }
    }
    rc = respond_account(rq, a, 200, NULL);
out:
    return rc;
}
