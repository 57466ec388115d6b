/*
 * acme internals shared by the module's files and its unit tests. Two groups
 * of files meet here:
 *   core      (problem.c json.c nonce.c nonce_state.c jws.c router.c directory.c
 *              account.c terms.c eab.c keychange.c ctx.c chall_wait.c)
 *   resources (order.c orders_list.c authz.c authz_reuse.c challenge.c
 *              device_attest.c finalize.c cert.c revoke.c recover.c renewal.c)
 * The core authenticates a request and hands the handler a struct acme_rq;
 * handlers fill rq->resp or return -1 with prob set.
 */
#ifndef ACMESRV_ACME_INT_H
#define ACMESRV_ACME_INT_H

#include "acme/acme.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <pthread.h>

#include "attest/attest.h"
#include "config/config.h"
#include "pki/pki.h"
#include "store/store.h"

/* Bounds on untrusted input (style guide 8.5). */
/* Ceiling on a JWS body; the configured server.limits.max_body is the limit in force. */
#define ACME_MAX_JWS (64 * 1024 * 1024)
/* Default JSON nesting (acme.limits.max_json_depth) and the highest it may be set to. */
#define ACME_MAX_JSON_DEPTH 16
#define ACME_MAX_JSON_DEPTH_CEIL 64
#define ACME_MAX_URL 512
#define ACME_MAX_ID 64             /* resource ids: 22 chars base64url of 16 random bytes */
#define ACME_MAX_CONTACTS 8
#define ACME_MAX_IDENTIFIER 253

/* Full URN prefix of ACME problem types (RFC 8555 §6.7). */
#define ACME_ERR_NS "urn:ietf:params:acme:error:"

/* ---- ctx.c ---- */
struct acme_nonces;
struct acme_ratelimit;
struct acme_iplimit;
struct acme_state;
struct acme_cwait;

struct acme_ctx {
    const struct cfg *cfg;
    struct store *store;
    struct pki_ca *const *cas;
    size_t ncas;
    struct att_verifier *attest;
    char *base_url;
    acme_validate_fn *validate;
    void *validate_arg;
    acme_retry_now_fn *retry_now;  /* or NULL; gets validate_arg */
    struct acme_nonces *nonces;
    struct acme_ratelimit *rate;   /* orders per account per hour */
    struct acme_iplimit *acct_rate; /* new accounts per client address per hour */
    struct acme_cwait *cwait;      /* challenge answers waiting for their validation */
    struct acme_state *state;      /* owns nonces, rate, acct_rate and cwait; shared across reloads */
    struct mdm_engine *mdm;        /* NULL: no signal source configured */
    acme_event_fn *event;          /* NULL: no event sink */
    void *event_arg;
    acme_defer_fn *defer;
    void *defer_arg;
    struct acme_keycache *keys;    /* account keys by JWK text (owned) */
    /*
     * Per policy (index into cfg->policies), built once with the ctx: nothing
     * they depend on (base URL, policy names, meta) changes during its life.
     */
    char **dir_body;               /* the directory JSON document */
    bool *dir_eab;                 /* the eab_required dir_body shows (tests flip it live) */
    char **dir_link;               /* Link header value: <directory URL>;rel="index" */
};
/* pol's index in ctx->cfg->policies, or npolicies when pol is not one of them. */
size_t acme_policy_index(const struct acme_ctx *ctx, const struct cfg_policy *pol);
/* The CA a policy issues from (never NULL after ctx creation checked the config). */
struct pki_ca *acme_policy_ca(const struct acme_ctx *ctx, const struct cfg_policy *pol);

/* ---- problem.c ---- */
/* Serialises prob as application/problem+json into resp (status, body, Content-Type). */
void acme_problem_respond(const struct acme_problem *prob, struct acme_response *resp);
/* Adds a subproblem about an identifier. */
void acme_problem_add_sub(struct acme_problem *p, const char *type, const char *id_type,
                          const char *id_value, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Problem as a cJSON object (for a challenge's or order's `error` member). */
cJSON *acme_problem_to_json(const struct acme_problem *prob);
/*
 * The problem's `instance` member (a URL for a human, RFC 8555 §7.3.3), and a
 * `Link: <url>;rel="rel"` header acme_problem_respond sends with it (rel is a
 * static string). A URL longer than ACME_PROBLEM_URL_LEN - 1 is left out, not
 * cut short. NULL-safe.
 */
void acme_problem_set_instance(struct acme_problem *p, const char *url);
void acme_problem_set_link(struct acme_problem *p, const char *rel, const char *url);

/* ---- json.c ---- */
/*
 * Parses untrusted JSON: rejects invalid UTF-8, nesting deeper than
 * ACME_MAX_JSON_DEPTH, duplicate object keys and trailing bytes. NULL with
 * prob = malformed.
 */
cJSON *acme_json_parse(const char *text, size_t len, struct acme_problem *prob);
/* Same with a nesting limit (1..ACME_MAX_JSON_DEPTH_CEIL; anything else means the default). */
cJSON *acme_json_parse_depth(const char *text, size_t len, int max_depth,
                             struct acme_problem *prob);
/* Typed member access; NULL when absent or of another type. */
const char *acme_json_str(const cJSON *obj, const char *name);
/* Sets a JSON body on resp (status, Content-Type application/json); consumes body. */
void acme_resp_json(struct acme_response *resp, int status, cJSON *body);
/* Adds header name (static) with value, whose ownership passes to resp (freed if dropped). */
void acme_resp_header_take(struct acme_response *resp, const char *name, char *value);
/* Adds a header (value formatted, owned by resp). At most ACME_MAX_HEADERS. */
void acme_resp_header(struct acme_response *resp, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- nonce.c: in memory, single use, never written to the store ---- */
/*
 * Nonces are a 64-bit counter under a keyed permutation (AES-256 on one
 * block), opaque to clients: a sliding window of the last `window` issued
 * counters records which are still unused. Only a graceful shutdown hands key
 * and window on to the next start (nonce_state.c); any other restart draws a
 * new key, so no nonce survives it (clients retry on badNonce).
 */
/* Largest window (counters); bounds a saved state's bitmap to this / 8 bytes. */
#define ACME_NONCE_MAX_WINDOW ((size_t)1 << 24)
/* window is rounded up to a power of two (64 .. ACME_NONCE_MAX_WINDOW). NULL: no key. */
struct acme_nonces *acme_nonces_new(size_t window);
void acme_nonces_free(struct acme_nonces *n);
/* A fresh nonce (base64url, caller frees). Thread-safe. */
char *acme_nonce_issue(struct acme_nonces *n);
/* True exactly once for a nonce this key issued and that is still in the window. */
bool acme_nonce_consume(struct acme_nonces *n, const char *nonce);
/*
 * The counter a nonce of n's key hides, without spending it: for tests, which
 * check counting and window arithmetic that clients cannot see. 0/-1 (not a
 * nonce of this key). Thread-safe.
 */
int acme_nonce_counter(struct acme_nonces *n, const char *nonce, uint64_t *counter);

/* The whole nonce state, on its way to or from disk. */
struct acme_nonce_snap {
    unsigned char key[32]; /* the secret the AES key derives from; wiped by _clear */
    uint64_t next;         /* counter of the next nonce to issue (>= 1) */
    size_t window;         /* bitmap size in counters, a power of two */
    uint64_t *bits;        /* window / 64 words, bit (c % window) set while c is unused */
};
/* Copies n's state into snap (caller clears it). Meaningful only when no thread uses n. */
void acme_nonces_snapshot(struct acme_nonces *n, struct acme_nonce_snap *snap);
/*
 * Replaces n's key and counter with snap's (a checked snapshot) and keeps
 * its unused counters that fall inside n's window; *carried says how many.
 * Only before n serves: nonces n issued until then are refused afterwards.
 * 0/-1 (cipher setup failed, n unchanged).
 */
int acme_nonces_adopt(struct acme_nonces *n, const struct acme_nonce_snap *snap, size_t *carried);
/* Wipes the key and frees the bitmap. NULL-safe; snap is empty afterwards. */
void acme_nonce_snap_clear(struct acme_nonce_snap *snap);

/* ---- nonce_state.c: the nonce state across a graceful restart ---- */
/* Encodes snap in the file layout; *out (len bytes, holds the key): caller wipes and frees. */
void acme_nonce_snap_fmt(const struct acme_nonce_snap *snap, unsigned char **out, size_t *len);
/*
 * Decodes a state file's bytes (name is for err only) into snap, checking
 * every field: magic, version, lengths, window, counter. 0/-1 with err; on
 * -1 snap is empty.
 */
int acme_nonce_snap_parse(const char *name, const unsigned char *p, size_t len,
                          struct acme_nonce_snap *snap, char err[ERR_LEN]);
/* Writes n's state to path atomically, mode 0600; *unused: nonces it carries. 0/-1 with err. */
int acme_nonce_state_save(struct acme_nonces *n, const char *path, size_t *unused,
                          char err[ERR_LEN]);
/*
 * Consumes path: reads it, removes it and fsyncs the directory, and only then
 * adopts it into n (*carried unused nonces). 1 adopted; 0 no file; -1 the
 * file was refused (err says why, n keeps its fresh key; the file is removed
 * unless removing it is what failed).
 */
int acme_nonce_state_restore(struct acme_nonces *n, const char *path, size_t *carried,
                             char err[ERR_LEN]);

/* ---- chall_wait.c: challenge answers waiting for their validation to settle ---- */
/* One waiter, in the waiting thread's storage (its stack) from enter to the end of wait. */
struct acme_cwaiter {
    char chall_id[ACME_MAX_ID];
    bool settled;              /* set by acme_cwait_wake; under the registry's mutex */
    struct acme_cwaiter *next;
};
/*
 * A registry letting at most max_waiters threads wait at once (<= 0: none).
 * Thread-safe. acme_cwait_free (NULL-safe) only once nobody waits.
 */
struct acme_cwait *acme_cwait_new(int max_waiters);
void acme_cwait_free(struct acme_cwait *w);
/*
 * Registers me (caller storage) for chall_id: 0, and the caller must call
 * acme_cwait_wait on every path; 1 when max_waiters already wait or w is
 * NULL (answer at once). Enter before handing the validation out, so its
 * settlement cannot come first unseen.
 */
int acme_cwait_enter(struct acme_cwait *w, struct acme_cwaiter *me, const char *chall_id);
/*
 * Blocks (never on an event loop) until chall_id is woken or timeout_ms
 * (monotonic) passed, then unregisters me. 0 settled, 1 timed out.
 */
int acme_cwait_wait(struct acme_cwait *w, struct acme_cwaiter *me, int64_t timeout_ms);
/* Marks and wakes every waiter of chall_id (none: nothing happens). Any thread. */
void acme_cwait_wake(struct acme_cwait *w, const char *chall_id);

/* ---- jws.c ---- */
struct acme_jws {
    cJSON *protected;       /* decoded protected header (owned) */
    cJSON *payload;         /* decoded payload JSON; NULL for POST-as-GET (owned) */
    bool post_as_get;       /* payload was "" */
    char *payload_raw;      /* decoded payload bytes, NUL-terminated (owned) */
    size_t payload_len;
    enum pki_jws_alg alg;
    const char *url;        /* borrowed from protected */
    const char *nonce;      /* borrowed from protected */
    const char *kid;        /* borrowed from protected, or NULL */
    const cJSON *jwk;       /* borrowed from protected, or NULL */
    EVP_PKEY *key;          /* the verifying key (owned) */
    char thumbprint[44];    /* RFC 7638 of key */
    char *signing_input;    /* "protected.payload" as sent (owned) */
    unsigned char *sig;     /* decoded signature (owned) */
    size_t siglen;
};
/*
 * Parses a flattened JWS (RFC 7515 §7.2.2, RFC 8555 §6.2): exactly the
 * members protected/payload/signature, no `header`, no `b64:false`; decodes
 * the protected header; checks alg (badSignatureAlgorithm with the accepted
 * list in the detail), exactly one of jwk/kid, url and nonce present and
 * well-formed. Does not verify the signature nor consume the nonce.
 */
int acme_jws_parse(const unsigned char *body, size_t len, struct acme_jws *out,
                   struct acme_problem *prob);
/* Imports `jwk` into out->key (badPublicKey on refusal) and sets thumbprint. */
int acme_jws_key_from_jwk(struct acme_jws *jws, struct acme_problem *prob);
/* Verifies the signature with key (borrowed, kept as jws->key when jws has none). */
int acme_jws_verify(struct acme_jws *jws, EVP_PKEY *key, struct acme_problem *prob);
void acme_jws_clear(struct acme_jws *jws);
/*
 * acme_jws_parse with options (core addition). ACME_JWS_INNER: the inner JWS
 * of a keyChange (RFC 8555 §7.3.5): `nonce` forbidden, `jwk` required.
 * acme_jws_parse(b, l, o, p) == acme_jws_parse_ex(b, l, 0, o, p). On failure
 * out may hold partial results (out->nonce when it was read): always
 * acme_jws_clear it.
 */
#define ACME_JWS_INNER 0x1u
int acme_jws_parse_ex(const unsigned char *body, size_t len, unsigned flags,
                      struct acme_jws *out, struct acme_problem *prob);
/* acme_jws_parse_ex with a JSON nesting limit for the body, header and payload. */
int acme_jws_parse_depth(const unsigned char *body, size_t len, unsigned flags, int max_depth,
                         struct acme_jws *out, struct acme_problem *prob);
/* Builds the public key of a JWK JSON object (badPublicKey with the reason). */
EVP_PKEY *acme_jwk_to_key(const cJSON *jwk, struct acme_problem *prob);

/* ---- keycache.c: parsed account keys by stored JWK text, shared by worker threads ---- */
struct acme_keycache;
/* A bounded cache (frees with acme_keycache_free, NULL-safe). */
struct acme_keycache *acme_keycache_new(void);
void acme_keycache_free(struct acme_keycache *kc);
/*
 * New reference (caller frees) to the public key of a stored canonical JWK
 * text, imported and checked on a miss; NULL with prob serverInternal when the
 * text is unreadable or unusable. kc NULL imports every time. Any thread.
 */
EVP_PKEY *acme_keycache_get(struct acme_keycache *kc, const char *jwk_json,
                            struct acme_problem *prob);

/* ---- account.c ---- */
struct acme_account {
    char id[ACME_MAX_ID];
    char policy[40];
    char status[16];          /* valid | deactivated | revoked */
    cJSON *contact;           /* array of strings (owned) or NULL */
    char *jwk_json;           /* canonical JWK (pki_jwk_canonical_json) (owned) */
    char thumbprint[44];
    char eab_kid[ACME_MAX_ID * 2]; /* "" when none */
    char terms[ACME_MAX_URL]; /* terms-of-service URL last agreed to, "" = none recorded */
    int64_t created;
    int64_t version;          /* store version, for updates */
};
/* 0 found, 1 not found, -1 store error (prob = serverInternal). */
int acme_account_load(struct acme_ctx *ctx, const char *id, struct acme_account *out,
                      struct acme_problem *prob);
void acme_account_clear(struct acme_account *a);
/* The account as its RFC 8555 §7.1.2 JSON object (orders URL included). */
cJSON *acme_account_to_json(const struct acme_ctx *ctx, const struct acme_account *a);
/* Serialises a for the store (data member). */
char *acme_account_serialize(const struct acme_account *a);
/*
 * Writes a back over its stored version (a->version). 409 malformed when it
 * changed meanwhile, 500 on a store error; what names the change in logs. 0/-1.
 */
int acme_account_store_update(struct acme_ctx *ctx, const struct acme_account *a, const char *what,
                              struct acme_problem *prob);

/* Loads the account holding key (by thumbprint) in policy. 0 found, 1 none, -1 error. */
int acme_account_find_by_thumbprint(struct acme_ctx *ctx, const char *policy,
                                    const char *thumbprint, struct acme_account *out,
                                    struct acme_problem *prob);
/*
 * Whether an account of any configured policy holds the key with this
 * thumbprint: 0 one does, 1 none, -1 error (serverInternal).
 */
int acme_account_key_in_use(struct acme_ctx *ctx, const char *thumbprint,
                            struct acme_problem *prob);
/* Parses an account record's data into out (id from rec). 0/-1 (serverInternal). */
int acme_account_parse(const struct store_rec *rec, struct acme_account *out,
                       struct acme_problem *prob);
/* Validates a `contact` array (RFC 8555 §7.3: mailto only). 0/-1 with invalidContact etc. */
int acme_contact_check(const cJSON *contact, struct acme_problem *prob);

/* ---- eab.c (RFC 8555 §7.3.4) ---- */
/*
 * Checks the externalAccountBinding `eab` of a newAccount whose outer JWS is
 * jws. On success eab_rec holds the unused STORE_EAB record (caller binds it
 * in the same store_commit as the account, then store_rec_clear()s it).
 */
int acme_eab_verify(struct acme_ctx *ctx, const cJSON *eab, const struct acme_jws *jws,
                    struct store_rec *eab_rec, struct acme_problem *prob);

/* ---- ratelimit.c: in memory, per process ---- */
struct acme_ratelimit *acme_ratelimit_new(void);
void acme_ratelimit_free(struct acme_ratelimit *rl);
/*
 * Counts one event for key (an account id) in a sliding one-hour window.
 * 0 allowed (and counted); 1 over limit_per_hour, *retry_after = seconds until
 * the oldest counted event leaves the window. limit_per_hour <= 0: always 0.
 */
int acme_ratelimit_check(struct acme_ratelimit *rl, const char *key, int limit_per_hour,
                         int *retry_after);

/* ---- ratelimit_ip.c: in memory, per process, fixed size ---- */
/* Entries a ctx's table holds: about 1.1 MiB, the most distinct groups counted at once. */
#define ACME_IPLIMIT_ENTRIES 4096
/* A table of capacity entries (rounded up to its associativity); never NULL. */
struct acme_iplimit *acme_iplimit_new(size_t capacity);
void acme_iplimit_free(struct acme_iplimit *rl);
/*
 * Whether peer (client address text; IPv6 grouped by /64) already has
 * limit_per_hour events in the last hour. 0 room left (nothing counted);
 * 1 over, *retry_after = seconds until one more fits. peer NULL or
 * limit_per_hour <= 0: always 0. Any thread.
 */
int acme_iplimit_check(struct acme_iplimit *rl, const char *peer, int limit_per_hour,
                       int *retry_after);
/*
 * Counts one event for peer's group, evicting the least recently active entry
 * of its set when the group has none. peer NULL: nothing. Any thread.
 */
void acme_iplimit_add(struct acme_iplimit *rl, const char *peer);
/* Entries in use and the table's size (tests: memory stays bounded). */
size_t acme_iplimit_used(struct acme_iplimit *rl);
size_t acme_iplimit_capacity(const struct acme_iplimit *rl);

/*
 * RFC 8555 §7.3.6: after an account is deactivated, its pending and
 * ready orders become invalid (its certificates stay valid). Best effort. 0/-1.
 */
int acme_orders_cancel_for_account(struct acme_ctx *ctx, const char *account_id);

/* ---- router.c: one request ---- */
enum acme_res {
    ACME_RES_DIRECTORY,
    ACME_RES_NEW_NONCE,
    ACME_RES_NEW_ACCOUNT,
    ACME_RES_NEW_ORDER,
    ACME_RES_REVOKE_CERT,
    ACME_RES_KEY_CHANGE,
    ACME_RES_RENEWAL_INFO,   /* RFC 9773; GET allowed */
    ACME_RES_ACCOUNT,        /* account/<id> */
    ACME_RES_ACCOUNT_ORDERS, /* account/<id>/orders */
    ACME_RES_ORDER,          /* order/<id> */
    ACME_RES_FINALIZE,       /* order/<id>/finalize */
    ACME_RES_AUTHZ,          /* authz/<id> */
    ACME_RES_CHALLENGE,      /* chall/<authz id>/<chall id> */
    ACME_RES_CERT,           /* cert/<serial> */
    ACME_RES__MAX
};
/* Path segment of each resource under /acme/<policy>/ ("new-order", "order", ...). */
extern const char *const acme_res_path[ACME_RES__MAX];

/* Everything a handler needs about the request it serves. */
struct acme_rq {
    struct acme_ctx *ctx;
    const struct acme_request *req;
    struct acme_response *resp;
    const struct cfg_policy *policy;
    enum acme_res res;
    char id1[ACME_MAX_ID + 1];  /* first id in the path ("" if none) */
    char id2[ACME_MAX_ID + 1];  /* second id (challenge id) */
    char url[ACME_MAX_URL];     /* the URL this request was sent to, as published */
    struct acme_jws jws;        /* verified JWS (POST only) */
    struct acme_account acct;   /* the `kid` account, loaded and status-checked (kid requests) */
    bool has_acct;
};

/*
 * Handler contract: return 0 with rq->resp filled (status, body, Location...),
 * or -1 with prob set. The router adds Replay-Nonce, Link rel="index",
 * Cache-Control and CORS headers to every answer, success or problem.
 * For POST resources the router has already: checked Content-Type (415),
 * parsed + verified the JWS, checked `url` == rq->url (unauthorized),
 * consumed the nonce (badNonce), required `jwk` for new-account / revoke-cert
 * (revoke may use either) and `kid` elsewhere, loaded the kid account and
 * refused it unless valid (accountDoesNotExist / unauthorized), refused a
 * kid belonging to another policy's directory, and refused an account that
 * must first agree to changed terms (acme_terms_check, userActionRequired).
 */
typedef int acme_handler_fn(struct acme_rq *rq, struct acme_problem *prob);

/* The directory document of pol (directory.c), caller frees; NULL if encoding failed. */
char *acme_directory_fmt(const struct acme_ctx *ctx, const struct cfg_policy *pol);

/* ---- terms.c: agreement to the terms of service (RFC 8555 §7.3, §7.3.3) ---- */
/*
 * Records agreement in a when payload says termsOfServiceAgreed: true and
 * terms are configured: a->terms becomes the current URL. True when that
 * changed a (the caller stores it).
 */
bool acme_terms_agree(const struct cfg_acme *ac, const cJSON *payload, struct acme_account *a);
/*
 * Whether rq may go ahead as far as the terms go: 0, or -1 with prob 403
 * userActionRequired, a Link rel="terms-of-service" to the current terms and
 * `instance` when acme.meta.terms_of_service_reagree is on, rq acts for
 * its account and that account agreed to other terms or to none.
 */
int acme_terms_check(const struct acme_rq *rq, struct acme_problem *prob);

/* core handlers */
int acme_h_directory(struct acme_rq *rq, struct acme_problem *prob);
int acme_h_new_nonce(struct acme_rq *rq, struct acme_problem *prob);
int acme_h_new_account(struct acme_rq *rq, struct acme_problem *prob);
int acme_h_account(struct acme_rq *rq, struct acme_problem *prob);
int acme_h_key_change(struct acme_rq *rq, struct acme_problem *prob);
/* resource handlers */
int acme_h_account_orders(struct acme_rq *rq, struct acme_problem *prob);
int acme_h_new_order(struct acme_rq *rq, struct acme_problem *prob);
int acme_h_order(struct acme_rq *rq, struct acme_problem *prob);
int acme_h_finalize(struct acme_rq *rq, struct acme_problem *prob);
int acme_h_authz(struct acme_rq *rq, struct acme_problem *prob);
int acme_h_challenge(struct acme_rq *rq, struct acme_problem *prob);
int acme_h_cert(struct acme_rq *rq, struct acme_problem *prob);
int acme_h_revoke_cert(struct acme_rq *rq, struct acme_problem *prob);
int acme_h_renewal_info(struct acme_rq *rq, struct acme_problem *prob);

/*
 * URL of a resource of rq's policy: base_url "/acme/<policy>/<path>[/<id1>[/<id2>]]".
 * Caller frees.
 */
char *acme_url(const struct acme_ctx *ctx, const char *policy, enum acme_res res,
               const char *id1, const char *id2);
/* A new random resource id (22 chars base64url of 16 bytes) into out. 0/-1. */
int acme_new_id(char out[ACME_MAX_ID]);
/* Whether s[0..len) can be a resource id: 1..ACME_MAX_ID-1 base64url chars ('.' too if allowed). */
bool acme_id_is_valid(const char *s, size_t len, bool allow_dot);

#endif
