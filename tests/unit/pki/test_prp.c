/*
 * test_prp.c: the one-block AES-256 permutation behind nonces (pki_prp_*):
 * the FIPS-197 vector in both directions, and contexts that stay correct
 * when reused block after block in both directions.
 */
#include "test_pki.h"

#include <string.h>

static void test_prp_fips197(void **state)
{
    /* FIPS-197 appendix C.3: AES-256. */
    unsigned char key[PKI_PRP_KEY], pt[PKI_PRP_BLOCK], ct[PKI_PRP_BLOCK], back[PKI_PRP_BLOCK];
    char hex[2 * PKI_PRP_BLOCK + 1];
    struct pki_prp *p;

    for (int i = 0; i < PKI_PRP_KEY; i++)
        key[i] = (unsigned char)i;
    for (int i = 0; i < PKI_PRP_BLOCK; i++)
        pt[i] = (unsigned char)(i * 0x11);
    p = pki_prp_new(key);
    assert_non_null(p);
    /* Several rounds: the contexts are reused, never set up again. */
    for (int round = 0; round < 3; round++) {
        assert_int_equal(pki_prp_encrypt(p, pt, ct), 0);
        assert_string_equal(hex_encode(ct, sizeof(ct), hex), "8ea2b7ca516745bfeafc49904b496089");
        assert_int_equal(pki_prp_decrypt(p, ct, back), 0);
        assert_memory_equal(back, pt, sizeof(pt));
    }
    pki_prp_free(p);
    pki_prp_free(NULL);
}

static void test_prp_round_trip(void **state)
{
    unsigned char key[PKI_PRP_KEY], in[PKI_PRP_BLOCK], ct[PKI_PRP_BLOCK], back[PKI_PRP_BLOCK],
        first[PKI_PRP_BLOCK];
    struct pki_prp *p, *q;

    memset(key, 0x5a, sizeof(key));
    p = pki_prp_new(key);
    key[0] ^= 1;
    q = pki_prp_new(key);
    assert_non_null(p);
    assert_non_null(q);
    for (uint32_t v = 0; v < 1000; v++) {
        memset(in, 0, sizeof(in));
        memcpy(in, &v, sizeof(v));
        assert_int_equal(pki_prp_encrypt(p, in, ct), 0);
        assert_memory_not_equal(ct, in, sizeof(in));
        assert_int_equal(pki_prp_decrypt(p, ct, back), 0);
        assert_memory_equal(back, in, sizeof(in));
        if (v == 0)
            memcpy(first, ct, sizeof(ct));
        else
            assert_memory_not_equal(ct, first, sizeof(ct));
        /* Another key, another permutation. */
        assert_int_equal(pki_prp_encrypt(q, in, back), 0);
        assert_memory_not_equal(back, ct, sizeof(ct));
    }
    pki_prp_free(p);
    pki_prp_free(q);
}

int test_pki_prp_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prp_fips197),
        cmocka_unit_test(test_prp_round_trip),
    };
    return cmocka_run_group_tests_name("pki_prp", tests, NULL, NULL);
}
