/* test/test_ops_matmul.c: the BLIS-backed ops beyond their gradchecks (ops/cases_matmul.c):
 * linear_act against hand-worked numbers and against the composition of linear and the
 * activation at sizes where its passes split over threads, its errors and edge shapes, and
 * matmul on both of BLIS's GEMM paths against plain loops. */
#include <string.h>
#include <time.h>

#include "ops_check.h"

static const char *const ACT_NAME[] = {"identity", "relu", "leaky_relu", "tanh", "sigmoid"};

/* x [1,2] = (1, -2), w [[0.5, -1], [0.25, 2]], b (0.1, 0.2): z = x·w + b = (0.1, -4.8).
 * loss = y0 + 2 y1, so dy = (1, 2). Expected values from the activation's formula and
 * derivative, evaluated in double precision by hand (python3 math). */
static void test_linear_act_values(void)
{
    struct {
        tg_act act;
        double alpha, y[2], dx[2], dw[4], db[2];
    } want[] = {
        {TG_ACT_IDENTITY, 0, {0.1, -4.8}, {0.5 - 2, 0.25 + 4}, {1, 2, -2, -4}, {1, 2}},
        {TG_ACT_RELU, 0, {0.1, 0}, {0.5, 0.25}, {1, 0, -2, 0}, {1, 0}},
        {TG_ACT_LEAKY_RELU, 0.1, {0.1, -0.48}, {0.3, 0.65}, {1, 0.2, -2, -0.4}, {1, 0.2}},
        {TG_ACT_TANH,
         0,
         {0.099667994624955819, -0.9998645517007605},
         {0.49449138891924538, 0.24860008572080899},
         {0.9900662908474398, 0.00054175650447452206, -1.9801325816948796, -0.0010835130089490441},
         {0.9900662908474398, 0.00054175650447452206}},
        {TG_ACT_SIGMOID,
         0,
         {0.52497918747894001, 0.0081625711531598966},
         {0.108496132925787, 0.094727784389540992},
         {0.24937604019289197, 0.016191887170658996, -0.49875208038578395, -0.032383774341317992},
         {0.24937604019289197, 0.016191887170658996}},
    };
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        double tol = d ? 1e-14 : 1e-6;
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            tg_tape *tp = tg_tape_new();
            tg_tensor *x = leaf(dt, 2, S(1, 2), V(1, -2), true);
            tg_tensor *w = leaf(dt, 2, S(2, 2), V(0.5, -1, 0.25, 2), true);
            tg_tensor *b = leaf(dt, 1, S(2), V(0.1, 0.2), true);
            tg_tensor *y = tg_linear_act(tp, x, w, b, want[i].act, want[i].alpha);
            EXPECT(y, 2, want[i].y, tol);
            CHECK(sweep(tp, y) == TG_OK);
            EXPECT(tg_grad(x), 2, want[i].dx, tol);
            EXPECT(tg_grad(w), 4, want[i].dw, tol);
            EXPECT(tg_grad(b), 2, want[i].db, tol);
            tg_tape_free(tp);
            drop_all();
        }
    }
}

/* Largest |a - b| over two tensors of the same size, relative to max(1, largest |b|): the
 * two computations sum the same terms in another order, and the weighted loss makes some
 * gradients large sums that cancel to small elements. */
static double maxdiff(const tg_tensor *a, const tg_tensor *b)
{
    double e = 0, scale = 1;
    for (int64_t i = 0; i < tg_tensor_numel(b); i++) scale = fmax(scale, fabs(tg_get(b, i)));
    for (int64_t i = 0; i < tg_tensor_numel(b); i++) e = fmax(e, fabs(tg_get(a, i) - tg_get(b, i)));
    return e / scale;
}

static tg_tensor *act_of(tg_tape *tp, tg_tensor *z, tg_act act, double alpha)
{
    switch (act) {
    case TG_ACT_RELU: return tg_relu(tp, z);
    case TG_ACT_LEAKY_RELU: return tg_leaky_relu(tp, z, alpha);
    case TG_ACT_TANH: return tg_tanh(tp, z);
    case TG_ACT_SIGMOID: return tg_sigmoid(tp, z);
    default: return z;
    }
}

/* The fused op against tg_<act>(tg_linear()) with the same leaves, forward and every
 * gradient, at 1 and 2 threads and at sizes below and above the thread split (including
 * odd column counts, 3-D input, and second uses of x and b so their gradients are added
 * to). */
static void test_linear_act_matches_composition(void)
{
    const int64_t dims[][4] = {
        {3, 4, 5, 0}, {128, 64, 256, 0}, {200, 33, 170, 0}, {2, 64, 40, 300}};
    tg_rng r;
    tg_rng_seed(&r, 5);
    int bad = 0, runs = 0;
    for (int threads = 1; threads <= 2; threads++) {
        tg_set_num_threads(threads);
        for (int d = 0; d < 2; d++) {
            tg_dtype dt = d ? TG_F64 : TG_F32;
            double tol = d ? 1e-12 : 2e-5;
            for (size_t c = 0; c < sizeof dims / sizeof dims[0]; c++) {
                bool three = dims[c][3] != 0; /* x [d0, d3, k] */
                int64_t k = dims[c][1], cols = dims[c][2];
                int64_t sx3[3] = {dims[c][0], dims[c][3], k}, sx2[2] = {dims[c][0], k};
                int64_t sw[2] = {k, cols}, sb[1] = {cols};
                for (int act = TG_ACT_IDENTITY; act <= TG_ACT_SIGMOID; act++) {
                    tg_tensor *x = tg_tensor_new(dt, three ? 3 : 2, three ? sx3 : sx2);
                    tg_tensor *w = tg_tensor_new(dt, 2, sw), *b = tg_tensor_new(dt, 1, sb);
                    tg_tensor_rand_uniform(x, -1, 1, &r), tg_tensor_rand_uniform(w, -0.3, 0.3, &r);
                    tg_tensor_rand_uniform(b, -0.5, 0.5, &r);
                    tg_set_requires_grad(x, true), tg_set_requires_grad(w, true);
                    tg_set_requires_grad(b, true);
                    tg_tensor *got[4] = {0}, *ref[4] = {0};
                    for (int fused = 0; fused < 2; fused++) {
                        tg_tape *tp = tg_tape_new();
                        tg_zero_grad(x), tg_zero_grad(w), tg_zero_grad(b);
                        tg_tensor *y = fused
                                           ? tg_linear_act(tp, x, w, b, (tg_act)act, 0.05)
                                           : act_of(tp, tg_linear(tp, x, w, b), (tg_act)act, 0.05);
                        /* x and b used again, recorded later: their gradients hold values
                         * when the op's backward adds to them */
                        tg_tensor *loss =
                            tg_add(tp, weighted(tp, y), tg_sum(tp, x, TG_ALL_AXES, false));
                        loss = tg_add(tp, loss, tg_sum(tp, tg_square(tp, b), TG_ALL_AXES, false));
                        if (!loss || tg_backward(tp, loss) != TG_OK) bad++;
                        tg_tensor **out = fused ? got : ref;
                        out[0] = tg_tensor_clone(y), out[1] = tg_tensor_clone(tg_grad(x));
                        out[2] = tg_tensor_clone(tg_grad(w)), out[3] = tg_tensor_clone(tg_grad(b));
                        tg_tape_free(tp);
                    }
                    double e = 0;
                    for (int i = 0; i < 4; i++) e = fmax(e, maxdiff(got[i], ref[i]));
                    if (!(e <= tol)) {
                        bad++;
                        printf("  linear_act %s %s case %zu, %d threads: error %g\n", ACT_NAME[act],
                               tg_dtype_name(dt), c, threads, e);
                    }
                    runs++;
                    for (int i = 0; i < 4; i++) tg_tensor_free(got[i]), tg_tensor_free(ref[i]);
                    tg_tensor_free(x), tg_tensor_free(w), tg_tensor_free(b);
                }
            }
        }
    }
    tg_set_num_threads(1);
    CHECK(bad == 0 && runs == 2 * 2 * 4 * 5);
}

/* Every output and gradient of linear_act, linear and matmul has the same bits at 1 and 2
 * threads at these shapes (the second is the bench MLP's first layer): linear_act's passes
 * split by rows and its bias gradient by columns, summed in row order; at 2 threads the two
 * gradient GEMMs of a node run side by side, one BLIS thread each, on the same BLIS paths.
 * Not every shape: BLIS 0.9.0's own 2-thread GEMM differs from its 1-thread one for an
 * a·bᵀ only a few columns wide (docs/design.md, Threads). The profile counts both GEMMs
 * either way. */
static void test_threads_same_bits(void)
{
    tg_rng r;
    tg_rng_seed(&r, 9);
    for (int shape = 0; shape < 2; shape++)
        for (int d = 0; d < 2; d++) {
            int64_t rows = shape ? 128 : 256, k = shape ? 784 : 48, cols = shape ? 256 : 200;
            int64_t sx[2] = {rows, k}, sw[2] = {k, cols}, sb[1] = {cols};
            tg_dtype dt = d ? TG_F64 : TG_F32;
            tg_tensor *x = tg_tensor_new(dt, 2, sx), *w = tg_tensor_new(dt, 2, sw);
            tg_tensor *b = tg_tensor_new(dt, 1, sb);
            tg_tensor_rand_uniform(x, -1, 1, &r), tg_tensor_rand_uniform(w, -0.3, 0.3, &r);
            tg_tensor_rand_uniform(b, -0.5, 0.5, &r);
            tg_set_requires_grad(x, true), tg_set_requires_grad(w, true),
                tg_set_requires_grad(b, true);
            for (int op = 0; op < 3; op++) {
                tg_tensor *out[2][4];
                for (int threads = 1; threads <= 2; threads++) {
                    tg_set_num_threads(threads);
                    tg_tape *tp = tg_tape_new();
                    tg_tape_set_profiling(tp, true);
                    tg_zero_grad(x), tg_zero_grad(w), tg_zero_grad(b);
                    tg_tensor *y = op == 0   ? tg_linear_act(tp, x, w, b, TG_ACT_TANH, 0)
                                   : op == 1 ? tg_linear(tp, x, w, b)
                                             : tg_matmul(tp, x, w);
                    CHECK(sweep(tp, y) == TG_OK);
                    tg_profile_row gemm;
                    tg_tape_profile(tp, NULL, 0, &gemm);
                    CHECK(gemm.forward_calls == 1 && gemm.backward_calls == 2);
                    tg_tensor **o = out[threads - 1];
                    o[0] = tg_tensor_clone(y), o[1] = tg_tensor_clone(tg_grad(x));
                    o[2] = tg_tensor_clone(tg_grad(w)), o[3] = tg_tensor_clone(tg_grad(b));
                    tg_tape_free(tp);
                }
                tg_set_num_threads(1);
                for (int i = 0; i < 4; i++) {
                    size_t bytes = (size_t)tg_tensor_numel(out[0][i]) * tg_dtype_size(dt);
                    CHECK(memcmp(tg_data(out[0][i]), tg_data(out[1][i]), bytes) == 0);
                    tg_tensor_free(out[0][i]), tg_tensor_free(out[1][i]);
                }
            }
            tg_tensor_free(x), tg_tensor_free(w), tg_tensor_free(b);
        }
}

/* matmul(a, a) and linear(x, x, b): both gradient GEMMs write the same gradient, so they
 * run one after the other (the second adds) even at 2 threads; checked against loops. */
static void test_shared_input_gradients(void)
{
    tg_rng r;
    tg_rng_seed(&r, 13);
    const int64_t n = 300;
    int64_t sa[2] = {n, n}, sb[1] = {n};
    for (int threads = 1; threads <= 2; threads++) {
        tg_set_num_threads(threads);
        for (int op = 0; op < 2; op++) {
            tg_tensor *a = tg_tensor_new(TG_F64, 2, sa), *g = tg_tensor_new(TG_F64, 2, sa);
            tg_tensor *b = tg_tensor_new(TG_F64, 1, sb);
            tg_tensor_rand_uniform(a, -1, 1, &r), tg_tensor_rand_uniform(g, -1, 1, &r);
            tg_tensor_fill(b, 0);
            tg_set_requires_grad(a, true);
            tg_tape *tp = tg_tape_new();
            tg_tensor *y = op ? tg_linear(tp, a, a, b) : tg_matmul(tp, a, a);
            CHECK(y && tg_backward_seed(tp, y, g) == TG_OK);
            /* d(a·a) = g·aᵀ + aᵀ·g (n is large enough for GEMMs run side by side to
             * interleave their writes, were they allowed to) */
            double e = 0;
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < n; j++) {
                    double s = 0, mag = 0;
                    for (int64_t l = 0; l < n; l++) {
                        double t1 = tg_get(g, i * n + l) * tg_get(a, j * n + l);
                        double t2 = tg_get(a, l * n + i) * tg_get(g, l * n + j);
                        s += t1 + t2, mag += fabs(t1) + fabs(t2);
                    }
                    e = fmax(e, fabs(tg_get(tg_grad(a), i * n + j) - s) / mag);
                }
            CHECK(e <= 1e-13);
            tg_tape_free(tp);
            tg_tensor_free(a), tg_tensor_free(g), tg_tensor_free(b);
        }
    }
    tg_set_num_threads(1);
}

/* Bad arguments name the problem and record nothing; no-grad mode keeps no dz; edge shapes. */
static void test_linear_act_errors_and_edges(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F32, 2, S(3, 4), NULL, true), *w = leaf(TG_F32, 2, S(4, 5), NULL, true);
    tg_tensor *b = leaf(TG_F32, 1, S(5), NULL, true), *b6 = leaf(TG_F32, 1, S(6), NULL, true);
    tg_tensor *w64 = leaf(TG_F64, 2, S(4, 5), NULL, true);
    CHECK(tg_linear_act(tp, x, w, b6, TG_ACT_RELU, 0) == NULL && tg_tape_errcode(tp) == TG_ESHAPE);
    CHECK_STR_HAS(tg_tape_error(tp),
                  "tg_linear_act: [3,4], [4,5] and [6]: want x [...,k], w [k,n], b [n]");
    tg_tape_reset(tp);
    CHECK(tg_linear_act(tp, x, w, b, (tg_act)7, 0) == NULL && tg_tape_errcode(tp) == TG_EARG);
    CHECK_STR_HAS(tg_tape_error(tp), "unknown activation 7");
    tg_tape_reset(tp);
    CHECK(tg_linear_act(tp, x, w, b, TG_ACT_LEAKY_RELU, -0.5) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "leaky_relu alpha -0.5 must be finite and >= 0");
    tg_tape_reset(tp);
    CHECK(tg_linear_act(tp, x, w, b, TG_ACT_LEAKY_RELU, (double)NAN) == NULL);
    tg_tape_reset(tp);
    CHECK(tg_linear_act(tp, x, w64, b, TG_ACT_TANH, 0) == NULL && tg_tape_errcode(tp) == TG_EDTYPE);
    tg_tape_reset(tp);
    CHECK(tg_linear_act(tp, NULL, w, b, TG_ACT_TANH, 0) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_linear_act: input 0 is NULL");
    CHECK(tg_tape_n_nodes(tp) == 0);
    tg_tape_reset(tp);

    /* no-grad mode: the output alone, no node, no dz in the arena */
    tg_tape_stats s0, s1;
    tg_tape_set_grad_mode(tp, false);
    tg_tensor *y = tg_linear_act(tp, x, w, b, TG_ACT_RELU, 0);
    CHECK(y != NULL);
    tg_tape_get_stats(tp, &s0);
    tg_tape_set_grad_mode(tp, true);
    tg_tape_reset(tp);
    y = tg_linear_act(tp, x, w, b, TG_ACT_RELU, 0);
    tg_tape_get_stats(tp, &s1);
    CHECK(y && s0.n_nodes == 0 && s1.n_nodes == 1 && s1.arena_used >= s0.arena_used + 3 * 5 * 4);
    tg_tape_reset(tp);

    /* k = 0: y = act(b) in every row, dw and dx empty, db the column sums of dz */
    tg_tensor *x0 = leaf(TG_F64, 2, S(2, 0), NULL, true),
              *w0 = leaf(TG_F64, 2, S(0, 3), NULL, true);
    tg_tensor *bb = leaf(TG_F64, 1, S(3), V(-1, 0.5, 2), true);
    y = tg_linear_act(tp, x0, w0, bb, TG_ACT_RELU, 0);
    EXPECT(y, 6, V(0, 0.5, 2, 0, 0.5, 2), 0);
    CHECK(sweep(tp, y) == TG_OK);
    EXPECT(tg_grad(bb), 3, V(0, 2 + 5, 3 + 6), 0);
    tg_tape_reset(tp);
    /* no rows: empty output; the bias gradient is a sum of nothing */
    tg_tensor *xe = leaf(TG_F64, 2, S(0, 3), NULL, true),
              *we = leaf(TG_F64, 2, S(3, 2), NULL, true);
    tg_tensor *be = leaf(TG_F64, 1, S(2), V(1, 1), true);
    tg_zero_grad(be);
    y = tg_linear_act(tp, xe, we, be, TG_ACT_TANH, 0);
    CHECK(y && tg_tensor_numel(y) == 0);
    tg_tensor *s =
        tg_add(tp, tg_sum(tp, y, TG_ALL_AXES, false), tg_sum(tp, be, TG_ALL_AXES, false));
    CHECK(s && tg_backward(tp, s) == TG_OK);
    EXPECT(tg_grad(be), 2, V(1, 1), 0);
    tg_tape_free(tp);
    drop_all();
}

/* Largest |got - op(p)·op(q)| over the elements of got (m x n), each relative to the sum of
 * its terms' magnitudes; op transposes p (stored k x m) or q (stored n x k) when asked. */
static double product_err(const tg_tensor *got, const tg_tensor *p, bool pt, const tg_tensor *q,
                          bool qt, int64_t m, int64_t n, int64_t k)
{
    double e = 0;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0, mag = 0;
            for (int64_t l = 0; l < k; l++) {
                double t =
                    tg_get(p, pt ? l * m + i : i * k + l) * tg_get(q, qt ? j * k + l : l * n + j);
                s += t, mag += fabs(t);
            }
            e = fmax(e, fabs(tg_get(got, i * n + j) - s) / (mag + 1e-300));
        }
    return e;
}

/* matmul's forward and both input gradients against plain double loops, at shapes on both
 * sides of the GEMM path choices (ops/gemm.c sends g·bᵀ to BLIS's packed path when its
 * m, n >= 64 and its inner size > 1, and aᵀ·g when its m, n >= 256) and at 1 and 2
 * threads. */
static void test_gemm_paths(void)
{
    /* m, k, n of a·b; the input gradient g·bᵀ is m x k with inner size n, the other one
     * aᵀ·g is k x n with inner size m */
    const int64_t dims[][3] = {{128, 256, 10}, {64, 64, 10},   {64, 64, 2},   {64, 64, 1},
                               {63, 64, 10},   {64, 63, 10},   {70, 65, 33},  {128, 96, 128},
                               {5, 7, 3},      {32, 256, 256}, {9, 300, 257}, {16, 255, 256},
                               {16, 256, 255}};
    tg_rng r;
    tg_rng_seed(&r, 11);
    for (int threads = 1; threads <= 2; threads++) {
        tg_set_num_threads(threads);
        for (int d = 0; d < 2; d++) {
            tg_dtype dt = d ? TG_F64 : TG_F32;
            double tol = d ? 1e-12 : 1e-5;
            for (size_t c = 0; c < sizeof dims / sizeof dims[0]; c++) {
                int64_t m = dims[c][0], k = dims[c][1], n = dims[c][2];
                int64_t sa[2] = {m, k}, sb[2] = {k, n}, sy[2] = {m, n};
                tg_tensor *a = tg_tensor_new(dt, 2, sa), *b = tg_tensor_new(dt, 2, sb);
                tg_tensor *g = tg_tensor_new(dt, 2, sy);
                tg_tensor_rand_uniform(a, -1, 1, &r), tg_tensor_rand_uniform(b, -1, 1, &r);
                tg_tensor_rand_uniform(g, -1, 1, &r);
                tg_set_requires_grad(a, true), tg_set_requires_grad(b, true);
                tg_tape *tp = tg_tape_new();
                tg_tensor *y = tg_matmul(tp, a, b);
                CHECK(y && tg_backward_seed(tp, y, g) == TG_OK);
                double ey = product_err(y, a, false, b, false, m, n, k);
                double ea = product_err(tg_grad(a), g, false, b, true, m, k, n); /* g·bᵀ */
                double eb = product_err(tg_grad(b), a, true, g, false, k, n, m); /* aᵀ·g */
                CHECK(ey <= tol && ea <= tol && eb <= tol);
                if (!(ey <= tol && ea <= tol && eb <= tol))
                    printf("  %s %lldx%lldx%lld, %d threads: errors y %g da %g db %g\n",
                           tg_dtype_name(dt), (long long)m, (long long)k, (long long)n, threads, ey,
                           ea, eb);
                tg_tape_free(tp);
                tg_tensor_free(a), tg_tensor_free(b), tg_tensor_free(g);
            }
        }
    }
    tg_set_num_threads(1);
}

/* tg_matmul_t against products worked out by hand, its gradients against tg_matmul on
 * copies transposed by tg_transpose (bit for bit: the same GEMMs of the same numbers), and
 * its errors. */
static void test_matmul_t(void)
{
    const double av[6] = {1, 2, 3, 4, 5, 6}, cv[6] = {1, 0, 0, 1, 1, 1};
    /* a·aᵀ, aᵀ·a, aᵀ·cᵀ for a = [[1,2,3],[4,5,6]], c = [[1,0],[0,1],[1,1]] (by hand) */
    const double aat[4] = {14, 32, 32, 77};
    const double ata[9] = {17, 22, 27, 22, 29, 36, 27, 36, 45};
    const double atct[9] = {1, 4, 5, 2, 5, 7, 3, 6, 9};
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        tg_tensor *a = tg_tensor_new(dt, 2, (int64_t[]){2, 3});
        tg_tensor *c = tg_tensor_new(dt, 2, (int64_t[]){3, 2});
        for (int i = 0; i < 6; i++) tg_set(a, i, av[i]), tg_set(c, i, cv[i]);
        tg_tape *tp = tg_tape_new();
        tg_tensor *y1 = tg_matmul_t(tp, a, a, false, true),
                  *y2 = tg_matmul_t(tp, a, a, true, false);
        tg_tensor *y3 = tg_matmul_t(tp, a, c, true, true);
        CHECK(y1 && y2 && y3);
        CHECK(tg_tensor_shape(y1)[0] == 2 && tg_tensor_shape(y1)[1] == 2);
        CHECK(tg_tensor_shape(y2)[0] == 3 && tg_tensor_shape(y3)[1] == 3);
        for (int i = 0; i < 4; i++) CHECK(tg_get(y1, i) == aat[i]);
        for (int i = 0; i < 9; i++) CHECK(tg_get(y2, i) == ata[i] && tg_get(y3, i) == atct[i]);
        tg_tape_free(tp);
        tg_tensor_free(a), tg_tensor_free(c);
    }
    /* gradients: every flag pair, against matmul of transposed copies */
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    for (int f = 0; f < 4; f++) {
        bool ta = f & 1, tb = f & 2;
        tg_tensor *a = tg_tensor_new(TG_F64, 2, ta ? (int64_t[]){5, 3} : (int64_t[]){3, 5});
        tg_tensor *b = tg_tensor_new(TG_F64, 2, tb ? (int64_t[]){4, 5} : (int64_t[]){5, 4});
        tg_tensor_rand_normal(a, 0, 1, &rng), tg_tensor_rand_normal(b, 0, 1, &rng);
        tg_set_requires_grad(a, true), tg_set_requires_grad(b, true);
        tg_tape *tp = tg_tape_new();
        tg_tensor *w = tg_tensor_new(TG_F64, 2, (int64_t[]){3, 4});
        tg_tensor_rand_normal(w, 0, 1, &rng);
        tg_tensor *y = tg_matmul_t(tp, a, b, ta, tb);
        CHECK(tg_backward(tp, tg_sum(tp, tg_mul(tp, y, w), TG_ALL_AXES, false)) == 0);
        tg_tensor *ga = tg_tensor_clone(tg_grad(a)), *gb = tg_tensor_clone(tg_grad(b));
        tg_zero_grad(a), tg_zero_grad(b);
        tg_tape_reset(tp);
        tg_tensor *ya = ta ? tg_transpose(tp, a, 0, 1) : a,
                  *yb = tb ? tg_transpose(tp, b, 0, 1) : b;
        tg_tensor *z = tg_matmul(tp, ya, yb);
        CHECK(tg_backward(tp, tg_sum(tp, tg_mul(tp, z, w), TG_ALL_AXES, false)) == 0);
        CHECK(maxdiff(ga, tg_grad(a)) < 1e-13 && maxdiff(gb, tg_grad(b)) < 1e-13);
        tg_tape_free(tp);
        tg_tensor_free(a), tg_tensor_free(b), tg_tensor_free(w), tg_tensor_free(ga),
            tg_tensor_free(gb);
    }
    /* errors: ranks, inner sizes; nothing recorded, the first error kept */
    tg_tensor *a = tg_tensor_new(TG_F64, 2, (int64_t[]){2, 3});
    tg_tensor *b3 = tg_tensor_new(TG_F64, 3, (int64_t[]){1, 3, 2});
    tg_tensor *v = tg_tensor_new(TG_F64, 1, (int64_t[]){3});
    tg_set_requires_grad(a, true);
    tg_tape *tp = tg_tape_new();
    CHECK(tg_matmul_t(tp, a, b3, false, false) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_ESHAPE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_matmul_t: [2,3] and [1,3,2]: operands must be 2-D");
    tg_tape_reset(tp);
    CHECK(tg_matmul_t(tp, v, a, false, false) == NULL && tg_tape_errcode(tp) == TG_ESHAPE);
    tg_tape_reset(tp);
    CHECK(tg_matmul_t(tp, a, a, false, false) == NULL); /* [2,3]·[2,3]: 3 and 2 */
    CHECK_STR_HAS(tg_tape_error(tp), "inner dimensions 3 and 2 differ");
    CHECK(tg_matmul_t(tp, a, a, true, false) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "inner dimensions 3 and 2 differ"); /* the first kept */
    CHECK(tg_tape_n_nodes(tp) == 0);
    tg_tape_reset(tp);
    CHECK(tg_matmul_t(tp, a, NULL, false, true) == NULL && tg_tape_errcode(tp) == TG_EARG);
    tg_tape_free(tp);
    tg_tensor_free(a), tg_tensor_free(b3), tg_tensor_free(v);
}

static const check_case cases[] = {
    TEST(test_linear_act_values),
    TEST(test_linear_act_matches_composition),
    TEST(test_threads_same_bits),
    TEST(test_shared_input_gradients),
    TEST(test_linear_act_errors_and_edges),
    TEST(test_gemm_paths),
    TEST(test_matmul_t),
};
TEST_MAIN("test_ops_matmul", cases)
