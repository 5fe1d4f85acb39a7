/* ops/cases_shape.c: self-check cases of reshape, transpose, slice, concat (ops/cases.h). */
#include "cases.h"

/* arg: the target shape's rank, then up to 3 dimensions. */
static tg_tensor *f_reshape(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const double *a = ctx;
    int64_t s[3] = {(int64_t)a[1], (int64_t)a[2], (int64_t)a[3]};
    return tg_case_dot(tp, tg_reshape(tp, in[0], (int)a[0], s));
}

static tg_tensor *f_transpose(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const double *a = ctx;
    return tg_case_dot(tp, tg_transpose(tp, in[0], (int)a[0], (int)a[1]));
}

static tg_tensor *f_slice(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const double *a = ctx;
    return tg_case_dot(tp, tg_slice(tp, in[0], (int)a[0], (int64_t)a[1], (int64_t)a[2]));
}

/* arg[0] the axis; every input is joined. */
static tg_tensor *f_concat2(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    return tg_case_dot(tp, tg_concat(tp, 2, in, (int)((const double *)ctx)[0]));
}
static tg_tensor *f_concat3(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    return tg_case_dot(tp, tg_concat(tp, 3, in, (int)((const double *)ctx)[0]));
}
/* x joined with itself: fan-out through one node. */
static tg_tensor *f_concat_self(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    tg_tensor *xs[2] = {in[0], in[0]};
    return tg_case_dot(tp, tg_concat(tp, 2, xs, (int)((const double *)ctx)[0]));
}

/* clang-format off */
const tg_op_case tg_cases_shape[] = {
    {"reshape", "[3,4] to [2,6]", f_reshape, 1, {2}, {{3, 4}}, 0, 0, 0, NULL, {2, 2, 6}},
    {"reshape", "[2,3,4] to [4,-1]", f_reshape, 1, {3}, {{2, 3, 4}}, 0, 0, 0, NULL, {2, 4, -1}},
    {"reshape", "[6] to [1,2,3]", f_reshape, 1, {1}, {{6}}, 0, 0, 0, NULL, {3, 1, 2, 3}},
    {"reshape", "[1] to []", f_reshape, 1, {1}, {{1}}, 0, 0, 0, NULL, {0}},
    {"transpose", "[3,5] 0<->1", f_transpose, 1, {2}, {{3, 5}}, 0, 0, 0, NULL, {0, 1}},
    {"transpose", "[2,3,4] 0<->2", f_transpose, 1, {3}, {{2, 3, 4}}, 0, 0, 0, NULL, {0, 2}},
    {"transpose", "[2,3,4,2] -1<->1", f_transpose, 1, {4}, {{2, 3, 4, 2}}, 0, 0, 0, NULL, {-1, 1}},
    {"transpose", "[4,3] 1<->1 (identity)", f_transpose, 1, {2}, {{4, 3}}, 0, 0, 0, NULL, {1, 1}},
    {"slice", "[5,3] rows 1..4", f_slice, 1, {2}, {{5, 3}}, 0, 0, 0, NULL, {0, 1, 4}},
    {"slice", "[2,6,2] axis 1, -4..-1", f_slice, 1, {3}, {{2, 6, 2}}, 0, 0, 0, NULL, {1, -4, -1}},
    {"slice", "[3,4] last column", f_slice, 1, {2}, {{3, 4}}, 0, 0, 0, NULL, {-1, 3, 4}},
    {"concat", "[2,3] and [4,3] axis 0", f_concat2, 2, {2, 2}, {{2, 3}, {4, 3}}, 0, 0, 0, NULL,
     {0}},
    {"concat", "[2,1,2], [2,3,2], [2,2,2] axis 1", f_concat3, 3, {3, 3, 3},
     {{2, 1, 2}, {2, 3, 2}, {2, 2, 2}}, 0, 0, 0, NULL, {1}},
    {"concat", "[3,2] and [3,4] axis -1, second needs no grad", f_concat2, 2, {2, 2},
     {{3, 2}, {3, 4}}, 0, 0, 2, NULL, {-1}},
    {"concat", "x with itself [2,3] axis 1", f_concat_self, 1, {2}, {{2, 3}}, 0, 0, 0, NULL, {1}},
};
/* clang-format on */
const int tg_n_cases_shape = sizeof tg_cases_shape / sizeof tg_cases_shape[0];
