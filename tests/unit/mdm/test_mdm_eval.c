/*
 * Unit tests for mdm/mdm_eval.c: tables of JSON paths, templates, conditions
 * and whole answers, with hostile input (deep nesting, huge arrays, wrong
 * types, missing fields, numbers as strings, unicode, indexes out of range,
 * partial matches).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mdm/mdm_int.h"

static const struct {
    const char *json, *path, *want; /* want: compact JSON of the node, NULL = missing */
} path_cases[] = {
    {"[1,2]", "$", "[1,2]"},
    {"[1,2]", "", "[1,2]"},
    {"[1,2]", "[1]", "2"},
    {"[1,2]", "$[1]", "2"},
    {"[1,2]", "[2]", NULL},
    {"[1,2]", "[99999999999]", NULL},
    {"[1,2]", "[-1]", NULL},
    {"[1,2]", "a", NULL},
    {"{\"a\":{\"b\":[{\"c\":\"x\"}]}}", "a.b[0].c", "\"x\""},
    {"{\"a\":{\"b\":[{\"c\":\"x\"}]}}", "$.a.b[0].c", "\"x\""},
    {"{\"a\":{\"b\":[{\"c\":\"x\"}]}}", "a.b.c", NULL},
    {"{\"a\":{\"b\":[{\"c\":\"x\"}]}}", "a[0]", NULL},
    {"{\"a\":1}", "a.b", NULL},
    {"{\"a\":null}", "a", "null"},
    {"{\"\\u00e9t\\u00e9\":\"\\u2603\"}", "\xc3\xa9t\xc3\xa9", "\"\xe2\x98\x83\""},
    {"{\"value\":[]}", "value", "[]"},
    {"{\"A\":1}", "a", NULL},
    {"{\"a\":[[1,[2,3]]]}", "a[0][1][1]", "3"},
};

static void test_paths(void **state)
{
    for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
        char err[ERR_LEN];
        cJSON *root = mdm_json_parse(path_cases[i].json, strlen(path_cases[i].json), err);
        assert_non_null(root);
        const cJSON *n = mdm_json_path_get(root, path_cases[i].path);
        if (path_cases[i].want == NULL) {
            if (n != NULL)
                fail_msg("case %zu (%s): expected missing", i, path_cases[i].path);
        } else {
            char *s = n != NULL ? cJSON_PrintUnformatted(n) : NULL;
            if (s == NULL || strcmp(s, path_cases[i].want) != 0)
                fail_msg("case %zu (%s): got %s", i, path_cases[i].path, s ? s : "NULL");
            free(s);
        }
        cJSON_Delete(root);
    }
}

static char *nest(int depth)
{
    char *s = malloc((size_t)depth * 2 + 1);
    for (int i = 0; i < depth; i++) {
        s[i] = '[';
        s[depth * 2 - 1 - i] = ']';
    }
    s[depth * 2] = '\0';
    return s;
}

static void test_parse_hostile(void **state)
{
    char err[ERR_LEN];
    static const char *bad[] = {"", "{", "[1,2", "nul", "{\"a\":1} x", "[1] [2]", "\"\\ud800\"x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(mdm_json_parse(bad[i], strlen(bad[i]), err));
    char *ok = nest(MDM_MAX_DEPTH), *deep = nest(MDM_MAX_DEPTH + 1), *huge = nest(100000);
    cJSON *r = mdm_json_parse(ok, strlen(ok), err);
    assert_non_null(r);
    cJSON_Delete(r);
    assert_null(mdm_json_parse(deep, strlen(deep), err));
    assert_non_null(strstr(err, "nested deeper"));
    assert_null(mdm_json_parse(huge, strlen(huge), err));
    /* Brackets inside strings do not count. */
    const char *str = "{\"a\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}";
    r = mdm_json_parse(str, strlen(str), err);
    assert_non_null(r);
    cJSON_Delete(r);
    free(ok);
    free(deep);
    free(huge);
}

static void test_templates(void **state)
{
    static const struct {
        const char *tmpl, *serial, *udid, *want;
    } cases[] = {
        {"https://x/?s=${/attest/serial}", "C02", NULL, "https://x/?s=C02"},
        {"https://x/?s=${/attest/serial|urlencode}", "A B&c=\"", NULL, "https://x/?s=A%20B%26c%3D%22"},
        {"{\"s\":\"${/attest/serial|json}\"}", "a\"b\\\n", NULL, "{\"s\":\"a\\\"b\\\\\\u000a\"}"},
        {"$filter=serialNumber eq '${/attest/serial}'", "X1", NULL, "$filter=serialNumber eq 'X1'"},
        {"${/attest/udid}/${/attest/serial}", "S", "U", "U/S"},
        {"${/attest/udid}", "S", NULL, NULL},
        {"${/attest/nope}", "S", NULL, NULL},
        {"${/attest/serial|upper}", "S", NULL, NULL},
        {"${/attest/serial", "S", NULL, NULL},
        {"plain", "S", NULL, "plain"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[ERR_LEN];
        struct mdm_vars v = {.serial = cases[i].serial, .udid = cases[i].udid};
        char *got = mdm_template_expand(cases[i].tmpl, &v, err);
        if (cases[i].want == NULL)
            assert_null(got);
        else if (got == NULL || strcmp(got, cases[i].want) != 0)
            fail_msg("template %zu: got %s", i, got ? got : err);
        free(got);
    }
}

static const char *rec_json =
    "{\"mdm_enabled\":true,\"is_removed\":false,\"agent\":\"True\",\"agent_off\":\"False\","
    "\"n\":5,\"ns\":\"7.5\",\"bad_ns\":\"7x\",\"s\":\"compliant\",\"nul\":null,"
    "\"zero\":0,\"one_s\":\"1\",\"obj\":{\"k\":[1]},\"yes\":\"yes\"}";

static const struct {
    const char *path;
    enum cfg_mdm_op op;
    const char *v[3];
    bool want;
} cond_cases[] = {
    {"mdm_enabled", CFG_MDM_OP_IS_TRUE, {NULL}, true},
    {"is_removed", CFG_MDM_OP_IS_TRUE, {NULL}, false},
    {"is_removed", CFG_MDM_OP_IS_FALSE, {NULL}, true},
    {"agent", CFG_MDM_OP_IS_TRUE, {NULL}, true},
    {"agent_off", CFG_MDM_OP_IS_FALSE, {NULL}, true},
    {"yes", CFG_MDM_OP_IS_TRUE, {NULL}, false},
    {"one_s", CFG_MDM_OP_IS_TRUE, {NULL}, false},
    {"n", CFG_MDM_OP_IS_TRUE, {NULL}, false},
    {"missing", CFG_MDM_OP_IS_FALSE, {NULL}, false},
    {"missing", CFG_MDM_OP_EXISTS, {NULL}, false},
    {"missing", CFG_MDM_OP_NOT_EXISTS, {NULL}, true},
    {"nul", CFG_MDM_OP_EXISTS, {NULL}, false},
    {"nul", CFG_MDM_OP_NOT_EXISTS, {NULL}, true},
    {"s", CFG_MDM_OP_EXISTS, {NULL}, true},
    {"is_removed", CFG_MDM_OP_EQUALS, {"false"}, true},
    {"is_removed", CFG_MDM_OP_EQUALS, {"False"}, false},
    {"is_removed", CFG_MDM_OP_NOT_EQUALS, {"true"}, true},
    {"missing", CFG_MDM_OP_NOT_EQUALS, {"true"}, false},
    {"s", CFG_MDM_OP_EQUALS, {"compliant"}, true},
    {"s", CFG_MDM_OP_EQUALS, {"Compliant"}, false},
    {"s", CFG_MDM_OP_EQUALS, {"complian"}, false},
    {"n", CFG_MDM_OP_EQUALS, {"5"}, true},
    {"n", CFG_MDM_OP_EQUALS, {"5.0"}, true},
    {"n", CFG_MDM_OP_EQUALS, {"five"}, false},
    {"s", CFG_MDM_OP_IN, {"noncompliant", "compliant"}, true},
    {"s", CFG_MDM_OP_IN, {"noncompliant", "inGracePeriod"}, false},
    {"s", CFG_MDM_OP_NOT_IN, {"noncompliant", "error"}, true},
    {"missing", CFG_MDM_OP_NOT_IN, {"x"}, false},
    {"n", CFG_MDM_OP_GT, {"4"}, true},
    {"n", CFG_MDM_OP_GT, {"5"}, false},
    {"n", CFG_MDM_OP_GE, {"5"}, true},
    {"ns", CFG_MDM_OP_LT, {"8"}, true},
    {"ns", CFG_MDM_OP_LE, {"7.5"}, true},
    {"bad_ns", CFG_MDM_OP_LT, {"8"}, false},
    {"s", CFG_MDM_OP_GT, {"0"}, false},
    {"obj", CFG_MDM_OP_GT, {"0"}, false},
    {"obj", CFG_MDM_OP_EQUALS, {"{\"k\":[1]}"}, false},
    {"obj.k[0]", CFG_MDM_OP_EQUALS, {"1"}, true},
    {"zero", CFG_MDM_OP_IS_FALSE, {NULL}, false},
};

static void test_conditions(void **state)
{
    char err[ERR_LEN], desc[256], actual[256];
    cJSON *rec = mdm_json_parse(rec_json, strlen(rec_json), err);
    assert_non_null(rec);
    for (size_t i = 0; i < sizeof(cond_cases) / sizeof(cond_cases[0]); i++) {
        char *vals[3] = {NULL, NULL, NULL};
        size_t n = 0;
        while (n < 3 && cond_cases[i].v[n] != NULL) {
            vals[n] = (char *)cond_cases[i].v[n];
            n++;
        }
        struct cfg_mdm_condition c = {.path = (char *)cond_cases[i].path, .op = cond_cases[i].op,
                                      .values = vals, .nvalues = n};
        bool got = mdm_cond_eval(&c, rec, desc, sizeof(desc), actual, sizeof(actual));
        if (got != cond_cases[i].want)
            fail_msg("condition %zu (%s): got %d (%s)", i, desc, got, actual);
    }
    cJSON_Delete(rec);
}

/* A Kandji-like source: top-level array, exact serial match, two conditions, attributes. */
static void kandji_source(struct cfg_signal_source *s, struct cfg_mdm_condition conds[2],
                          struct cfg_mdm_kv attrs[2], char *vals[1])
{
    memset(s, 0, sizeof(*s));
    s->name = "kandji";
    s->records = "$";
    s->match_field = "serial_number";
    s->match_equals = "${/attest/serial}";
    vals[0] = "false";
    conds[0] = (struct cfg_mdm_condition){.path = "mdm_enabled", .op = CFG_MDM_OP_IS_TRUE};
    conds[1] = (struct cfg_mdm_condition){.path = "is_removed", .op = CFG_MDM_OP_EQUALS,
                                          .values = vals, .nvalues = 1};
    s->conditions = conds;
    s->nconditions = 2;
    attrs[0] = (struct cfg_mdm_kv){.name = "user_email", .value = "user.email"};
    attrs[1] = (struct cfg_mdm_kv){.name = "missing", .value = "nope.nope"};
    s->attributes = attrs;
    s->nattributes = 2;
}

static const struct {
    const char *name, *records, *json, *serial;
    int rc;
    enum mdm_verdict verdict;
    const char *reason; /* substring of res.reason or err */
} eval_cases[] = {
    {"found", "$", "[{\"serial_number\":\"C02X\",\"mdm_enabled\":true,\"is_removed\":false,"
     "\"user\":{\"email\":\"a@b\"}}]", "C02X", 0, MDM_ALLOW, "kandji: device found, 2 conditions passed"},
    {"partial only", "$", "[{\"serial_number\":\"C02XY\"},{\"serial_number\":\"AC02X\"}]", "C02X",
     0, MDM_DENY, "kandji: no device with serial_number \"C02X\" (2 records, none matched exactly)"},
    {"case differs", "$", "[{\"serial_number\":\"c02x\",\"mdm_enabled\":true}]", "C02X", 0,
     MDM_DENY, "1 record, none matched"},
    {"empty", "$", "[]", "C02X", 0, MDM_DENY, "(no records)"},
    {"serial as number", "$", "[{\"serial_number\":12345,\"mdm_enabled\":true}]", "12345", 0,
     MDM_DENY, "none matched"},
    {"cond fails", "$", "[{\"serial_number\":\"C02X\",\"mdm_enabled\":false,\"is_removed\":false}]",
     "C02X", 0, MDM_DENY, "kandji: condition mdm_enabled is_true failed (value false)"},
    {"cond missing", "$", "[{\"serial_number\":\"C02X\",\"is_removed\":false}]", "C02X", 0,
     MDM_DENY, "condition mdm_enabled is_true failed (missing)"},
    {"second wins", "$", "[{\"serial_number\":\"C02XX\"},7,null,\"C02X\",{\"serial_number\":\"C02X\","
     "\"mdm_enabled\":\"True\",\"is_removed\":false}]", "C02X", 0, MDM_ALLOW, "device found"},
    {"object record", "$", "{\"serial_number\":\"C02X\",\"mdm_enabled\":true,\"is_removed\":false}",
     "C02X", 0, MDM_ALLOW, "device found"},
    {"records missing", "results", "{\"totalCount\":0}", "C02X", -1, MDM_DENY, "not in the answer"},
    {"records scalar", "$", "\"C02X\"", "C02X", -1, MDM_DENY, "not an array or object"},
    {"records nested", "a.b[1]", "{\"a\":{\"b\":[[],[{\"serial_number\":\"C02X\","
     "\"mdm_enabled\":true,\"is_removed\":false}]]}}", "C02X", 0, MDM_ALLOW, "device found"},
    {"hostile serial", "$", "[]", "X\"\n\x1b", 0, MDM_DENY, "\"X\\x22\\x0a\\x1b\""},
};

static void test_evaluate(void **state)
{
    for (size_t i = 0; i < sizeof(eval_cases) / sizeof(eval_cases[0]); i++) {
        struct cfg_signal_source s;
        struct cfg_mdm_condition conds[2];
        struct cfg_mdm_kv attrs[2];
        char *vals[1], err[ERR_LEN] = "";
        struct mdm_result res = {0};
        struct mdm_vars v = {.serial = eval_cases[i].serial};
        kandji_source(&s, conds, attrs, vals);
        s.records = (char *)eval_cases[i].records;
        cJSON *root = mdm_json_parse(eval_cases[i].json, strlen(eval_cases[i].json), err);
        assert_non_null(root);
        int rc = mdm_evaluate(&s, root, &v, &res, err);
        const char *text = rc == 0 ? res.reason : err;
        if (rc != eval_cases[i].rc || (rc == 0 && res.verdict != eval_cases[i].verdict) ||
            strstr(text, eval_cases[i].reason) == NULL)
            fail_msg("%s: rc %d verdict %d text %s", eval_cases[i].name, rc, res.verdict, text);
        if (strcmp(eval_cases[i].name, "found") == 0) {
            assert_int_equal(res.nattrs, 1);
            assert_string_equal(mdm_result_attr_get(&res, "user_email"), "a@b");
            assert_int_equal(res.nconds, 2);
            assert_true(res.conds[0].pass && res.conds[1].pass);
            assert_non_null(res.record_json);
        }
        mdm_result_clear(&res);
        cJSON_Delete(root);
    }
}

/* 200,000 records, none matching: linear, bounded, and still a clean denial. */
static void test_huge_array(void **state)
{
    struct buf b = {0};
    struct cfg_signal_source s;
    struct cfg_mdm_condition conds[2];
    struct cfg_mdm_kv attrs[2];
    char *vals[1], err[ERR_LEN];
    struct mdm_result res = {0};
    struct mdm_vars v = {.serial = "C02X"};
    buf_puts(&b, "[");
    for (int i = 0; i < 200000; i++)
        buf_printf(&b, "%s{\"serial_number\":\"C02X%d\"}", i > 0 ? "," : "", i);
    buf_puts(&b, "]");
    kandji_source(&s, conds, attrs, vals);
    cJSON *root = mdm_json_parse(b.p, b.len, err);
    assert_non_null(root);
    assert_int_equal(mdm_evaluate(&s, root, &v, &res, err), 0);
    assert_int_equal(res.verdict, MDM_DENY);
    assert_non_null(strstr(res.reason, "200000 records"));
    mdm_result_clear(&res);
    cJSON_Delete(root);
    buf_free(&b);
}

int run_eval_tests(void);
int run_eval_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),       cmocka_unit_test(test_parse_hostile),
        cmocka_unit_test(test_templates),   cmocka_unit_test(test_conditions),
        cmocka_unit_test(test_evaluate),    cmocka_unit_test(test_huge_array),
    };
    return cmocka_run_group_tests_name("mdm_eval", tests, NULL, NULL);
}
