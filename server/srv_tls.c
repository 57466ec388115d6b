/*
 * srv_tls.c: the listener's SSL_CTX. One context shared by every loop
 * (OpenSSL 3 contexts are thread-safe once configured); per-connection SSL
 * objects are made in srv_http.c.
 */
#include "server/srv_plane.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static void ssl_err(char err[ERR_LEN], const char *what, const char *path)
{
    char ebuf[160] = "";
    unsigned long e = ERR_get_error();
    if (e != 0)
        ERR_error_string_n(e, ebuf, sizeof(ebuf));
    ERR_clear_error();
    snprintf(err, ERR_LEN, "tls: %s %s: %s", what, path, ebuf);
}

/*
 * TLS 1.2 suites as RFC 9325 §4.2 (BCP 195) recommends: ECDHE for forward
 * secrecy and AEAD only, so no CBC, SHA-1 MAC or static-RSA key exchange.
 * ECDSA first, as the generated listener key is P-256 (every ACME client and
 * Apple device offers ECDHE-ECDSA with AES-GCM); the RSA forms serve an RSA
 * certificate configured in server.tls_cert. TLS 1.3 keeps OpenSSL's default
 * suites, all of which are AEAD.
 */
static const char tls12_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305";

/*
 * Offers HTTP/1.1 only; a client that asks for anything else gets no ALPN.
 * In particular "acme-tls/1" is never selected (RFC 8737 §4): it belongs to
 * tls-alpn-01 responders, not to the ACME server.
 */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char h11[] = "\x08http/1.1";
    unsigned char *sel = NULL;

    if (SSL_select_next_proto(&sel, outlen, h11, sizeof(h11) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* The same rule pki_key_load applies to CA keys, for a clear message up front. */
static int key_mode_ok(const char *path, char err[ERR_LEN])
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, ERR_LEN, "tls: key file %s: %s", path, strerror(errno));
        return -1;
    }
    if ((st.st_mode & 077) != 0) {
        snprintf(err, ERR_LEN, "tls: key file %s has mode 0%o; must be 0600", path,
                 (unsigned)(st.st_mode & 0777));
        return -1;
    }
    return 0;
}

SSL_CTX *srv_tls_ctx_new(const char *cert_path, const char *key_path, char err[ERR_LEN])
{
    SSL_CTX *ctx = NULL;

    if (key_mode_ok(key_path, err) != 0)
        goto fail;
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        ssl_err(err, "SSL_CTX_new", "");
        goto fail;
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        ssl_err(err, "SSL_CTX_set_min_proto_version", "");
        goto fail;
    }
    if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1) {
        ssl_err(err, "SSL_CTX_set_cipher_list", "");
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_NO_COMPRESSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
        ssl_err(err, "cannot load certificate", cert_path);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
        ssl_err(err, "cannot load key", key_path);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_err(err, "key does not match certificate", key_path);
        goto fail;
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    /*
     * TLS 1.3 sends two session tickets per handshake by default; each is a
     * serialised, encrypted session and a record of its own. A device that
     * reconnects needs one to resume, so the second is pure cost per enrollment.
     */
    if (SSL_CTX_set_num_tickets(ctx, 1) != 1) {
        ssl_err(err, "SSL_CTX_set_num_tickets", "");
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}
