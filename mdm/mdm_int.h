/*
 * mdm internals: the pure evaluation layer (mdm_eval.c: templates, JSON
 * paths, exact matching, conditions, attributes) and the limits applied to
 * MDM answers, which are untrusted input. Included only by mdm/ sources and
 * the mdm unit tests.
 */
#ifndef ACMESRV_MDM_INT_H
#define ACMESRV_MDM_INT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "mdm/mdm.h"

#define BUF_MAX_MDM_RESP (4u * 1024 * 1024) /* bytes of one MDM answer */
#define MDM_MAX_DEPTH 64                    /* JSON nesting in an answer */
#define MDM_MAX_SERIAL 128                  /* bytes of a serial or UDID */
#define MDM_MAX_PATH_SEGS 32                /* segments of one JSON path */
#define MDM_VALUE_SHOW 80                   /* bytes of a value shown in a reason */

/*
 * Parses len bytes of an MDM answer. Rejects nesting deeper than
 * MDM_MAX_DEPTH before cJSON sees it (cJSON recurses). Caller owns the tree.
 * NULL with err ("malformed JSON", "JSON nested deeper than 64").
 */
cJSON *mdm_json_parse(const char *body, size_t len, char err[ERR_LEN]);

/*
 * The node at path ("$", "a.b", "[0]", "devices[0].x", "$.a") under root, or
 * NULL when a segment is missing, of the wrong type or out of range. Borrowed.
 */
const cJSON *mdm_json_path_get(const cJSON *root, const char *path);

/*
 * Expands ${/attest/serial}, ${/attest/udid} and the filters |urlencode and
 * |json in tmpl. Returns a new string (caller frees) or NULL with err (unknown
 * variable, UDID needed but not given).
 */
char *mdm_template_expand(const char *tmpl, const struct mdm_vars *vars, char err[ERR_LEN]);

/*
 * Evaluates condition c against record rec. Writes what was checked into
 * desc ("is_removed equals false") and what was found into actual ("value
 * true", "missing"). True when it holds. A missing path fails every op except
 * not_exists.
 */
bool mdm_cond_eval(const struct cfg_mdm_condition *c, const cJSON *rec, char *desc,
                   size_t desclen, char *actual, size_t actuallen);

/*
 * Applies src's records/match/conditions/attributes to a parsed 2xx answer
 * and fills res->verdict, reason, conds, attrs and record_json (res->source
 * must already be set). 0 when the answer was understood (allow or deny), -1
 * when it is malformed for this source (err set, res untouched otherwise).
 */
int mdm_evaluate(const struct cfg_signal_source *src, const cJSON *root,
                 const struct mdm_vars *vars, struct mdm_result *res, char err[ERR_LEN]);

/* The value of a JSON node as text for reasons and attributes (caller frees). */
char *mdm_json_text(const cJSON *v, size_t max);

/* ---- engine internals (mdm_engine.c, mdm_http.c); engine thread only unless noted ---- */

#include <curl/curl.h>
#include <event2/event.h>
#include <pthread.h>

#define MDM_CACHE_MAX 4096 /* cached answers per source */

struct mdm_engine;
struct mdm_src;

/* One HTTP exchange on the engine's multi handle. */
struct mdm_xfer {
    CURL *easy;
    struct curl_slist *hdrs; /* may carry secrets: wiped on free */
    char *post;              /* request body; may carry secrets: wiped on free */
    struct buf body;         /* answer, at most BUF_MAX_MDM_RESP */
    bool too_big;
    long status;             /* HTTP status, 0 when none */
    char ctype[128];         /* Content-Type of the answer */
    long retry_after;        /* seconds from Retry-After, -1 when absent */
    void (*done)(struct mdm_xfer *x, CURLcode rc);
    void *arg;
};

struct mdm_waiter {
    mdm_done_fn *done;
    void *arg;
    int64_t start_ms;
    struct mdm_waiter *next;
};

/* One device lookup in progress, shared by every waiter for the same key. */
struct mdm_fetch {
    struct mdm_src *src;
    char *key;          /* serial "\x1f" udid */
    char *serial, *udid;
    struct mdm_waiter *waiters;
    int attempts;
    int64_t deadline_ms;
    bool auth_retried;  /* a 401 already invalidated the OAuth2 token once */
    bool started;       /* holds a concurrency slot */
    struct mdm_xfer *xfer;
    struct event *timer;
    struct mdm_fetch *next;  /* src->fetches */
    struct mdm_fetch *qnext; /* src->queue or src->token_waiters */
};

struct mdm_cache_ent {
    char *key;
    int64_t expires_ms;
    struct mdm_result res;
    struct mdm_cache_ent *next;
};

struct mdm_src {
    const struct cfg_signal_source *cfg;
    struct mdm_engine *eng;
    char *secret;        /* bearer token, basic password, header value or client secret */
    char *access_token;  /* OAuth2 */
    int64_t token_expires_ms;
    struct mdm_xfer *token_xfer; /* the one refresh in flight */
    struct mdm_fetch *token_waiters;
    int active;
    struct mdm_fetch *queue, *queue_tail;
    struct mdm_fetch *fetches;
    struct mdm_cache_ent *cache;
    size_t ncache;
};

struct mdm_engine {
    const struct cfg *cfg;
    struct mdm_src *srcs;
    size_t nsrcs;
    pthread_t thread;
    bool thread_started;
    struct event_base *base;
    CURLM *multi;
    struct event *wake;
    struct event *curl_timer;
    pthread_mutex_t mu;
    struct mdm_req *inbox; /* guarded by mu */
    bool stopping;         /* guarded by mu */
};

/*
 * mdm_api.c: reads a one-line secret file (at most 64 KiB), dropping trailing
 * line breaks. key names the config key in errors; err never holds contents.
 * Caller frees with secure_free_str. NULL with err.
 */
char *mdm_secret_file_read(const char *key, const char *path, char err[ERR_LEN]);

/* ---- webhooks (mdm_webhook.c) ---- */
#define MDM_WH_BACKOFF_CAP_MS 60000  /* longest pause between two delivery attempts */
#define MDM_WH_RETRY_AFTER_MAX 600   /* seconds of Retry-After we honour */
/*
 * The compact JWS (HS256 with key) for one event: claims iss "attesta", iat,
 * jti, typ = type and event = the object in event_json. Caller frees. NULL
 * with err (event_json not a JSON object, signing failed).
 */
char *mdm_webhook_jwt(const char *type, const char *event_json, const char *key, int64_t iat,
                      const char *jti, char err[ERR_LEN]);
/*
 * Milliseconds to wait after failed attempt number `attempt` (1-based):
 * retry_after seconds when the receiver sent one (>= 0, capped at
 * MDM_WH_RETRY_AFTER_MAX), else backoff_s doubled per attempt, capped at
 * MDM_WH_BACKOFF_CAP_MS.
 */
int64_t mdm_webhook_backoff_ms(int64_t backoff_s, int attempt, long retry_after);

/* mdm_http.c: curl multi on the engine's event base. 0/-1. */
int mdm_http_init(struct mdm_engine *eng, char err[ERR_LEN]);
void mdm_http_cleanup(struct mdm_engine *eng);
/*
 * Starts x (method, url, x->hdrs, x->post) with src's TLS and timeout
 * settings. x->done runs later on the engine thread. 0/-1 with err.
 */
int mdm_xfer_start(struct mdm_src *src, struct mdm_xfer *x, const char *method, const char *url,
                   char err[ERR_LEN]);
/* Per-request settings of mdm_xfer_start_opts (webhooks have no struct mdm_src). */
struct mdm_xfer_opts {
    int64_t timeout;        /* seconds for connect and for the whole exchange */
    const char *ca_file;    /* NULL = system store */
    bool insecure;          /* skip certificate verification */
    const char *user_agent;
};
/* Like mdm_xfer_start with explicit settings, on eng's multi handle. 0/-1 with err. */
int mdm_xfer_start_opts(struct mdm_engine *eng, struct mdm_xfer *x, const char *method,
                        const char *url, const struct mdm_xfer_opts *o, char err[ERR_LEN]);
/* Aborts (if running) and frees x, wiping what may hold secrets. NULL-safe. */
void mdm_xfer_free(struct mdm_engine *eng, struct mdm_xfer *x);
/* Adds the source's auth (not OAuth2) to x. */
void mdm_http_auth(const struct mdm_src *src, struct mdm_xfer *x);
/* Starts the OAuth2 token refresh for src; fetches wait in src->token_waiters. */
void mdm_token_refresh(struct mdm_src *src);
/* True while src has an OAuth2 access token that is not about to expire. */
bool mdm_token_valid(const struct mdm_src *src);

/* A lookup handed from mdm_lookup to the engine thread. */
struct mdm_req {
    struct mdm_src *src;
    char *serial, *udid;
    mdm_done_fn *done;
    void *arg;
    int64_t start_ms;
    struct mdm_req *next;
};

/* mdm_engine.c: runs r on the engine thread (r stays owned by the caller). */
void mdm_engine_handle(struct mdm_req *r);
/* mdm_engine.c: fails everything src has in flight or queued (shutdown). */
void mdm_engine_abort_all(struct mdm_src *src);

/* mdm_engine.c, called by mdm_http.c */
void mdm_fetch_send(struct mdm_fetch *f);
/* Completes f with a failure (verdict from on_failure). */
void mdm_fetch_fail(struct mdm_fetch *f, long status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
