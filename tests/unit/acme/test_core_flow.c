/*
 * test_core_flow.c: the router and the core handlers end to end, in process:
 * a real SQLite store in a temp dir, the embedded default config, a generated
 * CA and crafted requests through acme_handle().
 */
#include "core_client.h"

#include <sys/stat.h>
#include <unistd.h>

struct env {
    char dir[64];
    struct cfg *cfg;
    struct store *store;
    struct pki_ca *ca;
    struct acme_ctx *ctx;
    EVP_PKEY *k1, *k2, *k3;
};
static struct env E;

static int
setup(void **state)
{
    char err[CFG_ERR_LEN];
    struct acme_deps deps = {0};

    acme_fixture_open(E.dir, sizeof(E.dir), "/tmp/acmecore-XXXXXX", &E.cfg, &E.ca, &E.store);
    deps.cfg = E.cfg;
    deps.store = E.store;
    deps.cas = &E.ca;
    deps.ncas = 1;
    deps.base_url = BASE "/";
    E.ctx = acme_ctx_new(&deps, err);
    assert_non_null(E.ctx);
    cc_ctx = E.ctx;
    E.k1 = pki_key_generate(PKI_KEY_P256, err);
    E.k2 = pki_key_generate(PKI_KEY_P384, err);
    E.k3 = pki_key_generate(PKI_KEY_P256, err);
    return 0;
}

static int
teardown(void **state)
{
    acme_ctx_free(E.ctx);
    acme_fixture_close(E.dir, E.cfg, E.ca, E.store);
    EVP_PKEY_free(E.k1);
    EVP_PKEY_free(E.k2);
    EVP_PKEY_free(E.k3);
    return 0;
}

static void
test_directory_and_nonce(void **state)
{
    struct acme_response r;
    struct acme_request fast = {.method = "GET", .path = "/acme/default/directory"};
    cJSON *j;
    size_t n;
    char **urls;

    assert_true(acme_is_fast(E.ctx, &fast));
    req("GET", "/acme/default/directory", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_null(hdr(&r, "Link"));
    j = cJSON_Parse(r.body);
    assert_string_equal(acme_json_str(j, "newNonce"), P "new-nonce");
    assert_string_equal(acme_json_str(j, "newAccount"), P "new-account");
    assert_string_equal(acme_json_str(j, "keyChange"), P "key-change");
    assert_string_equal(acme_json_str(j, "renewalInfo"), P "renewal-info");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "meta"),
                                                  "externalAccountRequired")));
    assert_null(cJSON_GetObjectItem(j, "newAuthz"));
    cJSON_Delete(j);
    acme_response_clear(&r);

    req("HEAD", "/acme/default/new-nonce", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "Cache-Control"), "no-store");
    assert_string_equal(hdr(&r, "Link"), "<" P "directory>;rel=\"index\"");
    acme_response_clear(&r);
    req("GET", "/acme/default/new-nonce", NULL, NULL, &r);
    assert_int_equal(r.status, 204);
    assert_null(r.body);
    acme_response_clear(&r);

    urls = acme_directory_urls(E.ctx, &n);
    assert_true(n >= 1);
    assert_string_equal(urls[0], P "directory");
    for (size_t i = 0; i < n; i++)
        free(urls[i]);
    free(urls);
}

static void
test_routing_errors(void **state)
{
    static const char *const notfound[] = {
        "/acme/nope/directory", "/acme/default/", "/acme/default/foo", "/acme/default//directory",
        "/acme/default/directory/", "/acme/default/order/a.b", "/acme/default/order",
        "/acme/default/order/x/y", "/other", "/acme/default/chall/a",
        ("/acme/default/account/"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    };
    struct acme_response r;
    struct acme_request q = {.method = "POST", .path = "/acme/default/new-order"};
    size_t i;

    for (i = 0; i < nitems(notfound); i++) {
        req("GET", notfound[i], NULL, NULL, &r);
        assert_problem(&r, 404, "malformed");
    }
    assert_false(acme_is_fast(E.ctx, &q));
    q.path = "/acme/nope/x";
    assert_true(acme_is_fast(E.ctx, &q));
    req("GET", "/acme/default/order/abc", NULL, NULL, &r);
    assert_string_equal(hdr(&r, "Allow"), "POST");
    assert_problem(&r, 405, "malformed");
    req("DELETE", "/acme/default/directory", NULL, NULL, &r);
    assert_problem(&r, 405, "malformed");
    req("POST", "/acme/default/new-order", "application/json", "{}", &r);
    assert_problem(&r, 415, "malformed");
    req("POST", "/acme/default/new-order", "application/jose+json", "{}", &r);
    assert_problem(&r, 400, "malformed");
    /* ARI ids contain a dot; GET reaches the renewalInfo handler (no such certificate). */
    req("GET", "/acme/default/renewal-info/aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE", NULL, NULL, &r);
    assert_problem(&r, 404, "malformed");
}

static void
test_new_account(void **state)
{
    struct acme_response r;
    char *loc = new_account(E.k1, "{\"contact\":[\"mailto:admin@example.org\"],"
                                  "\"termsOfServiceAgreed\":true,\"orders\":\"x\",\"foo\":1}",
                            201);
    char *again;
    cJSON *j;

    assert_non_null(strstr(loc, P "account/"));
    /* same key → 200, same Location, request fields ignored. */
    post(E.k1, "/acme/default/new-account", NULL, NULL, "{\"contact\":[\"mailto:x@y.org\"]}", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "Location"), loc);
    j = cJSON_Parse(r.body);
    assert_string_equal(acme_json_str(j, "status"), "valid");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "contact"), 0)->valuestring,
                        "mailto:admin@example.org");
    assert_null(cJSON_GetObjectItem(j, "foo"));
    assert_non_null(strstr(acme_json_str(j, "orders"), "/orders"));
    cJSON_Delete(j);
    acme_response_clear(&r);
    /* onlyReturnExisting. */
    again = new_account(E.k1, "{\"onlyReturnExisting\":true}", 200);
    assert_string_equal(again, loc);
    free(again);
    post(E.k2, "/acme/default/new-account", NULL, NULL, "{\"onlyReturnExisting\":true}", &r);
    assert_problem(&r, 400, "accountDoesNotExist");
    /* POST-as-GET of the account. */
    post(E.k1, loc + strlen(BASE), NULL, loc, "", &r);
    assert_int_equal(r.status, 200);
    acme_response_clear(&r);
    /* J-8: new-account with kid. */
    post(E.k1, "/acme/default/new-account", NULL, loc, "{}", &r);
    assert_problem(&r, 400, "malformed");
    free(loc);
}

static void
test_contacts(void **state)
{
    static const struct {
        const char *contact;
        const char *type;
    } rows[] = {
        {"\"tel:+15551234\"", "unsupportedContact"},
        {"\"mailto:a@x.org,b@x.org\"", "invalidContact"},
        {"\"mailto:a@x.org?subject=y\"", "invalidContact"},
        {"\"mailto:not-an-address\"", "invalidContact"},
        {"\"mailto:a@b@c.org\"", "invalidContact"},
        {"\"mailto:a@-x.org\"", "invalidContact"},
        {"\"mailto:a b@x.org\"", "invalidContact"},
        {"\"mailto:a%2Cb@x.org\"", "invalidContact"},
        {"1", "malformed"},
        {"\"mailto:1@x.org\",\"mailto:2@x.org\",\"mailto:3@x.org\",\"mailto:4@x.org\","
         "\"mailto:5@x.org\",\"mailto:6@x.org\",\"mailto:7@x.org\",\"mailto:8@x.org\","
         "\"mailto:9@x.org\"",
         "invalidContact"},
    };
    struct acme_response r;
    size_t i;

    for (i = 0; i < nitems(rows); i++) {
        char *payload = xasprintf("{\"contact\":[%s]}", rows[i].contact);
        post(E.k3, "/acme/default/new-account", NULL, NULL, payload, &r);
        assert_problem(&r, 400, rows[i].type);
        free(payload);
    }
    post(E.k3, "/acme/default/new-account", NULL, NULL, "{\"contact\":\"mailto:a@x.org\"}", &r);
    assert_problem(&r, 400, "malformed");
    /* Nothing was stored. */
    post(E.k3, "/acme/default/new-account", NULL, NULL, "{\"onlyReturnExisting\":true}", &r);
    assert_problem(&r, 400, "accountDoesNotExist");
}

static void
test_nonce_url_kid(void **state)
{
    struct acme_response r;
    char *loc = new_account(E.k1, "{}", 200), *n, *body, *retry;

    /* N-2: unknown nonce; N-5: the answer's nonce works for the retry. */
    body = t_jws(E.k1, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", P "new-account", NULL, "{}");
    req("POST", "/acme/default/new-account", "application/jose+json", body, &r);
    retry = xstrdup(hdr(&r, "Replay-Nonce"));
    assert_problem(&r, 400, "badNonce");
    free(body);
    body = t_jws(E.k1, retry, P "new-account", NULL, "{}");
    req("POST", "/acme/default/new-account", "application/jose+json", body, &r);
    assert_int_equal(r.status, 200);
    acme_response_clear(&r);
    /* N-3: the same request again. */
    req("POST", "/acme/default/new-account", "application/jose+json", body, &r);
    assert_problem(&r, 400, "badNonce");
    free(body);
    free(retry);
    /* N-3: a nonce spent by a request refused for another reason stays spent. */
    n = nonce();
    body = t_jws(E.k1, n, P "new-order", NULL, "{}");
    req("POST", "/acme/default/new-account", "application/jose+json", body, &r);
    assert_problem(&r, 401, "unauthorized"); /* U-1 */
    free(body);
    body = t_jws(E.k1, n, P "new-account", NULL, "{}");
    req("POST", "/acme/default/new-account", "application/jose+json", body, &r);
    assert_problem(&r, 400, "badNonce");
    free(body);
    free(n);
    /* N-3 + J-10: a JWS refused for its alg still spends its nonce; algorithms listed. */
    n = nonce();
    {
        char *jwk = t_jwk(E.k1);
        char *prot = xasprintf("{\"alg\":\"PS256\",\"nonce\":\"%s\",\"url\":\"%s\",\"jwk\":%s}",
                               n, P "new-account", jwk);
        cJSON *j;
        body = t_jws_raw(E.k1, PKI_JWS_ES256, prot, "{}");
        req("POST", "/acme/default/new-account", "application/jose+json", body, &r);
        j = cJSON_Parse(r.body);
        assert_true(cJSON_IsArray(cJSON_GetObjectItem(j, "algorithms")));
        cJSON_Delete(j);
        assert_problem(&r, 400, "badSignatureAlgorithm");
        free(body);
        free(prot);
        free(jwk);
    }
    body = t_jws(E.k1, n, P "new-account", NULL, "{}");
    req("POST", "/acme/default/new-account", "application/jose+json", body, &r);
    assert_problem(&r, 400, "badNonce");
    free(body);
    free(n);
    /* Oversized body. */
    body = xmalloc(ACME_MAX_JWS + 2);
    memset(body, ' ', ACME_MAX_JWS + 1);
    body[ACME_MAX_JWS + 1] = '\0';
    req("POST", "/acme/default/new-account", "application/jose+json", body, &r);
    assert_problem(&r, 413, "malformed");
    free(body);
    /* G-4: POST-as-GET of directory and newNonce. */
    post(E.k1, "/acme/default/directory", NULL, loc, "", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "newNonce"));
    acme_response_clear(&r);
    post(E.k1, "/acme/default/new-nonce", NULL, loc, "", &r);
    assert_int_equal(r.status, 204);
    acme_response_clear(&r);
    /* U-2: trailing slash, host case. */
    post(E.k1, "/acme/default/new-account", P "new-account/", NULL, "{}", &r);
    assert_problem(&r, 401, "unauthorized");
    post(E.k1, "/acme/default/new-account", "https://CA.test/acme/default/new-account", NULL, "{}",
         &r);
    assert_problem(&r, 401, "unauthorized");
    /* J-9: kid never issued, kid of another policy, jwk where kid is needed. */
    post(E.k1, "/acme/default/new-order", NULL, P "account/nosuchaccount", "{}", &r);
    assert_problem(&r, 400, "accountDoesNotExist");
    post(E.k1, "/acme/default/new-order", NULL, BASE "/acme/devices/account/x", "{}", &r);
    assert_problem(&r, 400, "accountDoesNotExist");
    post(E.k1, "/acme/default/new-order", NULL, NULL, "{}", &r);
    assert_problem(&r, 400, "malformed");
    /* Signed by another key than the account's. */
    post(E.k3, "/acme/default/new-order", NULL, loc, "{}", &r);
    assert_problem(&r, 400, "malformed");
    /* A kid request passes authentication and reaches the newOrder handler itself. */
    post(E.k1, "/acme/default/new-order", NULL, loc, "{}", &r);
    assert_non_null(r.body);
    assert_non_null(strstr(r.body, "identifiers"));
    assert_problem(&r, 400, "malformed");
    free(loc);
}

/* An EAB object for key under kid, MACed with mac_key. */
static char *
eab_json(EVP_PKEY *key, const char *kid, const unsigned char *mac_key, const char *url,
         const char *alg, const char *extra)
{
    char *jwk = t_jwk(key);
    char *prot = xasprintf("{\"alg\":\"%s\",\"kid\":\"%s\",\"url\":\"%s\"%s}", alg, kid, url,
                           extra);
    char *out = t_jws_sign(NULL, PKI_JWS__MAX, mac_key, prot, jwk);

    free(jwk);
    free(prot);
    return out;
}

static void
test_eab(void **state)
{
    unsigned char mk[32], bad[32];
    char *mk64, *data, *eab, *payload, *loc, err[ERR_LEN];
    struct store_rec rec = {0};
    struct store_write w = {.op = STORE_INSERT, .rec = &rec};
    struct cfg_policy *pol = (struct cfg_policy *)cfg_policy_find(E.cfg, "default");
    struct acme_response r;
    EVP_PKEY *k4 = pki_key_generate(PKI_KEY_P256, err), *k5 = pki_key_generate(PKI_KEY_P256, err);
    cJSON *j, *sent;

    memset(mk, 7, sizeof(mk));
    memset(bad, 8, sizeof(bad));
    mk64 = b64u_encode(mk, sizeof(mk));
    data = xasprintf("{\"key\":\"%s\"}", mk64);
    rec = (struct store_rec){.kind = STORE_EAB, .id = "kid-1", .status = "unused",
                             .created = clk_now(), .data = data};
    assert_int_equal(store_commit(E.store, &w, 1, err), 0);
    pol->eab_required = true;

    req("GET", "/acme/default/directory", NULL, NULL, &r);
    j = cJSON_Parse(r.body);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "meta"),
                                                 "externalAccountRequired")));
    cJSON_Delete(j);
    acme_response_clear(&r);
    post(k4, "/acme/default/new-account", NULL, NULL, "{}", &r);
    assert_problem(&r, 400, "externalAccountRequired");

    static const struct {
        const char *kid;
        bool bad_mac, other_key, wrong_url;
        const char *alg, *extra;
        int status;
        const char *type;
    } rows[] = {
        {"kid-1", true, false, false, "HS256", "", 401, "unauthorized"},
        {"kid-unknown", false, false, false, "HS256", "", 401, "unauthorized"},
        {"kid-1", false, true, false, "HS256", "", 401, "unauthorized"},
        {"kid-1", false, false, true, "HS256", "", 401, "unauthorized"},
        {"kid-1", false, false, false, "ES256", "", 400, "malformed"},
        {"kid-1", false, false, false, "HS256", ",\"nonce\":\"AAAA\"", 400, "malformed"},
        {"", false, false, false, "HS256", "", 400, "malformed"},
    };
    for (size_t i = 0; i < nitems(rows); i++) {
        eab = eab_json(rows[i].other_key ? k5 : k4, rows[i].kid, rows[i].bad_mac ? bad : mk,
                       rows[i].wrong_url ? P "key-change" : P "new-account", rows[i].alg,
                       rows[i].extra);
        payload = xasprintf("{\"externalAccountBinding\":%s}", eab);
        post(k4, "/acme/default/new-account", NULL, NULL, payload, &r);
        assert_problem(&r, rows[i].status, rows[i].type);
        free(eab);
        free(payload);
    }
    post(k4, "/acme/default/new-account", NULL, NULL, "{\"externalAccountBinding\":\"x\"}", &r);
    assert_problem(&r, 400, "malformed");

    eab = eab_json(k4, "kid-1", mk, P "new-account", "HS256", "");
    payload = xasprintf("{\"externalAccountBinding\":%s}", eab);
    post(k4, "/acme/default/new-account", NULL, NULL, payload, &r);
    assert_int_equal(r.status, 201);
    j = cJSON_Parse(r.body);
    loc = xstrdup(hdr(&r, "Location"));
    /* the binding is echoed as sent. */
    sent = cJSON_Parse(eab);
    assert_true(cJSON_Compare(cJSON_GetObjectItem(j, "externalAccountBinding"), sent, 1));
    cJSON_Delete(sent);
    cJSON_Delete(j);
    acme_response_clear(&r);
    free(payload);
    free(eab);
    memset(&rec, 0, sizeof(rec)); /* borrowed strings: reuse as output */
    free(data);
    assert_int_equal(store_get(E.store, STORE_EAB, "kid-1", &rec, err), 0);
    assert_string_equal(rec.status, "bound");
    assert_non_null(strstr(loc, rec.lookup));
    store_rec_clear(&rec);
    /* Already bound: another key cannot use it. */
    eab = eab_json(k5, "kid-1", mk, P "new-account", "HS256", "");
    payload = xasprintf("{\"externalAccountBinding\":%s}", eab);
    post(k5, "/acme/default/new-account", NULL, NULL, payload, &r);
    assert_problem(&r, 401, "unauthorized");
    pol->eab_required = false;
    free(eab);
    free(payload);
    free(loc);
    free(mk64);
    EVP_PKEY_free(k4);
    EVP_PKEY_free(k5);
}

static void
test_account_update_deactivate(void **state)
{
    char err[ERR_LEN];
    EVP_PKEY *k = pki_key_generate(PKI_KEY_ED25519, err);
    char *loc = new_account(k, "{}", 201), *other = new_account(E.k1, "{}", 200);
    const char *path = loc + strlen(BASE);
    struct acme_response r;
    cJSON *j;

    /* contact changes, the rest is ignored. */
    post(k, path, NULL, loc, "{\"contact\":[\"mailto:new@example.org\"],\"status\":\"valid\","
                             "\"orders\":\"x\",\"foo\":1}", &r);
    assert_int_equal(r.status, 200);
    j = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "contact"), 0)->valuestring,
                        "mailto:new@example.org");
    assert_string_equal(acme_json_str(j, "status"), "valid");
    cJSON_Delete(j);
    acme_response_clear(&r);
    post(k, path, NULL, loc, "{\"contact\":[\"tel:1\"]}", &r);
    assert_problem(&r, 400, "unsupportedContact");
    /* Another account's URL. */
    post(k, other + strlen(BASE), NULL, loc, "", &r);
    assert_problem(&r, 403, "unauthorized");
    /* deactivate, then every request is 401. */
    post(k, path, NULL, loc, "{\"status\":\"deactivated\"}", &r);
    assert_int_equal(r.status, 200);
    j = cJSON_Parse(r.body);
    assert_string_equal(acme_json_str(j, "status"), "deactivated");
    cJSON_Delete(j);
    acme_response_clear(&r);
    post(k, path, NULL, loc, "", &r);
    assert_problem(&r, 401, "unauthorized");
    post(k, "/acme/default/new-order", NULL, loc, "{}", &r);
    assert_problem(&r, 401, "unauthorized");
    post(k, path, NULL, loc, "{\"status\":\"valid\"}", &r);
    assert_problem(&r, 401, "unauthorized");
    free(loc);
    free(other);
    EVP_PKEY_free(k);
}

static void
test_ctx_errors(void **state)
{
    struct acme_deps deps = {.cfg = E.cfg, .store = E.store, .cas = &E.ca, .ncas = 0,
                             .base_url = BASE};
    char err[ERR_LEN] = "";

    /* A policy whose CA is not loaded is refused. */
    assert_null(acme_ctx_new(&deps, err));
    assert_non_null(strstr(err, "CA"));
    deps.ncas = 1;
    deps.base_url = "";
    assert_null(acme_ctx_new(&deps, err));
    deps.base_url = NULL;
    assert_null(acme_ctx_new(&deps, err));
    acme_ctx_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_directory_and_nonce),
        cmocka_unit_test(test_routing_errors),
        cmocka_unit_test(test_new_account),
        cmocka_unit_test(test_contacts),
        cmocka_unit_test(test_nonce_url_kid),
        cmocka_unit_test(test_eab),
        cmocka_unit_test(test_account_update_deactivate),
        cmocka_unit_test(test_ctx_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
