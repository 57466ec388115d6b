/*
 * acme administration over the store alone (no running server, no ctx): the
 * audit trail of enrollment decisions and manual approval of devices held by
 * an `approval: manual` policy. Used by `attesta audit` and `attesta
 * approve`; the running server picks an approval up on the device's next
 * poll (acme/approval.c), so the two processes share nothing but the store.
 */
#ifndef ACMESRV_ACME_ADMIN_H
#define ACMESRV_ACME_ADMIN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/common.h"

struct store;

/*
 * Prints the decisions about device serial (NULL: every device) recorded at
 * or after since (0: all), newest first, one block per decision. Returns the
 * number printed, or -1 with err.
 */
int acme_admin_audit(struct store *st, const char *serial, int64_t since, FILE *fp,
                     char err[ERR_LEN]);

/* Prints the authorizations waiting for approval (id, serial, policy, roles, age). Count or -1. */
int acme_admin_pending(struct store *st, FILE *fp, char err[ERR_LEN]);

/*
 * Records an administrator's decision on authz_id: approve, or deny with
 * reason (may be NULL). 0 done, 1 no such authorization waiting for
 * approval, -1 error.
 */
int acme_admin_decide(struct store *st, const char *authz_id, bool approve, const char *reason,
                      char err[ERR_LEN]);

/* The same for every authorization of device serial waiting for approval. Count or -1. */
int acme_admin_decide_serial(struct store *st, const char *serial, bool approve,
                             const char *reason, char err[ERR_LEN]);

#endif
