/*
 * pki_issue.c: building and signing X.509 v3 certificates: random serials,
 * subjects built entry by entry, SAN/KU/EKU/basicConstraints/key-id
 * extensions, validity clamped to the CA, and the HTTPS listener certificate.
 */
#include "pki/pki.h"
#include "pki/pki_int.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <limits.h>

#include <openssl/core_names.h>
#include <openssl/err.h>

#define SERIAL_BYTES 17
#define KU_KNOWN_BITS 0x1fu
#define TLS_CERT_LIFETIME (365 * 86400)
/* Listener certificates start slightly in the past to tolerate client clock skew. */
#define TLS_CERT_BACKDATE 300

int pki_serial_set(X509 *x, char hex[41], char err[ERR_LEN])
{
    unsigned char b[SERIAL_BYTES];

    if (rand_bytes(b, sizeof(b)) != 0) {
        pki_set_err(err, "no randomness for the serial number");
        return -1;
    }
    /*
     * 16 random bytes after a non-zero first byte below 0x80: at least 128 bits
     * of entropy, always positive and always 17 bytes, so the hex never shrinks.
     */
    b[0] &= 0x7f;
    if (b[0] == 0)
        b[0] = 0x01;
    if (ASN1_STRING_set(X509_get_serialNumber(x), b, sizeof(b)) != 1) {
        pki_ossl_err(err, "ASN1_STRING_set(serial)");
        return -1;
    }
    if (hex != NULL)
        hex_encode(b, sizeof(b), hex);
    return 0;
}

int pki_ext_add_conf(X509 *x, X509 *issuer, int nid, const char *value, char err[ERR_LEN])
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL) {
        pki_ossl_err(err, OBJ_nid2sn(nid));
        return -1;
    }
    ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (ok != 1) {
        pki_ossl_err(err, "X509_add_ext");
        return -1;
    }
    return 0;
}

int pki_ext_add_key_ids(X509 *x, X509 *issuer, char err[ERR_LEN])
{
    if (pki_ext_add_conf(x, x, NID_subject_key_identifier, "hash", err) != 0)
        return -1;
    /* A self-signed root needs no AKI: it names itself. */
    if (issuer == x)
        return 0;
    return pki_ext_add_conf(x, issuer, NID_authority_key_identifier, "keyid:always", err);
}

int pki_cert_sign(X509 *x, EVP_PKEY *key, char err[ERR_LEN])
{
    if (X509_sign(x, key, pki_sign_md(key)) <= 0) {
        pki_ossl_err(err, "X509_sign");
        return -1;
    }
    return 0;
}

static int add_subject(X509 *x, const struct pki_name_entry *ents, size_t n, char err[ERR_LEN])
{
    X509_NAME *name = X509_get_subject_name(x);

    for (size_t i = 0; i < n; i++) {
        if (ents[i].field == NULL || ents[i].value == NULL || ents[i].value[0] == '\0') {
            pki_set_err(err, "subject entry %zu is empty", i);
            return -1;
        }
        /* One entry per call: the value is data, never parsed as a DN. */
        if (X509_NAME_add_entry_by_txt(name, ents[i].field, MBSTRING_UTF8,
                                       (const unsigned char *)ents[i].value, -1, -1, 0) != 1) {
            pki_ossl_err(err, "X509_NAME_add_entry_by_txt");
            pki_set_err(err, "subject entry %zu (%.32s) is not acceptable", i, ents[i].field);
            return -1;
        }
    }
    return 0;
}

static int add_sans(X509 *x, const struct pki_san *sans, size_t n, bool critical, char err[ERR_LEN])
{
    int rc = -1;
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();

    if (gens == NULL) {
        pki_ossl_err(err, "sk_GENERAL_NAME_new_null");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        GENERAL_NAME *gn = pki_san_to_general_name(sans[i].type, sans[i].value, err);
        if (gn == NULL)
            goto out;
        if (sk_GENERAL_NAME_push(gens, gn) <= 0) {
            GENERAL_NAME_free(gn);
            pki_ossl_err(err, "sk_GENERAL_NAME_push");
            goto out;
        }
    }
    if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, critical ? 1 : 0, X509V3_ADD_DEFAULT) !=
        1) {
        pki_ossl_err(err, "X509_add1_ext_i2d(subjectAltName)");
        goto out;
    }
    rc = 0;
out:
    GENERAL_NAMES_free(gens);
    return rc;
}

static int add_key_usage(X509 *x, unsigned bits, const EVP_PKEY *subject_key, char err[ERR_LEN])
{
    int rc = -1;
    ASN1_BIT_STRING *ku = NULL;

    if ((bits & ~KU_KNOWN_BITS) != 0) {
        pki_set_err(err, "unsupported key usage bits 0x%x", bits);
        return -1;
    }
    if (bits == 0) {
        bits = PKI_KU_DIGITAL_SIGNATURE;
        if (EVP_PKEY_get_base_id(subject_key) == EVP_PKEY_RSA)
            bits |= PKI_KU_KEY_ENCIPHERMENT;
    }
    ku = ASN1_BIT_STRING_new();
    if (ku == NULL)
        goto out;
    /* PKI_KU_* bit i is RFC 5280 KeyUsage bit i. */
    for (int i = 0; i < 5; i++) {
        if ((bits & (1u << i)) != 0 && ASN1_BIT_STRING_set_bit(ku, i, 1) != 1)
            goto out;
    }
    if (X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT) != 1)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        pki_ossl_err(err, "keyUsage");
    ASN1_BIT_STRING_free(ku);
    return rc;
}

static int add_eku(X509 *x, const char **oids, size_t n, char err[ERR_LEN])
{
    static const char *const server_auth[] = {"serverAuth"};
    int rc = -1;
    EXTENDED_KEY_USAGE *eku = NULL;

    if (oids == NULL) {
        oids = (const char **)server_auth;
        n = 1;
    }
    if (n == 0)
        return 0;
    eku = sk_ASN1_OBJECT_new_null();
    if (eku == NULL) {
        pki_ossl_err(err, "sk_ASN1_OBJECT_new_null");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        ASN1_OBJECT *o = oids[i] != NULL ? OBJ_txt2obj(oids[i], 0) : NULL;
        if (o == NULL || sk_ASN1_OBJECT_push(eku, o) <= 0) {
            ASN1_OBJECT_free(o);
            ERR_clear_error();
            pki_set_err(err, "extended key usage %zu is not a known name or OID", i);
            goto out;
        }
    }
    if (X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, X509V3_ADD_DEFAULT) != 1) {
        pki_ossl_err(err, "X509_add1_ext_i2d(extendedKeyUsage)");
        goto out;
    }
    rc = 0;
out:
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    return rc;
}

/*
 * The subject public key. X509_set_pubkey encodes the key to DER and decodes it
 * again (OpenSSL 3 encoder then decoder, a point check included), which cost
 * more than signing the certificate. For EC keys, already checked when the CSR
 * was parsed, the SPKI is set from its parts; other key types take the long way.
 */
static int set_pubkey(X509 *x, EVP_PKEY *key)
{
    char group[64];
    size_t glen = 0, ptlen;
    unsigned char *pt = NULL;
    int nid = NID_undef;

    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC &&
        EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &glen) == 1)
        nid = OBJ_sn2nid(group);
    if (nid == NID_undef)
        return X509_set_pubkey(x, key) == 1 ? 0 : -1;
    ptlen = EVP_PKEY_get1_encoded_public_key(key, &pt);
    if (ptlen == 0 || ptlen > INT_MAX ||
        X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x), OBJ_nid2obj(NID_X9_62_id_ecPublicKey),
                               V_ASN1_OBJECT, OBJ_nid2obj(nid), pt, (int)ptlen) != 1) {
        OPENSSL_free(pt);
        return -1;
    }
    return 0;
}

static int set_base(X509 *x, const struct pki_ca *ca, const struct pki_issue_req *req,
                    int64_t not_after, char serial[41], char err[ERR_LEN])
{
    if (X509_set_version(x, X509_VERSION_3) != 1 || pki_serial_set(x, serial, err) != 0 ||
        X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1 ||
        ASN1_TIME_set(X509_getm_notBefore(x), (time_t)req->not_before) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after) == NULL ||
        set_pubkey(x, req->subject_key) != 0) {
        pki_ossl_err(err, "certificate fields");
        return -1;
    }
    return add_subject(x, req->subject, req->nsubject, err);
}

static int add_extensions(X509 *x, const struct pki_ca *ca, const struct pki_issue_req *req,
                          char err[ERR_LEN])
{
    if (pki_ext_add_conf(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE", err) != 0 ||
        add_key_usage(x, req->key_usage, req->subject_key, err) != 0 ||
        add_eku(x, req->eku_oids, req->neku, err) != 0 ||
        pki_ext_add_key_ids(x, ca->cert, err) != 0)
        return -1;
    if (req->nsans == 0)
        return 0;
    /* RFC 5280 §4.2.1.6: SAN is critical when the subject is empty. */
    return add_sans(x, req->sans, req->nsans, req->nsubject == 0, err);
}

int pki_issue(const struct pki_ca *ca, const struct pki_issue_req *req, struct pki_issued *out,
              char err[ERR_LEN])
{
    int rc = -1;
    int64_t not_after;
    X509 *x = NULL;

    memset(out, 0, sizeof(*out));
    if (ca == NULL || req == NULL || req->subject_key == NULL) {
        pki_set_err(err, "no CA, request or subject key");
        return -1;
    }
    if (req->nsubject == 0 && req->nsans == 0) {
        pki_set_err(err, "certificate would have neither subject nor SANs");
        return -1;
    }
    not_after = req->not_after < ca->not_after ? req->not_after : ca->not_after;
    if (req->not_before >= not_after) {
        pki_set_err(err, "validity is empty once clamped to the CA's notAfter");
        return -1;
    }
    x = X509_new();
    if (x == NULL) {
        pki_ossl_err(err, "X509_new");
        return -1;
    }
    if (set_base(x, ca, req, not_after, out->serial, err) != 0 ||
        add_extensions(x, ca, req, err) != 0 || pki_cert_sign(x, ca->key, err) != 0)
        goto out;
    out->pem = pki_cert_pem(x, err);
    if (out->pem == NULL)
        goto out;
    out->not_before = req->not_before;
    out->not_after = not_after;
    rc = 0;
out:
    if (rc != 0)
        pki_issued_clear(out);
    X509_free(x);
    return rc;
}

void pki_issued_clear(struct pki_issued *iss)
{
    if (iss == NULL)
        return;
    free(iss->pem);
    memset(iss, 0, sizeof(*iss));
}

static int tls_cert_write(const struct pki_ca *ca, const char *leaf_pem, const char *cert_path,
                          char err[ERR_LEN])
{
    struct buf b = {0};
    int rc;

    buf_puts(&b, leaf_pem);
    buf_puts(&b, ca->chain_pem);
    rc = file_write_atomic(cert_path, b.p, b.len, 0644, err);
    buf_free(&b);
    return rc;
}

int pki_tls_cert_create(const struct pki_ca *ca, const char *const *names, size_t nnames,
                        const char *cert_path, const char *key_path, char err[ERR_LEN])
{
    int rc = -1;
    unsigned char addr[16];
    struct pki_san *sans = NULL;
    struct pki_issued iss = {0};
    struct pki_issue_req req = {0};
    EVP_PKEY *key = NULL;

    if (ca == NULL || names == NULL || nnames == 0 || nnames > PKI_CSR_MAX_NAMES) {
        pki_set_err(err, "listener certificate needs 1 to %d names", PKI_CSR_MAX_NAMES);
        return -1;
    }
    sans = xcalloc(nnames, sizeof(*sans));
    for (size_t i = 0; i < nnames; i++) {
        bool ip = names[i] != NULL && (inet_pton(AF_INET, names[i], addr) == 1 ||
                                       inet_pton(AF_INET6, names[i], addr) == 1);
        sans[i].type = ip ? PKI_SAN_IP : PKI_SAN_DNS;
        sans[i].value = names[i];
    }
    key = pki_key_generate(PKI_KEY_P256, err);
    if (key == NULL)
        goto out;
    req.subject_key = key;
    req.sans = sans;
    req.nsans = nnames;
    req.not_before = clk_now() - TLS_CERT_BACKDATE;
    req.not_after = clk_now() + TLS_CERT_LIFETIME;
    if (pki_issue(ca, &req, &iss, err) != 0 || pki_key_save(key, key_path, err) != 0 ||
        tls_cert_write(ca, iss.pem, cert_path, err) != 0)
        goto out;
    rc = 0;
out:
    pki_issued_clear(&iss);
    EVP_PKEY_free(key);
    free(sans);
    return rc;
}
