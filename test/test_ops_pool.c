/* test/test_ops_pool.c: max_pool2d, avg_pool2d and global_avg_pool2d (ops/pool.c). Values
 * and gradients against PyTorch 1.13 (F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d in
 * float64, with the weighted sum Σ (i+1) y_i as the loss), ties going to the first maximal
 * element, NaN and -inf, random geometries against a plain reference written here, the
 * thread count not changing a bit, the recorded gradients (tg_gradients), empty tensors,
 * bad inputs, and the family's self-check cases. */
#include <stdlib.h>

#include "check.h"
#include "ops_check.h"
#include "tapegrad.h"

#define NaN ((double)NAN)
#define INF ((double)INFINITY)

typedef tg_tensor *(*pool_fn)(tg_tape *, tg_tensor *, const tg_pool2d_opts *);

/* x [1,2,4,5] = ((7 i) mod 11) - 5: eleven values over forty elements, so windows hold
 * ties. */
static const double X[40] = {-5, 2, -2, 5, 1,  -3, 4, 0,  -4, 3, -1, -5, 2, -2,
                             5,  1, -3, 4, 0,  -4, 3, -1, -5, 2, -2, 5,  1, -3,
                             4,  0, -4, 3, -1, -5, 2, -2, 5,  1, -3, 4};

/* f(x, o) in dt against y (shape out) and the gradient of Σ (i+1) y_i. */
static void check_pool(tg_dtype dt, pool_fn f, const int64_t *xs, const double *x, tg_pool2d_opts o,
                       const int64_t *ys, const double *y, const double *dx, const char *what)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *t = leaf(dt, 4, xs, x, true);
    tg_tensor *out = f(tp, t, &o);
    bool shape_ok = out && tg_tensor_ndim(out) == 4;
    for (int d = 0; shape_ok && d < 4; d++) shape_ok = tg_tensor_shape(out)[d] == ys[d];
    if (!shape_ok) printf("  %s (%s): %s\n", what, tg_dtype_name(dt), tg_tape_error(tp));
    CHECK(shape_ok);
    CHECK(tg_tape_n_nodes(tp) == 1);
    double tol = dt == TG_F64 ? 1e-15 : 1e-6;
    int64_t ny = ys[0] * ys[1] * ys[2] * ys[3];
    EXPECT(out, ny, y, tol);
    CHECK(sweep(tp, out) == TG_OK);
    EXPECT(tg_grad(t), tg_tensor_numel(t), dx, tol);
    tg_tape_free(tp);
    drop_all();
}

static void test_max_pool_values(void)
{
    for (int dt = TG_F32; dt <= TG_F64; dt++) {
        tg_dtype d = (tg_dtype)dt;
        /* 3x3 stride 2 padding 1 */
        check_pool(d, tg_max_pool2d, S(1, 2, 4, 5), X, (tg_pool2d_opts){{3, 3}, {2, 2}, {1, 1}},
                   S(1, 2, 2, 3), V(4, 5, 5, 4, 4, 5, 5, 4, 4, 5, 5, 4),
                   V(0, 0, 0, 5, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17,
                     0, 0, 29, 0, 0, 0, 0, 0, 0, 0, 11, 0, 0, 0),
                   "max 3x3/2 pad 1");
        /* 2x2 stride 1: overlapping windows */
        check_pool(d, tg_max_pool2d, S(1, 2, 4, 5), X, (tg_pool2d_opts){{2, 2}, {1, 1}, {0, 0}},
                   S(1, 2, 3, 4),
                   V(4, 4, 5, 5, 4, 4, 2, 5, 1, 4, 4, 5, 5, 1, 4, 4, 5, 3, 4, 4, 5, 5, 1, 4),
                   V(0, 0, 0, 7, 0, 0, 14, 0, 0, 0, 0, 0, 7, 0, 20, 9, 0, 21, 0, 0, 0, 0, 0, 0, 0,
                     30, 14, 0, 70, 0, 0, 18, 0, 0, 0, 0, 43, 23, 0, 24),
                   "max 2x2/1");
        /* kernel 2x3, stride (1, 2), padding 1 */
        check_pool(d, tg_max_pool2d, S(1, 2, 4, 5), X, (tg_pool2d_opts){{2, 3}, {1, 2}, {1, 1}},
                   S(1, 2, 5, 3),
                   V(2, 5, 5, 4, 5, 5, 4, 4, 5, 1, 4, 5, 1, 4, 0, 3, 2, 2, 5, 4, 4, 5, 4, 4, 5, 5,
                     4, 5, 5, 4),
                   V(0, 1, 0, 16, 0, 0, 19, 0, 0, 0, 0, 0, 0, 0, 21, 23, 0, 25, 15, 0, 16, 0, 0, 35,
                     0, 41, 0, 0, 88, 0, 0, 0, 0, 0, 0, 0, 108, 0, 0, 57),
                   "max 2x3 stride (1,2) pad 1");
        /* 2x2 stride 2 (the fast loops; the odd last column is left out) */
        check_pool(d, tg_max_pool2d, S(1, 2, 4, 5), X, (tg_pool2d_opts){{2, 2}, {0, 0}, {0, 0}},
                   S(1, 2, 2, 2), V(4, 5, 1, 4, 5, 4, 5, 1),
                   V(0, 0, 0, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0, 0, 0, 5,
                     0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 7, 8, 0, 0),
                   "max 2x2/2");
    }
}

static void test_avg_pool_values(void)
{
    for (int dt = TG_F32; dt <= TG_F64; dt++) {
        tg_dtype d = (tg_dtype)dt;
        check_pool(d, tg_avg_pool2d, S(1, 2, 4, 5), X, (tg_pool2d_opts){{3, 3}, {2, 2}, {1, 1}},
                   S(1, 2, 2, 3),
                   V(-0.2222222222222222, 0.5555555555555556, 0.5555555555555556,
                     -0.7777777777777778, -0.4444444444444444, -0.2222222222222222,
                     0.8888888888888888, -0.2222222222222222, 0.4444444444444444,
                     0.8888888888888888, 0.2222222222222222, 0.2222222222222222),
                   V(0.1111111111111111, 0.3333333333333333, 0.2222222222222222, 0.5555555555555556,
                     0.3333333333333333, 0.5555555555555556, 1.3333333333333333, 0.7777777777777778,
                     1.7777777777777777, 1.0, 0.4444444444444444, 1.0, 0.5555555555555556,
                     1.2222222222222223, 0.6666666666666666, 0.4444444444444444, 1.0,
                     0.5555555555555556, 1.2222222222222223, 0.6666666666666666, 0.7777777777777778,
                     1.6666666666666665, 0.8888888888888888, 1.8888888888888888, 1.0,
                     1.8888888888888888, 4.0, 2.111111111111111, 4.444444444444445,
                     2.333333333333333, 1.1111111111111112, 2.3333333333333335, 1.2222222222222223,
                     2.5555555555555554, 1.3333333333333333, 1.1111111111111112, 2.3333333333333335,
                     1.2222222222222223, 2.5555555555555554, 1.3333333333333333),
                   "avg 3x3/2 pad 1");
        check_pool(d, tg_avg_pool2d, S(1, 2, 4, 5), X, (tg_pool2d_opts){{2, 3}, {1, 2}, {1, 1}},
                   S(1, 2, 5, 3),
                   V(-0.5, 0.8333333333333334, 1.0, -0.3333333333333333, 0.8333333333333334,
                     0.8333333333333334, -0.8333333333333334, -0.8333333333333334,
                     0.3333333333333333, -1.3333333333333333, -0.6666666666666666,
                     -0.16666666666666666, -0.3333333333333333, 0.16666666666666666,
                     -0.6666666666666666, 0.3333333333333333, -0.6666666666666666, 0.0,
                     1.3333333333333333, -0.3333333333333333, 0.6666666666666666,
                     0.8333333333333334, -0.16666666666666666, 0.16666666666666666,
                     0.3333333333333333, 0.0, -0.3333333333333333, 0.5, 0.5, 0.16666666666666666),
                   V(0.8333333333333333, 2.0, 1.1666666666666667, 2.6666666666666665, 1.5,
                     1.8333333333333335, 4.0, 2.1666666666666665, 4.666666666666667, 2.5,
                     2.8333333333333335, 6.0, 3.1666666666666665, 6.666666666666666, 3.5,
                     3.833333333333333, 8.0, 4.166666666666667, 8.666666666666666, 4.5,
                     5.833333333333333, 12.0, 6.166666666666667, 12.666666666666668, 6.5,
                     6.833333333333333, 14.0, 7.166666666666667, 14.666666666666668, 7.5,
                     7.833333333333334, 16.0, 8.166666666666666, 16.666666666666668, 8.5,
                     8.833333333333334, 18.0, 9.166666666666666, 18.666666666666664, 9.5),
                   "avg 2x3 stride (1,2) pad 1");
        check_pool(d, tg_avg_pool2d, S(1, 2, 4, 5), X, (tg_pool2d_opts){{2, 2}, {0, 0}, {0, 0}},
                   S(1, 2, 2, 2), V(-0.5, -0.25, -2.0, 1.0, 2.0, -0.5, 0.5, -2.0),
                   V(0.25, 0.25, 0.5, 0.5, 0.0, 0.25, 0.25, 0.5, 0.5, 0.0, 0.75, 0.75, 1.0, 1.0,
                     0.0, 0.75, 0.75, 1.0, 1.0, 0.0, 1.25, 1.25, 1.5, 1.5, 0.0, 1.25, 1.25, 1.5,
                     1.5, 0.0, 1.75, 1.75, 2.0, 2.0, 0.0, 1.75, 1.75, 2.0, 2.0, 0.0),
                   "avg 2x2/2");
        check_pool(d, tg_avg_pool2d, S(1, 2, 4, 5), X, (tg_pool2d_opts){{2, 2}, {1, 1}, {0, 0}},
                   S(1, 2, 3, 4),
                   V(-0.5, 1.0, -0.25, 1.25, -1.25, 0.25, -1.0, 0.5, -2.0, -0.5, 1.0, -0.25, 2.0,
                     -2.0, -0.5, 1.0, 1.25, 0.0, -1.25, 0.25, 0.5, 2.0, -2.0, -0.5),
                   V(0.25, 0.75, 1.25, 1.75, 1.0, 1.5, 3.5, 4.5, 5.5, 3.0, 3.5, 7.5, 8.5, 9.5, 5.0,
                     2.25, 4.75, 5.25, 5.75, 3.0, 3.25, 6.75, 7.25, 7.75, 4.0, 7.5, 15.5, 16.5,
                     17.5, 9.0, 9.5, 19.5, 20.5, 21.5, 11.0, 5.25, 10.75, 11.25, 11.75, 6.0),
                   "avg 2x2/1");
    }
}

/* NaN is the maximum of its window and takes the gradient; -inf windows send it to their
 * first element of the plane (padding is -inf too, and never chosen). */
static void test_max_pool_nan_inf(void)
{
    for (int dt = TG_F32; dt <= TG_F64; dt++) {
        tg_dtype d = (tg_dtype)dt;
        /* PyTorch 1.13, 2x2/2: one NaN per window */
        check_pool(d, tg_max_pool2d, S(1, 1, 4, 4),
                   V(1, NaN, 3, NaN, -INF, -INF, -INF, -INF, 2, 5, 5, 0, NaN, 7, 1, 2),
                   (tg_pool2d_opts){{2, 2}, {0, 0}, {0, 0}}, S(1, 1, 2, 2), V(NaN, NaN, NaN, 5),
                   V(0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 4, 0, 3, 0, 0, 0), "max NaN 2x2/2");
        /* two NaNs in a window: the first one (by hand), in the fast and general loops */
        check_pool(d, tg_max_pool2d, S(1, 1, 2, 2), V(0, NaN, NaN, 1),
                   (tg_pool2d_opts){{2, 2}, {0, 0}, {0, 0}}, S(1, 1, 1, 1), V(NaN), V(0, 1, 0, 0),
                   "max two NaNs 2x2/2");
        check_pool(d, tg_max_pool2d, S(1, 1, 2, 2), V(0, NaN, NaN, 1),
                   (tg_pool2d_opts){{2, 2}, {1, 1}, {1, 1}}, S(1, 1, 3, 3),
                   V(0, NaN, NaN, NaN, NaN, NaN, NaN, NaN, 1), V(1, 2 + 3 + 5 + 6, 4 + 7 + 8, 9),
                   "max two NaNs 2x2/1 pad 1");
        /* not recorded (no maxima saved: other loops), the same values */
        tg_tape *tp = tg_tape_new();
        tg_tensor *xn =
            leaf(d, 4, S(1, 1, 4, 4),
                 V(1, NaN, 3, NaN, -INF, -INF, -INF, -INF, 2, 5, 5, 0, NaN, 7, 1, 2), false);
        tg_tensor *yn = tg_max_pool2d(tp, xn, &(tg_pool2d_opts){{2, 2}, {0, 0}, {0, 0}});
        CHECK(yn && !tg_requires_grad(yn));
        EXPECT(yn, 4, V(NaN, NaN, NaN, 5), 0);
        yn = tg_max_pool2d(tp, xn, &(tg_pool2d_opts){{2, 2}, {2, 1}, {1, 0}});
        EXPECT(yn, 9, V(NaN, NaN, NaN, 5, 5, 5, NaN, 7, 2), 0);
        tg_tape_free(tp);
        /* all -inf, with padding: each window's first element of the plane */
        check_pool(d, tg_max_pool2d, S(1, 1, 2, 3), V(-INF, -INF, -INF, -INF, -INF, -INF),
                   (tg_pool2d_opts){{3, 3}, {1, 1}, {1, 1}}, S(1, 1, 2, 3),
                   V(-INF, -INF, -INF, -INF, -INF, -INF), V(1 + 2 + 4 + 5, 3 + 6, 0, 0, 0, 0),
                   "max -inf 3x3/1 pad 1");
        check_pool(d, tg_max_pool2d, S(1, 1, 2, 2), V(-INF, -INF, -INF, -INF),
                   (tg_pool2d_opts){{2, 2}, {0, 0}, {0, 0}}, S(1, 1, 1, 1), V(-INF), V(1, 0, 0, 0),
                   "max -inf 2x2/2");
        /* +inf wins, and -inf padding never does */
        check_pool(d, tg_max_pool2d, S(1, 1, 1, 3), V(-1e30, INF, -2),
                   (tg_pool2d_opts){{1, 2}, {1, 1}, {0, 1}}, S(1, 1, 1, 4), V(-1e30, INF, INF, -2),
                   V(1, 2 + 3, 4), "max inf 1x2/1 pad (0,1)");
    }
}

static void test_global_avg_pool(void)
{
    for (int dt = TG_F32; dt <= TG_F64; dt++) {
        tg_tape *tp = tg_tape_new();
        double xv[24];
        for (int i = 0; i < 24; i++) xv[i] = 0.5 * i - 3;
        tg_tensor *x = leaf((tg_dtype)dt, 4, S(2, 3, 2, 2), xv, true);
        tg_tensor *y = tg_global_avg_pool2d(tp, x);
        CHECK(y && tg_tensor_ndim(y) == 2 && tg_tensor_shape(y)[0] == 2 &&
              tg_tensor_shape(y)[1] == 3);
        /* PyTorch 1.13: F.adaptive_avg_pool2d(x, 1) */
        EXPECT(y, 6, V(-2.25, -0.25, 1.75, 3.75, 5.75, 7.75), 1e-7);
        CHECK(sweep(tp, y) == TG_OK);
        EXPECT(tg_grad(x), 24,
               V(0.25, 0.25, 0.25, 0.25, 0.5, 0.5, 0.5, 0.5, 0.75, 0.75, 0.75, 0.75, 1.0, 1.0, 1.0,
                 1.0, 1.25, 1.25, 1.25, 1.25, 1.5, 1.5, 1.5, 1.5),
               1e-7);
        /* a reshape and a mean, nothing of its own */
        CHECK(tg_tape_first(tp) && strcmp(tg_node_op(tg_tape_first(tp)), "reshape") == 0);
        /* errors name it */
        tg_tape_reset(tp);
        tg_tensor *bad = leaf((tg_dtype)dt, 3, S(2, 3, 4), NULL, true);
        CHECK(tg_global_avg_pool2d(tp, bad) == NULL && tg_tape_errcode(tp) == TG_ESHAPE);
        CHECK_STR_HAS(tg_tape_error(tp), "tg_global_avg_pool2d: x [2,3,4]: want [N,C,H,W]");
        tg_tape_reset(tp);
        tg_tensor *flat = leaf((tg_dtype)dt, 4, S(2, 3, 0, 4), NULL, true);
        CHECK(tg_global_avg_pool2d(tp, flat) == NULL && tg_tape_errcode(tp) == TG_ESHAPE);
        CHECK_STR_HAS(tg_tape_error(tp), "tg_global_avg_pool2d: x [2,3,0,4]");
        tg_tape_reset(tp);
        CHECK(tg_global_avg_pool2d(tp, NULL) == NULL && tg_tape_errcode(tp) == TG_EARG);
        CHECK(tg_tape_n_nodes(tp) == 0);
        /* N = 0: an empty [0,C] */
        tg_tape_reset(tp);
        tg_tensor *e = leaf((tg_dtype)dt, 4, S(0, 3, 2, 2), NULL, true);
        tg_tensor *ye = tg_global_avg_pool2d(tp, e);
        CHECK(ye && tg_tensor_numel(ye) == 0 && tg_tensor_shape(ye)[1] == 3);
        CHECK(tg_global_avg_pool2d(NULL, x) == NULL);
        tg_tape_free(tp);
        drop_all();
    }
}

/* ---- random geometries against a plain reference ---- */
/* y and dx (for dy_i = i + 1) of pooling x, element by element from the definition. */
static void reference(bool is_max, const tg_tensor *x, const tg_pool2d_opts *o, int64_t Ho,
                      int64_t Wo, double *y, double *dx)
{
    const int64_t *s = tg_tensor_shape(x), P = s[0] * s[1], H = s[2], W = s[3];
    const int64_t kh = o->kernel[0], kw = o->kernel[1], ph = o->padding[0], pw = o->padding[1];
    const int64_t sh = o->stride[0] ? o->stride[0] : kh, sw = o->stride[1] ? o->stride[1] : kw;
    for (int64_t i = 0; i < P * H * W; i++) dx[i] = 0;
    for (int64_t p = 0; p < P; p++)
        for (int64_t oh = 0; oh < Ho; oh++)
            for (int64_t ow = 0; ow < Wo; ow++) {
                int64_t o_i = (p * Ho + oh) * Wo + ow, best = -1;
                double acc = is_max ? -INF : 0, dy = (double)(o_i + 1);
                for (int64_t i = 0; i < kh; i++)
                    for (int64_t j = 0; j < kw; j++) {
                        int64_t h = oh * sh - ph + i, w = ow * sw - pw + j;
                        if (h < 0 || h >= H || w < 0 || w >= W) continue;
                        int64_t at = (p * H + h) * W + w;
                        double v = tg_get(x, at);
                        if (!is_max) acc += v, dx[at] += dy / (double)(kh * kw);
                        else if (best < 0 || (!isnan(acc) && (v > acc || isnan(v))))
                            acc = v, best = at;
                    }
                y[o_i] = is_max ? acc : acc / (double)(kh * kw);
                if (is_max) dx[best] += dy;
            }
}

static void test_against_reference(void)
{
    static const tg_pool2d_opts geoms[] = {
        {{2, 2}, {0, 0}, {0, 0}}, {{2, 2}, {2, 2}, {0, 0}}, {{3, 3}, {2, 2}, {1, 1}},
        {{3, 3}, {1, 1}, {1, 1}}, {{2, 2}, {1, 1}, {1, 1}}, {{1, 1}, {0, 0}, {0, 0}},
        {{4, 2}, {3, 1}, {2, 0}}, {{5, 5}, {2, 3}, {2, 1}}, {{2, 3}, {2, 2}, {1, 1}},
        {{3, 2}, {0, 0}, {0, 1}},
    };
    static const int64_t shapes[][4] = {{2, 3, 8, 8}, {1, 2, 7, 9}, {3, 1, 5, 5}, {1, 4, 6, 11}};
    static double y[4096], dx[4096]; /* ample: inputs of up to 384 elements, outputs 486 */
    tg_rng r;
    tg_rng_seed(&r, 11);
    int bad = 0, runs = 0;
    for (int dt = TG_F32; dt <= TG_F64; dt++)
        for (size_t g = 0; g < sizeof geoms / sizeof geoms[0]; g++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                for (int m = 0; m < 2; m++) {
                    tg_tape *tp = tg_tape_new();
                    tg_tensor *x = leaf((tg_dtype)dt, 4, shapes[s], NULL, true);
                    tg_tensor_rand_uniform(x, -2, 2, &r);
                    tg_tensor *out = (m ? tg_max_pool2d : tg_avg_pool2d)(tp, x, &geoms[g]);
                    if (!out) { /* every geometry here fits every shape */
                        printf("  %s\n", tg_tape_error(tp));
                        bad++;
                        tg_tape_free(tp);
                        drop_all();
                        continue;
                    }
                    const int64_t *os = tg_tensor_shape(out);
                    reference(m, x, &geoms[g], os[2], os[3], y, dx);
                    double tol = dt == TG_F64 ? 1e-13 : 2e-5;
                    bool ok = sweep(tp, out) == TG_OK;
                    for (int64_t i = 0; ok && i < tg_tensor_numel(out); i++)
                        ok = fabs(tg_get(out, i) - y[i]) <= tol * (1 + fabs(y[i]));
                    for (int64_t i = 0; ok && i < tg_tensor_numel(x); i++)
                        ok = fabs(tg_get(tg_grad(x), i) - dx[i]) <= tol * (1 + fabs(dx[i]));
                    if (!ok && bad++ < 5)
                        printf("  %s geometry %zu shape %zu %s: differs from the reference\n",
                               m ? "max" : "avg", g, s, tg_dtype_name((tg_dtype)dt));
                    runs++;
                    tg_tape_free(tp);
                    drop_all();
                }
    CHECK(bad == 0 && runs == 160);
}

/* Planes split over threads: the same bits whatever the count. */
static void test_threads_same_bits(void)
{
    int nt0 = tg_get_num_threads();
    static const tg_pool2d_opts geoms[] = {{{2, 2}, {0, 0}, {0, 0}}, {{3, 3}, {2, 2}, {1, 1}}};
    for (int dt = TG_F32; dt <= TG_F64; dt++)
        for (int g = 0; g < 2; g++)
            for (int m = 0; m < 2; m++) {
                tg_tensor *res[2][2];
                tg_rng r;
                for (int k = 0; k < 2; k++) {
                    tg_set_num_threads(k ? 4 : 1);
                    tg_rng_seed(&r, 5);
                    tg_tape *tp = tg_tape_new();
                    tg_tensor *x = leaf((tg_dtype)dt, 4, S(4, 16, 32, 32), NULL, true);
                    tg_tensor_rand_uniform(x, -1, 1, &r);
                    tg_tensor *y = (m ? tg_max_pool2d : tg_avg_pool2d)(tp, x, &geoms[g]);
                    CHECK(sweep(tp, y) == TG_OK);
                    res[k][0] = tg_tensor_clone(y), res[k][1] = tg_tensor_clone(tg_grad(x));
                    tg_tape_free(tp);
                    drop_all();
                }
                for (int j = 0; j < 2; j++) {
                    CHECK(res[0][j] && res[1][j]);
                    int64_t diff = 0, n = tg_tensor_numel(res[0][j]);
                    const void *a = tg_data_const(res[0][j]), *b = tg_data_const(res[1][j]);
                    diff = memcmp(a, b, (size_t)n * tg_dtype_size((tg_dtype)dt)) != 0;
                    CHECK(diff == 0);
                    tg_tensor_free(res[0][j]), tg_tensor_free(res[1][j]);
                }
            }
    tg_set_num_threads(nt0);
}

/* The gradient recorded by tg_gradients (the backwards in ops, through tg_fold) equals
 * tg_backward's on a larger input; the loss Σ (i+1) y_i² makes it depend on x. */
static void test_recorded_gradient(void)
{
    static const tg_pool2d_opts geoms[] = {
        {{2, 2}, {0, 0}, {0, 0}}, {{3, 3}, {1, 1}, {1, 1}}, {{3, 2}, {2, 1}, {1, 1}}};
    tg_rng r;
    tg_rng_seed(&r, 3);
    for (int g = 0; g < 3; g++)
        for (int m = 0; m < 2; m++) {
            tg_tape *tp = tg_tape_new();
            tg_tensor *x = leaf(TG_F64, 4, S(2, 3, 9, 10), NULL, true);
            tg_tensor_rand_uniform(x, -1, 1, &r);
            tg_tensor *y = (m ? tg_max_pool2d : tg_avg_pool2d)(tp, x, &geoms[g]);
            tg_tensor *loss = weighted(tp, tg_square(tp, y)), *gx = NULL;
            CHECK(tg_gradients(tp, loss, NULL, 1, &x, &gx, TG_GRAD_RECORD) == TG_OK);
            CHECK(gx && tg_requires_grad(gx));
            CHECK(tg_backward(tp, loss) == TG_OK);
            int64_t n = tg_tensor_numel(x), diff = 0;
            for (int64_t i = 0; gx && i < n; i++)
                diff +=
                    fabs(tg_get(gx, i) - tg_get(tg_grad(x), i)) > 1e-12 * (1 + fabs(tg_get(gx, i)));
            CHECK(diff == 0);
            tg_tape_free(tp);
            drop_all();
        }
}

/* ---- recording, empty tensors ---- */
static void test_recording_and_empty(void)
{
    const tg_pool2d_opts o = {{2, 2}, {0, 0}, {0, 0}};
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F32, 4, S(1, 1, 4, 4), NULL, false);
    tg_tensor_fill(x, 1);
    /* no input needs a gradient, or grad mode off: computed, not recorded */
    tg_tensor *y = tg_max_pool2d(tp, x, &o);
    CHECK(y && !tg_requires_grad(y) && tg_tape_n_nodes(tp) == 0);
    EXPECT(y, 4, V(1, 1, 1, 1), 0);
    tg_set_requires_grad(x, true);
    tg_tape_set_grad_mode(tp, false);
    y = tg_avg_pool2d(tp, x, &o);
    CHECK(y && !tg_requires_grad(y) && tg_tape_n_nodes(tp) == 0);
    tg_tape_set_grad_mode(tp, true);
    y = tg_max_pool2d(tp, x, &o);
    CHECK(y && tg_requires_grad(y) && tg_tape_n_nodes(tp) == 1);
    CHECK(tg_tape_first(tp) && strcmp(tg_node_op(tg_tape_first(tp)), "max_pool2d") == 0);
    tg_tape_free(tp);
    drop_all();

    /* N = 0, C = 0, and an empty batch of 2^40 images: empty outputs, zero gradients, no
     * loop over the other sizes */
    static const int64_t empties[][4] = {
        {0, 3, 4, 4}, {2, 0, 5, 5}, {(int64_t)1 << 40, 0, 8, 8}, {0, (int64_t)1 << 40, 6, 6}};
    for (int dt = TG_F32; dt <= TG_F64; dt++)
        for (int k = 0; k < 4; k++)
            for (int m = 0; m < 2; m++) {
                tp = tg_tape_new();
                tg_tensor *e = leaf((tg_dtype)dt, 4, empties[k], NULL, true);
                tg_tensor *ye = (m ? tg_max_pool2d : tg_avg_pool2d)(tp, e, &o);
                CHECK(ye && tg_tensor_numel(ye) == 0);
                CHECK(ye && tg_tensor_shape(ye)[0] == empties[k][0] &&
                      tg_tensor_shape(ye)[2] == empties[k][2] / 2);
                CHECK(tg_backward(tp, tg_sum(tp, ye, TG_ALL_AXES, false)) == TG_OK);
                CHECK(tg_grad(e) && tg_tensor_numel(tg_grad(e)) == 0);
                tg_tensor *ge = NULL;
                CHECK(tg_gradients(tp, tg_sum(tp, ye, TG_ALL_AXES, false), NULL, 1, &e, &ge,
                                   TG_GRAD_RECORD) == TG_OK);
                CHECK(ge && tg_tensor_numel(ge) == 0);
                tg_tape_free(tp);
                drop_all();
            }
}

/* ---- bad inputs: clear errors naming the op and the shapes, nothing recorded ---- */
static void expect_error(pool_fn f, const char *name, tg_tensor *x, const tg_pool2d_opts *o,
                         int code, const char *msg)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *y = f(tp, x, o);
    CHECK(y == NULL && tg_tape_errcode(tp) == code);
    CHECK(strncmp(tg_tape_error(tp), name, strlen(name)) == 0);
    CHECK_STR_HAS(tg_tape_error(tp), msg);
    CHECK(tg_tape_n_nodes(tp) == 0);
    /* the first error sticks */
    CHECK(f(tp, x, &(tg_pool2d_opts){{1, 1}, {0, 0}, {0, 0}}) == NULL);
    CHECK(tg_tape_errcode(tp) == code);
    tg_tape_free(tp);
}

static void test_errors(void)
{
    for (int m = 0; m < 2; m++) {
        pool_fn f = m ? tg_avg_pool2d : tg_max_pool2d;
        const char *nm = m ? "tg_avg_pool2d: " : "tg_max_pool2d: ";
        tg_tensor *x = leaf(TG_F64, 4, S(1, 2, 3, 4), NULL, true);
        tg_tensor *x3 = leaf(TG_F64, 3, S(2, 3, 4), NULL, true);
        tg_tensor *x5 = leaf(TG_F64, 5, S(1, 1, 2, 3, 4), NULL, true);
        tg_tensor *flat = leaf(TG_F32, 4, S(2, 2, 0, 4), NULL, true);
        const tg_pool2d_opts ok = {{2, 2}, {0, 0}, {0, 0}};
        expect_error(f, nm, x3, &ok, TG_ESHAPE, "x [2,3,4]: want 4 dimensions [N,C,H,W]");
        expect_error(f, nm, x5, &ok, TG_ESHAPE, "x [1,1,2,3,4]: want 4 dimensions");
        expect_error(f, nm, x, NULL, TG_EARG, "options NULL");
        const char *geo = "want kernel >= 1, stride >= 0 (0: the kernel's) and 0 <= padding "
                          "<= kernel / 2";
        expect_error(f, nm, x, &(tg_pool2d_opts){{0, 2}, {0, 0}, {0, 0}}, TG_EARG,
                     "kernel [0,2], stride [0,0], padding [0,0]: want kernel >= 1");
        expect_error(f, nm, x, &(tg_pool2d_opts){{2, -1}, {0, 0}, {0, 0}}, TG_EARG, geo);
        expect_error(f, nm, x, &(tg_pool2d_opts){{2, 2}, {1, -1}, {0, 0}}, TG_EARG,
                     "kernel [2,2], stride [1,-1], padding [0,0]");
        expect_error(f, nm, x, &(tg_pool2d_opts){{3, 3}, {1, 1}, {2, 1}}, TG_EARG,
                     "padding [2,1]: want");
        expect_error(f, nm, x, &(tg_pool2d_opts){{2, 2}, {1, 1}, {0, -1}}, TG_EARG, geo);
        expect_error(f, nm, x, &(tg_pool2d_opts){{INT64_MAX, 1}, {0, 0}, {0, 0}}, TG_ESHAPE,
                     "the kernel is larger than the padded input");
        /* H 3 padded to 5 takes a kernel of 5, not 6; W 4 takes 4 unpadded, not 5 */
        expect_error(f, nm, x, &(tg_pool2d_opts){{6, 1}, {1, 1}, {1, 0}}, TG_ESHAPE,
                     "x [1,2,3,4], kernel [6,1], padding [1,0]: the kernel is larger than the "
                     "padded input");
        expect_error(f, nm, x, &(tg_pool2d_opts){{1, 5}, {1, 1}, {0, 0}}, TG_ESHAPE,
                     "kernel [1,5], padding [0,0]: the kernel is larger");
        expect_error(f, nm, flat, &ok, TG_ESHAPE, "x [2,2,0,4]: H and W must be at least 1");
        expect_error(f, nm, NULL, &ok, TG_EARG, "input 0 is NULL");
        /* the largest kernels that fit */
        tg_tape *tp = tg_tape_new();
        tg_tensor *y = f(tp, x, &(tg_pool2d_opts){{5, 4}, {1, 1}, {1, 0}});
        CHECK(y && tg_tensor_shape(y)[2] == 1 && tg_tensor_shape(y)[3] == 1);
        /* an arena tensor of another tape */
        tg_tape *other = tg_tape_new();
        tg_tensor *z = tg_neg(other, x);
        CHECK(z && f(tp, z, &ok) == NULL && tg_tape_errcode(tp) == TG_ESTATE);
        CHECK_STR_HAS(tg_tape_error(tp), "belongs to another tape");
        tg_tape_free(other);
        tg_tape_free(tp);
        CHECK(f(NULL, x, &ok) == NULL);
        drop_all();
    }
}

static void test_family_cases(void)
{
    const char *ops[] = {"max_pool2d", "avg_pool2d"};
    int count[2];
    check_family_cases(ops, 2, count);
    check_case_count("max_pool2d", count[0], 10);
    check_case_count("avg_pool2d", count[1], 10);
}

static const check_case cases[] = {
    TEST(test_max_pool_values),   TEST(test_avg_pool_values),     TEST(test_max_pool_nan_inf),
    TEST(test_global_avg_pool),   TEST(test_against_reference),   TEST(test_threads_same_bits),
    TEST(test_recorded_gradient), TEST(test_recording_and_empty), TEST(test_errors),
    TEST(test_family_cases),
};
TEST_MAIN("test_ops_pool", cases)
