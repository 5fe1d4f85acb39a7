/* ops/cases_pool.c: self-check cases of max_pool2d, avg_pool2d and global_avg_pool2d (a
 * mean, ops/cases.h). arg[0] picks the window geometry from GEOM below, arg[1] = 1 squares
 * the output: pooling is piecewise linear, so only then do the second derivatives pass
 * through its backward in ops (and the fold it ends in). */
#include "cases.h"

static const tg_pool2d_opts GEOM[] = {
    {{2, 2}, {0, 0}, {0, 0}}, /* 0: 2x2 stride 2 (the fast loops) */
    {{3, 3}, {2, 2}, {1, 1}}, /* 1: 3x3 stride 2 padding 1 */
    {{3, 3}, {1, 1}, {1, 1}}, /* 2: 3x3 stride 1 padding 1: overlapping windows */
    {{2, 2}, {1, 1}, {0, 0}}, /* 3: 2x2 stride 1: overlapping, no padding */
    {{2, 3}, {1, 2}, {1, 1}}, /* 4: kernel 2x3, stride (1, 2), padding 1: the axes apart */
    {{3, 1}, {2, 0}, {1, 0}}, /* 5: kernel 3x1, stride (2, 1), padding (1, 0) */
};

static tg_tensor *f_max(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const double *a = ctx;
    tg_tensor *y = tg_max_pool2d(tp, in[0], &GEOM[(int)a[0]]);
    return tg_case_dot(tp, a[1] != 0 ? tg_square(tp, y) : y);
}
static tg_tensor *f_avg(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const double *a = ctx;
    tg_tensor *y = tg_avg_pool2d(tp, in[0], &GEOM[(int)a[0]]);
    return tg_case_dot(tp, a[1] != 0 ? tg_square(tp, y) : y);
}
static tg_tensor *f_gap(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    const double *a = ctx;
    tg_tensor *y = tg_global_avg_pool2d(tp, in[0]);
    return tg_case_dot(tp, a[1] != 0 ? tg_square(tp, y) : y);
}

/* max: distinct values 0.1 apart, shuffled, so no window has a tie or a near-tie. */
static void spread(tg_tensor *const *in, const double *arg, tg_rng *rng)
{
    (void)arg;
    int64_t n = tg_tensor_numel(in[0]);
    for (int64_t i = 0; i < n; i++) tg_set(in[0], i, 0.05 * (double)(2 * i - n));
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)tg_rng_below(rng, (uint64_t)i + 1);
        double t = tg_get(in[0], i);
        tg_set(in[0], i, tg_get(in[0], j)), tg_set(in[0], j, t);
    }
}

/* clang-format off */
#define POOL(NAME, F, INIT)                                                                    \
    {#NAME, "[2,3,4,4] 2x2/2", F, 1, {4}, {{2, 3, 4, 4}}, 0, 0, 0, INIT, {0, 0}},              \
    {#NAME, "[1,2,5,5] 2x2/2, odd sizes", F, 1, {4}, {{1, 2, 5, 5}}, 0, 0, 0, INIT, {0, 0}},   \
    {#NAME, "[2,2,4,4] 2x2/2 squared", F, 1, {4}, {{2, 2, 4, 4}}, 0, 0, 0, INIT, {0, 1}},      \
    {#NAME, "[1,2,5,5] 3x3/2 pad 1", F, 1, {4}, {{1, 2, 5, 5}}, 0, 0, 0, INIT, {1, 0}},        \
    {#NAME, "[2,1,6,6] 3x3/2 pad 1 squared", F, 1, {4}, {{2, 1, 6, 6}}, 0, 0, 0, INIT, {1, 1}}, \
    {#NAME, "[1,2,4,5] 3x3/1 pad 1", F, 1, {4}, {{1, 2, 4, 5}}, 0, 0, 0, INIT, {2, 0}},        \
    {#NAME, "[1,1,4,4] 3x3/1 pad 1 squared", F, 1, {4}, {{1, 1, 4, 4}}, 0, 0, 0, INIT, {2, 1}}, \
    {#NAME, "[2,1,3,4] 2x2/1", F, 1, {4}, {{2, 1, 3, 4}}, 0, 0, 0, INIT, {3, 0}},              \
    {#NAME, "[1,2,3,3] 2x2/1 squared", F, 1, {4}, {{1, 2, 3, 3}}, 0, 0, 0, INIT, {3, 1}},      \
    {#NAME, "[1,2,4,7] 2x3 stride (1,2) pad 1", F, 1, {4}, {{1, 2, 4, 7}}, 0, 0, 0, INIT,      \
     {4, 0}},                                                                                  \
    {#NAME, "[1,1,3,5] 2x3 stride (1,2) pad 1 squared", F, 1, {4}, {{1, 1, 3, 5}}, 0, 0, 0,    \
     INIT, {4, 1}},                                                                            \
    {#NAME, "[2,2,5,3] 3x1 stride (2,1) pad (1,0)", F, 1, {4}, {{2, 2, 5, 3}}, 0, 0, 0, INIT,  \
     {5, 0}}

const tg_op_case tg_cases_pool[] = {
    POOL(max_pool2d, f_max, spread),
    POOL(avg_pool2d, f_avg, NULL),
    /* global_avg_pool2d has no op of its own: a reshape and a mean */
    {"mean", "global_avg_pool2d [2,3,3,4]", f_gap, 1, {4}, {{2, 3, 3, 4}}, 0, 0, 0, NULL, {0, 0}},
    {"mean", "global_avg_pool2d [2,2,1,3] squared", f_gap, 1, {4}, {{2, 2, 1, 3}}, 0, 0, 0, NULL,
     {0, 1}},
};
/* clang-format on */
const int tg_n_cases_pool = sizeof tg_cases_pool / sizeof tg_cases_pool[0];
