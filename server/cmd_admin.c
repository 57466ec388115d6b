/*
 * cmd_admin.c: the small operator subcommands that need no running server:
 * `attesta config check FILE` and `attesta ca init --dir DIR --name NAME`.
 */
#include "server/srv_int.h"

#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "pki/pki.h"
#include "server/srv_serve.h"

int srv_cmd_config(int argc, char **argv)
{
    char err[CFG_ERR_LEN] = "";
    struct cfg *cfg;

    if (argc != 3 || strcmp(argv[1], "check") != 0) {
        fprintf(stderr, "usage: attesta config check FILE\n");
        return 2;
    }
    cfg = cfg_load(argv[2], err);
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    cfg_free(cfg);
    printf("%s: OK\n", argv[2]);
    return 0;
}

int srv_cmd_ca(int argc, char **argv)
{
    const char *dir = NULL, *name = NULL;
    char err[ERR_LEN] = "";

    if (argc < 2 || strcmp(argv[1], "init") != 0)
        goto usage;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            name = argv[++i];
        else
            goto usage;
    }
    if (dir == NULL || name == NULL)
        goto usage;
    if (srv_mkdir_p(dir, 0700, err) != 0 || pki_ca_init_dir(dir, name, err) != 0) {
        fprintf(stderr, "attesta ca init: %s\n", err);
        return 1;
    }
    printf("CA \"%s\" in %s: root.pem, root.key, intermediate.pem, intermediate.key\n", name,
           dir);
    return 0;
usage:
    fprintf(stderr, "usage: attesta ca init --dir DIR --name NAME\n");
    return 2;
}
