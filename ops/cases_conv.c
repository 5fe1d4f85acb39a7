/* ops/cases_conv.c: self-check cases of conv2d (and conv1d, recorded as conv2d), unfold
 * and fold (ops/cases.h). conv2d is bilinear in x and w, so its second derivatives are
 * the cross terms; unfold and fold are linear, so their cases also square the output,
 * which puts the backward in ops of the other one on the gradient's tape. */
#include "cases.h"

/* arg: stride, padding, dilation (both axes) and groups */
static tg_conv2d_opts opts_of(const double *arg)
{
    int64_t s = (int64_t)arg[0], p = (int64_t)arg[1], d = (int64_t)arg[2];
    return (tg_conv2d_opts){{s, s}, {p, p}, {d, d}, (int64_t)arg[3]};
}

static tg_tensor *f_conv2d(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const tg_conv2d_opts o = opts_of(ctx);
    return tg_case_dot(tp, tg_conv2d(tp, in[0], in[1], in[2], &o));
}

static tg_tensor *f_conv2d_nobias(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const tg_conv2d_opts o = opts_of(ctx);
    return tg_case_dot(tp, tg_conv2d(tp, in[0], in[1], NULL, &o));
}

/* Σ w_i y_i²: second derivatives in x alone and in w alone too. */
static tg_tensor *f_conv2d_square(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const tg_conv2d_opts o = opts_of(ctx);
    return tg_case_dot(tp, tg_square(tp, tg_conv2d(tp, in[0], in[1], in[2], &o)));
}

/* Stride (2, 1), padding (0, 1), dilation (1, 2): the axes kept apart. */
static tg_tensor *f_conv2d_axes(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    const tg_conv2d_opts o = {{2, 1}, {0, 1}, {1, 2}, 1};
    return tg_case_dot(tp, tg_conv2d(tp, in[0], in[1], in[2], &o));
}

/* Two convolutions in series, the second 1x1 with w2 = in[3]. */
static tg_tensor *f_conv2d_twice(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const tg_conv2d_opts o = opts_of(ctx);
    tg_tensor *h = tg_conv2d(tp, in[0], in[1], in[2], &o);
    return tg_case_dot(tp, tg_conv2d(tp, tg_tanh(tp, h), in[3], NULL, NULL));
}

static tg_tensor *f_conv1d(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const double *a = ctx;
    return tg_case_dot(tp, tg_conv1d(tp, in[0], in[1], in[2], (int64_t)a[0], (int64_t)a[1],
                                     (int64_t)a[2], (int64_t)a[3]));
}

static tg_tensor *f_conv1d_nobias(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const double *a = ctx;
    return tg_case_dot(tp, tg_conv1d(tp, in[0], in[1], NULL, (int64_t)a[0], (int64_t)a[1],
                                     (int64_t)a[2], (int64_t)a[3]));
}

/* unfold with a 2x3 kernel, options from arg (groups ignored) */
static tg_tensor *f_unfold(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const tg_conv2d_opts o = opts_of(ctx);
    return tg_case_dot(tp, tg_unfold(tp, in[0], 2, 3, &o));
}

static tg_tensor *f_unfold_square(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const tg_conv2d_opts o = opts_of(ctx);
    return tg_case_dot(tp, tg_square(tp, tg_unfold(tp, in[0], 2, 3, &o)));
}

/* fold into 5x5 with a 3x3 kernel, options from arg */
static tg_tensor *f_fold(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const tg_conv2d_opts o = opts_of(ctx);
    return tg_case_dot(tp, tg_fold(tp, in[0], 5, 5, 3, 3, &o));
}

/* fold into 4x4 with a 2x2 kernel */
static tg_tensor *f_fold_2x2(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const tg_conv2d_opts o = opts_of(ctx);
    return tg_case_dot(tp, tg_fold(tp, in[0], 4, 4, 2, 2, &o));
}

static tg_tensor *f_fold_square(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const tg_conv2d_opts o = opts_of(ctx);
    return tg_case_dot(tp, tg_square(tp, tg_fold(tp, in[0], 5, 5, 3, 3, &o)));
}

/* clang-format off */
const tg_op_case tg_cases_conv[] = {
    {"conv2d", "x [2,2,4,4] w [3,2,3,3] b", f_conv2d, 3, {4, 4, 1},
     {{2, 2, 4, 4}, {3, 2, 3, 3}, {3}}, 0, 0, 0, NULL, {1, 0, 1, 1}},
    {"conv2d", "stride 2, padding 1: x [1,2,5,5] w [2,2,3,3]", f_conv2d, 3, {4, 4, 1},
     {{1, 2, 5, 5}, {2, 2, 3, 3}, {2}}, 0, 0, 0, NULL, {2, 1, 1, 1}},
    {"conv2d", "dilation 2, padding 1: x [2,1,5,5] w [2,1,2,2]", f_conv2d, 3, {4, 4, 1},
     {{2, 1, 5, 5}, {2, 1, 2, 2}, {2}}, 0, 0, 0, NULL, {1, 1, 2, 1}},
    {"conv2d", "groups 2: x [1,4,4,4] w [4,2,2,2]", f_conv2d, 3, {4, 4, 1},
     {{1, 4, 4, 4}, {4, 2, 2, 2}, {4}}, 0, 0, 0, NULL, {1, 0, 1, 2}},
    {"conv2d", "groups 2, 2 outputs per group, stride 2: x [2,2,4,4] w [4,1,3,3]", f_conv2d, 3,
     {4, 4, 1}, {{2, 2, 4, 4}, {4, 1, 3, 3}, {4}}, 0, 0, 0, NULL, {2, 1, 1, 2}},
    {"conv2d", "depthwise (groups 3), padding 1: x [2,3,3,3] w [3,1,3,3]", f_conv2d, 3, {4, 4, 1},
     {{2, 3, 3, 3}, {3, 1, 3, 3}, {3}}, 0, 0, 0, NULL, {1, 1, 1, 3}},
    {"conv2d", "no bias: x [2,2,3,3] w [2,2,2,2]", f_conv2d_nobias, 2, {4, 4},
     {{2, 2, 3, 3}, {2, 2, 2, 2}}, 0, 0, 0, NULL, {1, 0, 1, 1}},
    {"conv2d", "no bias, depthwise, stride 2: x [1,4,5,5] w [4,1,2,2]", f_conv2d_nobias, 2,
     {4, 4}, {{1, 4, 5, 5}, {4, 1, 2, 2}}, 0, 0, 0, NULL, {2, 0, 1, 4}},
    {"conv2d", "1x1 (x is the column matrix): x [2,3,3,3] w [4,3,1,1]", f_conv2d, 3, {4, 4, 1},
     {{2, 3, 3, 3}, {4, 3, 1, 1}, {4}}, 0, 0, 0, NULL, {1, 0, 1, 1}},
    {"conv2d", "1x1 groups 3: x [2,3,2,3] w [6,1,1,1]", f_conv2d, 3, {4, 4, 1},
     {{2, 3, 2, 3}, {6, 1, 1, 1}, {6}}, 0, 0, 0, NULL, {1, 0, 1, 3}},
    {"conv2d", "1x1 stride 2 padding 1: x [1,2,3,3] w [2,2,1,1]", f_conv2d, 3, {4, 4, 1},
     {{1, 2, 3, 3}, {2, 2, 1, 1}, {2}}, 0, 0, 0, NULL, {2, 1, 1, 1}},
    {"conv2d", "stride (2,1), padding (0,1), dilation (1,2): x [1,2,5,6] w [2,2,2,3]",
     f_conv2d_axes, 3, {4, 4, 1}, {{1, 2, 5, 6}, {2, 2, 2, 3}, {2}}, 0, 0, 0, NULL, {0}},
    {"conv2d", "squared output: x [1,2,4,4] w [2,2,2,2]", f_conv2d_square, 3, {4, 4, 1},
     {{1, 2, 4, 4}, {2, 2, 2, 2}, {2}}, 0, 0, 0, NULL, {1, 1, 1, 1}},
    {"conv2d", "only w and b need grads: x [2,2,4,4] w [2,2,3,3]", f_conv2d, 3, {4, 4, 1},
     {{2, 2, 4, 4}, {2, 2, 3, 3}, {2}}, 0, 0, 1, NULL, {1, 1, 1, 1}},
    {"conv2d", "only x needs a grad, groups 2: x [2,2,4,4] w [2,1,3,3]", f_conv2d, 3, {4, 4, 1},
     {{2, 2, 4, 4}, {2, 1, 3, 3}, {2}}, 0, 0, 2 | 4, NULL, {1, 1, 1, 2}},
    {"conv2d", "two in series, tanh between: x [1,2,4,4] w [2,2,2,2] w2 [3,2,1,1]",
     f_conv2d_twice, 4, {4, 4, 1, 4}, {{1, 2, 4, 4}, {2, 2, 2, 2}, {2}, {3, 2, 1, 1}}, 0, 0, 0,
     NULL, {1, 0, 1, 1}},
    {"conv2d", "conv1d stride 2, padding 1: x [2,2,7] w [3,2,3]", f_conv1d, 3, {3, 3, 1},
     {{2, 2, 7}, {3, 2, 3}, {3}}, 0, 0, 0, NULL, {2, 1, 1, 1}},
    {"conv2d", "conv1d dilation 2, groups 2, no bias: x [2,4,6] w [4,2,2]", f_conv1d_nobias, 2,
     {3, 3}, {{2, 4, 6}, {4, 2, 2}}, 0, 0, 0, NULL, {1, 0, 2, 2}},
    {"unfold", "x [2,2,4,4] kernel 2x3", f_unfold, 1, {4}, {{2, 2, 4, 4}}, 0, 0, 0, NULL,
     {1, 0, 1, 1}},
    {"unfold", "stride 2, padding 1, dilation 2: x [1,3,5,5] kernel 2x3", f_unfold, 1, {4},
     {{1, 3, 5, 5}}, 0, 0, 0, NULL, {2, 1, 2, 1}},
    {"unfold", "squared: x [2,2,3,4] kernel 2x3 padding 1", f_unfold_square, 1, {4},
     {{2, 2, 3, 4}}, 0, 0, 0, NULL, {1, 1, 1, 1}},
    {"fold", "cols [2,9,9] into 5x5 kernel 3x3 stride 1 (overlapping)", f_fold, 1, {3},
     {{2, 9, 9}}, 0, 0, 0, NULL, {1, 0, 1, 1}},
    {"fold", "stride 2, padding 1: cols [1,9,9] into 5x5", f_fold, 1, {3}, {{1, 9, 9}}, 0, 0, 0,
     NULL, {2, 1, 1, 1}},
    {"fold", "two channels: cols [2,8,9] into 4x4 kernel 2x2", f_fold_2x2, 1, {3}, {{2, 8, 9}}, 0,
     0, 0, NULL, {1, 0, 1, 1}},
    {"fold", "squared, dilation 2, padding 1: cols [2,9,9] into 5x5", f_fold_square, 1, {3},
     {{2, 9, 9}}, 0, 0, 0, NULL, {1, 1, 2, 1}},
};
/* clang-format on */
const int tg_n_cases_conv = sizeof tg_cases_conv / sizeof tg_cases_conv[0];
