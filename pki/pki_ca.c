/*
 * pki_ca.c: issuing CAs: loading certificate, 0600 key and chain from PEM
 * files with a key/certificate match check, and first-run creation of a
 * root + issuing intermediate pair in a directory.
 */
#include "pki/pki.h"
#include "pki/pki_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>

#define ROOT_LIFETIME (10 * 365 * 86400LL)
#define INTERMEDIATE_LIFETIME (5 * 365 * 86400LL)
/* CA certificates start an hour in the past to tolerate clock skew between hosts. */
#define CA_BACKDATE 3600

static int chain_pem_build(struct pki_ca *ca, const char *chain_path, char err[ERR_LEN])
{
    int rc = -1;
    struct buf b = {0};
    STACK_OF(X509) *chain = NULL;
    char *pem = pki_cert_pem(ca->cert, err);

    if (pem == NULL)
        return -1;
    buf_puts(&b, pem);
    free(pem);
    if (chain_path != NULL) {
        chain = pki_read_certs(chain_path, PKI_CHAIN_MAX, err);
        if (chain == NULL)
            goto out;
        for (int i = 0; i < sk_X509_num(chain); i++) {
            pem = pki_cert_pem(sk_X509_value(chain, i), err);
            if (pem == NULL)
                goto out;
            buf_puts(&b, pem);
            free(pem);
        }
    }
    ca->chain_pem = buf_take(&b);
    rc = 0;
out:
    buf_free(&b);
    sk_X509_pop_free(chain, X509_free);
    return rc;
}

struct pki_ca *pki_ca_load(const char *name, const char *cert_path, const char *key_path,
                           const char *chain_path, char err[ERR_LEN])
{
    struct pki_ca *ca = xcalloc(1, sizeof(*ca));
    STACK_OF(X509) *certs = NULL;

    ca->name = xstrdup(name != NULL ? name : "");
    certs = pki_read_certs(cert_path, 1, err);
    if (certs == NULL)
        goto err;
    ca->cert = sk_X509_shift(certs);
    ca->key = pki_key_load(key_path, err);
    if (ca->key == NULL)
        goto err;
    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        pki_ossl_err(err, "X509_check_private_key");
        pki_set_err(err, "key %s does not match certificate %s", key_path, cert_path);
        goto err;
    }
    if (pki_asn1_time_get(X509_get0_notAfter(ca->cert), &ca->not_after) != 0) {
        pki_set_err(err, "%s: unreadable notAfter", cert_path);
        goto err;
    }
    if (chain_pem_build(ca, chain_path, err) != 0)
        goto err;
    sk_X509_pop_free(certs, X509_free);
    return ca;
err:
    sk_X509_pop_free(certs, X509_free);
    pki_ca_free(ca);
    return NULL;
}

void pki_ca_free(struct pki_ca *ca)
{
    if (ca == NULL)
        return;
    free(ca->name);
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key); /* OpenSSL cleanses private key material on free */
    free(ca->chain_pem);
    free(ca);
}

const char *pki_ca_name(const struct pki_ca *ca)
{
    return ca->name;
}

X509 *pki_ca_cert(const struct pki_ca *ca)
{
    return ca->cert;
}

const char *pki_ca_chain_pem(const struct pki_ca *ca)
{
    return ca->chain_pem;
}

int64_t pki_ca_not_after(const struct pki_ca *ca)
{
    return ca->not_after;
}

/* ---- first-run CA creation ---- */

static bool file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* A CA certificate for key; issuer/issuer_key NULL makes it self-signed. */
static X509 *ca_cert_make(EVP_PKEY *key, const char *cn, const char *org, int64_t nb, int64_t na,
                          X509 *issuer, EVP_PKEY *issuer_key, char err[ERR_LEN])
{
    X509 *x = X509_new();
    const struct pki_name_entry subj[] = {{"O", org}, {"CN", cn}};
    X509_NAME *name = x != NULL ? X509_get_subject_name(x) : NULL;
    bool ok = false;

    if (x == NULL || X509_set_version(x, X509_VERSION_3) != 1 ||
        pki_serial_set(x, NULL, err) != 0 ||
        ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na) == NULL || X509_set_pubkey(x, key) != 1) {
        pki_ossl_err(err, "CA certificate fields");
        goto out;
    }
    for (size_t i = 0; i < nitems(subj); i++) {
        if (X509_NAME_add_entry_by_txt(name, subj[i].field, MBSTRING_UTF8,
                                       (const unsigned char *)subj[i].value, -1, -1, 0) != 1) {
            pki_ossl_err(err, "X509_NAME_add_entry_by_txt");
            goto out;
        }
    }
    if (issuer == NULL)
        issuer = x;
    if (X509_set_issuer_name(x, X509_get_subject_name(issuer)) != 1 ||
        pki_ext_add_conf(x, issuer, NID_basic_constraints,
                         issuer == x ? "critical,CA:TRUE" : "critical,CA:TRUE,pathlen:0",
                         err) != 0 ||
        pki_ext_add_conf(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature",
                         err) != 0 ||
        pki_ext_add_key_ids(x, issuer, err) != 0 ||
        pki_cert_sign(x, issuer_key != NULL ? issuer_key : key, err) != 0)
        goto out;
    ok = true;
out:
    if (!ok) {
        X509_free(x);
        x = NULL;
    }
    return x;
}

static int cert_save(X509 *x, const char *path, char err[ERR_LEN])
{
    char *pem = pki_cert_pem(x, err);
    int rc;

    if (pem == NULL)
        return -1;
    rc = file_write_atomic(path, pem, strlen(pem), 0644, err);
    free(pem);
    return rc;
}

/* Loads key_path when it exists, else generates a key of type and saves it. */
static EVP_PKEY *key_load_or_make(const char *key_path, enum pki_key_type type, char err[ERR_LEN])
{
    EVP_PKEY *key;

    if (file_exists(key_path))
        return pki_key_load(key_path, err);
    key = pki_key_generate(type, err);
    if (key != NULL && pki_key_save(key, key_path, err) != 0) {
        EVP_PKEY_free(key);
        key = NULL;
    }
    return key;
}

struct ca_paths {
    char *root_pem, *root_key, *int_pem, *int_key;
};

/* The root to sign a new intermediate with: loaded, or created when absent. */
static int root_get(const struct ca_paths *pp, const char *name, X509 **cert, EVP_PKEY **key,
                    char err[ERR_LEN])
{
    int64_t now = clk_now();
    char *cn = NULL;
    STACK_OF(X509) *sk = NULL;

    if (file_exists(pp->root_pem) && !file_exists(pp->root_key)) {
        pki_set_err(err, "%s exists without %s; cannot sign a new intermediate", pp->root_pem,
                    pp->root_key);
        return -1;
    }
    *key = key_load_or_make(pp->root_key, PKI_KEY_P384, err);
    if (*key == NULL)
        return -1;
    if (file_exists(pp->root_pem)) {
        sk = pki_read_certs(pp->root_pem, 1, err);
        *cert = sk != NULL ? sk_X509_shift(sk) : NULL;
        sk_X509_pop_free(sk, X509_free);
        if (*cert != NULL && X509_check_private_key(*cert, *key) != 1) {
            pki_ossl_err(err, "X509_check_private_key");
            pki_set_err(err, "%s does not match %s", pp->root_key, pp->root_pem);
            X509_free(*cert);
            *cert = NULL;
        }
        return *cert != NULL ? 0 : -1;
    }
    cn = xasprintf("%s Root CA", name);
    *cert = ca_cert_make(*key, cn, name, now - CA_BACKDATE, now + ROOT_LIFETIME, NULL, NULL, err);
    free(cn);
    if (*cert == NULL || cert_save(*cert, pp->root_pem, err) != 0)
        return -1;
    log_info("pki", "created root CA certificate %s", pp->root_pem);
    return 0;
}

static int intermediate_make(const struct ca_paths *pp, const char *name, char err[ERR_LEN])
{
    int rc = -1;
    int64_t now = clk_now(), na, root_na = 0;
    char *cn = NULL;
    X509 *root = NULL, *inter = NULL;
    EVP_PKEY *root_key = NULL, *key = NULL;

    if (root_get(pp, name, &root, &root_key, err) != 0)
        goto out;
    key = key_load_or_make(pp->int_key, PKI_KEY_P256, err);
    if (key == NULL)
        goto out;
    na = now + INTERMEDIATE_LIFETIME;
    if (pki_asn1_time_get(X509_get0_notAfter(root), &root_na) == 0 && root_na < na)
        na = root_na;
    cn = xasprintf("%s Issuing CA", name);
    inter = ca_cert_make(key, cn, name, now - CA_BACKDATE, na, root, root_key, err);
    if (inter == NULL || cert_save(inter, pp->int_pem, err) != 0)
        goto out;
    log_info("pki", "created issuing CA certificate %s", pp->int_pem);
    rc = 0;
out:
    free(cn);
    X509_free(root);
    X509_free(inter);
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(key);
    return rc;
}

int pki_ca_init_dir(const char *dir, const char *name, char err[ERR_LEN])
{
    int rc = -1;
    struct ca_paths pp;

    if (dir == NULL || name == NULL || name[0] == '\0' || strlen(name) > 48) {
        pki_set_err(err, "CA directory and a name of 1 to 48 bytes are required");
        return -1;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        pki_set_err(err, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    pp.root_pem = xasprintf("%s/root.pem", dir);
    pp.root_key = xasprintf("%s/root.key", dir);
    pp.int_pem = xasprintf("%s/intermediate.pem", dir);
    pp.int_key = xasprintf("%s/intermediate.key", dir);
    /*
     * Only a missing intermediate triggers work: once it exists the root key may
     * have been moved offline, and nothing here should need it.
     */
    if (file_exists(pp.int_pem) && file_exists(pp.int_key))
        rc = 0;
    else if (file_exists(pp.int_pem))
        pki_set_err(err, "%s exists without %s; refusing to replace it", pp.int_pem, pp.int_key);
    else
        rc = intermediate_make(&pp, name, err);
    free(pp.root_pem);
    free(pp.root_key);
    free(pp.int_pem);
    free(pp.int_key);
    return rc;
}
