/*
 * store writer behaviour, per backend: concurrent commits all land and are
 * grouped into fewer transactions, a conflict inside a group stays private
 * to its commit, store_close drains queued commits, and reopening keeps the
 * data with migrations applied exactly once.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "store/store_int.h"
#include "tests/unit/store/store_test.h"

#define THREADS 8
#define PER_THREAD 100
#define WAIT_MS 10000

static int count_fn(void *arg, const struct store_rec *rec)
{
    (*(size_t *)arg)++;
    return 0;
}

static size_t count_kind(struct store *st, enum store_kind kind)
{
    char err[ERR_LEN];
    size_t n = 0;

    assert_int_equal(store_list(st, kind, NULL, count_fn, &n, err), 0);
    return n;
}

/* Polls until want commits are queued behind the held writer. */
static void wait_queued(struct store *st, size_t want)
{
    struct timespec ts = {.tv_nsec = 1000 * 1000};

    for (int ms = 0; ms < WAIT_MS; ms++) {
        if (store_int_queued(st) >= want)
            return;
        nanosleep(&ts, NULL);
    }
    fail_msg("only %zu of %zu commits queued", store_int_queued(st), want);
}

struct worker {
    struct store *st;
    pthread_barrier_t *start;
    int index;
    int failures;
};

static void *insert_worker(void *arg)
{
    struct worker *w = arg;
    char id[32], data[64], err[ERR_LEN];
    struct store_rec got;

    pthread_barrier_wait(w->start);
    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(id, sizeof(id), "t%d-%d", w->index, i);
        snprintf(data, sizeof(data), "{\"t\":%d,\"i\":%d}", w->index, i);
        struct store_rec r = tst_rec(STORE_AUDIT, id, "owner", id, "new", i, data);
        if (tst_commit1(w->st, STORE_INSERT, &r, 0) != 0)
            w->failures++;
    }
    /* Reads from this thread open its own connection, closed when the thread exits. */
    if (store_get(w->st, STORE_AUDIT, id, &got, err) != 0 || strcmp(got.data, data) != 0)
        w->failures++;
    store_rec_clear(&got);
    return NULL;
}

static void test_concurrent_commits(void **state)
{
    char target[512];
    struct store *st = tst_open_fresh(target, sizeof(target));
    pthread_barrier_t start;
    pthread_t tids[THREADS];
    struct worker ws[THREADS];
    uint64_t txn0 = store_int_txn_count(st), commits0 = store_int_commit_count(st);

    pthread_barrier_init(&start, NULL, THREADS);
    for (int i = 0; i < THREADS; i++) {
        ws[i] = (struct worker){.st = st, .start = &start, .index = i};
        assert_int_equal(pthread_create(&tids[i], NULL, insert_worker, &ws[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(tids[i], NULL);
        assert_int_equal(ws[i].failures, 0);
    }
    pthread_barrier_destroy(&start);
    uint64_t txns = store_int_txn_count(st) - txn0;
    uint64_t commits = store_int_commit_count(st) - commits0;
    print_message("%s: %llu commits in %llu transactions\n", tst_driver(),
                  (unsigned long long)commits, (unsigned long long)txns);
    assert_int_equal(commits, THREADS * PER_THREAD);
    assert_true(txns < commits);
    assert_true(txns > 0);
    assert_int_equal(count_kind(st, STORE_AUDIT), THREADS * PER_THREAD);
    store_close(st);
}

struct one_commit {
    struct store *st;
    struct store_write w[2];
    size_t n;
    int rc;
};

static void *commit_thread(void *arg)
{
    struct one_commit *c = arg;
    char err[ERR_LEN];

    c->rc = store_commit(c->st, c->w, c->n, err);
    return NULL;
}

/* Starts every commit of cs on its own thread while the writer is held, so they group. */
static void start_held(struct store *st, struct one_commit *cs, size_t n, pthread_t *tids)
{
    store_int_hold_writer(st, true);
    for (size_t i = 0; i < n; i++) {
        cs[i].st = st;
        assert_int_equal(pthread_create(&tids[i], NULL, commit_thread, &cs[i]), 0);
    }
    wait_queued(st, n);
}

static void test_conflict_in_group(void **state)
{
    char target[512];
    struct store *st = tst_open_fresh(target, sizeof(target));
    struct store_rec dup = tst_rec(STORE_ORDER, "dup", "a", NULL, "pending", 1, "{\"v\":0}");
    struct store_rec g1 = tst_rec(STORE_ORDER, "g1", "a", NULL, "pending", 2, "{}");
    struct store_rec g2 = tst_rec(STORE_ORDER, "g2", "a", NULL, "pending", 3, "{}");
    struct store_rec g3 = tst_rec(STORE_ORDER, "g3", "a", NULL, "pending", 4, "{}");
    struct store_rec gone = tst_rec(STORE_ORDER, "missing", "a", NULL, "pending", 5, "{}");
    struct store_rec dup2 = tst_rec(STORE_ORDER, "dup", "a", NULL, "valid", 1, "{\"v\":1}");
    static const int want[] = {0, 1, 1, 0, 0};
    struct one_commit cs[] = {
        {.w = {{STORE_INSERT, &g1, 0}}, .n = 1},
        {.w = {{STORE_INSERT, &dup, 0}}, .n = 1},
        {.w = {{STORE_INSERT, &g2, 0}, {STORE_UPDATE, &gone, 0}}, .n = 2},
        {.w = {{STORE_INSERT, &g3, 0}}, .n = 1},
        {.w = {{STORE_UPDATE, &dup2, 1}}, .n = 1},
    };
    pthread_t tids[nitems(cs)];
    char err[ERR_LEN];
    struct store_rec got;

    assert_int_equal(tst_commit1(st, STORE_INSERT, &dup, 0), 0);
    uint64_t txn0 = store_int_txn_count(st);
    start_held(st, cs, nitems(cs), tids);
    store_int_hold_writer(st, false);
    for (size_t i = 0; i < nitems(cs); i++) {
        pthread_join(tids[i], NULL);
        assert_int_equal(cs[i].rc, want[i]);
    }
    assert_int_equal(store_int_txn_count(st) - txn0, 1); /* one transaction for the group */
    assert_int_equal(store_get(st, STORE_ORDER, "g1", &got, err), 0);
    store_rec_clear(&got);
    assert_int_equal(store_get(st, STORE_ORDER, "g2", &got, err), 1);
    assert_int_equal(store_get(st, STORE_ORDER, "g3", &got, err), 0);
    store_rec_clear(&got);
    assert_int_equal(store_get(st, STORE_ORDER, "dup", &got, err), 0);
    assert_int_equal(got.version, 2);
    assert_string_equal(got.data, "{\"v\":1}");
    store_rec_clear(&got);
    store_close(st);
}

static void test_close_drains(void **state)
{
    char target[512], err[ERR_LEN] = "";
    struct store *st = tst_open_fresh(target, sizeof(target));
    struct store_rec r[3];
    struct one_commit cs[3];
    pthread_t tids[3];
    static const char *const ids[] = {"d1", "d2", "d3"};

    for (size_t i = 0; i < nitems(cs); i++) {
        r[i] = tst_rec(STORE_CERT, ids[i], "a", NULL, "valid", (int64_t)i, "{}");
        cs[i] = (struct one_commit){.w = {{STORE_INSERT, &r[i], 0}}, .n = 1};
    }
    start_held(st, cs, nitems(cs), tids);
    store_close(st); /* still held: close must release the writer and commit all three */
    for (size_t i = 0; i < nitems(cs); i++) {
        pthread_join(tids[i], NULL);
        assert_int_equal(cs[i].rc, 0);
    }
    st = store_open(tst_driver(), target, err);
    assert_non_null(st);
    assert_int_equal(count_kind(st, STORE_CERT), nitems(ids));
    store_close(st);
}

static void expect_schema(struct store *st)
{
    size_t n;
    const struct store_migration *m = store_schema_migrations(&n);
    char err[ERR_LEN] = "";
    int version = -1, rows = -1;

    assert_int_equal(store_int_schema_state(st, &version, &rows, err), 0);
    assert_int_equal(version, m[n - 1].version);
    assert_int_equal(rows, (int)n);
}

static void test_reopen(void **state)
{
    char target[512], err[ERR_LEN] = "";
    struct store *st = tst_open_fresh(target, sizeof(target));
    struct store_rec a = tst_rec(STORE_ACCOUNT, "acct", NULL, "thumb", "valid", 10, "{\"k\":1}");
    struct store_rec got;

    expect_schema(st);
    assert_int_equal(tst_commit1(st, STORE_INSERT, &a, 0), 0);
    store_close(st);
    for (int round = 1; round <= 2; round++) {
        st = store_open(tst_driver(), target, err);
        if (st == NULL)
            fail_msg("reopen %d: %s", round, err);
        expect_schema(st);
        assert_int_equal(store_get_by_lookup(st, STORE_ACCOUNT, "thumb", &got, err), 0);
        assert_int_equal(got.version, round);
        assert_string_equal(got.data, "{\"k\":1}");
        assert_int_equal(tst_commit1(st, STORE_UPDATE, &got, got.version), 0);
        store_rec_clear(&got);
        store_close(st);
    }
}

int tst_run_group(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_commits),
        cmocka_unit_test(test_conflict_in_group),
        cmocka_unit_test(test_close_drains),
        cmocka_unit_test(test_reopen),
    };
    return cmocka_run_group_tests_name("store_group", tests, NULL, NULL);
}
