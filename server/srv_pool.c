/*
 * srv_pool.c: the worker pool that runs what must not run on an event loop
 * (acme_handle, which blocks on the store, and validation results). One
 * mutex+condvar queue with a bound, so overload turns into 503s instead of
 * unbounded memory.
 */
#include "server/srv_plane.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pool_job {
    srv_job_fn *fn;
    void *arg;
    struct pool_job *next;
};

struct srv_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct pool_job *head, *tail;
    size_t queued;
    size_t max_queued;
    bool stopping;
    pthread_t *threads;
    int nthreads; /* threads actually started */
};

static void *pool_main(void *arg)
{
    struct srv_pool *p = arg;

    for (;;) {
        struct pool_job *j;
        pthread_mutex_lock(&p->mu);
        while (p->head == NULL && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        j = p->head;
        if (j == NULL) {
            /* stopping and drained: queued work always runs before exit */
            pthread_mutex_unlock(&p->mu);
            break;
        }
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
        p->queued--;
        pthread_mutex_unlock(&p->mu);
        j->fn(j->arg);
        free(j);
    }
    return NULL;
}

struct srv_pool *srv_pool_new(int nthreads, size_t max_queued, char err[ERR_LEN])
{
    struct srv_pool *p = xcalloc(1, sizeof(*p));

    if (nthreads < 1)
        nthreads = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->max_queued = max_queued;
    p->threads = xcalloc((size_t)nthreads, sizeof(*p->threads));
    for (int i = 0; i < nthreads; i++) {
        int rc = pthread_create(&p->threads[i], NULL, pool_main, p);
        if (rc != 0) {
            snprintf(err, ERR_LEN, "pool: pthread_create: %s", strerror(rc));
            srv_pool_free(p);
            return NULL;
        }
        p->nthreads++;
    }
    return p;
}

int srv_pool_submit(struct srv_pool *p, srv_job_fn *fn, void *arg, bool force)
{
    struct pool_job *j;

    pthread_mutex_lock(&p->mu);
    if (p->stopping || (!force && p->queued >= p->max_queued)) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    j = xmalloc(sizeof(*j));
    j->fn = fn;
    j->arg = arg;
    j->next = NULL;
    if (p->tail != NULL)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->queued++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

size_t srv_pool_queued(struct srv_pool *p)
{
    size_t n;
    pthread_mutex_lock(&p->mu);
    n = p->queued;
    pthread_mutex_unlock(&p->mu);
    return n;
}

int srv_pool_threads(const struct srv_pool *p)
{
    return p->nthreads;
}

void srv_pool_free(struct srv_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    /* Only reachable with no thread started: nothing ran the queue. */
    while (p->head != NULL) {
        struct pool_job *j = p->head;
        p->head = j->next;
        j->fn(j->arg);
        free(j);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}
