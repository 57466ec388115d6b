/*
 * cmd_eab.c: `attesta eab add|list|remove`, the operator's side of External
 * Account Binding (RFC 8555 §7.3.4). The MAC key is shown once at creation
 * and never again: list prints key ids, status and the bound account only.
 */
#include "server/srv_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "server/srv_serve.h"
#include "store/store.h"

#define EAB_KEY_BYTES 32
#define EAB_KID_MAX 128

struct eab_args {
    const char *sub;
    const char *kid;
    const char *config;
};

static int usage(void)
{
    fprintf(stderr, "usage: attesta eab add [--kid KID] [-c FILE]\n"
                    "       attesta eab list [-c FILE]\n"
                    "       attesta eab remove KID [-c FILE]\n");
    return 2;
}

static int parse_args(int argc, char **argv, struct eab_args *a)
{
    if (argc < 2)
        return -1;
    a->sub = argv[1];
    for (int i = 2; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            a->config = argv[++i];
        else if (strcmp(argv[i], "--kid") == 0 && i + 1 < argc && a->kid == NULL)
            a->kid = argv[++i];
        else if (strcmp(a->sub, "remove") == 0 && a->kid == NULL && argv[i][0] != '-')
            a->kid = argv[i];
        else
            return -1;
    }
    return 0;
}

/* Key ids end up in URLs-free JSON and logs: keep them to a safe alphabet. */
static bool kid_ok(const char *kid)
{
    size_t n = strlen(kid);
    if (n == 0 || n > EAB_KID_MAX)
        return false;
    return strspn(kid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") == n;
}

static int eab_add(struct store *st, const char *want_kid, char err[ERR_LEN])
{
    unsigned char key[EAB_KEY_BYTES], kidraw[12];
    char *kid = NULL, *kb64 = NULL, *data = NULL;
    struct store_rec rec = {0};
    struct store_write w = {0};
    int rc = -1, c;

    if (rand_bytes(key, sizeof(key)) != 0 || rand_bytes(kidraw, sizeof(kidraw)) != 0) {
        snprintf(err, ERR_LEN, "no randomness");
        goto out;
    }
    kid = want_kid != NULL ? xstrdup(want_kid) : b64u_encode(kidraw, sizeof(kidraw));
    if (!kid_ok(kid)) {
        snprintf(err, ERR_LEN, "--kid: 1 to %d characters of A-Z a-z 0-9 - _ .", EAB_KID_MAX);
        goto out;
    }
    kb64 = b64u_encode(key, sizeof(key));
    data = xasprintf("{\"key\":\"%s\"}", kb64);
    rec.kind = STORE_EAB;
    rec.id = kid;
    rec.status = (char *)"unused";
    rec.created = clk_now();
    rec.data = data;
    w.op = STORE_INSERT;
    w.rec = &rec;
    c = store_commit(st, &w, 1, err);
    if (c == 1)
        snprintf(err, ERR_LEN, "EAB key id %s already exists", kid);
    if (c != 0)
        goto out;
    printf("kid: %s\nkey: %s\n", kid, kb64);
    printf("(the key is shown only now; give both to the ACME client)\n");
    rc = 0;
out:
    secure_wipe(key, sizeof(key));
    secure_free_str(kb64);
    secure_free_str(data);
    free(kid);
    return rc;
}

static int list_row(void *arg, const struct store_rec *rec)
{
    printf("%s\t%s\t%s\n", rec->id, rec->status != NULL ? rec->status : "-",
           rec->lookup != NULL ? rec->lookup : "-");
    return 0;
}

static int eab_list(struct store *st, char err[ERR_LEN])
{
    struct store_filter f = {0};
    printf("KID\tSTATUS\tACCOUNT\n");
    return store_list(st, STORE_EAB, &f, list_row, NULL, err);
}

static int eab_remove(struct store *st, const char *kid, char err[ERR_LEN])
{
    struct store_rec rec = {0};
    struct store_write w = {0};
    int c;

    rec.kind = STORE_EAB;
    rec.id = (char *)kid;
    w.op = STORE_DELETE;
    w.rec = &rec;
    c = store_commit(st, &w, 1, err);
    if (c == 1)
        snprintf(err, ERR_LEN, "no EAB key id %s", kid);
    if (c != 0)
        return -1;
    printf("removed %s\n", kid);
    return 0;
}

int srv_cmd_eab(int argc, char **argv)
{
    struct eab_args a = {0};
    struct cfg *cfg = NULL;
    struct store *st = NULL;
    char err[CFG_ERR_LEN] = "";
    int rc = 1;

    if (parse_args(argc, argv, &a) != 0)
        return usage();
    if (strcmp(a.sub, "add") != 0 && strcmp(a.sub, "list") != 0 &&
        !(strcmp(a.sub, "remove") == 0 && a.kid != NULL))
        return usage();
    if (srv_admin_open(a.config, &cfg, &st, err) != 0)
        goto out;
    if (strcmp(a.sub, "add") == 0)
        rc = eab_add(st, a.kid, err) == 0 ? 0 : 1;
    else if (strcmp(a.sub, "list") == 0)
        rc = eab_list(st, err) == 0 ? 0 : 1;
    else
        rc = eab_remove(st, a.kid, err) == 0 ? 0 : 1;
out:
    if (rc != 0)
        fprintf(stderr, "attesta eab: %s\n", err);
    store_close(st);
    cfg_free(cfg);
    return rc;
}
