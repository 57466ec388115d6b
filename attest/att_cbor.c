/*
 * att_cbor: the attestation object's CBOR layer. A hand-rolled pre-scan
 * enforces the limits on the raw bytes first, because libcbor allocates for
 * whatever lengths an item declares; only then does cbor_load build the tree,
 * which is checked against the shape Apple sends:
 * {"fmt":"apple","attStmt":{"x5c":[leafDER, intermediateDER...]}}.
 */
#include "attest/att_int.h"

#include <cbor.h>
#include <stdio.h>
#include <string.h>

/* Container headers still waiting for items, innermost last. */
struct scan {
    const unsigned char *p;
    size_t len, off;
    uint64_t left[ATT_MAX_DEPTH];
    int depth;
    int max_depth; /* <= ATT_MAX_DEPTH */
};

void att_limits_normalize(const struct att_limits *in, struct att_limits *out)
{
    struct att_limits l = {ATT_MAX_ATTOBJ, ATT_MAX_DEPTH, ATT_MAX_X5C};
    if (in != NULL && in->max_attobj >= 1 && in->max_attobj <= ATT_MAX_ATTOBJ)
        l.max_attobj = in->max_attobj;
    if (in != NULL && in->max_depth >= 2 && in->max_depth <= ATT_MAX_DEPTH)
        l.max_depth = in->max_depth;
    if (in != NULL && in->max_x5c >= 1 && in->max_x5c <= ATT_MAX_X5C)
        l.max_x5c = in->max_x5c;
    *out = l;
}

void att_escape(const void *p, size_t n, char *out, size_t outlen)
{
    char tmp[72];
    size_t k = n < sizeof(tmp) - 1 ? n : sizeof(tmp) - 1;

    /* log_escape wants a NUL-terminated input; CBOR strings are not. */
    memcpy(tmp, p, k);
    tmp[k] = '\0';
    log_escape(tmp, k, out, outlen);
}

/* Reads one item head: major type and argument (length, count or value). */
static int read_head(struct scan *s, int *major, uint64_t *arg, char err[ERR_LEN])
{
    if (s->off >= s->len) {
        snprintf(err, ERR_LEN, "CBOR truncated at offset %zu", s->off);
        return -1;
    }
    unsigned char b = s->p[s->off++];
    unsigned ai = b & 0x1f;
    *major = b >> 5;
    if (ai < 24) {
        *arg = ai;
        return 0;
    }
    if (ai == 31) {
        snprintf(err, ERR_LEN, "indefinite-length CBOR item at offset %zu", s->off - 1);
        return -1;
    }
    if (ai > 27) {
        snprintf(err, ERR_LEN, "reserved CBOR additional info %u at offset %zu", ai, s->off - 1);
        return -1;
    }
    size_t n = (size_t)1 << (ai - 24);
    if (s->len - s->off < n) {
        snprintf(err, ERR_LEN, "CBOR truncated at offset %zu", s->len);
        return -1;
    }
    *arg = 0;
    for (size_t i = 0; i < n; i++)
        *arg = (*arg << 8) | s->p[s->off++];
    return 0;
}

/* Enters a container of count items (0 completes it at once). 1: entered, 0: empty, -1. */
static int enter(struct scan *s, uint64_t count, char err[ERR_LEN])
{
    if (count == 0)
        return 0;
    if (s->depth >= s->max_depth) {
        snprintf(err, ERR_LEN, "CBOR nested deeper than %d levels", s->max_depth);
        return -1;
    }
    s->left[s->depth++] = count;
    return 1;
}

/* Checks one item head and its payload bounds. 1: a container was entered, 0: done, -1. */
static int scan_item(struct scan *s, char err[ERR_LEN])
{
    int major = 0;
    uint64_t arg = 0;

    if (read_head(s, &major, &arg, err) != 0)
        return -1;
    switch (major) {
    case 2: /* byte and text strings: the declared length must be present */
    case 3:
        if (arg > s->len - s->off) {
            snprintf(err, ERR_LEN, "CBOR string declares %llu bytes, %zu remain",
                     (unsigned long long)arg, s->len - s->off);
            return -1;
        }
        s->off += (size_t)arg;
        return 0;
    case 4:
        if (arg > ATT_MAX_ARRAY) {
            snprintf(err, ERR_LEN, "CBOR array of %llu entries (max %d)", (unsigned long long)arg,
                     ATT_MAX_ARRAY);
            return -1;
        }
        return enter(s, arg, err);
    case 5:
        if (arg > ATT_MAX_MAP) {
            snprintf(err, ERR_LEN, "CBOR map of %llu pairs (max %d)", (unsigned long long)arg,
                     ATT_MAX_MAP);
            return -1;
        }
        return enter(s, 2 * arg, err);
    case 6: /* a tag wraps one item; count it as a level so tags cannot nest freely */
        return enter(s, 1, err);
    default: /* integers, simple values, floats: the head was all of it */
        return 0;
    }
}

/* Walks exactly one definite-length item covering all len bytes. 0/-1. */
static int prescan(const unsigned char *p, size_t len, int max_depth, char err[ERR_LEN])
{
    struct scan s = {.p = p, .len = len, .max_depth = max_depth};

    do {
        int rc = scan_item(&s, err);
        if (rc < 0)
            return -1;
        if (rc > 0)
            continue;
        /* An item completed: close every container it finished. */
        while (s.depth > 0) {
            if (--s.left[s.depth - 1] > 0)
                break;
            s.depth--;
        }
    } while (s.depth > 0);
    if (s.off != len) {
        snprintf(err, ERR_LEN, "%zu trailing bytes after the CBOR item", len - s.off);
        return -1;
    }
    return 0;
}

static bool is_text(const cbor_item_t *it)
{
    return cbor_isa_string(it) && cbor_string_is_definite(it);
}

static bool text_eq(const cbor_item_t *it, const char *s)
{
    size_t n = strlen(s);
    return is_text(it) && cbor_string_length(it) == n && memcmp(cbor_string_handle(it), s, n) == 0;
}

/* Unknown members (e.g. authData) are ignored when they are scalars or short strings. */
static bool is_small(const cbor_item_t *it)
{
    if (cbor_isa_bytestring(it))
        return cbor_bytestring_is_definite(it) && cbor_bytestring_length(it) <= ATT_MAX_EXTRA;
    if (cbor_isa_string(it))
        return cbor_string_is_definite(it) && cbor_string_length(it) <= ATT_MAX_EXTRA;
    return cbor_isa_uint(it) || cbor_isa_negint(it) || cbor_isa_float_ctrl(it);
}

/*
 * Looks up the keys names[0..n) in map (a text-keyed map without duplicate
 * keys) and stores each value in found[] (NULL when absent). 0/-1.
 */
static int map_lookup(const cbor_item_t *map, const char *what, const char *const *names,
                      cbor_item_t **found, size_t n, char err[ERR_LEN])
{
    char esc[96];

    if (!cbor_isa_map(map) || !cbor_map_is_definite(map)) {
        snprintf(err, ERR_LEN, "%s is not a CBOR map", what);
        return -1;
    }
    size_t npairs = cbor_map_size(map);
    struct cbor_pair *pairs = cbor_map_handle(map);
    for (size_t i = 0; i < n; i++)
        found[i] = NULL;
    for (size_t i = 0; i < npairs; i++) {
        if (!is_text(pairs[i].key)) {
            snprintf(err, ERR_LEN, "%s has a key that is not a text string", what);
            return -1;
        }
        const unsigned char *k = cbor_string_handle(pairs[i].key);
        size_t klen = cbor_string_length(pairs[i].key);
        att_escape(k, klen, esc, sizeof(esc));
        for (size_t j = 0; j < i; j++) {
            if (cbor_string_length(pairs[j].key) == klen &&
                memcmp(cbor_string_handle(pairs[j].key), k, klen) == 0) {
                snprintf(err, ERR_LEN, "%s has duplicate key \"%s\"", what, esc);
                return -1;
            }
        }
        size_t j = 0;
        while (j < n && !text_eq(pairs[i].key, names[j]))
            j++;
        if (j < n) {
            found[j] = pairs[i].value;
        } else if (!is_small(pairs[i].value)) {
            snprintf(err, ERR_LEN, "%s member \"%s\" is not a small scalar", what, esc);
            return -1;
        }
    }
    return 0;
}

static int check_fmt(const cbor_item_t *fmt, char err[ERR_LEN])
{
    char esc[96];

    if (fmt == NULL) {
        snprintf(err, ERR_LEN, "attestation object has no fmt");
        return -1;
    }
    if (!is_text(fmt)) {
        snprintf(err, ERR_LEN, "attestation object fmt is not a text string");
        return -1;
    }
    if (!text_eq(fmt, "apple")) {
        att_escape(cbor_string_handle(fmt), cbor_string_length(fmt), esc, sizeof(esc));
        snprintf(err, ERR_LEN, "unsupported attestation format \"%s\"", esc);
        return -1;
    }
    return 0;
}

static int take_x5c(const cbor_item_t *x5c, int max_x5c, struct att_attobj *out,
                    char err[ERR_LEN])
{
    if (x5c == NULL) {
        snprintf(err, ERR_LEN, "attStmt has no x5c");
        return -1;
    }
    if (!cbor_isa_array(x5c) || !cbor_array_is_definite(x5c)) {
        snprintf(err, ERR_LEN, "attStmt.x5c is not an array");
        return -1;
    }
    size_t n = cbor_array_size(x5c);
    if (n == 0 || n > (size_t)max_x5c) {
        snprintf(err, ERR_LEN, "attStmt.x5c has %zu entries (expected 1..%d)", n, max_x5c);
        return -1;
    }
    cbor_item_t **items = cbor_array_handle(x5c);
    for (size_t i = 0; i < n; i++) {
        const cbor_item_t *e = items[i];
        if (!cbor_isa_bytestring(e) || !cbor_bytestring_is_definite(e)) {
            snprintf(err, ERR_LEN, "attStmt.x5c[%zu] is not a byte string", i);
            return -1;
        }
        size_t len = cbor_bytestring_length(e);
        if (len == 0 || len > ATT_MAX_CERT_DER) {
            snprintf(err, ERR_LEN, "attStmt.x5c[%zu] is %zu bytes (expected 1..%d)", i, len,
                     ATT_MAX_CERT_DER);
            return -1;
        }
        out->x5c[i].p = cbor_bytestring_handle(e);
        out->x5c[i].len = len;
    }
    out->nx5c = n;
    return 0;
}

static int check_shape(const cbor_item_t *root, int max_x5c, struct att_attobj *out,
                       char err[ERR_LEN])
{
    static const char *const top_keys[] = {"fmt", "attStmt"};
    static const char *const stmt_keys[] = {"x5c"};
    cbor_item_t *top[2], *stmt[1];

    if (map_lookup(root, "attestation object", top_keys, top, nitems(top), err) != 0)
        return -1;
    if (check_fmt(top[0], err) != 0)
        return -1;
    if (top[1] == NULL) {
        snprintf(err, ERR_LEN, "attestation object has no attStmt");
        return -1;
    }
    if (map_lookup(top[1], "attStmt", stmt_keys, stmt, nitems(stmt), err) != 0)
        return -1;
    return take_x5c(stmt[0], max_x5c, out, err);
}

int att_attobj_parse(const unsigned char *p, size_t len, const struct att_limits *lim_in,
                     struct att_attobj *out, char err[ERR_LEN])
{
    int rc = -1;
    cbor_item_t *root = NULL;
    struct cbor_load_result res;
    struct att_limits lim;

    att_limits_normalize(lim_in, &lim);
    memset(out, 0, sizeof(*out));
    if (p == NULL || len == 0) {
        snprintf(err, ERR_LEN, "attestation object is empty");
        goto out;
    }
    if (len > lim.max_attobj) {
        snprintf(err, ERR_LEN, "attestation object is %zu bytes (max %zu)", len, lim.max_attobj);
        goto out;
    }
    if (prescan(p, len, lim.max_depth, err) != 0)
        goto out;
    root = cbor_load(p, len, &res);
    if (root == NULL || res.error.code != CBOR_ERR_NONE) {
        snprintf(err, ERR_LEN, "attestation object is not valid CBOR (libcbor error %d at %zu)",
                 (int)res.error.code, res.error.position);
        goto out;
    }
    if (res.read != len) {
        snprintf(err, ERR_LEN, "%zu trailing bytes after the CBOR item", len - res.read);
        goto out;
    }
    if (check_shape(root, lim.max_x5c, out, err) != 0)
        goto out;
    out->root = root;
    root = NULL;
    rc = 0;
out:
    if (root != NULL)
        cbor_decref(&root);
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

void att_attobj_clear(struct att_attobj *a)
{
    if (a == NULL)
        return;
    if (a->root != NULL) {
        cbor_item_t *root = a->root;
        cbor_decref(&root);
    }
    memset(a, 0, sizeof(*a));
}
