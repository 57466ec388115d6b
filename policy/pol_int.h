/*
 * policy internals shared by the pol_*.c files and the unit tests.
 */
#ifndef ACMESRV_POL_INT_H
#define ACMESRV_POL_INT_H

#include "policy/policy.h"

#define POL_VERSION_MAX_PARTS 8 /* components compared: 26.4.1.0.0... */

/*
 * Compares dotted versions numerically per component ("17.10" > "17.9",
 * "26.4" == "26.4.0"); text after the numbers ("17.4 (21E219)") is ignored.
 * 0 with *cmp < 0, 0 or > 0; -1 when either is not a version.
 */
int pol_version_cmp(const char *a, const char *b, int *cmp);
/* The result of signal source name in in, or NULL. */
const struct pol_mdm *pol_mdm_find(const struct pol_input *in, const char *name);
/* The value of attribute name in m, or NULL. */
const char *pol_mdm_attr(const struct pol_mdm *m, const char *name);
/* Appends formatted text to out (size len), always NUL-terminated; silently truncates. */
void pol_append(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
