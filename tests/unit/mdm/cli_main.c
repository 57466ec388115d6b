/*
 * A stand-in `attesta` that only knows the `mdm` subcommand, so the MDM CLI
 * and its integration test run without the whole server linked in.
 */
#include <stdio.h>
#include <string.h>

#include "server/srv_int.h"

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "mdm") != 0) {
        fprintf(stderr, "usage: attesta mdm lookup SOURCE SERIAL [--udid U] [-c FILE]\n");
        return 2;
    }
    return srv_cmd_mdm(argc - 1, argv + 1);
}
