/*
 * ctx.c: the protocol context shared by all worker threads, resource URLs and
 * ids. The context is immutable after creation apart from the nonce window
 * and the rate limiter, which lock internally.
 */
#include "acme/acme_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define NONCE_WINDOW ((size_t)1 << 20)
/* Leaves room in ACME_MAX_URL for "/acme/<policy>/<segment>/<id>/<id>". */
#define MAX_BASE_URL 256

const char *const acme_res_path[ACME_RES__MAX] = {
    [ACME_RES_DIRECTORY] = "directory",       [ACME_RES_NEW_NONCE] = "new-nonce",
    [ACME_RES_NEW_ACCOUNT] = "new-account",   [ACME_RES_NEW_ORDER] = "new-order",
    [ACME_RES_REVOKE_CERT] = "revoke-cert",   [ACME_RES_KEY_CHANGE] = "key-change",
    [ACME_RES_RENEWAL_INFO] = "renewal-info", [ACME_RES_ACCOUNT] = "account",
    [ACME_RES_ACCOUNT_ORDERS] = "account",    [ACME_RES_ORDER] = "order",
    [ACME_RES_FINALIZE] = "order",            [ACME_RES_AUTHZ] = "authz",
    [ACME_RES_CHALLENGE] = "chall",           [ACME_RES_CERT] = "cert",
};

struct pki_ca *
acme_policy_ca(const struct acme_ctx *ctx, const struct cfg_policy *pol)
{
    size_t i;

    for (i = 0; i < ctx->ncas; i++) {
        if (ctx->cas[i] != NULL && pol->ca != NULL &&
            strcmp(pki_ca_name(ctx->cas[i]), pol->ca) == 0)
            return ctx->cas[i];
    }
    return NULL;
}

/*
 * Nonces, rate limits and the challenge wait registry outlive a configuration
 * reload: every ctx sharing them holds a ref. Sharing the registry means a
 * waiter and the settlement it waits for meet whichever ctx each runs on
 * (the server settles through the ctx that started a validation, but nothing
 * in acme_validation_done's contract requires it), and since waiters and
 * settlements both hold a ctx, the registry outlives them.
 */
struct acme_state {
    atomic_int refs;
};

static int
state_attach(struct acme_ctx *ctx, const struct acme_deps *deps, char err[ERR_LEN])
{
    const struct acme_ctx *share = deps->share;

    if (share != NULL && share->state != NULL) {
        atomic_fetch_add(&share->state->refs, 1);
        ctx->state = share->state;
        ctx->nonces = share->nonces;
        ctx->rate = share->rate;
        ctx->acct_rate = share->acct_rate;
        ctx->cwait = share->cwait;
        return 0;
    }
    ctx->nonces = acme_nonces_new(NONCE_WINDOW);
    if (ctx->nonces == NULL) {
        snprintf(err, ERR_LEN, "acme: cannot create the nonce key");
        return -1;
    }
    ctx->rate = acme_ratelimit_new();
    ctx->acct_rate = acme_iplimit_new(ACME_IPLIMIT_ENTRIES);
    ctx->cwait = acme_cwait_new(deps->chall_waiters);
    ctx->state = xcalloc(1, sizeof(*ctx->state));
    atomic_init(&ctx->state->refs, 1);
    return 0;
}

static void
state_detach(struct acme_ctx *ctx)
{
    if (ctx->state != NULL && atomic_fetch_sub(&ctx->state->refs, 1) != 1)
        return;
    acme_nonces_free(ctx->nonces);
    acme_ratelimit_free(ctx->rate);
    acme_iplimit_free(ctx->acct_rate);
    acme_cwait_free(ctx->cwait);
    free(ctx->state);
}

size_t
acme_policy_index(const struct acme_ctx *ctx, const struct cfg_policy *pol)
{
    size_t i;

    for (i = 0; pol != NULL && i < ctx->cfg->npolicies; i++) {
        if (&ctx->cfg->policies[i] == pol)
            return i;
    }
    return ctx->cfg->npolicies;
}

/* Each policy's directory document and Link header, asked for on every request. */
static void
ctx_fixed_texts(struct acme_ctx *ctx)
{
    size_t i, n = ctx->cfg->npolicies;
    char *url;

    ctx->dir_body = xcalloc(n + 1, sizeof(*ctx->dir_body));
    ctx->dir_link = xcalloc(n + 1, sizeof(*ctx->dir_link));
    ctx->dir_eab = xcalloc(n + 1, sizeof(*ctx->dir_eab));
    for (i = 0; i < n; i++) {
        const struct cfg_policy *pol = &ctx->cfg->policies[i];
        ctx->dir_body[i] = acme_directory_fmt(ctx, pol);
        ctx->dir_eab[i] = pol->eab_required;
        url = acme_url(ctx, pol->name, ACME_RES_DIRECTORY, NULL, NULL);
        ctx->dir_link[i] = xasprintf("<%s>;rel=\"index\"", url);
        free(url);
    }
}

struct acme_ctx *
acme_ctx_new(const struct acme_deps *deps, char err[ERR_LEN])
{
    struct acme_ctx *ctx = NULL;
    size_t i, blen;

    if (deps == NULL || deps->cfg == NULL || deps->store == NULL || deps->base_url == NULL) {
        snprintf(err, ERR_LEN, "acme: cfg, store and base_url are required");
        return NULL;
    }
    blen = strlen(deps->base_url);
    while (blen > 0 && deps->base_url[blen - 1] == '/')
        blen--;
    if (blen == 0 || blen > MAX_BASE_URL) {
        snprintf(err, ERR_LEN, "acme: base URL empty or longer than %d bytes", MAX_BASE_URL);
        return NULL;
    }
    ctx = xcalloc(1, sizeof(*ctx));
    ctx->cfg = deps->cfg;
    ctx->store = deps->store;
    ctx->cas = deps->cas;
    ctx->ncas = deps->ncas;
    ctx->attest = deps->attest;
    ctx->base_url = xstrndup(deps->base_url, blen);
    ctx->validate = deps->validate;
    ctx->validate_arg = deps->validate_arg;
    ctx->retry_now = deps->retry_now;
    ctx->mdm = deps->mdm;
    ctx->event = deps->event;
    ctx->event_arg = deps->event_arg;
    ctx->defer = deps->defer;
    ctx->defer_arg = deps->defer_arg;
    /* MDM answers arrive on the engine thread and must continue on a worker. */
    if (ctx->mdm != NULL && ctx->defer == NULL) {
        snprintf(err, ERR_LEN, "acme: an MDM engine needs a defer hook");
        goto err;
    }
    for (i = 0; i < ctx->cfg->npolicies; i++) {
        const struct cfg_policy *pol = &ctx->cfg->policies[i];
        if (acme_policy_ca(ctx, pol) == NULL) {
            snprintf(err, ERR_LEN, "acme: policy %s: CA %s is not loaded", pol->name,
                     pol->ca != NULL ? pol->ca : "(none)");
            goto err;
        }
    }
    if (state_attach(ctx, deps, err) != 0)
        goto err;
    ctx->keys = acme_keycache_new();
    ctx_fixed_texts(ctx);
    return ctx;
err:
    acme_ctx_free(ctx);
    return NULL;
}

void
acme_ctx_free(struct acme_ctx *ctx)
{
    size_t i;

    if (ctx == NULL)
        return;
    state_detach(ctx);
    acme_keycache_free(ctx->keys);
    for (i = 0; i < ctx->cfg->npolicies; i++) {
        free(ctx->dir_body != NULL ? ctx->dir_body[i] : NULL);
        free(ctx->dir_link != NULL ? ctx->dir_link[i] : NULL);
    }
    free(ctx->dir_body);
    free(ctx->dir_link);
    free(ctx->dir_eab);
    free(ctx->base_url);
    free(ctx);
}

char *
acme_url(const struct acme_ctx *ctx, const char *policy, enum acme_res res, const char *id1,
         const char *id2)
{
    struct buf b = {0};

    buf_printf(&b, "%s/acme/%s/%s", ctx->base_url, policy, acme_res_path[res]);
    if (id1 != NULL && id1[0] != '\0') {
        buf_printf(&b, "/%s", id1);
        if (res == ACME_RES_ACCOUNT_ORDERS)
            buf_puts(&b, "/orders");
        else if (res == ACME_RES_FINALIZE)
            buf_puts(&b, "/finalize");
        else if (id2 != NULL && id2[0] != '\0')
            buf_printf(&b, "/%s", id2);
    }
    return buf_take(&b);
}

int
acme_new_id(char out[ACME_MAX_ID])
{
    unsigned char raw[16];
    char *s;

    if (rand_bytes(raw, sizeof(raw)) != 0)
        return -1;
    s = b64u_encode(raw, sizeof(raw));
    snprintf(out, ACME_MAX_ID, "%s", s);
    free(s);
    return 0;
}

char **
acme_directory_urls(const struct acme_ctx *ctx, size_t *n)
{
    char **urls = xcalloc(ctx->cfg->npolicies + 1, sizeof(*urls));
    size_t i;

    for (i = 0; i < ctx->cfg->npolicies; i++)
        urls[i] = acme_url(ctx, ctx->cfg->policies[i].name, ACME_RES_DIRECTORY, NULL, NULL);
    *n = ctx->cfg->npolicies;
    return urls;
}
