/* test/test_threads_elem.c: large elementwise ops, reductions and softmax split over the
 * threads of tg_set_num_threads (ops/vecmath.h) give the bits of one thread, forward and
 * gradients, in f32 and f64, at sizes straddling the threshold TG_PAR_MIN; the split is
 * made only above it, never inside a running parallel region, never in the plain build; a
 * long sum holds every element. broadcast_to and sum_to too. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tapegrad.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../ops/vecmath.h"
#include "check.h"

enum { NCASE = 33 };
static const char *const names[NCASE] = {"tanh",
                                         "sigmoid",
                                         "softplus",
                                         "elu",
                                         "exp",
                                         "log",
                                         "scalars",
                                         "add",
                                         "mul scalar b",
                                         "div scalar a",
                                         "sum all",
                                         "mean axis 0",
                                         "sum -1",
                                         "softmax",
                                         "log_softmax",
                                         "relu",
                                         "max all",
                                         "max axis 0",
                                         "max -1",
                                         "mul row b",
                                         "sub row a",
                                         "mul column b",
                                         "add broadcast",
                                         "cross_entropy",
                                         "cross_entropy_soft",
                                         "mul x x",
                                         "sum_to row",
                                         "sum_to column",
                                         "sum_to all",
                                         "broadcast_to row",
                                         "broadcast_to column",
                                         "broadcast_to scalar",
                                         "broadcast_to outer"};

/* A deterministic fill in [-3, 3). */
static void fill(tg_tensor *t, unsigned seed)
{
    for (int64_t i = 0; i < tg_tensor_numel(t); i++)
        tg_set(t, i, (double)((uint64_t)(i + 1) * 2654435761u * (seed | 1) % 60000) / 10000 - 3);
}

/* The second operand p of case c, which also requires a gradient: a scalar [1], a row [97],
 * a column [rows, 1], [1, 3, 1] (broadcast along the outer axis), the labels [rows] (no
 * gradient) or soft targets [rows, 97]. */
static int p_shape(int c, int64_t rows, int64_t *shape)
{
    switch (c) {
    case 19:
    case 20:
    case 29: shape[0] = 97; return 1;
    case 21:
    case 30: shape[0] = rows, shape[1] = 1; return 2;
    case 22:
    case 32: shape[0] = 1, shape[1] = 3, shape[2] = 1; return 3;
    case 23: shape[0] = rows; return 1;
    case 24: shape[0] = rows, shape[1] = 97; return 2;
    default: shape[0] = 1; return 1;
    }
}

/* Whether case c reads p as an operand that gets a gradient. */
static bool uses_p(int c) { return c == 8 || c == 9 || (c >= 19 && c <= 22) || c == 24 || c >= 29; }

/* The op of case c on x (and p). */
static tg_tensor *op(tg_tape *tp, int c, tg_tensor *x, tg_tensor *p)
{
    const int64_t *xs = tg_tensor_shape(x);
    switch (c) {
    case 0: return tg_tanh(tp, x);
    case 1: return tg_sigmoid(tp, x);
    case 2: return tg_softplus(tp, x);
    case 3: return tg_elu(tp, x, 0.8);
    case 4: return tg_exp(tp, x);
    case 5: return tg_log(tp, tg_square(tp, x));
    case 6: return tg_add_scalar(tp, tg_mul_scalar(tp, tg_neg(tp, x), 0.5), 0.25);
    case 7: return tg_add(tp, x, tg_abs(tp, x));
    case 8: return tg_mul(tp, x, p);
    case 9: return tg_div(tp, p, tg_add_scalar(tp, tg_square(tp, x), 1));
    case 10: return tg_sum(tp, x, TG_ALL_AXES, false);
    case 11: return tg_mean(tp, x, 0, false);
    case 12: return tg_sum(tp, x, -1, true);
    case 13: return tg_softmax(tp, x, -1);
    case 14: return tg_log_softmax(tp, x, -1);
    case 15: return tg_relu(tp, x);
    case 16: return tg_max(tp, x, TG_ALL_AXES, false);
    case 17: return tg_max(tp, x, 0, false);
    case 18: return tg_max(tp, x, -1, true);
    case 19: return tg_mul(tp, x, p);
    case 20: return tg_sub(tp, p, x);
    case 21: return tg_mul(tp, x, p);
    case 22: return tg_add(tp, tg_reshape(tp, x, 3, (int64_t[]){xs[0], 1, xs[1]}), p);
    case 23: return tg_cross_entropy(tp, x, p);
    case 24: return tg_cross_entropy_soft(tp, x, p);
    /* broadcast.c: sum_to by columns, by rows, of everything; broadcast_to, whose gradient
     * is the same sums, of a row, a column, a scalar, and along an outer axis */
    case 26: return tg_sum_to(tp, x, 1, (int64_t[]){97});
    case 27: return tg_sum_to(tp, x, 2, (int64_t[]){xs[0], 1});
    case 28: return tg_sum_to(tp, x, 1, (int64_t[]){1});
    case 29:
    case 30:
    case 31: return tg_mul(tp, x, tg_broadcast_to(tp, p, 2, xs));
    case 32:
        return tg_mul(tp, tg_reshape(tp, x, 3, (int64_t[]){xs[0], 1, xs[1]}),
                      tg_broadcast_to(tp, p, 3, (int64_t[]){xs[0], 3, xs[1]}));
    default: return tg_mul(tp, x, x);
    }
}

/* Case c on n elements ([n / 97, 97] for the cases on rows) at the given thread count: the
 * output, then the gradients of x and p of Σ y·w (w a fixed tensor of y's shape). */
typedef struct run {
    tg_tensor *y, *gx, *gc;
} run;
static run run_case(int c, tg_dtype dt, int64_t n, int threads)
{
    tg_set_num_threads(threads);
    const bool rows = (c >= 11 && c <= 14) || (c >= 17 && c <= 24) || c >= 26;
    int64_t shape[2] = {rows ? n / 97 : n, 97}, ps[3];
    const int pd = p_shape(c, shape[0], ps);
    tg_tensor *x = tg_tensor_new(dt, rows ? 2 : 1, shape), *p = tg_tensor_new(dt, pd, ps);
    fill(x, 7);
    fill(p, 5);
    if (c == 8 || c == 9) tg_set(p, 0, 1.75);
    if (c == 16) tg_set(x, n / 2 + 3, 3.5); /* a maximum past the middle */
    if (c == 23)
        for (int64_t r = 0; r < shape[0]; r++) tg_set(p, r, (double)(r * 7 % 97));
    tg_set_requires_grad(x, true);
    tg_set_requires_grad(p, c != 23);
    tg_tape *tp = tg_tape_new();
    tg_tensor *y = op(tp, c, x, p), *w = NULL;
    run r = {NULL, NULL, NULL};
    if (y) {
        w = tg_tensor_new(dt, tg_tensor_ndim(y), tg_tensor_shape(y));
        fill(w, 11);
    }
    if (w && tg_backward(tp, tg_sum(tp, tg_mul(tp, y, w), TG_ALL_AXES, false)) == TG_OK) {
        r.y = tg_tensor_clone(y);
        r.gx = tg_tensor_clone(tg_grad(x));
        r.gc = tg_grad(p) ? tg_tensor_clone(tg_grad(p)) : NULL;
    }
    tg_tape_free(tp);
    tg_tensor_free(x), tg_tensor_free(p), tg_tensor_free(w);
    tg_set_num_threads(1);
    return r;
}

static bool same(const tg_tensor *a, const tg_tensor *b)
{
    if (!a || !b) return a == b;
    size_t bytes = (size_t)tg_tensor_numel(a) * (tg_tensor_dtype(a) == TG_F32 ? 4 : 8);
    return tg_tensor_numel(a) == tg_tensor_numel(b) &&
           memcmp(tg_data_const(a), tg_data_const(b), bytes) == 0;
}
static void run_free(run *r) { tg_tensor_free(r->y), tg_tensor_free(r->gx), tg_tensor_free(r->gc); }

static void test_one_vs_two(void)
{
    const int64_t sizes[] = {TG_PAR_MIN - 1, TG_PAR_MIN, TG_PAR_MIN + 1, 3 * TG_PAR_MIN + 17,
                             1000003};
    for (int d = 0; d < 2; d++)
        for (int c = 0; c < NCASE; c++)
            for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                tg_dtype dt = d ? TG_F64 : TG_F32;
                run a = run_case(c, dt, sizes[s], 1), b = run_case(c, dt, sizes[s], 2);
                bool ok = a.y && a.gx && same(a.y, b.y) && same(a.gx, b.gx) && same(a.gc, b.gc) &&
                          (!uses_p(c) || a.gc);
                if (!ok)
                    printf("  %s, %s, %lld elements\n", names[c], tg_dtype_name(dt),
                           (long long)sizes[s]);
                CHECK(ok);
                run_free(&a), run_free(&b);
            }
}

/* A long sum in its fixed parts holds every element: Σ of a fill against long double. */
static void test_sum_value(void)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        run r = run_case(10, dt, 1000003, 2);
        int64_t n = 1000003;
        tg_tensor *x = tg_tensor_new(dt, 1, &n);
        fill(x, 7);
        long double s = 0;
        for (int64_t i = 0; i < n; i++) s += (long double)tg_get(x, i);
        CHECK(r.y && fabs(tg_get(r.y, 0) - (double)s) <= (d ? 1e-9 : 2.0));
        tg_tensor_free(x);
        run_free(&r);
    }
}

/* A maximum over a long slice in parts, at 2 threads: the first of equal maxima and the first
 * NaN get the gradient, as in one scan. */
static void test_max_first(void)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        const int64_t n = 4 * TG_PAR_MIN + 5, at[3] = {n / 3, n / 3 + 1, 3 * n / 4};
        for (int nan = 0; nan < 2; nan++) {
            tg_set_num_threads(2);
            tg_tensor *x = tg_tensor_new(dt, 1, &n);
            fill(x, 7);
            tg_set(x, at[0], 3.5), tg_set(x, at[2], nan ? (double)NAN : 3.5);
            if (nan) tg_set(x, at[1], (double)NAN), tg_set(x, n - 1, 9);
            tg_set_requires_grad(x, true);
            tg_tape *tp = tg_tape_new();
            tg_tensor *y = tg_max(tp, x, TG_ALL_AXES, false);
            CHECK(y && tg_backward(tp, y) == TG_OK);
            const tg_tensor *g = tg_grad(x);
            int64_t ones = 0, where = -1;
            for (int64_t i = 0; g && i < n; i++)
                if (tg_get(g, i) != 0) ones++, where = i;
            CHECK(y && (nan ? isnan(tg_get(y, 0)) : tg_get(y, 0) == 3.5));
            CHECK(ones == 1 && where == at[nan]);
            tg_tape_free(tp);
            tg_tensor_free(x);
            tg_set_num_threads(1);
        }
    }
}

/* cross_entropy at 2 threads with bad labels in two parts: the error names the first bad
 * row, and the output is not written. */
static void test_ce_bad_label(void)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        const int64_t rows = 2 * TG_PAR_MIN / 97 + 40;
        tg_set_num_threads(2);
        tg_tensor *z = tg_tensor_new(dt, 2, (int64_t[]){rows, 97}),
                  *t = tg_tensor_new(dt, 1, &rows);
        fill(z, 3);
        for (int64_t r = 0; r < rows; r++) tg_set(t, r, (double)(r % 97));
        tg_set(t, rows - 2, 97), tg_set(t, rows / 2 + 1, -1); /* in different parts */
        tg_tape *tp = tg_tape_new();
        tg_tensor *y = tg_cross_entropy(tp, z, t);
        char want[96];
        snprintf(want, sizeof want, "label -1 of row %lld ", (long long)rows / 2 + 1);
        CHECK(!y && tg_tape_errcode(tp) == TG_EARG && strstr(tg_tape_error(tp), want));
        tg_tape_free(tp);
        tg_tensor_free(z), tg_tensor_free(t);
        tg_set_num_threads(1);
    }
}

/* The split gradients against sums in long double: the row operand of mul(x, row) (by
 * columns), the column operand of mul(x, column) (by lines) and cross_entropy's loss (in
 * parts). */
static void test_values(void)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        const double tol = d ? 1e-10 : 1e-3;
        const int64_t n = 3 * TG_PAR_MIN + 17, rows = n / 97;
        run r = run_case(19, dt, n, 2), c = run_case(21, dt, n, 2), e = run_case(23, dt, n, 2);
        tg_tensor *x = tg_tensor_new(dt, 2, (int64_t[]){rows, 97}), *w = tg_tensor_clone(x);
        fill(x, 7), fill(w, 11);
        bool ok = r.gc && c.gc && e.y;
        for (int64_t j = 0; ok && j < 97; j++) { /* d/dp_j of Σ x p w over the rows */
            long double s = 0;
            for (int64_t i = 0; i < rows; i++)
                s += (long double)tg_get(x, i * 97 + j) * (long double)tg_get(w, i * 97 + j);
            ok = fabs(tg_get(r.gc, j) - (double)s) <= tol * (1 + fabs((double)s));
        }
        for (int64_t i = 0; ok && i < rows; i++) {
            long double s = 0;
            for (int64_t j = 0; j < 97; j++)
                s += (long double)tg_get(x, i * 97 + j) * (long double)tg_get(w, i * 97 + j);
            ok = fabs(tg_get(c.gc, i) - (double)s) <= tol * (1 + fabs((double)s));
        }
        long double loss = 0; /* labels r * 7 % 97, as run_case sets them */
        for (int64_t i = 0; ok && i < rows; i++) {
            long double m = -(long double)INFINITY, z = 0;
            for (int64_t j = 0; j < 97; j++) m = fmaxl(m, (long double)tg_get(x, i * 97 + j));
            for (int64_t j = 0; j < 97; j++) z += expl((long double)tg_get(x, i * 97 + j) - m);
            loss += m + logl(z) - (long double)tg_get(x, i * 97 + i * 7 % 97);
        }
        CHECK(ok && fabs(tg_get(e.y, 0) - (double)(loss / rows)) <= tol);
        /* sum_to of everything in its fixed parts, and broadcast_to's row sums for a column */
        run a = run_case(28, dt, n, 2), b = run_case(30, dt, n, 2);
        long double all = 0;
        for (int64_t i = 0; i < rows * 97; i++) all += (long double)tg_get(x, i);
        ok = a.y && b.gc && fabs(tg_get(a.y, 0) - (double)all) <= tol * (1 + fabs((double)all));
        for (int64_t i = 0; ok && i < rows; i++) {
            long double s = 0;
            for (int64_t j = 0; j < 97; j++)
                s += (long double)tg_get(x, i * 97 + j) * (long double)tg_get(w, i * 97 + j);
            ok = fabs(tg_get(b.gc, i) - (double)s) <= tol * (1 + fabs((double)s));
        }
        CHECK(ok);
        tg_tensor_free(x), tg_tensor_free(w);
        run_free(&r), run_free(&c), run_free(&e), run_free(&a), run_free(&b);
    }
}

/* Threads only at TG_PAR_MIN elements or more, and not inside a parallel region. */
static void test_threshold(void)
{
    int nt0 = tg_get_num_threads();
    int two = tg_set_num_threads(2); /* 1 on a 1-CPU machine */
    CHECK(tg_par_threads(TG_PAR_MIN - 1) == 1);
#if defined(_OPENMP) && !defined(TG_PLAIN)
    CHECK(tg_par_threads(TG_PAR_MIN) == two);
    int inside = 0;
#pragma omp parallel num_threads(2)
    {
#pragma omp single
        inside = tg_par_threads(TG_PAR_MIN);
    }
    CHECK(inside == 1);
#else
    (void)two;
    CHECK(tg_par_threads(TG_PAR_MIN) == 1);
#endif
    tg_set_num_threads(nt0);
}

static const check_case cases[] = {TEST(test_threshold),    TEST(test_one_vs_two),
                                   TEST(test_sum_value),    TEST(test_max_first),
                                   TEST(test_ce_bad_label), TEST(test_values)};
TEST_MAIN("test_threads_elem", cases)
