/*
 * nonce_state.c: the nonce state across a graceful restart, without a store
 * write per nonce. At graceful shutdown, once nothing can issue or spend a
 * nonce, the key, the next counter and the bitmap of unused counters go to
 * <data_dir>/nonces.state; the next start adopts them.
 *
 * Why no nonce is ever accepted twice:
 * - The file is consumed exactly once. Start-up reads it, unlinks it and
 *   fsyncs the directory, and adopts it only when both succeeded. From then
 *   on a crash (SIGKILL, power loss) leaves no file, the start after it draws
 *   a fresh key and every earlier nonce is refused: a state already served
 *   from is never loaded again. When the removal fails the file is not
 *   adopted either.
 * - The snapshot is taken after the event loops are joined and the worker
 *   pool has drained, so no nonce is issued or spent after it: a nonce spent
 *   before the shutdown is clear in the saved bitmap.
 * - Counting resumes at the saved `next`, so no counter is issued twice under
 *   one key; a smaller window keeps only the counters it still covers.
 * A file that is malformed in any way is refused and removed, and the server
 * starts with a fresh key: the worst case is the badNonce retry a restart
 * always cost.
 *
 * Layout (integers big-endian), exactly STATE_HDR_LEN + window / 8 bytes:
 *   0 magic "ATNONCE\n" | 8 version u32 | 12 key length u32 (32) | 16 key
 *   48 next u64 | 56 window u64 | 64 bitmap length u64 (window / 8) | 72 bitmap,
 *   64-bit words in order, each big-endian, bit (c % window) set while c is unused.
 */
#include "acme/acme_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_FILE "nonces.state"
#define STATE_MAGIC "ATNONCE\n"
#define STATE_VERSION 1
#define STATE_KEY_LEN 32
#define STATE_HDR_LEN 72
#define STATE_MAX_LEN (STATE_HDR_LEN + ACME_NONCE_MAX_WINDOW / 8)
/* Far from wrapping: a counter that wrapped would reissue old values under the same key. */
#define STATE_MAX_NEXT ((uint64_t)1 << 62)

_Static_assert(sizeof(((struct acme_nonce_snap *)0)->key) == STATE_KEY_LEN, "key length");
_Static_assert(sizeof(STATE_MAGIC) - 1 == 8, "magic is 8 bytes");

static void
put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
}

static uint64_t
get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

void
acme_nonce_snap_fmt(const struct acme_nonce_snap *snap, unsigned char **out, size_t *len)
{
    size_t nbytes = snap->window / 8, i;
    unsigned char *p = xmalloc(STATE_HDR_LEN + nbytes);

    memcpy(p, STATE_MAGIC, 8);
    put_be(p + 8, STATE_VERSION, 4);
    put_be(p + 12, STATE_KEY_LEN, 4);
    memcpy(p + 16, snap->key, STATE_KEY_LEN);
    put_be(p + 48, snap->next, 8);
    put_be(p + 56, snap->window, 8);
    put_be(p + 64, nbytes, 8);
    for (i = 0; i < snap->window / 64; i++)
        put_be(p + STATE_HDR_LEN + 8 * i, snap->bits[i], 8);
    *out = p;
    *len = STATE_HDR_LEN + nbytes;
}

static bool
is_window(uint64_t w)
{
    return w >= 64 && w <= ACME_NONCE_MAX_WINDOW && (w & (w - 1)) == 0;
}

int
acme_nonce_snap_parse(const char *name, const unsigned char *p, size_t len,
                      struct acme_nonce_snap *snap, char err[ERR_LEN])
{
    uint64_t window, next;
    size_t i;

    memset(snap, 0, sizeof(*snap));
    if (len < STATE_HDR_LEN || memcmp(p, STATE_MAGIC, 8) != 0) {
        snprintf(err, ERR_LEN, "%s: not a nonce state file (%zu bytes)", name, len);
        return -1;
    }
    if (get_be(p + 8, 4) != STATE_VERSION || get_be(p + 12, 4) != STATE_KEY_LEN) {
        snprintf(err, ERR_LEN, "%s: version %u with a %u-byte key, want %d and %d", name,
                 (unsigned)get_be(p + 8, 4), (unsigned)get_be(p + 12, 4), STATE_VERSION,
                 STATE_KEY_LEN);
        return -1;
    }
    next = get_be(p + 48, 8);
    window = get_be(p + 56, 8);
    if (next < 1 || next > STATE_MAX_NEXT || !is_window(window)) {
        snprintf(err, ERR_LEN, "%s: counter or window out of range", name);
        return -1;
    }
    if (get_be(p + 64, 8) != window / 8 || len != STATE_HDR_LEN + window / 8) {
        snprintf(err, ERR_LEN, "%s: %zu bytes, want %zu for a window of %zu", name, len,
                 (size_t)(STATE_HDR_LEN + window / 8), (size_t)window);
        return -1;
    }
    memcpy(snap->key, p + 16, STATE_KEY_LEN);
    snap->next = next;
    snap->window = (size_t)window;
    snap->bits = xmalloc(snap->window / 8);
    for (i = 0; i < snap->window / 64; i++)
        snap->bits[i] = get_be(p + STATE_HDR_LEN + 8 * i, 8);
    return 0;
}

int
acme_nonce_state_save(struct acme_nonces *n, const char *path, size_t *unused, char err[ERR_LEN])
{
    struct acme_nonce_snap snap = {0};
    unsigned char *data = NULL;
    size_t len = 0, i;
    int rc;

    acme_nonces_snapshot(n, &snap);
    *unused = 0;
    for (i = 0; i < snap.window / 64; i++)
        *unused += (size_t)__builtin_popcountll(snap.bits[i]);
    acme_nonce_snap_fmt(&snap, &data, &len);
    rc = file_write_atomic(path, data, len, 0600, err);
    secure_wipe(data, len);
    free(data);
    acme_nonce_snap_clear(&snap);
    return rc;
}

int
acme_nonce_state_restore(struct acme_nonces *n, const char *path, size_t *carried,
                         char err[ERR_LEN])
{
    struct acme_nonce_snap snap = {0};
    char *data = NULL, rerr[ERR_LEN] = "";
    size_t len = 0;
    struct stat st;
    int rc = -1, rd;

    *carried = 0;
    /* A save cut short by a crash leaves a temporary copy holding the key. */
    if (file_remove_stale_tmp(path) > 0)
        log_warn("acme", "nonces: removed the unfinished copy of %s a crash left", path);
    if (lstat(path, &st) != 0 && errno == ENOENT)
        return 0;
    rd = file_read(path, STATE_MAX_LEN, true, &data, &len, rerr);
    /* Gone for good before it is trusted: a crash after adoption must find nothing to reload. */
    if (unlink(path) != 0) {
        snprintf(err, ERR_LEN, "cannot remove %s: %s", path, strerror(errno));
        goto out;
    }
    if (file_fsync_dir(path, err) != 0)
        goto out;
    if (rd != 0) {
        memcpy(err, rerr, ERR_LEN);
        goto out;
    }
    if (acme_nonce_snap_parse(path, (const unsigned char *)data, len, &snap, err) != 0)
        goto out;
    if (acme_nonces_adopt(n, &snap, carried) != 0) {
        snprintf(err, ERR_LEN, "%s: cannot set up the saved key", path);
        goto out;
    }
    rc = 1;
out:
    acme_nonce_snap_clear(&snap);
    if (data != NULL)
        secure_wipe(data, len);
    free(data);
    return rc;
}

void
acme_nonces_restore(struct acme_ctx *ctx)
{
    char *path = xasprintf("%s/" STATE_FILE, ctx->cfg->server.data_dir);
    char err[ERR_LEN] = "";
    size_t carried = 0;
    int rc = acme_nonce_state_restore(ctx->nonces, path, &carried, err);

    if (rc > 0)
        log_info("acme", "nonces: %zu unused carried over from %s", carried, path);
    else if (rc < 0)
        log_warn("acme", "nonces: %s; starting with a fresh key", err);
    free(path);
}

int
acme_nonces_save(struct acme_ctx *ctx, char err[ERR_LEN])
{
    char *path = xasprintf("%s/" STATE_FILE, ctx->cfg->server.data_dir);
    size_t unused = 0;
    int rc = acme_nonce_state_save(ctx->nonces, path, &unused, err);

    if (rc == 0)
        log_info("acme", "nonces: %zu unused saved to %s for the next start", unused, path);
    free(path);
    return rc;
}
