/* ops/cases_loss.c: self-check cases of the losses (ops/cases.h). */
#include "cases.h"

#define LOSS(NAME)                                                                                 \
    static tg_tensor *f_##NAME(tg_tape *tp, tg_tensor *const *in, void *ctx)                       \
    {                                                                                              \
        (void)ctx;                                                                                 \
        return tg_##NAME(tp, in[0], in[1]);                                                        \
    }
LOSS(mse_loss)
LOSS(half_sse_loss)
LOSS(l1_loss)
LOSS(bce_loss)
LOSS(bce_with_logits_loss)
LOSS(cross_entropy)
LOSS(cross_entropy_soft)
LOSS(kl_div_loss)
LOSS(hinge_loss)
LOSS(logistic_loss)

static tg_tensor *f_eps(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    return tg_eps_insensitive_loss(tp, in[0], in[1], ((const double *)ctx)[0]);
}

/* |pred - target| away from the kinks at 0 (l1) and at c (ε-insensitive). */
static void kink_free(tg_tensor *const *in, const double *arg, tg_rng *rng)
{
    (void)rng;
    for (int64_t i = 0; i < tg_tensor_numel(in[0]); i++) {
        double d = tg_get(in[0], i) - tg_get(in[1], i), c = arg[0];
        double a = fabs(d);
        if (fabs(a - c) < 0.1 || a < 0.1)
            tg_set(in[0], i, tg_get(in[1], i) + (d < 0 ? -1 : 1) * (c + 0.3));
    }
}

/* Targets in [0,1] (bce): the second input. Probabilities in (0.05, 0.95) (first input). */
static void probs(tg_tensor *const *in, const double *arg, tg_rng *rng)
{
    (void)arg;
    for (int64_t i = 0; i < tg_tensor_numel(in[0]); i++) {
        tg_set(in[0], i, 0.05 + 0.9 * tg_rng_uniform(rng));
        tg_set(in[1], i, tg_rng_uniform(rng));
    }
}

/* Probabilities outside [0,1] on both sides, far from the clamp, where the clamped logs
 * are constant (bce's gradient in p is 0), with the target on the same side (0 below, 1
 * above), so the loss is about eps in f32 and f64 alike. The targets' gradient there is
 * ±(ln(1-eps) - ln eps), which differs between f32 and f64: they need none. */
static void clamped_probs(tg_tensor *const *in, const double *arg, tg_rng *rng)
{
    (void)arg;
    for (int64_t i = 0; i < tg_tensor_numel(in[0]); i++) {
        double u = 0.5 * tg_rng_uniform(rng);
        tg_set(in[0], i, i % 2 ? 1.5 + u : -0.5 - u);
        tg_set(in[1], i, i % 2 ? 1 : 0);
    }
}

static void targets01(tg_tensor *const *in, const double *arg, tg_rng *rng)
{
    (void)arg;
    for (int64_t i = 0; i < tg_tensor_numel(in[1]); i++) tg_set(in[1], i, tg_rng_uniform(rng));
}

/* Labels as class indices (in[1] [N]) for logits [N,C]. */
static void labels(tg_tensor *const *in, const double *arg, tg_rng *rng)
{
    (void)arg;
    int64_t c = tg_tensor_dim(in[0], 1);
    for (int64_t i = 0; i < tg_tensor_numel(in[1]); i++)
        tg_set(in[1], i, (double)tg_rng_below(rng, (uint64_t)c));
}

/* Rows of in[1] normalised to probabilities; for kl_div, in[0] is log of a distribution. */
static void rows_to_probs(tg_tensor *t, int64_t c)
{
    for (int64_t r = 0; r < tg_tensor_numel(t) / c; r++) {
        double s = 0;
        for (int64_t j = 0; j < c; j++) s += tg_get(t, r * c + j);
        for (int64_t j = 0; j < c; j++) tg_set(t, r * c + j, tg_get(t, r * c + j) / s);
    }
}
static void soft_targets(tg_tensor *const *in, const double *arg, tg_rng *rng)
{
    (void)arg;
    for (int64_t i = 0; i < tg_tensor_numel(in[1]); i++)
        tg_set(in[1], i, 0.1 + tg_rng_uniform(rng));
    rows_to_probs(in[1], tg_tensor_dim(in[1], -1));
}
/* kl_div with some targets at or below 0: their terms are 0, and so are their gradients */
static void kl_nonpositive(tg_tensor *const *in, const double *arg, tg_rng *rng)
{
    (void)arg, (void)rng;
    for (int64_t i = 0; i < tg_tensor_numel(in[1]); i += 3) tg_set(in[1], i, i % 2 ? 0.0 : -0.4);
}
static void kl_inputs(tg_tensor *const *in, const double *arg, tg_rng *rng)
{
    soft_targets(in, arg, rng);
    int64_t c = tg_tensor_dim(in[0], -1);
    for (int64_t i = 0; i < tg_tensor_numel(in[0]); i++)
        tg_set(in[0], i, 0.1 + tg_rng_uniform(rng));
    rows_to_probs(in[0], c);
    for (int64_t i = 0; i < tg_tensor_numel(in[0]); i++) tg_set(in[0], i, log(tg_get(in[0], i)));
}

/* ±1 labels; hinge also keeps the margin g y away from 1. */
static void pm1(tg_tensor *const *in, const double *arg, tg_rng *rng)
{
    for (int64_t i = 0; i < tg_tensor_numel(in[1]); i++) {
        double y = tg_rng_uniform(rng) < 0.5 ? -1 : 1;
        tg_set(in[1], i, y);
        if (arg[0] != 0 && fabs(tg_get(in[0], i) * y - 1) < 0.1)
            tg_set(in[0], i, tg_get(in[0], i) + 0.3);
    }
}

/* Soft targets that are not distributions (rows summing to 0.3..2): the logits' gradient
 * then has the Σq factor, softmax·Σq - q. */
static void loose_targets(tg_tensor *const *in, const double *arg, tg_rng *rng)
{
    (void)arg;
    for (int64_t i = 0; i < tg_tensor_numel(in[1]); i++)
        tg_set(in[1], i, 0.5 * tg_rng_uniform(rng));
}

/* The same tensor as prediction and target: the two gradient contributions must add. */
static tg_tensor *f_soft_self(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    return tg_cross_entropy_soft(tp, in[0], in[0]);
}
static tg_tensor *f_logistic_self(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    return tg_logistic_loss(tp, in[0], in[0]);
}

/* clang-format off */
const tg_op_case tg_cases_loss[] = {
    {"mse_loss", "[4,3]", f_mse_loss, 2, {2, 2}, {{4, 3}, {4, 3}}, 0, 0, 0, NULL, {0}},
    {"mse_loss", "[5], target needs no grad", f_mse_loss, 2, {1, 1}, {{5}, {5}}, 0, 0, 2, NULL,
     {0}},
    {"mse_loss", "[2,1,2,3] 4-D", f_mse_loss, 2, {4, 4}, {{2, 1, 2, 3}, {2, 1, 2, 3}}, -3, 3, 0,
     NULL, {0}},
    {"mse_loss", "[] 0-d", f_mse_loss, 2, {0, 0}, {{0}, {0}}, 0, 0, 0, NULL, {0}},
    {"half_sse_loss", "[2,3,2]", f_half_sse_loss, 2, {3, 3}, {{2, 3, 2}, {2, 3, 2}}, 0, 0, 0, NULL,
     {0}},
    {"half_sse_loss", "[1]", f_half_sse_loss, 2, {1, 1}, {{1}, {1}}, 0, 0, 0, NULL, {0}},
    {"half_sse_loss", "[3,5], target needs no grad", f_half_sse_loss, 2, {2, 2}, {{3, 5}, {3, 5}},
     0, 0, 2, NULL, {0}},
    {"l1_loss", "[3,4]", f_l1_loss, 2, {2, 2}, {{3, 4}, {3, 4}}, 0, 0, 0, kink_free, {0}},
    {"l1_loss", "[2,2,3], target needs no grad", f_l1_loss, 2, {3, 3}, {{2, 2, 3}, {2, 2, 3}}, -2,
     2, 2, kink_free, {0}},
    {"l1_loss", "[1]", f_l1_loss, 2, {1, 1}, {{1}, {1}}, 0, 0, 0, kink_free, {0}},
    {"eps_insensitive_loss", "[4,3] c 0.3", f_eps, 2, {2, 2}, {{4, 3}, {4, 3}}, -2, 2, 0,
     kink_free, {0.3}},
    {"eps_insensitive_loss", "[2,3,2] c 1, target needs no grad", f_eps, 2, {3, 3},
     {{2, 3, 2}, {2, 3, 2}}, -2, 2, 2, kink_free, {1}},
    {"eps_insensitive_loss", "[6] c 0 (l1)", f_eps, 2, {1, 1}, {{6}, {6}}, 0, 0, 0, kink_free, {0}},
    {"bce_loss", "[6]", f_bce_loss, 2, {1, 1}, {{6}, {6}}, 0, 0, 0, probs, {0}},
    {"bce_loss", "[3,2]", f_bce_loss, 2, {2, 2}, {{3, 2}, {3, 2}}, 0, 0, 0, probs, {0}},
    {"bce_loss", "[1,2,2,2] 4-D, target needs no grad", f_bce_loss, 2, {4, 4},
     {{1, 2, 2, 2}, {1, 2, 2, 2}}, 0, 0, 2, probs, {0}},
    {"bce_loss", "[3,2] p outside [0,1] (clamped), targets need no grad", f_bce_loss, 2, {2, 2},
     {{3, 2}, {3, 2}}, 0, 0, 2, clamped_probs, {0}},
    {"bce_with_logits_loss", "[4,2]", f_bce_with_logits_loss, 2, {2, 2}, {{4, 2}, {4, 2}}, -6, 6,
     0, targets01, {0}},
    {"bce_with_logits_loss", "[5] large logits", f_bce_with_logits_loss, 2, {1, 1}, {{5}, {5}},
     -40, 40, 0, targets01, {0}},
    {"bce_with_logits_loss", "[3,1,2], target needs no grad", f_bce_with_logits_loss, 2, {3, 3},
     {{3, 1, 2}, {3, 1, 2}}, -3, 3, 2, targets01, {0}},
    {"cross_entropy", "[4,3], labels [4]", f_cross_entropy, 2, {2, 1}, {{4, 3}, {4}}, -3, 3, 2,
     labels, {0}},
    {"cross_entropy", "[1,5]", f_cross_entropy, 2, {2, 1}, {{1, 5}, {1}}, -3, 3, 2, labels, {0}},
    {"cross_entropy", "[6,2] large logits", f_cross_entropy, 2, {2, 1}, {{6, 2}, {6}}, -50, 50, 2,
     labels, {0}},
    {"cross_entropy", "[3,10] more classes than rows", f_cross_entropy, 2, {2, 1}, {{3, 10}, {3}},
     -2, 2, 2, labels, {0}},
    {"cross_entropy_soft", "[3,4]", f_cross_entropy_soft, 2, {2, 2}, {{3, 4}, {3, 4}}, -3, 3, 0,
     soft_targets, {0}},
    {"cross_entropy_soft", "[2,3], targets need no grad", f_cross_entropy_soft, 2, {2, 2},
     {{2, 3}, {2, 3}}, -3, 3, 2, soft_targets, {0}},
    {"cross_entropy_soft", "[4,5] targets not summing to 1", f_cross_entropy_soft, 2, {2, 2},
     {{4, 5}, {4, 5}}, -3, 3, 0, loose_targets, {0}},
    {"cross_entropy_soft", "[1,6] large logits", f_cross_entropy_soft, 2, {2, 2}, {{1, 6}, {1, 6}},
     -40, 40, 0, soft_targets, {0}},
    {"cross_entropy_soft", "x as logits and targets, [3,3]", f_soft_self, 1, {2}, {{3, 3}}, 0, 0,
     0, NULL, {0}},
    {"kl_div_loss", "[3,4]", f_kl_div_loss, 2, {2, 2}, {{3, 4}, {3, 4}}, 0, 0, 0, kl_inputs, {0}},
    {"kl_div_loss", "[2,2,3]", f_kl_div_loss, 2, {3, 3}, {{2, 2, 3}, {2, 2, 3}}, 0, 0, 0,
     kl_inputs, {0}},
    {"kl_div_loss", "[5] 1-D", f_kl_div_loss, 2, {1, 1}, {{5}, {5}}, 0, 0, 0, kl_inputs, {0}},
    {"kl_div_loss", "[2,6], targets 0 and -0.4 among them", f_kl_div_loss, 2, {2, 2},
     {{2, 6}, {2, 6}}, 0.1, 1, 2, kl_nonpositive, {0}},
    {"kl_div_loss", "[1,6], p needs no grad", f_kl_div_loss, 2, {2, 2}, {{1, 6}, {1, 6}}, 0, 0, 2,
     kl_inputs, {0}},
    {"hinge_loss", "[8]", f_hinge_loss, 2, {1, 1}, {{8}, {8}}, -2, 2, 0, pm1, {1}},
    {"hinge_loss", "[3,2], labels need no grad", f_hinge_loss, 2, {2, 2}, {{3, 2}, {3, 2}}, -2, 2,
     2, pm1, {1}},
    {"hinge_loss", "[2,2,2,2] 4-D", f_hinge_loss, 2, {4, 4}, {{2, 2, 2, 2}, {2, 2, 2, 2}}, -3, 3,
     0, pm1, {1}},
    {"logistic_loss", "[8]", f_logistic_loss, 2, {1, 1}, {{8}, {8}}, -3, 3, 0, pm1, {0}},
    {"logistic_loss", "[2,3] large scores", f_logistic_loss, 2, {2, 2}, {{2, 3}, {2, 3}}, -40, 40,
     0, pm1, {0}},
    {"logistic_loss", "[4,1], labels need no grad", f_logistic_loss, 2, {2, 2}, {{4, 1}, {4, 1}},
     -3, 3, 2, pm1, {0}},
    {"logistic_loss", "g as score and label, [5]", f_logistic_self, 1, {1}, {{5}}, -2, 2, 0, NULL,
     {0}},
};
/* clang-format on */
const int tg_n_cases_loss = sizeof tg_cases_loss / sizeof tg_cases_loss[0];
