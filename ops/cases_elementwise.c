/* ops/cases_elementwise.c: self-check cases of add, sub, mul, div (ops/cases.h). The shapes
 * reach every layout of ops/elementwise.c: same shape, a scalar on either side, a row
 * (suffix) on either side, and the general strided path (columns, both operands
 * broadcast, up to 6-D), each with both gradients and with one input left out. */
#include "cases.h"

#define BIN(NAME)                                                                                  \
    static tg_tensor *f_##NAME(tg_tape *tp, tg_tensor *const *in, void *ctx)                       \
    {                                                                                              \
        (void)ctx;                                                                                 \
        return tg_case_dot(tp, tg_##NAME(tp, in[0], in[1]));                                       \
    }                                                                                              \
    static tg_tensor *f_##NAME##_self(tg_tape *tp, tg_tensor *const *in, void *ctx)                \
    {                                                                                              \
        (void)ctx;                                                                                 \
        return tg_case_dot(tp, tg_##NAME(tp, in[0], in[0]));                                       \
    }
BIN(add)
BIN(sub)
BIN(mul)
BIN(div)

/* div: b's elements alternate in sign, |b| in [0.5, 2), so both branches of 1/b are seen. */
static void signed_divisor(tg_tensor *const *in, const double *arg, tg_rng *rng)
{
    (void)arg, (void)rng;
    for (int64_t i = 1; i < tg_tensor_numel(in[1]); i += 2) tg_set(in[1], i, -tg_get(in[1], i));
}

/* A case of op NAME on shapes SA and SB, written in parentheses, (2, 3), since a comma
 * inside braces would split a macro argument. */
#define UNPAREN(...) __VA_ARGS__
/* clang-format off */
#define ROW(NAME, WHAT, NA, NB, SA, SB, LO, HI, NOGRAD)                                      \
    {#NAME, WHAT, f_##NAME, 2, {NA, NB}, {{UNPAREN SA}, {UNPAREN SB}}, LO, HI, NOGRAD, NULL, \
     {0}}
/* Every family of shapes for op NAME; div keeps its divisor away from 0 with the range. */
#define SHAPES(NAME, LO, HI)                                                                 \
    ROW(NAME, "same shape [3,4]", 2, 2, (3, 4), (3, 4), LO, HI, 0),                          \
    ROW(NAME, "scalars [] and []", 0, 0, (0), (0), LO, HI, 0),                               \
    ROW(NAME, "[2,3,2,2] and scalar []", 4, 0, (2, 3, 2, 2), (0), LO, HI, 0),                \
    ROW(NAME, "[1] and [2,5]: scalar a", 1, 2, (1), (2, 5), LO, HI, 0),                      \
    ROW(NAME, "[1] and [5], a needs no grad", 1, 1, (1), (5), LO, HI, 1),                    \
    ROW(NAME, "[2,3] and row [3]", 2, 1, (2, 3), (3), LO, HI, 0),                            \
    ROW(NAME, "[3] and [1,3]: same count, one more axis", 1, 2, (3), (1, 3), LO, HI, 0),      \
    ROW(NAME, "[2,3,4] and [1,3,4]: suffix b", 3, 3, (2, 3, 4), (1, 3, 4), LO, HI, 0),       \
    ROW(NAME, "row [4] and [3,2,4]: suffix a", 1, 3, (4), (3, 2, 4), LO, HI, 0),             \
    ROW(NAME, "[3,5] and row [5], b needs no grad", 2, 1, (3, 5), (5), LO, HI, 2),           \
    ROW(NAME, "column [4,1] and [4,3]", 2, 2, (4, 1), (4, 3), LO, HI, 0),                    \
    ROW(NAME, "[2,1,3] and [4,1]: both broadcast", 3, 2, (2, 1, 3), (4, 1), LO, HI, 0),      \
    ROW(NAME, "[2,3,4] and [1,3,1]: middle axis", 3, 3, (2, 3, 4), (1, 3, 1), LO, HI, 0),   \
    ROW(NAME, "6-D [2,1,2,1,1,3] and 5-D [2,1,3,1,3]", 6, 5, (2, 1, 2, 1, 1, 3),             \
        (2, 1, 3, 1, 3), LO, HI, 0),                                                         \
    {#NAME, "x with itself, [3,2]", f_##NAME##_self, 1, {2}, {{3, 2}}, LO, HI, 0, NULL, {0}}

const tg_op_case tg_cases_elementwise[] = {
    SHAPES(add, -1, 1),
    SHAPES(sub, -1, 1),
    SHAPES(mul, -1, 1),
    SHAPES(div, 0.5, 2),
    {"div", "[3,4] / row [4] of both signs", f_div, 2, {2, 1}, {{3, 4}, {4}}, 0.5, 2, 0,
     signed_divisor, {0}},
    {"div", "[2,3] / column [2,1] of both signs", f_div, 2, {2, 2}, {{2, 3}, {2, 1}}, 0.5, 2,
     0, signed_divisor, {0}},
};
/* clang-format on */
const int tg_n_cases_elementwise = sizeof tg_cases_elementwise / sizeof tg_cases_elementwise[0];
