/*
 * jws.c: flattened JWS parsing and verification for ACME requests
 * (RFC 7515 §7.2.2, RFC 8555 §6.2). Parsing is strict and happens before any
 * crypto; verification is delegated to pki/.
 */
#include "acme/acme_int.h"

#include <string.h>

/* Decodes a base64url member of obj into a NUL-terminated buffer. */
static int
b64u_member(const cJSON *obj, const char *name, unsigned char **out, size_t *outlen,
            struct acme_problem *prob)
{
    const char *s = acme_json_str(obj, name);

    if (s == NULL) {
        acme_problem_set(prob, "malformed", 400, "JWS member %s missing or not a string", name);
        return -1;
    }
    if (b64u_decode(s, strlen(s), out, outlen) != 0) {
        acme_problem_set(prob, "malformed", 400, "JWS member %s is not unpadded base64url",
                         name);
        return -1;
    }
    return 0;
}

/* J-2/J-3: exactly protected, payload and signature, all strings. */
static int
check_members(const cJSON *root, struct acme_problem *prob)
{
    const cJSON *c;
    size_t n = 0;

    if (!cJSON_IsObject(root)) {
        acme_problem_set(prob, "malformed", 400, "body is not a flattened JWS object");
        return -1;
    }
    for (c = root->child; c != NULL; c = c->next) {
        if (strcmp(c->string, "protected") != 0 && strcmp(c->string, "payload") != 0 &&
            strcmp(c->string, "signature") != 0) {
            acme_problem_set(prob, "malformed", 400,
                             "JWS member \"%.40s\" not allowed (flattened JWS, protected "
                             "header only)", c->string);
            return -1;
        }
        if (!cJSON_IsString(c)) {
            acme_problem_set(prob, "malformed", 400, "JWS member %s is not a string", c->string);
            return -1;
        }
        n++;
    }
    if (n != 3) {
        acme_problem_set(prob, "malformed", 400, "JWS needs protected, payload and signature");
        return -1;
    }
    return 0;
}

/* N-4/N-7: present (badNonce otherwise) and base64url (malformed otherwise); none inside. */
static int
check_nonce(struct acme_jws *out, unsigned flags, struct acme_problem *prob)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(out->protected, "nonce");
    unsigned char *raw = NULL;
    size_t rawlen = 0;

    if ((flags & ACME_JWS_INNER) != 0 && it != NULL) {
        acme_problem_set(prob, "malformed", 400, "inner JWS must not carry a nonce");
        return -1;
    }
    if ((flags & ACME_JWS_INNER) == 0) {
        if (it == NULL) {
            acme_problem_set(prob, "badNonce", 400, "protected header lacks nonce");
            return -1;
        }
        if (!cJSON_IsString(it) || it->valuestring[0] == '\0' ||
            b64u_decode(it->valuestring, strlen(it->valuestring), &raw, &rawlen) != 0) {
            acme_problem_set(prob, "malformed", 400, "nonce is not base64url");
            return -1;
        }
        free(raw);
        out->nonce = it->valuestring;
    }
    return 0;
}

/* J-4/J-5/J-7, U-3: the protected header's members. */
static int
check_header(struct acme_jws *out, unsigned flags, struct acme_problem *prob)
{
    const cJSON *h = out->protected, *it;
    const char *alg = acme_json_str(h, "alg");

    /* The nonce first, so the router can spend it whatever fails next (N-3). */
    if (check_nonce(out, flags, prob) != 0)
        return -1;
    if (alg == NULL) {
        acme_problem_set(prob, "malformed", 400, "protected header lacks alg");
        return -1;
    }
    if (pki_jws_alg_parse(alg, &out->alg) != 0) {
        acme_problem_set(prob, "badSignatureAlgorithm", 400, "alg %.32s is not accepted", alg);
        return -1;
    }
    it = cJSON_GetObjectItemCaseSensitive(h, "url");
    if (!cJSON_IsString(it) || strlen(it->valuestring) >= ACME_MAX_URL) {
        acme_problem_set(prob, "malformed", 400, "protected header url missing or invalid");
        return -1;
    }
    out->url = it->valuestring;
    /* RFC 7797 and extensions we do not understand are refused outright. */
    if (cJSON_GetObjectItemCaseSensitive(h, "crit") != NULL ||
        cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(h, "b64"))) {
        acme_problem_set(prob, "malformed", 400, "crit and b64:false are not supported");
        return -1;
    }
    it = cJSON_GetObjectItemCaseSensitive(h, "kid");
    if (it != NULL && !cJSON_IsString(it)) {
        acme_problem_set(prob, "malformed", 400, "kid is not a string");
        return -1;
    }
    out->kid = it != NULL ? it->valuestring : NULL;
    it = cJSON_GetObjectItemCaseSensitive(h, "jwk");
    if (it != NULL && !cJSON_IsObject(it)) {
        acme_problem_set(prob, "malformed", 400, "jwk is not an object");
        return -1;
    }
    out->jwk = it;
    if ((out->kid != NULL) == (out->jwk != NULL)) {
        acme_problem_set(prob, "malformed", 400, "protected header needs exactly one of jwk, kid");
        return -1;
    }
    if ((flags & ACME_JWS_INNER) != 0 && out->jwk == NULL) {
        acme_problem_set(prob, "malformed", 400, "inner JWS must carry jwk");
        return -1;
    }
    return 0;
}

/* Decodes the payload: "" is POST-as-GET, anything else must be a JSON object. */
static int
decode_payload(const cJSON *root, int max_depth, struct acme_jws *out, struct acme_problem *prob)
{
    unsigned char *raw = NULL;
    size_t len = 0;

    if (b64u_member(root, "payload", &raw, &len, prob) != 0)
        return -1;
    out->payload_raw = (char *)raw;
    out->payload_len = len;
    if (len == 0) {
        out->post_as_get = true;
        return 0;
    }
    out->payload = acme_json_parse_depth(out->payload_raw, len, max_depth, prob);
    if (out->payload == NULL)
        return -1;
    if (!cJSON_IsObject(out->payload)) {
        acme_problem_set(prob, "malformed", 400, "JWS payload is not a JSON object");
        return -1;
    }
    return 0;
}

int
acme_jws_parse_ex(const unsigned char *body, size_t len, unsigned flags, struct acme_jws *out,
                  struct acme_problem *prob)
{
    return acme_jws_parse_depth(body, len, flags, ACME_MAX_JSON_DEPTH, out, prob);
}

int
acme_jws_parse_depth(const unsigned char *body, size_t len, unsigned flags, int max_depth,
                     struct acme_jws *out, struct acme_problem *prob)
{
    cJSON *root = NULL;
    unsigned char *hdr = NULL;
    size_t hdrlen = 0;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (len > ACME_MAX_JWS) {
        acme_problem_set(prob, "malformed", 413, "JWS larger than %d bytes", ACME_MAX_JWS);
        goto out;
    }
    root = acme_json_parse_depth((const char *)body, len, max_depth, prob);
    if (root == NULL || check_members(root, prob) != 0)
        goto out;
    if (b64u_member(root, "protected", &hdr, &hdrlen, prob) != 0)
        goto out;
    out->protected = acme_json_parse_depth((const char *)hdr, hdrlen, max_depth, prob);
    if (out->protected == NULL)
        goto out;
    if (!cJSON_IsObject(out->protected)) {
        acme_problem_set(prob, "malformed", 400, "protected header is not a JSON object");
        goto out;
    }
    if (check_header(out, flags, prob) != 0)
        goto out;
    if (decode_payload(root, max_depth, out, prob) != 0)
        goto out;
    if (b64u_member(root, "signature", &out->sig, &out->siglen, prob) != 0)
        goto out;
    out->signing_input = xasprintf("%s.%s", acme_json_str(root, "protected"),
                                   acme_json_str(root, "payload"));
    rc = 0;
out:
    free(hdr);
    cJSON_Delete(root);
    return rc;
}

int
acme_jws_parse(const unsigned char *body, size_t len, struct acme_jws *out,
               struct acme_problem *prob)
{
    return acme_jws_parse_ex(body, len, 0, out, prob);
}

EVP_PKEY *
acme_jwk_to_key(const cJSON *jwk, struct acme_problem *prob)
{
    struct pki_jwk k = {0};
    char err[ERR_LEN] = "";
    EVP_PKEY *key;

    if (!cJSON_IsObject(jwk)) {
        acme_problem_set(prob, "malformed", 400, "JWK is not an object");
        return NULL;
    }
    k.kty = acme_json_str(jwk, "kty");
    k.crv = acme_json_str(jwk, "crv");
    k.x = acme_json_str(jwk, "x");
    k.y = acme_json_str(jwk, "y");
    k.n = acme_json_str(jwk, "n");
    k.e = acme_json_str(jwk, "e");
    if (k.kty == NULL) {
        acme_problem_set(prob, "badPublicKey", 400, "JWK lacks kty");
        return NULL;
    }
    key = pki_jwk_to_key(&k, err);
    if (key == NULL)
        acme_problem_set(prob, "badPublicKey", 400, "%s", err[0] != '\0' ? err : "key refused");
    return key;
}

int
acme_jws_key_from_jwk(struct acme_jws *jws, struct acme_problem *prob)
{
    EVP_PKEY_free(jws->key);
    jws->key = acme_jwk_to_key(jws->jwk, prob);
    if (jws->key == NULL)
        return -1;
    if (pki_jwk_thumbprint(jws->key, jws->thumbprint) != 0) {
        acme_problem_set(prob, "badPublicKey", 400, "key type not supported");
        return -1;
    }
    return 0;
}

int
acme_jws_verify(struct acme_jws *jws, EVP_PKEY *key, struct acme_problem *prob)
{
    if (key == NULL) {
        acme_problem_set(prob, "serverInternal", 500, "no key to verify the JWS with");
        return -1;
    }
    if (!pki_jws_alg_fits_key(jws->alg, key)) {
        acme_problem_set(prob, "badSignatureAlgorithm", 400, "alg %s does not fit the key",
                         pki_jws_alg_name(jws->alg));
        return -1;
    }
    if (pki_jws_verify(jws->alg, key, jws->signing_input, strlen(jws->signing_input), jws->sig,
                       jws->siglen) != 0) {
        acme_problem_set(prob, "malformed", 400, "JWS signature is invalid");
        return -1;
    }
    if (jws->key == NULL) {
        EVP_PKEY_up_ref(key);
        jws->key = key;
        if (jws->thumbprint[0] == '\0' && pki_jwk_thumbprint(key, jws->thumbprint) != 0)
            jws->thumbprint[0] = '\0';
    }
    return 0;
}

void
acme_jws_clear(struct acme_jws *jws)
{
    if (jws == NULL)
        return;
    cJSON_Delete(jws->protected);
    cJSON_Delete(jws->payload);
    free(jws->payload_raw);
    EVP_PKEY_free(jws->key);
    free(jws->signing_input);
    free(jws->sig);
    memset(jws, 0, sizeof(*jws));
}
