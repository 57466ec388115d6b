/*
 * config schema engine: applies a section's key table to a node tree. It
 * owns type parsing (int, bool, duration, size, enum, flag lists, string
 * lists, nested maps), range checks, defaults (written as YAML text in the
 * table and parsed by the same code as the file, so the two cannot drift),
 * relative path resolution and freeing what the tables describe.
 */
#include "config/cfg_int.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cfg_fail(struct cfg_ctx *ctx, unsigned line, const char *path, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (line > 0)
        n = snprintf(ctx->err, CFG_ERR_LEN, "%s:%u: %s: ", ctx->file, line, path);
    else
        n = snprintf(ctx->err, CFG_ERR_LEN, "%s: %s: ", ctx->file, path);
    if (n < 0 || n >= CFG_ERR_LEN)
        return -1;
    va_start(ap, fmt);
    vsnprintf(ctx->err + n, CFG_ERR_LEN - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

char *cfg_path_join(char out[CFG_PATH_LEN], const char *prefix, const char *key)
{
    char esc[96];
    /* Keys come from the file; escaping keeps control bytes out of error lines. */
    log_escape(key, 64, esc, sizeof(esc));
    if (prefix == NULL || prefix[0] == '\0')
        snprintf(out, CFG_PATH_LEN, "%s", esc);
    else
        snprintf(out, CFG_PATH_LEN, "%s.%s", prefix, esc);
    return out;
}

static void *field(void *base, size_t off)
{
    return (char *)base + off;
}

static void store_num(void *base, const struct cfg_key *k, long long v)
{
    void *p = field(base, k->offset);
    switch (k->store) {
    case CFG_S_INT: *(int *)p = (int)v; break;
    case CFG_S_I64: *(int64_t *)p = (int64_t)v; break;
    case CFG_S_SIZE: *(size_t *)p = (size_t)v; break;
    case CFG_S_UINT: *(unsigned *)p = (unsigned)v; break;
    case CFG_S_BOOL: *(bool *)p = v != 0; break;
    default: break;
    }
}

static void store_str(void *base, const struct cfg_key *k, char *s)
{
    char **p = field(base, k->offset);
    free(*p);
    *p = s;
}

static void free_strv(void *base, const struct cfg_key *k)
{
    char ***vp = field(base, k->offset);
    size_t *np = field(base, k->aux);
    for (size_t i = 0; i < *np; i++)
        free((*vp)[i]);
    free(*vp);
    *vp = NULL;
    *np = 0;
}

/* A copy of s; relative paths are joined to ctx->dir when there is one. */
static char *resolve(const struct cfg_ctx *ctx, const struct cfg_key *k, const char *s)
{
    if (!(k->flags & CFG_K_PATH) || ctx->dir == NULL || s[0] == '/')
        return xstrdup(s);
    while (s[0] == '.' && s[1] == '/')
        s += 2;
    return xasprintf("%s/%s", ctx->dir, s);
}

/* Durations print in the largest unit that divides them, as a user would write them. */
static void fmt_duration(long long v, char out[32])
{
    if (v != 0 && v % 86400 == 0)
        snprintf(out, 32, "%lldd", v / 86400);
    else if (v != 0 && v % 3600 == 0)
        snprintf(out, 32, "%lldh", v / 3600);
    else if (v != 0 && v % 60 == 0)
        snprintf(out, 32, "%lldm", v / 60);
    else
        snprintf(out, 32, "%llds", v);
}

/* Sub-second bounds stay in ms; whole seconds print like other durations ("0ms", "10s"). */
static void fmt_duration_ms(long long v, char out[32])
{
    if (v != 0 && v % 1000 == 0)
        fmt_duration(v / 1000, out);
    else
        snprintf(out, 32, "%lldms", v);
}

static int expect(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *n,
                  const char *path)
{
    char a[32], b[32], names[256] = "";
    size_t off = 0;
    for (size_t i = 0; k->names != NULL && k->names[i] != NULL && off < sizeof(names); i++)
        off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s", i > 0 ? "|" : "",
                                k->names[i]);
    switch (k->type) {
    case CFG_T_INT:
        return cfg_fail(ctx, n->line, path, "expected an integer from %lld to %lld%s", k->min,
                        k->max, (k->flags & CFG_K_AUTO) ? " or auto" : "");
    case CFG_T_BOOL: return cfg_fail(ctx, n->line, path, "expected true or false");
    case CFG_T_DURATION:
        fmt_duration(k->min, a);
        fmt_duration(k->max, b);
        return cfg_fail(ctx, n->line, path, "expected a duration from %s to %s", a, b);
    case CFG_T_DURATION_MS:
        fmt_duration_ms(k->min, a);
        fmt_duration_ms(k->max, b);
        return cfg_fail(ctx, n->line, path, "expected a duration from %s to %s", a, b);
    case CFG_T_SIZE:
        return cfg_fail(ctx, n->line, path, "expected a size from %lld to %lld (bytes, k or m)",
                        k->min, k->max);
    case CFG_T_ENUM: return cfg_fail(ctx, n->line, path, "expected one of %s", names);
    case CFG_T_FLAGS: return cfg_fail(ctx, n->line, path, "expected a list of %s", names);
    case CFG_T_LIST: return cfg_fail(ctx, n->line, path, "expected a list of strings");
    case CFG_T_MAP: return cfg_fail(ctx, n->line, path, "expected a map");
    default: return cfg_fail(ctx, n->line, path, "expected a string");
    }
}

/* Digits with an optional k/m/g (binary) suffix. */
static int parse_size(const char *s, long long *out)
{
    char num[32];
    size_t n = strlen(s);
    long long mult = 1, v;
    if (n == 0 || n >= sizeof(num) || !isdigit((unsigned char)s[0]))
        return -1;
    memcpy(num, s, n + 1);
    switch (num[n - 1]) {
    case 'k': case 'K': mult = 1024; break;
    case 'm': case 'M': mult = 1024 * 1024; break;
    case 'g': case 'G': mult = 1024 * 1024 * 1024; break;
    default: break;
    }
    if (mult != 1)
        num[n - 1] = '\0';
    if (str_to_ll(num, 0, INT64_MAX / mult, &v) != 0)
        return -1;
    *out = v * mult;
    return 0;
}

/*
 * Milliseconds: plain digits or an "ms" suffix are milliseconds; s/m/h/d go
 * through clk_parse_duration, so the units mean what they mean everywhere else.
 */
static int parse_duration_ms(const char *s, long long *out)
{
    char num[32];
    size_t n = strlen(s);
    int64_t d;
    if (n == 0 || n >= sizeof(num) || !isdigit((unsigned char)s[0]))
        return -1;
    if (isdigit((unsigned char)s[n - 1]) || (n > 2 && strcmp(s + n - 2, "ms") == 0)) {
        memcpy(num, s, n + 1);
        if (!isdigit((unsigned char)s[n - 1]))
            num[n - 2] = '\0';
        return str_to_ll(num, 0, INT64_MAX, out);
    }
    if (clk_parse_duration(s, &d) != 0 || d > INT64_MAX / 1000)
        return -1;
    *out = d * 1000;
    return 0;
}

static int parse_number(const struct cfg_key *k, const char *s, long long *v)
{
    int64_t d;
    switch (k->type) {
    case CFG_T_INT:
        if ((k->flags & CFG_K_AUTO) && strcmp(s, "auto") == 0) {
            *v = 0;
            return 0;
        }
        if (!isdigit((unsigned char)s[0]) && s[0] != '-')
            return -1;
        return str_to_ll(s, k->min, k->max, v);
    case CFG_T_DURATION:
        if (!isdigit((unsigned char)s[0]) || clk_parse_duration(s, &d) != 0)
            return -1;
        *v = d;
        break;
    case CFG_T_DURATION_MS:
        if (parse_duration_ms(s, v) != 0)
            return -1;
        break;
    case CFG_T_SIZE:
        if (parse_size(s, v) != 0)
            return -1;
        break;
    default:
        return -1;
    }
    return *v >= k->min && *v <= k->max ? 0 : -1;
}

int cfg_parse_flags(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                    const char *const *names, long long min, unsigned *out)
{
    struct cfg_key k = {.type = CFG_T_FLAGS, .names = names};
    char ipath[CFG_PATH_LEN];
    unsigned bits = 0;
    if (node->type != CFG_NODE_SEQ)
        return expect(ctx, &k, node, path);
    for (size_t i = 0; i < node->n; i++) {
        const struct cfg_node *it = node->kids[i];
        int idx = it->type == CFG_NODE_SCALAR ? str_index(names, SIZE_MAX, it->str) : -1;
        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        if (idx < 0) {
            k.type = CFG_T_ENUM;
            return expect(ctx, &k, it, ipath);
        }
        if (bits & (1u << idx))
            return cfg_fail(ctx, it->line, ipath, "duplicate value %s", names[idx]);
        bits |= 1u << idx;
    }
    if ((long long)node->n < min)
        return cfg_fail(ctx, node->line, path, "expected at least %lld item%s", min,
                        min == 1 ? "" : "s");
    *out = bits;
    return 0;
}

static int parse_list(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *n,
                      const char *path, void *base)
{
    char ipath[CFG_PATH_LEN];
    if (n->type != CFG_NODE_SEQ)
        return expect(ctx, k, n, path);
    for (size_t i = 0; i < n->n; i++) {
        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        if (n->kids[i]->type != CFG_NODE_SCALAR || n->kids[i]->str[0] == '\0')
            return cfg_fail(ctx, n->kids[i]->line, ipath, "expected a non-empty string");
    }
    free_strv(base, k);
    char **v = xcalloc(n->n + 1, sizeof(*v));
    for (size_t i = 0; i < n->n; i++)
        v[i] = resolve(ctx, k, n->kids[i]->str);
    *(char ***)field(base, k->offset) = v;
    *(size_t *)field(base, k->aux) = n->n;
    return 0;
}

static int parse_scalar(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *n,
                        const char *path, void *base)
{
    long long v = 0;
    int idx;
    const char *why;
    if (n->type != CFG_NODE_SCALAR)
        return expect(ctx, k, n, path);
    switch (k->type) {
    case CFG_T_BOOL:
        if (strcmp(n->str, "true") != 0 && strcmp(n->str, "false") != 0)
            return expect(ctx, k, n, path);
        store_num(base, k, n->str[0] == 't');
        return 0;
    case CFG_T_ENUM:
        idx = str_index(k->names, SIZE_MAX, n->str);
        if (idx < 0)
            return expect(ctx, k, n, path);
        if (k->store == CFG_S_STR)
            store_str(base, k, xstrdup(k->names[idx]));
        else
            store_num(base, k, idx);
        return 0;
    case CFG_T_STRING:
        if (cfg_node_is_null(n) && !(k->flags & CFG_K_REQUIRED) && k->def == NULL) {
            store_str(base, k, NULL);
            return 0;
        }
        why = n->str[0] == '\0' ? "expected a non-empty string" : NULL;
        if (why == NULL && k->check != NULL)
            why = k->check(n->str);
        if (why != NULL)
            return cfg_fail(ctx, n->line, path, "%s", why);
        store_str(base, k, resolve(ctx, k, n->str));
        return 0;
    default:
        if (parse_number(k, n->str, &v) != 0)
            return expect(ctx, k, n, path);
        store_num(base, k, v);
        return 0;
    }
}

static int parse_value(struct cfg_ctx *ctx, const struct cfg_key *k, const struct cfg_node *n,
                       const char *path, void *base)
{
    unsigned bits = 0;
    switch (k->type) {
    case CFG_T_MAP:
        return cfg_schema_apply(ctx, k->sub, n, base, path);
    case CFG_T_LIST:
        return parse_list(ctx, k, n, path, base);
    case CFG_T_FLAGS:
        if (cfg_parse_flags(ctx, n, path, k->names, k->min, &bits) != 0)
            return -1;
        store_num(base, k, bits);
        return 0;
    case CFG_T_CUSTOM:
        return k->parse(ctx, k, n, path, base);
    default:
        return parse_scalar(ctx, k, n, path, base);
    }
}

int cfg_schema_defaults(struct cfg_ctx *ctx, const struct cfg_key *keys, void *base,
                        const char *path)
{
    char kpath[CFG_PATH_LEN];
    for (const struct cfg_key *k = keys; k->name != NULL; k++) {
        struct cfg_node *n = NULL;
        cfg_path_join(kpath, path, k->name);
        if (k->type == CFG_T_MAP) {
            if (cfg_schema_defaults(ctx, k->sub, base, kpath) != 0)
                return -1;
            continue;
        }
        if (k->def == NULL)
            continue;
        if (cfg_yaml_parse("<built-in default>", k->def, strlen(k->def), &n, ctx->err) != 0)
            return -1;
        int rc = n != NULL ? parse_value(ctx, k, n, kpath, base)
                           : cfg_fail(ctx, 0, kpath, "empty built-in default");
        cfg_node_free(n);
        if (rc != 0)
            return -1;
    }
    return 0;
}

int cfg_schema_apply(struct cfg_ctx *ctx, const struct cfg_key *keys, const struct cfg_node *map,
                     void *base, const char *path)
{
    char kpath[CFG_PATH_LEN];
    unsigned line = map != NULL ? map->line : 0;
    if (map == NULL || cfg_node_is_null(map))
        map = NULL;
    else if (map->type != CFG_NODE_MAP)
        return cfg_fail(ctx, map->line, path, "expected a map");
    for (size_t i = 0; map != NULL && i < map->n; i++) {
        const struct cfg_key *k = keys;
        while (k->name != NULL && strcmp(k->name, map->keys[i]) != 0)
            k++;
        cfg_path_join(kpath, path, map->keys[i]);
        if (k->name == NULL)
            return cfg_fail(ctx, map->key_lines[i], kpath, "unknown key");
        if (parse_value(ctx, k, map->kids[i], kpath, base) != 0)
            return -1;
    }
    for (const struct cfg_key *k = keys; k->name != NULL; k++) {
        if ((k->flags & CFG_K_REQUIRED) && cfg_node_get(map, k->name) == NULL)
            return cfg_fail(ctx, line, path, "missing required key %s",
                            k->name);
    }
    return 0;
}

void cfg_schema_free(const struct cfg_key *keys, void *base)
{
    if (base == NULL)
        return;
    for (const struct cfg_key *k = keys; k->name != NULL; k++) {
        if (k->type == CFG_T_MAP)
            cfg_schema_free(k->sub, base);
        else if (k->store == CFG_S_STR)
            store_str(base, k, NULL);
        else if (k->store == CFG_S_STRV)
            free_strv(base, k);
    }
}

const char *cfg_check_hostport(const char *s)
{
    static const char msg[] = "expected host:port";
    const char *colon = strrchr(s, ':');
    long long port;
    if (colon == NULL || colon == s || str_to_ll(colon + 1, 0, 65535, &port) != 0 ||
        !isdigit((unsigned char)colon[1]))
        return msg;
    if (s[0] == '[') {
        /* Bracketed IPv6 literal: "[::1]:8443". */
        if (colon[-1] != ']' || colon - s < 3)
            return msg;
        for (const char *p = s + 1; p < colon - 1; p++) {
            if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
                return msg;
        }
        return NULL;
    }
    for (const char *p = s; p < colon; p++) {
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
            return msg;
    }
    return NULL;
}

const char *cfg_check_url(const char *s)
{
    if (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0)
        return "expected an http:// or https:// URL";
    for (const char *p = s; *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return "expected a URL without spaces or control characters";
    }
    return NULL;
}

const char *cfg_check_name(const char *s)
{
    static const char msg[] = "name must match [a-z0-9][a-z0-9-]{0,31}";
    size_t n = strlen(s);
    if (n == 0 || n > 32 || s[0] == '-')
        return msg;
    for (size_t i = 0; i < n; i++) {
        if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= '0' && s[i] <= '9') && s[i] != '-')
            return msg;
    }
    return NULL;
}
