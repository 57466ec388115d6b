/*
 * fuzz_config: cfg_load on arbitrary YAML. cfg_load takes a path, so each
 * input is written to one memfd (no disk writes, nothing left behind) and
 * loaded through /proc/self/fd/N.
 */
#include "config/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_fd = -1;
static char fuzz_path[64];

static void setup(void)
{
    fuzz_fd = memfd_create("attesta-fuzz-config.yaml", 0);
    if (fuzz_fd < 0) {
        perror("memfd_create");
        abort();
    }
    snprintf(fuzz_path, sizeof(fuzz_path), "/proc/self/fd/%d", fuzz_fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[CFG_ERR_LEN];
    struct cfg *cfg;

    if (fuzz_fd < 0)
        setup();
    /* Replace the previous input entirely: truncate first, then write from offset 0. */
    if (ftruncate(fuzz_fd, 0) != 0 || (size != 0 && pwrite(fuzz_fd, data, size, 0) != (ssize_t)size))
        abort();
    err[0] = '\0';
    cfg = cfg_load(fuzz_path, err);
    if (cfg == NULL) {
        if (err[0] == '\0')
            abort(); /* the contract: NULL comes with "FILE:LINE: key: why" */
        return 0;
    }
    /* Lookups over what was accepted, as acme/ and server/ do at start-up. */
    for (size_t i = 0; i < cfg->npolicies; i++)
        if (cfg_policy_find(cfg, cfg->policies[i].name) == NULL)
            abort();
    for (size_t i = 0; i < cfg->ncas; i++)
        if (cfg_ca_find(cfg, cfg->cas[i].name) == NULL)
            abort();
    for (size_t i = 0; i < cfg->nsignal_sources; i++)
        if (cfg_signal_source_find(cfg, cfg->signal_sources[i].name) == NULL)
            abort();
    cfg_free(cfg);
    return 0;
}
