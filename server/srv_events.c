/*
 * srv_events.c: the event sink acme/ calls on worker threads. Each event gets
 * an id and becomes one JSON line, appended by a writer thread that batches
 * lines and fsyncs once per batch (workers never touch the disk for events).
 * Only then is it handed to the webhook sender (mdm/), which signs and
 * delivers it with the id as jti: whatever a receiver got, or was never
 * delivered at shutdown, can be found in the file by that id.
 */
#include "server/srv_events.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "config/config.h"
#include "mdm/mdm.h"

#define EV_QUEUE_MAX 65536 /* lines waiting for the writer */
#define EV_ID_LEN 32       /* an event id with its NUL */

struct ev_line {
    char *text; /* with the trailing '\n' */
    size_t len;
    char id[EV_ID_LEN];
    char *type, *json; /* for the webhooks, once the line is on disk */
    struct ev_line *next;
};

struct srv_events {
    struct mdm_webhooks *wh;
    int64_t drain_ms;              /* events.shutdown_drain; main thread */
    char *path;
    int fd;                        /* -1 when the file is disabled */
    pthread_t thread;
    bool started;                  /* the writer runs */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ev_line *head, *tail;   /* under mu */
    size_t nlines;                 /* under mu */
    size_t dropped;                /* under mu */
    bool stopping;                 /* under mu */
};

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void line_free(struct ev_line *l)
{
    free(l->text);
    free(l->type);
    free(l->json);
    free(l);
}

/* Hands the event to the webhooks and frees the line. */
static void line_send(struct srv_events *ev, struct ev_line *l)
{
    mdm_webhooks_send(ev->wh, l->id, l->type, l->json);
    line_free(l);
}

/* One batch: a single write and a single fdatasync, however many lines. */
static void write_batch(struct srv_events *ev, struct ev_line *l)
{
    struct buf b = {0};
    size_t n = 0;
    for (const struct ev_line *i = l; i != NULL; i = i->next) {
        buf_append(&b, i->text, i->len);
        n++;
    }
    if (b.len > 0 && (write_all(ev->fd, b.p, b.len) != 0 || fdatasync(ev->fd) != 0))
        log_err("events", "%s: cannot append %zu event%s: %s", ev->path, n, n == 1 ? "" : "s",
                strerror(errno));
    buf_free(&b);
    /* Sent even when the write failed: the receivers are then the only record. */
    while (l != NULL) {
        struct ev_line *next = l->next;
        line_send(ev, l);
        l = next;
    }
}

static void *writer_main(void *arg)
{
    struct srv_events *ev = arg;
    for (;;) {
        struct ev_line *batch;
        bool stop;
        pthread_mutex_lock(&ev->mu);
        while (ev->head == NULL && !ev->stopping)
            pthread_cond_wait(&ev->cv, &ev->mu);
        batch = ev->head;
        ev->head = ev->tail = NULL;
        ev->nlines = 0;
        stop = ev->stopping;
        pthread_mutex_unlock(&ev->mu);
        write_batch(ev, batch);
        if (stop)
            return NULL;
    }
}

/* Types are fixed names from acme/; anything else would need escaping, so it is refused. */
static bool type_ok(const char *t)
{
    size_t n = t != NULL ? strlen(t) : 0;
    if (n == 0 || n > 64)
        return false;
    return strspn(t, "abcdefghijklmnopqrstuvwxyz._") == n;
}

/* Random, so ids never repeat across restarts; the counter only if randomness fails. */
static void event_id(char id[EV_ID_LEN])
{
    static atomic_uint seq;
    unsigned char raw[16];
    char *s;
    if (rand_bytes(raw, sizeof(raw)) != 0) {
        snprintf(id, EV_ID_LEN, "t%lld-%u", (long long)clk_now(), atomic_fetch_add(&seq, 1));
        return;
    }
    s = b64u_encode(raw, sizeof(raw));
    snprintf(id, EV_ID_LEN, "%s", s);
    free(s);
}

/* {"time":"...","id":"...","type":"...","event":{...}} on one line. */
static char *format_line(const char *id, const char *type, const char *json, size_t *len)
{
    char ts[32];
    char *line = xasprintf("{\"time\":\"%s\",\"id\":\"%s\",\"type\":\"%s\",\"event\":%s}\n",
                           clk_fmt_rfc3339(clk_now(), ts), id, type, json);
    size_t n = strlen(line);
    /* JSON strings cannot hold raw line breaks, so any in json are whitespace. */
    for (size_t i = 0; i + 1 < n; i++) {
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    }
    *len = n;
    return line;
}

/* false once the writer has stopped (the line is then not taken). */
static bool queue_line(struct srv_events *ev, const char *id, const char *type,
                       const char *json)
{
    struct ev_line *l = xcalloc(1, sizeof(*l)), *old = NULL;
    size_t dropped = 0;
    snprintf(l->id, sizeof(l->id), "%s", id);
    l->type = xstrdup(type);
    l->json = xstrdup(json);
    l->text = format_line(id, type, json, &l->len);
    pthread_mutex_lock(&ev->mu);
    if (ev->stopping) {
        pthread_mutex_unlock(&ev->mu);
        line_free(l);
        return false;
    }
    if (ev->tail != NULL)
        ev->tail->next = l;
    else
        ev->head = l;
    ev->tail = l;
    if (++ev->nlines > EV_QUEUE_MAX) {
        old = ev->head;
        ev->head = old->next;
        ev->nlines--;
        dropped = ++ev->dropped;
    }
    pthread_cond_signal(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
    if (old != NULL) {
        log_warn("events", "%s: writer behind by %d lines, the oldest (%s id=%s) is left out "
                 "and only sent to the webhooks (%zu so far)", ev->path, EV_QUEUE_MAX, old->type,
                 old->id, dropped);
        line_send(ev, old);
    }
    return true;
}

void srv_events_emit(void *arg, const char *type, const char *json)
{
    struct srv_events *ev = arg;
    char id[EV_ID_LEN];
    if (ev == NULL || json == NULL || json[0] != '{' || !type_ok(type)) {
        log_err("events", "malformed event dropped (type %s)", type_ok(type) ? type : "?");
        return;
    }
    event_id(id);
    if (ev->fd < 0) {
        mdm_webhooks_send(ev->wh, id, type, json);
        return;
    }
    /* Only a shutdown-order bug emits after the drain began; say so rather than lose it. */
    if (!queue_line(ev, id, type, json))
        log_err("events", "%s id=%s emitted after shutdown began; not recorded", type, id);
}

struct srv_events *srv_events_new(const struct cfg *cfg, char err[ERR_LEN])
{
    struct srv_events *ev = xcalloc(1, sizeof(*ev));
    ev->fd = -1;
    ev->drain_ms = cfg->events.shutdown_drain * 1000;
    pthread_mutex_init(&ev->mu, NULL);
    pthread_cond_init(&ev->cv, NULL);
    /* The sender exists before the writer, which hands it every line it writes. */
    ev->wh = mdm_webhooks_new(cfg, err);
    if (ev->wh == NULL)
        goto fail;
    if (cfg->events.file != NULL) {
        ev->path = xstrdup(cfg->events.file);
        ev->fd = open(ev->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (ev->fd < 0) {
            snprintf(err, ERR_LEN, "events.file: cannot open %s: %s", ev->path, strerror(errno));
            goto fail;
        }
        if (pthread_create(&ev->thread, NULL, writer_main, ev) != 0) {
            snprintf(err, ERR_LEN, "events: cannot start the writer thread");
            goto fail;
        }
        ev->started = true;
    }
    log_info("events", "event log %s, %zu webhook%s", ev->path != NULL ? ev->path : "disabled",
             cfg->events.nwebhooks, cfg->events.nwebhooks == 1 ? "" : "s");
    return ev;
fail:
    srv_events_free(ev);
    return NULL;
}

int srv_events_reconfigure(struct srv_events *ev, const struct cfg *cfg, char err[ERR_LEN])
{
    if (mdm_webhooks_configure(ev->wh, cfg, err) != 0)
        return -1;
    ev->drain_ms = cfg->events.shutdown_drain * 1000;
    return 0;
}

/* Writes what is queued (handing it to the webhooks) and ends the writer. Idempotent. */
static void writer_stop(struct srv_events *ev)
{
    if (!ev->started)
        return;
    pthread_mutex_lock(&ev->mu);
    ev->stopping = true;
    pthread_cond_signal(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
    pthread_join(ev->thread, NULL);
    ev->started = false;
}

/* Sender thread: the drain is over; wakes the main thread's wait. */
static void on_drain_done(void *arg, size_t undelivered)
{
    event_active(arg, EV_READ, 0);
}

static void on_drain_over(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

/* The operator insists: what is left is given up (and listed) at once. */
static void on_drain_signal(evutil_socket_t sig, short what, void *arg)
{
    struct srv_events *ev = arg;
    log_warn("events", "signal %d: ending the webhook drain now", (int)sig);
    mdm_webhooks_drain_cut(ev->wh);
}

void srv_events_drain(struct srv_events *ev)
{
    const int sigs[] = {SIGTERM, SIGINT};
    struct event *sig[nitems(sigs)] = {0}, *done = NULL;
    struct event_base *base;
    if (ev == NULL)
        return;
    writer_stop(ev);
    base = event_base_new();
    if (base != NULL)
        done = event_new(base, -1, 0, on_drain_over, base);
    if (done == NULL) {
        log_err("events", "shutdown: cannot wait for the webhook drain; it is cut short");
        goto out;
    }
    for (size_t i = 0; i < nitems(sigs); i++) {
        sig[i] = evsignal_new(base, sigs[i], on_drain_signal, ev);
        if (sig[i] != NULL)
            event_add(sig[i], NULL);
    }
    mdm_webhooks_drain(ev->wh, ev->drain_ms, on_drain_done, done);
    event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
out:
    for (size_t i = 0; i < nitems(sigs); i++) {
        if (sig[i] != NULL)
            event_free(sig[i]);
    }
    if (done != NULL)
        event_free(done);
    if (base != NULL)
        event_base_free(base);
}

void srv_events_free(struct srv_events *ev)
{
    if (ev == NULL)
        return;
    /* The file first: the writer hands its last lines to the webhooks, which then stop. */
    writer_stop(ev);
    mdm_webhooks_free(ev->wh);
    if (ev->fd >= 0)
        close(ev->fd);
    pthread_cond_destroy(&ev->cv);
    pthread_mutex_destroy(&ev->mu);
    free(ev->path);
    free(ev);
}
