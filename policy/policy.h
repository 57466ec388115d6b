/*
 * policy: device roles, enrollment policy admission and certificate
 * templates. Pure: no I/O, no store, no clock. The caller gathers what is
 * known about a device (attested claims, MDM verdicts and attributes, the
 * ACME account's EAB key id, the CSR), and policy/ decides whether an
 * enrollment policy admits it, explains why in one human-readable line, and
 * renders the policy's template into a pki_issue_req. Thread-safe: every
 * function reads only its arguments and the immutable struct cfg.
 */
#ifndef ACMESRV_POLICY_H
#define ACMESRV_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest/attest.h"
#include "common/common.h"
#include "config/config.h"
#include "pki/pki.h"

#define POL_MAX_ROLES 64    /* roles one evaluation records */
#define POL_REASON_LEN 512  /* bytes of an explanation, NUL included */

/* One attribute a signal source returned (as struct mdm_attr). Borrowed. */
struct pol_attr {
    const char *name;
    const char *value;
};

/* The outcome of one signal source lookup (from struct mdm_result). Borrowed. */
struct pol_mdm {
    const char *source;  /* signal source name */
    bool allowed;        /* verdict == MDM_ALLOW */
    const char *reason;  /* the MDM's own explanation, or NULL */
    const struct pol_attr *attrs;
    size_t nattrs;
};

/* Everything known about one enrollment. Every pointer is borrowed and nullable. */
struct pol_input {
    const char *policy;              /* enrollment policy name for ${/policy/name};
                                        pol_admit and pol_render use their policy's */
    const struct att_claims *claims; /* verified attestation (ATT_OK only), or NULL */
    const struct pol_mdm *mdm;       /* one per consulted signal source */
    size_t nmdm;
    const char *eab_kid;             /* the account's EAB key id, or NULL */
    const struct pki_csr *csr;       /* parsed CSR (finalize), or NULL (at validation) */
    const char *identifier;          /* the order's device identifier value as ordered
                                        ("SERIAL", "SERIAL/1.2.3"), or NULL */
};

/* Role names held, borrowed from the struct cfg. */
struct pol_roles {
    const char *names[POL_MAX_ROLES];
    size_t n;
};

/*
 * Whether role holds for in. When it does not, why gets the first predicate
 * that failed, e.g. `attribute kandji.blueprint is "Lab Macs", not "Corp
 * Macs"` (why may be NULL).
 */
bool pol_role_holds(const struct cfg_role *role, const struct pol_input *in, char *why,
                    size_t whylen);

/*
 * Evaluates every configured device role, in file order. held gets those
 * that hold; why (nullable) gets "role a: ...; role b: ..." for those that
 * do not, truncated to whylen. 0/-1 (-1 only for NULL cfg, in or held).
 */
int pol_roles_eval(const struct cfg *cfg, const struct pol_input *in, struct pol_roles *held,
                   char *why, size_t whylen);

/* What a policy decided about one device. */
struct pol_decision {
    bool allowed;
    bool needs_approval;            /* allowed, but approval: manual holds issuance */
    struct pol_roles roles;         /* every role the device holds */
    const struct cfg_template *tpl; /* the policy's template, or NULL */
    char reason[POL_REASON_LEN];    /* why, naming the rule; fit for logs, audit and a
                                       problem detail (client values are escaped) */
};

/*
 * Decides whether pol admits the device: every signal source the policy
 * lists must have answered allowed, and when the policy lists roles the
 * device must hold one of them. The reason names the rule that failed
 * ("policy macs requires one of roles [managed-mac]; device holds none (role
 * managed-mac: ...)"). 0 when admitted, -1 when not (out is filled either way).
 */
int pol_admit(const struct cfg *cfg, const struct cfg_policy *pol, const struct pol_input *in,
              struct pol_decision *out);

/*
 * Picks the first of the named policies (all policies, in file order, when
 * names is NULL) that admits the device. 0 with *chosen and out, or -1 with
 * *chosen NULL and out->reason listing why each candidate refused.
 */
int pol_select(const struct cfg *cfg, const char *const *names, size_t nnames,
               const struct pol_input *in, const struct cfg_policy **chosen,
               struct pol_decision *out);

/*
 * Resolves a template variable: /csr/subject/commonname, /csr/san/dnsname,
 * /csr/san/email (= rfc822name), /csr/san/uri, /csr/san/othername (first
 * permanent identifier), /attest/serial, /attest/udid, /attest/os_version,
 * /attest/sepos_version, /device/serial, /device/udid (aliases),
 * /policy/name, /account/eab_kid, /mdm/<source>/<attribute>. Multi-valued
 * CSR fields give their first value. 0 with *val (borrowed from in) and
 * *len, or -1 when the variable is unknown or has no value.
 */
int pol_var_get(const struct pol_input *in, const char *path, const char **val, size_t *len);

/* The CSR key types pol accepts: its key_types narrowed by its template's. */
unsigned pol_key_types(const struct cfg *cfg, const struct cfg_policy *pol);
/* The lifetime (seconds) of pol's certificates: its template's validity, else its own. */
int64_t pol_cert_validity(const struct cfg *cfg, const struct cfg_policy *pol);

/*
 * When the renewal window of a certificate opens: notAfter minus the
 * template's renewal_window, or minus its percentage of the lifetime; without
 * a template setting, the last third of the lifetime (as ARI clients expect).
 */
int64_t pol_renewal_start(const struct cfg_template *tpl, int64_t not_before, int64_t not_after);

/* What a rendered pki_issue_req points into; owned by the caller. */
struct pol_rendered {
    struct pki_name_entry *subject; /* the template in pki/ form (strings borrowed from cfg) */
    struct pki_san *sans;
    struct pki_tpl_out out;         /* rendered values */
};

/*
 * Renders pol's template for in into req (not_before .. not_before + the
 * template's validity, else the policy's). req->subject_key is left to the
 * caller. -1 with err when pol has no template or a value is missing or
 * unacceptable ("template wifi: ${/mdm/kandji/user_email} has no value").
 * req points into store and cfg until pol_rendered_clear.
 */
int pol_render(const struct cfg *cfg, const struct cfg_policy *pol, const struct pol_input *in,
               int64_t not_before, struct pki_issue_req *req, struct pol_rendered *store,
               char err[ERR_LEN]);
/* Frees what pol_render stored; zeroed storage is fine. */
void pol_rendered_clear(struct pol_rendered *store);

#endif
