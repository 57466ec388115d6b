/*
 * ratelimit.c: per-account sliding-window counters (RFC 8555 §6.6), kept in
 * memory. Each key keeps the timestamps of its events in the last hour;
 * keys whose events have all aged out are dropped when their bucket is visited.
 */
#include "acme/acme_int.h"

#include <stdio.h>
#include <string.h>

#define RL_BUCKETS 256
#define RL_WINDOW 3600

struct rl_entry {
    struct rl_entry *next;
    char key[ACME_MAX_ID + 1];
    int64_t *ts;   /* ascending event times */
    size_t n, cap;
};

struct acme_ratelimit {
    pthread_mutex_t mu;
    struct rl_entry *bucket[RL_BUCKETS];
};

struct acme_ratelimit *
acme_ratelimit_new(void)
{
    struct acme_ratelimit *rl = xcalloc(1, sizeof(*rl));

    pthread_mutex_init(&rl->mu, NULL);
    return rl;
}

void
acme_ratelimit_free(struct acme_ratelimit *rl)
{
    struct rl_entry *e, *nx;
    size_t i;

    if (rl == NULL)
        return;
    for (i = 0; i < RL_BUCKETS; i++) {
        for (e = rl->bucket[i]; e != NULL; e = nx) {
            nx = e->next;
            free(e->ts);
            free(e);
        }
    }
    pthread_mutex_destroy(&rl->mu);
    free(rl);
}

static size_t
rl_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % RL_BUCKETS;
}

/* Drops events older than the window from e. */
static void
rl_prune(struct rl_entry *e, int64_t now)
{
    size_t k = 0;

    while (k < e->n && e->ts[k] <= now - RL_WINDOW)
        k++;
    if (k > 0) {
        memmove(e->ts, e->ts + k, (e->n - k) * sizeof(*e->ts));
        e->n -= k;
    }
}

/* Finds key in its bucket, freeing idle entries on the way. */
static struct rl_entry *
rl_lookup(struct acme_ratelimit *rl, const char *key, int64_t now)
{
    struct rl_entry **pp = &rl->bucket[rl_hash(key)], *e, *found = NULL;

    while (*pp != NULL) {
        e = *pp;
        rl_prune(e, now);
        if (strcmp(e->key, key) == 0)
            found = e;
        if (e->n == 0 && e != found) {
            *pp = e->next;
            free(e->ts);
            free(e);
            continue;
        }
        pp = &e->next;
    }
    return found;
}

int
acme_ratelimit_check(struct acme_ratelimit *rl, const char *key, int limit_per_hour,
                     int *retry_after)
{
    int64_t now = clk_now();
    struct rl_entry *e;
    int rc = 0;
    size_t b;

    if (retry_after != NULL)
        *retry_after = 0;
    if (rl == NULL || key == NULL || limit_per_hour <= 0)
        return 0;
    pthread_mutex_lock(&rl->mu);
    e = rl_lookup(rl, key, now);
    if (e == NULL) {
        e = xcalloc(1, sizeof(*e));
        snprintf(e->key, sizeof(e->key), "%s", key);
        b = rl_hash(key);
        e->next = rl->bucket[b];
        rl->bucket[b] = e;
    }
    if (e->n >= (size_t)limit_per_hour) {
        int64_t wait = e->ts[e->n - (size_t)limit_per_hour] + RL_WINDOW - now;
        if (retry_after != NULL)
            *retry_after = wait > 0 ? (int)wait : 1;
        rc = 1;
        goto out;
    }
    if (e->n == e->cap) {
        e->cap = e->cap == 0 ? 8 : e->cap * 2;
        e->ts = xrealloc(e->ts, e->cap * sizeof(*e->ts));
    }
    e->ts[e->n++] = now;
out:
    pthread_mutex_unlock(&rl->mu);
    return rc;
}
