/*
 * `attesta mdm lookup SOURCE SERIAL [--udid U] [-c FILE]`: runs one signal
 * source lookup with the real configuration, secrets and engine, and prints
 * what the enrollment flow would see (status, matched record, each condition,
 * attributes, verdict, reason, timing), so an admin can debug a source
 * without enrolling a device. Secrets are read by the engine and never
 * printed. Exit status: 0 allowed, 1 denied, 2 usage or configuration error.
 */
#include "server/srv_int.h"

#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "mdm/mdm.h"

static int usage(void)
{
    fprintf(stderr, "usage: attesta mdm lookup SOURCE SERIAL [--udid UDID] [-c FILE]\n");
    return 2;
}

static void print_result(const struct mdm_result *r)
{
    printf("source:      %s\n", r->source);
    if (r->http_status > 0)
        printf("http status: %d\n", r->http_status);
    else
        printf("http status: none\n");
    printf("from cache:  %s\n", r->from_cache ? "yes" : "no");
    if (r->record_json != NULL)
        printf("record:\n%s\n", r->record_json);
    else
        printf("record:      none matched\n");
    if (r->nconds > 0)
        printf("conditions:\n");
    for (size_t i = 0; i < r->nconds; i++)
        printf("  %s  %s\n", r->conds[i].pass ? "pass" : "FAIL", r->conds[i].text);
    if (r->nattrs > 0)
        printf("attributes:\n");
    for (size_t i = 0; i < r->nattrs; i++)
        printf("  %s = %s\n", r->attrs[i].name, r->attrs[i].value);
    printf("verdict:     %s%s\n", r->verdict == MDM_ALLOW ? "allow" : "deny",
           r->failed ? " (lookup failed; on_failure applied)" : "");
    printf("reason:      %s\n", r->reason != NULL ? r->reason : "");
    printf("time:        %lld ms\n", (long long)r->elapsed_ms);
}

int srv_cmd_mdm(int argc, char **argv)
{
    const char *cfg_path = NULL, *udid = NULL, *pos[2] = {NULL, NULL};
    size_t npos = 0;
    char cerr[CFG_ERR_LEN], err[ERR_LEN];
    struct cfg *cfg = NULL;
    struct mdm_engine *eng = NULL;
    struct mdm_result res = {0};
    int rc = 2;

    if (argc < 2 || strcmp(argv[1], "lookup") != 0)
        return usage();
    for (int i = 2; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            cfg_path = argv[++i];
        else if (strcmp(argv[i], "--udid") == 0 && i + 1 < argc)
            udid = argv[++i];
        else if (argv[i][0] == '-' || npos == 2)
            return usage();
        else
            pos[npos++] = argv[i];
    }
    if (npos != 2)
        return usage();
    cfg = cfg_load(cfg_path, cerr);
    if (cfg == NULL) {
        fprintf(stderr, "attesta: %s\n", cerr);
        goto out;
    }
    if (cfg_signal_source_find(cfg, pos[0]) == NULL) {
        fprintf(stderr, "attesta: no signal source named \"%s\" in %s\n", pos[0],
                cfg_path != NULL ? cfg_path : "the built-in configuration");
        goto out;
    }
    eng = mdm_engine_new(cfg, err);
    if (eng == NULL) {
        fprintf(stderr, "attesta: %s\n", err);
        goto out;
    }
    struct mdm_vars vars = {.serial = pos[1], .udid = udid};
    if (mdm_lookup_wait(eng, pos[0], &vars, &res, err) != 0) {
        fprintf(stderr, "attesta: %s\n", err);
        goto out;
    }
    print_result(&res);
    rc = res.verdict == MDM_ALLOW ? 0 : 1;
out:
    mdm_result_clear(&res);
    mdm_engine_free(eng);
    cfg_free(cfg);
    return rc;
}
