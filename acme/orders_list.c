/*
 * orders_list.c: the account's orders list (RFC 8555 §7.1.2.1), newest first
 * in pages of ACME_ORDERS_PAGE, each but the last with
 * `Link: <…/orders?cursor=…>;rel="next"` (L-3).
 *
 * A cursor is the (created, id) of the last order its page covered, and the
 * next page lists the orders after it (keyset paging): orders made between
 * pages sort before every cursor, so nothing shifts and each order is listed
 * once. The cursor names only a position among the caller's own orders (the
 * owner filter applies whatever it says), so altering it cannot reach other
 * data; strict decoding is all the protection it needs.
 */
#include "acme/acme_res_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Cursor text before base64url: "<created>.<id>" (ids have no '.'). */
char *
acme_cursor_fmt(const struct acme_cursor *c)
{
    char text[24 + ACME_MAX_ID];
    int n = snprintf(text, sizeof(text), "%lld.%s", (long long)c->created, c->id);

    return b64u_encode(text, n > 0 ? (size_t)n : 0);
}

int
acme_cursor_parse(const char *s, struct acme_cursor *out, struct acme_problem *prob)
{
    size_t n = s != NULL ? strnlen(s, ACME_MAX_CURSOR + 1) : 0, ndig;
    unsigned char *raw = NULL;
    const char *text, *dot;
    char num[24];
    long long created;
    size_t len = 0;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (n == 0 || n > ACME_MAX_CURSOR || b64u_decode(s, n, &raw, &len) != 0)
        goto out;
    text = (const char *)raw;
    dot = memchr(text, '.', len);
    ndig = dot != NULL ? (size_t)(dot - text) : 0;
    /* Exactly what acme_cursor_fmt writes: digits without sign or leading zero, then an id. */
    if (ndig == 0 || ndig >= sizeof(num) || strspn(text, "0123456789") != ndig ||
        (text[0] == '0' && ndig > 1))
        goto out;
    memcpy(num, text, ndig);
    num[ndig] = '\0';
    if (str_to_ll(num, 0, INT64_MAX, &created) != 0 ||
        !acme_id_is_valid(dot + 1, len - ndig - 1, false))
        goto out;
    out->created = created;
    memcpy(out->id, dot + 1, len - ndig - 1);
    rc = 0;
out:
    if (rc != 0)
        acme_problem_set(prob, "malformed", 400, "malformed orders list cursor");
    free(raw);
    return rc;
}

/* The list URL's query: 0 none, 1 a cursor (*c), -1 anything else (malformed). */
static int
read_query(const char *q, struct acme_cursor *c, struct acme_problem *prob)
{
    static const char name[] = "cursor=";

    if (q == NULL || q[0] == '\0')
        return 0;
    if (strncmp(q, name, sizeof(name) - 1) != 0) {
        acme_problem_set(prob, "malformed", 400, "the orders list takes only a cursor parameter");
        return -1;
    }
    return acme_cursor_parse(q + sizeof(name) - 1, c, prob) == 0 ? 1 : -1;
}

struct page {
    struct acme_ctx *ctx;
    const char *policy;
    cJSON *arr;
    size_t listed, read;
    struct acme_cursor last; /* the last row this page covers */
    bool more;
};

/* L-2: invalid orders, and unfinished ones past their expiry, are not listed. */
static bool
is_listed(const struct store_rec *rec)
{
    bool unfinished;

    if (rec->status == NULL || strcmp(rec->status, "invalid") == 0)
        return false;
    unfinished = strcmp(rec->status, "pending") == 0 || strcmp(rec->status, "ready") == 0;
    return !unfinished || clk_now() <= rec->expires;
}

static int
page_one(void *arg, const struct store_rec *rec)
{
    struct page *pg = arg;
    bool listed = is_listed(rec);
    char *url;

    if (listed && pg->listed == ACME_ORDERS_PAGE) {
        pg->more = true; /* the next page starts with this row */
        return 1;
    }
    pg->read++;
    pg->last.created = rec->created;
    acme_strlcpy(pg->last.id, rec->id, sizeof(pg->last.id));
    if (!listed)
        return 0;
    url = acme_url(pg->ctx, pg->policy, ACME_RES_ORDER, rec->id, NULL);
    cJSON_AddItemToArray(pg->arr, cJSON_CreateString(url));
    free(url);
    pg->listed++;
    return 0;
}

int
acme_h_account_orders(struct acme_rq *rq, struct acme_problem *prob)
{
    struct store_filter f = {.owner = rq->acct.id, .limit = ACME_ORDERS_SCAN, .newest_first = true};
    struct page pg = {.ctx = rq->ctx, .policy = rq->policy->name};
    struct acme_cursor from;
    char err[ERR_LEN] = "", *url, *tok;
    cJSON *body;
    int has;

    if (strcmp(rq->id1, rq->acct.id) != 0) {
        acme_problem_set(prob, "unauthorized", 403, "orders of another account");
        return -1;
    }
    has = read_query(rq->req->query, &from, prob);
    if (has < 0)
        return -1;
    if (has > 0) {
        f.after_id = from.id;
        f.after_created = from.created;
    }
    body = cJSON_CreateObject();
    pg.arr = cJSON_AddArrayToObject(body, "orders");
    if (store_list(rq->ctx->store, STORE_ORDER, &f, page_one, &pg, err) != 0) {
        cJSON_Delete(body);
        acme_store_problem(prob, "listing orders", err);
        return -1;
    }
    acme_resp_json(rq->resp, 200, body);
    /* A page the scan bound ended (many unlisted orders) may have more behind it. */
    if (!pg.more && pg.read < ACME_ORDERS_SCAN)
        return 0;
    url = acme_url(rq->ctx, rq->policy->name, ACME_RES_ACCOUNT_ORDERS, rq->acct.id, NULL);
    tok = acme_cursor_fmt(&pg.last);
    acme_resp_header(rq->resp, "Link", "<%s?cursor=%s>;rel=\"next\"", url, tok);
    free(tok);
    free(url);
    return 0;
}
