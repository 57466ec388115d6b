/*
 * config section `device_roles`: named roles a device holds when every
 * predicate of `when` holds (an `any:` item holds when one of its
 * alternatives does). Predicates read the attestation claims, a signal
 * source's verdict or attributes, or the ACME account's EAB key id; policy/
 * evaluates them. Names of sources and attributes are checked here against
 * the signal_sources section so a typo fails at load time, not at enrollment.
 */
#include "config/cfg_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROLE_MAX_PREDS 32  /* predicates per list (when, any) */
#define ROLE_MAX_DEPTH 4   /* any: inside any: */
#define ROLE_MAX_VALUES 64 /* items of an in/not_in list */

const char *const cfg_pred_op_names[CFG_PRED_OP__MAX + 1] = {
    "equals",     "not_equals", "in",     "not_in",     "matches_prefix",
    "version_ge", "version_lt", "exists", "not_exists", NULL,
};
const char *const cfg_claim_names[CFG_CLAIM__MAX + 1] = {"serial", "udid", "os_version",
                                                          "sepos_version", NULL};

static int parse_preds(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                       int depth, struct cfg_pred **out, size_t *nout);
static int parse_when(struct cfg_ctx *ctx, const struct cfg_key *key, const struct cfg_node *node,
                      const char *path, void *base);

static const struct cfg_key role_keys[] = {
    {.name = "when", .type = CFG_T_CUSTOM, .flags = CFG_K_REQUIRED, .parse = parse_when},
    {0},
};

/* Keys each kind accepts, NULL-terminated; indexed by enum cfg_pred_kind. */
static const char *const kind_keys[][4] = {
    [CFG_PRED_ATTEST] = {"attest", "op", "value", NULL},
    [CFG_PRED_RESULT] = {"source", "result", NULL},
    [CFG_PRED_ATTR] = {"source", "attribute", "op", "value"},
    [CFG_PRED_ACCOUNT] = {"account", "op", "value", NULL},
    [CFG_PRED_ANY] = {"any", NULL},
};

static bool key_allowed(unsigned kind, const char *key)
{
    for (size_t i = 0; i < 4 && kind_keys[kind][i] != NULL; i++) {
        if (strcmp(kind_keys[kind][i], key) == 0)
            return true;
    }
    return false;
}

/* "26", "26.4", "26.4.1": 1 to 8 numeric components of at most 9 digits. */
static bool is_version(const char *s)
{
    size_t digits = 0, comps = 1;
    if (!isdigit((unsigned char)s[0]))
        return false;
    for (; *s != '\0'; s++) {
        if (*s == '.') {
            if (digits == 0 || ++comps > 8)
                return false;
            digits = 0;
        } else if (!isdigit((unsigned char)*s) || ++digits > 9) {
            return false;
        }
    }
    return digits > 0;
}

/* Which kind the map is, from the one key among attest/source/account/any it has. */
static int pred_kind(struct cfg_ctx *ctx, const struct cfg_node *m, const char *path,
                     unsigned *kind)
{
    static const char *const heads[] = {"attest", "account", "any", "source"};
    int found = 0;
    for (size_t i = 0; i < nitems(heads); i++)
        found += cfg_node_get(m, heads[i]) != NULL;
    if (cfg_node_get(m, "attest") != NULL)
        *kind = CFG_PRED_ATTEST;
    else if (cfg_node_get(m, "account") != NULL)
        *kind = CFG_PRED_ACCOUNT;
    else if (cfg_node_get(m, "any") != NULL)
        *kind = CFG_PRED_ANY;
    else
        *kind = cfg_node_get(m, "result") != NULL ? CFG_PRED_RESULT : CFG_PRED_ATTR;
    if (found != 1)
        return cfg_fail(ctx, m->line, path,
                        "expected exactly one of attest, source, account or any");
    for (size_t i = 0; i < m->n; i++) {
        char kpath[CFG_PATH_LEN];
        if (!key_allowed(*kind, m->keys[i]))
            return cfg_fail(ctx, m->key_lines[i], cfg_path_join(kpath, path, m->keys[i]),
                            "unknown key");
    }
    return 0;
}

static const char *scalar(const struct cfg_node *n)
{
    return n != NULL && n->type == CFG_NODE_SCALAR && !cfg_node_is_null(n) ? n->str : NULL;
}

/* op and value: which ops fit the kind, and the value each op needs. */
static int parse_op_value(struct cfg_ctx *ctx, const struct cfg_node *m, const char *path,
                          struct cfg_pred *p)
{
    char kpath[CFG_PATH_LEN], ipath[CFG_PATH_LEN + 24];
    const struct cfg_node *opn = cfg_node_get(m, "op"), *v = cfg_node_get(m, "value");
    int op = scalar(opn) != NULL ? str_index(cfg_pred_op_names, SIZE_MAX, opn->str) : -1;
    bool version = op == CFG_PRED_OP_VERSION_GE || op == CFG_PRED_OP_VERSION_LT;
    bool list = op == CFG_PRED_OP_IN || op == CFG_PRED_OP_NOT_IN;
    bool none = op == CFG_PRED_OP_EXISTS || op == CFG_PRED_OP_NOT_EXISTS;
    cfg_path_join(kpath, path, "op");
    if (opn == NULL)
        return cfg_fail(ctx, m->line, path, "missing required key op");
    if (op < 0)
        return cfg_fail(ctx, opn->line, kpath,
                        "expected one of equals|not_equals|in|not_in|matches_prefix|"
                        "version_ge|version_lt|exists|not_exists");
    if (version && (p->kind == CFG_PRED_ACCOUNT ||
                    (p->kind == CFG_PRED_ATTEST && p->claim != CFG_CLAIM_OS &&
                     p->claim != CFG_CLAIM_SEPOS)))
        return cfg_fail(ctx, opn->line, kpath, "%s compares versions: only for os_version, "
                        "sepos_version or a source attribute", opn->str);
    p->op = (unsigned)op;
    cfg_path_join(kpath, path, "value");
    if (none) {
        if (v != NULL)
            return cfg_fail(ctx, v->line, kpath, "%s takes no value", opn->str);
        return 0;
    }
    if (v == NULL)
        return cfg_fail(ctx, m->line, path, "missing required key value");
    if (list != (v->type == CFG_NODE_SEQ) || (!list && scalar(v) == NULL))
        return cfg_fail(ctx, v->line, kpath, list ? "expected a list of strings"
                                                  : "expected a string");
    if (list && (v->n == 0 || v->n > ROLE_MAX_VALUES))
        return cfg_fail(ctx, v->line, kpath, "expected 1 to %d items", ROLE_MAX_VALUES);
    p->nvalues = list ? v->n : 1;
    p->values = xcalloc(p->nvalues, sizeof(*p->values));
    for (size_t i = 0; i < p->nvalues; i++) {
        const struct cfg_node *it = list ? v->kids[i] : v;
        if (list)
            snprintf(ipath, sizeof(ipath), "%s[%zu]", kpath, i);
        else
            snprintf(ipath, sizeof(ipath), "%s", kpath);
        if (scalar(it) == NULL)
            return cfg_fail(ctx, it->line, ipath, "expected a string");
        if (version && !is_version(it->str))
            return cfg_fail(ctx, it->line, ipath, "expected a version such as 17 or 26.4.1");
        p->values[i] = xstrdup(it->str);
    }
    return 0;
}

static int parse_source(struct cfg_ctx *ctx, const struct cfg_node *m, const char *path,
                        struct cfg_pred *p)
{
    char kpath[CFG_PATH_LEN], esc[96];
    const struct cfg_node *sn = cfg_node_get(m, "source"), *an = cfg_node_get(m, "attribute");
    const struct cfg_node *rn = cfg_node_get(m, "result");
    const struct cfg_signal_source *ss = scalar(sn) != NULL
                                             ? cfg_signal_source_find(ctx->cfg, sn->str) : NULL;
    cfg_path_join(kpath, path, "source");
    if (ss == NULL)
        return cfg_fail(ctx, sn->line, kpath, "unknown signal source \"%s\"",
                        scalar(sn) != NULL ? log_escape(sn->str, 64, esc, sizeof(esc)) : "");
    p->source = xstrdup(ss->name);
    if (p->kind == CFG_PRED_RESULT) {
        cfg_path_join(kpath, path, "result");
        if (scalar(rn) == NULL || (strcmp(rn->str, "allowed") != 0 &&
                                   strcmp(rn->str, "denied") != 0))
            return cfg_fail(ctx, rn->line, kpath, "expected allowed or denied");
        p->want_allowed = rn->str[0] == 'a';
        return 0;
    }
    cfg_path_join(kpath, path, "attribute");
    if (an == NULL)
        return cfg_fail(ctx, m->line, path, "expected result or attribute with source");
    for (size_t i = 0; scalar(an) != NULL && i < ss->nattributes; i++) {
        if (strcmp(ss->attributes[i].name, an->str) == 0) {
            p->attribute = xstrdup(an->str);
            return parse_op_value(ctx, m, path, p);
        }
    }
    return cfg_fail(ctx, an->line, kpath,
                    "signal source %s collects no attribute \"%s\" (add it under "
                    "signal_sources.%s.attributes)",
                    ss->name, scalar(an) != NULL ? log_escape(an->str, 64, esc, sizeof(esc)) : "",
                    ss->name);
}

static int parse_pred(struct cfg_ctx *ctx, const struct cfg_node *m, const char *path, int depth,
                      struct cfg_pred *p)
{
    char kpath[CFG_PATH_LEN];
    const struct cfg_node *n;
    int idx;
    p->line = m->line;
    if (m->type != CFG_NODE_MAP)
        return cfg_fail(ctx, m->line, path, "expected a predicate map");
    if (pred_kind(ctx, m, path, &p->kind) != 0)
        return -1;
    switch (p->kind) {
    case CFG_PRED_ATTEST:
        n = cfg_node_get(m, "attest");
        idx = scalar(n) != NULL ? str_index(cfg_claim_names, SIZE_MAX, n->str) : -1;
        if (idx < 0)
            return cfg_fail(ctx, n->line, cfg_path_join(kpath, path, "attest"),
                            "expected one of serial|udid|os_version|sepos_version");
        p->claim = (unsigned)idx;
        return parse_op_value(ctx, m, path, p);
    case CFG_PRED_ACCOUNT:
        n = cfg_node_get(m, "account");
        if (scalar(n) == NULL || strcmp(n->str, "eab_kid") != 0)
            return cfg_fail(ctx, n->line, cfg_path_join(kpath, path, "account"),
                            "expected eab_kid");
        p->attribute = xstrdup("eab_kid");
        return parse_op_value(ctx, m, path, p);
    case CFG_PRED_ANY:
        if (depth >= ROLE_MAX_DEPTH)
            return cfg_fail(ctx, m->line, path, "any: nested more than %d deep",
                            ROLE_MAX_DEPTH);
        return parse_preds(ctx, cfg_node_get(m, "any"), cfg_path_join(kpath, path, "any"),
                           depth + 1, &p->any, &p->nany);
    default:
        return parse_source(ctx, m, path, p);
    }
}

static int parse_preds(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                       int depth, struct cfg_pred **out, size_t *nout)
{
    char ipath[CFG_PATH_LEN];
    if (node->type != CFG_NODE_SEQ || node->n == 0)
        return cfg_fail(ctx, node->line, path, "expected a non-empty list of predicates");
    if (node->n > ROLE_MAX_PREDS)
        return cfg_fail(ctx, node->line, path, "more than %d predicates", ROLE_MAX_PREDS);
    /* Counted as they fill, so a failure frees exactly what was parsed. */
    *out = xcalloc(node->n, sizeof(**out));
    for (size_t i = 0; i < node->n; i++) {
        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        (*nout)++;
        if (parse_pred(ctx, node->kids[i], ipath, depth, &(*out)[i]) != 0)
            return -1;
    }
    return 0;
}

static int parse_when(struct cfg_ctx *ctx, const struct cfg_key *key, const struct cfg_node *node,
                      const char *path, void *base)
{
    struct cfg_role *r = base;
    return parse_preds(ctx, node, path, 0, &r->when, &r->nwhen);
}

static void preds_free(struct cfg_pred *p, size_t n)
{
    for (size_t i = 0; p != NULL && i < n; i++) {
        free(p[i].source);
        free(p[i].attribute);
        for (size_t j = 0; p[i].values != NULL && j < p[i].nvalues; j++)
            free(p[i].values[j]);
        free(p[i].values);
        preds_free(p[i].any, p[i].nany);
    }
    free(p);
}

static void role_free(void *base)
{
    struct cfg_role *r = base;
    preds_free(r->when, r->nwhen);
    r->when = NULL;
    r->nwhen = 0;
}

const struct cfg_role *cfg_role_find(const struct cfg *cfg, const char *name)
{
    for (size_t i = 0; cfg != NULL && name != NULL && i < cfg->nroles; i++) {
        if (strcmp(cfg->roles[i].name, name) == 0)
            return &cfg->roles[i];
    }
    return NULL;
}

/* A role whose plain (non-any) predicates need what the policy never gathers can never hold. */
static int role_fits(struct cfg_ctx *ctx, unsigned line, const char *ipath,
                     const struct cfg_policy *p, const struct cfg_role *r)
{
    for (size_t i = 0; i < r->nwhen; i++) {
        const struct cfg_pred *q = &r->when[i];
        bool consulted = false;
        if (q->kind == CFG_PRED_ATTEST && !(p->challenges & CFG_CH_DEVICE_ATTEST01))
            return cfg_fail(ctx, line, ipath,
                            "role %s reads attest.%s, which only device-attest-01 provides",
                            r->name, cfg_claim_names[q->claim]);
        if (q->kind != CFG_PRED_RESULT && q->kind != CFG_PRED_ATTR)
            continue;
        for (size_t j = 0; j < p->nsignal_sources; j++)
            consulted = consulted || strcmp(p->signal_sources[j], q->source) == 0;
        if (!consulted)
            return cfg_fail(ctx, line, ipath,
                            "role %s reads signal source %s, which the policy does not list in "
                            "signal_sources",
                            r->name, q->source);
    }
    return 0;
}

int cfg_policy_check_roles(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                           const struct cfg_policy *p)
{
    char kpath[CFG_PATH_LEN], ipath[CFG_PATH_LEN + 24], esc[96];
    const struct cfg_node *list = cfg_node_get(node, "roles");
    cfg_path_join(kpath, path, "roles");
    for (size_t i = 0; i < p->nroles; i++) {
        unsigned line = list != NULL && i < list->n ? list->kids[i]->line : 0;
        const struct cfg_role *r = cfg_role_find(ctx->cfg, p->roles[i]);
        snprintf(ipath, sizeof(ipath), "%s[%zu]", kpath, i);
        if (r == NULL)
            return cfg_fail(ctx, line, ipath, "unknown device role \"%s\"",
                            log_escape(p->roles[i], 64, esc, sizeof(esc)));
        if (role_fits(ctx, line, ipath, p, r) != 0)
            return -1;
    }
    return 0;
}

const struct cfg_section cfg_section_roles = {
    .name = "device_roles",
    .keys = role_keys,
    .keyed = true,
    .offset = offsetof(struct cfg, roles),
    .count_off = offsetof(struct cfg, nroles),
    .elem_size = sizeof(struct cfg_role),
    .name_off = offsetof(struct cfg_role, name),
    .free_entry = role_free,
};
