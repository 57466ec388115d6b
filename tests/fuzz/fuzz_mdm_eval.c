/*
 * fuzz_mdm_eval: an MDM answer is untrusted JSON from a third party. Each
 * input is parsed with mdm_json_parse and, when accepted, evaluated by
 * mdm_evaluate against a few fixed signal sources whose records paths, match
 * field, conditions (every operator) and attributes reach into it the ways
 * real configurations do.
 */
#include "mdm/mdm_int.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *v_true[] = {"true"};
static char *v_num[] = {"10"};
static char *v_str[] = {"Kandji"};
static char *v_list[] = {"macOS", "iOS", "3", "null", "false"};

static struct cfg_mdm_condition conds[] = {
    {"serial_number", CFG_MDM_OP_EXISTS, NULL, 0},
    {"deleted_at", CFG_MDM_OP_NOT_EXISTS, NULL, 0},
    {"mdm_enabled", CFG_MDM_OP_EQUALS, v_true, 1},
    {"agent.name", CFG_MDM_OP_NOT_EQUALS, v_str, 1},
    {"platform", CFG_MDM_OP_IN, v_list, nitems(v_list)},
    {"tags[0]", CFG_MDM_OP_NOT_IN, v_list, nitems(v_list)},
    {"$.supervised", CFG_MDM_OP_IS_TRUE, NULL, 0},
    {"lost_mode.enabled", CFG_MDM_OP_IS_FALSE, NULL, 0},
    {"os.major", CFG_MDM_OP_GT, v_num, 1},
    {"os.major", CFG_MDM_OP_GE, v_num, 1},
    {"battery[1].level", CFG_MDM_OP_LT, v_num, 1},
    {"battery[1].level", CFG_MDM_OP_LE, v_num, 1},
};

static struct cfg_mdm_kv attrs[] = {
    {"user", "user.email"},
    {"blueprint", "blueprint_name"},
    {"whole", "$"},
    {"first_tag", "tags[0]"},
};

static struct cfg_signal_source sources[] = {
    {.name = "list", .records = "$", .match_field = "serial_number",
     .match_equals = "${/attest/serial}", .conditions = conds, .nconditions = nitems(conds),
     .attributes = attrs, .nattributes = nitems(attrs)},
    {.name = "wrapped", .records = "devices", .match_field = "hardware.serial",
     .match_equals = "${/attest/udid}", .conditions = conds, .nconditions = 3,
     .attributes = attrs, .nattributes = 2},
    {.name = "nested", .records = "$.data[0].results", .match_field = "serial_number",
     .match_equals = "${/attest/serial|json}", .conditions = conds + 6, .nconditions = 6},
};

static void result_free(struct mdm_result *res)
{
    /* mdm_result_clear lives with the engine; the evaluator alone only fills these. */
    for (size_t i = 0; i < res->nconds; i++)
        free(res->conds[i].text);
    free(res->conds);
    for (size_t i = 0; i < res->nattrs; i++) {
        free(res->attrs[i].name);
        free(res->attrs[i].value);
    }
    free(res->attrs);
    free(res->reason);
    free(res->record_json);
    memset(res, 0, sizeof(*res));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct mdm_vars vars = {.serial = "C02XK1ABJGH5", .udid = "00008030-001A2D3C0E88802E"};
    char err[ERR_LEN];
    char *copy;
    cJSON *root;

    if (size > BUF_MAX_MDM_RESP)
        return 0;
    /* An exact-size heap copy so ASan sees any read past len. */
    copy = xmalloc(size != 0 ? size : 1);
    memcpy(copy, data, size);
    err[0] = '\0';
    root = mdm_json_parse(copy, size, err);
    if (root == NULL && err[0] == '\0')
        abort();
    for (size_t i = 0; root != NULL && i < nitems(sources); i++) {
        struct mdm_result res;

        memset(&res, 0, sizeof(res));
        err[0] = '\0';
        if (mdm_evaluate(&sources[i], root, &vars, &res, err) != 0 && err[0] == '\0')
            abort();
        result_free(&res);
    }
    cJSON_Delete(root);
    free(copy);
    return 0;
}
