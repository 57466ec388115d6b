/*
 * cmd_audit.c: `attesta audit [--serial S] [--since RFC3339|DURATION] [-c FILE]`,
 * the enrollment decisions the server recorded (admission, approval,
 * issuance), newest first, one block per decision with its reason.
 */
#include "server/srv_int.h"

#include <stdio.h>
#include <string.h>

#include "acme/acme_admin.h"
#include "config/config.h"
#include "server/srv_serve.h"
#include "store/store.h"

static int audit_usage(void)
{
    fprintf(stderr, "usage: attesta audit [--serial SERIAL] [--since RFC3339|DURATION] [-c FILE]\n");
    return 2;
}

/* "2026-01-02T03:04:05Z" or a duration back from now ("24h", "7d"). 0/-1. */
static int parse_since(const char *s, int64_t *since)
{
    int64_t d;

    if (clk_parse_rfc3339(s, since) == 0)
        return 0;
    if (clk_parse_duration(s, &d) != 0 || d < 0)
        return -1;
    *since = clk_now() - d;
    return 0;
}

int srv_cmd_audit(int argc, char **argv)
{
    const char *config = NULL, *serial = NULL;
    struct cfg *cfg = NULL;
    struct store *st = NULL;
    char err[CFG_ERR_LEN] = "";
    int64_t since = 0;
    int rc = 1, n;

    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--serial") == 0 && i + 1 < argc) {
            serial = argv[++i];
        } else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc) {
            if (parse_since(argv[++i], &since) != 0) {
                fprintf(stderr, "attesta audit: --since: expected RFC 3339 time or a duration\n");
                return 2;
            }
        } else {
            return audit_usage();
        }
    }
    if (srv_admin_open(config, &cfg, &st, err) != 0)
        goto out;
    n = acme_admin_audit(st, serial, since, stdout, err);
    if (n < 0)
        goto out;
    if (n == 0)
        printf("no decisions recorded%s%s\n", serial != NULL ? " for " : "",
               serial != NULL ? serial : "");
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "attesta audit: %s\n", err);
    store_close(st);
    cfg_free(cfg);
    return rc;
}
