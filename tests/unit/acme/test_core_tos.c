/*
 * test_core_tos.c: terms of service at the protocol core (A-5, D-5) through
 * acme_handle(): with acme.meta.terms_of_service set, newAccount needs
 * termsOfServiceAgreed: true and stores nothing without it, and the
 * directory's meta carries the URL; unset, neither applies. What the account
 * records and re-agreement are test_res_terms.c's.
 */
#include "test_res_helpers.h"

#include "core_client.h"

#define TOS1 "https://ca.test/terms/v1"
#define TOS2 "https://ca.test/terms/v2"

/* Sets acme.meta.terms_of_service in T's config (NULL: unset). */
static void
set_tos(const char *url)
{
    free(T.cfg->acme.terms_of_service);
    T.cfg->acme.terms_of_service = url != NULL ? xstrdup(url) : NULL;
}

static const struct {
    const char *name;
    const char *tos; /* acme.meta.terms_of_service for the row */
    const char *payload;
    int status;
    const char *type; /* NULL: the account is created */
} tos_cases[] = {
    {"flag absent", TOS1, "{}", 400, "malformed"},
    {"flag false", TOS1, "{\"termsOfServiceAgreed\":false}", 400, "malformed"},
    {"flag a string", TOS1, "{\"termsOfServiceAgreed\":\"true\"}", 400, "malformed"},
    {"flag a number", TOS1, "{\"termsOfServiceAgreed\":1}", 400, "malformed"},
    {"contact only", TOS1, "{\"contact\":[\"mailto:tos@example.org\"]}", 400, "malformed"},
    /* the refusals stored nothing. */
    {"then onlyReturnExisting", TOS1, "{\"onlyReturnExisting\":true}", 400, "accountDoesNotExist"},
    {"agreed", TOS1, "{\"termsOfServiceAgreed\":true}", 201, NULL},
    {"terms unset, flag absent", NULL, "{}", 201, NULL},
};

/* newAccount is refused unless termsOfServiceAgreed is true while terms are configured. */
static void
test_new_account_tos_required(void **state)
{
    struct acme_response r;
    char err[ERR_LEN], *loc;
    EVP_PKEY *key = pki_key_generate(PKI_KEY_P256, err);
    cJSON *j;
    size_t i;

    for (i = 0; i < nitems(tos_cases); i++) {
        print_message("[ row      ] %s\n", tos_cases[i].name);
        set_tos(tos_cases[i].tos);
        post(key, "/acme/default/new-account", NULL, NULL, tos_cases[i].payload, &r);
        if (tos_cases[i].type == NULL) {
            loc = xstrdup(hdr(&r, "Location"));
            if (r.status != tos_cases[i].status)
                fail_msg("%s: %d %s", tos_cases[i].name, r.status, r.body ? r.body : "");
            acme_response_clear(&r);
            /* The account exists now: the next row needs a key without one. */
            assert_int_equal(get_status(key, loc, loc), 200);
            free(loc);
            EVP_PKEY_free(key);
            key = pki_key_generate(PKI_KEY_P256, err);
            continue;
        }
        /* The refusal says where the terms are. */
        j = cJSON_Parse(r.body);
        if (strcmp(tos_cases[i].type, "malformed") == 0)
            assert_non_null(strstr(acme_json_str(j, "detail"), TOS1));
        cJSON_Delete(j);
        assert_problem(&r, tos_cases[i].status, tos_cases[i].type);
    }
    set_tos(NULL);
    EVP_PKEY_free(key);
}

/*
 * D-5: the directory's meta.termsOfService follows the setting. The document
 * is built with the ctx (a reload makes a new one), so each row gets its own.
 */
static void
test_directory_tos(void **state)
{
    static const char *const urls[] = {NULL, TOS1, TOS2, NULL};
    struct acme_response r;
    const cJSON *meta, *tos;
    cJSON *j;
    size_t i;

    for (i = 0; i < nitems(urls); i++) {
        set_tos(urls[i]);
        cc_ctx = t_ctx_new(t_validate, 0);
        req("GET", "/acme/default/directory", NULL, NULL, &r);
        assert_int_equal(r.status, 200);
        j = cJSON_Parse(r.body);
        meta = cJSON_GetObjectItemCaseSensitive(j, "meta");
        assert_non_null(meta);
        tos = cJSON_GetObjectItemCaseSensitive(meta, "termsOfService");
        if (urls[i] == NULL)
            assert_null(tos);
        else
            assert_string_equal(cJSON_GetStringValue(tos), urls[i]);
        cJSON_Delete(j);
        acme_response_clear(&r);
        acme_ctx_free(cc_ctx);
    }
    cc_ctx = T.ctx;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_account_tos_required),
        cmocka_unit_test(test_directory_tos),
    };

    return cmocka_run_group_tests(tests, cc_res_setup, t_teardown);
}
