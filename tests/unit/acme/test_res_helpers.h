/*
 * test_res_helpers.h: the environment the test_res_*.c unit tests share (each
 * test is its own executable, so everything here is static): a real SQLite
 * store in a temp dir, the embedded default config, a generated CA, the Apple
 * attestation verifier, a validator stand-in that records validations, and
 * calls of the resource handlers with a hand-built struct acme_rq (the router
 * is the core's and is tested there).
 */
#ifndef ACMESRV_TEST_RES_HELPERS_H
#define ACMESRV_TEST_RES_HELPERS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "acme_fixture.h"
#include <openssl/x509v3.h>

#include "acme/acme_res_int.h"

#define T_BASE "https://ca.test"
#define T_MAX_VALIDATIONS 16

struct t_acct {
    struct acme_account a;
    EVP_PKEY *key;
};

struct t_env {
    char dir[64];
    struct cfg *cfg;
    struct store *store;
    struct pki_ca *ca;
    struct att_verifier *att;
    struct acme_ctx *ctx;
    struct t_acct acct1, acct2;
    struct acme_validation *v[T_MAX_VALIDATIONS];
    size_t nv;
    int nretry_now;          /* retries brought forward (CH-6) */
    char retry_now_id[64];   /* the last one's challenge */
    const char *query; /* the query string t_call_as requests carry (orders list paging) */
    const char *peer;  /* the client address they come from; NULL: 127.0.0.1 */
};
static struct t_env T;

/* The validator stand-in: keeps v; the test settles it with acme_validation_done. */
static inline void
t_validate(void *arg, struct acme_validation *v)
{
    struct t_env *e = arg;

    assert_true(e->nv < T_MAX_VALIDATIONS);
    e->v[e->nv++] = v;
}

/* The validator stand-in's retry-now entry: counts the asks. */
static inline void
t_retry_now(void *arg, const char *chall_id)
{
    struct t_env *e = arg;

    e->nretry_now++;
    snprintf(e->retry_now_id, sizeof(e->retry_now_id), "%s", chall_id);
}

static inline void
t_acct_init(struct t_acct *t, const char *id)
{
    char err[ERR_LEN];

    memset(t, 0, sizeof(*t));
    t->key = pki_key_generate(PKI_KEY_P256, err);
    assert_non_null(t->key);
    snprintf(t->a.id, sizeof(t->a.id), "%s", id);
    assert_int_equal(pki_jwk_thumbprint(t->key, t->a.thumbprint), 0);
    snprintf(t->a.status, sizeof(t->a.status), "valid");
}

/* A ctx on T's store and CA handing validations to validate; waiters: deps.chall_waiters. */
static inline struct acme_ctx *
t_ctx_new(acme_validate_fn *validate, int waiters)
{
    char err[ERR_LEN];
    struct acme_deps deps = {0};
    struct acme_ctx *ctx;

    deps.cfg = T.cfg;
    deps.store = T.store;
    deps.cas = &T.ca;
    deps.ncas = 1;
    deps.attest = T.att;
    deps.base_url = T_BASE;
    deps.validate = validate;
    deps.validate_arg = &T;
    deps.retry_now = t_retry_now;
    deps.chall_waiters = waiters;
    ctx = acme_ctx_new(&deps, err);
    assert_non_null(ctx);
    return ctx;
}

static inline int
t_setup(void **state)
{
    char err[CFG_ERR_LEN];

    acme_fixture_open(T.dir, sizeof(T.dir), "/tmp/acmeres-XXXXXX", &T.cfg, &T.ca, &T.store);
    T.att = att_verifier_new(NULL, 0, err);
    assert_non_null(T.att);
    T.ctx = t_ctx_new(t_validate, 0);
    t_acct_init(&T.acct1, "acct1AAAAAAAAAAAAAAAAA");
    t_acct_init(&T.acct2, "acct2BBBBBBBBBBBBBBBBB");
    return 0;
}

static inline int
t_teardown(void **state)
{
    size_t i;

    for (i = 0; i < T.nv; i++)
        free(T.v[i]);
    acme_ctx_free(T.ctx);
    att_verifier_free(T.att);
    acme_fixture_close(T.dir, T.cfg, T.ca, T.store);
    EVP_PKEY_free(T.acct1.key);
    EVP_PKEY_free(T.acct2.key);
    clk_set_fixed(-1);
    return 0;
}

/* One handler call's outcome. */
struct t_res {
    int rc;
    struct acme_problem prob;
    struct acme_response resp;
    cJSON *json; /* parsed body when it is JSON */
};

static inline void
t_res_clear(struct t_res *r)
{
    acme_response_clear(&r->resp);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof(*r));
}

/*
 * Calls h as policy pol for acct (NULL: a jwk-signed request with jwk_key).
 * payload NULL is POST-as-GET; otherwise JSON text. r is cleared first.
 */
static inline void
t_call_as(acme_handler_fn *h, const char *pol, const struct t_acct *acct, EVP_PKEY *jwk_key,
          const char *id1, const char *id2, const char *payload, struct t_res *r)
{
    struct acme_request req = {.method = "POST", .path = "/", .query = T.query,
                              .peer = T.peer != NULL ? T.peer : "127.0.0.1"};
    struct acme_rq rq;

    t_res_clear(r);
    memset(&rq, 0, sizeof(rq));
    rq.ctx = T.ctx;
    rq.req = &req;
    rq.resp = &r->resp;
    rq.policy = cfg_policy_find(T.cfg, pol);
    assert_non_null(rq.policy);
    snprintf(rq.id1, sizeof(rq.id1), "%s", id1 != NULL ? id1 : "");
    snprintf(rq.id2, sizeof(rq.id2), "%s", id2 != NULL ? id2 : "");
    rq.jws.post_as_get = payload == NULL;
    if (payload != NULL) {
        rq.jws.payload = cJSON_Parse(payload);
        assert_non_null(rq.jws.payload);
    }
    if (acct != NULL) {
        rq.acct = acct->a; /* borrowed: contact/jwk_json stay NULL */
        rq.has_acct = true;
        rq.jws.key = acct->key;
    } else {
        rq.jws.key = jwk_key;
    }
    /* As the core's JWS check leaves it (newAccount keys the account by it). */
    if (rq.jws.key != NULL)
        assert_int_equal(pki_jwk_thumbprint(rq.jws.key, rq.jws.thumbprint), 0);
    r->rc = h(&rq, &r->prob);
    if (r->rc != 0)
        acme_problem_respond(&r->prob, &r->resp);
    if (r->resp.body != NULL)
        r->json = cJSON_Parse(r->resp.body);
    cJSON_Delete(rq.jws.payload);
}

static inline void
t_call(acme_handler_fn *h, const struct t_acct *acct, const char *id1, const char *id2,
       const char *payload, struct t_res *r)
{
    t_call_as(h, "default", acct, NULL, id1, id2, payload, r);
}

static inline const char *
t_hdr(const struct t_res *r, const char *name)
{
    size_t i;

    for (i = 0; i < r->resp.nheaders; i++)
        if (strcmp(r->resp.headers[i].name, name) == 0)
            return r->resp.headers[i].value;
    return NULL;
}

static inline const char *
t_str(const cJSON *o, const char *name)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsString(s) ? s->valuestring : NULL;
}

/* The last path segment(s) of a URL: "…/order/ID" → "ID". Copies into out. */
static inline void
t_last(const char *url, int nth_from_end, char *out, size_t outlen)
{
    const char *p = url + strlen(url);
    int seen = 0;

    while (p > url) {
        p--;
        if (*p == '/' && ++seen == nth_from_end)
            break;
    }
    snprintf(out, outlen, "%s", p + 1);
    if (nth_from_end > 1 && strchr(out, '/') != NULL)
        *strchr(out, '/') = '\0';
}

/*
 * A DER CSR for key with CN (may be NULL), SANs "DNS:x,IP:y" (may be NULL) and
 * one more extension ext_name = ext_value in OpenSSL config syntax (ext_name
 * NULL: none), b64u.
 */
static inline char *
t_csr_ext(EVP_PKEY *key, const char *cn, const char *sans, const char *ext_name,
          const char *ext_value, bool break_sig)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION *ext;
    unsigned char *der = NULL;
    int len;
    char *out;

    assert_non_null(req);
    if (cn != NULL)
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_REQ_set_subject_name(req, name);
    X509_REQ_set_pubkey(req, key);
    if (sans != NULL) {
        ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, sans);
        assert_non_null(ext);
        sk_X509_EXTENSION_push(exts, ext);
    }
    if (ext_name != NULL) {
        ext = X509V3_EXT_nconf(NULL, NULL, ext_name, ext_value);
        assert_non_null(ext);
        sk_X509_EXTENSION_push(exts, ext);
    }
    if (sk_X509_EXTENSION_num(exts) > 0)
        X509_REQ_add_extensions(req, exts);
    assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
    len = i2d_X509_REQ(req, &der);
    assert_true(len > 0);
    if (break_sig)
        der[len - 3] ^= 0x55;
    out = b64u_encode(der, (size_t)len);
    OPENSSL_free(der);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_NAME_free(name);
    X509_REQ_free(req);
    return out;
}

/* t_csr_ext without the extra extension. */
static inline char *
t_csr(EVP_PKEY *key, const char *cn, const char *sans, bool break_sig)
{
    return t_csr_ext(key, cn, sans, NULL, NULL, break_sig);
}

/* Reads a whole file (vectors). Caller frees. */
static inline unsigned char *
t_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *p = xmalloc(70000);

    assert_non_null(f);
    *len = fread(p, 1, 70000, f);
    fclose(f);
    return p;
}

/* Creates an order for the identifiers JSON array text; returns the order id and authz ids. */
static inline void
t_new_order(const char *pol, const struct t_acct *acct, const char *ids_json, char order_id[64],
            char authz_id[][64], size_t nauthz)
{
    struct t_res r = {0};
    char *payload = xasprintf("{\"identifiers\":%s}", ids_json);
    const cJSON *azs;
    size_t i;

    t_call_as(acme_h_new_order, pol, acct, NULL, NULL, NULL, payload, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.resp.status, 201);
    t_last(t_hdr(&r, "Location"), 1, order_id, 64);
    azs = cJSON_GetObjectItemCaseSensitive(r.json, "authorizations");
    assert_int_equal(cJSON_GetArraySize(azs), (int)nauthz);
    for (i = 0; i < nauthz; i++)
        t_last(cJSON_GetArrayItem(azs, (int)i)->valuestring, 1, authz_id[i], 64);
    free(payload);
    t_res_clear(&r);
}

/* The id of authz az's challenge of type (as acct, its owner, reads it) into chid. */
static inline void
t_chall_id_as(const struct t_acct *acct, const char *az, const char *type, char chid[64])
{
    struct t_res r = {0};
    const cJSON *ch;

    t_call(acme_h_authz, acct, az, NULL, NULL, &r);
    chid[0] = '\0';
    cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(r.json, "challenges"))
    {
        if (strcmp(t_str(ch, "type"), type) == 0)
            t_last(t_str(ch, "url"), 1, chid, 64);
    }
    assert_true(chid[0] != '\0');
    t_res_clear(&r);
}

static inline void
t_chall_id(const char *az, const char *type, char chid[64])
{
    t_chall_id_as(&T.acct1, az, type, chid);
}

/* Answers authz az's dns-01 challenge as acct (its owner); the validation succeeds. */
static inline void
t_settle_valid_as(const struct t_acct *acct, const char *az)
{
    struct t_res r = {0};
    char chid[64];

    t_chall_id_as(acct, az, "dns-01", chid);
    t_call(acme_h_challenge, acct, az, chid, "{}", &r);
    assert_int_equal(r.rc, 0);
    assert_true(T.nv > 0);
    acme_validation_done(T.ctx, T.v[--T.nv], true, NULL);
    t_res_clear(&r);
}

static inline void
t_settle_valid(const char *az)
{
    t_settle_valid_as(&T.acct1, az);
}

#endif
