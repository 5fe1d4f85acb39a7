/* test/ops_check.h: helpers shared by the op-family tests (test_ops_<family>.c): literal
 * arrays, leaves freed at the end of a test, a value check, and a sweep through a weighted
 * sum so that every output element gets its own gradient. Include after check.h. */
#ifndef TAPEGRAD_TEST_OPS_CHECK_H
#define TAPEGRAD_TEST_OPS_CHECK_H

#include <stdlib.h>

#include "check.h"
#include "tapegrad.h"

#define V(...) ((const double[]){__VA_ARGS__})
#define S(...) ((const int64_t[]){__VA_ARGS__})

/* Leaves made by a test, freed by drop_all() at its end. */
#define MAX_LEAVES 64
static tg_tensor *leaves[MAX_LEAVES];
static int n_leaves;

static inline tg_tensor *leaf(tg_dtype dt, int ndim, const int64_t *shape, const double *v,
                              bool grad)
{
    tg_tensor *t = tg_tensor_new(dt, ndim, shape);
    if (!t || n_leaves == MAX_LEAVES) {
        printf("%s: cannot make a leaf\n", check_test);
        exit(1);
    }
    for (int64_t i = 0; v && i < tg_tensor_numel(t); i++) tg_set(t, i, v[i]);
    if (grad) tg_set_requires_grad(t, true);
    return leaves[n_leaves++] = t;
}

static inline void drop_all(void)
{
    while (n_leaves > 0) tg_tensor_free(leaves[--n_leaves]);
}

/* loss = Σ (i+1) y_i: every output element gets its own weight, and the test needs no other
 * op family. */
static inline void wdot_fwd(void *ctx, int n_in, const tg_tensor *const *in, tg_tensor *out)
{
    (void)ctx, (void)n_in;
    double s = 0;
    for (int64_t i = 0; i < tg_tensor_numel(in[0]); i++) s += (double)(i + 1) * tg_get(in[0], i);
    tg_set(out, 0, s);
}
static inline void wdot_bwd(void *ctx, int n_in, const tg_tensor *const *in,
                            const tg_tensor *out, const tg_tensor *dout, tg_tensor *const *din)
{
    (void)ctx, (void)n_in, (void)out;
    for (int64_t i = 0; din[0] && i < tg_tensor_numel(in[0]); i++)
        tg_set(din[0], i, tg_get(din[0], i) + (double)(i + 1) * tg_get(dout, 0));
}
static const tg_custom_op wdot = {"wdot", wdot_fwd, wdot_bwd};

static inline tg_tensor *weighted(tg_tape *tp, tg_tensor *y)
{
    return tg_custom(tp, &wdot, NULL, 1, &y, 0, NULL);
}

static inline int sweep(tg_tape *tp, tg_tensor *y)
{
    if (!y) return TG_EARG;
    return tg_backward(tp, weighted(tp, y));
}

/* t holds want[0..n-1] within tol·max(1, |want|) (a NaN wants a NaN, an infinity the same
 * infinity); reports the first difference. */
static inline void expect(const tg_tensor *t, int64_t n, const double *want, double tol,
                          const char *file, int line)
{
    if (!t || tg_tensor_numel(t) != n) {
        printf("%s:%d: %s: %s, want %lld elements\n", file, line, check_test,
               t ? "wrong size" : "NULL", (long long)n);
        check_failed++;
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        double got = tg_get(t, i);
        if (fabs(got - want[i]) <= tol * fmax(1.0, fabs(want[i]))) continue;
        if (isnan(got) && isnan(want[i])) continue;
        if (isinf(want[i]) && got == want[i]) continue;
        printf("%s:%d: %s: element %lld is %.17g, want %.17g\n", file, line, check_test,
               (long long)i, got, want[i]);
        check_failed++;
        return;
    }
    check_passed++;
}
#define EXPECT(t, n, want, tol) expect((t), (n), (want), (tol), __FILE__, __LINE__)

#endif
