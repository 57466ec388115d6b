/*
 * Unit tests for config/cfg_signal_sources.c (owned with mdm/): a valid
 * source with its defaults, and a table of invalid files with the exact
 * "FILE:LINE: key.path: problem" each must produce.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config/config.h"

#define HEAD "signal_sources:\n  kandji:\n    type: http\n"
#define URL "    request: {url: \"https://x.example/d?s=${/attest/serial|urlencode}\"}\n"
#define MATCH "    match: {field: serial_number}\n"

static struct cfg *load(const char *text, char err[CFG_ERR_LEN])
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/attesta-mdmcfg-%d.yaml", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    struct cfg *c = cfg_load(path, err);
    unlink(path);
    return c;
}

static void test_valid(void **state)
{
    char err[CFG_ERR_LEN];
    struct cfg *c = load(HEAD URL MATCH
                         "    auth: {type: bearer, token_env: T}\n"
                         "    conditions: [{path: a.b, op: in, value: [x, y]}, {path: n, op: ge, value: 3}]\n"
                         "    attributes: {user_email: user.email}\n"
                         "  intune_2:\n    type: http\n" URL MATCH
                         "    auth: {type: oauth2_client_credentials, token_url: \"https://t/x\",\n"
                         "           client_id: c, client_secret_file: s.txt}\n"
                         "enrollment_policies:\n  d: {identifiers: [permanent-identifier],\n"
                         "      challenges: [device-attest-01], signal_sources: [kandji, intune_2]}\n",
                         err);
    if (c == NULL)
        fail_msg("%s", err);
    assert_int_equal(c->nsignal_sources, 2);
    const struct cfg_signal_source *s = cfg_signal_source_find(c, "kandji");
    assert_non_null(s);
    assert_string_equal(s->method, "GET");
    assert_string_equal(s->records, "$");
    assert_string_equal(s->match_equals, "${/attest/serial}");
    assert_int_equal(s->timeout, 5);
    assert_int_equal(s->max_concurrency, 8);
    assert_int_equal(s->cache_ttl, 300);
    assert_int_equal(s->cache_negative_ttl, 30);
    assert_int_equal(s->retry_attempts, 3);
    assert_int_equal(s->retry_deadline, 10);
    assert_int_equal(s->on_failure_allow, 0);
    assert_false(s->tls_insecure);
    assert_int_equal(s->nconditions, 2);
    assert_int_equal(s->conditions[0].nvalues, 2);
    assert_string_equal(s->conditions[1].values[0], "3");
    assert_int_equal(s->nattributes, 1);
    s = cfg_signal_source_find(c, "intune_2");
    assert_int_equal(s->auth_type, CFG_MDM_AUTH_OAUTH2);
    assert_true(s->auth_client_secret_file[0] == '/'); /* resolved against the file's dir */
    const struct cfg_policy *p = cfg_policy_find(c, "d");
    assert_int_equal(p->nsignal_sources, 2);
    cfg_free(c);
    /* Without the section there are no sources. */
    c = load("server: {}\n", err);
    assert_non_null(c);
    assert_int_equal(c->nsignal_sources, 0);
    cfg_free(c);
}

static const struct {
    const char *yaml, *want; /* want: the error after "FILE:" */
} bad[] = {
    {HEAD URL MATCH "    auth: {type: token}\n",
     "6: signal_sources.kandji.auth.type: expected one of none|bearer|basic|header|oauth2_client_credentials"},
    {HEAD "    request: {url: \"https://x/${/attest/serail}\"}\n" MATCH,
     "4: signal_sources.kandji.request.url: unknown variable ${/attest/serail}"},
    {HEAD "    request: {url: \"https://x/${/attest/serial|upper}\"}\n" MATCH,
     "4: signal_sources.kandji.request.url: unknown variable ${/attest/serial|upper}"},
    {HEAD "    request: {url: \"https://x/${/attest/serial\"}\n" MATCH,
     "4: signal_sources.kandji.request.url: unterminated ${"},
    {HEAD "    request: {url: \"ftp://x/\"}\n" MATCH,
     "4: signal_sources.kandji.request.url: expected an http:// or https:// URL"},
    {HEAD URL, "3: signal_sources.kandji: missing required key match"},
    {HEAD URL MATCH "    auth: {type: bearer}\n",
     "6: signal_sources.kandji.auth.token_env: token_env or token_file is required"},
    {HEAD URL MATCH "    auth: {type: bearer, token_env: A, token_file: b}\n",
     "6: signal_sources.kandji.auth.token_file: set only one of token_env and token_file"},
    {HEAD URL MATCH "    auth: {type: basic, password_env: P}\n",
     "6: signal_sources.kandji.auth.username: required for auth type basic"},
    {HEAD URL MATCH "    auth: {type: oauth2_client_credentials, client_secret_env: S}\n",
     "6: signal_sources.kandji.auth.token_url: token_url and client_id are required"},
    {HEAD URL MATCH "    records: \"a..b\"\n", "6: signal_sources.kandji.records: expected a JSON path"},
    {HEAD URL MATCH "    records: \"a[x]\"\n", "6: signal_sources.kandji.records: expected a JSON path"},
    {HEAD URL "    match: {field: \"[0\"}\n", "5: signal_sources.kandji.match.field: expected a JSON path"},
    {HEAD URL MATCH "    conditions: [{path: a, op: like, value: x}]\n",
     "6: signal_sources.kandji.conditions[0].op: expected one of exists|"},
    {HEAD URL MATCH "    conditions: [{path: a, op: equals}]\n",
     "6: signal_sources.kandji.conditions[0].value: op equals needs a value"},
    {HEAD URL MATCH "    conditions: [{path: a, op: in, value: x}]\n",
     "6: signal_sources.kandji.conditions[0].value: expected a list"},
    {HEAD URL MATCH "    conditions: [{path: a, op: gt, value: ten}]\n",
     "6: signal_sources.kandji.conditions[0].value: expected a number"},
    {HEAD URL MATCH "    conditions: [{path: a, op: is_true, value: x}]\n",
     "6: signal_sources.kandji.conditions[0].value: op is_true takes no value"},
    {HEAD URL MATCH "    conditions: [{path: a, op: exists, valu: 1}]\n",
     "6: signal_sources.kandji.conditions[0].valu: unknown key"},
    {HEAD URL MATCH "    attributes: {Email: user.email}\n",
     "6: signal_sources.kandji.attributes.Email: attribute name must match"},
    {HEAD URL MATCH "    timeout: 0s\n", "6: signal_sources.kandji.timeout: expected a duration from 1s to 5m"},
    {HEAD URL MATCH "    on_failure: maybe\n", "6: signal_sources.kandji.on_failure: expected one of deny|allow"},
    {HEAD URL MATCH "    tls: {insecure_skip_verify: yes}\n",
     "6: signal_sources.kandji.tls.insecure_skip_verify: expected true or false"},
    {HEAD "    request: {url: \"https://x/\", headers: {\"bad header\": v}}\n" MATCH,
     "4: signal_sources.kandji.request.headers.bad header: header name must be an HTTP token"},
    {HEAD "    request: {url: \"https://x/\", body: \"{}\"}\n" MATCH,
     "4: signal_sources.kandji.request.body: a body needs method POST"},
    {"signal_sources:\n  Kandji:\n    type: http\n" URL MATCH,
     "2: signal_sources.Kandji: name must match [a-z0-9][a-z0-9_-]{0,31}"},
    {HEAD URL MATCH "enrollment_policies:\n  d: {identifiers: [permanent-identifier],\n"
     "      challenges: [device-attest-01], signal_sources: [kandji, nope]}\n",
     "8: enrollment_policies.d.signal_sources[1]: unknown signal source \"nope\""},
};

static void test_invalid(void **state)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[CFG_ERR_LEN];
        struct cfg *c = load(bad[i].yaml, err);
        const char *colon = strchr(err, ':');
        if (c != NULL || colon == NULL || strncmp(colon + 1, bad[i].want, strlen(bad[i].want)) != 0)
            fail_msg("case %zu: got \"%s\", wanted \"...:%s\"", i, c ? "(loaded)" : err,
                     bad[i].want);
    }
}

int run_config_tests(void);
int run_config_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
    };
    return cmocka_run_group_tests_name("cfg_signal_sources", tests, NULL, NULL);
}
