/* test/test_data.c: IDX (plain and gzip) and CSV readers on small files written here, their
 * errors (with file, offset or line, and reason), Fashion-MNIST when installed, splits,
 * standardisation, batching and metrics. */
#include <ctype.h>
#include <float.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "tapegrad.h"

static char dir[64];

static void path_of(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", dir, name);
}

static void write_bytes(const char *p, const void *b, size_t n, bool gz)
{
    if (gz) {
        gzFile g = gzopen(p, "wb");
        gzwrite(g, b, (unsigned)n);
        gzclose(g);
    } else {
        FILE *f = fopen(p, "wb");
        fwrite(b, 1, n, f);
        fclose(f);
    }
}

static void write_text(const char *p, const char *s) { write_bytes(p, s, strlen(s), false); }

static void test_idx(void)
{
    char p[128];
    /* ubyte images [2, 2, 3] -> [2, 6] scaled by 1/255 */
    const unsigned char img[] = {0, 0, 8, 3,  0,   0,   0,   2,   0,   0, 0, 2, 0, 0,
                                 0, 3, 0, 51, 102, 153, 204, 255, 255, 0, 0, 0, 0, 51};
    for (int gz = 0; gz < 2; gz++) {
        path_of(p, sizeof p, gz ? "img.gz" : "img");
        write_bytes(p, img, sizeof img, gz);
        tg_tensor *t = NULL;
        tg_status st;
        CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_OK);
        CHECK(t && tg_tensor_ndim(t) == 2 && tg_tensor_dim(t, 0) == 2 && tg_tensor_dim(t, 1) == 6);
        CHECK(t && fabs(tg_get(t, 1) - 0.2) < 1e-7 && tg_get(t, 5) == 1 && tg_get(t, 6) == 1);
        tg_tensor_free(t);
    }
    /* int32 big-endian labels and a double vector */
    const unsigned char ints[] = {0, 0, 0x0C, 1, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xfe, 0, 0, 1, 0};
    path_of(p, sizeof p, "ints");
    write_bytes(p, ints, sizeof ints, false);
    tg_tensor *t = NULL;
    tg_status st;
    CHECK(tg_idx_load(p, TG_F64, &t, &st) == TG_OK);
    CHECK(t && tg_get(t, 0) == -2 && tg_get(t, 1) == 256);
    tg_tensor_free(t);
    unsigned char dbl[8 + 8] = {0, 0, 0x0E, 1, 0, 0, 0, 1};
    double v = -1.5;
    uint64_t u;
    memcpy(&u, &v, 8);
    for (int i = 0; i < 8; i++) dbl[8 + i] = (unsigned char)(u >> (56 - 8 * i));
    path_of(p, sizeof p, "dbl");
    write_bytes(p, dbl, sizeof dbl, false);
    t = NULL;
    CHECK(tg_idx_load(p, TG_F64, &t, &st) == TG_OK && t && tg_get(t, 0) == -1.5);
    tg_tensor_free(t);

    /* Errors: the file named, with offset and reason; the output untouched. */
    tg_tensor *keep = (tg_tensor *)&st; /* a sentinel: must not be overwritten */
    t = keep;
    path_of(p, sizeof p, "trunc");
    write_bytes(p, img, sizeof img - 3, false);
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_EFORMAT && t == keep);
    CHECK_STR_HAS(st.msg, p);
    CHECK_STR_HAS(st.msg, "offset 25: truncated");
    write_bytes(p, img, sizeof img - 3, true);
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_EFORMAT && t == keep);
    const unsigned char magic[] = {1, 0, 8, 1, 0, 0, 0, 0};
    write_bytes(p, magic, sizeof magic, false);
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_EFORMAT);
    CHECK_STR_HAS(st.msg, "bad IDX magic 01 00 08 01");
    /* A header promising 2^32-1 × 2^32-1 bytes must not allocate them. */
    const unsigned char huge[] = {0,    0,    8,    2,    0xff, 0xff, 0xff, 0xff,
                                  0xff, 0xff, 0xff, 0xff, 1,    2,    3};
    write_bytes(p, huge, sizeof huge, false);
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_EFORMAT);
    CHECK_STR_HAS(st.msg, "promises more data than the file can hold");
    write_bytes(p, huge, sizeof huge, true);
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_EFORMAT);
    unsigned char extra[sizeof img + 1];
    memcpy(extra, img, sizeof img);
    extra[sizeof img] = 7;
    write_bytes(p, extra, sizeof extra, false);
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_EFORMAT);
    CHECK_STR_HAS(st.msg, "data after the last element");
    /* A corrupted gzip stream. */
    path_of(p, sizeof p, "img.gz");
    FILE *f = fopen(p, "r+b");
    fseek(f, 14, SEEK_SET);
    fputc(0x55, f);
    fputc(0xaa, f);
    fclose(f);
    CHECK(tg_idx_load(p, TG_F32, &t, &st) < 0 && t == keep);
    CHECK(tg_idx_load("/nonexistent/x", TG_F32, &t, &st) == TG_EIO);
    CHECK(tg_idx_load(dir, TG_F32, &t, &st) == TG_EIO); /* a directory */
}

/* Images kept as bytes give the same batches as images loaded as f32. */
static void check_bytes_loader(const tg_dataset *tr)
{
    tg_dataset b, bt, s1, s2;
    tg_status st;
    CHECK(tg_load_mnist_bytes(NULL, TG_F32, &b, &bt, &st) == TG_OK);
    CHECK(b.x == NULL && b.x_bytes && b.n == tr->n && b.d == tr->d && b.n_classes == tr->n_classes);
    tg_batcher *p = tg_batcher_new(tr, 100, true, 5, &st),
               *q = tg_batcher_new(&b, 100, true, 5, &st);
    tg_tensor *px = NULL, *py = NULL, *qx = NULL, *qy = NULL;
    CHECK(p && q && tg_batcher_next(p, &px, &py) && tg_batcher_next(q, &qx, &qy));
    CHECK(px && qx && memcmp(tg_data(px), tg_data(qx), 100 * 784 * sizeof(float)) == 0);
    CHECK(py && qy && memcmp(tg_data(py), tg_data(qy), 100 * sizeof(float)) == 0);
    CHECK(tg_dataset_split(&b, 0.5, 1, &s1, &s2, &st) == TG_EARG); /* needs x */
    tg_batcher_free(p), tg_batcher_free(q);
    tg_dataset_free(&b), tg_dataset_free(&bt);
}

static void test_fashion_mnist(void)
{
    if (access("/usr/share/datasets/fashion-mnist", R_OK) != 0) {
        printf("  note: dataset-fashion-mnist is not installed; its loader is not checked\n");
        return;
    }
    tg_dataset tr, te;
    tg_status st;
    CHECK(tg_load_mnist_dir(NULL, TG_F32, &tr, &te, &st) == TG_OK);
    CHECK(tr.n == 60000 && te.n == 10000 && tr.d == 784 && tr.n_classes == 10);
    check_bytes_loader(&tr);
    double lo = 1, hi = 0, sum = 0;
    for (int64_t i = 0; i < 784 * 100; i++) {
        double v = tg_get(tr.x, i);
        lo = fmin(lo, v), hi = fmax(hi, v), sum += v;
    }
    CHECK(lo == 0 && hi == 1 && sum > 0);
    CHECK(tg_get(tr.y, 0) == 9); /* the first training image is an ankle boot */
    int64_t counts[10] = {0};
    for (int64_t i = 0; i < te.n; i++) counts[(int)tg_get(te.y, i)]++;
    for (int c = 0; c < 10; c++) CHECK(counts[c] == 1000);
    tg_dataset_free(&tr), tg_dataset_free(&te);
    CHECK(tg_load_mnist_dir("/nonexistent", TG_F32, &tr, &te, &st) == TG_EIO);
    CHECK_STR_HAS(st.msg, "/nonexistent/train-images-idx3-ubyte");
}

static void test_csv(void)
{
    char p[128];
    tg_dataset ds;
    tg_status st;
    path_of(p, sizeof p, "a.csv");
    write_text(p, "x1, x2 ,label\n1,2,0\n3,4,2\n\n5,6,1\r\n");
    CHECK(tg_csv_load(p, TG_F64, NULL, &ds, &st) == TG_OK);
    CHECK(ds.n == 3 && ds.d == 2 && ds.n_classes == 3);
    CHECK(tg_get(ds.x, 3) == 4 && tg_get(ds.y, 1) == 2 && tg_get(ds.x, 4) == 5);
    tg_dataset_free(&ds);
    /* No header, label in column 0, regression, semicolons. */
    write_text(p, "0.5;1;2\n-1.5;3;4e1\n");
    tg_csv_opts o = {.header = -1, .label_col = 0, .regression = true, .delim = ';'};
    CHECK(tg_csv_load(p, TG_F32, &o, &ds, &st) == TG_OK);
    CHECK(ds.n == 2 && ds.d == 2 && ds.n_classes == 0 && tg_tensor_ndim(ds.y) == 2);
    CHECK(tg_get(ds.y, 1) == -1.5 && tg_get(ds.x, 3) == 40);
    tg_dataset_free(&ds);

    ds.x = NULL;
    write_text(p, "1,2,0\n3,4\n");
    CHECK(tg_csv_load(p, TG_F64, NULL, &ds, &st) == TG_EFORMAT && ds.x == NULL);
    CHECK_STR_HAS(st.msg, ":2: 2 fields, line 1 has 3");
    write_text(p, "1,2,0\n3,abc,1\n");
    CHECK(tg_csv_load(p, TG_F64, NULL, &ds, &st) == TG_EFORMAT);
    CHECK_STR_HAS(st.msg, ":2:3: field 2 'abc' is not a number");
    write_text(p, "1,2,0.5\n");
    CHECK(tg_csv_load(p, TG_F64, NULL, &ds, &st) == TG_EFORMAT);
    CHECK_STR_HAS(st.msg, ":1:5: label 0.5 is not a class index");
    write_text(p, "");
    CHECK(tg_csv_load(p, TG_F64, NULL, &ds, &st) == TG_EFORMAT);
    CHECK_STR_HAS(st.msg, "no data rows");
    write_text(p, "a,b\n");
    CHECK(tg_csv_load(p, TG_F64, NULL, &ds, &st) == TG_EFORMAT);
    write_text(p, "1,2\n");
    o = (tg_csv_opts){.header = 0, .label_col = 5};
    CHECK(tg_csv_load(p, TG_F64, &o, &ds, &st) == TG_EARG);
    CHECK_STR_HAS(st.msg, "label column 5 out of range");
    write_bytes(p, "1,2\n\0\n", 6, false);
    CHECK(tg_csv_load(p, TG_F64, NULL, &ds, &st) == TG_EFORMAT);
    CHECK(tg_csv_load("/nonexistent.csv", TG_F64, NULL, &ds, &st) == TG_EIO);
    CHECK(ds.x == NULL);
}

static void test_split_batches_metrics(void)
{
    int64_t xs[2] = {10, 2}, ys[1] = {10};
    tg_dataset all = {tg_tensor_new(TG_F64, 2, xs), tg_tensor_new(TG_F64, 1, ys), 10, 2, 10, NULL};
    for (int i = 0; i < 10; i++)
        tg_set(all.x, 2 * i, i), tg_set(all.x, 2 * i + 1, 100 + i), tg_set(all.y, i, i);
    tg_dataset tr, te;
    tg_status st;
    CHECK(tg_dataset_split(&all, 0.3, 7, &tr, &te, &st) == TG_OK);
    CHECK(tr.n == 7 && te.n == 3);
    bool seen[10] = {false}, rows_ok = true;
    tg_dataset *sets[2] = {&tr, &te};
    for (int s = 0; s < 2; s++)
        for (int64_t i = 0; i < sets[s]->n; i++) {
            int k = (int)tg_get(sets[s]->y, i);
            rows_ok &= !seen[k] && tg_get(sets[s]->x, 2 * i) == k &&
                       tg_get(sets[s]->x, 2 * i + 1) == 100 + k;
            seen[k] = true;
        }
    CHECK(rows_ok); /* a permutation: every row once, x and y kept together */
    tg_dataset tr2, te2;
    CHECK(tg_dataset_split(&all, 0.3, 7, &tr2, &te2, &st) == TG_OK);
    CHECK(memcmp(tg_data(tr.y), tg_data(tr2.y), 7 * sizeof(double)) == 0); /* seeded */
    CHECK(tg_dataset_split(&all, 1.0, 7, &tr2, &te2, &st) == TG_EARG);
    tg_dataset_free(&tr2), tg_dataset_free(&te2);

    CHECK(tg_dataset_standardize(&tr, &te) == TG_OK);
    double m = 0, v = 0;
    for (int64_t i = 0; i < tr.n; i++) m += tg_get(tr.x, 2 * i) / 7;
    for (int64_t i = 0; i < tr.n; i++) v += pow(tg_get(tr.x, 2 * i) - m, 2) / 7;
    CHECK(fabs(m) < 1e-12 && fabs(v - 1) < 1e-12);

    /* Batches: 10 rows in 4s: 4, 4, 2; every row once per epoch; reshuffled next epoch. */
    tg_batcher *b = tg_batcher_new(&all, 4, true, 3, &st);
    CHECK(b && tg_batcher_count(b) == 3);
    tg_tensor *bx, *by;
    int sizes[3] = {0}, nb = 0;
    double order1[10] = {0}, order2[10] = {0}; /* zeros where a short epoch left a gap */
    int k = 0;
    while (tg_batcher_next(b, &bx, &by)) {
        if (nb < 3) sizes[nb] = (int)tg_tensor_dim(bx, 0);
        nb++;
        for (int64_t i = 0; i < tg_tensor_dim(by, 0); i++) {
            order1[k++] = tg_get(by, i);
            CHECK(tg_get(bx, 2 * i) == tg_get(by, i));
        }
    }
    CHECK(nb == 3 && sizes[0] == 4 && sizes[1] == 4 && sizes[2] == 2 && k == 10);
    tg_batcher_reset(b);
    k = 0;
    while (tg_batcher_next(b, &bx, &by))
        for (int64_t i = 0; i < tg_tensor_dim(by, 0); i++) order2[k++] = tg_get(by, i);
    double s1 = 0, s2 = 0;
    bool differ = false;
    for (int i = 0; i < 10; i++) s1 += order1[i], s2 += order2[i], differ |= order1[i] != order2[i];
    CHECK(s1 == 45 && s2 == 45 && differ);
    tg_batcher_free(b);
    b = tg_batcher_new(&all, 1, false, 0, &st); /* stochastic, in order */
    CHECK(b && tg_batcher_count(b) == 10 && tg_batcher_next(b, &bx, &by) && tg_get(by, 0) == 0);
    tg_batcher_free(b);
    CHECK(tg_batcher_new(&all, 0, false, 0, &st) == NULL && st.code == TG_EARG);

    int64_t ss[2] = {3, 3};
    tg_tensor *scores =
        tg_tensor_from(TG_F64, 2, ss, (double[]){0.1, 0.8, 0.1, 0.9, 0, 0.1, 0.2, 0.3, 0.5});
    tg_tensor *lab = tg_tensor_from(TG_F64, 1, ss, (double[]){1, 2, 2});
    CHECK_NEAR(tg_accuracy(scores, lab), 2.0 / 3, 1e-15);
    int64_t cm[9];
    CHECK(tg_confusion_matrix(scores, lab, 3, cm) == TG_OK);
    CHECK(cm[1 * 3 + 1] == 1 && cm[2 * 3 + 0] == 1 && cm[2 * 3 + 2] == 1);
    CHECK_NEAR(tg_mse(scores, scores), 0, 0);
    CHECK(isnan(tg_accuracy(scores, scores)));
    tg_tensor_free(scores), tg_tensor_free(lab);
    tg_dataset_free(&tr), tg_dataset_free(&te), tg_dataset_free(&all);
}

/* An IDX file: magic for type code and the dims, then the payload. */
static void write_idx(const char *p, int code, int nd, const uint32_t *dims, const void *payload,
                      size_t n, bool gz)
{
    unsigned char buf[1024] = {0, 0, (unsigned char)code, (unsigned char)nd};
    size_t k = 4;
    for (int i = 0; i < nd; i++, k += 4)
        for (int b = 0; b < 4; b++) buf[k + (size_t)b] = (unsigned char)(dims[i] >> (24 - 8 * b));
    memcpy(buf + k, payload, n);
    write_bytes(p, buf, k + n, gz);
}

static void test_idx_types(void)
{
    char p[128];
    path_of(p, sizeof p, "types");
    tg_tensor *t = NULL;
    tg_status st;
    /* signed bytes: not scaled, even as a matrix (only unsigned bytes are pixels) */
    const unsigned char sb[] = {0xff, 0x7f, 0x80, 0x00};
    write_idx(p, 0x09, 2, (uint32_t[]){2, 2}, sb, sizeof sb, false);
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_OK && st.code == TG_OK);
    CHECK(t && tg_get(t, 0) == -1 && tg_get(t, 1) == 127 && tg_get(t, 2) == -128 &&
          tg_get(t, 3) == 0);
    tg_tensor_free(t);
    /* shorts, big-endian */
    const unsigned char sh[] = {0xff, 0xfe, 0x01, 0x2c};
    write_idx(p, 0x0B, 1, (uint32_t[]){2}, sh, sizeof sh, true);
    CHECK(tg_idx_load(p, TG_F64, &t, &st) == TG_OK);
    CHECK(t && tg_tensor_ndim(t) == 1 && tg_get(t, 0) == -2 && tg_get(t, 1) == 300);
    tg_tensor_free(t);
    /* floats: 1.5 = 3fc00000, -0.25 = be800000; [1, 2] */
    const unsigned char fl[] = {0x3f, 0xc0, 0, 0, 0xbe, 0x80, 0, 0};
    write_idx(p, 0x0D, 2, (uint32_t[]){1, 2}, fl, sizeof fl, false);
    CHECK(tg_idx_load(p, TG_F64, &t, &st) == TG_OK);
    CHECK(t && tg_tensor_dim(t, 0) == 1 && tg_tensor_dim(t, 1) == 2);
    CHECK(t && tg_get(t, 0) == 1.5 && tg_get(t, 1) == -0.25);
    tg_tensor_free(t);
    /* unsigned byte labels (1-D): not scaled */
    const unsigned char lb[] = {0, 9, 255};
    write_idx(p, 0x08, 1, (uint32_t[]){3}, lb, sizeof lb, false);
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_OK);
    CHECK(t && tg_get(t, 0) == 0 && tg_get(t, 1) == 9 && tg_get(t, 2) == 255);
    tg_tensor_free(t);
    /* 4-D ubyte [2, 1, 1, 2] flattens to [2, 2] */
    const unsigned char four[] = {255, 0, 0, 255};
    write_idx(p, 0x08, 4, (uint32_t[]){2, 1, 1, 2}, four, sizeof four, true);
    CHECK(tg_idx_load(p, TG_F64, &t, &st) == TG_OK);
    CHECK(t && tg_tensor_dim(t, 0) == 2 && tg_tensor_dim(t, 1) == 2 && tg_get(t, 3) == 1);
    tg_tensor_free(t);
    /* no rows at all: [0, 3, 3] gives [0, 9] */
    write_idx(p, 0x08, 3, (uint32_t[]){0, 3, 3}, "", 0, false);
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_OK);
    CHECK(t && tg_tensor_dim(t, 0) == 0 && tg_tensor_dim(t, 1) == 9);
    tg_tensor_free(t);
}

static void test_idx_errors(void)
{
    char p[160];
    path_of(p, sizeof p, "bad");
    tg_status st;
    tg_tensor *keep = (tg_tensor *)&st, *t = keep; /* a sentinel: must not be overwritten */
    write_bytes(p, "\0\0", 2, false);
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_EFORMAT && st.code == TG_EFORMAT && t == keep);
    CHECK_STR_HAS(st.msg, "offset 0: shorter than the 4-byte IDX magic");
    write_bytes(p, "\0\0\x0a\x01\0\0\0\0", 8, false); /* 0x0a is no type */
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_EFORMAT && t == keep);
    CHECK_STR_HAS(st.msg, "bad IDX magic 00 00 0a 01");
    write_bytes(p, "\0\0\x08\0", 4, false); /* no dimensions */
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_EFORMAT && t == keep);
    write_bytes(p, "\0\0\x08\x03\0\0\0\x01\0\0", 10, false);
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_EFORMAT && t == keep);
    CHECK_STR_HAS(st.msg, "offset 4: truncated in the 3 dimension sizes");
    /* sizes whose product overflows 64 bits, plain and gzip: refused before allocating */
    uint32_t big[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    for (int gz = 0; gz < 2; gz++) {
        write_idx(p, 0x0E, 4, big, "abcdefgh", 8, gz);
        CHECK(tg_idx_load(p, TG_F64, &t, &st) == TG_EFORMAT && t == keep);
        CHECK_STR_HAS(st.msg, "promises more data than the file can hold");
    }
    /* a gzip file whose header asks for 20000 bytes (within gzip's ratio) but holds 5 */
    write_idx(p, 0x08, 2, (uint32_t[]){200, 100}, "12345", 5, true);
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_EFORMAT && t == keep);
    CHECK_STR_HAS(
        st.msg,
        "offset 17: truncated (the header wants 20000 bytes of data, the gzip stream has 5)");
    /* a huge dimension next to a zero one: no data, but [n, rest] does not fit */
    write_idx(p, 0x08, 3, (uint32_t[]){0, 0xffffffffu, 0xffffffffu}, "", 0, false);
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_EFORMAT && t == keep);
    CHECK_STR_HAS(st.msg, "dimension sizes overflow");

    /* gzip damage: a flipped CRC in the trailer, a cut stream, a corrupted deflate block */
    unsigned char payload[600];
    for (int i = 0; i < 600; i++) payload[i] = (unsigned char)(i * 7);
    write_idx(p, 0x08, 2, (uint32_t[]){20, 30}, payload, sizeof payload, true);
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_OK && t != keep);
    tg_tensor_free(t);
    t = keep;
    FILE *f = fopen(p, "rb");
    unsigned char gzb[2048];
    size_t n = fread(gzb, 1, sizeof gzb, f);
    fclose(f);
    gzb[n - 8] ^= 0x01; /* CRC32 */
    write_bytes(p, gzb, n, false);
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_EFORMAT && t == keep);
    CHECK_STR_HAS(st.msg, p);
    CHECK_STR_HAS(st.msg, "of the gzip file: corrupt gzip data: incorrect data check");
    CHECK(strstr(st.msg + 1, p) == NULL); /* zlib's copy of the path is dropped */
    gzb[n - 8] ^= 0x01;
    write_bytes(p, gzb, n - 12, false);
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_EFORMAT && t == keep);
    CHECK_STR_HAS(st.msg, "of the gzip file: truncated gzip stream (the file ends inside it)");
    for (size_t i = 12; i < n - 8; i++) gzb[i] ^= 0x5a;
    write_bytes(p, gzb, n, false);
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_EFORMAT && t == keep);

    CHECK(tg_idx_load("/nonexistent/x", TG_F32, &t, &st) == TG_EIO && t == keep);
    CHECK_STR_HAS(st.msg, "/nonexistent/x: cannot open: No such file");
    CHECK(tg_idx_load(p, (tg_dtype)7, &t, &st) == TG_EDTYPE);
    CHECK(tg_idx_load(NULL, TG_F32, &t, &st) == TG_EARG);
    CHECK(tg_idx_load(p, TG_F32, NULL, NULL) == TG_EARG);
}

/* A small MNIST-style directory: train 3 images of 2x2, t10k 2; one file gzipped. */
static void test_mnist_fixture(void)
{
    char sub[96], p[160];
    path_of(sub, sizeof sub, "mnist");
    CHECK(mkdir(sub, 0700) == 0);
    const unsigned char tri[12] = {0, 255, 51, 0, 1, 2, 3, 4, 255, 255, 255, 255};
    const unsigned char trl[3] = {2, 0, 1}, tei[8] = {9, 9, 9, 9, 0, 0, 0, 0}, tel[2] = {4, 1};
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", sub);
    write_idx(p, 0x08, 3, (uint32_t[]){3, 2, 2}, tri, sizeof tri, true);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", sub);
    write_idx(p, 0x08, 1, (uint32_t[]){3}, trl, sizeof trl, false);
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", sub);
    write_idx(p, 0x08, 3, (uint32_t[]){2, 2, 2}, tei, sizeof tei, false);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", sub);
    write_idx(p, 0x08, 1, (uint32_t[]){2}, tel, sizeof tel, false);
    tg_dataset tr, te;
    tg_status st;
    CHECK(tg_load_mnist_dir(sub, TG_F64, &tr, &te, &st) == TG_OK);
    CHECK(tr.n == 3 && tr.d == 4 && te.n == 2 && te.d == 4);
    CHECK(tr.n_classes == 5 && te.n_classes == 5); /* the larger of the two splits */
    CHECK(tg_get(tr.x, 1) == 1 && tg_get(tr.x, 2) == 0.2 && tg_get(tr.y, 0) == 2);
    CHECK(tg_get(te.x, 0) == 9.0 / 255 && tg_get(te.y, 0) == 4);
    tg_dataset_free(&tr), tg_dataset_free(&te);
    CHECK(tr.x == NULL && tr.n == 0 && te.n_classes == 0);
    tg_dataset_free(NULL);

    /* 2 test labels for 3 test images; then a missing file: outputs untouched */
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", sub);
    write_idx(p, 0x08, 1, (uint32_t[]){1}, tel, 1, false);
    tr.n = te.n = -7;
    CHECK(tg_load_mnist_dir(sub, TG_F32, &tr, &te, &st) == TG_EFORMAT && tr.n == -7 && te.n == -7);
    CHECK_STR_HAS(st.msg, "2 images but 1 labels");
    /* labels that are not classes (an int file with 300) */
    write_idx(p, 0x0C, 1, (uint32_t[]){2}, (unsigned char[]){0, 0, 1, 44, 0, 0, 0, 1}, 8, false);
    CHECK(tg_load_mnist_dir(sub, TG_F32, &tr, &te, &st) == TG_EFORMAT && tr.n == -7);
    CHECK_STR_HAS(st.msg, "label 0 is 300");
    unlink(p);
    CHECK(tg_load_mnist_dir(sub, TG_F32, &tr, &te, &st) == TG_EIO && tr.n == -7);
    CHECK_STR_HAS(st.msg, "t10k-labels-idx1-ubyte: cannot open");
}

static void test_csv_more(void)
{
    char p[128];
    path_of(p, sizeof p, "b.csv");
    tg_dataset ds, sentinel = {.n = -5};
    tg_status st;
    /* BOM, tabs, label in the middle (-2), blank lines counted in line numbers */
    write_text(p, "\xEF\xBB\xBF"
                  "1\t7\t2\n\n 3 \t0\t4\n");
    tg_csv_opts o = {.header = -1, .label_col = -2, .delim = '\t'};
    CHECK(tg_csv_load(p, TG_F32, &o, &ds, &st) == TG_OK && st.code == TG_OK);
    CHECK(ds.n == 2 && ds.d == 2 && ds.n_classes == 8 && tg_tensor_ndim(ds.y) == 1);
    CHECK(tg_get(ds.y, 0) == 7 && tg_get(ds.y, 1) == 0);
    CHECK(tg_get(ds.x, 0) == 1 && tg_get(ds.x, 1) == 2 && tg_get(ds.x, 2) == 3 &&
          tg_get(ds.x, 3) == 4);
    tg_dataset_free(&ds);
    /* a forced header skips a numeric first line; forced none refuses a text one */
    write_text(p, "9,9,9\n1,2,1\n");
    o = (tg_csv_opts){.header = 1, .label_col = -1};
    CHECK(tg_csv_load(p, TG_F64, &o, &ds, &st) == TG_OK && ds.n == 1 && tg_get(ds.x, 0) == 1);
    tg_dataset_free(&ds);
    write_text(p, "a,b,c\n1,2,1\n");
    o = (tg_csv_opts){.header = 0, .label_col = -1};
    ds = sentinel;
    CHECK(tg_csv_load(p, TG_F64, &o, &ds, &st) == TG_EFORMAT && ds.n == -5);
    CHECK_STR_HAS(st.msg, ":1: field 1 'a' is not a number");
    /* regression targets are [n, 1] and may be anything finite */
    write_text(p, "h1,h2\n1,-2.5\n2,1e-3\n");
    o = (tg_csv_opts){.header = -1, .label_col = -1, .regression = true};
    CHECK(tg_csv_load(p, TG_F64, &o, &ds, &st) == TG_OK && ds.n == 2 && ds.d == 1);
    CHECK(tg_tensor_ndim(ds.y) == 2 && tg_tensor_dim(ds.y, 1) == 1 && tg_get(ds.y, 0) == -2.5);
    CHECK(ds.n_classes == 0 && tg_get(ds.y, 1) == 1e-3);
    tg_dataset_free(&ds);

    /* errors, each with the file, the line and the reason; ds untouched */
    struct {
        const char *text, *msg;
        int code;
    } bad[] = {
        {"1,2,0\n\n3,4,1,5\n", ":3: 4 fields, line 1 has 3", TG_EFORMAT},
        {"x,y\n1,2\n3\n", ":3: 1 fields, line 1 has 2", TG_EFORMAT},
        {"1,2,-1\n", ":1:5: label -1 is not a class index", TG_EFORMAT},
        {"1,2,10000\n", ":1:5: label 10000 is not a class index", TG_EFORMAT},
        {"1,2,1\n1,nan,1\n", ":2:3: field 2 'nan' is not a finite number", TG_EFORMAT},
        {"1,inf,1\n", ":1:3: field 2 'inf' is not a finite number", TG_EFORMAT},
        {"1,2x,0\n1,2,0\n", ":1:3: field 2 '2x' is not a number", TG_EFORMAT}, /* not a header */
        {"1,1e999,1\n", ":1:3: field 2 '1e999' is beyond f64's range", TG_EFORMAT},
        {"1,,1\n", ":1:3: field 2 '' is not a number", TG_EFORMAT},
        {"\"1\",2,1\n", "field 1 '\"1\"' is not a number", TG_EFORMAT},
        {"1,2 3,1\r\n", "field 2 '2 3' is not a number", TG_EFORMAT},
        {"a,b,c\n", "no data rows after the header", TG_EFORMAT},
        {"\n \n\r\n", "no data rows", TG_EFORMAT},
        {"1\n2\n", ":1: one field", TG_EFORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(p, bad[i].text);
        ds = sentinel;
        st.code = 0;
        CHECK(tg_csv_load(p, TG_F32, NULL, &ds, &st) == bad[i].code && st.code == bad[i].code);
        CHECK(ds.n == -5 && ds.x == NULL);
        CHECK_STR_HAS(st.msg, bad[i].msg);
        CHECK_STR_HAS(st.msg, p);
    }
    o = (tg_csv_opts){.header = -1, .label_col = -1, .delim = '.'};
    CHECK(tg_csv_load(p, TG_F32, &o, &ds, &st) == TG_EARG && ds.n == -5);
    o = (tg_csv_opts){.header = 2, .label_col = -1};
    CHECK(tg_csv_load(p, TG_F32, &o, &ds, &st) == TG_EARG);
    write_text(p, "1,2\n");
    o = (tg_csv_opts){.header = 0, .label_col = -3};
    CHECK(tg_csv_load(p, TG_F32, &o, &ds, &st) == TG_EARG && ds.n == -5);
    CHECK(tg_csv_load(dir, TG_F32, NULL, &ds, &st) == TG_EIO && ds.n == -5);
    CHECK(tg_csv_load(NULL, TG_F32, NULL, &ds, &st) == TG_EARG);
}

static void test_standardize_values(void)
{
    /* column 0: 1, 2, 3 (mean 2, population sd sqrt(2/3)); column 1 constant 4 */
    int64_t xs[2] = {3, 2}, ys[1] = {3}, os[2] = {1, 2}, o1[1] = {1};
    for (int f64 = 0; f64 < 2; f64++) {
        tg_dtype dt = f64 ? TG_F64 : TG_F32;
        /* clang-format off */
        tg_dataset fit = {tg_tensor_from(TG_F64, 2, xs, (double[]){1, 4, 2, 4, 3, 4}),
                          tg_tensor_new(dt, 1, ys), 3, 2, 2, NULL};
        tg_dataset other = {tg_tensor_from(TG_F64, 2, os, (double[]){5, 7}),
                            tg_tensor_new(dt, 1, o1), 1, 2, 2, NULL};
        /* clang-format on */
        if (!f64) { /* f32 copies of the same values */
            tg_tensor *a = tg_tensor_new(TG_F32, 2, xs), *b = tg_tensor_new(TG_F32, 2, os);
            tg_tensor_copy(a, fit.x), tg_tensor_copy(b, other.x);
            tg_tensor_free(fit.x), tg_tensor_free(other.x);
            fit.x = a, other.x = b;
        }
        CHECK(tg_dataset_standardize(&fit, &other) == TG_OK);
        double sd = sqrt(2.0 / 3), tol = f64 ? 1e-15 : 1e-6;
        CHECK_NEAR(tg_get(fit.x, 0), -1 / sd, tol);
        CHECK_NEAR(tg_get(fit.x, 2), 0, tol);
        CHECK_NEAR(tg_get(fit.x, 4), 1 / sd, tol);
        CHECK(tg_get(fit.x, 1) == 0 && tg_get(fit.x, 5) == 0); /* constant: only centred */
        CHECK_NEAR(tg_get(other.x, 0), 3 / sd, 4 * tol);       /* the training set's statistics */
        CHECK(tg_get(other.x, 1) == 3);
        tg_dataset narrow = {other.x, other.y, 1, 1, 2, NULL};
        CHECK(tg_dataset_standardize(&fit, &narrow) == TG_EARG); /* d does not match x */
        tg_dataset empty = {0};
        CHECK(tg_dataset_standardize(&empty, NULL) == TG_EARG);
        CHECK(tg_dataset_standardize(NULL, NULL) == TG_EARG);
        tg_dataset_free(&fit), tg_dataset_free(&other);
    }
}

static void test_batches_more(void)
{
    /* regression y [5, 2]; rows stay together; full batch and batch > n */
    int64_t xs[2] = {5, 1}, ys[2] = {5, 2};
    tg_dataset ds = {tg_tensor_new(TG_F32, 2, xs), tg_tensor_new(TG_F32, 2, ys), 5, 1, 0, NULL};
    for (int i = 0; i < 5; i++)
        tg_set(ds.x, i, i), tg_set(ds.y, 2 * i, 10 * i), tg_set(ds.y, 2 * i + 1, -i);
    tg_status st;
    for (int64_t bs = 5; bs <= 9; bs += 4) {
        tg_batcher *b = tg_batcher_new(&ds, bs, true, 11, &st);
        tg_tensor *x, *y;
        CHECK(b && tg_batcher_count(b) == 1 && tg_batcher_next(b, &x, &y));
        CHECK(tg_tensor_dim(x, 0) == 5 && tg_tensor_dim(y, 0) == 5 && tg_tensor_dim(y, 1) == 2);
        bool ok = true;
        for (int i = 0; i < 5; i++)
            ok &= tg_get(y, 2 * i) == 10 * tg_get(x, i) && tg_get(y, 2 * i + 1) == -tg_get(x, i);
        CHECK(ok);
        CHECK(!tg_batcher_next(b, &x, &y) && !tg_batcher_next(b, &x, &y)); /* stays at the end */
        tg_batcher_free(b);
    }
    /* batches of 2: [2, 2, 1]; the same tensors come back every epoch (no allocation) */
    tg_batcher *b = tg_batcher_new(&ds, 2, true, 5, &st),
               *b2 = tg_batcher_new(&ds, 2, true, 5, &st);
    tg_tensor *x, *y, *first[3], *x2, *y2;
    int k = 0;
    bool same = true;
    while (tg_batcher_next(b, &x, &y)) {
        CHECK(tg_batcher_next(b2, &x2, &y2));
        same &= memcmp(tg_data(x), tg_data(x2), (size_t)tg_tensor_numel(x) * sizeof(float)) == 0;
        if (k < 3) first[k] = x;
        k++;
    }
    CHECK(k == 3 && same); /* the same seed, the same order */
    CHECK(tg_tensor_dim(first[0], 0) == 2 && tg_tensor_dim(first[2], 0) == 1);
    tg_batcher_reset(b);
    k = 0;
    while (tg_batcher_next(b, &x, &y)) CHECK(k < 3 && x == first[k++]);
    CHECK(tg_batcher_next(NULL, &x, &y) == false && tg_batcher_count(NULL) == 0);
    tg_batcher_reset(NULL);
    tg_batcher_free(b), tg_batcher_free(b2), tg_batcher_free(NULL);
    /* in order without shuffle, stochastic */
    b = tg_batcher_new(&ds, 1, false, 0, &st);
    k = 0;
    while (tg_batcher_next(b, &x, NULL)) CHECK(tg_get(x, 0) == k++);
    CHECK(k == 5);
    tg_batcher_free(b);
    tg_dataset bad = ds;
    bad.n = 4;
    CHECK(tg_batcher_new(&bad, 2, false, 0, &st) == NULL && st.code == TG_EARG);
    CHECK(tg_batcher_new(NULL, 2, false, 0, NULL) == NULL);

    /* a split keeps n_classes and d, leaves outputs alone on error */
    tg_dataset tr = {.n = -3}, te = {.n = -3};
    CHECK(tg_dataset_split(&ds, 0.01, 1, &tr, &te, &st) == TG_EARG && tr.n == -3 && te.n == -3);
    CHECK_STR_HAS(st.msg, "5 rows cannot be split");
    CHECK(tg_dataset_split(&ds, (double)NAN, 1, &tr, &te, &st) == TG_EARG && tr.n == -3);
    CHECK(tg_dataset_split(&ds, 0.4, 1, &tr, &te, &st) == TG_OK);
    CHECK(tr.n == 3 && te.n == 2 && tr.d == 1 && tg_tensor_dim(te.y, 1) == 2 && tr.n_classes == 0);
    CHECK(tg_get(ds.x, 3) == 3); /* the source is not changed */
    tg_dataset_free(&tr), tg_dataset_free(&te), tg_dataset_free(&ds);
}

static void test_metrics_more(void)
{
    int64_t s3[1] = {3}, s22[2] = {2, 2};
    tg_tensor *a = tg_tensor_from(TG_F64, 1, s3, (double[]){1, 2, 3});
    tg_tensor *b = tg_tensor_from(TG_F32, 1, s3, (float[]){1, 0, 0});
    CHECK_NEAR(tg_mse(a, b), 13.0 / 3, 1e-15);
    tg_tensor *sc = tg_tensor_from(TG_F32, 2, s22, (float[]){1, 0, 0, 1});
    CHECK(isnan(tg_mse(a, sc)) && isnan(tg_mse(NULL, a)) && isnan(tg_accuracy(NULL, a)));
    int64_t s2[1] = {2};
    tg_tensor *lab = tg_tensor_from(TG_F32, 1, s2, (float[]){0, 5});
    CHECK(isnan(tg_accuracy(sc, lab))); /* label 5 of 2 classes */
    int64_t cm[4] = {-1, -1, -1, -1};
    CHECK(tg_confusion_matrix(sc, lab, 2, cm) == TG_EARG && cm[0] == -1); /* label 5 of 2 */
    tg_set(lab, 1, 0);
    CHECK(tg_confusion_matrix(sc, lab, 2, cm) == TG_OK);
    CHECK(cm[0] == 1 && cm[1] == 1 && cm[2] == 0 && cm[3] == 0);
    CHECK(tg_confusion_matrix(sc, lab, 1, cm) == TG_EARG); /* more scores than classes */
    FILE *f = tmpfile();
    const char *names[2] = {"cat", "dog"};
    CHECK(tg_confusion_print(f, cm, 2, names) == TG_OK);
    CHECK(tg_confusion_print(f, cm, 2, NULL) == TG_OK);
    CHECK(tg_confusion_print(NULL, cm, 2, NULL) == TG_EARG);
    char text[1024] = {0};
    rewind(f);
    CHECK(fread(text, 1, sizeof text - 1, f) > 0);
    fclose(f);
    CHECK_STR_HAS(text, "rows: true class");
    CHECK_STR_HAS(text, " 0 cat              1      1   50.0%");
    CHECK_STR_HAS(text, " 1 dog              0      0    0.0%");
    CHECK_STR_HAS(text, "             1      0      0    0.0%");
    CHECK(strcmp(tg_fashion_mnist_classes[9], "Ankle boot") == 0);
    tg_tensor_free(a), tg_tensor_free(b), tg_tensor_free(sc), tg_tensor_free(lab);
}

/* The file's bytes (at most size), or 0 if unreadable. */
static size_t read_back(const char *p, unsigned char *b, size_t size)
{
    FILE *f = fopen(p, "rb");
    if (!f) return 0;
    size_t n = fread(b, 1, size, f);
    fclose(f);
    return n;
}

/* A load that must fail: TG_EFORMAT or TG_EIO, the output untouched, the file and an offset
 * named. */
static bool refused(const char *p, tg_dtype dt)
{
    tg_status st;
    tg_tensor *keep = (tg_tensor *)&st, *t = keep;
    int rc = tg_idx_load(p, dt, &t, &st);
    if (rc == TG_OK) tg_tensor_free(t);
    return (rc == TG_EFORMAT || rc == TG_EIO) && t == keep && st.code == rc && strstr(st.msg, p) &&
           strstr(st.msg, "offset ");
}

/* A gzip IDX file cut at every byte, and with every single bit flipped: a cut always fails
 * (so zlib's CRC-32 and length are always checked); a flip fails or, in what inflate does
 * not read (the gzip header's time and OS, the last byte's padding), loads the same values;
 * bytes after the stream fail; several members are one stream. */
static void test_gzip_damage(void)
{
    char p[128], q[128];
    path_of(p, sizeof p, "dmg.gz");
    path_of(q, sizeof q, "dmg.cut");
    unsigned char payload[60];
    for (int i = 0; i < 60; i++) payload[i] = (unsigned char)(i * 37 + 11);
    write_idx(p, 0x08, 2, (uint32_t[]){6, 10}, payload, sizeof payload, true);
    unsigned char gz[512];
    size_t n = read_back(p, gz, sizeof gz);
    CHECK(n > 30 && n < sizeof gz);
    tg_tensor *good = NULL;
    tg_status st;
    CHECK(tg_idx_load(p, TG_F64, &good, &st) == TG_OK);
    bool all_cuts = true;
    for (size_t cut = 0; cut < n; cut++) {
        write_bytes(q, gz, cut, false);
        all_cuts &= refused(q, cut % 2 ? TG_F32 : TG_F64);
    }
    CHECK(all_cuts);
    write_bytes(q, gz, n - 5, false);
    tg_tensor *t = NULL;
    CHECK(tg_idx_load(q, TG_F32, &t, &st) == TG_EFORMAT && t == NULL);
    char want[256];
    snprintf(want, sizeof want, "%s: offset %zu of the gzip file: truncated gzip stream", q, n - 5);
    CHECK_STR_HAS(st.msg, want);
    /* every bit of the 8-byte trailer (CRC-32, length) */
    bool trailer = true;
    for (size_t bit = 8 * (n - 8); bit < 8 * n; bit++) {
        gz[bit / 8] ^= (unsigned char)(1u << bit % 8);
        write_bytes(q, gz, n, false);
        gz[bit / 8] ^= (unsigned char)(1u << bit % 8);
        trailer &= refused(q, TG_F32);
    }
    CHECK(trailer);
    /* every bit of the file: refused, or the very same values */
    int loaded_other = 0, loaded_same = 0;
    for (size_t bit = 0; bit < 8 * n; bit++) {
        gz[bit / 8] ^= (unsigned char)(1u << bit % 8);
        write_bytes(q, gz, n, false);
        gz[bit / 8] ^= (unsigned char)(1u << bit % 8);
        t = NULL;
        if (tg_idx_load(q, TG_F64, &t, &st) == TG_OK) {
            bool same = tg_tensor_numel(t) == 60 && tg_tensor_dim(t, 0) == 6 &&
                        memcmp(tg_data(t), tg_data(good), 60 * sizeof(double)) == 0;
            same ? loaded_same++ : loaded_other++;
        }
        tg_tensor_free(t);
    }
    CHECK(loaded_other == 0 && loaded_same > 0);
    /* bytes after the stream: a zero, garbage, half a gzip magic */
    const char *tails[3] = {"\0", "junk", "\x1f"};
    for (int k = 0; k < 3; k++) {
        unsigned char more[600];
        memcpy(more, gz, n);
        size_t extra = k == 0 ? 1 : strlen(tails[k]);
        memcpy(more + n, tails[k], extra);
        write_bytes(q, more, n + extra, false);
        CHECK(refused(q, TG_F32));
        tg_idx_load(q, TG_F32, &t, &st);
        CHECK_STR_HAS(st.msg, "after the end of the gzip stream");
    }
    /* two members (the header in one, the data in the other) and an empty third: one stream */
    unsigned char whole[12 + 60] = {0, 0, 8, 2, 0, 0, 0, 6, 0, 0, 0, 10};
    memcpy(whole + 12, payload, 60);
    write_bytes(q, whole, 12, true);
    unsigned char multi[1024];
    size_t m = read_back(q, multi, sizeof multi);
    write_bytes(q, whole + 12, 60, true);
    m += read_back(q, multi + m, sizeof multi - m);
    write_bytes(q, "", 0, true);
    m += read_back(q, multi + m, sizeof multi - m);
    write_bytes(q, multi, m, false);
    t = NULL;
    CHECK(tg_idx_load(q, TG_F64, &t, &st) == TG_OK);
    CHECK(t && memcmp(tg_data(t), tg_data(good), 60 * sizeof(double)) == 0);
    tg_tensor_free(t);
    tg_tensor_free(good);

    /* A file larger than one read (256 KiB), incompressible: cut in the middle, at the read
     * boundary and in the trailer; whole, it loads. */
    size_t big = 300000;
    unsigned char *raw = malloc(16 + big), *packed = malloc(big + 4096);
    memcpy(raw, (unsigned char[]){0, 0, 8, 2, 0, 0, 0x75, 0x30, 0, 0, 0, 10}, 12);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 12; i < 12 + big; i++)
        x ^= x << 13, x ^= x >> 7, x ^= x << 17, raw[i] = (unsigned char)x;
    write_bytes(p, raw, 12 + big, true);
    size_t pn = read_back(p, packed, big + 4096);
    CHECK(pn > 262144 + 16);
    t = NULL;
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_OK && t && tg_tensor_dim(t, 0) == 30000);
    tg_tensor_free(t);
    size_t cuts[6] = {pn / 2, 262143, 262144, 262145, pn - 8, pn - 1};
    for (int k = 0; k < 6; k++) {
        write_bytes(q, packed, cuts[k], false);
        CHECK(refused(q, TG_F32));
    }
    free(raw), free(packed);
}

/* Every reader on what is not a regular file: a FIFO (which would block an fopen), a
 * directory, /dev/null and /dev/zero (which never ends): an error at once, no hang. */
static void test_not_regular(void)
{
    char fifo[128], sub[128], p[200];
    path_of(fifo, sizeof fifo, "fifo");
    path_of(sub, sizeof sub, "notreg");
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK(mkdir(sub, 0700) == 0);
    alarm(20); /* a hang ends the test binary, with no result line: a failure */
    const char *paths[4] = {fifo, sub, "/dev/null", "/dev/zero"};
    const char *kinds[4] = {"a FIFO", "a directory", "a character device", "a character device"};
    for (int i = 0; i < 4; i++) {
        tg_status st;
        tg_tensor *keep = (tg_tensor *)&st, *t = keep;
        CHECK(tg_idx_load(paths[i], TG_F32, &t, &st) == TG_EIO && t == keep);
        CHECK_STR_HAS(st.msg, paths[i]);
        CHECK_STR_HAS(st.msg, kinds[i]);
        tg_dataset ds = {.n = -4};
        CHECK(tg_csv_load(paths[i], TG_F32, NULL, &ds, &st) == TG_EIO && ds.n == -4);
        CHECK_STR_HAS(st.msg, paths[i]);
        CHECK_STR_HAS(st.msg, kinds[i]);
    }
    /* an MNIST directory whose image file is a FIFO */
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", sub);
    CHECK(mkfifo(p, 0600) == 0);
    tg_dataset tr = {.n = -4}, te = {.n = -4};
    tg_status st;
    CHECK(tg_load_mnist_dir(sub, TG_F32, &tr, &te, &st) == TG_EIO && tr.n == -4 && te.n == -4);
    CHECK_STR_HAS(st.msg, "train-images-idx3-ubyte: not a regular file (a FIFO)");
    CHECK(tg_load_mnist_bytes(sub, TG_F32, &tr, &te, &st) == TG_EIO && tr.n == -4);
    alarm(0);
    unlink(p);
}

/* Values beyond the dtype: 1e39, -1e39 and 3.5e38 overflow f32 (not f64), inf and nan are
 * refused for both, 1e-50 becomes 0 in f32; with the file, line and column. */
static void test_csv_values(void)
{
    char p[128], text[256], want[200];
    path_of(p, sizeof p, "v.csv");
    struct {
        const char *v;
        int f32, f64;      /* 1: loads, 0: refused */
        double as32, as64; /* the value loaded */
        const char *why32, *why64;
    } cases[] = {
        {"1e39", 0, 1, 0, 1e39, "beyond f32's range", NULL},
        {"-1e39", 0, 1, 0, -1e39, "beyond f32's range", NULL},
        {"3.5e38", 0, 1, 0, 3.5e38, "beyond f32's range", NULL},
        {"3.4028234663852886e38", 1, 1, (double)FLT_MAX, (double)FLT_MAX, NULL, NULL},
        {"3.4028235677973362e38", 1, 1, (double)FLT_MAX, 3.4028235677973362e38, NULL, NULL},
        {"3.4028235677973366e38", 0, 1, 0, 3.4028235677973366e38, "beyond f32's range", NULL},
        {"1e309", 0, 0, 0, 0, "beyond f64's range", "beyond f64's range"},
        {"-1e309", 0, 0, 0, 0, "beyond f64's range", "beyond f64's range"},
        {"inf", 0, 0, 0, 0, "not a finite number", "not a finite number"},
        {"-Infinity", 0, 0, 0, 0, "not a finite number", "not a finite number"},
        {"nan", 0, 0, 0, 0, "not a finite number", "not a finite number"},
        {"NAN(1)", 0, 0, 0, 0, "not a finite number", "not a finite number"},
        {"1e-50", 1, 1, 0, 1e-50, NULL, NULL},
        {"-1e-50", 1, 1, -0.0, -1e-50, NULL, NULL},
        {"1e-310", 1, 1, 0, 1e-310, NULL, NULL},
        {"1e-400", 1, 1, 0, 0, NULL, NULL},
        {"1e-40", 1, 1, (double)1e-40f, 1e-40, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int col = 0; col < 3; col++)
            for (int f64 = 0; f64 < 2; f64++) {
                /* the value as a feature (column 1 or 2) or the regression target (3) */
                snprintf(text, sizeof text, "a,b,t\n1,2,3\n%s,%s,%s\n", col == 0 ? cases[i].v : "4",
                         col == 1 ? cases[i].v : "5", col == 2 ? cases[i].v : "6");
                write_text(p, text);
                tg_csv_opts o = {.header = -1, .label_col = -1, .regression = true};
                tg_dataset ds = {.n = -9};
                tg_status st;
                int rc = tg_csv_load(p, f64 ? TG_F64 : TG_F32, &o, &ds, &st);
                int ok = f64 ? cases[i].f64 : cases[i].f32;
                CHECK(ok ? rc == TG_OK : rc == TG_EFORMAT && ds.n == -9 && ds.x == NULL);
                if (rc == TG_OK) {
                    double got = col < 2 ? tg_get(ds.x, 2 + col) : tg_get(ds.y, 1);
                    double w = f64 ? cases[i].as64 : cases[i].as32;
                    CHECK(got == w && signbit(got) == signbit(w) && isfinite(got));
                    tg_dataset_free(&ds);
                } else {
                    snprintf(want, sizeof want, "%s:3:%d: field %d '%s' is %s", p, 1 + 2 * col,
                             col + 1, cases[i].v, f64 ? cases[i].why64 : cases[i].why32);
                    CHECK_STR_HAS(st.msg, want);
                }
            }
    /* a class label that overflows or is not finite is not a class */
    write_text(p, "1,2,1e39\n");
    tg_dataset ds = {.n = -9};
    tg_status st;
    CHECK(tg_csv_load(p, TG_F64, NULL, &ds, &st) == TG_EFORMAT && ds.n == -9);
    CHECK_STR_HAS(st.msg, ":1:5: label 1e+39 is not a class index");
    write_text(p, "1,2,nan\n");
    CHECK(tg_csv_load(p, TG_F64, NULL, &ds, &st) == TG_EFORMAT && ds.n == -9);
    CHECK_STR_HAS(st.msg, ":1:5: field 3 'nan' is not a finite number");
}

/* The same class in IDX files: float and double elements, loaded as f32 and f64. */
static void test_idx_values(void)
{
    char p[128], want[200];
    path_of(p, sizeof p, "vals.idx");
    struct {
        double v;
        int f32, f64;
        double as32;
        const char *why32, *why64;
    } cases[] = {
        {1e300, 0, 1, 0, "is 1e+300, beyond f32's range", NULL},
        {-1e39, 0, 1, 0, "is -1e+39, beyond f32's range", NULL},
        {3.5e38, 0, 1, 0, "is 3.5e+38, beyond f32's range", NULL},
        {0x1p128 - 0x1p103, 0, 1, 0, "is 3.40282357e+38, beyond f32's range", NULL}, /* rounds up */
        {0x1p128 - 0x1p103 - 0x1p75, 1, 1, (double)FLT_MAX, NULL, NULL},
        {(double)INFINITY, 0, 0, 0, "is +infinity, not a finite number", "is +infinity"},
        {-(double)INFINITY, 0, 0, 0, "is -infinity", "is -infinity"},
        {(double)NAN, 0, 0, 0, "is NaN, not a finite number", "is NaN"},
        {1e-50, 1, 1, 0, NULL, NULL},
        {-1e-320, 1, 1, -0.0, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int gz = 0; gz < 2; gz++)
            for (int f64 = 0; f64 < 2; f64++) {
                /* 1-D doubles: 0.5, 2, then the value at element 2 (offset 8 + 16) */
                double vals[3] = {0.5, 2, cases[i].v};
                unsigned char payload[24];
                for (int k = 0; k < 3; k++) {
                    uint64_t u;
                    memcpy(&u, &vals[k], 8);
                    for (int b = 0; b < 8; b++)
                        payload[8 * k + b] = (unsigned char)(u >> (56 - 8 * b));
                }
                write_idx(p, 0x0E, 1, (uint32_t[]){3}, payload, sizeof payload, gz);
                tg_status st;
                tg_tensor *keep = (tg_tensor *)&st, *t = keep;
                int rc = tg_idx_load(p, f64 ? TG_F64 : TG_F32, &t, &st);
                int ok = f64 ? cases[i].f64 : cases[i].f32;
                CHECK(ok ? rc == TG_OK : rc == TG_EFORMAT && t == keep);
                if (rc == TG_OK) {
                    double got = tg_get(t, 2), w = f64 ? cases[i].v : cases[i].as32;
                    CHECK(got == w && signbit(got) == signbit(w) && tg_get(t, 0) == 0.5);
                    tg_tensor_free(t);
                } else {
                    snprintf(want, sizeof want, "%s: offset 24: element 2 %s", p,
                             f64 ? cases[i].why64 : cases[i].why32);
                    CHECK_STR_HAS(st.msg, want);
                }
            }
    /* floats (4 bytes): infinity and NaN bits, refused for both dtypes, at their offset */
    const unsigned char fl[12] = {0x3f, 0x80, 0, 0, 0x7f, 0x80, 0, 0, 0x7f, 0xc0, 0, 1};
    for (int f64 = 0; f64 < 2; f64++) {
        write_idx(p, 0x0D, 2, (uint32_t[]){1, 3}, fl, sizeof fl, false);
        tg_status st;
        tg_tensor *keep = (tg_tensor *)&st, *t = keep;
        CHECK(tg_idx_load(p, f64 ? TG_F64 : TG_F32, &t, &st) == TG_EFORMAT && t == keep);
        snprintf(want, sizeof want, "%s: offset 16: element 1 is +infinity", p);
        CHECK_STR_HAS(st.msg, want);
    }
}

/* Delimiters: every byte that can be part of a number (digits, sign, point, exponent, the
 * letters of inf, nan and hex floats), a quote, a line end or a control character is
 * TG_EARG; a space, a tab and other ASCII punctuation split fields. */
static void test_csv_delimiters(void)
{
    char p[128];
    path_of(p, sizeof p, "d.csv");
    const char must_refuse[] = "0123456789+-.eEinfaINFAxXpP\"'\r\n()_";
    bool refused_ok = true, accepted_ok = true;
    for (int c = 1; c < 256; c++) {
        char d = (char)c, text[64];
        snprintf(text, sizeof text, "1%c2%c0\n3%c4%c1\n", d, d, d, d);
        write_text(p, text);
        tg_csv_opts o = {.header = 0, .label_col = -1, .delim = d};
        tg_dataset ds = {.n = -2};
        tg_status st;
        int rc = tg_csv_load(p, TG_F32, &o, &ds, &st);
        bool good = c == ' ' || c == '\t' || (c < 0x80 && ispunct(c) && !strchr(".+-_()\"'", c));
        if (strchr(must_refuse, c)) good = false;
        if (good) {
            accepted_ok &= rc == TG_OK && ds.n == 2 && ds.d == 2 && tg_get(ds.x, 3) == 4;
            if (rc == TG_OK) tg_dataset_free(&ds);
        } else {
            refused_ok &= rc == TG_EARG && st.code == TG_EARG && ds.n == -2 && strstr(st.msg, p) &&
                          strstr(st.msg, "can be part of a number") != NULL;
        }
    }
    CHECK(refused_ok && accepted_ok);
    tg_csv_opts o = {.header = 0, .label_col = -1, .delim = 'e'};
    tg_dataset ds;
    tg_status st;
    CHECK(tg_csv_load(p, TG_F32, &o, &ds, &st) == TG_EARG);
    CHECK_STR_HAS(st.msg, ": delimiter 'e' can be part of a number");
    CHECK_STR_HAS(st.msg, p);
    o.delim = '\r';
    CHECK(tg_csv_load(p, TG_F32, &o, &ds, &st) == TG_EARG);
    CHECK_STR_HAS(st.msg, "delimiter '\\x0d'");
    o.delim = 0; /* the default, ',' */
    write_text(p, "1,2,0\n");
    CHECK(tg_csv_load(p, TG_F32, &o, &ds, &st) == TG_OK && ds.n == 1);
    tg_dataset_free(&ds);
}

/* Line ends: LF, CRLF and CR alone (old Mac files), mixed; line numbers count each once.
 * Bytes that are not printable are shown as \xNN in messages. */
static void test_csv_line_ends(void)
{
    char p[128];
    path_of(p, sizeof p, "le.csv");
    const char *ok[4] = {"a,b,c\r1,2,0\r3,4,1\r", "a,b,c\r1,2,0\r3,4,1", "1,2,0\r\n3,4,1\r5,6,0\n",
                         "\r\r1,2,0\r\r\n\n3,4,1\r5,6,0"};
    int rows[4] = {2, 2, 3, 3};
    for (int i = 0; i < 4; i++) {
        write_text(p, ok[i]);
        tg_dataset ds = {0};
        tg_status st;
        CHECK(tg_csv_load(p, TG_F64, NULL, &ds, &st) == TG_OK && ds.n == rows[i] && ds.d == 2);
        if (ds.x && ds.n == rows[i]) CHECK(tg_get(ds.x, 2) == 3 && tg_get(ds.y, 1) == 1);
        tg_dataset_free(&ds);
    }
    struct {
        const char *text, *msg;
    } bad[] = {
        {"1,2,0\r3,x,1\r", ":2:3: field 2 'x' is not a number"},
        {"1,2,0\r\n3,x,1\r\n", ":2:3: field 2 'x' is not a number"},
        {"1,2,0\n\r3,x,1\n", ":3:3: field 2 'x' is not a number"}, /* LF then CR: two ends */
        {"1,2,0\r3,4\r", ":2: 2 fields, line 1 has 3"},
        {"1,2\x01,0\n", ":1:3: field 2 '2\\x01' is not a number"},
        {"1,\xc3\xa9,0\n", ":1:3: field 2 '\\xc3\\xa9' is not a number"},
        {"1,2\t\v,0\n", ":1:3: field 2 '2\\x09\\x0b' is not a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(p, bad[i].text);
        tg_dataset ds = {.n = -1};
        tg_status st;
        CHECK(tg_csv_load(p, TG_F64, NULL, &ds, &st) == TG_EFORMAT && ds.n == -1);
        CHECK_STR_HAS(st.msg, bad[i].msg);
    }
}

/* Labels that are not classes, in every metric that takes labels: fractional, negative,
 * out of range, NaN, huge. */
static void test_metric_labels(void)
{
    int64_t s22[2] = {2, 2}, s2[1] = {2};
    tg_tensor *sc = tg_tensor_from(TG_F64, 2, s22, (double[]){1, 0, 0, 1});
    const double bad[] = {0.5,   1.5,      -1, -0.5, 2, 3, (double)NAN, (double)INFINITY,
                          1e300, 1 + 1e-15};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        for (int f64 = 0; f64 < 2; f64++) {
            tg_tensor *lab = tg_tensor_new(f64 ? TG_F64 : TG_F32, 1, s2);
            tg_set(lab, 0, 0), tg_set(lab, 1, bad[i]);
            if (!f64 && tg_get(lab, 1) == 1) { /* 1 + 1e-15 is 1 in f32: a class */
                tg_tensor_free(lab);
                continue;
            }
            int64_t cm[4] = {-7, -7, -7, -7};
            CHECK(tg_confusion_matrix(sc, lab, 2, cm) == TG_EARG);
            CHECK(cm[0] == -7 && cm[1] == -7 && cm[2] == -7 && cm[3] == -7);
            CHECK(isnan(tg_accuracy(sc, lab)));
            tg_tensor_free(lab);
        }
    /* -0 is class 0; good labels still work */
    tg_tensor *lab = tg_tensor_from(TG_F64, 1, s2, (double[]){-0.0, 1});
    int64_t cm[4];
    CHECK(tg_confusion_matrix(sc, lab, 2, cm) == TG_OK && cm[0] == 1 && cm[3] == 1);
    CHECK(tg_accuracy(sc, lab) == 1);
    tg_tensor_free(lab), tg_tensor_free(sc);
}

static void test_setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/tg_data_XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
}

static void test_cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

static const check_case cases[] = {
    TEST(test_setup),
    TEST(test_idx),
    TEST(test_idx_types),
    TEST(test_idx_errors),
    TEST(test_mnist_fixture),
    TEST(test_fashion_mnist),
    TEST(test_csv),
    TEST(test_csv_more),
    TEST(test_standardize_values),
    TEST(test_batches_more),
    TEST(test_split_batches_metrics),
    TEST(test_metrics_more),
    TEST(test_gzip_damage),
    TEST(test_not_regular),
    TEST(test_csv_values),
    TEST(test_idx_values),
    TEST(test_csv_delimiters),
    TEST(test_csv_line_ends),
    TEST(test_metric_labels),
    TEST(test_cleanup),
};
TEST_MAIN("test_data", cases)
