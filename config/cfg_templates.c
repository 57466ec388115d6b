/*
 * config section `templates`: certificate templates, keyed by name. A
 * template shapes an issued certificate (validity, subject entries in order,
 * SANs, key usage, extended key usage, accepted key types, renewal window)
 * with ${/path} variables filled at issuance by policy/ and pki/. Everything
 * that can be wrong is caught here at load time: unknown variables, MDM
 * attributes the signal source does not collect, field names OpenSSL would
 * refuse; and, per policy, variables the policy can never provide.
 */
#include "config/cfg_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TPL_MAX_ITEMS 32 /* subject entries, or SANs, per template */
#define TPL_VAR_MAX 128  /* bytes of one variable path */

const char *const cfg_tpl_vars[] = {
    "/csr/subject/commonname", "/csr/san/dnsname", "/csr/san/email", "/csr/san/rfc822name",
    "/csr/san/uri", "/csr/san/othername", "/attest/serial", "/attest/udid", "/attest/os_version",
    "/attest/sepos_version", "/device/serial", "/device/udid", "/device/identifier",
    "/policy/name", "/account/eab_kid", NULL,
};

/* Bit i is RFC 5280 KeyUsage bit i, as PKI_KU_* (pki/pki.h). */
static const char *const ku_names[] = {"digitalSignature", "nonRepudiation", "keyEncipherment",
                                       "dataEncipherment", "keyAgreement", NULL};
/* Mirrors enum pki_key_type, as in cfg_policies.c. */
static const char *const key_names[] = {"P-256", "P-384", "RSA-2048", "RSA-3072",
                                        "RSA-4096", "Ed25519", NULL};
/* Indexed by enum cfg_san_kind. */
static const char *const san_names[] = {"dns", "ip", "email", "uri", "permanent_identifier",
                                        "upn", "hardware_module_name", NULL};
_Static_assert(nitems(san_names) == CFG_SAN__MAX + 1, "san_names[] mirrors enum cfg_san_kind");
/* OpenSSL short names pki/ resolves with OBJ_txt2obj. */
static const char *const eku_names[] = {"serverAuth", "clientAuth", "codeSigning",
                                        "emailProtection", "timeStamping", "OCSPSigning",
                                        "ipsecIKE", "msSmartcardLogin", NULL};
static const char *const field_names[] = {"CN", "O", "OU", "C", "L", "ST", "serialNumber",
                                          "emailAddress", "UID", NULL};

static int parse_subject(struct cfg_ctx *ctx, const struct cfg_key *key,
                         const struct cfg_node *node, const char *path, void *base);
static int parse_san(struct cfg_ctx *ctx, const struct cfg_key *key, const struct cfg_node *node,
                     const char *path, void *base);
static int parse_renewal(struct cfg_ctx *ctx, const struct cfg_key *key,
                         const struct cfg_node *node, const char *path, void *base);

#define TP struct cfg_template
static const struct cfg_key template_keys[] = {
    {.name = "validity", .type = CFG_T_DURATION, .min = 60, .max = 3650 * 86400,
     CFG_FIELD(TP, validity)},
    {.name = "subject", .type = CFG_T_CUSTOM, .parse = parse_subject},
    {.name = "san", .type = CFG_T_CUSTOM, .parse = parse_san},
    {.name = "key_usage", .type = CFG_T_FLAGS, .min = 1, .names = ku_names,
     CFG_FIELD(TP, key_usage)},
    {.name = "extended_key_usage", .type = CFG_T_LIST, CFG_FIELD(TP, eku),
     .aux = offsetof(TP, neku)},
    {.name = "key_types", .type = CFG_T_FLAGS, .min = 1, .names = key_names,
     CFG_FIELD(TP, key_types)},
    {.name = "renewal_window", .type = CFG_T_CUSTOM, .parse = parse_renewal},
    {0},
};

/* "2.5.4.3": digits separated by single dots, at least two arcs, bounded. */
static bool is_dotted_oid(const char *s)
{
    size_t n = strlen(s), dots = 0;
    if (n == 0 || n > 64 || !isdigit((unsigned char)s[0]) || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (s[i + 1] == '.')
                return false;
            dots++;
        } else if (!isdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return dots >= 1;
}

typedef int var_fn(void *arg, const char *var);

/*
 * Calls fn for each ${path} in text ("$$" is a literal "$", a "$" not before
 * "{" is literal too, as pki_template_render reads them). -1 with *why set
 * when the syntax is wrong, or when fn returns -1 (why left as fn set it).
 */
static int each_var(const char *text, var_fn *fn, void *arg, const char **why)
{
    char var[TPL_VAR_MAX];
    const char *p = text;
    while (*p != '\0') {
        if (p[0] != '$' || (p[1] != '{' && p[1] != '$')) {
            p++;
            continue;
        }
        if (p[1] == '$') {
            p += 2;
            continue;
        }
        const char *end = strchr(p + 2, '}');
        if (end == NULL) {
            *why = "unterminated ${ (write $$ for a literal $)";
            return -1;
        }
        size_t n = (size_t)(end - (p + 2));
        if (n == 0 || n >= sizeof(var)) {
            *why = n == 0 ? "empty ${}" : "variable name too long";
            return -1;
        }
        memcpy(var, p + 2, n);
        var[n] = '\0';
        if (fn(arg, var) != 0)
            return -1;
        p = end + 1;
    }
    return 0;
}

struct var_check {
    struct cfg_ctx *ctx;
    unsigned line;
    const char *path;
};

static bool source_has_attr(const struct cfg_signal_source *src, const char *attr)
{
    for (size_t i = 0; i < src->nattributes; i++) {
        if (strcmp(src->attributes[i].name, attr) == 0)
            return true;
    }
    return false;
}

/* Load-time check of one variable against cfg_tpl_vars and the signal sources. */
static int check_one_var(void *arg, const char *var)
{
    struct var_check *vc = arg;
    char esc[160], src[TPL_VAR_MAX];
    const char *slash;
    const struct cfg_signal_source *ss;
    log_escape(var, TPL_VAR_MAX, esc, sizeof(esc));
    if (str_index(cfg_tpl_vars, SIZE_MAX, var) >= 0)
        return 0;
    if (strchr(var, '|') != NULL)
        return cfg_fail(vc->ctx, vc->line, vc->path,
                        "${%s}: filters are not available in certificate templates", esc);
    if (strncmp(var, "/mdm/", 5) != 0)
        return cfg_fail(vc->ctx, vc->line, vc->path,
                        "unknown variable ${%s} (expected /csr/..., /attest/..., /device/..., "
                        "/policy/name, /account/eab_kid or /mdm/<source>/<attribute>)",
                        esc);
    slash = strchr(var + 5, '/');
    if (slash == NULL || slash == var + 5 || slash[1] == '\0' || strchr(slash + 1, '/') != NULL)
        return cfg_fail(vc->ctx, vc->line, vc->path,
                        "${%s}: expected /mdm/<source>/<attribute>", esc);
    snprintf(src, sizeof(src), "%.*s", (int)(slash - (var + 5)), var + 5);
    ss = cfg_signal_source_find(vc->ctx->cfg, src);
    if (ss == NULL)
        return cfg_fail(vc->ctx, vc->line, vc->path, "${%s}: unknown signal source", esc);
    if (!source_has_attr(ss, slash + 1))
        return cfg_fail(vc->ctx, vc->line, vc->path,
                        "${%s}: signal source %s collects no such attribute (add it under "
                        "signal_sources.%s.attributes)",
                        esc, ss->name, ss->name);
    return 0;
}

static int check_text(struct cfg_ctx *ctx, const struct cfg_node *n, const char *path)
{
    struct var_check vc = {ctx, n->line, path};
    const char *why = NULL;
    if (each_var(n->str, check_one_var, &vc, &why) != 0)
        return why != NULL ? cfg_fail(ctx, n->line, path, "%s", why) : -1;
    return 0;
}

/* A scalar template value: non-empty, at most CFG_MAX_SCALAR, variables valid. */
static int take_value(struct cfg_ctx *ctx, const struct cfg_node *n, const char *path,
                      char **out)
{
    if (n->type != CFG_NODE_SCALAR || n->str[0] == '\0')
        return cfg_fail(ctx, n->line, path, "expected a non-empty string");
    if (check_text(ctx, n, path) != 0)
        return -1;
    *out = xstrdup(n->str);
    return 0;
}

static int add_subject(struct cfg_ctx *ctx, struct cfg_template *t, const char *field,
                       unsigned fline, const struct cfg_node *v, const char *path)
{
    char esc[96];
    if (str_index(field_names, SIZE_MAX, field) < 0 && !is_dotted_oid(field))
        return cfg_fail(ctx, fline, path,
                        "unknown subject field \"%s\" (expected CN, O, OU, C, L, ST, "
                        "serialNumber, emailAddress, UID or a dotted OID)",
                        log_escape(field, 64, esc, sizeof(esc)));
    if (t->nsubject >= TPL_MAX_ITEMS)
        return cfg_fail(ctx, fline, path, "more than %d subject entries", TPL_MAX_ITEMS);
    struct cfg_tpl_item *it = &t->subject[t->nsubject];
    if (take_value(ctx, v, path, &it->value) != 0)
        return -1;
    it->field = xstrdup(field);
    t->nsubject++;
    return 0;
}

/* An ordered list of one-key maps ([{CN: x}, {OU: y}, {OU: z}]) or one map ({CN: x, O: y}). */
static int parse_subject(struct cfg_ctx *ctx, const struct cfg_key *key,
                         const struct cfg_node *node, const char *path, void *base)
{
    struct cfg_template *t = base;
    char ipath[CFG_PATH_LEN + 24], fpath[CFG_PATH_LEN + 8];
    if (t->subject == NULL)
        t->subject = xcalloc(TPL_MAX_ITEMS, sizeof(*t->subject));
    if (node->type == CFG_NODE_MAP) {
        for (size_t i = 0; i < node->n; i++) {
            cfg_path_join(fpath, path, node->keys[i]);
            if (add_subject(ctx, t, node->keys[i], node->key_lines[i], node->kids[i], fpath) != 0)
                return -1;
        }
        return 0;
    }
    if (node->type != CFG_NODE_SEQ)
        return cfg_fail(ctx, node->line, path, "expected a list of {FIELD: value} maps");
    for (size_t i = 0; i < node->n; i++) {
        const struct cfg_node *m = node->kids[i];
        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        if (m->type != CFG_NODE_MAP || m->n != 1)
            return cfg_fail(ctx, m->line, ipath, "expected one {FIELD: value} map");
        cfg_path_join(fpath, ipath, m->keys[0]);
        if (add_subject(ctx, t, m->keys[0], m->key_lines[0], m->kids[0], fpath) != 0)
            return -1;
    }
    return 0;
}

static int add_san(struct cfg_ctx *ctx, struct cfg_template *t, unsigned kind,
                   const struct cfg_node *v, const char *path)
{
    if (t->nsans >= TPL_MAX_ITEMS)
        return cfg_fail(ctx, v->line, path, "more than %d SANs", TPL_MAX_ITEMS);
    struct cfg_tpl_item *it = &t->sans[t->nsans];
    if (take_value(ctx, v, path, &it->value) != 0)
        return -1;
    it->san = kind;
    t->nsans++;
    return 0;
}

/* {dns: [..], email: [..], uri: [..], ip: [..], permanent_identifier: x, upn: x,
 * hardware_module_name: x}; each a string or a list of strings. */
static int parse_san(struct cfg_ctx *ctx, const struct cfg_key *key, const struct cfg_node *node,
                     const char *path, void *base)
{
    struct cfg_template *t = base;
    char kpath[CFG_PATH_LEN], ipath[CFG_PATH_LEN + 24];
    if (node->type != CFG_NODE_MAP)
        return cfg_fail(ctx, node->line, path, "expected a map of dns|ip|email|uri|"
                                                "permanent_identifier|upn|hardware_module_name");
    if (t->sans == NULL)
        t->sans = xcalloc(TPL_MAX_ITEMS, sizeof(*t->sans));
    for (size_t i = 0; i < node->n; i++) {
        const struct cfg_node *v = node->kids[i];
        unsigned kind = 0;
        cfg_path_join(kpath, path, node->keys[i]);
        while (san_names[kind] != NULL && strcmp(san_names[kind], node->keys[i]) != 0)
            kind++;
        if (san_names[kind] == NULL)
            return cfg_fail(ctx, node->key_lines[i], kpath,
                            "unknown SAN type (expected dns, ip, email, uri, "
                            "permanent_identifier, upn or hardware_module_name)");
        if (v->type != CFG_NODE_SEQ) {
            if (add_san(ctx, t, kind, v, kpath) != 0)
                return -1;
            continue;
        }
        for (size_t j = 0; j < v->n; j++) {
            snprintf(ipath, sizeof(ipath), "%s[%zu]", kpath, j);
            if (add_san(ctx, t, kind, v->kids[j], ipath) != 0)
                return -1;
        }
    }
    return 0;
}

/* "30d" (a duration before notAfter) or "33%" (the last third of the lifetime). */
static int parse_renewal(struct cfg_ctx *ctx, const struct cfg_key *key,
                         const struct cfg_node *node, const char *path, void *base)
{
    static const char msg[] = "expected a duration such as 30d or a percentage from 1% to 99%";
    struct cfg_template *t = base;
    char num[16];
    long long pct;
    int64_t secs;
    size_t n = node->type == CFG_NODE_SCALAR ? strlen(node->str) : 0;
    if (n == 0 || !isdigit((unsigned char)node->str[0]))
        return cfg_fail(ctx, node->line, path, "%s", msg);
    if (node->str[n - 1] == '%') {
        if (n - 1 >= sizeof(num))
            return cfg_fail(ctx, node->line, path, "%s", msg);
        memcpy(num, node->str, n - 1);
        num[n - 1] = '\0';
        if (str_to_ll(num, 1, 99, &pct) != 0)
            return cfg_fail(ctx, node->line, path, "%s", msg);
        t->renewal_percent = (int)pct;
        t->renewal_window = 0;
        return 0;
    }
    if (clk_parse_duration(node->str, &secs) != 0 || secs < 60 || secs > 3650 * 86400LL)
        return cfg_fail(ctx, node->line, path, "%s", msg);
    t->renewal_window = secs;
    t->renewal_percent = 0;
    return 0;
}

static int template_check(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                          void *base)
{
    const struct cfg_template *t = base;
    const struct cfg_node *list = cfg_node_get(node, "extended_key_usage");
    char kpath[CFG_PATH_LEN], ipath[CFG_PATH_LEN + 24], esc[96];
    unsigned line = node != NULL ? node->line : 0;
    cfg_path_join(kpath, path, "extended_key_usage");
    for (size_t i = 0; i < t->neku; i++) {
        if (str_index(eku_names, SIZE_MAX, t->eku[i]) >= 0 || is_dotted_oid(t->eku[i]))
            continue;
        snprintf(ipath, sizeof(ipath), "%s[%zu]", kpath, i);
        return cfg_fail(ctx, list != NULL && i < list->n ? list->kids[i]->line : line, ipath,
                        "unknown extended key usage \"%s\" (expected serverAuth, clientAuth, "
                        "codeSigning, emailProtection, timeStamping, OCSPSigning, ipsecIKE, "
                        "msSmartcardLogin or a dotted OID)",
                        log_escape(t->eku[i], 64, esc, sizeof(esc)));
    }
    if (t->nsubject == 0 && t->nsans == 0)
        return cfg_fail(ctx, line, path, "a template needs a subject entry or a SAN");
    if (t->validity != 0 && t->renewal_window >= t->validity) {
        cfg_path_join(kpath, path, "renewal_window");
        return cfg_fail(ctx, cfg_node_key_line(node, "renewal_window"), kpath,
                        "renewal_window must be shorter than validity");
    }
    return 0;
}

static void template_free(void *base)
{
    struct cfg_template *t = base;
    for (size_t i = 0; t->subject != NULL && i < t->nsubject; i++) {
        free(t->subject[i].field);
        free(t->subject[i].value);
    }
    for (size_t i = 0; t->sans != NULL && i < t->nsans; i++)
        free(t->sans[i].value);
    free(t->subject);
    free(t->sans);
    t->subject = NULL;
    t->sans = NULL;
    t->nsubject = t->nsans = 0;
}

const struct cfg_template *cfg_template_find(const struct cfg *cfg, const char *name)
{
    for (size_t i = 0; cfg != NULL && name != NULL && i < cfg->ntemplates; i++) {
        if (strcmp(cfg->templates[i].name, name) == 0)
            return &cfg->templates[i];
    }
    return NULL;
}

struct pol_link {
    struct cfg_ctx *ctx;
    const struct cfg_policy *p;
    const struct cfg_template *t;
    unsigned line;
    const char *path;
};

static bool policy_consults(const struct cfg_policy *p, const char *src, size_t len)
{
    for (size_t i = 0; i < p->nsignal_sources; i++) {
        if (strlen(p->signal_sources[i]) == len && strncmp(p->signal_sources[i], src, len) == 0)
            return true;
    }
    return false;
}

/* A variable the policy can never fill would refuse every issuance: say so at load time. */
/*
 * ${/device/identifier} is the order value as ordered. In a HardwareModuleName it
 * must carry a hardware type OID, which a permanent-identifier value lacks (every
 * issuance would fail); in a PermanentIdentifier the tail becomes the assigner,
 * which a hardware-module value's type OID is not. A policy that accepts the
 * other identifier type would do one of the two, so it is refused at load.
 */
static bool device_identifier_mismatch(const struct cfg_tpl_item *san,
                                       const struct cfg_policy *p, const char **why)
{
    if (strstr(san->value, "${/device/identifier}") == NULL)
        return false;
    if (san->san == CFG_SAN_HW_MODULE && (p->identifiers & CFG_ID_PERMANENT)) {
        *why = "hardware_module_name from ${/device/identifier} needs a policy without "
               "permanent-identifier";
        return true;
    }
    if (san->san == CFG_SAN_PERMANENT_ID && (p->identifiers & CFG_ID_HARDWARE)) {
        *why = "permanent_identifier from ${/device/identifier} needs a policy without "
               "hardware-module (use ${/device/serial})";
        return true;
    }
    return false;
}

static int link_var(void *arg, const char *var)
{
    struct pol_link *l = arg;
    char esc[160];
    log_escape(var, TPL_VAR_MAX, esc, sizeof(esc));
    if (strncmp(var, "/mdm/", 5) == 0) {
        const char *slash = strchr(var + 5, '/');
        size_t len = slash != NULL ? (size_t)(slash - (var + 5)) : 0;
        if (!policy_consults(l->p, var + 5, len))
            return cfg_fail(l->ctx, l->line, l->path,
                            "template %s uses ${%s} but the policy does not list signal source "
                            "%.*s in signal_sources",
                            l->t->name, esc, (int)len, var + 5);
    }
    if ((strncmp(var, "/attest/", 8) == 0 || strncmp(var, "/device/", 8) == 0) &&
        !(l->p->challenges & CFG_CH_DEVICE_ATTEST01))
        return cfg_fail(l->ctx, l->line, l->path,
                        "template %s uses ${%s}, which only device-attest-01 provides", l->t->name,
                        esc);
    return 0;
}

int cfg_policy_check_template(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                              const struct cfg_policy *p)
{
    char kpath[CFG_PATH_LEN], esc[96];
    const char *why = NULL;
    struct pol_link l = {ctx, p, NULL, cfg_node_key_line(node, "template"), kpath};
    int64_t validity;
    if (p->template == NULL)
        return 0;
    cfg_path_join(kpath, path, "template");
    l.t = cfg_template_find(ctx->cfg, p->template);
    if (l.t == NULL)
        return cfg_fail(ctx, l.line, kpath, "unknown template \"%s\"",
                        log_escape(p->template, 64, esc, sizeof(esc)));
    for (size_t i = 0; i < l.t->nsubject; i++) {
        if (each_var(l.t->subject[i].value, link_var, &l, &why) != 0)
            return -1;
    }
    for (size_t i = 0; i < l.t->nsans; i++) {
        if (each_var(l.t->sans[i].value, link_var, &l, &why) != 0)
            return -1;
        if (device_identifier_mismatch(&l.t->sans[i], p, &why))
            return cfg_fail(ctx, l.line, kpath, "template %s: %s", l.t->name, why);
    }
    if (l.t->key_types != 0 && (l.t->key_types & p->key_types) == 0)
        return cfg_fail(ctx, l.line, kpath,
                        "template %s allows no key type that the policy's key_types accept",
                        l.t->name);
    validity = l.t->validity != 0 ? l.t->validity : p->cert_validity;
    if (l.t->renewal_window >= validity)
        return cfg_fail(ctx, l.line, kpath,
                        "template %s: renewal_window is not shorter than the validity", l.t->name);
    return 0;
}

const struct cfg_section cfg_section_templates = {
    .name = "templates",
    .keys = template_keys,
    .keyed = true,
    .offset = offsetof(struct cfg, templates),
    .count_off = offsetof(struct cfg, ntemplates),
    .elem_size = sizeof(struct cfg_template),
    .name_off = offsetof(struct cfg_template, name),
    .free_entry = template_free,
    .check = template_check,
};
