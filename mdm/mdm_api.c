/*
 * mdm public entry points: engine start (secrets are read here, once, so a
 * missing variable fails at start-up and not at the first enrollment), the
 * engine thread and its wake-up event, the thread-safe inbox behind
 * mdm_lookup, and the blocking mdm_lookup_wait used by the CLI and tests.
 */
#include "mdm/mdm_int.h"

#include <errno.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MDM_MAX_SECRET 65536 /* bytes of a secret file */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_rc = -1;

static void global_init(void)
{
    if (evthread_use_pthreads() == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK)
        global_rc = 0;
}

char *mdm_secret_file_read(const char *key, const char *path, char err[ERR_LEN])
{
    FILE *fp = fopen(path, "rb");
    char *s = NULL;
    size_t n;
    if (fp == NULL) {
        snprintf(err, ERR_LEN, "%s: cannot read %s: %s", key, path, strerror(errno));
        return NULL;
    }
    s = xmalloc(MDM_MAX_SECRET + 1);
    n = fread(s, 1, MDM_MAX_SECRET + 1, fp);
    fclose(fp);
    if (n > MDM_MAX_SECRET) {
        snprintf(err, ERR_LEN, "%s: %s is larger than %d bytes", key, path, MDM_MAX_SECRET);
        secure_wipe(s, MDM_MAX_SECRET + 1);
        free(s);
        return NULL;
    }
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    s[n] = '\0';
    if (n == 0 || memchr(s, '\n', n) != NULL || strlen(s) != n) {
        snprintf(err, ERR_LEN, "%s: %s must hold one non-empty line", key, path);
        secure_free_str(s);
        return NULL;
    }
    return s;
}

/* The secret of one source from KEY_env or KEY_file; `optional` allows neither. */
static int load_secret(const struct cfg_signal_source *c, const char *what, const char *env,
                       const char *file, bool optional, char **out, char err[ERR_LEN])
{
    char key[160];
    const char *v;
    if (file != NULL) {
        snprintf(key, sizeof(key), "signal_sources.%s.auth.%s_file", c->name, what);
        *out = mdm_secret_file_read(key, file, err);
        return *out != NULL ? 0 : -1;
    }
    if (env == NULL) {
        if (optional)
            return 0;
        snprintf(err, ERR_LEN, "signal_sources.%s.auth: no %s configured", c->name, what);
        return -1;
    }
    v = getenv(env);
    if (v == NULL || v[0] == '\0' || strpbrk(v, "\r\n") != NULL) {
        snprintf(err, ERR_LEN, "signal_sources.%s.auth.%s_env: environment variable %s is %s",
                 c->name, what, env, v == NULL ? "not set" : "empty or has line breaks");
        return -1;
    }
    *out = xstrdup(v);
    return 0;
}

static int src_init(struct mdm_engine *eng, struct mdm_src *src,
                    const struct cfg_signal_source *c, char err[ERR_LEN])
{
    src->cfg = c;
    src->eng = eng;
    switch (c->auth_type) {
    case CFG_MDM_AUTH_BEARER:
        return load_secret(c, "token", c->auth_token_env, c->auth_token_file, false,
                           &src->secret, err);
    case CFG_MDM_AUTH_BASIC:
        return load_secret(c, "password", c->auth_password_env, c->auth_password_file, true,
                           &src->secret, err);
    case CFG_MDM_AUTH_HEADER:
        return load_secret(c, "value", c->auth_value_env, c->auth_value_file, false,
                           &src->secret, err);
    case CFG_MDM_AUTH_OAUTH2:
        return load_secret(c, "client_secret", c->auth_client_secret_env,
                           c->auth_client_secret_file, false, &src->secret, err);
    default: return 0;
    }
}

static void req_free(struct mdm_req *r)
{
    free(r->serial);
    free(r->udid);
    free(r);
}

/* Takes the inbox; on shutdown fails what is pending and stops the loop. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct mdm_engine *eng = arg;
    struct mdm_req *r, *rev = NULL;
    bool stopping;
    pthread_mutex_lock(&eng->mu);
    r = eng->inbox;
    eng->inbox = NULL;
    stopping = eng->stopping;
    pthread_mutex_unlock(&eng->mu);
    while (r != NULL) { /* the inbox is newest first: restore arrival order */
        struct mdm_req *next = r->next;
        r->next = rev;
        rev = r;
        r = next;
    }
    for (r = rev; r != NULL; r = rev) {
        rev = r->next;
        mdm_engine_handle(r);
        req_free(r);
    }
    if (stopping) {
        for (size_t i = 0; i < eng->nsrcs; i++)
            mdm_engine_abort_all(&eng->srcs[i]);
        event_base_loopbreak(eng->base);
    }
}

static void *engine_main(void *arg)
{
    struct mdm_engine *eng = arg;
    event_base_loop(eng->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

struct mdm_engine *mdm_engine_new(const struct cfg *cfg, char err[ERR_LEN])
{
    struct mdm_engine *eng = xcalloc(1, sizeof(*eng));
    err[0] = '\0';
    pthread_once(&global_once, global_init);
    pthread_mutex_init(&eng->mu, NULL);
    eng->cfg = cfg;
    if (global_rc != 0) {
        snprintf(err, ERR_LEN, "mdm: cannot initialise libevent threads or libcurl");
        goto fail;
    }
    eng->nsrcs = cfg->nsignal_sources;
    eng->srcs = xcalloc(eng->nsrcs + 1, sizeof(*eng->srcs));
    for (size_t i = 0; i < eng->nsrcs; i++) {
        if (src_init(eng, &eng->srcs[i], &cfg->signal_sources[i], err) != 0)
            goto fail;
    }
    eng->base = event_base_new();
    if (eng->base == NULL) {
        snprintf(err, ERR_LEN, "mdm: event_base_new failed");
        goto fail;
    }
    eng->wake = event_new(eng->base, -1, 0, on_wake, eng);
    if (eng->wake == NULL || mdm_http_init(eng, err) != 0)
        goto fail;
    if (pthread_create(&eng->thread, NULL, engine_main, eng) != 0) {
        snprintf(err, ERR_LEN, "mdm: cannot start the engine thread");
        goto fail;
    }
    eng->thread_started = true;
    return eng;
fail:
    if (err[0] == '\0')
        snprintf(err, ERR_LEN, "mdm: engine start failed");
    mdm_engine_free(eng);
    return NULL;
}

/*
 * Every lookup queued before `stopping` is set is in the inbox when the
 * final on_wake runs (it reads both under mu), so none is left unanswered.
 */
void mdm_engine_stop(struct mdm_engine *eng)
{
    if (eng == NULL)
        return;
    pthread_mutex_lock(&eng->mu);
    eng->stopping = true;
    pthread_mutex_unlock(&eng->mu);
    if (eng->thread_started) {
        event_active(eng->wake, EV_READ, 0);
        pthread_join(eng->thread, NULL);
        eng->thread_started = false;
    }
}

bool mdm_engine_is_stopped(struct mdm_engine *eng)
{
    bool stopped;
    pthread_mutex_lock(&eng->mu);
    stopped = eng->stopping;
    pthread_mutex_unlock(&eng->mu);
    return stopped;
}

void mdm_engine_free(struct mdm_engine *eng)
{
    if (eng == NULL)
        return;
    mdm_engine_stop(eng);
    for (size_t i = 0; i < eng->nsrcs; i++) {
        struct mdm_src *src = &eng->srcs[i];
        while (src->cache != NULL) {
            struct mdm_cache_ent *e = src->cache;
            src->cache = e->next;
            free(e->key);
            mdm_result_clear(&e->res);
            free(e);
        }
        secure_free_str(src->secret);
        secure_free_str(src->access_token);
    }
    mdm_http_cleanup(eng);
    if (eng->wake != NULL)
        event_free(eng->wake);
    if (eng->base != NULL)
        event_base_free(eng->base);
    free(eng->srcs);
    pthread_mutex_destroy(&eng->mu);
    free(eng);
}

static bool ok_value(const char *s)
{
    return s != NULL && s[0] != '\0' && strlen(s) <= MDM_MAX_SERIAL;
}

int mdm_lookup(struct mdm_engine *eng, const char *source, const struct mdm_vars *vars,
               mdm_done_fn *done, void *arg, char err[ERR_LEN])
{
    struct mdm_src *src = NULL;
    struct mdm_req *r;
    bool wake;
    for (size_t i = 0; eng != NULL && source != NULL && i < eng->nsrcs; i++) {
        if (strcmp(eng->srcs[i].cfg->name, source) == 0)
            src = &eng->srcs[i];
    }
    if (src == NULL) {
        char esc[96];
        snprintf(err, ERR_LEN, "unknown signal source \"%s\"",
                 log_escape(source != NULL ? source : "", 32, esc, sizeof(esc)));
        return -1;
    }
    if (vars == NULL || !ok_value(vars->serial) || (vars->udid != NULL && !ok_value(vars->udid))) {
        snprintf(err, ERR_LEN, "serial (and udid when given) must be 1 to %d bytes",
                 MDM_MAX_SERIAL);
        return -1;
    }
    r = xcalloc(1, sizeof(*r));
    r->src = src;
    r->serial = xstrdup(vars->serial);
    r->udid = vars->udid != NULL ? xstrdup(vars->udid) : NULL;
    r->done = done;
    r->arg = arg;
    r->start_ms = clk_mono_ms();
    pthread_mutex_lock(&eng->mu);
    if (eng->stopping) {
        pthread_mutex_unlock(&eng->mu);
        req_free(r);
        snprintf(err, ERR_LEN, "the MDM engine is stopped");
        return -1;
    }
    wake = eng->inbox == NULL;
    r->next = eng->inbox;
    eng->inbox = r;
    pthread_mutex_unlock(&eng->mu);
    if (wake)
        event_active(eng->wake, EV_READ, 0);
    return 0;
}

struct wait_ctx {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    struct mdm_result *out;
};

static void wait_done(void *arg, const struct mdm_result *res)
{
    struct wait_ctx *w = arg;
    pthread_mutex_lock(&w->mu);
    mdm_result_copy(w->out, res);
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int mdm_lookup_wait(struct mdm_engine *eng, const char *source, const struct mdm_vars *vars,
                    struct mdm_result *out, char err[ERR_LEN])
{
    struct wait_ctx w = {.out = out};
    int rc;
    memset(out, 0, sizeof(*out));
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    rc = mdm_lookup(eng, source, vars, wait_done, &w, err);
    if (rc == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc;
}
