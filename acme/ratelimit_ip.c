/*
 * ratelimit_ip.c: new accounts per client address per hour (RFC 8555 §10.3,
 * checklist SEC-3), kept in memory. Unlike the per-account order counters
 * (ratelimit.c), the keys here come from the network, so nobody bounds their
 * number but us: the table has a fixed number of entries, set-associative
 * (IPL_WAYS per set), and a new address evicts the least recently active
 * entry of its set. Each entry counts events in IPL_SLOTS one-minute slots, so
 * an entry's size does not grow with the configured limit either.
 */
#include "acme/acme_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#define IPL_WAYS 8
#define IPL_SLOTS 60       /* one-minute slots: the window is the last hour */
#define IPL_SLOT_SECS 60

struct ipl_entry {
    unsigned char key[16]; /* IPv6 /64 prefix, or a whole IPv4 address as ::ffff:a.b.c.d */
    bool used;
    int64_t last;          /* the minute the newest slot belongs to */
    uint64_t stamp;        /* rl->seq at the last event: eviction order within a set */
    uint32_t total;        /* sum of n[] */
    uint32_t n[IPL_SLOTS]; /* events of minute m are in n[m % IPL_SLOTS] */
};

struct acme_iplimit {
    pthread_mutex_t mu;
    size_t nsets;
    uint64_t seq;          /* events counted so far; minutes alone tie within a burst */
    struct ipl_entry *e;   /* nsets * IPL_WAYS */
};

struct acme_iplimit *
acme_iplimit_new(size_t capacity)
{
    struct acme_iplimit *rl = xcalloc(1, sizeof(*rl));

    rl->nsets = (capacity + IPL_WAYS - 1) / IPL_WAYS;
    if (rl->nsets == 0)
        rl->nsets = 1;
    rl->e = xcalloc(rl->nsets * IPL_WAYS, sizeof(*rl->e));
    pthread_mutex_init(&rl->mu, NULL);
    return rl;
}

void
acme_iplimit_free(struct acme_iplimit *rl)
{
    if (rl == NULL)
        return;
    pthread_mutex_destroy(&rl->mu);
    free(rl->e);
    free(rl);
}

/*
 * The group peer counts in. IPv6 is grouped by /64, the smallest block a
 * site is normally given, else one host could rotate through 2^64 addresses;
 * IPv4 (also v4-mapped IPv6) counts per address. Text that is no address
 * ("?" when the server saw none) shares the all-zero key: "::" is never a peer.
 */
static void
ipl_key(const char *peer, unsigned char key[16])
{
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char text[INET6_ADDRSTRLEN + 1];
    const char *pct;
    size_t len;

    memset(key, 0, 16);
    /* A zone ("fe80::1%eth0") is no part of the address; inet_pton refuses it. */
    pct = strchr(peer, '%');
    len = pct != NULL ? (size_t)(pct - peer) : strlen(peer);
    if (len >= sizeof(text))
        return;
    memcpy(text, peer, len);
    text[len] = '\0';
    if (inet_pton(AF_INET, text, key + 12) == 1) {
        memcpy(key, v4mapped, sizeof(v4mapped));
        return;
    }
    if (inet_pton(AF_INET6, text, key) != 1) {
        memset(key, 0, 16);
        return;
    }
    if (memcmp(key, v4mapped, sizeof(v4mapped)) != 0)
        memset(key + 8, 0, 8);
}

static size_t
ipl_set(const struct acme_iplimit *rl, const unsigned char key[16])
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (size_t i = 0; i < 16; i++)
        h = (h ^ key[i]) * 16777619u;
    return h % rl->nsets;
}

/* Moves e's window to minute m, dropping the slots that fell out of it. */
static void
ipl_advance(struct ipl_entry *e, int64_t m)
{
    if (m <= e->last)
        return; /* the clock stepped back: keep counting in the newest slot */
    if (m - e->last >= IPL_SLOTS) {
        memset(e->n, 0, sizeof(e->n));
        e->total = 0;
    } else {
        for (int64_t k = e->last + 1; k <= m; k++) {
            e->total -= e->n[k % IPL_SLOTS];
            e->n[k % IPL_SLOTS] = 0;
        }
    }
    e->last = m;
}

/* key's entry, or NULL; with evict, a fresh entry replacing the set's least recent one. */
static struct ipl_entry *
ipl_find(struct acme_iplimit *rl, const unsigned char key[16], bool evict)
{
    struct ipl_entry *set = rl->e + ipl_set(rl, key) * IPL_WAYS, *victim = NULL;

    for (size_t i = 0; i < IPL_WAYS; i++) {
        if (set[i].used && memcmp(set[i].key, key, 16) == 0)
            return &set[i];
        if (victim == NULL || !set[i].used || (victim->used && set[i].stamp < victim->stamp))
            victim = &set[i];
    }
    if (!evict)
        return NULL;
    memset(victim, 0, sizeof(*victim));
    memcpy(victim->key, key, 16);
    victim->used = true;
    return victim;
}

static int64_t
ipl_minute(int64_t now)
{
    return now > 0 ? now / IPL_SLOT_SECS : 0;
}

int
acme_iplimit_check(struct acme_iplimit *rl, const char *peer, int limit_per_hour,
                   int *retry_after)
{
    int64_t now = clk_now(), m = ipl_minute(now), k, drop = 0, need;
    unsigned char key[16];
    struct ipl_entry *e;
    int rc = 0;

    if (retry_after != NULL)
        *retry_after = 0;
    if (rl == NULL || peer == NULL || limit_per_hour <= 0)
        return 0;
    ipl_key(peer, key);
    pthread_mutex_lock(&rl->mu);
    e = ipl_find(rl, key, false);
    if (e == NULL)
        goto out;
    ipl_advance(e, m);
    if (e->total < (uint32_t)limit_per_hour)
        goto out;
    rc = 1;
    /* Wait until enough of the oldest events age out to leave room for one more. */
    need = (int64_t)e->total - limit_per_hour + 1;
    for (k = e->last - IPL_SLOTS + 1; k <= e->last; k++) {
        drop += e->n[k % IPL_SLOTS];
        if (drop >= need)
            break;
    }
    if (retry_after != NULL) {
        int64_t wait = (k + IPL_SLOTS) * IPL_SLOT_SECS - now;
        *retry_after = wait > 0 ? (int)wait : 1;
    }
out:
    pthread_mutex_unlock(&rl->mu);
    return rc;
}

void
acme_iplimit_add(struct acme_iplimit *rl, const char *peer)
{
    unsigned char key[16];
    struct ipl_entry *e;

    if (rl == NULL || peer == NULL)
        return;
    ipl_key(peer, key);
    pthread_mutex_lock(&rl->mu);
    e = ipl_find(rl, key, true);
    ipl_advance(e, ipl_minute(clk_now()));
    if (e->n[e->last % IPL_SLOTS] < UINT32_MAX) {
        e->n[e->last % IPL_SLOTS]++;
        e->total++;
    }
    e->stamp = ++rl->seq;
    pthread_mutex_unlock(&rl->mu);
}

size_t
acme_iplimit_used(struct acme_iplimit *rl)
{
    size_t n = 0;

    pthread_mutex_lock(&rl->mu);
    for (size_t i = 0; i < rl->nsets * IPL_WAYS; i++)
        n += rl->e[i].used ? 1 : 0;
    pthread_mutex_unlock(&rl->mu);
    return n;
}

size_t
acme_iplimit_capacity(const struct acme_iplimit *rl)
{
    return rl->nsets * IPL_WAYS;
}
