/*
 * fuzz_template: certificate template rendering (pki_template_render), where
 * configured templates meet device-controlled values: attested strings, MDM
 * attributes and CSR names. Input: up to five templates and two variable
 * values separated by NUL bytes:
 *   CN \0 O \0 SAN-DNS \0 SAN-EMAIL \0 SAN-PERMANENT-ID \0 VALUE-A \0 VALUE-B
 * ${/a} and ${/b} resolve to VALUE-A and VALUE-B, ${/raw} to the whole input
 * (NULs included), anything else has no value.
 */
#include "pki/pki.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { P_CN, P_O, P_DNS, P_EMAIL, P_PERMID, P_A, P_B, P__MAX };

struct vars {
    char *parts[P__MAX];
    const uint8_t *raw;
    size_t rawlen;
};

static int lookup(void *arg, const char *path, const char **val, size_t *len)
{
    const struct vars *v = arg;
    const char *s = NULL;

    if (strcmp(path, "/raw") == 0) {
        *val = (const char *)v->raw;
        *len = v->rawlen;
        return 0;
    }
    if (strcmp(path, "/a") == 0)
        s = v->parts[P_A];
    else if (strcmp(path, "/b") == 0)
        s = v->parts[P_B];
    if (s == NULL)
        return -1;
    *val = s;
    *len = strlen(s);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const eku[] = {"clientAuth", "1.3.6.1.5.5.7.3.2"};
    struct vars v = {{NULL}, data, size};
    struct pki_name_entry subject[2];
    struct pki_san sans[3];
    struct pki_template tpl = {.name = "fuzz", .subject = subject, .sans = sans,
                               .eku = eku, .neku = nitems(eku), .validity = 86400};
    struct pki_issue_req req;
    struct pki_tpl_out out;
    char err[ERR_LEN];
    char *buf;
    size_t n = 0;

    /* NUL-terminate every part: templates are C strings from the config. */
    buf = xmalloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = '\0';
    for (char *p = buf; n < P__MAX && p <= buf + size; p += strlen(p) + 1)
        v.parts[n++] = p;
    if (v.parts[P_CN] != NULL)
        subject[tpl.nsubject++] = (struct pki_name_entry){"CN", v.parts[P_CN]};
    if (v.parts[P_O] != NULL)
        subject[tpl.nsubject++] = (struct pki_name_entry){"O", v.parts[P_O]};
    if (v.parts[P_DNS] != NULL)
        sans[tpl.nsans++] = (struct pki_san){PKI_SAN_DNS, v.parts[P_DNS]};
    if (v.parts[P_EMAIL] != NULL)
        sans[tpl.nsans++] = (struct pki_san){PKI_SAN_EMAIL, v.parts[P_EMAIL]};
    if (v.parts[P_PERMID] != NULL)
        sans[tpl.nsans++] = (struct pki_san){PKI_SAN_PERMANENT_ID, v.parts[P_PERMID]};

    memset(&req, 0, sizeof(req));
    memset(&out, 0, sizeof(out));
    err[0] = '\0';
    if (pki_template_render(&tpl, lookup, &v, 1778371200, &req, &out, err) == 0) {
        /* What pki_issue will read: every rendered string must be a real C string. */
        for (size_t i = 0; i < req.nsubject; i++)
            (void)strlen(req.subject[i].value);
        for (size_t i = 0; i < req.nsans; i++)
            (void)strlen(req.sans[i].value);
    } else if (err[0] == '\0') {
        abort(); /* a refusal must say which value and why */
    }
    pki_tpl_out_clear(&out);
    free(buf);
    return 0;
}
