/*
 * common: the small utilities every module shares. Allocation that aborts on
 * out-of-memory, logging, base64url, hex, growable buffers, atomic whole-file
 * writes and bounded reads, and the two seams
 * tests replace: the clock and the random source.
 */
#ifndef ACMESRV_COMMON_H
#define ACMESRV_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

/* Size of the `char err[ERR_LEN]` sinks used outside acme/. */
#define ERR_LEN 256

/* A borrowed view of bytes; never owns p. */
struct slice {
    const unsigned char *p;
    size_t len;
};

/* ---- allocation (common/xalloc.c): abort on out-of-memory, never return NULL ---- */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Formats into a new string owned by the caller. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Wipes n bytes in a way the compiler keeps; for secrets before free. */
void secure_wipe(void *p, size_t n);
/* Wipes then frees a NUL-terminated secret; NULL-safe. */
void secure_free_str(char *s);

/* ---- logging (common/log.c): thread-safe, one line per call ---- */
enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };
extern enum log_level log_level_current;
void log_set_level(enum log_level lvl);
/* Sends log lines to path (appended) instead of stderr; NULL restores stderr. 0/-1. */
int log_set_file(const char *path);
void log_write(enum log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The level check happens before the arguments are evaluated. */
#define log_at(lvl, mod, ...)                                                                      \
    do {                                                                                           \
        if ((lvl) <= log_level_current)                                                            \
            log_write((lvl), (mod), __VA_ARGS__);                                                  \
    } while (0)
#define log_err(mod, ...) log_at(LOG_LVL_ERR, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_at(LOG_LVL_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...) log_at(LOG_LVL_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...) log_at(LOG_LVL_DEBUG, mod, __VA_ARGS__)
/*
 * Copies a client-supplied string into out (size outlen, always NUL-terminated),
 * escaping control characters, quotes and backslashes and truncating at
 * max_in input bytes, so it is safe inside a log line. Returns out.
 */
char *log_escape(const char *in, size_t max_in, char *out, size_t outlen);

/* ---- base64url without padding (RFC 4648 §5, RFC 8555 §6.1) ---- */
/* Returns a new NUL-terminated string owned by the caller. */
char *b64u_encode(const void *data, size_t len);
/*
 * Decodes len chars of in. Rejects '=' padding, characters outside the
 * base64url alphabet and impossible lengths. On success *out is a new buffer
 * (NUL-terminated for convenience, not counted in *outlen). 0/-1.
 */
int b64u_decode(const char *in, size_t len, unsigned char **out, size_t *outlen);
/* Standard base64 with padding, for PEM-like and header uses. Caller frees. */
char *b64_encode(const void *data, size_t len);
/* Lower-case hex into out (2*len+1 bytes). Returns out. */
char *hex_encode(const void *data, size_t len, char *out);

/* ---- growable buffer ---- */
struct buf {
    char *p;    /* NUL-terminated contents, NULL while empty */
    size_t len; /* bytes used, not counting the NUL */
    size_t cap;
};
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the contents out (caller frees) and resets b. Never NULL. */
char *buf_take(struct buf *b);
void buf_free(struct buf *b);

/* ---- clock seam (common/clock.c) ---- */
/* Seconds since the epoch; the fixed time when one is set. */
int64_t clk_now(void);
/* Milliseconds since the epoch; follows a fixed time too. */
int64_t clk_now_ms(void);
/* Monotonic milliseconds for timeouts and latency; never fixed. */
int64_t clk_mono_ms(void);
/* Tests: freeze the clock at t (seconds); t < 0 returns to the real clock. */
void clk_set_fixed(int64_t t);
/* Formats t as RFC 3339 UTC ("2026-11-26T04:23:46Z") into out[32]. Returns out. */
char *clk_fmt_rfc3339(int64_t t, char out[32]);
/* Parses RFC 3339 ("Z" or numeric offset, optional fraction). 0/-1. */
int clk_parse_rfc3339(const char *s, int64_t *t);
/* Parses a duration such as "90s", "5m", "24h", "365d" or a plain number of seconds. 0/-1. */
int clk_parse_duration(const char *s, int64_t *seconds);

/* ---- randomness seam (common/rand.c) ---- */
typedef int rand_fn(void *buf, size_t n);
/* Fills buf with n cryptographically secure random bytes (getrandom). 0/-1. */
int rand_bytes(void *buf, size_t n);
/* Tests: replace the source; NULL restores getrandom. */
void rand_set_source(rand_fn *fn);

/* ---- whole files (common/file.c) ---- */
/*
 * Replaces path with len bytes of data, atomically: a temporary file in the
 * same directory (created 0600, never through a symbolic link) is written,
 * given mode, fsynced and renamed over path, then the directory is fsynced.
 * Readers see the old or the new file, never a partial one. 0/-1 with err;
 * -1 after the rename (directory fsync failed) leaves the new file in place.
 */
int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                      char err[ERR_LEN]);
/*
 * Reads a whole regular file (never a symbolic link) of at most max bytes
 * into a new NUL-terminated buffer (*out, caller frees; the NUL is not
 * counted in *len). When secret, the file must not be accessible by group or
 * others. 0/-1 with err.
 */
int file_read(const char *path, size_t max, bool secret, char **out, size_t *len,
              char err[ERR_LEN]);
/* fsyncs the directory holding path, making a rename or unlink in it durable. 0/-1 with err. */
int file_fsync_dir(const char *path, char err[ERR_LEN]);
/*
 * Removes what a crash in file_write_atomic(path) can leave behind (its
 * temporary files, which may hold a key); returns how many went.
 */
size_t file_remove_stale_tmp(const char *path);

/* ---- strings ---- */
/* Parses a whole decimal string into [min,max]. 0/-1 (never atoi). */
int str_to_ll(const char *s, long long min, long long max, long long *out);
/*
 * Index of s among the first n names, stopping early at a NULL entry (pass
 * SIZE_MAX for a NULL-terminated list); -1 when absent or s is NULL.
 */
int str_index(const char *const *names, size_t n, const char *s);
/*
 * True when the JSON text nests objects and arrays at most max deep (brackets
 * inside strings do not count). A pre-scan: cJSON parses recursively, so an
 * untrusted document must be bounded before it reaches the parser.
 */
bool json_depth_ok(const char *s, size_t len, int max);
/* Constant-time comparison of two equal-length byte strings. */
bool ct_equal(const void *a, const void *b, size_t n);

#endif
