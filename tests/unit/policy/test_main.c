/* Runs every policy unit test group; the exit status counts the failures. */
#include "test_pol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char tp_sources_yaml[] =
    "signal_sources:\n"
    "  kandji:\n"
    "    type: http\n"
    "    request: {url: \"https://example.api.kandji.io/api/v1/devices\"}\n"
    "    match: {field: serial_number}\n"
    "    attributes: {blueprint: blueprint_name, user_email: user.email}\n"
    "  jamf:\n"
    "    type: http\n"
    "    request: {url: \"https://jamf.example.com/api\"}\n"
    "    match: {field: serial}\n"
    "    attributes: {site: site.name}\n";

struct cfg *tp_load(const char *text, char err[CFG_ERR_LEN])
{
    char dir[] = "/tmp/attesta-pol-XXXXXX", path[64];
    struct cfg *c;
    FILE *f;
    if (mkdtemp(dir) == NULL || chdir(dir) != 0)
        return NULL;
    f = fopen("config.yaml", "wb");
    if (f == NULL)
        return NULL;
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    c = cfg_load("config.yaml", err);
    unlink("config.yaml");
    if (chdir("/tmp") != 0 || rmdir(dir) != 0)
        snprintf(path, sizeof(path), "%s", dir); /* left behind; harmless */
    return c;
}

struct cfg *tp_load_ok(const char *text)
{
    char err[CFG_ERR_LEN] = "";
    char *all = xasprintf("%s%s", tp_sources_yaml, text);
    struct cfg *c = tp_load(all, err);
    if (c == NULL)
        print_error("config did not load: %s\n", err);
    free(all);
    assert_non_null(c);
    return c;
}

int main(void)
{
    int failed = 0;
    failed += test_pol_pred_run();
    failed += test_pol_admit_run();
    failed += test_pol_config_run();
    failed += test_pol_template_run();
    return failed == 0 ? 0 : 1;
}
