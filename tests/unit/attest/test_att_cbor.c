/* Unit tests for attest/att_cbor.c: the attObj shape and its limits, valid and malformed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/crypto.h>

#include "test_att.h"

/* The real leaf and Sub CA 1 of WRPWFW61H9, shared by the builders. */
static struct slice leaf, sub;
static const unsigned char *real_obj;
static size_t real_len;

typedef void build_fn(struct buf *b, size_t arg);

static void b_empty(struct buf *b, size_t arg)
{
    (void)b;
}

static void b_truncated(struct buf *b, size_t at)
{
    buf_append(b, real_obj, at < real_len ? at : real_len - 1);
}

static void b_fmt(struct buf *b, const char *fmt, const char *fmt_key)
{
    struct slice chain[2] = {leaf, sub};
    cb_head(b, 5, 2);
    cb_text(b, fmt_key);
    cb_text(b, fmt);
    cb_text(b, "attStmt");
    cb_head(b, 5, 1);
    cb_text(b, "x5c");
    cb_head(b, 4, 2);
    for (size_t i = 0; i < 2; i++)
        cb_bytes(b, chain[i].p, chain[i].len);
}

static void b_packed(struct buf *b, size_t arg)
{
    b_fmt(b, "packed", "fmt");
}

static void b_no_fmt(struct buf *b, size_t arg)
{
    b_fmt(b, "apple", "fmx");
}

static void b_indefinite(struct buf *b, size_t arg)
{
    buf_append(b, "\xbf", 1);
    cb_text(b, "fmt");
    cb_text(b, "apple");
    buf_append(b, "\xff", 1);
}

static void b_stmt_not_map(struct buf *b, size_t arg)
{
    cb_head(b, 5, 2);
    cb_text(b, "fmt");
    cb_text(b, "apple");
    cb_text(b, "attStmt");
    cb_head(b, 0, 5);
}

/* {"fmt":"apple","attStmt":{"x5c":[...arg entries of kind...]}} */
static void x5c_prefix(struct buf *b, size_t n)
{
    cb_head(b, 5, 2);
    cb_text(b, "fmt");
    cb_text(b, "apple");
    cb_text(b, "attStmt");
    cb_head(b, 5, 1);
    cb_text(b, "x5c");
    cb_head(b, 4, n);
}

static void b_x5c_n(struct buf *b, size_t n)
{
    x5c_prefix(b, n);
    for (size_t i = 0; i < n; i++)
        cb_bytes(b, i == 0 ? leaf.p : sub.p, i == 0 ? leaf.len : sub.len);
}

static void b_x5c_text(struct buf *b, size_t arg)
{
    x5c_prefix(b, 2);
    cb_bytes(b, leaf.p, leaf.len);
    cb_text(b, "MIIC...");
}

static void b_dup_fmt(struct buf *b, size_t arg)
{
    cb_head(b, 5, 3);
    cb_text(b, "fmt");
    cb_text(b, "apple");
    cb_text(b, "fmt");
    cb_text(b, "apple");
    cb_text(b, "attStmt");
    cb_head(b, 5, 1);
    cb_text(b, "x5c");
    cb_head(b, 4, 1);
    cb_bytes(b, leaf.p, leaf.len);
}

static void b_deep(struct buf *b, size_t arg)
{
    x5c_prefix(b, 1);
    cb_head(b, 4, 1);
    cb_head(b, 4, 1);
    cb_bytes(b, leaf.p, leaf.len);
}

static void b_oversize_decl(struct buf *b, size_t arg)
{
    x5c_prefix(b, 1);
    cb_head(b, 2, 0xfffffff0u);
    buf_append(b, "\x30\x82", 2);
}

static void b_trailing(struct buf *b, size_t arg)
{
    buf_append(b, real_obj, real_len);
    buf_append(b, "\x00", 1);
}

static void b_garbage_cert(struct buf *b, size_t arg)
{
    x5c_prefix(b, 1);
    cb_bytes(b, "\x30\x03\x02\x01\x00", 5);
}

static void b_der_trailing(struct buf *b, size_t arg)
{
    unsigned char *p = xmalloc(leaf.len + 1);
    memcpy(p, leaf.p, leaf.len);
    p[leaf.len] = 0;
    x5c_prefix(b, 1);
    cb_bytes(b, p, leaf.len + 1);
    free(p);
}

static void b_big_map(struct buf *b, size_t arg)
{
    cb_head(b, 5, 9);
    for (int i = 0; i < 9; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%d", i);
        cb_text(b, k);
        cb_head(b, 0, 1);
    }
}

static void b_int_key(struct buf *b, size_t arg)
{
    cb_head(b, 5, 1);
    cb_head(b, 0, 1);
    cb_text(b, "apple");
}

static void b_top_array(struct buf *b, size_t arg)
{
    cb_head(b, 4, 1);
    cb_text(b, "apple");
}

static void b_reserved(struct buf *b, size_t arg)
{
    buf_append(b, "\x1c", 1);
}

static void b_fmt_int(struct buf *b, size_t arg)
{
    cb_head(b, 5, 1);
    cb_text(b, "fmt");
    cb_head(b, 0, 7);
}

static void b_too_big(struct buf *b, size_t arg)
{
    unsigned char *z = xcalloc(1, ATT_MAX_ATTOBJ);
    x5c_prefix(b, 1);
    cb_bytes(b, z, ATT_MAX_ATTOBJ);
    free(z);
}

static void b_cert_too_big(struct buf *b, size_t arg)
{
    unsigned char *z = xcalloc(1, ATT_MAX_CERT_DER + 1);
    x5c_prefix(b, 1);
    cb_bytes(b, z, ATT_MAX_CERT_DER + 1);
    free(z);
}

/* Extra members: small ones are tolerated (arg 16), large ones refused (arg 4000). */
static void b_extra(struct buf *b, size_t arg)
{
    unsigned char *z = xcalloc(1, arg);
    cb_head(b, 5, 3);
    cb_text(b, "fmt");
    cb_text(b, "apple");
    cb_text(b, "authData");
    cb_bytes(b, z, arg);
    cb_text(b, "attStmt");
    cb_head(b, 5, 1);
    cb_text(b, "x5c");
    cb_head(b, 4, 1);
    cb_bytes(b, leaf.p, leaf.len);
    free(z);
}

static void b_extra_map(struct buf *b, size_t arg)
{
    cb_head(b, 5, 2);
    cb_text(b, "fmt");
    cb_text(b, "apple");
    cb_text(b, "attStmt");
    cb_head(b, 5, 2);
    cb_text(b, "sig");
    cb_head(b, 5, 0);
    cb_text(b, "x5c");
    cb_head(b, 4, 1);
    cb_bytes(b, leaf.p, leaf.len);
}

static void b_lone_break(struct buf *b, size_t arg)
{
    buf_append(b, "\xff", 1);
}

static const struct cbor_row {
    const char *name;
    build_fn *build;
    size_t arg;
    int parse_rc;       /* att_attobj_parse result */
    size_t nx5c;        /* when parse_rc == 0 */
    const char *detail; /* substring of err; NULL when parse succeeds */
} cbor_rows[] = {
    {"empty", b_empty, 0, -1, 0, "empty"},
    {"truncated at 1", b_truncated, 1, -1, 0, "truncated"},
    {"truncated at 10", b_truncated, 10, -1, 0, "declares"},
    {"truncated at 11", b_truncated, 11, -1, 0, "truncated at offset 11"},
    {"truncated at 27", b_truncated, 27, -1, 0, "truncated"},
    {"truncated at 40", b_truncated, 40, -1, 0, "declares"},
    {"truncated at 1000", b_truncated, 1000, -1, 0, "declares"},
    {"truncated by one", b_truncated, (size_t)-1, -1, 0, "declares"},
    {"indefinite-length map", b_indefinite, 0, -1, 0, "indefinite"},
    {"lone break byte", b_lone_break, 0, -1, 0, "indefinite"},
    {"reserved additional info", b_reserved, 0, -1, 0, "reserved"},
    {"fmt packed", b_packed, 0, -1, 0, "unsupported attestation format \"packed\""},
    {"fmt missing", b_no_fmt, 0, -1, 0, "has no fmt"},
    {"fmt not text", b_fmt_int, 0, -1, 0, "fmt is not a text string"},
    {"attStmt not a map", b_stmt_not_map, 0, -1, 0, "attStmt is not a CBOR map"},
    {"x5c empty", b_x5c_n, 0, -1, 0, "0 entries"},
    {"x5c 5 entries", b_x5c_n, 5, -1, 0, "5 entries"},
    {"x5c entry not bytes", b_x5c_text, 0, -1, 0, "x5c[1] is not a byte string"},
    {"duplicate fmt key", b_dup_fmt, 0, -1, 0, "duplicate key \"fmt\""},
    {"nesting too deep", b_deep, 0, -1, 0, "nested deeper"},
    {"oversize declared length", b_oversize_decl, 0, -1, 0, "declares 4294967280 bytes"},
    {"trailing garbage", b_trailing, 0, -1, 0, "1 trailing bytes"},
    {"map of 9 pairs", b_big_map, 0, -1, 0, "map of 9 pairs"},
    {"integer key", b_int_key, 0, -1, 0, "not a text string"},
    {"top level array", b_top_array, 0, -1, 0, "is not a CBOR map"},
    {"over ATT_MAX_ATTOBJ", b_too_big, 0, -1, 0, "max 65536"},
    {"x5c entry over 8 KiB", b_cert_too_big, 0, -1, 0, "x5c[0] is 8193 bytes"},
    {"large unknown member", b_extra, 4000, -1, 0, "\"authData\" is not a small scalar"},
    {"unknown map member", b_extra_map, 0, -1, 0, "\"sig\" is not a small scalar"},
    {"small unknown member", b_extra, 16, 0, 1, NULL},
    {"x5c 4 entries", b_x5c_n, 4, 0, 4, NULL},
    {"garbage bytes in x5c", b_garbage_cert, 0, 0, 1, NULL},
    {"DER with trailing byte", b_der_trailing, 0, 0, 1, NULL},
};

static int setup(void **state)
{
    size_t len = 0;
    leaf.p = t_pem_der("mdm_chain_WRPWFW61H9.pem", 0, &len);
    leaf.len = len;
    sub.p = t_pem_der("mdm_chain_WRPWFW61H9.pem", 1, &len);
    sub.len = len;
    real_obj = t_read_vec("attobj_WRPWFW61H9.cbor", &real_len);
    return 0;
}

static int teardown(void **state)
{
    OPENSSL_free((void *)leaf.p);
    OPENSSL_free((void *)sub.p);
    free((void *)real_obj);
    return 0;
}

static void test_real_attobj(void **state)
{
    struct att_attobj obj;
    char err[ERR_LEN] = "";
    assert_int_equal(real_len, 1481);
    assert_int_equal(att_attobj_parse(real_obj, real_len, NULL, &obj, err), 0);
    assert_int_equal(obj.nx5c, 2);
    assert_int_equal(obj.x5c[1].len, 589);
    assert_memory_equal(obj.x5c[0].p, leaf.p, leaf.len);
    att_attobj_clear(&obj);
    assert_null(obj.root);
    att_attobj_clear(NULL);
}

/* Configured limits lower the ceilings; out-of-range values mean the ceiling. */
static void test_attobj_limits(void **state)
{
    static const struct {
        const char *name;
        struct att_limits lim;
        int want;
    } rows[] = {
        {"ceilings", {0, 0, 0}, 0},
        {"exact size", {1481, 4, 2}, 0},
        {"one byte too small", {1480, 4, 4}, -1},
        {"depth 2 (real object nests 3)", {0, 2, 0}, -1},
        {"one certificate only", {0, 0, 1}, -1},
        {"over the ceiling means the ceiling", {1u << 30, 99, 99}, 0},
    };
    for (size_t i = 0; i < nitems(rows); i++) {
        struct att_attobj obj;
        char err[ERR_LEN] = "";
        int rc = att_attobj_parse(real_obj, real_len, &rows[i].lim, &obj, err);
        if (rc != rows[i].want)
            fail_msg("%s: got %d (%s)", rows[i].name, rc, err);
        att_attobj_clear(&obj);
    }
}

static void test_cbor_table(void **state)
{
    for (size_t i = 0; i < nitems(cbor_rows); i++) {
        const struct cbor_row *row = &cbor_rows[i];
        struct buf b = {0};
        struct att_attobj obj;
        char err[ERR_LEN] = "";
        print_message("cbor row: %s\n", row->name);
        row->build(&b, row->arg);
        int rc = att_attobj_parse((const unsigned char *)b.p, b.len, NULL, &obj, err);
        assert_int_equal(rc, row->parse_rc);
        if (rc == 0) {
            assert_int_equal(obj.nx5c, row->nx5c);
        } else {
            assert_non_null(strstr(err, row->detail));
            assert_null(obj.root);
        }
        att_attobj_clear(&obj);
        buf_free(&b);
    }
}

/* Every refusal surfaces from att_verify as ATT_ERR_FORMAT, including bad DER. */
static void test_cbor_verify_format(void **state)
{
    char err[ERR_LEN] = "";
    struct att_verifier *v = att_verifier_new(NULL, 0, err);
    assert_non_null(v);
    for (size_t i = 0; i < nitems(cbor_rows); i++) {
        const struct cbor_row *row = &cbor_rows[i];
        struct buf b = {0};
        struct att_claims c = {0};
        if (row->parse_rc == 0 && row->nx5c != 1)
            continue;
        row->build(&b, row->arg);
        err[0] = '\0';
        enum att_result r = att_verify(v, (const unsigned char *)b.p, b.len, 1777593600, &c, err);
        print_message("verify row: %s -> %d %s\n", row->name, r, err);
        if (row->build == b_garbage_cert || row->build == b_der_trailing) {
            assert_int_equal(r, ATT_ERR_FORMAT);
            assert_non_null(strstr(err, "x5c[0] is not a DER certificate"));
        } else if (row->parse_rc == 0) {
            /* leaf alone: shape fine, chain incomplete */
            assert_int_equal(r, ATT_ERR_CHAIN);
        } else {
            assert_int_equal(r, ATT_ERR_FORMAT);
        }
        att_claims_clear(&c);
        buf_free(&b);
    }
    att_verifier_free(v);
}

int t_cbor_group(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_attobj),
        cmocka_unit_test(test_attobj_limits),
        cmocka_unit_test(test_cbor_table),
        cmocka_unit_test(test_cbor_verify_format),
    };
    return cmocka_run_group_tests_name("att_cbor", tests, setup, teardown);
}
