/*
 * The simulator's Apple-like chains must be exactly what the attest module
 * accepts from a real device, and each injected defect must be caught.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "attest/attest.h"
#include "pki/pki.h"
#include "tools/fake_apple.h"

struct fixture {
    char dir[64];
    char root[128];
    struct fa_ca ca;
    struct att_verifier *v;
    EVP_PKEY *device;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[ERR_LEN];
    snprintf(f->dir, sizeof(f->dir), "/tmp/attesta-fa.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(fa_ca_init_dir(f->dir, err), 0);
    assert_int_equal(fa_ca_load(f->dir, &f->ca, err), 0);
    snprintf(f->root, sizeof(f->root), "%s/apple-root.pem", f->dir);
    const char *roots[] = {f->root};
    f->v = att_verifier_new(roots, 1, err);
    assert_non_null(f->v);
    f->device = pki_key_generate(PKI_KEY_P384, err);
    assert_non_null(f->device);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    fa_ca_clear(&f->ca);
    att_verifier_free(f->v);
    EVP_PKEY_free(f->device);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Builds an attObj for the options and runs the verifier's checks on it. */
static enum att_result run(struct fixture *f, const struct fa_leaf_opts *o, const char *token,
                           const char *identifier, struct att_claims *c)
{
    char err[ERR_LEN];
    X509 *leaf = NULL;
    unsigned char *cbor = NULL;
    size_t len = 0;
    assert_int_equal(fa_leaf_issue(&f->ca, f->device, o, &leaf, err), 0);
    X509 *chain[2] = {leaf, f->ca.sub};
    assert_int_equal(fa_attobj_build(chain, 2, &cbor, &len), 0);
    enum att_result r = att_verify(f->v, cbor, len, clk_now(), c, err);
    if (r == ATT_OK)
        r = att_check_nonce(c, token, true, err);
    if (r == ATT_OK)
        r = att_check_identity(c, identifier, true, true, err);
    X509_free(leaf);
    free(cbor);
    return r;
}

static void test_chain_rows(void **state)
{
    struct fixture *f = *state;
    const char *token = "sE9kBcLh8pP0v7bQ1u0m1A";
    unsigned char nonce[32], bad_nonce[32];
    int64_t now = clk_now();
    pki_sha256(token, strlen(token), nonce);
    memcpy(bad_nonce, nonce, 32);
    bad_nonce[31] ^= 0x80;
    const struct {
        const char *name;
        struct fa_leaf_opts o;
        const char *identifier;
        enum att_result want;
    } rows[] = {
        {"good serial", {"SIMSERIAL1", "UDID-1", "26.1", "26.1", nonce, 32, now - 60, now + 86400},
         "SIMSERIAL1", ATT_OK},
        {"good udid", {"SIMSERIAL1", "UDID-1", "26.1", "26.1", nonce, 32, now - 60, now + 86400},
         "UDID-1", ATT_OK},
        {"wrong nonce", {"SIMSERIAL1", "UDID-1", "26.1", "26.1", bad_nonce, 32, now - 60, now + 86400},
         "SIMSERIAL1", ATT_ERR_NONCE},
        {"no nonce", {"SIMSERIAL1", "UDID-1", "26.1", "26.1", nonce, 0, now - 60, now + 86400},
         "SIMSERIAL1", ATT_ERR_NONCE},
        {"other serial", {"SIMSERIAL2", "UDID-2", "26.1", "26.1", nonce, 32, now - 60, now + 86400},
         "SIMSERIAL1", ATT_ERR_IDENTITY},
        {"expired", {"SIMSERIAL1", "UDID-1", "26.1", "26.1", nonce, 32, now - 900, now - 60},
         "SIMSERIAL1", ATT_ERR_VALIDITY},
        {"not yet valid", {"SIMSERIAL1", "UDID-1", "26.1", "26.1", nonce, 32, now + 60, now + 900},
         "SIMSERIAL1", ATT_ERR_VALIDITY},
    };
    for (size_t i = 0; i < nitems(rows); i++) {
        struct att_claims c;
        memset(&c, 0, sizeof(c));
        enum att_result r = run(f, &rows[i].o, token, rows[i].identifier, &c);
        if (r != rows[i].want)
            fail_msg("%s: got %d want %d", rows[i].name, r, rows[i].want);
        if (r == ATT_OK) {
            assert_string_equal(c.serial, "SIMSERIAL1");
            assert_string_equal(c.udid, "UDID-1");
            assert_string_equal(c.os_version, "26.1");
            char hex[65];
            assert_int_equal(pki_key_spki_sha256_hex(f->device, hex), 0);
            assert_string_equal(c.spki_sha256, hex);
        }
        att_claims_clear(&c);
    }
}

static void test_untrusted_root(void **state)
{
    struct fixture *f = *state;
    struct fixture other = {0};
    char err[ERR_LEN];
    snprintf(other.dir, sizeof(other.dir), "/tmp/attesta-fa2.XXXXXX");
    assert_non_null(mkdtemp(other.dir));
    assert_int_equal(fa_ca_init_dir(other.dir, err), 0);
    assert_int_equal(fa_ca_load(other.dir, &other.ca, err), 0);
    other.v = f->v; /* trusts only f's root */
    other.device = f->device;
    unsigned char nonce[32];
    pki_sha256("t", 1, nonce);
    struct fa_leaf_opts o = {"S", "U", "1", "1", nonce, 32, clk_now() - 60, clk_now() + 600};
    struct att_claims c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(run(&other, &o, "t", "S", &c), ATT_ERR_CHAIN);
    att_claims_clear(&c);
    fa_ca_clear(&other.ca);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", other.dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chain_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_untrusted_root, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
