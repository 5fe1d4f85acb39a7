/* data/idx.c: IDX files (the MNIST format), plain or gzip, through zlib. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "tapegrad.h"

/* gzip's best ratio is about 1032:1: a header promising more data than that is a lie. */
#define GZ_MAX_RATIO 1100

typedef struct idx_type {
    unsigned code;
    int size;
    const char *name;
} idx_type;

static const idx_type TYPES[] = {{0x08, 1, "ubyte"}, {0x09, 1, "byte"},  {0x0B, 2, "short"},
                                 {0x0C, 4, "int"},   {0x0D, 4, "float"}, {0x0E, 8, "double"}};

/* Element i of big-endian data of type t, as a double. */
static double element(const unsigned char *p, const idx_type *t, int64_t i)
{
    const unsigned char *q = p + i * t->size;
    uint64_t v = 0;
    for (int k = 0; k < t->size; k++) v = v << 8 | q[k];
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

/* Reads exactly n bytes; -1 on error or end of data. */
static int gz_read_all(gzFile g, unsigned char *p, size_t n)
{
    while (n) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int r = gzread(g, p, chunk);
        if (r <= 0) return -1;
        p += r, n -= (size_t)r;
    }
    return 0;
}

int tg_idx_load(const char *path, tg_dtype dt, tg_tensor **out, tg_status *st)
{
    if (!path || !out) return tg_status_set(st, TG_EARG, "tg_idx_load: NULL path or output");
    if (dt != TG_F32 && dt != TG_F64) return tg_status_set(st, TG_EDTYPE, "tg_idx_load: bad dtype");
    struct stat sb;
    if (stat(path, &sb) || !S_ISREG(sb.st_mode))
        return tg_status_set(st, TG_EIO, "%s: cannot open: %s", path,
                             errno ? strerror(errno) : "not a regular file");
    gzFile g = gzopen(path, "rb");
    if (!g) return tg_status_set(st, TG_EIO, "%s: cannot open: %s", path, strerror(errno));
    gzbuffer(g, 1 << 17);
    int rc = TG_OK, direct;
    unsigned char head[4 + 4 * 255], *data = NULL;
    tg_tensor *t = NULL;
    const idx_type *type = NULL;
    if (gz_read_all(g, head, 4)) {
        rc = tg_status_set(st, TG_EFORMAT, "%s: offset 0: shorter than the 4-byte IDX magic", path);
        goto done;
    }
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (TYPES[i].code == head[2]) type = &TYPES[i];
    int nd = head[3];
    if (head[0] || head[1] || !type || nd == 0) {
        rc = tg_status_set(st, TG_EFORMAT,
                           "%s: offset 0: bad IDX magic %02x %02x %02x %02x (want 00 00, a type "
                           "code 08-0e, and at least one dimension)",
                           path, head[0], head[1], head[2], head[3]);
        goto done;
    }
    if (gz_read_all(g, head + 4, 4 * (size_t)nd)) {
        rc = tg_status_set(st, TG_EFORMAT, "%s: offset 4: truncated in the %d dimension sizes", path, nd);
        goto done;
    }
    direct = gzdirect(g);
    uint64_t count = 1, limit = (uint64_t)sb.st_size * (direct ? 1 : GZ_MAX_RATIO);
    int64_t dims[255];
    for (int i = 0; i < nd; i++) {
        const unsigned char *q = head + 4 + 4 * i;
        dims[i] = (int64_t)((uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3]);
        if (dims[i] > 0 && count > (limit + 1) / (uint64_t)dims[i]) count = limit + 1;
        else count *= (uint64_t)dims[i];
    }
    if (count * (uint64_t)type->size > limit) {
        rc = tg_status_set(st, TG_EFORMAT, "%s: offset 4: the header promises more data than the "
                           "file can hold (%s of %d dimensions)", path, type->name, nd);
        goto done;
    }
    size_t bytes = (size_t)count * (size_t)type->size;
    data = malloc(bytes ? bytes : 1);
    if (!data) {
        rc = tg_status_set(st, TG_ENOMEM, "%s: out of memory for %zu bytes", path, bytes);
        goto done;
    }
    if (gz_read_all(g, data, bytes)) {
        int err;
        const char *why = gzerror(g, &err);
        rc = tg_status_set(st, TG_EFORMAT, "%s: offset %d: %s (want %zu bytes of data)", path,
                           4 + 4 * nd, err < 0 ? why : "truncated", bytes);
        goto done;
    }
    unsigned char extra;
    if (gzread(g, &extra, 1) != 0) {
        rc = tg_status_set(st, TG_EFORMAT, "%s: offset %zu: data after the last element", path,
                           4 + 4 * (size_t)nd + bytes);
        goto done;
    }
    /* [n, rest]: the rest's product can overflow when n == 0 (no data bounds it). */
    int64_t shape[2] = {dims[0], 1};
    for (int i = 1; i < nd; i++) {
        if (dims[i] && shape[1] > INT32_MAX / dims[i]) {
            rc = tg_status_set(st, TG_EFORMAT, "%s: offset 4: dimension sizes overflow", path);
            goto done;
        }
        shape[1] *= dims[i];
    }
    t = tg_tensor_new(dt, nd == 1 ? 1 : 2, shape);
    if (!t) {
        rc = tg_status_set(st, TG_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    double scale = nd >= 2 && type->code == 0x08 ? 1.0 / 255.0 : 1.0;
    if (dt == TG_F32) {
        float *o = tg_data(t);
        for (int64_t i = 0; i < (int64_t)count; i++) o[i] = (float)(element(data, type, i) * scale);
    } else {
        double *o = tg_data(t);
        for (int64_t i = 0; i < (int64_t)count; i++) o[i] = element(data, type, i) * scale;
    }
    *out = t;
    t = NULL;
done:
    free(data);
    tg_tensor_free(t);
    gzclose(g);
    return rc;
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
}

/* Images and labels of one split into ds; checks counts and label values. */
static int load_split(const char *dir, const char *prefix, tg_dtype dt, tg_dataset *ds, tg_status *st)
{
    char ip[4096], lp[4096], name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    find(dir, name, ip, sizeof ip);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    find(dir, name, lp, sizeof lp);
    tg_tensor *x = NULL, *y = NULL;
    int rc = tg_idx_load(ip, dt, &x, st);
    if (!rc) rc = tg_idx_load(lp, dt, &y, st);
    if (!rc && (tg_tensor_ndim(y) != 1 || tg_tensor_ndim(x) != 2 || tg_tensor_dim(x, 0) != tg_tensor_dim(y, 0)))
        rc = tg_status_set(st, TG_EFORMAT, "%s and %s: %lld images but %lld labels", ip, lp,
                           (long long)tg_tensor_dim(x, 0), (long long)tg_tensor_dim(y, 0));
    int classes = 0;
    for (int64_t i = 0; !rc && i < tg_tensor_numel(y); i++) {
        double v = tg_get(y, i);
        if (v < 0 || v > 255 || v != (double)(int)v)
            rc = tg_status_set(st, TG_EFORMAT, "%s: label %lld is %g", lp, (long long)i, v);
        else if ((int)v + 1 > classes) classes = (int)v + 1;
    }
    if (rc) {
        tg_tensor_free(x), tg_tensor_free(y);
        return rc;
    }
    ds->x = x, ds->y = y, ds->n = tg_tensor_dim(x, 0), ds->d = tg_tensor_dim(x, 1);
    ds->n_classes = classes;
    return TG_OK;
}

int tg_load_mnist_dir(const char *dir, tg_dtype dt, tg_dataset *train, tg_dataset *test, tg_status *st)
{
    if (!train || !test) return tg_status_set(st, TG_EARG, "tg_load_mnist_dir: NULL output");
    if (!dir) dir = "/usr/share/datasets/fashion-mnist";
    tg_dataset a = {0}, b = {0};
    int rc = load_split(dir, "train", dt, &a, st);
    if (!rc) rc = load_split(dir, "t10k", dt, &b, st);
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
