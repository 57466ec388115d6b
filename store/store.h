/*
 * store: durable records behind a small backend interface (SQLite embedded,
 * PostgreSQL for several instances). Resources are documents: a few indexed
 * columns the server queries by, and an opaque JSON `data` string owned by
 * the module that wrote it.
 *
 * Reads run on the calling thread with a per-thread connection. Writes are
 * handed to one writer thread that groups concurrent commits into a single
 * transaction (group commit) and returns only once the data is durable, so an
 * issued certificate is on disk before any client can learn its URL.
 * All functions are thread-safe; none may be called on an event-loop thread
 * except store_open/store_close at start-up and shutdown.
 */
#ifndef ACMESRV_STORE_H
#define ACMESRV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

enum store_kind {
    STORE_ACCOUNT, /* lookup = JWK thumbprint */
    STORE_ORDER,   /* owner = account id */
    STORE_AUTHZ,   /* owner = account id; lookup = account:policy:type:identifier;
                      challenges live inside data */
    STORE_CERT,    /* id = serial hex; owner = account id; lookup = SPKI sha256 hex */
    STORE_EAB,     /* id = EAB key id; lookup = account id once bound */
    STORE_AUDIT,   /* id = random; lookup = device serial or identifier */
    STORE_KIND__MAX
};

/* One record. Strings are owned by the record (store_rec_clear frees them). */
struct store_rec {
    enum store_kind kind;
    char *id;        /* unique within kind, <= 128 bytes */
    char *owner;     /* owning account id or NULL */
    char *lookup;    /* secondary index value or NULL */
    char *status;    /* e.g. "pending", "valid"; NULL allowed */
    int64_t created; /* seconds since the epoch; set by the caller */
    int64_t expires; /* seconds since the epoch, 0 = never */
    int64_t version; /* 1 on insert, +1 on each update; read-only for callers */
    char *data;      /* JSON text, <= 1 MiB */
};
void store_rec_clear(struct store_rec *rec);

/* One change in an atomic write. */
enum store_op { STORE_INSERT, STORE_UPDATE, STORE_DELETE };
struct store_write {
    enum store_op op;
    const struct store_rec *rec; /* borrowed; for UPDATE/DELETE kind+id select the row */
    int64_t expect_version;      /* UPDATE/DELETE: refuse unless the row has it; 0 = any */
};

/* Filter for store_list; NULL / 0 members do not filter. */
struct store_filter {
    const char *owner;
    const char *lookup;
    const char *status;
    int64_t created_since;
    size_t limit;   /* 0 = no limit */
    bool newest_first;
    /*
     * Keyset paging: only rows strictly after the row (after_created,
     * after_id) in list order (created, then id). NULL after_id: from the start.
     */
    const char *after_id;
    int64_t after_created;
};

struct store;

/*
 * Opens (creating and migrating as needed) a store.
 * driver "sqlite": target is the database file path (WAL mode, synchronous=FULL).
 * driver "postgres": target is a libpq connection string.
 * NULL with err set.
 */
struct store *store_open(const char *driver, const char *target, char err[ERR_LEN]);
/* Stops the writer thread after it has committed everything queued; NULL-safe. */
void store_close(struct store *st);

/* 0 found (rec filled), 1 not found, -1 error (err set). */
int store_get(struct store *st, enum store_kind kind, const char *id, struct store_rec *out,
              char err[ERR_LEN]);
/* Same, by the secondary `lookup` column; the newest row when several match. */
int store_get_by_lookup(struct store *st, enum store_kind kind, const char *lookup,
                        struct store_rec *out, char err[ERR_LEN]);

/* Called per row; return non-zero to stop early. rec is valid only during the call. */
typedef int store_list_fn(void *arg, const struct store_rec *rec);
/* Lists rows of kind matching f, in (created, id) order (see newest_first). 0/-1. */
int store_list(struct store *st, enum store_kind kind, const struct store_filter *f,
               store_list_fn *fn, void *arg, char err[ERR_LEN]);

/*
 * Applies all writes atomically and durably. Blocks until committed.
 * 0 committed; 1 conflict (an INSERT whose kind+id exists, or an UPDATE/DELETE
 * whose row is missing or has another version), nothing applied; -1 error.
 */
int store_commit(struct store *st, const struct store_write *w, size_t n, char err[ERR_LEN]);

#endif
