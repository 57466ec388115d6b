/*
 * test_res_retry.c: CH-5, the retry state of a network challenge. Notices of
 * failed tries (acme_validation_retrying) keep the challenge `processing`
 * with the last try's problem as `error`; challenge and authorization answers
 * carry Retry-After up to the next try; stale notices change nothing; the
 * final settlement replaces or clears the error and the retry time. CH-6: a
 * re-POST while a retry waits brings it forward, once per gap; within the
 * gap it gets rateLimited.
 */
#include "test_res_helpers.h"

/* Orders name as acct1, answers its http-01 challenge; returns authz, challenge and validation. */
static struct acme_validation *
started(const char *name, char az[64], char chid[64])
{
    char oid[64], azs[1][64];
    char *ids = xasprintf("[{\"type\":\"dns\",\"value\":\"%s\"}]", name);
    struct t_res r = {0};

    t_new_order("default", &T.acct1, ids, oid, azs, 1);
    snprintf(az, 64, "%s", azs[0]);
    t_chall_id(az, "http-01", chid);
    t_call(acme_h_challenge, &T.acct1, az, chid, "{}", &r);
    assert_string_equal(t_str(r.json, "status"), "processing");
    assert_int_equal(T.nv, 1);
    free(ids);
    t_res_clear(&r);
    T.nv = 0;
    return T.v[0];
}

/* The challenge as acct1 reads it, with its error type ("" without) and Retry-After. */
static void
read_chall(const char *az, const char *chid, const char *status, const char *etype,
           const char *retry_after)
{
    struct t_res r = {0};
    const cJSON *err;

    t_call(acme_h_challenge, &T.acct1, az, chid, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(t_str(r.json, "status"), status);
    err = cJSON_GetObjectItemCaseSensitive(r.json, "error");
    if (etype[0] == '\0') {
        assert_null(err);
    } else {
        assert_non_null(err);
        assert_string_equal(t_str(err, "type"), etype);
        assert_non_null(t_str(err, "detail"));
    }
    if (retry_after == NULL)
        assert_null(t_hdr(&r, "Retry-After"));
    else
        assert_string_equal(t_hdr(&r, "Retry-After"), retry_after);
    assert_null(cJSON_GetObjectItemCaseSensitive(r.json, "retryAt")); /* stored, never shown */
    t_res_clear(&r);
}

static int64_t
stored_retry_at(const char *az, const char *chid)
{
    struct acme_problem p = {0};
    struct acme_authz a;
    int64_t at;
    int idx;

    assert_int_equal(acme_authz_load(T.ctx, az, &a, &p), 0);
    idx = acme_authz_find_chall(&a, chid);
    assert_true(idx >= 0);
    at = a.ch[idx].retry_at;
    acme_authz_clear(&a);
    return at;
}

/* One step: the clock moves to now+clock, then (type != NULL) a notice for now+next arrives. */
struct step {
    const char *name;
    int64_t clock, next;
    const char *type;      /* problem of the failed try, or NULL for no notice */
    const char *want_type; /* the challenge's error type afterwards */
    const char *want_ra;   /* Retry-After afterwards */
};

static const struct step steps[] = {
    {"first failed try", 0, 7, "incorrectResponse", ACME_ERR_NS "incorrectResponse", "7"},
    {"older notice overtaken", 0, 3, "connection", ACME_ERR_NS "incorrectResponse", "7"},
    {"later try replaces it", 1, 9, "connection", ACME_ERR_NS "connection", "8"},
    {"next try overdue: poll", 30, 0, NULL, ACME_ERR_NS "connection", "1"},
    {"try due now: at least 1", 40, 40, "unauthorized", ACME_ERR_NS "unauthorized", "1"},
};

static void
test_retry_state(void **state)
{
    int64_t now = clk_now();
    struct acme_validation *v, copy;
    struct acme_problem p;
    struct t_res r = {0};
    const cJSON *ch;
    char az[64], chid[64];
    bool seen = false;
    size_t i;

    v = started("retry.example", az, chid);
    clk_set_fixed(now);
    read_chall(az, chid, "processing", "", "1");
    for (i = 0; i < nitems(steps); i++) {
        print_message("[ step     ] %s\n", steps[i].name);
        clk_set_fixed(now + steps[i].clock);
        if (steps[i].type != NULL) {
            memset(&p, 0, sizeof(p));
            acme_problem_set(&p, steps[i].type, 400, "try failed (%s)", steps[i].name);
            acme_validation_retrying(T.ctx, v, &p, now + steps[i].next);
        }
        read_chall(az, chid, "processing", steps[i].want_type, steps[i].want_ra);
    }
    /* The authorization stays pending and points at the next try too. */
    clk_set_fixed(now + 40);
    acme_validation_retrying(T.ctx, v, &p, now + 45);
    t_call(acme_h_authz, &T.acct1, az, NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "pending");
    assert_string_equal(t_hdr(&r, "Retry-After"), "5");
    cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(r.json, "challenges"))
    {
        if (strcmp(t_str(ch, "type"), "http-01") != 0)
            continue;
        assert_non_null(cJSON_GetObjectItemCaseSensitive(ch, "error"));
        seen = true;
    }
    assert_true(seen);
    t_res_clear(&r);
    /* Notices without a validation or a problem are ignored. */
    acme_validation_retrying(T.ctx, NULL, &p, now + 50);
    acme_validation_retrying(T.ctx, v, NULL, now + 50);
    assert_int_equal(stored_retry_at(az, chid), now + 45);

    /* Success clears error and retry time; a notice arriving after it changes nothing. */
    copy = *v;
    acme_validation_done(T.ctx, v, true, NULL);
    read_chall(az, chid, "valid", "", NULL);
    assert_int_equal(stored_retry_at(az, chid), 0);
    acme_validation_retrying(T.ctx, &copy, &p, now + 60);
    read_chall(az, chid, "valid", "", NULL);
}

/* Failure after retries: the final problem replaces the last try's, the retry time goes. */
static void
test_retry_then_invalid(void **state)
{
    struct acme_problem p = {0};
    struct acme_validation *v;
    struct t_res r = {0};
    char az[64], chid[64];

    v = started("giveup.example", az, chid);
    acme_problem_set(&p, "connection", 400, "refused");
    acme_validation_retrying(T.ctx, v, &p, clk_now() + 5);
    assert_true(stored_retry_at(az, chid) != 0);
    acme_problem_set(&p, "dns", 400, "NXDOMAIN");
    acme_validation_done(T.ctx, v, false, &p);
    read_chall(az, chid, "invalid", ACME_ERR_NS "dns", NULL);
    assert_int_equal(stored_retry_at(az, chid), 0);
    t_call(acme_h_authz, &T.acct1, az, NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "invalid");
    assert_null(t_hdr(&r, "Retry-After"));
    t_res_clear(&r);
}

/* The stored stamp of the last retry brought forward. */
static int64_t
stored_early_at(const char *az, const char *chid)
{
    struct acme_problem p = {0};
    struct acme_authz a;
    int64_t at;

    assert_int_equal(acme_authz_load(T.ctx, az, &a, &p), 0);
    at = a.ch[acme_authz_find_chall(&a, chid)].early_at;
    acme_authz_clear(&a);
    return at;
}

/* A re-POST of the response at now+clock: whether it asked for the retry, and Retry-After. */
static void
repost(const char *az, const char *chid, int64_t at, int asked, const char *retry_after)
{
    int before = T.nretry_now;
    struct t_res r = {0};

    clk_set_fixed(at);
    t_call(acme_h_challenge, &T.acct1, az, chid, "{}", &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(t_str(r.json, "status"), "processing");
    assert_non_null(cJSON_GetObjectItemCaseSensitive(r.json, "error"));
    assert_string_equal(t_hdr(&r, "Retry-After"), retry_after);
    assert_int_equal(T.nretry_now - before, asked);
    if (asked)
        assert_string_equal(T.retry_now_id, chid);
    assert_int_equal(T.nv, 0); /* never a second validation */
    t_res_clear(&r);
}

/* A re-POST at now+clock within the gap: 429 rateLimited, Retry-After to the gap end. */
static void
repost_limited(const char *az, const char *chid, int64_t at, const char *retry_after)
{
    int before = T.nretry_now;
    struct t_res r = {0};

    clk_set_fixed(at);
    t_call(acme_h_challenge, &T.acct1, az, chid, "{}", &r);
    assert_int_equal(r.rc, -1);
    assert_string_equal(r.prob.type, "rateLimited");
    assert_int_equal(r.prob.status, 429);
    assert_non_null(strstr(r.prob.detail, "too soon"));
    acme_problem_respond(&r.prob, &r.resp);
    assert_string_equal(t_hdr(&r, "Retry-After"), retry_after);
    assert_int_equal(T.nretry_now - before, 0);
    assert_int_equal(T.nv, 0);
    t_res_clear(&r);
}

/*
 * CH-6 with retry_delay 10 s (gap 5 s): a re-POST while a retry waits asks
 * for it now and answers with the poll interval; one while that try runs, or
 * within the gap after it failed, asks nothing and gets rateLimited until the
 * gap ends; POST-as-GET in the gap still reads the challenge; after the gap it
 * asks again; the settlement clears the stamp.
 */
static void
test_retry_now(void **state)
{
    int delay = T.cfg->acme.validation_retry_delay;
    int64_t now = clk_now();
    struct acme_validation *v;
    struct acme_problem p = {0};
    char az[64], chid[64];

    T.cfg->acme.validation_retry_delay = 10;
    v = started("early.example", az, chid);
    T.nretry_now = 0;
    acme_problem_set(&p, "connection", 400, "refused");
    clk_set_fixed(now);
    acme_validation_retrying(T.ctx, v, &p, now + 10);
    read_chall(az, chid, "processing", ACME_ERR_NS "connection", "10");
    assert_int_equal(T.nretry_now, 0);
    repost(az, chid, now, 1, "1");
    assert_int_equal(stored_early_at(az, chid), now);
    assert_int_equal(stored_retry_at(az, chid), now);
    repost_limited(az, chid, now, "5"); /* the early try runs */
    clk_set_fixed(now + 1);
    acme_validation_retrying(T.ctx, v, &p, now + 11);
    repost_limited(az, chid, now + 1, "4");
    read_chall(az, chid, "processing", ACME_ERR_NS "connection", "10");
    repost_limited(az, chid, now + 4, "1");
    assert_int_equal(stored_early_at(az, chid), now);
    assert_int_equal(stored_retry_at(az, chid), now + 11);
    repost(az, chid, now + 5, 1, "1");
    assert_int_equal(stored_early_at(az, chid), now + 5);
    acme_validation_done(T.ctx, v, true, NULL);
    read_chall(az, chid, "valid", "", NULL);
    assert_int_equal(stored_early_at(az, chid), 0);
    T.cfg->acme.validation_retry_delay = delay;
}

/* A notice for a challenge that is gone is logged and dropped. */
static void
test_retry_unknown(void **state)
{
    struct acme_validation v = {0};
    struct acme_problem p = {0};

    snprintf(v.authz_id, sizeof(v.authz_id), "nosuchauthz");
    snprintf(v.chall_id, sizeof(v.chall_id), "nosuchchall");
    acme_problem_set(&p, "connection", 400, "refused");
    acme_validation_retrying(T.ctx, &v, &p, clk_now() + 5);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_state),
        cmocka_unit_test(test_retry_then_invalid),
        cmocka_unit_test(test_retry_unknown),
        cmocka_unit_test(test_retry_now),
    };

    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
