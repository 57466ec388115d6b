/*
 * Entry point of unit_store: runs every store test group against SQLite
 * (a real file in a mkdtemp dir), or with --postgres against a private
 * PostgreSQL cluster started for the run (exit 77 when it is not installed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/unit/store/store_test.h"

static bool use_pg;
static char sqlite_dir[64];
static int db_seq;

const char *tst_driver(void)
{
    return use_pg ? "postgres" : "sqlite";
}

void tst_fresh_target(char *out, size_t outlen)
{
    char name[32];

    snprintf(name, sizeof(name), "t%d", ++db_seq);
    if (!use_pg) {
        snprintf(out, outlen, "%s/%s.db", sqlite_dir, name);
        return;
    }
    assert_int_equal(pgh_create_db(name), 0);
    snprintf(out, outlen, "%s dbname=%s", pgh_conninfo(), name);
}

struct store *tst_open_fresh(char *target, size_t targetlen)
{
    char err[ERR_LEN] = "";

    tst_fresh_target(target, targetlen);
    struct store *st = store_open(tst_driver(), target, err);
    if (st == NULL)
        fail_msg("store_open(%s): %s", tst_driver(), err);
    return st;
}

struct store_rec tst_rec(enum store_kind kind, const char *id, const char *owner,
                         const char *lookup, const char *status, int64_t created, const char *data)
{
    /* store_commit only reads the record, so borrowed strings are safe to cast. */
    struct store_rec r = {.kind = kind,
                          .id = (char *)id,
                          .owner = (char *)owner,
                          .lookup = (char *)lookup,
                          .status = (char *)status,
                          .created = created,
                          .data = (char *)data};
    return r;
}

int tst_commit1(struct store *st, enum store_op op, const struct store_rec *r, int64_t expect)
{
    struct store_write w = {.op = op, .rec = r, .expect_version = expect};
    char err[ERR_LEN] = "";
    int rc = store_commit(st, &w, 1, err);

    if (rc < 0)
        print_message("store_commit: %s\n", err);
    return rc;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

int main(int argc, char **argv)
{
    int failed = 0;

    use_pg = argc > 1 && strcmp(argv[1], "--postgres") == 0;
    if (use_pg) {
        int rc = pgh_start();
        if (rc == 77) {
            printf("postgres binaries not found; skipping\n");
            return 77;
        }
        if (rc != 0) {
            pgh_stop();
            return 1;
        }
    } else {
        snprintf(sqlite_dir, sizeof(sqlite_dir), "/tmp/attesta-store-XXXXXX");
        if (mkdtemp(sqlite_dir) == NULL) {
            perror("mkdtemp");
            return 1;
        }
    }
    log_set_level(LOG_LVL_ERR);
    failed += tst_run_crud();
    failed += tst_run_invalid();
    failed += tst_run_group();
    if (use_pg)
        pgh_stop();
    else
        nftw(sqlite_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed == 0 ? 0 : 1;
}
