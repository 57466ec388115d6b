/*
 * config section `cas`: the issuing CAs, keyed by name. A CA without files is
 * generated on first start under <data_dir>/ca/<name>/, which is why names
 * are restricted to a filename-safe alphabet (checked by the loader).
 */
#include "config/cfg_int.h"

static const struct cfg_key ca_keys[] = {
    {.name = "cert", .type = CFG_T_STRING, .flags = CFG_K_PATH, CFG_FIELD(struct cfg_ca, cert)},
    {.name = "key", .type = CFG_T_STRING, .flags = CFG_K_PATH, CFG_FIELD(struct cfg_ca, key)},
    {.name = "chain", .type = CFG_T_STRING, .flags = CFG_K_PATH, CFG_FIELD(struct cfg_ca, chain)},
    {0},
};

static int ca_check(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path, void *base)
{
    const struct cfg_ca *ca = base;
    if ((ca->cert == NULL) != (ca->key == NULL))
        return cfg_fail(ctx, node != NULL ? node->line : 0, path,
                        "cert and key must be set together");
    if (ca->chain != NULL && ca->cert == NULL)
        return cfg_fail(ctx, cfg_node_key_line(node, "chain"), path,
                        "chain needs cert and key");
    return 0;
}

const struct cfg_section cfg_section_cas = {
    .name = "cas",
    .keys = ca_keys,
    .keyed = true,
    .offset = offsetof(struct cfg, cas),
    .count_off = offsetof(struct cfg, ncas),
    .elem_size = sizeof(struct cfg_ca),
    .name_off = offsetof(struct cfg_ca, name),
    .fallback = "default: {}\n",
    .check = ca_check,
};
