/*
 * pki_csr.c: PKCS#10 requests from ACME finalize: bounded DER parsing,
 * self-signature and key-type checks, and extraction of the subject CN and
 * subjectAltNames (DNS, IP, email, URI, RFC 4043 permanentIdentifier, RFC
 * 4108 HardwareModuleName).
 */
#include "pki/pki.h"
#include "pki/pki_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

/* RFC 8555 finalize CSRs are small; anything larger is refused before parsing. */
#define PKI_CSR_DER_MAX (16 * 1024)
/* A SAN or CN value longer than this is refused (DNS names are at most 253). */
#define CSR_NAME_MAX 1024

static void list_push(char ***v, size_t *n, char *s)
{
    *v = xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = s;
}

/* Text of an IA5String without NULs or non-ASCII bytes; NULL when unfit. */
static char *ia5_text(const ASN1_IA5STRING *s, bool lower)
{
    const unsigned char *p = ASN1_STRING_get0_data(s);
    int len = ASN1_STRING_length(s);
    char *out;

    if (p == NULL || len <= 0 || len > CSR_NAME_MAX)
        return NULL;
    for (int i = 0; i < len; i++) {
        if (p[i] < 0x21 || p[i] > 0x7e)
            return NULL;
    }
    out = xstrndup((const char *)p, (size_t)len);
    for (int i = 0; lower && i < len; i++) {
        if (out[i] >= 'A' && out[i] <= 'Z')
            out[i] = (char)(out[i] - 'A' + 'a');
    }
    return out;
}

static char *ip_text(const ASN1_OCTET_STRING *s)
{
    char txt[INET6_ADDRSTRLEN];
    int len = ASN1_STRING_length(s);
    const unsigned char *p = ASN1_STRING_get0_data(s);

    if (len == 4 && inet_ntop(AF_INET, p, txt, sizeof(txt)) != NULL)
        return xstrdup(txt);
    if (len == 16 && inet_ntop(AF_INET6, p, txt, sizeof(txt)) != NULL)
        return xstrdup(txt);
    return NULL;
}

/*
 * Records a permanentIdentifier or HardwareModuleName otherName (device-attest
 * clients may repeat their identifier; finalize compares it with the order);
 * other otherName kinds are refused.
 */
static int othername_add(struct pki_csr *out, const OTHERNAME *on, char err[ERR_LEN])
{
    char oid[64];
    char *val = NULL;
    const ASN1_TYPE *t = on->value;
    const unsigned char *der;
    size_t len;
    bool hw;

    if (OBJ_obj2txt(oid, sizeof(oid), on->type_id, 1) <= 0) {
        pki_set_err(err, "unreadable otherName type in subjectAltName");
        return -1;
    }
    hw = strcmp(oid, PKI_OID_HW_MODULE_NAME) == 0;
    if (!hw && strcmp(oid, PKI_OID_PERMANENT_ID) != 0) {
        pki_set_err(err, "unsupported otherName %s in subjectAltName", oid);
        return -1;
    }
    if (t == NULL || t->type != V_ASN1_SEQUENCE)
        goto bad;
    der = ASN1_STRING_get0_data(t->value.sequence);
    len = (size_t)ASN1_STRING_length(t->value.sequence);
    if ((hw ? pki_hw_module_parse(der, len, &val) : pki_perm_id_parse(der, len, &val)) != 0 ||
        val == NULL)
        goto bad;
    if (hw)
        list_push(&out->hw_modules, &out->nhw_modules, val);
    else
        list_push(&out->perm_ids, &out->nperm_ids, val);
    return 0;
bad:
    pki_set_err(err, "malformed %s in subjectAltName",
                hw ? "HardwareModuleName" : "permanentIdentifier");
    return -1;
}

static int san_add(struct pki_csr *out, const GENERAL_NAME *gn, char err[ERR_LEN])
{
    char *s = NULL;

    switch (gn->type) {
    case GEN_DNS:
        s = ia5_text(gn->d.dNSName, true);
        if (s != NULL)
            list_push(&out->dns, &out->ndns, s);
        break;
    case GEN_IPADD:
        s = ip_text(gn->d.iPAddress);
        if (s != NULL)
            list_push(&out->ips, &out->nips, s);
        break;
    case GEN_EMAIL:
        s = ia5_text(gn->d.rfc822Name, false);
        if (s != NULL)
            list_push(&out->emails, &out->nemails, s);
        break;
    case GEN_URI:
        s = ia5_text(gn->d.uniformResourceIdentifier, false);
        if (s != NULL)
            list_push(&out->uris, &out->nuris, s);
        break;
    case GEN_OTHERNAME:
        return othername_add(out, gn->d.otherName, err);
    default:
        pki_set_err(err, "unsupported subjectAltName type %d", gn->type);
        return -1;
    }
    if (s == NULL) {
        pki_set_err(err, "malformed subjectAltName of type %d", gn->type);
        return -1;
    }
    return 0;
}

/*
 * F-3: refuses what the request asks for and the CA will not issue: a CA
 * certificate, or a critical extension it does not know (a critical one cannot
 * be left out silently). Unknown non-critical ones are ignored; the known ones
 * describe what the CA decides itself (names are checked against the order).
 */
static int exts_check(STACK_OF(X509_EXTENSION) *exts, char err[ERR_LEN])
{
    static const int known[] = {NID_subject_alt_name, NID_basic_constraints, NID_key_usage,
                                NID_ext_key_usage, NID_subject_key_identifier};
    char oid[64];

    for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
        X509_EXTENSION *ext = sk_X509_EXTENSION_value(exts, i);
        int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext)), ca = 0;
        size_t k = 0;

        if (nid == NID_basic_constraints) {
            BASIC_CONSTRAINTS *bc = X509V3_EXT_d2i(ext);
            ca = bc == NULL ? -1 : bc->ca != 0;
            BASIC_CONSTRAINTS_free(bc);
        }
        if (ca != 0) {
            ERR_clear_error();
            pki_set_err(err, "%s",
                        ca < 0 ? "CSR basicConstraints extension is malformed"
                               : "CSR requests basicConstraints cA=TRUE; this CA "
                                 "issues end-entity certificates only");
            return -1;
        }
        while (k < nitems(known) && known[k] != nid)
            k++;
        if (k == nitems(known) && X509_EXTENSION_get_critical(ext)) {
            if (OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(ext), 1) <= 0)
                snprintf(oid, sizeof(oid), "?");
            pki_set_err(err, "CSR requests critical extension %s, which this CA does not issue",
                        oid);
            return -1;
        }
    }
    return 0;
}

static int sans_parse(struct pki_csr *out, char err[ERR_LEN])
{
    int rc = -1, crit = -1, n;
    GENERAL_NAMES *gens = NULL;
    /* OpenSSL 3 returns an empty stack when there is no extension request. */
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(out->req);

    if (exts == NULL) {
        ERR_clear_error();
        pki_set_err(err, "CSR extension request is malformed");
        return -1;
    }
    if (exts_check(exts, err) != 0)
        goto out;
    gens = X509V3_get_d2i(exts, NID_subject_alt_name, &crit, NULL);
    if (gens == NULL) {
        if (crit == -2)
            pki_set_err(err, "CSR requests more than one subjectAltName extension");
        else if (crit >= 0)
            pki_set_err(err, "CSR subjectAltName extension is malformed");
        rc = crit == -1 ? 0 : -1;
        goto out;
    }
    n = sk_GENERAL_NAME_num(gens);
    if (n > PKI_CSR_MAX_NAMES) {
        pki_set_err(err, "CSR has %d names; at most %d allowed", n, PKI_CSR_MAX_NAMES);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        if (san_add(out, sk_GENERAL_NAME_value(gens, i), err) != 0)
            goto out;
    }
    rc = 0;
out:
    GENERAL_NAMES_free(gens);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return rc;
}

static int cn_parse(struct pki_csr *out, char err[ERR_LEN])
{
    const X509_NAME *name = X509_REQ_get_subject_name(out->req);
    int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    unsigned char *utf8 = NULL;
    int len;

    if (idx < 0)
        return 0;
    if (X509_NAME_get_index_by_NID(name, NID_commonName, idx) >= 0) {
        pki_set_err(err, "CSR subject has more than one commonName");
        return -1;
    }
    len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
    if (len <= 0 || len > CSR_NAME_MAX || memchr(utf8, '\0', (size_t)len) != NULL) {
        OPENSSL_free(utf8);
        ERR_clear_error();
        pki_set_err(err, "CSR subject commonName is malformed");
        return -1;
    }
    out->cn = xstrndup((const char *)utf8, (size_t)len);
    OPENSSL_free(utf8);
    return 0;
}

/*
 * Hashes the SPKI as the request carries it, the way attestation claims hash a
 * leaf's, without an EVP_PKEY encoder round trip (pki_key_spki_sha256_hex).
 */
static int spki_hash(struct pki_csr *out, char err[ERR_LEN])
{
    unsigned char *der = NULL, md[32];
    int len = i2d_X509_PUBKEY(X509_REQ_get_X509_PUBKEY(out->req), &der);

    if (len <= 0) {
        pki_ossl_err(err, "i2d_X509_PUBKEY");
        pki_set_err(err, "CSR public key cannot be encoded");
        return -1;
    }
    pki_sha256(der, (size_t)len, md);
    OPENSSL_free(der);
    hex_encode(md, sizeof(md), out->spki_sha256);
    return 0;
}

int pki_csr_parse(const unsigned char *der, size_t len, unsigned allowed_keys, struct pki_csr *out,
                  char err[ERR_LEN])
{
    const unsigned char *p = der;
    enum pki_key_type kt;

    memset(out, 0, sizeof(*out));
    if (der == NULL || len == 0 || len > PKI_CSR_DER_MAX) {
        pki_set_err(err, "CSR is empty or larger than %d bytes", PKI_CSR_DER_MAX);
        return -1;
    }
    out->req = d2i_X509_REQ(NULL, &p, (long)len);
    if (out->req == NULL || p != der + len) {
        pki_ossl_err(err, "d2i_X509_REQ");
        pki_set_err(err, "CSR is not a single DER PKCS#10 request");
        goto err;
    }
    out->key = X509_REQ_get_pubkey(out->req);
    if (out->key == NULL) {
        pki_ossl_err(err, "X509_REQ_get_pubkey");
        pki_set_err(err, "CSR public key is unreadable or unsupported");
        goto err;
    }
    kt = pki_key_type_of(out->key);
    if (kt == PKI_KEY__MAX || (allowed_keys & (1u << kt)) == 0) {
        pki_set_err(err, "CSR key type %s is not allowed", pki_key_type_name(kt));
        goto err;
    }
    if (X509_REQ_verify(out->req, out->key) != 1) {
        pki_ossl_err(err, "X509_REQ_verify");
        pki_set_err(err, "CSR signature is invalid");
        goto err;
    }
    /* A CSR naming nothing is legal here: device-attest clients may omit identifiers. */
    if (cn_parse(out, err) != 0 || sans_parse(out, err) != 0 || spki_hash(out, err) != 0)
        goto err;
    return 0;
err:
    pki_csr_clear(out);
    return -1;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void pki_csr_clear(struct pki_csr *csr)
{
    if (csr == NULL)
        return;
    X509_REQ_free(csr->req);
    EVP_PKEY_free(csr->key);
    free(csr->cn);
    free_list(csr->dns, csr->ndns);
    free_list(csr->ips, csr->nips);
    free_list(csr->emails, csr->nemails);
    free_list(csr->uris, csr->nuris);
    free_list(csr->perm_ids, csr->nperm_ids);
    free_list(csr->hw_modules, csr->nhw_modules);
    memset(csr, 0, sizeof(*csr));
}
