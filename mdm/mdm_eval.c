/*
 * mdm evaluation: everything between "the MDM answered 2xx with these bytes"
 * and "allow/deny because ...", with no I/O so it can be tested with hostile
 * JSON. MDM answers are untrusted: nesting is bounded before cJSON recurses,
 * paths treat wrong types and out-of-range indexes as "missing", and the match
 * is exact string equality because MDM searches (Kandji's serial_number
 * filter) return partial matches.
 */
#include "mdm/mdm_int.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cJSON *mdm_json_parse(const char *body, size_t len, char err[ERR_LEN])
{
    const char *end = NULL;
    cJSON *root;
    if (!json_depth_ok(body, len, MDM_MAX_DEPTH)) {
        snprintf(err, ERR_LEN, "JSON nested deeper than %d", MDM_MAX_DEPTH);
        return NULL;
    }
    root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (root == NULL) {
        snprintf(err, ERR_LEN, "malformed JSON");
        return NULL;
    }
    /* Trailing garbage after the value means the answer is not what we think. */
    while (end != NULL && end < body + len && isspace((unsigned char)*end))
        end++;
    if (end == NULL || end != body + len) {
        cJSON_Delete(root);
        snprintf(err, ERR_LEN, "malformed JSON (trailing data)");
        return NULL;
    }
    return root;
}

const cJSON *mdm_json_path_get(const cJSON *root, const char *path)
{
    const cJSON *cur = root;
    const char *s = path;
    int segs = 0;
    if (root == NULL || path == NULL)
        return NULL;
    if (s[0] == '$')
        s += s[1] == '.' ? 2 : 1;
    while (*s != '\0' && cur != NULL) {
        if (++segs > MDM_MAX_PATH_SEGS)
            return NULL;
        if (*s == '.') {
            s++;
            continue;
        }
        if (*s == '[') {
            char *end = NULL;
            if (!isdigit((unsigned char)s[1]))
                return NULL;
            unsigned long idx = strtoul(s + 1, &end, 10);
            if (end == NULL || *end != ']' || end - s > 10 || !cJSON_IsArray(cur) ||
                idx >= (unsigned long)cJSON_GetArraySize(cur))
                return NULL;
            cur = cJSON_GetArrayItem(cur, (int)idx);
            s = end + 1;
            continue;
        }
        char name[128];
        size_t len = strcspn(s, ".[");
        if (len == 0 || len >= sizeof(name) || !cJSON_IsObject(cur))
            return NULL;
        memcpy(name, s, len);
        name[len] = '\0';
        cur = cJSON_GetObjectItemCaseSensitive(cur, name);
        s += len;
    }
    return cur;
}

static void put_urlencoded(struct buf *b, const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            buf_append(b, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            buf_append(b, e, 3);
        }
    }
}

static void put_json_escaped(struct buf *b, const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            buf_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            buf_printf(b, "\\u%04x", *p);
        else
            buf_append(b, p, 1);
    }
}

char *mdm_template_expand(const char *tmpl, const struct mdm_vars *vars, char err[ERR_LEN])
{
    struct buf b = {0};
    const char *p = tmpl;
    while (*p != '\0') {
        const char *start = strstr(p, "${"), *end;
        if (start == NULL) {
            buf_puts(&b, p);
            break;
        }
        buf_append(&b, p, (size_t)(start - p));
        end = strchr(start, '}');
        char var[64];
        size_t len = end != NULL ? (size_t)(end - start - 2) : sizeof(var);
        if (len >= sizeof(var)) {
            snprintf(err, ERR_LEN, "bad template variable");
            goto fail;
        }
        memcpy(var, start + 2, len);
        var[len] = '\0';
        char *bar = strchr(var, '|');
        const char *filter = "", *val = NULL;
        if (bar != NULL) {
            *bar = '\0';
            filter = bar + 1;
        }
        if (strcmp(var, "/attest/serial") == 0)
            val = vars->serial;
        else if (strcmp(var, "/attest/udid") == 0)
            val = vars->udid;
        else {
            snprintf(err, ERR_LEN, "unknown template variable");
            goto fail;
        }
        if (val == NULL) {
            snprintf(err, ERR_LEN, "template needs %s, which the attestation did not give", var);
            goto fail;
        }
        if (strcmp(filter, "urlencode") == 0)
            put_urlencoded(&b, val);
        else if (strcmp(filter, "json") == 0)
            put_json_escaped(&b, val);
        else if (filter[0] == '\0')
            buf_puts(&b, val);
        else {
            snprintf(err, ERR_LEN, "unknown template filter");
            goto fail;
        }
        p = end + 1;
    }
    return buf_take(&b);
fail:
    buf_free(&b);
    return NULL;
}

char *mdm_json_text(const cJSON *v, size_t max)
{
    char *s, *out;
    if (v == NULL)
        return xstrdup("missing");
    s = cJSON_IsString(v) ? xstrdup(v->valuestring) : cJSON_PrintUnformatted(v);
    if (s == NULL)
        return xstrdup("?");
    if (strlen(s) <= max) {
        out = xstrdup(s);
    } else {
        out = xmalloc(max + 4);
        memcpy(out, s, max);
        memcpy(out + max, "...", 4);
    }
    free(s);
    return out;
}

/* A JSON number, or a string that is entirely a finite number ("12", " 3.5" is not). */
static bool json_number(const cJSON *v, double *out)
{
    char *end = NULL;
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return true;
    }
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0' || isspace((unsigned char)v->valuestring[0]))
        return false;
    *out = strtod(v->valuestring, &end);
    return end != NULL && *end == '\0' && isfinite(*out);
}

static bool text_number(const char *s, double *out)
{
    char *end = NULL;
    *out = strtod(s, &end);
    return s[0] != '\0' && end != NULL && *end == '\0' && isfinite(*out);
}

/* Typed equality: the JSON value's type decides how the configured text is read. */
static bool value_equals(const cJSON *v, const char *want)
{
    double a, b;
    if (cJSON_IsBool(v))
        return strcmp(want, cJSON_IsTrue(v) ? "true" : "false") == 0;
    if (cJSON_IsNumber(v))
        return text_number(want, &b) && json_number(v, &a) && a == b;
    if (cJSON_IsString(v))
        return strcmp(v->valuestring, want) == 0;
    if (cJSON_IsNull(v))
        return strcmp(want, "null") == 0;
    return false;
}

static bool truth(const cJSON *v, bool want)
{
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v) == want;
    if (!cJSON_IsString(v))
        return false;
    if (want)
        return strcmp(v->valuestring, "true") == 0 || strcmp(v->valuestring, "True") == 0;
    return strcmp(v->valuestring, "false") == 0 || strcmp(v->valuestring, "False") == 0;
}

static bool any_equal(const cJSON *v, const struct cfg_mdm_condition *c)
{
    for (size_t i = 0; i < c->nvalues; i++) {
        if (value_equals(v, c->values[i]))
            return true;
    }
    return false;
}

static bool compare(const cJSON *v, const struct cfg_mdm_condition *c)
{
    double a, b;
    if (c->nvalues != 1 || !json_number(v, &a) || !text_number(c->values[0], &b))
        return false;
    switch (c->op) {
    case CFG_MDM_OP_GT: return a > b;
    case CFG_MDM_OP_GE: return a >= b;
    case CFG_MDM_OP_LT: return a < b;
    default: return a <= b;
    }
}

static void describe(const struct cfg_mdm_condition *c, char *desc, size_t desclen)
{
    struct buf b = {0};
    char *s;
    buf_printf(&b, "%s %s", c->path, cfg_mdm_op_names[c->op]);
    if (c->op == CFG_MDM_OP_IN || c->op == CFG_MDM_OP_NOT_IN) {
        buf_puts(&b, " [");
        for (size_t i = 0; i < c->nvalues; i++)
            buf_printf(&b, "%s%s", i > 0 ? ", " : "", c->values[i]);
        buf_puts(&b, "]");
    } else if (c->nvalues > 0) {
        buf_printf(&b, " %s", c->values[0]);
    }
    s = buf_take(&b);
    snprintf(desc, desclen, "%s", s);
    free(s);
}

bool mdm_cond_eval(const struct cfg_mdm_condition *c, const cJSON *rec, char *desc,
                   size_t desclen, char *actual, size_t actuallen)
{
    const cJSON *v = mdm_json_path_get(rec, c->path);
    char *shown = mdm_json_text(v, MDM_VALUE_SHOW), esc[3 * MDM_VALUE_SHOW + 16];
    bool ok = false;
    describe(c, desc, desclen);
    log_escape(shown, strlen(shown), esc, sizeof(esc));
    if (v == NULL)
        snprintf(actual, actuallen, "missing");
    else
        snprintf(actual, actuallen, "value %s", esc);
    free(shown);
    if (v == NULL)
        return c->op == CFG_MDM_OP_NOT_EXISTS;
    switch (c->op) {
    case CFG_MDM_OP_EXISTS: ok = !cJSON_IsNull(v); break;
    case CFG_MDM_OP_NOT_EXISTS: ok = cJSON_IsNull(v); break;
    case CFG_MDM_OP_EQUALS: ok = c->nvalues == 1 && value_equals(v, c->values[0]); break;
    case CFG_MDM_OP_NOT_EQUALS: ok = c->nvalues == 1 && !value_equals(v, c->values[0]); break;
    case CFG_MDM_OP_IN: ok = any_equal(v, c); break;
    case CFG_MDM_OP_NOT_IN: ok = !any_equal(v, c); break;
    case CFG_MDM_OP_IS_TRUE: ok = truth(v, true); break;
    case CFG_MDM_OP_IS_FALSE: ok = truth(v, false); break;
    default: ok = compare(v, c); break;
    }
    return ok;
}

/* Conditions and attributes of the matched record; the verdict follows the conditions. */
static void judge_record(const struct cfg_signal_source *src, const cJSON *rec,
                         struct mdm_result *res)
{
    char desc[256], actual[3 * MDM_VALUE_SHOW + 32];
    const char *first_fail = NULL;
    char *fail_reason = NULL;
    res->conds = xcalloc(src->nconditions + 1, sizeof(*res->conds));
    for (size_t i = 0; i < src->nconditions; i++) {
        bool pass = mdm_cond_eval(&src->conditions[i], rec, desc, sizeof(desc), actual,
                                  sizeof(actual));
        res->conds[i].text = xasprintf("%s (%s)", desc, actual);
        res->conds[i].pass = pass;
        res->nconds++;
        if (!pass && first_fail == NULL) {
            first_fail = res->conds[i].text;
            fail_reason = xasprintf("%s: condition %s failed (%s)", src->name, desc, actual);
        }
    }
    res->attrs = xcalloc(src->nattributes + 1, sizeof(*res->attrs));
    for (size_t i = 0; i < src->nattributes; i++) {
        const cJSON *v = mdm_json_path_get(rec, src->attributes[i].value);
        if (v == NULL || cJSON_IsNull(v))
            continue;
        res->attrs[res->nattrs].name = xstrdup(src->attributes[i].name);
        res->attrs[res->nattrs].value = mdm_json_text(v, 1024);
        res->nattrs++;
    }
    res->record_json = cJSON_Print(rec);
    if (fail_reason != NULL) {
        res->verdict = MDM_DENY;
        res->reason = fail_reason;
    } else {
        res->verdict = MDM_ALLOW;
        res->reason = xasprintf("%s: device found, %zu condition%s passed", src->name,
                                src->nconditions, src->nconditions == 1 ? "" : "s");
    }
}

int mdm_evaluate(const struct cfg_signal_source *src, const cJSON *root,
                 const struct mdm_vars *vars, struct mdm_result *res, char err[ERR_LEN])
{
    const cJSON *node = mdm_json_path_get(root, src->records), *rec, *match = NULL;
    char *want = NULL, esc[3 * MDM_MAX_SERIAL + 8];
    size_t nrec = 0;
    if (node == NULL || (!cJSON_IsArray(node) && !cJSON_IsObject(node))) {
        snprintf(err, ERR_LEN, "records path \"%s\" is %s", src->records,
                 node == NULL ? "not in the answer" : "not an array or object");
        return -1;
    }
    want = mdm_template_expand(src->match_equals, vars, err);
    if (want == NULL)
        return -1;
    if (cJSON_IsObject(node)) {
        nrec = 1;
        rec = mdm_json_path_get(node, src->match_field);
        if (cJSON_IsString(rec) && strcmp(rec->valuestring, want) == 0)
            match = node;
    } else {
        cJSON_ArrayForEach(rec, node) {
            const cJSON *f = mdm_json_path_get(rec, src->match_field);
            nrec++;
            if (match == NULL && cJSON_IsObject(rec) && cJSON_IsString(f) &&
                strcmp(f->valuestring, want) == 0)
                match = rec;
        }
    }
    if (match != NULL) {
        judge_record(src, match, res);
    } else {
        log_escape(want, MDM_MAX_SERIAL, esc, sizeof(esc));
        res->verdict = MDM_DENY;
        if (nrec == 0)
            res->reason = xasprintf("%s: no device with %s \"%s\" (no records)", src->name,
                                    src->match_field, esc);
        else
            res->reason = xasprintf("%s: no device with %s \"%s\" (%zu record%s, none matched "
                                    "exactly)", src->name, src->match_field, esc, nrec,
                                    nrec == 1 ? "" : "s");
    }
    free(want);
    return 0;
}
