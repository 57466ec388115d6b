/*
 * pki_tlsalpn.c: the certificate checks of tls-alpn-01 (RFC 8737 §3): one
 * SAN naming the identifier and a critical acmeIdentifier extension holding
 * SHA-256 of the key authorization.
 */
#include "pki/pki.h"
#include "pki/pki_int.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>

/* DER of the extension value: OCTET STRING (0x04), length 32, then the hash. */
#define ACME_ID_DER_LEN 34

static int san_check(X509 *peer, const char *identifier, bool is_ip, char err[ERR_LEN])
{
    int rc = -1, crit = -1;
    unsigned char addr[16];
    int alen = 0;
    const GENERAL_NAME *gn;
    GENERAL_NAMES *gens = X509_get_ext_d2i(peer, NID_subject_alt_name, &crit, NULL);

    if (gens == NULL || sk_GENERAL_NAME_num(gens) != 1) {
        pki_set_err(err, "certificate must carry exactly one subjectAltName");
        goto out;
    }
    gn = sk_GENERAL_NAME_value(gens, 0);
    if (is_ip) {
        if (inet_pton(AF_INET, identifier, addr) == 1)
            alen = 4;
        else if (inet_pton(AF_INET6, identifier, addr) == 1)
            alen = 16;
        if (alen == 0 || gn->type != GEN_IPADD || ASN1_STRING_length(gn->d.iPAddress) != alen ||
            memcmp(ASN1_STRING_get0_data(gn->d.iPAddress), addr, (size_t)alen) != 0) {
            pki_set_err(err, "certificate SAN is not the iPAddress being validated");
            goto out;
        }
    } else {
        size_t ilen = strlen(identifier);
        if (gn->type != GEN_DNS || (size_t)ASN1_STRING_length(gn->d.dNSName) != ilen ||
            strncasecmp((const char *)ASN1_STRING_get0_data(gn->d.dNSName), identifier, ilen) !=
                0) {
            pki_set_err(err, "certificate SAN is not the dNSName being validated");
            goto out;
        }
    }
    rc = 0;
out:
    GENERAL_NAMES_free(gens);
    ERR_clear_error();
    return rc;
}

static int acme_id_check(X509 *peer, const unsigned char hash[32], char err[ERR_LEN])
{
    int idx, rc = -1;
    const X509_EXTENSION *ext;
    const ASN1_OCTET_STRING *val;
    const unsigned char *p;
    ASN1_OBJECT *oid = OBJ_txt2obj(PKI_OID_ACME_IDENTIFIER, 1);

    if (oid == NULL) {
        pki_ossl_err(err, "OBJ_txt2obj");
        return -1;
    }
    idx = X509_get_ext_by_OBJ(peer, oid, -1);
    if (idx < 0 || X509_get_ext_by_OBJ(peer, oid, idx) >= 0) {
        pki_set_err(err, "certificate must carry exactly one acmeIdentifier extension");
        goto out;
    }
    ext = X509_get_ext(peer, idx);
    if (X509_EXTENSION_get_critical(ext) != 1) {
        pki_set_err(err, "acmeIdentifier extension is not critical");
        goto out;
    }
    val = X509_EXTENSION_get_data((X509_EXTENSION *)ext);
    p = ASN1_STRING_get0_data(val);
    if (ASN1_STRING_length(val) != ACME_ID_DER_LEN || p[0] != V_ASN1_OCTET_STRING || p[1] != 32) {
        pki_set_err(err, "acmeIdentifier extension is not a 32-byte OCTET STRING");
        goto out;
    }
    if (!ct_equal(p + 2, hash, 32)) {
        pki_set_err(err, "acmeIdentifier does not match the key authorization");
        goto out;
    }
    rc = 0;
out:
    ASN1_OBJECT_free(oid);
    return rc;
}

int pki_tlsalpn01_check(X509 *peer, const char *identifier, bool is_ip,
                        const unsigned char keyauth_sha256[32], char err[ERR_LEN])
{
    if (peer == NULL || identifier == NULL || keyauth_sha256 == NULL) {
        pki_set_err(err, "no certificate or identifier");
        return -1;
    }
    if (san_check(peer, identifier, is_ip, err) != 0)
        return -1;
    return acme_id_check(peer, keyauth_sha256, err);
}
