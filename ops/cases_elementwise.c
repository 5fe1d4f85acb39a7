/* ops/cases_elementwise.c: self-check cases of add, sub, mul, div (ops/cases.h). */
#include "cases.h"

#define BIN(NAME)                                                                            \
    static tg_tensor *f_##NAME(tg_tape *tp, tg_tensor *const *in, void *ctx)                 \
    {                                                                                        \
        (void)ctx;                                                                           \
        return tg_case_dot(tp, tg_##NAME(tp, in[0], in[1]));                                 \
    }
BIN(add)
BIN(sub)
BIN(mul)
BIN(div)

/* x op x: the same tensor as both inputs. */
static tg_tensor *f_mul_self(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    return tg_case_dot(tp, tg_mul(tp, in[0], in[0]));
}

/* Every family of shapes for op NAME; div keeps its divisor away from 0 with the range. */
#define SHAPES(NAME, LO, HI)                                                                 \
    {#NAME, "same shape [3,4]", f_##NAME, 2, {2, 2}, {{3, 4}, {3, 4}}, LO, HI, 0, NULL, {0}}, \
    {#NAME, "[2,3] and row [3]", f_##NAME, 2, {2, 1}, {{2, 3}, {3}}, LO, HI, 0, NULL, {0}},   \
    {#NAME, "column [4,1] and [4,3]", f_##NAME, 2, {2, 2}, {{4, 1}, {4, 3}}, LO, HI, 0, NULL, {0}}, \
    {#NAME, "[2,1,3] and [4,1]: both broadcast", f_##NAME, 2, {3, 2}, {{2, 1, 3}, {4, 1}}, LO, \
     HI, 0, NULL, {0}},                                                                      \
    {#NAME, "[2,3,2,2] and scalar []", f_##NAME, 2, {4, 0}, {{2, 3, 2, 2}, {0}}, LO, HI, 0, NULL, \
     {0}},                                                                                   \
    {#NAME, "[1] and [5], a needs no grad", f_##NAME, 2, {1, 1}, {{1}, {5}}, LO, HI, 1, NULL, {0}}

const tg_op_case tg_cases_elementwise[] = {
    SHAPES(add, -1, 1),
    SHAPES(sub, -1, 1),
    SHAPES(mul, -1, 1),
    SHAPES(div, 0.5, 2),
    {"mul", "x * x, [3,2]", f_mul_self, 1, {2}, {{3, 2}}, 0, 0, 0, NULL, {0}},
};
const int tg_n_cases_elementwise = sizeof tg_cases_elementwise / sizeof tg_cases_elementwise[0];
