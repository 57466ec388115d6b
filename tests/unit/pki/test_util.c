/* Helpers shared by the pki unit tests: fixtures, temp dirs, test CAs and CSRs. */
#include "test_pki.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

unsigned char *tp_fixture(const char *name, size_t *len)
{
    char path[512], err[ERR_LEN];
    char *data = NULL;
    snprintf(path, sizeof(path), "%s/%s", FIXTURE_DIR, name);
    assert_int_equal(file_read(path, 1 << 20, false, &data, len, err), 0);
    return (unsigned char *)data;
}

char *tp_tmpdir(void)
{
    char tmpl[] = "/tmp/attesta-pki-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    return xstrdup(tmpl);
}

void tp_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *p = xasprintf("%s/%s", dir, e->d_name);
        unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
}

struct pki_ca *tp_ca_new(char **dirp)
{
    char err[ERR_LEN];
    char *dir = tp_tmpdir();
    assert_int_equal(pki_ca_init_dir(dir, "Test", err), 0);
    char *cert = xasprintf("%s/intermediate.pem", dir);
    char *key = xasprintf("%s/intermediate.key", dir);
    char *root = xasprintf("%s/root.pem", dir);
    struct pki_ca *ca = pki_ca_load("test", cert, key, root, err);
    if (ca == NULL)
        fail_msg("pki_ca_load: %s", err);
    free(cert);
    free(key);
    free(root);
    *dirp = dir;
    return ca;
}

unsigned char *tp_csr_der_sans(EVP_PKEY *key, const char *cn, GENERAL_NAMES *gens, size_t *len)
{
    return tp_csr_der_exts(key, cn, gens, NULL, len);
}

unsigned char *tp_csr_der_exts(EVP_PKEY *key, const char *cn, GENERAL_NAMES *gens,
                               const STACK_OF(X509_EXTENSION) *more, size_t *len)
{
    X509_REQ *req = X509_REQ_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    assert_non_null(req);
    assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
    if (cn != NULL)
        assert_int_equal(X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN",
                                                    MBSTRING_UTF8, (const unsigned char *)cn, -1,
                                                    -1, 0),
                         1);
    if (gens != NULL && sk_GENERAL_NAME_num(gens) > 0)
        X509V3_add1_i2d(&exts, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT);
    for (int i = 0; i < sk_X509_EXTENSION_num(more); i++)
        X509v3_add_ext(&exts, sk_X509_EXTENSION_value(more, i), -1);
    if (sk_X509_EXTENSION_num(exts) > 0)
        assert_int_equal(X509_REQ_add_extensions(req, exts), 1);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    const EVP_MD *md = EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
    assert_true(X509_REQ_sign(req, key, md) > 0);
    unsigned char *der = NULL;
    int n = i2d_X509_REQ(req, &der);
    assert_true(n > 0);
    X509_REQ_free(req);
    *len = (size_t)n;
    return pki_ossl_to_heap(der, (size_t)n);
}

unsigned char *tp_csr_der(EVP_PKEY *key, const char *cn, const char *const *dns, size_t *len)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    for (size_t i = 0; dns != NULL && dns[i] != NULL; i++) {
        GENERAL_NAME *gn = GENERAL_NAME_new();
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        ASN1_STRING_set(s, dns[i], -1);
        GENERAL_NAME_set0_value(gn, GEN_DNS, s);
        sk_GENERAL_NAME_push(gens, gn);
    }
    unsigned char *der = tp_csr_der_sans(key, cn, gens, len);
    GENERAL_NAMES_free(gens);
    return der;
}

GENERAL_NAMES *tp_san_round_trip(enum pki_san_type type, const char *value)
{
    char err[ERR_LEN] = "";
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *gn = pki_san_to_general_name(type, value, err);
    unsigned char *der = NULL;
    const unsigned char *p;
    int n;

    if (gn == NULL)
        fail_msg("%s: %s", value, err);
    sk_GENERAL_NAME_push(gens, gn);
    n = i2d_GENERAL_NAMES(gens, &der);
    assert_true(n > 0);
    GENERAL_NAMES_free(gens);
    p = der;
    gens = d2i_GENERAL_NAMES(NULL, &p, n);
    assert_non_null(gens);
    assert_ptr_equal(p, der + n);
    OPENSSL_free(der);
    assert_int_equal(sk_GENERAL_NAME_num(gens), 1);
    return gens;
}

ASN1_SEQUENCE_ANY *tp_othername_seq(const GENERAL_NAME *gn, const char *type_oid, int n)
{
    char txt[64];
    const ASN1_TYPE *v;
    const unsigned char *p;
    ASN1_SEQUENCE_ANY *seq;

    assert_int_equal(gn->type, GEN_OTHERNAME);
    assert_true(OBJ_obj2txt(txt, sizeof(txt), gn->d.otherName->type_id, 1) > 0);
    assert_string_equal(txt, type_oid);
    v = gn->d.otherName->value;
    assert_int_equal(v->type, V_ASN1_SEQUENCE);
    p = ASN1_STRING_get0_data(v->value.sequence);
    seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, ASN1_STRING_length(v->value.sequence));
    assert_non_null(seq);
    assert_int_equal(sk_ASN1_TYPE_num(seq), n);
    return seq;
}

GENERAL_NAME *tp_othername_der(const char *oid, const void *der, size_t len)
{
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_STRING *seq = ASN1_STRING_type_new(V_ASN1_SEQUENCE);
    ASN1_TYPE *t = ASN1_TYPE_new();

    assert_int_equal(ASN1_STRING_set(seq, der, (int)len), 1);
    ASN1_TYPE_set(t, V_ASN1_SEQUENCE, seq);
    assert_int_equal(GENERAL_NAME_set0_othername(gn, OBJ_txt2obj(oid, 1), t), 1);
    return gn;
}

X509 *tp_pem_cert(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_non_null(x);
    return x;
}
