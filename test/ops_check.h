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
    /* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage): v has numel(t) values */
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
static inline void wdot_bwd(void *ctx, int n_in, const tg_tensor *const *in, const tg_tensor *out,
                            const tg_tensor *dout, tg_tensor *const *din)
{
    (void)ctx, (void)n_in, (void)out;
    for (int64_t i = 0; din[0] && i < tg_tensor_numel(in[0]); i++)
        tg_set(din[0], i, tg_get(din[0], i) + (double)(i + 1) * tg_get(dout, 0));
}
static tg_tensor *wdot_vjp(void *ctx, tg_tape *tp, int n_in, tg_tensor *const *in, tg_tensor *out,
                           tg_tensor *dout, int i)
{
    (void)ctx, (void)n_in, (void)out, (void)i;
    int64_t n = tg_tensor_numel(in[0]);
    tg_tensor *w = tg_tensor_new(tg_tensor_dtype(in[0]), 1, &n);
    if (!w) return NULL;
    for (int64_t j = 0; j < n; j++) tg_set(w, j, (double)(j + 1));
    int64_t shape[TG_MAX_DIMS];
    int nd = tg_tensor_ndim(in[0]);
    for (int d = 0; d < nd; d++) shape[d] = tg_tensor_shape(in[0])[d];
    tg_tensor *r = tg_mul(tp, dout, tg_reshape(tp, w, nd, shape)); /* copies w */
    tg_tensor_free(w);
    return r;
}
static const tg_custom_op wdot = {"wdot", wdot_fwd, wdot_bwd, wdot_vjp};

static inline tg_tensor *weighted(tg_tape *tp, tg_tensor *y)
{
    return tg_custom(tp, &wdot, NULL, 1, &y, 0, NULL);
}

static inline int sweep(tg_tape *tp, tg_tensor *y)
{
    if (!y) return TG_EARG;
    return tg_backward(tp, weighted(tp, y));
}

/* t holds want[0..n-1] within tol, times max(1, |want|) when relative (a NaN wants a NaN,
 * an infinity the same infinity); reports the first difference. */
static inline void expect_within(const tg_tensor *t, int64_t n, const double *want, double tol,
                                 bool relative, const char *file, int line)
{
    if (!t || tg_tensor_numel(t) != n) {
        printf("%s:%d: %s: %s, want %lld elements\n", file, line, check_test,
               t ? "wrong size" : "NULL", (long long)n);
        check_failed++;
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        double got = tg_get(t, i);
        if (fabs(got - want[i]) <= tol * (relative ? fmax(1.0, fabs(want[i])) : 1.0)) continue;
        if (isnan(got) && isnan(want[i])) continue;
        if (isinf(want[i]) && got == want[i]) continue;
        printf("%s:%d: %s: element %lld is %.17g, want %.17g\n", file, line, check_test,
               (long long)i, got, want[i]);
        check_failed++;
        return;
    }
    check_passed++;
}

/* t holds want[0..n-1] within tol·max(1, |want|). */
static inline void expect(const tg_tensor *t, int64_t n, const double *want, double tol,
                          const char *file, int line)
{
    expect_within(t, n, want, tol, true, file, line);
}
#define EXPECT(t, n, want, tol) expect((t), (n), (want), (tol), __FILE__, __LINE__)
/* Within tol absolutely, whatever the magnitude of want. */
#define EXPECT_ABS(t, n, want, tol)                                                                \
    expect_within((t), (n), (want), (tol), false, __FILE__, __LINE__)

/* Runs every self-check case of the family's ops, ops[0..n-1]: each passes the gradient
 * check (max relative error <= 1e-6) and agrees in f32 with f64 (within 1e-4); a failing
 * case is printed. count[k] gets the number of cases of ops[k]. */
static inline void check_family_cases(const char *const *ops, int n, int *count)
{
    for (int k = 0; k < n; k++) count[k] = 0;
    for (int i = 0; i < tg_selfcheck_count(); i++) {
        const char *what, *op = tg_selfcheck_op(i, &what);
        int k = 0;
        while (k < n && strcmp(op, ops[k]) != 0) k++;
        if (k == n) continue;
        count[k]++;
        tg_selfcheck_result r;
        int rc = tg_selfcheck_run(i, &r);
        CHECK(rc == TG_OK && r.grad.n_checked > 0);
        CHECK(r.grad.max_rel_err <= 1e-6);
        CHECK(r.f32_err <= 1e-4);
        if (rc || r.grad.max_rel_err > 1e-6 || r.f32_err > 1e-4)
            printf("  case %s (%s): rc %d, rel err %.3g, f32 err %.3g %s\n", op, what, rc,
                   r.grad.max_rel_err, r.f32_err, r.grad.msg);
    }
}

/* op has at least need self-check cases (count of them, from check_family_cases). */
static inline void check_case_count(const char *op, int count, int need)
{
    if (count < need) printf("  op %s has %d self-check cases\n", op, count);
    CHECK(count >= need);
}

#endif
