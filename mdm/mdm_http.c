/*
 * mdm HTTP: libcurl's multi interface driven by the engine's libevent loop
 * (curl tells us which sockets and timeouts to watch; libevent tells curl
 * when they fire), bounded answer buffers, per-source auth headers and the
 * OAuth2 client-credentials token, fetched once at a time and shared by every
 * lookup of the source. The multi handle keeps its connection cache, so
 * lookups reuse connections to the MDM.
 */
#include "mdm/mdm_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct sock_ctx {
    struct event *ev;
};

static void check_done(struct mdm_engine *eng)
{
    CURLMsg *msg;
    int left = 0;
    for (;;) {
        msg = curl_multi_info_read(eng->multi, &left);
        if (msg == NULL)
            break;
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct mdm_xfer *x = NULL;
        CURLcode rc = msg->data.result;
        CURL *easy = msg->easy_handle;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(eng->multi, easy);
        if (x == NULL)
            continue;
        char *ct = NULL;
        curl_off_t ra = -1;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &x->status);
        if (curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct != NULL)
            snprintf(x->ctype, sizeof(x->ctype), "%s", ct);
        if (curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
            x->retry_after = (long)(ra > 3600 ? 3600 : ra);
        x->done(x, rc);
    }
}

static void on_sock_event(evutil_socket_t fd, short what, void *arg)
{
    struct mdm_engine *eng = arg;
    int flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running = 0;
    curl_multi_socket_action(eng->multi, fd, flags, &running);
    check_done(eng);
}

static void on_curl_timer(evutil_socket_t fd, short what, void *arg)
{
    struct mdm_engine *eng = arg;
    int running = 0;
    curl_multi_socket_action(eng->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(eng);
}

static int sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct mdm_engine *eng = userp;
    struct sock_ctx *sc = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sc != NULL) {
            event_free(sc->ev);
            free(sc);
        }
        curl_multi_assign(eng->multi, s, NULL);
        return 0;
    }
    if (sc == NULL) {
        sc = xcalloc(1, sizeof(*sc));
        curl_multi_assign(eng->multi, s, sc);
    } else {
        event_free(sc->ev);
    }
    short kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
                 ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    sc->ev = event_new(eng->base, s, kind, on_sock_event, eng);
    event_add(sc->ev, NULL);
    return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct mdm_engine *eng = userp;
    if (timeout_ms < 0) {
        evtimer_del(eng->curl_timer);
        return 0;
    }
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    evtimer_add(eng->curl_timer, &tv);
    return 0;
}

int mdm_http_init(struct mdm_engine *eng, char err[ERR_LEN])
{
    eng->multi = curl_multi_init();
    eng->curl_timer = evtimer_new(eng->base, on_curl_timer, eng);
    if (eng->multi == NULL || eng->curl_timer == NULL) {
        snprintf(err, ERR_LEN, "mdm: cannot create the HTTP client");
        return -1;
    }
    curl_multi_setopt(eng->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(eng->multi, CURLMOPT_SOCKETDATA, eng);
    curl_multi_setopt(eng->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(eng->multi, CURLMOPT_TIMERDATA, eng);
    return 0;
}

void mdm_http_cleanup(struct mdm_engine *eng)
{
    if (eng->multi != NULL)
        curl_multi_cleanup(eng->multi);
    if (eng->curl_timer != NULL)
        event_free(eng->curl_timer);
    eng->multi = NULL;
    eng->curl_timer = NULL;
}

/* Appends to the bounded answer buffer; returning short aborts an oversized answer. */
static size_t write_cb(char *p, size_t size, size_t n, void *arg)
{
    struct mdm_xfer *x = arg;
    size_t len = size * n;
    if (x->body.len + len > BUF_MAX_MDM_RESP) {
        x->too_big = true;
        return 0;
    }
    buf_append(&x->body, p, len);
    return len;
}

int mdm_xfer_start(struct mdm_src *src, struct mdm_xfer *x, const char *method, const char *url,
                   char err[ERR_LEN])
{
    const struct cfg_signal_source *c = src->cfg;
    struct mdm_xfer_opts o = {.timeout = c->timeout, .ca_file = c->tls_ca_file,
                              .insecure = c->tls_insecure, .user_agent = "attesta-mdm/1"};
    return mdm_xfer_start_opts(src->eng, x, method, url, &o, err);
}

int mdm_xfer_start_opts(struct mdm_engine *eng, struct mdm_xfer *x, const char *method,
                        const char *url, const struct mdm_xfer_opts *o, char err[ERR_LEN])
{
    CURL *e = curl_easy_init();
    if (e == NULL) {
        snprintf(err, ERR_LEN, "cannot create an HTTP request");
        return -1;
    }
    x->easy = e;
    x->retry_after = -1;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(o->timeout * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(o->timeout * 1000));
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)BUF_MAX_MDM_RESP);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_USERAGENT, o->user_agent);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    if (o->ca_file != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
    if (o->insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->post != NULL ? x->post : "");
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    if (curl_multi_add_handle(eng->multi, e) != CURLM_OK) {
        snprintf(err, ERR_LEN, "cannot start an HTTP request");
        return -1;
    }
    return 0;
}

void mdm_xfer_free(struct mdm_engine *eng, struct mdm_xfer *x)
{
    if (x == NULL)
        return;
    if (x->easy != NULL) {
        curl_multi_remove_handle(eng->multi, x->easy);
        curl_easy_cleanup(x->easy);
    }
    for (struct curl_slist *h = x->hdrs; h != NULL; h = h->next)
        secure_wipe(h->data, strlen(h->data));
    curl_slist_free_all(x->hdrs);
    secure_free_str(x->post);
    if (x->body.p != NULL)
        secure_wipe(x->body.p, x->body.len);
    buf_free(&x->body);
    free(x);
}

/* Adds "Name: value" without leaving a copy of a secret value behind. */
static void add_header(struct mdm_xfer *x, const char *name, const char *value)
{
    char *h = xasprintf("%s: %s", name, value);
    x->hdrs = curl_slist_append(x->hdrs, h);
    secure_free_str(h);
}

void mdm_http_auth(const struct mdm_src *src, struct mdm_xfer *x)
{
    const struct cfg_signal_source *c = src->cfg;
    switch (c->auth_type) {
    case CFG_MDM_AUTH_BEARER: {
        char *v = xasprintf("Bearer %s", src->secret);
        add_header(x, "Authorization", v);
        secure_free_str(v);
        break;
    }
    case CFG_MDM_AUTH_OAUTH2: {
        char *v = xasprintf("Bearer %s", src->access_token != NULL ? src->access_token : "");
        add_header(x, "Authorization", v);
        secure_free_str(v);
        break;
    }
    case CFG_MDM_AUTH_BASIC: {
        size_t ulen = strlen(c->auth_username), plen = src->secret ? strlen(src->secret) : 0;
        char *raw = xmalloc(ulen + plen + 2), *b64, *v;
        memcpy(raw, c->auth_username, ulen);
        raw[ulen] = ':';
        memcpy(raw + ulen + 1, src->secret != NULL ? src->secret : "", plen + 1);
        b64 = b64_encode(raw, ulen + plen + 1);
        v = xasprintf("Basic %s", b64);
        add_header(x, "Authorization", v);
        secure_free_str(raw);
        secure_free_str(b64);
        secure_free_str(v);
        break;
    }
    case CFG_MDM_AUTH_HEADER: add_header(x, c->auth_header, src->secret); break;
    default: break;
    }
}

bool mdm_token_valid(const struct mdm_src *src)
{
    return src->access_token != NULL && clk_mono_ms() < src->token_expires_ms;
}

static void form_field(struct buf *b, CURL *e, const char *name, const char *value)
{
    char *esc = curl_easy_escape(e, value, 0);
    buf_printf(b, "%s%s=%s", b->len > 0 ? "&" : "", name, esc != NULL ? esc : "");
    if (esc != NULL)
        secure_wipe(esc, strlen(esc));
    curl_free(esc);
}

/* Takes the waiting fetches off src; each is sent (token ok) or failed. */
static void token_release(struct mdm_src *src, long status, const char *why)
{
    struct mdm_fetch *f = src->token_waiters;
    src->token_waiters = NULL;
    while (f != NULL) {
        struct mdm_fetch *next = f->qnext;
        f->qnext = NULL;
        if (why == NULL)
            mdm_fetch_send(f);
        else
            mdm_fetch_fail(f, status, "%s", why);
        f = next;
    }
}

/* Reads access_token and expires_in; the token is treated as stale 60 s early. */
static int token_parse(struct mdm_src *src, struct mdm_xfer *x)
{
    char err[ERR_LEN];
    cJSON *root = mdm_json_parse(x->body.p != NULL ? x->body.p : "", x->body.len, err);
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(root, "access_token");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(root, "expires_in");
    int rc = -1;
    if (!cJSON_IsString(tok) || tok->valuestring[0] == '\0' ||
        strpbrk(tok->valuestring, "\r\n") != NULL)
        goto out;
    double life = cJSON_IsNumber(exp) && exp->valuedouble > 0 ? exp->valuedouble : 3600;
    if (life > 86400)
        life = 86400;
    double margin = life > 120 ? 60 : life / 2;
    secure_free_str(src->access_token);
    src->access_token = xstrdup(tok->valuestring);
    src->token_expires_ms = clk_mono_ms() + (int64_t)((life - margin) * 1000);
    rc = 0;
out:
    if (tok != NULL && cJSON_IsString(tok))
        secure_wipe(tok->valuestring, strlen(tok->valuestring));
    cJSON_Delete(root);
    return rc;
}

static void token_done(struct mdm_xfer *x, CURLcode rc)
{
    struct mdm_src *src = x->arg;
    long status = x->status;
    char why[ERR_LEN];
    src->token_xfer = NULL;
    if (rc == CURLE_OPERATION_TIMEDOUT)
        snprintf(why, sizeof(why), "token endpoint timed out after %llds",
                 (long long)src->cfg->timeout);
    else if (rc != CURLE_OK)
        snprintf(why, sizeof(why), "token endpoint unreachable (%s)", curl_easy_strerror(rc));
    else if (status == 400 || status == 401 || status == 403)
        snprintf(why, sizeof(why), "authentication failed (HTTP %ld)", status);
    else if (status < 200 || status > 299)
        snprintf(why, sizeof(why), "token endpoint HTTP %ld", status);
    else if (token_parse(src, x) != 0)
        snprintf(why, sizeof(why), "token endpoint answer has no access_token");
    else
        why[0] = '\0';
    mdm_xfer_free(src->eng, x);
    if (why[0] != '\0')
        log_warn("mdm", "%s: OAuth2 token request failed: %s", src->cfg->name, why);
    token_release(src, status, why[0] != '\0' ? why : NULL);
}

void mdm_token_refresh(struct mdm_src *src)
{
    const struct cfg_signal_source *c = src->cfg;
    struct mdm_xfer *x;
    struct buf form = {0};
    char err[ERR_LEN];
    if (src->token_xfer != NULL)
        return; /* one refresh at a time; the caller already queued its fetch */
    x = xcalloc(1, sizeof(*x));
    x->done = token_done;
    x->arg = src;
    CURL *tmp = curl_easy_init();
    form_field(&form, tmp, "grant_type", "client_credentials");
    form_field(&form, tmp, "client_id", c->auth_client_id);
    form_field(&form, tmp, "client_secret", src->secret);
    if (c->auth_scope != NULL)
        form_field(&form, tmp, "scope", c->auth_scope);
    curl_easy_cleanup(tmp);
    x->post = buf_take(&form);
    x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/x-www-form-urlencoded");
    x->hdrs = curl_slist_append(x->hdrs, "Accept: application/json");
    src->token_xfer = x;
    if (mdm_xfer_start(src, x, "POST", c->auth_token_url, err) != 0) {
        src->token_xfer = NULL;
        mdm_xfer_free(src->eng, x);
        token_release(src, 0, err);
    }
}
