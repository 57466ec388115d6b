/*
 * srv_connlimit.c: open connections per client address, shared by all event
 * loops. A mutex-protected chained hash; an entry lives only while its count
 * is above zero, so memory follows the number of distinct open peers.
 */
#include "server/srv_plane.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CL_BUCKETS 1024
#define CL_IP_MAX 64 /* longest address text we keep (IPv6 with zone fits) */

struct cl_entry {
    char ip[CL_IP_MAX];
    int count;
    struct cl_entry *next;
};

struct srv_connlimit {
    pthread_mutex_t mu;
    int max_per_ip;
    struct cl_entry *buckets[CL_BUCKETS];
};

/* FNV-1a: addresses are short and not attacker-chosen in bulk per bucket. */
static size_t cl_hash(const char *ip)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)ip; *p != '\0'; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return h % CL_BUCKETS;
}

struct srv_connlimit *srv_connlimit_new(int max_per_ip)
{
    struct srv_connlimit *cl = xcalloc(1, sizeof(*cl));
    pthread_mutex_init(&cl->mu, NULL);
    cl->max_per_ip = max_per_ip;
    return cl;
}

static struct cl_entry **cl_find(struct srv_connlimit *cl, const char *ip)
{
    struct cl_entry **pp = &cl->buckets[cl_hash(ip)];
    while (*pp != NULL && strncmp((*pp)->ip, ip, CL_IP_MAX - 1) != 0)
        pp = &(*pp)->next;
    return pp;
}

bool srv_connlimit_acquire(struct srv_connlimit *cl, const char *ip)
{
    bool ok = true;
    struct cl_entry **pp;

    pthread_mutex_lock(&cl->mu);
    pp = cl_find(cl, ip);
    if (*pp == NULL) {
        struct cl_entry *e = xcalloc(1, sizeof(*e));
        snprintf(e->ip, sizeof(e->ip), "%s", ip);
        *pp = e;
    }
    if (cl->max_per_ip > 0 && (*pp)->count >= cl->max_per_ip)
        ok = false;
    else
        (*pp)->count++;
    if ((*pp)->count == 0) {
        struct cl_entry *e = *pp;
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&cl->mu);
    return ok;
}

void srv_connlimit_release(struct srv_connlimit *cl, const char *ip)
{
    struct cl_entry **pp;

    pthread_mutex_lock(&cl->mu);
    pp = cl_find(cl, ip);
    if (*pp != NULL && --(*pp)->count <= 0) {
        struct cl_entry *e = *pp;
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&cl->mu);
}

int srv_connlimit_count(struct srv_connlimit *cl, const char *ip)
{
    int n = 0;
    struct cl_entry **pp;

    pthread_mutex_lock(&cl->mu);
    pp = cl_find(cl, ip);
    if (*pp != NULL)
        n = (*pp)->count;
    pthread_mutex_unlock(&cl->mu);
    return n;
}

void srv_connlimit_free(struct srv_connlimit *cl)
{
    if (cl == NULL)
        return;
    for (size_t i = 0; i < CL_BUCKETS; i++) {
        struct cl_entry *e = cl->buckets[i];
        while (e != NULL) {
            struct cl_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    pthread_mutex_destroy(&cl->mu);
    free(cl);
}
