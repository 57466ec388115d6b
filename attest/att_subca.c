/*
 * att_subca: remembers Apple sub CAs that already chained to one of the
 * verifier's roots, so that each attestation costs one signature check (leaf by
 * sub CA) instead of two. Apple signs millions of leaves with a handful of sub
 * CAs, and the P-384 sub-by-root check was a quarter of a device enrollment.
 *
 * An entry is keyed by the SHA-256 of the sub CA's DER and lives in one
 * verifier, so it is dropped with the roots it was verified against (a reload
 * builds a new verifier). A hit verifies the leaf against a store that trusts
 * only that sub CA (X509_V_FLAG_PARTIAL_CHAIN), which still checks the leaf
 * signature, both validity windows at the caller's time and the sub CA's CA
 * constraints; the root's window is checked here. Any failure on the fast path
 * falls back to the full verification, so errors read exactly as before.
 */
#include "attest/att_int.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

/* Distinct sub CAs remembered per verifier; Apple has a few, more are simply not cached. */
#define SUBCA_MAX 32

struct subca_entry {
    unsigned char id[EVP_MAX_MD_SIZE]; /* SHA-256 of the sub CA's DER */
    X509 *sub;                         /* the sub CA, handed out instead of a fresh parse */
    X509_STORE *store;                 /* trusts the sub CA only (partial chain) */
    X509 *root;                        /* the root it chained to, for its validity */
};

struct att_subca_cache {
    pthread_mutex_t mu;
    struct subca_entry e[SUBCA_MAX];
    size_t n;
};

struct att_subca_cache *att_subca_cache_new(void)
{
    struct att_subca_cache *c = xcalloc(1, sizeof(*c));

    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void att_subca_cache_free(struct att_subca_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        X509_free(c->e[i].sub);
        X509_STORE_free(c->e[i].store);
        X509_free(c->e[i].root);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* SHA-256 of x's DER into id (32 bytes). 0/-1. */
static int cert_id(X509 *x, unsigned char id[EVP_MAX_MD_SIZE])
{
    unsigned int len = 0;

    memset(id, 0, EVP_MAX_MD_SIZE);
    if (X509_digest(x, EVP_sha256(), id, &len) != 1) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

X509 *att_subca_find_der(struct att_subca_cache *c, const unsigned char *der, size_t len)
{
    unsigned char id[EVP_MAX_MD_SIZE] = {0};
    unsigned int idlen = 0;
    X509 *x = NULL;

    if (c == NULL || EVP_Digest(der, len, id, &idlen, EVP_sha256(), NULL) != 1) {
        ERR_clear_error();
        return NULL;
    }
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n && x == NULL; i++) {
        if (memcmp(c->e[i].id, id, sizeof(id)) == 0 && X509_up_ref(c->e[i].sub) == 1)
            x = c->e[i].sub;
    }
    pthread_mutex_unlock(&c->mu);
    return x;
}

/* True when at lies inside x's validity window, as X509_verify_cert would judge it. */
static bool valid_at(X509 *x, int64_t at)
{
    time_t t = (time_t)at;

    return X509_cmp_time(X509_get0_notBefore(x), &t) < 0 &&
           X509_cmp_time(X509_get0_notAfter(x), &t) > 0;
}

/* New reference to the store of sub's entry when root is valid at `at`; else NULL. */
static X509_STORE *lookup(struct att_subca_cache *c, X509 *sub, int64_t at)
{
    unsigned char id[EVP_MAX_MD_SIZE];
    X509_STORE *st = NULL;
    X509 *root = NULL;

    if (cert_id(sub, id) != 0)
        return NULL;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n; i++) {
        if (memcmp(c->e[i].id, id, sizeof(id)) == 0 && X509_STORE_up_ref(c->e[i].store) == 1 &&
            X509_up_ref(c->e[i].root) == 1) {
            st = c->e[i].store;
            root = c->e[i].root;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (root != NULL && !valid_at(root, at)) {
        X509_STORE_free(st);
        st = NULL;
    }
    X509_free(root);
    return st;
}

enum att_result att_subca_verify(struct att_subca_cache *c, X509 *leaf, STACK_OF(X509) * inter,
                                 int64_t at)
{
    enum att_result r = ATT_ERR_CHAIN;
    X509_STORE *st = NULL;
    X509_STORE_CTX *ctx = NULL;

    if (c == NULL || sk_X509_num(inter) != 1)
        return ATT_ERR_CHAIN;
    st = lookup(c, sk_X509_value(inter, 0), at);
    if (st == NULL)
        return ATT_ERR_CHAIN;
    ctx = X509_STORE_CTX_new();
    if (ctx == NULL || X509_STORE_CTX_init(ctx, st, leaf, NULL) != 1)
        goto out;
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_time(param, (time_t)at);
    X509_VERIFY_PARAM_set_depth(param, ATT_MAX_X5C);
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
    if (X509_verify_cert(ctx) == 1)
        r = ATT_OK;
out:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    ERR_clear_error();
    return r;
}

/* A store that trusts sub alone, for the fast path. */
static X509_STORE *sub_store(X509 *sub)
{
    X509_STORE *st = X509_STORE_new();

    if (st == NULL || X509_STORE_add_cert(st, sub) != 1) {
        X509_STORE_free(st);
        ERR_clear_error();
        return NULL;
    }
    return st;
}

void att_subca_remember(struct att_subca_cache *c, STACK_OF(X509) * chain)
{
    struct subca_entry e = {0};
    bool kept = false;

    /* Only the shape Apple uses: leaf, one sub CA, a root from the verifier's store. */
    if (c == NULL || chain == NULL || sk_X509_num(chain) != 3)
        return;
    X509 *sub = sk_X509_value(chain, 1);
    if (cert_id(sub, e.id) != 0)
        return;
    e.store = sub_store(sub);
    e.root = sk_X509_value(chain, 2);
    if (e.store == NULL || X509_up_ref(e.root) != 1) {
        X509_STORE_free(e.store);
        return;
    }
    if (X509_up_ref(sub) != 1) {
        X509_STORE_free(e.store);
        X509_free(e.root);
        return;
    }
    e.sub = sub;
    pthread_mutex_lock(&c->mu);
    bool known = false;
    for (size_t i = 0; i < c->n; i++)
        known = known || memcmp(c->e[i].id, e.id, sizeof(e.id)) == 0;
    if (!known && c->n < SUBCA_MAX) {
        c->e[c->n++] = e;
        kept = true;
    }
    pthread_mutex_unlock(&c->mu);
    if (!kept) {
        X509_free(e.sub);
        X509_STORE_free(e.store);
        X509_free(e.root);
    }
}
