/*
 * cmd_serve.c: `attesta serve [-c FILE]`. Wires config, store, CAs, the
 * attestation verifier, the validators, the worker pool, acme/ and the HTTPS
 * plane together, prints the start-up banner, then waits for a signal
 * (SIGHUP reloads, see srv_reload.c) and shuts down in the order that lets
 * in-flight work finish and be persisted.
 */
#include "server/srv_int.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "acme/acme.h"
#include "attest/attest.h"
#include "config/config.h"
#include "pki/pki.h"
#include "mdm/mdm.h"
#include "server/srv_events.h"
#include "server/srv_plane.h"
#include "server/srv_serve.h"
#include "store/store.h"

#ifndef ATTESTA_VERSION
#define ATTESTA_VERSION "0.0.0"
#endif

/*
 * Everything serve owns; torn down in reverse dependency order by serve_free.
 * cfg and cas are generation 1's; what a reload rebuilds (verifier,
 * validator, MDM engine, acme ctx) lives in the generations of rl.
 */
struct serve {
    const char *path; /* -c FILE or NULL */
    struct cfg *cfg;
    struct store *st;
    struct pki_ca **cas;
    struct srv_pool *pool;
    struct srv_events *events;
    struct srv_reload *rl;
    struct srv_http *http;
    char *host, *tls_cert, *tls_key, *base_url;
    int port;
};

/* A validation's result, or a failed try, on its way from the validator thread to the pool. */
struct val_job {
    struct srv_gen *g; /* a result: the reference taken in on_validate; a try: its own */
    struct acme_validation *v;
    bool ok;
    struct acme_problem prob;
    bool retrying; /* a failed try: v is a copy, next_attempt when the next try is due */
    int64_t next_attempt;
};

/* Every request runs on the generation current when it reached the handler. */
static bool on_is_fast(void *arg, const struct acme_request *req)
{
    struct serve *s = arg;
    struct srv_gen *g = srv_gen_get(s->rl);
    bool fast = acme_is_fast(g->acme, req);
    srv_gen_put(s->rl, g);
    return fast;
}

static void on_handle(void *arg, const struct acme_request *req, struct acme_response *resp)
{
    struct serve *s = arg;
    struct srv_gen *g = srv_gen_get(s->rl);
    acme_handle(g->acme, req, resp);
    srv_gen_put(s->rl, g);
}

static void on_problem(void *arg, const struct acme_request *req, int status, const char *type,
                       const char *detail, struct acme_response *resp)
{
    struct serve *s = arg;
    struct srv_gen *g = srv_gen_get(s->rl);
    struct acme_problem prob;
    memset(&prob, 0, sizeof(prob));
    acme_problem_set(&prob, type, status, "%s", detail);
    acme_respond_problem(g->acme, req, &prob, resp);
    srv_gen_put(s->rl, g);
}

/*
 * A validation keeps its generation alive until its result is stored. A
 * request that outlived shutdown_timeout may get here after the validator
 * stopped: its challenge stays processing for the next start to recover.
 */
static void on_validate(void *arg, struct acme_validation *v)
{
    struct srv_gen *g = arg;
    struct serve *s = g->owner;
    srv_gen_ref(g);
    if (srv_validator_submit(g->val, v) != 0) {
        log_warn("server", "validation %s not started: shutting down", v->chall_id);
        srv_gen_put(s->rl, g);
        free(v);
    }
}

/* CH-6: the request holds g; a validator already stopped drops the ask (nothing runs). */
static void on_retry_now(void *arg, const char *chall_id)
{
    struct srv_gen *g = arg;
    if (srv_validator_retry_now(g->val, chall_id) != 0)
        log_debug("server", "challenge %s: retry not brought forward: shutting down", chall_id);
}

static void val_job_run(void *arg)
{
    struct val_job *j = arg;
    struct serve *s = j->g->owner;
    if (j->retrying) {
        acme_validation_retrying(j->g->acme, j->v, &j->prob, j->next_attempt);
        free(j->v);
    } else {
        acme_validation_done(j->g->acme, j->v, j->ok, j->ok ? NULL : &j->prob);
    }
    srv_gen_put(s->rl, j->g);
    free(j);
}

/* Validator thread: must not block, and acme/ may (store). */
static void val_job_queue(struct val_job *j)
{
    struct serve *s = j->g->owner;
    /* forced: a result is never dropped for load, the validator bounds its own work */
    if (srv_pool_submit(s->pool, val_job_run, j, true) != 0) {
        log_err("server", "validation %s %s dropped: pool stopped", j->v->chall_id,
                j->retrying ? "try" : "result");
        srv_gen_put(s->rl, j->g);
        free(j->v);
        free(j);
    }
}

static void on_validation_done(void *arg, struct acme_validation *v, bool ok,
                               const struct acme_problem *prob)
{
    struct val_job *j = xcalloc(1, sizeof(*j));
    j->g = arg;
    j->v = v;
    j->ok = ok;
    if (!ok && prob != NULL)
        j->prob = *prob;
    val_job_queue(j);
}

/* The validator keeps v for its next try, so the pool gets a copy. */
static void on_validation_retry(void *arg, const struct acme_validation *v,
                                const struct acme_problem *prob, int64_t next_attempt)
{
    struct val_job *j = xcalloc(1, sizeof(*j));
    j->g = arg;
    srv_gen_ref(j->g);
    j->v = xmalloc(sizeof(*j->v));
    *j->v = *v;
    j->prob = *prob;
    j->retrying = true;
    j->next_attempt = next_attempt;
    val_job_queue(j);
}

/* A step deferred by acme/ (after an MDM answer) keeps its generation alive too. */
struct defer_job {
    struct srv_gen *g;
    void (*fn)(void *arg);
    void *arg;
};

static void defer_job_run(void *arg)
{
    struct defer_job *j = arg;
    struct serve *s = j->g->owner;
    j->fn(j->arg);
    srv_gen_put(s->rl, j->g);
    free(j);
}

static int on_defer(void *defer_arg, void (*fn)(void *arg), void *arg)
{
    struct defer_job *j = xcalloc(1, sizeof(*j));
    struct serve *s;
    j->g = defer_arg;
    s = j->g->owner;
    j->fn = fn;
    j->arg = arg;
    srv_gen_ref(j->g);
    /* forced: the request is already accepted and waits for this step */
    if (srv_pool_submit(s->pool, defer_job_run, j, true) != 0) {
        srv_gen_put(s->rl, j->g);
        free(j);
        return -1;
    }
    return 0;
}

static int cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < 1024 ? (int)n : 1;
}

static char *make_base_url(const struct serve *s)
{
    const char *h = s->host;
    size_t len;
    if (s->cfg->server.base_url != NULL) {
        len = strlen(s->cfg->server.base_url);
        while (len > 0 && s->cfg->server.base_url[len - 1] == '/')
            len--;
        return xstrndup(s->cfg->server.base_url, len);
    }
    if (strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0)
        h = "localhost";
    if (strchr(h, ':') != NULL)
        return xasprintf("https://[%s]:%d", h, s->port);
    return xasprintf("https://%s:%d", h, s->port);
}

/* Store, CAs and the bound (not yet serving) HTTPS plane. */
static int setup_base(struct serve *s, char err[ERR_LEN])
{
    const struct cfg_server *sv = &s->cfg->server;
    struct srv_http_opts o = {0};
    int cores = cpu_count();

    if (srv_listen_parse(sv->listen, &s->host, &s->port, err) != 0)
        return -1;
    s->st = srv_store_open(s->cfg, err);
    if (s->st == NULL || srv_cas_load(s->cfg, &s->cas, err) != 0)
        return -1;
    if (srv_tls_files(s->cfg, srv_cas_default(s->cfg, s->cas), s->host, &s->tls_cert,
                      &s->tls_key, err) != 0)
        return -1;
    /*
     * Pool threads mostly wait (group commit fsync, SQLite, MDM), so there are
     * more of them than cores: a waiting thread must not leave a core idle, and
     * more waiters make bigger commit groups. Each keeps one read connection.
     */
    s->pool = srv_pool_new(4 * cores, (size_t)(256 * cores), err);
    if (s->pool == NULL)
        return -1;
    o.host = s->host;
    o.port = s->port;
    o.nloops = sv->workers > 0 ? sv->workers : cores;
    o.tls_cert = s->tls_cert;
    o.tls_key = s->tls_key;
    o.max_body = sv->max_body;
    o.max_headers = sv->max_headers;
    o.read_timeout = sv->read_timeout;
    o.idle_timeout = sv->idle_timeout;
    o.max_conns_per_ip = sv->max_conns_per_ip;
    o.access_log = sv->access_log;
    o.pool = s->pool;
    o.is_fast = on_is_fast;
    o.handle = on_handle;
    o.problem = on_problem;
    o.handler_arg = s;
    s->http = srv_http_new(&o, err);
    if (s->http == NULL)
        return -1;
    s->port = srv_http_port(s->http);
    s->base_url = make_base_url(s);
    return 0;
}

/*
 * The reloadable part (srv_gen_build_fn): verifier, validator, MDM engine
 * and acme/ for g->cfg and g->cas. Called at start and on every reload;
 * share is the acme ctx being replaced (nonces and rate limits carry over).
 * What it leaves in g on failure srv_gen_free releases.
 */
static int gen_build(void *arg, struct srv_gen *g, const struct acme_ctx *share, char err[ERR_LEN])
{
    struct serve *s = arg;
    const struct cfg_attestation *a = &g->cfg->attestation;
    struct acme_deps deps = {0};

    g->owner = s;
    g->att = att_verifier_new((const char *const *)a->apple_roots, a->napple_roots, err);
    if (g->att == NULL)
        return -1;
    struct att_limits lim = {a->max_attobj, a->max_cbor_depth, a->max_x5c};
    att_verifier_set_limits(g->att, &lim);
    g->val = srv_validator_new(&g->cfg->acme, on_validation_done, on_validation_retry, g, err);
    if (g->val == NULL)
        return -1;
    if (g->cfg->nsignal_sources > 0) {
        g->mdm = mdm_engine_new(g->cfg, err);
        if (g->mdm == NULL)
            return -1;
    }
    deps.cfg = g->cfg;
    deps.store = s->st;
    deps.cas = g->cas;
    deps.ncas = g->cfg->ncas;
    deps.attest = g->att;
    deps.base_url = s->base_url;
    deps.validate = on_validate;
    deps.validate_arg = g;
    deps.retry_now = on_retry_now;
    deps.mdm = g->mdm;
    deps.defer = on_defer;
    deps.defer_arg = g;
    /* Half the pool may wait; the other half runs the settlements that wake them. */
    deps.chall_waiters = srv_pool_threads(s->pool) / 2;
    deps.event = srv_events_emit;
    deps.event_arg = s->events;
    deps.share = share;
    g->acme = acme_ctx_new(&deps, err);
    return g->acme != NULL ? 0 : -1;
}

/* Event sink, generation 1, the reloader and crash recovery. */
static int setup_acme(struct serve *s, char err[ERR_LEN])
{
    struct srv_gen *g = xcalloc(1, sizeof(*g));
    struct srv_gen *cur;
    int rc;

    atomic_init(&g->refs, 1);
    g->cfg = s->cfg; /* serve keeps owning generation 1's cfg and CAs */
    g->cas = s->cas;
    s->events = srv_events_new(s->cfg, err);
    if (s->events == NULL || gen_build(s, g, NULL, err) != 0) {
        srv_gen_free(g);
        return -1;
    }
    s->rl = srv_reload_new(s->path, s->cfg, g, gen_build, s, s->events);
    cur = srv_gen_get(s->rl);
    /* It swaps the nonce key, which is only safe before the plane serves. */
    acme_nonces_restore(cur->acme);
    rc = acme_recover(cur->acme, err);
    srv_gen_put(s->rl, cur);
    return rc;
}

static void write_port_file(const struct serve *s)
{
    char *path = xasprintf("%s/port", s->cfg->server.data_dir);
    FILE *fp = fopen(path, "we");
    if (fp != NULL) {
        fprintf(fp, "%d\n", s->port);
        fclose(fp);
    }
    free(path);
}

static void banner(const struct serve *s)
{
    size_t n = 0;
    struct srv_gen *g = srv_gen_get(s->rl);
    char **urls = acme_directory_urls(g->acme, &n);
    char *root = xasprintf("%s/root.pem", s->cfg->server.data_dir);
    char abs[PATH_MAX];
    const char *shown = realpath(root, abs) != NULL ? abs : root;

    printf("attesta %s listening on https://%s%s%s:%d\n", ATTESTA_VERSION,
           strchr(s->host, ':') != NULL ? "[" : "", s->host,
           strchr(s->host, ':') != NULL ? "]" : "", s->port);
    for (size_t i = 0; i < n; i++) {
        printf("directory: %s\n", urls[i]);
        free(urls[i]);
    }
    free(urls);
    printf("root CA: %s\n", shown);
    fflush(stdout);
    free(root);
    srv_gen_put(s->rl, g);
}

/*
 * Called once the loops are joined and the pool has drained: no nonce can be
 * issued or spent after the snapshot, so the next start may trust it.
 */
static void save_nonces(struct serve *s)
{
    char err[ERR_LEN] = "";
    struct srv_gen *g;

    if (s->rl == NULL)
        return;
    g = srv_gen_get(s->rl);
    if (acme_nonces_save(g->acme, err) != 0)
        log_warn("server", "shutdown: nonces not saved, clients will retry on badNonce: %s", err);
    srv_gen_put(s->rl, g);
}

/*
 * Reverse order of setup: nothing new comes in, in-flight requests get
 * shutdown_timeout, the validator stops feeding the pool, the pool drains
 * (its answers go to requests marked gone), the nonce state is saved, the
 * webhooks get events.shutdown_drain for what is still queued, and the store
 * commits last.
 */
static void serve_free(struct serve *s)
{
    if (s->http != NULL) {
        srv_http_stop_accepting(s->http);
        if (!srv_http_wait_idle(s->http, s->cfg->server.shutdown_timeout * 1000))
            log_warn("server", "shutdown: %zu requests still running after %d s",
                     srv_http_inflight(s->http), s->cfg->server.shutdown_timeout);
        srv_http_stop(s->http);
    }
    srv_reload_quiesce(s->rl);
    srv_pool_free(s->pool);
    save_nonces(s);
    srv_http_free(s->http);
    srv_reload_free(s->rl);
    srv_events_drain(s->events);
    srv_events_free(s->events);
    store_close(s->st);
    srv_cas_free(s->cas, s->cfg != NULL ? s->cfg->ncas : 0);
    cfg_free(s->cfg);
    free(s->host);
    free(s->tls_cert);
    free(s->tls_key);
    free(s->base_url);
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};
_Static_assert(nitems(level_names) == LOG_LVL_DEBUG + 1, "level_names covers log levels");

static void apply_log_level(const char *name)
{
    int i = str_index(level_names, nitems(level_names), name);

    if (i >= 0)
        log_set_level((enum log_level)i);
}

int srv_cmd_serve(int argc, char **argv)
{
    struct serve s = {0};
    char err[CFG_ERR_LEN] = "";
    const char *path = NULL;
    int rc = 1;

    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else {
            fprintf(stderr, "usage: attesta serve [-c FILE]\n");
            return 2;
        }
    }
    s.path = path;
    s.cfg = cfg_load(path, err);
    if (s.cfg == NULL)
        goto out;
    apply_log_level(s.cfg->server.log_level);
    if (setup_base(&s, err) != 0 || setup_acme(&s, err) != 0 ||
        srv_http_start(s.http, err) != 0)
        goto out;
    write_port_file(&s);
    banner(&s);
    srv_reload_wait(s.rl);
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "attesta serve: %s\n", err);
    serve_free(&s);
    return rc;
}
