/*
 * acme: the RFC 8555 protocol (plus RFC 8737 and device-attest-01): JWS
 * authentication, nonces, problem documents and every resource. Transport-free:
 * the server module turns HTTP into a struct acme_request and sends back the
 * struct acme_response this module fills.
 *
 * acme_handle() is synchronous and may block on the store; call it from a
 * worker-pool thread, never from an event loop. acme_is_fast() requests touch
 * no store and may be answered on the loop.
 */
#ifndef ACMESRV_ACME_H
#define ACMESRV_ACME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

struct cfg;
struct store;
struct pki_ca;
struct att_verifier;

#define ACME_DETAIL_LEN 512
#define ACME_MAX_SUBPROBLEMS 8
#define ACME_PROBLEM_URL_LEN 512   /* instance and link URLs of a problem, NUL included */

struct acme_subproblem {
    const char *type;              /* short ACME type, e.g. "rejectedIdentifier" */
    char detail[256];
    char id_type[32];              /* identifier object, RFC 8555 §6.7.1 */
    char id_value[256];
};

/* The error sink of acme/: an RFC 7807 problem document in the making. */
struct acme_problem {
    const char *type;  /* short ACME error ("badNonce") or an absolute URI; NULL = no problem */
    int status;        /* HTTP status */
    char detail[ACME_DETAIL_LEN];
    struct acme_subproblem sub[ACME_MAX_SUBPROBLEMS];
    size_t nsub;
    int retry_after;   /* seconds for Retry-After, 0 = none */
    char instance[ACME_PROBLEM_URL_LEN]; /* RFC 7807 `instance`, "" = none */
    char link[ACME_PROBLEM_URL_LEN];     /* target of a Link header sent along, "" = none */
    const char *link_rel;                /* that Link's relation (static string) */
};
/*
 * Fills p (type is a static string); the detail is printf-formatted. Leaves
 * subproblems, retry_after, instance and link as they are.
 */
void acme_problem_set(struct acme_problem *p, const char *type, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

struct acme_request {
    const char *method;       /* "GET", "HEAD", "POST", ... */
    const char *path;         /* path only, no query, e.g. "/acme/default/new-order" */
    const char *query;        /* raw query after '?' (no '?'), or NULL; only the orders list
                                 reads one, every other resource ignores it */
    const char *content_type; /* Content-Type header or NULL */
    const unsigned char *body;
    size_t body_len;
    const char *peer;         /* client address text, for logs and rate limits */
};

#define ACME_MAX_HEADERS 12
struct acme_response {
    int status;
    const char *content_type;  /* static string or NULL */
    char *body;                /* owned, may be NULL */
    size_t body_len;
    size_t nheaders;
    struct {
        const char *name;      /* static string */
        char *value;           /* owned */
    } headers[ACME_MAX_HEADERS];
};
void acme_response_clear(struct acme_response *resp);

enum acme_chall_type {
    ACME_CH_HTTP01,
    ACME_CH_DNS01,
    ACME_CH_TLSALPN01,
    ACME_CH_DEVICE_ATTEST01,
    ACME_CH__MAX
};

/*
 * One network validation the server performs for acme/ (http-01, dns-01,
 * tls-alpn-01). Ownership passes to the validator with acme_validate_fn and
 * back with acme_validation_done.
 */
struct acme_validation {
    char authz_id[64];
    char chall_id[64];
    enum acme_chall_type type;
    char identifier[256];      /* DNS name (no "*.") or IP address text */
    bool is_ip;
    char token[128];
    char key_authz[256];       /* token "." thumbprint */
    unsigned char key_authz_sha256[32];
    char dns01_txt[64];        /* base64url(SHA-256(key_authz)) expected in TXT */
};

/*
 * Provided by the server: start v asynchronously (bounded retries and
 * timeouts are the validator's job) and later call acme_validation_done from a
 * thread that may block. Must not call back synchronously.
 */
typedef void acme_validate_fn(void *arg, struct acme_validation *v);

/*
 * Provided by the server (optional): the client re-POSTed its response to
 * chall_id while a retry after a failed try waits (RFC 8555 §8.2, CH-6), so
 * run that retry now. Adds no try; ignored when no retry of chall_id waits
 * (a try in flight, settled, none left). Thread-safe, never blocks, never
 * calls back synchronously; gets validate_arg; chall_id is borrowed.
 */
typedef void acme_retry_now_fn(void *arg, const char *chall_id);

/*
 * Something an operator wants to know about, after it is durable:
 * type is "certificate.issued", "enrollment.denied" or "certificate.revoked";
 * json is a complete JSON object describing it (borrowed for the call).
 * Called on a worker-pool thread; must not block (queue and return).
 */
typedef void acme_event_fn(void *arg, const char *type, const char *json);

/*
 * Provided by the server: run fn(arg) soon on a worker-pool thread (where
 * blocking on the store is fine). Thread-safe, never runs fn synchronously.
 * Used to continue a request after an asynchronous step (an MDM lookup).
 * 0, or -1 when the pool stopped (shutdown): fn never runs, arg stays the
 * caller's.
 */
typedef int acme_defer_fn(void *defer_arg, void (*fn)(void *arg), void *arg);

struct mdm_engine;

struct acme_deps {
    const struct cfg *cfg;            /* borrowed, outlives the ctx */
    struct store *store;              /* borrowed */
    struct pki_ca *const *cas;        /* borrowed, in cfg->cas order */
    size_t ncas;
    struct att_verifier *attest;      /* borrowed; device-attest-01 verifier */
    const char *base_url;             /* "https://localhost:8443", no trailing slash */
    acme_validate_fn *validate;
    void *validate_arg;
    acme_retry_now_fn *retry_now;     /* NULL: a re-POST never brings a retry forward */
    struct mdm_engine *mdm;           /* borrowed; NULL when no signal source is configured */
    acme_event_fn *event;             /* NULL = no event sink */
    void *event_arg;
    acme_defer_fn *defer;             /* required when mdm != NULL */
    void *defer_arg;
    /* Worker threads that may block at once in a challenge response waiting
       for its validation (acme.challenges.answer_wait), 0 = none. Keep it below the
       threads that run acme_validation_done, or waiters starve their own
       wake-up. Fixed by the first ctx: later ones share its registry. */
    int chall_waiters;
    /* Configuration reload: the ctx being replaced, whose nonces and rate
       limiter the new ctx shares (refcounted), so clients mid-flow keep
       working. NULL = fresh state. Borrowed for the call. */
    const struct acme_ctx *share;
};

struct acme_ctx;

/* A protocol context shared by all threads. NULL with err set. */
struct acme_ctx *acme_ctx_new(const struct acme_deps *deps, char err[ERR_LEN]);
void acme_ctx_free(struct acme_ctx *ctx);

/* True when req can be answered without the store (directory, newNonce, 404s). */
bool acme_is_fast(const struct acme_ctx *ctx, const struct acme_request *req);
/* Handles one request; fills resp (always, errors become problem documents). */
void acme_handle(struct acme_ctx *ctx, const struct acme_request *req, struct acme_response *resp);

/*
 * Answers req with prob as a problem document carrying the same protocol
 * headers as every other answer (Replay-Nonce, Link index, CORS). For errors
 * the transport detects before acme_handle could see the request (body too
 * large, method, overload). Safe on any thread; touches no store.
 */
void acme_respond_problem(struct acme_ctx *ctx, const struct acme_request *req,
                          const struct acme_problem *prob, struct acme_response *resp);

/*
 * Completes a validation: ok, or failed with prob (type/detail for the
 * challenge's error). Updates challenge, authorization and order atomically,
 * then wakes a challenge response waiting for it. May block on the store.
 * Frees v.
 */
void acme_validation_done(struct acme_ctx *ctx, struct acme_validation *v, bool ok,
                          const struct acme_problem *prob);

/*
 * Reports a failed try of v that the validator will repeat (RFC 8555 §8.2,
 * CH-5): the challenge stays `processing`, prob (type/detail of the try,
 * required) becomes its `error`, and answers about it carry Retry-After up to
 * next_attempt (seconds since the epoch). A challenge settled meanwhile, or a
 * notice older than the one stored, is left alone. Wakes no waiting answer:
 * a failed try is not an outcome. May block on the store; v is borrowed.
 */
void acme_validation_retrying(struct acme_ctx *ctx, const struct acme_validation *v,
                              const struct acme_problem *prob, int64_t next_attempt);

/*
 * Start-up recovery after a crash: restarts validations left `processing` and
 * settles orders left `processing` (issued certificate present → valid; else
 * back to `ready`). 0/-1.
 */
int acme_recover(struct acme_ctx *ctx, char err[ERR_LEN]);

/*
 * Nonces across a graceful restart (nonce_state.c). While the server is down
 * the nonce key, counter and unused window wait in <data_dir>/nonces.state
 * (0600). The next start removes the file before adopting it, so after a
 * crash there is no file and every nonce issued before is refused.
 *
 * acme_nonces_restore: once at start-up on a ctx made without `share`,
 * before any request is served. Logs what it did; a missing or refused file
 * leaves the fresh key (it never fails the start).
 * acme_nonces_save: at graceful shutdown, once no thread can issue or spend
 * a nonce any more (event loops joined, worker pool drained). 0/-1 with err.
 */
void acme_nonces_restore(struct acme_ctx *ctx);
int acme_nonces_save(struct acme_ctx *ctx, char err[ERR_LEN]);

/* Directory URLs of every policy, for the start-up banner (caller frees each and the array). */
char **acme_directory_urls(const struct acme_ctx *ctx, size_t *n);

#endif
