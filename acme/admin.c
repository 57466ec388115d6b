/*
 * admin.c: `attesta audit` and `attesta approve` over the store. Approval
 * writes the decision into the held authz record (a versioned update, so a
 * device settling at the same moment and an administrator never both win);
 * the server applies it on the device's next poll.
 */
#include "acme/acme_admin.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "store/store.h"

#define ADMIN_TRIES 5
#define REASON_MAX 200

static const char *
jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *
or_dash(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : "-";
}

/* "a, b, c" of a string array into out. */
static void
join(const cJSON *arr, char *out, size_t len)
{
    const cJSON *v;
    size_t used = 0;
    int n;

    out[0] = '\0';
    cJSON_ArrayForEach(v, arr)
    {
        if (!cJSON_IsString(v) || used >= len)
            continue;
        n = snprintf(out + used, len - used, "%s%s", used > 0 ? ", " : "", v->valuestring);
        used += n > 0 ? (size_t)n : 0;
    }
    if (out[0] == '\0')
        snprintf(out, len, "(none)");
}

struct audit_arg {
    FILE *fp;
    int n;
};

static void
print_sources(FILE *fp, const cJSON *arr)
{
    const cJSON *s, *ms, *st;

    cJSON_ArrayForEach(s, arr)
    {
        ms = cJSON_GetObjectItemCaseSensitive(s, "ms");
        st = cJSON_GetObjectItemCaseSensitive(s, "status");
        fprintf(fp, "  source:      %s %s (HTTP %d%s%s, %lld ms): %s\n", or_dash(jstr(s, "source")),
                or_dash(jstr(s, "verdict")), cJSON_IsNumber(st) ? st->valueint : 0,
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "cached")) ? ", cached" : "",
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "failed")) ? ", failed" : "",
                cJSON_IsNumber(ms) ? (long long)ms->valuedouble : 0LL, or_dash(jstr(s, "reason")));
    }
}

static int
audit_one(void *arg, const struct store_rec *rec)
{
    struct audit_arg *aa = arg;
    cJSON *d = cJSON_Parse(rec->data != NULL ? rec->data : "");
    char when[32], roles[512];

    if (!cJSON_IsObject(d))
        goto out;
    join(cJSON_GetObjectItemCaseSensitive(d, "roles"), roles, sizeof(roles));
    fprintf(aa->fp, "%s  %s  %s  device=%s  policy=%s\n", clk_fmt_rfc3339(rec->created, when),
            or_dash(jstr(d, "decision")), or_dash(jstr(d, "stage")), or_dash(rec->lookup),
            or_dash(jstr(d, "policy")));
    fprintf(aa->fp, "  reason:      %s\n", or_dash(jstr(d, "reason")));
    fprintf(aa->fp, "  identifier:  %s\n  account:     %s\n  roles:       %s\n",
            or_dash(jstr(d, "identifier")), or_dash(jstr(d, "account")), roles);
    print_sources(aa->fp, cJSON_GetObjectItemCaseSensitive(d, "sources"));
    if (jstr(d, "certificate") != NULL)
        fprintf(aa->fp, "  certificate: %s (ca %s, template %s)%s%s\n", jstr(d, "certificate"),
                or_dash(jstr(d, "ca")), or_dash(jstr(d, "template")),
                jstr(d, "supersedes") != NULL ? ", supersedes " : "",
                jstr(d, "supersedes") != NULL ? jstr(d, "supersedes") : "");
    if (jstr(d, "approval") != NULL)
        fprintf(aa->fp, "  approval:    %s\n", jstr(d, "approval"));
    fputc('\n', aa->fp);
    aa->n++;
out:
    cJSON_Delete(d);
    return 0;
}

int
acme_admin_audit(struct store *st, const char *serial, int64_t since, FILE *fp,
                 char err[ERR_LEN])
{
    struct store_filter f = {.lookup = serial, .created_since = since, .newest_first = true};
    struct audit_arg aa = {fp, 0};

    if (store_list(st, STORE_AUDIT, &f, audit_one, &aa, err) != 0)
        return -1;
    return aa.n;
}

/* Collected ids of held authzs (the listing callback must not write). */
struct held {
    FILE *fp;           /* print them, or */
    const char *serial; /* collect those of this device */
    char (*ids)[128];
    size_t n, cap;
};

static bool
is_held(const cJSON *d)
{
    const char *state = jstr(cJSON_GetObjectItemCaseSensitive(d, "approval"), "state");

    return state != NULL && strcmp(state, "pending") == 0;
}

static int
held_one(void *arg, const struct store_rec *rec)
{
    struct held *h = arg;
    cJSON *d = cJSON_Parse(rec->data != NULL ? rec->data : "");
    const cJSON *att = cJSON_GetObjectItemCaseSensitive(d, "attestation");
    const char *serial = jstr(att, "serial");
    char roles[512];
    int64_t age = clk_now() - rec->created;

    if (!is_held(d) || rec->expires < clk_now())
        goto out;
    if (h->fp != NULL) {
        join(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(d, "decision"),
                                              "roles"),
             roles, sizeof(roles));
        fprintf(h->fp, "%-24s  serial=%s  policy=%s  roles=%s  age=%lldm\n", rec->id,
                or_dash(serial), or_dash(jstr(d, "policy")), roles, (long long)(age / 60));
        h->n++;
    } else if (serial != NULL && strcmp(serial, h->serial) == 0) {
        if (h->n == h->cap) {
            h->cap = h->cap != 0 ? 2 * h->cap : 8;
            h->ids = xrealloc(h->ids, h->cap * sizeof(*h->ids));
        }
        snprintf(h->ids[h->n++], sizeof(h->ids[0]), "%s", rec->id);
    }
out:
    cJSON_Delete(d);
    return 0;
}

int
acme_admin_pending(struct store *st, FILE *fp, char err[ERR_LEN])
{
    struct store_filter f = {.status = "pending"};
    struct held h = {.fp = fp};

    if (store_list(st, STORE_AUTHZ, &f, held_one, &h, err) != 0)
        return -1;
    return (int)h.n;
}

/* One versioned update of the held authz. 0 done, 1 not held, 2 conflict, -1 error. */
static int
decide_once(struct store *st, const char *id, bool approve, const char *reason,
            char err[ERR_LEN])
{
    struct store_rec rec = {0};
    struct store_write w = {0};
    cJSON *d = NULL, *ap;
    char *data = NULL;
    int rc = store_get(st, STORE_AUTHZ, id, &rec, err);

    if (rc != 0)
        goto out;
    d = cJSON_Parse(rec.data != NULL ? rec.data : "");
    if (!is_held(d) || rec.status == NULL || strcmp(rec.status, "pending") != 0) {
        rc = 1;
        goto out;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(d, "approval");
    ap = cJSON_AddObjectToObject(d, "approval");
    cJSON_AddStringToObject(ap, "state", approve ? "approved" : "denied");
    if (!approve)
        cJSON_AddStringToObject(ap, "reason", reason != NULL ? reason : "");
    cJSON_AddNumberToObject(ap, "at", (double)clk_now());
    data = cJSON_PrintUnformatted(d);
    free(rec.data);
    rec.data = data;
    data = NULL;
    w.op = STORE_UPDATE;
    w.rec = &rec;
    w.expect_version = rec.version;
    rc = store_commit(st, &w, 1, err);
    if (rc == 1)
        rc = 2;
out:
    cJSON_Delete(d);
    store_rec_clear(&rec);
    return rc;
}

int
acme_admin_decide(struct store *st, const char *authz_id, bool approve, const char *reason,
                  char err[ERR_LEN])
{
    int i, rc = 2;

    if (reason != NULL && strlen(reason) > REASON_MAX) {
        snprintf(err, ERR_LEN, "--reason: at most %d characters", REASON_MAX);
        return -1;
    }
    for (i = 0; i < ADMIN_TRIES && rc == 2; i++)
        rc = decide_once(st, authz_id, approve, reason, err);
    if (rc == 2) {
        snprintf(err, ERR_LEN, "authorization %s kept changing; try again", authz_id);
        return -1;
    }
    if (rc == 1)
        snprintf(err, ERR_LEN, "no authorization %s waiting for approval", authz_id);
    return rc;
}

int
acme_admin_decide_serial(struct store *st, const char *serial, bool approve, const char *reason,
                         char err[ERR_LEN])
{
    struct store_filter f = {.status = "pending"};
    struct held h = {.serial = serial};
    int n = 0, rc = 0;
    size_t i;

    if (store_list(st, STORE_AUTHZ, &f, held_one, &h, err) != 0)
        return -1;
    for (i = 0; i < h.n && rc >= 0; i++) {
        rc = acme_admin_decide(st, h.ids[i], approve, reason, err);
        n += rc == 0 ? 1 : 0;
    }
    free(h.ids);
    return rc < 0 ? -1 : n;
}
