/*
 * pol_pred.c: device role predicates. Each predicate reads one value (an
 * attested claim, a signal source's verdict or attribute, the account's EAB
 * key id) and applies one operator. An absent value holds only for
 * not_exists: a role is a grant, and missing data must never grant. When a
 * predicate fails it says why in words an administrator can act on.
 */
#include "policy/pol_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ESC_MAX 64 /* input bytes of a value quoted in a reason */

void pol_append(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    size_t used;
    if (out == NULL || len == 0)
        return;
    used = strnlen(out, len);
    if (used >= len - 1)
        return;
    va_start(ap, fmt);
    vsnprintf(out + used, len - used, fmt, ap);
    va_end(ap);
}

const struct pol_mdm *pol_mdm_find(const struct pol_input *in, const char *name)
{
    for (size_t i = 0; in != NULL && in->mdm != NULL && i < in->nmdm; i++) {
        if (in->mdm[i].source != NULL && strcmp(in->mdm[i].source, name) == 0)
            return &in->mdm[i];
    }
    return NULL;
}

const char *pol_mdm_attr(const struct pol_mdm *m, const char *name)
{
    for (size_t i = 0; m != NULL && m->attrs != NULL && i < m->nattrs; i++) {
        if (m->attrs[i].name != NULL && strcmp(m->attrs[i].name, name) == 0)
            return m->attrs[i].value;
    }
    return NULL;
}

/* Leading dotted numbers of s into parts; the count, or -1 when s does not start with one. */
static int version_parse(const char *s, unsigned long parts[POL_VERSION_MAX_PARTS])
{
    int n = 0;
    memset(parts, 0, POL_VERSION_MAX_PARTS * sizeof(parts[0]));
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    for (;;) {
        unsigned long v = 0;
        int digits = 0;
        while (*s >= '0' && *s <= '9') {
            digits++;
            if (digits > 9)
                return -1;
            v = v * 10 + (unsigned long)(*s - '0');
            s++;
        }
        if (digits == 0 || n == POL_VERSION_MAX_PARTS)
            return -1;
        parts[n++] = v;
        if (*s != '.' || s[1] < '0' || s[1] > '9')
            break;
        s++;
    }
    /* "17.4 (21E219)" is a version with a build note; "17.4beta" is not a version. */
    return *s == '\0' || *s == ' ' || *s == '(' ? n : -1;
}

int pol_version_cmp(const char *a, const char *b, int *cmp)
{
    unsigned long pa[POL_VERSION_MAX_PARTS], pb[POL_VERSION_MAX_PARTS];
    if (version_parse(a, pa) < 0 || version_parse(b, pb) < 0)
        return -1;
    *cmp = 0;
    for (int i = 0; i < POL_VERSION_MAX_PARTS && *cmp == 0; i++)
        *cmp = pa[i] < pb[i] ? -1 : pa[i] > pb[i] ? 1 : 0;
    return 0;
}

static bool value_in(const struct cfg_pred *p, const char *v)
{
    for (size_t i = 0; i < p->nvalues; i++) {
        if (strcmp(p->values[i], v) == 0)
            return true;
    }
    return false;
}

/* "[a, b, c]" of the predicate's values, bounded. */
static void fmt_values(const struct cfg_pred *p, char *out, size_t len)
{
    char esc[ESC_MAX * 4];
    out[0] = '\0';
    pol_append(out, len, "[");
    for (size_t i = 0; i < p->nvalues; i++)
        pol_append(out, len, "%s%s", i > 0 ? ", " : "",
                   log_escape(p->values[i], ESC_MAX, esc, sizeof(esc)));
    pol_append(out, len, "]");
}

/* Applies p->op to v (NULL = absent) for the value called label. */
static bool apply_op(const struct cfg_pred *p, const char *label, const char *v, char *why,
                     size_t len)
{
    char ev[ESC_MAX * 4], ew[ESC_MAX * 4], list[256];
    int cmp = 0;
    const char *want = p->nvalues > 0 ? p->values[0] : "";
    bool ok;
    if (v == NULL || v[0] == '\0') {
        ok = p->op == CFG_PRED_OP_NOT_EXISTS;
        if (!ok)
            snprintf(why, len, "%s is absent", label);
        return ok;
    }
    log_escape(v, ESC_MAX, ev, sizeof(ev));
    log_escape(want, ESC_MAX, ew, sizeof(ew));
    switch (p->op) {
    case CFG_PRED_OP_EXISTS: return true;
    case CFG_PRED_OP_NOT_EXISTS:
        snprintf(why, len, "%s is present (\"%s\")", label, ev);
        return false;
    case CFG_PRED_OP_EQUALS:
        ok = strcmp(v, want) == 0;
        if (!ok)
            snprintf(why, len, "%s is \"%s\", not \"%s\"", label, ev, ew);
        return ok;
    case CFG_PRED_OP_NOT_EQUALS:
        ok = strcmp(v, want) != 0;
        if (!ok)
            snprintf(why, len, "%s is \"%s\", which is excluded", label, ev);
        return ok;
    case CFG_PRED_OP_IN:
    case CFG_PRED_OP_NOT_IN:
        ok = value_in(p, v) == (p->op == CFG_PRED_OP_IN);
        fmt_values(p, list, sizeof(list));
        if (!ok)
            snprintf(why, len, "%s is \"%s\", %s %s", label, ev,
                     p->op == CFG_PRED_OP_IN ? "not one of" : "which is one of", list);
        return ok;
    case CFG_PRED_OP_MATCHES_PREFIX:
        ok = strncmp(v, want, strlen(want)) == 0;
        if (!ok)
            snprintf(why, len, "%s is \"%s\", which does not start with \"%s\"", label, ev, ew);
        return ok;
    case CFG_PRED_OP_VERSION_GE:
    case CFG_PRED_OP_VERSION_LT:
        if (pol_version_cmp(v, want, &cmp) != 0) {
            snprintf(why, len, "%s is \"%s\", not a version", label, ev);
            return false;
        }
        ok = p->op == CFG_PRED_OP_VERSION_GE ? cmp >= 0 : cmp < 0;
        if (!ok)
            snprintf(why, len, "%s is %s, %s %s", label, ev,
                     p->op == CFG_PRED_OP_VERSION_GE ? "below" : "not below", ew);
        return ok;
    default:
        snprintf(why, len, "%s: unknown operator", label);
        return false;
    }
}

static const char *claim_get(const struct att_claims *c, unsigned claim)
{
    switch (claim) {
    case CFG_CLAIM_SERIAL: return c->serial;
    case CFG_CLAIM_UDID: return c->udid;
    case CFG_CLAIM_OS: return c->os_version;
    case CFG_CLAIM_SEPOS: return c->sepos_version;
    default: return NULL;
    }
}

static bool eval_result(const struct cfg_pred *p, const struct pol_input *in, char *why,
                        size_t len)
{
    char esc[ESC_MAX * 4];
    const struct pol_mdm *m = pol_mdm_find(in, p->source);
    if (m == NULL) {
        snprintf(why, len, "no result from signal source %s", p->source);
        return false;
    }
    if (m->allowed == p->want_allowed)
        return true;
    if (m->allowed)
        snprintf(why, len, "signal source %s allowed the device", p->source);
    else
        snprintf(why, len, "signal source %s denied the device (%s)", p->source,
                 m->reason != NULL ? log_escape(m->reason, 160, esc, sizeof(esc)) : "no reason");
    return false;
}

static bool eval_pred(const struct cfg_pred *p, const struct pol_input *in, char *why,
                      size_t len);

/* any: holds when one alternative does; otherwise lists each alternative's failure. */
static bool eval_any(const struct cfg_pred *p, const struct pol_input *in, char *why, size_t len)
{
    char one[POL_REASON_LEN];
    snprintf(why, len, "none of the alternatives holds:");
    for (size_t i = 0; i < p->nany; i++) {
        one[0] = '\0';
        if (eval_pred(&p->any[i], in, one, sizeof(one)))
            return true;
        pol_append(why, len, "%s %s", i > 0 ? ";" : "", one);
    }
    return false;
}

static bool eval_pred(const struct cfg_pred *p, const struct pol_input *in, char *why,
                      size_t len)
{
    char label[160];
    const struct pol_mdm *m;
    switch (p->kind) {
    case CFG_PRED_ATTEST:
        snprintf(label, sizeof(label), "attest.%s", cfg_claim_names[p->claim % CFG_CLAIM__MAX]);
        if (in->claims == NULL) {
            snprintf(why, len, "%s: no device attestation", label);
            return false;
        }
        return apply_op(p, label, claim_get(in->claims, p->claim), why, len);
    case CFG_PRED_RESULT: return eval_result(p, in, why, len);
    case CFG_PRED_ATTR:
        snprintf(label, sizeof(label), "attribute %s.%s", p->source, p->attribute);
        m = pol_mdm_find(in, p->source);
        if (m == NULL) {
            snprintf(why, len, "%s: no result from signal source %s", label, p->source);
            return false;
        }
        return apply_op(p, label, pol_mdm_attr(m, p->attribute), why, len);
    case CFG_PRED_ACCOUNT: return apply_op(p, "account.eab_kid", in->eab_kid, why, len);
    case CFG_PRED_ANY: return eval_any(p, in, why, len);
    default:
        snprintf(why, len, "unknown predicate");
        return false;
    }
}

bool pol_role_holds(const struct cfg_role *role, const struct pol_input *in, char *why,
                    size_t whylen)
{
    char tmp[POL_REASON_LEN];
    static const struct pol_input empty;
    if (why == NULL || whylen == 0) {
        why = tmp;
        whylen = sizeof(tmp);
    }
    why[0] = '\0';
    if (role == NULL) {
        snprintf(why, whylen, "no such role");
        return false;
    }
    for (size_t i = 0; i < role->nwhen; i++) {
        if (!eval_pred(&role->when[i], in != NULL ? in : &empty, why, whylen))
            return false;
    }
    return true;
}
