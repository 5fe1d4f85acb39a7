/* ops/cases_reduce.c: self-check cases of sum, mean, max (ops/cases.h). arg[0] is the axis
 * (TG_ALL_AXES for all), arg[1] keepdim. */
#include "cases.h"

#define RED(NAME)                                                                                  \
    static tg_tensor *f_##NAME(tg_tape *tp, tg_tensor *const *in, void *ctx)                       \
    {                                                                                              \
        const double *a = ctx;                                                                     \
        return tg_case_dot(tp, tg_##NAME(tp, in[0], (int)a[0], a[1] != 0));                        \
    }
RED(sum)
RED(mean)
RED(max)

/* max: distinct values spaced apart, so no slice has a tie or a near-tie. */
static void spread(tg_tensor *const *in, const double *arg, tg_rng *rng)
{
    (void)arg;
    int64_t n = tg_tensor_numel(in[0]);
    for (int64_t i = 0; i < n; i++) tg_set(in[0], i, 0.1 * (double)i);
    for (int64_t i = n - 1; i > 0; i--) { /* shuffle */
        int64_t j = (int64_t)tg_rng_below(rng, (uint64_t)i + 1);
        double t = tg_get(in[0], i);
        tg_set(in[0], i, tg_get(in[0], j)), tg_set(in[0], j, t);
    }
}

/* clang-format off */
#define AXES(NAME, INIT)                                                                     \
    {#NAME, "[3,4] axis 0", f_##NAME, 1, {2}, {{3, 4}}, 0, 0, 0, INIT, {0, 0}},              \
    {#NAME, "[3,4] axis -1 keepdim", f_##NAME, 1, {2}, {{3, 4}}, 0, 0, 0, INIT, {-1, 1}},    \
    {#NAME, "[2,3,4] axis 1", f_##NAME, 1, {3}, {{2, 3, 4}}, 0, 0, 0, INIT, {1, 0}},         \
    {#NAME, "[2,3,2,2] axis 2 keepdim", f_##NAME, 1, {4}, {{2, 3, 2, 2}}, 0, 0, 0, INIT,     \
     {2, 1}},                                                                                \
    {#NAME, "[2,5] all", f_##NAME, 1, {2}, {{2, 5}}, 0, 0, 0, INIT, {TG_ALL_AXES, 0}},       \
    {#NAME, "[3,2] all keepdim", f_##NAME, 1, {2}, {{3, 2}}, 0, 0, 0, INIT, {TG_ALL_AXES, 1}}, \
    {#NAME, "[1] axis 0", f_##NAME, 1, {1}, {{1}}, 0, 0, 0, INIT, {0, 0}}

const tg_op_case tg_cases_reduce[] = {
    AXES(sum, NULL),
    AXES(mean, NULL),
    AXES(max, spread),
};
/* clang-format on */
const int tg_n_cases_reduce = sizeof tg_cases_reduce / sizeof tg_cases_reduce[0];
