/*
 * device_flow.c: the device enrollment steps attesta-device-sim and
 * attesta-bench share, with the failure injection the simulator needs.
 */
#include "tools/device_flow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

static const char *const fault_names[] = {
    "none",           "wrong-nonce",  "no-nonce",      "other-serial",
    "untrusted-root", "expired-leaf", "not-yet-valid", "csr-other-key",
    "truncated-cbor", "garbage-cbor", "short-sig",     "error-member",
};
_Static_assert(nitems(fault_names) == DFLOW_F__MAX, "fault_names out of sync");

const char *dflow_fault_name(enum dflow_fault f)
{
    return f < DFLOW_F__MAX ? fault_names[f] : "unknown";
}

int dflow_fault_parse(const char *name, enum dflow_fault *out)
{
    int i = str_index(fault_names, nitems(fault_names), name);

    if (i < 0)
        return -1;
    *out = (enum dflow_fault)i;
    return 0;
}

void dflow_clear(struct dflow *f)
{
    if (f == NULL)
        return;
    free(f->cert_pem);
    f->cert_pem = NULL;
    f->step = NULL;
    f->err[0] = '\0';
}

/* The server said no: remember where and why, and tell the user unless quiet. */
static int refused(struct dflow *f, const char *step, const struct acmec_resp *r)
{
    f->step = step;
    snprintf(f->err, ERR_LEN, "refused step=%s status=%ld type=%s detail=%s", step, r->status,
             acmec_problem_type(r), acmec_problem_detail(r));
    if (!f->quiet)
        printf("result: %s\n", f->err);
    return DFLOW_REFUSED;
}

/* A local or transport failure; err already holds the reason. */
static int fail(struct dflow *f, const char *step)
{
    f->step = step;
    return DFLOW_ERROR;
}

/*
 * Apple's older clients dropped a leading zero byte of R or S; do the same.
 * The hook has no context argument, and only the single-threaded simulator
 * uses this fault, so a file-scope counter is enough.
 */
static unsigned short_sigs_sent;

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

/* Sends POST-as-GETs until three shortened signatures have been accepted. */
static int exercise_short_sigs(struct dflow *f)
{
    acmec_set_sig_hook(f->client, short_sig_hook);
    for (int i = 0; i < 5000 && short_sigs_sent < 3; i++) {
        struct acmec_resp r;
        unsigned before = short_sigs_sent;
        if (acmec_post(f->client, acmec_kid(f->client), NULL, &r, f->err) != 0)
            return fail(f, "short-sig account fetch");
        if (r.status != 200 && short_sigs_sent > before) {
            int rc = refused(f, "short-signature", &r);
            acmec_resp_clear(&r);
            return rc;
        }
        acmec_resp_clear(&r);
    }
    if (short_sigs_sent >= 3)
        return 0;
    snprintf(f->err, ERR_LEN, "no short signature produced");
    return fail(f, "short-sig");
}

/* Loads the CA to attest with: the caller's, a throwaway one, or the directory's. */
static int ca_get(struct dflow *f, struct fa_ca *own, const struct fa_ca **ca)
{
    if (f->fault == DFLOW_F_UNTRUSTED_ROOT) {
        char dir[] = "/tmp/attesta-sim-ca.XXXXXX";
        if (mkdtemp(dir) == NULL) {
            snprintf(f->err, ERR_LEN, "mkdtemp failed");
            return -1;
        }
        if (fa_ca_init_dir(dir, f->err) != 0 || fa_ca_load(dir, own, f->err) != 0)
            return -1;
        *ca = own;
        return 0;
    }
    if (f->ca != NULL) {
        *ca = f->ca;
        return 0;
    }
    if (fa_ca_load(f->apple_ca_dir, own, f->err) != 0)
        return -1;
    *ca = own;
    return 0;
}

/* The attObj this device sends for token, damaged as the fault asks. */
static int attobj_make(struct dflow *f, const char *token, unsigned char **cbor, size_t *len)
{
    struct fa_ca own = {0};
    const struct fa_ca *ca = NULL;
    X509 *leaf = NULL;
    unsigned char nonce[32];
    char other_serial[80];
    int rc = -1;
    int64_t now = clk_now();
    struct fa_leaf_opts o = {.serial = f->serial, .udid = f->udid, .os_version = f->os_version,
                             .sepos_version = f->os_version, .nonce = nonce,
                             .nonce_len = sizeof(nonce), .not_before = now - 300,
                             .not_after = now + 90LL * 86400};
    pki_sha256(token, strlen(token), nonce);
    if (f->fault == DFLOW_F_WRONG_NONCE)
        nonce[0] ^= 0x01;
    if (f->fault == DFLOW_F_NO_NONCE)
        o.nonce_len = 0;
    if (f->fault == DFLOW_F_OTHER_SERIAL) {
        snprintf(other_serial, sizeof(other_serial), "%sX", f->serial);
        o.serial = other_serial;
    }
    if (f->fault == DFLOW_F_EXPIRED_LEAF) {
        o.not_before = now - 100LL * 86400;
        o.not_after = now - 10LL * 86400;
    }
    if (f->fault == DFLOW_F_NOT_YET_VALID) {
        o.not_before = now + 86400;
        o.not_after = now + 90LL * 86400;
    }
    if (ca_get(f, &own, &ca) != 0)
        goto out;
    if (fa_leaf_issue(ca, f->device_key, &o, &leaf, f->err) != 0)
        goto out;
    X509 *chain[2] = {leaf, ca->sub};
    if (fa_attobj_build(chain, 2, cbor, len) != 0)
        goto out;
    if (f->fault == DFLOW_F_TRUNCATED_CBOR)
        *len /= 2;
    if (f->fault == DFLOW_F_GARBAGE_CBOR && rand_bytes(*cbor, *len) != 0)
        goto out;
    rc = 0;
out:
    X509_free(leaf);
    fa_ca_clear(&own);
    return rc;
}

static int poll_ms(const struct dflow *f)
{
    return f->poll_timeout_ms > 0 ? f->poll_timeout_ms : 30000;
}

/* A refusal carried in the challenge's error (decided after the response). */
static int refused_challenge(struct dflow *f, const struct acmec_resp *r, const cJSON *ch)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(ch, "error");
    const char *type = acmec_json_str(e, "type"), *detail = acmec_json_str(e, "detail");
    static const char ns[] = "urn:ietf:params:acme:error:";

    if (type != NULL && strncmp(type, ns, sizeof(ns) - 1) == 0)
        type += sizeof(ns) - 1;
    f->step = "challenge";
    snprintf(f->err, ERR_LEN, "refused step=challenge status=%ld type=%s detail=%s", r->status,
             type != NULL ? type : "", detail != NULL ? detail : "");
    if (!f->quiet)
        printf("result: %s\n", f->err);
    return DFLOW_REFUSED;
}


/*
 * The server decides later (MDM lookups, an administrator): poll the
 * authorization until it is valid or invalid, like an Apple device does.
 */
static int wait_authz(struct dflow *f, const char *authz_url)
{
    static const char *const final[] = {"valid", "invalid", "deactivated", "expired", "revoked",
                                        NULL};
    struct acmec_resp r = {0};
    const char *st;
    int rc = DFLOW_ERROR;

    if (acmec_poll(f->client, authz_url, final, poll_ms(f), &r, f->err) != 0) {
        rc = r.status != 0 && r.status != 200 ? refused(f, "authz", &r) : fail(f, "authz poll");
        goto out;
    }
    st = acmec_json_str(r.json, "status");
    if (st == NULL || strcmp(st, "valid") != 0) {
        rc = refused_challenge(f, &r, acmec_find_challenge(r.json, "device-attest-01"));
        goto out;
    }
    rc = 0;
out:
    acmec_resp_clear(&r);
    return rc;
}

static int answer_challenge(struct dflow *f, const char *authz_url, const char *chall_url,
                            const char *token)
{
    unsigned char *cbor = NULL;
    size_t len = 0;
    char *payload = NULL;
    struct acmec_resp r = {0};
    int rc = DFLOW_ERROR;
    if (f->fault == DFLOW_F_ERROR_MEMBER) {
        payload = xstrdup("{\"error\":{\"type\":\"urn:ietf:params:acme:error:badAttestationStatement\","
                          "\"detail\":\"device could not attest\"}}");
    } else {
        if (attobj_make(f, token, &cbor, &len) != 0)
            return fail(f, "attestation");
        char *att = b64u_encode(cbor, len);
        payload = xasprintf("{\"attObj\":\"%s\"}", att);
        free(att);
    }
    while (f->hold_file != NULL && access(f->hold_file, F_OK) != 0)
        usleep(20 * 1000);
    if (acmec_post(f->client, chall_url, payload, &r, f->err) != 0) {
        rc = fail(f, "challenge");
        goto out;
    }
    const char *st = acmec_json_str(r.json, "status");
    if (r.status != 200 || st == NULL || strcmp(st, "invalid") == 0) {
        rc = r.status == 200 && st != NULL ? refused_challenge(f, &r, r.json)
                                           : refused(f, "challenge", &r);
        goto out;
    }
    rc = strcmp(st, "processing") == 0 ? wait_authz(f, authz_url) : 0;
out:
    acmec_resp_clear(&r);
    free(cbor);
    free(payload);
    return rc;
}

static char *csr_make(struct dflow *f)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    EVP_PKEY *key = f->device_key, *other = NULL;
    unsigned char *der = NULL;
    char *out = NULL;
    if (f->fault == DFLOW_F_CSR_OTHER_KEY) {
        other = pki_key_generate(f->device_key_type, f->err);
        key = other;
    }
    if (key == NULL || req == NULL || name == NULL ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                    (const unsigned char *)f->identifier, -1, -1, 0) ||
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
static int cert_check(struct dflow *f, const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *leaf = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    int rc = -1;
    char serial[41] = "";
    if (leaf == NULL) {
        snprintf(f->err, ERR_LEN, "certificate is not PEM");
    } else if (!pki_key_equal(X509_get0_pubkey(leaf), f->device_key)) {
        snprintf(f->err, ERR_LEN, "certificate key is not the device key");
    } else {
        pki_cert_serial_hex(leaf, serial);
        if (!f->quiet)
            printf("result: issued serial=%s\n", serial);
        rc = 0;
    }
    X509_free(leaf);
    BIO_free(bio);
    return rc;
}

/* Waits for the order to be ready, finalizes with a CSR and downloads the certificate. */
static int finalize_and_download(struct dflow *f, const char *order_url, const char *finalize)
{
    static const char *const ready[] = {"ready", "invalid", NULL};
    static const char *const done[] = {"valid", "invalid", NULL};
    struct acmec_resp r = {0};
    char *csr = NULL, *payload = NULL, *cert_url = NULL;
    int rc = DFLOW_ERROR;
    if (acmec_poll(f->client, order_url, ready, poll_ms(f), &r, f->err) != 0) {
        rc = r.status ? refused(f, "order", &r) : fail(f, "order poll");
        goto out;
    }
    if (strcmp(acmec_json_str(r.json, "status"), "ready") != 0) {
        rc = refused(f, "order", &r);
        goto out;
    }
    acmec_resp_clear(&r);
    csr = csr_make(f);
    if (csr == NULL) {
        rc = fail(f, "CSR");
        goto out;
    }
    payload = xasprintf("{\"csr\":\"%s\"}", csr);
    if (acmec_post(f->client, finalize, payload, &r, f->err) != 0) {
        rc = fail(f, "finalize");
        goto out;
    }
    if (r.status != 200) {
        rc = refused(f, "finalize", &r);
        goto out;
    }
    acmec_resp_clear(&r);
    if (acmec_poll(f->client, order_url, done, poll_ms(f), &r, f->err) != 0 ||
        acmec_json_str(r.json, "certificate") == NULL) {
        rc = refused(f, "order", &r);
        goto out;
    }
    cert_url = xstrdup(acmec_json_str(r.json, "certificate"));
    acmec_resp_clear(&r);
    int got = acmec_post(f->client, cert_url, NULL, &r, f->err);
    if (got != 0 || r.status != 200) {
        rc = got != 0 ? fail(f, "download") : refused(f, "download", &r);
        goto out;
    }
    if (cert_check(f, r.body) != 0) {
        rc = fail(f, "certificate");
        goto out;
    }
    f->cert_pem = r.body;
    r.body = NULL;
    rc = DFLOW_ISSUED;
out:
    acmec_resp_clear(&r);
    free(cert_url);
    free(csr);
    free(payload);
    return rc;
}

/* Fetches the order's first authorization and answers its device-attest-01 challenge. */
static int attest_authz(struct dflow *f, const char *authz_url)
{
    struct acmec_resp r = {0};
    char *chall_url = NULL, *token = NULL;
    int rc = DFLOW_ERROR;
    int got = acmec_post(f->client, authz_url, NULL, &r, f->err);
    const cJSON *ch = got == 0 ? acmec_find_challenge(r.json, "device-attest-01") : NULL;
    if (ch == NULL || acmec_json_str(ch, "url") == NULL || acmec_json_str(ch, "token") == NULL) {
        rc = got != 0 ? fail(f, "authz") : refused(f, "authz", &r);
        goto out;
    }
    chall_url = xstrdup(acmec_json_str(ch, "url"));
    token = xstrdup(acmec_json_str(ch, "token"));
    rc = answer_challenge(f, authz_url, chall_url, token);
out:
    acmec_resp_clear(&r);
    free(chall_url);
    free(token);
    return rc;
}

int dflow_enroll(struct dflow *f)
{
    struct acmec_resp r = {0};
    char *order_url = NULL, *finalize = NULL, *payload = NULL, *authz_url = NULL;
    int rc = DFLOW_ERROR;
    if (f->fault == DFLOW_F_SHORT_SIG) {
        rc = exercise_short_sigs(f);
        if (rc != 0)
            return rc;
    }
    payload = xasprintf("{\"identifiers\":[{\"type\":\"%s\",\"value\":\"%s\"}]}",
                        f->identifier_type != NULL ? f->identifier_type : "permanent-identifier",
                        f->identifier);
    if (acmec_post(f->client, acmec_dir(f->client, "newOrder"), payload, &r, f->err) != 0) {
        rc = fail(f, "newOrder");
        goto out;
    }
    const cJSON *authzs = cJSON_GetObjectItemCaseSensitive(r.json, "authorizations");
    const cJSON *first = cJSON_GetArrayItem(authzs, 0);
    if (r.status != 201 || !cJSON_IsString(first) || acmec_json_str(r.json, "finalize") == NULL) {
        rc = refused(f, "newOrder", &r);
        goto out;
    }
    order_url = xstrdup(r.location);
    finalize = xstrdup(acmec_json_str(r.json, "finalize"));
    authz_url = xstrdup(first->valuestring);
    acmec_resp_clear(&r);
    rc = attest_authz(f, authz_url);
    if (rc == 0)
        rc = finalize_and_download(f, order_url, finalize);
out:
    acmec_resp_clear(&r);
    free(order_url);
    free(finalize);
    free(authz_url);
    free(payload);
    return rc;
}
