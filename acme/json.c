/*
 * json.c: the one entry point for untrusted JSON (cJSON is lenient, so the
 * checks RFC 8259/8555 need are done here around it) and small helpers to
 * build JSON responses.
 */
#include "acme/acme_int.h"

#include <stdio.h>
#include <string.h>

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF, no NUL. */
static bool
utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0, n, k;
    uint32_t cp;

    while (i < len) {
        unsigned char c = s[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1fu;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0fu;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07u;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0u) != 0x80u)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

static int
cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* True when some object in the tree repeats a member name (sorted, so O(n log n)). */
static bool
has_dup_keys(const cJSON *node)
{
    const cJSON *c;
    const char **keys = NULL;
    size_t n = 0, i;
    bool dup = false;

    for (c = node->child; c != NULL; c = c->next) {
        if (has_dup_keys(c))
            return true;
        n++;
    }
    if (!cJSON_IsObject(node) || n < 2)
        return false;
    keys = xcalloc(n, sizeof(*keys));
    i = 0;
    for (c = node->child; c != NULL; c = c->next)
        keys[i++] = c->string != NULL ? c->string : "";
    qsort(keys, n, sizeof(*keys), cmp_str_ptr);
    for (i = 1; i < n && !dup; i++)
        dup = strcmp(keys[i - 1], keys[i]) == 0;
    free(keys);
    return dup;
}

cJSON *
acme_json_parse(const char *text, size_t len, struct acme_problem *prob)
{
    return acme_json_parse_depth(text, len, ACME_MAX_JSON_DEPTH, prob);
}

cJSON *
acme_json_parse_depth(const char *text, size_t len, int max_depth, struct acme_problem *prob)
{
    char *copy = NULL;
    cJSON *root = NULL;

    if (text == NULL || len == 0 || len > ACME_MAX_JWS) {
        acme_problem_set(prob, "malformed", 400, "JSON text is empty or too large");
        goto out;
    }
    if (!utf8_valid((const unsigned char *)text, len)) {
        acme_problem_set(prob, "malformed", 400, "JSON text is not valid UTF-8");
        goto out;
    }
    if (max_depth <= 0 || max_depth > ACME_MAX_JSON_DEPTH_CEIL)
        max_depth = ACME_MAX_JSON_DEPTH;
    if (!json_depth_ok(text, len, max_depth)) {
        acme_problem_set(prob, "malformed", 400, "JSON nested deeper than %d", max_depth);
        goto out;
    }
    /* The copy's NUL lies inside the length, so require_null_terminated rejects trailing bytes. */
    copy = xstrndup(text, len);
    root = cJSON_ParseWithLengthOpts(copy, len + 1, NULL, 1);
    if (root == NULL) {
        acme_problem_set(prob, "malformed", 400, "invalid JSON");
        goto out;
    }
    if (has_dup_keys(root)) {
        acme_problem_set(prob, "malformed", 400, "JSON object with a duplicate member");
        cJSON_Delete(root);
        root = NULL;
    }
out:
    free(copy);
    return root;
}

const char *
acme_json_str(const cJSON *obj, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);

    return cJSON_IsString(it) ? it->valuestring : NULL;
}

void
acme_resp_json(struct acme_response *resp, int status, cJSON *body)
{
    free(resp->body);
    resp->body = cJSON_PrintUnformatted(body);
    resp->body_len = resp->body != NULL ? strlen(resp->body) : 0;
    resp->status = status;
    resp->content_type = "application/json";
    cJSON_Delete(body);
}

void
acme_resp_header_take(struct acme_response *resp, const char *name, char *value)
{
    if (resp->nheaders >= ACME_MAX_HEADERS) {
        log_err("acme", "response header %s dropped: more than %d headers", name,
                ACME_MAX_HEADERS);
        free(value);
        return;
    }
    resp->headers[resp->nheaders].name = name;
    resp->headers[resp->nheaders].value = value;
    resp->nheaders++;
}

void
acme_resp_header(struct acme_response *resp, const char *name, const char *fmt, ...)
{
    va_list ap;
    char *tmp = NULL;
    int n;

    if (resp->nheaders >= ACME_MAX_HEADERS) {
        log_err("acme", "response header %s dropped: more than %d headers", name,
                ACME_MAX_HEADERS);
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    tmp = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    va_end(ap);
    resp->headers[resp->nheaders].name = name;
    resp->headers[resp->nheaders].value = tmp;
    resp->nheaders++;
}
