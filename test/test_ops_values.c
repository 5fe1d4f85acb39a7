/* test/test_ops_values.c: every op's values against numbers worked out by hand (or from
 * PyTorch, noted where used), the gradient rules with a subtlety (broadcast sums, ties,
 * clamps, zero derivatives), and the errors: shapes, dtypes, NULL inputs, axes, values.
 * The gradient checks against finite differences are in test_ops.c. */
#include <stdlib.h>

#include "check.h"
#include "ops_check.h"
#include "tapegrad.h"

/* The tape of the running test: made by begin(), freed with the test's leaves by end(). */
static tg_tape *tp;

static void begin(void)
{
    if (!(tp = tg_tape_new())) {
        printf("%s: cannot make a tape\n", check_test);
        exit(1);
    }
}

static void end(void)
{
    drop_all();
    tg_tape_free(tp);
    tp = NULL;
}

/* Ends a step: the tape is reset (and its error cleared); leaves live until end(). */
static void release(void) { tg_tape_reset(tp); }

/* An f64 leaf that wants its gradient; CONST: one that does not (labels, statistics). */
#define NEW(nd, shape, vals) leaf(TG_F64, (nd), (shape), (vals), true)
#define CONST(nd, shape, vals) leaf(TG_F64, (nd), (shape), (vals), false)
/* The numbers worked out by hand are exact: within 1e-12, whatever their magnitude. */
#define EXPECT_EXACT(y, n, want) EXPECT_ABS((y), (n), (want), 1e-12)
/* A reverse sweep from Σ (i+1) y_i: every output element gets its own weight. */
#define SWEEP(y) CHECK(sweep(tp, (y)) == TG_OK)

/* Binary ops with broadcasting, their gradients summed over the broadcast axes. */
static void test_elementwise(void)
{
    begin();
    tg_tensor *a = NEW(2, S(2, 3), V(1, 2, 3, 4, 5, 6)), *b = NEW(1, S(3), V(10, 20, 30));
    EXPECT_EXACT(tg_add(tp, a, b), 6, V(11, 22, 33, 14, 25, 36));
    EXPECT_EXACT(tg_sub(tp, a, b), 6, V(-9, -18, -27, -6, -15, -24));
    EXPECT_EXACT(tg_mul(tp, a, b), 6, V(10, 40, 90, 40, 100, 180));
    EXPECT_EXACT(tg_div(tp, b, a), 6, V(10, 10, 10, 2.5, 4, 5));
    /* [2,1] against [3]: an outer sum of shape [2,3]. */
    tg_tensor *c = NEW(2, S(2, 1), V(100, 200));
    tg_tensor *y = tg_add(tp, c, b);
    EXPECT_EXACT(y, 6, V(110, 120, 130, 210, 220, 230));
    CHECK(y && tg_tensor_ndim(y) == 2 && tg_tensor_dim(y, 0) == 2 && tg_tensor_dim(y, 1) == 3);
    /* Gradients are summed over the broadcast axes: weights 1..6 over [2,3]. */
    SWEEP(y);
    EXPECT_EXACT(tg_grad(c), 2, V(1 + 2 + 3, 4 + 5 + 6));
    EXPECT_EXACT(tg_grad(b), 3, V(1 + 4, 2 + 5, 3 + 6));
    release();

    /* mul(x, x): both inputs are one tensor, so its gradient is 2x. */
    tg_tensor *x = NEW(1, S(3), V(1, -2, 3));
    CHECK(tg_backward(tp, tg_sum(tp, tg_mul(tp, x, x), TG_ALL_AXES, false)) == TG_OK);
    EXPECT_EXACT(tg_grad(x), 3, V(2, -4, 6));
    release();

    /* div: d/db (a/b) = -a/b². */
    tg_tensor *p = NEW(1, S(2), V(3, 4)), *q = NEW(1, S(2), V(2, -4));
    CHECK(tg_backward(tp, tg_sum(tp, tg_div(tp, p, q), TG_ALL_AXES, false)) == TG_OK);
    EXPECT_EXACT(tg_grad(p), 2, V(0.5, -0.25));
    EXPECT_EXACT(tg_grad(q), 2, V(-0.75, -0.25));
    release();
    end();
}

/* Shapes that do not broadcast (the error is sticky), dtypes that differ, a NULL input. */
static void test_elementwise_errors(void)
{
    begin();
    tg_tensor *a = NEW(2, S(2, 3), V(1, 2, 3, 4, 5, 6)), *b = NEW(1, S(3), V(10, 20, 30));
    tg_tensor *e = NEW(1, S(4), V(1, 2, 3, 4));
    CHECK(tg_add(tp, a, e) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_add: [2,3] and [4]: shapes do not broadcast");
    CHECK(tg_tape_errcode(tp) == TG_ESHAPE);
    CHECK(tg_mul(tp, a, b) == NULL); /* sticky: later ops return NULL, the first error stays */
    CHECK_STR_HAS(tg_tape_error(tp), "tg_add");
    release();
    tg_tensor *f32 = leaf(TG_F32, 1, S(3), NULL, false);
    CHECK(tg_sub(tp, b, f32) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_EDTYPE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_sub: dtypes f64 and f32 differ");
    release();
    CHECK(tg_div(tp, NULL, b) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_div: input 0 is NULL");
    release();
    end();
}

/* Unary ops, abs at 0 and pow by 0, a scalar that is not finite. */
static void test_unary(void)
{
    begin();
    tg_tensor *x = NEW(1, S(4), V(-2, -0.5, 0.25, 4));
    EXPECT_EXACT(tg_neg(tp, x), 4, V(2, 0.5, -0.25, -4));
    EXPECT_EXACT(tg_add_scalar(tp, x, 1.5), 4, V(-0.5, 1, 1.75, 5.5));
    EXPECT_EXACT(tg_mul_scalar(tp, x, -2), 4, V(4, 1, -0.5, -8));
    EXPECT_EXACT(tg_pow_scalar(tp, x, 2), 4, V(4, 0.25, 0.0625, 16));
    EXPECT_EXACT(tg_square(tp, x), 4, V(4, 0.25, 0.0625, 16));
    EXPECT_EXACT(tg_abs(tp, x), 4, V(2, 0.5, 0.25, 4));
    EXPECT_EXACT(tg_exp(tp, x), 4, V(exp(-2), exp(-0.5), exp(0.25), exp(4)));
    tg_tensor *p = NEW(1, S(3), V(1, 4, 0.25));
    EXPECT_EXACT(tg_sqrt(tp, p), 3, V(1, 2, 0.5));
    EXPECT_EXACT(tg_log(tp, p), 3, V(0, log(4), log(0.25)));
    EXPECT_EXACT(tg_pow_scalar(tp, p, -0.5), 3, V(1, 0.5, 2));
    release();
    /* abs at 0 takes gradient 0; pow by 0 has gradient 0 even at x = 0. */
    tg_tensor *z = NEW(1, S(3), V(-1, 0, 2));
    tg_tensor *y = tg_add(tp, tg_abs(tp, z), tg_pow_scalar(tp, z, 0));
    EXPECT_EXACT(y, 3, V(2, 1, 3));
    SWEEP(y);
    EXPECT_EXACT(tg_grad(z), 3, V(-1, 0, 3));
    release();
    CHECK(tg_mul_scalar(tp, x, (double)INFINITY) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_mul_scalar: the scalar inf is not finite");
    release();
    end();
}

/* Sums, means and maxima over an axis or all, keepdims, a tie, an empty axis. */
static void test_reduce(void)
{
    begin();
    tg_tensor *x = NEW(2, S(2, 3), V(1, 5, 3, 4, 2, 6));
    EXPECT_EXACT(tg_sum(tp, x, 0, false), 3, V(5, 7, 9));
    EXPECT_EXACT(tg_sum(tp, x, -1, false), 2, V(9, 12));
    EXPECT_EXACT(tg_sum(tp, x, TG_ALL_AXES, false), 1, V(21));
    EXPECT_EXACT(tg_mean(tp, x, 1, false), 2, V(3, 4));
    EXPECT_EXACT(tg_mean(tp, x, TG_ALL_AXES, false), 1, V(3.5));
    EXPECT_EXACT(tg_max(tp, x, 0, false), 3, V(4, 5, 6));
    EXPECT_EXACT(tg_max(tp, x, 1, false), 2, V(5, 6));
    tg_tensor *k = tg_sum(tp, x, 1, true);
    CHECK(k && tg_tensor_ndim(k) == 2 && tg_tensor_dim(k, 1) == 1);
    tg_tensor *all = tg_sum(tp, x, TG_ALL_AXES, false);
    CHECK(all && tg_tensor_ndim(all) == 0);
    tg_tensor *allk = tg_mean(tp, x, TG_ALL_AXES, true);
    CHECK(allk && tg_tensor_ndim(allk) == 2 && tg_tensor_numel(allk) == 1);
    release();
    /* max with a tie: the gradient goes to the first maximal element only. */
    tg_tensor *t = NEW(2, S(2, 3), V(7, 1, 7, 2, 9, 9));
    SWEEP(tg_max(tp, t, 1, false));
    EXPECT_EXACT(tg_grad(t), 6, V(1, 0, 0, 0, 2, 0));
    release();
    /* mean's gradient is 1/len per element. */
    tg_tensor *m = NEW(2, S(2, 2), V(1, 2, 3, 4));
    SWEEP(tg_mean(tp, m, 0, false));
    EXPECT_EXACT(tg_grad(m), 4, V(0.5, 1, 0.5, 1));
    release();
    CHECK(tg_sum(tp, x, 2, false) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_sum: axis 2 out of range for [2,3]");
    CHECK(tg_tape_errcode(tp) == TG_EARG);
    release();
    tg_tensor *empty = leaf(TG_F64, 2, S(0, 3), NULL, false);
    EXPECT_EXACT(tg_sum(tp, empty, 0, false), 3, V(0, 0, 0));
    CHECK(tg_mean(tp, empty, 0, false) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_mean: [0,3]: cannot reduce an empty axis");
    release();
    end();
}

/* reshape, transpose, slice and concat, their gradients and their errors. */
static void test_shape(void)
{
    begin();
    tg_tensor *x = NEW(2, S(2, 3), V(1, 2, 3, 4, 5, 6));
    tg_tensor *r = tg_reshape(tp, x, 2, S(3, -1));
    EXPECT_EXACT(r, 6, V(1, 2, 3, 4, 5, 6));
    CHECK(r && tg_tensor_dim(r, 0) == 3 && tg_tensor_dim(r, 1) == 2);
    tg_tensor *t = tg_transpose(tp, x, 0, 1);
    EXPECT_EXACT(t, 6, V(1, 4, 2, 5, 3, 6));
    CHECK(t && tg_tensor_dim(t, 0) == 3);
    EXPECT_EXACT(tg_slice(tp, x, 1, 1, 3), 4, V(2, 3, 5, 6));
    EXPECT_EXACT(tg_slice(tp, x, 0, -1, 2), 3, V(4, 5, 6));
    tg_tensor *e = tg_slice(tp, x, 1, 2, 2);
    CHECK(e && tg_tensor_numel(e) == 0);
    tg_tensor *y = NEW(2, S(2, 1), V(7, 8));
    tg_tensor *xs[2] = {x, y};
    tg_tensor *c = tg_concat(tp, 2, xs, 1);
    EXPECT_EXACT(c, 8, V(1, 2, 3, 7, 4, 5, 6, 8));
    SWEEP(c);
    EXPECT_EXACT(tg_grad(x), 6, V(1, 2, 3, 5, 6, 7));
    EXPECT_EXACT(tg_grad(y), 2, V(4, 8));
    release();
    /* A 3-D transpose of the outer axes. */
    tg_tensor *z = NEW(3, S(2, 2, 2), V(1, 2, 3, 4, 5, 6, 7, 8));
    EXPECT_EXACT(tg_transpose(tp, z, 0, 2), 8, V(1, 5, 3, 7, 2, 6, 4, 8));
    release();
    CHECK(tg_reshape(tp, x, 2, S(4, 2)) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_reshape: [2,3] to [4,2]: element counts differ");
    release();
    CHECK(tg_transpose(tp, x, 0, 5) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_transpose: axes 0 and 5: out of range for [2,3]");
    release();
    CHECK(tg_slice(tp, x, 1, 2, 5) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_slice: [2, 5) out of range for axis 1 of [2,3]");
    release();
    tg_tensor *w = NEW(2, S(3, 3), V(0, 0, 0, 0, 0, 0, 0, 0, 0));
    tg_tensor *ws[2] = {x, w};
    CHECK(tg_concat(tp, 2, ws, 1) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_concat: [2,3] and [3,3]: shapes differ outside axis 1");
    release();
    CHECK(tg_concat(tp, 0, ws, 0) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "want at least one input");
    release();
    end();
}

/* Every activation, extreme inputs, softmax along each axis, PReLU. */
static void test_activations(void)
{
    begin();
    tg_tensor *x = NEW(1, S(5), V(-2, -0.5, 0, 0.5, 2));
    EXPECT_EXACT(tg_relu(tp, x), 5, V(0, 0, 0, 0.5, 2));
    EXPECT_EXACT(tg_leaky_relu(tp, x, 0.1), 5, V(-0.2, -0.05, 0, 0.5, 2));
    EXPECT_EXACT(tg_elu(tp, x, 1), 5, V(exp(-2) - 1, exp(-0.5) - 1, 0, 0.5, 2));
    EXPECT_EXACT(
        tg_sigmoid(tp, x), 5,
        V(1 / (1 + exp(2)), 1 / (1 + exp(0.5)), 0.5, 1 / (1 + exp(-0.5)), 1 / (1 + exp(-2))));
    EXPECT_EXACT(tg_tanh(tp, x), 5, V(tanh(-2), tanh(-0.5), 0, tanh(0.5), tanh(2)));
    EXPECT_EXACT(tg_softplus(tp, x), 5,
                 V(log1p(exp(-2)), log1p(exp(-0.5)), log(2), log1p(exp(0.5)), log1p(exp(2))));
    EXPECT_EXACT(tg_step(tp, x), 5, V(0, 0, 0, 1, 1));
    EXPECT_EXACT(tg_sign(tp, x), 5, V(-1, -1, 0, 1, 1));
    release();
    /* Extreme inputs stay finite. */
    tg_tensor *big = NEW(1, S(4), V(-1000, -50, 50, 1000));
    EXPECT_EXACT(tg_sigmoid(tp, big), 4, V(0, 1 / (1 + exp(50)), 1 / (1 + exp(-50)), 1));
    EXPECT_EXACT(tg_softplus(tp, big), 4, V(0, log1p(exp(-50)), 50 + log1p(exp(-50)), 1000));
    tg_tensor *sm = tg_softmax(tp, big, 0);
    EXPECT_ABS(sm, 4, V(0, 0, 0, 1), 1e-300);
    tg_tensor *ls = tg_log_softmax(tp, big, 0);
    EXPECT_EXACT(ls, 4, V(-2000, -1050, -950, 0));
    release();
    /* softmax along each axis of [2,2]: values from the definition. */
    tg_tensor *m = NEW(2, S(2, 2), V(0, log(3), log(2), log(2)));
    EXPECT_EXACT(tg_softmax(tp, m, 1), 4, V(0.25, 0.75, 0.5, 0.5));
    EXPECT_EXACT(tg_softmax(tp, m, 0), 4, V(1.0 / 3, 0.6, 2.0 / 3, 0.4));
    release();
    /* step and sign: exact zero gradient (the stated rule). */
    tg_tensor *s = NEW(1, S(3), V(-1, 0, 1));
    SWEEP(tg_add(tp, tg_step(tp, s), tg_sign(tp, s)));
    EXPECT_EXACT(tg_grad(s), 3, V(0, 0, 0));
    release();
    /* PReLU: alpha per channel, its gradient summed over rows where x <= 0. */
    tg_tensor *px = NEW(2, S(2, 2), V(-1, 2, -3, -4)), *al = NEW(1, S(2), V(0.1, 0.5));
    tg_tensor *py = tg_prelu(tp, px, al);
    EXPECT_EXACT(py, 4, V(-0.1, 2, -0.3, -2));
    SWEEP(py);
    EXPECT_EXACT(tg_grad(al), 2, V(1 * -1 + 3 * -3, 4 * -4));
    EXPECT_EXACT(tg_grad(px), 4, V(0.1, 2, 0.3, 2));
    release();
    tg_tensor *bad = NEW(1, S(3), V(1, 1, 1));
    CHECK(tg_prelu(tp, px, bad) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_prelu: [2,2] and [3]: alpha must be [1] or [2]");
    release();
    CHECK(tg_softmax(tp, x, 1) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_softmax: axis 1 out of range for [5]");
    release();
    end();
}

/* Every loss's value, the gradients of half_sse and cross-entropy. */
static void test_losses(void)
{
    begin();
    tg_tensor *p = NEW(1, S(3), V(1, 2, 3)), *t = NEW(1, S(3), V(1.5, 2, 1));
    EXPECT_EXACT(tg_mse_loss(tp, p, t), 1, V((0.25 + 0 + 4) / 3));
    EXPECT_EXACT(tg_half_sse_loss(tp, p, t), 1, V(0.5 * 4.25));
    EXPECT_EXACT(tg_l1_loss(tp, p, t), 1, V(2.5 / 3));
    EXPECT_EXACT(tg_eps_insensitive_loss(tp, p, t, 1), 1, V((0 + 0 + 1) / 3.0));
    release();
    /* The lectures' output error: d(½Σ(a-y)²)/da = a - y. */
    tg_tensor *a = NEW(1, S(2), V(0.3, -1)), *y = NEW(1, S(2), V(1, 1));
    CHECK(tg_backward(tp, tg_half_sse_loss(tp, a, y)) == TG_OK);
    EXPECT_EXACT(tg_grad(a), 2, V(-0.7, -2));
    release();
    tg_tensor *pr = NEW(1, S(2), V(0.8, 0.4)), *lb = NEW(1, S(2), V(1, 0));
    EXPECT_EXACT(tg_bce_loss(tp, pr, lb), 1, V(-(log(0.8) + log(0.6)) / 2));
    tg_tensor *z = NEW(1, S(3), V(-800, 0, 800)), *zy = NEW(1, S(3), V(0, 1, 0));
    EXPECT_EXACT(tg_bce_with_logits_loss(tp, z, zy), 1, V((0 + log(2) + 800) / 3));
    release();
    /* bce clamps p = 0 and 1 inside the logs instead of returning inf. */
    tg_tensor *edge = NEW(1, S(2), V(0, 1)), *ey = NEW(1, S(2), V(1, 0));
    tg_tensor *l = tg_bce_loss(tp, edge, ey);
    CHECK(l && isfinite(tg_get(l, 0)) && fabs(tg_get(l, 0) + log(1e-12)) < 1e-3);
    release();
    /* cross-entropy: logits [[0, ln 3], [ln 2, ln 2]], labels [1, 0]. */
    tg_tensor *lg = NEW(2, S(2, 2), V(0, log(3), log(2), log(2))), *lab = CONST(1, S(2), V(1, 0));
    tg_tensor *ce = tg_cross_entropy(tp, lg, lab);
    EXPECT_EXACT(ce, 1, V(-(log(0.75) + log(0.5)) / 2));
    CHECK(tg_backward(tp, ce) == TG_OK);
    EXPECT_EXACT(tg_grad(lg), 4, V(0.25 / 2, -0.25 / 2, -0.5 / 2, 0.5 / 2));
    release();
    tg_tensor *q = CONST(2, S(2, 2), V(0, 1, 1, 0));
    EXPECT_EXACT(tg_cross_entropy_soft(tp, lg, q), 1, V(-(log(0.75) + log(0.5)) / 2));
    /* KL(p‖q) batchmean with log q; 0 log 0 = 0. */
    tg_tensor *logq = NEW(2, S(1, 2), V(log(0.5), log(0.5))), *pp = NEW(2, S(1, 2), V(1, 0));
    EXPECT_EXACT(tg_kl_div_loss(tp, logq, pp), 1, V(log(2)));
    /* Margins M = g y: hinge (1 - M)+, logistic ln(1 + e^-M). */
    tg_tensor *g = NEW(1, S(3), V(2, 0.5, -1)), *pm = NEW(1, S(3), V(1, 1, 1));
    EXPECT_EXACT(tg_hinge_loss(tp, g, pm), 1, V((0 + 0.5 + 2) / 3));
    EXPECT_EXACT(tg_logistic_loss(tp, g, pm), 1,
                 V((log1p(exp(-2)) + log1p(exp(-0.5)) + log1p(exp(1))) / 3));
    release();
    /* cross-entropy reference from PyTorch (F.cross_entropy, float64):
     * logits [[1,2,3],[1,-1,0]], labels [2,0] -> 0.4076059644443804 */
    tg_tensor *l3 = NEW(2, S(2, 3), V(1, 2, 3, 1, -1, 0)), *lab3 = CONST(1, S(2), V(2, 0));
    EXPECT_ABS(tg_cross_entropy(tp, l3, lab3), 1, V(0.4076059644443804), 1e-14);
    release();
    end();
}

/* Labels that are not class indices, shapes that differ, logits that are not [N,C]. */
static void test_loss_errors(void)
{
    begin();
    tg_tensor *p = NEW(1, S(3), V(1, 2, 3)), *t = NEW(1, S(3), V(1.5, 2, 1));
    tg_tensor *lg = NEW(2, S(2, 2), V(0, log(3), log(2), log(2)));
    tg_tensor *bl = CONST(1, S(2), V(1, 2));
    CHECK(tg_cross_entropy(tp, lg, bl) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp),
                  "tg_cross_entropy: label 2 of row 1 is not a class index in 0..1");
    release();
    tg_tensor *frac = CONST(1, S(2), V(0.5, 1));
    CHECK(tg_cross_entropy(tp, lg, frac) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_EARG);
    release();
    CHECK(tg_mse_loss(tp, p, lg) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp),
                  "tg_mse_loss: [3] and [2,2]: prediction and target shapes differ");
    release();
    CHECK(tg_cross_entropy(tp, p, t) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "want logits [N,C]");
    release();
    end();
}

/* Dropout: the share dropped, the scale, the mask as gradient, the seed. */
static void test_dropout(void)
{
    begin();
    int64_t n = 100000;
    tg_tensor *x = leaf(TG_F64, 1, &n, NULL, true);
    tg_tensor_fill(x, 1);
    tg_tape_seed(tp, 5);
    tg_tensor *y = tg_dropout(tp, x, 0.3, true);
    int64_t zeros = 0, scaled = 0;
    for (int64_t i = 0; y && i < n; i++) {
        zeros += tg_get(y, i) == 0;
        scaled += fabs(tg_get(y, i) - 1 / 0.7) < 1e-12;
    }
    CHECK(zeros + scaled == n);
    /* Binomial(n, 0.3): the standard deviation is 145; allow 5 of them. */
    CHECK(labs((long)zeros - 30000) < 725);
    CHECK(tg_backward(tp, tg_sum(tp, y, TG_ALL_AXES, false)) == TG_OK);
    int64_t agree = 0;
    for (int64_t i = 0; i < n; i++) agree += tg_get(tg_grad(x), i) == tg_get(y, i);
    CHECK(agree == n); /* the gradient is the mask: 0 or 1/(1-p) */
    /* The same seed gives the same mask. */
    tg_tape_reset(tp);
    tg_tape_seed(tp, 5);
    tg_tensor *y2 = tg_dropout(tp, x, 0.3, true);
    int64_t same = 0;
    for (int64_t i = 0; y2 && i < n; i++) same += tg_get(y2, i) == 0 ? 1 : 0;
    CHECK(same == zeros);
    CHECK(tg_dropout(tp, x, 0.3, false) == x); /* eval: the identity */
    CHECK(tg_dropout(tp, x, 1.0, true) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_dropout: p = 1, want 0 <= p < 1");
    release();
    end();
}

/* Batch normalisation in training and eval, the running statistics, errors. */
static void test_batch_norm(void)
{
    begin();
    /* x [4,2]: column 0 = 1,2,3,4 (mean 2.5, var 1.25), column 1 = 2,2,2,6 (mean 3, var 3). */
    tg_tensor *x = NEW(2, S(4, 2), V(1, 2, 2, 2, 3, 2, 4, 6)), *g = NEW(1, S(2), V(2, 1)),
              *b = NEW(1, S(2), V(0, 1));
    tg_tensor *rm = CONST(1, S(2), V(0, 0)), *rv = CONST(1, S(2), V(1, 1));
    tg_tensor *y = tg_batch_norm(tp, x, g, b, rm, rv, 0.1, 1e-5, true);
    double s0 = 1 / sqrt(1.25 + 1e-5), s1 = 1 / sqrt(3 + 1e-5);
    EXPECT_ABS(y, 8,
               V(2 * -1.5 * s0, 1 - s1, 2 * -0.5 * s0, 1 - s1, 2 * 0.5 * s0, 1 - s1, 2 * 1.5 * s0,
                 1 + 3 * s1),
               1e-12);
    /* Running statistics: 0.9 r + 0.1 stat, with the unbiased variance (PyTorch's rule). */
    EXPECT_EXACT(rm, 2, V(0.25, 0.3));
    EXPECT_EXACT(rv, 2, V(0.9 + 0.1 * 1.25 * 4 / 3, 0.9 + 0.1 * 3 * 4 / 3));
    /* The batch-statistics gradient of x sums to zero per channel; β gets Σ dy. */
    SWEEP(y);
    double s = 0;
    for (int i = 0; i < 8; i += 2) s += tg_get(tg_grad(x), i);
    CHECK(fabs(s) < 1e-12);
    EXPECT_EXACT(tg_grad(b), 2, V(1 + 3 + 5 + 7, 2 + 4 + 6 + 8));
    release();
    /* Eval: the running statistics, an affine map. */
    tg_tensor *x2 = NEW(2, S(2, 1), V(3, 5)), *g2 = NEW(1, S(1), V(2)), *b2 = NEW(1, S(1), V(1));
    tg_tensor *rm2 = CONST(1, S(1), V(1)), *rv2 = CONST(1, S(1), V(4));
    EXPECT_ABS(tg_batch_norm(tp, x2, g2, b2, rm2, rv2, 0.1, 1e-12, false), 2, V(3, 5), 1e-9);
    CHECK(tg_get(rm2, 0) == 1 && tg_get(rv2, 0) == 4); /* eval leaves them alone */
    CHECK(tg_batch_norm(tp, x2, g2, b2, NULL, NULL, 0.1, 1e-5, false) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "eval mode needs the running mean and variance");
    release();
    tg_tensor *one = NEW(2, S(1, 1), V(3));
    CHECK(tg_batch_norm(tp, one, g2, b2, NULL, NULL, 0.1, 1e-5, true) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "training needs more than one value per channel");
    release();
    CHECK(tg_batch_norm(tp, x, g2, b2, NULL, NULL, 0.1, 1e-5, true) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp),
                  "tg_batch_norm: [4,2], [1] and [1]: want x [N,C,...], gamma [C], beta [C]");
    release();
    end();
}

/* A stale tensor from before a reset is refused by every op. */
static void test_stale_input(void)
{
    begin();
    tg_tensor *x = NEW(1, S(2), V(1, 2));
    tg_tensor *y = tg_exp(tp, x);
    CHECK(y != NULL);
    tg_tape_reset(tp);
    CHECK(tg_neg(tp, y) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_ESTATE);
    CHECK_STR_HAS(tg_tape_error(tp),
                  "tg_neg: input 0 belongs to another tape or was made before tg_tape_reset");
    release();
    end();
}

static const check_case cases[] = {
    TEST(test_elementwise), TEST(test_elementwise_errors),
    TEST(test_unary),       TEST(test_reduce),
    TEST(test_shape),       TEST(test_activations),
    TEST(test_losses),      TEST(test_loss_errors),
    TEST(test_dropout),     TEST(test_batch_norm),
    TEST(test_stale_input),
};
TEST_MAIN("test_ops_values", cases)
