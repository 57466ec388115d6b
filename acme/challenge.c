/*
 * challenge.c: the challenge resource (RFC 8555 §7.5.1, §8): POST-as-GET, the
 * client's response that moves a network challenge to `processing` and hands
 * it to the validator, and the settlement that carries a result to the
 * challenge, its authorization and its order in one atomic commit.
 *
 * A failed try the validator repeats leaves the challenge `processing` with
 * that try's problem as its `error` and the next try's time (CH-5). RFC 8555
 * §8 ties `error` to `invalid`, §8.2 asks for it during retries (checklist
 * note 27.1): attesta shows it, and only `invalid` is final. A client that
 * re-POSTs its response while such a retry waits gets it run at once, at most
 * once per CFG_EARLY_RETRY_GAP; a re-POST within that gap gets rateLimited
 * (CH-6).
 */
#include "acme/acme_res_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
acme_authz_find_chall(const struct acme_authz *a, const char *chall_id)
{
    size_t i;

    for (i = 0; i < a->nch; i++)
        if (strcmp(a->ch[i].id, chall_id) == 0)
            return (int)i;
    return -1;
}

/*
 * CH-5: a client polling before the next try would only see the same error
 * again, so point it past that try; otherwise the usual poll interval.
 */
static int
chall_retry_after(const struct acme_chall *ch)
{
    int64_t left = ch->retry_at - clk_now();

    if (strcmp(ch->status, "processing") != 0 || left <= ACME_RETRY_POLL)
        return ACME_RETRY_POLL;
    return left < INT_MAX ? (int)left : INT_MAX;
}

int
acme_authz_retry_after(const struct acme_authz *a)
{
    int best = ACME_RETRY_POLL, s;
    size_t i;

    for (i = 0; i < a->nch; i++) {
        s = chall_retry_after(&a->ch[i]);
        if (s > best)
            best = s;
    }
    return best;
}

void
acme_chall_respond(struct acme_rq *rq, const struct acme_authz *a, const struct acme_chall *ch)
{
    char *up = acme_url(rq->ctx, a->policy, ACME_RES_AUTHZ, a->id, NULL);

    acme_resp_json(rq->resp, 200, acme_chall_to_json(rq->ctx, a, ch));
    /* D-7: challenges point up at their authorization. */
    acme_resp_header(rq->resp, "Link", "<%s>;rel=\"up\"", up);
    if (strcmp(ch->status, "processing") == 0)
        acme_resp_header(rq->resp, "Retry-After", "%d", chall_retry_after(ch));
    free(up);
}

struct acme_validation *
acme_validation_build(const struct acme_authz *a, const struct acme_chall *ch)
{
    struct acme_validation *v = xcalloc(1, sizeof(*v));
    char *txt;

    acme_strlcpy(v->authz_id, a->id, sizeof(v->authz_id));
    acme_strlcpy(v->chall_id, ch->id, sizeof(v->chall_id));
    v->type = ch->type;
    /* The authz value never carries "*." (S-7), so dns-01 queries the base domain. */
    acme_strlcpy(v->identifier, a->ident.value, sizeof(v->identifier));
    v->is_ip = a->ident.type == ACME_ID_IP;
    acme_strlcpy(v->token, ch->token, sizeof(v->token));
    acme_strlcpy(v->key_authz, ch->key_authz, sizeof(v->key_authz));
    pki_sha256(v->key_authz, strlen(v->key_authz), v->key_authz_sha256);
    txt = b64u_encode(v->key_authz_sha256, sizeof(v->key_authz_sha256));
    acme_strlcpy(v->dns01_txt, txt, sizeof(v->dns01_txt));
    free(txt);
    return v;
}

/* Whether every authorization of o other than done_id is valid now. */
static int
others_valid(struct acme_ctx *ctx, const struct acme_order *o, const char *done_id, bool *all,
             struct acme_problem *prob)
{
    struct acme_authz other;
    size_t i;

    *all = true;
    for (i = 0; i < o->nauthz && *all; i++) {
        if (strcmp(o->authz[i], done_id) == 0)
            continue;
        if (acme_authz_load(ctx, o->authz[i], &other, prob) != 0) {
            acme_problem_set(prob, "serverInternal", 500, "order lost an authorization");
            return -1;
        }
        *all = strcmp(acme_authz_status(&other), "valid") == 0;
        acme_authz_clear(&other);
    }
    return 0;
}

/* Applies the result to a loaded authz and its order (in memory). 0/-1. */
static int
apply_result(struct acme_ctx *ctx, struct acme_authz *a, size_t idx, struct acme_order *o,
             const struct acme_settle *s, struct acme_problem *prob)
{
    struct acme_chall *ch = &a->ch[idx];
    bool all = false;

    cJSON_Delete(ch->error);
    ch->error = NULL;
    ch->retry_at = 0;
    ch->early_at = 0;
    if (s->decision != NULL) {
        cJSON_Delete(a->decision);
        a->decision = cJSON_Duplicate(s->decision, 1);
    }
    if (s->approval != NULL)
        acme_strlcpy(a->approval, s->approval, sizeof(a->approval));
    if (s->att != NULL)
        a->att = *s->att;
    if (!s->ok) {
        acme_strlcpy(ch->status, "invalid", sizeof(ch->status));
        ch->error = s->fail != NULL ? acme_problem_to_json(s->fail) : NULL;
        if (strcmp(a->status, "pending") == 0)
            acme_strlcpy(a->status, "invalid", sizeof(a->status));
        acme_order_fail(o, s->fail);
        return 0;
    }
    if (s->hold) {
        /* Admitted but waiting for an administrator: nothing is valid yet. */
        acme_strlcpy(ch->status, "processing", sizeof(ch->status));
        return 0;
    }
    acme_strlcpy(ch->status, "valid", sizeof(ch->status));
    ch->validated = clk_now();
    /* A deactivated or expired authz stays so: a late success does not revive it. */
    if (strcmp(acme_authz_status(a), "pending") != 0)
        return 0;
    acme_strlcpy(a->status, "valid", sizeof(a->status));
    if (strcmp(acme_order_status(o), "pending") != 0)
        return 0;
    if (others_valid(ctx, o, a->id, &all, prob) != 0)
        return -1;
    if (all)
        acme_strlcpy(o->status, "ready", sizeof(o->status));
    return 0;
}

/* One read-modify-write round (from loaded when given): 0 done, 1 version conflict, -1 error. */
static int
settle_once(struct acme_ctx *ctx, const char *authz_id, const char *chall_id,
            const struct acme_settle *s, const struct acme_authz *loaded, struct acme_authz *out,
            struct acme_problem *prob)
{
    struct acme_authz a = {0};
    struct acme_order o = {0};
    struct store_rec recs[2];
    struct store_write w[3] = {{0}};
    size_t nw = 2;
    char *data[2] = {NULL, NULL}, err[ERR_LEN] = "";
    const char *st;
    int rc = -1, idx;

    if (loaded != NULL && strcmp(loaded->id, authz_id) == 0) {
        acme_authz_copy(loaded, &a);
        idx = acme_authz_find_chall(&a, chall_id);
    } else {
        idx = acme_authz_load(ctx, authz_id, &a, prob) == 0 ? acme_authz_find_chall(&a, chall_id)
                                                             : -1;
    }
    if (idx < 0) {
        acme_problem_set(prob, "serverInternal", 500, "challenge %s/%s vanished", authz_id,
                         chall_id);
        goto out;
    }
    st = a.ch[idx].status;
    if (strcmp(st, "pending") != 0 && strcmp(st, "processing") != 0) {
        rc = 0; /* settled already (a duplicate completion); nothing to write */
        goto out;
    }
    if (acme_order_load(ctx, a.order, &o, prob) != 0) {
        acme_problem_set(prob, "serverInternal", 500, "authorization without its order");
        goto out;
    }
    if (apply_result(ctx, &a, (size_t)idx, &o, s, prob) != 0)
        goto out;
    /* The order is always rewritten: its version serialises sibling authzs settling at once. */
    acme_authz_rec(&a, &recs[0], &data[0]);
    acme_order_rec(&o, &recs[1], &data[1]);
    w[0] = (struct store_write){STORE_UPDATE, &recs[0], a.version};
    w[1] = (struct store_write){STORE_UPDATE, &recs[1], o.version};
    if (s->audit != NULL)
        w[nw++] = (struct store_write){STORE_INSERT, s->audit, 0};
    rc = store_commit(ctx->store, w, nw, err);
    if (rc < 0)
        acme_store_problem(prob, "settling a challenge", err);
out:
    if (rc == 0 && out != NULL) {
        *out = a; /* hands the challenge errors over */
        memset(&a, 0, sizeof(a));
    }
    free(data[0]);
    free(data[1]);
    acme_order_clear(&o);
    acme_authz_clear(&a);
    return rc;
}

int
acme_res_settle_ex(struct acme_ctx *ctx, const char *authz_id, const char *chall_id,
                   const struct acme_settle *s, struct acme_authz *out, struct acme_problem *prob)
{
    int i, rc = 1;

    for (i = 0; i < ACME_COMMIT_TRIES && rc == 1; i++)
        rc = settle_once(ctx, authz_id, chall_id, s, i == 0 ? s->loaded : NULL, out, prob);
    if (rc == 1)
        acme_problem_set(prob, "serverInternal", 500, "authorization kept changing; retry");
    return rc == 0 ? 0 : -1;
}

int
acme_res_settle(struct acme_ctx *ctx, const char *authz_id, const char *chall_id, bool ok,
                const struct acme_problem *fail, const struct acme_attested *att,
                struct acme_authz *out, struct acme_problem *prob)
{
    struct acme_settle s = {.ok = ok, .fail = fail, .att = att};

    return acme_res_settle_ex(ctx, authz_id, chall_id, &s, out, prob);
}

/* Writes a back over the version it was read at: 0, 1 version conflict, -1 with prob. */
static int
authz_commit(struct acme_ctx *ctx, const struct acme_authz *a, const char *what,
             struct acme_problem *prob)
{
    struct store_rec rec;
    char *data = NULL, err[ERR_LEN] = "";
    int rc;

    acme_authz_rec(a, &rec, &data);
    rc = store_commit(ctx->store, &(struct store_write){STORE_UPDATE, &rec, a->version}, 1, err);
    free(data);
    if (rc < 0)
        acme_store_problem(prob, what, err);
    return rc;
}

/* One read-modify-write of a retry notice: 0 done or nothing to do, 1 conflict, -1 error. */
static int
retry_once(struct acme_ctx *ctx, const struct acme_validation *v, const struct acme_problem *fail,
           int64_t next_attempt, struct acme_problem *prob)
{
    struct acme_authz a = {0};
    struct acme_chall *ch;
    int rc = -1, idx = -1;

    if (acme_authz_load(ctx, v->authz_id, &a, prob) == 0)
        idx = acme_authz_find_chall(&a, v->chall_id);
    if (idx < 0) {
        acme_problem_set(prob, "serverInternal", 500, "challenge %s/%s vanished", v->authz_id,
                         v->chall_id);
        goto out;
    }
    ch = &a.ch[idx];
    /*
     * Notices travel through the worker pool, so the final result or a later
     * try's notice may have overtaken this one: neither is to be undone.
     */
    if (strcmp(ch->status, "processing") != 0 || ch->retry_at > next_attempt) {
        rc = 0;
        goto out;
    }
    cJSON_Delete(ch->error);
    ch->error = acme_problem_to_json(fail);
    ch->retry_at = next_attempt;
    /* The authz version alone orders this against a settlement, which rewrites the authz too. */
    rc = authz_commit(ctx, &a, "recording a failed try", prob);
out:
    acme_authz_clear(&a);
    return rc;
}

void
acme_validation_retrying(struct acme_ctx *ctx, const struct acme_validation *v,
                         const struct acme_problem *prob, int64_t next_attempt)
{
    struct acme_problem p = {0};
    int i, rc = 1;

    if (v == NULL || prob == NULL || prob->type == NULL)
        return;
    for (i = 0; i < ACME_COMMIT_TRIES && rc == 1; i++)
        rc = retry_once(ctx, v, prob, next_attempt, &p);
    if (rc != 0) {
        /* Only the interim error is lost; the validation and its settlement go on. */
        log_warn("acme", "authz %s challenge %s: failed try not recorded: %s", v->authz_id,
                 v->chall_id, rc == 1 ? "authorization kept changing" : p.detail);
        return;
    }
    /*
     * No acme_cwait_wake: a waiting answer wants the outcome, and a later try
     * may still bring it within answer_wait; if not, its reread after the
     * bound shows this error and Retry-After anyway.
     */
    log_debug("acme", "authz %s challenge %s: try failed (%s), next at %lld", v->authz_id,
              v->chall_id, prob->type, (long long)next_attempt);
}

void
acme_validation_done(struct acme_ctx *ctx, struct acme_validation *v, bool ok,
                     const struct acme_problem *prob)
{
    struct acme_problem p = {0}, fallback = {0};

    if (v == NULL)
        return;
    if (!ok && (prob == NULL || prob->type == NULL)) {
        acme_problem_set(&fallback, "incorrectResponse", 400, "validation failed");
        prob = &fallback;
    }
    if (acme_res_settle(ctx, v->authz_id, v->chall_id, ok, ok ? NULL : prob, NULL, NULL, &p) != 0)
        log_err("acme", "authz %s challenge %s: result lost: %s", v->authz_id, v->chall_id,
                p.detail);
    else
        log_info("acme", "authz %s challenge %s %s", v->authz_id, v->chall_id,
                 ok ? "valid" : "invalid");
    /* After the commit: the woken answer reads the challenge as settled (or, lost, processing). */
    acme_cwait_wake(ctx->cwait, v->chall_id);
    free(v);
}

/* Moves a pending network challenge to processing. 0 started, 1 conflict, 2 not startable, -1. */
static int
start_once(struct acme_rq *rq, struct acme_authz *a, const char *chall_id,
           struct acme_problem *prob)
{
    char ka[sizeof(a->ch[0].key_authz)];
    struct acme_chall *ch;
    int idx = acme_authz_find_chall(a, chall_id);
    size_t i;

    if (idx < 0)
        return -1;
    ch = &a->ch[idx];
    if (strcmp(acme_authz_status(a), "pending") != 0 || strcmp(ch->status, "pending") != 0)
        return 2;
    for (i = 0; i < a->nch; i++)
        if (strcmp(a->ch[i].status, "processing") == 0)
            return 2; /* one validation per authorization at a time */
    /* CH-1: the key authorization uses the account key current at response time. */
    snprintf(ka, sizeof(ka), "%s.%s", ch->token, rq->acct.thumbprint);
    acme_strlcpy(ch->key_authz, ka, sizeof(ch->key_authz));
    acme_strlcpy(ch->status, "processing", sizeof(ch->status));
    return authz_commit(rq->ctx, a, "starting a validation", prob);
}

/*
 * CH-6: a re-POST while a retry waits asks for that retry now. The stamp lives
 * in the stored challenge, so concurrent re-POSTs race on the authz version
 * and one wins, and the limit holds across reloads. The next try is due now,
 * which makes Retry-After the poll interval until that try's notice.
 * 0 brought forward, 1 conflict, 2 nothing to bring forward, -1 (rateLimited
 * when asked again within the gap).
 */
static int
early_once(struct acme_rq *rq, struct acme_authz *a, const char *chall_id,
           struct acme_problem *prob)
{
    int64_t now = clk_now(), gap = CFG_EARLY_RETRY_GAP(rq->ctx->cfg->acme.validation_retry_delay);
    int64_t left;
    struct acme_chall *ch;
    int idx = acme_authz_find_chall(a, chall_id);

    if (idx < 0)
        return -1;
    ch = &a->ch[idx];
    if (rq->ctx->retry_now == NULL || strcmp(acme_authz_status(a), "pending") != 0 ||
        strcmp(ch->status, "processing") != 0)
        return 2;
    /*
     * Checked before "is a retry waiting": right after an early retry that
     * retry is the running try, and a client hammering re-POSTs meanwhile is
     * exactly what the SHOULD limits; telling it when asking again can help
     * beats a 200 that reads as if the re-POST did something. Without a
     * recent early retry, a re-POST during a scheduled try asked for nothing
     * (there is nothing to bring forward), so it keeps the plain answer.
     */
    left = ch->early_at != 0 ? ch->early_at + gap - now : 0;
    if (left > 0) {
        acme_problem_set(prob, "rateLimited", 429,
                         "retry asked for too soon: one early retry per %lld s",
                         (long long)gap);
        prob->retry_after = left < INT_MAX ? (int)left : INT_MAX;
        return -1;
    }
    /* retry_at <= now: the retry is due, so it has started or is about to. */
    if (ch->retry_at <= now)
        return 2;
    ch->early_at = now;
    ch->retry_at = now;
    return authz_commit(rq->ctx, a, "bringing a retry forward", prob);
}

/*
 * Hands the started validation out (early: asks for its waiting retry now)
 * and, when acme.challenges.answer_wait allows and a waiter slot is free,
 * waits for it to settle, then rereads *a so the answer shows the challenge
 * as stored now (S-10: valid, or invalid with its error; still processing
 * when the bound passed). Runs on a pool thread (acme_handle).
 */
static void
validate_and_wait(struct acme_rq *rq, struct acme_authz *a, size_t idx, bool early)
{
    struct acme_ctx *ctx = rq->ctx;
    struct acme_cwaiter me;
    struct acme_authz now = {0};
    struct acme_problem p = {0};
    int64_t t0 = clk_mono_ms();
    bool waiting = ctx->cfg->acme.challenge_wait > 0 &&
                   acme_cwait_enter(ctx->cwait, &me, a->ch[idx].id) == 0;
    int late;

    /* The validator owns v from here and calls acme_validation_done later (early: no v). */
    if (early)
        ctx->retry_now(ctx->validate_arg, a->ch[idx].id);
    else
        ctx->validate(ctx->validate_arg, acme_validation_build(a, &a->ch[idx]));
    if (!waiting)
        return;
    late = acme_cwait_wait(ctx->cwait, &me, ctx->cfg->acme.challenge_wait);
    log_debug("acme", "authz %s challenge %s: %s after %lld ms", a->id, me.chall_id,
              late ? "still processing" : "settled", (long long)(clk_mono_ms() - t0));
    if (acme_authz_load(ctx, a->id, &now, &p) != 0) {
        /* The validation goes on; the copy's `processing` is still a true answer. */
        log_warn("acme", "authz %s: reread after waiting failed: %s", a->id, p.detail);
        acme_authz_clear(&now);
        return;
    }
    acme_authz_clear(a);
    *a = now;
}

/* Z-2: the client's response to a network challenge. */
static int
respond_network(struct acme_rq *rq, struct acme_authz *a, struct acme_problem *prob)
{
    char chall_id[ACME_MAX_ID + 1], authz_id[ACME_MAX_ID];
    int i, rc = 1, idx;
    bool early = false;

    acme_strlcpy(chall_id, rq->id2, sizeof(chall_id));
    acme_strlcpy(authz_id, a->id, sizeof(authz_id));
    if (rq->ctx->validate == NULL) {
        acme_problem_set(prob, "serverInternal", 500, "no validator configured");
        return -1;
    }
    for (i = 0; i < ACME_COMMIT_TRIES && rc == 1; i++) {
        rc = start_once(rq, a, chall_id, prob);
        early = rc == 2;
        if (early)
            rc = early_once(rq, a, chall_id, prob);
        if (rc != 1)
            break;
        acme_authz_clear(a);
        if (acme_authz_load(rq->ctx, authz_id, a, prob) != 0)
            return -1;
    }
    if (rc < 0 || rc == 1) {
        if (rc == 1)
            acme_problem_set(prob, "serverInternal", 500, "authorization kept changing; retry");
        return -1;
    }
    if (rc == 0) {
        idx = acme_authz_find_chall(a, chall_id);
        log_info("acme", "authz %s challenge %s %s %s", a->id, chall_id,
                 acme_chall_type_str[a->ch[idx].type],
                 early ? "retry brought forward" : "started");
        validate_and_wait(rq, a, (size_t)idx, early);
    }
    idx = acme_authz_find_chall(a, chall_id);
    if (idx < 0) {
        acme_problem_set(prob, "serverInternal", 500, "challenge vanished");
        return -1;
    }
    acme_chall_respond(rq, a, &a->ch[idx]);
    return 0;
}

int
acme_h_challenge(struct acme_rq *rq, struct acme_problem *prob)
{
    struct acme_authz a = {0};
    int rc = -1, found, idx = -1;

    found = acme_authz_load(rq->ctx, rq->id1, &a, prob);
    if (found < 0)
        goto out;
    if (found == 0)
        idx = acme_authz_find_chall(&a, rq->id2);
    if (found > 0 || idx < 0 || strcmp(a.policy, rq->policy->name) != 0) {
        acme_problem_set(prob, "malformed", 404, "no such challenge");
        goto out;
    }
    if (strcmp(a.owner, rq->acct.id) != 0) {
        acme_problem_set(prob, "unauthorized", 403, "this challenge belongs to another account");
        goto out;
    }
    if (rq->jws.post_as_get) {
        if (acme_approval_poll(rq->ctx, &a, prob) != 0)
            goto out;
        idx = acme_authz_find_chall(&a, rq->id2);
        if (idx < 0) {
            acme_problem_set(prob, "serverInternal", 500, "challenge vanished");
            goto out;
        }
        acme_chall_respond(rq, &a, &a.ch[idx]);
        rc = 0;
        goto out;
    }
    /* Z-3/Z-4: any object is a response (unknown members ignored); anything else is not. */
    if (!cJSON_IsObject(rq->jws.payload)) {
        acme_problem_set(prob, "malformed", 400, "a challenge response must be a JSON object");
        goto out;
    }
    if (a.ch[idx].type == ACME_CH_DEVICE_ATTEST01)
        rc = acme_device_attest(rq, &a, (size_t)idx, prob);
    else
        rc = respond_network(rq, &a, prob);
out:
    acme_authz_clear(&a);
    return rc;
}
