/*
 * config section `storage`: which database backend and where it lives. The
 * PostgreSQL DSN is never in the file, only the name of the environment
 * variable that holds it, so the secret stays out of config and logs.
 */
#include "config/cfg_int.h"

static const char *const drivers[] = {"sqlite", "postgres", NULL};
_Static_assert(CFG_STORE_SQLITE == 0 && CFG_STORE_POSTGRES == 1, "drivers[] mirrors the enum");

static const char *check_env_name(const char *s)
{
    static const char msg[] = "expected an environment variable name ([A-Za-z_][A-Za-z0-9_]*)";
    for (const char *p = s; *p != '\0'; p++) {
        bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_';
        if (!alpha && !(p != s && *p >= '0' && *p <= '9'))
            return msg;
    }
    return NULL;
}

static const struct cfg_key storage_keys[] = {
    {.name = "driver", .type = CFG_T_ENUM, .def = "sqlite", .names = drivers,
     CFG_FIELD(struct cfg_storage, driver)},
    {.name = "path", .type = CFG_T_STRING, .flags = CFG_K_PATH,
     CFG_FIELD(struct cfg_storage, path)},
    {.name = "dsn_env", .type = CFG_T_STRING, .check = check_env_name,
     CFG_FIELD(struct cfg_storage, dsn_env)},
    {0},
};

static int storage_check(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                         void *base)
{
    const struct cfg_storage *s = base;
    if (s->driver == CFG_STORE_POSTGRES && s->dsn_env == NULL)
        return cfg_fail(ctx, cfg_node_key_line(node, "driver"), "storage.dsn_env",
                        "required with driver postgres");
    if (s->driver == CFG_STORE_POSTGRES && s->path != NULL)
        return cfg_fail(ctx, cfg_node_key_line(node, "path"), "storage.path",
                        "only applies to driver sqlite");
    if (s->driver == CFG_STORE_SQLITE && s->dsn_env != NULL)
        return cfg_fail(ctx, cfg_node_key_line(node, "dsn_env"), "storage.dsn_env",
                        "only applies to driver postgres");
    return 0;
}

const struct cfg_section cfg_section_storage = {
    .name = "storage",
    .keys = storage_keys,
    .offset = offsetof(struct cfg, storage),
    .check = storage_check,
};
