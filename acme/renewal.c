/*
 * renewal.c: ACME Renewal Information (RFC 9773). An unauthenticated GET of
 * renewal-info/<certID>, certID = base64url(AKI keyIdentifier) "."
 * base64url(serial DER content octets), answers the window in which the
 * client should renew: from pol_renewal_start (the template's renewal_window,
 * else the last third of the lifetime) through half of what remains, or a
 * window already past once the certificate is revoked. The certID parser and
 * the window's start serve newOrder `replaces` too (replaces.c).
 */
#include "acme/acme_res_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "policy/policy.h"

/* Splits and decodes certID (ARI-4, ARI-5). 0/-1 (malformed). */
static int
parse_cert_id(const char *id, unsigned char **aki, size_t *aki_len, unsigned char **ser,
              size_t *ser_len)
{
    const char *dot = strchr(id, '.');
    size_t alen, slen;

    *aki = NULL;
    *ser = NULL;
    if (dot == NULL || strchr(dot + 1, '.') != NULL)
        return -1;
    alen = (size_t)(dot - id);
    slen = strlen(dot + 1);
    if (alen == 0 || slen == 0 || alen > ACME_ARI_MAX_PART || slen > ACME_ARI_MAX_PART)
        return -1;
    if (b64u_decode(id, alen, aki, aki_len) != 0 || b64u_decode(dot + 1, slen, ser, ser_len) != 0 ||
        *ser_len == 0 || *ser_len > 20) {
        free(*aki);
        free(*ser);
        *aki = NULL;
        *ser = NULL;
        return -1;
    }
    return 0;
}

/* Finds the record by serial; pki writes hex without the DER sign byte. 0/1/-1. */
static int
load_by_serial(struct acme_ctx *ctx, const unsigned char *ser, size_t len, struct acme_cert *c,
               struct acme_problem *prob)
{
    char hex[41 + 2];
    const char *p;
    int rc;

    hex_encode(ser, len, hex);
    rc = acme_cert_load(ctx, hex, c, prob);
    p = hex;
    while (rc == 1 && p[0] == '0' && p[1] != '\0') {
        p++;
        rc = acme_cert_load(ctx, p, c, prob);
    }
    return rc;
}

/* True when the stored certificate's AKI keyIdentifier is aki. */
static bool
aki_matches(const struct acme_cert *c, const unsigned char *aki, size_t len)
{
    unsigned char *der = NULL;
    size_t dlen = 0;
    char err[ERR_LEN] = "";
    const ASN1_OCTET_STRING *kid;
    X509 *x = NULL;
    bool ok = false;

    if (pki_pem_to_der(c->pem, &der, &dlen) != 0)
        goto out;
    x = pki_cert_parse_der(der, dlen, err);
    if (x == NULL)
        goto out;
    kid = X509_get0_authority_key_id(x);
    ok = kid != NULL && (size_t)ASN1_STRING_length(kid) == len &&
         memcmp(ASN1_STRING_get0_data(kid), aki, len) == 0;
out:
    X509_free(x);
    free(der);
    return ok;
}

int
acme_cert_by_ari_id(struct acme_ctx *ctx, const struct cfg_policy *pol, const char *id,
                    struct acme_cert *c, struct acme_problem *prob)
{
    unsigned char *aki = NULL, *ser = NULL;
    size_t aki_len = 0, ser_len = 0;
    int rc = -1, found;

    memset(c, 0, sizeof(*c));
    if (parse_cert_id(id, &aki, &aki_len, &ser, &ser_len) != 0) {
        acme_problem_set(prob, "malformed", 400, "certID must be base64url(AKI).base64url(serial)");
        goto out;
    }
    found = load_by_serial(ctx, ser, ser_len, c, prob);
    if (found < 0)
        goto out;
    /* Another policy's certificate is as unknown here as one never issued. */
    if (found > 0 || strcmp(c->policy, pol->name) != 0 || !aki_matches(c, aki, aki_len)) {
        acme_problem_set(prob, "malformed", 404, "no such certificate");
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        acme_cert_clear(c);
    free(aki);
    free(ser);
    return rc;
}

int64_t
acme_renewal_start(const struct acme_ctx *ctx, const struct acme_cert *c)
{
    /* The policy's template may set its own window (renewal_window / percent). */
    const struct cfg_policy *pol = cfg_policy_find(ctx->cfg, c->policy);
    const struct cfg_template *tpl =
        pol != NULL && pol->template != NULL ? cfg_template_find(ctx->cfg, pol->template) : NULL;

    return pol_renewal_start(tpl, c->not_before, c->not_after);
}

int
acme_h_renewal_info(struct acme_rq *rq, struct acme_problem *prob)
{
    struct acme_cert c = {0};
    int64_t start, end, life, now = clk_now();
    char buf[32];
    cJSON *body, *win;

    if (acme_cert_by_ari_id(rq->ctx, rq->policy, rq->id1, &c, prob) != 0)
        return -1;
    start = acme_renewal_start(rq->ctx, &c);
    life = c.not_after - start;
    /* Clients pick a random moment in the window: spread them over its first half. */
    end = start + (life > 1 ? life / 2 : 1);
    if (strcmp(c.status, "revoked") == 0) {
        /* Renew now: a window wholly in the past (ARI-7 still holds: end > start). */
        start = now - 2 * 86400;
        end = now - 86400;
    }
    body = cJSON_CreateObject();
    win = cJSON_AddObjectToObject(body, "suggestedWindow");
    cJSON_AddStringToObject(win, "start", clk_fmt_rfc3339(start, buf));
    cJSON_AddStringToObject(win, "end", clk_fmt_rfc3339(end, buf));
    acme_resp_json(rq->resp, 200, body);
    acme_resp_header(rq->resp, "Retry-After", "%d", ACME_RETRY_ARI);
    acme_cert_clear(&c);
    return 0;
}
