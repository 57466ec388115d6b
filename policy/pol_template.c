/*
 * pol_template.c: template variables and rendering. Resolves ${/path}
 * variables from what the caller gathered (CSR, attestation, MDM, policy,
 * account) and converts a config template to the pki/ form, so pki/ needs
 * no config/ and config/ no OpenSSL.
 */
#include "policy/pol_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* config/ mirrors pki/ enums and bits by position; keep them in step. */
_Static_assert(CFG_SAN_DNS == (int)PKI_SAN_DNS && CFG_SAN_IP == (int)PKI_SAN_IP &&
                   CFG_SAN_EMAIL == (int)PKI_SAN_EMAIL && CFG_SAN_URI == (int)PKI_SAN_URI &&
                   CFG_SAN_PERMANENT_ID == (int)PKI_SAN_PERMANENT_ID &&
                   CFG_SAN_UPN == (int)PKI_SAN_UPN && CFG_SAN__MAX == (int)PKI_SAN__MAX,
               "enum cfg_san_kind mirrors enum pki_san_type");
_Static_assert(PKI_KU_DIGITAL_SIGNATURE == 1u << 0 && PKI_KU_NON_REPUDIATION == 1u << 1 &&
                   PKI_KU_KEY_ENCIPHERMENT == 1u << 2 && PKI_KU_DATA_ENCIPHERMENT == 1u << 3 &&
                   PKI_KU_KEY_AGREEMENT == 1u << 4,
               "templates.key_usage names are in PKI_KU_* bit order");

static const char *first(char *const *v, size_t n)
{
    return v != NULL && n > 0 ? v[0] : NULL;
}

static const char *csr_var(const struct pki_csr *csr, const char *name)
{
    if (csr == NULL)
        return NULL;
    if (strcmp(name, "subject/commonname") == 0)
        return csr->cn;
    if (strcmp(name, "san/dnsname") == 0)
        return first(csr->dns, csr->ndns);
    if (strcmp(name, "san/email") == 0 || strcmp(name, "san/rfc822name") == 0)
        return first(csr->emails, csr->nemails);
    if (strcmp(name, "san/uri") == 0)
        return first(csr->uris, csr->nuris);
    if (strcmp(name, "san/othername") == 0)
        return first(csr->perm_ids, csr->nperm_ids);
    return NULL;
}

static const char *attest_var(const struct att_claims *c, const char *name)
{
    if (c == NULL)
        return NULL;
    if (strcmp(name, "serial") == 0)
        return c->serial;
    if (strcmp(name, "udid") == 0)
        return c->udid;
    if (strcmp(name, "os_version") == 0)
        return c->os_version;
    if (strcmp(name, "sepos_version") == 0)
        return c->sepos_version;
    return NULL;
}

/* "/mdm/<source>/<attribute>": the attribute of that source's result. */
static const char *mdm_var(const struct pol_input *in, const char *rest)
{
    char source[128];
    const char *slash = strchr(rest, '/');
    size_t n = slash != NULL ? (size_t)(slash - rest) : 0;
    if (n == 0 || n >= sizeof(source))
        return NULL;
    memcpy(source, rest, n);
    source[n] = '\0';
    return pol_mdm_attr(pol_mdm_find(in, source), slash + 1);
}

int pol_var_get(const struct pol_input *in, const char *path, const char **val, size_t *len)
{
    const char *v = NULL;
    if (in == NULL || path == NULL)
        return -1;
    if (strncmp(path, "/csr/", 5) == 0)
        v = csr_var(in->csr, path + 5);
    else if (strncmp(path, "/attest/", 8) == 0)
        v = attest_var(in->claims, path + 8);
    else if (strcmp(path, "/device/serial") == 0 || strcmp(path, "/device/udid") == 0)
        v = attest_var(in->claims, path + 8);
    else if (strcmp(path, "/device/identifier") == 0)
        v = in->identifier;
    else if (strncmp(path, "/mdm/", 5) == 0)
        v = mdm_var(in, path + 5);
    else if (strcmp(path, "/policy/name") == 0)
        v = in->policy;
    else if (strcmp(path, "/account/eab_kid") == 0)
        v = in->eab_kid;
    if (v == NULL || v[0] == '\0')
        return -1;
    *val = v;
    *len = strlen(v);
    return 0;
}

/* Adapts pol_var_get to pki_var_fn. */
static int lookup(void *arg, const char *path, const char **val, size_t *len)
{
    return pol_var_get(arg, path, val, len);
}

int pol_render(const struct cfg *cfg, const struct cfg_policy *pol, const struct pol_input *in,
               int64_t not_before, struct pki_issue_req *req, struct pol_rendered *store,
               char err[ERR_LEN])
{
    int rc = -1;
    struct pol_input local = {0};
    struct pki_template pt = {0};
    const struct cfg_template *t = pol != NULL ? cfg_template_find(cfg, pol->template) : NULL;
    memset(store, 0, sizeof(*store));
    if (t == NULL) {
        snprintf(err, ERR_LEN, "policy %s has no certificate template",
                 pol != NULL ? pol->name : "?");
        goto out;
    }
    if (in != NULL)
        local = *in;
    local.policy = pol->name;
    store->subject = xcalloc(t->nsubject + 1, sizeof(*store->subject));
    store->sans = xcalloc(t->nsans + 1, sizeof(*store->sans));
    for (size_t i = 0; i < t->nsubject; i++) {
        store->subject[i].field = t->subject[i].field;
        store->subject[i].value = t->subject[i].value;
    }
    for (size_t i = 0; i < t->nsans; i++) {
        store->sans[i].type = (enum pki_san_type)t->sans[i].san;
        store->sans[i].value = t->sans[i].value;
    }
    pt.name = t->name;
    pt.subject = store->subject;
    pt.nsubject = t->nsubject;
    pt.sans = store->sans;
    pt.nsans = t->nsans;
    pt.key_usage = t->key_usage;
    pt.eku = (const char *const *)t->eku;
    pt.neku = t->neku;
    pt.validity = pol_cert_validity(cfg, pol);
    if (pki_template_render(&pt, lookup, &local, not_before, req, &store->out, err) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        pol_rendered_clear(store);
    return rc;
}

void pol_rendered_clear(struct pol_rendered *store)
{
    if (store == NULL)
        return;
    pki_tpl_out_clear(&store->out);
    free(store->subject);
    free(store->sans);
    memset(store, 0, sizeof(*store));
}
