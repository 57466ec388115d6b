/*
 * fuzz_mdm_template: mdm_template_expand (URLs, headers, bodies and match values
 * of signal sources are templates over attested, device-chosen strings) and
 * mdm_json_path_get (configured JSON paths). Input: TEMPLATE \0 SERIAL \0 UDID;
 * a missing part is NULL. The template text is also used as a JSON path.
 */
#include "mdm/mdm_int.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char doc_text[] =
    "{\"devices\":[{\"serial_number\":\"C02\",\"tags\":[1,2,{\"a\":[[true]]}]},null],"
    "\"data\":{\"results\":[],\"x.y\":1}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cJSON *doc;
    struct mdm_vars vars = {NULL, NULL};
    char err[ERR_LEN];
    char *buf, *parts[3] = {NULL, NULL, NULL}, *out;
    size_t n = 0;

    if (doc == NULL)
        doc = cJSON_Parse(doc_text);
    /* NUL-terminate every part: templates and paths are C strings from the config. */
    buf = xmalloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = '\0';
    for (char *p = buf; n < nitems(parts) && p <= buf + size; p += strlen(p) + 1)
        parts[n++] = p;
    vars.serial = parts[1];
    vars.udid = parts[2];

    err[0] = '\0';
    out = mdm_template_expand(parts[0], &vars, err);
    if (out == NULL && err[0] == '\0')
        abort();
    free(out);
    (void)mdm_json_path_get(doc, parts[0]);
    free(buf);
    return 0;
}
