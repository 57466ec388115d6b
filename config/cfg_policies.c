/*
 * config section `enrollment_policies`: one ACME directory per policy, keyed
 * by name. A policy says which identifier types and challenges it accepts,
 * whether EAB is required, which CA signs, for how long, and which CSR key
 * types are allowed. The device-attest-01 rules live here because they are
 * about how identifiers and challenges combine.
 */
#include "config/cfg_int.h"

#include <stdio.h>
#include <string.h>

static const char *const id_names[] = {"dns", "ip", "permanent-identifier", "hardware-module",
                                       NULL};
static const char *const ch_names[] = {"http-01", "dns-01", "tls-alpn-01", "device-attest-01",
                                       NULL};
/* Mirrors enum pki_key_type (pki/pki.h): bit i is 1u << PKI_KEY_* of the same index. */
static const char *const key_names[] = {"P-256",    "P-384",    "RSA-2048", "RSA-3072",
                                        "RSA-4096", "Ed25519",  NULL};
_Static_assert(CFG_ID_DNS == 1u << 0 && CFG_ID_IP == 1u << 1 && CFG_ID_PERMANENT == 1u << 2 &&
                   CFG_ID_HARDWARE == 1u << 3,
               "id_names[] mirrors CFG_ID_*");
_Static_assert(CFG_CH_HTTP01 == 1u << 0 && CFG_CH_DNS01 == 1u << 1 &&
                   CFG_CH_TLSALPN01 == 1u << 2 && CFG_CH_DEVICE_ATTEST01 == 1u << 3,
               "ch_names[] mirrors CFG_CH_*");

/* Indexed by enum cfg_approval and enum cfg_supersede. */
static const char *const approval_names[] = {"none", "manual", NULL};
static const char *const supersede_names[] = {"keep", "revoke", NULL};

static const struct cfg_key policy_keys[] = {
    {.name = "identifiers", .type = CFG_T_FLAGS, .min = 1, .names = id_names,
     .flags = CFG_K_REQUIRED, CFG_FIELD(struct cfg_policy, identifiers)},
    {.name = "challenges", .type = CFG_T_FLAGS, .min = 1, .names = ch_names,
     .flags = CFG_K_REQUIRED, CFG_FIELD(struct cfg_policy, challenges)},
    {.name = "eab_required", .type = CFG_T_BOOL, .def = "false",
     CFG_FIELD(struct cfg_policy, eab_required)},
    {.name = "ca", .type = CFG_T_STRING, CFG_FIELD(struct cfg_policy, ca)},
    {.name = "validity", .type = CFG_T_DURATION, .def = "90d", .min = 60, .max = 3650 * 86400,
     CFG_FIELD(struct cfg_policy, cert_validity)},
    {.name = "key_types", .type = CFG_T_FLAGS, .min = 1, .names = key_names,
     .def = "[P-256, P-384, RSA-2048, RSA-3072, RSA-4096]",
     CFG_FIELD(struct cfg_policy, key_types)},
    {.name = "signal_sources", .type = CFG_T_LIST, CFG_FIELD(struct cfg_policy, signal_sources),
     .aux = offsetof(struct cfg_policy, nsignal_sources)},
    /* Checked against device_roles and templates by cfg_roles.c and cfg_templates.c. */
    {.name = "roles", .type = CFG_T_LIST, CFG_FIELD(struct cfg_policy, roles),
     .aux = offsetof(struct cfg_policy, nroles)},
    {.name = "template", .type = CFG_T_STRING, CFG_FIELD(struct cfg_policy, template)},
    {.name = "approval", .type = CFG_T_ENUM, .names = approval_names, .def = "none",
     CFG_FIELD(struct cfg_policy, approval)},
    {.name = "supersede", .type = CFG_T_ENUM, .names = supersede_names, .def = "keep",
     CFG_FIELD(struct cfg_policy, supersede)},
    {0},
};

static int check_combination(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                             const struct cfg_policy *p)
{
    char kpath[CFG_PATH_LEN];
    const unsigned device_ids = CFG_ID_PERMANENT | CFG_ID_HARDWARE;
    if (p->challenges & CFG_CH_DEVICE_ATTEST01) {
        cfg_path_join(kpath, path, "challenges");
        if (p->identifiers & (CFG_ID_DNS | CFG_ID_IP))
            return cfg_fail(ctx, cfg_node_key_line(node, "challenges"), kpath,
                            "device-attest-01 cannot validate identifiers dns or ip");
        if (p->challenges != CFG_CH_DEVICE_ATTEST01)
            return cfg_fail(ctx, cfg_node_key_line(node, "challenges"), kpath,
                            "device-attest-01 cannot be combined with other challenges");
    } else if (p->identifiers & device_ids) {
        cfg_path_join(kpath, path, "identifiers");
        return cfg_fail(ctx, cfg_node_key_line(node, "identifiers"), kpath,
                        "permanent-identifier and hardware-module need challenge "
                        "device-attest-01");
    }
    return 0;
}

/* With a single CA the policy may omit `ca`; otherwise it must name one that exists. */
static int resolve_ca(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                      struct cfg_policy *p)
{
    char kpath[CFG_PATH_LEN];
    const struct cfg *cfg = ctx->cfg;
    if (p->ca == NULL) {
        if (cfg->ncas != 1)
            return cfg_fail(ctx, node != NULL ? node->line : 0, path,
                            "ca is required when more than one CA is configured");
        p->ca = xstrdup(cfg->cas[0].name);
        return 0;
    }
    if (cfg_ca_find(cfg, p->ca) == NULL) {
        char esc[96];
        cfg_path_join(kpath, path, "ca");
        return cfg_fail(ctx, cfg_node_key_line(node, "ca"), kpath, "unknown CA \"%s\"",
                        log_escape(p->ca, 64, esc, sizeof(esc)));
    }
    return 0;
}

/* Every named signal source must exist (the section loads before this one). */
static int resolve_sources(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                           const struct cfg_policy *p)
{
    char kpath[CFG_PATH_LEN], ipath[CFG_PATH_LEN + 24], esc[96];
    const struct cfg_node *list = cfg_node_get(node, "signal_sources");
    cfg_path_join(kpath, path, "signal_sources");
    for (size_t i = 0; i < p->nsignal_sources; i++) {
        if (cfg_signal_source_find(ctx->cfg, p->signal_sources[i]) != NULL)
            continue;
        snprintf(ipath, sizeof(ipath), "%s[%zu]", kpath, i);
        return cfg_fail(ctx, list != NULL && i < list->n ? list->kids[i]->line : 0, ipath,
                        "unknown signal source \"%s\"",
                        log_escape(p->signal_sources[i], 64, esc, sizeof(esc)));
    }
    return 0;
}

static int policy_check(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                        void *base)
{
    struct cfg_policy *p = base;
    if (check_combination(ctx, node, path, p) != 0 || resolve_sources(ctx, node, path, p) != 0)
        return -1;
    if (cfg_policy_check_roles(ctx, node, path, p) != 0 ||
        cfg_policy_check_template(ctx, node, path, p) != 0)
        return -1;
    return resolve_ca(ctx, node, path, p);
}

const struct cfg_section cfg_section_policies = {
    .name = "enrollment_policies",
    .keys = policy_keys,
    .keyed = true,
    .offset = offsetof(struct cfg, policies),
    .count_off = offsetof(struct cfg, npolicies),
    .elem_size = sizeof(struct cfg_policy),
    .name_off = offsetof(struct cfg_policy, name),
    .fallback = "default: {identifiers: [dns, ip], challenges: [http-01, dns-01, tls-alpn-01]}\n"
                "devices: {identifiers: [permanent-identifier, hardware-module],\n"
                "          challenges: [device-attest-01]}\n",
    .check = policy_check,
};
