/*
 * problem.c: RFC 7807 problem documents (RFC 8555 §6.7). Handlers fill a
 * struct acme_problem; this file turns it into application/problem+json.
 */
#include "acme/acme_int.h"

#include <stdio.h>
#include <string.h>

void
acme_problem_set(struct acme_problem *p, const char *type, int status, const char *fmt, ...)
{
    va_list ap;

    if (p == NULL)
        return;
    p->type = type;
    p->status = status;
    va_start(ap, fmt);
    vsnprintf(p->detail, sizeof(p->detail), fmt, ap);
    va_end(ap);
}

void
acme_problem_add_sub(struct acme_problem *p, const char *type, const char *id_type,
                     const char *id_value, const char *fmt, ...)
{
    struct acme_subproblem *s;
    va_list ap;

    /* Extra subproblems are dropped: the document stays bounded. */
    if (p == NULL || p->nsub >= ACME_MAX_SUBPROBLEMS)
        return;
    s = &p->sub[p->nsub++];
    memset(s, 0, sizeof(*s));
    s->type = type;
    snprintf(s->id_type, sizeof(s->id_type), "%s", id_type != NULL ? id_type : "");
    snprintf(s->id_value, sizeof(s->id_value), "%s", id_value != NULL ? id_value : "");
    va_start(ap, fmt);
    vsnprintf(s->detail, sizeof(s->detail), fmt, ap);
    va_end(ap);
}

/* A URL cut short would point elsewhere: one that does not fit is left out. */
static void
set_url(char dst[ACME_PROBLEM_URL_LEN], const char *url)
{
    int n = snprintf(dst, ACME_PROBLEM_URL_LEN, "%s", url != NULL ? url : "");

    if (n < 0 || n >= ACME_PROBLEM_URL_LEN)
        dst[0] = '\0';
}

void
acme_problem_set_instance(struct acme_problem *p, const char *url)
{
    if (p != NULL)
        set_url(p->instance, url);
}

void
acme_problem_set_link(struct acme_problem *p, const char *rel, const char *url)
{
    if (p == NULL)
        return;
    set_url(p->link, url);
    p->link_rel = rel;
}

/* Short ACME types get the URN prefix; absolute URIs (private types) stay as they are. */
static void
add_type(cJSON *obj, const char *type)
{
    char *full;

    if (strchr(type, ':') != NULL) {
        cJSON_AddStringToObject(obj, "type", type);
        return;
    }
    full = xasprintf("%s%s", ACME_ERR_NS, type);
    cJSON_AddStringToObject(obj, "type", full);
    free(full);
}

cJSON *
acme_problem_to_json(const struct acme_problem *prob)
{
    cJSON *obj = cJSON_CreateObject(), *arr, *sub, *id;
    const char *type = prob->type != NULL ? prob->type : "serverInternal";
    int status = prob->status != 0 ? prob->status : (prob->type != NULL ? 400 : 500);
    size_t i;

    add_type(obj, type);
    cJSON_AddStringToObject(obj, "detail", prob->detail);
    cJSON_AddNumberToObject(obj, "status", status);
    if (prob->instance[0] != '\0')
        cJSON_AddStringToObject(obj, "instance", prob->instance);
    /* J-10: the accepted algorithms go with every badSignatureAlgorithm. */
    if (strcmp(type, "badSignatureAlgorithm") == 0) {
        arr = cJSON_AddArrayToObject(obj, "algorithms");
        for (i = 0; i < PKI_JWS__MAX; i++)
            cJSON_AddItemToArray(arr, cJSON_CreateString(pki_jws_alg_name((enum pki_jws_alg)i)));
    }
    if (prob->nsub == 0)
        return obj;
    arr = cJSON_AddArrayToObject(obj, "subproblems");
    for (i = 0; i < prob->nsub && i < ACME_MAX_SUBPROBLEMS; i++) {
        sub = cJSON_CreateObject();
        add_type(sub, prob->sub[i].type != NULL ? prob->sub[i].type : type);
        cJSON_AddStringToObject(sub, "detail", prob->sub[i].detail);
        /* P-3: an identifier object only when it is a complete one. */
        if (prob->sub[i].id_type[0] != '\0') {
            id = cJSON_AddObjectToObject(sub, "identifier");
            cJSON_AddStringToObject(id, "type", prob->sub[i].id_type);
            cJSON_AddStringToObject(id, "value", prob->sub[i].id_value);
        }
        cJSON_AddItemToArray(arr, sub);
    }
    return obj;
}

void
acme_problem_respond(const struct acme_problem *prob, struct acme_response *resp)
{
    cJSON *obj = acme_problem_to_json(prob);
    int status = prob->status != 0 ? prob->status : (prob->type != NULL ? 400 : 500);

    free(resp->body);
    resp->body = cJSON_PrintUnformatted(obj);
    resp->body_len = resp->body != NULL ? strlen(resp->body) : 0;
    resp->status = status;
    resp->content_type = "application/problem+json";
    cJSON_Delete(obj);
    if (prob->retry_after > 0)
        acme_resp_header(resp, "Retry-After", "%d", prob->retry_after);
    if (prob->link[0] != '\0' && prob->link_rel != NULL)
        acme_resp_header(resp, "Link", "<%s>;rel=\"%s\"", prob->link, prob->link_rel);
}

void
acme_response_clear(struct acme_response *resp)
{
    size_t i;

    if (resp == NULL)
        return;
    free(resp->body);
    for (i = 0; i < resp->nheaders && i < ACME_MAX_HEADERS; i++)
        free(resp->headers[i].value);
    memset(resp, 0, sizeof(*resp));
}
