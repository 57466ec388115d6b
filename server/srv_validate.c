/*
 * srv_validate.c: the challenge validator's thread and job life cycle. One
 * thread runs its own event loop; srv_validator_submit() queues work from any
 * thread under a mutex and wakes the loop. Each job makes up to
 * validation_attempts tries, each bounded by validation_timeout and spaced by
 * validation_retry_delay, all on loop timers (nothing here ever sleeps), then
 * hands the verdict to the done callback; each failed try that another
 * follows goes to the retry callback first; srv_validator_retry_now() lets a
 * client's re-POST start a waiting retry early (CH-6). The per-type probes
 * live in srv_validate_{http,dns,tls}.c.
 */
#include "server/srv_validate_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/ssl.h>

#include "acme/acme.h"
#include "config/config.h"

#define RESOLV_CONF "/etc/resolv.conf"

/* Builds the SSL_CTX the tls-alpn-01 probe uses (srv_validate_tls.c). */
SSL_CTX *srv_vtls_ctx_new(char err[ERR_LEN]);

/* A retry-now request on its way to the loop. */
struct srv_vearly {
    char chall_id[sizeof(((struct acme_validation *)0)->chall_id)];
    struct srv_vearly *next;
};

struct srv_validator {
    struct sockaddr_storage resolver;
    int http_port, tls_port;
    int attempts, timeout_s, retry_delay_s;
    int64_t early_gap_ms;         /* least spacing of two early retries of one job */
    srv_validation_done_fn *done;
    srv_validation_retry_fn *retry; /* or NULL */
    void *cb_arg;
    struct event_base *base;
    struct event *wake_ev;
    SSL_CTX *ssl;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;           /* guards pending, early and stopping */
    struct srv_vjob *pending;     /* submitted, not yet seen by the loop */
    struct srv_vearly *early;     /* retry-now requests, not yet seen by the loop */
    bool stopping;                /* set once by srv_validator_stop; submit refuses */
    struct srv_vjob *jobs;        /* live jobs, loop thread only */
};

struct event_base *srv_vjob_base(const struct srv_vjob *job)
{
    return job->val->base;
}
const struct sockaddr_storage *srv_vjob_resolver(const struct srv_vjob *job)
{
    return &job->val->resolver;
}
int srv_vjob_http_port(const struct srv_vjob *job)
{
    return job->val->http_port;
}
int srv_vjob_tls_port(const struct srv_vjob *job)
{
    return job->val->tls_port;
}
SSL_CTX *srv_vjob_ssl_ctx(const struct srv_vjob *job)
{
    return job->val->ssl;
}

/* Releases what the current try holds; safe to call twice. */
static void vjob_reset_try(struct srv_vjob *job)
{
    srv_dnsq_free(job->dnsq);
    job->dnsq = NULL;
    if (job->bev != NULL)
        bufferevent_free(job->bev);
    job->bev = NULL;
    buf_free(&job->rx);
    if (job->try_timer != NULL)
        evtimer_del(job->try_timer);
    job->try_over = false;
    job->ok = false;
    job->dns_aaaa = false;
    job->addr_cb = NULL;
    job->redirects = 0;
    job->phase = SRV_VP_DNS;
}

static void vjob_free(struct srv_vjob *job)
{
    if (job == NULL)
        return;
    vjob_reset_try(job);
    if (job->try_timer != NULL)
        event_free(job->try_timer);
    if (job->step_ev != NULL)
        event_free(job->step_ev);
    free(job->v);
    free(job);
}

static void vjob_unlink(struct srv_vjob *job)
{
    struct srv_vjob **pp = &job->val->jobs;
    while (*pp != NULL && *pp != job)
        pp = &(*pp)->next;
    if (*pp == job)
        *pp = job->next;
}

void srv_vjob_finish(struct srv_vjob *job, bool ok, const char *ptype, const char *fmt, ...)
{
    struct timeval now = {0, 0};
    va_list ap;

    if (job->try_over)
        return;
    job->try_over = true;
    job->ok = ok;
    job->ptype = ptype;
    job->detail[0] = '\0';
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(job->detail, sizeof(job->detail), fmt, ap);
        va_end(ap);
    }
    /* Defer the teardown: the caller is usually inside a callback of what we free. */
    job->step_start = false;
    evtimer_add(job->step_ev, &now);
}

static void vjob_try_start(struct srv_vjob *job)
{
    struct timeval tv = {job->val->timeout_s, 0};

    vjob_reset_try(job);
    evtimer_add(job->try_timer, &tv);
    switch (job->v->type) {
    case ACME_CH_HTTP01:
        srv_vhttp_start(job);
        break;
    case ACME_CH_DNS01:
        srv_vdns01_start(job);
        break;
    case ACME_CH_TLSALPN01:
        srv_vtls_start(job);
        break;
    default:
        srv_vjob_finish(job, false, "serverInternal", "challenge type %d has no validator",
                        (int)job->v->type);
        break;
    }
}

/* The problem of the current try's failure. */
static void vjob_problem(const struct srv_vjob *job, struct acme_problem *prob)
{
    memset(prob, 0, sizeof(*prob));
    prob->type = job->ptype != NULL ? job->ptype : "serverInternal";
    prob->status = strcmp(prob->type, "unauthorized") == 0     ? 403
                   : strcmp(prob->type, "serverInternal") == 0 ? 500
                                                               : 400;
    snprintf(prob->detail, sizeof(prob->detail), "%s", job->detail);
}

/* Reports the verdict and frees job. */
static void vjob_complete(struct srv_vjob *job)
{
    struct srv_validator *val = job->val;
    struct acme_validation *v = job->v;
    struct acme_problem prob;
    bool ok = job->ok;

    memset(&prob, 0, sizeof(prob));
    if (!ok)
        vjob_problem(job, &prob);
    log_info("validate", "challenge %s (%s) %s after %d attempt(s)%s%s", v->chall_id,
             v->identifier, ok ? "valid" : "invalid", job->attempt, ok ? "" : ": ",
             ok ? "" : job->detail);
    vjob_unlink(job);
    job->v = NULL; /* ownership goes to the callback */
    vjob_free(job);
    val->done(val->cb_arg, v, ok, ok ? NULL : &prob);
}

/*
 * CH-5: tells acme about a failed try before the next one starts. The time is
 * rounded up, so a client told to come back then finds that try begun.
 */
static void vjob_notify_retry(struct srv_vjob *job)
{
    struct srv_validator *val = job->val;
    struct acme_problem prob;
    int64_t next_ms = clk_now_ms() + (int64_t)val->retry_delay_s * 1000;

    if (val->retry == NULL)
        return;
    vjob_problem(job, &prob);
    val->retry(val->cb_arg, job->v, &prob, (next_ms + 999) / 1000);
}

static void vjob_step_cb(evutil_socket_t fd, short what, void *arg)
{
    struct srv_vjob *job = arg;
    struct srv_validator *val = job->val;
    struct timeval delay = {val->retry_delay_s, 0};

    if (job->step_start) {
        job->attempt++;
        vjob_try_start(job);
        return;
    }
    if (job->ok || job->attempt >= val->attempts) {
        vjob_complete(job);
        return;
    }
    log_info("validate", "challenge %s (%s) try %d failed, retrying in %ds: %s",
             job->v->chall_id, job->v->identifier, job->attempt, val->retry_delay_s, job->detail);
    vjob_notify_retry(job);
    vjob_reset_try(job);
    job->step_start = true;
    evtimer_add(job->step_ev, &delay);
}

static void vjob_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct srv_vjob *job = arg;
    int t = job->val->timeout_s;

    if (job->phase == SRV_VP_DNS)
        srv_vjob_finish(job, false, "dns", "DNS problem: query timed out after %ds", t);
    else if (job->phase == SRV_VP_CONNECT)
        srv_vjob_finish(job, false, "connection", "Timeout during connect after %ds", t);
    else
        srv_vjob_finish(job, false, "connection", "Timeout after connect (no answer in %ds)", t);
}

static void early_free_list(struct srv_vearly *e)
{
    struct srv_vearly *next;

    for (; e != NULL; e = next) {
        next = e->next;
        free(e);
    }
}

/*
 * Loop thread: starts the retry the job of e->chall_id waits for now. A job
 * past its first try with step_start set waits out the retry delay and
 * nothing else; starting that try early leaves attempt, and so the number of
 * tries, as it was.
 */
static void vjob_retry_now(struct srv_validator *val, const struct srv_vearly *e)
{
    struct timeval now = {0, 0};
    struct srv_vjob *job = val->jobs;
    int64_t t = clk_mono_ms();

    while (job != NULL && strcmp(job->v->chall_id, e->chall_id) != 0)
        job = job->next;
    if (job == NULL || !job->step_start || job->attempt < 1 ||
        !evtimer_pending(job->step_ev, NULL)) {
        log_debug("validate", "challenge %s: no retry waits, nothing to bring forward",
                  e->chall_id);
        return;
    }
    if (job->early_ms != 0 && t - job->early_ms < val->early_gap_ms) {
        log_debug("validate", "challenge %s: retry brought forward %lld ms ago, not again yet",
                  e->chall_id, (long long)(t - job->early_ms));
        return;
    }
    job->early_ms = t;
    log_info("validate", "challenge %s (%s): client asked, try %d starts now", e->chall_id,
             job->v->identifier, job->attempt + 1);
    evtimer_del(job->step_ev);
    evtimer_add(job->step_ev, &now);
}

/* Loop thread: takes the submitted validations and starts their first try. */
static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct srv_validator *val = arg;
    struct srv_vjob *list, *next;
    struct srv_vearly *early, *e;
    bool stopping;

    pthread_mutex_lock(&val->mu);
    list = val->pending;
    val->pending = NULL;
    early = val->early;
    val->early = NULL;
    stopping = val->stopping;
    pthread_mutex_unlock(&val->mu);
    if (stopping) {
        early_free_list(early);
        event_base_loopbreak(val->base);
        /* Dropped; the server recovers them at its next start. */
        for (; list != NULL; list = next) {
            next = list->next;
            free(list->v);
            free(list);
        }
        return;
    }
    for (; list != NULL; list = next) {
        next = list->next;
        list->try_timer = evtimer_new(val->base, vjob_timeout_cb, list);
        list->step_ev = evtimer_new(val->base, vjob_step_cb, list);
        list->next = val->jobs;
        val->jobs = list;
        list->attempt = 0;
        list->step_start = true;
        vjob_step_cb(-1, 0, list);
    }
    /* After the new jobs: a request may be for one submitted just before it. */
    for (e = early; e != NULL; e = e->next)
        vjob_retry_now(val, e);
    early_free_list(early);
}

static void *validator_main(void *arg)
{
    struct srv_validator *val = arg;
    sigset_t set;

    /*
     * A peer that closes early must give EPIPE, not kill the process: SIGPIPE
     * from write() goes to the writing thread, so blocking it here suffices.
     */
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    event_base_loop(val->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

struct srv_validator *srv_validator_new(const struct cfg_acme *acme, srv_validation_done_fn *done,
                                        srv_validation_retry_fn *retry, void *arg, char err[256])
{
    struct srv_validator *val = xcalloc(1, sizeof(*val));

    pthread_mutex_init(&val->mu, NULL);
    val->done = done;
    val->retry = retry;
    val->cb_arg = arg;
    val->http_port = acme->http01_port > 0 ? acme->http01_port : 80;
    val->tls_port = acme->tls_alpn01_port > 0 ? acme->tls_alpn01_port : 443;
    val->attempts = acme->validation_attempts > 0 ? acme->validation_attempts : 1;
    val->timeout_s = acme->validation_timeout > 0 ? acme->validation_timeout : 10;
    val->retry_delay_s = acme->validation_retry_delay >= 0 ? acme->validation_retry_delay : 0;
    /* acme/ stamps whole seconds: a second less here never refuses what it allowed. */
    val->early_gap_ms = (int64_t)(CFG_EARLY_RETRY_GAP(val->retry_delay_s) - 1) * 1000;
    if (srv_dns_server_parse(acme->resolver, RESOLV_CONF, &val->resolver, err) != 0)
        goto err;
    /* event_active() from submitting threads needs libevent's locking. */
    if (evthread_use_pthreads() != 0) {
        snprintf(err, ERR_LEN, "evthread_use_pthreads failed");
        goto err;
    }
    val->base = event_base_new();
    if (val->base == NULL) {
        snprintf(err, ERR_LEN, "event_base_new failed");
        goto err;
    }
    val->wake_ev = event_new(val->base, -1, 0, wake_cb, val);
    val->ssl = srv_vtls_ctx_new(err);
    if (val->wake_ev == NULL || val->ssl == NULL)
        goto err;
    if (pthread_create(&val->thread, NULL, validator_main, val) != 0) {
        snprintf(err, ERR_LEN, "cannot start the validator thread");
        goto err;
    }
    val->thread_started = true;
    return val;
err:
    srv_validator_free(val);
    return NULL;
}

int srv_validator_submit(struct srv_validator *val, struct acme_validation *v)
{
    struct srv_vjob *job, **pp;
    bool stopping;

    pthread_mutex_lock(&val->mu);
    stopping = val->stopping;
    if (!stopping) {
        job = xcalloc(1, sizeof(*job));
        job->val = val;
        job->v = v;
        /* Appended, so validations start in submission order. */
        pp = &val->pending;
        while (*pp != NULL)
            pp = &(*pp)->next;
        *pp = job;
    }
    pthread_mutex_unlock(&val->mu);
    if (stopping)
        return -1;
    /* Harmless when a stop slipped in since: the loop is gone, stop or free drops the job. */
    event_active(val->wake_ev, EV_READ, 0);
    return 0;
}

int srv_validator_retry_now(struct srv_validator *val, const char *chall_id)
{
    struct srv_vearly *e = xcalloc(1, sizeof(*e));
    bool stopping;

    snprintf(e->chall_id, sizeof(e->chall_id), "%s", chall_id);
    pthread_mutex_lock(&val->mu);
    stopping = val->stopping;
    if (!stopping) {
        e->next = val->early;
        val->early = e;
    }
    pthread_mutex_unlock(&val->mu);
    if (stopping) {
        free(e);
        return -1;
    }
    event_active(val->wake_ev, EV_READ, 0);
    return 0;
}

void srv_validator_stop(struct srv_validator *val)
{
    struct srv_vjob *job, *next, *pending;

    if (val == NULL)
        return;
    pthread_mutex_lock(&val->mu);
    val->stopping = true;
    pthread_mutex_unlock(&val->mu);
    if (val->thread_started) {
        event_active(val->wake_ev, EV_READ, 0);
        pthread_join(val->thread, NULL);
        val->thread_started = false;
    }
    for (job = val->jobs; job != NULL; job = next) {
        next = job->next;
        vjob_free(job);
    }
    val->jobs = NULL;
    pthread_mutex_lock(&val->mu);
    pending = val->pending;
    val->pending = NULL;
    early_free_list(val->early);
    val->early = NULL;
    pthread_mutex_unlock(&val->mu);
    for (job = pending; job != NULL; job = next) {
        next = job->next;
        free(job->v);
        free(job);
    }
}

void srv_validator_free(struct srv_validator *val)
{
    if (val == NULL)
        return;
    srv_validator_stop(val);
    if (val->wake_ev != NULL)
        event_free(val->wake_ev);
    if (val->base != NULL)
        event_base_free(val->base);
    SSL_CTX_free(val->ssl);
    pthread_mutex_destroy(&val->mu);
    free(val);
}

/* ---- target address lookup, shared by http-01 and tls-alpn-01 ---- */

static void set_port(struct sockaddr_storage *sa, int port)
{
    if (sa->ss_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
}

static void resolve_done(void *arg, const struct srv_dns_answer *ans, const char *err)
{
    struct srv_vjob *job = arg;
    const char *qt = job->dns_aaaa ? "AAAA" : "A";
    char e[ERR_LEN];

    if (ans == NULL) {
        srv_vjob_finish(job, false, "dns", "DNS problem: %s", err);
        return;
    }
    if (ans->rcode == SRV_DNS_NXDOMAIN) {
        srv_vjob_finish(job, false, "dns", "DNS problem: NXDOMAIN looking up %s for %s", qt,
                        job->host);
        return;
    }
    if (ans->rcode != SRV_DNS_NOERROR) {
        srv_vjob_finish(job, false, "dns", "DNS problem: %s looking up %s for %s",
                        ans->rcode == SRV_DNS_SERVFAIL ? "SERVFAIL" : "server error", qt,
                        job->host);
        return;
    }
    if (ans->naddrs == 0 && !job->dns_aaaa) {
        /* No IPv4 address: ask for IPv6 before giving up. */
        srv_dnsq_free(job->dnsq);
        job->dns_aaaa = true;
        job->dnsq = srv_dnsq_start(job->val->base, &job->val->resolver, job->host, SRV_DNS_AAAA,
                                   resolve_done, job, e);
        if (job->dnsq == NULL)
            srv_vjob_finish(job, false, "dns", "DNS problem: %s", e);
        return;
    }
    if (ans->naddrs == 0) {
        srv_vjob_finish(job, false, "dns", "DNS problem: no A or AAAA record for %s", job->host);
        return;
    }
    struct sockaddr_storage sa = ans->addrs[0];
    set_port(&sa, job->port);
    srv_dnsq_free(job->dnsq);
    job->dnsq = NULL;
    job->phase = SRV_VP_CONNECT;
    job->addr_cb(job, &sa);
}

void srv_vjob_resolve(struct srv_vjob *job, const char *host, int port, srv_vjob_addr_fn *cb)
{
    struct sockaddr_storage sa;
    char e[ERR_LEN];

    memset(&sa, 0, sizeof(sa));
    if (host != job->host)
        snprintf(job->host, sizeof(job->host), "%s", host);
    job->port = port;
    job->addr_cb = cb;
    if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&sa)->sin_addr) == 1) {
        sa.ss_family = AF_INET;
    } else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&sa)->sin6_addr) == 1) {
        sa.ss_family = AF_INET6;
    } else {
        job->phase = SRV_VP_DNS;
        job->dns_aaaa = false;
        srv_dnsq_free(job->dnsq);
        job->dnsq = srv_dnsq_start(job->val->base, &job->val->resolver, host, SRV_DNS_A,
                                   resolve_done, job, e);
        if (job->dnsq == NULL)
            srv_vjob_finish(job, false, "dns", "DNS problem: %s", e);
        return;
    }
    set_port(&sa, port);
    job->phase = SRV_VP_CONNECT;
    cb(job, &sa);
}
