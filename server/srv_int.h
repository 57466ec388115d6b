/*
 * server internals: the `attesta` binary's subcommands and the HTTPS plane.
 * Each subcommand is `int srv_cmd_<name>(int argc, char **argv)` in
 * server/cmd_<name>.c; argv[0] is the subcommand name; the return value is the
 * process exit status.
 */
#ifndef ACMESRV_SRV_INT_H
#define ACMESRV_SRV_INT_H

int srv_cmd_serve(int argc, char **argv);   /* attesta serve [-c FILE] */
int srv_cmd_config(int argc, char **argv);  /* attesta config check FILE */
int srv_cmd_eab(int argc, char **argv);     /* attesta eab add|list|remove ... */
int srv_cmd_ca(int argc, char **argv);      /* attesta ca init --dir DIR --name NAME */
int srv_cmd_attest(int argc, char **argv);  /* attesta attest inspect FILE [--at TIME] */

#endif
