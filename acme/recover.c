/*
 * recover.c: start-up recovery. Validations are asynchronous and finalize
 * passes through `processing`; a crash can leave either half done. Network
 * challenges left `processing` are handed to the validator again (their key
 * authorization was stored when they started); orders left `processing` become
 * `valid` when their certificate was recorded, else `ready` again. Also the
 * settling of a deactivated account's unfinished orders (RFC 8555 §7.3.6).
 */
#include "acme/acme_res_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct idlist {
    char (*ids)[ACME_MAX_ID];
    size_t n, cap;
};

static void
idlist_add(struct idlist *l, const char *id)
{
    if (l->n == l->cap) {
        l->cap = l->cap != 0 ? l->cap * 2 : 16;
        l->ids = xrealloc(l->ids, l->cap * sizeof(*l->ids));
    }
    acme_strlcpy(l->ids[l->n++], id, ACME_MAX_ID);
}

static int
collect(void *arg, const struct store_rec *rec)
{
    idlist_add(arg, rec->id);
    return 0;
}

/* Only authzs whose data mentions a processing challenge are worth loading. */
static int
collect_processing(void *arg, const struct store_rec *rec)
{
    if (rec->data != NULL && strstr(rec->data, "\"processing\"") != NULL)
        idlist_add(arg, rec->id);
    return 0;
}

static void
restart_authz(struct acme_ctx *ctx, const char *id)
{
    struct acme_authz a;
    struct acme_problem p = {0};
    size_t i;

    if (acme_authz_load(ctx, id, &a, &p) != 0)
        return;
    for (i = 0; i < a.nch; i++) {
        if (strcmp(a.ch[i].status, "processing") != 0)
            continue;
        if (a.ch[i].type == ACME_CH_DEVICE_ATTEST01) {
            /* Waiting for MDM answers when we stopped (not for an administrator): ask again. */
            if (a.approval[0] == '\0' && strcmp(acme_authz_status(&a), "pending") == 0 &&
                acme_device_lookups_restart(ctx, &a, i) == 0)
                log_info("acme", "recovery: authz %s MDM lookups started again", a.id);
            continue;
        }
        log_info("acme", "recovery: authz %s challenge %s validated again", a.id, a.ch[i].id);
        ctx->validate(ctx->validate_arg, acme_validation_build(&a, &a.ch[i]));
    }
    acme_authz_clear(&a);
}

struct find_cert {
    const char *order;
    char serial[41];
};

static int
match_cert(void *arg, const struct store_rec *rec)
{
    struct find_cert *fc = arg;
    cJSON *d = cJSON_Parse(rec->data != NULL ? rec->data : "");
    const char *order = acme_json_str(d, "order");
    bool hit = order != NULL && strcmp(order, fc->order) == 0;

    if (hit)
        acme_strlcpy(fc->serial, rec->id, sizeof(fc->serial));
    cJSON_Delete(d);
    return hit ? 1 : 0;
}

static int
settle_order(struct acme_ctx *ctx, const char *id, char err[ERR_LEN])
{
    struct acme_order o = {0};
    struct acme_problem p = {0};
    struct find_cert fc = {id, ""};
    struct store_filter f = {0};
    struct store_rec rec;
    char *data = NULL;
    int rc = -1;

    if (acme_order_load(ctx, id, &o, &p) != 0) {
        snprintf(err, ERR_LEN, "order %.64s: %.160s", id, p.detail);
        goto out;
    }
    f.owner = o.owner;
    if (store_list(ctx->store, STORE_CERT, &f, match_cert, &fc, err) != 0)
        goto out;
    acme_strlcpy(o.status, fc.serial[0] != '\0' ? "valid" : "ready", sizeof(o.status));
    acme_strlcpy(o.cert_serial, fc.serial, sizeof(o.cert_serial));
    acme_order_rec(&o, &rec, &data);
    if (store_commit(ctx->store, &(struct store_write){STORE_UPDATE, &rec, o.version}, 1, err) < 0)
        goto out;
    log_info("acme", "recovery: order %s back to %s", id, o.status);
    rc = 0;
out:
    free(data);
    acme_order_clear(&o);
    return rc;
}

int
acme_recover(struct acme_ctx *ctx, char err[ERR_LEN])
{
    struct store_filter f = {0};
    struct idlist authzs = {0}, orders = {0};
    size_t i;
    int rc = -1;

    /* A processing challenge lives in a pending authz. */
    f.status = "pending";
    if (store_list(ctx->store, STORE_AUTHZ, &f, collect_processing, &authzs, err) != 0)
        goto out;
    f.status = "processing";
    if (store_list(ctx->store, STORE_ORDER, &f, collect, &orders, err) != 0)
        goto out;
    for (i = 0; ctx->validate != NULL && i < authzs.n; i++)
        restart_authz(ctx, authzs.ids[i]);
    for (i = 0; i < orders.n; i++)
        if (settle_order(ctx, orders.ids[i], err) != 0)
            goto out;
    rc = 0;
out:
    free(authzs.ids);
    free(orders.ids);
    return rc;
}

/* Marks one unfinished order invalid; a concurrent change is retried a few times. */
static void
cancel_order(struct acme_ctx *ctx, const char *id, const struct acme_problem *why)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        struct acme_order o;
        struct acme_problem p = {0};
        struct store_rec rec;
        char *data = NULL, err[ERR_LEN] = "";
        int st;

        if (acme_order_load(ctx, id, &o, &p) != 0)
            return;
        if (strcmp(o.status, "pending") != 0 && strcmp(o.status, "ready") != 0) {
            acme_order_clear(&o);
            return;
        }
        acme_order_fail(&o, why);
        acme_order_rec(&o, &rec, &data);
        struct store_write w = {.op = STORE_UPDATE, .rec = &rec, .expect_version = o.version};
        st = store_commit(ctx->store, &w, 1, err);
        free(data);
        acme_order_clear(&o);
        if (st != 1) {
            if (st != 0)
                log_warn("acme", "cancelling order %s: %s", id, err);
            return;
        }
    }
}

int
acme_orders_cancel_for_account(struct acme_ctx *ctx, const char *account_id)
{
    struct store_filter f = {.owner = account_id};
    struct idlist orders = {0};
    struct acme_problem why = {0};
    char err[ERR_LEN] = "";

    acme_problem_set(&why, "unauthorized", 403, "account %s was deactivated", account_id);
    if (store_list(ctx->store, STORE_ORDER, &f, collect, &orders, err) != 0) {
        log_warn("acme", "listing orders of account %s: %s", account_id, err);
        return -1;
    }
    for (size_t i = 0; i < orders.n; i++)
        cancel_order(ctx, orders.ids[i], &why);
    free(orders.ids);
    return 0;
}
