/* data/file.c: opening files to read, shared by every reader (IDX, CSV, model files), so
 * that none of them blocks on a FIFO, reads a device or takes a directory for a file. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tapegrad.h"

/* Declared where they are used (data/idx.c, data/csv.c, nn/io.c). */
int tg_file_open(const char *path, uint64_t *size, tg_status *st);
int tg_file_read(int fd, void *buf, size_t n, size_t *got);
int tg_file_slurp(const char *path, uint64_t max, unsigned char **out, size_t *len, tg_status *st);

static const char *kind(mode_t m)
{
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

/* Opens path to read and returns the descriptor (its size in *size), or a negative TG_EIO
 * with st filled. Anything but a regular file is refused before it is opened (opening a
 * device can do things) and again after, on what was opened: the open itself cannot block
 * (O_NONBLOCK, cleared once the file is known to be regular). */
int tg_file_open(const char *path, uint64_t *size, tg_status *st)
{
    struct stat before, sb;
    if (stat(path, &before))
        return tg_status_set(st, TG_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(before.st_mode))
        return tg_status_set(st, TG_EIO, "%s: not a regular file (%s)", path, kind(before.st_mode));
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return tg_status_set(st, TG_EIO, "%s: cannot open: %s", path, strerror(errno));
    int flags = fcntl(fd, F_GETFL);
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) || sb.st_dev != before.st_dev ||
        sb.st_ino != before.st_ino || flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)) {
        close(fd);
        return tg_status_set(st, TG_EIO, "%s: not a regular file (it changed while being opened)",
                             path);
    }
    *size = (uint64_t)sb.st_size;
    return fd;
}

/* Reads up to n bytes into buf; *got < n only at the end of the file. 0, or -1 with errno. */
int tg_file_read(int fd, void *buf, size_t n, size_t *got)
{
    size_t have = 0;
    while (have < n) {
        size_t chunk = n - have > ((size_t)1 << 30) ? (size_t)1 << 30 : n - have;
        ssize_t r = read(fd, (char *)buf + have, chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            *got = have;
            return -1;
        }
        if (r == 0) break;
        have += (size_t)r;
    }
    *got = have;
    return 0;
}

/* The whole regular file path (at most max bytes) in *out, malloc'd, with a NUL after its
 * len bytes. A negative TG_E... code with st filled on error; *out untouched. */
int tg_file_slurp(const char *path, uint64_t max, unsigned char **out, size_t *len, tg_status *st)
{
    uint64_t size = 0;
    int fd = tg_file_open(path, &size, st);
    if (fd < 0) return fd;
    if (size > max) {
        close(fd);
        return tg_status_set(st, TG_EFORMAT,
                             "%s: %llu bytes, more than the %llu GiB this reader "
                             "takes",
                             path, (unsigned long long)size, (unsigned long long)(max >> 30));
    }
    size_t n = (size_t)size, got;
    unsigned char *p = malloc(n + 1);
    if (!p) {
        close(fd);
        return tg_status_set(st, TG_ENOMEM, "%s: out of memory for %zu bytes", path, n);
    }
    unsigned char extra;
    int rc = tg_file_read(fd, p, n, &got);
    if (rc)
        rc = tg_status_set(st, TG_EIO, "%s: read error at offset %zu: %s", path, got,
                           strerror(errno));
    else if (got != n)
        rc = tg_status_set(st, TG_EIO, "%s: read %zu of %zu bytes (the file shrank)", path, got, n);
    else if (read(fd, &extra, 1) > 0)
        rc = tg_status_set(st, TG_EIO, "%s: the file grew while being read", path);
    close(fd);
    if (rc) {
        free(p);
        return rc;
    }
    p[n] = '\0';
    *out = p, *len = n;
    return TG_OK;
}
