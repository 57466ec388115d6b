/*
 * config section `signal_sources`: MDMs consulted after a device attestation
 * verifies, keyed by name. Each entry describes one HTTP lookup (request
 * templates, auth, TLS, limits), where the records are in the JSON answer,
 * how the device is matched exactly, the conditions it must meet and the
 * attributes kept. Everything that can be wrong in the file is caught here at
 * load time (unknown template variables, bad paths, auth modes missing their
 * secret source) so mdm/ only meets runtime failures. Secrets themselves are
 * never read here: only environment variable names and file paths.
 */
#include "config/cfg_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const cfg_mdm_op_names[CFG_MDM_OP__MAX + 1] = {
    "exists", "not_exists", "equals", "not_equals", "in", "not_in", "is_true",
    "is_false", "gt", "ge", "lt", "le", NULL,
};
static const char *const type_names[] = {"http", NULL};
static const char *const method_names[] = {"GET", "POST", NULL};
static const char *const auth_names[] = {"none", "bearer", "basic", "header",
                                         "oauth2_client_credentials", NULL};
static const char *const failure_names[] = {"deny", "allow", NULL};

#define MAX_HEADERS 32
#define MAX_CONDITIONS 64
#define MAX_ATTRIBUTES 64
#define MAX_VALUES 64

static int parse_headers(struct cfg_ctx *ctx, const struct cfg_key *key,
                         const struct cfg_node *node, const char *path, void *base);
static int parse_attributes(struct cfg_ctx *ctx, const struct cfg_key *key,
                            const struct cfg_node *node, const char *path, void *base);
static int parse_conditions(struct cfg_ctx *ctx, const struct cfg_key *key,
                            const struct cfg_node *node, const char *path, void *base);

#define SS struct cfg_signal_source
static const struct cfg_key request_keys[] = {
    {.name = "method", .type = CFG_T_ENUM, .names = method_names, .def = "GET",
     CFG_FIELD(SS, method)},
    {.name = "url", .type = CFG_T_STRING, .flags = CFG_K_REQUIRED, .check = cfg_check_url,
     CFG_FIELD(SS, url)},
    {.name = "headers", .type = CFG_T_CUSTOM, .parse = parse_headers},
    {.name = "body", .type = CFG_T_STRING, CFG_FIELD(SS, body)},
    {0},
};

static const struct cfg_key auth_keys[] = {
    {.name = "type", .type = CFG_T_ENUM, .names = auth_names, .def = "none",
     CFG_FIELD(SS, auth_type)},
    {.name = "token_env", .type = CFG_T_STRING, CFG_FIELD(SS, auth_token_env)},
    {.name = "token_file", .type = CFG_T_STRING, .flags = CFG_K_PATH,
     CFG_FIELD(SS, auth_token_file)},
    {.name = "username", .type = CFG_T_STRING, CFG_FIELD(SS, auth_username)},
    {.name = "password_env", .type = CFG_T_STRING, CFG_FIELD(SS, auth_password_env)},
    {.name = "password_file", .type = CFG_T_STRING, .flags = CFG_K_PATH,
     CFG_FIELD(SS, auth_password_file)},
    {.name = "header", .type = CFG_T_STRING, CFG_FIELD(SS, auth_header)},
    {.name = "value_env", .type = CFG_T_STRING, CFG_FIELD(SS, auth_value_env)},
    {.name = "value_file", .type = CFG_T_STRING, .flags = CFG_K_PATH,
     CFG_FIELD(SS, auth_value_file)},
    {.name = "token_url", .type = CFG_T_STRING, .check = cfg_check_url,
     CFG_FIELD(SS, auth_token_url)},
    {.name = "client_id", .type = CFG_T_STRING, CFG_FIELD(SS, auth_client_id)},
    {.name = "client_secret_env", .type = CFG_T_STRING, CFG_FIELD(SS, auth_client_secret_env)},
    {.name = "client_secret_file", .type = CFG_T_STRING, .flags = CFG_K_PATH,
     CFG_FIELD(SS, auth_client_secret_file)},
    {.name = "scope", .type = CFG_T_STRING, CFG_FIELD(SS, auth_scope)},
    {0},
};

static const struct cfg_key tls_keys[] = {
    {.name = "ca_file", .type = CFG_T_STRING, .flags = CFG_K_PATH, CFG_FIELD(SS, tls_ca_file)},
    {.name = "insecure_skip_verify", .type = CFG_T_BOOL, .def = "false",
     CFG_FIELD(SS, tls_insecure)},
    {0},
};

static const struct cfg_key match_keys[] = {
    {.name = "field", .type = CFG_T_STRING, .flags = CFG_K_REQUIRED, CFG_FIELD(SS, match_field)},
    {.name = "equals", .type = CFG_T_STRING, .def = "\"${/attest/serial}\"",
     CFG_FIELD(SS, match_equals)},
    {0},
};

static const struct cfg_key cache_keys[] = {
    {.name = "ttl", .type = CFG_T_DURATION, .def = "5m", .min = 0, .max = 86400,
     CFG_FIELD(SS, cache_ttl)},
    {.name = "negative_ttl", .type = CFG_T_DURATION, .def = "30s", .min = 0, .max = 86400,
     CFG_FIELD(SS, cache_negative_ttl)},
    {0},
};

static const struct cfg_key retry_keys[] = {
    {.name = "attempts", .type = CFG_T_INT, .def = "3", .min = 1, .max = 10,
     CFG_FIELD(SS, retry_attempts)},
    {.name = "deadline", .type = CFG_T_DURATION, .def = "10s", .min = 1, .max = 600,
     CFG_FIELD(SS, retry_deadline)},
    {0},
};

static const struct cfg_key source_keys[] = {
    {.name = "type", .type = CFG_T_ENUM, .names = type_names, .flags = CFG_K_REQUIRED,
     CFG_FIELD(SS, type)},
    {.name = "request", .type = CFG_T_MAP, .sub = request_keys, .flags = CFG_K_REQUIRED},
    {.name = "auth", .type = CFG_T_MAP, .sub = auth_keys},
    {.name = "tls", .type = CFG_T_MAP, .sub = tls_keys},
    {.name = "timeout", .type = CFG_T_DURATION, .def = "5s", .min = 1, .max = 300,
     CFG_FIELD(SS, timeout)},
    {.name = "max_concurrency", .type = CFG_T_INT, .def = "8", .min = 1, .max = 1024,
     CFG_FIELD(SS, max_concurrency)},
    {.name = "records", .type = CFG_T_STRING, .def = "\"$\"", CFG_FIELD(SS, records)},
    {.name = "match", .type = CFG_T_MAP, .sub = match_keys, .flags = CFG_K_REQUIRED},
    {.name = "conditions", .type = CFG_T_CUSTOM, .parse = parse_conditions},
    {.name = "attributes", .type = CFG_T_CUSTOM, .parse = parse_attributes},
    {.name = "cache", .type = CFG_T_MAP, .sub = cache_keys},
    {.name = "retry", .type = CFG_T_MAP, .sub = retry_keys},
    {.name = "on_failure", .type = CFG_T_ENUM, .names = failure_names, .def = "deny",
     CFG_FIELD(SS, on_failure_allow)},
    {0},
};

/* A JSON path as mdm/ evaluates it: "$", "a.b", "[0]", "devices[0].x", "$.a". */
static const char *check_path(const char *s)
{
    static const char msg[] = "expected a JSON path such as $, value, devices[0] or a.b[2].c";
    size_t n = strlen(s);
    if (n == 0 || n > 255)
        return msg;
    if (s[0] == '$')
        s += s[1] == '.' ? 2 : 1;
    bool need_seg = false; /* after '.', a name must follow */
    while (*s != '\0') {
        if (*s == '[') {
            const char *p = s + 1;
            while (isdigit((unsigned char)*p))
                p++;
            if (p == s + 1 || p - s > 10 || *p != ']')
                return msg;
            s = p + 1;
            need_seg = false;
        } else if (*s == '.') {
            if (need_seg)
                return msg;
            need_seg = true;
            s++;
            continue;
        } else {
            size_t len = strcspn(s, ".[]");
            if (len == 0)
                return msg;
            s += len;
            need_seg = false;
        }
        /* after a name or an index: the end, '.' or '[' */
        if (*s != '\0' && *s != '.' && *s != '[')
            return msg;
    }
    return need_seg ? msg : NULL;
}

const char *cfg_check_name_us(const char *s)
{
    static const char msg[] = "name must match [a-z0-9][a-z0-9_-]{0,31}";
    size_t n = strlen(s);
    if (n == 0 || n > 32 || s[0] == '-' || s[0] == '_')
        return msg;
    for (size_t i = 0; i < n; i++) {
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '-' &&
            s[i] != '_')
            return msg;
    }
    return NULL;
}

/*
 * Every ${...} must be a known variable with known filters, so a typo fails
 * at load time instead of sending a literal "${/attest/serail}" to the MDM.
 */
static int check_template(struct cfg_ctx *ctx, unsigned line, const char *path, const char *t)
{
    char esc[96];
    for (const char *p = strstr(t, "${"); p != NULL; p = strstr(p, "${")) {
        const char *end = strchr(p, '}');
        if (end == NULL)
            return cfg_fail(ctx, line, path, "unterminated ${ in template");
        size_t len = (size_t)(end - p - 2);
        char var[128];
        if (len >= sizeof(var))
            return cfg_fail(ctx, line, path, "template variable too long");
        memcpy(var, p + 2, len);
        var[len] = '\0';
        char *bar = strchr(var, '|');
        const char *filter = "";
        if (bar != NULL) {
            *bar = '\0';
            filter = bar + 1;
        }
        if ((strcmp(var, "/attest/serial") != 0 && strcmp(var, "/attest/udid") != 0) ||
            (bar != NULL && strcmp(filter, "urlencode") != 0 && strcmp(filter, "json") != 0))
            return cfg_fail(ctx, line, path,
                            "unknown variable ${%s}; expected ${/attest/serial} or "
                            "${/attest/udid}, optionally with |urlencode or |json",
                            log_escape(p + 2, len < 48 ? len : 48, esc, sizeof(esc)));
        p = end + 1;
    }
    return 0;
}

/* Header names are RFC 9110 tokens; values may not smuggle extra lines. */
static bool is_token(const char *s)
{
    if (s[0] == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (!isalnum((unsigned char)*s) && strchr("!#$%&'*+-.^_`|~", *s) == NULL)
            return false;
    }
    return true;
}

/* A map NAME: scalar into a cfg_mdm_kv array; `paths` makes values JSON paths. */
static int parse_kv(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                    bool paths, size_t max, struct cfg_mdm_kv **out, size_t *nout)
{
    char kpath[CFG_PATH_LEN];
    if (node->type != CFG_NODE_MAP)
        return cfg_fail(ctx, node->line, path, "expected a map");
    if (node->n > max)
        return cfg_fail(ctx, node->line, path, "at most %zu entries", max);
    for (size_t i = 0; i < node->n; i++) {
        const struct cfg_node *v = node->kids[i];
        const char *why = NULL;
        cfg_path_join(kpath, path, node->keys[i]);
        if (v->type != CFG_NODE_SCALAR || v->str[0] == '\0')
            return cfg_fail(ctx, v->line, kpath, "expected a non-empty string");
        if (paths)
            why = check_path(v->str);
        else if (!is_token(node->keys[i]))
            why = "header name must be an HTTP token";
        else if (strpbrk(v->str, "\r\n") != NULL)
            why = "header value may not contain line breaks";
        if (why == NULL && !paths && check_template(ctx, v->line, kpath, v->str) != 0)
            return -1;
        if (why != NULL)
            return cfg_fail(ctx, v->line, kpath, "%s", why);
    }
    *out = xcalloc(node->n + 1, sizeof(**out));
    for (size_t i = 0; i < node->n; i++) {
        (*out)[i].name = xstrdup(node->keys[i]);
        (*out)[i].value = xstrdup(node->kids[i]->str);
    }
    *nout = node->n;
    return 0;
}

static int parse_headers(struct cfg_ctx *ctx, const struct cfg_key *key,
                         const struct cfg_node *node, const char *path, void *base)
{
    SS *s = base;
    return parse_kv(ctx, node, path, false, MAX_HEADERS, &s->headers, &s->nheaders);
}

static int parse_attributes(struct cfg_ctx *ctx, const struct cfg_key *key,
                            const struct cfg_node *node, const char *path, void *base)
{
    SS *s = base;
    char kpath[CFG_PATH_LEN];
    for (size_t i = 0; node->type == CFG_NODE_MAP && i < node->n; i++) {
        if (cfg_check_name_us(node->keys[i]) != NULL)
            return cfg_fail(ctx, node->key_lines[i], cfg_path_join(kpath, path, node->keys[i]),
                            "attribute name must match [a-z0-9][a-z0-9_-]{0,31}");
    }
    return parse_kv(ctx, node, path, true, MAX_ATTRIBUTES, &s->attributes, &s->nattributes);
}

/* `value` of one condition: a scalar, or a list of scalars for in/not_in. */
static int parse_cond_value(struct cfg_ctx *ctx, const struct cfg_node *v, const char *path,
                            struct cfg_mdm_condition *c)
{
    bool list_op = c->op == CFG_MDM_OP_IN || c->op == CFG_MDM_OP_NOT_IN;
    bool num_op = c->op >= CFG_MDM_OP_GT;
    size_t n = v->type == CFG_NODE_SEQ ? v->n : 1;
    if (list_op != (v->type == CFG_NODE_SEQ))
        return cfg_fail(ctx, v->line, path, list_op ? "expected a list" : "expected a scalar");
    if (n > MAX_VALUES)
        return cfg_fail(ctx, v->line, path, "at most %d values", MAX_VALUES);
    c->values = xcalloc(n + 1, sizeof(*c->values));
    for (size_t i = 0; i < n; i++) {
        const struct cfg_node *it = v->type == CFG_NODE_SEQ ? v->kids[i] : v;
        char *end = NULL;
        if (it->type != CFG_NODE_SCALAR)
            return cfg_fail(ctx, it->line, path, "expected scalar values");
        if (num_op) {
            (void)strtod(it->str, &end);
            if (it->str[0] == '\0' || end == NULL || *end != '\0')
                return cfg_fail(ctx, it->line, path, "expected a number");
        }
        c->values[i] = xstrdup(it->str);
        c->nvalues++;
    }
    return 0;
}

static int parse_condition(struct cfg_ctx *ctx, const struct cfg_node *it, const char *path,
                           struct cfg_mdm_condition *c)
{
    char kpath[CFG_PATH_LEN];
    const struct cfg_node *p = cfg_node_get(it, "path"), *op = cfg_node_get(it, "op");
    const struct cfg_node *v = cfg_node_get(it, "value");
    for (size_t k = 0; it->type == CFG_NODE_MAP && k < it->n; k++) {
        if (strcmp(it->keys[k], "path") != 0 && strcmp(it->keys[k], "op") != 0 &&
            strcmp(it->keys[k], "value") != 0)
            return cfg_fail(ctx, it->key_lines[k], cfg_path_join(kpath, path, it->keys[k]),
                            "unknown key");
    }
    if (it->type != CFG_NODE_MAP || p == NULL || op == NULL)
        return cfg_fail(ctx, it->line, path, "expected a map with path, op and value");
    cfg_path_join(kpath, path, "path");
    if (p->type != CFG_NODE_SCALAR || check_path(p->str) != NULL)
        return cfg_fail(ctx, p->line, kpath, "%s", check_path(""));
    c->path = xstrdup(p->str);
    cfg_path_join(kpath, path, "op");
    size_t i = 0;
    while (op->type == CFG_NODE_SCALAR && i < CFG_MDM_OP__MAX &&
           strcmp(cfg_mdm_op_names[i], op->str) != 0)
        i++;
    if (op->type != CFG_NODE_SCALAR || i == CFG_MDM_OP__MAX)
        return cfg_fail(ctx, op->line, kpath,
                        "expected one of exists|not_exists|equals|not_equals|in|not_in|"
                        "is_true|is_false|gt|ge|lt|le");
    c->op = (unsigned)i;
    cfg_path_join(kpath, path, "value");
    bool takes_value = c->op != CFG_MDM_OP_EXISTS && c->op != CFG_MDM_OP_NOT_EXISTS &&
                       c->op != CFG_MDM_OP_IS_TRUE && c->op != CFG_MDM_OP_IS_FALSE;
    if (!takes_value)
        return v == NULL ? 0 : cfg_fail(ctx, v->line, kpath, "op %s takes no value", op->str);
    if (v == NULL)
        return cfg_fail(ctx, it->line, kpath, "op %s needs a value", op->str);
    return parse_cond_value(ctx, v, kpath, c);
}

static int parse_conditions(struct cfg_ctx *ctx, const struct cfg_key *key,
                            const struct cfg_node *node, const char *path, void *base)
{
    SS *s = base;
    char ipath[CFG_PATH_LEN];
    if (node->type != CFG_NODE_SEQ)
        return cfg_fail(ctx, node->line, path, "expected a list of {path, op, value}");
    if (node->n > MAX_CONDITIONS)
        return cfg_fail(ctx, node->line, path, "at most %d conditions", MAX_CONDITIONS);
    s->conditions = xcalloc(node->n + 1, sizeof(*s->conditions));
    for (size_t i = 0; i < node->n; i++) {
        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        s->nconditions++; /* counted first so a failed parse is still freed */
        if (parse_condition(ctx, node->kids[i], ipath, &s->conditions[i]) != 0)
            return -1;
    }
    return 0;
}

static void source_free(void *base)
{
    SS *s = base;
    for (size_t i = 0; i < s->nheaders; i++) {
        free(s->headers[i].name);
        free(s->headers[i].value);
    }
    for (size_t i = 0; i < s->nattributes; i++) {
        free(s->attributes[i].name);
        free(s->attributes[i].value);
    }
    for (size_t i = 0; i < s->nconditions; i++) {
        free(s->conditions[i].path);
        for (size_t j = 0; j < s->conditions[i].nvalues; j++)
            free(s->conditions[i].values[j]);
        free(s->conditions[i].values);
    }
    free(s->headers);
    free(s->attributes);
    free(s->conditions);
}

/* Exactly one of *_env / *_file (both names for errors) when `needed`, never both. */
static int check_secret(struct cfg_ctx *ctx, const struct cfg_node *auth, const char *path,
                        const char *what, const char *env, const char *file, bool needed)
{
    char kpath[CFG_PATH_LEN];
    char ek[48], fk[48];
    snprintf(ek, sizeof(ek), "%s_env", what);
    snprintf(fk, sizeof(fk), "%s_file", what);
    if (env != NULL && file != NULL)
        return cfg_fail(ctx, cfg_node_key_line(auth, fk), cfg_path_join(kpath, path, fk),
                        "set only one of %s and %s", ek, fk);
    if (needed && env == NULL && file == NULL)
        return cfg_fail(ctx, cfg_node_key_line(auth, "type"), cfg_path_join(kpath, path, ek),
                        "%s or %s is required for this auth type", ek, fk);
    return 0;
}

static int check_auth(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                      const SS *s)
{
    char apath[CFG_PATH_LEN], kpath[CFG_PATH_LEN];
    const struct cfg_node *auth = cfg_node_get(node, "auth");
    unsigned line = auth != NULL ? cfg_node_key_line(auth, "type") : cfg_node_key_line(node, "auth");
    unsigned t = s->auth_type;
    cfg_path_join(apath, path, "auth");
    if (check_secret(ctx, auth, apath, "token", s->auth_token_env, s->auth_token_file,
                     t == CFG_MDM_AUTH_BEARER) != 0 ||
        check_secret(ctx, auth, apath, "password", s->auth_password_env,
                     s->auth_password_file, false) != 0 ||
        check_secret(ctx, auth, apath, "value", s->auth_value_env, s->auth_value_file,
                     t == CFG_MDM_AUTH_HEADER) != 0 ||
        check_secret(ctx, auth, apath, "client_secret", s->auth_client_secret_env,
                     s->auth_client_secret_file, t == CFG_MDM_AUTH_OAUTH2) != 0)
        return -1;
    if (t == CFG_MDM_AUTH_BASIC && s->auth_username == NULL)
        return cfg_fail(ctx, line, cfg_path_join(kpath, apath, "username"),
                        "required for auth type basic");
    if (t == CFG_MDM_AUTH_HEADER && (s->auth_header == NULL || !is_token(s->auth_header)))
        return cfg_fail(ctx, line, cfg_path_join(kpath, apath, "header"),
                        "an HTTP header name is required for auth type header");
    if (t == CFG_MDM_AUTH_OAUTH2 && (s->auth_token_url == NULL || s->auth_client_id == NULL))
        return cfg_fail(ctx, line, cfg_path_join(kpath, apath, "token_url"),
                        "token_url and client_id are required for oauth2_client_credentials");
    return 0;
}

static int source_check(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                        void *base)
{
    SS *s = base;
    char kpath[CFG_PATH_LEN], rpath[CFG_PATH_LEN], mpath[CFG_PATH_LEN];
    const struct cfg_node *req = cfg_node_get(node, "request");
    const struct cfg_node *match = cfg_node_get(node, "match");
    cfg_path_join(rpath, path, "request");
    cfg_path_join(mpath, path, "match");
    if (check_template(ctx, cfg_node_key_line(req, "url"), cfg_path_join(kpath, rpath, "url"),
                       s->url) != 0)
        return -1;
    if (s->body != NULL && check_template(ctx, cfg_node_key_line(req, "body"),
                                          cfg_path_join(kpath, rpath, "body"), s->body) != 0)
        return -1;
    if (check_template(ctx, cfg_node_key_line(match, "equals"),
                       cfg_path_join(kpath, mpath, "equals"), s->match_equals) != 0)
        return -1;
    if (check_path(s->match_field) != NULL)
        return cfg_fail(ctx, cfg_node_key_line(match, "field"),
                        cfg_path_join(kpath, mpath, "field"), "%s", check_path(""));
    if (check_path(s->records) != NULL)
        return cfg_fail(ctx, cfg_node_key_line(node, "records"),
                        cfg_path_join(kpath, path, "records"), "%s", check_path(""));
    if (s->body != NULL && strcmp(s->method, "GET") == 0)
        return cfg_fail(ctx, cfg_node_key_line(req, "body"), cfg_path_join(kpath, rpath, "body"),
                        "a body needs method POST");
    return check_auth(ctx, node, path, s);
}

const struct cfg_section cfg_section_signal_sources = {
    .name = "signal_sources",
    .keys = source_keys,
    .keyed = true,
    .offset = offsetof(struct cfg, signal_sources),
    .count_off = offsetof(struct cfg, nsignal_sources),
    .elem_size = sizeof(SS),
    .name_off = offsetof(SS, name),
    .fallback = NULL,
    .name_check = cfg_check_name_us,
    .free_entry = source_free,
    .check = source_check,
};
