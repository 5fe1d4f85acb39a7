/* test/test_ops_loss.c: the losses (ops/loss.c). Values and gradients (to predictions and to
 * targets) against numbers from PyTorch 1.13 (float64) or worked out from the formula,
 * stability at extreme logits and scores, the conventions at kinks and at the bce clamp,
 * label checking in cross_entropy, shapes and errors, and the family's self-check cases. */
#include <stdlib.h>

#include "check.h"
#include "ops_check.h"
#include "tapegrad.h"

static bool all_finite(const tg_tensor *t)
{
    if (!t) return false;
    for (int64_t i = 0; i < tg_tensor_numel(t); i++)
        if (!isfinite(tg_get(t, i))) return false;
    return true;
}

/* A loss of two inputs, as every loss but eps_insensitive_loss is called. */
typedef tg_tensor *(*loss2)(tg_tape *, tg_tensor *, tg_tensor *);

static tg_tensor *eps_half(tg_tape *tp, tg_tensor *p, tg_tensor *t)
{
    return tg_eps_insensitive_loss(tp, p, t, 0.5);
}

/* One loss on (p, t) in dtype dt: its value, then its gradients to p and to t after
 * tg_backward, each within tol. want_dt NULL: t needs no gradient (and gets none). */
static void run_loss(loss2 fn, tg_dtype dt, int ndim, const int64_t *shape, int tndim,
                     const int64_t *tshape, const double *p, const double *t, double value,
                     const double *want_dp, const double *want_dt, double tol, int line)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *P = leaf(dt, ndim, shape, p, true);
    tg_tensor *Tt = leaf(dt, tndim, tshape, t, want_dt != NULL);
    tg_tensor *l = fn(tp, P, Tt);
    if (!l) {
        printf("test_ops_loss.c:%d: %s: %s\n", line, check_test, tg_tape_error(tp));
        check_failed++;
        tg_tape_free(tp);
        return;
    }
    CHECK(tg_tensor_ndim(l) == 0 && tg_tensor_dtype(l) == dt);
    expect(l, 1, &value, tol, __FILE__, line);
    CHECK(tg_backward(tp, l) == TG_OK);
    expect(tg_grad(P), tg_tensor_numel(P), want_dp, tol, __FILE__, line);
    if (want_dt) expect(tg_grad(Tt), tg_tensor_numel(Tt), want_dt, tol, __FILE__, line);
    else CHECK(tg_grad(Tt) == NULL);
    tg_tape_free(tp);
}

/* ---- the elementwise losses on [2,3], against PyTorch ---- */
static const double P6[6] = {0.3, -1.2, 2.0, 0.7, -0.4, 1.5};
static const double Q6[6] = {0.5, -0.2, 1.1, 0.1, 0.6, 1.4};

typedef struct {
    const char *name;
    loss2 fn;
    double value, dp[6], dq[6];
} ref6;

static const ref6 refs6[] = {
    {"mse_loss",
     tg_mse_loss,
     0.5366666666666665,
     {-0.06666666666666667, -0.3333333333333333, 0.29999999999999993, 0.19999999999999998,
      -0.3333333333333333, 0.03333333333333336},
     {0.06666666666666667, 0.3333333333333333, -0.29999999999999993, -0.19999999999999998,
      0.3333333333333333, -0.03333333333333336}},
    /* ½ Σ: the gradient is the output error pred - target itself, not divided by n. */
    {"half_sse_loss",
     tg_half_sse_loss,
     1.6099999999999997,
     {-0.2, -1.0, 0.8999999999999999, 0.6, -1.0, 0.10000000000000009},
     {0.2, 1.0, -0.8999999999999999, -0.6, 1.0, -0.10000000000000009}},
    {"l1_loss",
     tg_l1_loss,
     0.6333333333333333,
     {-1 / 6.0, -1 / 6.0, 1 / 6.0, 1 / 6.0, -1 / 6.0, 1 / 6.0},
     {1 / 6.0, 1 / 6.0, -1 / 6.0, -1 / 6.0, 1 / 6.0, -1 / 6.0}},
    /* relu(|p - q| - 0.5).mean() in PyTorch: elements 0 and 5 lie inside the tube. */
    {"eps_insensitive_loss c 0.5",
     eps_half,
     0.25,
     {0.0, -1 / 6.0, 1 / 6.0, 1 / 6.0, -1 / 6.0, 0.0},
     {0.0, 1 / 6.0, -1 / 6.0, -1 / 6.0, 1 / 6.0, 0.0}},
};

static void test_elementwise_values(void)
{
    for (size_t k = 0; k < sizeof refs6 / sizeof refs6[0]; k++) {
        const ref6 *r = &refs6[k];
        check_test = r->name;
        run_loss(r->fn, TG_F64, 2, S(2, 3), 2, S(2, 3), P6, Q6, r->value, r->dp, r->dq, 1e-14,
                 __LINE__);
        run_loss(r->fn, TG_F32, 2, S(2, 3), 2, S(2, 3), P6, Q6, r->value, r->dp, r->dq, 1e-6,
                 __LINE__);
        /* the target without gradient: the prediction's gradient is the same */
        run_loss(r->fn, TG_F64, 2, S(2, 3), 2, S(2, 3), P6, Q6, r->value, r->dp, NULL, 1e-14,
                 __LINE__);
        drop_all();
    }
    check_test = "test_elementwise_values";
}

/* eps_insensitive_loss with c = 0 is l1_loss; with c above every |p - q| it is 0 with zero
 * gradients. Worked out from the formula. */
static void test_eps_insensitive_limits(void)
{
    const double *l1 = refs6[2].dp;
    run_loss(tg_l1_loss, TG_F64, 1, S(6), 1, S(6), P6, Q6, 0.6333333333333333, l1, NULL, 1e-14,
             __LINE__);
    tg_tape *tp = tg_tape_new();
    tg_tensor *p = leaf(TG_F64, 1, S(6), P6, true), *q = leaf(TG_F64, 1, S(6), Q6, true);
    tg_tensor *l = tg_eps_insensitive_loss(tp, p, q, 0.0);
    CHECK(l && fabs(tg_get(l, 0) - 0.6333333333333333) < 1e-15);
    CHECK(tg_backward(tp, l) == TG_OK);
    EXPECT(tg_grad(p), 6, l1, 1e-15);
    tg_tape_reset(tp);
    tg_zero_grad(p), tg_zero_grad(q);
    l = tg_eps_insensitive_loss(tp, p, q, 1.5); /* max |p - q| is 1.0 */
    CHECK(l && tg_get(l, 0) == 0.0);
    CHECK(tg_backward(tp, l) == TG_OK);
    EXPECT(tg_grad(p), 6, V(0, 0, 0, 0, 0, 0), 0);
    EXPECT(tg_grad(q), 6, V(0, 0, 0, 0, 0, 0), 0);
    tg_tape_free(tp);
    drop_all();
}

/* At the kinks the gradient is 0: l1 where p = q (sign(0) = 0, as PyTorch), ε-insensitive
 * where |p - q| = c exactly, hinge where the margin is exactly 1. Worked out by hand. */
static void test_kinks(void)
{
    /* l1 on [3]: differences 0, 2, -1 -> value 1, gradients (0, 1/3, -1/3) */
    run_loss(tg_l1_loss, TG_F64, 1, S(3), 1, S(3), V(1, 3, -1), V(1, 1, 0), 1.0,
             V(0, 1 / 3.0, -1 / 3.0), V(0, -1 / 3.0, 1 / 3.0), 1e-15, __LINE__);
    /* ε-insensitive, c 0.5: differences 0.5 (on the edge), 1.5, -0.25 -> value 1/3 */
    run_loss(eps_half, TG_F64, 1, S(3), 1, S(3), V(1.5, 2.5, 0.75), V(1, 1, 1), 1 / 3.0,
             V(0, 1 / 3.0, 0), V(0, -1 / 3.0, 0), 1e-15, __LINE__);
    /* hinge: margins 1 (the kink), 0.5, 2 -> value 0.5/3; d/dg = -y/3, d/dy = -g/3 where the
     * margin is below 1 */
    run_loss(tg_hinge_loss, TG_F64, 1, S(3), 1, S(3), V(1, -0.5, 2), V(1, -1, 1), 0.5 / 3,
             V(0, 1 / 3.0, 0), V(0, 0.5 / 3, 0), 1e-15, __LINE__);
    drop_all();
}

/* ---- binary cross-entropy ---- */
static void test_bce_values(void)
{
    const double p[4] = {0.1, 0.5, 0.9, 0.99}, y[4] = {0.0, 0.3, 1.0, 0.2};
    const double dp[4] = {0.27777777777777773, 0.2, -0.2777777777777778, 19.94949494949493};
    const double dy[4] = {0.5493061443340548, 0.0, -0.5493061443340549, -1.1487799625336474};
    run_loss(tg_bce_loss, TG_F64, 1, S(4), 1, S(4), p, y, 1.1475036069591928, dp, dy, 1e-14,
             __LINE__);
    run_loss(tg_bce_loss, TG_F32, 2, S(2, 2), 2, S(2, 2), p, y, 1.1475036069591928, dp, dy, 1e-5,
             __LINE__);

    const double z[4] = {-3.0, 0.5, 2.0, -0.1};
    const double dz[4] = {0.011856468294391695, 0.08061483280046365, -0.02980073050552942,
                          0.068755203130265};
    run_loss(tg_bce_with_logits_loss, TG_F64, 1, S(4), 1, S(4), z, y, 0.41599725171759805, dz,
             V(0.75, -0.125, -0.5, 0.025), 1e-14, __LINE__);
    run_loss(tg_bce_with_logits_loss, TG_F32, 1, S(4), 1, S(4), z, y, 0.41599725171759805, dz,
             V(0.75, -0.125, -0.5, 0.025), 1e-6, __LINE__);
    drop_all();
}

/* p = 0 and p = 1 exactly: the clamp to [1e-12, 1 - 1e-12] keeps the loss finite, and the
 * gradient to p is 0 there (the clamped logs are constant); the target's gradient is
 * log(1-p) - log(p) of the clamped p. Worked out from the formula. */
static void test_bce_clamp(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *p = leaf(TG_F64, 1, S(3), V(0.0, 1.0, 0.25), true);
    tg_tensor *y = leaf(TG_F64, 1, S(3), V(0.5, 0.0, 1.0), true);
    tg_tensor *l = tg_bce_loss(tp, p, y);
    /* the clamp is applied in double: 1 - (1 - 1e-12) is not exactly 1e-12 */
    const double lo = 1e-12, hi = 1 - 1e-12;
    double L12 = log(lo), L1 = log(1 - lo), H0 = log(1 - hi), H1 = log(hi);
    double want = -((0.5 * L12 + 0.5 * L1) + H0 + log(0.25)) / 3;
    CHECK(l && all_finite(l));
    CHECK_NEAR(tg_get(l, 0), want, 1e-13);
    CHECK(tg_backward(tp, l) == TG_OK);
    EXPECT(tg_grad(p), 3, V(0, 0, (0.25 - 1.0) / (0.25 * 0.75) / 3), 1e-15);
    EXPECT(tg_grad(y), 3, V((L1 - L12) / 3, (H0 - H1) / 3, (log(0.75) - log(0.25)) / 3), 1e-13);
    tg_tape_free(tp);

    /* f32 clamps at 1e-7, which a float can hold next to 1 */
    tp = tg_tape_new();
    p = leaf(TG_F32, 1, S(2), V(0.0, 1.0), true);
    y = leaf(TG_F32, 1, S(2), V(1.0, 1.0), true);
    l = tg_bce_loss(tp, p, y);
    CHECK(l && all_finite(l));
    CHECK_NEAR(tg_get(l, 0), -(log(1e-7) + log1p(-1e-7)) / 2, 1e-5);
    CHECK(tg_backward(tp, l) == TG_OK && all_finite(tg_grad(p)) && all_finite(tg_grad(y)));
    tg_tape_free(tp);
    drop_all();
}

/* Logits of ±1000 and ±40: no overflow, and the value keeps its precision. */
static void test_bce_with_logits_extremes(void)
{
    /* max(z,0) - z y + log1p(e^-|z|): 1000 for (1000, 0) and (-1000, 1), e^-40 for (40, 1) */
    double e40 = exp(-40.0);
    run_loss(tg_bce_with_logits_loss, TG_F64, 1, S(4), 1, S(4), V(1000, -1000, 40, -1000),
             V(0, 1, 1, 0), (1000 + 1000 + log1p(e40) + 0) / 4,
             V(0.25, -0.25, (1 / (1 + e40) - 1) / 4, 0), V(-250, 250, -10, 250), 1e-14, __LINE__);
    tg_tape *tp = tg_tape_new();
    tg_tensor *z = leaf(TG_F64, 1, S(1), V(40), true), *y = leaf(TG_F64, 1, S(1), V(1), false);
    tg_tensor *l = tg_bce_with_logits_loss(tp, z, y);
    CHECK(l && tg_get(l, 0) > 0 && fabs(tg_get(l, 0) / e40 - 1) < 1e-12); /* no 1 - (1 - ε) */
    tg_tape_free(tp);
    drop_all();
}

/* ---- cross-entropy ---- */
static const double Z34[12] = {0.2, -1.0, 0.5, 2.0, 1.5, 0.3, -0.7, 0.0, -2.0, 1.0, 0.1, 0.4};
static const double DZ34[12] = {0.038311091612692305, 0.011539079045781032, -0.2816187688920895,
                                0.2317685982336161,   -0.12947563591745748, 0.06140075851541089,
                                0.022588076730152028, 0.04548680067189452,  0.008276456856307532,
                                0.16623707978053462,  0.06758695296264278,  -0.2421004895994849};

static void test_cross_entropy_values(void)
{
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = k ? TG_F32 : TG_F64;
        double tol = k ? 1e-6 : 1e-14;
        tg_tape *tp = tg_tape_new();
        tg_tensor *z = leaf(dt, 2, S(3, 4), Z34, true);
        tg_tensor *lab = leaf(dt, 1, S(3), V(2, 0, 3), false);
        tg_tensor *l = tg_cross_entropy(tp, z, lab);
        CHECK(l && tg_tensor_ndim(l) == 0);
        CHECK_NEAR(l ? tg_get(l, 0) : (double)NAN, 1.2169507895934064, tol);
        CHECK(tg_backward(tp, l) == TG_OK);
        EXPECT(tg_grad(z), 12, DZ34, tol);
        CHECK(tg_grad(lab) == NULL);
        tg_tape_free(tp);
    }
    drop_all();
}

/* Logits of ±1000: the log-sum-exp shift keeps everything finite and exact. Row 0 picks its
 * largest logit (loss 0); row 1 picks 999 beside 1000: loss 1 + log1p(e^-1). */
static void test_cross_entropy_huge_logits(void)
{
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = k ? TG_F32 : TG_F64;
        tg_tape *tp = tg_tape_new();
        tg_tensor *z = leaf(dt, 2, S(2, 3), V(1000, 0, -1000, -1000, 1000, 999), true);
        tg_tensor *lab = leaf(dt, 1, S(2), V(0, 2), false);
        tg_tensor *l = tg_cross_entropy(tp, z, lab);
        CHECK(l && all_finite(l));
        CHECK_NEAR(l ? tg_get(l, 0) : (double)NAN, 0.6566308437591114, k ? 1e-6 : 1e-15);
        CHECK(tg_backward(tp, l) == TG_OK && all_finite(tg_grad(z)));
        EXPECT(tg_grad(z), 6, V(0, 0, 0, 0, 0.36552928931500245, -0.36552928931500245),
               k ? 1e-6 : 1e-15);
        tg_tape_free(tp);
    }
    drop_all();
}

/* A label that is not an integer in 0..C-1 fails in the forward with TG_EARG, naming the row
 * and the value. */
static void test_cross_entropy_bad_labels(void)
{
    static const struct {
        double v;
        const char *msg;
    } bad[] = {
        {1.5, "tg_cross_entropy: label 1.5 of row 1 is not a class index in 0..2"},
        {-1, "tg_cross_entropy: label -1 of row 1 is not a class index in 0..2"},
        {3, "tg_cross_entropy: label 3 of row 1 is not a class index in 0..2"},
        {1e30, "tg_cross_entropy: label 1e+30 of row 1 is not a class index in 0..2"},
        {(double)NAN, "of row 1 is not a class index in 0..2"},
        {-0.25, "tg_cross_entropy: label -0.25 of row 1 is not a class index in 0..2"},
    };
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = k ? TG_F32 : TG_F64;
        tg_tape *tp = tg_tape_new();
        tg_tensor *z = leaf(dt, 2, S(2, 3), V(1, 2, 3, 4, 5, 6), true);
        tg_tensor *lab = leaf(dt, 1, S(2), V(0, 0), false);
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            tg_set(lab, 1, bad[i].v);
            CHECK(tg_cross_entropy(tp, z, lab) == NULL);
            CHECK(tg_tape_errcode(tp) == TG_EARG);
            CHECK_STR_HAS(tg_tape_error(tp), bad[i].msg);
            CHECK(tg_tape_n_nodes(tp) == 0);
            tg_tape_reset(tp);
        }
        tg_set(lab, 1, 2); /* the largest class is fine */
        CHECK(tg_cross_entropy(tp, z, lab) != NULL && tg_tape_errcode(tp) == TG_OK);
        tg_tape_free(tp);
    }
    drop_all();
}

/* The labels are read once, by the forward: changing them before the backward does not move
 * the gradient (nor send it out of bounds). A label tensor that asks for a gradient gets
 * zeros: the loss is not differentiable in class indices. */
static void test_cross_entropy_labels_frozen(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *z = leaf(TG_F64, 2, S(3, 4), Z34, true);
    tg_tensor *lab = leaf(TG_F64, 1, S(3), V(2, 0, 3), true);
    tg_tensor *l = tg_cross_entropy(tp, z, lab);
    tg_set(lab, 0, 1e9);
    tg_set(lab, 2, -5);
    CHECK(tg_backward(tp, l) == TG_OK);
    EXPECT(tg_grad(z), 12, DZ34, 1e-14);
    EXPECT(tg_grad(lab), 3, V(0, 0, 0), 0);
    tg_tape_free(tp);
    drop_all();
}

/* Probability targets: value and both gradients against PyTorch's cross_entropy with
 * probabilities (targets whose rows sum to 1 and to 0.8). With one-hot targets it equals
 * the label form. */
static void test_cross_entropy_soft(void)
{
    const double z[6] = {0.2, -1.0, 0.5, 1.5, 0.3, -0.7}, q[6] = {0.1, 0.6, 0.3, 0.5, 0.2, 0.1};
    const double dz[6] = {0.13860430037590377, -0.24319347638502742, 0.10458917600912374,
                          0.03328664657656379, -0.01467570173912135, -0.0186109448374425};
    const double dq[6] = {0.4874784634569188, 1.0874784634569188, 0.33747846345691884,
                          0.1725026383287572, 0.7725026383287572, 1.2725026383287572};
    run_loss(tg_cross_entropy_soft, TG_F64, 2, S(2, 3), 2, S(2, 3), z, q, 1.1704805741199245, dz,
             dq, 1e-14, __LINE__);
    run_loss(tg_cross_entropy_soft, TG_F32, 2, S(2, 3), 2, S(2, 3), z, q, 1.1704805741199245, dz,
             dq, 1e-6, __LINE__);
    run_loss(tg_cross_entropy_soft, TG_F64, 2, S(2, 3), 2, S(2, 3), z, q, 1.1704805741199245, dz,
             NULL, 1e-14, __LINE__);

    tg_tape *tp = tg_tape_new();
    tg_tensor *zz = leaf(TG_F64, 2, S(3, 4), Z34, true);
    tg_tensor *onehot = leaf(TG_F64, 2, S(3, 4), V(0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1), false);
    tg_tensor *l = tg_cross_entropy_soft(tp, zz, onehot);
    CHECK_NEAR(l ? tg_get(l, 0) : (double)NAN, 1.2169507895934064, 1e-15);
    CHECK(tg_backward(tp, l) == TG_OK);
    EXPECT(tg_grad(zz), 12, DZ34, 1e-15);
    tg_tape_free(tp);

    /* logits of ±1000 with soft targets: finite value and gradients */
    tp = tg_tape_new();
    zz = leaf(TG_F64, 2, S(1, 3), V(1000, -1000, 999), true);
    tg_tensor *qq = leaf(TG_F64, 2, S(1, 3), V(0.5, 0, 0.5), true);
    l = tg_cross_entropy_soft(tp, zz, qq);
    CHECK_NEAR(l ? tg_get(l, 0) : (double)NAN, log1p(exp(-1.0)) + 0.5, 1e-13);
    CHECK(tg_backward(tp, l) == TG_OK && all_finite(tg_grad(zz)) && all_finite(tg_grad(qq)));
    tg_tape_free(tp);
    drop_all();
}

/* ---- KL divergence, as PyTorch's kl_div(log_q, p, reduction='batchmean') ---- */
static void test_kl_div(void)
{
    /* p has a 0: its term is 0 (0 log 0 = 0) and its gradients are 0 (PyTorch gives NaN for
     * the target's gradient there; tapegrad takes the limit of the term, which is 0). */
    const double lq[6] = {-1.0, -2.0, -0.5, -0.3, -1.5, -2.5};
    const double p[6] = {0.0, 0.3, 0.7, 0.6, 0.3, 0.1};
    const double dlq[6] = {0, -0.15, -0.35, -0.3, -0.15, -0.05};
    const double dp[6] = {0,
                          0.8980135978370319,
                          0.5716625280306338,
                          0.39458718811700466,
                          0.6480135978370319,
                          0.5987074535029773};
    run_loss(tg_kl_div_loss, TG_F64, 2, S(2, 3), 2, S(2, 3), lq, p, 0.1605949865441633, dlq, dp,
             1e-14, __LINE__);
    run_loss(tg_kl_div_loss, TG_F32, 2, S(2, 3), 2, S(2, 3), lq, p, 0.1605949865441633, dlq, dp,
             1e-6, __LINE__);
    /* batchmean divides by the first dimension only: [1,6] gives twice the [2,3] value */
    run_loss(tg_kl_div_loss, TG_F64, 2, S(1, 6), 2, S(1, 6), lq, p, 2 * 0.1605949865441633,
             V(0, -0.3, -0.7, -0.6, -0.3, -0.1), NULL, 1e-14, __LINE__);
    /* KL(p || p) = 0 */
    tg_tape *tp = tg_tape_new();
    tg_tensor *pp = leaf(TG_F64, 1, S(3), V(0.2, 0.3, 0.5), false);
    tg_tensor *lp = leaf(TG_F64, 1, S(3), V(log(0.2), log(0.3), log(0.5)), true);
    tg_tensor *l = tg_kl_div_loss(tp, lp, pp);
    CHECK(l && fabs(tg_get(l, 0)) < 1e-16);
    tg_tape_free(tp);
    drop_all();
}

/* ---- margin losses, labels ±1 ---- */
static void test_margin_losses(void)
{
    const double g[5] = {0.5, -2.0, 1.5, 0.2, -0.3}, y[5] = {1, 1, -1, -1, 1};
    run_loss(tg_hinge_loss, TG_F64, 1, S(5), 1, S(5), g, y, 1.7, V(-0.2, -0.2, 0.2, 0.2, -0.2),
             V(-0.1, 0.4, -0.3, -0.04, 0.06), 1e-14, __LINE__);
    run_loss(tg_hinge_loss, TG_F32, 1, S(5), 1, S(5), g, y, 1.7, V(-0.2, -0.2, 0.2, 0.2, -0.2),
             V(-0.1, 0.4, -0.3, -0.04, 0.06), 1e-6, __LINE__);
    const double dg[5] = {-0.07550813375962909, -0.1761594155955765, 0.16351489523872872,
                          0.1099667994624956, -0.1148885033623318};
    const double dy[5] = {-0.03775406687981454, 0.352318831191153, -0.24527234285809307,
                          -0.02199335989249912, 0.03446655100869954};
    run_loss(tg_logistic_loss, TG_F64, 1, S(5), 1, S(5), g, y, 1.1909824774111903, dg, dy, 1e-14,
             __LINE__);
    run_loss(tg_logistic_loss, TG_F32, 2, S(5, 1), 2, S(5, 1), g, y, 1.1909824774111903, dg, dy,
             1e-6, __LINE__);
    /* scores of ±1000 and ±30: ln(1 + e^-M) neither overflows nor rounds e^-30 away */
    const double e30 = exp(-30.0);
    run_loss(tg_logistic_loss, TG_F64, 1, S(4), 1, S(4), V(1000, -1000, 30, -30), V(1, 1, -1, -1),
             (1000 + 30 + 2 * log1p(e30)) / 4, V(0, -0.25, 0.25 / (1 + e30), e30 / (1 + e30) / 4),
             V(0, 250, -7.5 / (1 + e30), 30 * e30 / (1 + e30) / 4), 1e-14, __LINE__);
    tg_tape *tp = tg_tape_new();
    tg_tensor *s = leaf(TG_F64, 1, S(1), V(30), true), *lab = leaf(TG_F64, 1, S(1), V(1), false);
    tg_tensor *l = tg_logistic_loss(tp, s, lab);
    CHECK(l && fabs(tg_get(l, 0) / log1p(e30) - 1) < 1e-12);
    tg_tape_free(tp);
    drop_all();
}

/* ---- gradients add, and the same tensor may be both inputs ---- */
static void test_gradients_accumulate(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *p = leaf(TG_F64, 2, S(2, 3), P6, true), *q = leaf(TG_F64, 2, S(2, 3), Q6, false);
    /* two backward passes without zeroing: the leaf's gradient doubles */
    tg_tensor *l = tg_mse_loss(tp, p, q);
    CHECK(tg_backward(tp, l) == TG_OK && tg_backward(tp, l) == TG_OK);
    double twice[6];
    for (int i = 0; i < 6; i++) twice[i] = 2 * refs6[0].dp[i];
    EXPECT(tg_grad(p), 6, twice, 1e-15);
    tg_tape_reset(tp);

    /* mse(p, p): both contributions land in one buffer and cancel */
    tg_zero_grad(p);
    l = tg_mse_loss(tp, p, p);
    CHECK(l && tg_get(l, 0) == 0 && tg_backward(tp, l) == TG_OK);
    EXPECT(tg_grad(p), 6, V(0, 0, 0, 0, 0, 0), 0);
    tg_tape_reset(tp);

    /* logistic(g, g) = mean ln(1 + e^-g²): d/dg = -2g σ(-g²) / n */
    tg_tensor *g = leaf(TG_F64, 1, S(2), V(0.5, -1.5), true);
    l = tg_logistic_loss(tp, g, g);
    CHECK(l && tg_backward(tp, l) == TG_OK);
    EXPECT(tg_grad(g), 2, V(-2 * 0.5 / (1 + exp(0.25)) / 2, -2 * -1.5 / (1 + exp(2.25)) / 2),
           1e-15);
    tg_tape_free(tp);
    drop_all();
}

/* Outputs are 0-d; a 0-d prediction works; grad mode off records nothing. */
static void test_shapes_and_recording(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *a = leaf(TG_F64, 0, NULL, V(2.0), true), *b = leaf(TG_F64, 0, NULL, V(0.5), true);
    tg_tensor *l = tg_mse_loss(tp, a, b);
    CHECK(l && tg_tensor_ndim(l) == 0 && tg_get(l, 0) == 2.25);
    CHECK(tg_tape_n_nodes(tp) == 1 && strcmp(tg_node_op(tg_tape_first(tp)), "mse_loss") == 0);
    CHECK(tg_backward(tp, l) == TG_OK && tg_get(tg_grad(a), 0) == 3.0);
    CHECK(tg_kl_div_loss(tp, a, b) != NULL); /* 0-d: batchmean divides by 1 */
    tg_tape_reset(tp);

    tg_tape_set_grad_mode(tp, false);
    tg_tensor *z = leaf(TG_F64, 2, S(3, 4), Z34, true);
    l = tg_cross_entropy(tp, z, leaf(TG_F64, 1, S(3), V(2, 0, 3), false));
    CHECK_NEAR(l ? tg_get(l, 0) : (double)NAN, 1.2169507895934064, 1e-14);
    CHECK(tg_tape_n_nodes(tp) == 0);
    tg_tape_free(tp);
    drop_all();
}

/* ---- errors ---- */
static void test_errors(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x23 = leaf(TG_F64, 2, S(2, 3), P6, true), *x32 = leaf(TG_F64, 2, S(3, 2), Q6, true);
    tg_tensor *x6 = leaf(TG_F64, 1, S(6), Q6, true), *x3 = leaf(TG_F64, 1, S(3), Q6, true);
    tg_tensor *e0 = leaf(TG_F64, 2, S(0, 3), NULL, true);
    tg_tensor *f23 = leaf(TG_F32, 2, S(2, 3), P6, true);
    static const struct {
        const char *name;
        loss2 fn;
    } pairs[] = {{"mse_loss", tg_mse_loss},
                 {"half_sse_loss", tg_half_sse_loss},
                 {"l1_loss", tg_l1_loss},
                 {"eps_insensitive_loss", eps_half},
                 {"bce_loss", tg_bce_loss},
                 {"bce_with_logits_loss", tg_bce_with_logits_loss},
                 {"kl_div_loss", tg_kl_div_loss},
                 {"hinge_loss", tg_hinge_loss},
                 {"logistic_loss", tg_logistic_loss}};
    char msg[160];
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        /* same number of elements is not enough: the shapes must match */
        CHECK(pairs[k].fn(tp, x23, x32) == NULL && tg_tape_errcode(tp) == TG_ESHAPE);
        snprintf(msg, sizeof msg, "tg_%s: [2,3] and [3,2]: prediction and target shapes differ",
                 pairs[k].name);
        CHECK_STR_HAS(tg_tape_error(tp), msg);
        tg_tape_reset(tp);
        CHECK(pairs[k].fn(tp, x23, x6) == NULL && tg_tape_errcode(tp) == TG_ESHAPE);
        snprintf(msg, sizeof msg, "tg_%s: [2,3] and [6]", pairs[k].name);
        CHECK_STR_HAS(tg_tape_error(tp), msg);
        tg_tape_reset(tp);
        CHECK(pairs[k].fn(tp, e0, e0) == NULL && tg_tape_errcode(tp) == TG_ESHAPE);
        snprintf(msg, sizeof msg, "tg_%s: [0,3] and [0,3]: no elements", pairs[k].name);
        CHECK_STR_HAS(tg_tape_error(tp), msg);
        tg_tape_reset(tp);
        CHECK(pairs[k].fn(tp, x23, f23) == NULL && tg_tape_errcode(tp) == TG_EDTYPE);
        snprintf(msg, sizeof msg, "tg_%s: dtypes f64 and f32 differ", pairs[k].name);
        CHECK_STR_HAS(tg_tape_error(tp), msg);
        tg_tape_reset(tp);
        CHECK(pairs[k].fn(tp, NULL, x23) == NULL && tg_tape_errcode(tp) == TG_EARG);
        snprintf(msg, sizeof msg, "tg_%s: input 0 is NULL", pairs[k].name);
        CHECK_STR_HAS(tg_tape_error(tp), msg);
        tg_tape_reset(tp);
        CHECK(pairs[k].fn(tp, x23, NULL) == NULL && tg_tape_errcode(tp) == TG_EARG);
        tg_tape_reset(tp);
        CHECK(pairs[k].fn(NULL, x23, x23) == NULL);
    }

    /* ε-insensitive: c must be finite and >= 0 */
    const double bad_c[] = {-0.1, (double)NAN, (double)INFINITY};
    const char *bad_c_msg[] = {"c = -0.1", "c = nan", "c = inf"};
    for (int k = 0; k < 3; k++) {
        CHECK(tg_eps_insensitive_loss(tp, x23, x23, bad_c[k]) == NULL);
        CHECK(tg_tape_errcode(tp) == TG_EARG);
        CHECK_STR_HAS(tg_tape_error(tp), "tg_eps_insensitive_loss: ");
        CHECK_STR_HAS(tg_tape_error(tp), bad_c_msg[k]);
        tg_tape_reset(tp);
    }

    /* cross-entropy shapes */
    static const struct {
        int zn, tn;
        int64_t zs[2], ts[2];
        const char *msg;
    } ce_bad[] = {
        {1,
         1,
         {6},
         {6},
         "tg_cross_entropy: [6] and [6]: want logits [N,C] (N, C > 0) and labels [N]"},
        {2, 1, {2, 3}, {3}, "tg_cross_entropy: [2,3] and [3]: want logits"},
        {2, 2, {2, 3}, {2, 1}, "tg_cross_entropy: [2,3] and [2,1]: want logits"},
        {2, 1, {0, 3}, {0}, "tg_cross_entropy: [0,3] and [0]: want logits [N,C] (N, C > 0)"},
        {2, 1, {2, 0}, {2}, "tg_cross_entropy: [2,0] and [2]: want logits [N,C] (N, C > 0)"},
    };
    for (size_t k = 0; k < sizeof ce_bad / sizeof ce_bad[0]; k++) {
        tg_tensor *z = leaf(TG_F64, ce_bad[k].zn, ce_bad[k].zs, NULL, true);
        tg_tensor *t = leaf(TG_F64, ce_bad[k].tn, ce_bad[k].ts, NULL, false);
        CHECK(tg_cross_entropy(tp, z, t) == NULL && tg_tape_errcode(tp) == TG_ESHAPE);
        CHECK_STR_HAS(tg_tape_error(tp), ce_bad[k].msg);
        tg_tape_reset(tp);
    }
    CHECK(tg_cross_entropy_soft(tp, x23, x32) == NULL && tg_tape_errcode(tp) == TG_ESHAPE);
    CHECK_STR_HAS(tg_tape_error(tp),
                  "tg_cross_entropy_soft: [2,3] and [3,2]: want logits [N,C] (N, C > 0) and "
                  "targets [N,C]");
    tg_tape_reset(tp);
    CHECK(tg_cross_entropy_soft(tp, x6, x6) == NULL && tg_tape_errcode(tp) == TG_ESHAPE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_cross_entropy_soft: [6] and [6]");
    tg_tape_reset(tp);
    CHECK(tg_cross_entropy(tp, x23, leaf(TG_F32, 1, S(2), V(0, 1), false)) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_EDTYPE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_cross_entropy: dtypes f64 and f32 differ");
    tg_tape_reset(tp);
    CHECK(tg_cross_entropy(tp, NULL, x3) == NULL && tg_cross_entropy_soft(tp, x23, NULL) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_cross_entropy: input 0 is NULL");
    tg_tape_reset(tp);
    CHECK(tg_cross_entropy(NULL, x23, x3) == NULL && tg_cross_entropy_soft(NULL, x23, x23) == NULL);

    /* The first error is kept; later losses return NULL even on good inputs. */
    CHECK(tg_mse_loss(tp, x23, x32) == NULL);
    CHECK(tg_cross_entropy(tp, x23, x3) == NULL);
    CHECK(tg_eps_insensitive_loss(tp, x23, x23, -1) == NULL);
    CHECK(tg_l1_loss(tp, x23, x23) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_mse_loss: [2,3] and [3,2]");
    tg_tape_reset(tp);
    CHECK(tg_l1_loss(tp, x23, x23) != NULL && tg_tape_errcode(tp) == TG_OK);
    tg_tape_free(tp);
    drop_all();
}

/* ---- the family's self-check cases: gradients against finite differences, f32 vs f64 ---- */
static void test_selfcheck_loss(void)
{
    static const char *ops[] = {
        "mse_loss",    "half_sse_loss",        "l1_loss",       "eps_insensitive_loss",
        "bce_loss",    "bce_with_logits_loss", "cross_entropy", "cross_entropy_soft",
        "kl_div_loss", "hinge_loss",           "logistic_loss"};
    enum { N_OPS = sizeof ops / sizeof ops[0] };
    int count[N_OPS];
    check_family_cases(ops, N_OPS, count);
    for (int k = 0; k < N_OPS; k++) check_case_count(ops[k], count[k], 3);
}

static const check_case tests[] = {
    TEST(test_elementwise_values),
    TEST(test_eps_insensitive_limits),
    TEST(test_kinks),
    TEST(test_bce_values),
    TEST(test_bce_clamp),
    TEST(test_bce_with_logits_extremes),
    TEST(test_cross_entropy_values),
    TEST(test_cross_entropy_huge_logits),
    TEST(test_cross_entropy_bad_labels),
    TEST(test_cross_entropy_labels_frozen),
    TEST(test_cross_entropy_soft),
    TEST(test_kl_div),
    TEST(test_margin_losses),
    TEST(test_gradients_accumulate),
    TEST(test_shapes_and_recording),
    TEST(test_errors),
    TEST(test_selfcheck_loss),
};

TEST_MAIN("test_ops_loss", tests)
