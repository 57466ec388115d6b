/*
 * test_core_keychange.c: account key rollover (keychange.c, RFC 8555 §7.3.5)
 * through acme_handle(): a table of keyChange requests that must be refused
 * (K-2..K-9), each with the problem its row prescribes and the account key
 * left as it was; then a roll that succeeds (K-10) with an order pending
 * across it that is validated and finalized with the new key (K-11, CH-1).
 */
#include "test_res_helpers.h"

#include "core_client.h"

#define KEY_CHANGE "/acme/default/key-change"

/* A P-256 point that is not on the curve (J-11). */
#define OFF_CURVE_JWK                                                                              \
    "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","     \
    "\"y\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}"

/*
 * The keys a row's inner JWS names in its jwk or is signed with: the new key
 * (P-384), the account's current one (P-256), the key of another account
 * (P-256) and an unrelated one (P-384, so an ES384 signature by it reaches
 * the signature check under the new key), and the key of an account of the
 * devices policy (P-256; K-9 holds across policies, SEC-7). K_OFF_CURVE names OFF_CURVE_JWK,
 * K_NONE means no jwk (no signature as signer), K_MAC an HS256 MAC.
 */
enum kc_key { K_NEW, K_OLD, K_OTHER, K_THIRD, K_ELSEWHERE, K_OFF_CURVE, K_NONE, K_MAC };

/* What the inner payload holds. */
enum kc_payload {
    PL_OK,            /* account: this account, oldKey: its key */
    PL_OTHER_ACCOUNT, /* account: another account's URL */
    PL_THIRD_OLDKEY,  /* oldKey: an unrelated key */
    PL_NO_OLDKEY,
    PL_NO_ACCOUNT,
    PL_OLDKEY_STRING, /* oldKey is not a JWK object */
    PL_EMPTY,         /* "": the inner JWS is a POST-as-GET */
};

/* Whose URL the refusal's Location names (K-9). */
enum kc_loc { LOC_NONE, LOC_SELF, LOC_OTHER, LOC_ELSEWHERE };

struct kc_case {
    const char *name;
    const char *outer;  /* the outer payload verbatim instead of an inner JWS, or NULL */
    enum kc_key jwk;    /* the inner jwk */
    enum kc_key signer; /* who signs the inner JWS */
    const char *alg;    /* inner alg; NULL: the one that fits the signer */
    const char *extra;  /* more inner header members */
    bool url_new_account;
    enum kc_payload payload;
    int status;
    const char *type;
    enum kc_loc loc;
};

static const struct kc_case kc_cases[] = {
    /* K-2: the outer payload is itself a JWS. */
    {"outer payload is plain JSON", .outer = "{\"account\":\"x\"}", .status = 400,
     .type = "malformed"},
    {"outer POST-as-GET", .outer = "", .status = 400, .type = "malformed"},
    /* K-3: jwk and no nonce, and the normal JWS rules (J-5, J-7, J-11). */
    {"inner kid instead of jwk", .jwk = K_NONE, .signer = K_NEW,
     .extra = ",\"kid\":\"" P "account/x\"", .status = 400, .type = "malformed"},
    {"inner jwk and kid", .jwk = K_NEW, .signer = K_NEW, .extra = ",\"kid\":\"" P "account/x\"",
     .status = 400, .type = "malformed"},
    {"inner nonce", .jwk = K_NEW, .signer = K_NEW, .extra = ",\"nonce\":\"AAAA\"", .status = 400,
     .type = "malformed"},
    {"inner alg none", .jwk = K_NEW, .signer = K_NONE, .alg = "none", .status = 400,
     .type = "badSignatureAlgorithm"},
    {"inner alg HS256", .jwk = K_NEW, .signer = K_MAC, .alg = "HS256", .status = 400,
     .type = "badSignatureAlgorithm"},
    {"inner jwk off the curve", .jwk = K_OFF_CURVE, .signer = K_OTHER, .status = 400,
     .type = "badPublicKey"},
    {"inner POST-as-GET", .jwk = K_NEW, .signer = K_NEW, .payload = PL_EMPTY, .status = 400,
     .type = "malformed"},
    /* K-4: the inner signature verifies under the inner jwk. */
    {"inner signed by a third key", .jwk = K_NEW, .signer = K_THIRD, .status = 400,
     .type = "malformed"},
    /* K-5: account and oldKey. */
    {"oldKey missing", .jwk = K_NEW, .signer = K_NEW, .payload = PL_NO_OLDKEY, .status = 400,
     .type = "malformed"},
    {"account missing", .jwk = K_NEW, .signer = K_NEW, .payload = PL_NO_ACCOUNT, .status = 400,
     .type = "malformed"},
    {"oldKey not a JWK", .jwk = K_NEW, .signer = K_NEW, .payload = PL_OLDKEY_STRING,
     .status = 400, .type = "malformed"},
    /* K-6: inner url = outer url. */
    {"inner url is newAccount", .jwk = K_NEW, .signer = K_NEW, .url_new_account = true,
     .status = 401, .type = "unauthorized"},
    /* K-7: account = the outer kid. */
    {"account is another account", .jwk = K_NEW, .signer = K_NEW, .payload = PL_OTHER_ACCOUNT,
     .status = 401, .type = "unauthorized"},
    /* K-8: oldKey = the current key. */
    {"oldKey is an unrelated key", .jwk = K_NEW, .signer = K_NEW, .payload = PL_THIRD_OLDKEY,
     .status = 401, .type = "unauthorized"},
    /* K-9: no account holds the new key yet; 409 with that account's Location. */
    {"new key is another account's", .jwk = K_OTHER, .signer = K_OTHER, .status = 409,
     .type = "malformed", .loc = LOC_OTHER},
    /* Rows are keyed per policy; the key is still in use, so the same 409, its own URL. */
    {"new key is an account's of another policy", .jwk = K_ELSEWHERE, .signer = K_ELSEWHERE,
     .status = 409, .type = "malformed", .loc = LOC_ELSEWHERE},
    {"new key is the current one", .jwk = K_OLD, .signer = K_OLD, .status = 409,
     .type = "malformed", .loc = LOC_SELF},
};

/* The keys and accounts of one rollover test. */
struct kc_env {
    EVP_PKEY *key[K_ELSEWHERE + 1]; /* indexed by K_NEW .. K_ELSEWHERE */
    char *account, *other;          /* URLs of the rolling account and of another one */
    char *elsewhere;                /* URL of the devices policy's account */
};

static void
kc_env_init(struct kc_env *k)
{
    struct acme_response r;
    char err[ERR_LEN];

    k->key[K_NEW] = pki_key_generate(PKI_KEY_P384, err);
    k->key[K_OLD] = pki_key_generate(PKI_KEY_P256, err);
    k->key[K_OTHER] = pki_key_generate(PKI_KEY_P256, err);
    k->key[K_THIRD] = pki_key_generate(PKI_KEY_P384, err);
    k->key[K_ELSEWHERE] = pki_key_generate(PKI_KEY_P256, err);
    k->account = new_account(k->key[K_OLD], "{}", 201);
    k->other = new_account(k->key[K_OTHER], "{}", 201);
    post(k->key[K_ELSEWHERE], "/acme/devices/new-account", NULL, NULL, "{}", &r);
    assert_int_equal(r.status, 201);
    k->elsewhere = xstrdup(hdr(&r, "Location"));
    acme_response_clear(&r);
}

static void
kc_env_clear(struct kc_env *k)
{
    for (size_t i = 0; i < nitems(k->key); i++)
        EVP_PKEY_free(k->key[i]);
    free(k->account);
    free(k->other);
    free(k->elsewhere);
}

static char *
kc_payload(enum kc_payload pl, const struct kc_env *k)
{
    char *old = t_jwk(k->key[pl == PL_THIRD_OLDKEY ? K_THIRD : K_OLD]), *out;

    switch (pl) {
    case PL_NO_OLDKEY: out = xasprintf("{\"account\":\"%s\"}", k->account); break;
    case PL_NO_ACCOUNT: out = xasprintf("{\"oldKey\":%s}", old); break;
    case PL_OLDKEY_STRING:
        out = xasprintf("{\"account\":\"%s\",\"oldKey\":\"x\"}", k->account);
        break;
    case PL_EMPTY: out = xstrdup(""); break;
    default:
        out = xasprintf("{\"account\":\"%s\",\"oldKey\":%s}",
                        pl == PL_OTHER_ACCOUNT ? k->other : k->account, old);
        break;
    }
    free(old);
    return out;
}

/* The inner JWS of row c (caller frees). */
static char *
kc_inner(const struct kc_case *c, const struct kc_env *k)
{
    static const unsigned char mac_key[32] = {7};
    EVP_PKEY *signer = c->signer <= K_ELSEWHERE ? k->key[c->signer] : NULL;
    enum pki_jws_alg alg = signer == NULL                            ? PKI_JWS__MAX
                           : pki_key_type_of(signer) == PKI_KEY_P384 ? PKI_JWS_ES384
                                                                     : PKI_JWS_ES256;
    char *jwk = c->jwk == K_OFF_CURVE ? xstrdup(OFF_CURVE_JWK)
                : c->jwk == K_NONE    ? NULL
                                      : t_jwk(k->key[c->jwk]);
    char *payload = kc_payload(c->payload, k), *prot, *out;
    struct buf b = {0};

    buf_printf(&b, "{\"alg\":\"%s\",\"url\":\"%s\"",
               c->alg != NULL ? c->alg : pki_jws_alg_name(alg),
               c->url_new_account ? P "new-account" : BASE KEY_CHANGE);
    if (jwk != NULL)
        buf_printf(&b, ",\"jwk\":%s", jwk);
    buf_printf(&b, "%s}", c->extra != NULL ? c->extra : "");
    prot = buf_take(&b);
    out = t_jws_sign(signer, alg, c->signer == K_MAC ? mac_key : NULL, prot, payload);
    free(jwk);
    free(payload);
    free(prot);
    return out;
}

static void
test_key_change_refused(void **state)
{
    struct acme_response r;
    struct kc_env k;
    char *inner;
    size_t i;

    kc_env_init(&k);
    for (i = 0; i < nitems(kc_cases); i++) {
        const struct kc_case *c = &kc_cases[i];
        const char *want_loc = c->loc == LOC_SELF        ? k.account
                               : c->loc == LOC_OTHER     ? k.other
                               : c->loc == LOC_ELSEWHERE ? k.elsewhere
                                                         : NULL;

        print_message("[ row      ] %s\n", c->name);
        inner = c->outer != NULL ? xstrdup(c->outer) : kc_inner(c, &k);
        post(k.key[K_OLD], KEY_CHANGE, NULL, k.account, inner, &r);
        if (want_loc != NULL)
            assert_string_equal(hdr(&r, "Location"), want_loc);
        assert_problem(&r, c->status, c->type);
        /* Nothing changed: the current key still works, the new one does not. */
        assert_int_equal(get_status(k.key[K_OLD], k.account, k.account), 200);
        assert_int_not_equal(get_status(k.key[K_NEW], k.account, k.account), 200);
        assert_int_equal(get_status(k.key[K_ELSEWHERE], k.elsewhere, k.elsewhere), 200);
        free(inner);
    }
    kc_env_clear(&k);
}

/* A JSON member of the body of r (borrowed from j). */
static const char *
member(cJSON **j, const struct acme_response *r, const char *name)
{
    cJSON_Delete(*j);
    *j = cJSON_Parse(r->body);
    return acme_json_str(*j, name);
}

/* POST-as-GET (payload NULL) or POST of payload to url with key; asserts want_status. */
static void
kid_post(EVP_PKEY *key, const char *kid, const char *url, const char *payload, int want_status,
         struct acme_response *r)
{
    post(key, url + strlen(BASE), NULL, kid, payload != NULL ? payload : "", r);
    if (r->status != want_status)
        fail_msg("%s: want %d, got %d %s", url, want_status, r->status, r->body ? r->body : "");
}

/* The dns-01 challenge of the authz object j: its URL and token (borrowed). */
static void
dns01_of(const cJSON *j, const char **url, const char **token)
{
    const cJSON *ch;

    *url = *token = NULL;
    cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(j, "challenges"))
    {
        if (strcmp(acme_json_str(ch, "type"), "dns-01") == 0) {
            *url = acme_json_str(ch, "url");
            *token = acme_json_str(ch, "token");
        }
    }
    assert_non_null(*url);
}

/*
 * K-10, K-11, CH-1: after the roll the old key is refused and the new one
 * works; the order made before it is answered, validated (with the new key's
 * thumbprint in the key authorization) and finalized with the new key.
 */
static void
test_key_change_keeps_orders(void **state)
{
    static const struct kc_case roll = {"roll", .jwk = K_NEW, .signer = K_NEW};
    struct acme_response r;
    struct kc_env k;
    char *order, *authz, *chall, *inner, *want, *csr, *payload, *fin, *cert, tp[44];
    const char *url, *token;
    struct acme_validation *v;
    EVP_PKEY *cert_key;
    char err[ERR_LEN];
    cJSON *j = NULL;

    kc_env_init(&k);
    kid_post(k.key[K_OLD], k.account, P "new-order",
             "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"roll.example\"}]}", 201, &r);
    order = xstrdup(hdr(&r, "Location"));
    fin = xstrdup(member(&j, &r, "finalize"));
    authz = xstrdup(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "authorizations"), 0)
                        ->valuestring);
    acme_response_clear(&r);

    inner = kc_inner(&roll, &k);
    kid_post(k.key[K_OLD], k.account, BASE KEY_CHANGE, inner, 200, &r);
    assert_string_equal(member(&j, &r, "status"), "valid");
    acme_response_clear(&r);
    free(inner);
    /* K-10: the old key no longer verifies (ES256 does not fit the P-384 key). */
    post(k.key[K_OLD], order + strlen(BASE), NULL, k.account, "", &r);
    assert_problem(&r, 400, "badSignatureAlgorithm");
    post(k.key[K_NEW], "/acme/default/new-account", NULL, NULL, "{\"onlyReturnExisting\":true}",
         &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "Location"), k.account);
    acme_response_clear(&r);

    /* K-11: the order and its authorization are still pending. */
    kid_post(k.key[K_NEW], k.account, order, NULL, 200, &r);
    assert_string_equal(member(&j, &r, "status"), "pending");
    acme_response_clear(&r);
    kid_post(k.key[K_NEW], k.account, authz, NULL, 200, &r);
    assert_string_equal(member(&j, &r, "status"), "pending");
    dns01_of(j, &url, &token);
    chall = xstrdup(url);
    assert_int_equal(pki_jwk_thumbprint(k.key[K_NEW], tp), 0);
    want = xasprintf("%s.%s", token, tp);
    acme_response_clear(&r);
    kid_post(k.key[K_NEW], k.account, chall, "{}", 200, &r);
    acme_response_clear(&r);
    /* CH-1: the key authorization is computed with the key current at the response. */
    assert_int_equal(T.nv, 1);
    v = T.v[--T.nv];
    assert_string_equal(v->key_authz, want);
    acme_validation_done(T.ctx, v, true, NULL);
    kid_post(k.key[K_NEW], k.account, order, NULL, 200, &r);
    assert_string_equal(member(&j, &r, "status"), "ready");
    acme_response_clear(&r);

    cert_key = pki_key_generate(PKI_KEY_P256, err);
    csr = t_csr(cert_key, NULL, "DNS:roll.example", false);
    payload = xasprintf("{\"csr\":\"%s\"}", csr);
    kid_post(k.key[K_NEW], k.account, fin, payload, 200, &r);
    assert_string_equal(member(&j, &r, "status"), "valid");
    cert = xstrdup(member(&j, &r, "certificate"));
    acme_response_clear(&r);
    kid_post(k.key[K_NEW], k.account, cert, NULL, 200, &r);
    assert_string_equal(r.content_type, "application/pem-certificate-chain");
    acme_response_clear(&r);

    cJSON_Delete(j);
    EVP_PKEY_free(cert_key);
    free(order);
    free(fin);
    free(authz);
    free(chall);
    free(want);
    free(csr);
    free(payload);
    free(cert);
    kc_env_clear(&k);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_change_refused),
        cmocka_unit_test(test_key_change_keeps_orders),
    };

    return cmocka_run_group_tests(tests, cc_res_setup, t_teardown);
}
