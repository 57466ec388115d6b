/*
 * cmd_attest: `attesta attest inspect FILE [--at TIME] [--root PEM]... [--token TOKEN]`.
 * Lets an operator see what a device attested and why a statement was refused,
 * with the same verifier the server uses. FILE may be a raw attObj (CBOR), the
 * device-attest-01 challenge payload {"attObj":"..."} or a PEM chain, leaf first.
 * Exit status: 0 verified, 1 refused, 2 usage or I/O error.
 */
#include "server/srv_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"
#include "common/common.h"

#define MAX_ROOTS 8
#define MAX_INPUT (256 * 1024)

struct inspect_opts {
    const char *file, *at, *token;
    const char *roots[MAX_ROOTS];
    size_t nroots;
};

static const char *const result_str[] = {
    [ATT_OK] = "ok",
    [ATT_ERR_FORMAT] = "format",
    [ATT_ERR_CHAIN] = "chain",
    [ATT_ERR_VALIDITY] = "validity",
    [ATT_ERR_NONCE] = "nonce",
    [ATT_ERR_IDENTITY] = "identity",
    [ATT_ERR_INTERNAL] = "internal",
};
_Static_assert(nitems(result_str) == ATT_ERR_INTERNAL + 1, "result_str covers enum att_result");

static int usage(void)
{
    fprintf(stderr, "usage: attesta attest inspect FILE [--at TIME|now] [--root PEM]... "
                    "[--token TOKEN]\n");
    return 2;
}

static int parse_args(int argc, char **argv, struct inspect_opts *o)
{
    memset(o, 0, sizeof(*o));
    if (argc < 3 || strcmp(argv[1], "inspect") != 0)
        return -1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (strcmp(a, "--at") == 0 && has_val) {
            o->at = argv[++i];
        } else if (strcmp(a, "--token") == 0 && has_val) {
            o->token = argv[++i];
        } else if (strcmp(a, "--root") == 0 && has_val && o->nroots < MAX_ROOTS) {
            o->roots[o->nroots++] = argv[++i];
        } else if (a[0] != '-' && o->file == NULL) {
            o->file = a;
        } else {
            return -1;
        }
    }
    return o->file == NULL ? -1 : 0;
}

/* Reads at most MAX_INPUT bytes; NUL-terminated for the PEM and JSON paths. 0/-1. */
static int read_input(const char *path, unsigned char **out, size_t *len)
{
    int rc = -1;
    unsigned char *p = xmalloc(MAX_INPUT + 2);
    size_t n = 0;
    FILE *f = fopen(path, "rb");

    if (f == NULL) {
        fprintf(stderr, "attest inspect: cannot open %s\n", path);
        goto out;
    }
    n = fread(p, 1, MAX_INPUT + 1, f);
    if (ferror(f) || n > MAX_INPUT) {
        fprintf(stderr, "attest inspect: %s is unreadable or over %d bytes\n", path, MAX_INPUT);
        goto out;
    }
    p[n] = '\0';
    *out = p;
    *len = n;
    p = NULL;
    rc = 0;
out:
    if (f != NULL)
        fclose(f);
    free(p);
    return rc;
}

/*
 * Finds the "attObj" string member of a challenge payload and base64url-decodes
 * it. A bounded scan, not a JSON parser: enough for an operator's file. 0/-1.
 */
static int payload_attobj(const unsigned char *p, size_t len, unsigned char **out, size_t *outlen)
{
    static const char key[] = "\"attObj\"";
    const unsigned char *k = memmem(p, len, key, sizeof(key) - 1);

    if (k == NULL)
        return -1;
    size_t i = (size_t)(k - p) + sizeof(key) - 1;
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    if (i >= len || p[i++] != ':')
        return -1;
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    if (i >= len || p[i++] != '"')
        return -1;
    size_t start = i;
    while (i < len && p[i] != '"' && i - start <= 2 * ATT_MAX_ATTOBJ)
        i++;
    if (i >= len || p[i] != '"')
        return -1;
    return b64u_decode((const char *)p + start, i - start, out, outlen);
}

static void print_claims(const struct att_claims *c)
{
    char hex[2 * sizeof(c->nonce) + 1], t1[32], t2[32];

    printf("serial:        %s\n", c->serial);
    printf("UDID:          %s\n", c->udid);
    printf("OS version:    %s\n", c->os_version);
    printf("sepOS version: %s\n", c->sepos_version);
    printf("LLB version:   %s\n", c->llb_version);
    printf("nonce:         %s\n",
           c->nonce_len > 0 ? hex_encode(c->nonce, c->nonce_len, hex) : "(none)");
    printf("SPKI SHA-256:  %s\n", c->spki_sha256);
    printf("validity:      %s .. %s\n", clk_fmt_rfc3339(c->not_before, t1),
           clk_fmt_rfc3339(c->not_after, t2));
}

static enum att_result verify_input(const struct att_verifier *v, const unsigned char *p,
                                    size_t len, int64_t at, struct att_claims *c, char err[ERR_LEN])
{
    size_t i = 0;
    enum att_result r;

    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    if (len - i >= 10 && memcmp(p + i, "-----BEGIN", 10) == 0)
        return att_verify_chain_pem(v, (const char *)p, len, at, c, err);
    if (i < len && p[i] == '{') {
        unsigned char *cbor = NULL;
        size_t n = 0;
        if (payload_attobj(p, len, &cbor, &n) != 0) {
            snprintf(err, ERR_LEN, "payload has no base64url \"attObj\" string");
            return ATT_ERR_FORMAT;
        }
        r = att_verify(v, cbor, n, at, c, err);
        free(cbor);
        return r;
    }
    return att_verify(v, p, len, at, c, err);
}

int srv_cmd_attest(int argc, char **argv)
{
    int rc = 2;
    struct inspect_opts o;
    struct att_verifier *v = NULL;
    struct att_claims c = {0};
    unsigned char *in = NULL;
    size_t len = 0;
    int64_t at = 0;
    char err[ERR_LEN] = "", when[32];

    if (parse_args(argc, argv, &o) != 0)
        return usage();
    if (o.at == NULL || strcmp(o.at, "now") == 0) {
        at = clk_now();
    } else if (clk_parse_rfc3339(o.at, &at) != 0) {
        fprintf(stderr, "attest inspect: --at wants RFC 3339 or \"now\"\n");
        goto out;
    }
    v = att_verifier_new(o.roots, o.nroots, err);
    if (v == NULL) {
        fprintf(stderr, "attest inspect: %s\n", err);
        goto out;
    }
    if (read_input(o.file, &in, &len) != 0)
        goto out;
    enum att_result r = verify_input(v, in, len, at, &c, err);
    if (c.spki_len > 0)
        print_claims(&c);
    printf("verified at:   %s\n", clk_fmt_rfc3339(at, when));
    if (r == ATT_OK && o.token != NULL) {
        r = att_check_nonce(&c, o.token, true, err);
        printf("nonce check:   %s\n", r == ATT_OK ? "OK" : "FAILED");
    }
    if (r == ATT_OK)
        printf("verification: OK\n");
    else
        printf("verification: FAILED: %s: %s\n", result_str[r], err);
    rc = r == ATT_OK ? 0 : 1;
out:
    att_claims_clear(&c);
    att_verifier_free(v);
    free(in);
    return rc;
}
