/*
 * srv_serve_setup.c: what `attesta serve` (and the admin subcommands) set up
 * before any request: the data directory, the store, the CAs (generating
 * development CAs on first start) and the listener's TLS certificate.
 */
#include "server/srv_serve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "pki/pki.h"
#include "store/store.h"

int srv_mkdir_p(const char *path, mode_t mode, char err[ERR_LEN])
{
    char *p = xstrdup(path);
    int rc = -1;

    for (char *s = p + 1;; s++) {
        char c = *s;
        if (c != '/' && c != '\0')
            continue;
        *s = '\0';
        if (mkdir(p, mode) != 0 && errno != EEXIST) {
            snprintf(err, ERR_LEN, "mkdir %s: %s", p, strerror(errno));
            goto out;
        }
        *s = c;
        if (c == '\0')
            break;
    }
    rc = 0;
out:
    free(p);
    return rc;
}

/* The data dir holds CA keys and the database: say so when others can read it. */
static void warn_if_open(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0 && (st.st_mode & 0077) != 0)
        log_warn("server", "data directory %s has mode %04o; 0700 keeps its keys and database "
                 "private", dir, (unsigned)(st.st_mode & 07777));
}

struct store *srv_store_open(const struct cfg *cfg, char err[ERR_LEN])
{
    struct store *st = NULL;
    char *path = NULL;

    if (srv_mkdir_p(cfg->server.data_dir, 0700, err) != 0)
        return NULL;
    warn_if_open(cfg->server.data_dir);
    if (cfg->storage.driver == CFG_STORE_POSTGRES) {
        const char *dsn = cfg->storage.dsn_env != NULL ? getenv(cfg->storage.dsn_env) : NULL;
        if (dsn == NULL || dsn[0] == '\0') {
            snprintf(err, ERR_LEN, "storage.dsn_env: environment variable %s is not set",
                     cfg->storage.dsn_env != NULL ? cfg->storage.dsn_env : "(none)");
            return NULL;
        }
        return store_open("postgres", dsn, err);
    }
    path = cfg->storage.path != NULL ? xstrdup(cfg->storage.path)
                                     : xasprintf("%s/attesta.db", cfg->server.data_dir);
    st = store_open("sqlite", path, err);
    free(path);
    return st;
}

static struct pki_ca *ca_load_one(const struct cfg *cfg, const struct cfg_ca *c, char err[ERR_LEN])
{
    struct pki_ca *ca = NULL;
    char *dir = NULL, *cert = NULL, *key = NULL, *chain = NULL;
    char sub[ERR_LEN];

    if (c->cert != NULL) {
        ca = pki_ca_load(c->name, c->cert, c->key, c->chain, sub);
        if (ca == NULL)
            snprintf(err, ERR_LEN, "CA %.40s: %.200s", c->name, sub);
        return ca;
    }
    dir = strcmp(c->name, "default") == 0 ? xstrdup(cfg->server.data_dir)
                                          : xasprintf("%s/ca/%s", cfg->server.data_dir, c->name);
    if (srv_mkdir_p(dir, 0700, err) != 0)
        goto out;
    if (pki_ca_init_dir(dir, c->name, sub) != 0) {
        snprintf(err, ERR_LEN, "CA %.40s: %.200s", c->name, sub);
        goto out;
    }
    cert = xasprintf("%s/intermediate.pem", dir);
    key = xasprintf("%s/intermediate.key", dir);
    chain = xasprintf("%s/root.pem", dir);
    ca = pki_ca_load(c->name, cert, key, chain, sub);
    if (ca == NULL)
        snprintf(err, ERR_LEN, "CA %.40s: %.200s", c->name, sub);
out:
    free(dir);
    free(cert);
    free(key);
    free(chain);
    return ca;
}

int srv_cas_load(const struct cfg *cfg, struct pki_ca ***cas, char err[ERR_LEN])
{
    struct pki_ca **v = xcalloc(cfg->ncas + 1, sizeof(*v));

    for (size_t i = 0; i < cfg->ncas; i++) {
        v[i] = ca_load_one(cfg, &cfg->cas[i], err);
        if (v[i] == NULL) {
            srv_cas_free(v, i);
            *cas = NULL;
            return -1;
        }
    }
    *cas = v;
    return 0;
}

void srv_cas_free(struct pki_ca **cas, size_t n)
{
    if (cas == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        pki_ca_free(cas[i]);
    free(cas);
}

const struct pki_ca *srv_cas_default(const struct cfg *cfg, struct pki_ca *const *cas)
{
    for (size_t i = 0; i < cfg->ncas; i++) {
        if (strcmp(cfg->cas[i].name, "default") == 0)
            return cas[i];
    }
    return cfg->ncas > 0 ? cas[0] : NULL;
}

static bool is_wildcard(const char *host)
{
    return host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
}

int srv_tls_files(const struct cfg *cfg, const struct pki_ca *ca, const char *host, char **cert,
                  char **key, char err[ERR_LEN])
{
    const char *names[3] = {"localhost", "127.0.0.1", NULL};
    size_t n = 2;
    char sub[ERR_LEN];

    if (cfg->server.tls_cert != NULL) {
        *cert = xstrdup(cfg->server.tls_cert);
        *key = xstrdup(cfg->server.tls_key != NULL ? cfg->server.tls_key : cfg->server.tls_cert);
        return 0;
    }
    *cert = xasprintf("%s/tls.pem", cfg->server.data_dir);
    *key = xasprintf("%s/tls.key", cfg->server.data_dir);
    if (access(*cert, F_OK) == 0 && access(*key, F_OK) == 0)
        return 0; /* made on an earlier start: keep it, clients may have pinned it */
    if (ca == NULL) {
        snprintf(err, ERR_LEN, "no CA to sign the listener certificate");
        goto fail;
    }
    if (!is_wildcard(host) && strcmp(host, names[0]) != 0 && strcmp(host, names[1]) != 0)
        names[n++] = host;
    if (pki_tls_cert_create(ca, names, n, *cert, *key, sub) != 0) {
        snprintf(err, ERR_LEN, "listener certificate: %.200s", sub);
        goto fail;
    }
    return 0;
fail:
    free(*cert);
    free(*key);
    *cert = *key = NULL;
    return -1;
}

int srv_listen_parse(const char *listen, char **host, int *port, char err[ERR_LEN])
{
    const char *colon = strrchr(listen, ':');
    long long p;
    size_t hlen;
    const char *h = listen;

    if (colon == NULL || str_to_ll(colon + 1, 0, 65535, &p) != 0) {
        snprintf(err, ERR_LEN, "server.listen: expected host:port, got \"%s\"", listen);
        return -1;
    }
    hlen = (size_t)(colon - listen);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    *host = hlen == 0 ? xstrdup("0.0.0.0") : xstrndup(h, hlen);
    *port = (int)p;
    return 0;
}

int srv_admin_open(const char *path, struct cfg **cfg, struct store **st, char *err)
{
    *st = NULL;
    *cfg = cfg_load(path, err);
    if (*cfg == NULL)
        return -1;
    *st = srv_store_open(*cfg, err);
    return *st != NULL ? 0 : -1;
}
