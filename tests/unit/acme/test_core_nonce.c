/*
 * test_core_nonce.c: nonces look random to clients (no counter shows through,
 * an altered nonce is refused), and the nonce state across a graceful restart
 * (nonce_state.c): a saved state is adopted once and keeps single use, any
 * damaged file is refused and removed, a changed window keeps only the
 * counters it covers.
 */
#include "core_helpers.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

struct env {
    char dir[64];
    char path[128];
};

static int
setup(void **state)
{
    struct env *e = xcalloc(1, sizeof(*e));

    snprintf(e->dir, sizeof(e->dir), "/tmp/attesta-nonce-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->path, sizeof(e->path), "%s/nonces.state", e->dir);
    *state = e;
    return 0;
}

static int
teardown(void **state)
{
    struct env *e = *state;
    char *cmd = xasprintf("rm -rf %s", e->dir);

    chmod(e->dir, 0700);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", e->dir);
    free(cmd);
    free(e);
    return 0;
}

static bool
exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

/* The counter nonce hides, as n's key reads it (the test fails when it cannot). */
static uint64_t
counter_of(struct acme_nonces *n, const char *nonce)
{
    uint64_t c = 0;

    assert_int_equal(acme_nonce_counter(n, nonce, &c), 0);
    return c;
}

/* Issues count nonces from n into out (caller frees each). */
static void
issue_n(struct acme_nonces *n, char **out, size_t count)
{
    for (size_t i = 0; i < count; i++)
        out[i] = acme_nonce_issue(n);
}

static void
free_n(char **v, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(v[i]);
}

static void
test_round_trip(void **state)
{
    struct env *e = *state;
    struct acme_nonces *n = acme_nonces_new(1024), *m = acme_nonces_new(1024);
    char err[ERR_LEN] = "", *v[3], *next;
    size_t count = 0;
    struct stat st;
    mode_t old = umask(0);

    issue_n(n, v, 3);
    assert_true(acme_nonce_consume(n, v[0]));
    assert_int_equal(acme_nonce_state_save(n, e->path, &count, err), 0);
    umask(old);
    assert_int_equal(count, 2);
    assert_int_equal(lstat(e->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    acme_nonces_free(n); /* the process ends */

    assert_int_equal(acme_nonce_state_restore(m, e->path, &count, err), 1);
    assert_int_equal(count, 2);
    assert_false(exists(e->path));
    assert_true(acme_nonce_consume(m, v[1]));
    assert_false(acme_nonce_consume(m, v[1]));
    assert_false(acme_nonce_consume(m, v[0]));
    /* Counting resumes after the saved counter: no value is issued twice under the key. */
    next = acme_nonce_issue(m);
    assert_int_equal(counter_of(m, next), counter_of(m, v[2]) + 1);
    assert_true(acme_nonce_consume(m, v[2]));
    assert_true(acme_nonce_consume(m, next));
    /* Consumed: a second start finds nothing. */
    assert_int_equal(acme_nonce_state_restore(m, e->path, &count, err), 0);
    assert_int_equal(count, 0);
    free(next);
    free_n(v, 3);
    acme_nonces_free(m);
}

/* A state file for a window of 128 with counters 1..3 issued, 2 unused; caller frees. */
static unsigned char *
good_file(size_t *len)
{
    struct acme_nonces *n = acme_nonces_new(128);
    struct acme_nonce_snap snap = {0};
    unsigned char *p = NULL;
    char *v[3];

    issue_n(n, v, 3);
    assert_true(acme_nonce_consume(n, v[1]));
    acme_nonces_snapshot(n, &snap);
    acme_nonce_snap_fmt(&snap, &p, len);
    assert_int_equal(*len, 72 + 128 / 8);
    acme_nonce_snap_clear(&snap);
    free_n(v, 3);
    acme_nonces_free(n);
    return p;
}

/* Overwrites width bytes at p with v, big-endian as in the file. */
static void
put_field(unsigned char *p, int width, uint64_t v)
{
    for (int i = 0; i < width; i++)
        p[i] = (unsigned char)(v >> (8 * (width - 1 - i)));
}

#define F_OPEN 1u    /* mode 0644 */
#define F_SYMLINK 2u /* nonces.state is a symbolic link to the file */
#define F_BIG 4u     /* a consistent file for twice the largest window */

/* The good file of good_file() (88 bytes) with one thing wrong. */
static const struct bad_case {
    const char *name;
    size_t off;   /* field overwritten with val (width bytes); width 0: none */
    int width;
    uint64_t val;
    long resize;  /* bytes added to (removed from) the file */
    unsigned flags;
    const char *why; /* expected in the error */
} bad_cases[] = {
    {"empty file", 0, 0, 0, -88, 0, "not a nonce state"},
    {"header cut", 0, 0, 0, -48, 0, "not a nonce state"},
    {"bitmap cut", 0, 0, 0, -1, 0, "bytes, want"},
    {"trailing byte", 0, 0, 0, 1, 0, "bytes, want"},
    {"bad magic", 0, 1, 'X', 0, 0, "not a nonce state"},
    {"version 2", 8, 4, 2, 0, 0, "version 2"},
    {"16-byte key", 12, 4, 16, 0, 0, "16-byte key"},
    {"bitmap length field", 64, 8, 8, 0, 0, "bytes, want"},
    {"window not a power of two", 56, 8, 96, 0, 0, "out of range"},
    {"window below one word", 56, 8, 32, 0, 0, "out of range"},
    {"window above the limit", 56, 8, ACME_NONCE_MAX_WINDOW * 2, 0, 0, "out of range"},
    {"counter zero", 48, 8, 0, 0, 0, "out of range"},
    {"counter near wrap", 48, 8, UINT64_MAX, 0, 0, "out of range"},
    {"oversized bitmap", 0, 0, 0, 0, F_BIG, "larger than"},
    {"readable by others", 0, 0, 0, 0, F_OPEN, "must be 0600"},
    {"symbolic link", 0, 0, 0, 0, F_SYMLINK, "cannot open"},
};

/* Writes the damaged file of case c at e->path. */
static void
write_bad(const struct env *e, const struct bad_case *c)
{
    size_t len = 0, w = ACME_NONCE_MAX_WINDOW * 2;
    unsigned char *good = good_file(&len), *p;
    size_t size = (c->flags & F_BIG) ? 72 + w / 8 : (size_t)((long)len + c->resize);
    char err[ERR_LEN], *target = xasprintf("%s/elsewhere", e->dir);

    p = xcalloc(1, size + 1);
    memcpy(p, good, len < size ? len : size);
    if (c->flags & F_BIG) {
        put_field(p + 56, 8, w);
        put_field(p + 64, 8, w / 8);
    }
    if (c->width > 0)
        put_field(p + c->off, c->width, c->val);
    if (c->flags & F_SYMLINK) {
        assert_int_equal(file_write_atomic(target, p, size, 0600, err), 0);
        assert_int_equal(symlink(target, e->path), 0);
    } else {
        assert_int_equal(
            file_write_atomic(e->path, p, size, (c->flags & F_OPEN) ? 0644 : 0600, err), 0);
    }
    secure_wipe(good, len);
    free(good);
    free(p);
    free(target);
}

static void
test_bad_files(void **state)
{
    struct env *e = *state;

    for (size_t i = 0; i < nitems(bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        struct acme_nonces *n = acme_nonces_new(128);
        char err[ERR_LEN] = "", *before = acme_nonce_issue(n), *after;
        size_t count = 99;

        write_bad(e, c);
        if (acme_nonce_state_restore(n, e->path, &count, err) != -1)
            fail_msg("%s: adopted", c->name);
        if (strstr(err, c->why) == NULL || strstr(err, e->path) == NULL)
            fail_msg("%s: error \"%s\" lacks \"%s\" or the path", c->name, err, c->why);
        assert_int_equal(count, 0);
        if (exists(e->path))
            fail_msg("%s: file left behind", c->name);
        /* Fresh state kept: its own nonces work, counting was not moved. */
        after = acme_nonce_issue(n);
        assert_int_equal(counter_of(n, after), counter_of(n, before) + 1);
        assert_true(acme_nonce_consume(n, before));
        free(before);
        free(after);
        acme_nonces_free(n);
    }
}

/* State saved with one window and restored into another: only counters both cover survive. */
static void
test_window_change(void **state)
{
    struct env *e = *state;
    struct acme_nonces *n = acme_nonces_new(128), *small = acme_nonces_new(64),
                       *large = acme_nonces_new(256);
    char err[ERR_LEN] = "", *v[128];
    size_t count = 0, i;

    issue_n(n, v, 128); /* counters 1..128, all in the window */
    for (i = 0; i < 128; i += 2)
        assert_true(acme_nonce_consume(n, v[i])); /* odd counters spent, even unused */
    assert_int_equal(acme_nonce_state_save(n, e->path, &count, err), 0);
    assert_int_equal(count, 64);
    assert_int_equal(acme_nonce_state_restore(small, e->path, &count, err), 1);
    assert_int_equal(count, 32); /* unused among counters 65..128 */
    for (i = 0; i < 128; i++) {
        bool want = i >= 64 && i % 2 == 1;
        if (acme_nonce_consume(small, v[i]) != want)
            fail_msg("window 64: counter %zu accepted=%d", i + 1, !want);
    }

    assert_int_equal(acme_nonce_state_save(n, e->path, &count, err), 0);
    assert_int_equal(acme_nonce_state_restore(large, e->path, &count, err), 1);
    assert_int_equal(count, 64);
    for (i = 0; i < 128; i++)
        assert_int_equal(acme_nonce_consume(large, v[i]), i % 2 == 1);
    free_n(v, 128);
    acme_nonces_free(n);
    acme_nonces_free(small);
    acme_nonces_free(large);
}

/* Removal failed: the file is not adopted, since a crash could bring it back. */
static void
test_not_removable(void **state)
{
    struct env *e = *state;
    struct acme_nonces *n, *m;
    char err[ERR_LEN] = "", *v;
    size_t count = 0;

    /* A directory in its place can be neither read nor unlinked. */
    assert_int_equal(mkdir(e->path, 0700), 0);
    n = acme_nonces_new(128);
    assert_int_equal(acme_nonce_state_restore(n, e->path, &count, err), -1);
    assert_non_null(strstr(err, "cannot remove"));
    assert_true(exists(e->path));
    assert_int_equal(rmdir(e->path), 0);
    acme_nonces_free(n);
    if (geteuid() == 0)
        skip(); /* root unlinks in a read-only directory */
    n = acme_nonces_new(128);
    m = acme_nonces_new(128);
    v = acme_nonce_issue(n);
    assert_int_equal(acme_nonce_state_save(n, e->path, &count, err), 0);
    assert_int_equal(chmod(e->dir, 0500), 0);
    assert_int_equal(acme_nonce_state_restore(m, e->path, &count, err), -1);
    assert_non_null(strstr(err, "cannot remove"));
    assert_false(acme_nonce_consume(m, v));
    assert_int_equal(chmod(e->dir, 0700), 0);
    free(v);
    acme_nonces_free(n);
    acme_nonces_free(m);
}

#define OPAQUE_COUNT 100000
#define B64U_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

/* The 16-byte block a nonce's text encodes. */
static void
block_of(const char *nonce, unsigned char out[16])
{
    unsigned char *raw = NULL;
    size_t len = 0;

    assert_int_equal(b64u_decode(nonce, strlen(nonce), &raw, &len), 0);
    assert_int_equal(len, 16);
    memcpy(out, raw, 16);
    free(raw);
}

static int
common_prefix_bits(const unsigned char *a, const unsigned char *b)
{
    int i = 0;

    while (i < 128 && ((a[i / 8] ^ b[i / 8]) & (0x80 >> (i % 8))) == 0)
        i++;
    return i;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * N-6, as the checklist collects them: 100 000 nonces, base64url, no
 * duplicates, and nothing of the counter shows. Every bit is set in about
 * half of them (a counter leaves its high bits at zero), consecutive ones
 * share no more leading bits than chance (over 1e5 pairs, 40 or more has
 * odds below 1e-7) and rise as often as they fall. The bounds are 15 standard
 * deviations wide. Yet the key still reads the counters 1, 2, 3...
 */
static void
test_opaque(void **state)
{
    struct acme_nonces *n = acme_nonces_new(1024);
    char **v = xcalloc(OPAQUE_COUNT, sizeof(*v));
    unsigned char prev[16] = {0}, cur[16];
    size_t ones[128] = {0}, rises = 0, i;
    int pre, maxpre = 0;

    for (i = 0; i < OPAQUE_COUNT; i++) {
        v[i] = acme_nonce_issue(n);
        assert_int_equal(strlen(v[i]), 22);
        assert_int_equal(strspn(v[i], B64U_CHARS), 22);
        assert_int_equal(counter_of(n, v[i]), i + 1);
        block_of(v[i], cur);
        for (int b = 0; b < 128; b++)
            ones[b] += (cur[b / 8] >> (7 - b % 8)) & 1;
        if (i > 0) {
            pre = common_prefix_bits(prev, cur);
            maxpre = pre > maxpre ? pre : maxpre;
            rises += memcmp(cur, prev, 16) > 0;
        }
        memcpy(prev, cur, 16);
    }
    for (int b = 0; b < 128; b++)
        if (ones[b] < OPAQUE_COUNT / 2 - 2500 || ones[b] > OPAQUE_COUNT / 2 + 2500)
            fail_msg("bit %d set in %zu of %d nonces", b, ones[b], OPAQUE_COUNT);
    if (maxpre >= 40)
        fail_msg("consecutive nonces share %d leading bits", maxpre);
    if (rises < OPAQUE_COUNT / 2 - 2500 || rises > OPAQUE_COUNT / 2 + 2500)
        fail_msg("%zu of %d consecutive pairs rise", rises, OPAQUE_COUNT - 1);
    qsort(v, OPAQUE_COUNT, sizeof(*v), cmp_str);
    for (i = 1; i < OPAQUE_COUNT; i++)
        if (strcmp(v[i - 1], v[i]) == 0)
            fail_msg("duplicate nonce %s", v[i]);
    free_n(v, OPAQUE_COUNT);
    free(v);
    acme_nonces_free(n);
}

/*
 * A nonce with any one bit changed, a random block, the all-zero block and
 * the former 24-byte form are all refused, and none of it costs the real
 * nonce its single use.
 */
static void
test_tampered(void **state)
{
    struct acme_nonces *n = acme_nonces_new(1024);
    char *good = acme_nonce_issue(n), *bad;
    unsigned char raw[16];
    uint64_t c;

    block_of(good, raw);
    for (int b = 0; b < 128; b++) {
        raw[b / 8] ^= (unsigned char)(0x80 >> (b % 8));
        bad = b64u_encode(raw, sizeof(raw));
        raw[b / 8] ^= (unsigned char)(0x80 >> (b % 8));
        if (acme_nonce_consume(n, bad) || acme_nonce_counter(n, bad, &c) == 0)
            fail_msg("nonce with bit %d flipped accepted", b);
        free(bad);
    }
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(rand_bytes(raw, sizeof(raw)), 0);
        bad = b64u_encode(raw, sizeof(raw));
        if (acme_nonce_consume(n, bad))
            fail_msg("random nonce %s accepted", bad);
        free(bad);
    }
    assert_false(acme_nonce_consume(n, "AAAAAAAAAAAAAAAAAAAAAA"));
    assert_false(acme_nonce_consume(n, "AAAAAAAAAAABAAAAAAAAAAAAAAAAAAAA"));
    assert_int_equal(acme_nonce_counter(n, "AAAAAAAAAAAAAAAAAAAAA", &c), -1);
    assert_true(acme_nonce_consume(n, good));
    assert_false(acme_nonce_consume(n, good));
    free(good);
    acme_nonces_free(n);
}

#define RACE_THREADS 4
#define RACE_ROUNDS 5000

static void *
race_main(void *arg)
{
    struct acme_nonces *n = arg;
    size_t refused = 0;

    for (int i = 0; i < RACE_ROUNDS; i++) {
        char *v = acme_nonce_issue(n);
        refused += !acme_nonce_consume(n, v);
        free(v);
    }
    return (void *)(uintptr_t)refused;
}

/*
 * The cipher contexts are shared: threads issuing and spending at once all
 * succeed. The window holds every nonce of the test, so a thread preempted
 * between issue and spend cannot see its nonce evicted.
 */
static void
test_threads(void **state)
{
    struct acme_nonces *n = acme_nonces_new(RACE_THREADS * RACE_ROUNDS * 2);
    pthread_t th[RACE_THREADS];
    void *refused;
    char *last;

    for (int i = 0; i < RACE_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race_main, n), 0);
    for (int i = 0; i < RACE_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], &refused), 0);
        assert_int_equal((uintptr_t)refused, 0);
    }
    last = acme_nonce_issue(n);
    assert_int_equal(counter_of(n, last), RACE_THREADS * RACE_ROUNDS + 1);
    free(last);
    acme_nonces_free(n);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opaque),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_threads),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_removable, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
