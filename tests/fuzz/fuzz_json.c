/*
 * fuzz_json: acme_json_parse on arbitrary bytes. It is the first parser every
 * JWS body and protected header meets, and it promises to refuse bad UTF-8,
 * deep nesting, duplicate keys and trailing bytes before cJSON recurses.
 */
#include "acme/acme_int.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct acme_problem prob;
    cJSON *root;
    char *copy;

    memset(&prob, 0, sizeof(prob));
    /* An exact-size heap copy so ASan sees any read past len. */
    copy = xmalloc(size != 0 ? size : 1);
    memcpy(copy, data, size);
    root = acme_json_parse(copy, size, &prob);
    if (root != NULL) {
        /* Walking the accepted tree must not trip over what the parser let through. */
        char *out = cJSON_PrintUnformatted(root);
        free(out);
        (void)acme_json_str(root, "protected");
        cJSON_Delete(root);
    } else if (prob.type == NULL) {
        abort(); /* the contract: NULL always comes with a problem */
    }
    free(copy);
    return 0;
}
