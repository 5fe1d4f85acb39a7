/* ops/cases_shape.c: self-check cases of reshape, transpose, slice, concat, pad, broadcast_to
 * and sum_to (ops/cases.h). */
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

/* broadcast_to and sum_to: arg[0] picks the target shape of TARGETS. */
static const struct {
    int nd;
    int64_t s[4];
} TARGETS[] = {
    {2, {4, 3}}, {3, {2, 4, 3}}, {2, {2, 3}}, {3, {2, 1, 3}},    {0, {0}},       {4, {3, 2, 2, 4}},
    {1, {3}},    {2, {1, 3}},    {2, {2, 1}}, {4, {3, 1, 2, 1}}, {3, {1, 1, 1}},
};
static tg_tensor *f_broadcast_to(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    int t = (int)((const double *)ctx)[0];
    return tg_case_dot(tp, tg_broadcast_to(tp, in[0], TARGETS[t].nd, TARGETS[t].s));
}
static tg_tensor *f_sum_to(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    int t = (int)((const double *)ctx)[0];
    return tg_case_dot(tp, tg_sum_to(tp, in[0], TARGETS[t].nd, TARGETS[t].s));
}

/* pad: arg[0] picks before and after of PADS, arg[1] is the value. */
static const int64_t PADS[][2][4] = {
    {{0, 1}, {0, 2}},       /* the last axis */
    {{2, 0}, {1, 0}},       /* the first */
    {{0, 1, 0}, {0, 2, 0}}, /* the middle one */
    {{1, 2}, {2, 1}},       /* every axis */
    {{0, 0}, {0, 0}},       /* none: a copy */
    {{3}, {0}},             /* before only */
    {{1, 0, 2}, {0, 3, 1}}, /* every axis of three, some only on one side */
};
static tg_tensor *f_pad(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const double *a = ctx;
    return tg_case_dot(tp, tg_pad(tp, in[0], PADS[(int)a[0]][0], PADS[(int)a[0]][1], a[1]));
}
/* a 0-d x: NULL sizes, a copy */
static tg_tensor *f_pad0(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    return tg_case_dot(tp, tg_pad(tp, in[0], NULL, NULL, ((const double *)ctx)[1]));
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
    {"pad", "[3,4] last axis 1 before, 2 after, value 0.5", f_pad, 1, {2}, {{3, 4}}, 0, 0, 0, NULL,
     {0, 0.5}},
    {"pad", "[2,3] first axis", f_pad, 1, {2}, {{2, 3}}, 0, 0, 0, NULL, {1, -2}},
    {"pad", "[2,3,2] middle axis", f_pad, 1, {3}, {{2, 3, 2}}, 0, 0, 0, NULL, {2, 0}},
    {"pad", "[2,3] every axis", f_pad, 1, {2}, {{2, 3}}, 0, 0, 0, NULL, {3, 1}},
    {"pad", "[2,2] zero pads (a copy)", f_pad, 1, {2}, {{2, 2}}, 0, 0, 0, NULL, {4, 7}},
    {"pad", "[3] 3 before", f_pad, 1, {1}, {{3}}, 0, 0, 0, NULL, {5, 0}},
    {"pad", "[2,2,3] every axis, one-sided too", f_pad, 1, {3}, {{2, 2, 3}}, 0, 0, 0, NULL,
     {6, 0.25}},
    {"pad", "[] (a copy)", f_pad0, 1, {0}, {{0}}, 0, 0, 0, NULL, {0, 1}},
    {"broadcast_to", "[3] to [4,3] (suffix)", f_broadcast_to, 1, {1}, {{3}}, 0, 0, 0, NULL, {0}},
    {"broadcast_to", "[1,3] to [2,4,3] (suffix, rank grows)", f_broadcast_to, 1, {2}, {{1, 3}},
     0, 0, 0, NULL, {1}},
    {"broadcast_to", "[2,1] to [2,3] (leading block)", f_broadcast_to, 1, {2}, {{2, 1}}, 0, 0, 0,
     NULL, {2}},
    {"broadcast_to", "[2,1,3] to [2,4,3] (middle axis)", f_broadcast_to, 1, {3}, {{2, 1, 3}}, 0,
     0, 0, NULL, {1}},
    {"broadcast_to", "[] to [2,3] (scalar)", f_broadcast_to, 1, {0}, {{0}}, 0, 0, 0, NULL, {2}},
    {"broadcast_to", "[1] to [2,4,3] (scalar)", f_broadcast_to, 1, {1}, {{1}}, 0, 0, 0, NULL,
     {1}},
    {"broadcast_to", "[3,1,2,1] to [3,2,2,4] (general)", f_broadcast_to, 1, {4}, {{3, 1, 2, 1}},
     0, 0, 0, NULL, {5}},
    {"broadcast_to", "[2,3] to [2,3] (same)", f_broadcast_to, 1, {2}, {{2, 3}}, 0, 0, 0, NULL,
     {2}},
    {"sum_to", "[4,3] to [3] (suffix)", f_sum_to, 1, {2}, {{4, 3}}, 0, 0, 0, NULL, {6}},
    {"sum_to", "[2,4,3] to [1,3] (suffix)", f_sum_to, 1, {3}, {{2, 4, 3}}, 0, 0, 0, NULL, {7}},
    {"sum_to", "[2,3] to [2,1] (leading block)", f_sum_to, 1, {2}, {{2, 3}}, 0, 0, 0, NULL, {8}},
    {"sum_to", "[2,4,3] to [2,1,3] (middle axis)", f_sum_to, 1, {3}, {{2, 4, 3}}, 0, 0, 0, NULL,
     {3}},
    {"sum_to", "[2,3] to [] (scalar)", f_sum_to, 1, {2}, {{2, 3}}, 0, 0, 0, NULL, {4}},
    {"sum_to", "[2,4,3] to [1,1,1] (scalar)", f_sum_to, 1, {3}, {{2, 4, 3}}, 0, 0, 0, NULL, {10}},
    {"sum_to", "[3,2,2,4] to [3,1,2,1] (general)", f_sum_to, 1, {4}, {{3, 2, 2, 4}}, 0, 0, 0,
     NULL, {9}},
    {"sum_to", "[2,3] to [2,3] (same)", f_sum_to, 1, {2}, {{2, 3}}, 0, 0, 0, NULL, {2}},
};
/* clang-format on */
const int tg_n_cases_shape = sizeof tg_cases_shape / sizeof tg_cases_shape[0];
