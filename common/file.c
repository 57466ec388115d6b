/*
 * file.c: whole-file I/O for keys and state that must survive a crash intact:
 * atomic replacement (a temporary file fsynced, renamed over the target, then
 * the directory fsynced so the rename itself is durable) and bounded,
 * permission-checked reads that never follow a symbolic link.
 */
#include "common/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int file_fsync_dir(const char *path, char err[ERR_LEN])
{
    const char *slash = strrchr(path, '/');
    char *dir = slash == NULL ? xstrdup(".")
                : slash == path ? xstrdup("/")
                                : xstrndup(path, (size_t)(slash - path));
    int rc = -1, fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0 || fsync(fd) != 0) {
        snprintf(err, ERR_LEN, "cannot fsync directory %s: %s", dir, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(dir);
    return rc;
}

int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                      char err[ERR_LEN])
{
    int rc = -1, fd = -1;
    bool made = false, renamed = false;
    char *tmp = xasprintf("%s.tmp.XXXXXX", path);

    /*
     * mkstemp opens with O_CREAT|O_EXCL, which never follows a symbolic link,
     * and mode 0600, so a key is never briefly readable by others.
     */
    fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, ERR_LEN, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    made = true;
    if (fchmod(fd, mode) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        snprintf(err, ERR_LEN, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        snprintf(err, ERR_LEN, "cannot close %s: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        snprintf(err, ERR_LEN, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto out;
    }
    renamed = true;
    /* Without it a crash may undo the rename; the complete file stays either way. */
    if (file_fsync_dir(path, err) != 0)
        goto out;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (made && !renamed)
        unlink(tmp);
    free(tmp);
    return rc;
}

int file_read(const char *path, size_t max, bool secret, char **out, size_t *len,
              char err[ERR_LEN])
{
    int rc = -1;
    char *p = NULL;
    size_t got = 0;
    struct stat st;
    /* O_NOFOLLOW and fstat on the open descriptor: the checked file is the one read. */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

    *out = NULL;
    *len = 0;
    if (fd < 0) {
        snprintf(err, ERR_LEN, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, ERR_LEN, "%s is not a regular file", path);
        goto out;
    }
    if (secret && (st.st_mode & 077) != 0) {
        snprintf(err, ERR_LEN, "%s has mode %04o; must be 0600", path,
                 (unsigned)(st.st_mode & 07777));
        goto out;
    }
    if ((uintmax_t)st.st_size > max) {
        snprintf(err, ERR_LEN, "%s is larger than %zu bytes", path, max);
        goto out;
    }
    p = xmalloc((size_t)st.st_size + 1);
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, p + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, ERR_LEN, "cannot read %s", path);
            goto out;
        }
        got += (size_t)n;
    }
    p[got] = '\0';
    *out = p;
    *len = got;
    p = NULL;
    rc = 0;
out:
    if (p != NULL) {
        secure_wipe(p, got);
        free(p);
    }
    close(fd);
    return rc;
}

size_t file_remove_stale_tmp(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash == NULL ? xstrdup(".")
                : slash == path ? xstrdup("/")
                                : xstrndup(path, (size_t)(slash - path));
    char *prefix = xasprintf("%s.tmp.", slash == NULL ? path : slash + 1);
    size_t plen = strlen(prefix), removed = 0;
    DIR *d = opendir(dir);
    struct dirent *de;

    while (d != NULL && (de = readdir(d)) != NULL) {
        /* mkstemp's six-character suffix: nothing else in the directory is touched. */
        if (strncmp(de->d_name, prefix, plen) != 0 || strlen(de->d_name) != plen + 6)
            continue;
        char *victim = xasprintf("%s/%s", dir, de->d_name);
        if (unlink(victim) == 0)
            removed++;
        free(victim);
    }
    if (d != NULL)
        closedir(d);
    free(prefix);
    free(dir);
    return removed;
}
