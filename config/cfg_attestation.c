/*
 * config section `attestation`: how device-attest-01 evidence is trusted.
 * Today only `apple`: the roots that anchor attestation chains (the built-in
 * Apple Enterprise Attestation Root when none are listed), whether the
 * challenge nonce must be bound, and which attested identifiers may appear in
 * an order.
 */
#include "config/cfg_int.h"

#include <stdlib.h>
#include <string.h>

static const char *const identifiers[] = {"serial", "udid", NULL};

static int parse_identifier(struct cfg_ctx *ctx, const struct cfg_key *key,
                            const struct cfg_node *node, const char *path, void *base)
{
    struct cfg_attestation *a = base;
    unsigned bits = 0;
    if (cfg_parse_flags(ctx, node, path, identifiers, 1, &bits) != 0)
        return -1;
    a->accept_serial = (bits & 1u) != 0;
    a->accept_udid = (bits & 2u) != 0;
    return 0;
}

static const struct cfg_key apple_keys[] = {
    {.name = "roots", .type = CFG_T_LIST, .flags = CFG_K_PATH,
     CFG_FIELD(struct cfg_attestation, apple_roots),
     .aux = offsetof(struct cfg_attestation, napple_roots)},
    {.name = "require_nonce", .type = CFG_T_BOOL, .def = "true",
     CFG_FIELD(struct cfg_attestation, require_nonce)},
    {.name = "identifier", .type = CFG_T_CUSTOM, .def = "[serial, udid]",
     .parse = parse_identifier},
    {0},
};

/* Ceilings match attest/attest.h (ATT_MAX_ATTOBJ, ATT_MAX_DEPTH, ATT_MAX_X5C). */
static const struct cfg_key limit_keys[] = {
    {.name = "max_attobj", .type = CFG_T_SIZE, .def = "64k", .min = 1024, .max = 65536,
     CFG_FIELD(struct cfg_attestation, max_attobj)},
    {.name = "max_cbor_depth", .type = CFG_T_INT, .def = "4", .min = 2, .max = 4,
     CFG_FIELD(struct cfg_attestation, max_cbor_depth)},
    {.name = "max_x5c", .type = CFG_T_INT, .def = "4", .min = 1, .max = 4,
     CFG_FIELD(struct cfg_attestation, max_x5c)},
    {0},
};

static const struct cfg_key attestation_keys[] = {
    {.name = "apple", .type = CFG_T_MAP, .sub = apple_keys},
    {.name = "limits", .type = CFG_T_MAP, .sub = limit_keys},
    {0},
};

/* "builtin" names the compiled-in Apple root; it stands alone, like an empty list. */
static int attestation_check(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                             void *base)
{
    struct cfg_attestation *a = base;
    const struct cfg_node *roots = cfg_node_get(cfg_node_get(node, "apple"), "roots");
    for (size_t i = 0; i < a->napple_roots; i++) {
        /* The raw node, not the resolved path: "builtin" was joined to the file's dir. */
        if (strcmp(roots->kids[i]->str, "builtin") != 0)
            continue;
        if (a->napple_roots != 1)
            return cfg_fail(ctx, roots->kids[i]->line, "attestation.apple.roots",
                            "builtin cannot be combined with other roots");
        free(a->apple_roots[0]);
        free(a->apple_roots);
        a->apple_roots = NULL;
        a->napple_roots = 0;
    }
    return 0;
}

const struct cfg_section cfg_section_attestation = {
    .name = "attestation",
    .keys = attestation_keys,
    .offset = offsetof(struct cfg, attestation),
    .check = attestation_check,
};
