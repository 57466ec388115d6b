/*
 * test_chall_wait.c: the registry challenge answers wait in (acme/chall_wait.c):
 * a settlement before the wait is not lost, one during it ends it early, the
 * bound ends it otherwise (and foreign settlements do not), the waiter cap
 * holds and frees its slots on every path, and many threads meet their own
 * settlements.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "acme/acme_int.h"

/* Generous upper bounds: a loaded (or sanitized) machine must not fail these. */
#define SLACK_MS 2000
#define LONG_WAIT_MS 20000
#define NTHREADS 16
#define NIDS 8

static void
sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* A thread that wakes id after delay_ms. */
struct waker {
    struct acme_cwait *w;
    const char *id;
    int delay_ms;
    pthread_t th;
};

static void *
waker_main(void *arg)
{
    struct waker *k = arg;

    sleep_ms(k->delay_ms);
    acme_cwait_wake(k->w, k->id);
    return NULL;
}

static void
waker_start(struct waker *k, struct acme_cwait *w, const char *id, int delay_ms)
{
    k->w = w;
    k->id = id;
    k->delay_ms = delay_ms;
    assert_int_equal(pthread_create(&k->th, NULL, waker_main, k), 0);
}

static void
test_wake_before_wait(void **state)
{
    struct acme_cwait *w = acme_cwait_new(2);
    struct acme_cwaiter me;
    int64_t t0;

    /* Nobody waits: a settlement is a no-op. */
    acme_cwait_wake(w, "early");
    assert_int_equal(acme_cwait_enter(w, &me, "early"), 0);
    acme_cwait_wake(w, "early");
    t0 = clk_mono_ms();
    assert_int_equal(acme_cwait_wait(w, &me, LONG_WAIT_MS), 0);
    assert_true(clk_mono_ms() - t0 < SLACK_MS);
    acme_cwait_free(w);
}

/*
 * Enters for id, has another thread wake wake_id after delay_ms, waits up to
 * bound_ms. Returns what acme_cwait_wait did; *took_ms how long it took.
 */
static int
timed_wait(struct acme_cwait *w, const char *id, const char *wake_id, int delay_ms,
           int bound_ms, int64_t *took_ms)
{
    struct acme_cwaiter me;
    struct waker k;
    int64_t t0;
    int rc;

    assert_int_equal(acme_cwait_enter(w, &me, id), 0);
    t0 = clk_mono_ms();
    waker_start(&k, w, wake_id, delay_ms);
    rc = acme_cwait_wait(w, &me, bound_ms);
    *took_ms = clk_mono_ms() - t0;
    assert_int_equal(pthread_join(k.th, NULL), 0);
    assert_int_equal(me.settled, rc == 0);
    return rc;
}

static void
test_wake_during_wait(void **state)
{
    struct acme_cwait *w = acme_cwait_new(2);
    int64_t took;

    assert_int_equal(timed_wait(w, "mid", "mid", 50, LONG_WAIT_MS, &took), 0);
    assert_true(took >= 40);
    assert_true(took < SLACK_MS);
    acme_cwait_free(w);
}

static void
test_timeout(void **state)
{
    struct acme_cwait *w = acme_cwait_new(2);
    struct acme_cwaiter me;
    int64_t t0, took;

    /* Another challenge settling meanwhile neither ends the wait nor marks it. */
    assert_int_equal(timed_wait(w, "slow", "other", 20, 150, &took), 1);
    assert_true(took >= 150);
    assert_true(took < 150 + SLACK_MS);
    /* A zero bound only leaves. */
    assert_int_equal(acme_cwait_enter(w, &me, "slow"), 0);
    t0 = clk_mono_ms();
    assert_int_equal(acme_cwait_wait(w, &me, 0), 1);
    assert_true(clk_mono_ms() - t0 < SLACK_MS);
    acme_cwait_free(w);
}

static void
test_waiter_cap(void **state)
{
    struct acme_cwait *w = acme_cwait_new(2), *none = acme_cwait_new(0);
    struct acme_cwaiter a, b, c;

    assert_int_equal(acme_cwait_enter(w, &a, "a"), 0);
    assert_int_equal(acme_cwait_enter(w, &b, "b"), 0);
    assert_int_equal(acme_cwait_enter(w, &c, "c"), 1);
    /* A settled waiter and a timed-out one both give their slot back. */
    acme_cwait_wake(w, "a");
    assert_int_equal(acme_cwait_wait(w, &a, LONG_WAIT_MS), 0);
    assert_int_equal(acme_cwait_enter(w, &c, "c"), 0);
    assert_int_equal(acme_cwait_enter(w, &a, "a"), 1);
    assert_int_equal(acme_cwait_wait(w, &b, 1), 1);
    assert_int_equal(acme_cwait_wait(w, &c, 1), 1);
    assert_int_equal(acme_cwait_enter(w, &a, "a"), 0);
    assert_int_equal(acme_cwait_enter(w, &b, "b"), 0);
    assert_int_equal(acme_cwait_wait(w, &a, 0), 1);
    assert_int_equal(acme_cwait_wait(w, &b, 0), 1);
    /* No slots, or no registry: never wait. */
    assert_int_equal(acme_cwait_enter(none, &a, "a"), 1);
    assert_int_equal(acme_cwait_enter(NULL, &a, "a"), 1);
    acme_cwait_wake(NULL, "a");
    acme_cwait_free(none);
    acme_cwait_free(w);
    acme_cwait_free(NULL);
}

/* Many threads, two per challenge id, plus as many again refused by the cap. */
struct many {
    struct acme_cwait *w;
    pthread_barrier_t *entered;
    char id[16];
    int entered_rc, wait_rc;
};

static void *
many_main(void *arg)
{
    struct many *m = arg;
    struct acme_cwaiter me;

    m->entered_rc = acme_cwait_enter(m->w, &me, m->id);
    pthread_barrier_wait(m->entered);
    if (m->entered_rc == 0)
        m->wait_rc = acme_cwait_wait(m->w, &me, LONG_WAIT_MS);
    return NULL;
}

static void
test_many_threads(void **state)
{
    struct acme_cwait *w = acme_cwait_new(NTHREADS);
    struct many m[2 * NTHREADS];
    pthread_t th[2 * NTHREADS];
    pthread_barrier_t entered;
    struct acme_cwaiter me, again[NTHREADS];
    char id[16];
    int i, refused = 0;
    int64_t t0;

    assert_int_equal(pthread_barrier_init(&entered, NULL, 2 * NTHREADS + 1), 0);
    for (i = 0; i < 2 * NTHREADS; i++) {
        memset(&m[i], 0, sizeof(m[i]));
        m[i].w = w;
        m[i].entered = &entered;
        m[i].wait_rc = -1;
        snprintf(m[i].id, sizeof(m[i].id), "c%d", i % NIDS);
        assert_int_equal(pthread_create(&th[i], NULL, many_main, &m[i]), 0);
    }
    pthread_barrier_wait(&entered);
    t0 = clk_mono_ms();
    /* Some threads wait already, others not yet: both must see their settlement. */
    for (i = NIDS - 1; i >= 0; i--) {
        snprintf(id, sizeof(id), "c%d", i);
        acme_cwait_wake(w, id);
    }
    for (i = 0; i < 2 * NTHREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        if (m[i].entered_rc != 0) {
            refused++;
            continue;
        }
        assert_int_equal(m[i].wait_rc, 0);
    }
    assert_true(clk_mono_ms() - t0 < SLACK_MS);
    assert_int_equal(refused, NTHREADS);
    /* Every slot came back. */
    for (i = 0; i < NTHREADS; i++)
        assert_int_equal(acme_cwait_enter(w, &again[i], "again"), 0);
    assert_int_equal(acme_cwait_enter(w, &me, "again"), 1);
    acme_cwait_wake(w, "again");
    for (i = 0; i < NTHREADS; i++)
        assert_int_equal(acme_cwait_wait(w, &again[i], LONG_WAIT_MS), 0);
    pthread_barrier_destroy(&entered);
    acme_cwait_free(w);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wake_before_wait), cmocka_unit_test(test_wake_during_wait),
        cmocka_unit_test(test_timeout),          cmocka_unit_test(test_waiter_cap),
        cmocka_unit_test(test_many_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
