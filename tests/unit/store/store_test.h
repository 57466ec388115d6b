/*
 * Shared fixture for the store unit tests: which backend runs (SQLite file
 * in a temp dir, or a throwaway PostgreSQL cluster), fresh empty databases
 * per test, and the record helpers the test files use.
 */
#ifndef ACMESRV_STORE_TEST_H
#define ACMESRV_STORE_TEST_H

#include <stdbool.h>
#include <stddef.h>

#include "store/store.h"

/* ---- fixture (test_store_main.c) ---- */
/* "sqlite" or "postgres". */
const char *tst_driver(void);
/* Writes the target of a new, empty database into out (a new file or a new PG database). */
void tst_fresh_target(char *out, size_t outlen);
/* Opens a store on a fresh database; fails the test on error. */
struct store *tst_open_fresh(char *target, size_t targetlen);

/* ---- PostgreSQL harness (pg_harness.c) ---- */
/* Starts a private cluster (unix socket only). 0 ok, 77 binaries absent, -1 failure. */
int pgh_start(void);
/* Base conninfo of the running cluster, without dbname. */
const char *pgh_conninfo(void);
/* Creates database name in the cluster. 0/-1. */
int pgh_create_db(const char *name);
void pgh_stop(void);

/* ---- records ---- */
/* A record of borrowed strings, enough for a write. */
struct store_rec tst_rec(enum store_kind kind, const char *id, const char *owner,
                         const char *lookup, const char *status, int64_t created, const char *data);
int tst_commit1(struct store *st, enum store_op op, const struct store_rec *r, int64_t expect);

/* Test groups, one per file. */
int tst_run_crud(void);
int tst_run_invalid(void);
int tst_run_group(void);

#endif
