/* log.c: one formatted line per call, to stderr or a file, safe across threads. */
#include "common/common.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum log_level log_level_current = LOG_LVL_INFO;
static FILE *log_fp;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const level_str[] = {"error", "warn", "info", "debug"};
_Static_assert(nitems(level_str) == LOG_LVL_DEBUG + 1, "level_str out of sync");

void log_set_level(enum log_level lvl)
{
    log_level_current = lvl;
}

int log_set_file(const char *path)
{
    FILE *fp = NULL;
    if (path != NULL) {
        fp = fopen(path, "ae");
        if (fp == NULL)
            return -1;
    }
    pthread_mutex_lock(&log_lock);
    if (log_fp != NULL)
        fclose(log_fp);
    log_fp = fp;
    pthread_mutex_unlock(&log_lock);
    return 0;
}

void log_write(enum log_level lvl, const char *module, const char *fmt, ...)
{
    char msg[2048], ts[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    clk_fmt_rfc3339(clk_now(), ts);
    pthread_mutex_lock(&log_lock);
    FILE *fp = log_fp != NULL ? log_fp : stderr;
    fprintf(fp, "%s %s [%s] %s\n", ts, level_str[lvl], module, msg);
    fflush(fp);
    pthread_mutex_unlock(&log_lock);
}

char *log_escape(const char *in, size_t max_in, char *out, size_t outlen)
{
    size_t o = 0;
    if (outlen == 0)
        return out;
    for (size_t i = 0; in != NULL && i < max_in && in[i] != '\0'; i++) {
        unsigned char c = (unsigned char)in[i];
        char tmp[5];
        size_t n;
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
            n = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", c);
        } else {
            tmp[0] = (char)c;
            n = 1;
        }
        if (o + n >= outlen)
            break;
        memcpy(out + o, tmp, n);
        o += n;
    }
    out[o] = '\0';
    return out;
}
