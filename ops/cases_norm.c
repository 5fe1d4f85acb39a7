/* ops/cases_norm.c: self-check cases of dropout and batch_norm (ops/cases.h). */
#include "cases.h"

/* arg[0] = p. The gradient check restores the tape seed before every evaluation, so every
 * evaluation draws the same mask. */
static tg_tensor *f_dropout(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    return tg_case_dot(tp, tg_dropout(tp, in[0], ((const double *)ctx)[0], true));
}

/* Training mode with the batch statistics; no running statistics, since gradcheck calls
 * the function many times and would update them on every call. */
static tg_tensor *f_bn_train(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    return tg_case_dot(tp, tg_batch_norm(tp, in[0], in[1], in[2], NULL, NULL, 0.1, 1e-5, true));
}

/* Eval mode with fixed running statistics in[3], in[4] (no gradient). */
static tg_tensor *f_bn_eval(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    return tg_case_dot(tp, tg_batch_norm(tp, in[0], in[1], in[2], in[3], in[4], 0.1, 1e-5, false));
}

static void positive_var(tg_tensor *const *in, const double *arg, tg_rng *rng)
{
    (void)arg;
    for (int64_t i = 0; i < tg_tensor_numel(in[4]); i++) tg_set(in[4], i, 0.5 + tg_rng_uniform(rng));
}

const tg_op_case tg_cases_norm[] = {
    {"dropout", "[6,5] p 0.3", f_dropout, 1, {2}, {{6, 5}}, 0, 0, 0, NULL, {0.3}},
    {"dropout", "[2,3,4] p 0.5", f_dropout, 1, {3}, {{2, 3, 4}}, 0, 0, 0, NULL, {0.5}},
    {"batch_norm", "training [6,3]", f_bn_train, 3, {2, 1, 1}, {{6, 3}, {3}, {3}}, 0, 0, 0, NULL, {0}},
    {"batch_norm", "training [4,2,3] (features on axis 1)", f_bn_train, 3, {3, 1, 1},
     {{4, 2, 3}, {2}, {2}}, 0, 0, 0, NULL, {0}},
    {"batch_norm", "training [2,4], gamma needs no grad", f_bn_train, 3, {2, 1, 1},
     {{2, 4}, {4}, {4}}, 0, 0, 2, NULL, {0}},
    {"batch_norm", "eval [5,3] with running statistics", f_bn_eval, 5, {2, 1, 1, 1, 1},
     {{5, 3}, {3}, {3}, {3}, {3}}, 0, 0, 8 | 16, positive_var, {0}},
};
const int tg_n_cases_norm = sizeof tg_cases_norm / sizeof tg_cases_norm[0];
