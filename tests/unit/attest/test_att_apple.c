/*
 * Unit tests for attest/att_apple.c and att_claims.c: the real Apple vectors at
 * fixed times, wrong roots, a throwaway PKI for the cases Apple never signs,
 * the nonce and identity checks, and the verifier shared by threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "test_att.h"

#define DAY 86400
#define WRP_TOKEN                                                                                  \
    "qKxKds4zZk81flmOxcOmQVYSL0xkeg88tLBfXd7ghhJ/QYjW5ZKBAzASJ0TPwseWv38jW61NESGDtGsJqdzJ9Q=="
#define WRP_UDID "00006021-0014182A11C0201E"

static int64_t t_at(const char *rfc3339)
{
    int64_t t = 0;
    assert_int_equal(clk_parse_rfc3339(rfc3339, &t), 0);
    return t;
}

/* Verifies a vector file: .pem as a chain, anything else as a raw attObj. */
static enum att_result verify_file(const struct att_verifier *v, const char *file, int64_t at,
                                   struct att_claims *c, char err[ERR_LEN])
{
    size_t len = 0;
    unsigned char *p = t_read_vec(file, &len);
    enum att_result r = strstr(file, ".pem") != NULL
                            ? att_verify_chain_pem(v, (const char *)p, len, at, c, err)
                            : att_verify(v, p, len, at, c, err);
    free(p);
    return r;
}

static const struct vec_row {
    const char *file, *serial, *udid, *os, *nonce, *spki, *nb, *na;
    enum att_result in_window; /* result inside the validity window */
} vec_rows[] = {
    {"nanoca_leaf_TMWFWWWP67.pem", "TMWFWWWP67", "00006030-000651690A84001C", "15.5",
     "9ff219c2831313c8190b63e9dd8f80aa0a4a9737a58daa931da8abde2f2d5d62",
     "8f879ebba151359d13f34e9056c80fd71c3724431917db2d547bd34dbee4f9b4", "2025-07-13T09:38:07Z",
     "2025-10-12T09:38:07Z", ATT_ERR_CHAIN /* no intermediate */},
    {"attobj_TMWFWWWP67.cbor", "TMWFWWWP67", "00006030-000651690A84001C", "15.5",
     "9ff219c2831313c8190b63e9dd8f80aa0a4a9737a58daa931da8abde2f2d5d62",
     "8f879ebba151359d13f34e9056c80fd71c3724431917db2d547bd34dbee4f9b4", "2025-07-13T09:38:07Z",
     "2025-10-12T09:38:07Z", ATT_OK},
    {"mdm_chain_WRPWFW61H9.pem", "WRPWFW61H9", WRP_UDID, "26.2",
     "984a169f28cd03dd50df4772724174bf3573486b20384918fe44eca467d86a98",
     "079078c432eb1da1cd7c0a27082e678ccaf706ffa38987cbb6c02b3d669abae3", "2026-04-28T19:37:06Z",
     "2026-07-28T19:37:06Z", ATT_OK},
    {"attobj_WRPWFW61H9.cbor", "WRPWFW61H9", WRP_UDID, "26.2",
     "984a169f28cd03dd50df4772724174bf3573486b20384918fe44eca467d86a98",
     "079078c432eb1da1cd7c0a27082e678ccaf706ffa38987cbb6c02b3d669abae3", "2026-04-28T19:37:06Z",
     "2026-07-28T19:37:06Z", ATT_OK},
    {"mdm_chain_WV0NCDC2TX.pem", "WV0NCDC2TX", "00006032-001C704A1A92401C", "26.2",
     "c97fdba5344f1a3e10f571e9331b252a7e34b2a600fa28e9ee6be0d5981d0032",
     "f6e8f16a73ffc0342b636a0f68b8f47c6be98ea19da8275658a887c51f96ace0", "2026-05-05T13:10:12Z",
     "2026-08-04T13:10:12Z", ATT_OK},
    {"mdm_chain_HH0K6TJY0J.pem", "HH0K6TJY0J", "00006041-0002315A3E0A401C", "26.4.1",
     "50b295bd88cf6977d95e000845d9dd8250d64e9ce08371f80e33f4ac14ff3d26",
     "82b036927517e6b64535e2dec1cd2b28c9e0ef9ff71ed60154ad231a5509fda2", "2026-04-24T13:03:27Z",
     "2026-07-24T13:03:27Z", ATT_OK},
};

static void check_claims(const struct vec_row *row, const struct att_claims *c)
{
    char hex[65];
    unsigned char md[32];
    unsigned int mdlen = 0;

    assert_string_equal(c->serial, row->serial);
    assert_string_equal(c->udid, row->udid);
    assert_string_equal(c->os_version, row->os);
    assert_string_equal(c->sepos_version, row->os);
    assert_string_equal(c->llb_version, row->os);
    assert_int_equal(c->nonce_len, 32);
    assert_string_equal(hex_encode(c->nonce, c->nonce_len, hex), row->nonce);
    assert_string_equal(c->spki_sha256, row->spki);
    assert_int_equal(EVP_Digest(c->spki_der, c->spki_len, md, &mdlen, EVP_sha256(), NULL), 1);
    assert_string_equal(hex_encode(md, mdlen, hex), row->spki);
    assert_int_equal(c->not_before, t_at(row->nb));
    assert_int_equal(c->not_after, t_at(row->na));
}

static void test_vectors(void **state)
{
    char err[ERR_LEN] = "";
    struct att_verifier *v = att_verifier_new(NULL, 0, err);
    assert_non_null(v);
    for (size_t i = 0; i < nitems(vec_rows); i++) {
        const struct vec_row *row = &vec_rows[i];
        int64_t nb = t_at(row->nb), na = t_at(row->na);
        const struct {
            int64_t at;
            enum att_result want;
        } times[] = {
            {nb + DAY, row->in_window},
            {na - 1, row->in_window},
            {nb - 60, row->in_window == ATT_OK ? ATT_ERR_VALIDITY : ATT_ERR_CHAIN},
            {na + 1, row->in_window == ATT_OK ? ATT_ERR_VALIDITY : ATT_ERR_CHAIN},
            {(int64_t)time(NULL), row->in_window == ATT_OK ? ATT_ERR_VALIDITY : ATT_ERR_CHAIN},
        };
        for (size_t k = 0; k < nitems(times); k++) {
            struct att_claims c = {0};
            err[0] = '\0';
            enum att_result r = verify_file(v, row->file, times[k].at, &c, err);
            print_message("%s at %lld: %d %s\n", row->file, (long long)times[k].at, r, err);
            assert_int_equal(r, times[k].want);
            if (r == ATT_ERR_VALIDITY)
                assert_non_null(strstr(err, times[k].at < nb ? "not yet valid" : "expired"));
            if (r == ATT_ERR_CHAIN)
                assert_non_null(strstr(err, "unable to get local issuer certificate"));
            /* claims are filled even when the chain fails (inspect shows them) */
            check_claims(row, &c);
            att_claims_clear(&c);
            assert_null(c.spki_der);
        }
    }
    att_verifier_free(v);
}

static void wrp_claims(struct att_claims *c)
{
    char err[ERR_LEN] = "";
    struct att_verifier *v = att_verifier_new(NULL, 0, err);
    assert_non_null(v);
    assert_int_equal(verify_file(v, "attobj_WRPWFW61H9.cbor", t_at("2026-05-01T00:00:00Z"), c, err),
                     ATT_OK);
    att_verifier_free(v);
}

static void test_nonce(void **state)
{
    struct att_claims c = {0};
    char err[ERR_LEN] = "";
    unsigned char md[32];
    unsigned int mdlen = 0;

    wrp_claims(&c);
    /* the published preimage hashes to the leaf's raw 32-byte freshness code */
    assert_int_equal(EVP_Digest(WRP_TOKEN, strlen(WRP_TOKEN), md, &mdlen, EVP_sha256(), NULL), 1);
    assert_memory_equal(md, c.nonce, 32);
    assert_int_equal(att_check_nonce(&c, WRP_TOKEN, true, err), ATT_OK);
    assert_int_equal(att_check_nonce(&c, WRP_TOKEN, false, err), ATT_OK);

    static const char *const bad[] = {
        WRP_TOKEN "x", "", "qKxKds4zZk81flmOxcOmQVYSL0xkeg88",
        "984a169f28cd03dd50df4772724174bf3573486b20384918fe44eca467d86a98"};
    for (size_t i = 0; i < nitems(bad); i++) {
        err[0] = '\0';
        assert_int_equal(att_check_nonce(&c, bad[i], true, err), ATT_ERR_NONCE);
        assert_string_equal(err, "freshness nonce does not match SHA-256 of the challenge token");
    }
    c.nonce_len = 16; /* a short (MDM-style) code never matches a SHA-256 */
    assert_int_equal(att_check_nonce(&c, WRP_TOKEN, true, err), ATT_ERR_NONCE);
    c.nonce_len = 0;
    assert_int_equal(att_check_nonce(&c, WRP_TOKEN, true, err), ATT_ERR_NONCE);
    assert_string_equal(err, "attestation has no freshness nonce (OID 1.2.840.113635.100.8.11.1)");
    assert_int_equal(att_check_nonce(&c, WRP_TOKEN, false, err), ATT_OK);
    att_claims_clear(&c);
}

static void test_identity(void **state)
{
    static const struct {
        const char *id;
        bool serial, udid;
        enum att_result want;
        const char *detail;
    } rows[] = {
        {"WRPWFW61H9", true, true, ATT_OK, NULL},
        {WRP_UDID, true, true, ATT_OK, NULL},
        {"WRPWFW61H9", true, false, ATT_OK, NULL},
        {WRP_UDID, false, true, ATT_OK, NULL},
        {WRP_UDID, true, false, ATT_ERR_IDENTITY,
         "identifier \"" WRP_UDID "\" does not match the attested serial \"WRPWFW61H9\""},
        {"WRPWFW61H9", false, true, ATT_ERR_IDENTITY, "does not match the attested UDID"},
        {"wrpwfw61h9", true, true, ATT_ERR_IDENTITY,
         "identifier \"wrpwfw61h9\" matches neither the attested serial \"WRPWFW61H9\" nor UDID "
         "\"" WRP_UDID "\""},
        {"00006021-0014182a11c0201e", true, true, ATT_ERR_IDENTITY, "matches neither"},
        {"WRPWFW61H9 ", true, true, ATT_ERR_IDENTITY, "matches neither"},
        {"WRPWFW61H", true, true, ATT_ERR_IDENTITY, "matches neither"},
        {"", true, true, ATT_ERR_IDENTITY, "identifier is empty"},
        {"WRPWFW61H9", false, false, ATT_ERR_IDENTITY, "neither serial nor UDID is accepted"},
        {"a\"b\n", true, true, ATT_ERR_IDENTITY, "identifier \"a\\x22b\\x0a\""},
    };
    struct att_claims c = {0};
    char err[ERR_LEN];

    wrp_claims(&c);
    for (size_t i = 0; i < nitems(rows); i++) {
        err[0] = '\0';
        assert_int_equal(att_check_identity(&c, rows[i].id, rows[i].serial, rows[i].udid, err),
                         rows[i].want);
        if (rows[i].detail != NULL)
            assert_non_null(strstr(err, rows[i].detail));
    }
    assert_int_equal(att_check_identity(&c, NULL, true, true, err), ATT_ERR_IDENTITY);
    /* an absent claim never matches, whatever the identifier */
    c.serial[0] = '\0';
    c.udid[0] = '\0';
    assert_int_equal(att_check_identity(&c, "WRPWFW61H9", true, true, err), ATT_ERR_IDENTITY);
    att_claims_clear(&c);
}

static void test_roots(void **state)
{
    char err[ERR_LEN] = "";
    EVP_PKEY *k = t_key();
    X509 *root = t_cert(k, k, NULL, 1, 0, 4102444800, NULL, 0);
    char *mine = t_write_pem(root);
    const char *apple = VEC_DIR "apple_enterprise_attestation_root_ca.pem";
    const int64_t at = t_at("2026-05-01T00:00:00Z");
    struct att_claims c = {0};

    const char *only_mine[] = {mine};
    struct att_verifier *v = att_verifier_new(only_mine, 1, err);
    assert_non_null(v);
    assert_int_equal(verify_file(v, "attobj_WRPWFW61H9.cbor", at, &c, err), ATT_ERR_CHAIN);
    assert_non_null(strstr(err, "unable to get local issuer certificate"));
    att_verifier_free(v);

    const char *both[] = {mine, apple};
    v = att_verifier_new(both, 2, err);
    assert_non_null(v);
    assert_int_equal(verify_file(v, "attobj_WRPWFW61H9.cbor", at, &c, err), ATT_OK);
    att_verifier_free(v);

    static const char *const bad[][2] = {
        {"/nonexistent/root.pem", "cannot open"},
        {VEC_DIR "attobj_WRPWFW61H9.cbor", "no valid PEM"},
    };
    for (size_t i = 0; i < nitems(bad); i++) {
        const char *one[] = {bad[i][0]};
        err[0] = '\0';
        assert_null(att_verifier_new(one, 1, err));
        assert_non_null(strstr(err, bad[i][1]));
    }
    att_verifier_free(NULL);
    att_claims_clear(&c);
    unlink(mine);
    free(mine);
    X509_free(root);
    EVP_PKEY_free(k);
}

/* A throwaway root and leaves carrying Apple OIDs, for what Apple never signs. */
struct pki {
    EVP_PKEY *root_key, *leaf_key;
    X509 *root;
    char *root_path;
    struct att_verifier *v;
};

static void pki_init(struct pki *p)
{
    char err[ERR_LEN] = "";
    p->root_key = t_key();
    p->leaf_key = t_key();
    p->root = t_cert(p->root_key, p->root_key, NULL, 1, 1767225600, 4102444800, NULL, 0);
    p->root_path = t_write_pem(p->root);
    const char *roots[] = {p->root_path};
    p->v = att_verifier_new(roots, 1, err);
    assert_non_null(p->v);
}

static void pki_clear(struct pki *p)
{
    att_verifier_free(p->v);
    unlink(p->root_path);
    free(p->root_path);
    X509_free(p->root);
    EVP_PKEY_free(p->root_key);
    EVP_PKEY_free(p->leaf_key);
}

static enum att_result verify_x509(const struct pki *p, X509 *leaf, struct att_claims *c,
                                   char err[ERR_LEN])
{
    struct slice s;
    struct buf b = {0};
    size_t len = 0;
    unsigned char *der = t_der(leaf, &len);
    s.p = der;
    s.len = len;
    cb_attobj(&b, &s, 1);
    enum att_result r =
        att_verify(p->v, (const unsigned char *)b.p, b.len, t_at("2026-06-01T00:00:00Z"), c, err);
    buf_free(&b);
    OPENSSL_free(der);
    return r;
}

/* Apple OIDs on a throwaway leaf: serial SER1, UDID UD1, nonce SHA-256("tok"). */
static void good_exts(struct t_ext exts[3], unsigned char md[32])
{
    unsigned int mdlen = 0;
    assert_int_equal(EVP_Digest("tok", 3, md, &mdlen, EVP_sha256(), NULL), 1);
    exts[0] = (struct t_ext){"1.2.840.113635.100.8.9.1", "SER1", 4, 0};
    exts[1] = (struct t_ext){"1.2.840.113635.100.8.9.2", "UD1", 3, 0};
    exts[2] = (struct t_ext){"1.2.840.113635.100.8.11.1", md, 32, 0};
}

static void test_custom_leaves(void **state)
{
    unsigned char tok_md[32];
    struct t_ext good[3];
    good_exts(good, tok_md);
    const struct {
        const char *name;
        struct t_ext ext; /* added after the good ones; oid NULL: none */
        enum att_result want;
        const char *detail;
    } rows[] = {
        {"valid leaf", {NULL, NULL, 0, 0}, ATT_OK, NULL},
        {"unknown critical extension",
         {"1.2.3.4.5", "x", 1, 1},
         ATT_ERR_CHAIN,
         "unhandled critical"},
        {"unknown non-critical extension", {"1.2.3.4.5", "x", 1, 0}, ATT_OK, NULL},
        {"second nonce",
         {"1.2.840.113635.100.8.11.1", tok_md, 32, 0},
         ATT_ERR_FORMAT,
         "more than one freshness nonce"},
        {"second serial",
         {"1.2.840.113635.100.8.9.1", "SER2", 4, 0},
         ATT_ERR_FORMAT,
         "more than one serial"},
    };
    struct pki p;
    char err[ERR_LEN];
    int64_t nb = t_at("2026-05-01T00:00:00Z"), na = t_at("2026-08-01T00:00:00Z");

    pki_init(&p);
    for (size_t i = 0; i < nitems(rows); i++) {
        struct t_ext exts[4];
        size_t n = nitems(good);
        memcpy(exts, good, sizeof(good));
        if (rows[i].ext.oid != NULL)
            exts[n++] = rows[i].ext;
        X509 *leaf = t_cert(p.leaf_key, p.root_key, p.root, 0, nb, na, exts, n);
        struct att_claims c = {0};
        err[0] = '\0';
        print_message("custom leaf: %s\n", rows[i].name);
        assert_int_equal(verify_x509(&p, leaf, &c, err), rows[i].want);
        if (rows[i].detail != NULL)
            assert_non_null(strstr(err, rows[i].detail));
        if (rows[i].want == ATT_OK) {
            assert_string_equal(c.serial, "SER1");
            assert_string_equal(c.udid, "UD1");
            assert_string_equal(c.os_version, "");
            assert_int_equal(att_check_nonce(&c, "tok", true, err), ATT_OK);
            assert_int_equal(att_check_identity(&c, "UD1", true, true, err), ATT_OK);
        }
        att_claims_clear(&c);
        X509_free(leaf);
    }
    pki_clear(&p);
}

static void test_custom_bad_claims(void **state)
{
    static const unsigned char nonce33[33] = {1};
    static const char long_serial[] =
        "0123456789012345678901234567890123456789012345678901234567890123";
    static const struct {
        const char *name;
        struct t_ext ext; /* replaces the serial */
        const char *detail;
    } rows[] = {
        {"serial with control char", {"1.2.840.113635.100.8.9.1", "SE\nR", 4, 0}, "not printable"},
        {"serial with high byte",
         {"1.2.840.113635.100.8.9.1", "SE\xc3\xa9", 4, 0},
         "not printable"},
        {"serial 64 bytes", {"1.2.840.113635.100.8.9.1", long_serial, 64, 0}, "(max 63)"},
        {"nonce 33 bytes", {"1.2.840.113635.100.8.11.1", nonce33, 33, 0}, "33 bytes (max 32)"},
    };
    unsigned char tok_md[32];
    struct t_ext exts[3];
    struct pki p;
    char err[ERR_LEN];
    int64_t nb = t_at("2026-05-01T00:00:00Z"), na = t_at("2026-08-01T00:00:00Z");

    pki_init(&p);
    for (size_t i = 0; i < nitems(rows); i++) {
        good_exts(exts, tok_md);
        exts[0] = rows[i].ext;
        X509 *leaf = t_cert(p.leaf_key, p.root_key, p.root, 0, nb, na, exts, nitems(exts));
        struct att_claims c = {0};
        err[0] = '\0';
        print_message("bad claim: %s\n", rows[i].name);
        assert_int_equal(att_claims_extract(leaf, &c, err), ATT_ERR_FORMAT);
        assert_non_null(strstr(err, rows[i].detail));
        assert_int_equal(verify_x509(&p, leaf, &c, err), ATT_ERR_FORMAT);
        att_claims_clear(&c);
        X509_free(leaf);
    }
    pki_clear(&p);
}

static void test_custom_chain_faults(void **state)
{
    struct pki p;
    struct att_claims c = {0};
    char err[ERR_LEN] = "";
    int64_t nb = t_at("2026-05-01T00:00:00Z"), na = t_at("2026-08-01T00:00:00Z");

    pki_init(&p);
    /* the trusted root itself as x5c[0]: a CA is not an attestation leaf */
    assert_int_equal(verify_x509(&p, p.root, &c, err), ATT_ERR_CHAIN);
    assert_non_null(strstr(err, "is a CA certificate"));
    /* right issuer name, wrong signing key */
    EVP_PKEY *other = t_key();
    X509 *forged = t_cert(p.leaf_key, other, p.root, 0, nb, na, NULL, 0);
    assert_int_equal(verify_x509(&p, forged, &c, err), ATT_ERR_CHAIN);
    assert_non_null(strstr(err, "signature"));
    X509_free(forged);
    EVP_PKEY_free(other);
    att_claims_clear(&c);
    pki_clear(&p);
}

/* leaf (by sub) and sub (by the root) as an attestation object, verified at `at`. */
static enum att_result verify_pair(const struct pki *p, X509 *leaf, X509 *sub, int64_t at,
                                   char err[ERR_LEN])
{
    struct slice s[2];
    struct buf b = {0};
    size_t l0 = 0, l1 = 0;
    unsigned char *d0 = t_der(leaf, &l0), *d1 = t_der(sub, &l1);
    struct att_claims c = {0};
    s[0] = (struct slice){d0, l0};
    s[1] = (struct slice){d1, l1};
    cb_attobj(&b, s, 2);
    err[0] = '\0';
    enum att_result r = att_verify(p->v, (const unsigned char *)b.p, b.len, at, &c, err);
    att_claims_clear(&c);
    buf_free(&b);
    OPENSSL_free(d0);
    OPENSSL_free(d1);
    return r;
}

/*
 * The sub CA cache (att_subca.c): after one good verification the sub CA is
 * trusted on its own, which must still refuse a forged leaf, a leaf outside its
 * window and any time at which the root itself is not valid.
 */
static void test_subca_cache(void **state)
{
    struct pki p;
    char err[ERR_LEN];
    unsigned char md[32];
    struct t_ext good[3];
    int64_t nb = t_at("2026-05-01T00:00:00Z"), na = t_at("2027-08-01T00:00:00Z");
    int64_t in = t_at("2026-06-01T00:00:00Z"), root_gone = t_at("2027-02-01T00:00:00Z");

    good_exts(good, md);
    pki_init(&p);
    /* a root that ends before its sub CA and leaf do */
    att_verifier_free(p.v);
    X509_free(p.root);
    p.root = t_cert(p.root_key, p.root_key, NULL, 1, t_at("2026-01-01T00:00:00Z"),
                    t_at("2027-01-01T00:00:00Z"), NULL, 0);
    unlink(p.root_path);
    free(p.root_path);
    p.root_path = t_write_pem(p.root);
    const char *roots[] = {p.root_path};
    p.v = att_verifier_new(roots, 1, err);
    assert_non_null(p.v);
    EVP_PKEY *sub_key = t_key(), *other = t_key();
    X509 *sub = t_cert(sub_key, p.root_key, p.root, 1, nb, na, NULL, 0);
    X509 *leaf = t_cert(p.leaf_key, sub_key, sub, 0, nb, na, good, nitems(good));
    X509 *forged = t_cert(p.leaf_key, other, sub, 0, nb, na, good, nitems(good));
    for (int round = 0; round < 2; round++) {
        assert_int_equal(verify_pair(&p, leaf, sub, in, err), ATT_OK);
        assert_int_equal(verify_pair(&p, forged, sub, in, err), ATT_ERR_CHAIN);
        assert_non_null(strstr(err, "signature"));
        assert_int_equal(verify_pair(&p, leaf, sub, nb - 60, err), ATT_ERR_VALIDITY);
        assert_int_not_equal(verify_pair(&p, leaf, sub, root_gone, err), ATT_OK);
        assert_non_null(strstr(err, "expired"));
    }
    X509_free(forged);
    X509_free(leaf);
    X509_free(sub);
    EVP_PKEY_free(sub_key);
    EVP_PKEY_free(other);
    pki_clear(&p);
}

static void test_pem_limits(void **state)
{
    char err[ERR_LEN] = "";
    struct att_verifier *v = att_verifier_new(NULL, 0, err);
    struct att_claims c = {0};
    size_t len = 0;
    unsigned char *chain = t_read_vec("mdm_chain_WRPWFW61H9.pem", &len);
    struct buf five = {0}, broken = {0};
    for (int i = 0; i < 3; i++)
        buf_append(&five, chain, len);
    buf_append(&broken, chain, len);
    buf_puts(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    char *big = xcalloc(1, ATT_MAX_PEM + 2);
    memset(big, 'A', ATT_MAX_PEM + 1);

    const struct {
        const char *name, *pem;
        size_t len;
        const char *detail;
    } rows[] = {
        {"empty", "", 0, "empty"},
        {"not PEM", "hello", 5, "no certificate"},
        {"six certificates", five.p, five.len, "one too many"},
        {"broken second block", broken.p, broken.len, "broken"},
        {"oversize", big, ATT_MAX_PEM + 1, "over"},
    };
    for (size_t i = 0; i < nitems(rows); i++) {
        err[0] = '\0';
        print_message("pem row: %s\n", rows[i].name);
        assert_int_equal(att_verify_chain_pem(v, rows[i].pem, rows[i].len, 1777593600, &c, err),
                         ATT_ERR_FORMAT);
        assert_non_null(strstr(err, rows[i].detail));
        att_claims_clear(&c);
    }
    free(big);
    buf_free(&five);
    buf_free(&broken);
    free(chain);
    att_verifier_free(v);
}

struct thread_arg {
    const struct att_verifier *v;
    const unsigned char *obj;
    size_t len;
    int ok;
};

static void *verify_loop(void *arg)
{
    struct thread_arg *a = arg;
    for (int i = 0; i < 25; i++) {
        struct att_claims c = {0};
        char err[ERR_LEN];
        if (att_verify(a->v, a->obj, a->len, 1777593600, &c, err) == ATT_OK &&
            strcmp(c.serial, "WRPWFW61H9") == 0)
            a->ok++;
        att_claims_clear(&c);
    }
    return NULL;
}

/* One verifier, several threads: the store is only read. */
static void test_shared_verifier(void **state)
{
    char err[ERR_LEN] = "";
    struct att_verifier *v = att_verifier_new(NULL, 0, err);
    size_t len = 0;
    unsigned char *obj = t_read_vec("attobj_WRPWFW61H9.cbor", &len);
    pthread_t th[4];
    struct thread_arg args[4];

    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){v, obj, len, 0};
        assert_int_equal(pthread_create(&th[i], NULL, verify_loop, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].ok, 25);
    }
    free(obj);
    att_verifier_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_nonce),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_roots),
        cmocka_unit_test(test_custom_leaves),
        cmocka_unit_test(test_custom_bad_claims),
        cmocka_unit_test(test_custom_chain_faults),
        cmocka_unit_test(test_subca_cache),
        cmocka_unit_test(test_pem_limits),
        cmocka_unit_test(test_shared_verifier),
    };
    int failed = cmocka_run_group_tests_name("att_apple", tests, NULL, NULL);
    return failed + t_cbor_group();
}
