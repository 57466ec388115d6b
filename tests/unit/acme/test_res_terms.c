/*
 * test_res_terms.c: agreement to the terms of service (terms.c, A-5, A-8,
 * A-10) through acme_handle(), since the refusal is the router's: the URL an
 * account agreed to at newAccount and at an update, no lockout while
 * acme.meta.terms_of_service_reagree is off, and with it on 403
 * userActionRequired (Link rel="terms-of-service", instance) for newOrder,
 * finalize, a challenge response and revokeCert while reads, the update that
 * re-agrees and deactivation still work.
 */
#include "test_res_helpers.h"

#include "core_helpers.h"

#define P "/acme/default/"
#define TOS1 "https://ca.test/terms/v1"
#define TOS2 "https://ca.test/terms/v2"
#define AGREE "https://ca.test/agree"
#define ONE_ID "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"tos.example.org\"}]}"

/* Sets the terms keys in T's live config, as a reload would. */
static void
set_terms(const char *tos, bool reagree, const char *instance)
{
    struct cfg_acme *ac = &T.cfg->acme;

    free(ac->terms_of_service);
    free(ac->terms_instance);
    ac->terms_of_service = tos != NULL ? xstrdup(tos) : NULL;
    ac->terms_instance = instance != NULL ? xstrdup(instance) : NULL;
    ac->terms_reagree = reagree;
}

static void
handle(const char *method, const char *path, const char *body, struct acme_response *r)
{
    struct acme_request q = {.method = method, .path = path,
                             .content_type = "application/jose+json",
                             .body = (const unsigned char *)body,
                             .body_len = body != NULL ? strlen(body) : 0, .peer = "127.0.0.1"};

    acme_handle(T.ctx, &q, r);
}

/* POSTs payload (NULL: POST-as-GET) to path signed by key, with kid or (NULL) the jwk. */
static void
post(EVP_PKEY *key, const char *kid, const char *path, const char *payload,
     struct acme_response *r)
{
    struct acme_response nr;
    char *url = xasprintf(T_BASE "%s", path), *body;
    size_t i;
    const char *nonce = NULL;

    handle("HEAD", P "new-nonce", NULL, &nr);
    for (i = 0; i < nr.nheaders; i++)
        if (strcmp(nr.headers[i].name, "Replay-Nonce") == 0)
            nonce = nr.headers[i].value;
    assert_non_null(nonce);
    body = t_jws(key, nonce, url, kid, payload != NULL ? payload : "");
    handle("POST", path, body, r);
    acme_response_clear(&nr);
    free(body);
    free(url);
}

/* The Link header whose value ends in rel="rel", or NULL. */
static const char *
link_rel(const struct acme_response *r, const char *rel)
{
    char *want = xasprintf(";rel=\"%s\"", rel);
    const char *found = NULL;
    size_t i, n = strlen(want);

    for (i = 0; i < r->nheaders && found == NULL; i++) {
        const char *v = r->headers[i].value;
        if (strcmp(r->headers[i].name, "Link") == 0 && strlen(v) > n &&
            strcmp(v + strlen(v) - n, want) == 0)
            found = v;
    }
    free(want);
    return found;
}

/* Asserts r's status and, for a problem, its type; clears r. */
static void
expect(struct acme_response *r, int status, const char *type)
{
    cJSON *j = r->body != NULL ? cJSON_Parse(r->body) : NULL;
    const char *got = acme_json_str(j, "type");

    if (r->status != status ||
        (type != NULL && (got == NULL || strcmp(got + strlen(ACME_ERR_NS), type) != 0)))
        fail_msg("want %d %s, got %d %s", status, type != NULL ? type : "",
                 r->status, r->body != NULL ? r->body : "");
    cJSON_Delete(j);
    acme_response_clear(r);
}

/* the refusal carries the current terms in a Link and the instance URL. */
static void
expect_must_agree(struct acme_response *r, const char *tos, const char *instance)
{
    cJSON *j = cJSON_Parse(r->body);
    char *link = xasprintf("<%s>;rel=\"terms-of-service\"", tos);

    assert_non_null(link_rel(r, "terms-of-service"));
    assert_string_equal(link_rel(r, "terms-of-service"), link);
    assert_non_null(link_rel(r, "index"));
    assert_string_equal(acme_json_str(j, "instance"), instance);
    cJSON_Delete(j);
    free(link);
    expect(r, 403, "userActionRequired");
}

/* newAccount for key with payload; kid (the account URL) into kid, id into id. */
static void
new_account(EVP_PKEY *key, const char *payload, char kid[ACME_MAX_URL], char id[ACME_MAX_ID])
{
    struct acme_response r;
    size_t i;

    post(key, NULL, P "new-account", payload, &r);
    assert_int_equal(r.status, 201);
    for (i = 0; i < r.nheaders; i++)
        if (strcmp(r.headers[i].name, "Location") == 0)
            snprintf(kid, ACME_MAX_URL, "%s", r.headers[i].value);
    t_last(kid, 1, id, ACME_MAX_ID);
    acme_response_clear(&r);
}

/* The terms URL the stored account id agreed to ("" = none). */
static void
expect_recorded(const char *id, const char *terms)
{
    struct acme_account a = {0};
    struct acme_problem prob = {0};

    assert_int_equal(acme_account_load(T.ctx, id, &a, &prob), 0);
    assert_string_equal(a.terms, terms);
    acme_account_clear(&a);
}

/* newOrder as kid (201); the ids of the order, its authz and first challenge (may be NULL). */
static void
new_order(EVP_PKEY *key, const char *kid, char *order, char *authz, char *chall)
{
    struct acme_response r;
    cJSON *j;
    char az[ACME_MAX_ID], ch[ACME_MAX_ID], *path;
    size_t i;

    post(key, kid, P "new-order", ONE_ID, &r);
    if (r.status != 201)
        fail_msg("new-order: %d %s", r.status, r.body != NULL ? r.body : "");
    j = cJSON_Parse(r.body);
    for (i = 0; i < r.nheaders && order != NULL; i++)
        if (strcmp(r.headers[i].name, "Location") == 0)
            t_last(r.headers[i].value, 1, order, ACME_MAX_ID);
    t_last(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "authorizations"), 0)->valuestring, 1, az,
           sizeof(az));
    cJSON_Delete(j);
    acme_response_clear(&r);
    if (authz == NULL)
        return;
    path = xasprintf(P "authz/%s", az);
    post(key, kid, path, NULL, &r);
    free(path);
    j = cJSON_Parse(r.body);
    t_last(t_str(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "challenges"), 0), "url"), 1, ch,
           sizeof(ch));
    snprintf(authz, ACME_MAX_ID, "%s", az);
    snprintf(chall, ACME_MAX_ID, "%s", ch);
    cJSON_Delete(j);
    acme_response_clear(&r);
}

/* Agreement is recorded at newAccount and at an update; reagree off locks nobody out. */
static void
test_agreement_recorded(void **state)
{
    struct acme_response r;
    char kid[ACME_MAX_URL], id[ACME_MAX_ID], *acct;
    char err[ERR_LEN];
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);

    set_terms(TOS1, false, NULL);
    /* terms configured, no agreement: refused. */
    post(key, NULL, P "new-account", "{}", &r);
    expect(&r, 400, "malformed");
    new_account(key, "{\"termsOfServiceAgreed\":true}", kid, id);
    expect_recorded(id, TOS1);
    acct = xasprintf(P "account/%s", id);

    /* New terms without reagree: the account goes on as before. */
    set_terms(TOS2, false, NULL);
    new_order(key, kid, NULL, NULL, NULL);
    /* false changes nothing; A-6: a repeated newAccount records nothing. */
    post(key, kid, acct, "{\"termsOfServiceAgreed\":false}", &r);
    expect(&r, 200, NULL);
    post(key, NULL, P "new-account", "{\"termsOfServiceAgreed\":true}", &r);
    expect(&r, 200, NULL);
    expect_recorded(id, TOS1);
    /* §7.3.3: agreeing by update records the current terms. */
    post(key, kid, acct, "{\"termsOfServiceAgreed\":true}", &r);
    expect(&r, 200, NULL);
    expect_recorded(id, TOS2);
    free(acct);
    EVP_PKEY_free(key);
    set_terms(NULL, false, NULL);
}

/* Reagree on: the acting requests are refused, reads and the way out are not. */
static void
test_reagree_refuses(void **state)
{
    struct acme_response r;
    char kid[ACME_MAX_URL], kid2[ACME_MAX_URL], id[ACME_MAX_ID], id2[ACME_MAX_ID];
    char order[ACME_MAX_ID], az[ACME_MAX_ID], ch[ACME_MAX_ID], path[256], *reads[5];
    char err[ERR_LEN];
    size_t i;
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    EVP_PKEY *key2 = pki_key_generate(PKI_KEY_P256, err);
    EVP_PKEY *other = pki_key_generate(PKI_KEY_P256, err);

    set_terms(TOS1, false, NULL);
    new_account(key, "{\"termsOfServiceAgreed\":true}", kid, id);
    new_account(key2, "{\"termsOfServiceAgreed\":true}", kid2, id2);
    new_order(key, kid, order, az, ch);

    set_terms(TOS2, true, AGREE);
    post(key, kid, P "new-order", ONE_ID, &r);
    expect_must_agree(&r, TOS2, AGREE);
    snprintf(path, sizeof(path), P "order/%s/finalize", order);
    post(key, kid, path, "{\"csr\":\"AAAA\"}", &r);
    expect_must_agree(&r, TOS2, AGREE);
    snprintf(path, sizeof(path), P "chall/%s/%s", az, ch);
    post(key, kid, path, "{}", &r);
    expect_must_agree(&r, TOS2, AGREE);
    post(key, kid, P "revoke-cert", "{\"certificate\":\"AAAA\"}", &r);
    expect_must_agree(&r, TOS2, AGREE);
    /* Signed by a certificate key there is no account to agree: the handler decides. */
    post(other, NULL, P "revoke-cert", "{\"certificate\":\"AAAA\"}", &r);
    expect(&r, 400, "malformed");

    /* Reads need no agreement. */
    reads[0] = xasprintf(P "chall/%s/%s", az, ch);
    reads[1] = xasprintf(P "authz/%s", az);
    reads[2] = xasprintf(P "order/%s", order);
    reads[3] = xasprintf(P "account/%s/orders", id);
    reads[4] = xasprintf(P "account/%s", id);
    for (i = 0; i < nitems(reads); i++) {
        post(key, kid, reads[i], NULL, &r);
        expect(&r, 200, NULL);
        free(reads[i]);
    }
    post(key, NULL, P "new-account", "{\"onlyReturnExisting\":true}", &r);
    expect(&r, 200, NULL);

    /* Deactivation needs no agreement either. */
    snprintf(path, sizeof(path), P "account/%s", id2);
    post(key2, kid2, path, "{\"status\":\"deactivated\"}", &r);
    expect(&r, 200, NULL);

    /* Re-agreement by update: the account proceeds. */
    snprintf(path, sizeof(path), P "account/%s", id);
    post(key, kid, path, "{\"termsOfServiceAgreed\":true}", &r);
    expect(&r, 200, NULL);
    expect_recorded(id, TOS2);
    new_order(key, kid, NULL, NULL, NULL);
    snprintf(path, sizeof(path), P "chall/%s/%s", az, ch);
    post(key, kid, path, "{}", &r);
    expect(&r, 200, NULL);
    EVP_PKEY_free(key);
    EVP_PKEY_free(key2);
    EVP_PKEY_free(other);
    set_terms(NULL, false, NULL);
}

/* An account from before any terms must agree once terms come with reagree on. */
static void
test_reagree_unrecorded(void **state)
{
    struct acme_response r;
    char kid[ACME_MAX_URL], id[ACME_MAX_ID], path[256];
    char err[ERR_LEN];
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);

    set_terms(NULL, false, NULL);
    new_account(key, "{\"termsOfServiceAgreed\":true}", kid, id);
    expect_recorded(id, "");
    /* Reagree without terms has nothing to ask for (the config refuses it anyway). */
    T.cfg->acme.terms_reagree = true;
    new_order(key, kid, NULL, NULL, NULL);

    set_terms(TOS1, true, NULL);
    post(key, kid, P "new-order", ONE_ID, &r);
    expect_must_agree(&r, TOS1, TOS1); /* instance defaults to the terms */
    snprintf(path, sizeof(path), P "account/%s", id);
    post(key, kid, path, "{\"contact\":[\"mailto:tos@example.org\"]}", &r);
    expect(&r, 200, NULL);
    post(key, kid, P "new-order", ONE_ID, &r);
    expect_must_agree(&r, TOS1, TOS1);
    post(key, kid, path, "{\"termsOfServiceAgreed\":true}", &r);
    expect(&r, 200, NULL);
    expect_recorded(id, TOS1);
    new_order(key, kid, NULL, NULL, NULL);
    EVP_PKEY_free(key);
    set_terms(NULL, false, NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agreement_recorded),
        cmocka_unit_test(test_reagree_refuses),
        cmocka_unit_test(test_reagree_unrecorded),
    };

    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
