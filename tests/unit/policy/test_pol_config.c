/*
 * Unit tests for config/cfg_templates.c, config/cfg_roles.c and the policy
 * keys they add: every new key loads into the expected fields, and a table
 * of invalid files fails with the exact "config.yaml:LINE: path: problem".
 */
#include "test_pol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SOURCES_LINES 11 /* lines of tp_sources_yaml before each case */

static const char valid_yaml[] =
    "templates:\n"
    "  wifi:\n"
    "    validity: 365d\n"
    "    subject: [{CN: \"${/attest/serial}\"}, {O: \"Example, Corp\"}, {OU: a}, {OU: b},\n"
    "              {2.5.4.5: \"${/device/udid}\"}]\n"
    "    san:\n"
    "      dns: [\"${/csr/san/dnsname}\", host.example.com]\n"
    "      email: \"${/mdm/kandji/user_email}\"\n"
    "      permanent_identifier: \"${/attest/serial}\"\n"
    "      upn: \"${/attest/serial}@corp.example\"\n"
    "      uri: [\"urn:dev:$${x}:${/policy/name}\"]\n"
    "      ip: [192.0.2.1]\n"
    "    key_usage: [digitalSignature, keyEncipherment]\n"
    "    extended_key_usage: [clientAuth, 1.3.6.1.4.1.311.20.2.2]\n"
    "    key_types: [P-256, P-384]\n"
    "    renewal_window: 33%\n"
    "  web:\n"
    "    subject: {CN: \"${/csr/subject/commonname}\", O: Example}\n"
    "    renewal_window: 10d\n"
    "device_roles:\n"
    "  managed:\n"
    "    when:\n"
    "      - {source: kandji, result: denied}\n"
    "      - {source: kandji, attribute: blueprint, op: in, value: [A, 7, true]}\n"
    "      - any: [{account: eab_kid, op: exists}, {attest: sepos_version, op: version_lt,\n"
    "               value: \"3.1\"}]\n"
    "enrollment_policies:\n"
    "  macs:\n"
    "    identifiers: [permanent-identifier]\n"
    "    challenges: [device-attest-01]\n"
    "    signal_sources: [kandji]\n"
    "    roles: [managed]\n"
    "    template: wifi\n"
    "    approval: manual\n"
    "    supersede: revoke\n"
    "  plain:\n"
    "    identifiers: [dns]\n"
    "    challenges: [dns-01]\n"
    "    template: web\n";

static void test_valid(void **state)
{
    struct cfg *c = tp_load_ok(valid_yaml);
    const struct cfg_template *t = cfg_template_find(c, "wifi"), *w = cfg_template_find(c, "web");
    const struct cfg_role *r = cfg_role_find(c, "managed");
    const struct cfg_policy *m = cfg_policy_find(c, "macs"), *p = cfg_policy_find(c, "plain");
    static const char *const fields[] = {"CN", "O", "OU", "OU", "2.5.4.5"};
    static const unsigned kinds[] = {CFG_SAN_DNS, CFG_SAN_DNS, CFG_SAN_EMAIL,
                                     CFG_SAN_PERMANENT_ID, CFG_SAN_UPN, CFG_SAN_URI, CFG_SAN_IP};
    assert_non_null(t);
    assert_int_equal(t->validity, 365 * 86400);
    assert_int_equal(t->nsubject, nitems(fields));
    for (size_t i = 0; i < nitems(fields); i++)
        assert_string_equal(t->subject[i].field, fields[i]);
    assert_string_equal(t->subject[1].value, "Example, Corp");
    assert_int_equal(t->nsans, nitems(kinds));
    for (size_t i = 0; i < nitems(kinds); i++)
        assert_int_equal(t->sans[i].san, kinds[i]);
    assert_string_equal(t->sans[5].value, "urn:dev:$${x}:${/policy/name}");
    assert_int_equal(t->key_usage, PKI_KU_DIGITAL_SIGNATURE | PKI_KU_KEY_ENCIPHERMENT);
    assert_int_equal(t->neku, 2);
    assert_string_equal(t->eku[1], "1.3.6.1.4.1.311.20.2.2");
    assert_int_equal(t->key_types, (1u << PKI_KEY_P256) | (1u << PKI_KEY_P384));
    assert_int_equal(t->renewal_percent, 33);
    assert_int_equal(t->renewal_window, 0);
    assert_non_null(w);
    assert_int_equal(w->validity, 0);
    assert_int_equal(w->nsubject, 2);
    assert_string_equal(w->subject[1].field, "O");
    assert_int_equal(w->renewal_window, 10 * 86400);
    assert_int_equal(w->key_types, 0);
    assert_non_null(r);
    assert_int_equal(r->nwhen, 3);
    assert_int_equal(r->when[0].kind, CFG_PRED_RESULT);
    assert_false(r->when[0].want_allowed);
    assert_int_equal(r->when[1].kind, CFG_PRED_ATTR);
    assert_int_equal(r->when[1].op, CFG_PRED_OP_IN);
    assert_int_equal(r->when[1].nvalues, 3);
    assert_string_equal(r->when[1].values[2], "true");
    assert_int_equal(r->when[2].kind, CFG_PRED_ANY);
    assert_int_equal(r->when[2].nany, 2);
    assert_int_equal(r->when[2].any[0].kind, CFG_PRED_ACCOUNT);
    assert_int_equal(r->when[2].any[1].claim, CFG_CLAIM_SEPOS);
    assert_int_equal(r->when[2].any[1].line, SOURCES_LINES + 25);
    assert_int_equal(m->nroles, 1);
    assert_string_equal(m->template, "wifi");
    assert_int_equal(m->approval, CFG_APPROVAL_MANUAL);
    assert_int_equal(m->supersede, CFG_SUPERSEDE_REVOKE);
    assert_int_equal(p->approval, CFG_APPROVAL_NONE);
    assert_int_equal(p->supersede, CFG_SUPERSEDE_KEEP);
    assert_int_equal(p->nroles, 0);
    assert_null(cfg_template_find(c, "nope"));
    assert_null(cfg_role_find(c, NULL));
    cfg_free(c);
}

static void test_defaults(void **state)
{
    char err[CFG_ERR_LEN];
    struct cfg *c = cfg_load(NULL, err);
    assert_non_null(c);
    assert_int_equal(c->ntemplates, 0);
    assert_int_equal(c->nroles, 0);
    for (size_t i = 0; i < c->npolicies; i++) {
        assert_null(c->policies[i].template);
        assert_int_equal(c->policies[i].nroles, 0);
        assert_int_equal(c->policies[i].approval, CFG_APPROVAL_NONE);
    }
    cfg_free(c);
}

#define TPL "templates:\n  t:\n"
#define ROLE "device_roles:\n  r:\n    when:\n"
#define DEV_POLICY                                                                                 \
    "enrollment_policies:\n  p:\n    identifiers: [permanent-identifier]\n"                        \
    "    challenges: [device-attest-01]\n"

static const struct {
    const char *yaml; /* appended to tp_sources_yaml */
    unsigned line;    /* in yaml, 1-based */
    const char *err;  /* expected prefix after "config.yaml:LINE: " */
} bad[] = {
    {TPL "    subject: [{CN: \"${/attest/serail}\"}]\n", 3,
     "templates.t.subject[0].CN: unknown variable ${/attest/serail} (expected /csr/..."},
    {TPL "    subject: [{CN: \"${/mdm/intune/x}\"}]\n", 3,
     "templates.t.subject[0].CN: ${/mdm/intune/x}: unknown signal source"},
    {TPL "    san: {email: [ok@example.com, \"${/mdm/kandji/color}\"]}\n", 3,
     "templates.t.san.email[1]: ${/mdm/kandji/color}: signal source kandji collects no such "
     "attribute (add it under signal_sources.kandji.attributes)"},
    {TPL "    san: {dns: \"${/mdm/kandji}\"}\n", 3,
     "templates.t.san.dns: ${/mdm/kandji}: expected /mdm/<source>/<attribute>"},
    {TPL "    subject: [{CN: \"${/attest/serial|urlencode}\"}]\n", 3,
     "templates.t.subject[0].CN: ${/attest/serial|urlencode}: filters are not available"},
    {TPL "    subject: [{CN: \"x${/attest/serial\"}]\n", 3,
     "templates.t.subject[0].CN: unterminated ${ (write $$ for a literal $)"},
    {TPL "    subject: [{CN: \"${}\"}]\n", 3, "templates.t.subject[0].CN: empty ${}"},
    {TPL "    subject:\n      - {CN: a}\n      - {XX: b}\n", 5,
     "templates.t.subject[1].XX: unknown subject field \"XX\""},
    {TPL "    subject: [{CN: a, O: b}]\n", 3,
     "templates.t.subject[0]: expected one {FIELD: value} map"},
    {TPL "    subject: [{CN: \"\"}]\n", 3, "templates.t.subject[0].CN: expected a non-empty string"},
    {TPL "    san: {dns_name: [a]}\n", 3, "templates.t.san.dns_name: unknown SAN type"},
    {TPL "    san: {dns: a}\n    key_usage: [signing]\n", 4,
     "templates.t.key_usage[0]: expected one of digitalSignature|nonRepudiation|"},
    {TPL "    san: {dns: a}\n    extended_key_usage:\n      - clientAuth\n      - clientauth\n",
     6, "templates.t.extended_key_usage[1]: unknown extended key usage \"clientauth\""},
    {TPL "    san: {dns: a}\n    renewal_window: 150%\n", 4,
     "templates.t.renewal_window: expected a duration such as 30d or a percentage from 1% to 99%"},
    {TPL "    san: {dns: a}\n    validity: 30d\n    renewal_window: 30d\n", 5,
     "templates.t.renewal_window: renewal_window must be shorter than validity"},
    {TPL "    validity: 30d\n", 3, "templates.t: a template needs a subject entry or a SAN"},
    {TPL "    san: {dns: a}\n    colour: red\n", 4, "templates.t.colour: unknown key"},
    {ROLE "      - {attest: serial, op: like, value: x}\n", 4,
     "device_roles.r.when[0].op: expected one of equals|not_equals|in|not_in|matches_prefix|"},
    {ROLE "      - {attest: serial, op: version_ge, value: \"1\"}\n", 4,
     "device_roles.r.when[0].op: version_ge compares versions: only for os_version, "
     "sepos_version or a source attribute"},
    {ROLE "      - {attest: os_version, op: version_ge, value: \"17.x\"}\n", 4,
     "device_roles.r.when[0].value: expected a version such as 17 or 26.4.1"},
    {ROLE "      - {attest: imei, op: exists}\n", 4,
     "device_roles.r.when[0].attest: expected one of serial|udid|os_version|sepos_version"},
    {ROLE "      - {source: intune, result: allowed}\n", 4,
     "device_roles.r.when[0].source: unknown signal source \"intune\""},
    {ROLE "      - {source: kandji, result: yes}\n", 4,
     "device_roles.r.when[0].result: expected allowed or denied"},
    {ROLE "      - {attest: udid, op: exists}\n      - {source: kandji, attribute: color, op: "
          "exists}\n",
     5,
     "device_roles.r.when[1].attribute: signal source kandji collects no attribute \"color\""},
    {ROLE "      - {attest: udid, op: exists, value: x}\n", 4,
     "device_roles.r.when[0].value: exists takes no value"},
    {ROLE "      - {attest: udid, op: in, value: x}\n", 4,
     "device_roles.r.when[0].value: expected a list of strings"},
    {ROLE "      - {attest: udid, op: equals}\n", 4,
     "device_roles.r.when[0]: missing required key value"},
    {ROLE "      - {attest: serial, account: eab_kid, op: exists}\n", 4,
     "device_roles.r.when[0]: expected exactly one of attest, source, account or any"},
    {ROLE "      - {attest: serial, op: exists, hint: x}\n", 4,
     "device_roles.r.when[0].hint: unknown key"},
    {ROLE "      - {account: email, op: exists}\n", 4,
     "device_roles.r.when[0].account: expected eab_kid"},
    {ROLE "      - any: []\n", 4, "device_roles.r.when[0].any: expected a non-empty list"},
    {"device_roles:\n  r: {when: []}\n", 2,
     "device_roles.r.when: expected a non-empty list of predicates"},
    {"device_roles:\n  r: {}\n", 2, "device_roles.r: missing required key when"},
    {"device_roles:\n  Bad_Name: {when: [{attest: udid, op: exists}]}\n", 2,
     "device_roles.Bad_Name: name must match"},
    {"device_roles:\n  r: {when: [{attest: serial, op: exists}]}\n" DEV_POLICY
     "    roles: [r, ghost]\n",
     7, "enrollment_policies.p.roles[1]: unknown device role \"ghost\""},
    {DEV_POLICY "    template: nope\n", 5, "enrollment_policies.p.template: unknown template \"nope\""},
    {TPL "    subject: [{OU: \"${/mdm/kandji/blueprint}\"}]\n" DEV_POLICY "    template: t\n", 8,
     "enrollment_policies.p.template: template t uses ${/mdm/kandji/blueprint} but the policy "
     "does not list signal source kandji in signal_sources"},
    {TPL "    subject: [{CN: \"${/attest/serial}\"}]\nenrollment_policies:\n  p:\n"
         "    identifiers: [dns]\n    challenges: [http-01]\n    template: t\n",
     8, "enrollment_policies.p.template: template t uses ${/attest/serial}, which only "
        "device-attest-01 provides"},
    {TPL "    san: {dns: a}\n    key_types: [Ed25519]\n" DEV_POLICY "    template: t\n", 9,
     "enrollment_policies.p.template: template t allows no key type that the policy's "
     "key_types accept"},
    {TPL "    san: {hardware_module_name: \"${/device/identifier}\"}\n" DEV_POLICY
         "    template: t\n",
     8, "enrollment_policies.p.template: template t: hardware_module_name from "
        "${/device/identifier} needs a policy without permanent-identifier"},
    {TPL "    san: {permanent_identifier: \"${/device/identifier}\"}\nenrollment_policies:\n"
         "  p:\n    identifiers: [hardware-module]\n    challenges: [device-attest-01]\n"
         "    template: t\n",
     8, "enrollment_policies.p.template: template t: permanent_identifier from "
        "${/device/identifier} needs a policy without hardware-module (use ${/device/serial})"},
    {TPL "    san: {dns: a}\n    renewal_window: 100d\n" DEV_POLICY "    template: t\n", 9,
     "enrollment_policies.p.template: template t: renewal_window is not shorter than the "
     "validity"},
    {"device_roles:\n  r: {when: [{source: kandji, result: allowed}]}\n" DEV_POLICY
     "    roles:\n      - r\n",
     8, "enrollment_policies.p.roles[0]: role r reads signal source kandji, which the policy "
        "does not list in signal_sources"},
    {"device_roles:\n  r: {when: [{attest: serial, op: exists}]}\nenrollment_policies:\n  p:\n"
     "    identifiers: [dns]\n    challenges: [http-01]\n    roles: [r]\n",
     7, "enrollment_policies.p.roles[0]: role r reads attest.serial, which only device-attest-01 "
        "provides"},
    {DEV_POLICY "    approval: auto\n", 5,
     "enrollment_policies.p.approval: expected one of none|manual"},
    {DEV_POLICY "    supersede: replace\n", 5,
     "enrollment_policies.p.supersede: expected one of keep|revoke"},
};

static void test_invalid(void **state)
{
    for (size_t i = 0; i < nitems(bad); i++) {
        char err[CFG_ERR_LEN] = "", want[CFG_ERR_LEN];
        char *all = xasprintf("%s%s", tp_sources_yaml, bad[i].yaml);
        struct cfg *c = tp_load(all, err);
        snprintf(want, sizeof(want), "config.yaml:%u: %s", bad[i].line + SOURCES_LINES,
                 bad[i].err);
        free(all);
        if (c != NULL) {
            cfg_free(c);
            fail_msg("case %zu loaded; want \"%s\"", i, want);
        }
        if (strncmp(err, want, strlen(want)) != 0)
            fail_msg("case %zu:\n got  \"%s\"\n want \"%s\"", i, err, want);
    }
}

int test_pol_config_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_invalid),
    };
    return cmocka_run_group_tests_name("policy_config", tests, NULL, NULL);
}
