/*
 * Throwaway PostgreSQL for the store tests: initdb into a temp dir, start
 * postgres on a unix socket only, wait until it accepts connections, and
 * remove everything at the end. When running as root the server runs as the
 * "postgres" user (postgres refuses root), with the temp dir handed to it.
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/store/store_test.h"

#define READY_TIMEOUT_MS 30000

static struct {
    char bindir[256];
    char dir[64];
    char conninfo[256];
    pid_t pid;
    uid_t uid;
    gid_t gid;
    bool drop; /* run server processes as uid/gid */
} pgh = {.pid = -1};

static bool find_bindir(void)
{
    static const char *const dirs[] = {"/usr/lib/postgresql/17/bin",
                                       "/usr/lib/postgresql/16/bin",
                                       "/usr/lib/postgresql/15/bin",
                                       "/usr/lib/postgresql/14/bin",
                                       "/usr/lib/postgresql/13/bin",
                                       "/usr/local/pgsql/bin",
                                       "/usr/bin"};
    const char *env = getenv("ATTESTA_PG_BINDIR");
    char path[300];

    for (size_t i = 0; i < nitems(dirs) + 1; i++) {
        const char *d = i == 0 ? env : dirs[i - 1];
        if (d == NULL)
            continue;
        snprintf(path, sizeof(path), "%s/initdb", d);
        if (access(path, X_OK) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/postgres", d);
        if (access(path, X_OK) != 0)
            continue;
        snprintf(pgh.bindir, sizeof(pgh.bindir), "%s", d);
        return true;
    }
    return false;
}

/* A port nobody listens on; only names the socket file, since TCP stays off. */
static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = 54329;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Forks argv as the server user with output appended to log; returns the pid or -1. */
static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();

    if (pid != 0)
        return pid;
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    if (pgh.drop && (setgroups(0, NULL) != 0 || setgid(pgh.gid) != 0 || setuid(pgh.uid) != 0))
        _exit(126);
    /* After setuid, which clears it: a crashed or killed test must not leave a server behind. */
    prctl(PR_SET_PDEATHSIG, SIGINT);
    execv(argv[0], argv);
    _exit(127);
}

static void show_log(const char *name)
{
    char path[128], line[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", pgh.dir, name);
    f = fopen(path, "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL)
        fprintf(stderr, "  %s: %s", name, line);
    fclose(f);
}

static int run_initdb(void)
{
    char bin[300], data[128], log[128];
    int status = 0;

    snprintf(bin, sizeof(bin), "%s/initdb", pgh.bindir);
    snprintf(data, sizeof(data), "%s/data", pgh.dir);
    snprintf(log, sizeof(log), "%s/initdb.log", pgh.dir);
    char *const argv[] = {bin,     "-D", data,   "-U",         "attesta",   "-A",
                          "trust", "-E", "UTF8", "--locale=C", "--no-sync", NULL};
    pid_t pid = spawn(argv, log);
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "pg_harness: initdb failed\n");
        show_log("initdb.log");
        return -1;
    }
    return 0;
}

static int wait_ready(void)
{
    struct timespec ts = {.tv_nsec = 50 * 1000 * 1000};
    char ci[300];

    snprintf(ci, sizeof(ci), "%s dbname=postgres", pgh.conninfo);
    for (int waited = 0; waited < READY_TIMEOUT_MS; waited += 50) {
        int status;
        if (waitpid(pgh.pid, &status, WNOHANG) == pgh.pid) {
            pgh.pid = -1;
            fprintf(stderr, "pg_harness: postgres exited during start-up\n");
            show_log("postgres.log");
            return -1;
        }
        if (PQping(ci) == PQPING_OK)
            return 0;
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "pg_harness: postgres not ready after %d ms\n", READY_TIMEOUT_MS);
    return -1;
}

int pgh_start(void)
{
    char bin[300], data[128], log[128], portstr[16];

    if (!find_bindir())
        return 77;
    snprintf(pgh.dir, sizeof(pgh.dir), "/tmp/attesta-pg-XXXXXX");
    if (mkdtemp(pgh.dir) == NULL)
        return -1;
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (pw == NULL)
            pw = getpwnam("nobody");
        if (pw == NULL || chown(pgh.dir, pw->pw_uid, pw->pw_gid) != 0) {
            fprintf(stderr, "pg_harness: running as root without a user for postgres\n");
            return -1;
        }
        pgh.uid = pw->pw_uid;
        pgh.gid = pw->pw_gid;
        pgh.drop = true;
    }
    if (run_initdb() != 0)
        return -1;
    int port = free_port();
    snprintf(portstr, sizeof(portstr), "%d", port);
    snprintf(bin, sizeof(bin), "%s/postgres", pgh.bindir);
    snprintf(data, sizeof(data), "%s/data", pgh.dir);
    snprintf(log, sizeof(log), "%s/postgres.log", pgh.dir);
    char *const argv[] = {bin,
                          "-D",
                          data,
                          "-k",
                          pgh.dir,
                          "-p",
                          portstr,
                          "-c",
                          "listen_addresses=",
                          "-c",
                          "max_connections=100",
                          NULL};
    pgh.pid = spawn(argv, log);
    if (pgh.pid < 0)
        return -1;
    snprintf(pgh.conninfo, sizeof(pgh.conninfo), "host=%s port=%d user=attesta", pgh.dir, port);
    return wait_ready();
}

const char *pgh_conninfo(void)
{
    return pgh.conninfo;
}

int pgh_create_db(const char *name)
{
    char ci[300], sql[128];
    int rc = -1;

    snprintf(ci, sizeof(ci), "%s dbname=postgres", pgh.conninfo);
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) == CONNECTION_OK) {
        /* Test-generated identifier; CREATE DATABASE cannot take a parameter. */
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
        PGresult *res = PQexec(c, sql);
        rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
        if (rc != 0)
            fprintf(stderr, "pg_harness: %s", PQerrorMessage(c));
        PQclear(res);
    }
    PQfinish(c);
    return rc;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

void pgh_stop(void)
{
    if (pgh.pid > 0) {
        kill(pgh.pid, SIGINT); /* fast shutdown: disconnect clients, checkpoint, exit */
        waitpid(pgh.pid, NULL, 0);
        pgh.pid = -1;
    }
    if (pgh.dir[0] != '\0')
        nftw(pgh.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
