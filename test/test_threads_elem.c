/* test/test_threads_elem.c: large elementwise ops, reductions and softmax split over the
 * threads of tg_set_num_threads (ops/vecmath.h) give the bits of one thread, forward and
 * gradients, in f32 and f64, at sizes straddling the threshold TG_PAR_MIN; the split is
 * made only above it, never inside a running parallel region, never in the plain build; a
 * long sum holds every element. */
#include <float.h>
#include <stdlib.h>
#include <tapegrad.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../ops/vecmath.h"
#include "check.h"

enum { NCASE = 16 };
static const char *const names[NCASE] = {
    "tanh",    "sigmoid", "softplus",     "elu",          "exp",     "log",
    "scalars", "add",     "mul scalar b", "div scalar a", "sum all", "mean axis 0",
    "sum -1",  "softmax", "log_softmax",  "relu"};

/* A deterministic fill in [-3, 3). */
static void fill(tg_tensor *t, unsigned seed)
{
    for (int64_t i = 0; i < tg_tensor_numel(t); i++)
        tg_set(t, i, (double)((uint64_t)(i + 1) * 2654435761u * (seed | 1) % 60000) / 10000 - 3);
}

/* The op of case c on x (and the scalar tensor c1 [1]). */
static tg_tensor *op(tg_tape *tp, int c, tg_tensor *x, tg_tensor *c1)
{
    switch (c) {
    case 0: return tg_tanh(tp, x);
    case 1: return tg_sigmoid(tp, x);
    case 2: return tg_softplus(tp, x);
    case 3: return tg_elu(tp, x, 0.8);
    case 4: return tg_exp(tp, x);
    case 5: return tg_log(tp, tg_square(tp, x));
    case 6: return tg_add_scalar(tp, tg_mul_scalar(tp, tg_neg(tp, x), 0.5), 0.25);
    case 7: return tg_add(tp, x, tg_abs(tp, x));
    case 8: return tg_mul(tp, x, c1);
    case 9: return tg_div(tp, c1, tg_add_scalar(tp, tg_square(tp, x), 1));
    case 10: return tg_sum(tp, x, TG_ALL_AXES, false);
    case 11: return tg_mean(tp, x, 0, false);
    case 12: return tg_sum(tp, x, -1, true);
    case 13: return tg_softmax(tp, x, -1);
    case 14: return tg_log_softmax(tp, x, -1);
    default: return tg_relu(tp, x);
    }
}

/* Case c on n elements ([n / 97, 97] for the axis cases) at the given thread count: the
 * output, then the gradients of x and c1 of Σ y·w (w a fixed tensor of y's shape). */
typedef struct run {
    tg_tensor *y, *gx, *gc;
} run;
static run run_case(int c, tg_dtype dt, int64_t n, int threads)
{
    tg_set_num_threads(threads);
    const bool axes = c >= 11 && c <= 14;
    int64_t shape[2] = {axes ? n / 97 : n, 97};
    tg_tensor *x = tg_tensor_new(dt, axes ? 2 : 1, shape),
              *c1 = tg_tensor_new(dt, 1, (int64_t[]){1});
    fill(x, 7);
    tg_set(c1, 0, 1.75);
    tg_set_requires_grad(x, true);
    tg_set_requires_grad(c1, true);
    tg_tape *tp = tg_tape_new();
    tg_tensor *y = op(tp, c, x, c1), *w = NULL;
    run r = {NULL, NULL, NULL};
    if (y) {
        w = tg_tensor_new(dt, tg_tensor_ndim(y), tg_tensor_shape(y));
        fill(w, 11);
    }
    if (w && tg_backward(tp, tg_sum(tp, tg_mul(tp, y, w), TG_ALL_AXES, false)) == TG_OK) {
        r.y = tg_tensor_clone(y);
        r.gx = tg_tensor_clone(tg_grad(x));
        r.gc = tg_grad(c1) ? tg_tensor_clone(tg_grad(c1)) : NULL;
    }
    tg_tape_free(tp);
    tg_tensor_free(x), tg_tensor_free(c1), tg_tensor_free(w);
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
                bool ok = a.y && a.gx && same(a.y, b.y) && same(a.gx, b.gx) && same(a.gc, b.gc);
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

static const check_case cases[] = {TEST(test_threshold), TEST(test_one_vs_two),
                                   TEST(test_sum_value)};
TEST_MAIN("test_threads_elem", cases)
