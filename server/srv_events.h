/*
 * Events and configuration reload inside server/ (srv_events.c,
 * srv_reload.c). Private to the `attesta` binary.
 */
#ifndef ACMESRV_SRV_EVENTS_H
#define ACMESRV_SRV_EVENTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/common.h"

struct cfg;
struct pki_ca;
struct att_verifier;
struct srv_validator;
struct mdm_engine;
struct acme_ctx;

/* ---- event sink (srv_events.c) ---- */

struct srv_events;

/*
 * Opens cfg->events.file (append, 0600; none when disabled), starts its
 * writer thread and the webhook sender. The sink lives for the whole
 * process and survives reloads. NULL with err.
 */
struct srv_events *srv_events_new(const struct cfg *cfg, char err[ERR_LEN]);
/*
 * An acme_event_fn (arg = struct srv_events *): gives the event an id and
 * queues its JSON line for the writer, which hands it to every subscribed
 * webhook once the line is on disk (at once when the file is disabled).
 * Never blocks on I/O; safe on any thread.
 */
void srv_events_emit(void *arg, const char *type, const char *json);
/* Takes cfg's webhook list and shutdown_drain (reload). -1 with err and nothing changed. */
int srv_events_reconfigure(struct srv_events *ev, const struct cfg *cfg, char err[ERR_LEN]);
/*
 * Graceful shutdown, main thread, once nothing emits any more: writes what is
 * queued to the file, then blocks while the webhooks deliver what is still
 * queued, for up to events.shutdown_drain (see mdm_webhooks_drain). A SIGTERM
 * or SIGINT meanwhile ends it at once. NULL-safe.
 */
void srv_events_drain(struct srv_events *ev);
/* Writes what is queued, stops the writer and the webhook sender (no drain). NULL-safe. */
void srv_events_free(struct srv_events *ev);

/* ---- configuration generations and SIGHUP (srv_reload.c) ---- */

/*
 * Everything that is rebuilt when the configuration is reloaded. A request
 * holds a reference from the moment it reaches the handler until its answer
 * is made; a validation or deferred step holds one until it completes. A
 * retired generation is freed on the main thread once unreferenced.
 */
struct srv_gen {
    atomic_int refs;
    unsigned id;                 /* 1 for the configuration serve started with */
    struct cfg *cfg;
    bool owns_cfg;               /* false for generation 1 (serve's own cfg) */
    struct pki_ca **cas;
    bool owns_cas;
    struct att_verifier *att;
    struct srv_validator *val;
    struct mdm_engine *mdm;
    struct acme_ctx *acme;
    void *owner;                 /* the serve state that built it */
    int64_t retired_ms;          /* clk_mono_ms when replaced; 0 while current */
    bool quiesced;               /* validator and MDM engine stopped (main thread) */
    struct srv_gen *next;        /* retired list */
};

/* Builds the reloadable parts of g (cfg and cas already set); share = the current acme ctx. */
typedef int srv_gen_build_fn(void *arg, struct srv_gen *g, const struct acme_ctx *share,
                             char err[ERR_LEN]);

struct srv_reload;

/*
 * Takes first (fully built, refs 1) as the current generation. path is the
 * file given with -c (NULL: SIGHUP only logs). base is the configuration
 * serve started with; what cannot change without a restart is compared with
 * it. build makes later generations, events (may be NULL) gets the webhooks.
 */
struct srv_reload *srv_reload_new(const char *path, const struct cfg *base, struct srv_gen *first,
                                  srv_gen_build_fn *build, void *build_arg,
                                  struct srv_events *events);
/* The current generation with a reference taken. Thread-safe. */
struct srv_gen *srv_gen_get(struct srv_reload *r);
/* One more reference on g (a validation or deferred step keeps it alive). */
void srv_gen_ref(struct srv_gen *g);
/* Drops a reference; a retired generation is queued for freeing. Thread-safe. */
void srv_gen_put(struct srv_reload *r, struct srv_gen *g);
/* Frees what a generation owns (validator, engine, acme, verifier, CAs, cfg). */
void srv_gen_free(struct srv_gen *g);
/*
 * Main thread: blocks until SIGTERM or SIGINT. SIGHUP re-reads the file:
 * a bad file or a change that needs a restart is logged and ignored; a good
 * one becomes current for new requests. Retired generations are freed here.
 */
void srv_reload_wait(struct srv_reload *r);
/*
 * Shutdown, before the worker pool is freed: stops every generation's
 * validator and MDM engine, whose callbacks submit work to the pool.
 */
void srv_reload_quiesce(struct srv_reload *r);
/* Frees every generation (after the HTTP plane and pool stopped). NULL-safe. */
void srv_reload_free(struct srv_reload *r);

#endif
