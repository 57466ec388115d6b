/*
 * Unit tests for config/: embedded defaults, a full file, a table of invalid
 * files with their exact error prefix (file:line: key: problem), relative
 * path resolution and the lookup helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "config/cfg_int.h"
#include "config/config.h"

#define FIXTURES ATTESTA_SOURCE_DIR "/tests/fixtures/config"

/* A scratch directory, made current for the test so error labels read "config.yaml:". */
struct scratch {
    char dir[64];
    char old_cwd[4096];
};

static int scratch_setup(void **state)
{
    struct scratch *s = calloc(1, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/attesta-cfg-XXXXXX");
    if (mkdtemp(s->dir) == NULL || getcwd(s->old_cwd, sizeof(s->old_cwd)) == NULL ||
        chdir(s->dir) != 0) {
        free(s);
        return -1;
    }
    *state = s;
    return 0;
}

static int scratch_teardown(void **state)
{
    struct scratch *s = *state;
    char cmd[128];
    int rc = chdir(s->old_cwd);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
    rc |= system(cmd);
    free(s);
    return rc == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_defaults(void **state)
{
    char err[CFG_ERR_LEN];
    struct cfg *c = cfg_load(NULL, err);
    assert_non_null(c);
    assert_null(c->path);
    assert_string_equal(c->server.listen, "localhost:8443");
    assert_string_equal(c->server.data_dir, "./attesta-data");
    assert_int_equal(c->server.workers, 0);
    assert_null(c->server.tls_cert);
    assert_null(c->server.tls_key);
    assert_null(c->server.base_url);
    assert_int_equal(c->server.max_body, 65536);
    assert_int_equal(c->server.max_headers, 16384);
    assert_int_equal(c->server.read_timeout, 10);
    assert_int_equal(c->server.idle_timeout, 60);
    assert_int_equal(c->server.shutdown_timeout, 20);
    assert_int_equal(c->events.shutdown_drain, 5);
    assert_int_equal(c->server.max_conns_per_ip, 256);
    assert_null(c->server.access_log);
    assert_string_equal(c->server.log_level, "info");
    assert_int_equal(c->storage.driver, CFG_STORE_SQLITE);
    assert_null(c->storage.path);
    assert_null(c->storage.dsn_env);
    assert_null(c->acme.resolver);
    assert_int_equal(c->acme.http01_port, 80);
    assert_int_equal(c->acme.tls_alpn01_port, 443);
    assert_int_equal(c->acme.order_lifetime, 7 * 86400);
    assert_int_equal(c->acme.authz_lifetime, 7 * 86400);
    assert_true(c->acme.authz_reuse);
    assert_int_equal(c->acme.validation_attempts, 3);
    assert_int_equal(c->acme.validation_timeout, 10);
    assert_int_equal(c->acme.validation_retry_delay, 2);
    assert_int_equal(c->acme.challenge_wait, 250);
    assert_int_equal(c->acme.max_identifiers, 100);
    assert_int_equal(c->acme.orders_per_hour, 300);
    assert_int_equal(c->acme.accounts_per_ip_hour, 10000);
    assert_null(c->acme.terms_of_service);
    assert_false(c->acme.terms_reagree);
    assert_null(c->acme.terms_instance);
    assert_null(c->acme.website);
    assert_int_equal(c->attestation.napple_roots, 0);
    assert_true(c->attestation.require_nonce);
    assert_true(c->attestation.accept_serial);
    assert_true(c->attestation.accept_udid);
    assert_int_equal(c->ncas, 1);
    assert_string_equal(c->cas[0].name, "default");
    assert_null(c->cas[0].cert);
    assert_null(c->cas[0].key);
    assert_null(c->cas[0].chain);

    assert_int_equal(c->npolicies, 2);
    const struct cfg_policy *p = cfg_policy_find(c, "default");
    assert_non_null(p);
    assert_int_equal(p->identifiers, CFG_ID_DNS | CFG_ID_IP);
    assert_int_equal(p->challenges, CFG_CH_HTTP01 | CFG_CH_DNS01 | CFG_CH_TLSALPN01);
    assert_false(p->eab_required);
    assert_string_equal(p->ca, "default");
    assert_int_equal(p->cert_validity, 90 * 86400);
    assert_int_equal(p->key_types, 0x1fu); /* P-256..RSA-4096, not Ed25519 */
    p = cfg_policy_find(c, "devices");
    assert_non_null(p);
    assert_int_equal(p->identifiers, CFG_ID_PERMANENT | CFG_ID_HARDWARE);
    assert_int_equal(p->challenges, CFG_CH_DEVICE_ATTEST01);
    assert_string_equal(p->ca, "default");
    assert_int_equal(p->cert_validity, 90 * 86400);
    assert_non_null(cfg_ca_find(c, "default"));
    assert_null(cfg_ca_find(c, "nope"));
    assert_null(cfg_policy_find(c, "nope"));
    assert_null(cfg_policy_find(c, NULL));
    cfg_free(c);
    cfg_free(NULL);
}

static void test_full_file(void **state)
{
    char err[CFG_ERR_LEN], dir[4096], want[8192];
    struct cfg *c = cfg_load(FIXTURES "/full.yaml", err);
    if (c == NULL)
        fail_msg("%s", err);
    assert_non_null(realpath(FIXTURES, dir));
    assert_string_equal(c->path, FIXTURES "/full.yaml");
    assert_string_equal(c->server.listen, "0.0.0.0:9443");
    snprintf(want, sizeof(want), "%s/data", dir);
    assert_string_equal(c->server.data_dir, want);
    assert_int_equal(c->server.workers, 4);
    snprintf(want, sizeof(want), "%s/tls/server.pem", dir);
    assert_string_equal(c->server.tls_cert, want);
    assert_string_equal(c->server.tls_key, "/etc/attesta/server.key");
    assert_string_equal(c->server.base_url, "https://ca.example.com");
    assert_int_equal(c->server.max_body, 128 * 1024);
    assert_int_equal(c->server.max_headers, 32768);
    assert_int_equal(c->server.max_conns_per_ip, 64);
    assert_int_equal(c->server.read_timeout, 15);
    assert_int_equal(c->server.idle_timeout, 120);
    assert_int_equal(c->server.shutdown_timeout, 30);
    snprintf(want, sizeof(want), "%s/logs/access.log", dir);
    assert_string_equal(c->server.access_log, want);
    assert_string_equal(c->server.log_level, "debug");
    assert_int_equal(c->storage.driver, CFG_STORE_POSTGRES);
    assert_string_equal(c->storage.dsn_env, "ATTESTA_PG_DSN");
    assert_string_equal(c->acme.resolver, "[::1]:53");
    assert_int_equal(c->acme.http01_port, 5002);
    assert_int_equal(c->acme.tls_alpn01_port, 5001);
    assert_int_equal(c->acme.validation_attempts, 5);
    assert_int_equal(c->acme.validation_timeout, 20);
    assert_int_equal(c->acme.validation_retry_delay, 5);
    assert_int_equal(c->acme.challenge_wait, 1000);
    assert_int_equal(c->acme.order_lifetime, 86400);
    assert_int_equal(c->acme.authz_lifetime, 12 * 3600);
    assert_false(c->acme.authz_reuse);
    assert_int_equal(c->acme.max_identifiers, 10);
    assert_int_equal(c->acme.orders_per_hour, 0);
    assert_int_equal(c->acme.accounts_per_ip_hour, 50);
    assert_string_equal(c->acme.terms_of_service, "https://ca.example.com/terms");
    assert_string_equal(c->acme.website, "https://example.com");
    assert_int_equal(c->attestation.napple_roots, 2);
    snprintf(want, sizeof(want), "%s/roots/apple-root.pem", dir);
    assert_string_equal(c->attestation.apple_roots[0], want);
    assert_string_equal(c->attestation.apple_roots[1], "/usr/share/attesta/extra-root.pem");
    assert_false(c->attestation.require_nonce);
    assert_true(c->attestation.accept_serial);
    assert_false(c->attestation.accept_udid);

    assert_int_equal(c->ncas, 2);
    const struct cfg_ca *ca = cfg_ca_find(c, "corp-devices");
    assert_non_null(ca);
    snprintf(want, sizeof(want), "%s/ca/devices.key", dir);
    assert_string_equal(ca->key, want);
    snprintf(want, sizeof(want), "%s/ca/root.pem", dir);
    assert_string_equal(ca->chain, want);
    ca = cfg_ca_find(c, "web");
    assert_non_null(ca);
    assert_null(ca->cert);

    assert_int_equal(c->npolicies, 2);
    const struct cfg_policy *p = cfg_policy_find(c, "macs");
    assert_non_null(p);
    assert_int_equal(p->identifiers, CFG_ID_PERMANENT);
    assert_int_equal(p->challenges, CFG_CH_DEVICE_ATTEST01);
    assert_string_equal(p->ca, "corp-devices");
    assert_int_equal(p->cert_validity, 365 * 86400);
    assert_int_equal(p->key_types, (1u << 0) | (1u << 1));
    assert_false(p->eab_required);
    p = cfg_policy_find(c, "servers");
    assert_non_null(p);
    assert_int_equal(p->identifiers, CFG_ID_DNS | CFG_ID_IP);
    assert_int_equal(p->challenges, CFG_CH_HTTP01 | CFG_CH_TLSALPN01);
    assert_true(p->eab_required);
    assert_string_equal(p->ca, "web");
    assert_int_equal(p->cert_validity, 90 * 86400);
    assert_int_equal(p->key_types, (1u << 5) | (1u << 3));
    cfg_free(c);
}

/* Valid files whose single interesting value is checked by a callback. */
static void test_valid_variants(void **state)
{
    static const char *const texts[] = {
        "",                                                        /* empty file: defaults */
        "# only a comment\n",
        "server:\n  workers: auto\n",
        "server:\n  workers: 1024\n  listen: \"[::]:443\"\n",
        "server: {limits: {max_body: 1m}}\n",
        "attestation: {apple: {roots: [builtin]}}\n",
        ("cas: {only: {}}\nenrollment_policies: {p: {identifiers: [hardware-module], "
         "challenges: [device-attest-01]}}\n"),
        "storage: {driver: sqlite, path: db/attesta.db}\n",
        "server:\n  base_url:\n  access_log: ~\n",
        "acme: {challenges: {answer_wait: 0}}\n",
        "acme: {challenges: {answer_wait: 1500}}\n",
        "acme: {challenges: {answer_wait: 40ms}}\n",
        "acme: {challenges: {answer_wait: 10s}}\n",
        "events: {shutdown_drain: 0}\n", /* rows 13.. */
        "events: {shutdown_drain: 2m}\n",
        ("acme:\n  meta:\n    terms_of_service: https://ca.test/tos/2\n" /* rows 15.. */
         "    terms_of_service_reagree: true\n"
         "    terms_of_service_instance: https://ca.test/agree?from=acme\n"),
        "acme: {meta: {terms_of_service: https://ca.test/tos, terms_of_service_reagree: false}}\n",
    };
    static const int64_t drains[] = {0, 120};
    static const int waits[] = {0, 1500, 40, 10000}; /* rows 9.. */
    char err[CFG_ERR_LEN];
    for (size_t i = 0; i < nitems(texts); i++) {
        write_file("config.yaml", texts[i], strlen(texts[i]));
        struct cfg *c = cfg_load("config.yaml", err);
        if (c == NULL)
            fail_msg("row %zu: %s", i, err);
        if (i == 2)
            assert_int_equal(c->server.workers, 0);
        if (i == 3)
            assert_int_equal(c->server.workers, 1024);
        if (i == 4)
            assert_int_equal(c->server.max_body, 1024 * 1024);
        if (i == 5)
            assert_int_equal(c->attestation.napple_roots, 0);
        if (i == 6)
            assert_string_equal(cfg_policy_find(c, "p")->ca, "only");
        if (i == 8)
            assert_null(c->server.base_url);
        if (i >= 9 && i < 13)
            assert_int_equal(c->acme.challenge_wait, waits[i - 9]);
        if (i >= 13 && i < 15)
            assert_int_equal(c->events.shutdown_drain, drains[i - 13]);
        if (i == 15) {
            assert_string_equal(c->acme.terms_of_service, "https://ca.test/tos/2");
            assert_true(c->acme.terms_reagree);
            assert_string_equal(c->acme.terms_instance, "https://ca.test/agree?from=acme");
        }
        if (i == 16) {
            assert_false(c->acme.terms_reagree);
            assert_null(c->acme.terms_instance);
        }
        cfg_free(c);
    }
}

struct bad_row {
    const char *name;
    const char *text;
    const char *want; /* expected prefix of the error */
};

#define A50 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static const struct bad_row bad_rows[] = {
    {"unknown section", "serve:\n  listen: x\n", "config.yaml:1: serve: unknown key"},
    {"unknown key", "server:\n  listen: \"a:1\"\n  wrkers: 2\n",
     "config.yaml:3: server.wrkers: unknown key"},
    {"drain too long", "events:\n  shutdown_drain: 2h\n",
     "config.yaml:2: events.shutdown_drain: expected a duration from 0s to 1h"},
    {"unknown nested key", "acme:\n  challenges:\n    attempts: 2\n    tries: 3\n",
     "config.yaml:4: acme.challenges.tries: unknown key"},
    {"int wrong type", "server:\n  workers: many\n",
     "config.yaml:2: server.workers: expected an integer from 0 to 1024"},
    {"int out of range", "server:\n\n  workers: 2000\n",
     "config.yaml:3: server.workers: expected an integer from 0 to 1024"},
    {"int negative", "server: {workers: -1}\n",
     "config.yaml:1: server.workers: expected an integer from 0 to 1024"},
    {"int fraction", "acme:\n  challenges: {attempts: 1.5}\n",
     "config.yaml:2: acme.challenges.attempts: expected an integer from 1 to 10"},
    {"bool yes", "attestation:\n  apple:\n    require_nonce: yes\n",
     "config.yaml:3: attestation.apple.require_nonce: expected true or false"},
    {"account limit negative", "acme:\n  limits:\n    accounts_per_ip_hour: -1\n",
     "config.yaml:3: acme.limits.accounts_per_ip_hour: expected an integer from 0 to 1000000"},
    {"bool as a word", "acme:\n  authz_reuse: never\n",
     "config.yaml:2: acme.authz_reuse: expected true or false"},
    {"size suffix", "server:\n  limits:\n    max_body: 10x\n",
     "config.yaml:3: server.limits.max_body: expected a size from 1024 to 67108864"},
    {"size too big", "server:\n  limits:\n    max_headers: 2m\n",
     "config.yaml:3: server.limits.max_headers: expected a size from 1024 to 1048576"},
    {"duration range", "acme:\n  order_lifetime: 400d\n",
     "config.yaml:2: acme.order_lifetime: expected a duration from 1m to 365d"},
    {"duration garbage", "server:\n  timeouts:\n    read: soon\n",
     "config.yaml:3: server.timeouts.read: expected a duration from 1s to 1h"},
    {"ms duration range", "acme:\n  challenges:\n    answer_wait: 11s\n",
     "config.yaml:3: acme.challenges.answer_wait: expected a duration from 0ms to 10s"},
    {"ms duration negative", "acme:\n  challenges:\n    answer_wait: -5\n",
     "config.yaml:3: acme.challenges.answer_wait: expected a duration from 0ms to 10s"},
    {"ms duration unit", "acme:\n  challenges:\n    answer_wait: 5us\n",
     "config.yaml:3: acme.challenges.answer_wait: expected a duration from 0ms to 10s"},
    {"ms duration fraction", "acme:\n  challenges:\n    answer_wait: 0.5s\n",
     "config.yaml:3: acme.challenges.answer_wait: expected a duration from 0ms to 10s"},
    {"enum", "storage:\n  driver: mysql\n",
     "config.yaml:2: storage.driver: expected one of sqlite|postgres"},
    {"enum log level", "server: {log_level: trace}\n",
     "config.yaml:1: server.log_level: expected one of error|warn|info|debug"},
    {"duplicate key", "server:\n  listen: \"a:1\"\n  listen: \"b:2\"\n",
     "config.yaml:3: server.listen: duplicate key"},
    {"duplicate policy", "enrollment_policies:\n  p: {}\n  p: {}\n",
     "config.yaml:3: enrollment_policies.p: duplicate key"},
    {"anchor", "server:\n  listen: &l \"a:1\"\n",
     "config.yaml:2: server.listen: anchors (&) are not supported"},
    {"alias", "server:\n  listen: *l\n",
     "config.yaml:2: server.listen: aliases (*) are not supported"},
    {"merge key", "server:\n  <<: {workers: 2}\n",
     "config.yaml:2: server: merge keys (<<) are not supported"},
    {"tag", "server:\n  workers: !!int 3\n",
     "config.yaml:2: server.workers: tags (!) are not supported"},
    {"unknown CA", "cas:\n  a: {}\nenrollment_policies:\n  p:\n    identifiers: [dns]\n"
                   "    challenges: [http-01]\n    ca: b\n",
     "config.yaml:7: enrollment_policies.p.ca: unknown CA \"b\""},
    {"bad policy name", "enrollment_policies:\n  Bad_Name:\n    identifiers: [dns]\n",
     "config.yaml:2: enrollment_policies.Bad_Name: name must match [a-z0-9][a-z0-9-]{0,31}"},
    {"policy name too long", "enrollment_policies:\n  a23456789012345678901234567890123: {}\n",
     "config.yaml:2: enrollment_policies.a23456789012345678901234567890123: name must match"},
    {"bad CA name", "cas:\n  -corp: {}\n", "config.yaml:2: cas.-corp: name must match"},
    {"listen no port", "server:\n  listen: localhost\n",
     "config.yaml:2: server.listen: expected host:port"},
    {"listen bad port", "server:\n  listen: \"localhost:70000\"\n",
     "config.yaml:2: server.listen: expected host:port"},
    {"listen empty", "server:\n  listen: \"\"\n",
     "config.yaml:2: server.listen: expected a non-empty string"},
    {"device-attest with dns",
     "enrollment_policies:\n  p:\n    identifiers: [dns, permanent-identifier]\n"
     "    challenges: [device-attest-01]\n",
     "config.yaml:4: enrollment_policies.p.challenges: device-attest-01 cannot validate "
     "identifiers dns or ip"},
    {"permanent-identifier without device-attest",
     "enrollment_policies:\n  p:\n    identifiers: [permanent-identifier]\n"
     "    challenges: [http-01]\n",
     "config.yaml:3: enrollment_policies.p.identifiers: permanent-identifier and "
     "hardware-module need challenge device-attest-01"},
    {"device-attest mixed", "enrollment_policies:\n  p:\n    identifiers: [hardware-module]\n"
                            "    challenges: [device-attest-01, http-01]\n",
     "config.yaml:4: enrollment_policies.p.challenges: device-attest-01 cannot be combined"},
    {"null policy", "enrollment_policies:\n  p:\n",
     "config.yaml:2: enrollment_policies.p: missing required key identifiers"},
    {"missing challenges", "enrollment_policies:\n  p:\n    identifiers: [dns]\n",
     "config.yaml:3: enrollment_policies.p: missing required key challenges"},
    {"bad identifier", "enrollment_policies:\n  p:\n    identifiers: [dns, email]\n",
     "config.yaml:3: enrollment_policies.p.identifiers[1]: expected one of "
     "dns|ip|permanent-identifier|hardware-module"},
    {"bad key type", "enrollment_policies:\n  p:\n    identifiers: [dns]\n"
                     "    challenges: [http-01]\n    key_types: [P-521]\n",
     "config.yaml:5: enrollment_policies.p.key_types[0]: expected one of "
     "P-256|P-384|RSA-2048|RSA-3072|RSA-4096|Ed25519"},
    {"duplicate list value", "enrollment_policies:\n  p:\n    identifiers: [dns]\n"
                             "    challenges: [http-01,\n      http-01]\n",
     "config.yaml:5: enrollment_policies.p.challenges[1]: duplicate value http-01"},
    {"empty list", "enrollment_policies:\n  p:\n    identifiers: []\n",
     "config.yaml:3: enrollment_policies.p.identifiers: expected at least 1 item"},
    {"list as scalar", "enrollment_policies:\n  p:\n    challenges: http-01\n",
     "config.yaml:3: enrollment_policies.p.challenges: expected a list of "
     "http-01|dns-01|tls-alpn-01|device-attest-01"},
    {"bad attested identifier", "attestation:\n  apple:\n    identifier: [imei]\n",
     "config.yaml:3: attestation.apple.identifier[0]: expected one of serial|udid"},
    {"builtin mixed", "attestation:\n  apple:\n    roots: [a.pem, builtin]\n",
     "config.yaml:3: attestation.apple.roots: builtin cannot be combined with other roots"},
    {"section not a map", "server: 5\n", "config.yaml:1: server: expected a map"},
    {"top-level list", "- server\n", "config.yaml:1: expected a map of sections at the top level"},
    {"postgres without dsn", "storage:\n  driver: postgres\n",
     "config.yaml:2: storage.dsn_env: required with driver postgres"},
    {"bad env name", "storage:\n  driver: postgres\n  dsn_env: PG-DSN\n",
     "config.yaml:3: storage.dsn_env: expected an environment variable name"},
    {"tls half", "server:\n  tls:\n    cert: a.pem\n",
     "config.yaml:2: server.tls: cert and key must be set together"},
    {"ca half", "cas:\n  a:\n    key: a.key\n", "config.yaml:3: cas.a: cert and key must be set"},
    {"base_url scheme", "server: {base_url: ftp://x}\n",
     "config.yaml:1: server.base_url: expected an http:// or https:// URL"},
    {"reagree without terms", "acme:\n  meta:\n    website: https://x.test\n"
                              "    terms_of_service_reagree: true\n",
     "config.yaml:4: acme.meta.terms_of_service_reagree: needs terms_of_service"},
    {"instance without terms", "acme:\n  meta:\n    terms_of_service_instance: https://x.test\n",
     "config.yaml:3: acme.meta.terms_of_service_instance: needs terms_of_service"},
    {"reagree not a bool", "acme:\n  meta:\n    terms_of_service_reagree: yes\n",
     "config.yaml:3: acme.meta.terms_of_service_reagree: expected true or false"},
    {"instance scheme", "acme:\n  meta:\n    terms_of_service: https://x.test/tos\n"
                        "    terms_of_service_instance: mailto:tos@x.test\n",
     "config.yaml:4: acme.meta.terms_of_service_instance: expected an http:// or https:// URL"},
    {"terms with >", "acme:\n  meta:\n    terms_of_service: \"https://x.test/a>b\"\n",
     "config.yaml:3: acme.meta.terms_of_service: expected a URL without <, > or \""},
    {"terms too long", "acme:\n  meta:\n    terms_of_service: https://x.test/" A50 A50 A50 A50 A50
                       A50 A50 A50 A50 A50 "\n",
     "config.yaml:3: acme.meta.terms_of_service: expected a URL of at most 500 bytes"},
    {"several CAs, no policies", "cas:\n  a: {}\n  b: {}\n",
     "config.yaml: enrollment_policies.default: ca is required when more than one CA"},
    {"empty policies", "enrollment_policies: {}\n",
     "config.yaml:1: enrollment_policies: expected at least one entry"},
    {"two documents", "server: {}\n---\nacme: {}\n",
     "config.yaml:2: only one YAML document is allowed"},
    {"syntax error", "server:\n  listen: [a\n", "config.yaml:3: invalid YAML: "},
    {"non-UTF-8", "server:\n  listen: \"\xff\xfe:1\"\n",
     "config.yaml:2: invalid YAML: invalid leading UTF-8 octet"},
    {"complex key", "server:\n  ? [a]\n  : 1\n",
     "config.yaml:2: server: map keys must be plain strings"},
    {"control char in key", "server:\n  \"a\\x01b\": 1\n",
     "config.yaml:2: server.a\\x01b: unknown key"},
};

static void test_invalid_files(void **state)
{
    char err[CFG_ERR_LEN];
    for (size_t i = 0; i < nitems(bad_rows); i++) {
        const struct bad_row *r = &bad_rows[i];
        write_file("config.yaml", r->text, strlen(r->text));
        memset(err, 0, sizeof(err));
        struct cfg *c = cfg_load("config.yaml", err);
        if (c != NULL) {
            cfg_free(c);
            fail_msg("%s: loaded, expected \"%s\"", r->name, r->want);
        }
        if (strncmp(err, r->want, strlen(r->want)) != 0)
            fail_msg("%s:\n  got  \"%s\"\n  want \"%s\"", r->name, err, r->want);
    }
}

/* Nesting deeper than 32 levels is refused before the schema sees it. */
static void test_deep_nesting(void **state)
{
    char err[CFG_ERR_LEN], text[256];
    size_t n = 0;
    n += (size_t)snprintf(text, sizeof(text), "server:\n  x: ");
    for (int i = 0; i < 40; i++)
        text[n++] = '[';
    for (int i = 0; i < 40; i++)
        text[n++] = ']';
    text[n++] = '\n';
    write_file("config.yaml", text, n);
    assert_null(cfg_load("config.yaml", err));
    assert_non_null(strstr(err, "nesting deeper than 32 levels"));
    assert_int_equal(strncmp(err, "config.yaml:2: server.x[0][0]", 29), 0);

    /* 31 levels below the root map are still fine for the reader. */
    struct cfg_node *root = NULL;
    n = 0;
    for (int i = 0; i < 31; i++)
        text[n++] = '[';
    for (int i = 0; i < 31; i++)
        text[n++] = ']';
    assert_int_equal(cfg_yaml_parse("t", text, n, &root, err), 0);
    cfg_node_free(root);
}

static void test_size_limit(void **state)
{
    char err[CFG_ERR_LEN];
    size_t len = CFG_MAX_FILE + 1;
    char *text = malloc(len);
    memset(text, '#', len);
    text[len - 1] = '\n';
    write_file("config.yaml", text, len);
    assert_null(cfg_load("config.yaml", err));
    assert_string_equal(err, "config.yaml: larger than 1048576 bytes");
    /* Exactly at the limit is accepted (a comment-only file is all defaults). */
    write_file("config.yaml", text + 1, len - 1);
    struct cfg *c = cfg_load("config.yaml", err);
    if (c == NULL)
        fail_msg("%s", err);
    cfg_free(c);
    free(text);
    assert_null(cfg_load("missing.yaml", err));
    assert_int_equal(strncmp(err, "missing.yaml: cannot open: ", 27), 0);
}

static void test_relative_paths(void **state)
{
    struct scratch *s = *state;
    char err[CFG_ERR_LEN], want[8192], dir[4096];
    static const char text[] = "server:\n  data_dir: ./state\n  tls: {cert: t.pem, key: ../k.pem}\n"
                               "storage: {path: db.sqlite}\n"
                               "cas: {a: {cert: /abs/a.pem, key: keys/a.key}}\n";
    assert_int_equal(mkdir("sub", 0700), 0);
    write_file("sub/config.yaml", text, strlen(text));
    struct cfg *c = cfg_load("sub/config.yaml", err);
    if (c == NULL)
        fail_msg("%s", err);
    assert_non_null(realpath(s->dir, dir));
    snprintf(want, sizeof(want), "%s/sub/state", dir);
    assert_string_equal(c->server.data_dir, want);
    snprintf(want, sizeof(want), "%s/sub/t.pem", dir);
    assert_string_equal(c->server.tls_cert, want);
    snprintf(want, sizeof(want), "%s/sub/../k.pem", dir);
    assert_string_equal(c->server.tls_key, want);
    snprintf(want, sizeof(want), "%s/sub/db.sqlite", dir);
    assert_string_equal(c->storage.path, want);
    assert_string_equal(c->cas[0].cert, "/abs/a.pem");
    snprintf(want, sizeof(want), "%s/sub/keys/a.key", dir);
    assert_string_equal(c->cas[0].key, want);
    cfg_free(c);

    /* The default data_dir follows the file too; without a file it stays CWD-relative. */
    write_file("sub/config.yaml", "server: {}\n", 11);
    c = cfg_load("sub/config.yaml", err);
    assert_non_null(c);
    snprintf(want, sizeof(want), "%s/sub/attesta-data", dir);
    assert_string_equal(c->server.data_dir, want);
    cfg_free(c);
}

/* Every key in the schema tables has a row in docs/configuration.md. */
static void doc_keys(const char *doc, const struct cfg_key *keys, const char *prefix)
{
    char name[CFG_PATH_LEN + 8], path[CFG_PATH_LEN];
    for (const struct cfg_key *k = keys; k->name != NULL; k++) {
        snprintf(path, sizeof(path), "%s.%s", prefix, k->name);
        if (k->type == CFG_T_MAP) {
            doc_keys(doc, k->sub, path);
            continue;
        }
        snprintf(name, sizeof(name), "| `%s` |", path);
        if (strstr(doc, name) == NULL)
            fail_msg("docs/configuration.md has no row for %s", path);
    }
}

static void test_docs_cover_keys(void **state)
{
    FILE *f = fopen(ATTESTA_SOURCE_DIR "/docs/configuration.md", "rb");
    assert_non_null(f);
    char *doc = calloc(1, 256 * 1024);
    size_t n = fread(doc, 1, 256 * 1024 - 1, f);
    fclose(f);
    assert_true(n > 0);
    for (size_t i = 0; i < cfg_nsections; i++) {
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "%s%s", cfg_sections[i]->name,
                 cfg_sections[i]->keyed ? ".NAME" : "");
        doc_keys(doc, cfg_sections[i]->keys, prefix);
    }
    free(doc);
}

int run_yaml_tests(void);

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_docs_cover_keys),
        cmocka_unit_test_setup_teardown(test_valid_variants, scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_invalid_files, scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_deep_nesting, scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_size_limit, scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_relative_paths, scratch_setup, scratch_teardown),
    };
    int failed = run_yaml_tests();
    return failed + cmocka_run_group_tests(tests, NULL, NULL);
}
