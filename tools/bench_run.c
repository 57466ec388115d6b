/*
 * bench_run.c: the client threads of attesta-bench. Each thread owns one
 * acmec client (one kept-alive HTTPS connection) and, for issuance
 * workloads, one account created before the clock starts, then repeats its
 * operation until the deadline or the shared count runs out. Latencies are
 * kept per thread in microseconds and merged once at the end, so threads
 * share nothing on the hot path but one atomic counter.
 */
#include "tools/bench.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509v3.h>

#include "tools/acmec.h"
#include "tools/device_flow.h"

static const char *const workload_names[] = {"nonce", "directory", "http01", "device",
                                             "idle-accounts"};
_Static_assert(nitems(workload_names) == BW__MAX, "workload_names out of sync");

const char *bench_workload_name(enum bench_workload w)
{
    return w < BW__MAX ? workload_names[w] : "unknown";
}

int bench_workload_parse(const char *name, enum bench_workload *out)
{
    int i = str_index(workload_names, nitems(workload_names), name);

    if (i < 0)
        return -1;
    *out = (enum bench_workload)i;
    return 0;
}

struct shared {
    const struct bench_opts *o;
    const struct fa_ca *apple; /* device workload */
    atomic_long started;       /* operations begun, for --count */
    int64_t deadline_us;
};

struct worker {
    struct shared *sh;
    int slot;
    pthread_t thread;
    struct acmec *client;
    EVP_PKEY *account_key;
    char thumb[44];
    uint32_t *lat; /* microseconds of each successful operation */
    size_t nlat, cap;
    long errors;
    unsigned long reqs_ok, posts_ok;
    unsigned long dev_reqs, dev_posts; /* device flows' own clients, so far */
    char first_err[ERR_LEN];
    char err[ERR_LEN];
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Random lower-case hex label of 2*n characters into out (2*n+1 bytes). */
static int rand_label(char *out, size_t n)
{
    unsigned char raw[16];
    if (n > sizeof(raw) || rand_bytes(raw, n) != 0)
        return -1;
    hex_encode(raw, n, out);
    return 0;
}

/* Builds a CSR for name with a fresh P-256 key, base64url DER (caller frees) or NULL. */
static char *csr_for_name(const char *name, char err[ERR_LEN])
{
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    X509_REQ *req = X509_REQ_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    char *san = xasprintf("DNS:%s", name), *out = NULL;
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
    unsigned char *der = NULL;
    if (key == NULL || req == NULL || exts == NULL || ext == NULL ||
        !sk_X509_EXTENSION_push(exts, ext)) {
        snprintf(err, ERR_LEN, "CSR setup failed");
        X509_EXTENSION_free(ext);
        goto out;
    }
    if (!X509_REQ_add_extensions(req, exts) || !X509_REQ_set_pubkey(req, key) ||
        X509_REQ_sign(req, key, EVP_sha256()) <= 0) {
        snprintf(err, ERR_LEN, "CSR signing failed");
        goto out;
    }
    int n = i2d_X509_REQ(req, &der);
    if (n > 0)
        out = b64u_encode(der, (size_t)n);
out:
    OPENSSL_free(der);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    EVP_PKEY_free(key);
    free(san);
    return out;
}

/* POSTs and expects want; on anything else fills err with the step and problem. */
static int post_expect(struct worker *w, const char *step, const char *url, const char *payload,
                       long want, struct acmec_resp *r)
{
    if (acmec_post(w->client, url, payload, r, w->err) != 0)
        return -1;
    if (r->status == want)
        return 0;
    snprintf(w->err, ERR_LEN, "%s: HTTP %ld %s %s", step, r->status, acmec_problem_type(r),
             acmec_problem_detail(r));
    return -1;
}

/* Polls url until valid (or invalid: an error); r keeps the last answer. */
static int poll_valid(struct worker *w, const char *step, const char *url, struct acmec_resp *r)
{
    static const char *const done[] = {"valid", "invalid", NULL};
    if (acmec_poll(w->client, url, done, 30000, r, w->err) != 0)
        return -1;
    if (strcmp(acmec_json_str(r->json, "status"), "valid") == 0)
        return 0;
    snprintf(w->err, ERR_LEN, "%s became invalid", step);
    return -1;
}

/* Finalizes with csr, waits for the certificate and downloads it. */
static int finalize_download(struct worker *w, const char *order_url, const char *finalize,
                             const char *csr)
{
    struct acmec_resp r = {0};
    char *payload = xasprintf("{\"csr\":\"%s\"}", csr), *cert_url = NULL;
    int rc = -1;
    if (post_expect(w, "finalize", finalize, payload, 200, &r) != 0)
        goto out;
    acmec_resp_clear(&r);
    if (poll_valid(w, "order", order_url, &r) != 0 || acmec_json_str(r.json, "certificate") == NULL)
        goto out;
    cert_url = xstrdup(acmec_json_str(r.json, "certificate"));
    acmec_resp_clear(&r);
    if (post_expect(w, "download", cert_url, NULL, 200, &r) != 0)
        goto out;
    if (strstr(r.body, "BEGIN CERTIFICATE") == NULL) {
        snprintf(w->err, ERR_LEN, "download: not PEM");
        goto out;
    }
    rc = 0;
out:
    acmec_resp_clear(&r);
    free(payload);
    free(cert_url);
    return rc;
}

/* Publishes the key authorization, triggers the challenge and waits for the authz. */
static int answer_http01(struct worker *w, const char *authz_url)
{
    struct acmec_resp r = {0};
    char *chall_url = NULL, *keyauth = NULL;
    int rc = -1;
    if (post_expect(w, "authz", authz_url, NULL, 200, &r) != 0)
        goto out;
    const cJSON *ch = acmec_find_challenge(r.json, "http-01");
    if (ch == NULL || acmec_json_str(ch, "url") == NULL || acmec_json_str(ch, "token") == NULL) {
        snprintf(w->err, ERR_LEN, "authz: no http-01 challenge");
        goto out;
    }
    chall_url = xstrdup(acmec_json_str(ch, "url"));
    keyauth = xasprintf("%s.%s", acmec_json_str(ch, "token"), w->thumb);
    bench_responder_set(w->sh->o->responder, w->slot, acmec_json_str(ch, "token"), keyauth);
    acmec_resp_clear(&r);
    if (post_expect(w, "challenge", chall_url, "{}", 200, &r) != 0)
        goto out;
    acmec_resp_clear(&r);
    rc = poll_valid(w, "authz", authz_url, &r);
out:
    acmec_resp_clear(&r);
    free(chall_url);
    free(keyauth);
    return rc;
}

/* One http-01 issuance for a random name under the test domain. */
static int op_http01(struct worker *w)
{
    struct acmec_resp r = {0};
    char label[17], *name = NULL, *payload = NULL, *csr = NULL;
    char *order_url = NULL, *finalize = NULL, *authz_url = NULL;
    int rc = -1;
    if (rand_label(label, 8) != 0)
        return -1;
    name = xasprintf("%s.%s", label, w->sh->o->domain);
    payload = xasprintf("{\"identifiers\":[{\"type\":\"dns\",\"value\":\"%s\"}]}", name);
    if (post_expect(w, "newOrder", acmec_dir(w->client, "newOrder"), payload, 201, &r) != 0)
        goto out;
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json,
                                                                             "authorizations"), 0);
    if (!cJSON_IsString(first) || acmec_json_str(r.json, "finalize") == NULL || !r.location[0]) {
        snprintf(w->err, ERR_LEN, "newOrder: malformed order");
        goto out;
    }
    order_url = xstrdup(r.location);
    finalize = xstrdup(acmec_json_str(r.json, "finalize"));
    authz_url = xstrdup(first->valuestring);
    acmec_resp_clear(&r);
    if (answer_http01(w, authz_url) != 0)
        goto out;
    csr = csr_for_name(name, w->err);
    if (csr == NULL)
        goto out;
    rc = finalize_download(w, order_url, finalize, csr);
out:
    acmec_resp_clear(&r);
    free(name);
    free(payload);
    free(csr);
    free(order_url);
    free(finalize);
    free(authz_url);
    return rc;
}

/*
 * One simulated Apple device as a fleet enrollment sees it: its own TLS
 * connection and directory fetch, a new ACME account, a fresh P-384 key and a
 * random serial and UDID. Nothing is carried over from the previous device.
 */
static int op_device(struct worker *w)
{
    const struct bench_opts *o = w->sh->o;
    char serial[13], hex[17], udid[32];
    struct dflow f = {0};
    int rc = -1;
    struct acmec *c = acmec_new(o->directory, o->trust, w->err);
    EVP_PKEY *account = c != NULL ? pki_key_generate(PKI_KEY_P256, w->err) : NULL;
    EVP_PKEY *key = account != NULL ? pki_key_generate(PKI_KEY_P384, w->err) : NULL;
    if (key == NULL || rand_label(hex, 8) != 0)
        goto out;
    acmec_set_key(c, account, PKI_JWS_ES256);
    if (acmec_new_account(c, w->err) != 0)
        goto out;
    /* Serial numbers are 12 upper-case alphanumerics; keep the letters obvious. */
    snprintf(serial, sizeof(serial), "BN%.10s", hex);
    for (char *p = serial; *p; p++)
        *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    snprintf(udid, sizeof(udid), "00008103-%.16s", hex);
    f.client = c;
    f.ca = w->sh->apple;
    f.serial = serial;
    f.udid = udid;
    f.identifier = serial;
    f.os_version = "26.1";
    f.device_key = key;
    f.device_key_type = PKI_KEY_P384;
    f.quiet = true;
    if (dflow_enroll(&f) == DFLOW_ISSUED)
        rc = 0;
    else
        snprintf(w->err, ERR_LEN, "%.40s: %.200s", f.step ? f.step : "?", f.err);
out:
    w->dev_reqs += acmec_requests(c);
    w->dev_posts += acmec_posts(c);
    dflow_clear(&f);
    acmec_free(c);
    EVP_PKEY_free(key);
    EVP_PKEY_free(account);
    return rc;
}

/* One new account with a fresh key; the server keeps it for idle-accounts. */
static int op_account(struct worker *w)
{
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, w->err);
    if (key == NULL)
        return -1;
    acmec_set_key(w->client, key, PKI_JWS_ES256);
    int rc = acmec_new_account(w->client, w->err);
    EVP_PKEY_free(w->account_key);
    w->account_key = key; /* acmec borrows it: keep it until the next one */
    return rc;
}

static int op_get(struct worker *w, bool head)
{
    struct acmec_resp r;
    const char *url = head ? acmec_dir(w->client, "newNonce") : w->sh->o->directory;
    int rc = head ? acmec_head(w->client, url, &r, w->err) : acmec_get(w->client, url, &r, w->err);
    if (rc == 0 && r.status != 200 && r.status != 204) {
        snprintf(w->err, ERR_LEN, "%s: HTTP %ld", url, r.status);
        rc = -1;
    }
    acmec_resp_clear(&r);
    return rc;
}

static int op_run(struct worker *w)
{
    switch (w->sh->o->workload) {
    case BW_NONCE: return op_get(w, true);
    case BW_DIRECTORY: return op_get(w, false);
    case BW_HTTP01: return op_http01(w);
    case BW_DEVICE: return op_device(w);
    case BW_ACCOUNTS: return op_account(w);
    default: return -1;
    }
}

static void note_error(struct worker *w)
{
    w->errors++;
    if (w->first_err[0] == '\0')
        snprintf(w->first_err, ERR_LEN, "%s", w->err[0] ? w->err : "unknown error");
}

/* Client and, for issuance, the thread's account; not timed. */
static int worker_setup(struct worker *w)
{
    const struct bench_opts *o = w->sh->o;
    if (o->workload == BW_DEVICE)
        return 0; /* every device brings its own client (op_device) */
    w->client = acmec_new(o->directory, o->trust, w->err);
    if (w->client == NULL)
        return -1;
    if (o->workload != BW_HTTP01)
        return 0;
    w->account_key = pki_key_generate(PKI_KEY_P256, w->err);
    if (w->account_key == NULL || pki_jwk_thumbprint(w->account_key, w->thumb) != 0)
        return -1;
    w->thumb[43] = '\0';
    acmec_set_key(w->client, w->account_key, PKI_JWS_ES256);
    return acmec_new_account(w->client, w->err);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    if (worker_setup(w) != 0) {
        note_error(w);
        return NULL;
    }
    while (now_us() < sh->deadline_us) {
        if (sh->o->count > 0 && atomic_fetch_add(&sh->started, 1) >= sh->o->count)
            break;
        unsigned long reqs0 = acmec_requests(w->client) + w->dev_reqs;
        unsigned long posts0 = acmec_posts(w->client) + w->dev_posts;
        int64_t t0 = now_us();
        w->err[0] = '\0';
        if (op_run(w) != 0) {
            note_error(w);
            continue;
        }
        int64_t dt = now_us() - t0;
        if (w->nlat == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 1024;
            w->lat = xrealloc(w->lat, w->cap * sizeof(*w->lat));
        }
        w->lat[w->nlat++] = (uint32_t)(dt > UINT32_MAX ? UINT32_MAX : dt);
        w->reqs_ok += acmec_requests(w->client) + w->dev_reqs - reqs0;
        w->posts_ok += acmec_posts(w->client) + w->dev_posts - posts0;
    }
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v, in ms. */
static double pct_ms(const uint32_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)n);
    return (double)v[i < n ? i : n - 1] / 1000.0;
}

void bench_result_summarize(uint32_t *lat, size_t n, unsigned long reqs,
                            struct bench_result *res)
{
    qsort(lat, n, sizeof(*lat), cmp_u32);
    res->ok = (long)n;
    res->p50_ms = pct_ms(lat, n, 0.50);
    res->p99_ms = pct_ms(lat, n, 0.99);
    res->ops_per_s = res->elapsed_s > 0 ? (double)n / res->elapsed_s : 0;
    res->requests_per_op = n ? (double)reqs / (double)n : 0;
}

/* Merges the threads' samples and counters into res. */
static void collect(struct worker *ws, int n, struct bench_result *res)
{
    size_t total = 0, at = 0;
    unsigned long reqs = 0, posts = 0;
    for (int i = 0; i < n; i++)
        total += ws[i].nlat;
    uint32_t *all = xmalloc((total ? total : 1) * sizeof(*all));
    for (int i = 0; i < n; i++) {
        if (ws[i].nlat > 0)
            memcpy(all + at, ws[i].lat, ws[i].nlat * sizeof(*all));
        at += ws[i].nlat;
        res->errors += ws[i].errors;
        reqs += ws[i].reqs_ok;
        posts += ws[i].posts_ok;
        if (res->first_err[0] == '\0' && ws[i].first_err[0] != '\0')
            snprintf(res->first_err, ERR_LEN, "%s", ws[i].first_err);
    }
    bench_result_summarize(all, total, reqs, res);
    res->posts_per_op = total ? (double)posts / (double)total : 0;
    free(all);
}

static int run_threads(struct shared *sh, pid_t pid, struct bench_result *res, char err[ERR_LEN])
{
    int n = sh->o->clients;
    struct worker *ws = xcalloc((size_t)n, sizeof(*ws));
    double cpu0 = pid > 0 ? bench_proc_cpu_s(pid) : -1;
    int64_t t0 = now_us(), started = 0;
    int rc = 0;
    sh->deadline_us = t0 + (int64_t)(sh->o->duration * 1e6);
    for (int i = 0; i < n; i++) {
        ws[i].sh = sh;
        ws[i].slot = i;
        if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0) {
            snprintf(err, ERR_LEN, "pthread_create failed");
            rc = -1;
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(ws[i].thread, NULL);
    res->elapsed_s = (double)(now_us() - t0) / 1e6;
    double cpu1 = pid > 0 ? bench_proc_cpu_s(pid) : -1;
    res->server_cpu_s = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
    res->server_rss_kib = pid > 0 ? bench_proc_rss_kib(pid) : -1;
    collect(ws, (int)started, res);
    for (int i = 0; i < n; i++) {
        acmec_free(ws[i].client);
        EVP_PKEY_free(ws[i].account_key);
        free(ws[i].lat);
    }
    free(ws);
    return rc;
}

int bench_run(const struct bench_opts *o, pid_t server_pid, struct bench_result *res,
              char err[ERR_LEN])
{
    struct shared sh = {.o = o};
    struct fa_ca apple = {0};
    int rc = -1;
    memset(res, 0, sizeof(*res));
    if (o->clients < 1 || o->clients > BENCH_MAX_CLIENTS || o->duration <= 0) {
        snprintf(err, ERR_LEN, "clients must be 1..%d and duration > 0", BENCH_MAX_CLIENTS);
        return -1;
    }
    if (o->workload == BW_HTTP01 && o->responder == NULL) {
        snprintf(err, ERR_LEN, "http01 needs the built-in responder");
        return -1;
    }
    if (o->workload == BW_DEVICE) {
        if (o->apple_ca == NULL) {
            snprintf(err, ERR_LEN, "device needs --apple-ca");
            goto out;
        }
        if (fa_ca_load(o->apple_ca, &apple, err) != 0)
            goto out;
        sh.apple = &apple;
    }
    if (!o->curl_client && (o->workload == BW_NONCE || o->workload == BW_DIRECTORY)) {
        rc = bench_light_run(o, server_pid, res, err);
        goto out;
    }
    rc = run_threads(&sh, server_pid, res, err);
out:
    fa_ca_clear(&apple);
    return rc;
}
