/* data/idx.c: IDX files (the MNIST format), plain or gzip, through zlib. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "tapegrad.h"

/* Decompressed data is read in steps of this size into a buffer grown as it arrives, so a
 * gzip header that lies about its size costs at most twice what the stream really holds. */
#ifndef TG_IDX_READ_STEP
#define TG_IDX_READ_STEP (1 << 24) /* the fuzz build makes it tiny to exercise the growth */
#endif
#define READ_STEP ((size_t)TG_IDX_READ_STEP)
/* deflate's best ratio is about 1032:1: a gzip file whose header promises more is a lie. */
#define GZ_MAX_RATIO 1100

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
#define CONVERT(T)                                                                           \
    static void convert_##T(T *out, const unsigned char *p, const idx_type *t, int64_t n,   \
                            double scale)                                                    \
    {                                                                                        \
        if (t->code == 0x08) {                                                               \
            T lut[256];                                                                      \
            for (int k = 0; k < 256; k++) lut[k] = (T)((double)k * scale);                   \
            for (int64_t i = 0; i < n; i++) out[i] = lut[p[i]];                              \
        } else {                                                                             \
            for (int64_t i = 0; i < n; i++) out[i] = (T)(element(p, t, i) * scale);          \
        }                                                                                    \
    }
CONVERT(float)
CONVERT(double)
#undef CONVERT

/* Reads exactly n bytes into a buffer grown in READ_STEP pieces. Returns the buffer, or NULL
 * with *why set: 1 = the read failed or ended first (gzerror tells which), 3 = no memory. */
static unsigned char *read_data(gzFile g, size_t n, int *why)
{
    size_t have = 0, cap = 0;
    unsigned char *buf = NULL;
    do {
        if (have == cap) {
            size_t want = cap ? cap * 2 : READ_STEP;
            if (want > n || want < cap) want = n;
            unsigned char *nb = realloc(buf, want ? want : 1);
            if (!nb) {
                free(buf);
                *why = 3;
                return NULL;
            }
            buf = nb, cap = want;
        }
        size_t chunk = cap - have > ((size_t)1 << 30) ? (size_t)1 << 30 : cap - have;
        int r = chunk ? gzread(g, buf + have, (unsigned)chunk) : 0;
        if (r < 0 || (r == 0 && chunk)) {
            free(buf);
            *why = 1;
            return NULL;
        }
        have += (size_t)r;
    } while (have < n);
    return buf;
}

/* A negative code (and st filled) if zlib failed on g: corrupt or cut gzip data; else 0.
 * The offset is in the compressed file, where zlib stopped; zlib's message loses the path it
 * starts with. */
static int gz_failed(gzFile g, const char *path, tg_status *st)
{
    int err;
    const char *why = gzerror(g, &err);
    if (err >= 0) return TG_OK;
    size_t n = strlen(path);
    if (strncmp(why, path, n) == 0 && why[n] == ':' && why[n + 1] == ' ') why += n + 2;
    return tg_status_set(st, err == Z_MEM_ERROR ? TG_ENOMEM : TG_EFORMAT,
                         "%s: offset %lld of the gzip file: corrupt gzip data: %s", path,
                         (long long)gzoffset(g), why);
}

/* The raw big-endian elements of an IDX file (malloc'd, *data), its type, rank and
 * [n, rest] shape; every check of the format done. */
static int idx_read(const char *path, const idx_type **type_out, int *nd_out, int64_t *shape_out,
                    unsigned char **data_out, tg_status *st)
{
    struct stat sb;
    if (stat(path, &sb))
        return tg_status_set(st, TG_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return tg_status_set(st, TG_EIO, "%s: not a regular file", path);
    gzFile g = gzopen(path, "rb");
    if (!g) return tg_status_set(st, TG_EIO, "%s: cannot open: %s", path, strerror(errno));
    gzbuffer(g, 1 << 18);
    int rc = TG_OK, why = 0;
    unsigned char head[4 + 4 * 255], *data = NULL;
    const idx_type *type = NULL;
    int r = gzread(g, head, 4);
    if (r != 4) {
        rc = gz_failed(g, path, st);
        if (!rc) rc = tg_status_set(st, TG_EFORMAT, "%s: offset 0: shorter than the 4-byte IDX "
                                    "magic", path);
        goto done;
    }
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (TYPES[i].code == head[2]) type = &TYPES[i];
    int nd = head[3];
    if (head[0] || head[1] || !type || nd == 0) {
        rc = tg_status_set(st, TG_EFORMAT,
                           "%s: offset 0: bad IDX magic %02x %02x %02x %02x (want 00 00, a type "
                           "code 08 09 0b 0c 0d or 0e, and at least one dimension)",
                           path, head[0], head[1], head[2], head[3]);
        goto done;
    }
    size_t head_bytes = 4 + 4 * (size_t)nd;
    r = gzread(g, head + 4, (unsigned)(head_bytes - 4));
    if (r != (int)(head_bytes - 4)) {
        rc = gz_failed(g, path, st);
        if (!rc) rc = tg_status_set(st, TG_EFORMAT, "%s: offset 4: truncated in the %d dimension "
                                    "sizes", path, nd);
        goto done;
    }
    /* The element count, saturated just above what could be real, is checked against the
     * file size before anything is allocated: a plain file must hold exactly header + data. */
    bool plain = gzdirect(g);
    uint64_t limit = (uint64_t)sb.st_size * (plain ? 1 : GZ_MAX_RATIO), count = 1;
    int64_t dims[255];
    for (int i = 0; i < nd; i++) {
        dims[i] = (int64_t)be(head + 4 + 4 * i, 4);
        if (dims[i] > 0 && count > (limit + 1) / (uint64_t)dims[i]) count = limit + 1;
        else count *= (uint64_t)dims[i];
    }
    if (count > limit / (uint64_t)type->size) {
        rc = tg_status_set(st, TG_EFORMAT, "%s: offset 4: the header promises more data than the "
                           "file can hold (%d dimensions of %s)", path, nd, type->name);
        goto done;
    }
    size_t bytes = (size_t)count * (size_t)type->size;
    uint64_t want = head_bytes + bytes, size = (uint64_t)sb.st_size;
    if (plain && want != size) {
        rc = tg_status_set(st, TG_EFORMAT, "%s: offset %llu: %s (the header wants %zu bytes of "
                           "data, the file has %llu)", path,
                           (unsigned long long)(want < size ? want : size),
                           want < size ? "data after the last element" : "truncated", bytes,
                           (unsigned long long)(size - head_bytes));
        goto done;
    }
    /* [n, rest]: the product of the rest can overflow when n == 0 (no data bounds it). */
    int64_t shape[2] = {dims[0], 1};
    for (int i = 1; i < nd; i++) {
        if (dims[i] && shape[1] > INT32_MAX / dims[i]) {
            rc = tg_status_set(st, TG_EFORMAT, "%s: offset 4: dimension sizes overflow", path);
            goto done;
        }
        shape[1] *= dims[i];
    }
    data = read_data(g, bytes, &why);
    if (!data) {
        if (why == 3)
            rc = tg_status_set(st, TG_ENOMEM, "%s: out of memory for %zu bytes", path, bytes);
        else if (!(rc = gz_failed(g, path, st)))
            rc = tg_status_set(st, TG_EFORMAT, "%s: offset %zu: truncated (the header wants %zu "
                                "bytes of data)", path, head_bytes, bytes);
        goto done;
    }
    unsigned char extra;
    r = gzread(g, &extra, 1); /* also makes zlib check the gzip trailer (CRC and length) */
    if (r != 0) {
        rc = r < 0 ? gz_failed(g, path, st) : TG_OK;
        if (!rc) rc = tg_status_set(st, TG_EFORMAT, "%s: offset %zu: data after the last element",
                                    path, head_bytes + bytes);
        goto done;
    }
    *type_out = type, *nd_out = nd, *data_out = data;
    shape_out[0] = shape[0], shape_out[1] = shape[1];
    data = NULL;
done:
    free(data);
    gzclose(g);
    return rc;
}

int tg_idx_load(const char *path, tg_dtype dt, tg_tensor **out, tg_status *st)
{
    if (!path || !out) return tg_status_set(st, TG_EARG, "tg_idx_load: NULL path or output");
    if (dt != TG_F32 && dt != TG_F64) return tg_status_set(st, TG_EDTYPE, "tg_idx_load: bad dtype");
    if (st) st->code = TG_OK, st->msg[0] = '\0';
    const idx_type *type;
    int nd;
    int64_t shape[2];
    unsigned char *data;
    int rc = idx_read(path, &type, &nd, shape, &data, st);
    if (rc) return rc;
    tg_tensor *t = tg_tensor_new(dt, nd == 1 ? 1 : 2, shape);
    if (!t) {
        free(data);
        return tg_status_set(st, TG_ENOMEM, "%s: out of memory", path);
    }
    double scale = nd >= 2 && type->code == 0x08 ? 1.0 / 255.0 : 1.0;
    int64_t count = tg_tensor_numel(t);
    if (dt == TG_F32) convert_float(tg_data(t), data, type, count, scale);
    else convert_double(tg_data(t), data, type, count, scale);
    free(data);
    *out = t;
    return TG_OK;
}

const char *const tg_fashion_mnist_classes[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                                   "Coat",        "Sandal",  "Shirt",    "Sneaker",
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
static int load_split(const char *dir, const char *prefix, tg_dtype dt, bool bytes,
                      tg_dataset *ds, tg_status *st)
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
        rc = idx_read(ip, &type, &xnd, xshape, &xb, st);
        if (!rc && type->code != 0x08)
            rc = tg_status_set(st, TG_EFORMAT, "%s: images must be unsigned bytes to be kept as "
                               "bytes (type %s)", ip, type->name);
    } else {
        rc = tg_idx_load(ip, dt, &x, st);
        if (!rc) xnd = tg_tensor_ndim(x) == 2 ? 2 : 1, xshape[0] = tg_tensor_dim(x, 0),
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

static int load_mnist(const char *dir, tg_dtype dt, bool bytes, tg_dataset *train,
                      tg_dataset *test, tg_status *st)
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
