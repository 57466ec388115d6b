/*
 * pol_eval.c: roles and enrollment policy admission. A policy admits a
 * device when every signal source it consults answered allowed and, if it
 * lists roles, the device holds at least one of them. The decision always
 * carries one line saying which rule decided, so an administrator reading
 * the audit log or the client reading the problem detail can act on it.
 */
#include "policy/pol_int.h"

#include <stdio.h>
#include <string.h>

int pol_roles_eval(const struct cfg *cfg, const struct pol_input *in, struct pol_roles *held,
                   char *why, size_t whylen)
{
    char one[POL_REASON_LEN];
    if (cfg == NULL || in == NULL || held == NULL)
        return -1;
    memset(held, 0, sizeof(*held));
    if (why != NULL && whylen > 0)
        why[0] = '\0';
    for (size_t i = 0; i < cfg->nroles; i++) {
        const struct cfg_role *r = &cfg->roles[i];
        if (pol_role_holds(r, in, one, sizeof(one))) {
            if (held->n < POL_MAX_ROLES)
                held->names[held->n++] = r->name;
            continue;
        }
        if (why != NULL && whylen > 0)
            pol_append(why, whylen, "%srole %s: %s", why[0] != '\0' ? "; " : "", r->name, one);
    }
    return 0;
}

static bool holds(const struct pol_roles *held, const char *name)
{
    for (size_t i = 0; i < held->n; i++) {
        if (strcmp(held->names[i], name) == 0)
            return true;
    }
    return false;
}

/* Every signal source the policy consults must have answered, and answered allowed. */
static int check_sources(const struct cfg_policy *pol, const struct pol_input *in,
                         struct pol_decision *out)
{
    char esc[256];
    for (size_t i = 0; i < pol->nsignal_sources; i++) {
        const struct pol_mdm *m = pol_mdm_find(in, pol->signal_sources[i]);
        if (m == NULL) {
            snprintf(out->reason, sizeof(out->reason), "policy %s: no result from signal source %s",
                     pol->name, pol->signal_sources[i]);
            return -1;
        }
        if (!m->allowed) {
            snprintf(out->reason, sizeof(out->reason),
                     "policy %s: signal source %s denied the device (%s)", pol->name,
                     pol->signal_sources[i],
                     m->reason != NULL ? log_escape(m->reason, 200, esc, sizeof(esc))
                                       : "no reason given");
            return -1;
        }
    }
    return 0;
}

/* The device must hold one of the policy's roles; else name them and why each failed. */
static int check_roles(const struct cfg *cfg, const struct cfg_policy *pol,
                       const struct pol_input *in, struct pol_decision *out)
{
    char one[POL_REASON_LEN];
    if (pol->nroles == 0)
        return 0;
    for (size_t i = 0; i < pol->nroles; i++) {
        if (holds(&out->roles, pol->roles[i]))
            return 0;
    }
    snprintf(out->reason, sizeof(out->reason), "policy %s requires one of roles [", pol->name);
    for (size_t i = 0; i < pol->nroles; i++)
        pol_append(out->reason, sizeof(out->reason), "%s%s", i > 0 ? ", " : "", pol->roles[i]);
    pol_append(out->reason, sizeof(out->reason), "]; device holds none");
    for (size_t i = 0; i < pol->nroles; i++) {
        pol_role_holds(cfg_role_find(cfg, pol->roles[i]), in, one, sizeof(one));
        pol_append(out->reason, sizeof(out->reason), "%srole %s: %s", i > 0 ? "; " : " (",
                   pol->roles[i], one);
    }
    pol_append(out->reason, sizeof(out->reason), ")");
    return -1;
}

int pol_admit(const struct cfg *cfg, const struct cfg_policy *pol, const struct pol_input *in,
              struct pol_decision *out)
{
    struct pol_input local = {0};
    memset(out, 0, sizeof(*out));
    if (cfg == NULL || pol == NULL) {
        snprintf(out->reason, sizeof(out->reason), "no such enrollment policy");
        return -1;
    }
    if (in != NULL)
        local = *in;
    local.policy = pol->name;
    out->tpl = cfg_template_find(cfg, pol->template);
    if (pol_roles_eval(cfg, &local, &out->roles, NULL, 0) != 0 ||
        check_sources(pol, &local, out) != 0 || check_roles(cfg, pol, &local, out) != 0)
        return -1;
    out->allowed = true;
    out->needs_approval = pol->approval == CFG_APPROVAL_MANUAL;
    if (pol->nroles == 0)
        snprintf(out->reason, sizeof(out->reason), "policy %s: admitted, no role required",
                 pol->name);
    else
        snprintf(out->reason, sizeof(out->reason), "policy %s: admitted, device holds role",
                 pol->name);
    for (size_t i = 0; i < pol->nroles; i++) {
        if (holds(&out->roles, pol->roles[i]))
            pol_append(out->reason, sizeof(out->reason), " %s", pol->roles[i]);
    }
    if (out->needs_approval)
        pol_append(out->reason, sizeof(out->reason), "; waiting for manual approval");
    return 0;
}

int pol_select(const struct cfg *cfg, const char *const *names, size_t nnames,
               const struct pol_input *in, const struct cfg_policy **chosen,
               struct pol_decision *out)
{
    char why[POL_REASON_LEN] = "";
    size_t n = names != NULL ? nnames : (cfg != NULL ? cfg->npolicies : 0);
    *chosen = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct cfg_policy *p = names != NULL ? cfg_policy_find(cfg, names[i])
                                                   : &cfg->policies[i];
        if (p == NULL) {
            pol_append(why, sizeof(why), "%sno such policy", why[0] != '\0' ? "; " : "");
            continue;
        }
        if (pol_admit(cfg, p, in, out) == 0) {
            *chosen = p;
            return 0;
        }
        pol_append(why, sizeof(why), "%s%s", why[0] != '\0' ? "; " : "", out->reason);
    }
    memset(out, 0, sizeof(*out));
    snprintf(out->reason, sizeof(out->reason), "no enrollment policy admits the device");
    if (why[0] != '\0')
        pol_append(out->reason, sizeof(out->reason), ": %s", why);
    return -1;
}

unsigned pol_key_types(const struct cfg *cfg, const struct cfg_policy *pol)
{
    const struct cfg_template *t;
    if (pol == NULL)
        return 0;
    t = cfg_template_find(cfg, pol->template);
    return t != NULL && t->key_types != 0 ? pol->key_types & t->key_types : pol->key_types;
}

int64_t pol_cert_validity(const struct cfg *cfg, const struct cfg_policy *pol)
{
    const struct cfg_template *t = cfg_template_find(cfg, pol->template);
    return t != NULL && t->validity != 0 ? t->validity : pol->cert_validity;
}

int64_t pol_renewal_start(const struct cfg_template *tpl, int64_t not_before, int64_t not_after)
{
    int64_t life = not_after > not_before ? not_after - not_before : 0;
    if (tpl != NULL && tpl->renewal_window > 0 && tpl->renewal_window < life)
        return not_after - tpl->renewal_window;
    if (tpl != NULL && tpl->renewal_percent > 0)
        return not_after - life * tpl->renewal_percent / 100;
    return not_after - life / 3;
}
