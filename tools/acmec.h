/*
 * acmec: a small synchronous ACME client for attesta's tools (device
 * simulator, benchmark). One struct acmec is one client with one account key
 * and one kept-alive HTTPS connection; it is not thread-safe, use one per
 * thread. Test hooks let callers damage what they send.
 */
#ifndef ACMESRV_TOOLS_ACMEC_H
#define ACMESRV_TOOLS_ACMEC_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "common/common.h"
#include "pki/pki.h"

struct acmec_resp {
    long status;
    char *body;            /* NUL-terminated, owned */
    size_t body_len;
    char location[512];
    char content_type[128];
    char link_up[512];     /* Link rel="up" target, "" if none */
    char retry_after[32];
    cJSON *json;           /* parsed body when JSON, owned */
};
void acmec_resp_clear(struct acmec_resp *r);
/* The short problem type ("badNonce") of a problem response, or "" */
const char *acmec_problem_type(const struct acmec_resp *r);
const char *acmec_problem_detail(const struct acmec_resp *r);

/* Rewrites the raw JOSE signature before it is encoded (fault injection). */
typedef void acmec_sig_hook_fn(unsigned char *sig, size_t *len);

struct acmec;

/* Fetches the directory. ca_file is the PEM bundle to trust. NULL with err. */
struct acmec *acmec_new(const char *directory_url, const char *ca_file, char err[ERR_LEN]);
void acmec_free(struct acmec *c);
/* The account key (borrowed; must outlive c) and its JWS algorithm. */
void acmec_set_key(struct acmec *c, EVP_PKEY *key, enum pki_jws_alg alg);
void acmec_set_sig_hook(struct acmec *c, acmec_sig_hook_fn *hook);
/* A directory member ("newOrder") or NULL. */
const char *acmec_dir(const struct acmec *c, const char *name);
/* The account URL after acmec_new_account, or NULL. */
const char *acmec_kid(const struct acmec *c);
/* Requests served by this client so far, and the JWS POSTs among them (benchmarks). */
unsigned long acmec_requests(const struct acmec *c);
unsigned long acmec_posts(const struct acmec *c);

/*
 * Signed POST of payload (JSON text; NULL = POST-as-GET) to url with `kid`
 * (or `jwk` when no account yet). Retries once on badNonce. 0 when a response
 * arrived (whatever its status), -1 on transport failure.
 */
int acmec_post(struct acmec *c, const char *url, const char *payload, struct acmec_resp *r,
               char err[ERR_LEN]);
/* newAccount with termsOfServiceAgreed; sets the kid. 0 on 200/201, -1 otherwise. */
int acmec_new_account(struct acmec *c, char err[ERR_LEN]);
/*
 * POST-as-GETs url until its "status" is one of want (NULL-terminated) or
 * timeout_ms passes, polling every 20 ms (tests and benchmarks want the state change as soon as it lands). 0 when reached, -1 otherwise
 * (r holds the last answer).
 */
int acmec_poll(struct acmec *c, const char *url, const char *const *want, int timeout_ms,
               struct acmec_resp *r, char err[ERR_LEN]);
/* A string member of obj, or NULL. */
const char *acmec_json_str(const cJSON *obj, const char *name);
/* The challenge of the given type in an authorization object, or NULL. */
const cJSON *acmec_find_challenge(const cJSON *authz, const char *type);

/* Plain GET (directory, nonce, renewal info). */
int acmec_get(struct acmec *c, const char *url, struct acmec_resp *r, char err[ERR_LEN]);
/* HEAD (newNonce for benchmarks); the Replay-Nonce it returns is kept for the next POST. */
int acmec_head(struct acmec *c, const char *url, struct acmec_resp *r, char err[ERR_LEN]);

#endif
