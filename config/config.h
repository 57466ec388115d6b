/*
 * config: the only code that reads YAML. Turns a file (or nothing: every key
 * has an embedded default) into an immutable `struct cfg` that other modules
 * read. Errors name the place: "config.yaml:42: server.workers: expected an
 * integer from 0 to 1024".
 */
#ifndef ACMESRV_CONFIG_H
#define ACMESRV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#define CFG_ERR_LEN 512

/* Identifier types a policy accepts in newOrder (bit flags). */
#define CFG_ID_DNS 0x01u
#define CFG_ID_IP 0x02u
#define CFG_ID_PERMANENT 0x04u /* permanent-identifier (device-attest draft) */
#define CFG_ID_HARDWARE 0x08u  /* hardware-module (device-attest draft) */

/* Challenge types a policy offers (bit flags). */
#define CFG_CH_HTTP01 0x01u
#define CFG_CH_DNS01 0x02u
#define CFG_CH_TLSALPN01 0x04u
#define CFG_CH_DEVICE_ATTEST01 0x08u

enum cfg_store_driver { CFG_STORE_SQLITE, CFG_STORE_POSTGRES };

/* Longest acme.meta.terms_of_service(_instance) URL: accounts and problems keep it whole. */
#define CFG_TERMS_URL_MAX 500

struct cfg_server {
    char *listen;           /* "host:port"; default "localhost:8443" */
    char *data_dir;         /* default "./attesta-data" */
    int workers;            /* event-loop threads; 0 (default, "auto") = online cores */
    char *tls_cert;         /* PEM chain; NULL = generated <data_dir>/tls.pem */
    char *tls_key;          /* NULL = generated <data_dir>/tls.key */
    char *base_url;         /* public URL prefix; NULL = "https://<listen>" */
    size_t max_body;        /* request body limit, default 65536 */
    size_t max_headers;     /* request header block limit, default 16384 */
    int read_timeout;       /* seconds to receive a whole request, default 10 */
    int idle_timeout;       /* keep-alive idle seconds, default 60 */
    int shutdown_timeout;   /* seconds SIGTERM waits for in-flight requests, default 20 */
    int max_conns_per_ip;   /* concurrent connections per client address, default 256 */
    char *access_log;       /* file path; NULL = stderr */
    char *log_level;        /* "error" | "warn" | "info" | "debug"; default "info" */
};

struct cfg_storage {
    enum cfg_store_driver driver; /* default sqlite */
    char *path;                   /* sqlite file; NULL = <data_dir>/attesta.db */
    char *dsn_env;                /* postgres: env var holding the libpq DSN */
};

/*
 * CH-6: seconds that must pass between two client-triggered retries of one
 * challenge (a re-POST while a retry waits), from acme.challenges.retry_delay:
 * half the operator's chosen spacing, at least 1 s. acme/ and the validator
 * both apply it (docs/configuration.md).
 */
#define CFG_EARLY_RETRY_GAP(retry_delay) ((retry_delay) / 2 > 1 ? (retry_delay) / 2 : 1)

struct cfg_acme {
    char *resolver;           /* "host:port" for dns-01 and target lookups; NULL = system */
    int http01_port;          /* default 80 */
    int tls_alpn01_port;      /* default 443 */
    int64_t order_lifetime;   /* seconds, default 7d */
    int64_t authz_lifetime;   /* seconds, default 7d */
    bool authz_reuse;         /* newOrder reuses valid dns/ip authorizations, default true */
    int validation_attempts;  /* tries before a challenge is invalid, default 3 */
    int validation_timeout;   /* seconds per try, default 10 */
    int validation_retry_delay; /* seconds between tries, default 2 */
    int challenge_wait;       /* ms a challenge response waits for its validation, default 250;
                                 0 = answer at once */
    size_t max_identifiers;   /* per order, default 100 */
    int orders_per_hour;      /* per account, 0 = unlimited; default 300 */
    int accounts_per_ip_hour; /* new accounts per client address (IPv6: per /64),
                                 0 = unlimited; default 10000 */
    int max_json_depth;       /* nesting of request JSON, default 16 (2..64) */
    char *terms_of_service;   /* directory meta.termsOfService URL or NULL */
    bool terms_reagree;       /* accounts that agreed to other terms (or none) must agree to
                                 these before ordering, finalizing, answering a challenge or
                                 revoking; default false */
    char *terms_instance;     /* URL for humans in that refusal; NULL = terms_of_service */
    char *website;            /* directory meta.website or NULL */
};

struct cfg_attestation {
    char **apple_roots;   /* PEM files; n == 0 means the built-in Apple root */
    size_t napple_roots;
    bool require_nonce;   /* default true */
    bool accept_serial;   /* identifier may equal the attested serial, default true */
    bool accept_udid;     /* identifier may equal the attested UDID, default true */
    size_t max_attobj;    /* attestation object bytes, default 64k (1k..64k) */
    int max_cbor_depth;   /* nested CBOR containers, default 4 (2..4) */
    int max_x5c;          /* certificates in attStmt.x5c, default 4 (1..4) */
};

struct cfg_ca {
    char *name;
    char *cert;  /* PEM; NULL = generated dev CA in <data_dir>/ca/<name>/intermediate.pem */
    char *key;
    char *chain; /* optional PEM chain above cert; for generated CAs root.pem */
};

struct cfg_policy {
    char *name;               /* served at /acme/<name>/directory */
    unsigned identifiers;     /* CFG_ID_* */
    unsigned challenges;      /* CFG_CH_* */
    bool eab_required;
    char *ca;                 /* a cfg_ca name */
    int64_t cert_validity;    /* seconds, default 90d */
    unsigned key_types;       /* bitmask of 1u << enum pki_key_type; default P-256|P-384|RSA* */
    char **signal_sources;    /* names of signal_sources entries consulted after attestation */
    size_t nsignal_sources;
    char **roles;             /* device_roles names; the device must hold one; none = no role */
    size_t nroles;
    char *template;           /* a templates name; NULL = built-in certificate shape */
    unsigned approval;        /* enum cfg_approval, default none */
    unsigned supersede;       /* enum cfg_supersede, default keep */
};

/* signal_sources.NAME.auth.type */
enum cfg_mdm_auth {
    CFG_MDM_AUTH_NONE,
    CFG_MDM_AUTH_BEARER,
    CFG_MDM_AUTH_BASIC,
    CFG_MDM_AUTH_HEADER,
    CFG_MDM_AUTH_OAUTH2, /* oauth2_client_credentials */
};

/* signal_sources.NAME.conditions[].op */
enum cfg_mdm_op {
    CFG_MDM_OP_EXISTS,
    CFG_MDM_OP_NOT_EXISTS,
    CFG_MDM_OP_EQUALS,
    CFG_MDM_OP_NOT_EQUALS,
    CFG_MDM_OP_IN,
    CFG_MDM_OP_NOT_IN,
    CFG_MDM_OP_IS_TRUE,
    CFG_MDM_OP_IS_FALSE,
    CFG_MDM_OP_GT,
    CFG_MDM_OP_GE,
    CFG_MDM_OP_LT,
    CFG_MDM_OP_LE,
    CFG_MDM_OP__MAX
};
/* "exists", "not_exists", ... indexed by enum cfg_mdm_op. */
extern const char *const cfg_mdm_op_names[CFG_MDM_OP__MAX + 1];

struct cfg_mdm_kv {
    char *name;  /* header or attribute name */
    char *value; /* header template or attribute JSON path */
};

struct cfg_mdm_condition {
    char *path;      /* JSON path inside the matched record */
    unsigned op;     /* enum cfg_mdm_op */
    char **values;   /* scalar text of `value` (one) or of each list item (in/not_in) */
    size_t nvalues;
};

/*
 * One MDM lookup over HTTP. Secrets are never stored here: only the names of
 * environment variables or files that hold them; mdm/ reads them at start.
 * Templates (url, header values, body, match.equals) use ${/attest/serial}
 * and ${/attest/udid} with the filters |urlencode and |json.
 */
struct cfg_signal_source {
    char *name;
    char *type;               /* "http" */
    char *method;             /* "GET" | "POST" */
    char *url;                /* template */
    struct cfg_mdm_kv *headers; /* name -> template */
    size_t nheaders;
    char *body;               /* template or NULL */
    unsigned auth_type;       /* enum cfg_mdm_auth */
    char *auth_token_env, *auth_token_file;
    char *auth_username;
    char *auth_password_env, *auth_password_file;
    char *auth_header;        /* header: the header name */
    char *auth_value_env, *auth_value_file;
    char *auth_token_url;     /* oauth2 */
    char *auth_client_id;
    char *auth_client_secret_env, *auth_client_secret_file;
    char *auth_scope;
    char *tls_ca_file;        /* NULL = system store */
    bool tls_insecure;        /* insecure_skip_verify, default false */
    int64_t timeout;          /* seconds per HTTP request, default 5 */
    int max_concurrency;      /* requests in flight, default 8 */
    char *records;            /* JSON path of the record list or record, default "$" */
    char *match_field;        /* JSON path inside a record */
    char *match_equals;       /* template, default "${/attest/serial}" */
    struct cfg_mdm_condition *conditions;
    size_t nconditions;
    struct cfg_mdm_kv *attributes; /* name -> JSON path inside the record */
    size_t nattributes;
    int64_t cache_ttl;        /* seconds, default 300 */
    int64_t cache_negative_ttl; /* seconds, default 30 */
    int retry_attempts;       /* total tries, default 3 */
    int64_t retry_deadline;   /* seconds for all tries, default 10 */
    unsigned on_failure_allow; /* on_failure: 0 = deny (default), 1 = allow */
};

/* enrollment_policies.NAME.approval: manual holds issuance for an administrator. */
enum cfg_approval { CFG_APPROVAL_NONE, CFG_APPROVAL_MANUAL };
/* enrollment_policies.NAME.supersede: what happens to the device's older certificates. */
enum cfg_supersede { CFG_SUPERSEDE_KEEP, CFG_SUPERSEDE_REVOKE };

/* templates.NAME.san kinds; mirrors enum pki_san_type (checked in policy/). */
enum cfg_san_kind {
    CFG_SAN_DNS,
    CFG_SAN_IP,
    CFG_SAN_EMAIL,
    CFG_SAN_URI,
    CFG_SAN_PERMANENT_ID,
    CFG_SAN_UPN,
    CFG_SAN_HW_MODULE, /* hardware_module_name: "serial/type-OID" */
    CFG_SAN__MAX
};

/* One subject entry or SAN of a template; value is text with ${/path} variables. */
struct cfg_tpl_item {
    char *field;   /* subject: "CN", "O", ..., or a dotted OID; NULL for SANs */
    unsigned san;  /* SANs: enum cfg_san_kind */
    char *value;   /* template text */
};

/*
 * templates.NAME: the shape of an issued certificate. Variables are checked
 * at load time against cfg_tpl_vars and the configured signal sources.
 */
struct cfg_template {
    char *name;
    int64_t validity;             /* seconds; 0 = the policy's validity */
    struct cfg_tpl_item *subject; /* in order; may be empty (SAN-only certificate) */
    size_t nsubject;
    struct cfg_tpl_item *sans;
    size_t nsans;
    unsigned key_usage;           /* bit i = RFC 5280 KeyUsage bit i (PKI_KU_*); 0 = default */
    char **eku;                   /* "serverAuth", "clientAuth", ... or dotted OIDs */
    size_t neku;
    unsigned key_types;           /* like cfg_policy.key_types; 0 = the policy's */
    int64_t renewal_window;       /* seconds before notAfter renewal opens; 0 = unset */
    int renewal_percent;          /* or: last N percent of the lifetime (1..99); 0 = unset */
};
/* The static variable paths a template may use ("/attest/serial", ...), NULL-terminated;
 * "/mdm/<source>/<attribute>" comes on top. */
extern const char *const cfg_tpl_vars[];

/* device_roles predicates (device_roles.NAME.when[]). */
enum cfg_pred_kind {
    CFG_PRED_ATTEST,  /* {attest: serial, op: ..., value: ...} */
    CFG_PRED_RESULT,  /* {source: kandji, result: allowed|denied} */
    CFG_PRED_ATTR,    /* {source: kandji, attribute: blueprint, op: ..., value: ...} */
    CFG_PRED_ACCOUNT, /* {account: eab_kid, op: ..., value: ...} */
    CFG_PRED_ANY,     /* {any: [PREDICATE, ...]}: at least one holds */
};
enum cfg_pred_op {
    CFG_PRED_OP_EQUALS,
    CFG_PRED_OP_NOT_EQUALS,
    CFG_PRED_OP_IN,
    CFG_PRED_OP_NOT_IN,
    CFG_PRED_OP_MATCHES_PREFIX,
    CFG_PRED_OP_VERSION_GE,
    CFG_PRED_OP_VERSION_LT,
    CFG_PRED_OP_EXISTS,
    CFG_PRED_OP_NOT_EXISTS,
    CFG_PRED_OP__MAX
};
extern const char *const cfg_pred_op_names[CFG_PRED_OP__MAX + 1];
enum cfg_claim { CFG_CLAIM_SERIAL, CFG_CLAIM_UDID, CFG_CLAIM_OS, CFG_CLAIM_SEPOS, CFG_CLAIM__MAX };
extern const char *const cfg_claim_names[CFG_CLAIM__MAX + 1]; /* "serial", ... */

struct cfg_pred {
    unsigned kind;          /* enum cfg_pred_kind */
    unsigned claim;         /* ATTEST: enum cfg_claim */
    char *source;           /* RESULT, ATTR: signal source name */
    char *attribute;        /* ATTR: attribute name; ACCOUNT: "eab_kid" */
    unsigned op;            /* enum cfg_pred_op (not RESULT, ANY) */
    bool want_allowed;      /* RESULT */
    char **values;          /* one for equals/..., several for in/not_in, none for exists */
    size_t nvalues;
    struct cfg_pred *any;   /* ANY: alternatives */
    size_t nany;
    unsigned line;          /* where it was written, for explanations */
};

/* device_roles.NAME: a role held when every predicate of `when` holds. */
struct cfg_role {
    char *name;
    struct cfg_pred *when;
    size_t nwhen;
};

/* events.webhooks[].types: which events a webhook receives (bit flags 1u << index). */
enum cfg_event_type { CFG_EV_ISSUED, CFG_EV_DENIED, CFG_EV_REVOKED, CFG_EV__MAX };
/* "certificate.issued", "enrollment.denied", "certificate.revoked", NULL. */
extern const char *const cfg_event_names[CFG_EV__MAX + 1];

/* events.webhooks[]: one receiver of signed event notifications. */
struct cfg_webhook {
    char *name;          /* for logs, [a-z0-9][a-z0-9_-]{0,31}, unique */
    char *url;           /* http:// or https:// endpoint the JWT is POSTed to */
    char *secret_env;    /* HS256 key from this environment variable, or */
    char *secret_file;   /* from this file (exactly one of the two) */
    unsigned types;      /* 1u << enum cfg_event_type; default all */
    int64_t timeout;     /* seconds per delivery attempt, default 5 */
    int attempts;        /* total tries, default 5 */
    int64_t backoff;     /* seconds before the first retry, doubling, capped at 60; default 1 */
    char *tls_ca_file;   /* NULL = system store */
};

/* events: where operator-facing events go. */
struct cfg_events {
    char *file;                   /* JSON-lines log; default <data_dir>/events.jsonl;
                                     NULL when disabled with "-" */
    struct cfg_webhook *webhooks; /* may be empty */
    size_t nwebhooks;
    int64_t shutdown_drain;       /* seconds SIGTERM gives queued webhook deliveries, default 5 */
};

struct cfg {
    char *path; /* file it came from, NULL for embedded defaults */
    struct cfg_server server;
    struct cfg_storage storage;
    struct cfg_acme acme;
    struct cfg_attestation attestation;
    struct cfg_ca *cas;
    size_t ncas;
    struct cfg_policy *policies;
    size_t npolicies;
    struct cfg_signal_source *signal_sources; /* optional section; may be empty */
    size_t nsignal_sources;
    struct cfg_template *templates; /* optional section; may be empty */
    size_t ntemplates;
    struct cfg_role *roles;         /* device_roles; optional, may be empty */
    size_t nroles;
    struct cfg_events events;       /* optional section */
};

/*
 * Loads path, or the embedded defaults when path is NULL: one CA "default"
 * (generated), policy "default" (dns+ip; http-01, dns-01, tls-alpn-01) and
 * policy "devices" (permanent-identifier+hardware-module; device-attest-01).
 * Relative paths in the file are resolved against the file's directory.
 * NULL with err = "FILE:LINE: key.path: what is wrong".
 */
struct cfg *cfg_load(const char *path, char err[CFG_ERR_LEN]);
void cfg_free(struct cfg *cfg);
/* The policy named name, or NULL. */
const struct cfg_policy *cfg_policy_find(const struct cfg *cfg, const char *name);
/* The CA named name, or NULL. */
const struct cfg_ca *cfg_ca_find(const struct cfg *cfg, const char *name);
/* The signal source named name, or NULL. */
const struct cfg_signal_source *cfg_signal_source_find(const struct cfg *cfg, const char *name);
/* The template named name, or NULL. */
const struct cfg_template *cfg_template_find(const struct cfg *cfg, const char *name);
/* The device role named name, or NULL. */
const struct cfg_role *cfg_role_find(const struct cfg *cfg, const char *name);

#endif
