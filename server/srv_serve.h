/*
 * Start-up helpers shared by `attesta serve` and the admin subcommands
 * (server/srv_serve_setup.c): data directory, store, CAs, the listener's TLS
 * files and the listen address. Private to server/.
 */
#ifndef ACMESRV_SRV_SERVE_H
#define ACMESRV_SRV_SERVE_H

#include <stddef.h>
#include <sys/types.h>

#include "common/common.h"

struct cfg;
struct store;
struct pki_ca;

/* mkdir -p with mode for each created component. 0/-1. */
int srv_mkdir_p(const char *path, mode_t mode, char err[ERR_LEN]);
/* Creates cfg's data_dir (0700) when missing, then opens the configured store. NULL with err. */
struct store *srv_store_open(const struct cfg *cfg, char err[ERR_LEN]);
/*
 * For administrative subcommands: loads the configuration at path (NULL = the
 * embedded defaults) and opens its store. 0/-1 with err set (CFG_ERR_LEN bytes);
 * on success the caller frees both (store_close, cfg_free).
 */
int srv_admin_open(const char *path, struct cfg **cfg, struct store **st, char *err);
/*
 * Loads every configured CA in cfg->cas order into *cas (caller frees with
 * srv_cas_free). A CA without cert is a generated development CA: "default"
 * lives in <data_dir> itself (so <data_dir>/root.pem is the root to trust),
 * others in <data_dir>/ca/<name>/. 0/-1.
 */
int srv_cas_load(const struct cfg *cfg, struct pki_ca ***cas, char err[ERR_LEN]);
void srv_cas_free(struct pki_ca **cas, size_t n);
/* The CA named "default", else the first one; NULL when there is none. */
const struct pki_ca *srv_cas_default(const struct cfg *cfg, struct pki_ca *const *cas);
/*
 * The listener's certificate and key: the configured files, or
 * <data_dir>/tls.pem and tls.key, created once (signed by ca) for
 * localhost, 127.0.0.1 and host. The caller frees cert and key. 0/-1.
 */
int srv_tls_files(const struct cfg *cfg, const struct pki_ca *ca, const char *host, char **cert,
                  char **key, char err[ERR_LEN]);
/* Splits "host:port", "[v6]:port" or ":port" (host "0.0.0.0"). *host owned. 0/-1. */
int srv_listen_parse(const char *listen, char **host, int *port, char err[ERR_LEN]);

#endif
