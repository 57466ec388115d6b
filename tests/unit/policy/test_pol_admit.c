/*
 * Unit tests for policy/pol_eval.c: roles over several signal sources,
 * admission decisions with their exact explanations, policy selection, key
 * types narrowed by a template and renewal windows.
 */
#include "test_pol.h"

#include <stdio.h>
#include <string.h>

static const char admit_yaml[] =
    "cas:\n"
    "  corp: {}\n"
    "templates:\n"
    "  wifi:\n"
    "    validity: 365d\n"
    "    subject: [{CN: \"${/attest/serial}\"}, {O: Example Corp}, {OU: \"${/mdm/kandji/blueprint}\"}]\n"
    "    san: {permanent_identifier: \"${/attest/serial}\", email: [\"${/mdm/kandji/user_email}\"]}\n"
    "    key_usage: [digitalSignature]\n"
    "    extended_key_usage: [clientAuth]\n"
    "    key_types: [P-256]\n"
    "    renewal_window: 30d\n"
    "device_roles:\n"
    "  managed-mac:\n"
    "    when:\n"
    "      - {source: kandji, result: allowed}\n"
    "      - {source: kandji, attribute: blueprint, op: equals, value: Corp Macs}\n"
    "      - {attest: os_version, op: version_ge, value: \"14.0\"}\n"
    "  lab:\n"
    "    when:\n"
    "      - any:\n"
    "          - {source: jamf, attribute: site, op: in, value: [Lab, Annex]}\n"
    "          - {account: eab_kid, op: matches_prefix, value: lab-}\n"
    "enrollment_policies:\n"
    "  macs:\n"
    "    identifiers: [permanent-identifier]\n"
    "    challenges: [device-attest-01]\n"
    "    signal_sources: [kandji]\n"
    "    roles: [managed-mac]\n"
    "    template: wifi\n"
    "    supersede: revoke\n"
    "  lab:\n"
    "    identifiers: [permanent-identifier]\n"
    "    challenges: [device-attest-01]\n"
    "    signal_sources: [kandji, jamf]\n"
    "    roles: [managed-mac, lab]\n"
    "    approval: manual\n"
    "  web:\n"
    "    identifiers: [dns]\n"
    "    challenges: [http-01]\n";

struct device {
    struct att_claims claims;
    struct pol_attr kattrs[2], jattrs[1];
    struct pol_mdm mdm[2];
    struct pol_input in;
};

/* A managed Mac on macOS 14.2 in blueprint "Corp Macs", known to both MDMs. */
static void device_init(struct device *d)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->claims.serial, sizeof(d->claims.serial), "C02XK0AAJG5H");
    snprintf(d->claims.os_version, sizeof(d->claims.os_version), "14.2");
    d->kattrs[0] = (struct pol_attr){"blueprint", "Corp Macs"};
    d->kattrs[1] = (struct pol_attr){"user_email", "ana@example.com"};
    d->jattrs[0] = (struct pol_attr){"site", "HQ"};
    d->mdm[0] = (struct pol_mdm){"kandji", true, "kandji: device found", d->kattrs, 2};
    d->mdm[1] = (struct pol_mdm){"jamf", true, NULL, d->jattrs, 1};
    d->in = (struct pol_input){.claims = &d->claims, .mdm = d->mdm, .nmdm = 2};
}

static int setup(void **state)
{
    *state = tp_load_ok(admit_yaml);
    return *state != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    cfg_free(*state);
    return 0;
}

static void test_admit_table(void **state)
{
    const struct cfg *cfg = *state;
    static const struct {
        const char *name, *policy;
        int change; /* what to alter on the default device */
        int rc;
        bool approval;
        const char *reason;
    } rows[] = {
        {"managed", "macs", 0, 0, false, "policy macs: admitted, device holds role managed-mac"},
        {"lab blueprint", "macs", 1, -1, false,
         "policy macs requires one of roles [managed-mac]; device holds none (role managed-mac: "
         "attribute kandji.blueprint is \"Lab Macs\", not \"Corp Macs\")"},
        {"kandji denies", "macs", 2, -1, false,
         "policy macs: signal source kandji denied the device (kandji: condition mdm_enabled "
         "is_true failed)"},
        {"no kandji", "macs", 3, -1, false, "policy macs: no result from signal source kandji"},
        {"old os", "macs", 4, -1, false,
         "policy macs requires one of roles [managed-mac]; device holds none (role managed-mac: "
         "attest.os_version is 13.6.1, below 14.0)"},
        {"lab via jamf", "lab", 5, 0, true,
         "policy lab: admitted, device holds role lab; waiting for manual approval"},
        {"lab nothing", "lab", 1, -1, false,
         "policy lab requires one of roles [managed-mac, lab]; device holds none (role "
         "managed-mac: attribute kandji.blueprint is \"Lab Macs\", not \"Corp Macs\"; role lab: "
         "none of the alternatives holds: attribute jamf.site is \"HQ\", not one of [Lab, "
         "Annex]; account.eab_kid is absent)"},
        {"web", "web", 3, 0, false, "policy web: admitted, no role required"},
    };
    for (size_t i = 0; i < nitems(rows); i++) {
        struct device d;
        struct pol_decision dec;
        device_init(&d);
        switch (rows[i].change) {
        case 1: d.kattrs[0].value = "Lab Macs"; break;
        case 2:
            d.mdm[0].allowed = false;
            d.mdm[0].reason = "kandji: condition mdm_enabled is_true failed";
            break;
        case 3: d.in.nmdm = 0; break;
        case 4: snprintf(d.claims.os_version, sizeof(d.claims.os_version), "13.6.1"); break;
        case 5:
            d.kattrs[0].value = "Lab Macs";
            d.jattrs[0].value = "Annex";
            break;
        default: break;
        }
        int rc = pol_admit(cfg, cfg_policy_find(cfg, rows[i].policy), &d.in, &dec);
        if (rc != rows[i].rc || dec.allowed != (rc == 0) ||
            dec.needs_approval != rows[i].approval || strcmp(dec.reason, rows[i].reason) != 0)
            fail_msg("%s: rc %d approval %d reason \"%s\"", rows[i].name, rc,
                     dec.needs_approval, dec.reason);
    }
}

static void test_decision_fields(void **state)
{
    const struct cfg *cfg = *state;
    const struct cfg_policy *macs = cfg_policy_find(cfg, "macs");
    struct device d;
    struct pol_decision dec;
    device_init(&d);
    d.in.eab_kid = "lab-7";
    assert_int_equal(pol_admit(cfg, macs, &d.in, &dec), 0);
    assert_int_equal(dec.roles.n, 2);
    assert_string_equal(dec.roles.names[0], "managed-mac");
    assert_string_equal(dec.roles.names[1], "lab");
    assert_non_null(dec.tpl);
    assert_string_equal(dec.tpl->name, "wifi");
    assert_int_equal(macs->supersede, CFG_SUPERSEDE_REVOKE);
    assert_int_equal(macs->approval, CFG_APPROVAL_NONE);
    /* NULL input and NULL policy are refusals, not crashes. */
    assert_int_equal(pol_admit(cfg, macs, NULL, &dec), -1);
    assert_string_equal(dec.reason, "policy macs: no result from signal source kandji");
    assert_int_equal(pol_admit(cfg, NULL, &d.in, &dec), -1);
    assert_string_equal(dec.reason, "no such enrollment policy");
}

static void test_roles_eval(void **state)
{
    const struct cfg *cfg = *state;
    struct device d;
    struct pol_roles held;
    char why[POL_REASON_LEN];
    device_init(&d);
    d.in.mdm = &d.mdm[1]; /* only jamf answered */
    d.in.nmdm = 1;
    d.jattrs[0].value = "Lab";
    assert_int_equal(pol_roles_eval(cfg, &d.in, &held, why, sizeof(why)), 0);
    assert_int_equal(held.n, 1);
    assert_string_equal(held.names[0], "lab");
    assert_string_equal(why, "role managed-mac: no result from signal source kandji");
    assert_int_equal(pol_roles_eval(NULL, &d.in, &held, why, sizeof(why)), -1);
    /* A tiny sink truncates but stays terminated. */
    d.in.nmdm = 0;
    char small[16];
    assert_int_equal(pol_roles_eval(cfg, &d.in, &held, small, sizeof(small)), 0);
    assert_int_equal(held.n, 0);
    assert_string_equal(small, "role managed-ma");
}

static void test_select(void **state)
{
    const struct cfg *cfg = *state;
    static const char *const both[] = {"macs", "lab"};
    static const char *const ghost[] = {"nope"};
    const struct cfg_policy *p = NULL;
    struct pol_decision dec;
    struct device d;
    device_init(&d);
    assert_int_equal(pol_select(cfg, both, 2, &d.in, &p, &dec), 0);
    assert_string_equal(p->name, "macs");
    d.kattrs[0].value = "Lab Macs";
    d.jattrs[0].value = "Lab";
    assert_int_equal(pol_select(cfg, both, 2, &d.in, &p, &dec), 0);
    assert_string_equal(p->name, "lab");
    assert_true(dec.needs_approval);
    d.jattrs[0].value = "HQ";
    assert_int_equal(pol_select(cfg, both, 2, &d.in, &p, &dec), -1);
    assert_null(p);
    assert_false(dec.allowed);
    assert_true(strncmp(dec.reason, "no enrollment policy admits the device: policy macs "
                                    "requires one of roles [managed-mac]; device holds none",
                        96) == 0);
    assert_non_null(strstr(dec.reason, "; policy lab requires one of roles"));
    /* All policies in file order: web admits anything. */
    assert_int_equal(pol_select(cfg, NULL, 0, &d.in, &p, &dec), 0);
    assert_string_equal(p->name, "web");
    assert_int_equal(pol_select(cfg, ghost, 1, &d.in, &p, &dec), -1);
    assert_string_equal(dec.reason, "no enrollment policy admits the device: no such policy");
}

static void test_key_types_renewal(void **state)
{
    const struct cfg *cfg = *state;
    const struct cfg_template *t = cfg_template_find(cfg, "wifi");
    assert_int_equal(pol_key_types(cfg, cfg_policy_find(cfg, "macs")), 1u << PKI_KEY_P256);
    assert_int_equal(pol_key_types(cfg, cfg_policy_find(cfg, "web")),
                     cfg_policy_find(cfg, "web")->key_types);
    assert_int_equal(pol_key_types(cfg, NULL), 0);
    assert_int_equal(pol_renewal_start(t, 0, 365 * 86400), 335 * 86400);
    assert_int_equal(pol_renewal_start(NULL, 0, 90 * 86400), 60 * 86400);
    struct cfg_template pct = {.renewal_percent = 25};
    assert_int_equal(pol_renewal_start(&pct, 1000, 1400), 1300);
    /* A window longer than the lifetime falls back to the last third. */
    assert_int_equal(pol_renewal_start(t, 0, 3 * 86400), 2 * 86400);
}

int test_pol_admit_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admit_table),
        cmocka_unit_test(test_decision_fields),
        cmocka_unit_test(test_roles_eval),
        cmocka_unit_test(test_select),
        cmocka_unit_test(test_key_types_renewal),
    };
    return cmocka_run_group_tests_name("policy_admit", tests, setup, teardown);
}
