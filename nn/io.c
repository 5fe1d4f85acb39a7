/* nn/io.c: saving and loading a module's parameters and buffers (format: docs/nn.md).
 *
 *   "TGMODEL\0"  u32 version (1)  u32 dtype (1 f32, 2 f64)  u32 tensor count
 *   u32 meta length, meta bytes
 *   per tensor: u32 ndim, u64 dims[ndim], elements (little-endian IEEE 754)
 *   u32 CRC-32 (zlib) of every byte before it
 *
 * Integers are little-endian. Save writes a temporary file and renames it into place. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "internal.h"

/* data/file.c */
int tg_file_slurp(const char *path, uint64_t max, unsigned char **out, size_t *len, tg_status *st);
/* nn/spec.c */
int tg_nn_spec_tensor_shapes(const char *text, int ndim, const int64_t *in_shape, int max, int *nds,
                             int64_t (*dims)[4], tg_status *st);

#define MAGIC "TGMODEL"
#define VERSION 1u
#define MAX_TENSORS 4096
#define MAX_META 4096
#define MAX_FILE ((uint64_t)1 << 34) /* 16 GiB: the largest model file read */

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

static uint64_t get_u64(const unsigned char *p)
{
    return get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static uint32_t dtype_code(tg_dtype dt) { return dt == TG_F32 ? 1u : 2u; }

/* ---- checking a file ---- */
/* A file checked as far as it can be without a module: header fields and where each
 * tensor's header starts. */
typedef struct model_file {
    unsigned char *p;
    size_t len;
    uint32_t dtype, count, meta_len;
    const char *meta;
    size_t es;  /* element size */
    size_t *at; /* count offsets: tensor i's header */
} model_file;

static void model_file_free(model_file *mf)
{
    free(mf->p), free(mf->at);
    mf->p = NULL, mf->at = NULL;
}

/* Checks mf->p, mf->len (the bytes of path) for what depends on nothing else: magic,
 * checksum, version, dtype, the tensor count and the description's length. On failure
 * frees the bytes when owned. */
static int parse_mem(const char *path, model_file *mf, bool owned, tg_status *st)
{
    const unsigned char *p = mf->p;
    size_t n = mf->len;
    int rc = TG_OK;
    if (n < 28 || memcmp(p, MAGIC, 8) != 0)
        rc = tg_status_set(st, TG_EFORMAT, "%s: not a tapegrad model (bad magic)", path);
    else if (get_u32(p + n - 4) != (uint32_t)crc32_z(0L, p, n - 4))
        rc = tg_status_set(st, TG_EFORMAT,
                           "%s: checksum mismatch: the file is truncated or corrupted", path);
    else if (get_u32(p + 8) != VERSION)
        rc = tg_status_set(st, TG_EFORMAT, "%s: format version %u, this tapegrad reads %u", path,
                           get_u32(p + 8), VERSION);
    else if ((mf->dtype = get_u32(p + 12)) != 1 && mf->dtype != 2)
        rc = tg_status_set(st, TG_EFORMAT, "%s: unknown dtype code %u", path, mf->dtype);
    else if ((mf->count = get_u32(p + 16)) > MAX_TENSORS)
        rc = tg_status_set(st, TG_EFORMAT, "%s: %u tensors is too many", path, mf->count);
    else if ((mf->meta_len = get_u32(p + 20)) > MAX_META || 24 + (size_t)mf->meta_len + 4 > n)
        rc = tg_status_set(st, TG_EFORMAT, "%s: bad description length %u", path, mf->meta_len);
    else if (!(mf->at = malloc(sizeof *mf->at * (mf->count ? mf->count : 1))))
        rc = tg_status_set(st, TG_ENOMEM, "%s: out of memory", path);
    if (rc) {
        if (!owned) mf->p = NULL;
        model_file_free(mf);
        return rc;
    }
    mf->meta = (const char *)p + 24;
    mf->es = mf->dtype == 1 ? 4 : 8;
    return TG_OK;
}

/* Reads path and checks it as parse_mem does. */
static int parse(const char *path, model_file *mf, tg_status *st)
{
    memset(mf, 0, sizeof *mf);
    if (!path) return tg_status_set(st, TG_EARG, "tg_nn_load: path is NULL");
    int rc = tg_file_slurp(path, MAX_FILE, &mf->p, &mf->len, st);
    return rc ? rc : parse_mem(path, mf, true, st);
}

/* Tensor i's header at *off: at most TG_MAX_DIMS dimensions, and data that fits before the
 * checksum. Its dimensions in dims; *off moves past its data. */
static int tensor_at(const char *path, const model_file *mf, uint32_t i, size_t *off, uint32_t *nd,
                     uint64_t *dims, tg_status *st)
{
    size_t end = mf->len - 4, o = *off;
    if (end - o < 4)
        return tg_status_set(st, TG_EFORMAT,
                             "%s: offset %zu: the file ends before tensor %u (the "
                             "header says %u tensors)",
                             path, o, i, mf->count);
    *nd = get_u32(mf->p + o);
    if (*nd > TG_MAX_DIMS)
        return tg_status_set(st, TG_EFORMAT,
                             "%s: offset %zu: tensor %u claims %u dimensions "
                             "(at most %d)",
                             path, o, i, *nd, TG_MAX_DIMS);
    o += 4;
    if (end - o < 8 * (size_t)*nd)
        return tg_status_set(st, TG_EFORMAT,
                             "%s: offset %zu: the file ends in tensor %u's "
                             "dimensions",
                             path, o, i);
    /* The element count, saturated above what the rest of the file can hold. */
    uint64_t room = (end - o - 8 * (size_t)*nd) / mf->es, count = 1;
    for (uint32_t d = 0; d < *nd; d++, o += 8) {
        dims[d] = get_u64(mf->p + o);
        if (dims[d] && count > room / dims[d]) count = room + 1;
        else count *= dims[d];
    }
    if (count > room)
        return tg_status_set(st, TG_EFORMAT,
                             "%s: offset %zu: tensor %u's data does not fit in "
                             "the file (%zu bytes are left)",
                             path, o, i, end - o);
    *off = o + (size_t)count * mf->es;
    return TG_OK;
}

/* "[3,4]" for dims, into s. */
static const char *dims_str(uint32_t nd, const uint64_t *dims, char *s, size_t size)
{
    size_t k = (size_t)snprintf(s, size, "[");
    for (uint32_t d = 0; d < nd && k < size; d++)
        k += (size_t)snprintf(s + k, size - k, "%s%llu", d ? "," : "", (unsigned long long)dims[d]);
    if (k < size) snprintf(s + k, size - k, "]");
    return s;
}

/* True if tensors of plausible shapes (every one with at least one dimension, none 0: what
 * modules have) fill the file exactly after a description of meta_len bytes. */
static bool plausible_with(const model_file *mf, uint32_t meta_len)
{
    if (meta_len > MAX_META || 24 + (size_t)meta_len + 4 > mf->len) return false;
    size_t off = 24 + (size_t)meta_len;
    for (uint32_t i = 0; i < mf->count; i++) {
        uint32_t nd;
        uint64_t dims[TG_MAX_DIMS];
        model_file alt = *mf;
        alt.meta_len = meta_len;
        if (tensor_at("", &alt, i, &off, &nd, dims, NULL) || nd == 0) return false;
        for (uint32_t d = 0; d < nd; d++)
            if (!dims[d]) return false;
    }
    return off == mf->len - 4;
}

/* True if the tensors fill the file exactly after the description, whatever their shapes. */
static bool sound(const model_file *mf)
{
    size_t off = 24 + (size_t)mf->meta_len;
    uint32_t nd;
    uint64_t dims[TG_MAX_DIMS];
    for (uint32_t i = 0; i < mf->count; i++)
        if (tensor_at("", mf, i, &off, &nd, dims, NULL)) return false;
    return off == mf->len - 4;
}

/* Every tensor header, in order, ending exactly at the checksum; each against ts[i] too when
 * ts is not NULL (the module's tensors). Records where the headers are in mf->at. */
static int walk(const char *path, model_file *mf, tg_tensor *const *ts, tg_status *st)
{
    size_t off = 24 + mf->meta_len, end = mf->len - 4;
    int rc = TG_OK;
    for (uint32_t i = 0; !rc && i < mf->count; i++) {
        uint32_t nd = 0;
        uint64_t dims[TG_MAX_DIMS] = {0};
        /* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): both callers allocate at */
        mf->at[i] = off;
        if ((rc = tensor_at(path, mf, i, &off, &nd, dims, st)) || !ts) continue;
        if (nd != (uint32_t)tg_tensor_ndim(ts[i])) {
            rc = tg_status_set(st, TG_ESHAPE, "%s: tensor %u has %u dimensions, the model's has %d",
                               path, i, nd, tg_tensor_ndim(ts[i]));
            break;
        }
        for (uint32_t d = 0; d < nd && !rc; d++)
            if (dims[d] != (uint64_t)tg_tensor_dim(ts[i], (int)d)) {
                char s[64];
                rc = tg_status_set(st, TG_ESHAPE,
                                   "%s: tensor %u: dimension %u is %llu, the model's "
                                   "tensor is %s",
                                   path, i, d, (unsigned long long)dims[d],
                                   tg_shape_str(ts[i], s, sizeof s));
            }
    }
    if (!rc && off != end)
        rc = tg_status_set(st, TG_EFORMAT, "%s: offset %zu: %zu bytes after the last tensor", path,
                           off, end - off);
    if (!rc || sound(mf)) return rc;
    /* Tensors that do not fit the file are often a wrong description length (a header
     * written by something else): say so when a length near it makes them fit. */
    for (uint32_t k = 1; k <= 8; k++)
        for (int sign = -1; sign <= 1; sign += 2) {
            if (sign < 0 && k > mf->meta_len) continue;
            uint32_t len = sign < 0 ? mf->meta_len - k : mf->meta_len + k;
            if (plausible_with(mf, len))
                return tg_status_set(st, TG_EFORMAT,
                                     "%s: the description length %u looks wrong: "
                                     "the tensors after it fit with a length of %u",
                                     path, mf->meta_len, len);
        }
    return rc;
}

/* A description in the form `tapegrad train` writes, "mlp layers=784,256,10 act=relu
 * dropout=0 batchnorm=0 dtype=f32", is what a program builds its network from before it
 * loads the file: it must describe exactly the tensors of the file (tg_nn_mlp's, in its
 * order), so building it costs no more than the file holds. The format is tapegrad train's
 * (cli/train.c), read the same way; other descriptions are free text. holds is "the file
 * holds" or, for a save, "the model has". */
/* The description "arch spec=SPEC input=C,H,W|F dtype=f32|f64" of tapegrad train --arch:
 * the tensors tg_nn_from_spec makes for it, listed from the spec without building it (so
 * it costs nothing however large it claims to be), must be the file's. */
static int check_arch(const char *path, const model_file *mf, const char *text, const char *holds,
                      tg_status *st)
{
    char spec[MAX_META + 1], input[64], dtype[8];
    if (sscanf(text, "arch spec=%4096s input=%63s dtype=%7s", spec, input, dtype) != 3)
        return TG_OK;
    int64_t in[3];
    int nd = 0;
    for (const char *p = input; *p;) {
        char *e;
        errno = 0;
        long long v = strtoll(p, &e, 10);
        if (errno || e == p || v <= 0 || nd == 3 || (*e && *e != ',') || (*e == ',' && !e[1]))
            return tg_status_set(st, TG_EFORMAT,
                                 "%s: the description's input '%s' is not C,H,W or a width", path,
                                 input);
        in[nd++] = v;
        p = *e ? e + 1 : e;
    }
    if (nd != 1 && nd != 3)
        return tg_status_set(st, TG_EFORMAT,
                             "%s: the description's input '%s' is not C,H,W or a width", path,
                             input);
    if (strcmp(dtype, mf->dtype == 1 ? "f32" : "f64") != 0)
        return tg_status_set(st, TG_EFORMAT, "%s: the description says dtype=%s, %s %s tensors",
                             path, dtype, holds, mf->dtype == 1 ? "f32" : "f64");
    int *nds = malloc(sizeof *nds * MAX_TENSORS);
    int64_t(*dims)[4] = malloc(sizeof *dims * MAX_TENSORS);
    tg_status why = {0};
    int n = nds && dims ? tg_nn_spec_tensor_shapes(spec, nd, in, MAX_TENSORS, nds, dims, &why) : -2;
    int rc = TG_OK;
    if (n == -2) rc = tg_status_set(st, TG_ENOMEM, "%s: out of memory", path);
    else if (n < 0)
        rc = tg_status_set(st, TG_EFORMAT, "%s: the description's spec: %s", path, why.msg);
    else if ((uint32_t)n != mf->count)
        rc = tg_status_set(st, TG_EFORMAT,
                           "%s: the description (arch %.60s) asks for %d tensors, %s %u", path,
                           spec, n, holds, mf->count);
    for (uint32_t i = 0; !rc && i < mf->count; i++) {
        uint64_t fd[TG_MAX_DIMS], want[TG_MAX_DIMS] = {0};
        uint32_t fnd = 0;
        size_t off = mf->at[i];
        tensor_at(path, mf, i, &off, &fnd, fd, NULL); /* checked by walk */
        bool same = fnd == (uint32_t)nds[i];
        for (int d = 0; d < nds[i]; d++) want[d] = (uint64_t)dims[i][d];
        for (uint32_t d = 0; same && d < fnd; d++) same = fd[d] == want[d];
        if (!same) {
            char a[160], b[96];
            rc = tg_status_set(st, TG_EFORMAT,
                               "%s: tensor %u is %s, the description (arch %.60s) wants %s", path,
                               i, dims_str(fnd, fd, a, sizeof a), spec,
                               dims_str((uint32_t)nds[i], want, b, sizeof b));
        }
    }
    free(nds);
    free(dims);
    return rc;
}

static int check_description(const char *path, const model_file *mf, const char *holds,
                             tg_status *st)
{
    char text[MAX_META + 1], layers[512], act[32], dtype[8];
    memcpy(text, mf->meta, mf->meta_len);
    text[mf->meta_len] = '\0';
    if (strncmp(text, "arch ", 5) == 0) return check_arch(path, mf, text, holds, st);
    double dropout;
    int bn;
    /* NOLINTNEXTLINE(cert-err34-c): all 5 fields must match; the values are checked after */
    if (sscanf(text, "mlp layers=%511s act=%31s dropout=%lf batchnorm=%d dtype=%7s", layers, act,
               &dropout, &bn, dtype) != 5)
        return TG_OK;
    /* The sizes as tapegrad train reads them: 1..2^31 each, separated by commas. */
    uint64_t sizes[256];
    int n = 0;
    for (const char *p = layers; *p;) {
        char *e;
        errno = 0;
        long long v = strtoll(p, &e, 10);
        if (errno || e == p || v <= 0 || v > (1LL << 31) || n >= 256 || (*e && *e != ',') ||
            (*e == ',' && !e[1]))
            return tg_status_set(st, TG_EFORMAT,
                                 "%s: the description's layer sizes '%s' are not "
                                 "a list of 1..2^31",
                                 path, layers);
        sizes[n++] = (uint64_t)v;
        p = *e ? e + 1 : e;
    }
    if (n < 2)
        return tg_status_set(st, TG_EFORMAT,
                             "%s: the description has %d layer size%s, an MLP needs "
                             "at least 2",
                             path, n, n == 1 ? "" : "s");
    if (bn != 0 && bn != 1)
        return tg_status_set(st, TG_EFORMAT, "%s: the description's batchnorm=%d, want 0 or 1",
                             path, bn);
    if (strcmp(dtype, mf->dtype == 1 ? "f32" : "f64") != 0)
        return tg_status_set(st, TG_EFORMAT, "%s: the description says dtype=%s, %s %s tensors",
                             path, dtype, holds, mf->dtype == 1 ? "f32" : "f64");
    /* Per linear layer: weight [in, out], bias [out]; then, but after the last, batch norm's
     * gamma, beta, running mean and variance [out]. */
    uint64_t want = (uint64_t)(n - 1) * 2 + (bn ? (uint64_t)(n - 2) * 4 : 0);
    if (want != mf->count)
        return tg_status_set(st, TG_EFORMAT,
                             "%s: the description (layers %s%s) asks for %llu "
                             "tensors, %s %u",
                             path, layers, bn ? ", batch norm" : "", (unsigned long long)want,
                             holds, mf->count);
    uint32_t i = 0;
    for (int l = 0; l + 1 < n; l++)
        for (int k = 0; k < (bn && l + 2 < n ? 6 : 2); k++, i++) {
            uint64_t shape[2] = {k == 0 ? sizes[l] : sizes[l + 1], sizes[l + 1]}, dims[TG_MAX_DIMS];
            uint32_t nd = 0, nd_want = k == 0 ? 2 : 1;
            size_t off = mf->at[i];
            tensor_at(path, mf, i, &off, &nd, dims, NULL); /* checked by walk */
            bool same = nd == nd_want;
            for (uint32_t d = 0; same && d < nd; d++) same = dims[d] == shape[d];
            if (!same) {
                char a[160], b[64];
                return tg_status_set(st, TG_EFORMAT,
                                     "%s: tensor %u is %s, the description "
                                     "(layers %s) wants %s",
                                     path, i, dims_str(nd, dims, a, sizeof a), layers,
                                     dims_str(nd_want, shape, b, sizeof b));
            }
        }
    return TG_OK;
}

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

/* path's directory ("." when it has none) into dir, and where its last component starts. */
static const char *split_path(const char *path, char *dir, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, size, ".");
    else if (slash == path) snprintf(dir, size, "/");
    else snprintf(dir, size, "%.*s", (int)(slash - path), path);
    return slash ? slash + 1 : path;
}

/* n characters of mkstemp's alphabet at s, and nothing after them. */
static bool temp_suffix(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= 'A' && s[i] <= 'Z')))
            return false;
    return s[n] == '\0';
}

/* Removes the temporary files of earlier saves of base in dir that were killed before they
 * could remove them: BASE.tmp.PID.XXXXXX whose process PID is gone (on this machine), and
 * BASE.tmp.XXXXXX (the name before the pid was in it, whose owner is unknown) not touched
 * for an hour. A save in progress, in this process or another, keeps its file. */
static void remove_stale(const char *dir, const char *base)
{
    DIR *d = opendir(dir);
    if (!d) return;
    size_t bl = strlen(base);
    time_t now = time(NULL);
    for (struct dirent *e; (e = readdir(d));) {
        const char *name = e->d_name;
        if (strncmp(name, base, bl) != 0 || strncmp(name + bl, ".tmp.", 5) != 0) continue;
        const char *s = name + bl + 5;
        struct stat sb;
        bool stale = false, legacy = temp_suffix(s, 6);
        if (!legacy) {
            long long pid = 0;
            const char *p = s;
            for (; *p >= '0' && *p <= '9' && pid <= INT32_MAX; p++) pid = pid * 10 + (*p - '0');
            if (p == s || *s == '0' || pid > INT32_MAX || *p != '.' || !temp_suffix(p + 1, 6))
                continue;
            stale = kill((pid_t)pid, 0) != 0 && errno == ESRCH;
        }
        if (fstatat(dirfd(d), name, &sb, AT_SYMLINK_NOFOLLOW) || !S_ISREG(sb.st_mode)) continue;
        if (legacy) stale = now - sb.st_mtime > 3600;
        if (stale) unlinkat(dirfd(d), name, 0);
    }
    closedir(d);
}

/* fsync of the directory, so that the rename itself is durable. Filesystems that cannot sync
 * a directory (EINVAL) are not an error. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd) && errno != EINVAL ? -1 : 0, saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int tg_nn_image(const tg_module *m, const char *meta, const char *who, const char *path,
                unsigned char **out, size_t *out_len, tg_status *st)
{
    size_t meta_len = meta ? strlen(meta) : 0;
    if (meta_len > MAX_META)
        return tg_status_set(st, TG_EARG, "%s: description longer than %d bytes", who, MAX_META);
    tg_tensor *ts[MAX_TENSORS];
    int n = tg_nn_collect(m, true, ts, MAX_TENSORS);
    if (n > MAX_TENSORS)
        return tg_status_set(st, TG_EARG, "%s: more than %d tensors", who, MAX_TENSORS);
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
            return tg_status_set(st, TG_EDTYPE, "%s: the module mixes dtypes", who);
        }
        put_u32(&b, (uint32_t)tg_tensor_ndim(ts[i]));
        for (int d = 0; d < tg_tensor_ndim(ts[i]); d++)
            put_u64(&b, (uint64_t)tg_tensor_dim(ts[i], d));
        put(&b, tg_data(ts[i]), (size_t)tg_tensor_numel(ts[i]) * tg_dtype_size(m->dtype));
    }
    put_u32(&b, (uint32_t)crc32_z(0L, b.p, b.n));
    model_file mf = {0};
    if (!b.oom) {
        mf = (model_file){b.p,
                          b.n,
                          dtype_code(m->dtype),
                          (uint32_t)n,
                          (uint32_t)meta_len,
                          (const char *)b.p + 24,
                          tg_dtype_size(m->dtype),
                          NULL};
        b.oom = !(mf.at = malloc(sizeof *mf.at * (size_t)(n ? n : 1)));
    }
    if (b.oom) {
        free(b.p);
        return tg_status_set(st, TG_ENOMEM, "%s: out of memory", who);
    }
    /* A description in tapegrad train's form must describe these tensors: the file would
     * be refused otherwise. */
    char what[300];
    snprintf(what, sizeof what, "%s: %.280s", who, path);
    int rc = walk(what, &mf, NULL, st);
    if (!rc) rc = check_description(what, &mf, "the model has", st);
    free(mf.at);
    if (rc) {
        free(b.p);
        if (st) st->code = TG_EARG; /* the caller's description, not a file */
        return TG_EARG;
    }
    *out = b.p, *out_len = b.n;
    return TG_OK;
}

int tg_file_write_atomic(const char *who, const char *path, const unsigned char *p, size_t n,
                         tg_status *st)
{
    size_t len = strlen(path);
    char *tmp = malloc(2 * len + 40);
    if (!tmp) return tg_status_set(st, TG_ENOMEM, "%s: out of memory", who);
    char *dir = tmp + len + 32;
    int rc = TG_OK;
    remove_stale(dir, split_path(path, dir, len + 8));
    snprintf(tmp, len + 32, "%s.tmp.%d.XXXXXX", path, (int)getpid());
    int fd = mkstemp(tmp);
    if (fd < 0) {
        rc = tg_status_set(st, TG_EIO, "%s: cannot create a file beside %s: %s", who, path,
                           strerror(errno));
    } else {
        if (fchmod(fd, 0644) || write_all(fd, p, n) || fsync(fd))
            rc = tg_status_set(st, TG_EIO, "%s: cannot write %s: %s", who, tmp, strerror(errno));
        if (close(fd) && !rc)
            rc = tg_status_set(st, TG_EIO, "%s: cannot write %s: %s", who, tmp, strerror(errno));
        if (!rc && rename(tmp, path))
            rc = tg_status_set(st, TG_EIO, "%s: cannot rename %s to %s: %s", who, tmp, path,
                               strerror(errno));
        if (rc) unlink(tmp);
        else if (sync_dir(dir))
            rc = tg_status_set(st, TG_EIO,
                               "%s: %s is written, but syncing its directory "
                               "%s failed: %s",
                               who, path, dir, strerror(errno));
    }
    free(tmp);
    return rc;
}

int tg_nn_save_meta(const tg_module *m, const char *path, const char *meta, tg_status *st)
{
    if (!m || !path || !*path) return tg_status_set(st, TG_EARG, "tg_nn_save: NULL module or path");
    if (!little_endian())
        return tg_status_set(st, TG_ESTATE, "tg_nn_save: big-endian hosts are not supported");
    unsigned char *p = NULL;
    size_t n = 0;
    int rc = tg_nn_image(m, meta, "tg_nn_save", path, &p, &n, st);
    if (rc) return rc;
    rc = tg_file_write_atomic("tg_nn_save", path, p, n, st);
    free(p);
    return rc;
}

int tg_nn_save(const tg_module *m, const char *path, tg_status *st)
{
    return tg_nn_save_meta(m, path, NULL, st);
}

/* ---- load ---- */
int tg_nn_read_meta(const char *path, char *out, size_t size, tg_status *st)
{
    model_file mf;
    if (!out || !size) return tg_status_set(st, TG_EARG, "tg_nn_read_meta: no buffer");
    int rc = parse(path, &mf, st);
    if (rc) return rc;
    rc = walk(path, &mf, NULL, st);
    if (!rc) rc = check_description(path, &mf, "the file holds", st);
    if (!rc) {
        size_t k = mf.meta_len < size - 1 ? mf.meta_len : size - 1;
        memcpy(out, mf.meta, k);
        out[k] = '\0';
    }
    model_file_free(&mf);
    return rc;
}

/* The checks of tg_nn_load on mf (parsed), and the copy into the module when they pass. */
static int load_checked(tg_module *m, const char *path, model_file *mf, bool apply, tg_status *st)
{
    tg_tensor *ts[MAX_TENSORS];
    int n = tg_nn_collect(m, true, ts, MAX_TENSORS), rc = TG_OK;
    if (mf->dtype != dtype_code(m->dtype))
        rc = tg_status_set(st, TG_EDTYPE, "%s: holds %s tensors, the model is %s", path,
                           mf->dtype == 1 ? "f32" : "f64", tg_dtype_name(m->dtype));
    else if ((int)mf->count != n)
        rc = tg_status_set(st, TG_ESHAPE, "%s: holds %u tensors, the model has %d", path, mf->count,
                           n);
    /* Every tensor's header against the module, and the description, before anything is
     * written. */
    if (!rc) rc = walk(path, mf, ts, st);
    if (!rc) rc = check_description(path, mf, "the file holds", st);
    /* NOLINTBEGIN(clang-analyzer-core.NullDereference): walk filled mf->at when rc is 0 */
    /* NOLINTBEGIN(clang-analyzer-core.UndefinedBinaryOperatorResult): the same */
    for (int i = 0; !rc && apply && i < n; i++)
        memcpy(tg_data(ts[i]), mf->p + mf->at[i] + 4 + 8 * (size_t)tg_tensor_ndim(ts[i]),
               (size_t)tg_tensor_numel(ts[i]) * mf->es);
    /* NOLINTEND(clang-analyzer-core.UndefinedBinaryOperatorResult) */
    /* NOLINTEND(clang-analyzer-core.NullDereference) */
    return rc;
}

int tg_nn_load(tg_module *m, const char *path, tg_status *st)
{
    if (!m) return tg_status_set(st, TG_EARG, "tg_nn_load: module is NULL");
    if (!little_endian())
        return tg_status_set(st, TG_ESTATE, "tg_nn_load: big-endian hosts are not supported");
    model_file mf;
    int rc = parse(path, &mf, st);
    if (rc) return rc;
    rc = load_checked(m, path, &mf, true, st);
    model_file_free(&mf);
    return rc;
}

int tg_nn_image_load(tg_module *m, const char *what, const unsigned char *p, size_t len, bool apply,
                     tg_status *st)
{
    if (!little_endian())
        return tg_status_set(st, TG_ESTATE, "%s: big-endian hosts are not supported", what);
    model_file mf = {0};
    mf.p = (unsigned char *)(uintptr_t)p, mf.len = len;
    int rc = parse_mem(what, &mf, false, st);
    if (rc) return rc;
    rc = load_checked(m, what, &mf, apply, st);
    mf.p = NULL; /* borrowed */
    model_file_free(&mf);
    return rc;
}
