/*
 * srv_reload.c: SIGHUP re-reads the configuration file. The reloadable state
 * (cfg, CAs, verifier, validator, MDM engine, acme ctx) lives in a
 * refcounted generation; requests take a reference for as long as they run,
 * so in-flight work finishes on the configuration it started with while new
 * requests get the new one. Nonces and rate limits are shared between
 * generations (acme_deps.share), so clients mid-flow do not notice.
 *
 * What is bound once at start (listener, data directory, store, threads,
 * listener certificate, event log) cannot change: a file changing it is
 * refused with a log line and the running configuration stays.
 */
#include "server/srv_events.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "acme/acme.h"
#include "attest/attest.h"
#include "config/config.h"
#include "mdm/mdm.h"
#include "server/srv_int.h"
#include "server/srv_serve.h"

/* A retired generation waits this long unreferenced, so MDM answers still on their way land. */
#define RELOAD_GRACE_MS 2000

struct srv_reload {
    char *path;
    const struct cfg *base;
    srv_gen_build_fn *build;
    void *build_arg;
    struct srv_events *events;
    pthread_mutex_t mu;
    struct srv_gen *cur;       /* under mu */
    struct srv_gen *retired;   /* under mu: replaced, not yet freed */
    unsigned next_id;
    struct event_base *base_ev;
};

struct srv_reload *srv_reload_new(const char *path, const struct cfg *base, struct srv_gen *first,
                                  srv_gen_build_fn *build, void *build_arg,
                                  struct srv_events *events)
{
    struct srv_reload *r = xcalloc(1, sizeof(*r));
    r->path = path != NULL ? xstrdup(path) : NULL;
    r->base = base;
    r->build = build;
    r->build_arg = build_arg;
    r->events = events;
    pthread_mutex_init(&r->mu, NULL);
    first->id = 1;
    r->cur = first;
    r->next_id = 2;
    return r;
}

struct srv_gen *srv_gen_get(struct srv_reload *r)
{
    struct srv_gen *g;
    pthread_mutex_lock(&r->mu);
    g = r->cur;
    atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&r->mu);
    return g;
}

void srv_gen_ref(struct srv_gen *g)
{
    atomic_fetch_add(&g->refs, 1);
}

/* The last reference of a retired generation only marks it: the main thread frees it. */
void srv_gen_put(struct srv_reload *r, struct srv_gen *g)
{
    (void)r;
    if (g != NULL)
        atomic_fetch_sub(&g->refs, 1);
}

void srv_gen_free(struct srv_gen *g)
{
    if (g == NULL)
        return;
    /* Validator and engine first: their threads call back into acme. */
    srv_validator_free(g->val);
    mdm_engine_free(g->mdm);
    acme_ctx_free(g->acme);
    att_verifier_free(g->att);
    if (g->owns_cas)
        srv_cas_free(g->cas, g->cfg != NULL ? g->cfg->ncas : 0);
    if (g->owns_cfg)
        cfg_free(g->cfg);
    free(g);
}

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The first setting that needs a restart and differs, or NULL. */
static const char *fixed_change(const struct cfg *a, const struct cfg *b)
{
    if (!str_eq(a->server.listen, b->server.listen))
        return "server.listen";
    if (!str_eq(a->server.data_dir, b->server.data_dir))
        return "server.data_dir";
    if (a->server.workers != b->server.workers)
        return "server.workers";
    if (!str_eq(a->server.tls_cert, b->server.tls_cert) ||
        !str_eq(a->server.tls_key, b->server.tls_key))
        return "server.tls";
    if (!str_eq(a->server.base_url, b->server.base_url))
        return "server.base_url";
    if (a->server.max_body != b->server.max_body ||
        a->server.max_headers != b->server.max_headers ||
        a->server.max_conns_per_ip != b->server.max_conns_per_ip)
        return "server.limits";
    if (a->server.read_timeout != b->server.read_timeout)
        return "server.timeouts.read";
    if (!str_eq(a->server.access_log, b->server.access_log))
        return "server.access_log";
    if (a->storage.driver != b->storage.driver || !str_eq(a->storage.path, b->storage.path) ||
        !str_eq(a->storage.dsn_env, b->storage.dsn_env))
        return "storage";
    if (!str_eq(a->events.file, b->events.file))
        return "events.file";
    return NULL;
}

/* Loads, checks and builds the next generation; NULL (logged) when the file is refused. */
static struct srv_gen *reload_build(struct srv_reload *r, const struct acme_ctx *share)
{
    char err[CFG_ERR_LEN];
    struct srv_gen *g;
    const char *what;
    struct cfg *cfg = cfg_load(r->path, err);
    if (cfg == NULL) {
        log_err("server", "reload refused: %s; keeping the running configuration", err);
        return NULL;
    }
    what = fixed_change(r->base, cfg);
    if (what != NULL) {
        log_err("server", "reload refused: %s cannot change on reload; restart attesta", what);
        cfg_free(cfg);
        return NULL;
    }
    g = xcalloc(1, sizeof(*g));
    atomic_init(&g->refs, 1);
    g->cfg = cfg;
    g->owns_cfg = true;
    if (srv_cas_load(cfg, &g->cas, err) != 0 || r->build(r->build_arg, g, share, err) != 0 ||
        (r->events != NULL && srv_events_reconfigure(r->events, cfg, err) != 0)) {
        log_err("server", "reload refused: %s; keeping the running configuration", err);
        g->owns_cas = g->cas != NULL;
        srv_gen_free(g);
        return NULL;
    }
    g->owns_cas = true;
    return g;
}

static void log_directories(const struct srv_gen *g)
{
    size_t n = 0;
    char **urls = acme_directory_urls(g->acme, &n);
    for (size_t i = 0; i < n; i++) {
        log_info("server", "generation %u directory: %s", g->id, urls[i]);
        free(urls[i]);
    }
    free(urls);
}

static void reload_run(struct srv_reload *r)
{
    struct srv_gen *cur, *g;
    if (r->path == NULL) {
        log_warn("server", "SIGHUP: started without -c, nothing to reload");
        return;
    }
    log_info("server", "SIGHUP: reloading %s", r->path);
    pthread_mutex_lock(&r->mu);
    cur = r->cur;
    atomic_fetch_add(&cur->refs, 1);
    pthread_mutex_unlock(&r->mu);
    g = reload_build(r, cur->acme);
    atomic_fetch_sub(&cur->refs, 1);
    if (g == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    g->id = r->next_id++;
    cur = r->cur;
    r->cur = g;
    cur->retired_ms = clk_mono_ms();
    cur->next = r->retired;
    r->retired = cur;
    pthread_mutex_unlock(&r->mu);
    atomic_fetch_sub(&cur->refs, 1); /* the reference of being current */
    log_info("server", "reload: %s is generation %u (generation %u finishes its requests)",
             r->path, g->id, cur->id);
    log_directories(g);
}

/*
 * How long a retired generation waits unreferenced: MDM lookups in flight
 * hold no reference until their answer is deferred to the pool, so wait out
 * the longest lookup a source may take.
 */
static int64_t gen_grace_ms(const struct srv_gen *g)
{
    int64_t worst = 0;
    for (size_t i = 0; i < g->cfg->nsignal_sources; i++) {
        const struct cfg_signal_source *c = &g->cfg->signal_sources[i];
        if (c->retry_deadline + c->timeout > worst)
            worst = c->retry_deadline + c->timeout;
    }
    return RELOAD_GRACE_MS + worst * 1000;
}

/*
 * Stopped, not freed: a request still running past shutdown_timeout may hand
 * a validation to g->val or a lookup to g->mdm, which then refuse it;
 * srv_gen_free frees both once the pool is gone.
 */
static void gen_quiesce(struct srv_gen *g)
{
    srv_validator_stop(g->val);
    mdm_engine_stop(g->mdm);
    g->quiesced = true;
}

/*
 * Frees retired generations nobody references any more. One unreferenced
 * past its grace is stopped first and freed on a later pass: stopping ends
 * the MDM lookups still in flight, whose answers take a new reference.
 */
static void reap(struct srv_reload *r, bool all)
{
    struct srv_gen *dead = NULL, *stop = NULL, **pp;
    int64_t now = clk_mono_ms();
    pthread_mutex_lock(&r->mu);
    pp = &r->retired;
    while (*pp != NULL) {
        struct srv_gen *g = *pp;
        bool unused = atomic_load(&g->refs) == 0;
        if (all || (unused && g->quiesced)) {
            *pp = g->next;
            g->next = dead;
            dead = g;
            continue;
        }
        if (stop == NULL && unused && now - g->retired_ms >= gen_grace_ms(g))
            stop = g;
        pp = &g->next;
    }
    pthread_mutex_unlock(&r->mu);
    /* Outside mu (it joins threads); only this thread unlinks retired generations. */
    if (stop != NULL)
        gen_quiesce(stop);
    while (dead != NULL) {
        struct srv_gen *next = dead->next;
        log_info("server", "generation %u freed", dead->id);
        srv_gen_free(dead);
        dead = next;
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct srv_reload *r = arg;
    if (sig == SIGHUP) {
        reload_run(r);
        return;
    }
    log_info("server", "signal %d: shutting down", (int)sig);
    event_base_loopbreak(r->base_ev);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    reap(arg, false);
}

void srv_reload_wait(struct srv_reload *r)
{
    const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    struct event *ev[nitems(sigs)] = {0}, *timer = NULL;
    struct timeval second = {.tv_sec = 1};
    r->base_ev = event_base_new();
    if (r->base_ev == NULL) {
        log_err("server", "event_base_new failed; cannot wait for signals");
        return;
    }
    for (size_t i = 0; i < nitems(sigs); i++) {
        ev[i] = evsignal_new(r->base_ev, sigs[i], on_signal, r);
        if (ev[i] != NULL)
            event_add(ev[i], NULL);
    }
    timer = event_new(r->base_ev, -1, EV_PERSIST, on_reap, r);
    if (timer != NULL)
        event_add(timer, &second);
    event_base_dispatch(r->base_ev);
    for (size_t i = 0; i < nitems(sigs); i++) {
        if (ev[i] != NULL)
            event_free(ev[i]);
    }
    if (timer != NULL)
        event_free(timer);
    event_base_free(r->base_ev);
    r->base_ev = NULL;
}

void srv_reload_quiesce(struct srv_reload *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    for (struct srv_gen *g = r->retired; g != NULL; g = g->next)
        gen_quiesce(g);
    gen_quiesce(r->cur);
    pthread_mutex_unlock(&r->mu);
}

void srv_reload_free(struct srv_reload *r)
{
    if (r == NULL)
        return;
    reap(r, true);
    srv_gen_free(r->cur);
    pthread_mutex_destroy(&r->mu);
    free(r->path);
    free(r);
}
