/*
 * att_claims: what an Apple MDA leaf attests (serial, UDID, OS versions,
 * freshness code, key) and the two checks a device-attest-01 challenge makes
 * on it: the freshness code against the token, the identity against the order.
 * Apple puts raw bytes inside each extnValue OCTET STRING (no inner DER).
 */
#include "attest/att_int.h"

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define OID_SERIAL "1.2.840.113635.100.8.9.1"
#define OID_UDID "1.2.840.113635.100.8.9.2"
#define OID_OS "1.2.840.113635.100.8.10.1"
#define OID_SEPOS "1.2.840.113635.100.8.10.2"
#define OID_LLB "1.2.840.113635.100.8.10.3"
#define OID_NONCE "1.2.840.113635.100.8.11.1"

/* A printable-ASCII claim and where it lands in struct att_claims. */
struct text_claim {
    const char *oid, *name;
    size_t off, size;
};

static const struct text_claim text_claims[] = {
    {OID_SERIAL, "serial", offsetof(struct att_claims, serial),
     sizeof(((struct att_claims *)0)->serial)},
    {OID_UDID, "UDID", offsetof(struct att_claims, udid), sizeof(((struct att_claims *)0)->udid)},
    {OID_OS, "OS version", offsetof(struct att_claims, os_version),
     sizeof(((struct att_claims *)0)->os_version)},
    {OID_SEPOS, "sepOS version", offsetof(struct att_claims, sepos_version),
     sizeof(((struct att_claims *)0)->sepos_version)},
    {OID_LLB, "LLB version", offsetof(struct att_claims, llb_version),
     sizeof(((struct att_claims *)0)->llb_version)},
};

void att_claims_clear(struct att_claims *c)
{
    if (c == NULL)
        return;
    OPENSSL_free(c->spki_der);
    memset(c, 0, sizeof(*c));
}

static enum att_result set_text(struct att_claims *c, const struct text_claim *tc,
                                const unsigned char *p, size_t n, bool *seen, char err[ERR_LEN])
{
    char *dst = (char *)c + tc->off;

    if (*seen) {
        snprintf(err, ERR_LEN, "leaf has more than one %s extension (OID %s)", tc->name, tc->oid);
        return ATT_ERR_FORMAT;
    }
    *seen = true;
    if (n >= tc->size) {
        snprintf(err, ERR_LEN, "attested %s is %zu bytes (max %zu)", tc->name, n, tc->size - 1);
        return ATT_ERR_FORMAT;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] > 0x7e) {
            snprintf(err, ERR_LEN, "attested %s is not printable ASCII", tc->name);
            return ATT_ERR_FORMAT;
        }
    }
    memcpy(dst, p, n);
    dst[n] = '\0';
    return ATT_OK;
}

static enum att_result set_nonce(struct att_claims *c, const unsigned char *p, size_t n, bool *seen,
                                 char err[ERR_LEN])
{
    if (*seen) {
        snprintf(err, ERR_LEN, "leaf has more than one freshness nonce (OID %s)", OID_NONCE);
        return ATT_ERR_FORMAT;
    }
    *seen = true;
    /* ACME nonces are exactly 32 bytes; shorter MDM ones are kept for inspection. */
    if (n > sizeof(c->nonce)) {
        snprintf(err, ERR_LEN, "freshness nonce is %zu bytes (max %zu)", n, sizeof(c->nonce));
        return ATT_ERR_FORMAT;
    }
    memcpy(c->nonce, p, n);
    c->nonce_len = n;
    return ATT_OK;
}

static enum att_result extract_exts(X509 *leaf, struct att_claims *c, char err[ERR_LEN])
{
    bool seen[nitems(text_claims)] = {false};
    bool nonce_seen = false;
    int n = X509_get_ext_count(leaf);

    for (int i = 0; i < n; i++) {
        X509_EXTENSION *ext = X509_get_ext(leaf, i);
        char oid[80];
        if (OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(ext), 1) <= 0)
            continue; /* absurdly long OIDs are none of ours */
        const ASN1_OCTET_STRING *os = X509_EXTENSION_get_data(ext);
        const unsigned char *p = ASN1_STRING_get0_data(os);
        size_t len = (size_t)ASN1_STRING_length(os);
        enum att_result r = ATT_OK;
        if (strcmp(oid, OID_NONCE) == 0)
            r = set_nonce(c, p, len, &nonce_seen, err);
        for (size_t k = 0; k < nitems(text_claims) && r == ATT_OK; k++) {
            if (strcmp(oid, text_claims[k].oid) == 0)
                r = set_text(c, &text_claims[k], p, len, &seen[k], err);
        }
        if (r != ATT_OK)
            return r;
    }
    return ATT_OK;
}

static int asn1_time_to_epoch(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;

    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return -1;
    *out = (int64_t)timegm(&tm);
    return 0;
}

static enum att_result extract_key(X509 *leaf, struct att_claims *c, char err[ERR_LEN])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    unsigned char *der = NULL;
    int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(leaf), &der);

    if (len <= 0) {
        snprintf(err, ERR_LEN, "cannot encode the leaf public key");
        return ATT_ERR_FORMAT;
    }
    c->spki_der = der;
    c->spki_len = (size_t)len;
    if (EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) != 1) {
        snprintf(err, ERR_LEN, "EVP_Digest failed");
        return ATT_ERR_INTERNAL;
    }
    hex_encode(md, mdlen, c->spki_sha256);
    return ATT_OK;
}

enum att_result att_claims_extract(X509 *leaf, struct att_claims *c, char err[ERR_LEN])
{
    enum att_result r;

    att_claims_clear(c);
    r = extract_exts(leaf, c, err);
    if (r != ATT_OK)
        return r;
    if (asn1_time_to_epoch(X509_get0_notBefore(leaf), &c->not_before) != 0 ||
        asn1_time_to_epoch(X509_get0_notAfter(leaf), &c->not_after) != 0) {
        snprintf(err, ERR_LEN, "leaf validity dates do not parse");
        return ATT_ERR_FORMAT;
    }
    return extract_key(leaf, c, err);
}

enum att_result att_check_nonce(const struct att_claims *c, const char *token, bool required,
                                char err[ERR_LEN])
{
    unsigned char md[32];
    unsigned int mdlen = 0;

    if (c->nonce_len == 0) {
        if (!required)
            return ATT_OK;
        snprintf(err, ERR_LEN, "attestation has no freshness nonce (OID %s)", OID_NONCE);
        return ATT_ERR_NONCE;
    }
    if (token == NULL) {
        snprintf(err, ERR_LEN, "no challenge token to check the freshness nonce against");
        return ATT_ERR_INTERNAL;
    }
    if (EVP_Digest(token, strlen(token), md, &mdlen, EVP_sha256(), NULL) != 1) {
        snprintf(err, ERR_LEN, "EVP_Digest failed");
        return ATT_ERR_INTERNAL;
    }
    if (c->nonce_len != mdlen || !ct_equal(c->nonce, md, mdlen)) {
        snprintf(err, ERR_LEN, "freshness nonce does not match SHA-256 of the challenge token");
        return ATT_ERR_NONCE;
    }
    return ATT_OK;
}

static bool claim_eq(const char *claim, const char *id)
{
    return claim[0] != '\0' && strcmp(claim, id) == 0;
}

enum att_result att_check_identity(const struct att_claims *c, const char *identifier,
                                   bool accept_serial, bool accept_udid, char err[ERR_LEN])
{
    char id[96];

    if (identifier == NULL || identifier[0] == '\0') {
        snprintf(err, ERR_LEN, "identifier is empty");
        return ATT_ERR_IDENTITY;
    }
    if ((accept_serial && claim_eq(c->serial, identifier)) ||
        (accept_udid && claim_eq(c->udid, identifier)))
        return ATT_OK;
    log_escape(identifier, 80, id, sizeof(id));
    /* Precisions keep the longest case inside ERR_LEN; claims are short in practice. */
    if (accept_serial && accept_udid)
        snprintf(err, ERR_LEN,
                 "identifier \"%.64s\" matches neither the attested serial \"%.40s\" nor UDID "
                 "\"%.64s\"",
                 id, c->serial, c->udid);
    else if (accept_serial)
        snprintf(err, ERR_LEN, "identifier \"%.64s\" does not match the attested serial \"%.40s\"",
                 id, c->serial);
    else if (accept_udid)
        snprintf(err, ERR_LEN, "identifier \"%.64s\" does not match the attested UDID \"%.64s\"",
                 id, c->udid);
    else
        snprintf(err, ERR_LEN, "identifier \"%.64s\": neither serial nor UDID is accepted", id);
    return ATT_ERR_IDENTITY;
}
