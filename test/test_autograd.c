/* test/test_autograd.c: tensors, the tape and its arena, the reverse sweep, grad mode,
 * sticky errors, stale tensors, alignment, allocation failure, gradcheck, custom ops, the
 * graph API, the thread count and tapes on several threads. Uses mostly tanh, matmul,
 * linear, sum and custom ops, so it tests the engine, not the op families. */
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "tapegrad.h"

/* Failing the k-th malloc: this binary replaces the allocation functions and forwards them
 * to glibc's, so that a test can make the k-th allocation after mf_arm fail and count the
 * blocks still live. Not under AddressSanitizer or ThreadSanitizer (they own malloc), and
 * valgrind redirects malloc in the program too: mf_works() says whether it is in use. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TG_TEST_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TG_TEST_SANITIZER 1
#endif
#endif
/* volatile: the compiler knows malloc's semantics and would assume no call changes them */
static volatile long mf_calls, mf_fail_at, mf_live;
static volatile int mf_armed;
#if defined(__GLIBC__) && !defined(TG_TEST_SANITIZER)
#define MF_REPLACED 1
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void *__libc_memalign(size_t align, size_t size);
extern void __libc_free(void *ptr);
static int mf_fail(void)
{
    if (!mf_armed) return 0;
    mf_calls++;
    return mf_fail_at && mf_calls == mf_fail_at;
}
static void *mf_new(void *p)
{
    if (p && mf_armed) mf_live++;
    return p;
}
void *malloc(size_t size) { return mf_fail() ? NULL : mf_new(__libc_malloc(size)); }
void *calloc(size_t n, size_t size) { return mf_fail() ? NULL : mf_new(__libc_calloc(n, size)); }
void *aligned_alloc(size_t align, size_t size)
{
    return mf_fail() ? NULL : mf_new(__libc_memalign(align, size));
}
void *realloc(void *ptr, size_t size)
{
    if (mf_fail()) return NULL;
    if (ptr && !size && mf_armed) mf_live--; /* glibc's realloc(p, 0) frees p */
    void *p = __libc_realloc(ptr, size);
    return ptr ? p : mf_new(p);
}
void free(void *ptr)
{
    if (ptr && mf_armed) mf_live--;
    __libc_free(ptr);
}
#else
#define MF_REPLACED 0
#endif

/* Counts from now; the fail_at-th allocation fails (0: none). */
static void mf_arm(long fail_at)
{
    mf_calls = 0, mf_live = 0, mf_fail_at = fail_at;
    mf_armed = 1;
}
static void mf_disarm(void) { mf_armed = 0; }
static bool mf_works(void)
{
    void *(*volatile alloc)(size_t) = malloc; /* called through a pointer: not elided */
    mf_arm(0);
    free(alloc(16));
    bool counted = mf_calls == 1 && mf_live == 0;
    mf_disarm();
    return MF_REPLACED && counted;
}

static tg_tensor *vec(tg_dtype dt, int ndim, const int64_t *shape, const double *v)
{
    tg_tensor *t = tg_tensor_new(dt, ndim, shape);
    for (int64_t i = 0; i < tg_tensor_numel(t); i++) tg_set(t, i, v[i]);
    return t;
}

static tg_tensor *rand_leaf(tg_dtype dt, int ndim, const int64_t *s, tg_rng *r, bool grad)
{
    tg_tensor *t = tg_tensor_new(dt, ndim, s);
    tg_tensor_rand_uniform(t, -1, 1, r);
    tg_set_requires_grad(t, grad);
    return t;
}

static void test_tensor_basics(void)
{
    int64_t s[4] = {2, 3, 4, 5};
    tg_tensor *t = tg_tensor_new(TG_F32, 4, s);
    CHECK(t && tg_tensor_ndim(t) == 4 && tg_tensor_numel(t) == 120);
    CHECK(tg_tensor_dim(t, -1) == 5 && tg_tensor_dim(t, 0) == 2 && tg_tensor_dim(t, 4) == -1);
    double sum = 0;
    for (int64_t i = 0; i < 120; i++) sum += fabs(tg_get(t, i));
    CHECK(sum == 0);
    CHECK(tg_tensor_fill(t, 2.5) == TG_OK && tg_get(t, 119) == 2.5);
    char buf[64];
    CHECK(strcmp(tg_shape_str(t, buf, sizeof buf), "[2,3,4,5]") == 0);
    tg_tensor *c = tg_tensor_clone(t);
    CHECK(c && tg_get(c, 7) == 2.5 && tg_tensor_is_leaf(c));
    tg_tensor_free(c);
    tg_tensor_free(t);

    double d[6] = {1, 2, 3, 4, 5, 6};
    int64_t s2[2] = {2, 3};
    tg_tensor *f = tg_tensor_from(TG_F64, 2, s2, d);
    CHECK(f && tg_get(f, 5) == 6 && ((double *)tg_data(f))[1] == 2);
    tg_tensor_free(f);

    int64_t bad[7] = {1, 1, 1, 1, 1, 1, 1}, neg[2] = {2, -1};
    CHECK(tg_tensor_new(TG_F32, 7, bad) == NULL);
    CHECK(tg_tensor_new(TG_F32, 2, neg) == NULL);
    CHECK(tg_tensor_new((tg_dtype)7, 1, s) == NULL);
    CHECK(tg_tensor_from(TG_F32, 2, s2, NULL) == NULL);
    CHECK(tg_tensor_free(NULL) == TG_OK);
    tg_tensor *scalar = tg_tensor_new(TG_F64, 0, NULL);
    CHECK(scalar && tg_tensor_numel(scalar) == 1);
    tg_tensor_free(scalar);
    int64_t zero[2] = {0, 3};
    tg_tensor *empty = tg_tensor_new(TG_F32, 2, zero);
    CHECK(empty && tg_tensor_numel(empty) == 0);
    tg_tensor_free(empty);
}

static void test_tensor_random(void)
{
    int64_t s[1] = {1000};
    tg_tensor *a = tg_tensor_new(TG_F64, 1, s), *b = tg_tensor_new(TG_F64, 1, s);
    tg_tensor *c = tg_tensor_new(TG_F32, 1, s);
    tg_rng r1, r2, r3;
    tg_rng_seed(&r1, 42), tg_rng_seed(&r2, 42), tg_rng_seed(&r3, 42);
    tg_tensor_rand_normal(a, 1.0, 2.0, &r1);
    tg_tensor_rand_normal(b, 1.0, 2.0, &r2);
    tg_tensor_rand_normal(c, 1.0, 2.0, &r3);
    double mean = 0, var = 0, maxdiff = 0, f32diff = 0;
    for (int i = 0; i < 1000; i++) {
        mean += tg_get(a, i) / 1000;
        maxdiff = fmax(maxdiff, fabs(tg_get(a, i) - tg_get(b, i)));
        f32diff = fmax(f32diff, fabs(tg_get(a, i) - tg_get(c, i)) / (1 + fabs(tg_get(a, i))));
    }
    for (int i = 0; i < 1000; i++) var += (tg_get(a, i) - mean) * (tg_get(a, i) - mean) / 999;
    CHECK(maxdiff == 0);        /* same seed, same stream */
    CHECK(f32diff < 1e-6);      /* f32 gets the same values, rounded */
    CHECK_NEAR(mean, 1.0, 0.2); /* 4 standard errors of the mean */
    CHECK_NEAR(sqrt(var), 2.0, 0.2);
    tg_tensor_rand_uniform(a, -1, 3, &r1);
    double lo = 1e9, hi = -1e9;
    for (int i = 0; i < 1000; i++) lo = fmin(lo, tg_get(a, i)), hi = fmax(hi, tg_get(a, i));
    CHECK(lo >= -1 && hi < 3 && lo < -0.9 && hi > 2.9);
    CHECK(tg_tensor_rand_uniform(a, 1, 0, &r1) == TG_EARG);
    tg_rng_seed(&r1, 7);
    int counts[3] = {0, 0, 0};
    for (int i = 0; i < 3000; i++) counts[tg_rng_below(&r1, 3)]++;
    CHECK(counts[0] > 900 && counts[1] > 900 && counts[2] > 900);
    tg_tensor_free(a), tg_tensor_free(b), tg_tensor_free(c);
}

static void test_tensor_print(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    double d[4] = {1, 2, 3, 4.5};
    int64_t s[2] = {2, 2};
    tg_tensor *t = tg_tensor_from(TG_F64, 2, s, d);
    tg_tensor_print(t, f, 0);
    fclose(f);
    CHECK_STR_HAS(buf, "tensor(f64, [2,2])");
    CHECK_STR_HAS(buf, "4.5");
    free(buf);
    tg_tensor_free(t);
}

/* loss = tanh(x · W) · v with x [1,k], W [k,n], v [n,1]: a [1,1] scalar. Checked against the
 * chain rule written out by hand: dW[i][j] = x[i] (1 - h[j]²) v[j]. */
static void test_backward_by_hand(void)
{
    int64_t sx[2] = {1, 3}, sw[2] = {3, 2}, sv[2] = {2, 1};
    double xd[3] = {0.5, -1.0, 2.0}, wd[6] = {0.1, -0.2, 0.3, 0.4, -0.5, 0.6}, vd[2] = {1.5, -2.0};
    tg_tensor *x = vec(TG_F64, 2, sx, xd), *w = vec(TG_F64, 2, sw, wd), *v = vec(TG_F64, 2, sv, vd);
    tg_set_requires_grad(w, true);
    tg_set_requires_grad(x, true);
    tg_tape *tp = tg_tape_new();
    tg_tensor *loss = tg_matmul(tp, tg_tanh(tp, tg_matmul(tp, x, w)), v);
    CHECK(loss && tg_tensor_numel(loss) == 1);
    CHECK(tg_backward(tp, loss) == TG_OK);
    double h[2], expect = 0;
    for (int j = 0; j < 2; j++) {
        double s = 0;
        for (int i = 0; i < 3; i++) s += xd[i] * wd[i * 2 + j];
        h[j] = tanh(s);
        expect += h[j] * vd[j];
    }
    /* 1e-14: tg_tanh is libmvec's vector tanh, within 4 ulp of libm's (docs/performance.md) */
    CHECK_NEAR(tg_get(loss, 0), expect, 1e-14);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++)
            CHECK_NEAR(tg_get(tg_grad(w), i * 2 + j), xd[i] * (1 - h[j] * h[j]) * vd[j], 1e-14);
    for (int i = 0; i < 3; i++) {
        double g = 0;
        for (int j = 0; j < 2; j++) g += wd[i * 2 + j] * (1 - h[j] * h[j]) * vd[j];
        CHECK_NEAR(tg_get(tg_grad(x), i), g, 1e-14);
    }
    CHECK(tg_grad(v) == NULL); /* v does not require a gradient: none computed */
    CHECK(tg_tape_n_nodes(tp) == 3);
    tg_tape_free(tp);
    tg_tensor_free(x), tg_tensor_free(w), tg_tensor_free(v);
}

/* A second sweep: leaf gradients accumulate, intermediates start fresh. */
static void test_backward_twice(void)
{
    int64_t sx[2] = {1, 2}, sw[2] = {2, 1};
    double xd[2] = {0.3, -0.7}, wd[2] = {1.1, 0.4};
    tg_tensor *x = vec(TG_F64, 2, sx, xd), *w = vec(TG_F64, 2, sw, wd);
    tg_set_requires_grad(w, true);
    tg_tape *tp = tg_tape_new();
    tg_tensor *h = tg_tanh(tp, x);
    tg_tensor *loss = tg_tanh(tp, tg_matmul(tp, h, w));
    tg_backward(tp, loss);
    double g1 = tg_get(tg_grad(w), 0);
    tg_tensor *gl = tg_grad(loss);
    CHECK(gl && tg_get(gl, 0) == 1.0);
    tg_backward(tp, loss);
    CHECK_NEAR(tg_get(tg_grad(w), 0), 2 * g1, 1e-15); /* accumulated */
    CHECK(tg_get(tg_grad(loss), 0) == 1.0);           /* re-seeded, not 2 */
    CHECK(tg_grad(h) == NULL); /* x does not require grad, so h is not even recorded */
    tg_zero_grad(w);
    tg_backward(tp, loss);
    CHECK_NEAR(tg_get(tg_grad(w), 0), g1, 1e-15);
    tg_tape_free(tp);
    tg_tensor_free(x), tg_tensor_free(w);
}

/* Gradients are zeroed lazily (tg_zero_grad, and intermediates once per sweep): the first
 * kernel to reach one writes it instead of adding. A NaN left in any buffer from an earlier
 * sweep must not come back, through any kind of op (GEMM with beta 0, unary, activation,
 * elementwise, reduction), for leaves and intermediates, at f32 and f64. */
static void test_lazy_zero_never_reads_old_values(void)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        int64_t sx[2] = {3, 4}, sw[2] = {4, 2}, sb[1] = {2};
        tg_tensor *x = tg_tensor_new(dt, 2, sx), *w = tg_tensor_new(dt, 2, sw);
        tg_tensor *b = tg_tensor_new(dt, 1, sb);
        tg_rng r;
        tg_rng_seed(&r, 7);
        tg_tensor_rand_uniform(x, -1, 1, &r), tg_tensor_rand_uniform(w, -1, 1, &r);
        tg_tensor_rand_uniform(b, -1, 1, &r);
        tg_set_requires_grad(x, true), tg_set_requires_grad(w, true), tg_set_requires_grad(b, true);
        tg_tape *tp = tg_tape_new();
        /* linear (GEMM) -> tanh (activation) -> square (unary) -> mul with itself
         * (elementwise, one input twice) -> matmul(h, hT) -> sum */
        tg_tensor *h = tg_tanh(tp, tg_linear(tp, x, w, b));
        h = tg_mul(tp, tg_square(tp, h), h);
        tg_tensor *y = tg_matmul(tp, h, tg_transpose(tp, h, 0, 1));
        tg_tensor *loss = tg_sum(tp, y, TG_ALL_AXES, false);
        CHECK(loss != NULL);
        tg_tensor *seed = tg_tensor_new(dt, 0, NULL);
        double ref[3][12];
        int sizes[3] = {12, 8, 2};
        tg_tensor *leaf[3] = {x, w, b};
        /* reference: one clean sweep */
        CHECK(tg_backward(tp, loss) == TG_OK);
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < sizes[i]; j++) ref[i][j] = tg_get(tg_grad(leaf[i]), j);
        /* poison: a sweep seeded with NaN fills every gradient buffer with NaN */
        tg_tensor_fill(seed, (double)NAN);
        CHECK(tg_backward_seed(tp, loss, seed) == TG_OK);
        CHECK(isnan(tg_get(tg_grad(w), 0)));
        CHECK(isnan(tg_get(tg_grad(h), 0)));
        for (int i = 0; i < 3; i++) tg_zero_grad(leaf[i]);
        CHECK(tg_backward(tp, loss) == TG_OK);
        double tol = d ? 1e-6 : 1e-15;
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < sizes[i]; j++)
                CHECK_NEAR(tg_get(tg_grad(leaf[i]), j), ref[i][j], tol * (1 + fabs(ref[i][j])));
        /* zeroed and never reached again: reads as zeros */
        for (int i = 0; i < 3; i++) tg_zero_grad(leaf[i]);
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < sizes[i]; j++) CHECK(tg_get(tg_grad(leaf[i]), j) == 0.0);
        /* accumulation without zeroing still adds */
        CHECK(tg_backward(tp, loss) == TG_OK && tg_backward(tp, loss) == TG_OK);
        for (int j = 0; j < 8; j++)
            CHECK_NEAR(tg_get(tg_grad(w), j), 2 * ref[1][j], 2 * tol * (1 + fabs(ref[1][j])));
        tg_tape_free(tp);
        tg_tensor_free(seed), tg_tensor_free(x), tg_tensor_free(w), tg_tensor_free(b);
    }
}

static void test_grad_mode_and_recording(void)
{
    int64_t s[2] = {2, 2};
    double d[4] = {0.1, 0.2, 0.3, 0.4};
    tg_tensor *a = vec(TG_F32, 2, s, d), *b = vec(TG_F32, 2, s, d);
    tg_tape *tp = tg_tape_new();
    tg_tensor *y = tg_matmul(tp, a, b); /* nothing requires grad: computed, not recorded */
    CHECK(y && tg_tape_n_nodes(tp) == 0 && !tg_requires_grad(y));
    CHECK_NEAR(tg_get(y, 0), 0.1 * 0.1 + 0.2 * 0.3, 1e-7);
    tg_set_requires_grad(b, true);
    CHECK(tg_tape_set_grad_mode(tp, false) == true);
    y = tg_matmul(tp, a, b);
    CHECK(y && tg_tape_n_nodes(tp) == 0 && !tg_requires_grad(y));
    tg_tape_set_grad_mode(tp, true);
    y = tg_matmul(tp, a, b);
    CHECK(y && tg_tape_n_nodes(tp) == 1 && tg_requires_grad(y));
    CHECK(tg_set_requires_grad(y, false) == TG_EARG); /* only leaves */
    CHECK(tg_tensor_free(y) == TG_EARG);              /* arena tensors are the tape's */
    tg_tape_free(tp);
    tg_tensor_free(a), tg_tensor_free(b);
}

/* The sweep starts at the loss's own node: later nodes are skipped. */
static void test_sweep_starts_at_loss(void)
{
    int64_t s[2] = {1, 1};
    double one = 0.5;
    tg_tensor *x = vec(TG_F64, 2, s, &one);
    tg_set_requires_grad(x, true);
    tg_tape *tp = tg_tape_new();
    tg_tensor *loss = tg_tanh(tp, x);
    tg_tensor *later = tg_tanh(tp, tg_tanh(tp, loss));
    CHECK(later != NULL);
    CHECK(tg_backward(tp, loss) == TG_OK);
    CHECK_NEAR(tg_get(tg_grad(x), 0), 1 - tanh(0.5) * tanh(0.5), 1e-15);
    tg_tape_free(tp);
    tg_tensor_free(x);
}

static void test_leaf_loss(void)
{
    tg_tensor *x = tg_tensor_new(TG_F64, 0, NULL);
    tg_set_requires_grad(x, true);
    tg_tape *tp = tg_tape_new();
    CHECK(tg_backward(tp, x) == TG_OK && tg_get(tg_grad(x), 0) == 1.0);
    tg_tape_free(tp);
    tg_tensor_free(x);
}

static void test_errors(void)
{
    int64_t s34[2] = {3, 4}, s56[2] = {5, 6}, s44[2] = {4, 4};
    tg_tensor *a = tg_tensor_new(TG_F32, 2, s34), *b = tg_tensor_new(TG_F32, 2, s56);
    tg_tensor *c = tg_tensor_new(TG_F64, 2, s44), *d = tg_tensor_new(TG_F32, 2, s44);
    tg_set_requires_grad(a, true);
    tg_tape *tp = tg_tape_new();
    CHECK(tg_tape_errcode(tp) == TG_OK && strcmp(tg_tape_error(tp), "") == 0);
    /* shape mismatch: message names op and shapes */
    CHECK(tg_matmul(tp, a, b) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_ESHAPE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_matmul: [3,4] x [5,6]: inner dimensions 4 and 5 differ");
    /* sticky: the first error stays, later ops return NULL */
    CHECK(tg_matmul(tp, a, c) == NULL);
    CHECK(tg_tanh(tp, a) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_ESHAPE);
    CHECK_STR_HAS(tg_tape_error(tp), "inner dimensions");
    tg_tape_reset(tp);
    CHECK(tg_tape_errcode(tp) == TG_OK);
    /* dtype mismatch */
    CHECK(tg_matmul(tp, a, c) == NULL && tg_tape_errcode(tp) == TG_EDTYPE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_matmul: dtypes f32 and f64 differ");
    tg_tape_reset(tp);
    /* NULL input, and NULL flowing through an expression */
    CHECK(tg_tanh(tp, tg_matmul(tp, a, NULL)) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_matmul: input 1 is NULL");
    CHECK(tg_tape_errcode(tp) == TG_EARG);
    tg_tape_reset(tp);
    /* 1-D operand */
    int64_t s4[1] = {4};
    tg_tensor *v = tg_tensor_new(TG_F32, 1, s4);
    CHECK(tg_matmul(tp, a, v) == NULL && tg_tape_errcode(tp) == TG_ESHAPE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_matmul: [3,4] and [4]");
    tg_tape_reset(tp);
    /* non-scalar backward */
    tg_tensor *y = tg_matmul(tp, a, d);
    CHECK(tg_backward(tp, y) == TG_ESHAPE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_backward: loss must be a scalar, got shape [3,4]");
    tg_tape_reset(tp);
    /* backward on a reset tape, and stale tensors given to ops */
    int64_t s41[2] = {4, 1};
    tg_tensor *w = tg_tensor_new(TG_F32, 2, s41);
    tg_tensor *loss;
    int64_t s13[2] = {1, 3}, s31[2] = {3, 1};
    tg_tensor *p = tg_tensor_new(TG_F32, 2, s13), *q = tg_tensor_new(TG_F32, 2, s31);
    tg_set_requires_grad(p, true);
    loss = tg_matmul(tp, p, q);
    CHECK(loss != NULL);
    tg_tape_reset(tp);
    CHECK(tg_backward(tp, loss) == TG_ESTATE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_backward: the loss was not recorded on this tape");
    tg_tape_reset(tp);
    CHECK(tg_tanh(tp, loss) == NULL && tg_tape_errcode(tp) == TG_ESTATE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_tanh: input 0 belongs to another tape or was made before");
    tg_tape_reset(tp);
    /* a loss from another tape */
    tg_tape *other = tg_tape_new();
    loss = tg_matmul(other, p, q);
    CHECK(tg_backward(tp, loss) == TG_ESTATE);
    tg_tape_free(other);
    tg_tape_reset(tp);
    /* backward with NULL, and a loss that needs no gradient */
    CHECK(tg_backward(tp, NULL) == TG_EARG);
    tg_tape_reset(tp);
    loss = tg_matmul(tp, q, tg_tanh(tp, w)); /* [3,1] x [4,1] */
    CHECK(loss == NULL && tg_tape_errcode(tp) == TG_ESHAPE);
    tg_tape_reset(tp);
    tg_tensor *c11 = tg_matmul(tp, q, p); /* nothing requires grad: not recorded */
    tg_set_requires_grad(p, false);
    loss = tg_matmul(tp, p, q);
    CHECK(tg_backward(tp, loss) == TG_EARG);
    CHECK_STR_HAS(tg_tape_error(tp), "does not require a gradient");
    (void)c11;
    tg_tape_reset(tp);
    /* NULL tape */
    CHECK(tg_tanh(NULL, a) == NULL);
    CHECK(tg_backward(NULL, a) == TG_EARG);
    CHECK(strcmp(tg_tape_error(NULL), "no tape (NULL)") == 0);
    tg_tape_free(tp);
    tg_tensor_free(a), tg_tensor_free(b), tg_tensor_free(c), tg_tensor_free(d);
    tg_tensor_free(v), tg_tensor_free(w), tg_tensor_free(p), tg_tensor_free(q);
}

/* ---- stale tensors ----
 * One step of a training loop, repeated identically: a chain of 1-element 1-D tanh ops
 * (176 arena bytes per op, packed at 16 bytes, so a stagger of whole lines could put a stale
 * output exactly on a successor), a [4,8] tanh (data on a cache line), a [4,8] x [8,3]
 * product, a 0-D sum, and the sweep. Keeps every op output and two intermediate gradients. */
typedef struct stale_step {
    tg_tensor *t[16], *loss;
    int n;
} stale_step;

static int stale_run(tg_tape *tp, tg_tensor *const *leaf, stale_step *st)
{
    tg_tape_reset(tp);
    st->n = 0;
    tg_tensor *y = leaf[0];
    for (int i = 0; i < 6; i++) st->t[st->n++] = y = tg_tanh(tp, y);
    tg_tensor *h = st->t[st->n++] = tg_tanh(tp, leaf[1]);
    tg_tensor *p = st->t[st->n++] = tg_matmul(tp, h, leaf[2]);
    tg_tensor *s = st->t[st->n++] = tg_sum(tp, p, TG_ALL_AXES, false);
    st->loss = st->t[st->n++] = tg_add(tp, s, tg_sum(tp, y, TG_ALL_AXES, false));
    int rc = tg_backward(tp, st->loss);
    st->t[st->n++] = tg_grad(h);
    st->t[st->n++] = tg_grad(p);
    return rc;
}

static bool same_grads(tg_tensor *const *leaf, double *saved, bool save)
{
    bool same = true;
    for (int i = 0, k = 0; i < 3; i++)
        for (int64_t j = 0; j < tg_tensor_numel(leaf[i]); j++, k++) {
            double g = tg_get(tg_grad(leaf[i]), j);
            if (save) saved[k] = g;
            /* NOLINTNEXTLINE(bugprone-suspicious-memory-comparison): bitwise on purpose */
            else same &= memcmp(&g, &saved[k], sizeof g) == 0;
        }
    return same;
}

/* In a loop of identical steps, an op output or gradient from 1, 2 or 3 generations back,
 * given to an op or as tg_backward's root, fails with TG_ESTATE and changes nothing: no
 * node, no arena byte, no gradient. From 4 back it is where the same tensor of the current
 * step is, and is taken for it: the documented limit. The stagger costs no allocation. */
static void test_stale_tensors(void)
{
    int64_t s1[1] = {1}, sm[2] = {4, 8}, sw[2] = {8, 3};
    tg_rng r;
    tg_rng_seed(&r, 21);
    tg_tensor *leaf[3] = {rand_leaf(TG_F64, 1, s1, &r, true), rand_leaf(TG_F64, 2, sm, &r, true),
                          rand_leaf(TG_F64, 2, sw, &r, true)};
    tg_tape *tp = tg_tape_new();
    stale_step old, cur;
    double saved[1 + 32 + 24];
    for (int i = 0; i < 8; i++) CHECK(stale_run(tp, leaf, &cur) == TG_OK); /* steady state */
    tg_tape_stats st0, a, b;
    tg_tape_get_stats(tp, &st0);
    for (int back = 1; back <= 4; back++) {
        int caught = 0, apart = 0;
        for (int i = 0; i <= cur.n; i++) { /* i == n: the stale loss as tg_backward's root */
            CHECK(stale_run(tp, leaf, &old) == TG_OK);
            for (int k = 0; k < back; k++) CHECK(stale_run(tp, leaf, &cur) == TG_OK);
            bool elsewhere = true;
            for (int j = 0; j < cur.n; j++) elsewhere &= i == cur.n || old.t[i] != cur.t[j];
            apart += elsewhere;
            tg_tape_get_stats(tp, &a);
            same_grads(leaf, saved, true);
            bool ok;
            if (i < cur.n) {
                tg_tensor *y = tg_tanh(tp, old.t[i]);
                ok = back < 4 ? y == NULL && tg_tape_errcode(tp) == TG_ESTATE &&
                                    strstr(tg_tape_error(tp), "made before tg_tape_reset")
                              : y != NULL && old.t[i] == cur.t[i]; /* the limit */
            } else {
                int rc = tg_backward(tp, old.loss);
                ok = back < 4 ? rc == TG_ESTATE && same_grads(leaf, saved, false)
                              : rc == TG_OK && old.loss == cur.loss;
            }
            tg_tape_get_stats(tp, &b);
            if (back < 4) ok = ok && b.n_nodes == a.n_nodes && b.arena_used == a.arena_used;
            caught += ok;
        }
        if (back < 4) CHECK(apart == cur.n + 1);
        CHECK(caught == cur.n + 1);
        tg_tape_get_stats(tp, &b); /* the failed ops took nothing */
        if (back == 3) CHECK(b.n_allocs == st0.n_allocs && b.arena_high == st0.arena_high);
    }
    /* the binary case: a stale second input, and a stale tensor of another generation
     * mixed with a live one */
    CHECK(stale_run(tp, leaf, &old) == TG_OK);
    CHECK(stale_run(tp, leaf, &cur) == TG_OK);
    CHECK(tg_add(tp, cur.t[6], old.t[6]) == NULL && tg_tape_errcode(tp) == TG_ESTATE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_add: input 1 belongs to another tape or was made before");
    tg_tape_free(tp);
    for (int i = 0; i < 3; i++) tg_tensor_free(leaf[i]);
}

/* A hook that returns memory 16, 32 or 48 bytes past a cache line, never on one: realloc's
 * contract promises 16. The block header keeps the raw pointer and the size. */
typedef struct offset_alloc {
    long live, k;
} offset_alloc;

static void *offset_hook(void *ctx, void *ptr, size_t size)
{
    offset_alloc *o = ctx;
    unsigned char *raw = ptr ? ((unsigned char **)ptr)[-2] : NULL;
    size_t old = ptr ? ((size_t *)ptr)[-1] : 0;
    if (size == 0) {
        if (ptr) o->live--;
        free(raw);
        return NULL;
    }
    unsigned char *r = malloc(size + 128);
    if (!r) return NULL;
    uintptr_t u = (((uintptr_t)r + 16 + 63) & ~(uintptr_t)63) + 16 * (uintptr_t)(1 + o->k++ % 3);
    ((unsigned char **)u)[-2] = r;
    ((size_t *)u)[-1] = size;
    if (ptr) {
        memcpy((void *)u, ptr, old < size ? old : size);
        free(raw);
    } else {
        o->live++;
    }
    return (void *)u;
}

static bool aligned(const void *p, uintptr_t a) { return (uintptr_t)p % a == 0; }

/* Data of 64 bytes or more on a cache line, tensor headers on 16 bytes, nodes and smaller
 * data on 8 (packed after the header): for every output and gradient of a step with small and large
 * tensors, saved context (linear_act's dz, a dropout mask), over 8 generations (every stagger), on
 * a hook that never returns a 64-aligned block. */
static void test_arena_alignment(void)
{
    int64_t sx[2] = {5, 7}, sw[2] = {7, 9}, sb[1] = {9}, s1[1] = {1};
    tg_rng r;
    tg_rng_seed(&r, 4);
    tg_tensor *x = rand_leaf(TG_F32, 2, sx, &r, false), *w = rand_leaf(TG_F32, 2, sw, &r, true);
    tg_tensor *b = rand_leaf(TG_F32, 1, sb, &r, true), *c = rand_leaf(TG_F32, 1, s1, &r, true);
    offset_alloc o = {0, 0};
    tg_tape *tp = tg_tape_new_with(offset_hook, &o);
    CHECK(tp && (uintptr_t)tp % 64 != 0);
    int bad = 0, seen = 0;
    for (int gen = 0; gen < 8; gen++) {
        tg_tape_reset(tp);
        tg_tensor *h = tg_linear_act(tp, x, w, b, TG_ACT_TANH, 0);
        h = tg_dropout(tp, h, 0.25, true);
        tg_tensor *y = c;
        for (int i = 0; i < 5; i++) y = tg_tanh(tp, y);
        tg_tensor *loss = tg_add(tp, tg_sum(tp, tg_tanh(tp, h), TG_ALL_AXES, false),
                                 tg_sum(tp, y, TG_ALL_AXES, false));
        CHECK(loss && tg_backward(tp, loss) == TG_OK);
        for (const tg_node *n = tg_tape_first(tp); n; n = tg_node_next(n)) {
            const tg_tensor *t[2] = {tg_node_output(n), tg_grad((tg_tensor *)tg_node_output(n))};
            bad += !aligned(n, 8);
            for (int k = 0; k < 2; k++) {
                if (!t[k]) continue;
                size_t bytes = (size_t)tg_tensor_numel(t[k]) * tg_dtype_size(tg_tensor_dtype(t[k]));
                bad += !aligned(t[k], 16) || !aligned(tg_data_const(t[k]), bytes >= 64 ? 64 : 8);
                seen++;
            }
        }
    }
    CHECK(bad == 0 && seen > 8 * 20);
    tg_tape_free(tp);
    CHECK(o.live == 0);
    tg_tensor_free(x), tg_tensor_free(w), tg_tensor_free(b), tg_tensor_free(c);
}

/* ---- allocation hooks ---- */
typedef struct counting_alloc {
    long calls, fail_at; /* fail the fail_at-th call (1-based); 0 = never */
    long live;
} counting_alloc;

static void *counting(void *ctx, void *ptr, size_t size)
{
    counting_alloc *c = ctx;
    if (size == 0) {
        if (ptr) c->live--;
        free(ptr);
        return NULL;
    }
    c->calls++;
    if (c->fail_at && c->calls == c->fail_at) return NULL;
    void *p = realloc(ptr, size);
    if (p && !ptr) c->live++;
    return p;
}

/* A training-like step: a tanh layer, a product to one output per row, an average over the
 * rows as a [1,64] x [64,1] product, and the sweep. Large enough to need several blocks. */
static int train_step(tg_tape *tp, tg_tensor *x, tg_tensor *w1, tg_tensor *b1, tg_tensor *w2,
                      tg_tensor *avg)
{
    tg_tensor *h = tg_tanh(tp, tg_linear(tp, x, w1, b1));
    tg_tensor *out = tg_tanh(tp, tg_matmul(tp, h, w2));
    tg_tensor *loss = tg_matmul(tp, avg, out);
    if (!loss) return tg_tape_errcode(tp);
    return tg_backward(tp, loss);
}

typedef struct mlp {
    tg_tensor *x, *w1, *b1, *w2, *avg;
} mlp;

static mlp mlp_new(tg_dtype dt)
{
    int64_t sx[2] = {64, 100}, sw1[2] = {100, 200}, sb1[1] = {200}, sw2[2] = {200, 1},
            savg[2] = {1, 64};
    mlp m = {tg_tensor_new(dt, 2, sx), tg_tensor_new(dt, 2, sw1), tg_tensor_new(dt, 1, sb1),
             tg_tensor_new(dt, 2, sw2), tg_tensor_new(dt, 2, savg)};
    tg_rng r;
    tg_rng_seed(&r, 1);
    tg_tensor_rand_normal(m.x, 0, 1, &r);
    tg_tensor_rand_uniform(m.w1, -0.1, 0.1, &r);
    tg_tensor_rand_uniform(m.w2, -0.1, 0.1, &r);
    tg_tensor_fill(m.avg, 1.0 / 64);
    tg_set_requires_grad(m.w1, true);
    tg_set_requires_grad(m.b1, true);
    tg_set_requires_grad(m.w2, true);
    return m;
}

static void mlp_free(mlp *m)
{
    tg_tensor_free(m->x), tg_tensor_free(m->w1), tg_tensor_free(m->b1);
    tg_tensor_free(m->w2), tg_tensor_free(m->avg);
}

/* 1000 steps: after the first few, no allocation at all and a flat arena. */
static void test_arena_flat(void)
{
    mlp m = mlp_new(TG_F64);
    counting_alloc ca = {0, 0, 0};
    tg_tape *tp = tg_tape_new_with(counting, &ca);
    tg_tape_stats st3 = {0}, st;
    int bad = 0;
    for (int step = 0; step < 1000; step++) {
        tg_tape_reset(tp);
        bad += train_step(tp, m.x, m.w1, m.b1, m.w2, m.avg) != TG_OK;
        if (step == 2) tg_tape_get_stats(tp, &st3);
    }
    tg_tape_get_stats(tp, &st);
    CHECK(bad == 0);
    CHECK(st.n_allocs == st3.n_allocs && ca.calls == (long)st.n_allocs);
    CHECK(st.arena_high == st3.arena_high && st.arena_reserved == st3.arena_reserved);
    CHECK(st.arena_reserved >= st.arena_high && st.n_nodes == 5);
    CHECK(st.arena_high > (size_t)64 * 200 * 8 * 2); /* outputs and their grads live there */
    tg_tape_free(tp);
    CHECK(ca.live == 0);
    mlp_free(&m);
}

/* Fail the k-th allocation of a fresh tape's first step, for every k: the step fails with a
 * clean TG_ENOMEM (or the tape cannot be made), nothing leaks, and after a reset the same
 * tape runs the step. */
static void test_alloc_failure(void)
{
    mlp m = mlp_new(TG_F32);
    counting_alloc probe = {0, 0, 0};
    tg_tape *tp = tg_tape_new_with(counting, &probe);
    CHECK(train_step(tp, m.x, m.w1, m.b1, m.w2, m.avg) == TG_OK);
    tg_tape_free(tp);
    long total = probe.calls;
    CHECK(total >= 3); /* the tape and at least two arena blocks */
    int clean = 0;
    for (long k = 1; k <= total; k++) {
        counting_alloc ca = {0, k, 0};
        tp = tg_tape_new_with(counting, &ca);
        if (!tp) {
            clean += k == 1 && ca.live == 0;
            continue;
        }
        int rc = train_step(tp, m.x, m.w1, m.b1, m.w2, m.avg);
        bool ok = rc == TG_ENOMEM && tg_tape_errcode(tp) == TG_ENOMEM &&
                  strstr(tg_tape_error(tp), "out of memory") != NULL;
        tg_tape_reset(tp);
        ok = ok && train_step(tp, m.x, m.w1, m.b1, m.w2, m.avg) == TG_OK;
        tg_tape_free(tp);
        clean += ok && ca.live == 0;
    }
    CHECK(clean == total);
    mlp_free(&m);
}

/* Profiling: exact call counts per op kind and phase, GEMM calls inside them, times that
 * fit inside the wall time, accumulation over steps, off, clear, bad arguments, printing,
 * and allocation failure. */
static const tg_profile_row *row_of(const tg_profile_row *rows, int n, const char *op)
{
    for (int i = 0; i < n; i++)
        if (strcmp(rows[i].op, op) == 0) return &rows[i];
    return NULL;
}

static void test_profile(void)
{
    mlp m = mlp_new(TG_F32);
    tg_tape *tp = tg_tape_new();
    tg_profile_row rows[8], gemm;
    CHECK(tg_tape_profile(tp, rows, 8, &gemm) == 0 && gemm.forward_calls == 0); /* never on */
    CHECK(tg_tape_set_profiling(tp, true) == TG_OK);
    double wall = 0;
    for (int step = 0; step < 3; step++) {
        tg_tape_reset(tp);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        CHECK(train_step(tp, m.x, m.w1, m.b1, m.w2, m.avg) == TG_OK);
        clock_gettime(CLOCK_MONOTONIC, &b);
        wall += (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    }
    int n = tg_tape_profile(tp, rows, 8, &gemm);
    CHECK(n == 3); /* linear, matmul, tanh */
    const tg_profile_row *lin = row_of(rows, n, "linear"), *mm = row_of(rows, n, "matmul");
    const tg_profile_row *th = row_of(rows, n, "tanh");
    CHECK(lin && lin->forward_calls == 3 && lin->backward_calls == 3);
    CHECK(mm && mm->forward_calls == 6 && mm->backward_calls == 6);
    CHECK(th && th->forward_calls == 6 && th->backward_calls == 6);
    /* per step: 3 forward GEMMs; backward: linear dw (x needs none), matmul(h, w2) dh and
     * dw2, matmul(avg, out) dout (avg needs none) = 4 */
    CHECK(gemm.forward_calls == 9 && gemm.backward_calls == 12);
    double kernels = 0;
    for (int i = 0; i < n; i++) {
        CHECK(rows[i].forward_s > 0 && rows[i].backward_s > 0);
        kernels += rows[i].forward_s + rows[i].backward_s;
    }
    CHECK(kernels <= wall);
    CHECK(lin && mm && gemm.forward_s > 0 && gemm.forward_s <= lin->forward_s + mm->forward_s);
    CHECK(lin && mm && gemm.backward_s > 0 && gemm.backward_s <= lin->backward_s + mm->backward_s);
    CHECK(tg_tape_profile(tp, rows, 1, NULL) == 3); /* counted, one written */
    CHECK(tg_tape_profile(tp, NULL, 0, NULL) == 3);

    FILE *f = tmpfile();
    CHECK(f && tg_tape_profile_print(tp, f) == TG_OK);
    if (f) {
        char text[2048] = "";
        rewind(f);
        size_t len = fread(text, 1, sizeof text - 1, f);
        text[len] = 0;
        CHECK_STR_HAS(text, "linear");
        CHECK_STR_HAS(text, "of which BLIS GEMM");
        CHECK_STR_HAS(text, "all kernels");
        fclose(f);
    }
    FILE *full = fopen("/dev/full", "w");
    if (full) {
        setvbuf(full, NULL, _IONBF, 0);
        CHECK(tg_tape_profile_print(tp, full) == TG_EIO);
        fclose(full);
    }

    CHECK(tg_tape_set_profiling(tp, false) == TG_OK); /* off: figures stay, nothing added */
    tg_tape_reset(tp);
    CHECK(train_step(tp, m.x, m.w1, m.b1, m.w2, m.avg) == TG_OK);
    n = tg_tape_profile(tp, rows, 8, &gemm);
    CHECK(n == 3 && row_of(rows, n, "linear")->forward_calls == 3 && gemm.forward_calls == 9);
    tg_tape_profile_clear(tp);
    CHECK(tg_tape_profile(tp, rows, 8, &gemm) == 0 && gemm.backward_calls == 0);
    CHECK(tg_tape_set_profiling(tp, true) == TG_OK); /* on again: counts from zero */
    tg_tape_reset(tp);
    CHECK(train_step(tp, m.x, m.w1, m.b1, m.w2, m.avg) == TG_OK);
    n = tg_tape_profile(tp, rows, 8, &gemm);
    CHECK(n == 3 && row_of(rows, n, "tanh")->backward_calls == 2 && gemm.backward_calls == 4);

    CHECK(tg_tape_set_profiling(NULL, true) == TG_EARG);
    CHECK(tg_tape_profile(NULL, rows, 8, &gemm) == TG_EARG);
    CHECK(tg_tape_profile(tp, NULL, 8, &gemm) == TG_EARG);
    CHECK(tg_tape_profile(tp, rows, -1, &gemm) == TG_EARG);
    CHECK(tg_tape_profile_print(NULL, stdout) == TG_EARG &&
          tg_tape_profile_print(tp, NULL) == TG_EARG);
    tg_tape_profile_clear(NULL); /* harmless */
    tg_tape_free(tp);

    /* the table comes from the tape's allocator: a failure is reported, nothing changes */
    counting_alloc ca = {0, 2, 0}; /* 1: the tape, 2: the profile table */
    tp = tg_tape_new_with(counting, &ca);
    CHECK(tp && tg_tape_set_profiling(tp, true) == TG_ENOMEM);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_tape_set_profiling: out of memory");
    tg_tape_reset(tp);
    CHECK(train_step(tp, m.x, m.w1, m.b1, m.w2, m.avg) == TG_OK);
    CHECK(tg_tape_profile(tp, rows, 8, NULL) == 0);
    CHECK(tg_tape_set_profiling(tp, true) == TG_OK);
    tg_tape_free(tp);
    CHECK(ca.live == 0);
    mlp_free(&m);
}

/* ---- gradcheck ---- */
static tg_tensor *fn_two_layer(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx; /* in: x [2,3], w [3,4], b [4], v [4,1], avg [1,2] */
    tg_tensor *h = tg_tanh(tp, tg_linear(tp, in[0], in[1], in[2]));
    return tg_matmul(tp, in[4], tg_tanh(tp, tg_matmul(tp, h, in[3])));
}

/* fan-out: w feeds three products, so its gradient is the sum of three paths */
static tg_tensor *fn_fanout(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx; /* x [1,3], w [3,3], v [3,1] */
    tg_tensor *h = tg_tanh(tp, tg_matmul(tp, in[0], in[1]));
    tg_tensor *h2 = tg_tanh(tp, tg_matmul(tp, h, in[1]));
    return tg_matmul(tp, tg_matmul(tp, h2, in[1]), in[2]);
}

static void test_gradcheck_models(void)
{
    tg_rng r;
    tg_rng_seed(&r, 3);
    int64_t sx[2] = {2, 3}, sw[2] = {3, 4}, sb[1] = {4}, sv[2] = {4, 1}, sa[2] = {1, 2};
    tg_tensor *in[5] = {rand_leaf(TG_F64, 2, sx, &r, true), rand_leaf(TG_F64, 2, sw, &r, true),
                        rand_leaf(TG_F64, 1, sb, &r, true), rand_leaf(TG_F64, 2, sv, &r, true),
                        rand_leaf(TG_F64, 2, sa, &r, true)};
    tg_gradcheck_result res;
    CHECK(tg_gradcheck(fn_two_layer, 5, in, NULL, NULL, &res) == TG_OK);
    CHECK(res.n_checked == 6 + 12 + 4 + 4 + 2);
    CHECK(res.max_rel_err <= 1e-6);
    /* the caller's tensors are untouched: f32 inputs are checked in f64 copies */
    tg_tensor *in32[5];
    for (int i = 0; i < 5; i++) {
        in32[i] = tg_tensor_new(TG_F32, tg_tensor_ndim(in[i]), tg_tensor_shape(in[i]));
        for (int64_t j = 0; j < tg_tensor_numel(in[i]); j++) tg_set(in32[i], j, tg_get(in[i], j));
        tg_set_requires_grad(in32[i], i != 2); /* b is not checked */
    }
    CHECK(tg_gradcheck(fn_two_layer, 5, in32, NULL, NULL, &res) == TG_OK);
    CHECK(res.n_checked == 6 + 12 + 4 + 2 && res.max_rel_err <= 1e-6);
    CHECK(tg_grad(in32[0]) == NULL);
    for (int i = 0; i < 5; i++) tg_tensor_free(in[i]), tg_tensor_free(in32[i]);

    int64_t s13[2] = {1, 3}, s33[2] = {3, 3}, s31[2] = {3, 1};
    tg_tensor *f[3] = {rand_leaf(TG_F64, 2, s13, &r, true), rand_leaf(TG_F64, 2, s33, &r, true),
                       rand_leaf(TG_F64, 2, s31, &r, true)};
    CHECK(tg_gradcheck(fn_fanout, 3, f, NULL, NULL, &res) == TG_OK);
    CHECK(res.n_checked == 15 && res.max_rel_err <= 1e-6);
    for (int i = 0; i < 3; i++) tg_tensor_free(f[i]);
}

/* A user op y = x³ whose backward is deliberately wrong (2x² instead of 3x²): gradcheck must
 * catch it, and pass the same op with the right backward. */
static void cube_fwd(void *ctx, int n_in, const tg_tensor *const *in, tg_tensor *out)
{
    (void)ctx, (void)n_in;
    for (int64_t i = 0; i < tg_tensor_numel(out); i++) {
        double x = tg_get(in[0], i);
        tg_set(out, i, x * x * x);
    }
}

static void cube_bwd(void *ctx, int n_in, const tg_tensor *const *in, const tg_tensor *out,
                     const tg_tensor *dout, tg_tensor *const *din)
{
    (void)n_in, (void)out;
    double k = *(const double *)ctx;
    if (!din[0]) return;
    for (int64_t i = 0; i < tg_tensor_numel(out); i++) {
        double x = tg_get(in[0], i);
        tg_set(din[0], i, tg_get(din[0], i) + tg_get(dout, i) * k * x * x);
    }
}

static const tg_custom_op cube_op = {"cube", cube_fwd, cube_bwd, NULL};

static tg_tensor *fn_cube(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    /* in: x [1,4], v [4,1]; loss = cube(x) · v */
    tg_tensor *y = tg_custom(tp, &cube_op, ctx, 1, in, 2, tg_tensor_shape(in[0]));
    return tg_matmul(tp, y, in[1]);
}

static void test_gradcheck_catches_wrong_backward(void)
{
    tg_rng r;
    tg_rng_seed(&r, 5);
    int64_t sx[2] = {1, 4}, sv[2] = {4, 1};
    tg_tensor *in[2] = {rand_leaf(TG_F64, 2, sx, &r, true), rand_leaf(TG_F64, 2, sv, &r, true)};
    tg_gradcheck_result res;
    double right = 3.0, wrong = 2.0;
    CHECK(tg_gradcheck(fn_cube, 2, in, &right, NULL, &res) == TG_OK);
    CHECK(res.max_rel_err <= 1e-6);
    CHECK(tg_gradcheck(fn_cube, 2, in, &wrong, NULL, &res) == TG_OK);
    CHECK(res.max_rel_err > 0.3); /* 2x² against 3x²: a third off wherever x² v is not tiny */
    CHECK(res.worst_input == 0);
    double x = tg_get(in[0], res.worst_index), v = tg_get(in[1], res.worst_index);
    CHECK_NEAR(res.worst_analytic, 2 * x * x * v, 1e-12);
    CHECK_NEAR(res.worst_numeric, 3 * x * x * v, 1e-8);
    /* a function that fails, or returns no scalar, is reported */
    tg_tensor *with_null[2] = {in[0], NULL};
    CHECK(tg_gradcheck(fn_cube, 2, with_null, &right, NULL, &res) == TG_EARG);
    CHECK_STR_HAS(res.msg, "tg_matmul: input 1 is NULL");
    CHECK(tg_gradcheck(NULL, 2, in, &right, NULL, &res) == TG_EARG);
    for (int i = 0; i < 2; i++) tg_tensor_free(in[i]);
}

static tg_tensor *fn_not_scalar(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    return tg_tanh(tp, in[0]);
}

static void test_gradcheck_not_scalar(void)
{
    int64_t s[1] = {3};
    tg_tensor *x = tg_tensor_new(TG_F64, 1, s);
    tg_set_requires_grad(x, true);
    tg_gradcheck_result res;
    CHECK(tg_gradcheck(fn_not_scalar, 1, &x, NULL, NULL, &res) == TG_ESHAPE);
    CHECK_STR_HAS(res.msg, "did not return a scalar");
    tg_tensor_free(x);
}

/* ---- gradcheck's own errors ---- */
static tg_tensor *fn_small(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx; /* sum(tanh(x) * v): no BLIS, so every allocation is the library's */
    return tg_sum(tp, tg_mul(tp, tg_tanh(tp, in[0]), in[1]), TG_ALL_AXES, false);
}

static void nan_fwd(void *ctx, int n_in, const tg_tensor *const *in, tg_tensor *out)
{
    (void)ctx, (void)n_in, (void)in;
    tg_tensor_fill(out, (double)NAN);
}

static void nan_bwd(void *ctx, int n_in, const tg_tensor *const *in, const tg_tensor *out,
                    const tg_tensor *dout, tg_tensor *const *din)
{
    (void)ctx, (void)n_in, (void)in, (void)out, (void)dout;
    if (din[0]) tg_tensor_fill(din[0], (double)NAN);
}

static const tg_custom_op nan_op = {"nan", nan_fwd, nan_bwd, NULL};

static tg_tensor *fn_nan(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx; /* NaN everywhere, value and gradient */
    tg_tensor *y = tg_custom(tp, &nan_op, NULL, 1, in, 1, tg_tensor_shape(in[0]));
    return tg_sum(tp, y, TG_ALL_AXES, false);
}

static tg_tensor *fn_null(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)tp, (void)in, (void)ctx;
    return NULL; /* fails without saying why */
}

static int *fn_after_calls;
static tg_tensor *fn_fails_later(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    if ((*fn_after_calls)-- <= 0) return fn_null(tp, in, ctx);
    return fn_small(tp, in, ctx);
}

/* Every error return leaves a message: a NaN function, a NULL without a tape error (first
 * or at a perturbed point), and every allocation failing in turn, which must also leak
 * nothing (counted here; the sanitizer and valgrind runs skip that part). */
static void test_gradcheck_errors(void)
{
    int64_t s[1] = {3};
    tg_rng r;
    tg_rng_seed(&r, 8);
    tg_tensor *in[2] = {rand_leaf(TG_F32, 1, s, &r, true), rand_leaf(TG_F32, 1, s, &r, true)};
    tg_gradcheck_result res;
    CHECK(tg_gradcheck(fn_nan, 2, in, NULL, NULL, &res) == TG_EARG);
    CHECK_STR_HAS(res.msg, "tg_gradcheck: input 0 element 0: the function is NaN near it");
    CHECK(tg_gradcheck(fn_null, 2, in, NULL, NULL, &res) == TG_EARG);
    CHECK_STR_HAS(res.msg, "tg_gradcheck: function returned NULL with no error on the tape");
    int calls = 3;
    fn_after_calls = &calls;
    CHECK(tg_gradcheck(fn_fails_later, 2, in, NULL, NULL, &res) == TG_EARG);
    CHECK_STR_HAS(res.msg, "function returned NULL at a perturbed point");
    CHECK(tg_gradcheck(fn_small, 2, in, NULL, NULL, NULL) == TG_OK); /* res may be NULL */

    if (!mf_works()) {
        printf("  note: allocation failure injection not available here; skipped\n");
    } else {
        mf_arm(0);
        int rc = tg_gradcheck(fn_small, 2, in, NULL, NULL, &res);
        long total = mf_calls, live = mf_live;
        mf_disarm();
        CHECK(rc == TG_OK && res.n_checked == 6 && total >= 8 && live == 0);
        int clean = 0, nomem = 0;
        for (long k = 1; k <= total; k++) {
            mf_arm(k);
            rc = tg_gradcheck(fn_small, 2, in, NULL, NULL, &res);
            live = mf_live;
            mf_disarm();
            nomem += rc == TG_ENOMEM;
            clean += live == 0 && (rc == TG_OK || (rc < 0 && res.msg[0] != '\0')) &&
                     (rc != TG_ENOMEM || strstr(res.msg, "out of memory"));
            if (live || (rc && !res.msg[0]))
                printf("  allocation %ld: rc %d, %ld live, \"%s\"\n", k, rc, live, res.msg);
        }
        CHECK(clean == total && nomem >= 5);
    }
    tg_tensor_free(in[0]), tg_tensor_free(in[1]);
}

/* f32 and f64 agree within f32 tolerance, values and gradients. */
static void test_f32_matches_f64(void)
{
    mlp a = mlp_new(TG_F32), b = mlp_new(TG_F64);
    tg_tape *ta = tg_tape_new(), *tb = tg_tape_new();
    CHECK(train_step(ta, a.x, a.w1, a.b1, a.w2, a.avg) == TG_OK);
    CHECK(train_step(tb, b.x, b.w1, b.b1, b.w2, b.avg) == TG_OK);
    double worst = 0;
    tg_tensor *pa[3] = {a.w1, a.b1, a.w2}, *pb[3] = {b.w1, b.b1, b.w2};
    for (int p = 0; p < 3; p++)
        for (int64_t i = 0; i < tg_tensor_numel(pa[p]); i++)
            worst = fmax(worst, fabs(tg_get(tg_grad(pa[p]), i) - tg_get(tg_grad(pb[p]), i)));
    CHECK(worst < 1e-5);
    tg_tape_free(ta), tg_tape_free(tb);
    mlp_free(&a), mlp_free(&b);
}

/* A chain of 20000 tiny ops, swept back: the gradient is the product of the local
 * derivatives, and a second identical step allocates nothing. */
static void test_long_chain(void)
{
    int64_t s[2] = {1, 1};
    double x0 = 0.9;
    tg_tensor *x = vec(TG_F64, 2, s, &x0);
    tg_set_requires_grad(x, true);
    tg_tape *tp = tg_tape_new();
    tg_tape_stats st1, st2;
    for (int rep = 0; rep < 2; rep++) {
        tg_tape_reset(tp);
        tg_zero_grad(x);
        tg_tensor *y = x;
        double v = x0, d = 1;
        for (int i = 0; i < 20000; i++) {
            y = tg_tanh(tp, y);
            v = tanh(v);
            d *= 1 - v * v;
        }
        CHECK(tg_backward(tp, y) == TG_OK);
        CHECK_NEAR(tg_get(y, 0), v, 1e-12);
        CHECK_NEAR(tg_get(tg_grad(x), 0), d, 1e-12 * fabs(d) + 1e-300);
        tg_tape_get_stats(tp, rep ? &st2 : &st1);
    }
    CHECK(st1.n_nodes == 20000 && st2.n_allocs == st1.n_allocs);
    tg_tape_free(tp);
    tg_tensor_free(x);
}

static void test_graph_api(void)
{
    int64_t sx[2] = {2, 3}, sw[2] = {3, 4}, sb[1] = {4}, sv[2] = {4, 1}, sa[2] = {1, 2};
    tg_rng r;
    tg_rng_seed(&r, 9);
    tg_tensor *in[5] = {rand_leaf(TG_F32, 2, sx, &r, false), rand_leaf(TG_F32, 2, sw, &r, true),
                        rand_leaf(TG_F32, 1, sb, &r, true), rand_leaf(TG_F32, 2, sv, &r, true),
                        rand_leaf(TG_F32, 2, sa, &r, false)};
    tg_tape *tp = tg_tape_new();
    tg_tensor *loss = fn_two_layer(tp, in, NULL);
    const char *want[5] = {"linear", "tanh", "matmul", "tanh", "matmul"};
    int i = 0, ok = 0;
    for (const tg_node *n = tg_tape_first(tp); n; n = tg_node_next(n), i++)
        ok += i < 5 && strcmp(tg_node_op(n), want[i]) == 0 && !tg_node_has_grad(n);
    CHECK(i == 5 && ok == 5);
    const tg_node *first = tg_tape_first(tp);
    CHECK(tg_node_n_inputs(first) == 3 && tg_node_input(first, 1) == in[1]);
    CHECK(tg_node_input(first, 3) == NULL);
    CHECK(tg_tensor_dim(tg_node_output(first), 1) == 4);
    tg_backward(tp, loss);
    ok = 0;
    for (const tg_node *n = tg_tape_first(tp); n; n = tg_node_next(n)) ok += tg_node_has_grad(n);
    CHECK(ok == 5);
    char dir[] = "/tmp/tg_graph_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[64], svg[64], cmd[256];
    snprintf(path, sizeof path, "%s/g.dot", dir);
    snprintf(svg, sizeof svg, "%s/g.svg", dir);
    CHECK(tg_export_dot(tp, path) == TG_OK);
    FILE *f = fopen(path, "r");
    char text[8192] = {0};
    size_t len = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f) fclose(f);
    CHECK(len > 0);
    CHECK_STR_HAS(text, "digraph tape");
    CHECK_STR_HAS(text, "linear\\n[2,4] f32");
    CHECK_STR_HAS(text, "leaf [3,4]\\nrequires grad");
    if (system("command -v dot >/dev/null 2>&1") == 0) { /* Graphviz installed: render it */
        snprintf(cmd, sizeof cmd, "dot -Tsvg %s -o %s 2>/dev/null", path, svg);
        CHECK(system(cmd) == 0);
        remove(svg);
    }
    CHECK(tg_export_dot(tp, "/nonexistent-dir/g.dot") == TG_EIO);
    remove(path);
    rmdir(dir);
    tg_tape_free(tp);
    for (int k = 0; k < 5; k++) tg_tensor_free(in[k]);
}

/* ---- threads ---- */
/* 0 and -1 are refused and change nothing; more threads than CPUs apply the CPU count
 * (100000 crashed libgomp, 1000 and INT_MAX never finished), and a product then runs. */
static void test_num_threads(void)
{
    int n0 = tg_get_num_threads();
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK(tg_set_num_threads(0) == TG_EARG && tg_get_num_threads() == n0);
    CHECK(tg_set_num_threads(-1) == TG_EARG && tg_get_num_threads() == n0);
    CHECK(tg_set_num_threads(INT_MIN) == TG_EARG && tg_get_num_threads() == n0);
    int64_t sa[2] = {64, 48}, sb[2] = {48, 32};
    tg_rng r;
    tg_rng_seed(&r, 2);
    tg_tensor *a = rand_leaf(TG_F32, 2, sa, &r, false), *b = rand_leaf(TG_F32, 2, sb, &r, true);
    const int asks[2] = {100000, INT_MAX};
    for (int i = 0; i < 2; i++) {
        int got = tg_set_num_threads(asks[i]);
        CHECK(got >= 1 && got <= online && tg_get_num_threads() == got);
        tg_tape *tp = tg_tape_new();
        tg_tensor *y = tg_matmul(tp, a, b);
        CHECK(y && tg_backward(tp, tg_sum(tp, y, TG_ALL_AXES, false)) == TG_OK);
        tg_tape_free(tp);
    }
    CHECK(tg_set_num_threads(1) == 1 && tg_get_num_threads() == 1);
    int two = tg_set_num_threads(2);
    CHECK(two == (online >= 2 ? 2 : 1));
    tg_set_num_threads(n0);
    tg_tensor_free(a), tg_tensor_free(b);
}

/* Tapes on separate threads: each thread trains its own copy of a small model for a few
 * steps (its own tape and parameters; the input x is shared, read only), and the weights
 * must come out with the very bits of the same runs done one after another. */
typedef struct thread_run {
    const tg_tensor *x;
    uint64_t seed;
    double w[100 * 20 + 20 * 1];
    int rc;
} thread_run;

static void *train_copy(void *arg)
{
    thread_run *tr = arg;
    int64_t sw1[2] = {100, 20}, sb1[1] = {20}, sw2[2] = {20, 1}, savg[2] = {1, 64};
    tg_rng r;
    tg_rng_seed(&r, tr->seed);
    tg_tensor *w1 = rand_leaf(TG_F32, 2, sw1, &r, true), *b1 = rand_leaf(TG_F32, 1, sb1, &r, true);
    tg_tensor *w2 = rand_leaf(TG_F32, 2, sw2, &r, true), *avg = tg_tensor_new(TG_F32, 2, savg);
    tg_tensor_fill(avg, 1.0 / 64);
    tg_tape *tp = tg_tape_new();
    tg_tensor *p[3] = {w1, b1, w2};
    tr->rc = 0;
    for (int step = 0; step < 20 && !tr->rc; step++) {
        tg_tape_reset(tp);
        for (int i = 0; i < 3; i++) tg_zero_grad(p[i]);
        tg_tensor *h = tg_tanh(tp, tg_linear(tp, (tg_tensor *)tr->x, w1, b1));
        tg_tensor *loss = tg_matmul(tp, avg, tg_tanh(tp, tg_matmul(tp, h, w2)));
        tr->rc = loss ? tg_backward(tp, loss) : tg_tape_errcode(tp);
        for (int i = 0; i < 3 && !tr->rc; i++) { /* plain SGD on the weights */
            float *v = tg_data(p[i]);
            const float *g = tg_data_const(tg_grad(p[i]));
            for (int64_t j = 0; j < tg_tensor_numel(p[i]); j++) v[j] -= 0.1f * g[j];
        }
    }
    for (int64_t j = 0; j < 2000; j++) tr->w[j] = tg_get(w1, j);
    for (int64_t j = 0; j < 20; j++) tr->w[2000 + j] = tg_get(w2, j);
    tg_tape_free(tp);
    tg_tensor_free(w1), tg_tensor_free(b1), tg_tensor_free(w2), tg_tensor_free(avg);
    return NULL;
}

static void test_threads_separate_tapes(void)
{
    enum { T = 4 };
    int64_t sx[2] = {64, 100};
    tg_rng r;
    tg_rng_seed(&r, 30);
    tg_tensor *x = rand_leaf(TG_F32, 2, sx, &r, false);
    static thread_run seq[T], par[T];
    for (int i = 0; i < T; i++) {
        seq[i].x = par[i].x = x;
        seq[i].seed = par[i].seed = 100 + (uint64_t)i;
        train_copy(&seq[i]);
    }
    pthread_t th[T];
    int started = 0;
    for (int i = 0; i < T; i++) started += pthread_create(&th[i], NULL, train_copy, &par[i]) == 0;
    CHECK(started == T);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    int same = 0;
    for (int i = 0; i < T; i++)
        same += seq[i].rc == TG_OK && par[i].rc == TG_OK &&
                /* NOLINTNEXTLINE(bugprone-suspicious-memory-comparison): bitwise on purpose */
                memcmp(seq[i].w, par[i].w, sizeof seq[i].w) == 0;
    CHECK(same == T);
    /* NOLINTNEXTLINE(bugprone-suspicious-memory-comparison): bitwise on purpose */
    CHECK(memcmp(seq[0].w, seq[1].w, sizeof seq[0].w) != 0); /* the runs do differ */
    tg_tensor_free(x);
}

static const check_case cases[] = {
    TEST(test_tensor_basics),
    TEST(test_tensor_random),
    TEST(test_tensor_print),
    TEST(test_backward_by_hand),
    TEST(test_backward_twice),
    TEST(test_lazy_zero_never_reads_old_values),
    TEST(test_grad_mode_and_recording),
    TEST(test_sweep_starts_at_loss),
    TEST(test_leaf_loss),
    TEST(test_errors),
    TEST(test_stale_tensors),
    TEST(test_arena_alignment),
    TEST(test_arena_flat),
    TEST(test_alloc_failure),
    TEST(test_profile),
    TEST(test_gradcheck_models),
    TEST(test_gradcheck_catches_wrong_backward),
    TEST(test_gradcheck_not_scalar),
    TEST(test_gradcheck_errors),
    TEST(test_f32_matches_f64),
    TEST(test_long_chain),
    TEST(test_graph_api),
    TEST(test_num_threads),
    TEST(test_threads_separate_tapes),
};
TEST_MAIN("test_autograd", cases)
