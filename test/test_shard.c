/* test/test_shard.c: sharded batches. The parts of every rank, in rank order, are exactly
 * the global batch a single batcher of size · batch rows gives for the same seed. */
#include <stdlib.h>

#include "check.h"
#include "tapegrad.h"

/* n rows: x row i = (i, -i), y row i = i mod 3; as f64 or (bytes) x_bytes row i = (i, 2i). */
static tg_dataset make(int64_t n, bool bytes)
{
    tg_dataset ds = {0};
    int64_t xs[2] = {n, 2}, ys[1] = {n};
    ds.n = n, ds.d = 2, ds.n_classes = 3;
    ds.y = tg_tensor_new(TG_F64, 1, ys);
    if (bytes) ds.x_bytes = malloc((size_t)n * 2);
    else ds.x = tg_tensor_new(TG_F64, 2, xs);
    for (int64_t i = 0; i < n; i++) {
        tg_set(ds.y, i, (double)(i % 3));
        if (bytes)
            ds.x_bytes[2 * i] = (unsigned char)i, ds.x_bytes[2 * i + 1] = (unsigned char)(2 * i);
        else tg_set(ds.x, 2 * i, (double)i), tg_set(ds.x, 2 * i + 1, (double)-i);
    }
    return ds;
}

/* True if rows [0, rows) of x, y equal rows [at, at + rows) of gx, gy. */
static bool same_rows(const tg_tensor *x, const tg_tensor *y, const tg_tensor *gx,
                      const tg_tensor *gy, int64_t at, int64_t rows)
{
    if (tg_tensor_dim(x, 0) != rows || tg_tensor_dim(y, 0) != rows) return false;
    for (int64_t i = 0; i < rows; i++)
        if (tg_get(y, i) != tg_get(gy, at + i) || tg_get(x, 2 * i) != tg_get(gx, 2 * (at + i)) ||
            tg_get(x, 2 * i + 1) != tg_get(gx, 2 * (at + i) + 1))
            return false;
    return true;
}

/* Two epochs of every rank of size against one batcher of size · batch rows. */
static void check_shards(const tg_dataset *ds, int64_t batch, bool shuffle, uint64_t seed, int size)
{
    tg_status st;
    tg_batcher *g = tg_batcher_new(ds, (int64_t)size * batch, shuffle, seed, &st), *r[5];
    CHECK(g != NULL);
    bool ok = true;
    for (int k = 0; k < size; k++) {
        r[k] = tg_batcher_new_shard(ds, batch, shuffle, seed, k, size, &st);
        ok = ok && r[k] && st.code == TG_OK && tg_batcher_count(r[k]) == tg_batcher_count(g);
    }
    CHECK(ok);
    if (!ok || !g) return;
    int64_t steps = 0, rows = 0;
    for (int epoch = 0; epoch < 2; epoch++) {
        if (epoch) {
            tg_batcher_reset(g);
            for (int k = 0; k < size; k++) tg_batcher_reset(r[k]);
        }
        tg_tensor *gx, *gy;
        while (tg_batcher_next(g, &gx, &gy)) {
            int64_t m = tg_tensor_dim(gy, 0), at = 0;
            for (int k = 0; k < size; k++) {
                tg_tensor *x = NULL, *y = NULL;
                bool got = tg_batcher_next(r[k], &x, &y);
                int64_t len = tg_tensor_dim(y, 0);
                /* contiguous, in rank order, lengths differing by at most one, longer first */
                int64_t want = m / size + (k < m % size);
                ok = ok && got && len == want && same_rows(x, y, gx, gy, at, len) &&
                     tg_batcher_global_rows(r[k]) == m;
                at += len;
            }
            ok = ok && at == m;
            steps++, rows += m;
        }
        for (int k = 0; k < size; k++)
            ok = ok && !tg_batcher_next(r[k], NULL, NULL) && tg_batcher_global_rows(r[k]) == 0;
    }
    CHECK(ok && rows == 2 * ds->n && steps == 2 * tg_batcher_count(g));
    tg_batcher_free(g);
    for (int k = 0; k < size; k++) tg_batcher_free(r[k]);
}

static void test_union_is_global_batch(void)
{
    int64_t ns[] = {1, 3, 7, 13, 23}, batches[] = {1, 2, 3, 5, 40};
    for (int bytes = 0; bytes < 2; bytes++)
        for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
            tg_dataset ds = make(ns[i], bytes);
            for (size_t j = 0; j < sizeof batches / sizeof *batches; j++)
                for (int size = 1; size <= 5; size++)
                    for (int sh = 0; sh < 2; sh++) check_shards(&ds, batches[j], sh, 17 + j, size);
            tg_dataset_free(&ds);
        }
}

/* tg_batcher_new is rank 0 of 1: the same batches, epoch after epoch. */
static void test_one_rank_is_plain(void)
{
    tg_dataset ds = make(23, false);
    tg_status st;
    for (int64_t batch = 1; batch <= 24; batch += 4) {
        tg_batcher *a = tg_batcher_new(&ds, batch, true, 9, &st),
                   *b = tg_batcher_new_shard(&ds, batch, true, 9, 0, 1, &st);
        bool ok = a && b && tg_batcher_count(a) == tg_batcher_count(b);
        for (int epoch = 0; ok && epoch < 3; epoch++) {
            tg_tensor *ax, *ay, *bx, *by;
            while (ok && tg_batcher_next(a, &ax, &ay))
                ok = tg_batcher_next(b, &bx, &by) &&
                     same_rows(bx, by, ax, ay, 0, tg_tensor_dim(ay, 0)) &&
                     tg_batcher_global_rows(a) == tg_tensor_dim(ay, 0) &&
                     tg_batcher_global_rows(b) == tg_batcher_global_rows(a);
            ok = ok && !tg_batcher_next(b, NULL, NULL);
            tg_batcher_reset(a), tg_batcher_reset(b);
        }
        CHECK(ok);
        tg_batcher_free(a), tg_batcher_free(b);
    }
    tg_dataset_free(&ds);
}

/* A rank whose part of the last global batch is empty still steps, with 0-row tensors; full
 * parts reuse one pair of tensors. */
static void test_empty_part_and_reuse(void)
{
    tg_dataset ds = make(7, false);
    tg_status st;
    /* size 3, batch 2: global batches of 6 and 1; rank 2 gets 2 rows, then 0 */
    tg_batcher *b = tg_batcher_new_shard(&ds, 2, false, 0, 2, 3, &st);
    tg_tensor *x, *y, *x1;
    CHECK(b && tg_batcher_count(b) == 2 && tg_batcher_global_rows(b) == 0);
    CHECK(tg_batcher_next(b, &x1, &y) && tg_tensor_dim(x1, 0) == 2 && tg_get(x1, 0) == 4 &&
          tg_batcher_global_rows(b) == 6);
    CHECK(tg_batcher_next(b, &x, &y) && tg_tensor_dim(x, 0) == 0 && tg_tensor_dim(x, 1) == 2 &&
          tg_tensor_dim(y, 0) == 0 && tg_batcher_global_rows(b) == 1);
    CHECK(!tg_batcher_next(b, &x, &y));
    tg_batcher_reset(b);
    CHECK(tg_batcher_next(b, &x, &y) && x == x1);
    tg_batcher_free(b);
    /* more ranks than rows: one global batch, ranks 3 and 4 empty */
    for (int k = 0; k < 5; k++) {
        tg_dataset d3 = make(3, false);
        b = tg_batcher_new_shard(&d3, 100, true, 1, k, 5, &st);
        CHECK(b && tg_batcher_count(b) == 1 && tg_batcher_next(b, &x, &y) &&
              tg_tensor_dim(x, 0) == (k < 3) && tg_batcher_global_rows(b) == 3 &&
              !tg_batcher_next(b, &x, &y));
        tg_batcher_free(b);
        tg_dataset_free(&d3);
    }
    tg_dataset_free(&ds);
}

static void test_bad_rank(void)
{
    tg_dataset ds = make(7, false);
    tg_status st;
    int bad[][2] = {{-1, 2}, {2, 2}, {0, 0}, {0, -3}, {5, 1}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        st.code = 0;
        CHECK(tg_batcher_new_shard(&ds, 2, true, 0, bad[i][0], bad[i][1], &st) == NULL &&
              st.code == TG_EARG);
        char want[64];
        snprintf(want, sizeof want, "rank %d of size %d", bad[i][0], bad[i][1]);
        CHECK_STR_HAS(st.msg, want);
        CHECK_STR_HAS(st.msg, "tg_batcher_new_shard");
    }
    CHECK(tg_batcher_new_shard(&ds, 0, true, 0, 0, 2, &st) == NULL && st.code == TG_EARG);
    CHECK_STR_HAS(st.msg, "tg_batcher_new_shard: batch size 0");
    CHECK(tg_batcher_new_shard(NULL, 2, true, 0, 0, 2, &st) == NULL && st.code == TG_EARG);
    CHECK(tg_batcher_global_rows(NULL) == 0);
    tg_dataset_free(&ds);
}

/* The batcher's state: a fresh batcher (another seed) given it goes on with the same batches
 * and epochs; a shard of another size takes a global state at one of its batch starts. */
static void test_state(void)
{
    tg_dataset ds = make(23, false);
    tg_status st;
    tg_batcher *a = tg_batcher_new(&ds, 4, true, 3, &st),
               *b = tg_batcher_new(&ds, 4, true, 99, &st);
    tg_tensor *ax, *ay, *bx, *by;
    for (int i = 0; i < 7; i++) /* into the second epoch */
        if (!tg_batcher_next(a, &ax, &ay)) tg_batcher_reset(a), tg_batcher_next(a, &ax, &ay);
    size_t n = tg_batcher_state_size(a);
    unsigned char *buf = malloc(n), *bad = malloc(n);
    CHECK(n == 8 * (7 + 23) && tg_batcher_state_save(a, buf, n, &st) == 0);
    CHECK(tg_batcher_state_save(a, buf, n - 1, &st) == TG_EARG);
    CHECK(tg_batcher_state_load(b, buf, n, &st) == 0);
    bool ok = true;
    for (int i = 0; i < 20; i++) {
        bool ga = tg_batcher_next(a, &ax, &ay), gb = tg_batcher_next(b, &bx, &by);
        ok = ok && ga == gb;
        if (!ga) tg_batcher_reset(a), tg_batcher_reset(b);
        else ok = ok && same_rows(bx, by, ax, ay, 0, tg_tensor_dim(ay, 0));
    }
    CHECK(ok);
    /* position 8 of a global state: rank 1 of 2 with batch 2 (global batches of 4) starts
     * there, with rows 2, 3 of the batch a batcher of 4 gives there */
    tg_batcher *g = tg_batcher_new(&ds, 4, true, 3, &st),
               *r1 = tg_batcher_new_shard(&ds, 2, true, 0, 1, 2, &st),
               *r3 = tg_batcher_new_shard(&ds, 1, true, 0, 0, 3, &st);
    tg_batcher_next(g, NULL, NULL), tg_batcher_next(g, NULL, NULL);
    tg_batcher_state_save(g, buf, n, &st);
    CHECK(tg_batcher_state_load(r1, buf, n, &st) == 0);
    CHECK(tg_batcher_next(g, &ax, &ay) && tg_batcher_next(r1, &bx, &by) &&
          same_rows(bx, by, ax, ay, 2, 2));
    /* global batches of 3 do not start at 8 */
    CHECK(tg_batcher_state_load(r3, buf, n, &st) == TG_EFORMAT);
    CHECK_STR_HAS(st.msg, "position 8 is no global batch's start");
    /* refused, with nothing changed: another row count, shuffle flag, a repeated row */
    size_t n0 = tg_batcher_state_size(b);
    unsigned char *before = malloc(n0), *after = malloc(n0);
    tg_batcher_state_save(b, before, n0, &st);
    tg_dataset small = make(9, false);
    tg_batcher *sm = tg_batcher_new(&small, 4, true, 3, &st),
               *pl = tg_batcher_new(&ds, 4, false, 3, &st);
    tg_batcher_state_save(sm, bad, tg_batcher_state_size(sm), &st);
    CHECK(tg_batcher_state_load(b, bad, tg_batcher_state_size(sm), &st) == TG_ESHAPE);
    CHECK_STR_HAS(st.msg, "batcher state of 9 rows");
    tg_batcher_state_save(pl, bad, n, &st);
    CHECK(tg_batcher_state_load(b, bad, n, &st) == TG_EARG);
    memcpy(bad, buf, n);
    memcpy(bad + 8 * 7, bad + 8 * 8, 8); /* row perm[1] twice */
    CHECK(tg_batcher_state_load(b, bad, n, &st) == TG_EFORMAT);
    CHECK_STR_HAS(st.msg, "no permutation");
    memcpy(bad, buf, n);
    bad[8 * 7] = 23; /* a row past the end */
    CHECK(tg_batcher_state_load(b, bad, n, &st) == TG_EFORMAT);
    CHECK(tg_batcher_state_load(b, buf, 20, &st) == TG_EFORMAT);
    CHECK(tg_batcher_state_load(b, buf, n - 8, &st) == TG_ESHAPE);
    CHECK(tg_batcher_state_load(NULL, buf, n, &st) == TG_EARG && tg_batcher_state_size(NULL) == 0);
    tg_batcher_state_save(b, after, n0, &st);
    CHECK(!memcmp(before, after, n0));
    free(buf), free(bad), free(before), free(after);
    tg_batcher_free(a), tg_batcher_free(b), tg_batcher_free(g), tg_batcher_free(r1);
    tg_batcher_free(r3), tg_batcher_free(sm), tg_batcher_free(pl);
    tg_dataset_free(&ds), tg_dataset_free(&small);
}

static const check_case cases[] = {TEST(test_union_is_global_batch), TEST(test_one_rank_is_plain),
                                   TEST(test_empty_part_and_reuse), TEST(test_bad_rank),
                                   TEST(test_state)};
TEST_MAIN("test_shard", cases)
