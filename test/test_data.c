/* test/test_data.c: IDX (plain and gzip) and CSV readers on small files written here, their
 * errors (with file, offset or line, and reason), Fashion-MNIST when installed, splits,
 * standardisation, batching and metrics. */
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "tapegrad.h"

static char dir[64];

static void path_of(char *buf, size_t size, const char *name) { snprintf(buf, size, "%s/%s", dir, name); }

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
    const unsigned char img[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3,
                                 0, 51, 102, 153, 204, 255, 255, 0, 0, 0, 0, 51};
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
    CHECK_STR_HAS(st.msg, "offset 16: truncated");
    write_bytes(p, img, sizeof img - 3, true);
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_EFORMAT && t == keep);
    const unsigned char magic[] = {1, 0, 8, 1, 0, 0, 0, 0};
    write_bytes(p, magic, sizeof magic, false);
    CHECK(tg_idx_load(p, TG_F32, &t, &st) == TG_EFORMAT);
    CHECK_STR_HAS(st.msg, "bad IDX magic 01 00 08 01");
    /* A header promising 2^32-1 × 2^32-1 bytes must not allocate them. */
    const unsigned char huge[] = {0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3};
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
    CHECK_STR_HAS(st.msg, ":2: field 2 'abc' is not a number");
    write_text(p, "1,2,0.5\n");
    CHECK(tg_csv_load(p, TG_F64, NULL, &ds, &st) == TG_EFORMAT);
    CHECK_STR_HAS(st.msg, ":1: label 0.5 is not a class index");
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
    tg_dataset all = {tg_tensor_new(TG_F64, 2, xs), tg_tensor_new(TG_F64, 1, ys), 10, 2, 10};
    for (int i = 0; i < 10; i++) tg_set(all.x, 2 * i, i), tg_set(all.x, 2 * i + 1, 100 + i), tg_set(all.y, i, i);
    tg_dataset tr, te;
    tg_status st;
    CHECK(tg_dataset_split(&all, 0.3, 7, &tr, &te, &st) == TG_OK);
    CHECK(tr.n == 7 && te.n == 3);
    bool seen[10] = {false}, rows_ok = true;
    tg_dataset *sets[2] = {&tr, &te};
    for (int s = 0; s < 2; s++)
        for (int64_t i = 0; i < sets[s]->n; i++) {
            int k = (int)tg_get(sets[s]->y, i);
            rows_ok &= !seen[k] && tg_get(sets[s]->x, 2 * i) == k && tg_get(sets[s]->x, 2 * i + 1) == 100 + k;
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
    int sizes[3], nb = 0;
    double order1[10], order2[10];
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
    tg_tensor *scores = tg_tensor_from(TG_F64, 2, ss, (double[]){0.1, 0.8, 0.1, 0.9, 0, 0.1, 0.2, 0.3, 0.5});
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
    TEST(test_fashion_mnist),
    TEST(test_csv),
    TEST(test_split_batches_metrics),
    TEST(test_cleanup),
};
TEST_MAIN("test_data", cases)
