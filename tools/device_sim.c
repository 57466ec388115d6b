/*
 * attesta-device-sim: behaves like an Apple device enrolling through a
 * com.apple.security.acme payload (ES256 account key in flattened JSON,
 * permanent-identifier or hardware-module order, device-attest-01 answered
 * with an attestation from an Apple-like test CA, CSR from the attested
 * key), with flags that inject each failure the server must catch. The flow
 * itself lives in device_flow.c so the benchmark runs exactly the same steps.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/device_flow.h"

struct sim {
    const char *directory, *trust, *apple_ca, *serial, *udid, *identifier, *id_type, *out;
    const char *hold;
    const char *os_version;
    enum pki_key_type device_key_type;
    enum dflow_fault fault;
    int timeout_s;
    struct acmec *client;
    EVP_PKEY *account_key, *device_key;
    char err[ERR_LEN];
};

static int fail(const char *step, const char *err)
{
    fprintf(stderr, "attesta-device-sim: %s: %s\n", step, err);
    return DFLOW_ERROR;
}

static int write_out(const char *path, const char *pem)
{
    FILE *fp = fopen(path, "we");
    int rc = -1;
    if (fp == NULL)
        return -1;
    if (fputs(pem, fp) >= 0)
        rc = 0;
    if (fclose(fp) != 0)
        rc = -1;
    return rc;
}

static int enroll(struct sim *s)
{
    struct dflow f = {0};
    s->client = acmec_new(s->directory, s->trust, s->err);
    s->account_key = pki_key_generate(PKI_KEY_P256, s->err);
    s->device_key = pki_key_generate(s->device_key_type, s->err);
    if (s->client == NULL || s->account_key == NULL || s->device_key == NULL)
        return fail("setup", s->err);
    acmec_set_key(s->client, s->account_key, PKI_JWS_ES256);
    if (acmec_new_account(s->client, s->err) != 0)
        return fail("account", s->err);
    f.client = s->client;
    f.apple_ca_dir = s->apple_ca;
    f.serial = s->serial;
    f.udid = s->udid;
    f.identifier = s->identifier;
    f.identifier_type = s->id_type;
    f.os_version = s->os_version;
    f.device_key = s->device_key;
    f.device_key_type = s->device_key_type;
    f.fault = s->fault;
    f.poll_timeout_ms = s->timeout_s * 1000;
    f.hold_file = s->hold;
    int rc = dflow_enroll(&f);
    if (rc == DFLOW_ERROR) {
        fail(f.step, f.err);
    } else if (rc == DFLOW_ISSUED && s->out != NULL && write_out(s->out, f.cert_pem) != 0) {
        snprintf(s->err, ERR_LEN, "cannot write %s", s->out);
        rc = fail("output", s->err);
    }
    dflow_clear(&f);
    return rc;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: attesta-device-sim ca-init --apple-ca DIR\n"
            "       attesta-device-sim enroll --directory URL --trust PEM --apple-ca DIR\n"
            "              --serial SERIAL [--udid UDID] [--identifier serial|udid|VALUE]\n"
            "              [--identifier-type permanent-identifier|hardware-module]\n"
            "              (hardware-module wants --identifier SERIAL/TYPE-OID)\n"
            "              [--key p256|p384] [--os-version V] [--fault FAULT] [--out FILE]\n"
            "              [--timeout SECONDS]  (wait for a processing challenge; default 30)\n"
            "              [--hold FILE]  (answer the challenge once FILE exists)\n"
            "faults:");
    for (int i = 1; i < DFLOW_F__MAX; i++)
        fprintf(stderr, " %s", dflow_fault_name((enum dflow_fault)i));
    fprintf(stderr, "\nexit: 0 issued, 1 refused by the server, 2 error\n");
}

/* 1 .. 3600 seconds. */
static int parse_timeout(const char *text, int *out)
{
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || v < 1 || v > 3600)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_args(struct sim *s, int argc, char **argv)
{
    static const struct option opts[] = {
        {"directory", required_argument, NULL, 'd'}, {"trust", required_argument, NULL, 't'},
        {"apple-ca", required_argument, NULL, 'a'},  {"serial", required_argument, NULL, 's'},
        {"udid", required_argument, NULL, 'u'},      {"identifier", required_argument, NULL, 'i'},
        {"key", required_argument, NULL, 'k'},       {"fault", required_argument, NULL, 'f'},
        {"out", required_argument, NULL, 'o'},       {"os-version", required_argument, NULL, 'v'},
        {"timeout", required_argument, NULL, 'T'},
        {"identifier-type", required_argument, NULL, 'I'},
        {"hold", required_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': s->directory = optarg; break;
        case 't': s->trust = optarg; break;
        case 'a': s->apple_ca = optarg; break;
        case 's': s->serial = optarg; break;
        case 'u': s->udid = optarg; break;
        case 'i': s->identifier = optarg; break;
        case 'I':
            if (strcmp(optarg, "permanent-identifier") != 0 &&
                strcmp(optarg, "hardware-module") != 0)
                return -1;
            s->id_type = optarg;
            break;
        case 'o': s->out = optarg; break;
        case 'H': s->hold = optarg; break;
        case 'v': s->os_version = optarg; break;
        case 'T':
            if (parse_timeout(optarg, &s->timeout_s) != 0)
                return -1;
            break;
        case 'k':
            if (strcmp(optarg, "p256") == 0)
                s->device_key_type = PKI_KEY_P256;
            else if (strcmp(optarg, "p384") == 0)
                s->device_key_type = PKI_KEY_P384;
            else
                return -1;
            break;
        case 'f':
            if (dflow_fault_parse(optarg, &s->fault) != 0)
                return -1;
            break;
        default: return -1;
        }
    }
    if (s->identifier == NULL || strcmp(s->identifier, "serial") == 0)
        s->identifier = s->serial;
    else if (strcmp(s->identifier, "udid") == 0)
        s->identifier = s->udid;
    return s->apple_ca != NULL ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct sim s = {.device_key_type = PKI_KEY_P384, .os_version = "26.1", .timeout_s = 30};
    int rc = DFLOW_ERROR;
    if (argc < 2) {
        usage();
        return DFLOW_ERROR;
    }
    const char *cmd = argv[1];
    if (parse_args(&s, argc - 1, argv + 1) != 0) {
        usage();
        return DFLOW_ERROR;
    }
    if (strcmp(cmd, "ca-init") == 0) {
        rc = fa_ca_init_dir(s.apple_ca, s.err) == 0 ? 0 : fail("ca-init", s.err);
        if (rc == 0)
            printf("%s/apple-root.pem\n", s.apple_ca);
    } else if (strcmp(cmd, "enroll") == 0 && s.directory && s.serial && s.identifier) {
        rc = enroll(&s);
    } else {
        usage();
    }
    acmec_free(s.client);
    EVP_PKEY_free(s.account_key);
    EVP_PKEY_free(s.device_key);
    return rc;
}
