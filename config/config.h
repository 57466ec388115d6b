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

struct cfg_acme {
    char *resolver;           /* "host:port" for dns-01 and target lookups; NULL = system */
    int http01_port;          /* default 80 */
    int tls_alpn01_port;      /* default 443 */
    int64_t order_lifetime;   /* seconds, default 7d */
    int64_t authz_lifetime;   /* seconds, default 7d */
    int validation_attempts;  /* tries before a challenge is invalid, default 3 */
    int validation_timeout;   /* seconds per try, default 10 */
    int validation_retry_delay; /* seconds between tries, default 2 */
    size_t max_identifiers;   /* per order, default 100 */
    int orders_per_hour;      /* per account, 0 = unlimited; default 300 */
    char *terms_of_service;   /* directory meta.termsOfService URL or NULL */
    char *website;            /* directory meta.website or NULL */
};

struct cfg_attestation {
    char **apple_roots;   /* PEM files; n == 0 means the built-in Apple root */
    size_t napple_roots;
    bool require_nonce;   /* default true */
    bool accept_serial;   /* identifier may equal the attested serial, default true */
    bool accept_udid;     /* identifier may equal the attested UDID, default true */
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

#endif
