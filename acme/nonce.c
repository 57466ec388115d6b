/*
 * nonce.c: anti-replay nonces (RFC 8555 §6.5). A nonce is
 * base64url(AES-256(k, counter(8, big-endian) || 0^8)): one block of a keyed
 * pseudorandom permutation (pki_prp). Without k, consecutive nonces are
 * unrelated random values, so they reveal neither the counter nor the request
 * volume. The server decrypts to recover the counter, and the eight zero
 * bytes authenticate it: a forged or altered block decrypts to them with
 * probability 2^-64, and its counter must also fall in the window. The
 * counter indexes a bitmap of the last `window` issued values, so memory
 * stays fixed and each nonce is accepted once.
 *
 * k = HMAC-SHA256(key, NONCE_PRP_LABEL), with `key` the 32-byte secret that
 * nonce_state.c carries across a graceful restart. The saved state (key,
 * counter, bitmap) is thus what it was when nonces were HMAC-tagged counters,
 * and no AES key is ever the raw secret an older version used as an HMAC key.
 * Nonces of that older form (32 characters, not 22) are refused: the same
 * single badNonce retry as after any restart.
 */
#include "acme/acme_int.h"

#include <string.h>

#define NONCE_RAW_LEN PKI_PRP_BLOCK
#define NONCE_CTR_LEN 8
#define NONCE_PAD_LEN (NONCE_RAW_LEN - NONCE_CTR_LEN)
#define NONCE_TEXT_LEN 22 /* base64url of 16 bytes */
#define NONCE_PRP_LABEL "attesta nonce prp v1"

_Static_assert(PKI_PRP_KEY == sizeof(((struct acme_nonce_snap *)0)->key), "key sizes");

struct acme_nonces {
    pthread_mutex_t mu; /* guards every field: the prp is not thread-safe either */
    unsigned char key[PKI_PRP_KEY];
    struct pki_prp *prp; /* keyed with k, derived from key */
    uint64_t next;       /* counter of the next nonce to issue */
    size_t window;       /* power of two */
    uint64_t *bits;      /* bit (c % window) set while nonce c is unused */
};

/* The permutation for a nonce secret, or NULL (logged). */
static struct pki_prp *
prp_for_key(const unsigned char key[PKI_PRP_KEY])
{
    unsigned char k[PKI_PRP_KEY];
    struct pki_prp *p = NULL;

    if (pki_hmac_sha256(key, PKI_PRP_KEY, NONCE_PRP_LABEL, sizeof(NONCE_PRP_LABEL) - 1, k) != 0)
        goto out;
    p = pki_prp_new(k);
out:
    if (p == NULL)
        log_err("acme", "nonce key: cipher setup failed");
    secure_wipe(k, sizeof(k));
    return p;
}

struct acme_nonces *
acme_nonces_new(size_t window)
{
    struct acme_nonces *n;
    size_t w = 64;

    /* A power of two (at least one word) keeps the slot arithmetic simple. */
    while (w < window && w < ACME_NONCE_MAX_WINDOW)
        w <<= 1;
    n = xcalloc(1, sizeof(*n));
    if (rand_bytes(n->key, sizeof(n->key)) != 0) {
        log_err("acme", "nonce key: no randomness");
        free(n);
        return NULL;
    }
    n->prp = prp_for_key(n->key);
    if (n->prp == NULL) {
        secure_wipe(n->key, sizeof(n->key));
        free(n);
        return NULL;
    }
    n->window = w;
    n->bits = xcalloc(w / 64, sizeof(uint64_t));
    /* Counters start at 1, as nonce_state.c expects (a saved counter of 0 is refused). */
    n->next = 1;
    pthread_mutex_init(&n->mu, NULL);
    return n;
}

void
acme_nonces_free(struct acme_nonces *n)
{
    if (n == NULL)
        return;
    pthread_mutex_destroy(&n->mu);
    pki_prp_free(n->prp);
    secure_wipe(n->key, sizeof(n->key));
    free(n->bits);
    free(n);
}

char *
acme_nonce_issue(struct acme_nonces *n)
{
    unsigned char plain[NONCE_RAW_LEN] = {0}, raw[NONCE_RAW_LEN];
    uint64_t c;
    size_t slot;
    int i, rc;

    pthread_mutex_lock(&n->mu);
    c = n->next++;
    slot = (size_t)(c & (n->window - 1));
    /* Setting the slot also evicts counter c - window, which shared it. */
    n->bits[slot / 64] |= (uint64_t)1 << (slot % 64);
    for (i = 0; i < NONCE_CTR_LEN; i++)
        plain[i] = (unsigned char)(c >> (56 - 8 * i));
    rc = pki_prp_encrypt(n->prp, plain, raw);
    pthread_mutex_unlock(&n->mu);
    /* Every response carries a nonce; one without would break the client's next request. */
    if (rc != 0) {
        log_err("acme", "nonce encryption failed");
        abort();
    }
    return b64u_encode(raw, sizeof(raw));
}

/* The block a nonce's text encodes; -1 when it is not the text of any nonce. */
static int
nonce_decode(const char *nonce, unsigned char raw[NONCE_RAW_LEN])
{
    unsigned char *p = NULL;
    size_t len = 0;
    int rc = -1;

    if (nonce == NULL || strlen(nonce) != NONCE_TEXT_LEN)
        goto out;
    if (b64u_decode(nonce, NONCE_TEXT_LEN, &p, &len) != 0 || len != NONCE_RAW_LEN)
        goto out;
    memcpy(raw, p, NONCE_RAW_LEN);
    rc = 0;
out:
    free(p);
    return rc;
}

/* The counter raw seals under n's key; -1 when it does not decrypt to one. Under n->mu. */
static int
nonce_open_locked(struct acme_nonces *n, const unsigned char raw[NONCE_RAW_LEN], uint64_t *c)
{
    static const unsigned char zero[NONCE_PAD_LEN];
    unsigned char plain[NONCE_RAW_LEN];
    int i;

    if (pki_prp_decrypt(n->prp, raw, plain) != 0 ||
        !ct_equal(plain + NONCE_CTR_LEN, zero, NONCE_PAD_LEN))
        return -1;
    *c = 0;
    for (i = 0; i < NONCE_CTR_LEN; i++)
        *c = (*c << 8) | plain[i];
    return 0;
}

bool
acme_nonce_consume(struct acme_nonces *n, const char *nonce)
{
    unsigned char raw[NONCE_RAW_LEN];
    uint64_t c = 0, bit;
    size_t slot;
    bool ok = false;

    if (n == NULL || nonce_decode(nonce, raw) != 0)
        return false;
    pthread_mutex_lock(&n->mu);
    if (nonce_open_locked(n, raw, &c) == 0 && c < n->next && n->next - c <= n->window) {
        slot = (size_t)(c & (n->window - 1));
        bit = (uint64_t)1 << (slot % 64);
        ok = (n->bits[slot / 64] & bit) != 0;
        n->bits[slot / 64] &= ~bit;
    }
    pthread_mutex_unlock(&n->mu);
    return ok;
}

int
acme_nonce_counter(struct acme_nonces *n, const char *nonce, uint64_t *counter)
{
    unsigned char raw[NONCE_RAW_LEN];
    int rc;

    if (n == NULL || nonce_decode(nonce, raw) != 0)
        return -1;
    pthread_mutex_lock(&n->mu);
    rc = nonce_open_locked(n, raw, counter);
    pthread_mutex_unlock(&n->mu);
    return rc;
}

void
acme_nonces_snapshot(struct acme_nonces *n, struct acme_nonce_snap *snap)
{
    pthread_mutex_lock(&n->mu);
    memcpy(snap->key, n->key, sizeof(snap->key));
    snap->next = n->next;
    snap->window = n->window;
    snap->bits = xmalloc(n->window / 8);
    memcpy(snap->bits, n->bits, n->window / 8);
    pthread_mutex_unlock(&n->mu);
}

static bool
bit_get(const uint64_t *bits, size_t slot)
{
    return (bits[slot / 64] >> (slot % 64)) & 1;
}

int
acme_nonces_adopt(struct acme_nonces *n, const struct acme_nonce_snap *snap, size_t *carried)
{
    struct pki_prp *prp = prp_for_key(snap->key), *old_prp;
    size_t keep = n->window < snap->window ? n->window : snap->window, slot, cnt = 0;
    uint64_t *bits, *old_bits, c, lo;

    if (prp == NULL)
        return -1;
    bits = xcalloc(n->window / 64, sizeof(uint64_t));
    /* Only counters inside both windows: older ones were refused before, or are now. */
    lo = snap->next > keep ? snap->next - keep : 1;
    for (c = lo; c < snap->next; c++) {
        if (!bit_get(snap->bits, (size_t)(c & (snap->window - 1))))
            continue;
        slot = (size_t)(c & (n->window - 1));
        bits[slot / 64] |= (uint64_t)1 << (slot % 64);
        cnt++;
    }
    pthread_mutex_lock(&n->mu);
    memcpy(n->key, snap->key, sizeof(n->key));
    n->next = snap->next;
    old_prp = n->prp;
    n->prp = prp;
    old_bits = n->bits;
    n->bits = bits;
    pthread_mutex_unlock(&n->mu);
    pki_prp_free(old_prp);
    free(old_bits);
    *carried = cnt;
    return 0;
}

void
acme_nonce_snap_clear(struct acme_nonce_snap *snap)
{
    if (snap == NULL)
        return;
    secure_wipe(snap->key, sizeof(snap->key));
    free(snap->bits);
    memset(snap, 0, sizeof(*snap));
}
