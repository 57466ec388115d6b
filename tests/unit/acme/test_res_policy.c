/*
 * test_res_policy.c: manual approval and the audit trail at the resource
 * level: an authz held for approval is settled by the administrator's
 * decision (acme/admin.c writes it, the next POST-as-GET applies it), with an
 * audit record in the same commit; a denial carries its reason to the client.
 */
#include "test_res_helpers.h"

#include "acme/acme_admin.h"

/* A devices-policy order whose authz is held for approval, as device_mdm.c leaves it. */
static void
held_order(const char *serial, char oid[64], char az[64])
{
    char azs[1][64], *ids = xasprintf("[{\"type\":\"permanent-identifier\",\"value\":\"%s\"}]",
                                      serial);
    struct acme_authz a = {0};
    struct acme_problem prob = {0};
    struct store_rec rec;
    char *data, err[ERR_LEN];

    t_new_order("devices", &T.acct1, ids, oid, azs, 1);
    snprintf(az, 64, "%s", azs[0]);
    assert_int_equal(acme_authz_load(T.ctx, az, &a, &prob), 0);
    snprintf(a.ch[0].status, sizeof(a.ch[0].status), "processing");
    a.att.present = true;
    snprintf(a.att.serial, sizeof(a.att.serial), "%s", serial);
    snprintf(a.approval, sizeof(a.approval), "pending");
    a.decision = cJSON_Parse("{\"allowed\":true,\"roles\":[\"tablet\"],\"mdm\":{}}");
    acme_authz_rec(&a, &rec, &data);
    assert_int_equal(
        store_commit(T.store, &(struct store_write){STORE_UPDATE, &rec, a.version}, 1, err), 0);
    free(data);
    free(ids);
    acme_authz_clear(&a);
}

static int
count_lines(FILE *fp, const char *needle)
{
    char line[1024];
    int n = 0;

    rewind(fp);
    while (fgets(line, sizeof(line), fp) != NULL)
        n += strstr(line, needle) != NULL;
    return n;
}

static void
test_held_until_approved(void **state)
{
    struct t_res r = {0};
    char oid[64], az[64], err[ERR_LEN];
    FILE *fp = tmpfile();

    (void)state;
    held_order("C02APPROVE01", oid, az);
    /* Polling while held: still pending, with Retry-After. */
    t_call_as(acme_h_authz, "devices", &T.acct1, NULL, az, NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "pending");
    assert_non_null(t_hdr(&r, "Retry-After"));
    assert_int_equal(acme_admin_pending(T.store, fp, err), 1);
    assert_int_equal(count_lines(fp, "serial=C02APPROVE01  policy=devices  roles=tablet"), 1);
    assert_int_equal(acme_admin_decide(T.store, "nosuchauthz", true, NULL, err), 1);
    assert_int_equal(acme_admin_decide_serial(T.store, "C02APPROVE01", true, NULL, err), 1);
    /* The order poll applies the decision: authz valid, order ready. */
    t_call_as(acme_h_order, "devices", &T.acct1, NULL, oid, NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "ready");
    t_call_as(acme_h_authz, "devices", &T.acct1, NULL, az, NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "valid");
    /* Decided once: a second decision finds nothing held. */
    assert_int_equal(acme_admin_decide(T.store, az, false, "late", err), 1);
    fclose(fp);
    fp = tmpfile();
    assert_int_equal(acme_admin_audit(T.store, "C02APPROVE01", 0, fp, err), 1);
    assert_int_equal(count_lines(fp, "allowed  approval  device=C02APPROVE01  policy=devices"), 1);
    fclose(fp);
    t_res_clear(&r);
}

static void
test_denied_with_reason(void **state)
{
    struct t_res r = {0};
    char oid[64], az[64], err[ERR_LEN];
    const cJSON *ch;

    (void)state;
    held_order("C02DENY00001", oid, az);
    assert_int_equal(acme_admin_decide(T.store, az, false, "not a company tablet", err), 0);
    t_call_as(acme_h_authz, "devices", &T.acct1, NULL, az, NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "invalid");
    ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "challenges"), 0);
    ch = cJSON_GetObjectItemCaseSensitive(ch, "error");
    assert_string_equal(t_str(ch, "type"), ACME_ERR_NS "rejectedIdentifier"); /* E-18 */
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(ch, "status")->valueint, 403);
    assert_non_null(strstr(t_str(ch, "detail"), "denied by an administrator: not a company tablet"));
    t_call_as(acme_h_order, "devices", &T.acct1, NULL, oid, NULL, NULL, &r);
    assert_string_equal(t_str(r.json, "status"), "invalid");
    t_res_clear(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_held_until_approved),
        cmocka_unit_test(test_denied_with_reason),
    };

    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
