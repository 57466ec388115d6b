/*
 * bench.h: internal interfaces of attesta-bench, the load generator that
 * drives N client threads against an ACME server (attesta or pebble) and
 * reports throughput, latency percentiles, errors, server CPU and memory.
 * Only 127.0.0.1 is ever targeted; every run is bounded in time and count.
 */
#ifndef ACMESRV_TOOLS_BENCH_H
#define ACMESRV_TOOLS_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/common.h"

#define BENCH_MAX_CLIENTS 256

enum bench_workload {
    BW_NONCE,     /* HEAD newNonce */
    BW_DIRECTORY, /* GET directory */
    BW_HTTP01,    /* full http-01 issuance, one account per thread */
    BW_DEVICE,    /* full device-attest-01 issuance as a simulated Apple device */
    BW_ACCOUNTS,  /* newAccount with a fresh key each time */
    BW__MAX
};
const char *bench_workload_name(enum bench_workload w);
int bench_workload_parse(const char *name, enum bench_workload *out);

struct bench_responder;

/* What one run does; strings borrowed. */
struct bench_opts {
    enum bench_workload workload;
    const char *directory;  /* directory URL */
    const char *trust;      /* PEM bundle that verifies the server */
    int clients;            /* threads, 1..BENCH_MAX_CLIENTS */
    double duration;        /* seconds; the run stops at whichever of duration/count is first */
    long count;             /* operations in total, 0 = no limit */
    const char *domain;     /* http01: orders are for <random>.<domain> */
    const char *apple_ca;   /* device: directory made by fa_ca_init_dir */
    struct bench_responder *responder; /* http01: serves the key authorizations */
    bool curl_client;       /* nonce/directory: threaded libcurl client, not the light one */
};

struct bench_result {
    long ok, errors;
    double elapsed_s;
    double ops_per_s;        /* successful operations per second of wall time */
    double p50_ms, p99_ms;   /* latency of successful operations */
    double requests_per_op;  /* HTTP requests a successful operation took */
    double posts_per_op;     /* of which JWS POSTs (each one a server-side verification) */
    double server_cpu_s;     /* utime+stime the server used during the run, <0 unknown */
    long server_rss_kib;     /* VmRSS after the run, <0 unknown */
    char first_err[ERR_LEN];
};

/* Runs the workload; server_pid (0 = unknown) is sampled for CPU and RSS. 0/-1. */
int bench_run(const struct bench_opts *o, pid_t server_pid, struct bench_result *res,
              char err[ERR_LEN]);

/*
 * Fills res's ok, p50/p99, ops/s (from res->elapsed_s, set first) and requests/op from
 * the latencies (microseconds, sorted in place) of n successful operations that took
 * reqs requests.
 */
void bench_result_summarize(uint32_t *lat, size_t n, unsigned long reqs,
                            struct bench_result *res);

/* ---- bench_light.c: nonce and directory, one epoll thread, non-blocking TLS ---- */
/* As bench_run, for BW_NONCE and BW_DIRECTORY: o->clients keep-alive connections. */
int bench_light_run(const struct bench_opts *o, pid_t server_pid, struct bench_result *res,
                    char err[ERR_LEN]);

/* ---- bench_responder.c: http-01 answers and a mock MDM on 127.0.0.1 ---- */
/* Listens on 127.0.0.1:port (0 = any free port) in a thread of its own. NULL with err. */
struct bench_responder *bench_responder_start(int port, char err[ERR_LEN]);
int bench_responder_port(const struct bench_responder *r);
/* Client slot's current challenge: GET /.well-known/acme-challenge/<token> answers keyauth. */
void bench_responder_set(struct bench_responder *r, int slot, const char *token,
                         const char *keyauth);
/* Validation requests and mock MDM lookups answered so far. */
unsigned long bench_responder_hits(const struct bench_responder *r);
void bench_responder_stop(struct bench_responder *r);

/* ---- bench_procs.c: child servers and /proc sampling ---- */
struct bench_proc {
    pid_t pid;             /* 0 when not running */
    char out_path[512];    /* its stdout */
};
/* Starts argv[0] with extra environment entries ("K=V", NULL-terminated or NULL). 0/-1. */
int bench_proc_spawn(struct bench_proc *p, char *const argv[], char *const env_extra[],
                     const char *out_path, const char *err_path, char err[ERR_LEN]);
/* SIGTERM, then SIGKILL after 5 s; reaps it. NULL-safe, idempotent. */
void bench_proc_stop(struct bench_proc *p);
/* A TCP and UDP port free on 127.0.0.1 right now, or -1. */
int bench_free_port(void);
/* Seconds of CPU (user + system) the process used so far, or -1. */
double bench_proc_cpu_s(pid_t pid);
/* VmRSS in KiB, or -1. */
long bench_proc_rss_kib(pid_t pid);
/* GETs url (trusting ca, may be NULL for http) until it answers or timeout_ms. 0/-1. */
int bench_wait_url(const char *url, const char *ca, int timeout_ms);
/* Polls p's stdout for "listening on https://HOST:PORT" (attesta's banner): PORT or -1. */
int bench_wait_banner(struct bench_proc *p, int timeout_ms);
/* Writes text to path. 0/-1. */
int bench_write_file(const char *path, const char *text, char err[ERR_LEN]);

/* ---- bench_crypto.c: in-process cost of the server's cryptography per flow ---- */
struct bench_crypto {
    double jws_verify_us;   /* ES256 (P-256) JWS verification */
    double leaf_verify_us;  /* attestation leaf by sub CA, P-384 / SHA-384 */
    double sub_verify_us;   /* sub CA by root, P-384: cached by the server, shown only */
    double csr_verify_us;   /* CSR self-signature, P-384 device key */
    double issue_sign_us;   /* certificate signature with the P-256 issuing key */
    double tls_half_us;     /* half a full loopback TLS 1.3 handshake, ECDHE P-256 + ECDSA P-256 */
};
/*
 * Times iters rounds of each operation in CPU time, on `threads` threads at
 * once (1 = one thread on an idle machine), the mean per operation into c. 0/-1.
 */
int bench_crypto_measure(struct bench_crypto *c, int iters, int threads, char err[ERR_LEN]);
/* Sum for one device flow with posts JWS verifications. */
double bench_crypto_flow_us(const struct bench_crypto *c, double posts);
void bench_crypto_print(const struct bench_crypto *c, double posts);

/* ---- bench_compare.c: server orchestration and the subcommands ---- */
struct bench_cli {
    struct bench_opts run;  /* workload, clients, duration, count */
    const char *attesta;    /* attesta binary */
    const char *pebble;     /* pebble binary */
    const char *challtestsrv;
    bool mdm_mock;          /* device: put a mock MDM signal source in the loop */
    bool keep;              /* keep the temp directory */
    long accounts;          /* idle-accounts: how many */
};
int bench_cmd_compare(struct bench_cli *cli);
int bench_cmd_device(struct bench_cli *cli);
int bench_cmd_idle_accounts(struct bench_cli *cli);
int bench_cmd_all(struct bench_cli *cli);
/* Prints one result row under the header bench_print_header printed. */
void bench_print_header(void);
void bench_print_row(const char *server, const struct bench_opts *o, const struct bench_result *r);

#endif
