/*
 * acmec.c: the tools' ACME client: libcurl transport with connection reuse,
 * flattened JWS signing through pki/, nonce bookkeeping.
 */
#include "tools/acmec.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#define ACMEC_MAX_BODY (4 * 1024 * 1024)

struct acmec {
    CURL *curl;
    cJSON *dir;
    char *kid;
    char nonce[160];
    EVP_PKEY *key;
    enum pki_jws_alg alg;
    acmec_sig_hook_fn *sig_hook;
    unsigned long requests;
    unsigned long posts; /* JWS-signed requests among them */
};

void acmec_resp_clear(struct acmec_resp *r)
{
    free(r->body);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof(*r));
}

const char *acmec_problem_type(const struct acmec_resp *r)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r->json, "type");
    static const char ns[] = "urn:ietf:params:acme:error:";
    if (!cJSON_IsString(t))
        return "";
    if (strncmp(t->valuestring, ns, sizeof(ns) - 1) == 0)
        return t->valuestring + sizeof(ns) - 1;
    return t->valuestring;
}

const char *acmec_problem_detail(const struct acmec_resp *r)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(r->json, "detail");
    return cJSON_IsString(d) ? d->valuestring : "";
}

struct recv_ctx {
    struct buf body;
    struct acmec_resp *r;
    char *nonce;
    size_t nonce_len;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct recv_ctx *rc = arg;
    if (rc->body.len + size * n > ACMEC_MAX_BODY)
        return 0;
    buf_append(&rc->body, p, size * n);
    return size * n;
}

/* Copies a header value (trimmed) into out when the line names `name`. */
static bool header_value(const char *line, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    if (len <= nlen || strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
        return false;
    const char *v = line + nlen + 1;
    size_t vlen = len - nlen - 1;
    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
        vlen--;
    if (vlen >= outlen)
        vlen = outlen - 1;
    memcpy(out, v, vlen);
    out[vlen] = '\0';
    return true;
}

static void link_up(const char *v, char *out, size_t outlen)
{
    const char *lt = strchr(v, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    if (lt == NULL || gt == NULL || strstr(gt, "rel=\"up\"") == NULL)
        return;
    size_t n = (size_t)(gt - lt - 1);
    if (n >= outlen)
        return;
    memcpy(out, lt + 1, n);
    out[n] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct recv_ctx *rc = arg;
    size_t len = size * n;
    char tmp[512];
    if (len > 8 && strncmp(p, "HTTP/", 5) == 0) {
        /* A new response (after a redirect or 100): forget earlier headers. */
        rc->r->location[0] = rc->r->link_up[0] = rc->r->retry_after[0] = '\0';
    }
    header_value(p, len, "Location", rc->r->location, sizeof(rc->r->location));
    header_value(p, len, "Content-Type", rc->r->content_type, sizeof(rc->r->content_type));
    header_value(p, len, "Retry-After", rc->r->retry_after, sizeof(rc->r->retry_after));
    header_value(p, len, "Replay-Nonce", rc->nonce, rc->nonce_len);
    if (header_value(p, len, "Link", tmp, sizeof(tmp)))
        link_up(tmp, rc->r->link_up, sizeof(rc->r->link_up));
    return len;
}

static int perform(struct acmec *c, const char *method, const char *url, const char *body,
                   struct acmec_resp *r, char err[ERR_LEN])
{
    struct recv_ctx rc = {.r = r, .nonce = c->nonce, .nonce_len = sizeof(c->nonce)};
    struct curl_slist *hdrs = NULL;
    int rc_out = -1;
    memset(r, 0, sizeof(*r));
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &rc);
    curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, &rc);
    curl_easy_setopt(c->curl, CURLOPT_NOBODY, strcmp(method, "HEAD") == 0 ? 1L : 0L);
    if (body != NULL) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/jose+json");
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else {
        curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
    CURLcode cc = curl_easy_perform(c->curl);
    c->requests++;
    if (body != NULL)
        c->posts++;
    if (cc != CURLE_OK) {
        snprintf(err, ERR_LEN, "%s %s: %s", method, url, curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
    r->body_len = rc.body.len;
    r->body = buf_take(&rc.body);
    if (strstr(r->content_type, "json") != NULL)
        r->json = cJSON_ParseWithLength(r->body, r->body_len);
    rc_out = 0;
out:
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    buf_free(&rc.body);
    return rc_out;
}

int acmec_get(struct acmec *c, const char *url, struct acmec_resp *r, char err[ERR_LEN])
{
    return perform(c, "GET", url, NULL, r, err);
}

int acmec_head(struct acmec *c, const char *url, struct acmec_resp *r, char err[ERR_LEN])
{
    return perform(c, "HEAD", url, NULL, r, err);
}

struct acmec *acmec_new(const char *directory_url, const char *ca_file, char err[ERR_LEN])
{
    struct acmec *c = xcalloc(1, sizeof(*c));
    struct acmec_resp r;
    c->curl = curl_easy_init();
    if (c->curl == NULL) {
        snprintf(err, ERR_LEN, "curl_easy_init failed");
        goto err;
    }
    if (ca_file != NULL)
        curl_easy_setopt(c->curl, CURLOPT_CAINFO, ca_file);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    if (acmec_get(c, directory_url, &r, err) != 0)
        goto err;
    if (r.status != 200 || !cJSON_IsObject(r.json)) {
        snprintf(err, ERR_LEN, "directory %s: HTTP %ld", directory_url, r.status);
        acmec_resp_clear(&r);
        goto err;
    }
    c->dir = r.json;
    r.json = NULL;
    acmec_resp_clear(&r);
    return c;
err:
    acmec_free(c);
    return NULL;
}

void acmec_free(struct acmec *c)
{
    if (c == NULL)
        return;
    if (c->curl != NULL)
        curl_easy_cleanup(c->curl);
    cJSON_Delete(c->dir);
    free(c->kid);
    free(c);
}

void acmec_set_key(struct acmec *c, EVP_PKEY *key, enum pki_jws_alg alg)
{
    c->key = key;
    c->alg = alg;
}

void acmec_set_sig_hook(struct acmec *c, acmec_sig_hook_fn *hook)
{
    c->sig_hook = hook;
}

const char *acmec_dir(const struct acmec *c, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->dir, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *acmec_kid(const struct acmec *c)
{
    return c->kid;
}

unsigned long acmec_requests(const struct acmec *c)
{
    return c != NULL ? c->requests : 0;
}

unsigned long acmec_posts(const struct acmec *c)
{
    return c != NULL ? c->posts : 0;
}

static int fetch_nonce(struct acmec *c, char err[ERR_LEN])
{
    struct acmec_resp r;
    const char *url = acmec_dir(c, "newNonce");
    if (url == NULL) {
        snprintf(err, ERR_LEN, "directory has no newNonce");
        return -1;
    }
    int rc = perform(c, "HEAD", url, NULL, &r, err);
    acmec_resp_clear(&r);
    if (rc == 0 && c->nonce[0] == '\0') {
        snprintf(err, ERR_LEN, "newNonce returned no Replay-Nonce");
        rc = -1;
    }
    return rc;
}

/* Builds the flattened JWS body; consumes the current nonce. Caller frees. */
static char *jws_build(struct acmec *c, const char *url, const char *payload, char err[ERR_LEN])
{
    struct buf prot = {0};
    char *p64 = NULL, *pl64 = NULL, *sig64 = NULL, *input = NULL, *out = NULL, *jwk = NULL;
    unsigned char *sig = NULL;
    size_t siglen = 0;
    buf_printf(&prot, "{\"alg\":\"%s\",\"nonce\":\"%s\",\"url\":\"%s\",", pki_jws_alg_name(c->alg),
               c->nonce, url);
    if (c->kid != NULL) {
        buf_printf(&prot, "\"kid\":\"%s\"}", c->kid);
    } else {
        jwk = pki_jwk_canonical_json(c->key);
        if (jwk == NULL) {
            snprintf(err, ERR_LEN, "account key type not supported");
            goto out;
        }
        buf_printf(&prot, "\"jwk\":%s}", jwk);
    }
    c->nonce[0] = '\0';
    p64 = b64u_encode(prot.p, prot.len);
    pl64 = payload != NULL ? b64u_encode(payload, strlen(payload)) : xstrdup("");
    input = xasprintf("%s.%s", p64, pl64);
    if (pki_jws_sign(c->alg, c->key, input, strlen(input), &sig, &siglen) != 0) {
        snprintf(err, ERR_LEN, "signing failed");
        goto out;
    }
    if (c->sig_hook != NULL)
        c->sig_hook(sig, &siglen);
    sig64 = b64u_encode(sig, siglen);
    out = xasprintf("{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}", p64, pl64,
                    sig64);
out:
    buf_free(&prot);
    free(p64);
    free(pl64);
    free(sig64);
    free(input);
    free(sig);
    free(jwk);
    return out;
}

int acmec_post(struct acmec *c, const char *url, const char *payload, struct acmec_resp *r,
               char err[ERR_LEN])
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (c->nonce[0] == '\0' && fetch_nonce(c, err) != 0)
            return -1;
        char *body = jws_build(c, url, payload, err);
        if (body == NULL)
            return -1;
        int rc = perform(c, "POST", url, body, r, err);
        free(body);
        if (rc != 0)
            return -1;
        if (r->status != 400 || strcmp(acmec_problem_type(r), "badNonce") != 0 || attempt == 1)
            return 0;
        acmec_resp_clear(r);
    }
    return 0;
}

int acmec_new_account(struct acmec *c, char err[ERR_LEN])
{
    struct acmec_resp r;
    const char *url = acmec_dir(c, "newAccount");
    if (url == NULL) {
        snprintf(err, ERR_LEN, "directory has no newAccount");
        return -1;
    }
    free(c->kid);
    c->kid = NULL;
    if (acmec_post(c, url, "{\"termsOfServiceAgreed\":true}", &r, err) != 0)
        return -1;
    int rc = -1;
    if ((r.status == 200 || r.status == 201) && r.location[0] != '\0') {
        c->kid = xstrdup(r.location);
        rc = 0;
    } else {
        snprintf(err, ERR_LEN, "newAccount: HTTP %ld %s: %s", r.status, acmec_problem_type(&r),
                 acmec_problem_detail(&r));
    }
    acmec_resp_clear(&r);
    return rc;
}

static bool status_in(const struct acmec_resp *r, const char *const *want)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(r->json, "status");
    if (!cJSON_IsString(s))
        return false;
    for (size_t i = 0; want[i] != NULL; i++)
        if (strcmp(s->valuestring, want[i]) == 0)
            return true;
    return false;
}

int acmec_poll(struct acmec *c, const char *url, const char *const *want, int timeout_ms,
               struct acmec_resp *r, char err[ERR_LEN])
{
    int64_t deadline = clk_mono_ms() + timeout_ms;
    for (;;) {
        if (acmec_post(c, url, NULL, r, err) != 0)
            return -1;
        if (r->status == 200 && status_in(r, want))
            return 0;
        if (r->status != 200 || clk_mono_ms() >= deadline) {
            snprintf(err, ERR_LEN, "%s: HTTP %ld, not yet in the wanted state", url, r->status);
            return -1;
        }
        /* Servers send whole seconds; poll faster than that but never spin. */
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        acmec_resp_clear(r);
    }
}

const char *acmec_json_str(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const cJSON *acmec_find_challenge(const cJSON *authz, const char *type)
{
    const cJSON *ch;
    cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(authz, "challenges"))
    {
        const char *t = acmec_json_str(ch, "type");
        if (t != NULL && strcmp(t, type) == 0)
            return ch;
    }
    return NULL;
}
