/*
 * attesta-bench: load generator for attesta. Drives N concurrent ACME
 * clients (threads, each with its own kept-alive connection) for a fixed
 * duration or count and reports throughput, p50/p99 latency and errors;
 * starts pebble and attesta one after the other for side-by-side figures;
 * measures device-attest-01 flows against the server's crypto-bound limit
 * and the server's memory with many idle accounts.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "tools/bench.h"

static void usage(void)
{
    fprintf(stderr,
            "usage: attesta-bench COMMAND [options]\n"
            "  all                         every comparison, device flows and idle-accounts\n"
            "  compare --workload nonce|directory|http01   pebble and attesta, same workload\n"
            "  device [--mdm-mock]         simulated Apple devices against attesta\n"
            "  idle-accounts [--accounts N]  N accounts (10000), then the server's RSS\n"
            "  crypto                      server-side crypto cost per device flow only\n"
            "  run --workload W --directory URL --trust PEM [--server-pid PID]\n"
            "      [--http01-port P] [--apple-ca DIR]   against a server already running\n"
            "options: --clients N (4) --duration S (5) --count N (0 = none)\n"
            "         --domain D (bench.test) --attesta PATH --pebble PATH\n"
            "         --challtestsrv PATH --keep (keep the temp directory)\n"
            "         --curl-client (nonce/directory: one libcurl thread per client instead\n"
            "                        of the single-thread epoll client)\n"
            "workloads: nonce directory http01 device idle-accounts\n");
}

/* attesta next to us in the build tree, else installed next to us, else in PATH. */
static const char *default_attesta(void)
{
    static char found[PATH_MAX + 32];
    char self[PATH_MAX];
    static const char *const rel[] = {"../server/attesta", "attesta"};
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char *slash = NULL;
    if (n > 0) {
        self[n] = '\0';
        slash = strrchr(self, '/');
    }
    for (size_t i = 0; slash != NULL && i < nitems(rel); i++) {
        *slash = '\0';
        char *p = xasprintf("%s/%s", self, rel[i]);
        bool ok = strlen(p) < sizeof(found) && access(p, X_OK) == 0;
        if (ok)
            memcpy(found, p, strlen(p) + 1);
        free(p);
        if (ok)
            return found;
    }
    return "attesta";
}

struct extra {
    const char *server_pid;
    const char *http01_port;
};

static int parse_num(const char *s, long long min, long long max, long long *out)
{
    if (str_to_ll(s, min, max, out) != 0) {
        fprintf(stderr, "attesta-bench: %s: expected a number from %lld to %lld\n", s, min, max);
        return -1;
    }
    return 0;
}

static int parse_opt(struct bench_cli *cli, struct extra *x, int c, const char *arg)
{
    long long v;
    switch (c) {
    case 'w': return bench_workload_parse(arg, &cli->run.workload);
    case 'c':
        if (parse_num(arg, 1, BENCH_MAX_CLIENTS, &v) != 0)
            return -1;
        cli->run.clients = (int)v;
        return 0;
    case 'd':
        if (parse_num(arg, 1, 3600, &v) != 0)
            return -1;
        cli->run.duration = (double)v;
        return 0;
    case 'n':
        if (parse_num(arg, 0, 100000000, &v) != 0)
            return -1;
        cli->run.count = (long)v;
        return 0;
    case 'A':
        if (parse_num(arg, 1, 1000000, &v) != 0)
            return -1;
        cli->accounts = (long)v;
        return 0;
    case 'D': cli->run.directory = arg; return 0;
    case 't': cli->run.trust = arg; return 0;
    case 'o': cli->run.domain = arg; return 0;
    case 'a': cli->attesta = arg; return 0;
    case 'p': cli->pebble = arg; return 0;
    case 'C': cli->challtestsrv = arg; return 0;
    case 'g': cli->run.apple_ca = arg; return 0;
    case 'P': x->server_pid = arg; return 0;
    case 'H': x->http01_port = arg; return 0;
    case 'm': cli->mdm_mock = true; return 0;
    case 'k': cli->keep = true; return 0;
    case 'u': cli->run.curl_client = true; return 0;
    default: return -1;
    }
}

static int parse_args(struct bench_cli *cli, struct extra *x, int argc, char **argv)
{
    static const struct option opts[] = {
        {"workload", required_argument, NULL, 'w'},  {"clients", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},  {"count", required_argument, NULL, 'n'},
        {"accounts", required_argument, NULL, 'A'},  {"directory", required_argument, NULL, 'D'},
        {"trust", required_argument, NULL, 't'},     {"domain", required_argument, NULL, 'o'},
        {"attesta", required_argument, NULL, 'a'},   {"pebble", required_argument, NULL, 'p'},
        {"challtestsrv", required_argument, NULL, 'C'}, {"apple-ca", required_argument, NULL, 'g'},
        {"server-pid", required_argument, NULL, 'P'}, {"http01-port", required_argument, NULL, 'H'},
        {"mdm-mock", no_argument, NULL, 'm'},        {"keep", no_argument, NULL, 'k'},
        {"curl-client", no_argument, NULL, 'u'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (parse_opt(cli, x, c, optarg) != 0)
            return -1;
    }
    return optind == argc ? 0 : -1;
}

/* `run`: a server someone else started; only 127.0.0.1 URLs are accepted. */
static int cmd_run(struct bench_cli *cli, const struct extra *x)
{
    struct bench_result r;
    char err[ERR_LEN];
    long long pid = 0, port = 0;
    int rc = 1;
    if (cli->run.directory == NULL ||
        strncmp(cli->run.directory, "https://127.0.0.1:", 18) != 0) {
        fprintf(stderr, "attesta-bench: run needs --directory https://127.0.0.1:PORT/...\n");
        return 2;
    }
    if ((x->server_pid && parse_num(x->server_pid, 1, INT_MAX, &pid) != 0) ||
        (x->http01_port && parse_num(x->http01_port, 1, 65535, &port) != 0))
        return 2;
    if (cli->run.workload == BW_HTTP01) {
        cli->run.responder = bench_responder_start((int)port, err);
        if (cli->run.responder == NULL) {
            fprintf(stderr, "attesta-bench: %s\n", err);
            return 2;
        }
    }
    if (bench_run(&cli->run, (pid_t)pid, &r, err) != 0) {
        fprintf(stderr, "attesta-bench: %s\n", err);
        goto out;
    }
    bench_print_header();
    bench_print_row("server", &cli->run, &r);
    rc = r.errors > 0 ? 1 : 0;
out:
    bench_responder_stop(cli->run.responder);
    cli->run.responder = NULL;
    return rc;
}

/* A device flow as attesta-bench device runs it signs 8 JWS POSTs (newAccount to download). */
#define DEVICE_FLOW_POSTS 8

static int cmd_crypto(void)
{
    struct bench_crypto idle, busy;
    char err[ERR_LEN];
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (bench_crypto_measure(&idle, 1000, 1, err) != 0 ||
        bench_crypto_measure(&busy, 1000, cores, err) != 0) {
        fprintf(stderr, "attesta-bench: crypto: %s\n", err);
        return 1;
    }
    printf("one thread, idle machine:\n");
    bench_crypto_print(&idle, DEVICE_FLOW_POSTS);
    printf("%d threads at once (one per core):\n", cores);
    bench_crypto_print(&busy, DEVICE_FLOW_POSTS);
    return 0;
}

int main(int argc, char **argv)
{
    struct bench_cli cli = {
        .run = {.workload = BW_NONCE, .clients = 4, .duration = 5, .domain = "bench.test"},
        .pebble = "/usr/bin/pebble",
        .challtestsrv = "/usr/bin/pebble-challtestsrv",
        .accounts = 10000,
    };
    struct extra x = {0};
    int rc = 2;
    if (argc < 2 || parse_args(&cli, &x, argc - 1, argv + 1) != 0) {
        usage();
        return 2;
    }
    if (cli.attesta == NULL)
        cli.attesta = default_attesta();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *cmd = argv[1];
    if (strcmp(cmd, "compare") == 0)
        rc = bench_cmd_compare(&cli);
    else if (strcmp(cmd, "device") == 0)
        rc = bench_cmd_device(&cli);
    else if (strcmp(cmd, "idle-accounts") == 0)
        rc = bench_cmd_idle_accounts(&cli);
    else if (strcmp(cmd, "all") == 0)
        rc = bench_cmd_all(&cli);
    else if (strcmp(cmd, "crypto") == 0)
        rc = cmd_crypto();
    else if (strcmp(cmd, "run") == 0)
        rc = cmd_run(&cli, &x);
    else
        usage();
    curl_global_cleanup();
    return rc;
}
