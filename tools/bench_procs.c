/*
 * bench_procs.c: starting and stopping the servers under test (pebble,
 * pebble-challtestsrv, attesta serve) and reading their CPU time and
 * resident memory from /proc. posix_spawn rather than fork: the benchmark
 * has threads running, and a forked child of a threaded process may only
 * call async-signal-safe functions.
 */
#include "tools/bench.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

extern char **environ;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int bench_proc_spawn(struct bench_proc *p, char *const argv[], char *const env_extra[],
                     const char *out_path, const char *err_path, char err[ERR_LEN])
{
    posix_spawn_file_actions_t fa;
    size_t nenv = 0, nextra = 0;
    char **envp = NULL;
    int rc = -1;
    while (environ[nenv] != NULL)
        nenv++;
    while (env_extra != NULL && env_extra[nextra] != NULL)
        nextra++;
    /* The extra entries go first: getenv() takes the first match. */
    envp = xcalloc(nenv + nextra + 1, sizeof(*envp));
    for (size_t i = 0; i < nextra; i++)
        envp[i] = env_extra[i];
    for (size_t i = 0; i < nenv; i++)
        envp[nextra + i] = environ[i];
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = posix_spawnp(&p->pid, argv[0], &fa, NULL, argv, envp);
    if (e != 0) {
        snprintf(err, ERR_LEN, "cannot start %s: %s", argv[0], strerror(e));
        p->pid = 0;
        goto out;
    }
    snprintf(p->out_path, sizeof(p->out_path), "%s", out_path);
    rc = 0;
out:
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    return rc;
}

void bench_proc_stop(struct bench_proc *p)
{
    int status;
    if (p == NULL || p->pid <= 0)
        return;
    kill(p->pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            p->pid = 0;
            return;
        }
        sleep_ms(50);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    p->pid = 0;
}

int bench_free_port(void)
{
    for (int tries = 0; tries < 20; tries++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sa);
        int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        int port = -1;
        if (t >= 0 && u >= 0 && bind(t, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
            getsockname(t, (struct sockaddr *)&sa, &len) == 0 &&
            bind(u, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            port = ntohs(sa.sin_port);
        if (t >= 0)
            close(t);
        if (u >= 0)
            close(u);
        if (port > 0)
            return port;
    }
    return -1;
}

double bench_proc_cpu_s(pid_t pid)
{
    char path[64], line[1024];
    unsigned long long ut = 0, st = 0;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *fp = fopen(path, "re");
    if (fp == NULL)
        return -1;
    size_t n = fread(line, 1, sizeof(line) - 1, fp);
    fclose(fp);
    line[n] = '\0';
    /* The command name may hold spaces and parentheses: fields restart after the last ')'. */
    const char *p = strrchr(line, ')');
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

long bench_proc_rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *fp = fopen(path, "re");
    if (fp == NULL)
        return -1;
    while (fgets(line, sizeof(line), fp) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            long long v;
            char *end = NULL;
            const char *s = line + 6;
            while (*s == ' ' || *s == '\t')
                s++;
            errno = 0;
            v = strtoll(s, &end, 10);
            if (errno == 0 && end != s)
                kib = (long)v;
            break;
        }
    }
    fclose(fp);
    return kib;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

int bench_wait_url(const char *url, const char *ca, int timeout_ms)
{
    CURL *c = curl_easy_init();
    int rc = -1;
    if (c == NULL)
        return -1;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (ca != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        long status = 0;
        if (curl_easy_perform(c) == CURLE_OK) {
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
            if (status > 0) {
                rc = 0;
                break;
            }
        }
        sleep_ms(100);
    }
    curl_easy_cleanup(c);
    return rc;
}

int bench_wait_banner(struct bench_proc *p, int timeout_ms)
{
    static const char mark[] = "listening on https://";
    char line[512];
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        FILE *fp = fopen(p->out_path, "re");
        while (fp != NULL && fgets(line, sizeof(line), fp) != NULL) {
            const char *m = strstr(line, mark);
            const char *colon = m ? strrchr(m, ':') : NULL;
            long long port;
            char digits[8] = "";
            if (colon == NULL)
                continue;
            size_t n = strspn(colon + 1, "0123456789");
            if (n == 0 || n >= sizeof(digits))
                continue;
            memcpy(digits, colon + 1, n);
            if (str_to_ll(digits, 1, 65535, &port) == 0) {
                fclose(fp);
                return (int)port;
            }
        }
        if (fp != NULL)
            fclose(fp);
        if (waitpid(p->pid, NULL, WNOHANG) == p->pid) {
            p->pid = 0; /* reaped: bench_proc_stop must not signal a recycled pid */
            return -1;
        }
        sleep_ms(100);
    }
    return -1;
}

int bench_write_file(const char *path, const char *text, char err[ERR_LEN])
{
    FILE *fp = fopen(path, "we");
    int rc = -1;
    if (fp == NULL) {
        snprintf(err, ERR_LEN, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    if (fputs(text, fp) >= 0)
        rc = 0;
    if (fclose(fp) != 0)
        rc = -1;
    if (rc != 0)
        snprintf(err, ERR_LEN, "cannot write %s", path);
    return rc;
}
