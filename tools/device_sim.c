/*
 * attesta-device-sim: behaves like an Apple device enrolling through a
 * com.apple.security.acme payload (ES256 account key in flattened JSON,
 * permanent-identifier order, device-attest-01 answered with an attestation
 * from an Apple-like test CA, CSR from the attested key), with flags that
 * inject each failure the server must catch.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tools/acmec.h"
#include "tools/fake_apple.h"

enum sim_fault {
    F_NONE,
    F_WRONG_NONCE,
    F_NO_NONCE,
    F_OTHER_SERIAL,
    F_UNTRUSTED_ROOT,
    F_EXPIRED_LEAF,
    F_NOT_YET_VALID,
    F_CSR_OTHER_KEY,
    F_TRUNCATED_CBOR,
    F_GARBAGE_CBOR,
    F_SHORT_SIG,
    F_ERROR_MEMBER,
    F__MAX
};
static const char *const fault_names[] = {
    "none",         "wrong-nonce",    "no-nonce",     "other-serial",
    "untrusted-root", "expired-leaf", "not-yet-valid", "csr-other-key",
    "truncated-cbor", "garbage-cbor", "short-sig",     "error-member",
};
_Static_assert(nitems(fault_names) == F__MAX, "fault_names out of sync");

struct sim {
    const char *directory, *trust, *apple_ca, *serial, *udid, *identifier, *out;
    const char *os_version;
    enum pki_key_type device_key_type;
    enum sim_fault fault;
    struct acmec *client;
    EVP_PKEY *account_key, *device_key;
    char err[ERR_LEN];
};

static unsigned short_sigs_sent;

/* Apple's older clients dropped a leading zero byte of R or S; do the same. */
static void short_sig_hook(unsigned char *sig, size_t *len)
{
    if (*len != 64)
        return;
    if (sig[0] == 0) {
        memmove(sig, sig + 1, 63);
        *len = 63;
        short_sigs_sent++;
    } else if (sig[32] == 0) {
        memmove(sig + 32, sig + 33, 31);
        *len = 63;
        short_sigs_sent++;
    }
}

static int refused(const char *step, const struct acmec_resp *r)
{
    printf("result: refused step=%s status=%ld type=%s detail=%s\n", step, r->status,
           acmec_problem_type(r), acmec_problem_detail(r));
    return 1;
}

static int fail(struct sim *s, const char *step)
{
    fprintf(stderr, "attesta-device-sim: %s: %s\n", step, s->err);
    return 2;
}

static const char *json_str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Sends POST-as-GETs until three shortened signatures have been accepted. */
static int exercise_short_sigs(struct sim *s)
{
    acmec_set_sig_hook(s->client, short_sig_hook);
    for (int i = 0; i < 5000 && short_sigs_sent < 3; i++) {
        struct acmec_resp r;
        unsigned before = short_sigs_sent;
        if (acmec_post(s->client, acmec_kid(s->client), NULL, &r, s->err) != 0)
            return fail(s, "short-sig account fetch");
        if (r.status != 200 && short_sigs_sent > before) {
            int rc = refused("short-signature", &r);
            acmec_resp_clear(&r);
            return rc;
        }
        acmec_resp_clear(&r);
    }
    return short_sigs_sent >= 3 ? 0 : fail(s, "no short signature produced");
}

/* The attObj this device sends for token, damaged as the fault asks. */
static int attobj_make(struct sim *s, const char *token, unsigned char **cbor, size_t *len)
{
    struct fa_ca ca = {0};
    X509 *leaf = NULL;
    unsigned char nonce[32];
    char other_serial[80];
    int rc = -1;
    int64_t now = clk_now();
    struct fa_leaf_opts o = {.serial = s->serial, .udid = s->udid, .os_version = s->os_version,
                             .sepos_version = s->os_version, .nonce = nonce,
                             .nonce_len = sizeof(nonce), .not_before = now - 300,
                             .not_after = now + 90LL * 86400};
    pki_sha256(token, strlen(token), nonce);
    if (s->fault == F_WRONG_NONCE)
        nonce[0] ^= 0x01;
    if (s->fault == F_NO_NONCE)
        o.nonce_len = 0;
    if (s->fault == F_OTHER_SERIAL) {
        snprintf(other_serial, sizeof(other_serial), "%sX", s->serial);
        o.serial = other_serial;
    }
    if (s->fault == F_EXPIRED_LEAF) {
        o.not_before = now - 100LL * 86400;
        o.not_after = now - 10LL * 86400;
    }
    if (s->fault == F_NOT_YET_VALID) {
        o.not_before = now + 86400;
        o.not_after = now + 90LL * 86400;
    }
    if (s->fault == F_UNTRUSTED_ROOT) {
        char dir[] = "/tmp/attesta-sim-ca.XXXXXX";
        if (mkdtemp(dir) == NULL || fa_ca_init_dir(dir, s->err) != 0 ||
            fa_ca_load(dir, &ca, s->err) != 0)
            goto out;
    } else if (fa_ca_load(s->apple_ca, &ca, s->err) != 0) {
        goto out;
    }
    if (fa_leaf_issue(&ca, s->device_key, &o, &leaf, s->err) != 0)
        goto out;
    X509 *chain[2] = {leaf, ca.sub};
    if (fa_attobj_build(chain, 2, cbor, len) != 0)
        goto out;
    if (s->fault == F_TRUNCATED_CBOR)
        *len /= 2;
    if (s->fault == F_GARBAGE_CBOR && rand_bytes(*cbor, *len) != 0)
        goto out;
    rc = 0;
out:
    X509_free(leaf);
    fa_ca_clear(&ca);
    return rc;
}

static int answer_challenge(struct sim *s, const char *chall_url, const char *token)
{
    unsigned char *cbor = NULL;
    size_t len = 0;
    char *payload = NULL;
    struct acmec_resp r = {0};
    int rc = 2;
    if (s->fault == F_ERROR_MEMBER) {
        payload = xstrdup("{\"error\":{\"type\":\"urn:ietf:params:acme:error:badAttestationStatement\","
                          "\"detail\":\"device could not attest\"}}");
    } else {
        if (attobj_make(s, token, &cbor, &len) != 0)
            return fail(s, "attestation");
        char *att = b64u_encode(cbor, len);
        payload = xasprintf("{\"attObj\":\"%s\"}", att);
        free(att);
    }
    if (acmec_post(s->client, chall_url, payload, &r, s->err) != 0) {
        rc = fail(s, "challenge");
        goto out;
    }
    const char *st = json_str(r.json, "status");
    if (r.status != 200 || st == NULL || strcmp(st, "invalid") == 0) {
        rc = refused("challenge", &r);
        goto out;
    }
    rc = 0;
out:
    acmec_resp_clear(&r);
    free(cbor);
    free(payload);
    return rc;
}

static char *csr_make(struct sim *s)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    EVP_PKEY *key = s->device_key, *other = NULL;
    unsigned char *der = NULL;
    char *out = NULL;
    if (s->fault == F_CSR_OTHER_KEY) {
        other = pki_key_generate(s->device_key_type, s->err);
        key = other;
    }
    if (key == NULL || req == NULL || name == NULL ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                    (const unsigned char *)s->identifier, -1, -1, 0) ||
        !X509_REQ_set_subject_name(req, name) || !X509_REQ_set_pubkey(req, key) ||
        X509_REQ_sign(req, key, EVP_sha256()) <= 0)
        goto out;
    int n = i2d_X509_REQ(req, &der);
    if (n > 0)
        out = b64u_encode(der, (size_t)n);
out:
    OPENSSL_free(der);
    EVP_PKEY_free(other);
    X509_NAME_free(name);
    X509_REQ_free(req);
    return out;
}

/* The issued leaf must carry the attested key. */
static int cert_check(struct sim *s, const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *leaf = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    int rc = -1;
    char serial[41] = "";
    if (leaf == NULL) {
        snprintf(s->err, ERR_LEN, "certificate is not PEM");
    } else if (!pki_key_equal(X509_get0_pubkey(leaf), s->device_key)) {
        snprintf(s->err, ERR_LEN, "certificate key is not the device key");
    } else {
        pki_cert_serial_hex(leaf, serial);
        printf("result: issued serial=%s\n", serial);
        rc = 0;
    }
    X509_free(leaf);
    BIO_free(bio);
    return rc;
}

static int finalize_and_download(struct sim *s, const char *order_url, const char *finalize)
{
    static const char *const ready[] = {"ready", "invalid", NULL};
    static const char *const done[] = {"valid", "invalid", NULL};
    struct acmec_resp r = {0};
    char *csr = NULL, *payload = NULL;
    int rc = 2;
    if (acmec_poll(s->client, order_url, ready, 30000, &r, s->err) != 0) {
        rc = r.status ? refused("order", &r) : fail(s, "order poll");
        goto out;
    }
    if (strcmp(json_str(r.json, "status"), "ready") != 0) {
        rc = refused("order", &r);
        goto out;
    }
    acmec_resp_clear(&r);
    csr = csr_make(s);
    if (csr == NULL)
        return fail(s, "CSR");
    payload = xasprintf("{\"csr\":\"%s\"}", csr);
    if (acmec_post(s->client, finalize, payload, &r, s->err) != 0) {
        rc = fail(s, "finalize");
        goto out;
    }
    if (r.status != 200) {
        rc = refused("finalize", &r);
        goto out;
    }
    acmec_resp_clear(&r);
    if (acmec_poll(s->client, order_url, done, 30000, &r, s->err) != 0 ||
        json_str(r.json, "certificate") == NULL) {
        rc = refused("order", &r);
        goto out;
    }
    char *cert_url = xstrdup(json_str(r.json, "certificate"));
    acmec_resp_clear(&r);
    int got = acmec_post(s->client, cert_url, NULL, &r, s->err);
    free(cert_url);
    if (got != 0 || r.status != 200) {
        rc = got != 0 ? fail(s, "download") : refused("download", &r);
        goto out;
    }
    if (cert_check(s, r.body) != 0) {
        rc = fail(s, "certificate");
        goto out;
    }
    if (s->out != NULL) {
        FILE *fp = fopen(s->out, "we");
        if (fp == NULL || fputs(r.body, fp) < 0) {
            snprintf(s->err, ERR_LEN, "cannot write %s", s->out);
            if (fp != NULL)
                fclose(fp);
            rc = fail(s, "output");
            goto out;
        }
        fclose(fp);
    }
    rc = 0;
out:
    acmec_resp_clear(&r);
    free(csr);
    free(payload);
    return rc;
}

static const cJSON *find_challenge(const cJSON *authz, const char *type)
{
    const cJSON *ch;
    cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(authz, "challenges"))
    {
        const char *t = json_str(ch, "type");
        if (t != NULL && strcmp(t, type) == 0)
            return ch;
    }
    return NULL;
}

static int enroll(struct sim *s)
{
    struct acmec_resp r = {0};
    char *order_url = NULL, *finalize = NULL, *payload = NULL;
    int rc = 2;
    s->client = acmec_new(s->directory, s->trust, s->err);
    s->account_key = pki_key_generate(PKI_KEY_P256, s->err);
    s->device_key = pki_key_generate(s->device_key_type, s->err);
    if (s->client == NULL || s->account_key == NULL || s->device_key == NULL)
        return fail(s, "setup");
    acmec_set_key(s->client, s->account_key, PKI_JWS_ES256);
    if (acmec_new_account(s->client, s->err) != 0)
        return fail(s, "account");
    if (s->fault == F_SHORT_SIG && (rc = exercise_short_sigs(s)) != 0)
        return rc;
    payload = xasprintf("{\"identifiers\":[{\"type\":\"permanent-identifier\",\"value\":\"%s\"}]}",
                        s->identifier);
    if (acmec_post(s->client, acmec_dir(s->client, "newOrder"), payload, &r, s->err) != 0) {
        rc = fail(s, "newOrder");
        goto out;
    }
    const cJSON *authzs = cJSON_GetObjectItemCaseSensitive(r.json, "authorizations");
    if (r.status != 201 || !cJSON_IsArray(authzs) || json_str(r.json, "finalize") == NULL) {
        rc = refused("newOrder", &r);
        goto out;
    }
    order_url = xstrdup(r.location);
    finalize = xstrdup(json_str(r.json, "finalize"));
    char *authz_url = xstrdup(cJSON_GetArrayItem(authzs, 0)->valuestring);
    acmec_resp_clear(&r);
    int got = acmec_post(s->client, authz_url, NULL, &r, s->err);
    free(authz_url);
    const cJSON *ch = got == 0 ? find_challenge(r.json, "device-attest-01") : NULL;
    if (ch == NULL || json_str(ch, "url") == NULL || json_str(ch, "token") == NULL) {
        rc = got != 0 ? fail(s, "authz") : refused("authz", &r);
        goto out;
    }
    char *chall_url = xstrdup(json_str(ch, "url")), *token = xstrdup(json_str(ch, "token"));
    acmec_resp_clear(&r);
    rc = answer_challenge(s, chall_url, token);
    free(chall_url);
    free(token);
    if (rc == 0)
        rc = finalize_and_download(s, order_url, finalize);
out:
    acmec_resp_clear(&r);
    free(order_url);
    free(finalize);
    free(payload);
    return rc;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: attesta-device-sim ca-init --apple-ca DIR\n"
            "       attesta-device-sim enroll --directory URL --trust PEM --apple-ca DIR\n"
            "              --serial SERIAL [--udid UDID] [--identifier serial|udid|VALUE]\n"
            "              [--key p256|p384] [--os-version V] [--fault FAULT] [--out FILE]\n"
            "faults:");
    for (size_t i = 1; i < F__MAX; i++)
        fprintf(stderr, " %s", fault_names[i]);
    fprintf(stderr, "\nexit: 0 issued, 1 refused by the server, 2 error\n");
}

static int parse_fault(const char *name, enum sim_fault *out)
{
    for (size_t i = 0; i < F__MAX; i++) {
        if (strcmp(name, fault_names[i]) == 0) {
            *out = (enum sim_fault)i;
            return 0;
        }
    }
    return -1;
}

static int parse_args(struct sim *s, int argc, char **argv)
{
    static const struct option opts[] = {
        {"directory", required_argument, NULL, 'd'}, {"trust", required_argument, NULL, 't'},
        {"apple-ca", required_argument, NULL, 'a'},  {"serial", required_argument, NULL, 's'},
        {"udid", required_argument, NULL, 'u'},      {"identifier", required_argument, NULL, 'i'},
        {"key", required_argument, NULL, 'k'},       {"fault", required_argument, NULL, 'f'},
        {"out", required_argument, NULL, 'o'},       {"os-version", required_argument, NULL, 'v'},
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
        case 'o': s->out = optarg; break;
        case 'v': s->os_version = optarg; break;
        case 'k':
            if (strcmp(optarg, "p256") == 0)
                s->device_key_type = PKI_KEY_P256;
            else if (strcmp(optarg, "p384") == 0)
                s->device_key_type = PKI_KEY_P384;
            else
                return -1;
            break;
        case 'f':
            if (parse_fault(optarg, &s->fault) != 0)
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
    struct sim s = {.device_key_type = PKI_KEY_P384, .os_version = "26.1"};
    int rc = 2;
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *cmd = argv[1];
    if (parse_args(&s, argc - 1, argv + 1) != 0) {
        usage();
        return 2;
    }
    if (strcmp(cmd, "ca-init") == 0) {
        rc = fa_ca_init_dir(s.apple_ca, s.err) == 0 ? 0 : fail(&s, "ca-init");
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
