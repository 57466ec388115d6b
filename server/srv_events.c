/*
 * srv_events.c: the event sink acme/ calls on worker threads. Each event
 * becomes one JSON line, appended by a writer thread that batches lines and
 * fsyncs once per batch (workers never touch the disk for events), and is
 * handed to the webhook sender (mdm/), which signs and delivers it.
 */
#include "server/srv_events.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "mdm/mdm.h"

#define EV_QUEUE_MAX 65536 /* lines waiting for the writer */

struct ev_line {
    char *text; /* with the trailing '\n' */
    size_t len;
    struct ev_line *next;
};

struct srv_events {
    struct mdm_webhooks *wh;
    char *path;
    int fd;                        /* -1 when the file is disabled */
    pthread_t thread;
    bool started;
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

/* One batch: a single write and a single fdatasync, however many lines. */
static void write_batch(struct srv_events *ev, struct ev_line *l)
{
    struct buf b = {0};
    size_t n = 0;
    while (l != NULL) {
        struct ev_line *next = l->next;
        buf_append(&b, l->text, l->len);
        free(l->text);
        free(l);
        l = next;
        n++;
    }
    if (b.len > 0 && (write_all(ev->fd, b.p, b.len) != 0 || fdatasync(ev->fd) != 0))
        log_err("events", "%s: cannot append %zu event%s: %s", ev->path, n, n == 1 ? "" : "s",
                strerror(errno));
    buf_free(&b);
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

/* {"time":"...","type":"...","event":{...}} on one line. */
static char *format_line(const char *type, const char *json, size_t *len)
{
    char ts[32];
    char *line = xasprintf("{\"time\":\"%s\",\"type\":\"%s\",\"event\":%s}\n",
                           clk_fmt_rfc3339(clk_now(), ts), type, json);
    size_t n = strlen(line);
    /* JSON strings cannot hold raw line breaks, so any in json are whitespace. */
    for (size_t i = 0; i + 1 < n; i++) {
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    }
    *len = n;
    return line;
}

static void queue_line(struct srv_events *ev, const char *type, const char *json)
{
    struct ev_line *l = xcalloc(1, sizeof(*l)), *old = NULL;
    size_t dropped = 0;
    l->text = format_line(type, json, &l->len);
    pthread_mutex_lock(&ev->mu);
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
        log_warn("events", "%s: writer behind by %d lines, dropped the oldest (%zu so far)",
                 ev->path, EV_QUEUE_MAX, dropped);
        free(old->text);
        free(old);
    }
}

void srv_events_emit(void *arg, const char *type, const char *json)
{
    struct srv_events *ev = arg;
    if (ev == NULL || json == NULL || json[0] != '{' || !type_ok(type)) {
        log_err("events", "malformed event dropped (type %s)", type_ok(type) ? type : "?");
        return;
    }
    if (ev->fd >= 0)
        queue_line(ev, type, json);
    mdm_webhooks_send(ev->wh, type, json);
}

struct srv_events *srv_events_new(const struct cfg *cfg, char err[ERR_LEN])
{
    struct srv_events *ev = xcalloc(1, sizeof(*ev));
    ev->fd = -1;
    pthread_mutex_init(&ev->mu, NULL);
    pthread_cond_init(&ev->cv, NULL);
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
    ev->wh = mdm_webhooks_new(cfg, err);
    if (ev->wh == NULL)
        goto fail;
    log_info("events", "event log %s, %zu webhook%s", ev->path != NULL ? ev->path : "disabled",
             cfg->events.nwebhooks, cfg->events.nwebhooks == 1 ? "" : "s");
    return ev;
fail:
    srv_events_free(ev);
    return NULL;
}

int srv_events_reconfigure(struct srv_events *ev, const struct cfg *cfg, char err[ERR_LEN])
{
    return mdm_webhooks_configure(ev->wh, cfg, err);
}

void srv_events_free(struct srv_events *ev)
{
    if (ev == NULL)
        return;
    /* Webhooks first: nothing new is queued for them while the file is flushed. */
    mdm_webhooks_free(ev->wh);
    if (ev->started) {
        pthread_mutex_lock(&ev->mu);
        ev->stopping = true;
        pthread_cond_signal(&ev->cv);
        pthread_mutex_unlock(&ev->mu);
        pthread_join(ev->thread, NULL);
    }
    if (ev->fd >= 0)
        close(ev->fd);
    pthread_cond_destroy(&ev->cv);
    pthread_mutex_destroy(&ev->mu);
    free(ev->path);
    free(ev);
}
