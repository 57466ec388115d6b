/*
 * nonce.c: anti-replay nonces (RFC 8555 §6.5). A nonce is
 * base64url(counter(8, big-endian) || HMAC-SHA256(key, counter)[0..16]): the
 * MAC makes it unforgeable, the counter indexes a bitmap of the last `window`
 * issued values, so memory stays fixed and each nonce is accepted once.
 * Snapshots and adoption of that state serve nonce_state.c (graceful restart).
 */
#include "acme/acme_int.h"

#include <string.h>

#define NONCE_MAC_LEN 16
#define NONCE_RAW_LEN (8 + NONCE_MAC_LEN)
#define NONCE_TEXT_LEN 32 /* base64url of 24 bytes */

struct acme_nonces {
    pthread_mutex_t mu;
    unsigned char key[32];
    struct pki_hmac *mac; /* HMAC-SHA256 keyed with key, set up once */
    uint64_t next;   /* counter of the next nonce to issue */
    size_t window;   /* power of two */
    uint64_t *bits;  /* bit (c % window) set while nonce c is unused */
};

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
    n->mac = pki_hmac_new(n->key, sizeof(n->key));
    if (n->mac == NULL) {
        log_err("acme", "nonce key: HMAC setup failed");
        secure_wipe(n->key, sizeof(n->key));
        free(n);
        return NULL;
    }
    n->window = w;
    n->bits = xcalloc(w / 64, sizeof(uint64_t));
    /* Start past zero so a counter of 0 (all-zero prefix) is never valid. */
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
    pki_hmac_free(n->mac);
    secure_wipe(n->key, sizeof(n->key));
    free(n->bits);
    free(n);
}

static int
nonce_mac(const struct acme_nonces *n, const unsigned char ctr[8], unsigned char out[32])
{
    return pki_hmac_sha256_keyed(n->mac, ctr, 8, out);
}

char *
acme_nonce_issue(struct acme_nonces *n)
{
    unsigned char raw[NONCE_RAW_LEN], mac[32];
    uint64_t c;
    size_t slot;
    int i;

    pthread_mutex_lock(&n->mu);
    c = n->next++;
    slot = (size_t)(c & (n->window - 1));
    /* Setting the slot also evicts counter c - window, which shared it. */
    n->bits[slot / 64] |= (uint64_t)1 << (slot % 64);
    pthread_mutex_unlock(&n->mu);
    for (i = 0; i < 8; i++)
        raw[i] = (unsigned char)(c >> (56 - 8 * i));
    if (nonce_mac(n, raw, mac) != 0) {
        log_err("acme", "nonce HMAC failed");
        abort();
    }
    memcpy(raw + 8, mac, NONCE_MAC_LEN);
    return b64u_encode(raw, sizeof(raw));
}

bool
acme_nonce_consume(struct acme_nonces *n, const char *nonce)
{
    unsigned char *raw = NULL, mac[32];
    size_t rawlen = 0, slot;
    uint64_t c = 0, bit;
    bool ok = false;
    int i;

    if (n == NULL || nonce == NULL || strlen(nonce) != NONCE_TEXT_LEN)
        goto out;
    if (b64u_decode(nonce, NONCE_TEXT_LEN, &raw, &rawlen) != 0 || rawlen != NONCE_RAW_LEN)
        goto out;
    if (nonce_mac(n, raw, mac) != 0 || !ct_equal(mac, raw + 8, NONCE_MAC_LEN))
        goto out;
    for (i = 0; i < 8; i++)
        c = (c << 8) | raw[i];
    pthread_mutex_lock(&n->mu);
    if (c < n->next && n->next - c <= n->window) {
        slot = (size_t)(c & (n->window - 1));
        bit = (uint64_t)1 << (slot % 64);
        ok = (n->bits[slot / 64] & bit) != 0;
        n->bits[slot / 64] &= ~bit;
    }
    pthread_mutex_unlock(&n->mu);
out:
    free(raw);
    return ok;
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
    struct pki_hmac *mac = pki_hmac_new(snap->key, sizeof(snap->key)), *old_mac;
    size_t keep = n->window < snap->window ? n->window : snap->window, slot, cnt = 0;
    uint64_t *bits, *old_bits, c, lo;

    if (mac == NULL) {
        log_err("acme", "nonce key: HMAC setup failed");
        return -1;
    }
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
    old_mac = n->mac;
    n->mac = mac;
    old_bits = n->bits;
    n->bits = bits;
    pthread_mutex_unlock(&n->mu);
    pki_hmac_free(old_mac);
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
