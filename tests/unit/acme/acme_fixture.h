/*
 * The real pieces every in-process acme test stands on: a temporary
 * directory, the embedded configuration, a CA generated there and a SQLite
 * store. Each test file adds its own context, keys and hooks on top.
 */
#ifndef ACMESRV_TEST_ACME_FIXTURE_H
#define ACMESRV_TEST_ACME_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "common/common.h"
#include "config/config.h"
#include "pki/pki.h"
#include "store/store.h"

/* Creates dir from tmpl (mkdtemp) and fills cfg, ca and st; asserts on failure. */
static inline void
acme_fixture_open(char *dir, size_t dirlen, const char *tmpl, struct cfg **cfg,
                  struct pki_ca **ca, struct store **st)
{
    char err[CFG_ERR_LEN];

    snprintf(dir, dirlen, "%s", tmpl);
    assert_non_null(mkdtemp(dir));
    *cfg = cfg_load(NULL, err);
    assert_non_null(*cfg);
    char *cadir = xasprintf("%s/ca", dir);
    char *cert = xasprintf("%s/intermediate.pem", cadir);
    char *key = xasprintf("%s/intermediate.key", cadir);
    char *root = xasprintf("%s/root.pem", cadir);
    char *db = xasprintf("%s/attesta.db", dir);
    mkdir(cadir, 0700);
    assert_int_equal(pki_ca_init_dir(cadir, (*cfg)->cas[0].name, err), 0);
    *ca = pki_ca_load((*cfg)->cas[0].name, cert, key, root, err);
    assert_non_null(*ca);
    *st = store_open("sqlite", db, err);
    assert_non_null(*st);
    free(cadir);
    free(cert);
    free(key);
    free(root);
    free(db);
}

/* Closes what acme_fixture_open made and removes dir. */
static inline void
acme_fixture_close(const char *dir, struct cfg *cfg, struct pki_ca *ca, struct store *st)
{
    char *cmd = xasprintf("rm -rf %s", dir);

    store_close(st);
    pki_ca_free(ca);
    cfg_free(cfg);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", dir);
    free(cmd);
}

#endif
