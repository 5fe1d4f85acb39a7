/* ops/cases_norm.c: self-check cases of dropout and batch_norm (ops/cases.h). */
#include "cases.h"

/* arg[0] = p. tg_gradcheck restores the tape seed (opts.seed) before every evaluation, and
 * the f32 and f64 passes both start from a fresh tape's seed, so every evaluation draws the
 * same mask and the function is deterministic. */
static tg_tensor *f_dropout(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    return tg_case_dot(tp, tg_dropout(tp, in[0], ((const double *)ctx)[0], true));
}

/* Training mode, batch statistics, no running statistics: gradcheck evaluates the function
 * many times, and each training forward would update them. */
static tg_tensor *f_bn_train(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    return tg_case_dot(tp, tg_batch_norm(tp, in[0], in[1], in[2], NULL, NULL, 0.1, 1e-5, true));
}

/* Training mode with running statistics in[3], in[4] (no gradient). Each evaluation updates
 * them (gradcheck works on copies), but a training output does not read them, so the
 * function stays the same function of x, γ, β. */
static tg_tensor *f_bn_train_running(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    return tg_case_dot(tp, tg_batch_norm(tp, in[0], in[1], in[2], in[3], in[4], 0.1, 1e-5, true));
}

/* Eval mode with fixed running statistics in[3], in[4] (no gradient). */
static tg_tensor *f_bn_eval(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    return tg_case_dot(tp, tg_batch_norm(tp, in[0], in[1], in[2], in[3], in[4], 0.1, 1e-5, false));
}

/* Two batch norms in series, the second with γ and β swapped: x's gradient passes through
 * both nodes, and γ and β each get gradients from two uses. */
static tg_tensor *f_bn_twice(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    tg_tensor *h = tg_batch_norm(tp, in[0], in[1], in[2], NULL, NULL, 0.1, 1e-5, true);
    return tg_case_dot(tp, tg_batch_norm(tp, h, in[2], in[1], NULL, NULL, 0.1, 1e-3, true));
}

/* A positive running variance (0.5..1.5) in in[4]. */
static void positive_var(tg_tensor *const *in, const double *arg, tg_rng *rng)
{
    (void)arg;
    for (int64_t i = 0; i < tg_tensor_numel(in[4]); i++)
        tg_set(in[4], i, 0.5 + tg_rng_uniform(rng));
}

/* Channels with a clear spread: x scaled up and shifted per channel, so σ² is far from 0
 * (where the finite differences of 1/sqrt(σ² + eps) would be least accurate). */
static void spread_x(tg_tensor *const *in, const double *arg, tg_rng *rng)
{
    (void)arg, (void)rng;
    for (int64_t i = 0; i < tg_tensor_numel(in[0]); i++)
        tg_set(in[0], i, 3.0 * tg_get(in[0], i) + (double)(i % 5));
}

/* clang-format off */
const tg_op_case tg_cases_norm[] = {
    {"dropout", "[6,5] p 0.3", f_dropout, 1, {2}, {{6, 5}}, 0, 0, 0, NULL, {0.3}},
    {"dropout", "[2,3,4] p 0.5", f_dropout, 1, {3}, {{2, 3, 4}}, 0, 0, 0, NULL, {0.5}},
    {"dropout", "[2,2,3,2] p 0.9", f_dropout, 1, {4}, {{2, 2, 3, 2}}, 0, 0, 0, NULL, {0.9}},
    {"dropout", "[1] p 0.2", f_dropout, 1, {1}, {{1}}, 0, 0, 0, NULL, {0.2}},
    {"dropout", "0-d p 0.4", f_dropout, 1, {0}, {{0}}, 0, 0, 0, NULL, {0.4}},
    {"batch_norm", "training [6,3]", f_bn_train, 3, {2, 1, 1}, {{6, 3}, {3}, {3}}, 0, 0, 0,
     NULL, {0}},
    {"batch_norm", "training [2,1] (two values, one channel)", f_bn_train, 3, {2, 1, 1},
     {{2, 1}, {1}, {1}}, 0, 0, 0, NULL, {0}},
    {"batch_norm", "training [4,2,3] (features on axis 1)", f_bn_train, 3, {3, 1, 1},
     {{4, 2, 3}, {2}, {2}}, 0, 0, 0, NULL, {0}},
    {"batch_norm", "training [2,3,2,2] (4-D)", f_bn_train, 3, {4, 1, 1},
     {{2, 3, 2, 2}, {3}, {3}}, 0, 0, 0, NULL, {0}},
    {"batch_norm", "training [1,2,5] (N = 1, spatial values)", f_bn_train, 3, {3, 1, 1},
     {{1, 2, 5}, {2}, {2}}, 0, 0, 0, NULL, {0}},
    {"batch_norm", "training [5,4] with spread and offset channels", f_bn_train, 3, {2, 1, 1},
     {{5, 4}, {4}, {4}}, 0, 0, 0, spread_x, {0}},
    {"batch_norm", "training [2,4], gamma needs no grad", f_bn_train, 3, {2, 1, 1},
     {{2, 4}, {4}, {4}}, 0, 0, 2, NULL, {0}},
    {"batch_norm", "training [3,4], only gamma and beta need grads", f_bn_train, 3, {2, 1, 1},
     {{3, 4}, {4}, {4}}, 0, 0, 1, NULL, {0}},
    {"batch_norm", "training [4,3] updating running statistics", f_bn_train_running, 5,
     {2, 1, 1, 1, 1}, {{4, 3}, {3}, {3}, {3}, {3}}, 0, 0, 8 | 16, positive_var, {0}},
    {"batch_norm", "training, two in series [4,3]", f_bn_twice, 3, {2, 1, 1},
     {{4, 3}, {3}, {3}}, 0, 0, 0, NULL, {0}},
    {"batch_norm", "eval [5,3] with running statistics", f_bn_eval, 5, {2, 1, 1, 1, 1},
     {{5, 3}, {3}, {3}, {3}, {3}}, 0, 0, 8 | 16, positive_var, {0}},
    {"batch_norm", "eval [2,2,3] (features on axis 1)", f_bn_eval, 5, {3, 1, 1, 1, 1},
     {{2, 2, 3}, {2}, {2}, {2}, {2}}, 0, 0, 8 | 16, positive_var, {0}},
    {"batch_norm", "eval [3,2,2], only gamma and beta need grads", f_bn_eval, 5,
     {3, 1, 1, 1, 1}, {{3, 2, 2}, {2}, {2}, {2}, {2}}, 0, 0, 1 | 8 | 16, positive_var, {0}},
    {"batch_norm", "eval [4,3], only x needs a grad", f_bn_eval, 5, {2, 1, 1, 1, 1},
     {{4, 3}, {3}, {3}, {3}, {3}}, 0, 0, 2 | 4 | 8 | 16, positive_var, {0}},
    {"batch_norm", "eval [1,4] (N = 1 is fine in eval)", f_bn_eval, 5, {2, 1, 1, 1, 1},
     {{1, 4}, {4}, {4}, {4}, {4}}, 0, 0, 8 | 16, positive_var, {0}},
};
/* clang-format on */
const int tg_n_cases_norm = sizeof tg_cases_norm / sizeof tg_cases_norm[0];
