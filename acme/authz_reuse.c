/*
 * authz_reuse.c: valid authorizations serving later orders (RFC 8555 §7.1.3,
 * checklist S-4). An authz's store lookup names its account, policy and
 * identifier, so newOrder finds a reusable one with one index probe; and
 * since one authz may now back several orders, deactivating it must find
 * every unfinished order that lists it (S-12).
 */
#include "acme/acme_res_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A reused authz must stay valid this long into the new order (or one order
 * lifetime, if shorter): a day, as large public CAs allow, leaves a client
 * time to prove the order's other identifiers and finalize.
 */
#define REUSE_MARGIN 86400
/*
 * Newest authzs of one key looked at. The newest valid one outlives the
 * others; older rows are mostly failed attempts, not worth a longer scan.
 */
#define REUSE_SCAN 16

/* CFG_CH_* of each challenge type: whether a policy still offers the proof. */
static const unsigned chall_flag[ACME_CH__MAX] = {
    CFG_CH_HTTP01,
    CFG_CH_DNS01,
    CFG_CH_TLSALPN01,
    CFG_CH_DEVICE_ATTEST01,
};
_Static_assert(nitems(chall_flag) == ACME_CH__MAX, "one flag per challenge type");

void
acme_authz_key(const char *owner, const char *policy, enum acme_id_type type, bool wildcard,
               const char *value, char *out)
{
    /* Owner ids are base64url and policy names [a-z0-9-]: no ':' inside either. */
    snprintf(out, ACME_AUTHZ_KEY_MAX, "%s:%s:%s:%s%s", owner, policy, acme_id_type_str[type],
             wildcard ? "*." : "", value);
}

int64_t
acme_authz_reuse_until(const struct cfg_acme *acme, const struct acme_order *o)
{
    int64_t margin = acme->order_lifetime < REUSE_MARGIN ? acme->order_lifetime : REUSE_MARGIN;
    int64_t until = o->created + margin;

    /* The order's expires follows its authzs down and must not fall before notBefore. */
    return o->not_before > until ? o->not_before : until;
}

bool
acme_authz_is_reusable(const struct acme_authz *a, const struct cfg_policy *pol,
                       const char *owner, const struct acme_ident *ordered, int64_t until)
{
    bool wild = ordered->type == ACME_ID_DNS && strncmp(ordered->value, "*.", 2) == 0;
    size_t i;

    /* A device proves itself to every order: its attestation is never carried over. */
    if (acme_id_is_device(ordered->type) || strcmp(a->owner, owner) != 0 ||
        strcmp(a->policy, pol->name) != 0)
        return false;
    if (a->ident.type != ordered->type || a->wildcard != wild ||
        strcmp(a->ident.value, ordered->value + (wild ? 2 : 0)) != 0)
        return false;
    if (strcmp(acme_authz_status(a), "valid") != 0 || a->expires < until)
        return false;
    /* A proof the policy no longer accepts would let the old rules issue. */
    for (i = 0; i < a->nch; i++)
        if (strcmp(a->ch[i].status, "valid") == 0)
            return (pol->challenges & chall_flag[a->ch[i].type]) != 0;
    return false;
}

struct reuse_scan {
    const struct cfg_policy *pol;
    const char *owner;
    const struct acme_ident *ordered;
    int64_t until;
    struct acme_authz *out;
    bool found;
};

static int
reuse_one(void *arg, const struct store_rec *rec)
{
    struct reuse_scan *rs = arg;

    /* The columns rule most rows out (pending, failed, expiring) before any JSON is read. */
    if (rec->status == NULL || strcmp(rec->status, "valid") != 0 || rec->expires < rs->until)
        return 0;
    memset(rs->out, 0, sizeof(*rs->out));
    if (acme_authz_fill(rs->out, rec) == 0 &&
        acme_authz_is_reusable(rs->out, rs->pol, rs->owner, rs->ordered, rs->until)) {
        rs->found = true;
        return 1;
    }
    acme_authz_clear(rs->out);
    return 0;
}

int
acme_authz_find_reusable(struct acme_ctx *ctx, const struct cfg_policy *pol, const char *owner,
                         const struct acme_ident *ordered, int64_t until, struct acme_authz *out,
                         struct acme_problem *prob)
{
    bool wild = ordered->type == ACME_ID_DNS && strncmp(ordered->value, "*.", 2) == 0;
    char key[ACME_AUTHZ_KEY_MAX], err[ERR_LEN] = "";
    struct store_filter f = {.lookup = key, .limit = REUSE_SCAN, .newest_first = true};
    struct reuse_scan rs = {pol, owner, ordered, until, out, false};

    memset(out, 0, sizeof(*out));
    if (acme_id_is_device(ordered->type))
        return 1;
    acme_authz_key(owner, pol->name, ordered->type, wild, ordered->value + (wild ? 2 : 0), key);
    if (store_list(ctx->store, STORE_AUTHZ, &f, reuse_one, &rs, err) != 0) {
        acme_authz_clear(out);
        acme_store_problem(prob, "looking for a reusable authorization", err);
        return -1;
    }
    return rs.found ? 0 : 1;
}

struct dependents {
    const char *authz_id;
    struct acme_order *orders;
    size_t n, cap;
};

static int
dependent_one(void *arg, const struct store_rec *rec)
{
    struct dependents *d = arg;
    struct acme_order o = {0};
    size_t i;

    if (rec->status == NULL || strcmp(rec->status, "valid") == 0 ||
        strcmp(rec->status, "invalid") == 0)
        return 0;
    if (acme_order_fill(&o, rec) != 0 || strcmp(acme_order_status(&o), "invalid") == 0)
        goto skip;
    for (i = 0; i < o.nauthz; i++) {
        if (strcmp(o.authz[i], d->authz_id) != 0)
            continue;
        if (d->n == d->cap) {
            d->cap = d->cap != 0 ? 2 * d->cap : 4;
            d->orders = xrealloc(d->orders, d->cap * sizeof(*d->orders));
        }
        d->orders[d->n++] = o; /* moved: the array owns its members now */
        return 0;
    }
skip:
    acme_order_clear(&o);
    return 0;
}

int
acme_authz_orders(struct acme_ctx *ctx, const struct acme_authz *a, struct acme_order **out,
                  size_t *n, struct acme_problem *prob)
{
    /* An order lists only authzs that existed when it was made: none older than a. */
    struct store_filter f = {.owner = a->owner, .created_since = a->created};
    struct dependents d = {a->id, NULL, 0, 0};
    char err[ERR_LEN] = "";
    size_t i;

    if (store_list(ctx->store, STORE_ORDER, &f, dependent_one, &d, err) != 0) {
        for (i = 0; i < d.n; i++)
            acme_order_clear(&d.orders[i]);
        free(d.orders);
        acme_store_problem(prob, "finding the orders of an authorization", err);
        return -1;
    }
    *out = d.orders;
    *n = d.n;
    return 0;
}
