/*
 * bench_compare.c: the subcommands that start servers themselves: compare
 * (the same workload against pebble, then attesta, one after the other so
 * they never share the CPUs), device (simulated Apple fleet against attesta,
 * with the crypto-bound limit), idle-accounts (server memory with 10,000
 * accounts) and all. Everything lives in one temp directory and listens on
 * 127.0.0.1 only.
 */
#include "tools/bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pki/pki.h"
#include "tools/fake_apple.h"

struct env {
    struct bench_cli *cli;
    char dir[64];
    struct bench_responder *resp;
    struct bench_proc dns; /* pebble-challtestsrv: A 127.0.0.1 for every name */
    int dns_port;
    char url[256];   /* directory URL of the server running now */
    char trust[600]; /* PEM that verifies it */
};

/* Temp dir, responder and, for http01, a DNS server both ACME servers resolve through. */
static int env_open(struct env *e, struct bench_cli *cli, bool need_dns)
{
    char err[ERR_LEN];
    memset(e, 0, sizeof(*e));
    e->cli = cli;
    snprintf(e->dir, sizeof(e->dir), "/tmp/attesta-bench.XXXXXX");
    if (mkdtemp(e->dir) == NULL) {
        fprintf(stderr, "attesta-bench: mkdtemp failed\n");
        return -1;
    }
    e->resp = bench_responder_start(0, err);
    e->dns_port = bench_free_port();
    if (e->resp == NULL || e->dns_port < 0) {
        fprintf(stderr, "attesta-bench: responder: %s\n", e->resp ? "no free port" : err);
        return -1;
    }
    cli->run.responder = e->resp;
    if (!need_dns)
        return 0;
    int mgmt = bench_free_port();
    char dns[32], mg[32], murl[64], *out = xasprintf("%s/challtestsrv.log", e->dir);
    snprintf(dns, sizeof(dns), "127.0.0.1:%d", e->dns_port);
    snprintf(mg, sizeof(mg), "127.0.0.1:%d", mgmt);
    snprintf(murl, sizeof(murl), "http://%s/", mg);
    char *argv[] = {(char *)cli->challtestsrv, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                    "-dns01", dns, "-http01", "", "-https01", "", "-tlsalpn01", "",
                    "-management", mg, NULL};
    int rc = bench_proc_spawn(&e->dns, argv, NULL, out, out, err);
    free(out);
    if (rc != 0 || bench_wait_url(murl, NULL, 10000) != 0) {
        fprintf(stderr, "attesta-bench: pebble-challtestsrv: %s\n", rc ? err : "did not start");
        return -1;
    }
    return 0;
}

static void env_close(struct env *e)
{
    char *cmd;
    bench_proc_stop(&e->dns);
    bench_responder_stop(e->resp);
    e->resp = NULL;
    e->cli->run.responder = NULL;
    if (e->dir[0] == '\0' || e->cli->keep) {
        if (e->dir[0])
            printf("kept %s\n", e->dir);
        return;
    }
    /* Only our own mkdtemp directory, whose name we made, is removed. */
    cmd = xasprintf("rm -rf -- '%s'", e->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "attesta-bench: could not remove %s\n", e->dir);
    free(cmd);
}

/* A CA and a 127.0.0.1 certificate for pebble's HTTPS listener. */
static int pebble_tls(struct env *e, char *cert, char *key, size_t len, char err[ERR_LEN])
{
    char *cadir = xasprintf("%s/tlsca", e->dir), *icert = NULL, *ikey = NULL, *root = NULL;
    static const char *const names[] = {"127.0.0.1", "localhost"};
    struct pki_ca *ca = NULL;
    int rc = -1;
    if (pki_ca_init_dir(cadir, "attesta-bench", err) != 0)
        goto out;
    icert = xasprintf("%s/intermediate.pem", cadir);
    ikey = xasprintf("%s/intermediate.key", cadir);
    root = xasprintf("%s/root.pem", cadir);
    ca = pki_ca_load("bench", icert, ikey, root, err);
    snprintf(cert, len, "%s/pebble.pem", e->dir);
    snprintf(key, len, "%s/pebble.key", e->dir);
    if (ca == NULL || pki_tls_cert_create(ca, names, nitems(names), cert, key, err) != 0)
        goto out;
    snprintf(e->trust, sizeof(e->trust), "%s", root);
    rc = 0;
out:
    pki_ca_free(ca);
    free(cadir);
    free(icert);
    free(ikey);
    free(root);
    return rc;
}

static int start_pebble(struct env *e, struct bench_proc *p, char err[ERR_LEN])
{
    char cert[300], key[300], dns[32], *cfg = NULL, *json = NULL, *out = NULL, *log = NULL;
    int port = bench_free_port(), mgmt = bench_free_port(), rc = -1;
    static char *const env[] = {"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0",
                                "PEBBLE_AUTHZREUSE=0", "PEBBLE_VA_ALWAYS_VALID=0", NULL};
    if (pebble_tls(e, cert, key, sizeof(cert), err) != 0)
        goto out;
    cfg = xasprintf("%s/pebble.json", e->dir);
    json = xasprintf("{\"pebble\":{\"listenAddress\":\"127.0.0.1:%d\","
                     "\"managementListenAddress\":\"127.0.0.1:%d\",\"certificate\":\"%s\","
                     "\"privateKey\":\"%s\",\"httpPort\":%d,\"tlsPort\":%d,"
                     "\"ocspResponderURL\":\"\",\"externalAccountBindingRequired\":false}}\n",
                     port, mgmt, cert, key, bench_responder_port(e->resp), bench_free_port());
    if (bench_write_file(cfg, json, err) != 0)
        goto out;
    snprintf(dns, sizeof(dns), "127.0.0.1:%d", e->dns_port);
    out = xasprintf("%s/pebble.out", e->dir);
    log = xasprintf("%s/pebble.log", e->dir);
    char *argv[] = {(char *)e->cli->pebble, "-config", cfg, "-dnsserver", dns, NULL};
    if (bench_proc_spawn(p, argv, env, out, log, err) != 0)
        goto out;
    snprintf(e->url, sizeof(e->url), "https://127.0.0.1:%d/dir", port);
    if (bench_wait_url(e->url, e->trust, 15000) != 0) {
        snprintf(err, ERR_LEN, "pebble did not answer on %.100s (see %.100s)", e->url, log);
        goto out;
    }
    rc = 0;
out:
    free(cfg);
    free(json);
    free(out);
    free(log);
    return rc;
}

/* attesta serve on an ephemeral port; extra is appended to the YAML. */
static int start_attesta(struct env *e, struct bench_proc *p, const char *policy,
                         const char *extra, char err[ERR_LEN])
{
    char *cfg = xasprintf("%s/attesta.yaml", e->dir), *out = xasprintf("%s/attesta.out", e->dir);
    char *log = xasprintf("%s/attesta.log", e->dir), *yaml = NULL;
    int rc = -1, port;
    /*
     * A bench account orders thousands of certificates an hour, and the device and
     * idle-accounts workloads make up to 10,000 accounts from 127.0.0.1 (one per
     * simulated device); pebble limits neither.
     */
    yaml = xasprintf("server:\n  listen: \"127.0.0.1:0\"\n  data_dir: \"%s/attesta-data\"\n"
                     "storage:\n  driver: sqlite\n"
                     "acme:\n  limits:\n    orders_per_hour: 0\n    accounts_per_ip_hour: 0\n"
                     "  challenges:\n    resolver: \"127.0.0.1:%d\"\n"
                     "    http01_port: %d\n    tls_alpn01_port: %d\n%s",
                     e->dir, e->dns_port, bench_responder_port(e->resp), bench_free_port(),
                     extra ? extra : "");
    if (bench_write_file(cfg, yaml, err) != 0)
        goto out;
    char *argv[] = {(char *)e->cli->attesta, "serve", "-c", cfg, NULL};
    if (bench_proc_spawn(p, argv, NULL, out, log, err) != 0)
        goto out;
    port = bench_wait_banner(p, 30000);
    if (port < 0) {
        snprintf(err, ERR_LEN, "attesta did not start (see %.200s)", log);
        goto out;
    }
    snprintf(e->url, sizeof(e->url), "https://127.0.0.1:%d/acme/%s/directory", port, policy);
    snprintf(e->trust, sizeof(e->trust), "%s/attesta-data/root.pem", e->dir);
    if (bench_wait_url(e->url, e->trust, 10000) != 0) {
        snprintf(err, ERR_LEN, "attesta does not serve %.100s (see %.100s)", e->url, log);
        goto out;
    }
    rc = 0;
out:
    free(cfg);
    free(out);
    free(log);
    free(yaml);
    return rc;
}

void bench_print_header(void)
{
    printf("%-8s %-13s %7s %8s %6s %10s %8s %8s %6s %12s %8s\n", "server", "workload", "clients",
           "ok", "errors", "ops/s", "p50 ms", "p99 ms", "req/op", "srv CPU/op", "RSS MiB");
}

void bench_print_row(const char *server, const struct bench_opts *o, const struct bench_result *r)
{
    char cpu[32] = "-", rss[32] = "-";
    if (r->server_cpu_s >= 0 && r->ok > 0)
        snprintf(cpu, sizeof(cpu), "%.3f ms", r->server_cpu_s * 1000 / (double)r->ok);
    if (r->server_rss_kib >= 0)
        snprintf(rss, sizeof(rss), "%.1f", (double)r->server_rss_kib / 1024);
    printf("%-8s %-13s %7d %8ld %6ld %10.1f %8.2f %8.2f %6.1f %12s %8s\n", server,
           bench_workload_name(o->workload), o->clients, r->ok, r->errors, r->ops_per_s,
           r->p50_ms, r->p99_ms, r->requests_per_op, cpu, rss);
    if (r->errors > 0)
        printf("         first error: %s\n", r->first_err);
}

/* Runs the workload against the server e->url points at, then stops the server. */
static int measure(struct env *e, struct bench_proc *p, struct bench_result *res)
{
    char err[ERR_LEN];
    struct bench_opts o = e->cli->run;
    o.directory = e->url;
    o.trust = e->trust;
    int rc = bench_run(&o, p->pid, res, err);
    bench_proc_stop(p);
    if (rc != 0)
        fprintf(stderr, "attesta-bench: %s\n", err);
    return rc;
}

static double ratio(double a, double b)
{
    return b > 0 ? a / b : 0;
}

int bench_cmd_compare(struct bench_cli *cli)
{
    struct env e;
    struct bench_proc pp = {0}, ap = {0};
    struct bench_result rp = {0}, ra = {0};
    char err[ERR_LEN];
    int rc = 1;
    if (cli->run.workload > BW_HTTP01) {
        fprintf(stderr, "attesta-bench: compare runs nonce, directory or http01\n");
        return 2;
    }
    if (env_open(&e, cli, cli->run.workload == BW_HTTP01) != 0)
        goto out;
    if (start_pebble(&e, &pp, err) != 0 || measure(&e, &pp, &rp) != 0) {
        fprintf(stderr, "attesta-bench: pebble: %s\n", err);
        goto out;
    }
    if (start_attesta(&e, &ap, "default", NULL, err) != 0 || measure(&e, &ap, &ra) != 0) {
        fprintf(stderr, "attesta-bench: attesta: %s\n", err);
        goto out;
    }
    bench_print_header();
    bench_print_row("pebble", &cli->run, &rp);
    bench_print_row("attesta", &cli->run, &ra);
    printf("ratio attesta/pebble (%s): throughput %.2fx, p50 %.2fx, p99 %.2fx, server CPU/op %.2fx\n",
           bench_workload_name(cli->run.workload), ratio(ra.ops_per_s, rp.ops_per_s),
           ratio(ra.p50_ms, rp.p50_ms), ratio(ra.p99_ms, rp.p99_ms),
           ratio(ra.server_cpu_s * (double)rp.ok, rp.server_cpu_s * (double)ra.ok));
    rc = ra.errors > 0 || rp.errors > 0 ? 1 : 0;
out:
    bench_proc_stop(&pp);
    bench_proc_stop(&ap);
    env_close(&e);
    return rc;
}

/* attestation trust for the simulated devices, plus the mock MDM when asked. */
static char *device_yaml(const struct env *e)
{
    struct buf b = {0};
    buf_printf(&b, "attestation:\n  apple:\n    roots: [\"%s/apple/apple-root.pem\"]\n", e->dir);
    if (e->cli->mdm_mock) {
        buf_printf(&b,
                   "signal_sources:\n  mockmdm:\n    type: http\n    request:\n"
                   "      url: \"http://127.0.0.1:%d/mdm/devices?serial_number="
                   "${/attest/serial|urlencode}\"\n"
                   "    match:\n      field: serial_number\n"
                   "    conditions:\n      - {path: mdm_enabled, op: is_true}\n"
                   "    cache: {ttl: 0s, negative_ttl: 0s}\n"
                   "enrollment_policies:\n"
                   "  default: {identifiers: [dns, ip], challenges: [http-01, dns-01, tls-alpn-01]}\n"
                   "  devices: {identifiers: [permanent-identifier, hardware-module],"
                   " challenges: [device-attest-01], signal_sources: [mockmdm]}\n",
                   bench_responder_port(e->resp));
    }
    return buf_take(&b);
}

/*
 * The flow's crypto cost with every core busy is what the server's CPU per flow
 * (read under the same load) is held against; the idle single-thread figure is
 * printed beside it so the machine's own slowdown under load stays visible.
 */
static void device_report(const struct bench_result *r, const struct bench_crypto *idle,
                          const struct bench_crypto *busy)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    double posts = r->posts_per_op > 0 ? r->posts_per_op : 7;
    double cost_us = bench_crypto_flow_us(busy, posts);
    double idle_us = bench_crypto_flow_us(idle, posts);
    double limit = cost_us > 0 ? (double)cores * 1e6 / cost_us : 0;
    printf("with %ld threads busy (one per core):\n", cores);
    bench_crypto_print(busy, posts);
    printf("one thread, idle machine: crypto cost per flow %.1f us\n", idle_us);
    printf("crypto-bound limit: %.0f flows/s (%ld cores / %.1f us)\n", limit, cores, cost_us);
    printf("achieved: %.1f flows/s = %.1f%% of the crypto-bound limit\n", r->ops_per_s,
           100 * ratio(r->ops_per_s, limit));
    if (r->server_cpu_s >= 0 && r->ok > 0) {
        double per = r->server_cpu_s * 1e6 / (double)r->ok;
        printf("server CPU per flow: %.1f us = %.2fx the crypto cost with all cores busy, "
               "%.2fx the idle single-thread cost (target <= 1.5x)\n",
               per, ratio(per, cost_us), ratio(per, idle_us));
    }
}

int bench_cmd_device(struct bench_cli *cli)
{
    struct env e;
    struct bench_proc ap = {0};
    struct bench_result r = {0};
    struct bench_crypto idle, busy;
    char err[ERR_LEN], *apple = NULL, *yaml = NULL;
    int rc = 1;
    if (env_open(&e, cli, false) != 0)
        goto out;
    apple = xasprintf("%s/apple", e.dir);
    yaml = device_yaml(&e);
    cli->run.workload = BW_DEVICE;
    cli->run.apple_ca = apple;
    if (fa_ca_init_dir(apple, err) != 0 || start_attesta(&e, &ap, "devices", yaml, err) != 0 ||
        measure(&e, &ap, &r) != 0) {
        fprintf(stderr, "attesta-bench: device: %s\n", err);
        goto out;
    }
    bench_print_header();
    bench_print_row("attesta", &cli->run, &r);
    if (cli->mdm_mock)
        printf("mock MDM lookups answered: %lu\n", bench_responder_hits(e.resp));
    /* Measured after the server stopped, so nothing else competes for the CPU. */
    if (bench_crypto_measure(&idle, 400, 1, err) != 0 ||
        bench_crypto_measure(&busy, 400, (int)sysconf(_SC_NPROCESSORS_ONLN), err) != 0) {
        fprintf(stderr, "attesta-bench: crypto: %s\n", err);
        goto out;
    }
    device_report(&r, &idle, &busy);
    rc = r.errors > 0 ? 1 : 0;
out:
    cli->run.apple_ca = NULL;
    bench_proc_stop(&ap);
    env_close(&e);
    free(apple);
    free(yaml);
    return rc;
}

int bench_cmd_idle_accounts(struct bench_cli *cli)
{
    struct env e;
    struct bench_proc ap = {0};
    struct bench_result r = {0};
    char err[ERR_LEN];
    int rc = 1;
    cli->run.workload = BW_ACCOUNTS;
    cli->run.count = cli->accounts;
    /* The count ends the run; the duration is only a safety bound. */
    cli->run.duration = 600;
    if (env_open(&e, cli, false) != 0)
        goto out;
    if (start_attesta(&e, &ap, "default", NULL, err) != 0) {
        fprintf(stderr, "attesta-bench: idle-accounts: %s\n", err);
        goto out;
    }
    long before = bench_proc_rss_kib(ap.pid);
    struct bench_opts o = cli->run;
    o.directory = e.url;
    o.trust = e.trust;
    if (bench_run(&o, ap.pid, &r, err) != 0) {
        fprintf(stderr, "attesta-bench: idle-accounts: %s\n", err);
        goto out;
    }
    sleep(1);
    long idle = bench_proc_rss_kib(ap.pid);
    bench_print_header();
    bench_print_row("attesta", &o, &r);
    printf("server RSS: %.1f MiB at start, %.1f MiB idle with %ld accounts (target <= 64 MiB)\n",
           (double)before / 1024, (double)idle / 1024, r.ok);
    rc = r.errors > 0 || idle > 64 * 1024 ? 1 : 0;
out:
    bench_proc_stop(&ap);
    env_close(&e);
    return rc;
}

int bench_cmd_all(struct bench_cli *cli)
{
    static const enum bench_workload cmp[] = {BW_NONCE, BW_DIRECTORY, BW_HTTP01};
    int rc = 0;
    for (size_t i = 0; i < nitems(cmp); i++) {
        cli->run.workload = cmp[i];
        printf("== compare %s\n", bench_workload_name(cmp[i]));
        rc |= bench_cmd_compare(cli);
        fflush(stdout);
    }
    printf("== device\n");
    rc |= bench_cmd_device(cli);
    fflush(stdout);
    printf("== idle-accounts\n");
    rc |= bench_cmd_idle_accounts(cli);
    return rc;
}
