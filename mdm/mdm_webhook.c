/*
 * mdm webhooks: signed event notifications. Pool threads only touch the
 * inbox (under a mutex) and wake the sender's loop; queues, retries and
 * transfers live on the loop thread of an engine created for webhooks alone
 * (no signal sources), driven by the same curl-multi glue as MDM lookups.
 *
 * A webhook's settings and secret sit in a refcounted target: the target
 * list is swapped on reload while queued events keep the target they were
 * queued for, so a reload never loses or re-routes an event.
 *
 * Shutdown drains: queued events and retries due before the deadline are
 * still attempted; a retry due later is given up at once rather than waited
 * for. What is given up is logged one line per event with its jti, which is
 * the id of the event's line in the events file, so it can be replayed.
 */
#include "mdm/mdm_int.h"

#include <jwt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WH_QUEUE_MAX 1024 /* undelivered events per webhook (queued + in flight) */
#define WH_ACTIVE_MAX 4   /* deliveries in flight per webhook */

struct wh_job;

struct wh_target {
    atomic_int refs;  /* the list's reference + one per job */
    char *name, *url, *secret, *ca_file;
    unsigned types;   /* 1u << enum cfg_event_type */
    int64_t timeout, backoff;
    int attempts;
    /* loop thread only */
    struct wh_job *queue, *queue_tail;
    size_t nqueued;
    int active;
    size_t dropped;
};

struct wh_job {
    struct mdm_webhooks *wh;
    struct wh_target *t;
    char *type;
    char *json;         /* until the token is made */
    char *jwt;
    char jti[32];       /* the event's id */
    int attempt;        /* attempts started */
    int64_t t0;         /* clk_mono_ms when it was queued */
    int64_t due;        /* clk_mono_ms of the next attempt while its timer waits; else 0 */
    struct mdm_xfer *xfer;
    struct event *timer;
    struct wh_job *next;  /* inbox or target queue */
    struct wh_job *lnext; /* wh->live */
};

struct mdm_webhooks {
    struct mdm_engine *eng;
    struct event *wake;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct wh_target **targets; /* under mu */
    size_t ntargets;
    struct wh_job *inbox;       /* under mu, newest first */
    bool stopping;              /* under mu: no more events are taken */
    bool cut;                   /* under mu: the drain ends now */
    int64_t deadline;           /* under mu: clk_mono_ms the drain ends */
    mdm_drain_fn *done;         /* under mu */
    void *done_arg;
    bool drained;               /* under mu */
    struct wh_job *live;        /* loop thread: jobs holding an active slot */
    /* loop thread, once stopping is seen */
    bool draining, over, finished; /* over: nothing more is attempted */
    int64_t drain_t0, drain_end;
    struct event *drain_timer;
    size_t sent, left;          /* delivered during the drain; given up by it */
};

/* The engine reads sources from its cfg; the sender's engine has none. */
static const struct cfg no_sources;

/* ---- tokens and schedule (pure, unit-tested) ---- */

char *mdm_webhook_jwt(const char *type, const char *event_json, const char *key, int64_t iat,
                      const char *jti, char err[ERR_LEN])
{
    jwt_t *jwt = NULL;
    char *claim = xasprintf("{\"event\":%s}", event_json != NULL ? event_json : "null");
    char *tok = NULL, *out = NULL;
    if (jwt_new(&jwt) != 0 || jwt_add_grant(jwt, "iss", "attesta") != 0 ||
        jwt_add_grant_int(jwt, "iat", (long)iat) != 0 || jwt_add_grant(jwt, "jti", jti) != 0 ||
        jwt_add_grant(jwt, "typ", type) != 0) {
        snprintf(err, ERR_LEN, "cannot build the JWT claims");
        goto out;
    }
    if (event_json == NULL || event_json[0] != '{' || jwt_add_grants_json(jwt, claim) != 0) {
        snprintf(err, ERR_LEN, "event is not a JSON object");
        goto out;
    }
    if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)key, (int)strlen(key)) != 0) {
        snprintf(err, ERR_LEN, "cannot set the HS256 key");
        goto out;
    }
    tok = jwt_encode_str(jwt);
    if (tok == NULL) {
        snprintf(err, ERR_LEN, "cannot sign the JWT");
        goto out;
    }
    out = xstrdup(tok);
out:
    free(tok); /* libjwt allocates with malloc unless told otherwise */
    jwt_free(jwt); /* wipes the key copy it holds */
    free(claim);
    return out;
}

int64_t mdm_webhook_backoff_ms(int64_t backoff_s, int attempt, long retry_after)
{
    int64_t ms = backoff_s * 1000;
    if (retry_after >= 0)
        return (int64_t)(retry_after > MDM_WH_RETRY_AFTER_MAX ? MDM_WH_RETRY_AFTER_MAX
                                                              : retry_after) * 1000;
    for (int i = 1; i < attempt && ms < MDM_WH_BACKOFF_CAP_MS; i++)
        ms *= 2;
    return ms < MDM_WH_BACKOFF_CAP_MS ? ms : MDM_WH_BACKOFF_CAP_MS;
}

/* ---- targets ---- */

static void target_put(struct wh_target *t)
{
    if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    free(t->name);
    free(t->url);
    free(t->ca_file);
    secure_free_str(t->secret);
    free(t);
}

static char *wh_secret(const struct cfg_webhook *w, size_t i, char err[ERR_LEN])
{
    char key[96];
    const char *v;
    if (w->secret_file != NULL) {
        snprintf(key, sizeof(key), "events.webhooks[%zu].secret_file", i);
        return mdm_secret_file_read(key, w->secret_file, err);
    }
    v = w->secret_env != NULL ? getenv(w->secret_env) : NULL;
    if (v == NULL || v[0] == '\0') {
        snprintf(err, ERR_LEN, "events.webhooks[%zu].secret_env: environment variable %s is %s",
                 i, w->secret_env != NULL ? w->secret_env : "(none)",
                 v == NULL ? "not set" : "empty");
        return NULL;
    }
    return xstrdup(v);
}

static struct wh_target *target_new(const struct cfg_webhook *w, size_t i, char err[ERR_LEN])
{
    char *secret = wh_secret(w, i, err);
    struct wh_target *t;
    if (secret == NULL)
        return NULL;
    t = xcalloc(1, sizeof(*t));
    atomic_init(&t->refs, 1);
    t->name = xstrdup(w->name);
    t->url = xstrdup(w->url);
    t->ca_file = w->tls_ca_file != NULL ? xstrdup(w->tls_ca_file) : NULL;
    t->secret = secret;
    t->types = w->types;
    t->timeout = w->timeout;
    t->backoff = w->backoff;
    t->attempts = w->attempts;
    return t;
}

/* ---- jobs (loop thread) ---- */

static void job_free(struct wh_job *j)
{
    if (j == NULL)
        return;
    if (j->timer != NULL)
        event_free(j->timer);
    mdm_xfer_free(j->wh->eng, j->xfer);
    target_put(j->t);
    free(j->type);
    free(j->json);
    free(j->jwt);
    free(j);
}

static void job_start(struct wh_job *j);
static void drain_check(struct mdm_webhooks *wh);

/* Gives up j's active slot and starts the next queued event of its webhook. */
static void job_finish(struct wh_job *j)
{
    struct mdm_webhooks *wh = j->wh;
    struct wh_target *t = j->t;
    struct wh_job **pp = &wh->live;
    while (*pp != NULL && *pp != j)
        pp = &(*pp)->lnext;
    if (*pp == j)
        *pp = j->lnext;
    t->active--;
    atomic_fetch_add(&t->refs, 1); /* t must outlive j for the dequeue below */
    job_free(j);
    if (t->queue != NULL && t->active < WH_ACTIVE_MAX && !wh->over) {
        struct wh_job *next = t->queue;
        t->queue = next->next;
        if (t->queue == NULL)
            t->queue_tail = NULL;
        t->nqueued--;
        job_start(next);
    }
    target_put(t);
    drain_check(wh);
}

/* Shutdown gives up on j, logged by id for a replay; a slot it holds goes to the next event. */
static void abandon(struct wh_job *j, bool slotted, const char *why)
{
    log_warn("webhook", "%s: %s jti=%s not delivered at shutdown (%s)", j->t->name, j->type,
             j->jti, why);
    j->wh->left++;
    if (slotted)
        job_finish(j);
    else
        job_free(j);
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg);

/* After a failed attempt: wait and try again, or give up once attempts are spent. */
static void job_retry(struct wh_job *j, long retry_after, const char *why)
{
    struct wh_target *t = j->t;
    int64_t delay;
    struct timeval tv;
    if (j->attempt >= t->attempts) {
        log_warn("webhook", "%s: gave up on %s jti=%s after %d attempt%s: %s", t->name, j->type,
                 j->jti, j->attempt, j->attempt == 1 ? "" : "s", why);
        job_finish(j);
        return;
    }
    delay = mdm_webhook_backoff_ms(t->backoff, j->attempt, retry_after);
    if (j->wh->draining && clk_mono_ms() + delay > j->wh->drain_end) {
        char late[ERR_LEN + 64];
        snprintf(late, sizeof(late), "%s; next attempt due after the drain", why);
        abandon(j, true, late);
        return;
    }
    j->due = clk_mono_ms() + delay;
    log_info("webhook", "%s: attempt %d for %s jti=%s failed (%s); next in %lld ms", t->name,
             j->attempt, j->type, j->jti, why, (long long)delay);
    tv.tv_sec = delay / 1000;
    tv.tv_usec = (delay % 1000) * 1000;
    if (j->timer == NULL)
        j->timer = evtimer_new(j->wh->eng->base, on_retry_timer, j);
    evtimer_add(j->timer, &tv);
}

static void job_done(struct mdm_xfer *x, CURLcode rc)
{
    struct wh_job *j = x->arg;
    long st = x->status, retry_after = x->retry_after;
    char why[ERR_LEN];
    j->xfer = NULL;
    mdm_xfer_free(j->wh->eng, x);
    if (rc == CURLE_OK && st >= 200 && st <= 299) {
        if (j->wh->draining)
            j->wh->sent++;
        log_info("webhook", "%s: delivered %s jti=%s attempt=%d status=%ld ms=%lld", j->t->name,
                 j->type, j->jti, j->attempt, st, (long long)(clk_mono_ms() - j->t0));
        job_finish(j);
        return;
    }
    if (rc != CURLE_OK) {
        snprintf(why, sizeof(why), "%s", curl_easy_strerror(rc));
        job_retry(j, -1, why);
        return;
    }
    snprintf(why, sizeof(why), "HTTP %ld", st);
    if (st == 429 || st >= 500) {
        job_retry(j, retry_after, why);
        return;
    }
    /* Other answers (4xx) will not change by repeating the same request. */
    log_warn("webhook", "%s: %s jti=%s rejected: %s; not retried", j->t->name, j->type, j->jti,
             why);
    job_finish(j);
}

static void job_send(struct wh_job *j)
{
    struct wh_target *t = j->t;
    struct mdm_xfer *x = xcalloc(1, sizeof(*x));
    struct mdm_xfer_opts o = {.timeout = t->timeout, .ca_file = t->ca_file,
                              .user_agent = "attesta-webhook/1"};
    char err[ERR_LEN];
    x->done = job_done;
    x->arg = j;
    x->post = xstrdup(j->jwt);
    x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/jwt");
    x->hdrs = curl_slist_append(x->hdrs, "Accept: */*");
    j->attempt++;
    j->xfer = x;
    if (mdm_xfer_start_opts(j->wh->eng, x, "POST", t->url, &o, err) != 0) {
        j->xfer = NULL;
        mdm_xfer_free(j->wh->eng, x);
        job_retry(j, -1, err);
    }
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    struct wh_job *j = arg;
    j->due = 0;
    job_send(j);
}

static void job_start(struct wh_job *j)
{
    j->t->active++;
    j->lnext = j->wh->live;
    j->wh->live = j;
    job_send(j);
}

/* Signs j and starts it, or queues it behind the webhook's active deliveries. */
static void job_admit(struct wh_job *j)
{
    struct wh_target *t = j->t;
    char err[ERR_LEN];
    j->jwt = mdm_webhook_jwt(j->type, j->json, t->secret, clk_now(), j->jti, err);
    free(j->json);
    j->json = NULL;
    if (j->jwt == NULL) {
        log_err("webhook", "%s: %s jti=%s not sent: %s", t->name, j->type, j->jti, err);
        job_free(j);
        return;
    }
    if (t->active < WH_ACTIVE_MAX) {
        job_start(j);
        return;
    }
    if (t->queue_tail != NULL)
        t->queue_tail->next = j;
    else
        t->queue = j;
    t->queue_tail = j;
    t->nqueued++;
    if (t->nqueued + (size_t)t->active > WH_QUEUE_MAX) {
        /* Enrollment must never wait for a receiver: the oldest event gives way. */
        struct wh_job *old = t->queue;
        t->queue = old->next;
        t->nqueued--;
        t->dropped++;
        log_warn("webhook", "%s: queue full (%d events), dropped the oldest (%s jti=%s); "
                 "%zu dropped so far", t->name, WH_QUEUE_MAX, old->type, old->jti, t->dropped);
        job_free(old);
    }
}

/* ---- shutdown drain (loop thread) ---- */

/* Ends the drain once: reports, then wakes whoever waits in mdm_webhooks_drain/_free. */
static void drain_finish(struct mdm_webhooks *wh)
{
    mdm_drain_fn *done;
    void *arg;
    size_t left = wh->left;
    long long ms = (long long)(clk_mono_ms() - wh->drain_t0);
    wh->finished = true;
    if (wh->drain_timer != NULL)
        evtimer_del(wh->drain_timer);
    if (wh->left > 0)
        log_warn("webhook", "shutdown: %zu webhook deliver%s not made (listed above by jti, the "
                 "event's id in the events file); %zu made during the drain (%lld ms)",
                 wh->left, wh->left == 1 ? "y" : "ies", wh->sent, ms);
    else if (wh->sent > 0)
        log_info("webhook", "shutdown: all %zu queued webhook deliver%s made in %lld ms",
                 wh->sent, wh->sent == 1 ? "y" : "ies", ms);
    pthread_mutex_lock(&wh->mu);
    wh->drained = true;
    done = wh->done;
    arg = wh->done_arg;
    pthread_cond_signal(&wh->cv);
    pthread_mutex_unlock(&wh->mu);
    if (done != NULL)
        done(arg, left);
}

static void drain_check(struct mdm_webhooks *wh)
{
    if (wh->draining && !wh->finished && wh->live == NULL)
        drain_finish(wh);
}

/* Gives up every delivery: queued ones first, so no freed slot starts another. */
static void abandon_all(struct mdm_webhooks *wh, const char *why)
{
    wh->over = true;
    while (wh->live != NULL) {
        struct wh_target *t = wh->live->t;
        while (t->queue != NULL) {
            struct wh_job *q = t->queue;
            t->queue = q->next;
            t->nqueued--;
            abandon(q, false, why);
        }
        t->queue_tail = NULL;
        abandon(wh->live, true, why);
    }
}

static void on_drain_timer(evutil_socket_t fd, short what, void *arg)
{
    abandon_all(arg, "drain time over");
}

/* Stopping seen (again): a new deadline, or the end when it has passed or was cut. */
static void drain_update(struct mdm_webhooks *wh, int64_t deadline, const char *why)
{
    int64_t now = clk_mono_ms();
    struct timeval tv;
    if (wh->finished)
        return;
    if (!wh->draining) {
        wh->draining = true;
        wh->drain_t0 = now;
        if (wh->live != NULL && deadline > now)
            log_info("webhook", "shutdown: delivering queued webhook events for up to %lld ms",
                     (long long)(deadline - now));
    }
    wh->drain_end = deadline;
    if (deadline <= now) {
        abandon_all(wh, why);
        drain_check(wh);
        return;
    }
    if (wh->drain_timer == NULL)
        wh->drain_timer = evtimer_new(wh->eng->base, on_drain_timer, wh);
    tv.tv_sec = (deadline - now) / 1000;
    tv.tv_usec = ((deadline - now) % 1000) * 1000;
    evtimer_add(wh->drain_timer, &tv);
    /* Retries already waiting past the deadline are given up now, not waited for. */
    for (struct wh_job *j = wh->live; j != NULL;) {
        if (j->due > deadline) {
            abandon(j, true, "next attempt due after the drain");
            j = wh->live; /* the list changed */
            continue;
        }
        j = j->lnext;
    }
    drain_check(wh);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct mdm_webhooks *wh = arg;
    struct wh_job *j, *rev = NULL;
    bool stopping, cut, over;
    int64_t deadline;
    pthread_mutex_lock(&wh->mu);
    j = wh->inbox;
    wh->inbox = NULL;
    stopping = wh->stopping;
    cut = wh->cut;
    deadline = cut ? 0 : wh->deadline;
    pthread_mutex_unlock(&wh->mu);
    over = stopping && deadline <= clk_mono_ms();
    while (j != NULL) { /* the inbox is newest first: restore arrival order */
        struct wh_job *next = j->next;
        j->next = rev;
        rev = j;
        j = next;
    }
    for (j = rev; j != NULL; j = rev) {
        rev = j->next;
        j->next = NULL;
        if (over)
            abandon(j, false, cut ? "drain cut short" : "drain time over");
        else
            job_admit(j);
    }
    if (stopping)
        drain_update(wh, deadline, cut ? "drain cut short" : "drain time over");
}

/* ---- public ---- */

struct mdm_webhooks *mdm_webhooks_new(const struct cfg *cfg, char err[ERR_LEN])
{
    struct mdm_webhooks *wh = xcalloc(1, sizeof(*wh));
    pthread_mutex_init(&wh->mu, NULL);
    pthread_cond_init(&wh->cv, NULL);
    if (mdm_webhooks_configure(wh, cfg, err) != 0)
        goto fail;
    wh->eng = mdm_engine_new(&no_sources, err);
    if (wh->eng == NULL)
        goto fail;
    wh->wake = event_new(wh->eng->base, -1, 0, on_wake, wh);
    if (wh->wake == NULL) {
        snprintf(err, ERR_LEN, "webhooks: cannot create the wake-up event");
        goto fail;
    }
    return wh;
fail:
    mdm_webhooks_free(wh);
    return NULL;
}

int mdm_webhooks_configure(struct mdm_webhooks *wh, const struct cfg *cfg, char err[ERR_LEN])
{
    size_t n = cfg->events.nwebhooks;
    struct wh_target **v = xcalloc(n + 1, sizeof(*v)), **old;
    size_t nold;
    for (size_t i = 0; i < n; i++) {
        v[i] = target_new(&cfg->events.webhooks[i], i, err);
        if (v[i] == NULL) {
            for (size_t k = 0; k < i; k++)
                target_put(v[k]);
            free(v);
            return -1;
        }
    }
    pthread_mutex_lock(&wh->mu);
    old = wh->targets;
    nold = wh->ntargets;
    wh->targets = v;
    wh->ntargets = n;
    pthread_mutex_unlock(&wh->mu);
    for (size_t i = 0; i < nold; i++)
        target_put(old[i]);
    free(old);
    return 0;
}

static unsigned type_bit(const char *type)
{
    for (size_t i = 0; i < CFG_EV__MAX; i++) {
        if (strcmp(cfg_event_names[i], type) == 0)
            return 1u << i;
    }
    return 0;
}

void mdm_webhooks_send(struct mdm_webhooks *wh, const char *id, const char *type,
                       const char *json)
{
    unsigned bit = type != NULL ? type_bit(type) : 0;
    bool wake;
    if (wh == NULL || bit == 0 || json == NULL || id == NULL)
        return;
    pthread_mutex_lock(&wh->mu);
    wake = wh->inbox == NULL;
    for (size_t i = 0; !wh->stopping && i < wh->ntargets; i++) {
        struct wh_target *t = wh->targets[i];
        struct wh_job *j;
        if (!(t->types & bit))
            continue;
        j = xcalloc(1, sizeof(*j));
        j->wh = wh;
        j->t = t;
        atomic_fetch_add(&t->refs, 1);
        j->type = xstrdup(type);
        j->json = xstrdup(json);
        j->t0 = clk_mono_ms();
        snprintf(j->jti, sizeof(j->jti), "%s", id);
        j->next = wh->inbox;
        wh->inbox = j;
    }
    wake = wake && wh->inbox != NULL;
    pthread_mutex_unlock(&wh->mu);
    if (wake)
        event_active(wh->wake, EV_READ, 0);
}

/* The first call sets the deadline and who is told; a cut counts whenever it comes. */
static void wh_stop(struct mdm_webhooks *wh, bool cut, int64_t ms, mdm_drain_fn *done,
                    void *arg)
{
    pthread_mutex_lock(&wh->mu);
    if (!wh->stopping) {
        wh->stopping = true;
        wh->deadline = clk_mono_ms() + ms;
        wh->done = done;
        wh->done_arg = arg;
    }
    wh->cut = wh->cut || cut;
    pthread_mutex_unlock(&wh->mu);
    event_active(wh->wake, EV_READ, 0);
}

void mdm_webhooks_drain(struct mdm_webhooks *wh, int64_t ms, mdm_drain_fn *done, void *arg)
{
    wh_stop(wh, false, ms, done, arg);
}

void mdm_webhooks_drain_cut(struct mdm_webhooks *wh)
{
    wh_stop(wh, true, 0, NULL, NULL);
}

void mdm_webhooks_free(struct mdm_webhooks *wh)
{
    if (wh == NULL)
        return;
    if (wh->wake != NULL) {
        mdm_webhooks_drain_cut(wh);
        pthread_mutex_lock(&wh->mu);
        while (!wh->drained)
            pthread_cond_wait(&wh->cv, &wh->mu);
        pthread_mutex_unlock(&wh->mu);
        event_free(wh->wake);
    }
    if (wh->drain_timer != NULL)
        event_free(wh->drain_timer);
    mdm_engine_free(wh->eng);
    for (size_t i = 0; i < wh->ntargets; i++)
        target_put(wh->targets[i]);
    free(wh->targets);
    pthread_cond_destroy(&wh->cv);
    pthread_mutex_destroy(&wh->mu);
    free(wh);
}
