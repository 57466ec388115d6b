/*
 * fuzz_jws: the full request-authentication path on an arbitrary body:
 * acme_jws_parse (outer and keyChange-inner flavours), then the embedded JWK
 * import and signature verification, exactly as the router runs them.
 * An input holding NUL bytes is also read as PROTECTED \0 PAYLOAD \0 SIGNATURE
 * and wrapped into a flattened JWS here, so mutations land inside the
 * protected header instead of only breaking its base64url.
 */
#include "acme/acme_int.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run(const unsigned char *body, size_t len, unsigned flags)
{
    struct acme_jws jws;
    struct acme_problem prob;

    memset(&prob, 0, sizeof(prob));
    if (acme_jws_parse_ex(body, len, flags, &jws, &prob) != 0) {
        if (prob.type == NULL)
            abort(); /* failure must say why */
        acme_jws_clear(&jws);
        return;
    }
    if (jws.jwk != NULL && acme_jws_key_from_jwk(&jws, &prob) == 0)
        (void)acme_jws_verify(&jws, jws.key, &prob);
    acme_jws_clear(&jws);
}

/* Builds {"protected":b64u(p),"payload":b64u(q),"signature":b64u(r)} from p\0q\0r. */
static void run_parts(const uint8_t *data, size_t size)
{
    const uint8_t *parts[3] = {data, NULL, NULL}, *end = data + size;
    size_t lens[3] = {0, 0, 0}, n = 1;
    char *enc[3];
    char *body;

    for (const uint8_t *p = data; p < end && n < 3; p++) {
        if (*p == '\0')
            parts[n++] = p + 1;
    }
    if (n < 2)
        return;
    for (size_t i = 0; i < 3; i++) {
        const uint8_t *stop = i + 1 < n ? parts[i + 1] - 1 : end;
        if (parts[i] == NULL)
            parts[i] = stop = end;
        lens[i] = (size_t)(stop - parts[i]);
        enc[i] = b64u_encode(parts[i], lens[i]);
    }
    body = xasprintf("{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}", enc[0],
                     enc[1], enc[2]);
    run((const unsigned char *)body, strlen(body), 0);
    run((const unsigned char *)body, strlen(body), ACME_JWS_INNER);
    free(body);
    for (size_t i = 0; i < 3; i++)
        free(enc[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *copy;

    /* An exact-size heap copy so ASan sees any read past len. Both rule sets run on every
     * input so seeds stay plain JWS bodies. */
    copy = xmalloc(size != 0 ? size : 1);
    memcpy(copy, data, size);
    run(copy, size, 0);
    run(copy, size, ACME_JWS_INNER);
    free(copy);
    run_parts(data, size);
    return 0;
}
