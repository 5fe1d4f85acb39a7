/* ops/cases_unary.c: self-check cases of the unary math ops (ops/cases.h). */
#include "cases.h"

#define PLAIN(NAME)                                                                                \
    static tg_tensor *f_##NAME(tg_tape *tp, tg_tensor *const *in, void *ctx)                       \
    {                                                                                              \
        (void)ctx;                                                                                 \
        return tg_case_dot(tp, tg_##NAME(tp, in[0]));                                              \
    }
/* The scalar attribute comes from the case's arg[0]. */
#define WITH_SCALAR(NAME)                                                                          \
    static tg_tensor *f_##NAME(tg_tape *tp, tg_tensor *const *in, void *ctx)                       \
    {                                                                                              \
        return tg_case_dot(tp, tg_##NAME(tp, in[0], ((const double *)ctx)[0]));                    \
    }
PLAIN(neg)
PLAIN(exp)
PLAIN(log)
PLAIN(sqrt)
PLAIN(abs)
PLAIN(square)
WITH_SCALAR(add_scalar)
WITH_SCALAR(mul_scalar)
WITH_SCALAR(pow_scalar)

/* abs: keep values away from 0, where it has a kink. */
static void away_from_zero(tg_tensor *const *in, const double *arg, tg_rng *rng)
{
    (void)arg, (void)rng;
    for (int64_t i = 0; i < tg_tensor_numel(in[0]); i++) {
        double v = tg_get(in[0], i);
        tg_set(in[0], i, v + (v < 0 ? -0.1 : 0.1));
    }
}

/* clang-format off */
const tg_op_case tg_cases_unary[] = {
    {"neg", "[3,4]", f_neg, 1, {2}, {{3, 4}}, 0, 0, 0, NULL, {0}},
    {"neg", "scalar []", f_neg, 1, {0}, {{0}}, 0, 0, 0, NULL, {0}},
    {"add_scalar", "[2,3,4] + 2.5", f_add_scalar, 1, {3}, {{2, 3, 4}}, 0, 0, 0, NULL, {2.5}},
    {"add_scalar", "[1] - 7", f_add_scalar, 1, {1}, {{1}}, 0, 0, 0, NULL, {-7}},
    {"mul_scalar", "[5] * -3", f_mul_scalar, 1, {1}, {{5}}, 0, 0, 0, NULL, {-3}},
    {"mul_scalar", "[2,2,2,2] * 0.5", f_mul_scalar, 1, {4}, {{2, 2, 2, 2}}, 0, 0, 0, NULL, {0.5}},
    {"pow_scalar", "[3,2] ^ 3 (negative x)", f_pow_scalar, 1, {2}, {{3, 2}}, -2, 2, 0, NULL, {3}},
    {"pow_scalar", "[4] ^ 0.5", f_pow_scalar, 1, {1}, {{4}}, 0.5, 2, 0, NULL, {0.5}},
    {"pow_scalar", "[2,3] ^ -1.5", f_pow_scalar, 1, {2}, {{2, 3}}, 0.5, 2, 0, NULL, {-1.5}},
    {"exp", "[3,4]", f_exp, 1, {2}, {{3, 4}}, -2, 2, 0, NULL, {0}},
    {"pow_scalar", "[2,2,3] ^ 2 (negative x)", f_pow_scalar, 1, {3}, {{2, 2, 3}}, -2, 2, 0,
     NULL, {2}},
    {"pow_scalar", "[5] ^ 1", f_pow_scalar, 1, {1}, {{5}}, 0, 0, 0, NULL, {1}},
    {"pow_scalar", "[2,3] ^ 0: gradient 0", f_pow_scalar, 1, {2}, {{2, 3}}, 0, 0, 0, NULL, {0}},
    {"pow_scalar", "[1] ^ -1", f_pow_scalar, 1, {1}, {{1}}, 0.5, 2, 0, NULL, {-1}},
    {"exp", "[1]", f_exp, 1, {1}, {{1}}, 0, 0, 0, NULL, {0}},
    {"exp", "4-D [2,1,3,2]", f_exp, 1, {4}, {{2, 1, 3, 2}}, -3, 3, 0, NULL, {0}},
    {"log", "[2,5]", f_log, 1, {2}, {{2, 5}}, 0.2, 3, 0, NULL, {0}},
    {"log", "[3,1,4] near 0", f_log, 1, {3}, {{3, 1, 4}}, 0.05, 0.5, 0, NULL, {0}},
    {"log", "scalar []", f_log, 1, {0}, {{0}}, 1, 5, 0, NULL, {0}},
    {"sqrt", "[3,3]", f_sqrt, 1, {2}, {{3, 3}}, 0.2, 4, 0, NULL, {0}},
    {"sqrt", "[1]", f_sqrt, 1, {1}, {{1}}, 1, 9, 0, NULL, {0}},
    {"abs", "[4,3] away from 0", f_abs, 1, {2}, {{4, 3}}, 0, 0, 0, away_from_zero, {0}},
    {"abs", "4-D [2,2,1,3] away from 0", f_abs, 1, {4}, {{2, 2, 1, 3}}, -3, 3, 0,
     away_from_zero, {0}},
    {"abs", "scalar [] away from 0", f_abs, 1, {0}, {{0}}, 0, 0, 0, away_from_zero, {0}},
    {"square", "[2,3,4]", f_square, 1, {3}, {{2, 3, 4}}, 0, 0, 0, NULL, {0}},
    {"square", "[7]", f_square, 1, {1}, {{7}}, -3, 3, 0, NULL, {0}},
};
/* clang-format on */
const int tg_n_cases_unary = sizeof tg_cases_unary / sizeof tg_cases_unary[0];
