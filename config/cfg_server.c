/*
 * config section `server`: listening address, worker threads, TLS files,
 * request limits and timeouts, logging. Its table is the reference for the
 * defaults documented in docs/configuration.md.
 */
#include "config/cfg_int.h"

#include <string.h>

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};

static const struct cfg_key tls_keys[] = {
    {.name = "cert", .type = CFG_T_STRING, .flags = CFG_K_PATH,
     CFG_FIELD(struct cfg_server, tls_cert)},
    {.name = "key", .type = CFG_T_STRING, .flags = CFG_K_PATH,
     CFG_FIELD(struct cfg_server, tls_key)},
    {0},
};

static const struct cfg_key limits_keys[] = {
    {.name = "max_body", .type = CFG_T_SIZE, .def = "64k", .min = 1024, .max = 64 << 20,
     CFG_FIELD(struct cfg_server, max_body)},
    {.name = "max_headers", .type = CFG_T_SIZE, .def = "16k", .min = 1024, .max = 1 << 20,
     CFG_FIELD(struct cfg_server, max_headers)},
    {.name = "max_conns_per_ip", .type = CFG_T_INT, .def = "256", .min = 1, .max = 65535,
     CFG_FIELD(struct cfg_server, max_conns_per_ip)},
    {0},
};

static const struct cfg_key timeout_keys[] = {
    {.name = "read", .type = CFG_T_DURATION, .def = "10s", .min = 1, .max = 3600,
     CFG_FIELD(struct cfg_server, read_timeout)},
    {.name = "idle", .type = CFG_T_DURATION, .def = "60s", .min = 1, .max = 3600,
     CFG_FIELD(struct cfg_server, idle_timeout)},
    {.name = "shutdown", .type = CFG_T_DURATION, .def = "20s", .min = 0, .max = 3600,
     CFG_FIELD(struct cfg_server, shutdown_timeout)},
    {0},
};

static const struct cfg_key server_keys[] = {
    {.name = "listen", .type = CFG_T_STRING, .def = "localhost:8443", .check = cfg_check_hostport,
     CFG_FIELD(struct cfg_server, listen)},
    {.name = "data_dir", .type = CFG_T_STRING, .def = "./attesta-data", .flags = CFG_K_PATH,
     CFG_FIELD(struct cfg_server, data_dir)},
    {.name = "workers", .type = CFG_T_INT, .def = "auto", .min = 0, .max = 1024,
     .flags = CFG_K_AUTO, CFG_FIELD(struct cfg_server, workers)},
    {.name = "tls", .type = CFG_T_MAP, .sub = tls_keys},
    {.name = "base_url", .type = CFG_T_STRING, .check = cfg_check_url,
     CFG_FIELD(struct cfg_server, base_url)},
    {.name = "limits", .type = CFG_T_MAP, .sub = limits_keys},
    {.name = "timeouts", .type = CFG_T_MAP, .sub = timeout_keys},
    {.name = "access_log", .type = CFG_T_STRING, .flags = CFG_K_PATH,
     CFG_FIELD(struct cfg_server, access_log)},
    {.name = "log_level", .type = CFG_T_ENUM, .def = "info", .names = log_levels,
     CFG_FIELD(struct cfg_server, log_level)},
    {0},
};

static int server_check(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                        void *base)
{
    struct cfg_server *s = base;
    if ((s->tls_cert == NULL) != (s->tls_key == NULL))
        return cfg_fail(ctx, cfg_node_key_line(node, "tls"), "server.tls",
                        "cert and key must be set together");
    /* Other modules append paths to base_url; one canonical form avoids "//acme". */
    if (s->base_url != NULL) {
        size_t n = strlen(s->base_url);
        while (n > 0 && s->base_url[n - 1] == '/')
            s->base_url[--n] = '\0';
    }
    return 0;
}

const struct cfg_section cfg_section_server = {
    .name = "server",
    .keys = server_keys,
    .offset = offsetof(struct cfg, server),
    .check = server_check,
};
