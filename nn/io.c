/* nn/io.c: saving and loading a module's parameters and buffers (format: docs/nn.md).
 *
 *   "TGMODEL\0"  u32 version (1)  u32 dtype (1 f32, 2 f64)  u32 tensor count
 *   u32 meta length, meta bytes
 *   per tensor: u32 ndim, u64 dims[ndim], elements (little-endian IEEE 754)
 *   u32 CRC-32 (zlib) of every byte before it
 *
 * Integers are little-endian. Save writes a temporary file and renames it into place. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "internal.h"

#define MAGIC "TGMODEL"
#define VERSION 1u
#define MAX_TENSORS 4096
#define MAX_META 4096

static bool little_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* ---- a growing byte buffer ---- */
typedef struct buf {
    unsigned char *p;
    size_t n, cap;
    bool oom;
} buf;

static void put(buf *b, const void *src, size_t len)
{
    if (b->oom) return;
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + len) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, src, len);
    b->n += len;
}

static void put_u32(buf *b, uint32_t v)
{
    unsigned char c[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    put(b, c, 4);
}

static void put_u64(buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p) { return get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }

static uint32_t dtype_code(tg_dtype dt) { return dt == TG_F32 ? 1u : 2u; }

/* ---- save ---- */
static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w, n -= (size_t)w;
    }
    return 0;
}

int tg_nn_save_meta(const tg_module *m, const char *path, const char *meta, tg_status *st)
{
    if (!m || !path || !*path) return tg_status_set(st, TG_EARG, "tg_nn_save: NULL module or path");
    if (!little_endian())
        return tg_status_set(st, TG_ESTATE, "tg_nn_save: big-endian hosts are not supported");
    size_t meta_len = meta ? strlen(meta) : 0;
    if (meta_len > MAX_META)
        return tg_status_set(st, TG_EARG, "tg_nn_save: description longer than %d bytes", MAX_META);
    tg_tensor *ts[MAX_TENSORS];
    int n = tg_nn_collect(m, true, ts, MAX_TENSORS);
    if (n > MAX_TENSORS) return tg_status_set(st, TG_EARG, "tg_nn_save: more than %d tensors", MAX_TENSORS);
    buf b = {0};
    put(&b, MAGIC, 8);
    put_u32(&b, VERSION);
    put_u32(&b, dtype_code(m->dtype));
    put_u32(&b, (uint32_t)n);
    put_u32(&b, (uint32_t)meta_len);
    if (meta_len) put(&b, meta, meta_len);
    for (int i = 0; i < n; i++) {
        if (tg_tensor_dtype(ts[i]) != m->dtype) {
            free(b.p);
            return tg_status_set(st, TG_EDTYPE, "tg_nn_save: the module mixes dtypes");
        }
        put_u32(&b, (uint32_t)tg_tensor_ndim(ts[i]));
        for (int d = 0; d < tg_tensor_ndim(ts[i]); d++) put_u64(&b, (uint64_t)tg_tensor_dim(ts[i], d));
        put(&b, tg_data(ts[i]), (size_t)tg_tensor_numel(ts[i]) * tg_dtype_size(m->dtype));
    }
    put_u32(&b, (uint32_t)crc32(0L, b.p, (uInt)b.n));
    if (b.oom) {
        free(b.p);
        return tg_status_set(st, TG_ENOMEM, "tg_nn_save: out of memory");
    }
    size_t len = strlen(path);
    char *tmp = malloc(len + 16);
    if (!tmp) {
        free(b.p);
        return tg_status_set(st, TG_ENOMEM, "tg_nn_save: out of memory");
    }
    snprintf(tmp, len + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp), rc = TG_OK;
    if (fd < 0) {
        rc = tg_status_set(st, TG_EIO, "tg_nn_save: cannot create a file beside %s: %s", path,
                           strerror(errno));
    } else {
        if (fchmod(fd, 0644) || write_all(fd, b.p, b.n) || fsync(fd))
            rc = tg_status_set(st, TG_EIO, "tg_nn_save: cannot write %s: %s", tmp, strerror(errno));
        if (close(fd) && !rc)
            rc = tg_status_set(st, TG_EIO, "tg_nn_save: cannot write %s: %s", tmp, strerror(errno));
        if (!rc && rename(tmp, path))
            rc = tg_status_set(st, TG_EIO, "tg_nn_save: cannot rename %s to %s: %s", tmp, path,
                               strerror(errno));
        if (rc) unlink(tmp);
    }
    free(tmp);
    free(b.p);
    return rc;
}

int tg_nn_save(const tg_module *m, const char *path, tg_status *st)
{
    return tg_nn_save_meta(m, path, NULL, st);
}

/* ---- load ---- */
/* The whole file, or NULL with st filled. Refuses files larger than max. */
static unsigned char *read_file(const char *path, size_t max, size_t *len, tg_status *st)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        tg_status_set(st, TG_EIO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > max) {
        tg_status_set(st, TG_EFORMAT, "%s: not a regular file of at most %zu bytes", path, max);
        fclose(f);
        return NULL;
    }
    size_t n = (size_t)sb.st_size;
    unsigned char *p = malloc(n ? n : 1);
    if (!p) {
        tg_status_set(st, TG_ENOMEM, "%s: out of memory", path);
        fclose(f);
        return NULL;
    }
    if (fread(p, 1, n, f) != n) {
        tg_status_set(st, TG_EIO, "%s: read error", path);
        free(p);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *len = n;
    return p;
}

/* A parsed file: header fields and where each tensor's data starts. */
typedef struct model_file {
    unsigned char *p;
    size_t len;
    uint32_t dtype, count, meta_len;
    const char *meta;
    size_t body; /* offset of the first tensor */
} model_file;

/* Reads and checks everything that does not depend on the module. */
static int parse(const char *path, model_file *mf, tg_status *st)
{
    memset(mf, 0, sizeof *mf);
    if (!path) return tg_status_set(st, TG_EARG, "tg_nn_load: path is NULL");
    mf->p = read_file(path, (size_t)1 << 34, &mf->len, st);
    if (!mf->p) return st ? st->code : TG_EIO;
    const unsigned char *p = mf->p;
    size_t n = mf->len;
    int rc = TG_OK;
    if (n < 28 || memcmp(p, MAGIC, 8) != 0)
        rc = tg_status_set(st, TG_EFORMAT, "%s: not a tapegrad model (bad magic)", path);
    else if (get_u32(p + n - 4) != (uint32_t)crc32(0L, p, (uInt)(n - 4)))
        rc = tg_status_set(st, TG_EFORMAT, "%s: checksum mismatch: the file is truncated or corrupted", path);
    else if (get_u32(p + 8) != VERSION)
        rc = tg_status_set(st, TG_EFORMAT, "%s: format version %u, this tapegrad reads %u", path,
                           get_u32(p + 8), VERSION);
    else if ((mf->dtype = get_u32(p + 12)) != 1 && mf->dtype != 2)
        rc = tg_status_set(st, TG_EFORMAT, "%s: unknown dtype code %u", path, mf->dtype);
    else if ((mf->count = get_u32(p + 16)) > MAX_TENSORS)
        rc = tg_status_set(st, TG_EFORMAT, "%s: %u tensors is too many", path, mf->count);
    else if ((mf->meta_len = get_u32(p + 20)) > MAX_META || 24 + (size_t)mf->meta_len + 4 > n)
        rc = tg_status_set(st, TG_EFORMAT, "%s: bad description length %u", path, mf->meta_len);
    if (rc) {
        free(mf->p);
        mf->p = NULL;
        return rc;
    }
    mf->meta = (const char *)p + 24;
    mf->body = 24 + mf->meta_len;
    return TG_OK;
}

int tg_nn_read_meta(const char *path, char *out, size_t size, tg_status *st)
{
    model_file mf;
    if (!out || !size) return tg_status_set(st, TG_EARG, "tg_nn_read_meta: no buffer");
    int rc = parse(path, &mf, st);
    if (rc) return rc;
    size_t k = mf.meta_len < size - 1 ? mf.meta_len : size - 1;
    memcpy(out, mf.meta, k);
    out[k] = '\0';
    free(mf.p);
    return TG_OK;
}

int tg_nn_load(tg_module *m, const char *path, tg_status *st)
{
    if (!m) return tg_status_set(st, TG_EARG, "tg_nn_load: module is NULL");
    if (!little_endian())
        return tg_status_set(st, TG_ESTATE, "tg_nn_load: big-endian hosts are not supported");
    model_file mf;
    int rc = parse(path, &mf, st);
    if (rc) return rc;
    tg_tensor *ts[MAX_TENSORS];
    int n = tg_nn_collect(m, true, ts, MAX_TENSORS);
    size_t es = tg_dtype_size(m->dtype), off = mf.body, end = mf.len - 4;
    size_t *data = malloc(sizeof(size_t) * (size_t)(n ? n : 1));
    if (!data) rc = tg_status_set(st, TG_ENOMEM, "%s: out of memory", path);
    else if (mf.dtype != dtype_code(m->dtype))
        rc = tg_status_set(st, TG_EDTYPE, "%s: holds %s tensors, the model is %s", path,
                           mf.dtype == 1 ? "f32" : "f64", tg_dtype_name(m->dtype));
    else if ((int)mf.count != n)
        rc = tg_status_set(st, TG_ESHAPE, "%s: holds %u tensors, the model has %d", path, mf.count, n);
    /* Every tensor's header against the module, before anything is written. */
    for (int i = 0; !rc && i < n; i++) {
        if (off + 4 > end) {
            rc = tg_status_set(st, TG_EFORMAT, "%s: truncated at tensor %d", path, i);
            break;
        }
        uint32_t nd = get_u32(mf.p + off);
        off += 4;
        if (nd != (uint32_t)tg_tensor_ndim(ts[i]) || off + 8 * (size_t)nd > end) {
            rc = tg_status_set(st, TG_ESHAPE, "%s: tensor %d has %u dimensions, the model's has %d",
                               path, i, nd, tg_tensor_ndim(ts[i]));
            break;
        }
        for (uint32_t d = 0; d < nd && !rc; d++, off += 8)
            if (get_u64(mf.p + off) != (uint64_t)tg_tensor_dim(ts[i], (int)d)) {
                char s[64];
                rc = tg_status_set(st, TG_ESHAPE, "%s: tensor %d: dimension %u is %llu, the model's "
                                   "tensor is %s", path, i, d, (unsigned long long)get_u64(mf.p + off),
                                   tg_shape_str(ts[i], s, sizeof s));
            }
        size_t bytes = (size_t)tg_tensor_numel(ts[i]) * es;
        if (!rc && off + bytes > end) rc = tg_status_set(st, TG_EFORMAT, "%s: truncated in tensor %d", path, i);
        if (!rc) data[i] = off, off += bytes;
    }
    if (!rc && off != end) rc = tg_status_set(st, TG_EFORMAT, "%s: %zu bytes after the last tensor", path, end - off);
    for (int i = 0; !rc && i < n; i++)
        memcpy(tg_data(ts[i]), mf.p + data[i], (size_t)tg_tensor_numel(ts[i]) * es);
    free(data);
    free(mf.p);
    return rc;
}
