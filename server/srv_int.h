/*
 * server internals: the `attesta` binary's subcommands and the HTTPS plane.
 * Each subcommand is `int srv_cmd_<name>(int argc, char **argv)` in
 * server/cmd_<name>.c; argv[0] is the subcommand name; the return value is the
 * process exit status.
 */
#ifndef ACMESRV_SRV_INT_H
#define ACMESRV_SRV_INT_H

int srv_cmd_serve(int argc, char **argv);   /* attesta serve [-c FILE] */
int srv_cmd_config(int argc, char **argv);  /* attesta config check FILE */
int srv_cmd_eab(int argc, char **argv);     /* attesta eab add|list|remove ... */
int srv_cmd_ca(int argc, char **argv);      /* attesta ca init --dir DIR --name NAME */
int srv_cmd_attest(int argc, char **argv);  /* attesta attest inspect FILE [--at TIME] */
int srv_cmd_profile(int argc, char **argv); /* attesta profile --policy NAME ... */
int srv_cmd_audit(int argc, char **argv);   /* attesta audit [--serial S] [--since T] [-c FILE] */
int srv_cmd_approve(int argc, char **argv); /* attesta approve ID|--serial S|--list ... */
int srv_cmd_mdm(int argc, char **argv);     /* attesta mdm lookup SOURCE SERIAL [--udid U] [-c FILE] */

/* ---- challenge validators (server/srv_validate*.c) ---- */

#include <stdbool.h>
#include <stdint.h>

struct acme_validation;
struct acme_problem;
struct cfg_acme;

/*
 * Called on the validator thread when a validation finished (after its
 * retries): ok, or failed with prob filled (type "connection", "dns",
 * "incorrectResponse", "unauthorized", "tls" per RFC 8555 §8 / RFC 8737).
 * Ownership of v passes to the callee. Must not block for long: the server's
 * callback hands v to the worker pool, which calls acme_validation_done.
 */
typedef void srv_validation_done_fn(void *arg, struct acme_validation *v, bool ok,
                                    const struct acme_problem *prob);
/*
 * Called on the validator thread when a try of v failed with prob and
 * another is due at next_attempt (seconds since the epoch, rounded up). v and
 * prob are borrowed for the call; same blocking rule as the done callback
 * (the server's hands a copy to acme_validation_retrying on the pool).
 */
typedef void srv_validation_retry_fn(void *arg, const struct acme_validation *v,
                                     const struct acme_problem *prob, int64_t next_attempt);

struct srv_validator;

/*
 * Starts the validator thread with its own event loop and DNS resolver
 * (acme->resolver, or the system's), probing http-01 on acme->http01_port
 * and tls-alpn-01 on acme->tls_alpn01_port. done and retry (NULL: no retry
 * notices) get arg. NULL with err set.
 */
struct srv_validator *srv_validator_new(const struct cfg_acme *acme, srv_validation_done_fn *done,
                                        srv_validation_retry_fn *retry, void *arg, char err[256]);
/*
 * Queues v (thread-safe, never blocks, never calls back synchronously): 0,
 * and v is the validator's. -1 once srv_validator_stop ran: v stays the
 * caller's and its challenge `processing` (recovered at the next start).
 */
int srv_validator_submit(struct srv_validator *val, struct acme_validation *v);
/*
 * CH-6: asks the loop to start the retry chall_id waits for now (thread-safe,
 * never blocks, never calls back synchronously; chall_id is copied). Only a
 * retry waiting out acme->validation_retry_delay moves, so no try is added,
 * and one job moves at most once per CFG_EARLY_RETRY_GAP (less a second of
 * slack for acme/'s whole-second stamp); anything else is ignored. 0 queued,
 * -1 once srv_validator_stop ran.
 */
int srv_validator_retry_now(struct srv_validator *val, const char *chall_id);
/*
 * Stops the thread; validations queued or running are dropped (recovered at
 * next start) and no callback runs afterwards. val stays valid for submit,
 * which then refuses, so threads still holding it need no other lock.
 * Idempotent, NULL-safe; must not race srv_validator_free.
 */
void srv_validator_stop(struct srv_validator *val);
/* srv_validator_stop, then frees val. No submit may run concurrently. NULL-safe. */
void srv_validator_free(struct srv_validator *val);

#endif
