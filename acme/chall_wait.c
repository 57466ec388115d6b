/*
 * chall_wait.c: lets the worker answering a challenge response wait a little
 * for that challenge's validation to settle, so a client on a fast network
 * gets `valid` (or `invalid`) in the answer instead of polling (RFC 8555
 * §7.5.1 allows either). A waiter enters before its validation is handed out
 * and acme_cwait_wake only marks it, so a settlement that comes before the
 * wait starts is not lost. The settlement itself runs on a pool thread too,
 * which is why the number of waiters is bounded below the pool size.
 */
#include "acme/acme_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct acme_cwait {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* on CLOCK_MONOTONIC, the clock clk_mono_ms reads */
    struct acme_cwaiter *head;  /* entered, not yet left; under mu */
    int n;                      /* length of head; under mu */
    int max;                    /* 0: nobody may wait */
};

struct acme_cwait *
acme_cwait_new(int max_waiters)
{
    struct acme_cwait *w = xcalloc(1, sizeof(*w));
    pthread_condattr_t ca;
    int rc;

    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&ca);
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, rc == 0 ? &ca : NULL);
    pthread_condattr_destroy(&ca);
    /* Deadlines are monotonic; a condvar on another clock would misread them. */
    w->max = rc == 0 && max_waiters > 0 ? max_waiters : 0;
    if (rc != 0)
        log_warn("acme", "no monotonic condition variable (%s): challenge answers do not wait",
                 strerror(rc));
    return w;
}

void
acme_cwait_free(struct acme_cwait *w)
{
    if (w == NULL)
        return;
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

int
acme_cwait_enter(struct acme_cwait *w, struct acme_cwaiter *me, const char *chall_id)
{
    int rc = 1;

    memset(me, 0, sizeof(*me));
    if (w == NULL)
        return 1;
    snprintf(me->chall_id, sizeof(me->chall_id), "%s", chall_id);
    pthread_mutex_lock(&w->mu);
    if (w->n < w->max) {
        me->next = w->head;
        w->head = me;
        w->n++;
        rc = 0;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void
acme_cwait_wake(struct acme_cwait *w, const char *chall_id)
{
    struct acme_cwaiter *it;
    bool any = false;

    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    for (it = w->head; it != NULL; it = it->next) {
        if (strcmp(it->chall_id, chall_id) == 0) {
            it->settled = true;
            any = true;
        }
    }
    /* Waiters share cv; settlements nobody waits for wake nobody. */
    if (any)
        pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Takes me out of the list (under mu). */
static void
cwait_unlink(struct acme_cwait *w, struct acme_cwaiter *me)
{
    struct acme_cwaiter **pp = &w->head;

    while (*pp != NULL && *pp != me)
        pp = &(*pp)->next;
    if (*pp == me) {
        *pp = me->next;
        w->n--;
    }
    me->next = NULL;
}

int
acme_cwait_wait(struct acme_cwait *w, struct acme_cwaiter *me, int64_t timeout_ms)
{
    int64_t deadline = clk_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    struct timespec ts = {.tv_sec = (time_t)(deadline / 1000),
                          .tv_nsec = (long)(deadline % 1000) * 1000000L};
    bool settled;
    int rc = 0;

    if (w == NULL)
        return 1;
    pthread_mutex_lock(&w->mu);
    /* A spurious or foreign wakeup loops; ETIMEDOUT (or any error) ends the wait. */
    while (!me->settled && rc == 0 && clk_mono_ms() < deadline)
        rc = pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    if (rc != 0 && rc != ETIMEDOUT)
        log_warn("acme", "challenge %s: pthread_cond_timedwait: %s", me->chall_id, strerror(rc));
    settled = me->settled;
    cwait_unlink(w, me);
    pthread_mutex_unlock(&w->mu);
    return settled ? 0 : 1;
}
