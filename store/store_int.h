/*
 * store internals: the backend vtable (SQLite, PostgreSQL), the commit
 * request the writer thread hands to a backend, the schema migration list and
 * the hooks unit tests use to observe and steer group commit.
 * Included only by the store sources and tests/unit/store.
 */
#ifndef ACMESRV_STORE_INT_H
#define ACMESRV_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* Limits from the store.h contract, plus a bound on the short indexed columns. */
#define STORE_MAX_ID 128
#define STORE_MAX_DATA (1024 * 1024)
#define STORE_MAX_FIELD 512
/* Commits grouped into one transaction at most; bounds the time a batch holds the lock. */
#define STORE_BATCH_MAX 256

/* A backend connection; each backend defines the struct. Used by one thread at a time. */
struct store_conn;

/* One caller's store_commit, queued for the writer thread. */
struct store_req {
    const struct store_write *w; /* borrowed from the blocked caller */
    size_t n;
    int result;        /* set by the backend: 0, 1 (conflict) or -1 (err set) */
    bool done;         /* set by the writer under the store mutex */
    char err[ERR_LEN]; /* filled when result is -1 */
    struct store_req *next;
};

struct store_ops {
    const char *name;
    /* Connects to target. A writer connection is the one that migrates and writes. */
    struct store_conn *(*conn_open)(const char *target, bool writer, char err[ERR_LEN]);
    void (*conn_close)(struct store_conn *c); /* NULL-safe */
    /* Applies every pending migration, each in its own transaction. 0/-1. */
    int (*migrate)(struct store_conn *c, char err[ERR_LEN]);
    /* Highest applied schema version and number of schema_version rows. 0/-1. */
    int (*schema_state)(struct store_conn *c, int *version, int *rows, char err[ERR_LEN]);
    /* 0 found, 1 not found, -1 error; as store_get/store_get_by_lookup. */
    int (*get)(struct store_conn *c, enum store_kind kind, const char *id, struct store_rec *out,
               char err[ERR_LEN]);
    int (*get_by_lookup)(struct store_conn *c, enum store_kind kind, const char *lookup,
                         struct store_rec *out, char err[ERR_LEN]);
    int (*list)(struct store_conn *c, enum store_kind kind, const struct store_filter *f,
                store_list_fn *fn, void *arg, char err[ERR_LEN]);
    /*
     * Applies reqs (the writer has set each result to -1 and err to "") in
     * ONE transaction, each inside its own savepoint so a conflicting or
     * failing request rolls back alone; sets every result.
     * Returns 0 when the transaction committed, -1 when it did not (then every
     * request not already reporting a conflict carries -1 and err).
     */
    int (*apply_batch)(struct store_conn *c, struct store_req **reqs, size_t n);
};

/*
 * For a backend whose batch transaction failed: every request that had
 * applied (or never ran) becomes -1 with err; conflicts stay 1. Logs once.
 */
void store_batch_fail(struct store_req **reqs, size_t n, const char *err);

extern const struct store_ops store_sqlite_ops;
extern const struct store_ops store_pg_ops;

/* Schema migrations: versions ascending from 1, SQL per dialect (no values, only DDL). */
struct store_migration {
    int version;
    const char *sqlite_sql;
    const char *pg_sql;
};
const struct store_migration *store_schema_migrations(size_t *n);

/* Column order every backend SELECTs, so row decoding is shared in spirit. */
#define STORE_COLUMNS "kind, id, owner, lookup, status, created, expires, version, data"

/*
 * Builds the SELECT for store_list into out (size outlen) using numbered
 * parameters ($N for PostgreSQL, ?N for SQLite): 1 is the kind, then
 * owner/lookup/status/created_since as present in f, then after_created and after_id when
 * after_id is set, then the limit (always bound; a negative limit means none in SQLite, NULL in
 * PostgreSQL). Returns the number of parameters, or -1 when out is too small. Only constant SQL
 * fragments are pasted; every value is a parameter.
 */
int store_list_sql(const struct store_filter *f, bool pg, char *out, size_t outlen);

/* ---- test hooks ---- */
/* Transactions the writer committed and commits it processed since open. */
uint64_t store_int_txn_count(struct store *st);
uint64_t store_int_commit_count(struct store *st);
/* Commits waiting for the writer right now. */
size_t store_int_queued(struct store *st);
/* While held, the writer lets commits queue up without starting a transaction. */
void store_int_hold_writer(struct store *st, bool hold);
/* Applied schema state, read through the calling thread's read connection. 0/-1. */
int store_int_schema_state(struct store *st, int *version, int *rows, char err[ERR_LEN]);

#endif
