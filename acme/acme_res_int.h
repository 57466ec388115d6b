/*
 * acme resource internals: the stored shape of orders, authorizations,
 * challenges and certificates (the JSON `data` of their store records), and
 * the helpers the resource files (order.c orders_list.c authz.c authz_reuse.c
 * challenge.c device_attest.c finalize.c cert.c revoke.c recover.c renewal.c
 * replaces.c)
 * share with each other and with their unit tests. The core never needs this
 * header.
 *
 * Stored data (JSON, one object per record):
 *   order: {"policy","identifiers":[{type,value}],"authorizations":[ids],
 *           "notBefore"?,"notAfter"?,"error"?,"certificate"?,"replaces"?}
 *   authz: {"policy","order","identifier":{type,value},"wildcard"?,
 *           "challenges":[{id,type,token,status,validated?,keyAuthz?,error?,retryAt?,earlyAt?}],
 *           "attestation"?:{serial,udid,os_version,sepos_version,spki_sha256},
 *           "decision"?:{allowed,reason,roles:[..],mdm:{SOURCE:{ATTR:value}}},
 *           "approval"?:{state,reason?,at?}}
 *   cert:  {"order","policy","ca","pem","not_before","not_after",
 *           "revoked_reason"?,"revoked_at"?,"device"?,"supersedes"?,"superseded_by"?,
 *           "replaced_by"?}
 *   audit: {"stage","decision","policy",...}: see audit.c
 */
#ifndef ACMESRV_ACME_RES_INT_H
#define ACMESRV_ACME_RES_INT_H

#include "acme/acme_int.h"

/* Tries of a read-modify-write cycle before a version conflict becomes an error. */
#define ACME_COMMIT_TRIES 5
/* Issuance commits of one device contend for its previous certificate; see finalize.c. */
#define ACME_ISSUE_TRIES 64
/* Identifier value limits: DNS names as RFC 1035, device identifiers by policy. */
#define ACME_MAX_DEVICE_ID 128
#define ACME_MAX_CHALLS 4
/* Base64url text accepted for a CSR (16 KiB DER) and for revokeCert (64 KiB DER). */
#define ACME_MAX_CSR_B64 (22 * 1024)
#define ACME_MAX_CERT_B64 (44 * 1024)
/* Orders per page of account/<id>/orders, and rows one page may read to fill it (L-2 hides some). */
#define ACME_ORDERS_PAGE 100
#define ACME_ORDERS_SCAN (4 * ACME_ORDERS_PAGE)
/* Longest `cursor` accepted in an orders list URL (base64url). */
#define ACME_MAX_CURSOR 128
/* Store lookup of an authz: account, policy, type and identifier as ordered (authz_reuse.c). */
#define ACME_AUTHZ_KEY_MAX (ACME_MAX_ID + 40 + 24 + ACME_MAX_IDENTIFIER + 8)
/* Seconds suggested to pollers. */
#define ACME_RETRY_POLL 1
#define ACME_RETRY_ARI 21600
/* ARI certID: two base64url parts of at most ACME_ARI_MAX_PART chars and a dot (RFC 9773 §4.1). */
#define ACME_ARI_MAX_PART 64
#define ACME_MAX_CERT_ID (2 * ACME_ARI_MAX_PART + 1)

enum acme_id_type { ACME_ID_DNS, ACME_ID_IP, ACME_ID_PERMANENT, ACME_ID_HARDWARE, ACME_ID__MAX };
extern const char *const acme_id_type_str[ACME_ID__MAX];
extern const char *const acme_chall_type_str[ACME_CH__MAX];

struct acme_ident {
    enum acme_id_type type;
    char value[ACME_MAX_IDENTIFIER + 1]; /* as ordered ("*.example.org" keeps its "*.") */
};

/* What a successful device-attest-01 proved (stored with the authz). */
struct acme_attested {
    bool present;
    char serial[64];
    char udid[128];
    char os_version[32];
    char sepos_version[32];
    char spki_sha256[65];
};

struct acme_chall {
    char id[ACME_MAX_ID];
    enum acme_chall_type type;
    char token[128];     /* base64url; sized like acme_validation.token */
    char status[16];     /* pending | processing | valid | invalid */
    int64_t validated;   /* 0 unless valid */
    char key_authz[256]; /* stored when processing starts (CH-1), "" before */
    cJSON *error;        /* problem document (owned) or NULL */
    int64_t retry_at;    /* processing after a failed try: when the next one is due
                            (seconds since the epoch), else 0; never sent to clients */
    int64_t early_at;    /* when a re-POST last brought a retry forward (CH-6), else 0;
                            never sent to clients */
};

struct acme_authz {
    char id[ACME_MAX_ID];
    char owner[ACME_MAX_ID];
    char status[16]; /* as stored; see acme_authz_status() */
    int64_t created, expires, version;
    char policy[40];
    char order[ACME_MAX_ID];
    struct acme_ident ident; /* without "*." */
    bool wildcard;
    struct acme_chall ch[ACME_MAX_CHALLS];
    size_t nch;
    struct acme_attested att;
    cJSON *decision;           /* admission outcome (owned) or NULL; see approval.c */
    char approval[16];         /* "" (none) | pending | approved | denied */
    char approval_reason[256]; /* a denial's reason */
    char lookup[ACME_AUTHZ_KEY_MAX]; /* store lookup, acme_authz_key() of the above; set by
                                        acme_authz_fill and newOrder */
};

struct acme_order {
    char id[ACME_MAX_ID];
    char owner[ACME_MAX_ID];
    char status[16]; /* as stored; see acme_order_status() */
    int64_t created, expires, version;
    char policy[40];
    struct acme_ident *ids; /* owned */
    size_t nids;
    char (*authz)[ACME_MAX_ID]; /* owned, parallel to ids */
    size_t nauthz;
    int64_t not_before, not_after; /* 0 = not requested */
    cJSON *error;                  /* owned or NULL */
    char cert_serial[41];          /* "" until valid */
    char replaces[ACME_MAX_CERT_ID + 1]; /* certID of the certificate it replaces, or "" */
};

struct acme_cert {
    char serial[41]; /* store id */
    char owner[ACME_MAX_ID];
    char status[16]; /* valid | revoked */
    char spki[65];   /* store lookup: SHA-256 of the certificate key, hex */
    int64_t created, expires, version;
    char order[ACME_MAX_ID];
    char policy[40];
    char ca[64];
    char *pem; /* leaf + chain (owned) */
    int64_t not_before, not_after;
    int reason; /* -1 when revoked without a reason, or not revoked */
    int64_t revoked_at;
    char device[ACME_MAX_IDENTIFIER + 1]; /* device part of the identifier, "" for DNS/IP */
    char supersedes[41];                  /* serial this certificate replaced, or "" */
    char superseded_by[41];               /* serial that replaced this one, or "" */
    char replaced_by[ACME_MAX_ID];        /* order whose `replaces` names this one (ARI), or "" */
};

/* ---- cert.c ---- */
int acme_cert_load(struct acme_ctx *ctx, const char *serial, struct acme_cert *out,
                   struct acme_problem *prob);
void acme_cert_clear(struct acme_cert *c);
void acme_cert_rec(const struct acme_cert *c, struct store_rec *rec, char **data);
/* The CA named name among ctx->cas, or NULL. */
struct pki_ca *acme_ca_by_name(const struct acme_ctx *ctx, const char *name);

/* ---- order.c ---- */
/* 0 found, 1 not found, -1 store/parse error (prob = serverInternal). */
int acme_order_load(struct acme_ctx *ctx, const char *id, struct acme_order *out,
                    struct acme_problem *prob);
/* acme_rec_fill_fn for a STORE_ORDER record into a zeroed struct acme_order. */
int acme_order_fill(void *out, const struct store_rec *rec);
void acme_order_clear(struct acme_order *o);
/* Store record viewing o (strings borrowed; *data is new, caller frees). */
void acme_order_rec(const struct acme_order *o, struct store_rec *rec, char **data);
/* The status a client sees: pending/ready past `expires` read as invalid. */
const char *acme_order_status(const struct acme_order *o);
cJSON *acme_order_to_json(const struct acme_ctx *ctx, const struct acme_order *o);
/* Sets order status invalid with err (copied) unless it is already final. */
void acme_order_fail(struct acme_order *o, const struct acme_problem *err);

/* ---- authz.c ---- */
int acme_authz_load(struct acme_ctx *ctx, const char *id, struct acme_authz *out,
                    struct acme_problem *prob);
/* acme_rec_fill_fn for a STORE_AUTHZ record into a zeroed struct acme_authz (lookup recomputed). */
int acme_authz_fill(void *out, const struct store_rec *rec);
void acme_authz_clear(struct acme_authz *a);
/* Deep copy of src into dst (uninitialised storage); dst is cleared with acme_authz_clear. */
void acme_authz_copy(const struct acme_authz *src, struct acme_authz *dst);
void acme_authz_rec(const struct acme_authz *a, struct store_rec *rec, char **data);
/* pending/valid past `expires` read as expired. */
const char *acme_authz_status(const struct acme_authz *a);
cJSON *acme_authz_to_json(const struct acme_ctx *ctx, const struct acme_authz *a);
cJSON *acme_chall_to_json(const struct acme_ctx *ctx, const struct acme_authz *a,
                          const struct acme_chall *ch);
/*
 * Checks one newOrder identifier against the policy. 0 with out filled, or -1
 * with a subproblem added to prob (type malformed, unsupportedIdentifier or
 * rejectedIdentifier).
 */
int acme_ident_check(const struct cfg_policy *pol, const char *type, const char *value,
                     struct acme_ident *out, struct acme_problem *prob);
/* Parses "dns"/"ip"/... 0/-1. */
int acme_id_type_parse(const char *s, enum acme_id_type *out);
bool acme_id_is_device(enum acme_id_type t);
/* The device part of a device identifier ("SERIAL/1.2.3" -> "SERIAL") into out. */
void acme_ident_device_part(const struct acme_ident *id, char *out, size_t outlen);

/* ---- authz_reuse.c: valid authorizations serving new orders (S-4) ---- */
/*
 * The store lookup of an authz (out, ACME_AUTHZ_KEY_MAX bytes): owner, policy,
 * identifier type and value as ordered ("*." back in front for a wildcard),
 * so one index probe finds an account's authorizations of one identifier.
 */
void acme_authz_key(const char *owner, const char *policy, enum acme_id_type type, bool wildcard,
                    const char *value, char *out);
/* Earliest `expires` an authz may have to be reused by order o (created, notBefore set). */
int64_t acme_authz_reuse_until(const struct cfg_acme *acme, const struct acme_order *o);
/*
 * Whether a may serve a new order of owner under pol for the identifier as
 * ordered: dns or ip only, same account, policy and identifier (a wildcard
 * only for the same wildcard), valid now and until at least `until`, and
 * proved by a challenge pol still offers.
 */
bool acme_authz_is_reusable(const struct acme_authz *a, const struct cfg_policy *pol,
                            const char *owner, const struct acme_ident *ordered, int64_t until);
/*
 * The newest reusable authz (acme_authz_is_reusable) among the latest few of
 * owner's for the identifier: 0 found (out filled; caller clears), 1 none,
 * -1 store error (prob set).
 */
int acme_authz_find_reusable(struct acme_ctx *ctx, const struct cfg_policy *pol, const char *owner,
                             const struct acme_ident *ordered, int64_t until,
                             struct acme_authz *out, struct acme_problem *prob);
/*
 * The unfinished, unexpired orders of a's account that list a: the order
 * that made it and those that reused it. *out (caller clears each order and
 * frees the array) holds *n. 0/-1 (store error, prob set).
 */
int acme_authz_orders(struct acme_ctx *ctx, const struct acme_authz *a, struct acme_order **out,
                      size_t *n, struct acme_problem *prob);

/* ---- orders_list.c: account/<id>/orders in pages (L-3) ---- */
/* A position in an orders list: the (created, id) of the last order a page covered. */
struct acme_cursor {
    int64_t created;
    char id[ACME_MAX_ID];
};
/* Encodes c as an opaque base64url token; caller frees. */
char *acme_cursor_fmt(const struct acme_cursor *c);
/* Decodes a token from a next link. 0, or -1 with prob malformed for anything else. */
int acme_cursor_parse(const char *s, struct acme_cursor *out, struct acme_problem *prob);

/* ---- challenge.c ---- */
/*
 * Settles a challenge and propagates it to its authz and order in one
 * atomic commit (retried on version conflicts): ok → challenge and authz
 * valid (attestation recorded when att != NULL), order ready once every authz
 * is valid; !ok → challenge invalid with fail as its error, authz and order
 * invalid. A challenge neither pending nor processing is left alone (0).
 * out (may be NULL) receives the final authz. 0/-1 (prob = serverInternal).
 */
int acme_res_settle(struct acme_ctx *ctx, const char *authz_id, const char *chall_id, bool ok,
                    const struct acme_problem *fail, const struct acme_attested *att,
                    struct acme_authz *out, struct acme_problem *prob);
/* Fills rq->resp with the challenge JSON, `Link: <authz>;rel="up"` and Retry-After. */
void acme_chall_respond(struct acme_rq *rq, const struct acme_authz *a,
                        const struct acme_chall *ch);
/* A validation request for a network challenge (key authorization already stored). */
struct acme_validation *acme_validation_build(const struct acme_authz *a,
                                              const struct acme_chall *ch);
/* Index of chall_id in a, or -1. */
int acme_authz_find_chall(const struct acme_authz *a, const char *chall_id);
/*
 * Retry-After seconds for a response showing a (CH-5): until the next try of
 * its processing challenge when one is scheduled, else ACME_RETRY_POLL; >= 1.
 */
int acme_authz_retry_after(const struct acme_authz *a);

/* What a settlement does besides the challenge result (acme_res_settle_ex). */
struct acme_settle {
    bool ok;
    bool hold;                        /* ok, but an administrator must approve: the
                                         challenge stays processing, the authz pending */
    const struct acme_problem *fail;  /* !ok: the challenge's error */
    const struct acme_attested *att;  /* recorded with the authz, or NULL */
    const cJSON *decision;            /* stored with the authz (copied), or NULL */
    const char *approval;             /* new approval state, or NULL to keep */
    const struct store_rec *audit;    /* inserted in the same commit, or NULL */
    const struct acme_authz *loaded;  /* the authz as the caller already read it, or NULL:
                                         spares the first try a read (the commit still
                                         checks its version; a conflict reads it again) */
};
/* acme_res_settle with the extras above; same contract. */
int acme_res_settle_ex(struct acme_ctx *ctx, const char *authz_id, const char *chall_id,
                       const struct acme_settle *s, struct acme_authz *out,
                       struct acme_problem *prob);

/* ---- approval.c: decision and approval members of an authz ---- */
/* Reads "decision" and "approval" of a stored authz object into a. */
void acme_authz_extra_parse(const cJSON *root, struct acme_authz *a);
/* Writes them into root. */
void acme_authz_extra_rec(const struct acme_authz *a, cJSON *root);
/*
 * A device held for manual approval: when an administrator decided (the
 * approval member says approved or denied), settles the authz accordingly in
 * one commit and reloads *a. 0 (nothing to do or done), -1 with prob.
 */
int acme_approval_poll(struct acme_ctx *ctx, struct acme_authz *a, struct acme_problem *prob);
/* The same for every authz of an order still pending; reloads *o when any settled. */
int acme_approval_poll_order(struct acme_ctx *ctx, struct acme_order *o,
                             struct acme_problem *prob);

/* ---- audit.c: decision records and events ---- */
struct mdm_result;
struct pol_roles;
struct acme_audit {
    const char *stage;      /* "admission" | "approval" | "issuance" | "revocation" */
    bool allowed;
    const char *lookup;     /* device serial, else the identifier */
    const char *policy, *reason, *account, *identifier, *authz;
    const struct pol_roles *roles;        /* or NULL */
    const struct mdm_result *mdm;         /* one per source consulted */
    size_t nmdm;
    const char *tpl, *ca, *cert_serial, *supersedes, *approval;
};
/* A STORE_AUDIT record ready to commit (rec borrows id, data and au's lookup). */
struct acme_audit_rec {
    struct store_rec rec;
    char id[ACME_MAX_ID];
    char *data;
};
void acme_audit_make(const struct acme_audit *au, struct acme_audit_rec *out);
void acme_audit_clear(struct acme_audit_rec *r);
/* The audit data as a JSON object (for events too). Caller deletes. */
cJSON *acme_audit_json(const struct acme_audit *au);
/* Hands type + obj to the event sink, if any, and deletes obj. Call after the commit. */
void acme_emit(struct acme_ctx *ctx, const char *type, cJSON *obj);

/* ---- device_mdm.c: admission after a verified attestation ---- */
/*
 * Decides a verified device-attest-01 (claims checked): with signal sources,
 * moves the challenge to processing and starts the lookups (the answer comes
 * later, on a worker); without, decides now. Fills rq->resp. 0/-1 with prob.
 */
int acme_device_admit(struct acme_rq *rq, struct acme_authz *a, size_t idx,
                      const struct acme_attested *att, struct acme_problem *prob);
/* Restarts the lookups of a device challenge left processing (recovery). 0/-1. */
int acme_device_lookups_restart(struct acme_ctx *ctx, const struct acme_authz *a, size_t idx);
/*
 * Rebuilds the MDM part of a pol_input from a stored decision (names and
 * values borrowed from decision). 0, or -1 when the arrays are too small.
 */
struct pol_mdm;
struct pol_attr;
int acme_decision_input(const cJSON *decision, struct pol_mdm *mdm, size_t maxmdm,
                        struct pol_attr *attrs, size_t maxattrs, size_t *nmdm);
/* Fills a pol_input's claims from what the authz recorded. */
void acme_attested_claims(const struct acme_attested *att, struct att_claims *out);

/* ---- issue.c: templates, supersede, issuance events (finalize) ---- */
struct pol_rendered;
/* The audit/supersede key of an order: the attested serial, else the device part. */
void acme_issue_key(const struct acme_order *o, const struct acme_authz *az, char *out,
                    size_t len);
/* The roles az's decision recorded (names borrowed from az). */
void acme_issue_roles(const struct acme_authz *az, struct pol_roles *roles);
/*
 * O-3: the validity of o's certificate: the order's notBefore/notAfter where
 * given, else from now for pol's lifetime (its template's, else its own).
 */
void acme_issue_window(const struct acme_ctx *ctx, const struct cfg_policy *pol,
                       const struct acme_order *o, int64_t *not_before, int64_t *not_after);
/* Renders rq's policy template for the order; badCSR naming the missing variable. */
int acme_issue_render(struct acme_rq *rq, const struct acme_order *o, const struct acme_authz *az,
                      const struct pki_csr *csr, struct pki_issue_req *req,
                      struct pol_rendered *store, struct acme_problem *prob);
/*
 * The current certificate of device key under policy (other than exclude):
 * 0 found (*old loaded), 1 none, -1 error.
 */
int acme_supersede_find(struct acme_ctx *ctx, const char *key, const char *policy,
                        const char *exclude, struct acme_cert *old, struct acme_problem *prob);
/* certificate.issued (and certificate.revoked for a revoked old) after the commit. */
void acme_issue_events(struct acme_ctx *ctx, const struct acme_audit *au, const struct acme_cert *c,
                       const struct acme_cert *old);

/* ---- renewal.c: ACME Renewal Information (RFC 9773) ---- */
/*
 * The certificate an ARI certID names under pol: 0 (*c loaded; caller clears
 * it), or -1 with *c cleared and prob malformed: 400 for a malformed certID,
 * 404 for one naming no certificate of pol (ARI-5); serverInternal on a store
 * error.
 */
int acme_cert_by_ari_id(struct acme_ctx *ctx, const struct cfg_policy *pol, const char *id,
                        struct acme_cert *c, struct acme_problem *prob);
/* When c's renewal window opens (seconds since the epoch): see pol_renewal_start. */
int64_t acme_renewal_start(const struct acme_ctx *ctx, const struct acme_cert *c);

/* ---- replaces.c: newOrder `replaces` (RFC 9773 §5) ---- */
/*
 * Reads the optional `replaces` of a newOrder payload into o->replaces after
 * checking it (o->ids already read): a certID of a certificate of this
 * policy, issued to rq's account, sharing an identifier with o and not held
 * by a replacing order that is not invalid. 0, or -1 with prob: malformed
 * (400 bad certID, 404 unknown certificate, 400 no shared identifier),
 * unauthorized 403 (another account's), alreadyReplaced 409.
 */
int acme_replaces_read(struct acme_rq *rq, const cJSON *payload, struct acme_order *o,
                       struct acme_problem *prob);
/* Whether rq's newOrder renews, in its open renewal window, a certificate of its account
   that no order has tried to replace yet: such an order is not rate limited. */
bool acme_replaces_is_renewal(struct acme_rq *rq);
/* The predecessor's update a replacing order commits with; owned by the caller. */
struct acme_replacing {
    struct acme_cert cert;
    struct store_rec rec; /* borrows from cert */
    char *data;
};
/*
 * For an order with `replaces`: reloads the certificate, checks again that no
 * order that is not invalid holds it, and fills *w with its update naming o
 * as replaced_by, conditional on the version just read, for the order's own
 * commit: of two orders racing for one certificate only one commits. 1
 * staged, 0 nothing to stage (no `replaces`), -1 with prob as
 * acme_replaces_read. st is cleared first and afterwards by the caller.
 */
int acme_replaces_stage(struct acme_ctx *ctx, const struct cfg_policy *pol,
                        const struct acme_order *o, struct acme_replacing *st,
                        struct store_write *w, struct acme_problem *prob);
void acme_replacing_clear(struct acme_replacing *st);
/* Adds o's `replaces` to obj (the order's stored data or its JSON view) when it has one. */
void acme_replaces_add(const struct acme_order *o, cJSON *obj);

/* ---- device_attest.c ---- */
/* Handles the device-attest-01 response for challenge a->ch[idx] (payload already an object). */
int acme_device_attest(struct acme_rq *rq, struct acme_authz *a, size_t idx,
                       struct acme_problem *prob);

/* ---- shared small helpers (order.c) ---- */
/* Copies src into dst[n], truncating; dst always NUL-terminated. */
void acme_strlcpy(char *dst, const char *src, size_t n);
/* Wraps a store error into prob (serverInternal, no store text for the client). */
void acme_store_problem(struct acme_problem *prob, const char *what, const char *err);
/* Copies a record's columns and parses its data into a typed resource. 0/-1. */
typedef int acme_rec_fill_fn(void *out, const struct store_rec *rec);
/*
 * store_get + fill: 0 found, 1 not found, -1 store or parse error (prob =
 * serverInternal naming what, e.g. "an order"). On -1 out may be half filled:
 * the caller clears it.
 */
int acme_rec_load(struct acme_ctx *ctx, enum store_kind kind, const char *id, const char *what,
                  acme_rec_fill_fn *fill, void *out, struct acme_problem *prob);

#endif
