/*
 * authz.c: the authorization resource (RFC 8555 §7.1.4, §7.5, §7.5.2): its
 * stored form with the challenges inside, the JSON clients see, deactivation,
 * and the syntax and policy checks every newOrder identifier passes (§7.1.4,
 * RFC 5280 §7, draft-ietf-acme-device-attest §3.1, §4.1).
 */
#include "acme/acme_res_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const acme_id_type_str[ACME_ID__MAX] = {
    "dns",
    "ip",
    "permanent-identifier",
    "hardware-module",
};
_Static_assert(nitems(acme_id_type_str) == ACME_ID__MAX, "identifier type names");

const char *const acme_chall_type_str[ACME_CH__MAX] = {
    "http-01",
    "dns-01",
    "tls-alpn-01",
    "device-attest-01",
};
_Static_assert(nitems(acme_chall_type_str) == ACME_CH__MAX, "challenge type names");

static const unsigned id_type_flag[ACME_ID__MAX] = {
    CFG_ID_DNS,
    CFG_ID_IP,
    CFG_ID_PERMANENT,
    CFG_ID_HARDWARE,
};

int
acme_id_type_parse(const char *s, enum acme_id_type *out)
{
    size_t i;

    for (i = 0; s != NULL && i < ACME_ID__MAX; i++) {
        if (strcmp(s, acme_id_type_str[i]) == 0) {
            *out = (enum acme_id_type)i;
            return 0;
        }
    }
    return -1;
}

bool
acme_id_is_device(enum acme_id_type t)
{
    return t == ACME_ID_PERMANENT || t == ACME_ID_HARDWARE;
}

void
acme_ident_device_part(const struct acme_ident *id, char *out, size_t outlen)
{
    const char *slash = strchr(id->value, '/');
    size_t n = slash != NULL ? (size_t)(slash - id->value) : strlen(id->value);

    if (outlen == 0)
        return;
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, id->value, n);
    out[n] = '\0';
}

/* ---------------------------------------------------------------- identifier syntax */

/* RFC 3492 decoding, only to prove an "xn--" label is a well-formed A-label (S-6). */
static bool
punycode_ok(const char *s, size_t len)
{
    const char *delim = NULL, *p;
    unsigned long n = 128, i = 0, bias = 72, out, w, k, digit, t, oldi, delta;
    unsigned char c;
    bool first = true;

    for (p = s; p < s + len; p++)
        if (*p == '-')
            delim = p;
    out = delim != NULL ? (unsigned long)(delim - s) : 0;
    p = delim != NULL ? delim + 1 : s;
    if (p >= s + len)
        return false; /* nothing encoded: not an A-label */
    while (p < s + len) {
        for (oldi = i, w = 1, k = 36;; k += 36) {
            if (p >= s + len)
                return false;
            c = (unsigned char)*p++;
            digit = 36;
            if (c >= '0' && c <= '9')
                digit = (unsigned long)c - 22u;
            else if (c >= 'a' && c <= 'z')
                digit = (unsigned long)c - 'a';
            if (digit >= 36 || digit > (0x10FFFFul * 64 - i) / w)
                return false;
            i += digit * w;
            t = k <= bias ? 1 : k >= bias + 26 ? 26 : k - bias;
            if (digit < t)
                break;
            w *= 36 - t;
        }
        out++;
        delta = first ? (i - oldi) / 700 : (i - oldi) / 2;
        first = false;
        delta += delta / out;
        for (k = 0; delta > 455; k += 36)
            delta /= 35;
        bias = k + (36 * delta) / (delta + 38);
        n += i / out;
        i %= out;
        if (n > 0x10FFFF || (n >= 0xD800 && n <= 0xDFFF) || n < 0xA0)
            return false;
        i++;
    }
    return true;
}

static const char *
dns_syntax(const char *v)
{
    size_t len = strlen(v), lab = 0, i;
    const char *start = v;
    bool alldigit = true;

    if (len == 0 || len > ACME_MAX_IDENTIFIER)
        return "DNS name must have 1 to 253 characters";
    if (v[len - 1] == '.')
        return "DNS name must not end with a dot";
    for (i = 0; i <= len; i++) {
        char c = v[i];

        if (c == '.' || c == '\0') {
            if (lab == 0 || lab > 63)
                return "DNS labels must have 1 to 63 characters";
            if (start[0] == '-' || start[lab - 1] == '-')
                return "DNS labels must not start or end with a hyphen";
            if (lab >= 4 && strncmp(start, "xn--", 4) == 0 && !punycode_ok(start + 4, lab - 4))
                return "DNS label is not a well-formed A-label";
            alldigit = true;
            for (size_t k = 0; k < lab; k++)
                alldigit = alldigit && start[k] >= '0' && start[k] <= '9';
            start = v + i + 1;
            lab = 0;
            continue;
        }
        if (c >= 'A' && c <= 'Z')
            return "DNS name must be lower-case";
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return "DNS name may hold only letters, digits, hyphens and dots";
        lab++;
    }
    /* The last label decides: an all-numeric TLD is an IP address in disguise. */
    return alldigit ? "DNS name must not end with a numeric label" : NULL;
}

static const char *
ip_syntax(const char *v)
{
    unsigned char addr[16];
    char canon[INET6_ADDRSTRLEN];
    int af = strchr(v, ':') != NULL ? AF_INET6 : AF_INET;

    if (inet_pton(af, v, addr) != 1)
        return "not an IPv4 or IPv6 address";
    if (inet_ntop(af, addr, canon, sizeof(canon)) == NULL || strcmp(canon, v) != 0)
        return "IP address is not in canonical text form";
    return NULL;
}

/* Dotted-decimal OID: at least two arcs, no leading zeros, first arc 0-2, second < 40 under 0/1. */
static bool
oid_ok(const char *s)
{
    long long arcs[2] = {-1, -1}, v;
    size_t narcs = 0, len;
    const char *p = s, *dot;
    char num[24];

    for (;;) {
        dot = strchr(p, '.');
        len = dot != NULL ? (size_t)(dot - p) : strlen(p);
        if (len == 0 || len >= sizeof(num) || (len > 1 && p[0] == '0'))
            return false;
        memcpy(num, p, len);
        num[len] = '\0';
        if (strspn(num, "0123456789") != len || str_to_ll(num, 0, (1LL << 62), &v) != 0)
            return false;
        if (narcs < 2)
            arcs[narcs] = v;
        narcs++;
        if (dot == NULL)
            break;
        p = dot + 1;
    }
    return narcs >= 2 && arcs[0] <= 2 && (arcs[0] == 2 || arcs[1] < 40);
}

static const char *
device_syntax(enum acme_id_type t, const char *v)
{
    const char *slash = strchr(v, '/');
    size_t i, len = strlen(v);

    if (len == 0 || len > ACME_MAX_DEVICE_ID)
        return "device identifier must have 1 to 128 bytes";
    for (i = 0; i < len; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            return "device identifier must be printable";
    if (slash == v)
        return "device identifier has an empty device part";
    if (slash == NULL)
        return t == ACME_ID_HARDWARE ? "hardware-module needs \"serial/type-OID\"" : NULL;
    if (!oid_ok(slash + 1))
        return "the part after \"/\" must be a dotted-decimal OID";
    return NULL;
}

int
acme_ident_check(const struct cfg_policy *pol, const char *type, const char *value,
                 struct acme_ident *out, struct acme_problem *prob)
{
    enum acme_id_type t;
    const char *why = NULL;
    bool wild;

    memset(out, 0, sizeof(*out));
    if (type == NULL || value == NULL) {
        acme_problem_add_sub(prob, "malformed", NULL, NULL,
                             "identifier needs string members type and value");
        return -1;
    }
    if (acme_id_type_parse(type, &t) != 0 || (pol->identifiers & id_type_flag[t]) == 0) {
        acme_problem_add_sub(prob, "unsupportedIdentifier", type, value,
                             "identifier type not supported by this directory");
        return -1;
    }
    wild = t == ACME_ID_DNS && strncmp(value, "*.", 2) == 0;
    if (t == ACME_ID_DNS)
        why = dns_syntax(wild ? value + 2 : value);
    else if (t == ACME_ID_IP)
        why = ip_syntax(value);
    else
        why = device_syntax(t, value);
    if (why != NULL) {
        acme_problem_add_sub(prob, "malformed", type, value, "%s", why);
        return -1;
    }
    if (wild && (pol->challenges & CFG_CH_DNS01) == 0) {
        acme_problem_add_sub(prob, "rejectedIdentifier", type, value,
                             "wildcards need dns-01, which this directory does not offer");
        return -1;
    }
    if ((acme_id_is_device(t) && (pol->challenges & CFG_CH_DEVICE_ATTEST01) == 0) ||
        (!acme_id_is_device(t) &&
         (pol->challenges & (CFG_CH_HTTP01 | CFG_CH_DNS01 | CFG_CH_TLSALPN01)) == 0) ||
        (t == ACME_ID_IP && (pol->challenges & (CFG_CH_HTTP01 | CFG_CH_TLSALPN01)) == 0)) {
        acme_problem_add_sub(prob, "rejectedIdentifier", type, value,
                             "no challenge this directory offers can validate it");
        return -1;
    }
    out->type = t;
    acme_strlcpy(out->value, value, sizeof(out->value));
    return 0;
}

/* ---------------------------------------------------------------- stored form */

void
acme_authz_clear(struct acme_authz *a)
{
    size_t i;

    if (a == NULL)
        return;
    for (i = 0; i < a->nch && i < ACME_MAX_CHALLS; i++)
        cJSON_Delete(a->ch[i].error);
    cJSON_Delete(a->decision);
    memset(a, 0, sizeof(*a));
}

void
acme_authz_copy(const struct acme_authz *src, struct acme_authz *dst)
{
    size_t i;

    *dst = *src;
    for (i = 0; i < dst->nch && i < ACME_MAX_CHALLS; i++)
        dst->ch[i].error = cJSON_Duplicate(src->ch[i].error, 1);
    dst->decision = cJSON_Duplicate(src->decision, 1);
}

static int
chall_parse(const cJSON *c, struct acme_chall *ch)
{
    const char *type = acme_json_str(c, "type");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(c, "validated");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(c, "error");
    const cJSON *retry = cJSON_GetObjectItemCaseSensitive(c, "retryAt");
    const cJSON *early = cJSON_GetObjectItemCaseSensitive(c, "earlyAt");
    size_t i;

    for (i = 0; type != NULL && i < ACME_CH__MAX; i++)
        if (strcmp(type, acme_chall_type_str[i]) == 0)
            break;
    if (type == NULL || i == ACME_CH__MAX)
        return -1;
    ch->type = (enum acme_chall_type)i;
    acme_strlcpy(ch->id, acme_json_str(c, "id"), sizeof(ch->id));
    acme_strlcpy(ch->token, acme_json_str(c, "token"), sizeof(ch->token));
    acme_strlcpy(ch->status, acme_json_str(c, "status"), sizeof(ch->status));
    acme_strlcpy(ch->key_authz, acme_json_str(c, "keyAuthz"), sizeof(ch->key_authz));
    ch->validated = cJSON_IsNumber(n) ? (int64_t)n->valuedouble : 0;
    ch->error = cJSON_IsObject(err) ? cJSON_Duplicate(err, 1) : NULL;
    ch->retry_at = cJSON_IsNumber(retry) ? (int64_t)retry->valuedouble : 0;
    ch->early_at = cJSON_IsNumber(early) ? (int64_t)early->valuedouble : 0;
    return 0;
}

static void
att_parse(const cJSON *att, struct acme_attested *out)
{
    if (!cJSON_IsObject(att))
        return;
    out->present = true;
    acme_strlcpy(out->serial, acme_json_str(att, "serial"), sizeof(out->serial));
    acme_strlcpy(out->udid, acme_json_str(att, "udid"), sizeof(out->udid));
    acme_strlcpy(out->os_version, acme_json_str(att, "os_version"), sizeof(out->os_version));
    acme_strlcpy(out->sepos_version, acme_json_str(att, "sepos_version"),
                 sizeof(out->sepos_version));
    acme_strlcpy(out->spki_sha256, acme_json_str(att, "spki_sha256"), sizeof(out->spki_sha256));
}

static int
authz_parse_data(struct acme_authz *a, const char *data)
{
    cJSON *root = cJSON_Parse(data != NULL ? data : "");
    const cJSON *id, *chs, *c;
    int rc = -1;

    if (!cJSON_IsObject(root))
        goto out;
    acme_strlcpy(a->policy, acme_json_str(root, "policy"), sizeof(a->policy));
    acme_strlcpy(a->order, acme_json_str(root, "order"), sizeof(a->order));
    id = cJSON_GetObjectItemCaseSensitive(root, "identifier");
    if (acme_id_type_parse(acme_json_str(id, "type"), &a->ident.type) != 0)
        goto out;
    acme_strlcpy(a->ident.value, acme_json_str(id, "value"), sizeof(a->ident.value));
    a->wildcard = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "wildcard"));
    chs = cJSON_GetObjectItemCaseSensitive(root, "challenges");
    cJSON_ArrayForEach(c, chs)
    {
        if (a->nch >= ACME_MAX_CHALLS || chall_parse(c, &a->ch[a->nch]) != 0)
            goto out;
        a->nch++;
    }
    att_parse(cJSON_GetObjectItemCaseSensitive(root, "attestation"), &a->att);
    acme_authz_extra_parse(root, a);
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

int
acme_authz_fill(void *arg, const struct store_rec *rec)
{
    struct acme_authz *a = arg;

    acme_strlcpy(a->id, rec->id, sizeof(a->id));
    acme_strlcpy(a->owner, rec->owner, sizeof(a->owner));
    acme_strlcpy(a->status, rec->status, sizeof(a->status));
    a->created = rec->created;
    a->expires = rec->expires;
    a->version = rec->version;
    if (authz_parse_data(a, rec->data) != 0)
        return -1;
    /* Recomputed, not read: rows from before reuse held their order id there. */
    acme_authz_key(a->owner, a->policy, a->ident.type, a->wildcard, a->ident.value, a->lookup);
    return 0;
}

int
acme_authz_load(struct acme_ctx *ctx, const char *id, struct acme_authz *out,
                struct acme_problem *prob)
{
    memset(out, 0, sizeof(*out));
    int rc = acme_rec_load(ctx, STORE_AUTHZ, id, "an authorization", acme_authz_fill, out, prob);
    if (rc < 0)
        acme_authz_clear(out);
    return rc;
}

void
acme_authz_rec(const struct acme_authz *a, struct store_rec *rec, char **data)
{
    cJSON *root = cJSON_CreateObject(), *id, *chs, *c, *att;
    size_t i;

    cJSON_AddStringToObject(root, "policy", a->policy);
    cJSON_AddStringToObject(root, "order", a->order);
    id = cJSON_AddObjectToObject(root, "identifier");
    cJSON_AddStringToObject(id, "type", acme_id_type_str[a->ident.type]);
    cJSON_AddStringToObject(id, "value", a->ident.value);
    if (a->wildcard)
        cJSON_AddTrueToObject(root, "wildcard");
    chs = cJSON_AddArrayToObject(root, "challenges");
    for (i = 0; i < a->nch; i++) {
        c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "id", a->ch[i].id);
        cJSON_AddStringToObject(c, "type", acme_chall_type_str[a->ch[i].type]);
        cJSON_AddStringToObject(c, "token", a->ch[i].token);
        cJSON_AddStringToObject(c, "status", a->ch[i].status);
        if (a->ch[i].validated != 0)
            cJSON_AddNumberToObject(c, "validated", (double)a->ch[i].validated);
        if (a->ch[i].key_authz[0] != '\0')
            cJSON_AddStringToObject(c, "keyAuthz", a->ch[i].key_authz);
        if (a->ch[i].error != NULL)
            cJSON_AddItemToObject(c, "error", cJSON_Duplicate(a->ch[i].error, 1));
        if (a->ch[i].retry_at != 0)
            cJSON_AddNumberToObject(c, "retryAt", (double)a->ch[i].retry_at);
        if (a->ch[i].early_at != 0)
            cJSON_AddNumberToObject(c, "earlyAt", (double)a->ch[i].early_at);
        cJSON_AddItemToArray(chs, c);
    }
    if (a->att.present) {
        /* DA-20: only the attributes decisions and audits use, never the attObj. */
        att = cJSON_AddObjectToObject(root, "attestation");
        cJSON_AddStringToObject(att, "serial", a->att.serial);
        cJSON_AddStringToObject(att, "udid", a->att.udid);
        cJSON_AddStringToObject(att, "os_version", a->att.os_version);
        cJSON_AddStringToObject(att, "sepos_version", a->att.sepos_version);
        cJSON_AddStringToObject(att, "spki_sha256", a->att.spki_sha256);
    }
    acme_authz_extra_rec(a, root);
    *data = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    memset(rec, 0, sizeof(*rec));
    rec->kind = STORE_AUTHZ;
    rec->id = (char *)a->id;
    rec->owner = (char *)a->owner;
    rec->lookup = a->lookup[0] != '\0' ? (char *)a->lookup : NULL; /* newOrder finds reusable ones */
    rec->status = (char *)a->status;
    rec->created = a->created;
    rec->expires = a->expires;
    rec->data = *data;
}

const char *
acme_authz_status(const struct acme_authz *a)
{
    if ((strcmp(a->status, "pending") == 0 || strcmp(a->status, "valid") == 0) &&
        clk_now() > a->expires)
        return "expired";
    return a->status;
}

/* ---------------------------------------------------------------- JSON and handler */

cJSON *
acme_chall_to_json(const struct acme_ctx *ctx, const struct acme_authz *a,
                   const struct acme_chall *ch)
{
    cJSON *obj = cJSON_CreateObject();
    char *url = acme_url(ctx, a->policy, ACME_RES_CHALLENGE, a->id, ch->id);
    char buf[32];

    cJSON_AddStringToObject(obj, "type", acme_chall_type_str[ch->type]);
    cJSON_AddStringToObject(obj, "url", url);
    cJSON_AddStringToObject(obj, "status", ch->status);
    cJSON_AddStringToObject(obj, "token", ch->token);
    if (strcmp(ch->status, "valid") == 0 && ch->validated != 0)
        cJSON_AddStringToObject(obj, "validated", clk_fmt_rfc3339(ch->validated, buf));
    if (ch->error != NULL)
        cJSON_AddItemToObject(obj, "error", cJSON_Duplicate(ch->error, 1));
    free(url);
    return obj;
}

cJSON *
acme_authz_to_json(const struct acme_ctx *ctx, const struct acme_authz *a)
{
    cJSON *obj = cJSON_CreateObject(), *id, *chs;
    const char *status = acme_authz_status(a);
    bool settled = strcmp(a->status, "pending") != 0, any = false;
    char buf[32];
    size_t i;

    id = cJSON_AddObjectToObject(obj, "identifier");
    cJSON_AddStringToObject(id, "type", acme_id_type_str[a->ident.type]);
    cJSON_AddStringToObject(id, "value", a->ident.value);
    cJSON_AddStringToObject(obj, "status", status);
    cJSON_AddStringToObject(obj, "expires", clk_fmt_rfc3339(a->expires, buf));
    if (a->wildcard)
        cJSON_AddTrueToObject(obj, "wildcard");
    /* S-5: once settled, show the challenges that were tried (Z-5 keeps invalid ones). */
    for (i = 0; settled && i < a->nch; i++)
        any = any || strcmp(a->ch[i].status, "pending") != 0;
    chs = cJSON_AddArrayToObject(obj, "challenges");
    for (i = 0; i < a->nch; i++)
        if (!any || strcmp(a->ch[i].status, "pending") != 0)
            cJSON_AddItemToArray(chs, acme_chall_to_json(ctx, a, &a->ch[i]));
    return obj;
}

/*
 * Z-7, S-12: deactivating an authz invalidates, atomically, every unfinished
 * order relying on it: its own and those that reused it. An order reusing it
 * meanwhile bumps its version (order.c), so this commit then conflicts.
 */
static int
deactivate(struct acme_rq *rq, struct acme_authz *a, struct acme_problem *prob)
{
    struct acme_order *os = NULL;
    struct store_rec *recs = NULL;
    struct store_write *w = NULL;
    char **data = NULL, err[ERR_LEN] = "";
    struct acme_problem why = {0};
    size_t i, n = 0;
    int rc = -1, crc;

    if (strcmp(acme_authz_status(a), "pending") != 0 &&
        strcmp(acme_authz_status(a), "valid") != 0) {
        acme_problem_set(prob, "malformed", 400,
                         "only a pending or valid authorization can be deactivated");
        return -1;
    }
    if (acme_authz_orders(rq->ctx, a, &os, &n, prob) != 0)
        return -1;
    recs = xcalloc(n + 1, sizeof(*recs));
    w = xcalloc(n + 1, sizeof(*w));
    data = xcalloc(n + 1, sizeof(*data));
    acme_strlcpy(a->status, "deactivated", sizeof(a->status));
    acme_problem_set(&why, "unauthorized", 403, "authorization %s was deactivated", a->id);
    acme_authz_rec(a, &recs[0], &data[0]);
    w[0] = (struct store_write){STORE_UPDATE, &recs[0], a->version};
    for (i = 0; i < n; i++) {
        acme_order_fail(&os[i], &why);
        acme_order_rec(&os[i], &recs[i + 1], &data[i + 1]);
        w[i + 1] = (struct store_write){STORE_UPDATE, &recs[i + 1], os[i].version};
    }
    crc = store_commit(rq->ctx->store, w, n + 1, err);
    if (crc != 0) {
        if (crc > 0)
            acme_problem_set(prob, "serverInternal", 500, "authorization changed meanwhile; retry");
        else
            acme_store_problem(prob, "deactivating an authorization", err);
        goto out;
    }
    rc = 0;
out:
    for (i = 0; i < n + 1; i++)
        free(data[i]);
    for (i = 0; i < n; i++)
        acme_order_clear(&os[i]);
    free(os);
    free(data);
    free(w);
    free(recs);
    return rc;
}

int
acme_h_authz(struct acme_rq *rq, struct acme_problem *prob)
{
    struct acme_authz a = {0};
    const char *want;
    int rc = -1, found;

    found = acme_authz_load(rq->ctx, rq->id1, &a, prob);
    if (found < 0)
        goto out;
    if (found > 0 || strcmp(a.policy, rq->policy->name) != 0) {
        acme_problem_set(prob, "malformed", 404, "no such authorization");
        goto out;
    }
    if (strcmp(a.owner, rq->acct.id) != 0) {
        acme_problem_set(prob, "unauthorized", 403,
                         "this authorization belongs to another account");
        goto out;
    }
    if (rq->jws.post_as_get && acme_approval_poll(rq->ctx, &a, prob) != 0)
        goto out;
    if (!rq->jws.post_as_get) {
        want = acme_json_str(rq->jws.payload, "status");
        if (!cJSON_IsObject(rq->jws.payload) || want == NULL || strcmp(want, "deactivated") != 0) {
            acme_problem_set(prob, "malformed", 400,
                             "an authorization accepts only {\"status\":\"deactivated\"}");
            goto out;
        }
        if (deactivate(rq, &a, prob) != 0)
            goto out;
    }
    acme_resp_json(rq->resp, 200, acme_authz_to_json(rq->ctx, &a));
    if (strcmp(acme_authz_status(&a), "pending") == 0)
        acme_resp_header(rq->resp, "Retry-After", "%d", acme_authz_retry_after(&a));
    rc = 0;
out:
    acme_authz_clear(&a);
    return rc;
}
