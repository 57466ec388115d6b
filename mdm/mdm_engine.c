/*
 * mdm engine: the thread that owns every lookup. Other threads only touch
 * the inbox (under a mutex) and wake the loop; everything else (cache,
 * coalescing, per-source queues, retries, OAuth2 state) lives on the engine
 * thread, so it needs no locks. Retries wait on event timers, never sleep.
 */
#include "mdm/mdm_int.h"

#include <errno.h>
#include <event2/thread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void fetch_begin(struct mdm_fetch *f);

/* ---- results ---- */

void mdm_result_clear(struct mdm_result *res)
{
    if (res == NULL)
        return;
    free(res->source);
    free(res->reason);
    free(res->record_json);
    for (size_t i = 0; i < res->nattrs; i++) {
        free(res->attrs[i].name);
        free(res->attrs[i].value);
    }
    for (size_t i = 0; i < res->nconds; i++)
        free(res->conds[i].text);
    free(res->attrs);
    free(res->conds);
    memset(res, 0, sizeof(*res));
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

void mdm_result_copy(struct mdm_result *dst, const struct mdm_result *src)
{
    *dst = *src;
    dst->source = dup_or_null(src->source);
    dst->reason = dup_or_null(src->reason);
    dst->record_json = dup_or_null(src->record_json);
    dst->attrs = xcalloc(src->nattrs + 1, sizeof(*dst->attrs));
    for (size_t i = 0; i < src->nattrs; i++) {
        dst->attrs[i].name = xstrdup(src->attrs[i].name);
        dst->attrs[i].value = xstrdup(src->attrs[i].value);
    }
    dst->conds = xcalloc(src->nconds + 1, sizeof(*dst->conds));
    for (size_t i = 0; i < src->nconds; i++) {
        dst->conds[i].text = xstrdup(src->conds[i].text);
        dst->conds[i].pass = src->conds[i].pass;
    }
}

const char *mdm_result_attr_get(const struct mdm_result *res, const char *name)
{
    for (size_t i = 0; res != NULL && i < res->nattrs; i++) {
        if (strcmp(res->attrs[i].name, name) == 0)
            return res->attrs[i].value;
    }
    return NULL;
}

/* ---- delivery and cache ---- */

static void deliver(struct mdm_waiter *w, struct mdm_result *res, const char *serial)
{
    char esc[3 * MDM_MAX_SERIAL + 8];
    res->elapsed_ms = clk_mono_ms() - w->start_ms;
    log_info("mdm", "lookup source=%s serial=\"%s\" status=%d verdict=%s%s ms=%lld",
             res->source, log_escape(serial, MDM_MAX_SERIAL, esc, sizeof(esc)),
             res->http_status, res->verdict == MDM_ALLOW ? "allow" : "deny",
             res->from_cache ? " cached" : "", (long long)res->elapsed_ms);
    w->done(w->arg, res);
}

static struct mdm_cache_ent *cache_get(struct mdm_src *src, const char *key)
{
    int64_t now = clk_mono_ms();
    struct mdm_cache_ent **pp = &src->cache;
    while (*pp != NULL) {
        struct mdm_cache_ent *e = *pp;
        if (e->expires_ms <= now) {
            *pp = e->next;
            free(e->key);
            mdm_result_clear(&e->res);
            free(e);
            src->ncache--;
            continue;
        }
        if (strcmp(e->key, key) == 0)
            return e;
        pp = &e->next;
    }
    return NULL;
}

/* Allowed answers live ttl, denials negative_ttl; failures are never cached. */
static void cache_put(struct mdm_src *src, const char *key, const struct mdm_result *res)
{
    int64_t ttl = res->verdict == MDM_ALLOW ? src->cfg->cache_ttl : src->cfg->cache_negative_ttl;
    if (res->failed || ttl <= 0 || cache_get(src, key) != NULL)
        return;
    if (src->ncache >= MDM_CACHE_MAX) {
        /* Full of live entries: drop the oldest (the list is newest first). */
        struct mdm_cache_ent **pp = &src->cache;
        while ((*pp)->next != NULL)
            pp = &(*pp)->next;
        free((*pp)->key);
        mdm_result_clear(&(*pp)->res);
        free(*pp);
        *pp = NULL;
        src->ncache--;
    }
    struct mdm_cache_ent *e = xcalloc(1, sizeof(*e));
    e->key = xstrdup(key);
    e->expires_ms = clk_mono_ms() + ttl * 1000;
    mdm_result_copy(&e->res, res);
    e->next = src->cache;
    src->cache = e;
    src->ncache++;
}

/* ---- fetch lifecycle ---- */

static void fetch_free(struct mdm_fetch *f)
{
    struct mdm_waiter *w = f->waiters;
    while (w != NULL) {
        struct mdm_waiter *next = w->next;
        free(w);
        w = next;
    }
    if (f->timer != NULL)
        event_free(f->timer);
    mdm_xfer_free(f->src->eng, f->xfer);
    free(f->key);
    free(f->serial);
    free(f->udid);
    free(f);
}

/* Hands res to every waiter, caches it, frees f and starts the next queued fetch. */
static void fetch_finish(struct mdm_fetch *f, struct mdm_result *res)
{
    struct mdm_src *src = f->src;
    struct mdm_fetch **pp = &src->fetches;
    while (*pp != NULL && *pp != f)
        pp = &(*pp)->next;
    if (*pp == f)
        *pp = f->next;
    cache_put(src, f->key, res);
    for (struct mdm_waiter *w = f->waiters; w != NULL; w = w->next)
        deliver(w, res, f->serial);
    if (f->started)
        src->active--;
    fetch_free(f);
    mdm_result_clear(res);
    while (src->queue != NULL && src->active < src->cfg->max_concurrency) {
        struct mdm_fetch *next = src->queue;
        src->queue = next->qnext;
        if (src->queue == NULL)
            src->queue_tail = NULL;
        next->qnext = NULL;
        next->started = true;
        src->active++;
        fetch_begin(next);
    }
}

void mdm_fetch_fail(struct mdm_fetch *f, long status, const char *fmt, ...)
{
    struct mdm_result res = {0};
    char why[ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    res.source = xstrdup(f->src->cfg->name);
    res.failed = true;
    res.http_status = (int)status;
    res.verdict = f->src->cfg->on_failure_allow ? MDM_ALLOW : MDM_DENY;
    res.reason = xasprintf("%s: %s (on_failure: %s)", f->src->cfg->name, why,
                           f->src->cfg->on_failure_allow ? "allow" : "deny");
    log_warn("mdm", "%s", res.reason);
    fetch_finish(f, &res);
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    mdm_fetch_send(arg);
}

/* 429, 5xx and connection errors: try again within the deadline, else fail. */
static void fetch_retry(struct mdm_fetch *f, long status, long retry_after, const char *what)
{
    const struct cfg_signal_source *c = f->src->cfg;
    int64_t delay = retry_after >= 0 ? retry_after * 1000 : 250LL << (f->attempts - 1);
    if (f->attempts < c->retry_attempts && clk_mono_ms() + delay < f->deadline_ms) {
        struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
        if (f->timer == NULL)
            f->timer = evtimer_new(f->src->eng->base, on_retry_timer, f);
        evtimer_add(f->timer, &tv);
        return;
    }
    mdm_fetch_fail(f, status, "%s after %d attempt%s", what, f->attempts,
                   f->attempts == 1 ? "" : "s");
}

static void fetch_answer(struct mdm_fetch *f, struct mdm_xfer *x)
{
    struct mdm_result res = {0};
    struct mdm_vars vars = {.serial = f->serial, .udid = f->udid};
    char err[ERR_LEN];
    cJSON *root;
    if (strncasecmp(x->ctype, "application/json", 16) != 0 && strstr(x->ctype, "+json") == NULL) {
        mdm_fetch_fail(f, x->status, "unexpected content type %s",
                       x->ctype[0] != '\0' ? x->ctype : "(none)");
        return;
    }
    root = mdm_json_parse(x->body.p != NULL ? x->body.p : "", x->body.len, err);
    res.source = xstrdup(f->src->cfg->name);
    res.http_status = (int)x->status;
    if (root == NULL || mdm_evaluate(f->src->cfg, root, &vars, &res, err) != 0) {
        cJSON_Delete(root);
        mdm_result_clear(&res);
        mdm_fetch_fail(f, x->status, "malformed answer: %s", err);
        return;
    }
    cJSON_Delete(root);
    fetch_finish(f, &res);
}

static void fetch_done(struct mdm_xfer *x, CURLcode rc)
{
    struct mdm_fetch *f = x->arg;
    const struct cfg_signal_source *c = f->src->cfg;
    struct mdm_engine *eng = f->src->eng;
    long st = x->status;
    f->xfer = NULL;
    if (rc == CURLE_OPERATION_TIMEDOUT)
        mdm_fetch_fail(f, 0, "timed out after %llds", (long long)c->timeout);
    else if (x->too_big || rc == CURLE_FILESIZE_EXCEEDED)
        mdm_fetch_fail(f, st, "answer larger than %u bytes", BUF_MAX_MDM_RESP);
    else if (rc != CURLE_OK)
        fetch_retry(f, 0, -1, curl_easy_strerror(rc));
    else if (st == 401 && c->auth_type == CFG_MDM_AUTH_OAUTH2 && !f->auth_retried) {
        /* The token may have been revoked early: drop it once and fetch a new one. */
        f->auth_retried = true;
        secure_free_str(f->src->access_token);
        f->src->access_token = NULL;
        fetch_begin(f);
    } else if (st == 401 || st == 403)
        mdm_fetch_fail(f, st, "authentication failed (HTTP %ld)", st);
    else if (st == 429 || st >= 500) {
        char what[32];
        snprintf(what, sizeof(what), "HTTP %ld", st);
        fetch_retry(f, st, x->retry_after, what);
    } else if (st == 404) {
        struct mdm_result res = {.source = xstrdup(c->name), .http_status = 404};
        char esc[3 * MDM_MAX_SERIAL + 8];
        res.reason = xasprintf("%s: no device with serial \"%s\" (HTTP 404)", c->name,
                               log_escape(f->serial, MDM_MAX_SERIAL, esc, sizeof(esc)));
        fetch_finish(f, &res);
    } else if (st >= 200 && st <= 299)
        fetch_answer(f, x);
    else
        mdm_fetch_fail(f, st, "HTTP %ld", st);
    mdm_xfer_free(eng, x);
}

void mdm_fetch_send(struct mdm_fetch *f)
{
    const struct cfg_signal_source *c = f->src->cfg;
    struct mdm_vars vars = {.serial = f->serial, .udid = f->udid};
    char err[ERR_LEN];
    char *url = mdm_template_expand(c->url, &vars, err);
    struct mdm_xfer *x;
    if (url == NULL) {
        mdm_fetch_fail(f, 0, "request.url: %s", err);
        return;
    }
    x = xcalloc(1, sizeof(*x));
    x->done = fetch_done;
    x->arg = f;
    x->hdrs = curl_slist_append(x->hdrs, "Accept: application/json");
    for (size_t i = 0; i < c->nheaders; i++) {
        char *v = mdm_template_expand(c->headers[i].value, &vars, err);
        if (v == NULL)
            goto fail;
        char *h = xasprintf("%s: %s", c->headers[i].name, v);
        x->hdrs = curl_slist_append(x->hdrs, h);
        free(h);
        free(v);
    }
    if (c->body != NULL) {
        x->post = mdm_template_expand(c->body, &vars, err);
        if (x->post == NULL)
            goto fail;
        x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/json");
    }
    mdm_http_auth(f->src, x);
    f->attempts++;
    f->xfer = x;
    if (mdm_xfer_start(f->src, x, c->method, url, err) != 0) {
        f->xfer = NULL;
        goto fail;
    }
    free(url);
    return;
fail:
    free(url);
    mdm_xfer_free(f->src->eng, x);
    mdm_fetch_fail(f, 0, "%s", err);
}

/* Cache hit, join an identical fetch in flight, or start (or queue) a new one. */
void mdm_engine_handle(struct mdm_req *r)
{
    struct mdm_src *src = r->src;
    struct mdm_waiter *w = xcalloc(1, sizeof(*w));
    char *key = xasprintf("%s\x1f%s", r->serial, r->udid != NULL ? r->udid : "");
    struct mdm_cache_ent *hit = cache_get(src, key);
    struct mdm_fetch *f = src->fetches;
    w->done = r->done;
    w->arg = r->arg;
    w->start_ms = r->start_ms;
    if (hit != NULL) {
        struct mdm_result res = hit->res;
        res.from_cache = true;
        deliver(w, &res, r->serial);
        free(w);
        free(key);
        return;
    }
    while (f != NULL && strcmp(f->key, key) != 0)
        f = f->next;
    if (f != NULL) {
        w->next = f->waiters;
        f->waiters = w;
        free(key);
        return;
    }
    f = xcalloc(1, sizeof(*f));
    f->src = src;
    f->key = key;
    f->serial = xstrdup(r->serial);
    f->udid = r->udid != NULL ? xstrdup(r->udid) : NULL;
    f->waiters = w;
    f->deadline_ms = clk_mono_ms() + src->cfg->retry_deadline * 1000;
    f->next = src->fetches;
    src->fetches = f;
    if (src->active < src->cfg->max_concurrency) {
        f->started = true;
        src->active++;
        fetch_begin(f);
    } else if (src->queue_tail != NULL) {
        src->queue_tail->qnext = f;
        src->queue_tail = f;
    } else {
        src->queue = src->queue_tail = f;
    }
}

/*
 * Engine shutdown: every fetch (running, waiting for a token or queued) ends
 * without a verdict. Not through on_failure: a source with on_failure: allow
 * would otherwise admit every device whose lookup a shutdown cut short.
 */
void mdm_engine_abort_all(struct mdm_src *src)
{
    src->queue = src->queue_tail = NULL;
    src->token_waiters = NULL;
    mdm_xfer_free(src->eng, src->token_xfer);
    src->token_xfer = NULL;
    while (src->fetches != NULL) {
        struct mdm_fetch *f = src->fetches;
        struct mdm_result res = {.failed = true, .stopped = true, .verdict = MDM_DENY};
        f->started = false;
        f->qnext = NULL;
        res.source = xstrdup(src->cfg->name);
        res.reason = xasprintf("%s: engine stopped before an answer (no verdict)", src->cfg->name);
        log_warn("mdm", "%s", res.reason);
        fetch_finish(f, &res);
    }
}

/* OAuth2 sources first make sure a token is there (one refresh, others wait). */
static void fetch_begin(struct mdm_fetch *f)
{
    struct mdm_src *src = f->src;
    if (src->cfg->auth_type != CFG_MDM_AUTH_OAUTH2 || mdm_token_valid(src)) {
        mdm_fetch_send(f);
        return;
    }
    f->qnext = src->token_waiters;
    src->token_waiters = f;
    mdm_token_refresh(src);
}
