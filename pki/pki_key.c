/*
 * pki_key.c: key generation, classification, PKCS#8 storage with 0600 files,
 * SubjectPublicKeyInfo export and key comparison.
 */
#include "pki/pki.h"
#include "pki/pki_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/pem.h>

static const char *const key_type_str[PKI_KEY__MAX] = {
    [PKI_KEY_P256] = "P-256",       [PKI_KEY_P384] = "P-384",       [PKI_KEY_RSA2048] = "RSA-2048",
    [PKI_KEY_RSA3072] = "RSA-3072", [PKI_KEY_RSA4096] = "RSA-4096", [PKI_KEY_ED25519] = "Ed25519",
};
_Static_assert(nitems(key_type_str) == PKI_KEY__MAX, "key_type_str out of sync");

EVP_PKEY *pki_key_generate(enum pki_key_type type, char err[ERR_LEN])
{
    EVP_PKEY *key = NULL;

    switch (type) {
    case PKI_KEY_P256:
        key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        break;
    case PKI_KEY_P384:
        key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
        break;
    case PKI_KEY_RSA2048:
        key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        break;
    case PKI_KEY_RSA3072:
        key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
        break;
    case PKI_KEY_RSA4096:
        key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
        break;
    case PKI_KEY_ED25519:
        key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        break;
    default:
        pki_set_err(err, "unsupported key type %d", (int)type);
        return NULL;
    }
    if (key == NULL)
        pki_ossl_err(err, "EVP_PKEY_Q_keygen");
    return key;
}

enum pki_key_type pki_key_type_of(const EVP_PKEY *key)
{
    char group[64];
    size_t glen = 0;

    if (key == NULL)
        return PKI_KEY__MAX;
    switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC:
        if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                           &glen) != 1)
            return PKI_KEY__MAX;
        if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)
            return PKI_KEY_P256;
        if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0)
            return PKI_KEY_P384;
        return PKI_KEY__MAX;
    case EVP_PKEY_RSA:
        switch (EVP_PKEY_get_bits(key)) {
        case 2048:
            return PKI_KEY_RSA2048;
        case 3072:
            return PKI_KEY_RSA3072;
        case 4096:
            return PKI_KEY_RSA4096;
        default:
            return PKI_KEY__MAX;
        }
    case EVP_PKEY_ED25519:
        return PKI_KEY_ED25519;
    default:
        return PKI_KEY__MAX;
    }
}

const char *pki_key_type_name(enum pki_key_type type)
{
    if ((unsigned)type >= PKI_KEY__MAX)
        return "unknown";
    return key_type_str[type];
}

int pki_key_type_parse(const char *name, enum pki_key_type *out)
{
    int i = str_index(key_type_str, nitems(key_type_str), name);

    if (i < 0)
        return -1;
    *out = (enum pki_key_type)i;
    return 0;
}

int pki_key_save(const EVP_PKEY *key, const char *path, char err[ERR_LEN])
{
    int rc = -1;
    char *pem = NULL;
    long pemlen;
    /* Secure memory BIO: the PEM is cleansed when the BIO is freed. */
    BIO *bio = BIO_new(BIO_s_secmem());

    if (bio == NULL) {
        pki_ossl_err(err, "BIO_new");
        return -1;
    }
    if (PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
        pki_ossl_err(err, "PEM_write_bio_PKCS8PrivateKey");
        goto out;
    }
    pemlen = BIO_get_mem_data(bio, &pem);
    if (pemlen <= 0) {
        pki_ossl_err(err, "BIO_get_mem_data");
        goto out;
    }
    if (file_write_atomic(path, pem, (size_t)pemlen, 0600, err) != 0)
        goto out;
    rc = 0;
out:
    BIO_free(bio);
    return rc;
}

/* Encrypted keys are refused instead of OpenSSL prompting on the terminal. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

EVP_PKEY *pki_key_load(const char *path, char err[ERR_LEN])
{
    EVP_PKEY *key = NULL;
    char *pem = NULL;
    size_t len = 0;
    BIO *bio = NULL;

    if (file_read(path, PKI_FILE_MAX, true, &pem, &len, err) != 0)
        return NULL;
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        pki_ossl_err(err, "BIO_new_mem_buf");
        goto out;
    }
    key = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
    if (key == NULL) {
        pki_ossl_err(err, "PEM_read_bio_PrivateKey");
        pki_set_err(err, "%s: no unencrypted PEM private key", path);
    }
out:
    BIO_free(bio);
    secure_wipe(pem, len);
    free(pem);
    return key;
}

int pki_key_spki_der(const EVP_PKEY *key, unsigned char **der, size_t *len)
{
    unsigned char *p = NULL;
    int n;

    *der = NULL;
    *len = 0;
    if (key == NULL)
        return -1;
    n = i2d_PUBKEY(key, &p);
    if (n <= 0) {
        pki_ossl_err(NULL, "i2d_PUBKEY");
        return -1;
    }
    *der = pki_ossl_to_heap(p, (size_t)n);
    *len = (size_t)n;
    return 0;
}

int pki_key_spki_sha256_hex(const EVP_PKEY *key, char out[65])
{
    unsigned char *der = NULL, md[32];
    size_t len = 0;

    if (pki_key_spki_der(key, &der, &len) != 0)
        return -1;
    pki_sha256(der, len, md);
    free(der);
    hex_encode(md, sizeof(md), out);
    return 0;
}

bool pki_key_equal(const EVP_PKEY *a, const EVP_PKEY *b)
{
    if (a == NULL || b == NULL)
        return false;
    return EVP_PKEY_eq(a, b) == 1;
}
