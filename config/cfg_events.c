/*
 * config section `events`: the JSON-lines event log and the webhooks that
 * receive signed notifications of issuance, denials and revocations.
 * Webhook secrets are never read here, only the variable name or file path
 * (the mdm module reads them when the sender starts or reloads).
 */
#include "config/cfg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WEBHOOKS 32

const char *const cfg_event_names[CFG_EV__MAX + 1] = {
    "certificate.issued", "enrollment.denied", "certificate.revoked", NULL,
};

static int parse_webhooks(struct cfg_ctx *ctx, const struct cfg_key *key,
                          const struct cfg_node *node, const char *path, void *base);

#define WH struct cfg_webhook
static const struct cfg_key wh_tls_keys[] = {
    {.name = "ca_file", .type = CFG_T_STRING, .flags = CFG_K_PATH, CFG_FIELD(WH, tls_ca_file)},
    {0},
};

static const struct cfg_key webhook_keys[] = {
    {.name = "name", .type = CFG_T_STRING, .flags = CFG_K_REQUIRED, CFG_FIELD(WH, name)},
    {.name = "url", .type = CFG_T_STRING, .flags = CFG_K_REQUIRED, .check = cfg_check_url,
     CFG_FIELD(WH, url)},
    {.name = "secret_env", .type = CFG_T_STRING, CFG_FIELD(WH, secret_env)},
    {.name = "secret_file", .type = CFG_T_STRING, .flags = CFG_K_PATH,
     CFG_FIELD(WH, secret_file)},
    {.name = "types", .type = CFG_T_FLAGS, .names = cfg_event_names, .min = 1,
     .def = "[certificate.issued, enrollment.denied, certificate.revoked]",
     CFG_FIELD(WH, types)},
    {.name = "timeout", .type = CFG_T_DURATION, .def = "5s", .min = 1, .max = 300,
     CFG_FIELD(WH, timeout)},
    {.name = "attempts", .type = CFG_T_INT, .def = "5", .min = 1, .max = 20,
     CFG_FIELD(WH, attempts)},
    {.name = "backoff", .type = CFG_T_DURATION, .def = "1s", .min = 1, .max = 60,
     CFG_FIELD(WH, backoff)},
    {.name = "tls", .type = CFG_T_MAP, .sub = wh_tls_keys},
    {0},
};
#undef WH

static const struct cfg_key events_keys[] = {
    {.name = "file", .type = CFG_T_STRING, CFG_FIELD(struct cfg_events, file)},
    {.name = "webhooks", .type = CFG_T_CUSTOM, .parse = parse_webhooks},
    {.name = "shutdown_drain", .type = CFG_T_DURATION, .def = "5s", .min = 0, .max = 3600,
     CFG_FIELD(struct cfg_events, shutdown_drain)},
    {0},
};

/* Name syntax and uniqueness, and exactly one secret source: the JWT needs a key. */
static int check_webhook(struct cfg_ctx *ctx, const struct cfg_node *it, const char *path,
                         const struct cfg_events *ev, size_t i)
{
    char kpath[CFG_PATH_LEN];
    const struct cfg_webhook *w = &ev->webhooks[i];
    const char *why = cfg_check_name_us(w->name);
    if (why != NULL)
        return cfg_fail(ctx, cfg_node_key_line(it, "name"), cfg_path_join(kpath, path, "name"),
                        "%s", why);
    for (size_t j = 0; j < i; j++) {
        if (strcmp(ev->webhooks[j].name, w->name) == 0)
            return cfg_fail(ctx, cfg_node_key_line(it, "name"),
                            cfg_path_join(kpath, path, "name"), "duplicate webhook name %s",
                            w->name);
    }
    if (w->secret_env != NULL && w->secret_file != NULL)
        return cfg_fail(ctx, cfg_node_key_line(it, "secret_file"),
                        cfg_path_join(kpath, path, "secret_file"),
                        "set only one of secret_env and secret_file");
    if (w->secret_env == NULL && w->secret_file == NULL)
        return cfg_fail(ctx, it->line, cfg_path_join(kpath, path, "secret_env"),
                        "secret_env or secret_file is required (the HS256 key)");
    return 0;
}

static int parse_webhooks(struct cfg_ctx *ctx, const struct cfg_key *key,
                          const struct cfg_node *node, const char *path, void *base)
{
    struct cfg_events *ev = base;
    char ipath[CFG_PATH_LEN];
    if (node->type != CFG_NODE_SEQ)
        return cfg_fail(ctx, node->line, path, "expected a list of webhooks");
    if (node->n > MAX_WEBHOOKS)
        return cfg_fail(ctx, node->line, path, "at most %d webhooks", MAX_WEBHOOKS);
    ev->webhooks = xcalloc(node->n + 1, sizeof(*ev->webhooks));
    for (size_t i = 0; i < node->n; i++) {
        const struct cfg_node *it = node->kids[i];
        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        ev->nwebhooks++; /* counted first so a failed parse is still freed */
        if (cfg_schema_defaults(ctx, webhook_keys, &ev->webhooks[i], ipath) != 0 ||
            cfg_schema_apply(ctx, webhook_keys, it, &ev->webhooks[i], ipath) != 0 ||
            check_webhook(ctx, it, ipath, ev, i) != 0)
            return -1;
    }
    return 0;
}

static void events_free(void *base)
{
    struct cfg_events *ev = base;
    for (size_t i = 0; i < ev->nwebhooks; i++)
        cfg_schema_free(webhook_keys, &ev->webhooks[i]);
    free(ev->webhooks);
    ev->webhooks = NULL;
    ev->nwebhooks = 0;
}

/*
 * The file is not a CFG_K_PATH key because "-" (disabled) must not be
 * resolved; absent means <data_dir>/events.jsonl, next to the database.
 */
static int events_check(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                        void *base)
{
    struct cfg_events *ev = base;
    char *f = ev->file;
    if (f == NULL) {
        ev->file = xasprintf("%s/events.jsonl", ctx->cfg->server.data_dir);
        return 0;
    }
    if (strcmp(f, "-") == 0) {
        free(f);
        ev->file = NULL;
        return 0;
    }
    if (f[0] == '\0')
        return cfg_fail(ctx, cfg_node_key_line(node, "file"), "events.file",
                        "expected a path or - (disabled)");
    if (f[0] != '/' && ctx->dir != NULL) {
        ev->file = xasprintf("%s/%s", ctx->dir, f[0] == '.' && f[1] == '/' ? f + 2 : f);
        free(f);
    }
    return 0;
}

const struct cfg_section cfg_section_events = {
    .name = "events",
    .keys = events_keys,
    .offset = offsetof(struct cfg, events),
    .free_entry = events_free,
    .check = events_check,
};
