/* test/test_higher.c: higher-order derivatives: tg_gradients itself (duplicates, unused
 * and non-leaf inputs, seeds, flags, errors that record nothing), nested gradients to
 * third and fourth order against closed forms, and the products of derivs.h: Hessian-
 * vector products against dense Hessians and finite differences, JVP against VJP, dense
 * Jacobians by rows and by columns, dense Hessians (Rosenbrock exactly), their argument
 * errors, grad mode, leaf gradients left alone, and custom ops with and without a vjp. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "tapegrad.h"

/* ---- helpers ---- */

/* An f64 leaf of shape with vals (or zeros), requiring a gradient if rg. */
static tg_tensor *leaf(int ndim, const int64_t *shape, const double *vals, bool rg)
{
    tg_tensor *t = tg_tensor_new(TG_F64, ndim, shape);
    /* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage): vals has the shape's element count */
    for (int64_t i = 0; vals && i < tg_tensor_numel(t); i++) tg_set(t, i, vals[i]);
    if (rg) tg_set_requires_grad(t, true);
    return t;
}
static tg_tensor *vec(int64_t n, const double *vals, bool rg) { return leaf(1, &n, vals, rg); }
static tg_tensor *rand_leaf(int ndim, const int64_t *shape, bool rg, tg_rng *r)
{
    tg_tensor *t = leaf(ndim, shape, NULL, rg);
    tg_tensor_rand_normal(t, 0, 1, r);
    return t;
}
static double rel(double a, double b) { return fabs(a - b) / fmax(1.0, fmax(fabs(a), fabs(b))); }

/* ---- functions ---- */

/* Rosenbrock on two [1] inputs: (1 - x)² + 100 (y - x²)². */
static tg_tensor *rosen(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    tg_tensor *x = in[0], *y = in[1];
    tg_tensor *a = tg_square(tp, tg_add_scalar(tp, tg_neg(tp, x), 1));
    tg_tensor *b = tg_mul_scalar(tp, tg_square(tp, tg_sub(tp, y, tg_square(tp, x))), 100);
    return tg_sum(tp, tg_add(tp, a, b), TG_ALL_AXES, false);
}

/* a [3], b [2,3]: sum(exp(a b) b) + (sum a)², a smooth coupled function. */
static tg_tensor *coupled(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    tg_tensor *a = in[0], *b = in[1];
    tg_tensor *t = tg_sum(tp, tg_mul(tp, tg_exp(tp, tg_mul(tp, a, b)), b), TG_ALL_AXES, false);
    return tg_add(tp, t, tg_square(tp, tg_sum(tp, a, TG_ALL_AXES, false)));
}

/* in[0] [4,3] (data), W1 [3,5], b1 [5], W2 [5,2]: tanh(x W1 + b1) W2, [4,2]. */
static tg_tensor *mlp(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    tg_tensor *h = tg_tanh(tp, tg_add(tp, tg_matmul(tp, in[0], in[1]), in[2]));
    return tg_matmul(tp, h, in[3]);
}

static tg_tensor *sum_all(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    return tg_sum(tp, in[0], TG_ALL_AXES, false);
}
static tg_tensor *identity(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)tp, (void)ctx;
    return in[0];
}
/* the sum of the leaf ctx, whatever the inputs */
static tg_tensor *of_ctx(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)in;
    return tg_sum(tp, ctx, TG_ALL_AXES, false);
}
static tg_tensor *returns_null(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)tp, (void)in, (void)ctx;
    return NULL;
}
static tg_tensor *not_scalar(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    return tg_square(tp, in[0]);
}

/* A custom cube op, with and without a backward in ops. */
static void cube_fwd(void *ctx, int n_in, const tg_tensor *const *in, tg_tensor *out)
{
    (void)ctx, (void)n_in;
    for (int64_t i = 0; i < tg_tensor_numel(out); i++) tg_set(out, i, pow(tg_get(in[0], i), 3));
}
static void cube_bwd(void *ctx, int n_in, const tg_tensor *const *in, const tg_tensor *out,
                     const tg_tensor *dout, tg_tensor *const *din)
{
    (void)ctx, (void)n_in, (void)out;
    if (!din[0]) return;
    for (int64_t i = 0; i < tg_tensor_numel(out); i++) {
        double x = tg_get(in[0], i);
        tg_set(din[0], i, tg_get(din[0], i) + 3 * x * x * tg_get(dout, i));
    }
}
/* 3x² dy, in ops, so that it is differentiable again */
static tg_tensor *cube_vjp(void *ctx, tg_tape *tp, int n_in, tg_tensor *const *in, tg_tensor *out,
                           tg_tensor *dout, int i)
{
    (void)ctx, (void)n_in, (void)out, (void)i;
    return tg_mul(tp, dout, tg_mul_scalar(tp, tg_square(tp, in[0]), 3));
}
static const tg_custom_op cube_op = {"cube", cube_fwd, cube_bwd, cube_vjp};
static const tg_custom_op cube_novjp_op = {"cube_novjp", cube_fwd, cube_bwd, NULL};
static tg_tensor *sum_cube(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const tg_custom_op *op = ctx ? ctx : &cube_op;
    tg_tensor *c = tg_custom(tp, op, NULL, 1, in, tg_tensor_ndim(in[0]), tg_tensor_shape(in[0]));
    return tg_sum(tp, c, TG_ALL_AXES, false);
}

/* ---- tg_gradients ---- */

static void test_gradients_basic(void)
{
    tg_tape *tp = tg_tape_new();
    const double xv[3] = {0.5, -1.0, 2.0}, zv[2] = {3, 4};
    tg_tensor *x = vec(3, xv, true), *z = vec(2, zv, true), *c = vec(3, xv, false);
    tg_tensor *h = tg_square(tp, x);                              /* a non-leaf x */
    tg_tensor *y = tg_sum(tp, tg_exp(tp, h), TG_ALL_AXES, false); /* Σ exp(x²) */
    tg_tensor *xs[5] = {x, z, h, x, y}, *g[5];
    int64_t n0 = tg_tape_n_nodes(tp);
    CHECK(tg_gradients(tp, y, NULL, 5, xs, g, 0) == 0);
    CHECK(tg_tape_n_nodes(tp) == n0); /* without TG_GRAD_RECORD nothing is recorded */
    for (int i = 0; i < 3; i++) {
        double e = exp(xv[i] * xv[i]);
        CHECK_NEAR(tg_get(g[0], i), 2 * xv[i] * e, 1e-12 * e); /* a leaf */
        CHECK_NEAR(tg_get(g[3], i), 2 * xv[i] * e, 1e-12 * e); /* the same leaf again */
        CHECK_NEAR(tg_get(g[2], i), e, 1e-12 * e);             /* the op output x² */
    }
    CHECK(tg_tensor_numel(g[1]) == 2); /* y does not depend on z: exact zeros */
    CHECK(tg_get(g[1], 0) == 0 && tg_get(g[1], 1) == 0);
    CHECK(tg_tensor_numel(g[4]) == 1 && tg_get(g[4], 0) == 1); /* y itself: 1 */
    CHECK(!tg_requires_grad(g[0]) && !tg_requires_grad(g[4]));
    CHECK(tg_tensor_dtype(g[0]) == TG_F64 && tg_tensor_ndim(g[0]) == 1);
    CHECK(tg_grad(x) == NULL && tg_grad(z) == NULL); /* leaf gradients untouched */

    /* a seeded non-scalar y, with y itself among xs: its gradient is the seed */
    const double sv[3] = {3, 4, -1};
    tg_tensor *sq = tg_square(tp, x), *seed = tg_tensor_from(TG_F64, 1, (int64_t[]){3}, sv);
    tg_tensor *xs2[2] = {sq, x};
    CHECK(tg_gradients(tp, sq, seed, 2, xs2, g, TG_GRAD_RECORD) == 0);
    for (int i = 0; i < 3; i++) {
        CHECK(tg_get(g[0], i) == tg_get(seed, i));
        CHECK_NEAR(tg_get(g[1], i), 2 * xv[i] * tg_get(seed, i), 1e-15);
    }
    CHECK(g[0] != seed && !tg_tensor_is_leaf(g[0])); /* a copy on the tape, not the seed */
    CHECK(tg_requires_grad(g[1]));                   /* recorded: differentiable in x */
    CHECK(tg_tape_grad_mode(tp));                    /* restored */
    CHECK(tg_gradients(tp, y, NULL, 1, &c, g, 0) == TG_EARG && g[0] == NULL); /* c needs none */
    tg_tensor_free(x), tg_tensor_free(z), tg_tensor_free(c), tg_tensor_free(seed);
    tg_tape_free(tp);
}

static void test_gradients_errors(void)
{
    tg_tape *tp = tg_tape_new(), *other = tg_tape_new();
    const double xv[3] = {0.5, -1.0, 2.0};
    tg_tensor *x = vec(3, xv, true), *g[2] = {x, x};
    tg_tensor *sq = tg_square(tp, x), *y = tg_sum(tp, sq, TG_ALL_AXES, false);
    int64_t n0 = tg_tape_n_nodes(tp);

    CHECK(tg_gradients(NULL, y, NULL, 1, &x, g, 0) == TG_EARG);
    CHECK(tg_gradients(tp, NULL, NULL, 1, &x, g, 0) == TG_EARG && g[0] == NULL);
    CHECK(tg_tape_n_nodes(tp) == n0);
    tg_tape_reset(tp);
    sq = tg_square(tp, x), y = tg_sum(tp, sq, TG_ALL_AXES, false), n0 = tg_tape_n_nodes(tp);
    CHECK(tg_gradients(tp, y, NULL, 0, &x, g, 0) == TG_EARG);
    CHECK(tg_tape_n_nodes(tp) == n0);
    tg_tape_reset(tp);
    sq = tg_square(tp, x), y = tg_sum(tp, sq, TG_ALL_AXES, false), n0 = tg_tape_n_nodes(tp);
    CHECK(tg_gradients(tp, y, NULL, 1, &x, g, 2u) == TG_EARG); /* unknown flags */
    CHECK(tg_tape_n_nodes(tp) == n0);
    CHECK_STR_HAS(tg_tape_error(tp), "unknown flags");
    tg_tape_reset(tp);

    /* seeds: wrong shape, wrong dtype, another tape's, none for a non-scalar y */
    sq = tg_square(tp, x), n0 = tg_tape_n_nodes(tp);
    tg_tensor *s2 = tg_tensor_new(TG_F64, 1, (int64_t[]){2});
    tg_tensor *s32 = tg_tensor_new(TG_F32, 1, (int64_t[]){3});
    CHECK(tg_gradients(tp, sq, s2, 1, &x, g, 0) == TG_ESHAPE && g[0] == NULL);
    CHECK(tg_tape_n_nodes(tp) == n0);
    tg_tape_reset(tp);
    sq = tg_square(tp, x);
    CHECK(tg_gradients(tp, sq, s32, 1, &x, g, 0) == TG_EDTYPE);
    tg_tape_reset(tp);
    sq = tg_square(tp, x);
    CHECK(tg_gradients(tp, sq, NULL, 1, &x, g, 0) == TG_ESHAPE);
    tg_tape_reset(tp);
    sq = tg_square(tp, x);
    tg_tensor *foreign = tg_square(other, x);
    CHECK(tg_gradients(tp, sq, foreign, 1, &x, g, 0) == TG_ESTATE);
    tg_tape_reset(tp);

    /* y or an x from another tape or before a reset */
    CHECK(tg_gradients(tp, foreign, NULL, 1, &x, g, 0) == TG_ESTATE);
    tg_tape_reset(tp);
    sq = tg_square(tp, x);
    tg_tape_reset(tp);
    y = tg_sum(tp, tg_square(tp, x), TG_ALL_AXES, false);
    CHECK(tg_gradients(tp, y, NULL, 1, &sq, g, 0) == TG_ESTATE); /* stale x */
    tg_tape_reset(tp);

    /* a gradient from a sweep that did not record: refused, nothing recorded */
    y = tg_sum(tp, tg_pow_scalar(tp, x, 3), TG_ALL_AXES, false);
    CHECK(tg_gradients(tp, y, NULL, 1, &x, g, 0) == 0 && !tg_requires_grad(g[0]));
    tg_tensor *seed = tg_tensor_new(TG_F64, 1, (int64_t[]){3});
    n0 = tg_tape_n_nodes(tp);
    tg_tensor *gg[1];
    CHECK(tg_gradients(tp, g[0], seed, 1, &x, gg, 0) == TG_EARG && gg[0] == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "TG_GRAD_RECORD");
    CHECK(tg_tape_n_nodes(tp) == n0);
    tg_tape_reset(tp);

    /* a custom op without a vjp between x and y: TG_ESTATE before anything is built */
    y = sum_cube(tp, &x, (void *)&cube_novjp_op);
    n0 = tg_tape_n_nodes(tp);
    CHECK(tg_gradients(tp, y, NULL, 1, &x, g, TG_GRAD_RECORD) == TG_ESTATE && g[0] == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "cube_novjp");
    CHECK(tg_tape_n_nodes(tp) == n0);
    CHECK(tg_tape_grad_mode(tp));
    /* a tape with an error does nothing and returns it */
    CHECK(tg_gradients(tp, y, NULL, 1, &x, g, 0) == TG_ESTATE);
    tg_tape_reset(tp);
    CHECK(tg_backward(tp, sum_cube(tp, &x, (void *)&cube_novjp_op)) == 0); /* tg_backward can */
    CHECK_NEAR(tg_get(tg_grad(x), 2), 12, 1e-12);

    tg_tensor_free(x), tg_tensor_free(s2), tg_tensor_free(s32), tg_tensor_free(seed);
    tg_tape_free(tp), tg_tape_free(other);
}

/* Leaf gradients from tg_backward survive tg_gradients and every product. */
static void test_leaf_grads_untouched(void)
{
    tg_tape *tp = tg_tape_new();
    const double xv[1] = {0.7}, yv[1] = {-0.4};
    tg_tensor *x = vec(1, xv, true), *y = vec(1, yv, true), *in[2] = {x, y}, *g[2];
    CHECK(tg_backward(tp, rosen(tp, in, NULL)) == 0);
    double gx = tg_get(tg_grad(x), 0), gy = tg_get(tg_grad(y), 0);
    tg_tape_reset(tp);
    CHECK(tg_gradients(tp, rosen(tp, in, NULL), NULL, 2, in, g, TG_GRAD_RECORD) == 0);
    tg_tensor *H = tg_tensor_new(TG_F64, 2, (int64_t[]){2, 2}),
              *hv[2] = {vec(1, NULL, false), vec(1, NULL, false)};
    CHECK(tg_hessian(tp, rosen, NULL, 2, in, H) == 0);
    CHECK(tg_hvp(tp, rosen, NULL, 2, in, in, hv, NULL, NULL) == 0);
    CHECK(tg_get(tg_grad(x), 0) == gx && tg_get(tg_grad(y), 0) == gy);
    tg_tensor_free(x), tg_tensor_free(y), tg_tensor_free(H);
    tg_tensor_free(hv[0]), tg_tensor_free(hv[1]);
    tg_tape_free(tp);
}

/* docs/higher-order.md's example, as written there. */
static void test_doc_example(void)
{
    tg_tape *tp = tg_tape_new();
    double x0 = -1.2, y0 = 1, one = 1, zero = 0, loss;
    const int64_t s1[1] = {1};
    tg_tensor *in[2] = {tg_tensor_from(TG_F64, 1, s1, &x0), tg_tensor_from(TG_F64, 1, s1, &y0)};
    tg_set_requires_grad(in[0], true);
    tg_set_requires_grad(in[1], true);

    tg_tensor *f = rosen(tp, in, NULL), *g[2], *h[2];
    CHECK(tg_gradients(tp, f, NULL, 2, in, g, TG_GRAD_RECORD) == 0);
    CHECK(tg_gradients(tp, g[0], NULL, 2, in, h, 0) == 0);
    CHECK_NEAR(tg_get(h[0], 0), 1330, 1e-10);
    CHECK_NEAR(tg_get(h[1], 0), 480, 1e-10);

    tg_tensor *H = tg_tensor_new(TG_F64, 2, (int64_t[]){2, 2});
    CHECK(tg_hessian(tp, rosen, NULL, 2, in, H) == 0);
    const double want[4] = {1330, 480, 480, 200};
    for (int k = 0; k < 4; k++) CHECK_NEAR(tg_get(H, k), want[k], 1e-10);
    tg_tensor *v[2] = {tg_tensor_from(TG_F64, 1, s1, &one), tg_tensor_from(TG_F64, 1, s1, &zero)};
    tg_tensor *hv[2] = {tg_tensor_new(TG_F64, 1, s1), tg_tensor_new(TG_F64, 1, s1)};
    CHECK(tg_hvp(tp, rosen, NULL, 2, in, v, hv, &loss, NULL) == 0);
    CHECK_NEAR(tg_get(hv[0], 0), 1330, 1e-10);
    CHECK_NEAR(tg_get(hv[1], 0), 480, 1e-10);
    CHECK_NEAR(loss, 24.2, 1e-12);

    /* a value computed in no-grad mode is a constant: refused */
    tg_tape_set_grad_mode(tp, false);
    f = rosen(tp, in, NULL);
    tg_tape_set_grad_mode(tp, true);
    CHECK(tg_gradients(tp, f, NULL, 2, in, g, 0) == TG_EARG);
    for (int i = 0; i < 2; i++) tg_tensor_free(in[i]), tg_tensor_free(v[i]), tg_tensor_free(hv[i]);
    tg_tensor_free(H);
    tg_tape_free(tp);
}

/* ---- nested gradients against closed forms ---- */

/* Σ x³ eˣ: derivatives eˣ (x³ + 3x²), eˣ (x³ + 6x² + 6x), eˣ (x³ + 9x² + 18x + 6),
 * eˣ (x³ + 12x² + 36x + 24), elementwise: four nested sweeps, each recorded. */
static void test_fourth_order_x3_exp(void)
{
    tg_tape *tp = tg_tape_new();
    const double xv[5] = {-2.5, -0.7, 0.0, 0.4, 1.3};
    tg_tensor *x = vec(5, xv, true), *g[4];
    tg_tensor *y =
        tg_sum(tp, tg_mul(tp, tg_pow_scalar(tp, x, 3), tg_exp(tp, x)), TG_ALL_AXES, false);
    for (int k = 0; k < 4; k++) {
        CHECK(tg_gradients(tp, y, NULL, 1, &x, &g[k], TG_GRAD_RECORD) == 0);
        if (!g[k]) return;
        CHECK(tg_requires_grad(g[k]));
        y = tg_sum(tp, g[k], TG_ALL_AXES, false); /* the Hessians are diagonal */
    }
    for (int i = 0; i < 5; i++) {
        double t = xv[i], e = exp(t);
        CHECK(rel(tg_get(g[0], i), e * (t * t * t + 3 * t * t)) < 1e-13);
        CHECK(rel(tg_get(g[1], i), e * (t * t * t + 6 * t * t + 6 * t)) < 1e-13);
        CHECK(rel(tg_get(g[2], i), e * (t * t * t + 9 * t * t + 18 * t + 6)) < 1e-13);
        CHECK(rel(tg_get(g[3], i), e * (t * t * t + 12 * t * t + 36 * t + 24)) < 1e-13);
    }
    tg_tensor_free(x);
    tg_tape_free(tp);
}

/* tanh''' = -2 (1 - t²)(1 - 3t²), through three nested recorded sweeps. */
static void test_third_order_tanh(void)
{
    tg_tape *tp = tg_tape_new();
    const double xv[4] = {-1.1, 0.0, 0.3, 2.0};
    tg_tensor *x = vec(4, xv, true), *g = NULL;
    tg_tensor *y = tg_sum(tp, tg_tanh(tp, x), TG_ALL_AXES, false);
    for (int k = 0; k < 3; k++) {
        CHECK(tg_gradients(tp, y, NULL, 1, &x, &g, TG_GRAD_RECORD) == 0);
        if (!g) {
            printf("  %s\n", tg_tape_error(tp));
            break;
        }
        y = tg_sum(tp, g, TG_ALL_AXES, false);
    }
    for (int i = 0; g && i < 4; i++) {
        double t = tanh(xv[i]);
        CHECK(rel(tg_get(g, i), -2 * (1 - t * t) * (1 - 3 * t * t)) < 1e-13);
    }
    tg_tensor_free(x);
    tg_tape_free(tp);
}

/* ---- dense Hessians ---- */

static void test_rosenbrock_hessian(void)
{
    tg_tape *tp = tg_tape_new();
    const double pts[5][2] = {{1, 1}, {-1.2, 1}, {0.5, -0.3}, {2, 3}, {0, 0}};
    tg_tensor *H = tg_tensor_new(TG_F64, 2, (int64_t[]){2, 2});
    for (int p = 0; p < 5; p++) {
        double x = pts[p][0], y = pts[p][1];
        tg_tensor *in[2] = {vec(1, &x, true), vec(1, &y, true)};
        tg_tape_reset(tp);
        CHECK(tg_hessian(tp, rosen, NULL, 2, in, H) == 0);
        const double want[4] = {1200 * x * x - 400 * y + 2, -400 * x, -400 * x, 200};
        for (int k = 0; k < 4; k++) CHECK(rel(tg_get(H, k), want[k]) < 1e-14);
        /* the same by tg_hvp with the unit vectors */
        for (int j = 0; j < 2; j++) {
            double one = 1, zero = 0;
            tg_tensor *v[2] = {vec(1, j == 0 ? &one : &zero, false),
                               vec(1, j == 1 ? &one : &zero, false)};
            tg_tensor *hv[2] = {vec(1, NULL, false), vec(1, NULL, false)};
            tg_tensor *gr[2] = {vec(1, NULL, false), vec(1, NULL, false)};
            double loss = -1;
            CHECK(tg_hvp(tp, rosen, NULL, 2, in, v, hv, &loss, gr) == 0);
            CHECK(rel(tg_get(hv[0], 0), want[j]) < 1e-14);
            CHECK(rel(tg_get(hv[1], 0), want[2 + j]) < 1e-14);
            CHECK(rel(loss, (1 - x) * (1 - x) + 100 * (y - x * x) * (y - x * x)) < 1e-15);
            CHECK(rel(tg_get(gr[0], 0), -2 * (1 - x) - 400 * x * (y - x * x)) < 1e-14);
            CHECK(rel(tg_get(gr[1], 0), 200 * (y - x * x)) < 1e-14);
            for (int i = 0; i < 2; i++)
                tg_tensor_free(v[i]), tg_tensor_free(hv[i]), tg_tensor_free(gr[i]);
        }
        tg_tensor_free(in[0]), tg_tensor_free(in[1]);
    }
    tg_tensor_free(H);
    tg_tape_free(tp);
}

/* Linear and constant functions have zero Hessians; a custom op with a vjp has its own. */
static void test_hessian_zero_and_custom(void)
{
    tg_tape *tp = tg_tape_new();
    const double xv[3] = {0.5, -1.0, 2.0};
    tg_tensor *x = vec(3, xv, true), *c = vec(3, xv, false), *in[2] = {c, x};
    tg_tensor *H = tg_tensor_new(TG_F64, 2, (int64_t[]){3, 3});
    tg_tensor_fill(H, 7);
    CHECK(tg_hessian(tp, sum_all, NULL, 1, &x, H) == 0); /* linear */
    for (int k = 0; k < 9; k++) CHECK(tg_get(H, k) == 0);
    tg_tensor_fill(H, 7);
    CHECK(tg_hessian(tp, sum_all, NULL, 2, in, H) == 0); /* y depends on no input in N */
    for (int k = 0; k < 9; k++) CHECK(tg_get(H, k) == 0);
    CHECK(tg_hessian(tp, sum_cube, NULL, 1, &x, H) == 0); /* diag(6x) */
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            CHECK(rel(tg_get(H, a * 3 + b), a == b ? 6 * xv[a] : 0) < 1e-15);
    /* without a vjp: TG_ESTATE, H untouched */
    tg_tensor_fill(H, 7);
    CHECK(tg_hessian(tp, sum_cube, (void *)&cube_novjp_op, 1, &x, H) == TG_ESTATE);
    CHECK(tg_get(H, 0) == 7 && tg_get(H, 8) == 7);
    tg_tensor_free(x), tg_tensor_free(c), tg_tensor_free(H);
    tg_tape_free(tp);
}

/* Kinked ops: piecewise linear (relu, leaky_relu, abs, max) or piecewise constant (step,
 * sign), so every second derivative is 0, at the kink too; a product keeps the first
 * derivative's mask: Σ relu(x) x has Hessian diag(2 [x > 0]). */
static tg_tensor *kinked(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    tg_tensor *x = in[0], *y = NULL;
    switch (*(const int *)ctx) {
    case 0: y = tg_relu(tp, x); break;
    case 1: y = tg_leaky_relu(tp, x, 0.1); break;
    case 2: y = tg_abs(tp, x); break;
    case 3: y = tg_max(tp, x, TG_ALL_AXES, false); break;
    case 4: y = tg_step(tp, x); break;
    case 5: y = tg_sign(tp, x); break;
    default: return tg_sum(tp, tg_mul(tp, tg_relu(tp, x), x), TG_ALL_AXES, false);
    }
    return tg_sum(tp, y, TG_ALL_AXES, false);
}

static void test_kinks(void)
{
    tg_tape *tp = tg_tape_new();
    const double xv[5] = {-1.5, -0.2, 0.0, 0.7, 2.0};
    tg_tensor *x = vec(5, xv, true), *H = tg_tensor_new(TG_F64, 2, (int64_t[]){5, 5});
    tg_tensor *J = tg_tensor_new(TG_F64, 2, (int64_t[]){1, 5});
    /* first derivatives: [x > 0], x > 0 ? 1 : 0.1, sign(x), the first maximum, 0, 0 */
    const double d1[6][5] = {{0, 0, 0, 1, 1}, {0.1, 0.1, 0.1, 1, 1}, {-1, -1, 0, 1, 1},
                             {0, 0, 0, 0, 1}, {0, 0, 0, 0, 0},       {0, 0, 0, 0, 0}};
    for (int k = 0; k <= 6; k++) {
        tg_tape_reset(tp);
        CHECK(tg_hessian(tp, kinked, &k, 1, &x, H) == 0);
        for (int a = 0; a < 5; a++)
            for (int b = 0; b < 5; b++)
                CHECK(tg_get(H, a * 5 + b) == (k == 6 && a == b && xv[a] > 0 ? 2 : 0));
        if (k == 6) break;
        CHECK(tg_jacobian(tp, kinked, &k, 1, &x, J) == 0);
        for (int a = 0; a < 5; a++) CHECK(tg_get(J, a) == d1[k][a]);
    }
    tg_tensor_free(x), tg_tensor_free(H), tg_tensor_free(J);
    tg_tape_free(tp);
}

/* ---- Hessian-vector products ---- */

/* ∇f at params + t v, by tg_backward on its own tape, into g (flat, 9 values). */
static void grad_at(tg_tensor *const *p, tg_tensor *const *v, double t, double *g)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *q[2];
    for (int i = 0; i < 2; i++) {
        q[i] = tg_tensor_clone(p[i]);
        for (int64_t j = 0; j < tg_tensor_numel(q[i]); j++)
            tg_set(q[i], j, tg_get(p[i], j) + t * tg_get(v[i], j));
        tg_set_requires_grad(q[i], true);
        tg_zero_grad(q[i]);
    }
    tg_backward(tp, coupled(tp, q, NULL));
    int k = 0;
    for (int i = 0; i < 2; i++)
        for (int64_t j = 0; j < tg_tensor_numel(q[i]); j++) g[k++] = tg_get(tg_grad(q[i]), j);
    tg_tensor_free(q[0]), tg_tensor_free(q[1]);
    tg_tape_free(tp);
}

static void test_hvp_coupled(void)
{
    tg_rng r;
    tg_rng_seed(&r, 11);
    tg_tape *tp = tg_tape_new();
    const int64_t sa[1] = {3}, sb[2] = {2, 3};
    tg_tensor *p[2] = {rand_leaf(1, sa, true, &r), rand_leaf(2, sb, true, &r)};
    tg_tensor *v[2] = {rand_leaf(1, sa, false, &r), rand_leaf(2, sb, false, &r)};
    tg_tensor *hv[2] = {leaf(1, sa, NULL, false), leaf(2, sb, NULL, false)};
    tg_tensor *gr[2] = {leaf(1, sa, NULL, false), leaf(2, sb, NULL, false)};
    tg_tensor *H = tg_tensor_new(TG_F64, 2, (int64_t[]){9, 9});
    double loss = 0;
    tg_tape_set_grad_mode(tp, false); /* the products turn it on for f, then restore it */
    CHECK(tg_hvp(tp, coupled, NULL, 2, p, v, hv, &loss, gr) == 0);
    CHECK(!tg_tape_grad_mode(tp));
    CHECK(tg_hessian(tp, coupled, NULL, 2, p, H) == 0);
    CHECK(!tg_tape_grad_mode(tp));
    tg_tape_set_grad_mode(tp, true);

    double flat_v[9] = {0}, flat_hv[9] = {0}, g0[9] = {0}, gm2[9] = {0}, gm1[9] = {0};
    double gp1[9] = {0}, gp2[9] = {0};
    int k = 0;
    for (int i = 0; i < 2; i++)
        for (int64_t j = 0; j < tg_tensor_numel(v[i]); j++, k++)
            flat_v[k] = tg_get(v[i], j), flat_hv[k] = i ? tg_get(hv[1], j) : tg_get(hv[0], j);
    const double h = 1e-3;
    grad_at(p, v, 0, g0), grad_at(p, v, -2 * h, gm2), grad_at(p, v, -h, gm1);
    grad_at(p, v, h, gp1), grad_at(p, v, 2 * h, gp2);
    k = 0;
    for (int i = 0; i < 2; i++)
        for (int64_t j = 0; j < tg_tensor_numel(gr[i]); j++)
            CHECK(rel(tg_get(gr[i], j), g0[k++]) < 1e-14);
    for (int a = 0; a < 9; a++) {
        double hv_dense = 0, fd = (gm2[a] - 8 * gm1[a] + 8 * gp1[a] - gp2[a]) / (12 * h);
        for (int b = 0; b < 9; b++) hv_dense += tg_get(H, a * 9 + b) * flat_v[b];
        CHECK(rel(flat_hv[a], hv_dense) < 1e-13);
        CHECK(rel(flat_hv[a], fd) < 1e-8);
        for (int b = 0; b < a; b++) /* symmetric up to rounding */
            CHECK(rel(tg_get(H, a * 9 + b), tg_get(H, b * 9 + a)) < 1e-13);
    }
    tg_tape_reset(tp);
    double lv = tg_get(coupled(tp, p, NULL), 0);
    CHECK(loss == lv);
    for (int i = 0; i < 2; i++)
        tg_tensor_free(p[i]), tg_tensor_free(v[i]), tg_tensor_free(hv[i]), tg_tensor_free(gr[i]);
    tg_tensor_free(H);
    tg_tape_free(tp);
}

/* hv may be v; an arena v on the tape works; a linear f gives zeros. */
static void test_hvp_aliases_and_zero(void)
{
    tg_tape *tp = tg_tape_new();
    const double xv[1] = {0.3}, yv[1] = {0.8};
    tg_tensor *in[2] = {vec(1, xv, true), vec(1, yv, true)};
    tg_tensor *v[2] = {vec(1, (double[]){1}, false), vec(1, (double[]){2}, false)};
    CHECK(tg_hvp(tp, rosen, NULL, 2, in, v, v, NULL, NULL) == 0); /* in place */
    double x = xv[0], y = yv[0];
    CHECK(rel(tg_get(v[0], 0), (1200 * x * x - 400 * y + 2) * 1 - 400 * x * 2) < 1e-14);
    CHECK(rel(tg_get(v[1], 0), -400 * x * 1 + 200 * 2) < 1e-14);

    tg_tensor *av[2] = {tg_mul_scalar(tp, in[0], 0),
                        tg_add_scalar(tp, tg_mul_scalar(tp, in[1], 0), 1)};
    tg_tensor *hv[2] = {vec(1, NULL, false), vec(1, NULL, false)};
    CHECK(tg_hvp(tp, rosen, NULL, 2, in, av, hv, NULL, NULL) == 0); /* v = (0, 1) on the tape */
    CHECK(rel(tg_get(hv[0], 0), -400 * x) < 1e-14 && rel(tg_get(hv[1], 0), 200) < 1e-14);

    tg_tensor *gr[1] = {vec(1, NULL, false)};
    tg_tensor_fill(hv[0], 7);
    CHECK(tg_hvp(tp, sum_all, NULL, 1, in, v, hv, NULL, gr) == 0); /* linear */
    CHECK(tg_get(hv[0], 0) == 0 && tg_get(gr[0], 0) == 1);
    tg_tensor *k = vec(1, (double[]){5}, false);
    double loss = 0;
    tg_tensor_fill(hv[0], 7), tg_tensor_fill(gr[0], 7);
    CHECK(tg_hvp(tp, of_ctx, k, 1, in, v, hv, &loss, gr) == 0); /* independent of x */
    CHECK(tg_get(hv[0], 0) == 0 && tg_get(gr[0], 0) == 0 && loss == 5);
    tg_tensor_free(k);

    /* parameters that are op outputs on the tape */
    tg_tensor *ap[2] = {tg_mul_scalar(tp, in[0], 1), tg_mul_scalar(tp, in[1], 1)};
    tg_tensor_fill(v[0], 1), tg_tensor_fill(v[1], 0);
    CHECK(tg_hvp(tp, rosen, NULL, 2, ap, v, hv, NULL, NULL) == 0);
    CHECK(rel(tg_get(hv[0], 0), 1200 * x * x - 400 * y + 2) < 1e-14);
    CHECK(rel(tg_get(hv[1], 0), -400 * x) < 1e-14);
    for (int i = 0; i < 2; i++) tg_tensor_free(in[i]), tg_tensor_free(v[i]), tg_tensor_free(hv[i]);
    tg_tensor_free(gr[0]);
    tg_tape_free(tp);
}

static void test_hvp_errors(void)
{
    tg_tape *tp = tg_tape_new(), *other = tg_tape_new();
    const double xv[3] = {0.5, -1.0, 2.0};
    tg_tensor *x = vec(3, xv, true), *c = vec(3, xv, false), *v = vec(3, xv, false);
    tg_tensor *v2 = vec(2, xv, false), *hv = vec(3, NULL, false), *hv2 = vec(2, NULL, false);
    tg_tensor *v32 = tg_tensor_new(TG_F32, 1, (int64_t[]){3});
    tg_tensor *hv32 = tg_tensor_new(TG_F32, 1, (int64_t[]){3});
    tg_tensor *y32 = tg_tensor_new(TG_F32, 1, (int64_t[]){3});
    tg_set_requires_grad(y32, true);
    tg_tensor_fill(hv, 7);
    double loss = 7;
    struct {
        tg_tensor *p, *v, *hv, *g;
        int code;
        const char *msg;
    } cases[] = {
        {x, v2, hv, NULL, TG_ESHAPE, "v 0 has shape [2]"},
        {x, v32, hv, NULL, TG_EDTYPE, "v 0 is f32"},
        {x, v, hv2, NULL, TG_ESHAPE, "hv 0 has shape [2]"},
        {x, v, hv32, NULL, TG_EDTYPE, "hv 0 is f32"},
        {x, v, hv, hv2, TG_ESHAPE, "grad 0 has shape"},
        {c, v, hv, NULL, TG_EARG, "does not require a gradient"},
        {x, NULL, hv, NULL, TG_EARG, "v 0 is NULL"},
        {x, v, NULL, NULL, TG_EARG, "hv 0 is NULL"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        tg_tape_reset(tp);
        tg_tensor *vv[1] = {cases[k].v}, *hh[1] = {cases[k].hv}, *gg[1] = {cases[k].g};
        CHECK(tg_hvp(tp, rosen, NULL, 1, &cases[k].p, vv, hh, &loss, cases[k].g ? gg : NULL) ==
              cases[k].code);
        CHECK_STR_HAS(tg_tape_error(tp), cases[k].msg);
        CHECK(tg_tape_n_nodes(tp) == 0); /* f did not run */
        CHECK(tg_get(hv, 0) == 7 && tg_get(hv, 2) == 7 && loss == 7);
    }
    tg_tensor *arena_hv;
    tg_tape_reset(tp);
    arena_hv = tg_square(tp, c);
    CHECK(tg_hvp(tp, sum_all, NULL, 1, &x, &v, &arena_hv, NULL, NULL) == TG_EARG);
    CHECK_STR_HAS(tg_tape_error(tp), "not a leaf");
    tg_tape_reset(tp);
    tg_tensor *foreign = tg_square(other, c);
    CHECK(tg_hvp(tp, sum_all, NULL, 1, &x, &foreign, &hv, NULL, NULL) == TG_ESTATE);
    tg_tape_reset(tp);
    tg_tensor *mixed[2] = {x, y32}, *vs[2] = {v, v32}, *hs[2] = {hv, hv32};
    CHECK(tg_hvp(tp, sum_all, NULL, 2, mixed, vs, hs, NULL, NULL) == TG_EDTYPE);
    CHECK_STR_HAS(tg_tape_error(tp), "share one dtype");
    /* NULL everything */
    CHECK(tg_hvp(NULL, rosen, NULL, 1, &x, &v, &hv, NULL, NULL) == TG_EARG);
    tg_tape_reset(tp);
    CHECK(tg_hvp(tp, NULL, NULL, 1, &x, &v, &hv, NULL, NULL) == TG_EARG);
    tg_tape_reset(tp);
    CHECK(tg_hvp(tp, rosen, NULL, 0, &x, &v, &hv, NULL, NULL) == TG_EARG);
    tg_tape_reset(tp);
    CHECK(tg_hvp(tp, rosen, NULL, 1, NULL, &v, &hv, NULL, NULL) == TG_EARG);
    tg_tape_reset(tp);
    CHECK(tg_hvp(tp, rosen, NULL, 1, &x, NULL, &hv, NULL, NULL) == TG_EARG);
    tg_tape_reset(tp);
    CHECK(tg_hvp(tp, rosen, NULL, 1, &x, &v, NULL, NULL, NULL) == TG_EARG);
    /* f's failures: NULL without an error, not a scalar, a custom op without a vjp; once f
     * has run nothing is written either */
    tg_tape_reset(tp);
    CHECK(tg_hvp(tp, returns_null, NULL, 1, &x, &v, &hv, &loss, NULL) == TG_EARG);
    CHECK_STR_HAS(tg_tape_error(tp), "returned NULL");
    tg_tape_reset(tp);
    CHECK(tg_hvp(tp, not_scalar, NULL, 1, &x, &v, &hv, &loss, NULL) == TG_ESHAPE);
    tg_tape_reset(tp);
    CHECK(tg_hvp(tp, sum_cube, (void *)&cube_novjp_op, 1, &x, &v, &hv, &loss, NULL) == TG_ESTATE);
    CHECK(tg_tape_grad_mode(tp));
    CHECK(tg_get(hv, 0) == 7 && loss == 7);
    /* a tape holding an error: returned, nothing done */
    CHECK(tg_hvp(tp, sum_all, NULL, 1, &x, &v, &hv, &loss, NULL) == TG_ESTATE);
    CHECK(tg_get(hv, 0) == 7 && loss == 7);
    tg_tensor_free(x), tg_tensor_free(c), tg_tensor_free(v), tg_tensor_free(v2);
    tg_tensor_free(hv), tg_tensor_free(hv2), tg_tensor_free(v32), tg_tensor_free(hv32);
    tg_tensor_free(y32);
    tg_tape_free(tp), tg_tape_free(other);
}

/* ---- JVP and VJP ---- */

static void test_jvp_vjp_mlp(void)
{
    tg_rng r;
    tg_rng_seed(&r, 5);
    tg_tape *tp = tg_tape_new();
    const int64_t s[4][2] = {{4, 3}, {3, 5}, {1, 5}, {5, 2}};
    tg_tensor *in[4], *v[3], *w[3], *u = rand_leaf(2, (int64_t[]){4, 2}, false, &r);
    for (int i = 0; i < 4; i++) {
        in[i] = i == 2 ? rand_leaf(1, &s[2][1], true, &r) : rand_leaf(2, s[i], i > 0, &r);
        if (i) v[i - 1] = tg_tensor_clone(in[i]), tg_tensor_rand_normal(v[i - 1], 0, 1, &r);
    }
    tg_tensor *y = mlp(tp, in, NULL), *jv = NULL, *jtu[3] = {NULL, NULL, NULL};
    CHECK(tg_jvp(tp, y, 3, in + 1, v, &jv, 0) == 0);
    CHECK(tg_vjp(tp, y, u, 3, in + 1, jtu, 0) == 0);
    if (!jv || !jtu[0]) {
        printf("  %s\n", tg_tape_error(tp));
        goto done;
    }
    CHECK(tg_tensor_ndim(jv) == 2 && tg_tensor_dim(jv, 0) == 4 && tg_tensor_dim(jv, 1) == 2);
    double lhs = 0, rhs = 0;
    for (int k = 0; k < 8; k++) lhs += tg_get(u, k) * tg_get(jv, k);
    for (int i = 0; i < 3; i++)
        for (int64_t j = 0; j < tg_tensor_numel(v[i]); j++)
            rhs += tg_get(jtu[i], j) * tg_get(v[i], j);
    CHECK(rel(lhs, rhs) < 1e-13); /* uᵀ(Jv) = (Jᵀu)ᵀv */

    /* both against the dense Jacobian [8, 30] (by rows: 8 <= 30) */
    tg_tensor *J = tg_tensor_new(TG_F64, 2, (int64_t[]){8, 30});
    CHECK(tg_jacobian(tp, mlp, NULL, 4, in, J) == 0);
    for (int k = 0; k < 8; k++) {
        double jvk = 0;
        int col = 0;
        for (int i = 0; i < 3; i++)
            for (int64_t j = 0; j < tg_tensor_numel(v[i]); j++, col++)
                jvk += tg_get(J, k * 30 + col) * tg_get(v[i], j);
        CHECK(rel(tg_get(jv, k), jvk) < 1e-13);
    }
    int col = 0;
    for (int i = 0; i < 3; i++)
        for (int64_t j = 0; j < tg_tensor_numel(v[i]); j++, col++) {
            double t = 0;
            for (int k = 0; k < 8; k++) t += tg_get(J, k * 30 + col) * tg_get(u, k);
            CHECK(rel(tg_get(jtu[i], j), t) < 1e-13);
        }
    tg_tensor_free(J);
done:
    for (int i = 0; i < 4; i++) tg_tensor_free(in[i]);
    for (int i = 0; i < 3; i++) tg_tensor_free(v[i]);
    (void)w;
    tg_tensor_free(u);
    tg_tape_free(tp);
}

/* y = x³: J v = 3x² v; recorded, d/dx Σ J v = 6x v; y itself as x gives v; y independent
 * of an x contributes zeros. */
static void test_jvp_record_and_edges(void)
{
    tg_tape *tp = tg_tape_new();
    const double xv[3] = {0.5, -1.0, 2.0}, vv[3] = {1.5, 2.0, -0.5};
    tg_tensor *x = vec(3, xv, true), *z = vec(3, xv, true), *v = vec(3, vv, false), *jv, *g;
    tg_tensor *y = tg_pow_scalar(tp, x, 3);
    CHECK(tg_jvp(tp, y, 1, &x, &v, &jv, TG_GRAD_RECORD) == 0);
    CHECK(tg_requires_grad(jv));
    for (int i = 0; i < 3; i++) CHECK(rel(tg_get(jv, i), 3 * xv[i] * xv[i] * vv[i]) < 1e-15);
    CHECK(tg_gradients(tp, tg_sum(tp, jv, TG_ALL_AXES, false), NULL, 1, &x, &g, 0) == 0);
    for (int i = 0; i < 3; i++) CHECK(rel(tg_get(g, i), 6 * xv[i] * vv[i]) < 1e-15);
    CHECK(tg_jvp(tp, y, 1, &x, &v, &jv, 0) == 0 && !tg_requires_grad(jv));
    tg_tensor *vg = vec(3, vv, true); /* recorded, J v is differentiable in v too: 3x² */
    CHECK(tg_jvp(tp, y, 1, &x, &vg, &jv, TG_GRAD_RECORD) == 0);
    CHECK(tg_gradients(tp, tg_sum(tp, jv, TG_ALL_AXES, false), NULL, 1, &vg, &g, 0) == 0);
    for (int i = 0; i < 3; i++) CHECK(rel(tg_get(g, i), 3 * xv[i] * xv[i]) < 1e-15);
    tg_tensor_free(vg);

    tg_tensor *xs[2] = {z, y}, *vs[2] = {v, v};
    CHECK(tg_jvp(tp, y, 2, xs, vs, &jv, 0) == 0); /* ∂y/∂z = 0, ∂y/∂y = I */
    for (int i = 0; i < 3; i++) CHECK(tg_get(jv, i) == vv[i]);
    CHECK(tg_jvp(tp, y, 1, &z, &v, &jv, 0) == 0);
    for (int i = 0; i < 3; i++) CHECK(tg_get(jv, i) == 0);
    tg_tape_set_grad_mode(tp, false);
    CHECK(tg_jvp(tp, y, 1, &x, &v, &jv, TG_GRAD_RECORD) == 0 && !tg_tape_grad_mode(tp));
    tg_tape_set_grad_mode(tp, true);
    CHECK(tg_grad(x) == NULL);
    tg_tensor_free(x), tg_tensor_free(z), tg_tensor_free(v);
    tg_tape_free(tp);
}

static void test_jvp_errors(void)
{
    tg_tape *tp = tg_tape_new(), *other = tg_tape_new();
    const double xv[3] = {0.5, -1.0, 2.0};
    tg_tensor *x = vec(3, xv, true), *c = vec(3, xv, false), *v = vec(3, xv, false);
    tg_tensor *v2 = vec(2, xv, false), *v32 = tg_tensor_new(TG_F32, 1, (int64_t[]){3});
    tg_tensor *jv = x, *y;
    int64_t n0;
#define JVP_CASE(yy, n, xs, vs, out, flags, code)                                                  \
    do {                                                                                           \
        tg_tape_reset(tp);                                                                         \
        y = tg_square(tp, x), n0 = tg_tape_n_nodes(tp);                                            \
        (void)y;                                                                                   \
        CHECK(tg_jvp(tp, yy, n, xs, vs, out, flags) == (code));                                    \
        CHECK(tg_tape_n_nodes(tp) == n0);                                                          \
    } while (0)
    JVP_CASE(y, 1, &x, &v2, &jv, 0, TG_ESHAPE);
    CHECK(jv == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "v 0 has shape [2], input 0 has [3]");
    JVP_CASE(y, 1, &x, &v32, &jv, 0, TG_EDTYPE);
    JVP_CASE(y, 1, &c, &v, &jv, 0, TG_EARG);
    JVP_CASE(y, 1, &x, &v, &jv, 4u, TG_EARG);
    JVP_CASE(NULL, 1, &x, &v, &jv, 0, TG_EARG);
    JVP_CASE(y, 0, &x, &v, &jv, 0, TG_EARG);
    JVP_CASE(y, 1, NULL, &v, &jv, 0, TG_EARG);
    JVP_CASE(y, 1, &x, NULL, &jv, 0, TG_EARG);
    JVP_CASE(y, 1, &x, &v, NULL, 0, TG_EARG);
    tg_tensor *nv[1] = {NULL};
    JVP_CASE(y, 1, &x, nv, &jv, 0, TG_EARG);
    JVP_CASE(tg_square(tp, c), 1, &x, &v, &jv, 0, TG_EARG); /* y needs no gradient */
    tg_tensor *foreign = tg_square(other, c);
    JVP_CASE(y, 1, &x, &foreign, &jv, 0, TG_ESTATE);
    JVP_CASE(foreign, 1, &x, &v, &jv, 0, TG_ESTATE);
#undef JVP_CASE
    CHECK(tg_jvp(NULL, y, 1, &x, &v, &jv, 0) == TG_EARG);
    tg_tape_reset(tp);
    y = sum_cube(tp, &x, (void *)&cube_novjp_op);
    n0 = tg_tape_n_nodes(tp);
    CHECK(tg_jvp(tp, y, 1, &x, &v, &jv, 0) == TG_ESTATE && jv == NULL);
    CHECK(tg_tape_n_nodes(tp) == n0 && tg_tape_grad_mode(tp));
    tg_tensor_free(x), tg_tensor_free(c), tg_tensor_free(v), tg_tensor_free(v2);
    tg_tensor_free(v32);
    tg_tape_free(tp), tg_tape_free(other);
}

/* ---- dense Jacobians ---- */

/* x [3] -> the outer product x xᵀ [3,3]: 9 > 3, by columns. */
static tg_tensor *outer(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    tg_tensor *a = tg_reshape(tp, in[0], 2, (int64_t[]){3, 1});
    tg_tensor *b = tg_reshape(tp, in[0], 2, (int64_t[]){1, 3});
    return tg_mul(tp, a, b);
}
/* c [2] (constant), x [2,3] -> Σ_j c_i x_ij² [2]: 2 <= 6, by rows. */
static tg_tensor *row_sq(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    tg_tensor *c = tg_reshape(tp, in[0], 2, (int64_t[]){2, 1});
    return tg_sum(tp, tg_mul(tp, c, tg_square(tp, in[1])), 1, false);
}

static void test_jacobian_known(void)
{
    tg_tape *tp = tg_tape_new();
    const double xv[6] = {0.5, -1.0, 2.0, 3.0, 0.25, -2.0}, cv[2] = {2, -3};
    tg_tensor *x3 = vec(3, xv, true), *J = tg_tensor_new(TG_F64, 2, (int64_t[]){9, 3}), *J9;
    tg_tape_set_grad_mode(tp, false);
    CHECK(tg_jacobian(tp, outer, NULL, 1, &x3, J) == 0);
    CHECK(!tg_tape_grad_mode(tp));
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 3; k++)
                CHECK(tg_get(J, (i * 3 + j) * 3 + k) == (i == k) * xv[j] + (j == k) * xv[i]);
    tg_tensor_free(J);

    tg_tensor *in[2] = {vec(2, cv, false), leaf(2, (int64_t[]){2, 3}, xv, true)};
    J = tg_tensor_new(TG_F64, 2, (int64_t[]){2, 6});
    tg_tape_set_grad_mode(tp, true);
    CHECK(tg_jacobian(tp, row_sq, NULL, 2, in, J) == 0);
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 6; k++)
            CHECK(tg_get(J, i * 6 + k) == (k / 3 == i ? 2 * cv[i] * xv[k] : 0));
    tg_tensor_free(J);

    /* the identity (y is the input leaf itself): I */
    J = tg_tensor_new(TG_F64, 2, (int64_t[]){3, 3});
    CHECK(tg_jacobian(tp, identity, NULL, 1, &x3, J) == 0);
    for (int k = 0; k < 9; k++) CHECK(tg_get(J, k) == (k % 4 == 0));
    /* the custom cube with a vjp: diag(3x²); without: TG_ESTATE */
    tg_tensor *S = tg_tensor_new(TG_F64, 2, (int64_t[]){1, 3});
    CHECK(tg_jacobian(tp, sum_cube, NULL, 1, &x3, S) == 0);
    for (int k = 0; k < 3; k++) CHECK(rel(tg_get(S, k), 3 * xv[k] * xv[k]) < 1e-15);
    CHECK(tg_jacobian(tp, sum_cube, (void *)&cube_novjp_op, 1, &x3, S) == TG_ESTATE);
    /* a value that depends on no input that requires a gradient: zeros */
    tg_tape_reset(tp);
    tg_tensor_fill(S, 7);
    tg_tensor *cx[2] = {in[0], x3}, *S2 = tg_tensor_new(TG_F64, 2, (int64_t[]){1, 3});
    tg_tensor_fill(S2, 7);
    CHECK(tg_jacobian(tp, sum_all, NULL, 2, cx, S2) == 0);
    for (int k = 0; k < 3; k++) CHECK(tg_get(S2, k) == 0);
    CHECK(tg_grad(x3) == NULL && tg_grad(in[1]) == NULL); /* leaf gradients untouched */
    /* f32 inputs: the Jacobian still comes as f64 */
    tg_tape_reset(tp);
    tg_tensor *x32 = tg_tensor_new(TG_F32, 1, (int64_t[]){3});
    for (int k = 0; k < 3; k++) tg_set(x32, k, xv[k]);
    tg_set_requires_grad(x32, true);
    J9 = tg_tensor_new(TG_F64, 2, (int64_t[]){9, 3});
    CHECK(tg_jacobian(tp, outer, NULL, 1, &x32, J9) == 0);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 3; k++)
                CHECK(tg_get(J9, (i * 3 + j) * 3 + k) == (i == k) * xv[j] + (j == k) * xv[i]);
    tg_tensor_free(in[0]), tg_tensor_free(in[1]), tg_tensor_free(x3), tg_tensor_free(J);
    tg_tensor_free(S), tg_tensor_free(S2), tg_tensor_free(x32), tg_tensor_free(J9);
    tg_tape_free(tp);
}

static void test_dense_errors(void)
{
    tg_tape *tp = tg_tape_new();
    const double xv[3] = {0.5, -1.0, 2.0};
    tg_tensor *x = vec(3, xv, true), *c = vec(3, xv, false);
    tg_tensor *big = tg_tensor_new(TG_F64, 1, (int64_t[]){TG_DERIVS_MAX_N + 1});
    tg_set_requires_grad(big, true);
    tg_tensor *J33 = tg_tensor_new(TG_F64, 2, (int64_t[]){3, 3});
    tg_tensor *J32 = tg_tensor_new(TG_F32, 2, (int64_t[]){3, 3});
    tg_tensor *J34 = tg_tensor_new(TG_F64, 2, (int64_t[]){3, 4});
    tg_tensor *J23 = tg_tensor_new(TG_F64, 2, (int64_t[]){2, 3});
    tg_tensor *J9 = tg_tensor_new(TG_F64, 1, (int64_t[]){9});
    tg_tensor_fill(J23, 7);
    struct {
        tg_tensor *in, *out;
        int code;
        const char *msg;
    } cases[] = {
        {big, J33, TG_EARG, "TG_DERIVS_MAX_N"},  {c, J33, TG_EARG, "no input requires"},
        {x, J32, TG_EDTYPE, "must be f64"},      {x, J34, TG_ESHAPE, "has shape [3,4]"},
        {x, J9, TG_ESHAPE, "has shape [9]"},     {x, NULL, TG_EARG, "bad arguments"},
        {NULL, J33, TG_EARG, "input 0 is NULL"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        tg_tape_reset(tp);
        CHECK(tg_jacobian(tp, identity, NULL, 1, &cases[k].in, cases[k].out) == cases[k].code);
        CHECK_STR_HAS(tg_tape_error(tp), cases[k].msg);
        CHECK(tg_tape_n_nodes(tp) == 0);
        tg_tape_reset(tp);
        CHECK(tg_hessian(tp, sum_all, NULL, 1, &cases[k].in, cases[k].out) == cases[k].code);
        CHECK_STR_HAS(tg_tape_error(tp), cases[k].msg);
        CHECK(tg_tape_n_nodes(tp) == 0);
    }
    /* hess must be square before f runs; jac's first size is checked once f has run */
    tg_tape_reset(tp);
    CHECK(tg_hessian(tp, sum_all, NULL, 1, &x, J23) == TG_ESHAPE && tg_tape_n_nodes(tp) == 0);
    tg_tape_reset(tp);
    CHECK(tg_jacobian(tp, not_scalar, NULL, 1, &x, J23) == TG_ESHAPE);
    CHECK_STR_HAS(tg_tape_error(tp), "it must be [3,3]");
    CHECK(tg_get(J23, 0) == 7 && tg_get(J23, 5) == 7);
    tg_tape_reset(tp);
    CHECK(tg_hessian(tp, not_scalar, NULL, 1, &x, J33) == TG_ESHAPE);
    CHECK_STR_HAS(tg_tape_error(tp), "not a scalar");
    tg_tape_reset(tp);
    CHECK(tg_jacobian(tp, returns_null, NULL, 1, &x, J33) == TG_EARG);
    tg_tape_reset(tp);
    CHECK(tg_jacobian(tp, NULL, NULL, 1, &x, J33) == TG_EARG);
    tg_tape_reset(tp);
    CHECK(tg_hessian(tp, sum_all, NULL, 0, &x, J33) == TG_EARG);
    CHECK(tg_jacobian(NULL, identity, NULL, 1, &x, J33) == TG_EARG);
    CHECK(tg_hessian(NULL, sum_all, NULL, 1, &x, J33) == TG_EARG);
    tg_tape_reset(tp);
    tg_tensor *arena = tg_reshape(tp, tg_square(tp, c), 2, (int64_t[]){1, 3});
    CHECK(tg_jacobian(tp, sum_all, NULL, 1, &x, arena) == TG_EARG);
    CHECK_STR_HAS(tg_tape_error(tp), "not a leaf");
    CHECK(tg_tape_grad_mode(tp));
    /* a tape holding an error: returned, nothing done */
    tg_tape_reset(tp);
    tg_tensor *S = tg_tensor_new(TG_F64, 2, (int64_t[]){1, 3}), *v = vec(3, xv, false), *jv = x;
    tg_tensor_fill(S, 7);
    tg_tape_fail(tp, TG_EIO, "an earlier error");
    CHECK(tg_jacobian(tp, sum_all, NULL, 1, &x, S) == TG_EIO);
    CHECK(tg_hessian(tp, sum_all, NULL, 1, &x, J33) == TG_EIO);
    CHECK(tg_jvp(tp, x, 1, &x, &v, &jv, 0) == TG_EIO && jv == NULL);
    CHECK(tg_vjp(tp, x, NULL, 1, &x, &jv, 0) == TG_EIO);
    CHECK(tg_tape_n_nodes(tp) == 0 && tg_get(S, 0) == 7);
    /* an input from another tape or an earlier reset */
    tg_tape *other = tg_tape_new();
    tg_tensor *foreign = tg_mul_scalar(other, x, 1);
    tg_tape_reset(tp);
    CHECK(tg_jacobian(tp, sum_all, NULL, 1, &foreign, S) == TG_ESTATE);
    tg_tape_reset(tp);
    tg_tensor *stale = tg_mul_scalar(tp, x, 1);
    tg_tape_reset(tp);
    CHECK(tg_hessian(tp, sum_all, NULL, 1, &stale, J33) == TG_ESTATE);
    CHECK_STR_HAS(tg_tape_error(tp), "before tg_tape_reset");
    tg_tape_free(other);
    tg_tensor_free(S), tg_tensor_free(v);
    tg_tensor_free(x), tg_tensor_free(c), tg_tensor_free(big), tg_tensor_free(J33);
    tg_tensor_free(J32), tg_tensor_free(J34), tg_tensor_free(J23), tg_tensor_free(J9);
    tg_tape_free(tp);
}

static const check_case tests[] = {
    TEST(test_gradients_basic),
    TEST(test_gradients_errors),
    TEST(test_leaf_grads_untouched),
    TEST(test_fourth_order_x3_exp),
    TEST(test_third_order_tanh),
    TEST(test_rosenbrock_hessian),
    TEST(test_hessian_zero_and_custom),
    TEST(test_hvp_coupled),
    TEST(test_hvp_aliases_and_zero),
    TEST(test_hvp_errors),
    TEST(test_jvp_vjp_mlp),
    TEST(test_jvp_record_and_edges),
    TEST(test_jvp_errors),
    TEST(test_jacobian_known),
    TEST(test_dense_errors),
    TEST(test_kinks),
    TEST(test_doc_example),
};
TEST_MAIN("test_higher", tests)
