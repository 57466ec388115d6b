/*
 * pki_template.c: renders a certificate template into a pki_issue_req.
 * Variables are substituted inside literal text, then every value is checked
 * before it can reach a certificate: a variable without a value refuses the
 * certificate (an empty or half-filled field would be silently wrong), and
 * values must be UTF-8 without control characters and within the X.520 upper
 * bound of their field. Subject entries stay separate X.509 name entries, so
 * commas, equals and plus signs in values are only characters.
 */
#include "pki/pki.h"
#include "pki/pki_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VAR_MAX 128 /* bytes of one variable path */

struct field_limit {
    const char *field;
    size_t max; /* characters (code points) */
};

/* RFC 5280 Appendix A upper bounds, by short name and by OID text. */
static const struct field_limit limits[] = {
    {"CN", 64},           {"2.5.4.3", 64},  {"O", 64},           {"2.5.4.10", 64},
    {"OU", 64},           {"2.5.4.11", 64}, {"C", 2},            {"2.5.4.6", 2},
    {"serialNumber", 64}, {"2.5.4.5", 64},  {"emailAddress", 254},
    {"1.2.840.113549.1.9.1", 254},
};
#define DEFAULT_LIMIT 128

/* Indexed by enum pki_san_type: names for errors and bounds in bytes. */
static const char *const san_label[PKI_SAN__MAX] = {
    "dns", "ip", "email", "uri", "permanent_identifier", "upn", "hardware_module_name"};
static const size_t san_max[PKI_SAN__MAX] = {253, 45, 254, PKI_TPL_MAX_VALUE, 255, 254, 255};

static size_t field_max(const char *field)
{
    for (size_t i = 0; i < nitems(limits); i++) {
        if (strcmp(limits[i].field, field) == 0)
            return limits[i].max;
    }
    return DEFAULT_LIMIT;
}

/*
 * Counts the code points of well-formed UTF-8 (no overlongs, surrogates or
 * values above U+10FFFF). -1 when malformed or when it holds a C0 or C1
 * control character, NUL or DEL: such bytes have no place in a name and
 * could fool whoever reads the certificate.
 */
static long utf8_chars(const unsigned char *p, size_t len)
{
    long count = 0;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i], need, cp;
        if (c < 0x80) {
            need = 0;
            cp = c;
        } else if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return -1;
        }
        if (len - i - 1 < need)
            return -1;
        for (unsigned k = 1; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (p[i + k] & 0x3fu);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp < 0x20 || cp == 0x7f ||
            (cp >= 0x80 && cp <= 0x9f))
            return -1;
        i += need + 1;
        count++;
    }
    return count;
}

/*
 * Substitutes the variables of text into out (NUL-terminated). "$$" is "$";
 * a "$" not before "{" or "$" is itself. what names the value in errors.
 */
static int expand(const struct pki_template *tpl, const char *what, const char *text,
                  pki_var_fn *lookup, void *arg, struct buf *out, char err[ERR_LEN])
{
    char var[VAR_MAX], esc[VAR_MAX * 2];
    const char *p = text, *val;
    size_t vlen;
    while (*p != '\0') {
        if (p[0] != '$' || (p[1] != '{' && p[1] != '$')) {
            buf_append(out, p, 1);
            p++;
        } else if (p[1] == '$') {
            buf_append(out, "$", 1);
            p += 2;
        } else {
            const char *end = strchr(p + 2, '}');
            size_t n = end != NULL ? (size_t)(end - (p + 2)) : 0;
            if (n == 0 || n >= sizeof(var)) {
                pki_set_err(err, "template %s: %s: malformed ${...}", tpl->name, what);
                return -1;
            }
            memcpy(var, p + 2, n);
            var[n] = '\0';
            log_escape(var, VAR_MAX, esc, sizeof(esc));
            if (lookup == NULL || lookup(arg, var, &val, &vlen) != 0 || vlen == 0) {
                pki_set_err(err, "template %s: ${%s} has no value", tpl->name, esc);
                return -1;
            }
            if (memchr(val, '\0', vlen) != NULL) {
                pki_set_err(err, "template %s: ${%s} holds a NUL byte", tpl->name, esc);
                return -1;
            }
            if (vlen > PKI_TPL_MAX_VALUE) {
                pki_set_err(err, "template %s: ${%s} is longer than %d bytes", tpl->name, esc,
                            PKI_TPL_MAX_VALUE);
                return -1;
            }
            buf_append(out, val, vlen);
            p = end + 1;
        }
        if (out->len > PKI_TPL_MAX_VALUE) {
            pki_set_err(err, "template %s: %s is longer than %d bytes", tpl->name, what,
                        PKI_TPL_MAX_VALUE);
            return -1;
        }
    }
    return 0;
}

/* Expands text and checks the result: non-empty, clean UTF-8, at most max characters. */
static char *render_value(const struct pki_template *tpl, const char *what, const char *text,
                          size_t max, pki_var_fn *lookup, void *arg, char err[ERR_LEN])
{
    struct buf b = {0};
    char *s = NULL;
    long chars;
    if (text == NULL || expand(tpl, what, text, lookup, arg, &b, err) != 0)
        goto out;
    if (b.len == 0) {
        pki_set_err(err, "template %s: %s renders empty", tpl->name, what);
        goto out;
    }
    chars = utf8_chars((const unsigned char *)b.p, b.len);
    if (chars < 0) {
        pki_set_err(err, "template %s: %s is not UTF-8 text without control characters",
                    tpl->name, what);
        goto out;
    }
    if ((size_t)chars > max) {
        pki_set_err(err, "template %s: %s is %ld characters; at most %zu allowed", tpl->name,
                    what, chars, max);
        goto out;
    }
    s = buf_take(&b);
out:
    buf_free(&b);
    return s;
}

static void keep(struct pki_tpl_out *store, char *s)
{
    store->strings[store->nstrings++] = s;
}

/* The country code is two ASCII capital letters (ISO 3166), a PrintableString. */
static bool is_country(const char *field, const char *v)
{
    if (strcmp(field, "C") != 0 && strcmp(field, "2.5.4.6") != 0)
        return true;
    return strlen(v) == 2 && v[0] >= 'A' && v[0] <= 'Z' && v[1] >= 'A' && v[1] <= 'Z';
}

static int render_subject(const struct pki_template *tpl, pki_var_fn *lookup, void *arg,
                          struct pki_tpl_out *store, char err[ERR_LEN])
{
    char what[64];
    for (size_t i = 0; i < tpl->nsubject; i++) {
        const struct pki_name_entry *e = &tpl->subject[i];
        if (e->field == NULL) {
            pki_set_err(err, "template %s: subject entry %zu has no field", tpl->name, i);
            return -1;
        }
        snprintf(what, sizeof(what), "subject %.40s", e->field);
        char *v = render_value(tpl, what, e->value, field_max(e->field), lookup, arg, err);
        if (v == NULL)
            return -1;
        keep(store, v);
        if (!is_country(e->field, v)) {
            pki_set_err(err, "template %s: subject C must be two capital letters", tpl->name);
            return -1;
        }
        store->subject[i].field = e->field;
        store->subject[i].value = v;
    }
    return 0;
}

static int render_sans(const struct pki_template *tpl, pki_var_fn *lookup, void *arg,
                       struct pki_tpl_out *store, char err[ERR_LEN])
{
    char what[64];
    for (size_t i = 0; i < tpl->nsans; i++) {
        const struct pki_san *s = &tpl->sans[i];
        if ((unsigned)s->type >= PKI_SAN__MAX) {
            pki_set_err(err, "template %s: SAN %zu has an unknown type", tpl->name, i);
            return -1;
        }
        snprintf(what, sizeof(what), "san %s", san_label[s->type]);
        char *v = render_value(tpl, what, s->value, san_max[s->type], lookup, arg, err);
        if (v == NULL)
            return -1;
        keep(store, v);
        store->sans[i].type = s->type;
        store->sans[i].value = v;
    }
    return 0;
}

int pki_template_render(const struct pki_template *tpl, pki_var_fn *lookup, void *arg,
                        int64_t not_before, struct pki_issue_req *req, struct pki_tpl_out *store,
                        char err[ERR_LEN])
{
    int rc = -1;
    memset(store, 0, sizeof(*store));
    if (tpl == NULL || tpl->validity <= 0 || (tpl->nsubject == 0 && tpl->nsans == 0)) {
        pki_set_err(err, "template %s: needs a validity and a subject entry or a SAN",
                    tpl != NULL && tpl->name != NULL ? tpl->name : "?");
        goto out;
    }
    store->subject = xcalloc(tpl->nsubject + 1, sizeof(*store->subject));
    store->sans = xcalloc(tpl->nsans + 1, sizeof(*store->sans));
    store->strings = xcalloc(tpl->nsubject + tpl->nsans + 1, sizeof(*store->strings));
    if (render_subject(tpl, lookup, arg, store, err) != 0 ||
        render_sans(tpl, lookup, arg, store, err) != 0)
        goto out;
    req->subject = store->subject;
    req->nsubject = tpl->nsubject;
    req->sans = store->sans;
    req->nsans = tpl->nsans;
    req->key_usage = tpl->key_usage;
    req->eku_oids = (const char **)tpl->eku;
    req->neku = tpl->eku != NULL ? tpl->neku : 0;
    req->not_before = not_before;
    req->not_after = not_before + tpl->validity;
    rc = 0;
out:
    if (rc != 0)
        pki_tpl_out_clear(store);
    return rc;
}

void pki_tpl_out_clear(struct pki_tpl_out *store)
{
    if (store == NULL)
        return;
    for (size_t i = 0; i < store->nstrings; i++)
        free(store->strings[i]);
    free(store->strings);
    free(store->subject);
    free(store->sans);
    memset(store, 0, sizeof(*store));
}
