/*
 * cmd_approve.c: `attesta approve` for policies with `approval: manual`.
 * Lists the devices waiting, approves or denies one authorization (or every
 * waiting authorization of a serial). The decision is written to the store;
 * the server applies it when the device next polls.
 */
#include "server/srv_int.h"

#include <stdio.h>
#include <string.h>

#include "acme/acme_admin.h"
#include "config/config.h"
#include "server/srv_serve.h"
#include "store/store.h"

struct approve_args {
    const char *config, *id, *serial, *reason;
    bool list, deny;
};

static int approve_usage(void)
{
    fprintf(stderr, "usage: attesta approve AUTHZ_ID [-c FILE]\n"
                    "       attesta approve --serial SERIAL [-c FILE]\n"
                    "       attesta approve --deny AUTHZ_ID|--serial SERIAL --reason TEXT [-c FILE]\n"
                    "       attesta approve --list [-c FILE]\n");
    return 2;
}

static int approve_parse(int argc, char **argv, struct approve_args *a)
{
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            a->config = argv[++i];
        else if (strcmp(argv[i], "--serial") == 0 && i + 1 < argc)
            a->serial = argv[++i];
        else if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc)
            a->reason = argv[++i];
        else if (strcmp(argv[i], "--list") == 0)
            a->list = true;
        else if (strcmp(argv[i], "--deny") == 0)
            a->deny = true;
        else if (argv[i][0] != '-' && a->id == NULL)
            a->id = argv[i];
        else
            return -1;
    }
    if (a->list)
        return a->id == NULL && a->serial == NULL && !a->deny ? 0 : -1;
    if ((a->id == NULL) == (a->serial == NULL))
        return -1;
    return a->deny && a->reason == NULL ? -1 : 0;
}

int srv_cmd_approve(int argc, char **argv)
{
    struct approve_args a = {0};
    struct cfg *cfg = NULL;
    struct store *st = NULL;
    char err[CFG_ERR_LEN] = "";
    int rc = 1, n;

    if (approve_parse(argc, argv, &a) != 0)
        return approve_usage();
    if (srv_admin_open(a.config, &cfg, &st, err) != 0)
        goto out;
    if (a.list) {
        n = acme_admin_pending(st, stdout, err);
        if (n == 0)
            printf("no requests waiting for approval\n");
    } else if (a.serial != NULL) {
        n = acme_admin_decide_serial(st, a.serial, !a.deny, a.reason, err);
        if (n == 0) {
            snprintf(err, sizeof(err), "no request of serial %s waits for approval", a.serial);
            n = -1;
        }
    } else {
        n = acme_admin_decide(st, a.id, !a.deny, a.reason, err) == 0 ? 1 : -1;
    }
    if (n < 0)
        goto out;
    if (!a.list)
        printf("%s %d request%s; the device gets the answer when it next polls\n",
               a.deny ? "denied" : "approved", n, n == 1 ? "" : "s");
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "attesta approve: %s\n", err);
    store_close(st);
    cfg_free(cfg);
    return rc;
}
