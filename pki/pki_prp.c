/*
 * pki_prp.c: a keyed pseudorandom permutation of one 16-byte block
 * (AES-256). ECB is right here and only here: each call is exactly one
 * block, so there is no chaining to get wrong, and the caller puts fixed
 * redundancy in the block so a decryption doubles as an authenticity check.
 */
#include "pki/pki_int.h"

#include <stdlib.h>

#include <openssl/evp.h>

/*
 * One context per direction, keyed once: AES decryption needs its own key
 * schedule, and a keyed context without padding can take block after block
 * without being set up again, so no call allocates.
 */
struct pki_prp {
    EVP_CIPHER_CTX *enc;
    EVP_CIPHER_CTX *dec;
};

static EVP_CIPHER_CTX *prp_ctx(const EVP_CIPHER *aes, const unsigned char key[PKI_PRP_KEY],
                               int encrypt)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

    if (ctx == NULL || EVP_CipherInit_ex2(ctx, aes, key, NULL, encrypt, NULL) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx, 0) != 1) {
        pki_ossl_err(NULL, "EVP_CipherInit_ex2(AES-256-ECB)");
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

struct pki_prp *pki_prp_new(const unsigned char key[PKI_PRP_KEY])
{
    struct pki_prp *p = NULL;
    EVP_CIPHER *aes = EVP_CIPHER_fetch(NULL, "AES-256-ECB", NULL);
    EVP_CIPHER_CTX *enc = NULL, *dec = NULL;

    if (aes == NULL) {
        pki_ossl_err(NULL, "EVP_CIPHER_fetch(AES-256-ECB)");
        goto out;
    }
    enc = prp_ctx(aes, key, 1);
    dec = prp_ctx(aes, key, 0);
    if (enc == NULL || dec == NULL)
        goto out;
    p = xcalloc(1, sizeof(*p));
    p->enc = enc;
    p->dec = dec;
    enc = dec = NULL;
out:
    EVP_CIPHER_CTX_free(enc);
    EVP_CIPHER_CTX_free(dec);
    EVP_CIPHER_free(aes); /* the contexts hold their own reference */
    return p;
}

void pki_prp_free(struct pki_prp *p)
{
    if (p == NULL)
        return;
    EVP_CIPHER_CTX_free(p->enc);
    EVP_CIPHER_CTX_free(p->dec);
    free(p);
}

static int prp_block(EVP_CIPHER_CTX *ctx, const unsigned char in[PKI_PRP_BLOCK],
                     unsigned char out[PKI_PRP_BLOCK])
{
    int n = 0;

    if (EVP_CipherUpdate(ctx, out, &n, in, PKI_PRP_BLOCK) != 1 || n != PKI_PRP_BLOCK) {
        pki_ossl_err(NULL, "EVP_CipherUpdate(AES-256-ECB)");
        return -1;
    }
    return 0;
}

int pki_prp_encrypt(struct pki_prp *p, const unsigned char in[PKI_PRP_BLOCK],
                    unsigned char out[PKI_PRP_BLOCK])
{
    return prp_block(p->enc, in, out);
}

int pki_prp_decrypt(struct pki_prp *p, const unsigned char in[PKI_PRP_BLOCK],
                    unsigned char out[PKI_PRP_BLOCK])
{
    return prp_block(p->dec, in, out);
}
