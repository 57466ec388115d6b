/*
 * store argument validation, table-driven: size limits (id 128 bytes, data
 * 1 MiB, short columns), bad kinds and ops, malformed commits, bad read
 * arguments and bad store_open targets. Rejected writes must leave nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/store_int.h"
#include "tests/unit/store/store_test.h"

static char *filled(size_t n, char c)
{
    char *s = xmalloc(n + 1);

    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static int count_fn(void *arg, const struct store_rec *rec)
{
    (*(size_t *)arg)++;
    return 0;
}

static void test_invalid_writes(void **state)
{
    char *id128 = filled(STORE_MAX_ID, 'i'), *id129 = filled(STORE_MAX_ID + 1, 'j');
    char *dmax = filled(STORE_MAX_DATA, 'd'), *dover = filled(STORE_MAX_DATA + 1, 'e');
    char *fover = filled(STORE_MAX_FIELD + 1, 'f');
    const struct {
        const char *name;
        enum store_op op;
        int kind;
        const char *id, *owner, *data;
        int64_t expect;
        int want;
    } rows[] = {
        {"id of 128 bytes", STORE_INSERT, STORE_ACCOUNT, id128, NULL, "{}", 0, 0},
        {"id of 129 bytes", STORE_INSERT, STORE_ACCOUNT, id129, NULL, "{}", 0, -1},
        {"id NULL", STORE_INSERT, STORE_ACCOUNT, NULL, NULL, "{}", 0, -1},
        {"id empty", STORE_INSERT, STORE_ACCOUNT, "", NULL, "{}", 0, -1},
        {"data of 1 MiB", STORE_INSERT, STORE_CERT, "big", NULL, dmax, 0, 0},
        {"data over 1 MiB", STORE_INSERT, STORE_CERT, "bigger", NULL, dover, 0, -1},
        {"update over 1 MiB", STORE_UPDATE, STORE_CERT, "big", NULL, dover, 0, -1},
        {"owner too long", STORE_INSERT, STORE_ORDER, "o", fover, "{}", 0, -1},
        {"kind negative", STORE_INSERT, -1, "k", NULL, "{}", 0, -1},
        {"kind past max", STORE_INSERT, STORE_KIND__MAX, "k", NULL, "{}", 0, -1},
        {"op unknown", 7, STORE_ORDER, "k", NULL, "{}", 0, -1},
        {"negative expect_version", STORE_UPDATE, STORE_CERT, "big", NULL, "{}", -1, -1},
        {"delete id too long", STORE_DELETE, STORE_ACCOUNT, id129, NULL, NULL, 0, -1},
        {"data valid utf-8", STORE_INSERT, STORE_AUDIT, "u1", NULL, "\xf0\x9f\x94\x92\xc3\xa9", 0,
         0},
        {"data stray continuation", STORE_INSERT, STORE_AUDIT, "u2", NULL,
         "a\x80"
         "b",
         0, -1},
        {"data truncated sequence", STORE_INSERT, STORE_AUDIT, "u3", NULL, "\xe2\x9c", 0, -1},
        {"data overlong slash", STORE_INSERT, STORE_AUDIT, "u4", NULL, "\xc0\xaf", 0, -1},
        {"data surrogate", STORE_INSERT, STORE_AUDIT, "u5", NULL, "\xed\xa0\x80", 0, -1},
        {"data past U+10FFFF", STORE_INSERT, STORE_AUDIT, "u6", NULL, "\xf4\x90\x80\x80", 0, -1},
        {"id latin-1", STORE_INSERT, STORE_AUDIT, "caf\xe9", NULL, "{}", 0, -1},
        {"owner invalid utf-8", STORE_INSERT, STORE_AUDIT, "u7", "\xff", "{}", 0, -1},
    };
    char target[512], err[ERR_LEN];
    struct store *st = tst_open_fresh(target, sizeof(target));
    size_t expected_rows = 0;

    for (size_t i = 0; i < nitems(rows); i++) {
        struct store_rec r = tst_rec((enum store_kind)rows[i].kind, rows[i].id, rows[i].owner, NULL,
                                     NULL, 1, rows[i].data);
        struct store_write w = {(enum store_op)rows[i].op, &r, rows[i].expect};
        print_message("row %s\n", rows[i].name);
        err[0] = '\0';
        assert_int_equal(store_commit(st, &w, 1, err), rows[i].want);
        if (rows[i].want < 0)
            assert_true(err[0] != '\0');
        else if (rows[i].op == STORE_INSERT)
            expected_rows++;
    }
    /* A bad write anywhere in a commit rejects the whole commit before it is queued. */
    struct store_rec ok = tst_rec(STORE_ORDER, "fine", NULL, NULL, NULL, 1, "{}");
    struct store_rec bad = tst_rec(STORE_ORDER, id129, NULL, NULL, NULL, 1, "{}");
    struct store_write pair[] = {{STORE_INSERT, &ok, 0}, {STORE_INSERT, &bad, 0}};
    assert_int_equal(store_commit(st, pair, 2, err), -1);
    struct store_write nullrec = {STORE_INSERT, NULL, 0};
    assert_int_equal(store_commit(st, &nullrec, 1, err), -1);
    assert_int_equal(store_commit(st, pair, 0, err), -1);
    assert_int_equal(store_commit(st, NULL, 1, err), -1);

    size_t n = 0;
    for (int k = 0; k < STORE_KIND__MAX; k++)
        assert_int_equal(store_list(st, (enum store_kind)k, NULL, count_fn, &n, err), 0);
    assert_int_equal(n, expected_rows);
    store_close(st);
    free(id128);
    free(id129);
    free(dmax);
    free(dover);
    free(fover);
}

static void test_invalid_reads(void **state)
{
    char *id129 = filled(STORE_MAX_ID + 1, 'j');
    const struct {
        const char *name;
        int kind;
        const char *id;
        int want;
    } rows[] = {
        {"absent id", STORE_ACCOUNT, "absent", 1},
        {"id NULL", STORE_ACCOUNT, NULL, -1},
        {"id empty", STORE_ACCOUNT, "", -1},
        {"id too long", STORE_ACCOUNT, id129, -1},
        {"kind negative", -1, "x", -1},
        {"kind past max", STORE_KIND__MAX, "x", -1},
    };
    char target[512], err[ERR_LEN];
    struct store *st = tst_open_fresh(target, sizeof(target));
    struct store_filter f = {0};
    size_t n = 0;

    for (size_t i = 0; i < nitems(rows); i++) {
        struct store_rec got;
        print_message("row %s\n", rows[i].name);
        err[0] = '\0';
        assert_int_equal(store_get(st, (enum store_kind)rows[i].kind, rows[i].id, &got, err),
                         rows[i].want);
        assert_null(got.id);
        if (rows[i].want < 0)
            assert_true(err[0] != '\0');
    }
    assert_int_equal(store_list(st, STORE_ORDER, &f, NULL, NULL, err), -1);
    assert_int_equal(store_list(st, STORE_KIND__MAX, &f, count_fn, &n, err), -1);
    char *long_owner = filled(STORE_MAX_FIELD + 1, 'o');
    f.owner = long_owner;
    assert_int_equal(store_list(st, STORE_ORDER, &f, count_fn, &n, err), -1);
    f.owner = NULL;
    f.after_id = id129; /* a position is a row id: the same bound */
    assert_int_equal(store_list(st, STORE_ORDER, &f, count_fn, &n, err), -1);
    assert_int_equal(n, 0);
    store_close(st);
    free(long_owner);
    free(id129);
}

static void test_invalid_open(void **state)
{
    char garbage[512];
    tst_fresh_target(garbage, sizeof(garbage));
    if (strcmp(tst_driver(), "sqlite") == 0) {
        FILE *f = fopen(garbage, "w");
        assert_non_null(f);
        fputs("this is not an SQLite database, it is a text file long enough to have a header\n",
              f);
        fclose(f);
    } else {
        snprintf(garbage, sizeof(garbage), "/nonexistent-attesta-dir/x.db");
    }
    const struct {
        const char *name, *driver, *target;
    } rows[] = {
        {"unknown driver", "mysql", "x"},
        {"NULL driver", NULL, "x"},
        {"NULL target", "sqlite", NULL},
        {"empty target", "sqlite", ""},
        {"sqlite missing dir", "sqlite", "/nonexistent-attesta-dir/store.db"},
        {"sqlite not a database", "sqlite", garbage},
        {"postgres bad conninfo", "postgres", "this is not=valid conninfo"},
        {"postgres no server", "postgres", "host=/nonexistent-attesta-dir port=1"},
    };
    char err[ERR_LEN];

    for (size_t i = 0; i < nitems(rows); i++) {
        print_message("row %s\n", rows[i].name);
        err[0] = '\0';
        assert_null(store_open(rows[i].driver, rows[i].target, err));
        assert_true(err[0] != '\0');
    }
    store_close(NULL);
}

int tst_run_invalid(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_writes),
        cmocka_unit_test(test_invalid_reads),
        cmocka_unit_test(test_invalid_open),
    };
    return cmocka_run_group_tests_name("store_invalid", tests, NULL, NULL);
}
