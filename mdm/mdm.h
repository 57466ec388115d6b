/*
 * mdm: signal sources. After a device attestation verifies, the attested
 * serial number is looked up in one or more MDMs over HTTP; the answer is
 * matched exactly, checked against the configured conditions and reduced to
 * a verdict (allow/deny) with a human-readable reason and attributes.
 *
 * One engine runs one thread with its own event loop and libcurl multi
 * handle; lookups from any thread are queued to it, cached (positive and
 * negative), coalesced (concurrent lookups of the same device share one
 * request), limited per source and retried on 429/5xx within a deadline.
 */
#ifndef ACMESRV_MDM_H
#define ACMESRV_MDM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

struct cfg;
struct mdm_engine;

/* Values the request templates may use: ${/attest/serial}, ${/attest/udid}. */
struct mdm_vars {
    const char *serial; /* attested serial number; required */
    const char *udid;   /* attested UDID or NULL */
};

enum mdm_verdict { MDM_DENY, MDM_ALLOW };

struct mdm_attr {
    char *name;  /* as configured under attributes: */
    char *value; /* strings as-is, other JSON values as compact JSON text */
};

struct mdm_cond_result {
    char *text;  /* "mdm_enabled is_true (value true)" */
    bool pass;
};

/*
 * The outcome of one lookup. Handed to mdm_done_fn as a borrowed view, or
 * filled by mdm_lookup_wait (then owned by the caller: mdm_result_clear).
 */
struct mdm_result {
    char *source;            /* signal source name */
    enum mdm_verdict verdict;
    bool failed;             /* the MDM could not answer; verdict came from on_failure */
    bool stopped;            /* the engine stopped first: no answer and no verdict (failed is
                                set and verdict is deny whatever on_failure says) */
    char *reason;            /* "kandji: condition mdm_enabled is_true failed (value false)";
                                for allow: "kandji: device found, 2 conditions passed" */
    int http_status;         /* last HTTP status, 0 when none (cache, transport error) */
    bool from_cache;
    int64_t elapsed_ms;      /* from mdm_lookup to the callback */
    struct mdm_attr *attrs;  /* attributes found in the matched record */
    size_t nattrs;
    struct mdm_cond_result *conds; /* one per configured condition, in order, once matched */
    size_t nconds;
    char *record_json;       /* matched record, pretty JSON, or NULL */
};

/*
 * Completion callback. Runs on the engine thread; res is valid only during the
 * call (copy what you need, mdm_result_copy helps). Must not block and must
 * not call mdm_engine_free.
 */
typedef void mdm_done_fn(void *arg, const struct mdm_result *res);

/*
 * Reads every source's secrets (environment variables or files; a missing one
 * is an error naming the config key and variable, never the value), then
 * starts the engine thread. cfg is borrowed and must outlive the engine.
 * A configuration without signal sources gives an idle engine. NULL with err.
 */
struct mdm_engine *mdm_engine_new(const struct cfg *cfg, char err[ERR_LEN]);

/*
 * Stops the thread and keeps the engine allocated, so a thread that still
 * holds eng (a request outliving shutdown) gets a clean refusal from
 * mdm_lookup instead of a freed engine. Lookups pending are completed with
 * a stopped result (stopped, failed, verdict deny) before this returns.
 * Idempotent, NULL-safe; not from a mdm_done_fn, not concurrently with itself.
 */
void mdm_engine_stop(struct mdm_engine *eng);

/* True once mdm_engine_stop has begun: mdm_lookup refuses from then on. Thread-safe. */
bool mdm_engine_is_stopped(struct mdm_engine *eng);

/*
 * mdm_engine_stop, then frees eng. No mdm_lookup may run concurrently or
 * later. NULL-safe; not from a mdm_done_fn.
 */
void mdm_engine_free(struct mdm_engine *eng);

/*
 * Queues a lookup of vars->serial in source. Thread-safe, never blocks, never
 * calls done synchronously: done runs later on the engine thread, exactly
 * once. vars is copied. -1 with err (and no callback) when the source is
 * unknown, the serial is missing or longer than 128 bytes, or the engine is
 * stopped (mdm_engine_is_stopped tells that case apart).
 */
int mdm_lookup(struct mdm_engine *eng, const char *source, const struct mdm_vars *vars,
               mdm_done_fn *done, void *arg, char err[ERR_LEN]);

/*
 * Blocking convenience for the CLI and tests: mdm_lookup, then waits for the
 * result and deep-copies it into *out (release with mdm_result_clear). Never
 * call it from the engine thread. 0/-1 with err (as mdm_lookup).
 */
int mdm_lookup_wait(struct mdm_engine *eng, const char *source, const struct mdm_vars *vars,
                    struct mdm_result *out, char err[ERR_LEN]);

/* Deep copy of src into *dst (zeroed first). */
void mdm_result_copy(struct mdm_result *dst, const struct mdm_result *src);
/* Frees what *res owns and zeroes it. NULL-safe. */
void mdm_result_clear(struct mdm_result *res);
/* The value of attribute name in res, or NULL. Borrowed. */
const char *mdm_result_attr_get(const struct mdm_result *res, const char *name);

/*
 * Webhooks (events.webhooks): every event is POSTed as a signed JWT
 * (Content-Type: application/jwt, HS256 with the webhook's secret) from a
 * sender thread with its own engine, so it works without signal sources.
 * Failed attempts (connection errors, timeouts, 429, 5xx) are retried with
 * doubling backoff (Retry-After honoured) up to the configured attempts.
 * Each webhook holds at most a bounded number of undelivered events; when
 * full the oldest is dropped with a warning. At shutdown a drain delivers
 * what is queued within a time bound (mdm_webhooks_drain).
 */
struct mdm_webhooks;

/*
 * Reads every webhook's secret (environment variable or file; errors name
 * the key, never the value) and starts the sender thread. cfg is only read
 * during the call. NULL with err.
 */
struct mdm_webhooks *mdm_webhooks_new(const struct cfg *cfg, char err[ERR_LEN]);
/*
 * Replaces the webhook list with cfg's (configuration reload). Events already
 * queued are still delivered with the settings they were queued under.
 * -1 with err and nothing changed when a secret cannot be read. Thread-safe.
 */
int mdm_webhooks_configure(struct mdm_webhooks *wh, const struct cfg *cfg, char err[ERR_LEN]);
/*
 * Queues one event for every webhook subscribed to type. id (copied, at most
 * 31 characters) is the event's id, sent as the JWT's jti on every attempt
 * at every webhook. json is a JSON object (copied). Thread-safe, never
 * blocks; a no-op without webhooks and once a drain has begun.
 */
void mdm_webhooks_send(struct mdm_webhooks *wh, const char *id, const char *type,
                       const char *json);
/* Runs once on the sender thread when a drain ends; undelivered = deliveries given up. */
typedef void mdm_drain_fn(void *arg, size_t undelivered);
/*
 * Shutdown: takes no more events and spends up to ms milliseconds on those
 * queued, in flight or waiting for a retry due within that time; one whose
 * next attempt would come later is given up at once. Each delivery given up
 * is logged (webhook, type, jti = event id), then a total. done (may be NULL)
 * says when it is over. Returns at once; thread-safe; only the first call
 * counts.
 */
void mdm_webhooks_drain(struct mdm_webhooks *wh, int64_t ms, mdm_drain_fn *done, void *arg);
/* Ends a drain now (or, before one, makes it end as soon as it starts). Thread-safe. */
void mdm_webhooks_drain_cut(struct mdm_webhooks *wh);
/* Stops the sender: cuts a drain short, or gives up on everything without one. NULL-safe. */
void mdm_webhooks_free(struct mdm_webhooks *wh);

#endif
