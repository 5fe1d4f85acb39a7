/* test/fuzz_idx.c: libFuzzer harness for the IDX reader (`make fuzz`). Each input is loaded
 * three ways: written raw (so the fuzzer's own bytes are the file, a gzip stream included),
 * gzip-compressed whole, and gzip-compressed then damaged where the input's last three bytes
 * say (cut, a bit flipped, bytes appended). The reader must return an error or a tensor,
 * never crash, leak or read out of bounds, and keep the contract: a tensor of finite values
 * on success; no output and a message naming the file on failure; the same data plain or
 * compressed loads the same; a cut stream, a flipped trailer or appended bytes never load. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "tapegrad.h"

static void spill(const char *path, const unsigned char *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size) fwrite(data, 1, size, f);
    fclose(f);
}

/* gzip of data in a malloc'd buffer (*n bytes). */
static unsigned char *gzip(const unsigned char *data, size_t size, int level, size_t *n)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    size_t cap = deflateBound(&z, (uLong)size) + 64;
    unsigned char *out = malloc(cap);
    z.next_in = (unsigned char *)data, z.avail_in = (uInt)size;
    z.next_out = out, z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
    *n = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

/* Loads path; aborts if the contract is broken. Returns the code; the tensor in *t (or NULL). */
static int load(const char *path, tg_dtype dt, tg_tensor **t)
{
    tg_status st;
    *t = NULL;
    int rc = tg_idx_load(path, dt, t, &st);
    if (rc == TG_OK) {
        if (!*t) abort();
        for (int64_t i = 0; i < tg_tensor_numel(*t); i++)
            if (!isfinite(tg_get(*t, i))) abort(); /* no silent infinity */
    } else if (*t || rc != st.code || !strstr(st.msg, path)) {
        abort();
    }
    return rc;
}

static bool same(const tg_tensor *a, const tg_tensor *b)
{
    if (tg_tensor_ndim(a) != tg_tensor_ndim(b) || tg_tensor_numel(a) != tg_tensor_numel(b))
        return false;
    for (int d = 0; d < tg_tensor_ndim(a); d++)
        if (tg_tensor_dim(a, d) != tg_tensor_dim(b, d)) return false;
    return memcmp(tg_data((tg_tensor *)a), tg_data((tg_tensor *)b),
                  (size_t)tg_tensor_numel(a) * tg_dtype_size(tg_tensor_dtype(a))) == 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/tg_fuzz_idx_%d", (int)getpid());

    /* raw, as f32 and f64: f32 refuses more (values beyond its range), never less */
    tg_tensor *raw32, *raw64, *t;
    spill(path, data, size);
    int rc32 = load(path, TG_F32, &raw32), rc64 = load(path, TG_F64, &raw64);
    if (rc32 == TG_OK && rc64 != TG_OK) abort();
    tg_tensor_free(raw64);

    /* compressed whole: the same outcome as the plain bytes (unless they were gzip already) */
    size_t n;
    /* NOLINTNEXTLINE(bugprone-narrowing-conversions): size % 10 is 0..9 */
    unsigned char *gz = gzip(data, size, size % 10, &n);
    spill(path, gz, n);
    int rc = load(path, TG_F32, &t);
    bool was_gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    if (!was_gzip && ((rc == TG_OK) != (rc32 == TG_OK) || (rc == TG_OK && !same(t, raw32))))
        abort();
    tg_tensor_free(t), tg_tensor_free(raw32);
    free(gz);

    /* compressed, then damaged: the payload is the input but its last three bytes, which
     * choose what is done (mode) and where (pos) */
    if (size >= 3) {
        size_t body = size - 3, pos = (size_t)data[body] << 8 | data[body + 1];
        int mode = data[body + 2] % 3;
        gz = gzip(data, body, 6, &n);
        unsigned char *bad = malloc(n + 4);
        memcpy(bad, gz, n);
        size_t len = n;
        bool must_fail = true;
        if (mode == 0) { /* cut anywhere */
            len = pos % n;
        } else if (mode == 1) { /* one bit flipped; in the 8-byte trailer it must be seen */
            size_t bit = pos % (8 * n);
            bad[bit / 8] ^= (unsigned char)(1u << bit % 8);
            must_fail = bit / 8 >= n - 8;
        } else { /* 1 to 4 bytes after the stream: never a whole second member */
            size_t extra = 1 + pos % 4;
            for (size_t i = 0; i < extra; i++) bad[n + i] = (unsigned char)((pos >> 2) + i);
            len = n + extra;
        }
        spill(path, bad, len);
        rc = load(path, TG_F64, &t);
        if (must_fail && rc == TG_OK) abort();
        tg_tensor_free(t);
        free(bad), free(gz);
    }
    unlink(path);
    return 0;
}
