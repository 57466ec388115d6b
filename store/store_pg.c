/*
 * store PostgreSQL backend (libpq): one connection per thread, parameterised
 * queries only (PQexecParams; PQexec only for constant SQL without values),
 * migrations serialised across instances with an advisory lock, and the
 * group-commit batch: BEGIN, one SAVEPOINT per commit, one COMMIT.
 * Insert conflicts use ON CONFLICT DO NOTHING and version checks a WHERE
 * clause; both are detected from the affected row count.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

/* Serialises migrations between several attesta instances on one database. */
#define MIGRATE_LOCK "SELECT pg_advisory_xact_lock(1635018085)"
#define MAX_PARAMS 10

struct store_conn {
    PGconn *pg;
};

/* Values for one PQexecParams call; numbers are formatted into num. */
struct params {
    const char *v[MAX_PARAMS];
    char num[MAX_PARAMS][24];
    int n;
};

static void p_str(struct params *p, const char *s)
{
    p->v[p->n++] = s;
}

static void p_i64(struct params *p, int64_t x)
{
    snprintf(p->num[p->n], sizeof(p->num[p->n]), "%lld", (long long)x);
    p->v[p->n] = p->num[p->n];
    p->n++;
}

static void set_err(struct store_conn *c, const char *what, char err[ERR_LEN])
{
    const char *msg = PQerrorMessage(c->pg);
    size_t len = strcspn(msg, "\n");

    snprintf(err, ERR_LEN, "postgres: %s: %.*s", what, (int)len, msg);
}

/* Runs sql with params; NULL (err set) unless the result has status want. Caller PQclears. */
static PGresult *run(struct store_conn *c, const char *sql, const struct params *p,
                     ExecStatusType want, char err[ERR_LEN])
{
    PGresult *res;

    if (p != NULL)
        res = PQexecParams(c->pg, sql, p->n, NULL, p->v, NULL, NULL, 0);
    else
        res = PQexec(c->pg, sql);
    if (PQresultStatus(res) != want) {
        const char *msg = PQresultErrorMessage(res);
        size_t len = strcspn(msg, "\n");
        snprintf(err, ERR_LEN, "postgres: %.*s", (int)len, len > 0 ? msg : PQerrorMessage(c->pg));
        PQclear(res);
        return NULL;
    }
    return res;
}

static int run_cmd(struct store_conn *c, const char *sql, char err[ERR_LEN])
{
    PGresult *res = run(c, sql, NULL, PGRES_COMMAND_OK, err);

    if (res == NULL)
        return -1;
    PQclear(res);
    return 0;
}

/* Schema notices ("already exists, skipping") are expected; keep them out of stderr. */
static void quiet_notice(void *arg, const char *msg)
{
    log_debug("store", "postgres: %.*s", (int)strcspn(msg, "\n"), msg);
}

static void pg_close(struct store_conn *c)
{
    if (c == NULL)
        return;
    PQfinish(c->pg);
    free(c);
}

static struct store_conn *pg_open(const char *target, bool writer, char err[ERR_LEN])
{
    struct store_conn *c = xcalloc(1, sizeof(*c));

    c->pg = PQconnectdb(target);
    if (c->pg == NULL) {
        snprintf(err, ERR_LEN, "postgres: out of memory connecting");
        free(c);
        return NULL;
    }
    if (PQstatus(c->pg) != CONNECTION_OK) {
        set_err(c, "connect", err);
        pg_close(c);
        return NULL;
    }
    PQsetNoticeProcessor(c->pg, quiet_notice, NULL);
    return c;
}

/* Reconnects a connection the server dropped; the next statement then works again. */
static int ensure(struct store_conn *c, char err[ERR_LEN])
{
    if (PQstatus(c->pg) == CONNECTION_OK)
        return 0;
    PQreset(c->pg);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        set_err(c, "reconnect", err);
        return -1;
    }
    log_warn("store", "postgres: reconnected");
    return 0;
}

static int64_t col_i64(PGresult *res, int row, int col)
{
    long long v = 0;

    if (str_to_ll(PQgetvalue(res, row, col), INT64_MIN, INT64_MAX, &v) != 0)
        return 0;
    return v;
}

static char *col_str(PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    return xstrdup(PQgetvalue(res, row, col));
}

static void row_read(PGresult *res, int row, struct store_rec *out)
{
    out->kind = (enum store_kind)col_i64(res, row, 0);
    out->id = col_str(res, row, 1);
    out->owner = col_str(res, row, 2);
    out->lookup = col_str(res, row, 3);
    out->status = col_str(res, row, 4);
    out->created = col_i64(res, row, 5);
    out->expires = col_i64(res, row, 6);
    out->version = col_i64(res, row, 7);
    out->data = col_str(res, row, 8);
}

/* ---- migrations ---- */

static int migrate_one(struct store_conn *c, const struct store_migration *m, char err[ERR_LEN])
{
    struct params p = {0};
    PGresult *res = NULL;
    int rc = -1;

    if (run_cmd(c, "BEGIN", err) != 0)
        return -1;
    res = run(c, MIGRATE_LOCK, NULL, PGRES_TUPLES_OK, err);
    if (res == NULL)
        goto out;
    PQclear(res);
    p_i64(&p, m->version);
    res = run(c, "SELECT 1 FROM schema_version WHERE version = $1::int", &p, PGRES_TUPLES_OK, err);
    if (res == NULL)
        goto out;
    if (PQntuples(res) > 0) {
        rc = 0;
        goto out;
    }
    if (run_cmd(c, m->pg_sql, err) != 0)
        goto out;
    p_i64(&p, clk_now());
    PQclear(res);
    res = run(c, "INSERT INTO schema_version (version, applied) VALUES ($1::int, $2::bigint)", &p,
              PGRES_COMMAND_OK, err);
    if (res == NULL)
        goto out;
    rc = 0;
    log_info("store", "postgres: applied schema migration %d", m->version);
out:
    PQclear(res);
    if (rc == 0 && run_cmd(c, "COMMIT", err) != 0)
        rc = -1;
    if (rc != 0)
        PQclear(PQexec(c->pg, "ROLLBACK"));
    return rc;
}

static int pg_migrate(struct store_conn *c, char err[ERR_LEN])
{
    size_t n;
    const struct store_migration *m = store_schema_migrations(&n);

    /* Under the lock too: concurrent CREATE TABLE IF NOT EXISTS can still collide. */
    if (run_cmd(c, "BEGIN", err) != 0)
        return -1;
    PGresult *res = run(c, MIGRATE_LOCK, NULL, PGRES_TUPLES_OK, err);
    bool locked = res != NULL;
    PQclear(res);
    if (!locked ||
        run_cmd(c,
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                " applied BIGINT NOT NULL)",
                err) != 0 ||
        run_cmd(c, "COMMIT", err) != 0) {
        PQclear(PQexec(c->pg, "ROLLBACK"));
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (migrate_one(c, &m[i], err) != 0)
            return -1;
    }
    return 0;
}

static int pg_schema_state(struct store_conn *c, int *version, int *rows, char err[ERR_LEN])
{
    PGresult *res;

    if (ensure(c, err) != 0)
        return -1;
    res = run(c, "SELECT COALESCE(MAX(version), 0), COUNT(*) FROM schema_version", NULL,
              PGRES_TUPLES_OK, err);
    if (res == NULL)
        return -1;
    *version = (int)col_i64(res, 0, 0);
    *rows = (int)col_i64(res, 0, 1);
    PQclear(res);
    return 0;
}

/* ---- reads ---- */

static int get_by(struct store_conn *c, const char *sql, enum store_kind kind, const char *key,
                  struct store_rec *out, char err[ERR_LEN])
{
    struct params p = {0};
    PGresult *res;
    int rc = 1;

    if (ensure(c, err) != 0)
        return -1;
    p_i64(&p, kind);
    p_str(&p, key);
    res = run(c, sql, &p, PGRES_TUPLES_OK, err);
    if (res == NULL)
        return -1;
    if (PQntuples(res) > 0) {
        row_read(res, 0, out);
        rc = 0;
    }
    PQclear(res);
    return rc;
}

static int pg_get(struct store_conn *c, enum store_kind kind, const char *id, struct store_rec *out,
                  char err[ERR_LEN])
{
    return get_by(c, "SELECT " STORE_COLUMNS " FROM records WHERE kind = $1::int AND id = $2", kind,
                  id, out, err);
}

static int pg_get_by_lookup(struct store_conn *c, enum store_kind kind, const char *lookup,
                            struct store_rec *out, char err[ERR_LEN])
{
    return get_by(c,
                  "SELECT " STORE_COLUMNS " FROM records WHERE kind = $1::int AND lookup = $2"
                  " ORDER BY created DESC, id DESC LIMIT 1",
                  kind, lookup, out, err);
}

static int pg_list(struct store_conn *c, enum store_kind kind, const struct store_filter *f,
                   store_list_fn *fn, void *arg, char err[ERR_LEN])
{
    const char *vals[] = {f->owner, f->lookup, f->status};
    struct params p = {0};
    char sql[512];
    PGresult *res;

    if (ensure(c, err) != 0)
        return -1;
    if (store_list_sql(f, true, sql, sizeof(sql)) < 0) {
        snprintf(err, ERR_LEN, "postgres: list query too long");
        return -1;
    }
    p_i64(&p, kind);
    for (size_t i = 0; i < nitems(vals); i++) {
        if (vals[i] != NULL)
            p_str(&p, vals[i]);
    }
    if (f->created_since != 0)
        p_i64(&p, f->created_since);
    if (f->after_id != NULL) {
        p_i64(&p, f->after_created);
        p_str(&p, f->after_id);
    }
    if (f->limit == 0)
        p_str(&p, NULL); /* LIMIT NULL: no limit */
    else
        p_i64(&p, (int64_t)f->limit);
    res = run(c, sql, &p, PGRES_TUPLES_OK, err);
    if (res == NULL)
        return -1;
    /* The result is complete in memory, so a callback may use the store again. */
    for (int i = 0; i < PQntuples(res); i++) {
        struct store_rec rec = {0};
        row_read(res, i, &rec);
        int stop = fn(arg, &rec);
        store_rec_clear(&rec);
        if (stop != 0)
            break;
    }
    PQclear(res);
    return 0;
}

/* ---- writes ---- */

static const char *const write_sql[] = {
    [STORE_INSERT] = "INSERT INTO records (kind, id, owner, lookup, status, created, expires,"
                     " version, data) VALUES ($1::int, $2, $3, $4, $5, $6::bigint, $7::bigint,"
                     " 1, $8) ON CONFLICT (kind, id) DO NOTHING",
    [STORE_UPDATE] = "UPDATE records SET owner = $3, lookup = $4, status = $5,"
                     " created = $6::bigint, expires = $7::bigint, data = $8,"
                     " version = version + 1 WHERE kind = $1::int AND id = $2"
                     " AND ($9::bigint = 0 OR version = $9::bigint)",
    [STORE_DELETE] = ("DELETE FROM records WHERE kind = $1::int AND id = $2"
                      " AND ($3::bigint = 0 OR version = $3::bigint)"),
};

/* One write inside the current savepoint: 0 applied, 1 conflict, -1 error. */
static int write_one(struct store_conn *c, const struct store_write *w, char err[ERR_LEN])
{
    const struct store_rec *r = w->rec;
    struct params p = {0};
    PGresult *res;
    int rc;

    p_i64(&p, r->kind);
    p_str(&p, r->id);
    if (w->op == STORE_DELETE) {
        p_i64(&p, w->expect_version);
    } else {
        p_str(&p, r->owner);
        p_str(&p, r->lookup);
        p_str(&p, r->status);
        p_i64(&p, r->created);
        p_i64(&p, r->expires);
        p_str(&p, r->data);
        if (w->op == STORE_UPDATE)
            p_i64(&p, w->expect_version);
    }
    res = run(c, write_sql[w->op], &p, PGRES_COMMAND_OK, err);
    if (res == NULL)
        return -1;
    rc = strcmp(PQcmdTuples(res), "0") == 0 ? 1 : 0;
    PQclear(res);
    return rc;
}

/* Applies one commit in a savepoint. Returns -1 only when the savepoint itself broke. */
static int apply_req(struct store_conn *c, struct store_req *req)
{
    int rc = 0;

    if (run_cmd(c, "SAVEPOINT c", req->err) != 0)
        return -1;
    for (size_t i = 0; i < req->n && rc == 0; i++)
        rc = write_one(c, &req->w[i], req->err);
    req->result = rc;
    if (rc != 0 && run_cmd(c, "ROLLBACK TO SAVEPOINT c", req->err) != 0)
        return -1;
    return run_cmd(c, "RELEASE SAVEPOINT c", req->err);
}

static int pg_apply_batch(struct store_conn *c, struct store_req **reqs, size_t n)
{
    char err[ERR_LEN] = "";
    bool begun = false;
    PGresult *res = NULL;
    int rc = -1;

    if (ensure(c, err) != 0 || run_cmd(c, "BEGIN", err) != 0)
        goto out;
    begun = true;
    for (size_t i = 0; i < n; i++) {
        if (apply_req(c, reqs[i]) != 0) {
            snprintf(err, sizeof(err), "%s", reqs[i]->err);
            goto out;
        }
    }
    /* COMMIT of an aborted transaction "succeeds" as ROLLBACK; only "COMMIT" means durable. */
    res = run(c, "COMMIT", NULL, PGRES_COMMAND_OK, err);
    begun = false;
    if (res == NULL)
        goto out;
    if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        snprintf(err, sizeof(err), "postgres: transaction rolled back");
        goto out;
    }
    rc = 0;
out:
    PQclear(res);
    if (rc != 0) {
        if (begun)
            PQclear(PQexec(c->pg, "ROLLBACK"));
        store_batch_fail(reqs, n, err);
    }
    return rc;
}

const struct store_ops store_pg_ops = {
    .name = "postgres",
    .conn_open = pg_open,
    .conn_close = pg_close,
    .migrate = pg_migrate,
    .schema_state = pg_schema_state,
    .get = pg_get,
    .get_by_lookup = pg_get_by_lookup,
    .list = pg_list,
    .apply_batch = pg_apply_batch,
};
