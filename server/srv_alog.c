/*
 * srv_alog.c: the access log, one line per answered request. Each loop
 * collects its lines in a buffer of its own and writes them in one go when
 * the buffer fills, SRV_ALOG_FLUSH_MS after its first line, and when the
 * plane is freed, so a busy server pays one write(2) per few hundred requests
 * instead of one per request, and no line is lost at a clean shutdown. Lines
 * are built by hand (no vfprintf) and the timestamp is formatted once per
 * second; the format is unchanged:
 *   TIME PEER "METHOD PATH" STATUS BYTES MSms[NOTE]
 */
#include "server/srv_http_int.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

/* Room one line can take: path escaped to < 512, the rest well under 512. */
#define LINE_MAX_LEN 1024

struct line {
    char *p;
    size_t len, cap;
};

static void put(struct line *l, const char *s, size_t n)
{
    if (n > l->cap - l->len)
        n = l->cap - l->len;
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

static void put_s(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

static void put_u(struct line *l, unsigned long long v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 && i > 0);
    put(l, tmp + i, sizeof(tmp) - i);
}

void srv_alog_flush(struct srv_loop *loop)
{
    struct srv_http *h = loop->h;
    FILE *fp = h->alog != NULL ? h->alog : stderr;
    if (loop->alog_len == 0)
        return;
    /* loops share the file: whole buffers, never interleaved within a line */
    pthread_mutex_lock(&h->alog_mu);
    fwrite(loop->alog_buf, 1, loop->alog_len, fp);
    fflush(fp);
    pthread_mutex_unlock(&h->alog_mu);
    loop->alog_len = 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    srv_alog_flush(arg);
}

int srv_alog_init(struct srv_loop *loop)
{
    loop->alog_timer = evtimer_new(loop->base, on_timer, loop);
    if (loop->alog_timer == NULL)
        return -1;
    loop->alog_buf = xmalloc(SRV_ALOG_BUF);
    loop->alog_len = 0;
    return 0;
}

void srv_alog_free(struct srv_loop *loop)
{
    if (loop->alog_buf != NULL)
        srv_alog_flush(loop);
    if (loop->alog_timer != NULL)
        event_free(loop->alog_timer);
    loop->alog_timer = NULL;
    free(loop->alog_buf);
    loop->alog_buf = NULL;
}

void srv_alog_line(struct srv_loop *loop, const struct srv_req *r, int status, size_t bytes,
                   const char *note)
{
    char path[512];
    int64_t now = clk_now(), ms = clk_mono_ms() - r->t0;
    struct line l;
    if (loop->alog_buf == NULL)
        return;
    if (SRV_ALOG_BUF - loop->alog_len < LINE_MAX_LEN)
        srv_alog_flush(loop);
    if (now != loop->alog_sec || loop->alog_ts[0] == '\0') {
        clk_fmt_rfc3339(now, loop->alog_ts);
        loop->alog_sec = now;
    }
    log_escape(r->path, 256, path, sizeof(path));
    l.p = loop->alog_buf + loop->alog_len;
    l.len = 0;
    l.cap = LINE_MAX_LEN;
    put_s(&l, loop->alog_ts);
    put(&l, " ", 1);
    put_s(&l, r->peer);
    put(&l, " \"", 2);
    put_s(&l, r->method);
    put(&l, " ", 1);
    put_s(&l, path);
    put(&l, "\" ", 2);
    put_u(&l, (unsigned long long)(status < 0 ? 0 : status));
    put(&l, " ", 1);
    put_u(&l, bytes);
    put(&l, " ", 1);
    put_u(&l, (unsigned long long)(ms < 0 ? 0 : ms));
    put(&l, "ms", 2);
    put_s(&l, note);
    /* a cut line still ends with its newline */
    if (l.len == l.cap)
        l.len--;
    put(&l, "\n", 1);
    /* the first pending line starts the clock: no line waits longer than the flush period */
    if (loop->alog_len == 0 && loop->alog_timer != NULL) {
        const struct timeval tv = {0, SRV_ALOG_FLUSH_MS * 1000};
        evtimer_add(loop->alog_timer, &tv);
    }
    loop->alog_len += l.len;
}
