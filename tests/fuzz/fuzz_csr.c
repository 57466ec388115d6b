/*
 * fuzz_csr: pki_csr_parse on arbitrary DER with every key type allowed, the
 * finalize path's first contact with client bytes. Accepted requests have
 * their names walked the way policy checks will read them.
 */
#include "pki/pki.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(char *const *v, size_t n)
{
    /* Each name must be a real NUL-terminated string. */
    for (size_t i = 0; i < n; i++)
        if (v[i] == NULL || strlen(v[i]) > 1u << 16)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pki_csr csr;
    char err[ERR_LEN];
    unsigned char *copy;
    char thumb[44];

    copy = xmalloc(size != 0 ? size : 1);
    memcpy(copy, data, size);
    memset(&csr, 0, sizeof(csr));
    err[0] = '\0';
    if (pki_csr_parse(copy, size, (1u << PKI_KEY__MAX) - 1, &csr, err) == 0) {
        if (csr.key == NULL || csr.req == NULL)
            abort();
        if (csr.cn != NULL)
            (void)strlen(csr.cn);
        walk(csr.dns, csr.ndns);
        walk(csr.ips, csr.nips);
        walk(csr.emails, csr.nemails);
        walk(csr.uris, csr.nuris);
        walk(csr.perm_ids, csr.nperm_ids);
        (void)pki_jwk_thumbprint(csr.key, thumb);
    } else if (err[0] == '\0') {
        abort(); /* a refusal must carry a badCSR detail */
    }
    pki_csr_clear(&csr);
    free(copy);
    return 0;
}
