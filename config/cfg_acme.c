/*
 * config section `acme`: protocol knobs shared by every enrollment policy:
 * challenge validation (resolver, ports, retries) and how long a challenge
 * response waits for its outcome, order and authorization lifetimes and
 * reuse, per-account limits and the directory's meta object.
 */
#include "config/cfg_int.h"

#include <string.h>

static const struct cfg_key challenge_keys[] = {
    {.name = "resolver", .type = CFG_T_STRING, .check = cfg_check_hostport,
     CFG_FIELD(struct cfg_acme, resolver)},
    {.name = "http01_port", .type = CFG_T_INT, .def = "80", .min = 1, .max = 65535,
     CFG_FIELD(struct cfg_acme, http01_port)},
    {.name = "tls_alpn01_port", .type = CFG_T_INT, .def = "443", .min = 1, .max = 65535,
     CFG_FIELD(struct cfg_acme, tls_alpn01_port)},
    {.name = "attempts", .type = CFG_T_INT, .def = "3", .min = 1, .max = 10,
     CFG_FIELD(struct cfg_acme, validation_attempts)},
    {.name = "timeout", .type = CFG_T_DURATION, .def = "10s", .min = 1, .max = 300,
     CFG_FIELD(struct cfg_acme, validation_timeout)},
    {.name = "retry_delay", .type = CFG_T_DURATION, .def = "2s", .min = 0, .max = 3600,
     CFG_FIELD(struct cfg_acme, validation_retry_delay)},
    /* 10s at most: a waiting answer holds a worker thread (see acme/chall_wait.c). */
    {.name = "answer_wait", .type = CFG_T_DURATION_MS, .def = "250ms", .min = 0, .max = 10000,
     CFG_FIELD(struct cfg_acme, challenge_wait)},
    {0},
};

static const struct cfg_key limit_keys[] = {
    {.name = "max_identifiers", .type = CFG_T_INT, .def = "100", .min = 1, .max = 1000,
     CFG_FIELD(struct cfg_acme, max_identifiers)},
    {.name = "orders_per_hour", .type = CFG_T_INT, .def = "300", .min = 0, .max = 1000000,
     CFG_FIELD(struct cfg_acme, orders_per_hour)},
    /* High by default: a device fleet behind one NAT enrolls from one address. */
    {.name = "accounts_per_ip_hour", .type = CFG_T_INT, .def = "10000", .min = 0,
     .max = 1000000, CFG_FIELD(struct cfg_acme, accounts_per_ip_hour)},
    {.name = "max_json_depth", .type = CFG_T_INT, .def = "16", .min = 2, .max = 64,
     CFG_FIELD(struct cfg_acme, max_json_depth)},
    {0},
};

/* A terms URL goes between <> in a Link header and whole into fixed-size account fields. */
static const char *check_terms_url(const char *s)
{
    const char *why = cfg_check_url(s);
    _Static_assert(CFG_TERMS_URL_MAX == 500, "the message below says 500");
    if (why != NULL)
        return why;
    if (strlen(s) > CFG_TERMS_URL_MAX)
        return "expected a URL of at most 500 bytes";
    if (strpbrk(s, "<>\"") != NULL)
        return "expected a URL without <, > or \"";
    return NULL;
}

static const struct cfg_key meta_keys[] = {
    {.name = "terms_of_service", .type = CFG_T_STRING, .check = check_terms_url,
     CFG_FIELD(struct cfg_acme, terms_of_service)},
    {.name = "terms_of_service_reagree", .type = CFG_T_BOOL, .def = "false",
     CFG_FIELD(struct cfg_acme, terms_reagree)},
    {.name = "terms_of_service_instance", .type = CFG_T_STRING, .check = check_terms_url,
     CFG_FIELD(struct cfg_acme, terms_instance)},
    {.name = "website", .type = CFG_T_STRING, .check = cfg_check_url,
     CFG_FIELD(struct cfg_acme, website)},
    {0},
};

static const struct cfg_key acme_keys[] = {
    {.name = "challenges", .type = CFG_T_MAP, .sub = challenge_keys},
    {.name = "order_lifetime", .type = CFG_T_DURATION, .def = "7d", .min = 60, .max = 365 * 86400,
     CFG_FIELD(struct cfg_acme, order_lifetime)},
    {.name = "authz_lifetime", .type = CFG_T_DURATION, .def = "7d", .min = 60, .max = 365 * 86400,
     CFG_FIELD(struct cfg_acme, authz_lifetime)},
    {.name = "authz_reuse", .type = CFG_T_BOOL, .def = "true",
     CFG_FIELD(struct cfg_acme, authz_reuse)},
    {.name = "limits", .type = CFG_T_MAP, .sub = limit_keys},
    {.name = "meta", .type = CFG_T_MAP, .sub = meta_keys},
    {0},
};

/* The terms keys only mean something next to the terms they are about. */
static int acme_check(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                      void *base)
{
    const struct cfg_acme *a = base;
    const struct cfg_node *meta = cfg_node_get(node, "meta");
    if (a->terms_of_service != NULL)
        return 0;
    if (a->terms_reagree)
        return cfg_fail(ctx, cfg_node_key_line(meta, "terms_of_service_reagree"),
                        "acme.meta.terms_of_service_reagree", "needs terms_of_service");
    if (a->terms_instance != NULL)
        return cfg_fail(ctx, cfg_node_key_line(meta, "terms_of_service_instance"),
                        "acme.meta.terms_of_service_instance", "needs terms_of_service");
    return 0;
}

const struct cfg_section cfg_section_acme = {
    .name = "acme",
    .keys = acme_keys,
    .offset = offsetof(struct cfg, acme),
    .check = acme_check,
};
