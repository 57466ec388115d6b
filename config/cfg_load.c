/*
 * config loader: the public entry points. Reads the file into a node tree,
 * rejects unknown top-level keys, then runs every registered section through
 * the schema engine (defaults, values, section checks) in registry order.
 * Keyed sections (cas, enrollment_policies) become arrays in struct cfg, and
 * fall back to built-in entries when the file does not have them.
 */
#include "config/cfg_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *at(void *base, size_t off)
{
    return (char *)base + off;
}

static int load_entry(struct cfg_ctx *ctx, const struct cfg_section *sec, const char *name,
                      unsigned name_line, const struct cfg_node *node)
{
    char path[CFG_PATH_LEN];
    void **arr = at(ctx->cfg, sec->offset);
    size_t *n = at(ctx->cfg, sec->count_off);
    const char *why = sec->name_check != NULL ? sec->name_check(name) : cfg_check_name(name);
    cfg_path_join(path, sec->name, name);
    if (why != NULL)
        return cfg_fail(ctx, name_line, path, "%s", why);
    /* Grow by one and zero the new entry so a failed parse still frees cleanly. */
    *arr = xrealloc(*arr, (*n + 1) * sec->elem_size);
    void *elem = (char *)*arr + *n * sec->elem_size;
    memset(elem, 0, sec->elem_size);
    (*n)++;
    *(char **)at(elem, sec->name_off) = xstrdup(name);
    if (cfg_schema_defaults(ctx, sec->keys, elem, path) != 0 ||
        cfg_schema_apply(ctx, sec->keys, node, elem, path) != 0)
        return -1;
    return sec->check != NULL ? sec->check(ctx, node, path, elem) : 0;
}

static int load_keyed(struct cfg_ctx *ctx, const struct cfg_section *sec,
                      const struct cfg_node *node)
{
    int rc = -1;
    struct cfg_node *fallback = NULL;
    if ((node == NULL || cfg_node_is_null(node)) && sec->fallback == NULL)
        return 0; /* optional section, absent */
    if (node == NULL || cfg_node_is_null(node)) {
        /* Built-in entries keep the file's label but line 0: errors read "FILE: key: ...". */
        if (cfg_yaml_parse(ctx->file, sec->fallback, strlen(sec->fallback), &fallback,
                           ctx->err) != 0)
            goto out;
        cfg_node_zero_lines(fallback);
        node = fallback;
    }
    if (node->type != CFG_NODE_MAP) {
        cfg_fail(ctx, node->line, sec->name, "expected a map of name: settings");
        goto out;
    }
    if (node->n == 0) {
        cfg_fail(ctx, node->line, sec->name, "expected at least one entry");
        goto out;
    }
    for (size_t i = 0; i < node->n; i++) {
        if (load_entry(ctx, sec, node->keys[i], node->key_lines[i], node->kids[i]) != 0)
            goto out;
    }
    rc = 0;
out:
    cfg_node_free(fallback);
    return rc;
}

static int load_section(struct cfg_ctx *ctx, const struct cfg_section *sec,
                        const struct cfg_node *node)
{
    void *base = at(ctx->cfg, sec->offset);
    if (sec->keyed)
        return load_keyed(ctx, sec, node);
    if (cfg_schema_defaults(ctx, sec->keys, base, sec->name) != 0 ||
        cfg_schema_apply(ctx, sec->keys, node, base, sec->name) != 0)
        return -1;
    return sec->check != NULL ? sec->check(ctx, node, sec->name, base) : 0;
}

static int check_top(struct cfg_ctx *ctx, const struct cfg_node *root)
{
    char path[CFG_PATH_LEN];
    if (root == NULL)
        return 0;
    if (root->type != CFG_NODE_MAP) {
        snprintf(ctx->err, CFG_ERR_LEN, "%s:%u: expected a map of sections at the top level",
                 ctx->file, root->line);
        return -1;
    }
    for (size_t i = 0; i < root->n; i++) {
        size_t s = 0;
        while (s < cfg_nsections && strcmp(cfg_sections[s]->name, root->keys[i]) != 0)
            s++;
        if (s == cfg_nsections)
            return cfg_fail(ctx, root->key_lines[i], cfg_path_join(path, "", root->keys[i]),
                            "unknown key");
    }
    return 0;
}

/* The absolute directory of path, so resolved paths survive a later chdir. */
static char *dir_of(const char *path, char err[CFG_ERR_LEN])
{
    char *copy = xstrdup(path), *slash = strrchr(copy, '/'), *abs = NULL;
    const char *dir = ".";
    if (slash == copy)
        dir = "/";
    else if (slash != NULL) {
        *slash = '\0';
        dir = copy;
    }
    abs = realpath(dir, NULL);
    if (abs == NULL)
        snprintf(err, CFG_ERR_LEN, "%s: cannot resolve its directory: %s", path, strerror(errno));
    free(copy);
    return abs;
}

struct cfg *cfg_load(const char *path, char err[CFG_ERR_LEN])
{
    int rc = -1;
    struct cfg *cfg = xcalloc(1, sizeof(*cfg));
    struct cfg_node *root = NULL;
    char *dir = NULL;
    struct cfg_ctx ctx = {.file = path != NULL ? path : "<defaults>", .err = err, .cfg = cfg};

    err[0] = '\0';
    if (path != NULL) {
        cfg->path = xstrdup(path);
        if (cfg_yaml_load_file(path, &root, err) != 0)
            goto out;
        dir = dir_of(path, err);
        if (dir == NULL)
            goto out;
        ctx.dir = dir;
    }
    if (check_top(&ctx, root) != 0)
        goto out;
    for (size_t i = 0; i < cfg_nsections; i++) {
        if (load_section(&ctx, cfg_sections[i], cfg_node_get(root, cfg_sections[i]->name)) != 0)
            goto out;
    }
    rc = 0;
out:
    cfg_node_free(root);
    free(dir);
    if (rc != 0) {
        cfg_free(cfg);
        cfg = NULL;
    }
    return cfg;
}

void cfg_free(struct cfg *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t s = 0; s < cfg_nsections; s++) {
        const struct cfg_section *sec = cfg_sections[s];
        if (!sec->keyed) {
            cfg_schema_free(sec->keys, at(cfg, sec->offset));
            if (sec->free_entry != NULL)
                sec->free_entry(at(cfg, sec->offset));
            continue;
        }
        char *arr = *(char **)at(cfg, sec->offset);
        size_t n = *(size_t *)at(cfg, sec->count_off);
        for (size_t i = 0; i < n; i++) {
            cfg_schema_free(sec->keys, arr + i * sec->elem_size);
            if (sec->free_entry != NULL)
                sec->free_entry(arr + i * sec->elem_size);
            free(*(char **)(arr + i * sec->elem_size + sec->name_off));
        }
        free(arr);
    }
    free(cfg->path);
    free(cfg);
}

const struct cfg_policy *cfg_policy_find(const struct cfg *cfg, const char *name)
{
    for (size_t i = 0; cfg != NULL && name != NULL && i < cfg->npolicies; i++) {
        if (strcmp(cfg->policies[i].name, name) == 0)
            return &cfg->policies[i];
    }
    return NULL;
}

const struct cfg_signal_source *cfg_signal_source_find(const struct cfg *cfg, const char *name)
{
    for (size_t i = 0; cfg != NULL && name != NULL && i < cfg->nsignal_sources; i++) {
        if (strcmp(cfg->signal_sources[i].name, name) == 0)
            return &cfg->signal_sources[i];
    }
    return NULL;
}

const struct cfg_ca *cfg_ca_find(const struct cfg *cfg, const char *name)
{
    for (size_t i = 0; cfg != NULL && name != NULL && i < cfg->ncas; i++) {
        if (strcmp(cfg->cas[i].name, name) == 0)
            return &cfg->cas[i];
    }
    return NULL;
}
