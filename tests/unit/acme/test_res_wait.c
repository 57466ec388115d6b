/*
 * test_res_wait.c: the answer to a network challenge response waits for its
 * validation (acme.challenges.answer_wait): a validation settled by another thread
 * meanwhile shows in the answer (valid, or invalid with its error) and in the
 * authorization; one still running gives `processing` and Retry-After once
 * the bound passes; a zero bound or no waiter slot answers at once.
 */
#include <pthread.h>
#include <time.h>

#include "test_res_helpers.h"

/* Generous: a sanitized build on a loaded machine must not fail these. */
#define SLACK_MS 1000
/*
 * Settling tests wait this long at most: far beyond their settlement, so only
 * the wake-up (not the bound passing, then a reread) can answer in time.
 */
#define LONG_WAIT_MS 5000
#define SHORT_WAIT_MS 200

/* The validator stand-in: settles on its own thread after delay_ms, or keeps v (T.v). */
static struct {
    bool settle;
    bool ok;
    int delay_ms;
    struct acme_validation *v;
    pthread_t th;
    bool running;
} V;

static void *
settle_main(void *arg)
{
    struct timespec ts = {.tv_sec = V.delay_ms / 1000,
                          .tv_nsec = (long)(V.delay_ms % 1000) * 1000000L};
    struct acme_problem p = {0};

    nanosleep(&ts, NULL);
    acme_problem_set(&p, "connection", 400, "refused");
    acme_validation_done(T.ctx, V.v, V.ok, V.ok ? NULL : &p);
    return NULL;
}

static void
async_validate(void *arg, struct acme_validation *v)
{
    if (!V.settle) {
        t_validate(arg, v);
        return;
    }
    assert_false(V.running);
    V.v = v;
    assert_int_equal(pthread_create(&V.th, NULL, settle_main, NULL), 0);
    V.running = true;
}

static void
settled_join(void)
{
    if (V.running)
        assert_int_equal(pthread_join(V.th, NULL), 0);
    V.running = false;
}

static int
setup(void **state)
{
    t_setup(state);
    acme_ctx_free(T.ctx);
    T.ctx = t_ctx_new(async_validate, 2);
    return 0;
}

/* Orders name, answers its http-01 challenge; r holds the answer, *took_ms its time. */
static void
respond(const char *name, char az[64], struct t_res *r, int64_t *took_ms)
{
    char oid[64], azs[1][64], chid[64];
    char *ids = xasprintf("[{\"type\":\"dns\",\"value\":\"%s\"}]", name);
    int64_t t0;

    t_new_order("default", &T.acct1, ids, oid, azs, 1);
    snprintf(az, 64, "%s", azs[0]);
    t_chall_id(az, "http-01", chid);
    t0 = clk_mono_ms();
    t_call(acme_h_challenge, &T.acct1, az, chid, "{}", r);
    *took_ms = clk_mono_ms() - t0;
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->resp.status, 200);
    free(ids);
}

static const char *
authz_status(const char *az)
{
    static char st[16];
    struct t_res r = {0};

    t_call(acme_h_authz, &T.acct1, az, NULL, NULL, &r);
    snprintf(st, sizeof(st), "%s", t_str(r.json, "status"));
    t_res_clear(&r);
    return st;
}

/* Answers a challenge whose validation settles (ok or not) within LONG_WAIT_MS. */
static void
settled_answer(const char *name, bool ok, char az[64], struct t_res *r)
{
    int64_t took;

    V.settle = true;
    V.ok = ok;
    V.delay_ms = 20;
    T.cfg->acme.challenge_wait = LONG_WAIT_MS;
    respond(name, az, r, &took);
    settled_join();
    assert_true(took < LONG_WAIT_MS - SLACK_MS);
    assert_null(t_hdr(r, "Retry-After"));
}

static void
test_settles_valid(void **state)
{
    struct t_res r = {0};
    char az[64];

    settled_answer("fast.example", true, az, &r);
    assert_string_equal(t_str(r.json, "status"), "valid");
    assert_non_null(t_str(r.json, "validated"));
    assert_string_equal(authz_status(az), "valid");
    t_res_clear(&r);
}

static void
test_settles_invalid(void **state)
{
    struct t_res r = {0};
    const cJSON *err;
    char az[64];

    settled_answer("refused.example", false, az, &r);
    assert_string_equal(t_str(r.json, "status"), "invalid");
    err = cJSON_GetObjectItemCaseSensitive(r.json, "error");
    assert_string_equal(t_str(err, "type"), ACME_ERR_NS "connection");
    assert_string_equal(authz_status(az), "invalid");
    t_res_clear(&r);
}

static void
test_bound_passes(void **state)
{
    struct t_res r = {0};
    char az[64];
    int64_t took;

    V.settle = false;
    T.cfg->acme.challenge_wait = SHORT_WAIT_MS;
    respond("slow.example", az, &r, &took);
    assert_string_equal(t_str(r.json, "status"), "processing");
    assert_string_equal(t_hdr(&r, "Retry-After"), "1");
    assert_true(took >= SHORT_WAIT_MS);
    assert_true(took < SHORT_WAIT_MS + SLACK_MS);
    assert_string_equal(authz_status(az), "pending");
    t_res_clear(&r);
}

/*
 * answer_wait 0, or every waiter slot taken: today's immediate `processing`
 * (a validation settling well within the bound shows it was not waited for).
 */
static void
test_no_wait(void **state)
{
    struct acme_cwaiter hold[2];
    struct t_res r = {0};
    char az[64];
    int64_t took;

    V.settle = true;
    V.ok = true;
    V.delay_ms = 20;
    T.cfg->acme.challenge_wait = 0;
    respond("zero.example", az, &r, &took);
    T.cfg->acme.challenge_wait = LONG_WAIT_MS;
    assert_string_equal(t_str(r.json, "status"), "processing");
    assert_string_equal(t_hdr(&r, "Retry-After"), "1");
    settled_join();
    assert_string_equal(authz_status(az), "valid");

    assert_int_equal(acme_cwait_enter(T.ctx->cwait, &hold[0], "x"), 0);
    assert_int_equal(acme_cwait_enter(T.ctx->cwait, &hold[1], "y"), 0);
    respond("full.example", az, &r, &took);
    assert_string_equal(t_str(r.json, "status"), "processing");
    settled_join();
    assert_int_equal(acme_cwait_wait(T.ctx->cwait, &hold[0], 0), 1);
    assert_int_equal(acme_cwait_wait(T.ctx->cwait, &hold[1], 0), 1);
    t_res_clear(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settles_valid),
        cmocka_unit_test(test_settles_invalid),
        cmocka_unit_test(test_bound_passes),
        cmocka_unit_test(test_no_wait),
    };

    return cmocka_run_group_tests(tests, setup, t_teardown);
}
