/*
 * router.c: maps a request to a resource of a policy, authenticates POSTs
 * (RFC 8555 §6.2-§6.5) and adds the headers every answer carries. Handlers
 * only see requests that passed every check documented in acme_int.h.
 */
#include "acme/acme_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_COMPONENTS 4

/* How each resource's path looks after "/acme/<policy>/". */
static const struct route {
    enum acme_res res;
    size_t nids;
    const char *suffix; /* fixed last component, or NULL */
} routes[] = {
    {ACME_RES_DIRECTORY, 0, NULL},   {ACME_RES_NEW_NONCE, 0, NULL},
    {ACME_RES_NEW_ACCOUNT, 0, NULL}, {ACME_RES_NEW_ORDER, 0, NULL},
    {ACME_RES_REVOKE_CERT, 0, NULL}, {ACME_RES_KEY_CHANGE, 0, NULL},
    {ACME_RES_RENEWAL_INFO, 1, NULL}, {ACME_RES_ACCOUNT, 1, NULL},
    {ACME_RES_ACCOUNT_ORDERS, 1, "orders"}, {ACME_RES_ORDER, 1, NULL},
    {ACME_RES_FINALIZE, 1, "finalize"}, {ACME_RES_AUTHZ, 1, NULL},
    {ACME_RES_CHALLENGE, 2, NULL},   {ACME_RES_CERT, 1, NULL},
};
_Static_assert(nitems(routes) == ACME_RES__MAX, "one route per resource");

static acme_handler_fn *const handlers[ACME_RES__MAX] = {
    [ACME_RES_DIRECTORY] = acme_h_directory,
    [ACME_RES_NEW_NONCE] = acme_h_new_nonce,
    [ACME_RES_NEW_ACCOUNT] = acme_h_new_account,
    [ACME_RES_NEW_ORDER] = acme_h_new_order,
    [ACME_RES_REVOKE_CERT] = acme_h_revoke_cert,
    [ACME_RES_KEY_CHANGE] = acme_h_key_change,
    [ACME_RES_RENEWAL_INFO] = acme_h_renewal_info,
    [ACME_RES_ACCOUNT] = acme_h_account,
    [ACME_RES_ACCOUNT_ORDERS] = acme_h_account_orders,
    [ACME_RES_ORDER] = acme_h_order,
    [ACME_RES_FINALIZE] = acme_h_finalize,
    [ACME_RES_AUTHZ] = acme_h_authz,
    [ACME_RES_CHALLENGE] = acme_h_challenge,
    [ACME_RES_CERT] = acme_h_cert,
};

/* Ids are base64url; renewalInfo ids are "<b64u AKI>.<b64u serial>" (RFC 9773 §4.1). */
bool
acme_id_is_valid(const char *s, size_t len, bool allow_dot)
{
    size_t i;

    if (len == 0 || len > ACME_MAX_ID - 1)
        return false;
    for (i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || (allow_dot && c == '.');
        if (!ok)
            return false;
    }
    return true;
}

/* Splits s on '/' into at most max views; empty components fail. Count or -1. */
static int
split_path(const char *s, struct slice *comp, size_t max)
{
    size_t n = 0;
    const char *slash;

    for (;;) {
        if (n == max)
            return -1;
        slash = strchr(s, '/');
        comp[n].p = (const unsigned char *)s;
        comp[n].len = slash != NULL ? (size_t)(slash - s) : strlen(s);
        if (comp[n].len == 0)
            return -1;
        n++;
        if (slash == NULL)
            return (int)n;
        s = slash + 1;
    }
}

static bool
slice_is(const struct slice *sl, const char *s)
{
    return sl->len == strlen(s) && memcmp(sl->p, s, sl->len) == 0;
}

/*
 * The URL the client must have signed (RFC 8555 §6.4): the resource's, plus
 * the query for the orders list, whose next-page links carry one (L-3).
 * Other resources ignore a query, as they always did. 0, or -1 (malformed)
 * when it does not fit.
 */
static int
route_url(struct acme_rq *rq, struct acme_problem *prob)
{
    const char *q = rq->req->query;
    char *url = acme_url(rq->ctx, rq->policy->name, rq->res, rq->id1, rq->id2);
    bool with_query = rq->res == ACME_RES_ACCOUNT_ORDERS && q != NULL && q[0] != '\0';
    int n = snprintf(rq->url, sizeof(rq->url), "%s%s%s", url, with_query ? "?" : "",
                     with_query ? q : "");

    free(url);
    if (n < 0 || (size_t)n >= sizeof(rq->url)) {
        acme_problem_set(prob, "malformed", 400, "request URL too long");
        return -1;
    }
    return 0;
}

/*
 * Fills rq->policy, res, ids and (with_url; acme_is_fast needs none) url from
 * the path. 0, or -1 with a 404 problem (400 for an over-long URL).
 */
static int
route(struct acme_rq *rq, bool with_url, struct acme_problem *prob)
{
    struct slice comp[MAX_COMPONENTS + 1];
    char policy[64];
    const char *path = rq->req->path, *p;
    int n;
    size_t i;

    if (path == NULL || strncmp(path, "/acme/", 6) != 0)
        goto notfound;
    p = path + 6;
    n = split_path(p, comp, nitems(comp));
    if (n < 2 || comp[0].len >= sizeof(policy))
        goto notfound;
    memcpy(policy, comp[0].p, comp[0].len);
    policy[comp[0].len] = '\0';
    rq->policy = cfg_policy_find(rq->ctx->cfg, policy);
    if (rq->policy == NULL)
        goto notfound;
    for (i = 0; i < nitems(routes); i++) {
        const struct route *r = &routes[i];
        size_t want = 1 + r->nids + (r->suffix != NULL ? 1 : 0);
        bool dot = r->res == ACME_RES_RENEWAL_INFO;
        if ((size_t)n - 1 != want || !slice_is(&comp[1], acme_res_path[r->res]))
            continue;
        if (r->suffix != NULL && !slice_is(&comp[n - 1], r->suffix))
            continue;
        if (r->nids >= 1 && !acme_id_is_valid((const char *)comp[2].p, comp[2].len, dot))
            goto notfound;
        if (r->nids == 2 && !acme_id_is_valid((const char *)comp[3].p, comp[3].len, false))
            goto notfound;
        rq->res = r->res;
        if (r->nids >= 1)
            snprintf(rq->id1, sizeof(rq->id1), "%.*s", (int)comp[2].len, comp[2].p);
        if (r->nids == 2)
            snprintf(rq->id2, sizeof(rq->id2), "%.*s", (int)comp[3].len, comp[3].p);
        if (!with_url)
            return 0;
        return route_url(rq, prob);
    }
notfound:
    rq->policy = NULL;
    acme_problem_set(prob, "malformed", 404, "no such resource");
    return -1;
}

/* J-12: the media type, ignoring parameters and case. */
static bool
is_jose_json(const char *ct)
{
    static const char want[] = "application/jose+json";
    size_t n = sizeof(want) - 1;

    if (ct == NULL || strncasecmp(ct, want, n) != 0)
        return false;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t';
}

/* J-9: kid must be an account URL of this policy that we published. */
static int
load_kid_account(struct acme_rq *rq, struct acme_problem *prob)
{
    char *prefix = acme_url(rq->ctx, rq->policy->name, ACME_RES_ACCOUNT, NULL, NULL);
    size_t plen = strlen(prefix);
    const char *kid = rq->jws.kid, *id;
    int rc = -1, found;

    if (strncmp(kid, prefix, plen) != 0 || kid[plen] != '/') {
        acme_problem_set(prob, "accountDoesNotExist", 400, "kid is not an account URL of %s",
                         rq->policy->name);
        goto out;
    }
    id = kid + plen + 1;
    if (!acme_id_is_valid(id, strlen(id), false)) {
        acme_problem_set(prob, "accountDoesNotExist", 400, "kid is not an account URL");
        goto out;
    }
    found = acme_account_load(rq->ctx, id, &rq->acct, prob);
    if (found < 0)
        goto out;
    if (found == 1 || strcmp(rq->acct.policy, rq->policy->name) != 0) {
        acme_problem_set(prob, "accountDoesNotExist", 400, "no such account");
        goto out;
    }
    rq->has_acct = true;
    rc = 0;
out:
    free(prefix);
    return rc;
}

/*
 * Verifies the JWS with the kid account's stored key, parsed once per key text
 * (ctx->keys). The stored thumbprint goes in first so acme_jws_verify does
 * not recompute it from the key.
 */
static int
verify_with_account(struct acme_rq *rq, struct acme_problem *prob)
{
    EVP_PKEY *key = acme_keycache_get(rq->ctx->keys, rq->acct.jwk_json, prob);
    int rc = -1;

    if (key == NULL)
        goto out;
    snprintf(rq->jws.thumbprint, sizeof(rq->jws.thumbprint), "%s", rq->acct.thumbprint);
    if (acme_jws_verify(&rq->jws, key, prob) != 0)
        goto out;
    if (strcmp(rq->acct.status, "valid") != 0) {
        acme_problem_set(prob, "unauthorized", 401, "account is %s", rq->acct.status);
        goto out;
    }
    rc = 0;
out:
    EVP_PKEY_free(key);
    return rc;
}

/* Everything between "a POST arrived" and "the handler may act on it". */
static int
authenticate(struct acme_rq *rq, struct acme_problem *prob)
{
    const struct acme_request *req = rq->req;
    bool nonce_ok, want_jwk, want_kid;
    int rc;

    if (!is_jose_json(req->content_type)) {
        acme_problem_set(prob, "malformed", 415, "Content-Type must be application/jose+json");
        return -1;
    }
    if (req->body_len > rq->ctx->cfg->server.max_body) {
        acme_problem_set(prob, "malformed", 413, "body larger than %zu bytes",
                         rq->ctx->cfg->server.max_body);
        return -1;
    }
    rc = acme_jws_parse_depth(req->body, req->body_len, 0, rq->ctx->cfg->acme.max_json_depth,
                              &rq->jws, prob);
    /* N-3: a nonce is spent the first time it is seen, whatever happens next. */
    nonce_ok = rq->jws.nonce != NULL && acme_nonce_consume(rq->ctx->nonces, rq->jws.nonce);
    if (rc != 0)
        return -1;
    if (!nonce_ok) {
        acme_problem_set(prob, "badNonce", 400, "nonce unknown or already used");
        return -1;
    }
    if (strcmp(rq->jws.url, rq->url) != 0) {
        acme_problem_set(prob, "unauthorized", 401, "JWS url does not match the request URL");
        return -1;
    }
    want_jwk = rq->res == ACME_RES_NEW_ACCOUNT;
    want_kid = !want_jwk && rq->res != ACME_RES_REVOKE_CERT;
    if ((want_jwk && rq->jws.jwk == NULL) || (want_kid && rq->jws.kid == NULL)) {
        acme_problem_set(prob, "malformed", 400, "%s requests must be signed with %s",
                         acme_res_path[rq->res], want_jwk ? "jwk" : "kid");
        return -1;
    }
    if (rq->jws.kid != NULL) {
        if (load_kid_account(rq, prob) != 0)
            return -1;
        return verify_with_account(rq, prob);
    }
    if (acme_jws_key_from_jwk(&rq->jws, prob) != 0)
        return -1;
    return acme_jws_verify(&rq->jws, rq->jws.key, prob);
}

static bool
get_allowed(enum acme_res res)
{
    return res == ACME_RES_DIRECTORY || res == ACME_RES_NEW_NONCE ||
           res == ACME_RES_RENEWAL_INFO;
}

static int
dispatch(struct acme_rq *rq, struct acme_problem *prob)
{
    const char *m = rq->req->method != NULL ? rq->req->method : "";
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;

    if (get && get_allowed(rq->res))
        return handlers[rq->res](rq, prob);
    if (strcmp(m, "POST") != 0) {
        acme_resp_header(rq->resp, "Allow", "%s",
                         get_allowed(rq->res) ? "GET, HEAD, POST" : "POST");
        acme_problem_set(prob, "malformed", 405, "%s needs POST (POST-as-GET to read)",
                         acme_res_path[rq->res]);
        return -1;
    }
    if (authenticate(rq, prob) != 0 || acme_terms_check(rq, prob) != 0)
        return -1;
    return handlers[rq->res](rq, prob);
}

/* N-1/N-5, D-6, N-10, T-3: headers on every answer, problems included. */
static void
add_common_headers(struct acme_rq *rq)
{
    const struct acme_ctx *ctx = rq->ctx;
    size_t i = acme_policy_index(ctx, rq->policy);
    char *dir;

    /* a fresh single-use nonce on every answer; the value passes to resp as is */
    acme_resp_header_take(rq->resp, "Replay-Nonce", acme_nonce_issue(ctx->nonces));
    if (rq->policy != NULL && rq->res != ACME_RES_DIRECTORY && i < ctx->cfg->npolicies &&
        ctx->dir_link != NULL) {
        acme_resp_header_take(rq->resp, "Link", xstrdup(ctx->dir_link[i]));
    } else if (rq->policy != NULL && rq->res != ACME_RES_DIRECTORY) {
        dir = acme_url(ctx, rq->policy->name, ACME_RES_DIRECTORY, NULL, NULL);
        acme_resp_header(rq->resp, "Link", "<%s>;rel=\"index\"", dir);
        free(dir);
    }
    if (rq->policy != NULL && rq->res == ACME_RES_NEW_NONCE)
        acme_resp_header(rq->resp, "Cache-Control", "no-store");
    acme_resp_header(rq->resp, "Access-Control-Allow-Origin", "*");
}

void
acme_handle(struct acme_ctx *ctx, const struct acme_request *req, struct acme_response *resp)
{
    struct acme_rq rq;
    struct acme_problem prob;
    char esc[ACME_DETAIL_LEN];
    char epath[128];

    memset(&rq, 0, sizeof(rq));
    memset(&prob, 0, sizeof(prob));
    memset(resp, 0, sizeof(*resp));
    rq.ctx = ctx;
    rq.req = req;
    rq.resp = resp;
    if (route(&rq, true, &prob) != 0 || dispatch(&rq, &prob) != 0) {
        log_debug("acme", "%s %s: %d %s: %s", req->method != NULL ? req->method : "-",
                  log_escape(req->path != NULL ? req->path : "-", 100, epath, sizeof(epath)),
                  prob.status, prob.type != NULL ? prob.type : "serverInternal",
                  log_escape(prob.detail, sizeof(prob.detail), esc, sizeof(esc)));
        acme_problem_respond(&prob, resp);
    }
    add_common_headers(&rq);
    acme_jws_clear(&rq.jws);
    acme_account_clear(&rq.acct);
}

void
acme_respond_problem(struct acme_ctx *ctx, const struct acme_request *req,
                     const struct acme_problem *prob, struct acme_response *resp)
{
    struct acme_rq rq;
    struct acme_problem ignored;

    memset(&rq, 0, sizeof(rq));
    memset(&ignored, 0, sizeof(ignored));
    memset(resp, 0, sizeof(*resp));
    rq.ctx = ctx;
    rq.req = req;
    rq.resp = resp;
    if (route(&rq, true, &ignored) != 0)
        rq.policy = NULL; /* no Link for a path outside every directory */
    acme_problem_respond(prob, resp);
    add_common_headers(&rq);
}

bool
acme_is_fast(const struct acme_ctx *ctx, const struct acme_request *req)
{
    struct acme_rq rq;
    struct acme_problem prob;
    const char *m = req->method != NULL ? req->method : "";

    memset(&rq, 0, sizeof(rq));
    memset(&prob, 0, sizeof(prob));
    rq.ctx = (struct acme_ctx *)ctx;
    rq.req = req;
    if (route(&rq, false, &prob) != 0)
        return true;
    if (strcmp(m, "POST") == 0)
        return false;
    /* GET of renewalInfo reads certificates; every other non-POST is answered from memory. */
    return rq.res != ACME_RES_RENEWAL_INFO;
}
