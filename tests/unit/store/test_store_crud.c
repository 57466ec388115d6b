/*
 * store record semantics, table-driven and run per backend: insert/update/
 * delete conflicts and versions, field round trips, multi-write atomicity,
 * lookups, list filters, and rejection of invalid arguments.
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

static void opt_str_equal(const char *got, const char *want)
{
    if (want == NULL)
        assert_null(got);
    else
        assert_string_equal(got, want);
}

/* Asserts the stored row's version (0 = absent) and, when given, data and status. */
static void expect_row(struct store *st, enum store_kind kind, const char *id, int64_t version,
                       const char *data, const char *status)
{
    struct store_rec got;
    char err[ERR_LEN] = "";
    int rc = store_get(st, kind, id, &got, err);

    assert_int_equal(rc, version == 0 ? 1 : 0);
    if (version != 0) {
        assert_int_equal(got.kind, kind);
        assert_string_equal(got.id, id);
        assert_int_equal(got.version, version);
        if (data != NULL)
            assert_string_equal(got.data, data);
        if (status != NULL)
            assert_string_equal(got.status, status);
    }
    store_rec_clear(&got);
}

static void test_crud_sequence(void **state)
{
    static const char evil[] =
        "{\"q\":\"it's\\\"; DROP TABLE records; --\",\"u\":\"\xc3\xa9\xe2\x9c\x93\"}";
    static const struct {
        const char *name;
        enum store_op op;
        enum store_kind kind;
        const char *id, *status, *data;
        int64_t expect;
        int want;
        int64_t want_version; /* after the step; 0 = row absent */
        const char *want_data;
    } steps[] = {
        {"insert new", STORE_INSERT, STORE_ACCOUNT, "a1", "valid", "{\"n\":1}", 0, 0, 1,
         "{\"n\":1}"},
        {"insert duplicate", STORE_INSERT, STORE_ACCOUNT, "a1", "valid", "{\"n\":9}", 0, 1, 1,
         "{\"n\":1}"},
        {"same id other kind", STORE_INSERT, STORE_ORDER, "a1", "pending", "{}", 0, 0, 1, "{}"},
        {"update expected version", STORE_UPDATE, STORE_ACCOUNT, "a1", "deactivated", "{\"n\":2}",
         1, 0, 2, "{\"n\":2}"},
        {"update stale version", STORE_UPDATE, STORE_ACCOUNT, "a1", "valid", "{\"n\":3}", 1, 1, 2,
         "{\"n\":2}"},
        {"update future version", STORE_UPDATE, STORE_ACCOUNT, "a1", "valid", "{\"n\":3}", 7, 1, 2,
         "{\"n\":2}"},
        {"update any version", STORE_UPDATE, STORE_ACCOUNT, "a1", "valid", "{\"n\":4}", 0, 0, 3,
         "{\"n\":4}"},
        {"update missing row", STORE_UPDATE, STORE_ACCOUNT, "nope", "valid", "{}", 0, 1, 0, NULL},
        {"delete stale version", STORE_DELETE, STORE_ACCOUNT, "a1", NULL, NULL, 2, 1, 3,
         "{\"n\":4}"},
        {"delete expected version", STORE_DELETE, STORE_ACCOUNT, "a1", NULL, NULL, 3, 0, 0, NULL},
        {"other kind untouched", STORE_UPDATE, STORE_ORDER, "a1", "ready", "{}", 1, 0, 2, "{}"},
        {"delete again", STORE_DELETE, STORE_ACCOUNT, "a1", NULL, NULL, 0, 1, 0, NULL},
        {"reinsert after delete", STORE_INSERT, STORE_ACCOUNT, "a1", "valid", "{}", 0, 0, 1, "{}"},
        {"delete any version", STORE_DELETE, STORE_ORDER, "a1", NULL, NULL, 0, 0, 0, NULL},
        {"sql metacharacters", STORE_INSERT, STORE_AUDIT, "x'; --", "a'b", evil, 0, 0, 1, evil},
    };
    char target[512];
    struct store *st = tst_open_fresh(target, sizeof(target));

    for (size_t i = 0; i < nitems(steps); i++) {
        struct store_rec r =
            tst_rec(steps[i].kind, steps[i].id, "owner", NULL, steps[i].status, 100, steps[i].data);
        print_message("step %s\n", steps[i].name);
        assert_int_equal(tst_commit1(st, steps[i].op, &r, steps[i].expect), steps[i].want);
        expect_row(st, steps[i].kind, steps[i].id, steps[i].want_version, steps[i].want_data, NULL);
    }
    store_close(st);
}

static void test_roundtrip(void **state)
{
    static const struct store_rec rows[] = {
        {STORE_ACCOUNT, "all-null", NULL, NULL, NULL, 0, 0, 0, NULL},
        {STORE_ACCOUNT, "empty-strings", "", "", "", 1, 2, 0, ""},
        {STORE_CERT, "0a1b2c", "acct-1", "9f86d081884c7d65", "valid", 1700000000, 1731536000, 0,
         "{\"pem\":\"-----BEGIN CERTIFICATE-----\\nMII\\n\"}"},
        {STORE_EAB, "kid-1", NULL, "acct-9", "bound", -5, INT64_MAX, 0, "[1,2,3]"},
        {STORE_AUDIT, "\xe2\x9c\x93-utf8", "o", "serial-\xc3\xa9", "s", INT64_MIN + 1, 0, 0, "{}"},
    };
    char target[512], err[ERR_LEN] = "";
    struct store *st = tst_open_fresh(target, sizeof(target));

    for (size_t i = 0; i < nitems(rows); i++) {
        struct store_rec got;
        print_message("row %s\n", rows[i].id);
        assert_int_equal(tst_commit1(st, STORE_INSERT, &rows[i], 0), 0);
        assert_int_equal(store_get(st, rows[i].kind, rows[i].id, &got, err), 0);
        assert_int_equal(got.kind, rows[i].kind);
        assert_string_equal(got.id, rows[i].id);
        opt_str_equal(got.owner, rows[i].owner);
        opt_str_equal(got.lookup, rows[i].lookup);
        opt_str_equal(got.status, rows[i].status);
        opt_str_equal(got.data, rows[i].data);
        assert_int_equal(got.created, rows[i].created);
        assert_int_equal(got.expires, rows[i].expires);
        assert_int_equal(got.version, 1);
        store_rec_clear(&got);
    }
    store_close(st);
}

static void test_multi_write_atomic(void **state)
{
    struct wr {
        enum store_op op;
        const char *id;
        int64_t expect;
    };
    struct chk {
        const char *id;
        int64_t version; /* 0 = absent */
    };
    static const struct {
        const char *name;
        struct wr w[3];
        size_t n;
        int want;
        struct chk after[3];
    } rows[] = {
        {"two inserts",
         {{STORE_INSERT, "a", 0}, {STORE_INSERT, "b", 0}},
         2,
         0,
         {{"a", 1}, {"b", 1}, {"base", 1}}},
        {"second insert conflicts",
         {{STORE_INSERT, "c", 0}, {STORE_INSERT, "base", 0}},
         2,
         1,
         {{"c", 0}, {"base", 1}}},
        {"stale update undoes insert",
         {{STORE_INSERT, "d", 0}, {STORE_UPDATE, "base", 5}},
         2,
         1,
         {{"d", 0}, {"base", 1}}},
        {"insert then update it",
         {{STORE_INSERT, "e", 0}, {STORE_UPDATE, "e", 1}},
         2,
         0,
         {{"e", 2}}},
        {"missing delete undoes all",
         {{STORE_UPDATE, "a", 1}, {STORE_INSERT, "f", 0}, {STORE_DELETE, "zz", 0}},
         3,
         1,
         {{"a", 1}, {"f", 0}}},
        {"update then delete",
         {{STORE_UPDATE, "base", 1}, {STORE_DELETE, "base", 2}},
         2,
         0,
         {{"base", 0}, {"a", 1}}},
    };
    char target[512], err[ERR_LEN] = "";
    struct store *st = tst_open_fresh(target, sizeof(target));
    struct store_rec base = tst_rec(STORE_ORDER, "base", "acct", NULL, "pending", 1, "{}");

    assert_int_equal(tst_commit1(st, STORE_INSERT, &base, 0), 0);
    for (size_t i = 0; i < nitems(rows); i++) {
        struct store_rec recs[3];
        struct store_write w[3];
        print_message("row %s\n", rows[i].name);
        for (size_t j = 0; j < rows[i].n; j++) {
            recs[j] = tst_rec(STORE_ORDER, rows[i].w[j].id, "acct", NULL, "pending", 2, "{}");
            w[j] = (struct store_write){rows[i].w[j].op, &recs[j], rows[i].w[j].expect};
        }
        assert_int_equal(store_commit(st, w, rows[i].n, err), rows[i].want);
        for (size_t j = 0; j < nitems(rows[i].after) && rows[i].after[j].id != NULL; j++)
            expect_row(st, STORE_ORDER, rows[i].after[j].id, rows[i].after[j].version, NULL, NULL);
    }
    store_close(st);
}

static void test_get_by_lookup(void **state)
{
    static const struct store_rec data[] = {
        {STORE_CERT, "c1", "a", "spki1", "valid", 10, 0, 0, "1"},
        {STORE_CERT, "c2", "a", "spki1", "revoked", 20, 0, 0, "2"},
        {STORE_CERT, "c3", "a", "spki2", "valid", 5, 0, 0, "3"},
        {STORE_ACCOUNT, "acct", NULL, "thumb", "valid", 99, 0, 0, "4"},
    };
    static const struct {
        enum store_kind kind;
        const char *lookup;
        int want;
        const char *want_id;
    } rows[] = {
        {STORE_CERT, "spki1", 0, "c2"},       {STORE_CERT, "spki2", 0, "c3"},
        {STORE_CERT, "spki3", 1, NULL},       {STORE_ACCOUNT, "spki1", 1, NULL},
        {STORE_ACCOUNT, "thumb", 0, "acct"},  {STORE_CERT, "SPKI1", 1, NULL},
        {STORE_CERT, NULL, -1, NULL},         {STORE_CERT, "", -1, NULL},
        {STORE_KIND__MAX, "spki1", -1, NULL},
    };
    char target[512], err[ERR_LEN];
    struct store *st = tst_open_fresh(target, sizeof(target));

    for (size_t i = 0; i < nitems(data); i++)
        assert_int_equal(tst_commit1(st, STORE_INSERT, &data[i], 0), 0);
    for (size_t i = 0; i < nitems(rows); i++) {
        struct store_rec got;
        err[0] = '\0';
        assert_int_equal(store_get_by_lookup(st, rows[i].kind, rows[i].lookup, &got, err),
                         rows[i].want);
        if (rows[i].want == 0)
            assert_string_equal(got.id, rows[i].want_id);
        if (rows[i].want < 0)
            assert_true(err[0] != '\0');
        store_rec_clear(&got);
    }
    store_close(st);
}

/* Collects listed ids as "a,b,c"; stops after `stop` rows when non-zero. */
struct collect {
    struct buf ids;
    size_t rows, stop;
    struct store *nested; /* when set, re-reads each row from inside the callback */
};

static int collect_fn(void *arg, const struct store_rec *rec)
{
    struct collect *c = arg;
    char err[ERR_LEN];

    if (c->nested != NULL) {
        struct store_rec again;
        struct collect inner = {0};
        struct store_filter all = {0};
        assert_int_equal(store_get(c->nested, rec->kind, rec->id, &again, err), 0);
        assert_string_equal(again.data, rec->data);
        store_rec_clear(&again);
        /* Same filter shape as the outer list: must not disturb the running statement. */
        assert_int_equal(store_list(c->nested, rec->kind, &all, collect_fn, &inner, err), 0);
        assert_true(inner.rows > 0);
        buf_free(&inner.ids);
    }
    if (c->ids.len > 0)
        buf_puts(&c->ids, ",");
    buf_puts(&c->ids, rec->id);
    c->rows++;
    return c->stop != 0 && c->rows >= c->stop;
}

static void test_list_filters(void **state)
{
    static const struct store_rec data[] = {
        {STORE_ORDER, "o1", "A", NULL, "pending", 100, 0, 0, "{}"},
        {STORE_ORDER, "o2", "A", NULL, "valid", 200, 0, 0, "{}"},
        {STORE_ORDER, "o3", "B", NULL, "pending", 300, 0, 0, "{}"},
        {STORE_ORDER, "o4", "A", NULL, "pending", 400, 0, 0, "{}"},
        {STORE_ORDER, "o5", "B", "L1", "invalid", 500, 0, 0, "{}"},
        {STORE_ORDER, "o6", "A", NULL, "valid", 200, 0, 0, "{}"},
        {STORE_AUTHZ, "z1", "A", "L1", "pending", 150, 0, 0, "{}"},
    };
    static const struct {
        const char *name;
        struct store_filter f;
        size_t stop;
        bool nested;
        const char *want;
    } rows[] = {
        {"all", {0}, 0, false, "o1,o2,o6,o3,o4,o5"},
        {"newest first", {.newest_first = true}, 0, false, "o5,o4,o3,o6,o2,o1"},
        {"owner", {.owner = "A"}, 0, false, "o1,o2,o6,o4"},
        {"owner and status", {.owner = "A", .status = "pending"}, 0, false, "o1,o4"},
        {"status", {.status = "valid"}, 0, false, "o2,o6"},
        {"lookup", {.lookup = "L1"}, 0, false, "o5"},
        {"created since", {.created_since = 300}, 0, false, "o3,o4,o5"},
        {"since with limit", {.created_since = 200, .limit = 2}, 0, false, "o2,o6"},
        {"newest limit 1", {.owner = "A", .newest_first = true, .limit = 1}, 0, false, "o4"},
        {"all filters",
         {.owner = "B", .lookup = "L1", .status = "invalid", .created_since = 500, .limit = 5,
          .newest_first = true},
         0, false, "o5"},
        {"unknown owner", {.owner = "C"}, 0, false, ""},
        {"unknown status", {.status = "expired"}, 0, false, ""},
        {"future since", {.created_since = 1000}, 0, false, ""},
        {"after, newest first", {.owner = "A", .newest_first = true, .after_id = "o6",
                                 .after_created = 200}, 0, false, "o2,o1"},
        {"after, oldest first", {.owner = "A", .after_id = "o2", .after_created = 200}, 0, false,
         "o6,o4"},
        {"after the last", {.owner = "A", .after_id = "o1", .after_created = 100,
                            .newest_first = true}, 0, false, ""},
        {"after an unknown id", {.after_id = "o3x", .after_created = 300}, 0, false, "o4,o5"},
        {"callback stops", {0}, 2, false, "o1,o2"},
        {"nested reads", {0}, 0, true, "o1,o2,o6,o3,o4,o5"},
    };
    char target[512], err[ERR_LEN] = "";
    struct store *st = tst_open_fresh(target, sizeof(target));

    for (size_t i = 0; i < nitems(data); i++)
        assert_int_equal(tst_commit1(st, STORE_INSERT, &data[i], 0), 0);
    for (size_t i = 0; i < nitems(rows); i++) {
        struct collect c = {.stop = rows[i].stop, .nested = rows[i].nested ? st : NULL};
        print_message("row %s\n", rows[i].name);
        assert_int_equal(store_list(st, STORE_ORDER, &rows[i].f, collect_fn, &c, err), 0);
        assert_string_equal(c.ids.p != NULL ? c.ids.p : "", rows[i].want);
        buf_free(&c.ids);
    }
    struct collect all = {0};
    assert_int_equal(store_list(st, STORE_AUTHZ, NULL, collect_fn, &all, err), 0);
    assert_string_equal(all.ids.p, "z1");
    buf_free(&all.ids);
    store_close(st);
}

/*
 * Updates that keep owner, lookup and created take SQLite's narrow statement;
 * the others its fallback. Either way every index must follow, and a stale
 * version must still be a conflict.
 */
static void test_update_indexed(void **state)
{
    static const struct {
        const char *owner, *lookup, *status;
        int64_t created, expect; /* expect: 0 = the row's version now */
        int want;
    } rows[] = {
        {"a", "k1", "ready", 10, 0, 0},   /* status only: narrow */
        {"a", "k2", "ready", 10, 0, 0},   /* lookup moves */
        {"b", "k2", "valid", 10, 0, 0},   /* owner moves */
        {"b", "k2", "valid", 20, 0, 0},   /* created moves */
        {"b", NULL, "valid", 20, 0, 0},   /* lookup cleared */
        {"b", NULL, "bad", 20, 1, 1},     /* stale version, columns kept: conflict */
        {"c", "k3", "bad", 30, 1, 1},     /* stale version, columns moved: conflict */
    };
    char target[512], err[ERR_LEN] = "";
    struct store *st = tst_open_fresh(target, sizeof(target));
    struct store_rec r = tst_rec(STORE_CERT, "u1", "a", "k1", "pending", 10, "{}"), got;
    struct collect c;
    int64_t version = 1;

    assert_int_equal(tst_commit1(st, STORE_INSERT, &r, 0), 0);
    for (size_t i = 0; i < nitems(rows); i++) {
        struct store_rec w = tst_rec(STORE_CERT, "u1", rows[i].owner, rows[i].lookup,
                                     rows[i].status, rows[i].created, "{}");
        assert_int_equal(tst_commit1(st, STORE_UPDATE, &w, rows[i].expect != 0 ? rows[i].expect
                                                                                 : version),
                         rows[i].want);
        if (rows[i].want != 0)
            continue;
        version++;
        assert_int_equal(store_get(st, STORE_CERT, "u1", &got, err), 0);
        assert_int_equal(got.version, version);
        assert_string_equal(got.status, rows[i].status);
        assert_int_equal(got.created, rows[i].created);
        store_rec_clear(&got);
        memset(&c, 0, sizeof(c));
        struct store_filter f = {.owner = rows[i].owner, .status = rows[i].status};
        assert_int_equal(store_list(st, STORE_CERT, &f, collect_fn, &c, err), 0);
        assert_int_equal(c.rows, 1);
        buf_free(&c.ids);
        for (const char *k = "k1"; k != NULL; k = strcmp(k, "k1") == 0 ? "k2" : NULL) {
            bool want = rows[i].lookup != NULL && strcmp(rows[i].lookup, k) == 0;
            assert_int_equal(store_get_by_lookup(st, STORE_CERT, k, &got, err), want ? 0 : 1);
            store_rec_clear(&got);
        }
    }
    store_close(st);
}

/*
 * Keyset paging over rows that mostly share a created second: following the
 * last row of each page visits every row once, in order, while rows newer
 * than the walk are added between pages.
 */
static void test_list_paging(void **state)
{
    char target[512], err[ERR_LEN] = "", id[16], *want;
    struct store *st = tst_open_fresh(target, sizeof(target));
    struct buf walked = {0};
    struct store_rec r;
    int pages = 0;

    for (int i = 0; i < 23; i++) {
        snprintf(id, sizeof(id), "p%02d", (i * 7) % 23); /* ids not in insertion order */
        r = tst_rec(STORE_ORDER, id, "A", NULL, "valid", 1000 + i / 10, "{}");
        assert_int_equal(tst_commit1(st, STORE_INSERT, &r, 0), 0);
    }
    struct collect c = {0};
    struct store_filter f = {.owner = "A", .newest_first = true};
    assert_int_equal(store_list(st, STORE_ORDER, &f, collect_fn, &c, err), 0);
    want = buf_take(&c.ids);
    for (f.limit = 4;; pages++) {
        struct collect page = {0};
        struct store_rec last = {0};
        assert_int_equal(store_list(st, STORE_ORDER, &f, collect_fn, &page, err), 0);
        if (page.rows == 0)
            break;
        buf_printf(&walked, "%s%s", walked.len > 0 ? "," : "", page.ids.p);
        /* the next page starts after this one's last row */
        const char *comma = strrchr(page.ids.p, ',');
        snprintf(id, sizeof(id), "%s", comma != NULL ? comma + 1 : page.ids.p);
        assert_int_equal(store_get(st, STORE_ORDER, id, &last, err), 0);
        f.after_id = id;
        f.after_created = last.created;
        store_rec_clear(&last);
        buf_free(&page.ids);
        snprintf(target, sizeof(target), "new%d", pages);
        r = tst_rec(STORE_ORDER, target, "A", NULL, "valid", 2000, "{}");
        assert_int_equal(tst_commit1(st, STORE_INSERT, &r, 0), 0);
    }
    assert_int_equal(pages, 6);
    assert_string_equal(walked.p, want);
    free(want);
    buf_free(&walked);
    store_close(st);
}

int tst_run_crud(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crud_sequence),      cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_multi_write_atomic), cmocka_unit_test(test_get_by_lookup),
        cmocka_unit_test(test_list_filters),       cmocka_unit_test(test_update_indexed),
        cmocka_unit_test(test_list_paging),
    };
    return cmocka_run_group_tests_name("store_crud", tests, NULL, NULL);
}
