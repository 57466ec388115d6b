/*
 * core_client.h: requests through acme_handle() as a client sends them, for
 * the test_core_*.c unit tests that drive the router: a fresh nonce per
 * request, JWS bodies from core_helpers.h and checks every answer must pass.
 * The including file points cc_ctx at its ctx in its setup (each test is its
 * own executable, so everything here is static).
 */
#ifndef ACMESRV_TEST_CORE_CLIENT_H
#define ACMESRV_TEST_CORE_CLIENT_H

#include "core_helpers.h"

#define BASE "https://ca.test"
#define P BASE "/acme/default/"

/* The ctx requests go to. */
static struct acme_ctx *cc_ctx;

static inline const char *
hdr(const struct acme_response *r, const char *name)
{
    size_t i;

    for (i = 0; i < r->nheaders; i++)
        if (strcmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static inline void
req(const char *method, const char *path, const char *ct, const char *body,
    struct acme_response *r)
{
    struct acme_request q = {.method = method, .path = path, .content_type = ct,
                             .body = (const unsigned char *)body,
                             .body_len = body != NULL ? strlen(body) : 0, .peer = "127.0.0.1"};

    acme_handle(cc_ctx, &q, r);
    /* Every answer carries a nonce and CORS (N-1, N-5, T-3). */
    assert_non_null(hdr(r, "Replay-Nonce"));
    assert_string_equal(hdr(r, "Access-Control-Allow-Origin"), "*");
}

static inline char *
nonce(void)
{
    struct acme_response r;
    char *n;

    req("HEAD", "/acme/default/new-nonce", NULL, NULL, &r);
    n = xstrdup(hdr(&r, "Replay-Nonce"));
    acme_response_clear(&r);
    return n;
}

/* POSTs a JWS signed by key (kid or jwk) to path; url defaults to BASE path. */
static inline void
post(EVP_PKEY *key, const char *path, const char *url, const char *kid, const char *payload,
     struct acme_response *r)
{
    char *n = nonce(), *u = url != NULL ? xstrdup(url) : xasprintf(BASE "%s", path);
    char *body = t_jws(key, n, u, kid, payload);

    req("POST", path, "application/jose+json", body, r);
    free(n);
    free(u);
    free(body);
}

/* The HTTP status of a POST-as-GET of url (under BASE) signed by key with kid. */
static inline int
get_status(EVP_PKEY *key, const char *kid, const char *url)
{
    struct acme_response r;
    int status;

    post(key, url + strlen(BASE), NULL, kid, "", &r);
    status = r.status;
    acme_response_clear(&r);
    return status;
}

/* Asserts r is a problem document of status and type; clears r. */
static inline void
assert_problem(struct acme_response *r, int status, const char *type)
{
    cJSON *j = cJSON_Parse(r->body);
    char *want = xasprintf(ACME_ERR_NS "%s", type);

    if (r->status != status || j == NULL || strcmp(acme_json_str(j, "type"), want) != 0)
        fail_msg("want %d %s, got %d %s", status, type, r->status, r->body ? r->body : "");
    assert_string_equal(r->content_type, "application/problem+json");
    cJSON_Delete(j);
    free(want);
    acme_response_clear(r);
}

/* Creates an account for key; returns its URL (caller frees). */
static inline char *
new_account(EVP_PKEY *key, const char *payload, int want_status)
{
    struct acme_response r;
    char *loc;

    post(key, "/acme/default/new-account", NULL, NULL, payload, &r);
    if (r.status != want_status)
        fail_msg("new-account: %d %s", r.status, r.body ? r.body : "");
    loc = xstrdup(hdr(&r, "Location"));
    acme_response_clear(&r);
    return loc;
}

#ifdef ACMESRV_TEST_RES_HELPERS_H
/* Group setup for tests on test_res_helpers.h's environment: requests go to T.ctx. */
static inline int
cc_res_setup(void **state)
{
    t_setup(state);
    cc_ctx = T.ctx;
    return 0;
}
#endif

#endif
