/* clock.c: the time seam. Tests freeze it to verify expired Apple leaves. */
#include "common/common.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static _Atomic int64_t fixed_time = -1;

void clk_set_fixed(int64_t t)
{
    atomic_store(&fixed_time, t);
}

int64_t clk_now(void)
{
    int64_t f = atomic_load(&fixed_time);
    return f >= 0 ? f : (int64_t)time(NULL);
}

int64_t clk_now_ms(void)
{
    int64_t f = atomic_load(&fixed_time);
    if (f >= 0)
        return f * 1000;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clk_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *clk_fmt_rfc3339(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return out;
}

static int digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*s)[i]))
            return -1;
        v = v * 10 + ((*s)[i] - '0');
    }
    *s += n;
    *out = v;
    return 0;
}

int clk_parse_rfc3339(const char *s, int64_t *t)
{
    struct tm tm;
    int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0;
    memset(&tm, 0, sizeof(tm));
    if (digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) || *s++ != '-' ||
        digits(&s, 2, &d) || (*s != 'T' && *s != 't' && *s != ' '))
        return -1;
    s++;
    if (digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi) || *s++ != ':' ||
        digits(&s, 2, &se))
        return -1;
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s))
            return -1;
        while (isdigit((unsigned char)*s))
            s++;
    }
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        sign = *s++ == '+' ? 1 : -1;
        if (digits(&s, 2, &oh) || *s++ != ':' || digits(&s, 2, &om))
            return -1;
    } else {
        return -1;
    }
    if (*s != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    *t = (int64_t)timegm(&tm) - (int64_t)sign * (oh * 3600 + om * 60);
    return 0;
}

int clk_parse_duration(const char *s, int64_t *seconds)
{
    long long v;
    size_t n = strlen(s);
    int64_t mult = 1;
    char num[32];
    if (n == 0 || n >= sizeof(num))
        return -1;
    memcpy(num, s, n + 1);
    switch (num[n - 1]) {
    case 's': mult = 1; num[n - 1] = '\0'; break;
    case 'm': mult = 60; num[n - 1] = '\0'; break;
    case 'h': mult = 3600; num[n - 1] = '\0'; break;
    case 'd': mult = 86400; num[n - 1] = '\0'; break;
    default: break;
    }
    if (str_to_ll(num, 0, INT64_MAX / 86400, &v) != 0)
        return -1;
    *seconds = (int64_t)v * mult;
    return 0;
}
