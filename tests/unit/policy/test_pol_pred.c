/*
 * Unit tests for policy/pol_pred.c: version comparison edge cases and every
 * predicate operator on every kind of value, with the exact explanation a
 * failing predicate gives.
 */
#include "test_pol.h"

#include <stdio.h>
#include <string.h>

static void test_version_cmp(void **state)
{
    static const struct {
        const char *a, *b;
        int rc, cmp;
    } rows[] = {
        {"26.4.1", "26.4", 0, 1},     {"26.4", "26.4.0", 0, 0},   {"17.10", "17.9", 0, 1},
        {"17.9", "17.10", 0, -1},     {"17", "17.0.0", 0, 0},     {"9", "10", 0, -1},
        {"17.4 (21E219)", "17.4", 0, 0}, {"017.4", "17.4", 0, 0}, {"1.2.3.4.5.6.7.8", "1.2", 0, 1},
        {"", "1", -1, 0},             {"abc", "1", -1, 0},        {"17.4beta", "17", -1, 0},
        {"17.", "17", -1, 0},         {".1", "1", -1, 0},         {"1..2", "1", -1, 0},
        {"1234567890", "1", -1, 0},   {"1.2.3.4.5.6.7.8.9", "1", -1, 0}, {"-1", "1", -1, 0},
        {"4294967296.1", "1", -1, 0},
    };
    for (size_t i = 0; i < nitems(rows); i++) {
        int cmp = 99;
        int rc = pol_version_cmp(rows[i].a, rows[i].b, &cmp);
        if (rc != rows[i].rc || (rc == 0 && cmp != rows[i].cmp))
            fail_msg("row %zu (%s vs %s): rc %d cmp %d", i, rows[i].a, rows[i].b, rc, cmp);
    }
}

struct pred_row {
    const char *name;
    unsigned kind, claim, op;
    const char *values[3]; /* NULL-terminated */
    const char *input;     /* the value the predicate reads; NULL = absent */
    bool holds;
    const char *why;       /* exact explanation when it fails */
};

static const struct pred_row pred_rows[] = {
    {"eq ok", CFG_PRED_ATTEST, CFG_CLAIM_SERIAL, CFG_PRED_OP_EQUALS, {"C02X"}, "C02X", true, ""},
    {"eq no", CFG_PRED_ATTEST, CFG_CLAIM_SERIAL, CFG_PRED_OP_EQUALS, {"C02X"}, "C02Y", false,
     "attest.serial is \"C02Y\", not \"C02X\""},
    {"eq absent", CFG_PRED_ATTEST, CFG_CLAIM_UDID, CFG_PRED_OP_EQUALS, {"x"}, NULL, false,
     "attest.udid is absent"},
    {"ne ok", CFG_PRED_ATTEST, CFG_CLAIM_SERIAL, CFG_PRED_OP_NOT_EQUALS, {"BAD"}, "C02X", true,
     ""},
    {"ne no", CFG_PRED_ATTEST, CFG_CLAIM_SERIAL, CFG_PRED_OP_NOT_EQUALS, {"BAD"}, "BAD", false,
     "attest.serial is \"BAD\", which is excluded"},
    {"ne absent", CFG_PRED_ATTEST, CFG_CLAIM_SERIAL, CFG_PRED_OP_NOT_EQUALS, {"BAD"}, NULL, false,
     "attest.serial is absent"},
    {"in ok", CFG_PRED_ATTEST, CFG_CLAIM_SERIAL, CFG_PRED_OP_IN, {"A", "B"}, "B", true, ""},
    {"in no", CFG_PRED_ATTEST, CFG_CLAIM_SERIAL, CFG_PRED_OP_IN, {"A", "B"}, "C", false,
     "attest.serial is \"C\", not one of [A, B]"},
    {"not_in ok", CFG_PRED_ATTEST, CFG_CLAIM_SERIAL, CFG_PRED_OP_NOT_IN, {"A"}, "C", true, ""},
    {"not_in no", CFG_PRED_ATTEST, CFG_CLAIM_SERIAL, CFG_PRED_OP_NOT_IN, {"A", "C"}, "C", false,
     "attest.serial is \"C\", which is one of [A, C]"},
    {"prefix ok", CFG_PRED_ATTEST, CFG_CLAIM_SERIAL, CFG_PRED_OP_MATCHES_PREFIX, {"C02"}, "C02X",
     true, ""},
    {"prefix no", CFG_PRED_ATTEST, CFG_CLAIM_SERIAL, CFG_PRED_OP_MATCHES_PREFIX, {"C02"}, "C0",
     false, "attest.serial is \"C0\", which does not start with \"C02\""},
    {"ge equal", CFG_PRED_ATTEST, CFG_CLAIM_OS, CFG_PRED_OP_VERSION_GE, {"26.4"}, "26.4.0", true,
     ""},
    {"ge patch", CFG_PRED_ATTEST, CFG_CLAIM_OS, CFG_PRED_OP_VERSION_GE, {"26.4"}, "26.4.1", true,
     ""},
    {"ge 10>9", CFG_PRED_ATTEST, CFG_CLAIM_OS, CFG_PRED_OP_VERSION_GE, {"17.9"}, "17.10", true,
     ""},
    {"ge below", CFG_PRED_ATTEST, CFG_CLAIM_OS, CFG_PRED_OP_VERSION_GE, {"17.10"}, "17.9", false,
     "attest.os_version is 17.9, below 17.10"},
    {"ge garbage", CFG_PRED_ATTEST, CFG_CLAIM_OS, CFG_PRED_OP_VERSION_GE, {"17"}, "seventeen",
     false, "attest.os_version is \"seventeen\", not a version"},
    {"lt ok", CFG_PRED_ATTEST, CFG_CLAIM_SEPOS, CFG_PRED_OP_VERSION_LT, {"3"}, "2.9.9", true, ""},
    {"lt equal", CFG_PRED_ATTEST, CFG_CLAIM_SEPOS, CFG_PRED_OP_VERSION_LT, {"3"}, "3.0", false,
     "attest.sepos_version is 3.0, not below 3"},
    {"exists ok", CFG_PRED_ATTEST, CFG_CLAIM_UDID, CFG_PRED_OP_EXISTS, {NULL}, "00008", true, ""},
    {"exists empty", CFG_PRED_ATTEST, CFG_CLAIM_UDID, CFG_PRED_OP_EXISTS, {NULL}, "", false,
     "attest.udid is absent"},
    {"not_exists ok", CFG_PRED_ATTEST, CFG_CLAIM_UDID, CFG_PRED_OP_NOT_EXISTS, {NULL}, NULL,
     true, ""},
    {"not_exists no", CFG_PRED_ATTEST, CFG_CLAIM_UDID, CFG_PRED_OP_NOT_EXISTS, {NULL}, "u1",
     false, "attest.udid is present (\"u1\")"},
    {"attr eq", CFG_PRED_ATTR, 0, CFG_PRED_OP_EQUALS, {"Corp Macs"}, "Lab Macs", false,
     "attribute kandji.blueprint is \"Lab Macs\", not \"Corp Macs\""},
    {"attr hostile", CFG_PRED_ATTR, 0, CFG_PRED_OP_EQUALS, {"Corp"}, "a\"\n\x1b[31m", false,
     "attribute kandji.blueprint is \"a\\x22\\x0a\\x1b[31m\", not \"Corp\""},
    {"attr absent", CFG_PRED_ATTR, 0, CFG_PRED_OP_EXISTS, {NULL}, NULL, false,
     "attribute kandji.blueprint is absent"},
    {"account in", CFG_PRED_ACCOUNT, 0, CFG_PRED_OP_IN, {"kid-1", "kid-2"}, "kid-2", true, ""},
    {"account none", CFG_PRED_ACCOUNT, 0, CFG_PRED_OP_EQUALS, {"kid-1"}, NULL, false,
     "account.eab_kid is absent"},
};

/* Builds an input where the predicate's value is row->input. */
static void row_input(const struct pred_row *r, struct att_claims *c, struct pol_attr *attr,
                      struct pol_mdm *m, struct pol_input *in)
{
    memset(c, 0, sizeof(*c));
    memset(in, 0, sizeof(*in));
    const char *v = r->input != NULL ? r->input : "";
    snprintf(r->claim == CFG_CLAIM_SERIAL ? c->serial
             : r->claim == CFG_CLAIM_UDID ? c->udid
             : r->claim == CFG_CLAIM_OS   ? c->os_version
                                          : c->sepos_version,
             32, "%s", r->kind == CFG_PRED_ATTEST ? v : "");
    attr->name = "blueprint";
    attr->value = r->input;
    *m = (struct pol_mdm){.source = "kandji", .allowed = true, .attrs = attr,
                          .nattrs = r->input != NULL ? 1 : 0};
    in->claims = c;
    in->mdm = m;
    in->nmdm = 1;
    in->eab_kid = r->kind == CFG_PRED_ACCOUNT ? r->input : NULL;
}

static void test_predicates(void **state)
{
    for (size_t i = 0; i < nitems(pred_rows); i++) {
        const struct pred_row *r = &pred_rows[i];
        struct cfg_pred p = {.kind = r->kind, .claim = r->claim, .op = r->op,
                             .source = "kandji", .attribute = "blueprint"};
        struct cfg_role role = {.name = "r", .when = &p, .nwhen = 1};
        struct att_claims c;
        struct pol_attr attr;
        struct pol_mdm m;
        struct pol_input in;
        char why[POL_REASON_LEN];
        while (p.nvalues < 3 && r->values[p.nvalues] != NULL)
            p.nvalues++;
        p.values = (char **)r->values;
        row_input(r, &c, &attr, &m, &in);
        bool got = pol_role_holds(&role, &in, why, sizeof(why));
        if (got != r->holds || (!got && strcmp(why, r->why) != 0))
            fail_msg("%s: holds %d, why \"%s\"; want %d \"%s\"", r->name, got, why, r->holds,
                     r->why);
    }
}

static void test_result_and_any(void **state)
{
    char *allowed[] = {"x"};
    struct cfg_pred alts[2] = {
        {.kind = CFG_PRED_RESULT, .source = "jamf", .want_allowed = true},
        {.kind = CFG_PRED_ATTEST, .claim = CFG_CLAIM_SERIAL, .op = CFG_PRED_OP_EQUALS,
         .values = allowed, .nvalues = 1},
    };
    struct cfg_pred any = {.kind = CFG_PRED_ANY, .any = alts, .nany = 2};
    struct cfg_pred denied = {.kind = CFG_PRED_RESULT, .source = "kandji", .want_allowed = false};
    struct cfg_role r_any = {.name = "a", .when = &any, .nwhen = 1};
    struct cfg_role r_den = {.name = "d", .when = &denied, .nwhen = 1};
    struct pol_mdm mdm[2] = {{.source = "kandji", .allowed = false, .reason = "not enrolled"},
                             {.source = "jamf", .allowed = true}};
    struct att_claims c = {.serial = "y"};
    struct pol_input in = {.claims = &c, .mdm = mdm, .nmdm = 1};
    char why[POL_REASON_LEN];

    assert_false(pol_role_holds(&r_any, &in, why, sizeof(why)));
    assert_string_equal(why, "none of the alternatives holds: no result from signal source "
                             "jamf; attest.serial is \"y\", not \"x\"");
    assert_true(pol_role_holds(&r_den, &in, why, sizeof(why)));
    in.nmdm = 2;
    assert_true(pol_role_holds(&r_any, &in, why, sizeof(why)));
    mdm[1].allowed = false;
    mdm[1].reason = "condition \"x\"\nfailed";
    alts[1].values[0] = "y";
    assert_true(pol_role_holds(&r_any, &in, why, sizeof(why)));
    alts[1].values[0] = "x";
    assert_false(pol_role_holds(&r_any, &in, why, sizeof(why)));
    assert_string_equal(why, "none of the alternatives holds: signal source jamf denied the "
                             "device (condition \\x22x\\x22\\x0afailed); attest.serial is \"y\", "
                             "not \"x\"");
    mdm[0].allowed = true;
    assert_false(pol_role_holds(&r_den, &in, why, sizeof(why)));
    assert_string_equal(why, "signal source kandji allowed the device");
    /* No attestation at all, NULL input, NULL role. */
    in.claims = NULL;
    struct cfg_pred ser = alts[1];
    struct cfg_role r_ser = {.name = "s", .when = &ser, .nwhen = 1};
    assert_false(pol_role_holds(&r_ser, &in, why, sizeof(why)));
    assert_string_equal(why, "attest.serial: no device attestation");
    assert_false(pol_role_holds(&r_ser, NULL, NULL, 0));
    assert_false(pol_role_holds(NULL, &in, why, sizeof(why)));
}

int test_pol_pred_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_cmp),
        cmocka_unit_test(test_predicates),
        cmocka_unit_test(test_result_and_any),
    };
    return cmocka_run_group_tests_name("policy_pred", tests, NULL, NULL);
}
