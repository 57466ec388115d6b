/*
 * order.c: the order resource (RFC 8555 §7.1.3, §7.4): its stored form,
 * newOrder (identifier checks, one authorization per identifier, reused when
 * a valid one exists (authz_reuse.c), order and new authorizations written in
 * one commit) and POST-as-GET on an order.
 */
#include "acme/acme_res_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

void
acme_strlcpy(char *dst, const char *src, size_t n)
{
    if (n == 0)
        return;
    snprintf(dst, n, "%s", src != NULL ? src : "");
}

void
acme_store_problem(struct acme_problem *prob, const char *what, const char *err)
{
    /* The store's text may name tables and paths: it goes to the log only. */
    log_err("acme", "%s: %s", what, err != NULL ? err : "");
    acme_problem_set(prob, "serverInternal", 500, "%s failed", what);
}

int
acme_rec_load(struct acme_ctx *ctx, enum store_kind kind, const char *id, const char *what,
              acme_rec_fill_fn *fill, void *out, struct acme_problem *prob)
{
    struct store_rec rec = {0};
    char err[ERR_LEN] = "", msg[64];
    int rc = store_get(ctx->store, kind, id, &rec, err);

    if (rc < 0) {
        snprintf(msg, sizeof(msg), "loading %s", what);
        acme_store_problem(prob, msg, err);
    } else if (rc == 0 && fill(out, &rec) != 0) {
        snprintf(msg, sizeof(msg), "parsing %s", what);
        acme_store_problem(prob, msg, id);
        rc = -1;
    }
    store_rec_clear(&rec);
    return rc;
}

void
acme_order_clear(struct acme_order *o)
{
    if (o == NULL)
        return;
    free(o->ids);
    free(o->authz);
    cJSON_Delete(o->error);
    memset(o, 0, sizeof(*o));
}

static int64_t
json_time(const cJSON *obj, const char *name)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, name);

    return cJSON_IsNumber(n) ? (int64_t)n->valuedouble : 0;
}

static int
order_parse_data(struct acme_order *o, const char *data)
{
    cJSON *root = cJSON_Parse(data != NULL ? data : "");
    const cJSON *ids, *azs, *it, *err;
    size_t i = 0;
    int rc = -1;

    if (!cJSON_IsObject(root))
        goto out;
    acme_strlcpy(o->policy, acme_json_str(root, "policy"), sizeof(o->policy));
    ids = cJSON_GetObjectItemCaseSensitive(root, "identifiers");
    azs = cJSON_GetObjectItemCaseSensitive(root, "authorizations");
    if (!cJSON_IsArray(ids) || !cJSON_IsArray(azs) ||
        cJSON_GetArraySize(ids) != cJSON_GetArraySize(azs))
        goto out;
    o->nids = (size_t)cJSON_GetArraySize(ids);
    o->ids = xcalloc(o->nids + 1, sizeof(*o->ids));
    o->authz = xcalloc(o->nids + 1, sizeof(*o->authz));
    cJSON_ArrayForEach(it, ids)
    {
        if (acme_id_type_parse(acme_json_str(it, "type"), &o->ids[i].type) != 0)
            goto out;
        acme_strlcpy(o->ids[i].value, acme_json_str(it, "value"), sizeof(o->ids[i].value));
        i++;
    }
    i = 0;
    cJSON_ArrayForEach(it, azs)
    {
        if (!cJSON_IsString(it))
            goto out;
        acme_strlcpy(o->authz[i++], it->valuestring, ACME_MAX_ID);
    }
    o->nauthz = i;
    o->not_before = json_time(root, "notBefore");
    o->not_after = json_time(root, "notAfter");
    acme_strlcpy(o->cert_serial, acme_json_str(root, "certificate"), sizeof(o->cert_serial));
    acme_strlcpy(o->replaces, acme_json_str(root, "replaces"), sizeof(o->replaces));
    err = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (cJSON_IsObject(err))
        o->error = cJSON_Duplicate(err, 1);
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

int
acme_order_fill(void *arg, const struct store_rec *rec)
{
    struct acme_order *o = arg;

    acme_strlcpy(o->id, rec->id, sizeof(o->id));
    acme_strlcpy(o->owner, rec->owner, sizeof(o->owner));
    acme_strlcpy(o->status, rec->status, sizeof(o->status));
    o->created = rec->created;
    o->expires = rec->expires;
    o->version = rec->version;
    return order_parse_data(o, rec->data);
}

int
acme_order_load(struct acme_ctx *ctx, const char *id, struct acme_order *out,
                struct acme_problem *prob)
{
    memset(out, 0, sizeof(*out));
    int rc = acme_rec_load(ctx, STORE_ORDER, id, "an order", acme_order_fill, out, prob);
    if (rc < 0)
        acme_order_clear(out);
    return rc;
}

static cJSON *
idents_to_json(const struct acme_ident *ids, size_t n)
{
    cJSON *arr = cJSON_CreateArray(), *o;
    size_t i;

    for (i = 0; i < n; i++) {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", acme_id_type_str[ids[i].type]);
        cJSON_AddStringToObject(o, "value", ids[i].value);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

void
acme_order_rec(const struct acme_order *o, struct store_rec *rec, char **data)
{
    cJSON *root = cJSON_CreateObject(), *azs;
    size_t i;

    cJSON_AddStringToObject(root, "policy", o->policy);
    cJSON_AddItemToObject(root, "identifiers", idents_to_json(o->ids, o->nids));
    azs = cJSON_AddArrayToObject(root, "authorizations");
    for (i = 0; i < o->nauthz; i++)
        cJSON_AddItemToArray(azs, cJSON_CreateString(o->authz[i]));
    if (o->not_before != 0)
        cJSON_AddNumberToObject(root, "notBefore", (double)o->not_before);
    if (o->not_after != 0)
        cJSON_AddNumberToObject(root, "notAfter", (double)o->not_after);
    if (o->error != NULL)
        cJSON_AddItemToObject(root, "error", cJSON_Duplicate(o->error, 1));
    if (o->cert_serial[0] != '\0')
        cJSON_AddStringToObject(root, "certificate", o->cert_serial);
    acme_replaces_add(o, root);
    *data = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    memset(rec, 0, sizeof(*rec));
    rec->kind = STORE_ORDER;
    rec->id = (char *)o->id;
    rec->owner = (char *)o->owner;
    rec->status = (char *)o->status;
    rec->created = o->created;
    rec->expires = o->expires;
    rec->data = *data;
}

const char *
acme_order_status(const struct acme_order *o)
{
    /* S-14: an unfinished order past its expiry is invalid. */
    if ((strcmp(o->status, "pending") == 0 || strcmp(o->status, "ready") == 0) &&
        clk_now() > o->expires)
        return "invalid";
    return o->status;
}

void
acme_order_fail(struct acme_order *o, const struct acme_problem *err)
{
    if (strcmp(o->status, "valid") == 0 || strcmp(o->status, "invalid") == 0)
        return;
    acme_strlcpy(o->status, "invalid", sizeof(o->status));
    cJSON_Delete(o->error);
    o->error = err != NULL ? acme_problem_to_json(err) : NULL;
}

static void
add_time(cJSON *obj, const char *name, int64_t t)
{
    char buf[32];

    cJSON_AddStringToObject(obj, name, clk_fmt_rfc3339(t, buf));
}

cJSON *
acme_order_to_json(const struct acme_ctx *ctx, const struct acme_order *o)
{
    cJSON *obj = cJSON_CreateObject(), *azs;
    const char *status = acme_order_status(o);
    char *url;
    size_t i;

    cJSON_AddStringToObject(obj, "status", status);
    add_time(obj, "expires", o->expires);
    cJSON_AddItemToObject(obj, "identifiers", idents_to_json(o->ids, o->nids));
    if (o->not_before != 0)
        add_time(obj, "notBefore", o->not_before);
    if (o->not_after != 0)
        add_time(obj, "notAfter", o->not_after);
    azs = cJSON_AddArrayToObject(obj, "authorizations");
    for (i = 0; i < o->nauthz; i++) {
        url = acme_url(ctx, o->policy, ACME_RES_AUTHZ, o->authz[i], NULL);
        cJSON_AddItemToArray(azs, cJSON_CreateString(url));
        free(url);
    }
    url = acme_url(ctx, o->policy, ACME_RES_FINALIZE, o->id, NULL);
    cJSON_AddStringToObject(obj, "finalize", url);
    free(url);
    if (strcmp(status, "valid") == 0 && o->cert_serial[0] != '\0') {
        url = acme_url(ctx, o->policy, ACME_RES_CERT, o->cert_serial, NULL);
        cJSON_AddStringToObject(obj, "certificate", url);
        free(url);
    }
    if (strcmp(status, "invalid") == 0 && o->error != NULL)
        cJSON_AddItemToObject(obj, "error", cJSON_Duplicate(o->error, 1));
    acme_replaces_add(o, obj);
    return obj;
}

/* ---------------------------------------------------------------- newOrder */

/* Reads identifiers into o->ids, collapsing duplicates; refusals become subproblems. */
static int
read_identifiers(struct acme_rq *rq, const cJSON *arr, struct acme_order *o,
                 struct acme_problem *prob)
{
    const struct cfg *cfg = rq->ctx->cfg;
    const cJSON *it;
    struct acme_ident id;
    size_t i, ndev = 0;
    bool dup;

    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0) {
        acme_problem_set(prob, "malformed", 400, "identifiers must be a non-empty array");
        return -1;
    }
    if ((size_t)cJSON_GetArraySize(arr) > cfg->acme.max_identifiers) {
        acme_problem_set(prob, "malformed", 400, "at most %zu identifiers per order",
                         cfg->acme.max_identifiers);
        return -1;
    }
    o->ids = xcalloc((size_t)cJSON_GetArraySize(arr), sizeof(*o->ids));
    cJSON_ArrayForEach(it, arr)
    {
        if (acme_ident_check(rq->policy, acme_json_str(it, "type"), acme_json_str(it, "value"), &id,
                             prob) != 0)
            continue;
        for (dup = false, i = 0; i < o->nids && !dup; i++)
            dup = o->ids[i].type == id.type && strcmp(o->ids[i].value, id.value) == 0;
        if (dup)
            continue;
        ndev += acme_id_is_device(id.type) ? 1 : 0;
        o->ids[o->nids++] = id;
    }
    if (prob->nsub > 0)
        return -1;
    /* One certificate profile per order: a device certificate names only devices. */
    if (ndev != 0 && ndev != o->nids) {
        acme_problem_set(prob, "rejectedIdentifier", 400,
                         "an order cannot mix device and network identifiers");
        return -1;
    }
    return 0;
}

/* Top-level problem for the subproblems read_identifiers collected (P-3, E-9). */
static void
identifiers_problem(struct acme_problem *prob)
{
    const char *type;
    size_t i;

    if (prob->nsub == 0)
        return;
    type = prob->sub[0].type;
    for (i = 1; i < prob->nsub; i++)
        if (strcmp(prob->sub[i].type, type) != 0)
            type = "compound";
    acme_problem_set(prob, type, 400, "%zu identifier(s) refused; see subproblems", prob->nsub);
}

/* O-2: the validity window must be honoured exactly or refused. */
static int
read_window(struct acme_rq *rq, const cJSON *payload, struct acme_order *o,
            struct acme_problem *prob)
{
    const cJSON *nb = cJSON_GetObjectItemCaseSensitive(payload, "notBefore");
    const cJSON *na = cJSON_GetObjectItemCaseSensitive(payload, "notAfter");
    int64_t now = clk_now(), life = pol_cert_validity(rq->ctx->cfg, rq->policy), b, a;

    if ((nb != NULL &&
         (!cJSON_IsString(nb) || clk_parse_rfc3339(nb->valuestring, &o->not_before) != 0)) ||
        (na != NULL &&
         (!cJSON_IsString(na) || clk_parse_rfc3339(na->valuestring, &o->not_after) != 0))) {
        acme_problem_set(prob, "malformed", 400, "notBefore/notAfter must be RFC 3339 dates");
        return -1;
    }
    if (nb == NULL && na == NULL)
        return 0;
    acme_issue_window(rq->ctx, rq->policy, o, &b, &a);
    if (a <= b || a <= now || b < now - 86400 || b > o->expires) {
        acme_problem_set(prob, "malformed", 400,
                         "notBefore/notAfter window is empty, past or too far ahead");
        return -1;
    }
    /* The template's validity when there is one: issuance may not shorten the window. */
    if (a - b > life || a > pki_ca_not_after(acme_policy_ca(rq->ctx, rq->policy))) {
        acme_problem_set(prob, "malformed", 400,
                         "requested validity exceeds this policy's %lld seconds or the CA",
                         (long long)life);
        return -1;
    }
    return 0;
}

/* Challenges offered for id under the policy, in a fixed order. */
static size_t
offered_challenges(unsigned offer, const struct acme_ident *id, bool wildcard,
                   enum acme_chall_type out[ACME_MAX_CHALLS])
{
    size_t n = 0;

    if (acme_id_is_device(id->type)) {
        if (offer & CFG_CH_DEVICE_ATTEST01)
            out[n++] = ACME_CH_DEVICE_ATTEST01;
        return n;
    }
    if ((offer & CFG_CH_HTTP01) && !wildcard)
        out[n++] = ACME_CH_HTTP01;
    if ((offer & CFG_CH_DNS01) && id->type == ACME_ID_DNS)
        out[n++] = ACME_CH_DNS01;
    if ((offer & CFG_CH_TLSALPN01) && !wildcard)
        out[n++] = ACME_CH_TLSALPN01;
    return n;
}

/* Builds the authz for o->ids[i]; 0/-1. */
static int
make_authz(struct acme_rq *rq, const struct acme_order *o, size_t i, struct acme_authz *a,
           struct acme_problem *prob)
{
    enum acme_chall_type types[ACME_MAX_CHALLS];
    unsigned char tok[16];
    char *b64;
    size_t k;

    memset(a, 0, sizeof(*a));
    if (acme_new_id(a->id) != 0)
        goto fail;
    acme_strlcpy(a->owner, o->owner, sizeof(a->owner));
    acme_strlcpy(a->status, "pending", sizeof(a->status));
    acme_strlcpy(a->policy, o->policy, sizeof(a->policy));
    acme_strlcpy(a->order, o->id, sizeof(a->order));
    a->created = o->created;
    a->expires = o->created + rq->ctx->cfg->acme.authz_lifetime;
    a->ident = o->ids[i];
    a->wildcard = o->ids[i].type == ACME_ID_DNS && strncmp(o->ids[i].value, "*.", 2) == 0;
    if (a->wildcard)
        memmove(a->ident.value, a->ident.value + 2, strlen(a->ident.value + 2) + 1);
    acme_authz_key(a->owner, a->policy, a->ident.type, a->wildcard, a->ident.value, a->lookup);
    a->nch = offered_challenges(rq->policy->challenges, &a->ident, a->wildcard, types);
    for (k = 0; k < a->nch; k++) {
        /* CH-2: 128 random bits per token, never reused. */
        if (acme_new_id(a->ch[k].id) != 0 || rand_bytes(tok, sizeof(tok)) != 0)
            goto fail;
        b64 = b64u_encode(tok, sizeof(tok));
        acme_strlcpy(a->ch[k].token, b64, sizeof(a->ch[k].token));
        free(b64);
        a->ch[k].type = types[k];
        acme_strlcpy(a->ch[k].status, "pending", sizeof(a->ch[k].status));
    }
    return 0;
fail:
    acme_problem_set(prob, "serverInternal", 500, "random source failed");
    return -1;
}

/*
 * One authz per identifier: a reusable one (reused[i]), which the order may
 * not outlive, or a fresh one. An order whose authzs are all reused is ready
 * at once (S-4).
 */
static int
plan_authzs(struct acme_rq *rq, struct acme_order *o, bool reuse, struct acme_authz *az,
            bool *reused, struct acme_problem *prob)
{
    int64_t until = acme_authz_reuse_until(&rq->ctx->cfg->acme, o);
    size_t i, nreused = 0;
    int found = 1;

    for (i = 0; i < o->nids; i++) {
        if (reuse)
            found = acme_authz_find_reusable(rq->ctx, rq->policy, o->owner, &o->ids[i], until,
                                             &az[i], prob);
        if (found < 0)
            return -1;
        reused[i] = found == 0;
        nreused += reused[i] ? 1 : 0;
        if (!reused[i] && make_authz(rq, o, i, &az[i], prob) != 0)
            return -1;
        /* S-12: a pending or ready order never outlives one of its authzs. */
        if (az[i].expires < o->expires)
            o->expires = az[i].expires;
        acme_strlcpy(o->authz[i], az[i].id, ACME_MAX_ID);
    }
    o->nauthz = o->nids;
    acme_strlcpy(o->status, nreused == o->nids ? "ready" : "pending", sizeof(o->status));
    return 0;
}

/*
 * Writes the order and its fresh authzs in one commit, each reused authz
 * rewritten as read: its version check makes a deactivation racing this
 * order conflict with it (authz.c), and so does the certificate it replaces
 * (replaces.c). 0, 1 conflict (nothing written), -1.
 */
static int
commit_order(struct acme_rq *rq, const struct acme_order *o, const struct acme_authz *az,
             const bool *reused, struct acme_problem *prob)
{
    struct store_rec *recs = xcalloc(o->nids + 1, sizeof(*recs));
    struct store_write *w = xcalloc(o->nids + 2, sizeof(*w));
    char **datas = xcalloc(o->nids + 1, sizeof(*datas));
    struct acme_replacing rp = {0};
    char err[ERR_LEN] = "";
    size_t i;
    int rc, nrp;

    for (i = 0; i < o->nids; i++) {
        acme_authz_rec(&az[i], &recs[i], &datas[i]);
        w[i].op = reused[i] ? STORE_UPDATE : STORE_INSERT;
        w[i].rec = &recs[i];
        w[i].expect_version = reused[i] ? az[i].version : 0;
    }
    acme_order_rec(o, &recs[i], &datas[i]);
    w[i].op = STORE_INSERT;
    w[i].rec = &recs[i];
    nrp = acme_replaces_stage(rq->ctx, rq->policy, o, &rp, &w[o->nids + 1], prob);
    rc = nrp < 0 ? -1 : store_commit(rq->ctx->store, w, o->nids + 1 + (size_t)nrp, err);
    if (rc < 0 && nrp >= 0)
        acme_store_problem(prob, "storing a new order", err);
    acme_replacing_clear(&rp);
    for (i = 0; i <= o->nids; i++)
        free(datas[i]);
    free(datas);
    free(w);
    free(recs);
    return rc;
}

/*
 * Plans and writes the order; *nreused counts the authzs it reuses. A reused
 * authz changing before the commit sends it round again, and the last round
 * reuses nothing, so orders contending for one authz cannot starve each other.
 */
static int
store_new_order(struct acme_rq *rq, struct acme_order *o, size_t *nreused,
                struct acme_problem *prob)
{
    struct acme_authz *az = xcalloc(o->nids, sizeof(*az));
    bool *reused = xcalloc(o->nids, sizeof(*reused));
    int64_t expires = o->expires;
    int rc = 1, tries;
    size_t i;

    o->authz = xcalloc(o->nids, sizeof(*o->authz));
    for (tries = 0; rc == 1 && tries < ACME_COMMIT_TRIES; tries++) {
        o->expires = expires;
        rc = plan_authzs(rq, o, rq->ctx->cfg->acme.authz_reuse && tries + 1 < ACME_COMMIT_TRIES,
                         az, reused, prob);
        if (rc == 0)
            rc = commit_order(rq, o, az, reused, prob);
        for (i = 0; i < o->nids; i++)
            acme_authz_clear(&az[i]);
    }
    if (rc == 1)
        acme_problem_set(prob, "serverInternal", 500, "a new order kept conflicting; retry");
    for (*nreused = 0, i = 0; rc == 0 && i < o->nids; i++)
        *nreused += reused[i] ? 1 : 0;
    free(reused);
    free(az);
    return rc == 0 ? 0 : -1;
}

static int
check_rate(struct acme_rq *rq, struct acme_problem *prob)
{
    int retry = 0;

    /* RFC 9773 §5: a renewal the CA asked for (ARI window open) is no new demand to limit. */
    if (rq->ctx->rate == NULL || acme_replaces_is_renewal(rq))
        return 0;
    if (acme_ratelimit_check(rq->ctx->rate, rq->acct.id, rq->ctx->cfg->acme.orders_per_hour,
                             &retry) == 0)
        return 0;
    acme_problem_set(prob, "rateLimited", 429, "too many new orders for this account");
    prob->retry_after = retry > 0 ? retry : 60;
    return -1;
}

int
acme_h_new_order(struct acme_rq *rq, struct acme_problem *prob)
{
    const cJSON *payload = rq->jws.payload;
    struct acme_order o = {0};
    char *url = NULL;
    size_t nreused = 0;
    int rc = -1;

    if (!cJSON_IsObject(payload)) {
        acme_problem_set(prob, "malformed", 400, "newOrder needs a JSON object payload");
        goto out;
    }
    if (check_rate(rq, prob) != 0)
        goto out;
    if (acme_new_id(o.id) != 0) {
        acme_problem_set(prob, "serverInternal", 500, "random source failed");
        goto out;
    }
    acme_strlcpy(o.owner, rq->acct.id, sizeof(o.owner));
    acme_strlcpy(o.policy, rq->policy->name, sizeof(o.policy));
    acme_strlcpy(o.status, "pending", sizeof(o.status));
    o.created = clk_now();
    o.expires = o.created + rq->ctx->cfg->acme.order_lifetime;
    if (read_identifiers(rq, cJSON_GetObjectItemCaseSensitive(payload, "identifiers"), &o, prob) !=
        0) {
        identifiers_problem(prob);
        goto out;
    }
    if (acme_replaces_read(rq, payload, &o, prob) != 0)
        goto out;
    if (read_window(rq, payload, &o, prob) != 0 || store_new_order(rq, &o, &nreused, prob) != 0)
        goto out;
    log_info("acme", "order %s created by account %s (%zu identifiers, %zu authorizations reused)",
             o.id, o.owner, o.nids, nreused);
    url = acme_url(rq->ctx, o.policy, ACME_RES_ORDER, o.id, NULL);
    acme_resp_json(rq->resp, 201, acme_order_to_json(rq->ctx, &o));
    acme_resp_header(rq->resp, "Location", "%s", url);
    rc = 0;
out:
    free(url);
    acme_order_clear(&o);
    return rc;
}

/* ---------------------------------------------------------------- order */

int
acme_h_order(struct acme_rq *rq, struct acme_problem *prob)
{
    struct acme_order o = {0};
    const char *status;
    int rc = -1, found;

    found = acme_order_load(rq->ctx, rq->id1, &o, prob);
    if (found < 0)
        goto out;
    if (found > 0 || strcmp(o.policy, rq->policy->name) != 0) {
        acme_problem_set(prob, "malformed", 404, "no such order");
        goto out;
    }
    if (strcmp(o.owner, rq->acct.id) != 0) {
        acme_problem_set(prob, "unauthorized", 403, "this order belongs to another account");
        goto out;
    }
    /* A device held for approval learns the administrator's decision by polling. */
    if (strcmp(acme_order_status(&o), "pending") == 0 &&
        acme_approval_poll_order(rq->ctx, &o, prob) != 0)
        goto out;
    acme_resp_json(rq->resp, 200, acme_order_to_json(rq->ctx, &o));
    status = acme_order_status(&o);
    if (strcmp(status, "processing") == 0 || strcmp(status, "pending") == 0)
        acme_resp_header(rq->resp, "Retry-After", "%d", ACME_RETRY_POLL);
    rc = 0;
out:
    acme_order_clear(&o);
    return rc;
}
