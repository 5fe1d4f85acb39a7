/* ops/cases_matmul.c: self-check cases of matmul and linear (ops/cases.h). */
#include "cases.h"

static tg_tensor *f_matmul(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    return tg_case_dot(tp, tg_matmul(tp, in[0], in[1]));
}

/* a used on both sides: a · aᵀ-like fan-out through one node (a [3,3]). */
static tg_tensor *f_matmul_self(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    return tg_case_dot(tp, tg_matmul(tp, in[0], in[0]));
}

/* arg[0]: bit 0 transposes a, bit 1 b */
static tg_tensor *f_matmul_t(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const double *arg = ctx;
    int f = (int)arg[0];
    return tg_case_dot(tp, tg_matmul_t(tp, in[0], in[1], f & 1, f & 2));
}

/* aᵀ·a and a·aᵀ: one input on both sides, transposed on one */
static tg_tensor *f_matmul_t_self(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const double *arg = ctx;
    int f = (int)arg[0];
    return tg_case_dot(tp, tg_matmul_t(tp, in[0], in[0], f & 1, f & 2));
}

static tg_tensor *f_linear(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    return tg_case_dot(tp, tg_linear(tp, in[0], in[1], in[2]));
}

/* arg[0] the tg_act, arg[1] alpha */
static tg_tensor *f_linear_act(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const double *arg = ctx;
    return tg_case_dot(tp, tg_linear_act(tp, in[0], in[1], in[2], (tg_act)arg[0], arg[1]));
}

/* clang-format off */
const tg_op_case tg_cases_matmul[] = {
    {"matmul", "[3,4] x [4,5]", f_matmul, 2, {2, 2}, {{3, 4}, {4, 5}}, 0, 0, 0, NULL, {0}},
    {"matmul", "[1,7] x [7,1]", f_matmul, 2, {2, 2}, {{1, 7}, {7, 1}}, 0, 0, 0, NULL, {0}},
    {"matmul", "[5,2] x [2,3], b needs no grad", f_matmul, 2, {2, 2}, {{5, 2}, {2, 3}}, 0, 0,
     2, NULL, {0}},
    {"matmul", "a x a, [3,3]", f_matmul_self, 1, {2}, {{3, 3}}, 0, 0, 0, NULL, {0}},
    {"matmul", "batched [2,3,4] x [2,4,2]", f_matmul, 2, {3, 3}, {{2, 3, 4}, {2, 4, 2}}, 0, 0,
     0, NULL, {0}},
    {"matmul", "batched [3,2,4] x shared [4,3]", f_matmul, 2, {3, 2}, {{3, 2, 4}, {4, 3}}, 0,
     0, 0, NULL, {0}},
    {"matmul", "shared [2,3] x batched [2,3,4]", f_matmul, 2, {2, 3}, {{2, 3}, {2, 3, 4}}, 0,
     0, 0, NULL, {0}},
    {"matmul", "batched [2,3,2] x batched [2,2,3], a needs no grad", f_matmul, 2, {3, 3},
     {{2, 3, 2}, {2, 2, 3}}, 0, 0, 1, NULL, {0}},
    {"matmul_t", "[3,4] x [4,5]", f_matmul_t, 2, {2, 2}, {{3, 4}, {4, 5}}, 0, 0, 0, NULL, {0}},
    {"matmul_t", "[4,3]ᵀ x [4,5]", f_matmul_t, 2, {2, 2}, {{4, 3}, {4, 5}}, 0, 0, 0, NULL, {1}},
    {"matmul_t", "[3,4] x [5,4]ᵀ", f_matmul_t, 2, {2, 2}, {{3, 4}, {5, 4}}, 0, 0, 0, NULL, {2}},
    {"matmul_t", "[4,3]ᵀ x [5,4]ᵀ", f_matmul_t, 2, {2, 2}, {{4, 3}, {5, 4}}, 0, 0, 0, NULL, {3}},
    {"matmul_t", "[2,6]ᵀ x [2,1], b needs no grad", f_matmul_t, 2, {2, 2}, {{2, 6}, {2, 1}}, 0,
     0, 2, NULL, {1}},
    {"matmul_t", "aᵀ x a, [3,2]", f_matmul_t_self, 1, {2}, {{3, 2}}, 0, 0, 0, NULL, {1}},
    {"matmul_t", "a x aᵀ, [2,3]", f_matmul_t_self, 1, {2}, {{2, 3}}, 0, 0, 0, NULL, {2}},
    {"linear", "[4,3] x [3,5] + [5]", f_linear, 3, {2, 2, 1}, {{4, 3}, {3, 5}, {5}}, 0, 0, 0,
     NULL, {0}},
    {"linear", "[2,3,4] x [4,2] + [2] (leading dims folded)", f_linear, 3, {3, 2, 1},
     {{2, 3, 4}, {4, 2}, {2}}, 0, 0, 0, NULL, {0}},
    {"linear", "[1,6] x [6,1] + [1], x needs no grad", f_linear, 3, {2, 2, 1},
     {{1, 6}, {6, 1}, {1}}, 0, 0, 1, NULL, {0}},
    {"linear", "[3] x [3,2] + [2] (1-D x)", f_linear, 3, {1, 2, 1}, {{3}, {3, 2}, {2}}, 0, 0,
     0, NULL, {0}},
    {"linear_act", "relu, [4,3] x [3,5] + [5]", f_linear_act, 3, {2, 2, 1},
     {{4, 3}, {3, 5}, {5}}, 0, 0, 0, NULL, {TG_ACT_RELU}},
    {"linear_act", "leaky_relu 0.1, [2,3,4] x [4,3] + [3]", f_linear_act, 3, {3, 2, 1},
     {{2, 3, 4}, {4, 3}, {3}}, 0, 0, 0, NULL, {TG_ACT_LEAKY_RELU, 0.1}},
    {"linear_act", "tanh, [5,4] x [4,2] + [2]", f_linear_act, 3, {2, 2, 1},
     {{5, 4}, {4, 2}, {2}}, 0, 0, 0, NULL, {TG_ACT_TANH}},
    {"linear_act", "sigmoid, [3,6] x [6,4] + [4], x needs no grad", f_linear_act, 3, {2, 2, 1},
     {{3, 6}, {6, 4}, {4}}, 0, 0, 1, NULL, {TG_ACT_SIGMOID}},
    {"linear_act", "identity, [4,2] x [2,3] + [3], b needs no grad", f_linear_act, 3,
     {2, 2, 1}, {{4, 2}, {2, 3}, {3}}, 0, 0, 4, NULL, {TG_ACT_IDENTITY}},
    {"linear_act", "leaky_relu 0.2, [3] x [3,4] + [4] (1-D x)", f_linear_act, 3, {1, 2, 1},
     {{3}, {3, 4}, {4}}, 0, 0, 0, NULL, {TG_ACT_LEAKY_RELU, 0.2}},
    {"linear_act", "sigmoid, [2,2,3] x [3,2] + [2], w needs no grad", f_linear_act, 3,
     {3, 2, 1}, {{2, 2, 3}, {3, 2}, {2}}, 0, 0, 2, NULL, {TG_ACT_SIGMOID}},
    {"linear_act", "tanh, [40,3] x [3,40] + [40]", f_linear_act,
     3, {2, 2, 1}, {{40, 3}, {3, 40}, {40}}, 0, 0, 0, NULL, {TG_ACT_TANH}},
};
/* clang-format on */
const int tg_n_cases_matmul = sizeof tg_cases_matmul / sizeof tg_cases_matmul[0];
