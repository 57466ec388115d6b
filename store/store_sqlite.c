/*
 * store SQLite backend: one connection per thread (WAL, synchronous=FULL,
 * busy_timeout), prepared statements cached per connection, versioned
 * migrations, and the group-commit batch: BEGIN IMMEDIATE, one SAVEPOINT per
 * commit so a conflict rolls back alone, then a single COMMIT (one fsync).
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <errno.h>

#include "store/store_int.h"

#define BUSY_TIMEOUT_MS 5000
/* The writer's page cache, in KiB (negative: SQLite's unit for a size in KiB). */
#define STORE_SQLITE_WRITER_CACHE "-16384"
/* owner, lookup, status, created_since, newest_first and after_id select a cached statement. */
#define LIST_SLOTS 64

enum stmt_slot {
    S_GET,
    S_GET_LOOKUP,
    S_INSERT,
    S_UPDATE,
    S_UPDATE_BODY,
    S_DELETE,
    S_SAVEPOINT,
    S_RELEASE,
    S_ROLLBACK_TO,
    S_BEGIN,
    S_COMMIT,
    S__MAX
};

static const char *const stmt_sql[S__MAX] = {
    [S_GET] = "SELECT " STORE_COLUMNS " FROM records WHERE kind = ?1 AND id = ?2",
    [S_GET_LOOKUP] = "SELECT " STORE_COLUMNS " FROM records WHERE kind = ?1 AND lookup = ?2"
                     " ORDER BY created DESC, id DESC LIMIT 1",
    [S_INSERT] = "INSERT INTO records (kind, id, owner, lookup, status, created, expires,"
                 " version, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8)"
                 " ON CONFLICT (kind, id) DO NOTHING",
    [S_UPDATE] = "UPDATE records SET owner = ?3, lookup = ?4, status = ?5, created = ?6,"
                 " expires = ?7, data = ?8, version = version + 1"
                 " WHERE kind = ?1 AND id = ?2 AND (?9 = 0 OR version = ?9)",
    /*
     * SQLite rewrites the entries of every index holding a column the SET
     * list names, changed or not. Most updates keep owner, lookup and created
     * (an order or authz changing status), so they are tried without them
     * first and touch only the table and the status index; no row here falls
     * back to S_UPDATE, which also tells a conflict apart.
     */
    [S_UPDATE_BODY] = "UPDATE records SET status = ?5, expires = ?7, data = ?8,"
                      " version = version + 1 WHERE kind = ?1 AND id = ?2 AND owner IS ?3"
                      " AND lookup IS ?4 AND created = ?6 AND (?9 = 0 OR version = ?9)",
    [S_DELETE] = "DELETE FROM records WHERE kind = ?1 AND id = ?2 AND (?3 = 0 OR version = ?3)",
    [S_SAVEPOINT] = "SAVEPOINT c",
    [S_RELEASE] = "RELEASE c",
    [S_ROLLBACK_TO] = "ROLLBACK TO c",
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
};
_Static_assert(nitems(stmt_sql) == S__MAX, "stmt_sql must cover every slot");

struct store_conn {
    sqlite3 *db;
    sqlite3_stmt *stmt[S__MAX];
    sqlite3_stmt *list[LIST_SLOTS];
    bool list_busy[LIST_SLOTS]; /* a callback may list again while a statement runs */
};

static void set_err(struct store_conn *c, const char *what, char err[ERR_LEN])
{
    snprintf(err, ERR_LEN, "sqlite: %s: %s", what, sqlite3_errmsg(c->db));
}

/* The cached statement for slot, prepared on first use. */
static sqlite3_stmt *stmt_get(struct store_conn *c, enum stmt_slot s, char err[ERR_LEN])
{
    if (c->stmt[s] != NULL)
        return c->stmt[s];
    if (sqlite3_prepare_v3(c->db, stmt_sql[s], -1, SQLITE_PREPARE_PERSISTENT, &c->stmt[s], NULL) !=
        SQLITE_OK) {
        set_err(c, "prepare", err);
        return NULL;
    }
    return c->stmt[s];
}

static void stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Runs a statement that returns no rows (control statements). 0/-1. */
static int run_slot(struct store_conn *c, enum stmt_slot s, char err[ERR_LEN])
{
    sqlite3_stmt *st = stmt_get(c, s, err);
    int rc;

    if (st == NULL)
        return -1;
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        set_err(c, stmt_sql[s], err);
    stmt_done(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static void bind_str(sqlite3_stmt *st, int idx, const char *s)
{
    if (s == NULL)
        sqlite3_bind_null(st, idx);
    else
        sqlite3_bind_text(st, idx, s, -1, SQLITE_STATIC);
}

static char *col_str(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);

    if (t == NULL)
        return NULL;
    return xstrndup((const char *)t, (size_t)sqlite3_column_bytes(st, col));
}

/* Fills out from the current row, in STORE_COLUMNS order. */
static void row_read(sqlite3_stmt *st, struct store_rec *out)
{
    out->kind = (enum store_kind)sqlite3_column_int(st, 0);
    out->id = col_str(st, 1);
    out->owner = col_str(st, 2);
    out->lookup = col_str(st, 3);
    out->status = col_str(st, 4);
    out->created = sqlite3_column_int64(st, 5);
    out->expires = sqlite3_column_int64(st, 6);
    out->version = sqlite3_column_int64(st, 7);
    out->data = col_str(st, 8);
}

/* ---- connections ---- */

static int exec_sql(struct store_conn *c, const char *sql, char err[ERR_LEN])
{
    char *msg = NULL;

    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, ERR_LEN, "sqlite: %s: %s", sql, msg != NULL ? msg : "failed");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int set_wal(struct store_conn *c, char err[ERR_LEN])
{
    sqlite3_stmt *st = NULL;
    int rc = -1;

    if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        set_err(c, "journal_mode", err);
        goto out;
    }
    const unsigned char *mode = sqlite3_column_text(st, 0);
    if (mode == NULL || strcmp((const char *)mode, "wal") != 0) {
        snprintf(err, ERR_LEN, "sqlite: cannot enable WAL mode");
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(st);
    return rc;
}

static void sq_close(struct store_conn *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < S__MAX; i++)
        sqlite3_finalize(c->stmt[i]);
    for (size_t i = 0; i < LIST_SLOTS; i++)
        sqlite3_finalize(c->list[i]);
    sqlite3_close(c->db);
    free(c);
}

/* Creates path with mode 0600 when missing; tightens an existing one. 0/-1. */
static int create_private(const char *path, char err[ERR_LEN])
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, ERR_LEN, "sqlite: cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = fchmod(fd, 0600);
    close(fd);
    if (rc != 0) {
        snprintf(err, ERR_LEN, "sqlite: cannot chmod %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static struct store_conn *sq_open(const char *target, bool writer, char err[ERR_LEN])
{
    struct store_conn *c = xcalloc(1, sizeof(*c));
    /* Each connection is confined to one thread, so SQLite's own mutexes are not needed. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);

    /*
     * The database holds EAB MAC keys: create it 0600 ourselves. SQLite gives
     * its -wal and -shm files the database file's mode, so they follow.
     */
    if (writer && target[0] != ':' && strncmp(target, "file:", 5) != 0 &&
        create_private(target, err) != 0)
        goto err;
    if (sqlite3_open_v2(target, &c->db, flags, NULL) != SQLITE_OK) {
        if (c->db != NULL)
            set_err(c, target, err);
        else
            snprintf(err, ERR_LEN, "sqlite: cannot open %s", target);
        goto err;
    }
    sqlite3_extended_result_codes(c->db, 1);
    if (sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS) != SQLITE_OK) {
        set_err(c, "busy_timeout", err);
        goto err;
    }
    if (writer && set_wal(c, err) != 0)
        goto err;
    if (exec_sql(c, "PRAGMA synchronous=FULL", err) != 0)
        goto err;
    /*
     * A reader's page cache is dropped whenever another connection committed,
     * which under load is before nearly every read, so only the writer (which
     * keeps its cache across its own commits) gets a bigger one. No mmap_size:
     * each checkpoint grows the file and every reader then remaps it, which
     * cost more than the pread copies it saves.
     */
    if (exec_sql(c, "PRAGMA temp_store=MEMORY", err) != 0)
        goto err;
    if (writer && exec_sql(c, "PRAGMA cache_size=" STORE_SQLITE_WRITER_CACHE, err) != 0)
        goto err;
    if (!writer && exec_sql(c, "PRAGMA query_only=ON", err) != 0)
        goto err;
    return c;
err:
    sq_close(c);
    return NULL;
}

/* ---- migrations ---- */

/* Applies migration m unless schema_version already lists it, in its own transaction. */
static int migrate_one(struct store_conn *c, const struct store_migration *m, char err[ERR_LEN])
{
    sqlite3_stmt *st = NULL;
    int rc = -1, step;

    if (exec_sql(c, "BEGIN IMMEDIATE", err) != 0)
        return -1;
    if (sqlite3_prepare_v2(c->db, "SELECT 1 FROM schema_version WHERE version = ?1", -1, &st,
                           NULL) != SQLITE_OK) {
        set_err(c, "schema_version", err);
        goto out;
    }
    sqlite3_bind_int(st, 1, m->version);
    step = sqlite3_step(st);
    sqlite3_finalize(st);
    st = NULL;
    if (step == SQLITE_ROW) {
        rc = 0;
        goto out;
    }
    if (step != SQLITE_DONE) {
        set_err(c, "schema_version", err);
        goto out;
    }
    if (exec_sql(c, m->sqlite_sql, err) != 0)
        goto out;
    if (sqlite3_prepare_v2(c->db, "INSERT INTO schema_version (version, applied) VALUES (?1, ?2)",
                           -1, &st, NULL) != SQLITE_OK) {
        set_err(c, "schema_version", err);
        goto out;
    }
    sqlite3_bind_int(st, 1, m->version);
    sqlite3_bind_int64(st, 2, clk_now());
    if (sqlite3_step(st) != SQLITE_DONE) {
        set_err(c, "schema_version insert", err);
        goto out;
    }
    rc = 0;
    log_info("store", "sqlite: applied schema migration %d", m->version);
out:
    sqlite3_finalize(st);
    if (rc == 0 && exec_sql(c, "COMMIT", err) != 0)
        rc = -1;
    if (rc != 0)
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int sq_migrate(struct store_conn *c, char err[ERR_LEN])
{
    size_t n;
    const struct store_migration *m = store_schema_migrations(&n);

    if (exec_sql(c,
                 "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                 " applied INTEGER NOT NULL)",
                 err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (migrate_one(c, &m[i], err) != 0)
            return -1;
    }
    return 0;
}

static int sq_schema_state(struct store_conn *c, int *version, int *rows, char err[ERR_LEN])
{
    sqlite3_stmt *st = NULL;
    int rc = -1;

    if (sqlite3_prepare_v2(c->db, "SELECT COALESCE(MAX(version), 0), COUNT(*) FROM schema_version",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        set_err(c, "schema_version", err);
        goto out;
    }
    *version = sqlite3_column_int(st, 0);
    *rows = sqlite3_column_int(st, 1);
    rc = 0;
out:
    sqlite3_finalize(st);
    return rc;
}

/* ---- reads ---- */

static int get_by(struct store_conn *c, enum stmt_slot s, enum store_kind kind, const char *key,
                  struct store_rec *out, char err[ERR_LEN])
{
    sqlite3_stmt *st = stmt_get(c, s, err);
    int rc = -1, step;

    if (st == NULL)
        return -1;
    sqlite3_bind_int(st, 1, (int)kind);
    bind_str(st, 2, key);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        row_read(st, out);
        rc = 0;
    } else if (step == SQLITE_DONE) {
        rc = 1;
    } else {
        set_err(c, "get", err);
    }
    stmt_done(st);
    return rc;
}

static int sq_get(struct store_conn *c, enum store_kind kind, const char *id, struct store_rec *out,
                  char err[ERR_LEN])
{
    return get_by(c, S_GET, kind, id, out, err);
}

static int sq_get_by_lookup(struct store_conn *c, enum store_kind kind, const char *lookup,
                            struct store_rec *out, char err[ERR_LEN])
{
    return get_by(c, S_GET_LOOKUP, kind, lookup, out, err);
}

static void list_bind(sqlite3_stmt *st, enum store_kind kind, const struct store_filter *f)
{
    const char *vals[] = {f->owner, f->lookup, f->status};
    int idx = 1;

    sqlite3_bind_int(st, idx++, (int)kind);
    for (size_t i = 0; i < nitems(vals); i++) {
        if (vals[i] != NULL)
            bind_str(st, idx++, vals[i]);
    }
    if (f->created_since != 0)
        sqlite3_bind_int64(st, idx++, f->created_since);
    if (f->after_id != NULL) {
        sqlite3_bind_int64(st, idx++, f->after_created);
        bind_str(st, idx++, f->after_id);
    }
    sqlite3_bind_int64(st, idx, f->limit == 0 ? -1 : (sqlite3_int64)f->limit);
}

static int sq_list(struct store_conn *c, enum store_kind kind, const struct store_filter *f,
                   store_list_fn *fn, void *arg, char err[ERR_LEN])
{
    unsigned slot = (f->owner != NULL) | (f->lookup != NULL) << 1 | (f->status != NULL) << 2 |
                    (f->created_since != 0) << 3 | (unsigned)f->newest_first << 4 |
                    (f->after_id != NULL) << 5;
    bool cached = !c->list_busy[slot];
    sqlite3_stmt *st = cached ? c->list[slot] : NULL;
    char sql[512];
    int rc = -1, step;

    if (st == NULL) {
        if (store_list_sql(f, false, sql, sizeof(sql)) < 0) {
            snprintf(err, ERR_LEN, "sqlite: list query too long");
            return -1;
        }
        if (sqlite3_prepare_v3(c->db, sql, -1, cached ? SQLITE_PREPARE_PERSISTENT : 0, &st, NULL) !=
            SQLITE_OK) {
            set_err(c, "prepare list", err);
            return -1;
        }
        if (cached)
            c->list[slot] = st;
    }
    if (cached)
        c->list_busy[slot] = true;
    list_bind(st, kind, f);
    for (;;) {
        step = sqlite3_step(st);
        if (step == SQLITE_DONE) {
            rc = 0;
            break;
        }
        if (step != SQLITE_ROW) {
            set_err(c, "list", err);
            break;
        }
        struct store_rec rec = {0};
        row_read(st, &rec);
        int stop = fn(arg, &rec);
        store_rec_clear(&rec);
        if (stop != 0) {
            rc = 0;
            break;
        }
    }
    if (cached) {
        stmt_done(st);
        c->list_busy[slot] = false;
    } else {
        sqlite3_finalize(st);
    }
    return rc;
}

/* ---- writes ---- */

/* Runs one write statement s: 0 applied, 1 no row matched, -1 error. */
static int write_stmt(struct store_conn *c, enum stmt_slot s, const struct store_write *w,
                      char err[ERR_LEN])
{
    const struct store_rec *r = w->rec;
    sqlite3_stmt *st = stmt_get(c, s, err);
    int rc = -1;

    if (st == NULL)
        return -1;
    sqlite3_bind_int(st, 1, (int)r->kind);
    bind_str(st, 2, r->id);
    if (w->op == STORE_DELETE) {
        sqlite3_bind_int64(st, 3, w->expect_version);
    } else {
        bind_str(st, 3, r->owner);
        bind_str(st, 4, r->lookup);
        bind_str(st, 5, r->status);
        sqlite3_bind_int64(st, 6, r->created);
        sqlite3_bind_int64(st, 7, r->expires);
        bind_str(st, 8, r->data);
        if (s == S_UPDATE || s == S_UPDATE_BODY)
            sqlite3_bind_int64(st, 9, w->expect_version);
    }
    if (sqlite3_step(st) == SQLITE_DONE)
        rc = sqlite3_changes(c->db) == 0 ? 1 : 0;
    else
        set_err(c, "write", err);
    stmt_done(st);
    return rc;
}

/* One write inside the current savepoint: 0 applied, 1 conflict, -1 error. */
static int write_one(struct store_conn *c, const struct store_write *w, char err[ERR_LEN])
{
    static const enum stmt_slot slots[] = {
        [STORE_INSERT] = S_INSERT, [STORE_UPDATE] = S_UPDATE, [STORE_DELETE] = S_DELETE};
    int rc;

    if (w->op != STORE_UPDATE)
        return write_stmt(c, slots[w->op], w, err);
    rc = write_stmt(c, S_UPDATE_BODY, w, err);
    return rc == 1 ? write_stmt(c, S_UPDATE, w, err) : rc;
}

/* Applies one commit in a savepoint. Returns -1 only when the savepoint itself broke. */
static int apply_req(struct store_conn *c, struct store_req *req)
{
    int rc = 0;

    if (run_slot(c, S_SAVEPOINT, req->err) != 0)
        return -1;
    for (size_t i = 0; i < req->n && rc == 0; i++)
        rc = write_one(c, &req->w[i], req->err);
    req->result = rc;
    if (rc != 0) {
        if (run_slot(c, S_ROLLBACK_TO, req->err) != 0)
            return -1;
    }
    return run_slot(c, S_RELEASE, req->err);
}

static int sq_apply_batch(struct store_conn *c, struct store_req **reqs, size_t n)
{
    char err[ERR_LEN] = "";
    bool begun = false;
    int rc = -1;

    if (run_slot(c, S_BEGIN, err) != 0)
        goto out;
    begun = true;
    for (size_t i = 0; i < n; i++) {
        if (apply_req(c, reqs[i]) != 0) {
            snprintf(err, sizeof(err), "%s", reqs[i]->err);
            goto out;
        }
    }
    if (run_slot(c, S_COMMIT, err) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0) {
        if (begun)
            sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        store_batch_fail(reqs, n, err);
    }
    return rc;
}

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .conn_open = sq_open,
    .conn_close = sq_close,
    .migrate = sq_migrate,
    .schema_state = sq_schema_state,
    .get = sq_get,
    .get_by_lookup = sq_get_by_lookup,
    .list = sq_list,
    .apply_batch = sq_apply_batch,
};
