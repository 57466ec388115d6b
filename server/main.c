/*
 * main.c: the `attesta` binary. Dispatches the first argument to a
 * subcommand (srv_int.h); each returns the process exit status.
 */
#include "server/srv_int.h"

#include <stdio.h>
#include <string.h>

#include "common/common.h"

#ifndef ATTESTA_VERSION
#define ATTESTA_VERSION "0.0.0"
#endif

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *usage;
} commands[] = {
    {"serve", srv_cmd_serve, "serve [-c FILE]                      run the ACME server"},
    {"config", srv_cmd_config, "config check FILE                   validate a config file"},
    {"eab", srv_cmd_eab, "eab add [--kid KID] [-c FILE]        create an EAB key (shown once)\n"
                         "  eab list [-c FILE]                   list EAB keys (never the key)\n"
                         "  eab remove KID [-c FILE]             delete an EAB key"},
    {"ca", srv_cmd_ca, "ca init --dir DIR --name NAME       create a development CA"},
    {"attest", srv_cmd_attest, "attest inspect FILE [--at TIME]     verify an attestation"},
    {"mdm", srv_cmd_mdm, "mdm lookup SOURCE SERIAL [--udid U] [-c FILE]  test a signal source"},
    {"audit", srv_cmd_audit, "audit [--serial S] [--since T] [-c FILE]  enrollment decisions"},
    {"approve", srv_cmd_approve, "approve ID|--serial S [--deny --reason R]|--list  manual approval"},
    {"profile", srv_cmd_profile, "profile --policy NAME [-c FILE] [--out F]  write a .mobileconfig"},
    {"version", cmd_version, "version                              print the version"},
    {"help", cmd_help, "help                                 this text"},
};

static void usage(FILE *fp)
{
    fprintf(fp, "usage: attesta COMMAND [ARGS]\n");
    for (size_t i = 0; i < nitems(commands); i++)
        fprintf(fp, "  %s\n", commands[i].usage);
}

static int cmd_version(int argc, char **argv)
{
    printf("attesta %s\n", ATTESTA_VERSION);
    return 0;
}

static int cmd_help(int argc, char **argv)
{
    usage(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

    if (cmd != NULL && (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0))
        cmd = "help";
    if (cmd != NULL && strcmp(cmd, "--version") == 0)
        cmd = "version";
    for (size_t i = 0; cmd != NULL && i < nitems(commands); i++) {
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    }
    if (cmd != NULL)
        fprintf(stderr, "attesta: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}
