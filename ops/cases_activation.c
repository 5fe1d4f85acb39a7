/* ops/cases_activation.c: self-check cases of the activations (ops/cases.h). */
#include "cases.h"

#define ACT1(NAME)                                                                                 \
    static tg_tensor *f_##NAME(tg_tape *tp, tg_tensor *const *in, void *ctx)                       \
    {                                                                                              \
        (void)ctx;                                                                                 \
        return tg_case_dot(tp, tg_##NAME(tp, in[0]));                                              \
    }
ACT1(sigmoid)
ACT1(tanh)
ACT1(relu)
ACT1(softplus)
ACT1(step)
ACT1(sign)

static tg_tensor *f_leaky_relu(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    return tg_case_dot(tp, tg_leaky_relu(tp, in[0], ((const double *)ctx)[0]));
}
static tg_tensor *f_elu(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    return tg_case_dot(tp, tg_elu(tp, in[0], ((const double *)ctx)[0]));
}
static tg_tensor *f_prelu(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    return tg_case_dot(tp, tg_prelu(tp, in[0], in[1]));
}
static tg_tensor *f_softmax(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    return tg_case_dot(tp, tg_softmax(tp, in[0], (int)((const double *)ctx)[0]));
}
static tg_tensor *f_log_softmax(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    return tg_case_dot(tp, tg_log_softmax(tp, in[0], (int)((const double *)ctx)[0]));
}

/* Kinked activations: move values at least 0.1 away from 0. */
static void away_from_zero(tg_tensor *const *in, const double *arg, tg_rng *rng)
{
    (void)arg, (void)rng;
    for (int64_t i = 0; i < tg_tensor_numel(in[0]); i++) {
        double v = tg_get(in[0], i);
        tg_set(in[0], i, v + (v < 0 ? -0.1 : 0.1));
    }
}

/* clang-format off */
const tg_op_case tg_cases_activation[] = {
    {"sigmoid", "[3,4]", f_sigmoid, 1, {2}, {{3, 4}}, -4, 4, 0, NULL, {0}},
    {"sigmoid", "[2,2,3] large |x|", f_sigmoid, 1, {3}, {{2, 2, 3}}, -12, 12, 0, NULL, {0}},
    {"sigmoid", "[1]", f_sigmoid, 1, {1}, {{1}}, 0, 0, 0, NULL, {0}},
    {"tanh", "[4,3]", f_tanh, 1, {2}, {{4, 3}}, -2, 2, 0, NULL, {0}},
    {"tanh", "[1]", f_tanh, 1, {1}, {{1}}, 0, 0, 0, NULL, {0}},
    {"tanh", "[2,3,4] saturating", f_tanh, 1, {3}, {{2, 3, 4}}, -5, 5, 0, NULL, {0}},
    {"relu", "[5,3] away from 0", f_relu, 1, {2}, {{5, 3}}, 0, 0, 0, away_from_zero, {0}},
    {"relu", "[2,3,2,2] away from 0", f_relu, 1, {4}, {{2, 3, 2, 2}}, 0, 0, 0, away_from_zero, {0}},
    {"relu", "[] scalar away from 0", f_relu, 1, {0}, {{0}}, 0, 0, 0, away_from_zero, {0}},
    {"leaky_relu", "[4,4] alpha 0.01", f_leaky_relu, 1, {2}, {{4, 4}}, 0, 0, 0, away_from_zero,
     {0.01}},
    {"leaky_relu", "[6] alpha 0.3", f_leaky_relu, 1, {1}, {{6}}, 0, 0, 0, away_from_zero, {0.3}},
    {"leaky_relu", "[2,1,3] alpha -0.5", f_leaky_relu, 1, {3}, {{2, 1, 3}}, 0, 0, 0,
     away_from_zero, {-0.5}},
    {"elu", "[3,5] alpha 1", f_elu, 1, {2}, {{3, 5}}, -3, 3, 0, away_from_zero, {1}},
    {"elu", "[2,3] alpha 0.5", f_elu, 1, {2}, {{2, 3}}, -3, 3, 0, away_from_zero, {0.5}},
    {"elu", "[2,2,2,2] alpha 2, very negative", f_elu, 1, {4}, {{2, 2, 2, 2}}, -9, 1, 0,
     away_from_zero, {2}},
    {"softplus", "[3,4]", f_softplus, 1, {2}, {{3, 4}}, -5, 5, 0, NULL, {0}},
    {"softplus", "[5] large |x|", f_softplus, 1, {1}, {{5}}, -30, 30, 0, NULL, {0}},
    {"softplus", "[2,1,3,2]", f_softplus, 1, {4}, {{2, 1, 3, 2}}, -2, 2, 0, NULL, {0}},
    {"prelu", "[4,3] alpha [3]", f_prelu, 2, {2, 1}, {{4, 3}, {3}}, 0, 0, 0, away_from_zero, {0}},
    {"prelu", "[2,3,2] alpha [1]", f_prelu, 2, {3, 1}, {{2, 3, 2}, {1}}, 0, 0, 0, away_from_zero,
     {0}},
    {"prelu", "[5,2] alpha [2] needs no grad", f_prelu, 2, {2, 1}, {{5, 2}, {2}}, 0, 0, 2,
     away_from_zero, {0}},
    {"prelu", "[3,2] needs no grad, alpha [2]", f_prelu, 2, {2, 1}, {{3, 2}, {2}}, 0, 0, 1,
     away_from_zero, {0}},
    {"prelu", "[2,2,2,3] alpha [3]", f_prelu, 2, {4, 1}, {{2, 2, 2, 3}, {3}}, 0, 0, 0,
     away_from_zero, {0}},
    {"prelu", "[] alpha [1]", f_prelu, 2, {0, 1}, {{0}, {1}}, 0, 0, 0, away_from_zero, {0}},
    {"prelu", "[7] alpha [7]", f_prelu, 2, {1, 1}, {{7}, {7}}, 0, 0, 0, away_from_zero, {0}},
    {"step", "[3,4] away from 0 (gradient 0)", f_step, 1, {2}, {{3, 4}}, 0, 0, 0, away_from_zero,
     {0}},
    {"step", "[2,3,2] away from 0 (gradient 0)", f_step, 1, {3}, {{2, 3, 2}}, 0, 0, 0,
     away_from_zero, {0}},
    {"sign", "[4,2] away from 0 (gradient 0)", f_sign, 1, {2}, {{4, 2}}, 0, 0, 0, away_from_zero,
     {0}},
    {"sign", "[1] away from 0 (gradient 0)", f_sign, 1, {1}, {{1}}, 0, 0, 0, away_from_zero, {0}},
    {"softmax", "[3,5] axis -1", f_softmax, 1, {2}, {{3, 5}}, -3, 3, 0, NULL, {-1}},
    {"softmax", "[4,3] axis 0", f_softmax, 1, {2}, {{4, 3}}, -3, 3, 0, NULL, {0}},
    {"softmax", "[2,3,4] axis 0", f_softmax, 1, {3}, {{2, 3, 4}}, -3, 3, 0, NULL, {0}},
    {"softmax", "[2,3,4] axis 1", f_softmax, 1, {3}, {{2, 3, 4}}, -3, 3, 0, NULL, {1}},
    {"softmax", "[2,3,4] axis 2", f_softmax, 1, {3}, {{2, 3, 4}}, -3, 3, 0, NULL, {2}},
    {"softmax", "[2,3,2,2] axis -3", f_softmax, 1, {4}, {{2, 3, 2, 2}}, -3, 3, 0, NULL, {-3}},
    {"softmax", "[3,4] wide logits", f_softmax, 1, {2}, {{3, 4}}, -15, 15, 0, NULL, {1}},
    {"softmax", "[3,1] axis 1 (one class)", f_softmax, 1, {2}, {{3, 1}}, 0, 0, 0, NULL, {1}},
    {"softmax", "[1,1]", f_softmax, 1, {2}, {{1, 1}}, 0, 0, 0, NULL, {1}},
    {"log_softmax", "[3,5] axis 1", f_log_softmax, 1, {2}, {{3, 5}}, -3, 3, 0, NULL, {1}},
    {"log_softmax", "[4,3] axis 0", f_log_softmax, 1, {2}, {{4, 3}}, -3, 3, 0, NULL, {0}},
    {"log_softmax", "[2,3,4] axis -1", f_log_softmax, 1, {3}, {{2, 3, 4}}, -3, 3, 0, NULL, {-1}},
    {"log_softmax", "[2,3,4] axis 0", f_log_softmax, 1, {3}, {{2, 3, 4}}, -3, 3, 0, NULL, {0}},
    {"log_softmax", "[2,3,2,2] axis 2", f_log_softmax, 1, {4}, {{2, 3, 2, 2}}, -3, 3, 0, NULL, {2}},
    {"log_softmax", "[6] axis 0", f_log_softmax, 1, {1}, {{6}}, -3, 3, 0, NULL, {0}},
    {"log_softmax", "[2,4] wide logits", f_log_softmax, 1, {2}, {{2, 4}}, -15, 15, 0, NULL, {-1}},
};
/* clang-format on */
const int tg_n_cases_activation = sizeof tg_cases_activation / sizeof tg_cases_activation[0];
