/* Shared declarations of the policy unit tests (one executable, one group per file). */
#ifndef ACMESRV_TEST_POL_H
#define ACMESRV_TEST_POL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config/config.h"
#include "policy/pol_int.h"
#include "policy/policy.h"

int test_pol_pred_run(void);
int test_pol_admit_run(void);
int test_pol_config_run(void);
int test_pol_template_run(void);

/* Signal sources kandji (attributes blueprint, user_email) and jamf (site), as YAML. */
extern const char tp_sources_yaml[];
/*
 * Writes text to config.yaml in a fresh temp directory (made current, so
 * errors read "config.yaml:LINE: ...") and loads it. NULL with err on error.
 */
struct cfg *tp_load(const char *text, char err[CFG_ERR_LEN]);
/* tp_load of tp_sources_yaml followed by text; fails the test when it does not load. */
struct cfg *tp_load_ok(const char *text);

#endif
