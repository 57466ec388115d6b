/*
 * cmd_profile.c: `attesta profile --policy NAME` writes an Apple configuration
 * profile (.mobileconfig) that an MDM pushes to devices: a
 * com.apple.security.root payload with the policy CA's root and a
 * com.apple.security.acme payload pointing at the policy's directory with
 * HardwareBound and Attest set.
 */
#include "server/srv_int.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "pki/pki.h"

#define PROFILE_MAX_PEM (256 * 1024)

struct profile_opts {
    const char *config, *policy, *client_id, *out, *org;
    long long key_size;
};

/* XML character data with the five predefined entities escaped. */
static void xml_text(struct buf *b, const char *s)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '&': buf_puts(b, "&amp;"); break;
        case '<': buf_puts(b, "&lt;"); break;
        case '>': buf_puts(b, "&gt;"); break;
        case '"': buf_puts(b, "&quot;"); break;
        case '\'': buf_puts(b, "&apos;"); break;
        default: buf_append(b, s, 1);
        }
    }
}

static void kv_string(struct buf *b, const char *key, const char *value)
{
    buf_printf(b, "<key>%s</key><string>", key);
    xml_text(b, value);
    buf_puts(b, "</string>\n");
}

/* A UUID derived from the name, so a regenerated profile replaces the old one. */
static void name_uuid(const char *name, char out[37])
{
    unsigned char h[32];
    char hex[65];
    pki_sha256(name, strlen(name), h);
    h[6] = (unsigned char)((h[6] & 0x0f) | 0x50);
    h[8] = (unsigned char)((h[8] & 0x3f) | 0x80);
    hex_encode(h, 16, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
    for (char *p = out; *p; p++)
        *p = (char)(*p >= 'a' && *p <= 'f' ? *p - 32 : *p);
}

static void kv_uuid(struct buf *b, const char *seed)
{
    char uuid[37];
    name_uuid(seed, uuid);
    kv_string(b, "PayloadUUID", uuid);
}

/* Reads the last certificate of a PEM file (the root of a chain) as DER. */
static int root_der(const char *path, unsigned char **der, size_t *len, char err[ERR_LEN])
{
    FILE *fp = fopen(path, "re");
    char *pem = NULL;
    int rc = -1;
    if (fp == NULL) {
        snprintf(err, ERR_LEN, "cannot open %s", path);
        return -1;
    }
    pem = xcalloc(1, PROFILE_MAX_PEM + 1);
    size_t n = fread(pem, 1, PROFILE_MAX_PEM, fp);
    fclose(fp);
    char *last = NULL;
    for (char *p = strstr(pem, "-----BEGIN CERTIFICATE-----"); p != NULL;
         p = strstr(p + 1, "-----BEGIN CERTIFICATE-----"))
        last = p;
    if (n == 0 || last == NULL || pki_pem_to_der(last, der, len) != 0) {
        snprintf(err, ERR_LEN, "%s holds no PEM certificate", path);
        goto out;
    }
    rc = 0;
out:
    free(pem);
    return rc;
}

/* The PEM file whose last certificate is the root of the policy's CA. */
static char *ca_root_path(const struct cfg *cfg, const struct cfg_policy *pol)
{
    const struct cfg_ca *ca = cfg_ca_find(cfg, pol->ca);
    if (ca != NULL && ca->chain != NULL)
        return xstrdup(ca->chain);
    if (ca != NULL && ca->cert != NULL)
        return xstrdup(ca->cert);
    if (strcmp(pol->ca, "default") == 0)
        return xasprintf("%s/root.pem", cfg->server.data_dir);
    return xasprintf("%s/ca/%s/root.pem", cfg->server.data_dir, pol->ca);
}

static void root_payload(struct buf *b, const char *policy, const unsigned char *der, size_t len)
{
    char *b64 = b64_encode(der, len);
    char *seed = xasprintf("attesta-root:%s", policy);
    buf_puts(b, "<dict>\n");
    kv_string(b, "PayloadType", "com.apple.security.root");
    buf_puts(b, "<key>PayloadVersion</key><integer>1</integer>\n");
    kv_string(b, "PayloadIdentifier", "io.attesta.root");
    kv_uuid(b, seed);
    kv_string(b, "PayloadDisplayName", "attesta root CA");
    kv_string(b, "PayloadCertificateFileName", "attesta-root.cer");
    buf_printf(b, "<key>PayloadContent</key><data>%s</data>\n", b64);
    buf_puts(b, "</dict>\n");
    free(b64);
    free(seed);
}

static void acme_payload(struct buf *b, const struct profile_opts *o, const char *directory)
{
    char *seed = xasprintf("attesta-acme:%s", directory);
    buf_puts(b, "<dict>\n");
    kv_string(b, "PayloadType", "com.apple.security.acme");
    buf_puts(b, "<key>PayloadVersion</key><integer>1</integer>\n");
    kv_string(b, "PayloadIdentifier", "io.attesta.acme");
    kv_uuid(b, seed);
    kv_string(b, "PayloadDisplayName", "attesta device certificate");
    kv_string(b, "DirectoryURL", directory);
    kv_string(b, "ClientIdentifier", o->client_id);
    kv_string(b, "KeyType", "ECSECPrimeRandom");
    buf_printf(b, "<key>KeySize</key><integer>%lld</integer>\n", o->key_size);
    buf_puts(b, "<key>HardwareBound</key><true/>\n<key>Attest</key><true/>\n");
    buf_puts(b, "<key>Subject</key><array>");
    if (o->org != NULL) {
        buf_puts(b, "<array><array><string>O</string><string>");
        xml_text(b, o->org);
        buf_puts(b, "</string></array></array>");
    }
    buf_puts(b, "<array><array><string>CN</string><string>");
    xml_text(b, o->client_id);
    buf_puts(b, "</string></array></array></array>\n");
    buf_puts(b, "<key>UsageFlags</key><integer>1</integer>\n");
    buf_puts(b, "<key>ExtendedKeyUsage</key><array><string>1.3.6.1.5.5.7.3.2</string></array>\n");
    buf_puts(b, "</dict>\n");
    free(seed);
}

static int profile_write(const struct cfg *cfg, const struct cfg_policy *pol,
                         const struct profile_opts *o, char err[ERR_LEN])
{
    struct buf b = {0};
    unsigned char *der = NULL;
    size_t derlen = 0;
    char *root_path = ca_root_path(cfg, pol), *directory = NULL, *seed = NULL;
    int rc = -1;
    if (root_der(root_path, &der, &derlen, err) != 0)
        goto out;
    if (cfg->server.base_url != NULL)
        directory = xasprintf("%s/acme/%s/directory", cfg->server.base_url, pol->name);
    else
        directory = xasprintf("https://%s/acme/%s/directory", cfg->server.listen, pol->name);
    seed = xasprintf("attesta-profile:%s", directory);
    buf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
                 "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
                 "<plist version=\"1.0\">\n<dict>\n<key>PayloadContent</key>\n<array>\n");
    root_payload(&b, pol->name, der, derlen);
    acme_payload(&b, o, directory);
    buf_puts(&b, "</array>\n");
    kv_string(&b, "PayloadDisplayName", "attesta device certificate");
    kv_string(&b, "PayloadIdentifier", "io.attesta.profile");
    kv_string(&b, "PayloadType", "Configuration");
    kv_uuid(&b, seed);
    buf_puts(&b, "<key>PayloadVersion</key><integer>1</integer>\n</dict>\n</plist>\n");
    FILE *fp = o->out != NULL ? fopen(o->out, "we") : stdout;
    if (fp == NULL) {
        snprintf(err, ERR_LEN, "cannot create %s", o->out);
        goto out;
    }
    size_t wrote = fwrite(b.p, 1, b.len, fp);
    if ((fp != stdout ? fclose(fp) : fflush(fp)) != 0 || wrote != b.len) {
        snprintf(err, ERR_LEN, "cannot write the profile");
        goto out;
    }
    rc = 0;
out:
    buf_free(&b);
    free(der);
    free(root_path);
    free(directory);
    free(seed);
    return rc;
}

static void profile_usage(void)
{
    fprintf(stderr, "usage: attesta profile --policy NAME [-c FILE] [--client-identifier VAR]\n"
                    "       [--key-size 256|384] [--organization O] [--out FILE.mobileconfig]\n"
                    "VAR is your MDM's serial-number variable (default $SERIALNUMBER).\n");
}

int srv_cmd_profile(int argc, char **argv)
{
    static const struct option opts[] = {
        {"policy", required_argument, NULL, 'p'},
        {"client-identifier", required_argument, NULL, 'i'},
        {"key-size", required_argument, NULL, 'k'},
        {"organization", required_argument, NULL, 'O'},
        {"out", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    struct profile_opts o = {.client_id = "$SERIALNUMBER", .key_size = 384};
    char err[CFG_ERR_LEN];
    int c, rc = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o.config = optarg; break;
        case 'p': o.policy = optarg; break;
        case 'i': o.client_id = optarg; break;
        case 'O': o.org = optarg; break;
        case 'o': o.out = optarg; break;
        case 'k':
            if (str_to_ll(optarg, 256, 384, &o.key_size) != 0 ||
                (o.key_size != 256 && o.key_size != 384)) {
                fprintf(stderr, "attesta profile: --key-size must be 256 or 384 "
                                "(hardware-bound keys)\n");
                return 2;
            }
            break;
        default: profile_usage(); return 2;
        }
    }
    if (o.policy == NULL || optind != argc) {
        profile_usage();
        return 2;
    }
    struct cfg *cfg = cfg_load(o.config, err);
    if (cfg == NULL) {
        fprintf(stderr, "attesta profile: %s\n", err);
        return 1;
    }
    const struct cfg_policy *pol = cfg_policy_find(cfg, o.policy);
    if (pol == NULL) {
        fprintf(stderr, "attesta profile: no enrollment policy \"%s\"\n", o.policy);
    } else if ((pol->challenges & CFG_CH_DEVICE_ATTEST01) == 0) {
        fprintf(stderr, "attesta profile: policy \"%s\" does not offer device-attest-01\n",
                o.policy);
    } else if (profile_write(cfg, pol, &o, err) != 0) {
        fprintf(stderr, "attesta profile: %s\n", err);
    } else {
        rc = 0;
    }
    cfg_free(cfg);
    return rc;
}
