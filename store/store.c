/*
 * store: the public API. Validates arguments, dispatches reads to the
 * backend through the calling thread's own read connection (a pthread key per
 * store), and runs the single writer thread that drains queued commits into
 * one transaction per group (group commit) before waking every caller with
 * its own result.
 */
#include "store/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

/* A read connection owned by one thread; listed so store_close can close it. */
struct store_reader {
    struct store *st;
    struct store_conn *conn;
    struct store_reader *prev, *next;
};

struct store {
    const struct store_ops *ops;
    char *target;

    /* Writer side, all guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* signalled when a commit is queued, on stop and on release */
    pthread_cond_t done_cv; /* broadcast when a group finished */
    struct store_req *head, *tail;
    size_t queued;
    size_t waiting; /* callers inside store_commit; store_close waits for them to leave */
    bool stopping, held, writer_started;
    uint64_t txns, commits;
    struct store_conn *wconn; /* used only by the writer thread once it runs */
    pthread_t writer;

    /* Reader side. */
    pthread_key_t rkey;
    bool rkey_ok;
    pthread_mutex_t rmu;
    struct store_reader *readers;
};

void store_rec_clear(struct store_rec *rec)
{
    if (rec == NULL)
        return;
    free(rec->id);
    free(rec->owner);
    free(rec->lookup);
    free(rec->status);
    free(rec->data);
    memset(rec, 0, sizeof(*rec));
}

/* ---- read connections ---- */

static void reader_unlink(struct store *st, struct store_reader *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        st->readers = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
}

/* pthread key destructor: the thread is exiting, so its connection goes too. */
static void reader_destroy(void *p)
{
    struct store_reader *r = p;
    struct store *st = r->st;

    pthread_mutex_lock(&st->rmu);
    reader_unlink(st, r);
    pthread_mutex_unlock(&st->rmu);
    st->ops->conn_close(r->conn);
    free(r);
}

static struct store_conn *reader_conn(struct store *st, char err[ERR_LEN])
{
    struct store_reader *r = pthread_getspecific(st->rkey);
    struct store_conn *c;

    if (r != NULL)
        return r->conn;
    c = st->ops->conn_open(st->target, false, err);
    if (c == NULL)
        return NULL;
    r = xcalloc(1, sizeof(*r));
    r->st = st;
    r->conn = c;
    pthread_mutex_lock(&st->rmu);
    r->next = st->readers;
    if (st->readers != NULL)
        st->readers->prev = r;
    st->readers = r;
    pthread_mutex_unlock(&st->rmu);
    if (pthread_setspecific(st->rkey, r) != 0) {
        snprintf(err, ERR_LEN, "store: pthread_setspecific failed");
        pthread_mutex_lock(&st->rmu);
        reader_unlink(st, r);
        pthread_mutex_unlock(&st->rmu);
        st->ops->conn_close(c);
        free(r);
        return NULL;
    }
    return c;
}

/* ---- writer thread ---- */

void store_batch_fail(struct store_req **reqs, size_t n, const char *err)
{
    log_err("store", "group of %zu commits not committed: %s", n, err);
    for (size_t i = 0; i < n; i++) {
        /* A conflict stays a conflict: nothing of it was applied either way. */
        if (reqs[i]->result == 0 || (reqs[i]->result < 0 && reqs[i]->err[0] == '\0')) {
            reqs[i]->result = -1;
            snprintf(reqs[i]->err, ERR_LEN, "%s", err);
        }
    }
}

/* Takes up to STORE_BATCH_MAX queued requests off the queue (mu held). */
static size_t take_batch(struct store *st, struct store_req **batch)
{
    size_t n = 0;

    while (st->head != NULL && n < STORE_BATCH_MAX) {
        batch[n++] = st->head;
        st->head = st->head->next;
    }
    if (st->head == NULL)
        st->tail = NULL;
    st->queued -= n;
    return n;
}

static void *writer_main(void *arg)
{
    struct store *st = arg;
    struct store_req **batch = xcalloc(STORE_BATCH_MAX, sizeof(*batch));

    pthread_mutex_lock(&st->mu);
    for (;;) {
        while ((st->head == NULL || st->held) && !(st->stopping && st->head == NULL))
            pthread_cond_wait(&st->work_cv, &st->mu);
        if (st->head == NULL)
            break; /* stopping and drained */
        size_t n = take_batch(st, batch);
        pthread_mutex_unlock(&st->mu);
        for (size_t i = 0; i < n; i++) {
            batch[i]->result = -1;
            batch[i]->err[0] = '\0';
        }

        int rc = st->ops->apply_batch(st->wconn, batch, n);

        pthread_mutex_lock(&st->mu);
        if (rc == 0)
            st->txns++;
        st->commits += n;
        for (size_t i = 0; i < n; i++)
            batch[i]->done = true;
        pthread_cond_broadcast(&st->done_cv);
    }
    pthread_mutex_unlock(&st->mu);
    free(batch);
    return NULL;
}

/* ---- open / close ---- */

static const struct store_ops *find_ops(const char *driver)
{
    if (driver == NULL)
        return NULL;
    if (strcmp(driver, "sqlite") == 0)
        return &store_sqlite_ops;
    if (strcmp(driver, "postgres") == 0)
        return &store_pg_ops;
    return NULL;
}

struct store *store_open(const char *driver, const char *target, char err[ERR_LEN])
{
    const struct store_ops *ops = find_ops(driver);
    struct store *st = NULL;

    if (ops == NULL) {
        snprintf(err, ERR_LEN, "store: unknown driver \"%s\" (expected sqlite or postgres)",
                 driver != NULL ? driver : "(null)");
        return NULL;
    }
    if (target == NULL || target[0] == '\0') {
        snprintf(err, ERR_LEN, "store: empty %s target", ops->name);
        return NULL;
    }
    st = xcalloc(1, sizeof(*st));
    st->ops = ops;
    st->target = xstrdup(target);
    pthread_mutex_init(&st->mu, NULL);
    pthread_mutex_init(&st->rmu, NULL);
    pthread_cond_init(&st->work_cv, NULL);
    pthread_cond_init(&st->done_cv, NULL);
    if (pthread_key_create(&st->rkey, reader_destroy) != 0) {
        snprintf(err, ERR_LEN, "store: pthread_key_create failed");
        goto err;
    }
    st->rkey_ok = true;
    st->wconn = ops->conn_open(target, true, err);
    if (st->wconn == NULL)
        goto err;
    if (ops->migrate(st->wconn, err) != 0)
        goto err;
    if (pthread_create(&st->writer, NULL, writer_main, st) != 0) {
        snprintf(err, ERR_LEN, "store: cannot start writer thread");
        goto err;
    }
    st->writer_started = true;
    log_info("store", "opened %s store", ops->name);
    return st;
err:
    store_close(st);
    return NULL;
}

void store_close(struct store *st)
{
    if (st == NULL)
        return;
    if (st->writer_started) {
        pthread_mutex_lock(&st->mu);
        st->stopping = true;
        st->held = false;
        pthread_cond_signal(&st->work_cv);
        pthread_mutex_unlock(&st->mu);
        pthread_join(st->writer, NULL);
        /* Woken callers still need the mutex to return; let them go before it is freed. */
        pthread_mutex_lock(&st->mu);
        while (st->waiting > 0)
            pthread_cond_wait(&st->done_cv, &st->mu);
        pthread_mutex_unlock(&st->mu);
    }
    st->ops->conn_close(st->wconn);
    if (st->rkey_ok) {
        /* Deleting the key first means no exiting thread runs reader_destroy on us later. */
        pthread_key_delete(st->rkey);
        pthread_mutex_lock(&st->rmu);
        while (st->readers != NULL) {
            struct store_reader *r = st->readers;
            reader_unlink(st, r);
            st->ops->conn_close(r->conn);
            free(r);
        }
        pthread_mutex_unlock(&st->rmu);
    }
    pthread_cond_destroy(&st->work_cv);
    pthread_cond_destroy(&st->done_cv);
    pthread_mutex_destroy(&st->mu);
    pthread_mutex_destroy(&st->rmu);
    secure_free_str(st->target); /* a conninfo may carry the database password */
    free(st);
}

/* ---- validation ---- */

static int check_kind(enum store_kind kind, char err[ERR_LEN])
{
    if ((int)kind < 0 || kind >= STORE_KIND__MAX) {
        snprintf(err, ERR_LEN, "store: invalid kind %d", (int)kind);
        return -1;
    }
    return 0;
}

/*
 * Strict UTF-8 (no overlongs, surrogates or values past U+10FFFF). PostgreSQL
 * rejects anything else and SQLite would store it, so both backends must see
 * the same input.
 */
static bool is_utf8(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (len - i - 1 < n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

static int check_str(const char *what, const char *s, size_t max, bool required, char err[ERR_LEN])
{
    if (s == NULL) {
        if (!required)
            return 0;
        snprintf(err, ERR_LEN, "store: missing %s", what);
        return -1;
    }
    size_t len = strnlen(s, max + 1);
    if (required && len == 0) {
        snprintf(err, ERR_LEN, "store: empty %s", what);
        return -1;
    }
    if (len > max) {
        snprintf(err, ERR_LEN, "store: %s longer than %zu bytes", what, max);
        return -1;
    }
    if (!is_utf8((const unsigned char *)s, len)) {
        snprintf(err, ERR_LEN, "store: %s is not valid UTF-8", what);
        return -1;
    }
    return 0;
}

static int check_write(const struct store_write *w, char err[ERR_LEN])
{
    const struct store_rec *r = w->rec;

    if (w->op != STORE_INSERT && w->op != STORE_UPDATE && w->op != STORE_DELETE) {
        snprintf(err, ERR_LEN, "store: invalid op %d", (int)w->op);
        return -1;
    }
    if (r == NULL) {
        snprintf(err, ERR_LEN, "store: write without a record");
        return -1;
    }
    if (w->expect_version < 0) {
        snprintf(err, ERR_LEN, "store: negative expect_version");
        return -1;
    }
    if (check_kind(r->kind, err) != 0 || check_str("id", r->id, STORE_MAX_ID, true, err) != 0)
        return -1;
    if (w->op == STORE_DELETE)
        return 0;
    if (check_str("owner", r->owner, STORE_MAX_FIELD, false, err) != 0 ||
        check_str("lookup", r->lookup, STORE_MAX_FIELD, false, err) != 0 ||
        check_str("status", r->status, STORE_MAX_FIELD, false, err) != 0 ||
        check_str("data", r->data, STORE_MAX_DATA, false, err) != 0)
        return -1;
    return 0;
}

/* ---- public API ---- */

int store_get(struct store *st, enum store_kind kind, const char *id, struct store_rec *out,
              char err[ERR_LEN])
{
    struct store_conn *c;

    memset(out, 0, sizeof(*out));
    if (check_kind(kind, err) != 0 || check_str("id", id, STORE_MAX_ID, true, err) != 0)
        return -1;
    c = reader_conn(st, err);
    if (c == NULL)
        return -1;
    return st->ops->get(c, kind, id, out, err);
}

int store_get_by_lookup(struct store *st, enum store_kind kind, const char *lookup,
                        struct store_rec *out, char err[ERR_LEN])
{
    struct store_conn *c;

    memset(out, 0, sizeof(*out));
    if (check_kind(kind, err) != 0 || check_str("lookup", lookup, STORE_MAX_FIELD, true, err) != 0)
        return -1;
    c = reader_conn(st, err);
    if (c == NULL)
        return -1;
    return st->ops->get_by_lookup(c, kind, lookup, out, err);
}

int store_list(struct store *st, enum store_kind kind, const struct store_filter *f,
               store_list_fn *fn, void *arg, char err[ERR_LEN])
{
    static const struct store_filter none;
    struct store_conn *c;

    if (f == NULL)
        f = &none;
    if (check_kind(kind, err) != 0 ||
        check_str("owner", f->owner, STORE_MAX_FIELD, false, err) != 0 ||
        check_str("lookup", f->lookup, STORE_MAX_FIELD, false, err) != 0 ||
        check_str("status", f->status, STORE_MAX_FIELD, false, err) != 0 ||
        check_str("after_id", f->after_id, STORE_MAX_ID, false, err) != 0)
        return -1;
    if (fn == NULL || f->limit > INT64_MAX) {
        snprintf(err, ERR_LEN, "store: invalid list arguments");
        return -1;
    }
    c = reader_conn(st, err);
    if (c == NULL)
        return -1;
    return st->ops->list(c, kind, f, fn, arg, err);
}

int store_commit(struct store *st, const struct store_write *w, size_t n, char err[ERR_LEN])
{
    struct store_req req = {.w = w, .n = n};

    if (n == 0 || w == NULL) {
        snprintf(err, ERR_LEN, "store: empty commit");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (check_write(&w[i], err) != 0)
            return -1;
    }
    pthread_mutex_lock(&st->mu);
    if (st->stopping) {
        pthread_mutex_unlock(&st->mu);
        snprintf(err, ERR_LEN, "store: closing");
        return -1;
    }
    if (st->tail != NULL)
        st->tail->next = &req;
    else
        st->head = &req;
    st->tail = &req;
    st->queued++;
    st->waiting++;
    pthread_cond_signal(&st->work_cv);
    while (!req.done)
        pthread_cond_wait(&st->done_cv, &st->mu);
    if (--st->waiting == 0 && st->stopping)
        pthread_cond_broadcast(&st->done_cv);
    pthread_mutex_unlock(&st->mu);
    if (req.result < 0)
        snprintf(err, ERR_LEN, "%s", req.err);
    return req.result;
}

/* ---- test hooks ---- */

uint64_t store_int_txn_count(struct store *st)
{
    pthread_mutex_lock(&st->mu);
    uint64_t v = st->txns;
    pthread_mutex_unlock(&st->mu);
    return v;
}

uint64_t store_int_commit_count(struct store *st)
{
    pthread_mutex_lock(&st->mu);
    uint64_t v = st->commits;
    pthread_mutex_unlock(&st->mu);
    return v;
}

size_t store_int_queued(struct store *st)
{
    pthread_mutex_lock(&st->mu);
    size_t v = st->queued;
    pthread_mutex_unlock(&st->mu);
    return v;
}

void store_int_hold_writer(struct store *st, bool hold)
{
    pthread_mutex_lock(&st->mu);
    st->held = hold;
    pthread_cond_signal(&st->work_cv);
    pthread_mutex_unlock(&st->mu);
}

int store_int_schema_state(struct store *st, int *version, int *rows, char err[ERR_LEN])
{
    struct store_conn *c = reader_conn(st, err);

    if (c == NULL)
        return -1;
    return st->ops->schema_state(c, version, rows, err);
}
