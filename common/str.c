/* str.c: checked number parsing and constant-time comparison. */
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int str_to_ll(const char *s, long long min, long long max, long long *out)
{
    char *end = NULL;
    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int str_index(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; s != NULL && i < n && names[i] != NULL; i++) {
        if (strcmp(names[i], s) == 0)
            return (int)i;
    }
    return -1;
}

bool json_depth_ok(const char *s, size_t len, int max)
{
    bool in_str = false, esc = false;
    int depth = 0;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max)
                return false;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return true;
}

bool ct_equal(const void *a, const void *b, size_t n)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}
