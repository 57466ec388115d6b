/* Unit tests for common/: base64url, time parsing, durations, numbers, whole files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/common.h"

static void test_b64u_roundtrip(void **state)
{
    static const struct {
        const char *raw, *enc;
    } rows[] = {
        {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"\xfb\xff", "-_8"},
    };
    for (size_t i = 0; i < nitems(rows); i++) {
        char *enc = b64u_encode(rows[i].raw, strlen(rows[i].raw));
        assert_string_equal(enc, rows[i].enc);
        unsigned char *dec = NULL;
        size_t n = 0;
        assert_int_equal(b64u_decode(enc, strlen(enc), &dec, &n), 0);
        assert_int_equal(n, strlen(rows[i].raw));
        assert_memory_equal(dec, rows[i].raw, n);
        free(enc);
        free(dec);
    }
}

static void test_b64u_rejects(void **state)
{
    static const char *const bad[] = {"Zg==", "Zm8=", "Z", "Zm+v", "Zm/v", "Zh", "a b"};
    for (size_t i = 0; i < nitems(bad); i++) {
        unsigned char *dec = NULL;
        size_t n = 0;
        assert_int_equal(b64u_decode(bad[i], strlen(bad[i]), &dec, &n), -1);
        assert_null(dec);
    }
}

static void test_rfc3339(void **state)
{
    int64_t t = 0;
    char out[32];
    assert_int_equal(clk_parse_rfc3339("2025-07-13T09:38:07Z", &t), 0);
    assert_int_equal(t, 1752399487);
    assert_string_equal(clk_fmt_rfc3339(t, out), "2025-07-13T09:38:07Z");
    assert_int_equal(clk_parse_rfc3339("2025-07-13T11:38:07.5+02:00", &t), 0);
    assert_int_equal(t, 1752399487);
    assert_int_equal(clk_parse_rfc3339("2025-13-13T09:38:07Z", &t), -1);
    assert_int_equal(clk_parse_rfc3339("2025-07-13T09:38:07", &t), -1);
    assert_int_equal(clk_parse_rfc3339("garbage", &t), -1);
}

static void test_duration(void **state)
{
    int64_t s = 0;
    assert_int_equal(clk_parse_duration("90", &s), 0);
    assert_int_equal(s, 90);
    assert_int_equal(clk_parse_duration("5m", &s), 0);
    assert_int_equal(s, 300);
    assert_int_equal(clk_parse_duration("365d", &s), 0);
    assert_int_equal(s, 365 * 86400);
    assert_int_equal(clk_parse_duration("-5m", &s), -1);
    assert_int_equal(clk_parse_duration("5w", &s), -1);
    assert_int_equal(clk_parse_duration("", &s), -1);
}

static void test_clock_seam(void **state)
{
    clk_set_fixed(1000);
    assert_int_equal(clk_now(), 1000);
    assert_int_equal(clk_now_ms(), 1000000);
    clk_set_fixed(-1);
    assert_true(clk_now() > 1700000000);
}

static void test_log_escape(void **state)
{
    char out[64];
    assert_string_equal(log_escape("a\"b\n", 100, out, sizeof(out)), "a\\x22b\\x0a");
    assert_string_equal(log_escape("abcdef", 3, out, sizeof(out)), "abc");
    assert_string_equal(log_escape("abcdef", 100, out, 4), "abc");
}

static void test_str_to_ll(void **state)
{
    long long v = 0;
    assert_int_equal(str_to_ll("42", 0, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(str_to_ll("101", 0, 100, &v), -1);
    assert_int_equal(str_to_ll("4x", 0, 100, &v), -1);
    assert_int_equal(str_to_ll("", 0, 100, &v), -1);
    assert_true(ct_equal("abc", "abc", 3));
    assert_false(ct_equal("abc", "abd", 3));
}

static void test_file_atomic(void **state)
{
    char dir[] = "/tmp/attesta-common-XXXXXX", err[ERR_LEN] = "", *data = NULL;
    size_t len = 0;
    struct stat st;
    mode_t old = umask(0);

    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/f", dir), *link = xasprintf("%s/l", dir);
    char *cmd = xasprintf("test $(ls -A %s | wc -l) = 1", dir);
    assert_int_equal(file_write_atomic(path, "old", 3, 0600, err), 0);
    assert_int_equal(file_write_atomic(path, "new!", 4, 0644, err), 0);
    umask(old);
    assert_int_equal(system(cmd), 0); /* no temporary file left */
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(file_read(path, 4, false, &data, &len, err), 0);
    assert_int_equal(len, 4);
    assert_string_equal(data, "new!");
    free(data);
    /* Bounded, secret files private, never through a symbolic link. */
    assert_int_equal(file_read(path, 3, false, &data, &len, err), -1);
    assert_non_null(strstr(err, "larger than 3 bytes"));
    assert_int_equal(file_read(path, 4, true, &data, &len, err), -1);
    assert_non_null(strstr(err, "must be 0600"));
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(file_read(link, 4, false, &data, &len, err), -1);
    assert_null(data);
    assert_int_equal(file_fsync_dir(path, err), 0);
    assert_int_equal(file_fsync_dir("/nonexistent-dir/f", err), -1);
    unlink(link);
    unlink(path);
    rmdir(dir);
    free(cmd);
    free(link);
    free(path);
}

/* Only file_write_atomic's own leftovers for that path go; neighbours stay. */
static void test_file_remove_stale_tmp(void **state)
{
    (void)state;
    char dir[] = "/tmp/attesta-common-XXXXXX", err[ERR_LEN] = "";
    assert_non_null(mkdtemp(dir));
    static const char *const stale[] = {"f.tmp.Ab12Cd", "f.tmp.zzzzzz"};
    static const char *const kept[] = {"f", "f.tmp.short", "g.tmp.Ab12Cd", "f.tmp.Ab12Cd.x"};
    for (size_t i = 0; i < nitems(stale); i++) {
        char *p = xasprintf("%s/%s", dir, stale[i]);
        assert_int_equal(file_write_atomic(p, "k", 1, 0600, err), 0);
        free(p);
    }
    for (size_t i = 0; i < nitems(kept); i++) {
        char *p = xasprintf("%s/%s", dir, kept[i]);
        assert_int_equal(file_write_atomic(p, "k", 1, 0600, err), 0);
        free(p);
    }
    char *path = xasprintf("%s/f", dir);
    assert_int_equal(file_remove_stale_tmp(path), nitems(stale));
    assert_int_equal(file_remove_stale_tmp(path), 0);
    for (size_t i = 0; i < nitems(kept); i++) {
        char *p = xasprintf("%s/%s", dir, kept[i]);
        assert_int_equal(access(p, F_OK), 0);
        unlink(p);
        free(p);
    }
    rmdir(dir);
    free(path);
}

/* Sized tables and NULL-terminated lists, absent names and a NULL name. */
static void test_str_index(void **state)
{
    (void)state;
    static const char *const sized[] = {"a", "bb", "c"};
    static const char *const listed[] = {"x", "yy", NULL, "after-end"};
    assert_int_equal(str_index(sized, 3, "a"), 0);
    assert_int_equal(str_index(sized, 3, "c"), 2);
    assert_int_equal(str_index(sized, 2, "c"), -1);
    assert_int_equal(str_index(sized, 3, "b"), -1);
    assert_int_equal(str_index(sized, 3, NULL), -1);
    assert_int_equal(str_index(listed, SIZE_MAX, "yy"), 1);
    assert_int_equal(str_index(listed, SIZE_MAX, "after-end"), -1);
    assert_int_equal(str_index(listed, SIZE_MAX, ""), -1);
}

/* Depth counts objects and arrays only outside strings, escaped quotes included. */
static void test_json_depth_ok(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int max;
        bool ok;
    } rows[] = {
        {"{}", 1, true},
        {"{\"a\":[1]}", 1, false},
        {"{\"a\":[1]}", 2, true},
        {"[\"[[[[\"]", 1, true},
        {"[\"\\\"[[[\"]", 1, true},
        {"[[[]]]", 2, false},
        {"]]]][", 1, true},
    };
    for (size_t i = 0; i < nitems(rows); i++) {
        if (json_depth_ok(rows[i].text, strlen(rows[i].text), rows[i].max) != rows[i].ok)
            fail_msg("row %zu: %s", i, rows[i].text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64u_roundtrip), cmocka_unit_test(test_b64u_rejects),
        cmocka_unit_test(test_rfc3339),        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_clock_seam),     cmocka_unit_test(test_log_escape),
        cmocka_unit_test(test_str_to_ll),     cmocka_unit_test(test_file_atomic),
        cmocka_unit_test(test_file_remove_stale_tmp),
        cmocka_unit_test(test_str_index),
        cmocka_unit_test(test_json_depth_ok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
