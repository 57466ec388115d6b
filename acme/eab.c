/*
 * eab.c: external account binding (RFC 8555 §7.3.4). The binding is a
 * flattened JWS MACed (HS256) with a key the operator handed out; STORE_EAB
 * rows hold {"key":"<b64u>"} under the key id, status "unused" or "bound".
 * MAC keys are wiped after use and never logged.
 */
#include "acme/acme_int.h"

#include <string.h>

/* shape and protected header of the binding; *kid borrowed from *hdr. */
static int
eab_header(const cJSON *eab, const struct acme_jws *jws, cJSON **hdr, const char **kid,
           struct acme_problem *prob)
{
    const char *ph = acme_json_str(eab, "protected"), *alg, *url;
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    int rc = -1;

    if (!cJSON_IsObject(eab) || cJSON_GetArraySize(eab) != 3 || ph == NULL ||
        acme_json_str(eab, "payload") == NULL || acme_json_str(eab, "signature") == NULL) {
        acme_problem_set(prob, "malformed", 400,
                         "externalAccountBinding must be a flattened JWS");
        goto out;
    }
    if (b64u_decode(ph, strlen(ph), &raw, &rawlen) == 0 && rawlen > 0)
        *hdr = acme_json_parse((const char *)raw, rawlen, prob);
    if (!cJSON_IsObject(*hdr)) {
        acme_problem_set(prob, "malformed", 400, "externalAccountBinding header unreadable");
        goto out;
    }
    alg = acme_json_str(*hdr, "alg");
    url = acme_json_str(*hdr, "url");
    *kid = acme_json_str(*hdr, "kid");
    if (alg == NULL || strcmp(alg, "HS256") != 0) {
        acme_problem_set(prob, "malformed", 400, "externalAccountBinding alg must be HS256");
        goto out;
    }
    if (*kid == NULL || (*kid)[0] == '\0' || strlen(*kid) > 128 ||
        cJSON_GetObjectItemCaseSensitive(*hdr, "nonce") != NULL) {
        acme_problem_set(prob, "malformed", 400,
                         "externalAccountBinding needs a kid and no nonce");
        goto out;
    }
    if (url == NULL || strcmp(url, jws->url) != 0) {
        acme_problem_set(prob, "unauthorized", 401,
                         "externalAccountBinding url differs from the request url");
        goto out;
    }
    rc = 0;
out:
    free(raw);
    return rc;
}

/* the payload is the account key (compared as keys, not as text). */
static int
eab_payload(const cJSON *eab, const struct acme_jws *jws, struct acme_problem *prob)
{
    const char *pl = acme_json_str(eab, "payload");
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    cJSON *jwk = NULL;
    EVP_PKEY *key = NULL;
    int rc = -1;

    if (b64u_decode(pl, strlen(pl), &raw, &rawlen) != 0 || rawlen == 0) {
        acme_problem_set(prob, "malformed", 400, "externalAccountBinding payload unreadable");
        goto out;
    }
    jwk = acme_json_parse((const char *)raw, rawlen, prob);
    if (jwk == NULL)
        goto out;
    key = acme_jwk_to_key(jwk, prob);
    if (key == NULL)
        goto out;
    if (!pki_key_equal(key, jws->key)) {
        acme_problem_set(prob, "unauthorized", 401,
                         "externalAccountBinding binds another key");
        goto out;
    }
    rc = 0;
out:
    EVP_PKEY_free(key);
    cJSON_Delete(jwk);
    free(raw);
    return rc;
}

/* the MAC over "protected.payload" with the record's key. */
static int
eab_mac(const cJSON *eab, const struct store_rec *rec, struct acme_problem *prob)
{
    cJSON *data = rec->data != NULL ? cJSON_Parse(rec->data) : NULL;
    const char *kb64 = acme_json_str(data, "key"), *sig = acme_json_str(eab, "signature");
    unsigned char *key = NULL, *mac = NULL, want[32];
    size_t keylen = 0, maclen = 0;
    char *input = NULL;
    int rc = -1;

    if (kb64 == NULL || b64u_decode(kb64, strlen(kb64), &key, &keylen) != 0 || keylen == 0) {
        log_err("acme", "EAB record %s has no usable key", rec->id);
        acme_problem_set(prob, "serverInternal", 500, "external account key unusable");
        goto out;
    }
    input = xasprintf("%s.%s", acme_json_str(eab, "protected"), acme_json_str(eab, "payload"));
    if (pki_hmac_sha256(key, keylen, input, strlen(input), want) != 0) {
        acme_problem_set(prob, "serverInternal", 500, "HMAC failed");
        goto out;
    }
    if (b64u_decode(sig, strlen(sig), &mac, &maclen) != 0 || maclen != sizeof(want) ||
        !ct_equal(mac, want, sizeof(want))) {
        acme_problem_set(prob, "unauthorized", 401, "externalAccountBinding MAC is invalid");
        goto out;
    }
    rc = 0;
out:
    if (key != NULL)
        secure_wipe(key, keylen);
    free(key);
    secure_wipe(want, sizeof(want));
    free(mac);
    free(input);
    if (data != NULL) {
        if (kb64 != NULL)
            secure_wipe((void *)kb64, strlen(kb64));
        cJSON_Delete(data);
    }
    return rc;
}

int
acme_eab_verify(struct acme_ctx *ctx, const cJSON *eab, const struct acme_jws *jws,
                struct store_rec *eab_rec, struct acme_problem *prob)
{
    cJSON *hdr = NULL;
    const char *kid = NULL;
    char err[ERR_LEN] = "";
    int rc = -1, st;

    memset(eab_rec, 0, sizeof(*eab_rec));
    if (eab_header(eab, jws, &hdr, &kid, prob) != 0 || eab_payload(eab, jws, prob) != 0)
        goto out;
    st = store_get(ctx->store, STORE_EAB, kid, eab_rec, err);
    if (st < 0) {
        log_err("acme", "EAB read: %s", err);
        acme_problem_set(prob, "serverInternal", 500, "storage error");
        goto out;
    }
    if (st == 1 || eab_rec->status == NULL || strcmp(eab_rec->status, "unused") != 0) {
        /* Unknown and already-bound key ids answer alike: nothing to probe. */
        acme_problem_set(prob, "unauthorized", 401, "external account key unknown or used");
        goto out;
    }
    if (eab_mac(eab, eab_rec, prob) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0) {
        if (eab_rec->data != NULL)
            secure_wipe(eab_rec->data, strlen(eab_rec->data));
        store_rec_clear(eab_rec);
    }
    cJSON_Delete(hdr);
    return rc;
}
