/*
 * Unit tests for policy/pol_template.c: every variable config/ accepts
 * resolves, and a policy's template renders into a pki_issue_req, refusing
 * missing and hostile values with a clear error.
 */
#include "test_pol.h"

#include <stdio.h>
#include <string.h>

static const char tpl_yaml[] =
    "templates:\n"
    "  wifi:\n"
    "    validity: 30d\n"
    "    subject: [{CN: \"${/attest/serial}\"}, {O: Example Corp}, {OU: \"${/mdm/kandji/blueprint}\"}]\n"
    "    san:\n"
    "      permanent_identifier: \"${/device/serial}\"\n"
    "      email: \"${/mdm/kandji/user_email}\"\n"
    "      upn: \"${/attest/serial}@corp.example\"\n"
    "    key_usage: [digitalSignature]\n"
    "    extended_key_usage: [clientAuth]\n"
    "  web:\n"
    "    subject: [{CN: \"${/csr/subject/commonname}\"}, {OU: \"${/policy/name} $$5\"}]\n"
    "    san: {dns: [\"${/csr/san/dnsname}\"]}\n"
    "  hwm:\n"
    "    san: {hardware_module_name: \"${/device/identifier}\"}\n"
    "  pid:\n"
    "    san: {permanent_identifier: \"${/device/identifier}\"}\n"
    "enrollment_policies:\n"
    "  macs:\n"
    "    identifiers: [permanent-identifier]\n"
    "    challenges: [device-attest-01]\n"
    "    signal_sources: [kandji]\n"
    "    template: wifi\n"
    "  web:\n"
    "    identifiers: [dns]\n"
    "    challenges: [http-01]\n"
    "    template: web\n"
    "  none:\n"
    "    identifiers: [dns]\n"
    "    challenges: [http-01]\n"
    "  modules:\n"
    "    identifiers: [hardware-module]\n"
    "    challenges: [device-attest-01]\n"
    "    template: hwm\n"
    "  perms:\n"
    "    identifiers: [permanent-identifier]\n"
    "    challenges: [device-attest-01]\n"
    "    template: pid\n";

static int setup(void **state)
{
    *state = tp_load_ok(tpl_yaml);
    return 0;
}

static int teardown(void **state)
{
    cfg_free(*state);
    return 0;
}

static void test_every_variable_resolves(void **state)
{
    char *dns[] = {"a.example.com", "b.example.com"}, *emails[] = {"e@example.com"};
    char *uris[] = {"urn:x"}, *perm[] = {"P1"};
    struct pki_csr csr = {.cn = "cn", .dns = dns, .ndns = 2, .emails = emails, .nemails = 1,
                          .uris = uris, .nuris = 1, .perm_ids = perm, .nperm_ids = 1};
    struct att_claims c = {.serial = "S", .udid = "U", .os_version = "17.4",
                           .sepos_version = "2.1"};
    struct pol_attr a = {"blueprint", "Corp"};
    struct pol_mdm m = {.source = "kandji", .allowed = true, .attrs = &a, .nattrs = 1};
    struct pol_input in = {.policy = "macs", .claims = &c, .mdm = &m, .nmdm = 1,
                           .eab_kid = "kid", .csr = &csr, .identifier = "S/1.2.3"};
    const char *v;
    size_t n;
    for (size_t i = 0; cfg_tpl_vars[i] != NULL; i++) {
        if (pol_var_get(&in, cfg_tpl_vars[i], &v, &n) != 0 || n == 0 || strlen(v) != n)
            fail_msg("%s does not resolve", cfg_tpl_vars[i]);
    }
    assert_int_equal(pol_var_get(&in, "/csr/san/dnsname", &v, &n), 0);
    assert_string_equal(v, "a.example.com");
    assert_int_equal(pol_var_get(&in, "/device/udid", &v, &n), 0);
    assert_string_equal(v, "U");
    assert_int_equal(pol_var_get(&in, "/device/identifier", &v, &n), 0);
    assert_string_equal(v, "S/1.2.3");
    assert_int_equal(pol_var_get(&in, "/mdm/kandji/blueprint", &v, &n), 0);
    assert_string_equal(v, "Corp");
    static const char *const missing[] = {
        "/mdm/kandji/user_email", "/mdm/jamf/blueprint", "/mdm//blueprint", "/mdm/kandji",
        "/attest/llb_version", "/csr/san/ip", "/nope", "", "/mdm/kandji/blueprint/x",
    };
    for (size_t i = 0; i < nitems(missing); i++) {
        if (pol_var_get(&in, missing[i], &v, &n) != -1)
            fail_msg("%s resolved", missing[i]);
    }
    struct pol_input empty = {0};
    for (size_t i = 0; cfg_tpl_vars[i] != NULL; i++)
        assert_int_equal(pol_var_get(&empty, cfg_tpl_vars[i], &v, &n), -1);
    assert_int_equal(pol_var_get(NULL, "/policy/name", &v, &n), -1);
}

struct render_row {
    const char *name;
    const char *serial;     /* attested serial */
    const char *blueprint;  /* kandji attribute, NULL = absent */
    const char *email;
    const char *err;        /* NULL = renders */
};

static const struct render_row rows[] = {
    {"plain", "C02XK0AAJG5H", "Corp Macs", "ana@example.com", NULL},
    {"dn injection", "CN=evil,O=x", "OU=a+CN=b", "ana@example.com", NULL},
    {"quotes", "\"q\"", "a'b\\c", "ana@example.com", NULL},
    {"unicode", "C02X", "Büro 東京 🚀", "ana@example.com", NULL},
    {"no email", "C02X", "Corp", NULL, "template wifi: ${/mdm/kandji/user_email} has no value"},
    {"no blueprint", "C02X", NULL, "a@b", "template wifi: ${/mdm/kandji/blueprint} has no value"},
    {"empty serial", "", "Corp", "a@b", "template wifi: ${/attest/serial} has no value"},
    {"newline", "C02X", "Corp\nCN=x", "a@b",
     "template wifi: subject OU is not UTF-8 text without control characters"},
    {"escape", "C02X\x1b[2J", "Corp", "a@b",
     "template wifi: subject CN is not UTF-8 text without control characters"},
    {"bad utf8", "C02X", "\xc3\x28", "a@b",
     "template wifi: subject OU is not UTF-8 text without control characters"},
    {"OU 65", "C02X", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "a@b",
     "template wifi: subject OU is 65 characters; at most 64 allowed"},
    {"OU 64 wide", "C02X", "ééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé😀", "a@b",
     NULL},
};

static void test_render_table(void **state)
{
    const struct cfg *cfg = *state;
    const struct cfg_policy *macs = cfg_policy_find(cfg, "macs");
    for (size_t i = 0; i < nitems(rows); i++) {
        struct att_claims c = {0};
        struct pol_attr attrs[2];
        size_t na = 0;
        struct pol_mdm m = {.source = "kandji", .allowed = true, .attrs = attrs};
        struct pol_input in = {.claims = &c, .mdm = &m, .nmdm = 1};
        struct pki_issue_req req = {0};
        struct pol_rendered st;
        char err[ERR_LEN] = "";
        snprintf(c.serial, sizeof(c.serial), "%s", rows[i].serial);
        if (rows[i].blueprint != NULL)
            attrs[na++] = (struct pol_attr){"blueprint", rows[i].blueprint};
        if (rows[i].email != NULL)
            attrs[na++] = (struct pol_attr){"user_email", rows[i].email};
        m.nattrs = na;
        int rc = pol_render(cfg, macs, &in, 1000, &req, &st, err);
        if (rows[i].err == NULL) {
            if (rc != 0)
                fail_msg("%s: %s", rows[i].name, err);
            assert_int_equal(req.nsubject, 3);
            assert_string_equal(req.subject[0].field, "CN");
            assert_string_equal(req.subject[0].value, rows[i].serial);
            assert_string_equal(req.subject[2].value, rows[i].blueprint);
            assert_int_equal(req.nsans, 3);
            assert_int_equal(req.sans[0].type, PKI_SAN_PERMANENT_ID);
            assert_string_equal(req.sans[1].value, rows[i].email);
            assert_int_equal(req.sans[2].type, PKI_SAN_UPN);
            assert_int_equal(req.not_before, 1000);
            assert_int_equal(req.not_after, 1000 + 30 * 86400);
            assert_int_equal(req.key_usage, PKI_KU_DIGITAL_SIGNATURE);
            assert_int_equal(req.neku, 1);
            assert_string_equal(req.eku_oids[0], "clientAuth");
        } else if (rc != -1 || strcmp(err, rows[i].err) != 0) {
            fail_msg("%s: rc %d err \"%s\"; want \"%s\"", rows[i].name, rc, err, rows[i].err);
        }
        pol_rendered_clear(&st);
    }
}

static void test_render_csr_policy(void **state)
{
    const struct cfg *cfg = *state;
    char *dns[] = {"www.example.com"};
    struct pki_csr csr = {.cn = "www.example.com", .dns = dns, .ndns = 1};
    struct pol_input in = {.csr = &csr, .policy = "ignored"};
    struct pki_issue_req req = {0};
    struct pol_rendered st;
    char err[ERR_LEN] = "";
    assert_int_equal(pol_render(cfg, cfg_policy_find(cfg, "web"), &in, 0, &req, &st, err), 0);
    assert_string_equal(req.subject[1].value, "web $5");
    assert_string_equal(req.sans[0].value, "www.example.com");
    assert_int_equal(req.not_after, 90 * 86400); /* the policy's default validity */
    assert_null(req.eku_oids);
    pol_rendered_clear(&st);
    in.csr = NULL;
    assert_int_equal(pol_render(cfg, cfg_policy_find(cfg, "web"), &in, 0, &req, &st, err), -1);
    assert_string_equal(err, "template web: ${/csr/subject/commonname} has no value");
    pol_rendered_clear(&st);
    assert_int_equal(pol_render(cfg, cfg_policy_find(cfg, "none"), &in, 0, &req, &st, err), -1);
    assert_string_equal(err, "policy none has no certificate template");
    pol_rendered_clear(&st);
    pol_rendered_clear(NULL);
}

/* DA-5 with a template: hardware_module_name takes the ordered "serial/type-OID" whole. */
static void test_render_hw_module(void **state)
{
    const struct cfg *cfg = *state;
    const struct cfg_policy *modules = cfg_policy_find(cfg, "modules");
    struct pol_input in = {.identifier = "C02X\xc3\xa9/1.2.3.4"};
    struct pki_issue_req req = {0};
    struct pol_rendered st;
    char err[ERR_LEN] = "";
    assert_int_equal(pol_render(cfg, modules, &in, 0, &req, &st, err), 0);
    assert_int_equal(req.nsans, 1);
    assert_int_equal(req.sans[0].type, PKI_SAN_HW_MODULE);
    assert_string_equal(req.sans[0].value, "C02X\xc3\xa9/1.2.3.4");
    pol_rendered_clear(&st);
    in.identifier = NULL;
    assert_int_equal(pol_render(cfg, modules, &in, 0, &req, &st, err), -1);
    assert_string_equal(err, "template hwm: ${/device/identifier} has no value");
    pol_rendered_clear(&st);
}

/* DA-4 with a template: permanent_identifier takes "value/assigner-OID" whole; pki splits it. */
static void test_render_perm_id_assigner(void **state)
{
    const struct cfg *cfg = *state;
    const struct cfg_policy *perms = cfg_policy_find(cfg, "perms");
    static const char *const ids[] = {"C02XK0SIMUL8/1.2.840.113635.100.6.1.1", "C02XK0SIMUL8"};
    struct pki_issue_req req = {0};
    struct pol_rendered st;
    char err[ERR_LEN] = "";
    for (size_t i = 0; i < nitems(ids); i++) {
        struct pol_input in = {.identifier = ids[i]};
        assert_int_equal(pol_render(cfg, perms, &in, 0, &req, &st, err), 0);
        assert_int_equal(req.nsans, 1);
        assert_int_equal(req.sans[0].type, PKI_SAN_PERMANENT_ID);
        assert_string_equal(req.sans[0].value, ids[i]);
        pol_rendered_clear(&st);
    }
}

int test_pol_template_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_variable_resolves),
        cmocka_unit_test(test_render_table),
        cmocka_unit_test(test_render_csr_policy),
        cmocka_unit_test(test_render_hw_module),
        cmocka_unit_test(test_render_perm_id_assigner),
    };
    return cmocka_run_group_tests_name("policy_template", tests, setup, teardown);
}
