/* test/test_vecmath.c: the array functions of ops/vecmath.h (libmvec's vector code) against
 * scalar libm, within the ulp bounds docs/performance.md states ("Vector math"), with NaN,
 * ±inf, signed zeros, subnormals and overflowing or underflowing arguments exactly as libm
 * gives them; every element's value the same whatever its position in the array; and the
 * ops that use them (tanh, exp, log, sigmoid, softplus, elu, softmax, log_softmax,
 * linear_act's tanh and sigmoid) giving the element formulas on these values. The plain
 * build (-DTG_PLAIN) must be scalar libm, bit for bit. bench/ulp_scan.c scans every float. */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <tapegrad.h>

#include "../ops/vecmath.h"
#include "check.h"

enum { NFN = 5 };
static const char *const names[NFN] = {"tanh", "exp", "expm1", "log", "log1p"};
static void (*const vf32[NFN])(const float *, float *, int64_t) = {
    tg_vm_tanh_f32, tg_vm_exp_f32, tg_vm_expm1_f32, tg_vm_log_f32, tg_vm_log1p_f32};
static void (*const vf64[NFN])(const double *, double *, int64_t) = {
    tg_vm_tanh_f64, tg_vm_exp_f64, tg_vm_expm1_f64, tg_vm_log_f64, tg_vm_log1p_f64};
static float (*const rf32[NFN])(float) = {tanhf, expf, expm1f, logf, log1pf};
static double (*const rf64[NFN])(double) = {tanh, exp, expm1, log, log1p};
/* The bounds in ulps from scalar libm: f32 the maxima over every float (bench/ulp_scan),
 * f64 over ulp_scan's samples. */
static const int64_t bound32[NFN] = {2, 3, 2, 4, 2};
static const int64_t bound64[NFN] = {5, 3, 3, 2, 2};

/* Float and double bits on one monotone integer line, so that ulps are differences (-0 and
 * +0 are one point: signs of zeros are checked bit for bit with the special values). */
static int64_t ord32(float f)
{
    int32_t i;
    memcpy(&i, &f, 4);
    return i < 0 ? (int64_t)INT32_MIN - i : i;
}
static int64_t ord64(double f)
{
    int64_t i;
    memcpy(&i, &f, 8);
    return i < 0 ? INT64_MIN - i : i;
}
/* ulps between a and b; 0 for two NaNs, INT64_MAX for a NaN against a number. */
static int64_t ulps32(float a, float b)
{
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) ? 0 : INT64_MAX;
    int64_t d = ord32(a) - ord32(b);
    return d < 0 ? -d : d;
}
static int64_t ulps64(double a, double b)
{
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) ? 0 : INT64_MAX;
    if (isinf(a) || isinf(b)) return a == b ? 0 : INT64_MAX;
    int64_t d = ord64(a) - ord64(b); /* finite: no overflow, the ords are < 2^63 apart */
    return d < 0 ? -d : d;
}

/* The bits of a float or double, to compare them exactly (a NaN's too). */
static uint32_t bits32(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static uint64_t bits64(double f)
{
    uint64_t u;
    memcpy(&u, &f, 8);
    return u;
}
/* a[0..n) and b[0..n) hold the same bits. */
static bool same32(const float *a, const float *b, int64_t n)
{
    bool same = true;
    for (int64_t i = 0; i < n; i++) same &= bits32(a[i]) == bits32(b[i]);
    return same;
}
static bool same64(const double *a, const double *b, int64_t n)
{
    bool same = true;
    for (int64_t i = 0; i < n; i++) same &= bits64(a[i]) == bits64(b[i]);
    return same;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return rng_state;
}

static bool vector_expected(void)
{
#if defined(__x86_64__) && defined(__GLIBC__) && !defined(TG_PLAIN) &&                             \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
    return __builtin_cpu_supports("avx2");
#else
    return false;
#endif
}

static void test_path(void)
{
    CHECK(tg_vm_vector() == vector_expected());
#ifdef TG_PLAIN
    CHECK(!tg_vm_vector());
#endif
}

/* Every 2^12-th float bit pattern (with a varying low part) and random ones. */
static void test_ulp_f32(void)
{
    enum { N = (1 << 20) + (1 << 18) };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    for (int64_t i = 0; i < N; i++) {
        uint32_t u =
            i < (1 << 20) ? (uint32_t)(i << 12 | (i * 2654435761u) % 4096) : (uint32_t)rnd();
        memcpy(&x[i], &u, 4);
    }
    for (int f = 0; f < NFN; f++) {
        vf32[f](x, y, N);
        int64_t worst = 0;
        for (int64_t i = 0; i < N; i++) {
            int64_t d = ulps32(y[i], rf32[f](x[i]));
            worst = d > worst ? d : worst;
        }
        int64_t bound = tg_vm_vector() ? bound32[f] : 0;
        if (worst > bound) printf("  f32 %s: %lld ulps\n", names[f], (long long)worst);
        CHECK(worst <= bound);
    }
    free(x), free(y);
}

/* Random doubles: any bit pattern, and |x| of every binade from 2^-60 to 2^12 (where the
 * functions do not saturate), and x within 2^-10 of 1 (log's hard region). */
static void test_ulp_f64(void)
{
    enum { N = 3 << 18 };
    double *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    for (int64_t i = 0; i < N; i++) {
        uint64_t u = rnd();
        double m = (double)(u >> 11) / 9007199254740992.0;
        if (i % 3 == 0) memcpy(&x[i], &u, 8);
        else if (i % 3 == 1) x[i] = (u & 1 ? -1 : 1) * ldexp(1 + m, (int)(u >> 1 & 127) % 73 - 60);
        else x[i] = 1 + (m - 0.5) / 512;
    }
    for (int f = 0; f < NFN; f++) {
        vf64[f](x, y, N);
        int64_t worst = 0;
        for (int64_t i = 0; i < N; i++) {
            int64_t d = ulps64(y[i], rf64[f](x[i]));
            worst = d > worst ? d : worst;
        }
        int64_t bound = tg_vm_vector() ? bound64[f] : 0;
        if (worst > bound) printf("  f64 %s: %lld ulps\n", names[f], (long long)worst);
        CHECK(worst <= bound);
    }
    free(x), free(y);
}

/* NaN (both signs), ±inf, ±0, subnormals, the smallest normals, the largest finite values,
 * and arguments where exp overflows or underflows to 0 and tanh is ±1: libm's bits
 * exactly. (Ordinary arguments are within the bounds above, not always libm's bits.) */
static void test_special(void)
{
    const float s32[] = {0.0f,    -0.0f,    INFINITY,     -INFINITY,     NAN,    -NAN,
                         FLT_MIN, -FLT_MIN, FLT_TRUE_MIN, -FLT_TRUE_MIN, 1e-40f, -1e-40f,
                         FLT_MAX, -FLT_MAX, 89.0f,        -104.0f,       1e20f,  -1e20f};
    const double s64[] = {0.0,
                          -0.0,
                          (double)INFINITY,
                          -(double)INFINITY,
                          (double)NAN,
                          -(double)NAN,
                          DBL_MIN,
                          -DBL_MIN,
                          DBL_TRUE_MIN,
                          -DBL_TRUE_MIN,
                          1e-310,
                          -1e-310,
                          DBL_MAX,
                          -DBL_MAX,
                          710.0,
                          -746.0,
                          1e300,
                          -1e300};
    enum { N32 = sizeof s32 / sizeof s32[0], N64 = sizeof s64 / sizeof s64[0] };
    for (int f = 0; f < NFN; f++) {
        float y[N32];
        double z[N64];
        vf32[f](s32, y, N32);
        vf64[f](s64, z, N64);
        for (int i = 0; i < N32; i++) {
            float r = rf32[f](s32[i]);
            bool same = isnan(r) ? isnan(y[i]) : bits32(r) == bits32(y[i]);
            if (!same)
                printf("  f32 %s(%a) = %a, libm %a\n", names[f], (double)s32[i], (double)y[i],
                       (double)r);
            CHECK(same);
        }
        for (int i = 0; i < N64; i++) {
            double r = rf64[f](s64[i]);
            bool same = isnan(r) ? isnan(z[i]) : bits64(r) == bits64(z[i]);
            if (!same) printf("  f64 %s(%a) = %a, libm %a\n", names[f], s64[i], z[i], r);
            CHECK(same);
        }
    }
}

/* The same values at any offset and in arrays of any length give the same bits (the
 * padded last block): what lets threads split an op anywhere. In place as well. */
static void test_position(void)
{
    enum { N = 300 };
    float x[N], full[N], part[N];
    double xd[N], fulld[N], partd[N];
    for (int i = 0; i < N; i++) x[i] = (float)(xd[i] = (double)(rnd() >> 11) / 0x1p53 * 8 - 2);
    for (int f = 0; f < NFN; f++) {
        vf32[f](x, full, N);
        vf64[f](xd, fulld, N);
        bool same = true;
        for (int o = 0; o < 17; o++)
            for (int len = 0; len + o <= N && len < 40; len++) {
                vf32[f](x + o, part + o, len);
                vf64[f](xd + o, partd + o, len);
                same &= same32(part + o, full + o, len);
                same &= same64(partd + o, fulld + o, len);
            }
        memcpy(part, x, sizeof x);
        vf32[f](part, part, N);
        same &= same32(part, full, N);
        CHECK(same);
    }
}

/* A [4, 97] tensor with values across a range where the functions vary. */
static tg_tensor *input(tg_dtype dt, double lo, double hi)
{
    tg_tensor *x = tg_tensor_new(dt, 2, (int64_t[]){4, 97});
    for (int64_t i = 0; i < 388; i++) tg_set(x, i, lo + (hi - lo) * (double)(i * 37 % 388) / 387);
    tg_set_requires_grad(x, true);
    return x;
}

/* |a - b| within k ulps of the working precision of b's size, or of floor's if larger. */
static bool near(double a, double b, int k, tg_dtype dt, double floor)
{
    double eps = dt == TG_F32 ? (double)FLT_EPSILON : DBL_EPSILON;
    return fabs(a - b) <= k * eps * (fabs(b) > floor ? fabs(b) : floor);
}

/* An element as a long double. */
static long double getl(const tg_tensor *t, int64_t i) { return (long double)tg_get(t, i); }

/* Each op against its formula in long double (the exact value to well below an f64 ulp),
 * forward and gradient (seed 1), within a few ulps of the vector bound. */
static void test_ops(void)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        for (int op = 0; op < 6; op++) {
            tg_tape *tp = tg_tape_new();
            const double lo[6] = {-30, -20, 0.01, -30, -30, -30}, hi[6] = {30, 20, 50, 30, 30, 30};
            tg_tensor *x = input(dt, lo[op], hi[op]);
            tg_tensor *y = op == 0   ? tg_tanh(tp, x)
                           : op == 1 ? tg_exp(tp, x)
                           : op == 2 ? tg_log(tp, x)
                           : op == 3 ? tg_sigmoid(tp, x)
                           : op == 4 ? tg_softplus(tp, x)
                                     : tg_elu(tp, x, 0.7);
            CHECK(y && tg_backward(tp, tg_sum(tp, y, TG_ALL_AXES, false)) == TG_OK);
            bool ok = true;
            for (int64_t i = 0; i < 388 && y; i++) {
                long double v = getl(x, i), f, g;
                switch (op) {
                case 0: f = tanhl(v), g = 1 - getl(y, i) * getl(y, i); break;
                case 1: f = expl(v), g = getl(y, i); break;
                case 2: f = logl(v), g = 1 / v; break;
                case 3: f = 1 / (1 + expl(-v)), g = getl(y, i) * (1 - getl(y, i)); break;
                case 4: f = log1pl(expl(v)), g = 1 / (1 + expl(-v)); break;
                default: f = v > 0 ? v : 0.7L * expm1l(v), g = v > 0 ? 1 : 0.7L * expl(v);
                }
                ok &= near(tg_get(y, i), (double)f, 12, dt, 1e-3);
                ok &=
                    near(tg_get(tg_grad(x), i), (double)g, 12, dt, 1); /* 1: the scale of 1 - y² */
            }
            if (!ok) printf("  op %d, %s\n", op, tg_dtype_name(dt));
            CHECK(ok);
            tg_tape_free(tp);
            tg_tensor_free(x);
        }
    }
}

/* softmax and log_softmax along the last axis, and linear_act's tanh and sigmoid, against
 * long double formulas. */
static void test_softmax_linear_act(void)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        tg_tape *tp = tg_tape_new();
        tg_tensor *x = input(dt, -40, 40);
        tg_tensor *s = tg_softmax(tp, x, -1), *ls = tg_log_softmax(tp, x, -1);
        bool ok = s && ls;
        for (int64_t r = 0; r < 4 && ok; r++) {
            long double m = -(long double)INFINITY, z = 0;
            for (int64_t l = 0; l < 97; l++) m = fmaxl(m, getl(x, r * 97 + l));
            for (int64_t l = 0; l < 97; l++) z += expl(getl(x, r * 97 + l) - m);
            for (int64_t l = 0; l < 97; l++) {
                long double v = getl(x, r * 97 + l) - m;
                ok &= near(tg_get(s, r * 97 + l), (double)(expl(v) / z), 16, dt, 1e-3);
                ok &= near(tg_get(ls, r * 97 + l), (double)(v - logl(z)), 16, dt, 1e-3);
            }
        }
        CHECK(ok);
        /* linear_act: x [4, 97] · w [97, 5] + b, w = 0.01 (i mod 7) - 0.03, b = 0.1 j */
        tg_tensor *w = tg_tensor_new(dt, 2, (int64_t[]){97, 5}),
                  *b = tg_tensor_new(dt, 1, (int64_t[]){5});
        for (int64_t i = 0; i < 485; i++) tg_set(w, i, 0.01 * (double)(i % 7) - 0.03);
        for (int64_t j = 0; j < 5; j++) tg_set(b, j, 0.1 * (double)j);
        for (int a = 0; a < 2; a++) {
            tg_tensor *y = tg_linear_act(tp, x, w, b, a ? TG_ACT_SIGMOID : TG_ACT_TANH, 0);
            ok = y != NULL;
            for (int64_t r = 0; r < 4 && ok; r++)
                for (int64_t j = 0; j < 5; j++) {
                    long double z = getl(b, j);
                    for (int64_t k = 0; k < 97; k++) z += getl(x, r * 97 + k) * getl(w, k * 5 + j);
                    long double f = a ? 1 / (1 + expl(-z)) : tanhl(z);
                    ok &= fabs(tg_get(y, r * 5 + j) - (double)f) <= (d ? 1e-12 : 2e-5);
                }
            CHECK(ok);
        }
        tg_tape_free(tp);
        tg_tensor_free(x), tg_tensor_free(w), tg_tensor_free(b);
    }
}

static const check_case cases[] = {
    TEST(test_path),     TEST(test_ulp_f32), TEST(test_ulp_f64),           TEST(test_special),
    TEST(test_position), TEST(test_ops),     TEST(test_softmax_linear_act)};
TEST_MAIN("test_vecmath", cases)
