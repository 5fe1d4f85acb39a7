/* data/idx.c: IDX files (the MNIST format), plain or gzip, inflated here through zlib. */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "tapegrad.h"

/* data/file.c */
int tg_file_open(const char *path, uint64_t *size, tg_status *st);
int tg_file_read(int fd, void *buf, size_t n, size_t *got);

/* Decompressed data is read in steps of this size into a buffer grown as it arrives, so a
 * gzip header that lies about its size costs at most twice what the stream really holds. */
#ifndef TG_IDX_READ_STEP
#define TG_IDX_READ_STEP (1 << 24) /* the fuzz build makes it tiny to exercise the growth */
#endif
#define READ_STEP ((size_t)TG_IDX_READ_STEP)
/* The file is read in pieces of this size (as small as READ_STEP in the fuzz build, so that
 * every boundary, a gzip member's end included, falls between two reads somewhere). */
#define IN_STEP (READ_STEP < ((size_t)1 << 18) ? READ_STEP : (size_t)1 << 18)
/* deflate's best ratio is about 1032:1: a gzip file whose header promises more is a lie. */
#define GZ_MAX_RATIO 1100
/* The smallest magnitude that rounds to infinity as an f32: FLT_MAX and half an ulp. */
#define F32_INF_FROM (0x1p128 - 0x1p103)

typedef struct idx_type {
    unsigned code;
    int size;
    const char *name;
} idx_type;

static const idx_type TYPES[] = {{0x08, 1, "ubyte"}, {0x09, 1, "byte"},  {0x0B, 2, "short"},
                                 {0x0C, 4, "int"},   {0x0D, 4, "float"}, {0x0E, 8, "double"}};

/* Big-endian unsigned integer of k bytes at p. */
static uint64_t be(const unsigned char *p, int k)
{
    uint64_t v = 0;
    for (int i = 0; i < k; i++) v = v << 8 | p[i];
    return v;
}

/* Element i of big-endian data of type t, as a double. */
static double element(const unsigned char *p, const idx_type *t, int64_t i)
{
    const unsigned char *q = p + i * t->size;
    uint64_t v = be(q, t->size);
    switch (t->code) {
    case 0x08: return (double)q[0];
    case 0x09: return (double)(int8_t)q[0];
    case 0x0B: return (double)(int16_t)(uint16_t)v;
    case 0x0C: return (double)(int32_t)(uint32_t)v;
    case 0x0D: {
        uint32_t u = (uint32_t)v;
        float f;
        memcpy(&f, &u, 4);
        return (double)f;
    }
    default: {
        double d;
        memcpy(&d, &v, 8);
        return d;
    }
    }
}

/* out[i] = element i · scale for i < n. Unsigned bytes (images, the big files) go through a
 * 256-entry table; the other types through the generic decoder. */
#define CONVERT(T)                                                                                 \
    static void convert_##T(T *out, const unsigned char *p, const idx_type *t, int64_t n,          \
                            double scale)                                                          \
    {                                                                                              \
        if (t->code == 0x08) {                                                                     \
            T lut[256];                                                                            \
            for (int k = 0; k < 256; k++) lut[k] = (T)((double)k * scale);                         \
            for (int64_t i = 0; i < n; i++) out[i] = lut[p[i]];                                    \
        } else {                                                                                   \
            for (int64_t i = 0; i < n; i++) out[i] = (T)(element(p, t, i) * scale);                \
        }                                                                                          \
    }
CONVERT(float)
CONVERT(double)
#undef CONVERT

/* ---- the bytes of an IDX file: a plain file, or gzip members inflated as they are read ---- */
typedef struct source {
    const char *path;
    int fd;
    bool gz, member_done, eof;
    z_stream z;         /* next_in, avail_in: the unread part of in (plain files too) */
    unsigned char *in;  /* IN_STEP bytes */
    uint64_t pos, size; /* bytes of the file read into in so far; the file's size */
} source;

/* Offset in the file of the next byte not yet consumed. */
static unsigned long long consumed(const source *s)
{
    return (unsigned long long)(s->pos - s->z.avail_in);
}

/* Moves the unread bytes to the front of in and reads more after them. */
static int refill(source *s, tg_status *st)
{
    if (s->z.avail_in) memmove(s->in, s->z.next_in, s->z.avail_in);
    size_t got;
    if (tg_file_read(s->fd, s->in + s->z.avail_in, IN_STEP - s->z.avail_in, &got))
        return tg_status_set(st, TG_EIO, "%s: offset %llu: read error: %s", s->path,
                             (unsigned long long)s->pos + got, strerror(errno));
    s->eof = got < IN_STEP - s->z.avail_in;
    s->z.next_in = s->in, s->z.avail_in += (uInt)got, s->pos += got;
    return TG_OK;
}

static bool gz_magic(const source *s)
{
    return s->z.avail_in >= 2 && s->z.next_in[0] == 0x1f && s->z.next_in[1] == 0x8b;
}

/* Opens path (a regular file: data/file.c) and tells plain from gzip by the magic 1f 8b. */
static int source_open(source *s, const char *path, tg_status *st)
{
    memset(s, 0, sizeof *s);
    s->path = path;
    s->fd = tg_file_open(path, &s->size, st);
    if (s->fd < 0) return s->fd;
    s->in = malloc(IN_STEP);
    if (!s->in) return tg_status_set(st, TG_ENOMEM, "%s: out of memory", path);
    int rc = refill(s, st);
    while (!rc && s->z.avail_in < 2 && !s->eof) rc = refill(s, st);
    if (rc || !gz_magic(s)) return rc;
    s->gz = true;
    if (inflateInit2(&s->z, 16 + MAX_WBITS) != Z_OK) {
        s->gz = false; /* nothing to end */
        return tg_status_set(st, TG_ENOMEM, "%s: out of memory for zlib", path);
    }
    return TG_OK;
}

static void source_close(source *s)
{
    if (s->gz) inflateEnd(&s->z);
    free(s->in);
    if (s->fd >= 0) close(s->fd);
}

/* Reads up to n bytes of the data into dst; *got < n only at its end. A gzip file ends
 * after a complete member (several, as `cat a.gz b.gz` makes, are one stream); a file
 * that ends inside one, a corrupt member (zlib checks every member's CRC-32 and length) and
 * bytes after the last member that are not another are errors naming the file's offset. */
static int source_read(source *s, unsigned char *dst, size_t n, size_t *got, tg_status *st)
{
    size_t done = 0;
    int rc = TG_OK;
    while (!rc && done < n) {
        if (!s->z.avail_in && !s->eof) {
            rc = refill(s, st);
        } else if (!s->gz) {
            if (!s->z.avail_in) break; /* the end of a plain file */
            size_t k = s->z.avail_in < n - done ? s->z.avail_in : n - done;
            memcpy(dst + done, s->z.next_in, k);
            s->z.next_in += k, s->z.avail_in -= (uInt)k, done += k;
        } else if (s->member_done) {
            if (s->z.avail_in < 2 && !s->eof) rc = refill(s, st);
            else if (!s->z.avail_in) break; /* the end of the gzip stream */
            else if (!gz_magic(s))
                rc =
                    tg_status_set(st, TG_EFORMAT,
                                  "%s: offset %llu of the gzip file: %llu bytes "
                                  "after the end of the gzip stream (not another gzip member)",
                                  s->path, consumed(s),
                                  (unsigned long long)(s->size > consumed(s) ? s->size - consumed(s)
                                                                             : s->z.avail_in));
            else if (inflateReset(&s->z) == Z_OK) s->member_done = false;
            else rc = tg_status_set(st, TG_EFORMAT, "%s: zlib cannot restart", s->path);
        } else if (!s->z.avail_in) {
            rc = tg_status_set(st, TG_EFORMAT,
                               "%s: offset %llu of the gzip file: truncated gzip "
                               "stream (the file ends inside it)",
                               s->path, consumed(s));
        } else {
            /* Z_BUF_ERROR is no input or no room left, which the loop sees to */
            size_t room = n - done < UINT_MAX ? n - done : UINT_MAX;
            s->z.next_out = dst + done, s->z.avail_out = (uInt)room;
            int r = inflate(&s->z, Z_NO_FLUSH);
            done += room - s->z.avail_out;
            if (r == Z_STREAM_END) s->member_done = true;
            else if (r == Z_MEM_ERROR)
                rc = tg_status_set(st, TG_ENOMEM, "%s: out of memory in zlib", s->path);
            else if (r != Z_OK && (r != Z_BUF_ERROR || (s->z.avail_in && s->z.avail_out)))
                rc = tg_status_set(st, TG_EFORMAT,
                                   "%s: offset %llu of the gzip file: corrupt "
                                   "gzip data: %s",
                                   s->path, consumed(s), s->z.msg ? s->z.msg : "zlib error");
        }
    }
    *got = done;
    return rc;
}

/* Reads exactly n bytes of data (after head_bytes of header) into a buffer grown in
 * READ_STEP pieces: the buffer in *out, or a negative code with st filled. */
static int read_data(source *s, size_t n, size_t head_bytes, unsigned char **out, tg_status *st)
{
    size_t have = 0, cap = 0;
    unsigned char *buf = NULL;
    int rc = TG_OK;
    do {
        if (have == cap) {
            size_t want = cap ? cap * 2 : READ_STEP;
            if (want > n || want < cap) want = n;
            unsigned char *nb = realloc(buf, want ? want : 1);
            if (!nb) {
                rc = tg_status_set(st, TG_ENOMEM, "%s: out of memory for %zu bytes", s->path, n);
                break;
            }
            buf = nb, cap = want;
        }
        size_t got;
        rc = source_read(s, buf + have, cap - have, &got, st);
        have += got;
        if (!rc && have < cap)
            rc = tg_status_set(st, TG_EFORMAT,
                               "%s: offset %zu: truncated (the header wants %zu "
                               "bytes of data, the %s has %zu)",
                               s->path, head_bytes + have, n, s->gz ? "gzip stream" : "file", have);
    } while (!rc && have < n);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    return TG_OK;
}

/* The 4-byte magic into head: the element type and the number of dimensions. */
static int idx_read_magic(source *s, unsigned char *head, const idx_type **type, int *nd,
                          tg_status *st)
{
    size_t got = 0;
    int rc = source_read(s, head, 4, &got, st);
    if (rc) return rc;
    if (got != 4) {
        tg_status_set(st, TG_EFORMAT, "%s: offset 0: shorter than the 4-byte IDX magic", s->path);
        return TG_EFORMAT;
    }
    *type = NULL;
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (TYPES[i].code == head[2]) *type = &TYPES[i];
    *nd = head[3];
    if (head[0] || head[1] || !*type || *nd == 0) {
        tg_status_set(st, TG_EFORMAT,
                      "%s: offset 0: bad IDX magic %02x %02x %02x %02x (want 00 00, a type "
                      "code 08 09 0b 0c 0d or 0e, and at least one dimension)",
                      s->path, head[0], head[1], head[2], head[3]);
        return TG_EFORMAT; /* not 0, whatever the analyser assumes of tg_status_set */
    }
    return TG_OK;
}

/* The nd dimension sizes after the magic into head and dims. */
static int idx_read_dims(source *s, unsigned char *head, int nd, int64_t *dims, tg_status *st)
{
    size_t got = 0, want = 4 * (size_t)nd;
    int rc = source_read(s, head + 4, want, &got, st);
    if (rc) return rc;
    if (got != want)
        return tg_status_set(st, TG_EFORMAT, "%s: offset 4: truncated in the %d dimension sizes",
                             s->path, nd);
    for (int i = 0; i < nd; i++) dims[i] = (int64_t)be(head + 4 + 4 * i, 4);
    return TG_OK;
}

/* The bytes of data the dimensions promise, in *bytes, checked against the file size before
 * anything is allocated: the element count is saturated just above what could be real, and
 * a plain file must hold exactly header + data. */
static int idx_data_bytes(const source *s, const idx_type *type, int nd, const int64_t *dims,
                          size_t head_bytes, size_t *bytes, tg_status *st)
{
    uint64_t limit = s->size * (s->gz ? GZ_MAX_RATIO : 1), count = 1;
    for (int i = 0; i < nd; i++) {
        if (dims[i] > 0 && count > (limit + 1) / (uint64_t)dims[i]) count = limit + 1;
        else count *= (uint64_t)dims[i];
    }
    if (count > limit / (uint64_t)type->size)
        return tg_status_set(st, TG_EFORMAT,
                             "%s: offset 4: the header promises more data than "
                             "the file can hold (%d dimensions of %s)",
                             s->path, nd, type->name);
    *bytes = (size_t)count * (size_t)type->size;
    uint64_t want = head_bytes + *bytes, size = s->size;
    if (!s->gz && want != size)
        return tg_status_set(st, TG_EFORMAT,
                             "%s: offset %llu: %s (the header wants %zu bytes of "
                             "data, the file has %llu)",
                             s->path, (unsigned long long)(want < size ? want : size),
                             want < size ? "data after the last element" : "truncated", *bytes,
                             (unsigned long long)(size - head_bytes));
    return TG_OK;
}

/* The [n, rest] shape of the dimensions: the product of the rest can overflow when n == 0
 * (no data bounds it). */
static int idx_shape(const char *path, int nd, const int64_t *dims, int64_t *shape, tg_status *st)
{
    shape[0] = dims[0], shape[1] = 1;
    for (int i = 1; i < nd; i++) {
        if (dims[i] && shape[1] > INT32_MAX / dims[i])
            return tg_status_set(st, TG_EFORMAT, "%s: offset 4: dimension sizes overflow", path);
        shape[1] *= dims[i];
    }
    return TG_OK;
}

/* The stream must end at offset end: this also reads (and zlib checks) the last gzip
 * trailer. */
static int idx_check_end(source *s, size_t end, tg_status *st)
{
    unsigned char extra;
    size_t got = 0;
    int rc = source_read(s, &extra, 1, &got, st);
    if (!rc && got)
        rc = tg_status_set(st, TG_EFORMAT, "%s: offset %zu: data after the last element", s->path,
                           end);
    return rc;
}

/* The raw big-endian elements of an IDX file (malloc'd, *data), its type, rank and
 * [n, rest] shape, and the header's size; every check of the format done. */
static int idx_read(const char *path, const idx_type **type_out, int *nd_out, int64_t *shape_out,
                    size_t *head_out, unsigned char **data_out, tg_status *st)
{
    source s;
    unsigned char head[4 + 4 * 255], *data = NULL;
    const idx_type *type = NULL;
    int nd = 0;
    int64_t dims[255] = {0}, shape[2] = {0, 0};
    size_t head_bytes = 0, bytes = 0;
    int rc = source_open(&s, path, st);
    if (!rc) rc = idx_read_magic(&s, head, &type, &nd, st);
    if (!rc) head_bytes = 4 + 4 * (size_t)nd, rc = idx_read_dims(&s, head, nd, dims, st);
    if (!rc) rc = idx_data_bytes(&s, type, nd, dims, head_bytes, &bytes, st);
    if (!rc) rc = idx_shape(path, nd, dims, shape, st);
    if (!rc) rc = read_data(&s, bytes, head_bytes, &data, st);
    if (!rc) rc = idx_check_end(&s, head_bytes + bytes, st);
    if (!rc) {
        *type_out = type, *nd_out = nd, *data_out = data, *head_out = head_bytes;
        shape_out[0] = shape[0], shape_out[1] = shape[1];
        data = NULL;
    }
    free(data);
    source_close(&s);
    return rc;
}

/* Float and double elements must be finite and, loaded as f32, within f32's range (values
 * too small for it become 0 or subnormal, as the conversion rounds them). */
static int check_values(const char *path, const unsigned char *p, const idx_type *t, int64_t n,
                        size_t head_bytes, tg_dtype dt, tg_status *st)
{
    if (t->code != 0x0D && t->code != 0x0E) return TG_OK; /* integers fit either dtype */
    for (int64_t i = 0; i < n; i++) {
        double v = element(p, t, i);
        if (isfinite(v) && (dt == TG_F64 || fabs(v) < F32_INF_FROM)) continue;
        unsigned long long at = head_bytes + (unsigned long long)i * (unsigned)t->size;
        if (!isfinite(v))
            return tg_status_set(st, TG_EFORMAT,
                                 "%s: offset %llu: element %lld is %s, not a "
                                 "finite number",
                                 path, at, (long long)i,
                                 isnan(v) ? "NaN"
                                 : v > 0  ? "+infinity"
                                          : "-infinity");
        return tg_status_set(st, TG_EFORMAT,
                             "%s: offset %llu: element %lld is %.9g, beyond "
                             "f32's range (largest %.9g)",
                             path, at, (long long)i, v, (double)FLT_MAX);
    }
    return TG_OK;
}

int tg_idx_load(const char *path, tg_dtype dt, tg_tensor **out, tg_status *st)
{
    if (!path || !out) return tg_status_set(st, TG_EARG, "tg_idx_load: NULL path or output");
    if (dt != TG_F32 && dt != TG_F64)
        return tg_status_set(st, TG_EDTYPE, "tg_idx_load: %s: bad dtype", path);
    if (st) st->code = TG_OK, st->msg[0] = '\0';
    const idx_type *type;
    int nd;
    int64_t shape[2];
    size_t head_bytes;
    unsigned char *data;
    int rc = idx_read(path, &type, &nd, shape, &head_bytes, &data, st);
    if (rc) return rc;
    int64_t count = shape[0] * shape[1];
    if ((rc = check_values(path, data, type, count, head_bytes, dt, st))) {
        free(data);
        return rc;
    }
    tg_tensor *t = tg_tensor_new(dt, nd == 1 ? 1 : 2, shape);
    if (!t) {
        free(data);
        return tg_status_set(st, TG_ENOMEM, "%s: out of memory", path);
    }
    double scale = nd >= 2 && type->code == 0x08 ? 1.0 / 255.0 : 1.0;
    if (dt == TG_F32) convert_float(tg_data(t), data, type, count, scale);
    else convert_double(tg_data(t), data, type, count, scale);
    free(data);
    *out = t;
    return TG_OK;
}

const char *const tg_fashion_mnist_classes[10] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                  "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                  "Bag",         "Ankle boot"};

/* dir/name, or dir/name.gz when only that exists. */
static void find(const char *dir, const char *name, char *path, size_t size)
{
    struct stat sb;
    snprintf(path, size, "%s/%s", dir, name);
    if (stat(path, &sb) == 0) return;
    snprintf(path, size, "%s/%s.gz", dir, name);
    if (stat(path, &sb) == 0) return;
    snprintf(path, size, "%s/%s", dir, name); /* report the plain name as missing */
}

/* Images and labels of one split into ds; checks counts and label values. */
static int load_split(const char *dir, const char *prefix, tg_dtype dt, bool bytes, tg_dataset *ds,
                      tg_status *st)
{
    char ip[4096], lp[4096], name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    find(dir, name, ip, sizeof ip);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    find(dir, name, lp, sizeof lp);
    tg_tensor *x = NULL, *y = NULL;
    unsigned char *xb = NULL;
    int64_t xshape[2] = {0, 0};
    int xnd = 0, rc;
    if (bytes) {
        const idx_type *type;
        size_t head_bytes;
        rc = idx_read(ip, &type, &xnd, xshape, &head_bytes, &xb, st);
        if (!rc && type->code != 0x08)
            rc = tg_status_set(st, TG_EFORMAT,
                               "%s: images must be unsigned bytes to be kept as "
                               "bytes (type %s)",
                               ip, type->name);
    } else {
        rc = tg_idx_load(ip, dt, &x, st);
        if (!rc)
            xnd = tg_tensor_ndim(x) == 2 ? 2 : 1, xshape[0] = tg_tensor_dim(x, 0),
            xshape[1] = xnd == 2 ? tg_tensor_dim(x, 1) : 0;
    }
    if (!rc) rc = tg_idx_load(lp, dt, &y, st);
    if (!rc && xnd < 2)
        rc = tg_status_set(st, TG_EFORMAT, "%s: images must have at least 2 dimensions", ip);
    if (!rc && tg_tensor_ndim(y) != 1)
        rc = tg_status_set(st, TG_EFORMAT, "%s: labels must have 1 dimension", lp);
    if (!rc && xshape[0] != tg_tensor_dim(y, 0))
        rc = tg_status_set(st, TG_EFORMAT, "%s and %s: %lld images but %lld labels", ip, lp,
                           (long long)xshape[0], (long long)tg_tensor_dim(y, 0));
    int classes = 0;
    for (int64_t i = 0; !rc && i < tg_tensor_numel(y); i++) {
        double v = tg_get(y, i);
        if (!(v >= 0 && v <= 255) || v != (double)(int)v)
            rc = tg_status_set(st, TG_EFORMAT, "%s: label %lld is %g, not a class 0..255", lp,
                               (long long)i, v);
        else if ((int)v + 1 > classes) classes = (int)v + 1;
    }
    if (rc) {
        tg_tensor_free(x), tg_tensor_free(y), free(xb);
        return rc;
    }
    ds->x = x, ds->x_bytes = xb, ds->y = y, ds->n = xshape[0], ds->d = xshape[1];
    ds->n_classes = classes;
    return TG_OK;
}

static int load_mnist(const char *dir, tg_dtype dt, bool bytes, tg_dataset *train, tg_dataset *test,
                      tg_status *st)
{
    if (!train || !test) return tg_status_set(st, TG_EARG, "tg_load_mnist_dir: NULL output");
    if (!dir) dir = "/usr/share/datasets/fashion-mnist";
    tg_dataset a = {0}, b = {0};
    int rc = load_split(dir, "train", dt, bytes, &a, st);
    if (!rc) rc = load_split(dir, "t10k", dt, bytes, &b, st);
    if (!rc && a.d != b.d)
        rc = tg_status_set(st, TG_EFORMAT, "%s: training images have %lld pixels, test images %lld",
                           dir, (long long)a.d, (long long)b.d);
    if (rc) {
        tg_dataset_free(&a), tg_dataset_free(&b);
        return rc;
    }
    if (b.n_classes < a.n_classes) b.n_classes = a.n_classes;
    else a.n_classes = b.n_classes;
    *train = a, *test = b;
    return TG_OK;
}

int tg_load_mnist_dir(const char *dir, tg_dtype dt, tg_dataset *train, tg_dataset *test,
                      tg_status *st)
{
    return load_mnist(dir, dt, false, train, test, st);
}

int tg_load_mnist_bytes(const char *dir, tg_dtype dt, tg_dataset *train, tg_dataset *test,
                        tg_status *st)
{
    return load_mnist(dir, dt, true, train, test, st);
}
