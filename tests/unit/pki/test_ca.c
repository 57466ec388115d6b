/* pki_ca.c and pki_key.c: CA directory creation, CA loading rules, key storage. */
#include "test_pki.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define T0 1767225600 /* 2026-01-01T00:00:00Z */

static char *path_in(const char *dir, const char *name)
{
    return xasprintf("%s/%s", dir, name);
}

static unsigned mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (unsigned)(st.st_mode & 0777);
}

static char *slurp(const char *path)
{
    char err[ERR_LEN], *data = NULL;
    size_t len;
    assert_int_equal(file_read(path, 1 << 20, false, &data, &len, err), 0);
    return data;
}

static X509 *cert_file(const char *path)
{
    char *pem = slurp(path);
    X509 *x = tp_pem_cert(pem);
    free(pem);
    return x;
}

static int64_t not_after_of(X509 *x)
{
    int64_t t = 0;
    assert_int_equal(pki_asn1_time_get(X509_get0_notAfter(x), &t), 0);
    return t;
}

static void test_ca_init_dir(void **state)
{
    static const struct {
        const char *file;
        unsigned mode;
    } files[] = {
        {"root.key", 0600},
        {"root.pem", 0644},
        {"intermediate.key", 0600},
        {"intermediate.pem", 0644},
    };
    char err[ERR_LEN], *dir = tp_tmpdir();
    clk_set_fixed(T0);
    assert_int_equal(pki_ca_init_dir(dir, "Test", err), 0);
    clk_set_fixed(-1);
    char *before[nitems(files)];
    for (size_t i = 0; i < nitems(files); i++) {
        char *p = path_in(dir, files[i].file);
        assert_int_equal(mode_of(p), files[i].mode);
        before[i] = slurp(p);
        free(p);
    }
    char *rp = path_in(dir, "root.pem"), *ip = path_in(dir, "intermediate.pem");
    X509 *root = cert_file(rp), *inter = cert_file(ip);
    assert_int_equal(pki_key_type_of(X509_get0_pubkey(root)), PKI_KEY_P384);
    assert_int_equal(pki_key_type_of(X509_get0_pubkey(inter)), PKI_KEY_P256);
    assert_int_equal(X509_verify(root, X509_get0_pubkey(root)), 1);
    assert_int_equal(X509_verify(inter, X509_get0_pubkey(root)), 1);
    assert_int_equal(X509_check_issued(root, inter), X509_V_OK);
    assert_true(X509_check_ca(root) > 0);
    assert_true(X509_check_ca(inter) > 0);
    assert_int_equal(X509_get_pathlen(inter), 0);
    assert_int_equal(not_after_of(root), T0 + 10 * 365 * 86400LL);
    assert_int_equal(not_after_of(inter), T0 + 5 * 365 * 86400LL);
    char cn[128];
    X509_NAME_get_text_by_NID(X509_get_subject_name(root), NID_commonName, cn, sizeof(cn));
    assert_string_equal(cn, "Test Root CA");
    X509_NAME_get_text_by_NID(X509_get_subject_name(inter), NID_commonName, cn, sizeof(cn));
    assert_string_equal(cn, "Test Issuing CA");

    /* A second run changes nothing. */
    assert_int_equal(pki_ca_init_dir(dir, "Other", err), 0);
    for (size_t i = 0; i < nitems(files); i++) {
        char *p = path_in(dir, files[i].file), *now = slurp(p);
        assert_string_equal(now, before[i]);
        free(now);
        free(p);
    }

    /* Without the intermediate, a new one is made under the existing root. */
    char *ik = path_in(dir, "intermediate.key");
    unlink(ip);
    unlink(ik);
    assert_int_equal(pki_ca_init_dir(dir, "Test", err), 0);
    char *rnow = slurp(rp);
    assert_string_equal(rnow, before[1]);
    X509 *inter2 = cert_file(ip);
    assert_int_equal(X509_verify(inter2, X509_get0_pubkey(root)), 1);
    assert_false(pki_key_equal(X509_get0_pubkey(inter), X509_get0_pubkey(inter2)));

    /* An intermediate certificate without its key is neither replaced nor accepted. */
    unlink(ik);
    char *ipem = slurp(ip);
    assert_int_equal(pki_ca_init_dir(dir, "Test", err), -1);
    char *ipem2 = slurp(ip);
    assert_string_equal(ipem, ipem2);
    assert_int_equal(access(ik, F_OK), -1);

    free(ipem);
    free(ipem2);
    free(rnow);
    X509_free(root);
    X509_free(inter);
    X509_free(inter2);
    for (size_t i = 0; i < nitems(files); i++)
        free(before[i]);
    free(rp);
    free(ip);
    free(ik);
    assert_int_equal(pki_ca_init_dir(dir, "", err), -1);
    tp_rmdir(dir);
    free(dir);
}

static void test_ca_load_rules(void **state)
{
    char err[ERR_LEN], *dir = NULL;
    struct pki_ca *ca = tp_ca_new(&dir);
    char *cert = path_in(dir, "intermediate.pem"), *key = path_in(dir, "intermediate.key");
    char *root = path_in(dir, "root.pem"), *rkey = path_in(dir, "root.key");
    char *missing = path_in(dir, "nope.pem");

    assert_string_equal(pki_ca_name(ca), "test");
    X509 *inter = cert_file(cert);
    assert_int_equal(X509_cmp(inter, pki_ca_cert(ca)), 0);
    assert_int_equal(pki_ca_not_after(ca), not_after_of(inter));
    /* The chain PEM is the CA certificate then the root. */
    const char *chain = pki_ca_chain_pem(ca);
    const char *second = strstr(chain + 1, "-----BEGIN CERTIFICATE-----");
    assert_non_null(second);
    assert_null(strstr(second + 1, "-----BEGIN CERTIFICATE-----"));
    X509 *c1 = tp_pem_cert(chain), *c2 = tp_pem_cert(second), *r = cert_file(root);
    assert_int_equal(X509_cmp(c1, inter), 0);
    assert_int_equal(X509_cmp(c2, r), 0);
    pki_ca_free(ca);

    static const unsigned modes[] = {0644, 0640, 0604, 0660};
    for (size_t i = 0; i < nitems(modes); i++) {
        assert_int_equal(chmod(key, modes[i]), 0);
        err[0] = '\0';
        assert_null(pki_ca_load("t", cert, key, NULL, err));
        assert_non_null(strstr(err, "must be 0600"));
    }
    assert_int_equal(chmod(key, 0600), 0);
    assert_null(pki_ca_load("t", cert, rkey, NULL, err)); /* key of another certificate */
    assert_non_null(strstr(err, "does not match"));
    assert_null(pki_ca_load("t", missing, key, NULL, err));
    assert_null(pki_ca_load("t", cert, key, missing, err));
    assert_null(pki_ca_load("t", key, key, NULL, err)); /* a key is not a certificate */
    ca = pki_ca_load("t", cert, key, NULL, err);
    assert_non_null(ca);
    assert_null(strstr(pki_ca_chain_pem(ca) + 1, "-----BEGIN CERTIFICATE-----"));
    pki_ca_free(ca);
    pki_ca_free(NULL);

    X509_free(inter);
    X509_free(c1);
    X509_free(c2);
    X509_free(r);
    free(cert);
    free(key);
    free(root);
    free(rkey);
    free(missing);
    tp_rmdir(dir);
    free(dir);
}

static void test_key_save_load(void **state)
{
    char err[ERR_LEN], *dir = tp_tmpdir();
    char *path = path_in(dir, "k.pem");
    for (int t = 0; t < PKI_KEY__MAX; t++) {
        if (t == PKI_KEY_RSA3072 || t == PKI_KEY_RSA4096)
            continue; /* slow to generate; same code path as RSA-2048 */
        EVP_PKEY *key = pki_key_generate((enum pki_key_type)t, err);
        assert_non_null(key);
        assert_int_equal(pki_key_save(key, path, err), 0);
        assert_int_equal(mode_of(path), 0600);
        char *pem = slurp(path);
        assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
        free(pem);
        EVP_PKEY *back = pki_key_load(path, err);
        assert_non_null(back);
        assert_true(pki_key_equal(key, back));
        assert_int_equal(pki_key_type_of(back), t);

        /* SPKI hash matches an independent computation. */
        unsigned char *der = NULL, md[32];
        int n = i2d_PUBKEY(key, &der);
        assert_true(n > 0);
        EVP_Digest(der, (size_t)n, md, NULL, EVP_sha256(), NULL);
        char want[65], got[65];
        hex_encode(md, 32, want);
        assert_int_equal(pki_key_spki_sha256_hex(back, got), 0);
        assert_string_equal(got, want);
        unsigned char *spki = NULL;
        size_t spki_len = 0;
        assert_int_equal(pki_key_spki_der(key, &spki, &spki_len), 0);
        assert_int_equal(spki_len, (size_t)n);
        assert_memory_equal(spki, der, spki_len);
        free(spki);
        OPENSSL_free(der);
        EVP_PKEY_free(back);
        EVP_PKEY_free(key);
    }
    /* Two different keys differ; garbage is not a key; NULL is not equal. */
    EVP_PKEY *a = pki_key_generate(PKI_KEY_P256, err), *b = pki_key_generate(PKI_KEY_P256, err);
    assert_false(pki_key_equal(a, b));
    assert_false(pki_key_equal(a, NULL));
    assert_null(pki_key_generate(PKI_KEY__MAX, err));
    assert_int_equal(file_write_atomic(path, "garbage\n", 8, 0600, err), 0);
    assert_null(pki_key_load(path, err));

    /* An encrypted key is refused without prompting for a passphrase. */
    BIO *bio = BIO_new(BIO_s_mem());
    char *enc = NULL;
    assert_int_equal(
        PEM_write_bio_PKCS8PrivateKey(bio, a, EVP_aes_256_cbc(), "secret", 6, NULL, NULL), 1);
    long enclen = BIO_get_mem_data(bio, &enc);
    assert_int_equal(file_write_atomic(path, enc, (size_t)enclen, 0600, err), 0);
    BIO_free(bio);
    assert_null(pki_key_load(path, err));
    assert_non_null(strstr(err, "unencrypted"));
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
    free(path);
    tp_rmdir(dir);
    free(dir);
}

int test_pki_ca_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca_init_dir),
        cmocka_unit_test(test_ca_load_rules),
        cmocka_unit_test(test_key_save_load),
    };
    return cmocka_run_group_tests_name("pki_ca", tests, NULL, NULL);
}
