/* ops/vecmath.c: the array functions of ops/vecmath.h on libmvec, and the thread split. */
#include "vecmath.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../include/tapegrad.h"

#if defined(__x86_64__) && defined(__GNUC__) && defined(__GLIBC__) && !defined(TG_PLAIN)
#if __GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35)
#define TG_MVEC 1
#endif
#endif

#ifdef TG_MVEC
/* libmvec's AVX2 entry points (x86-64 vector function ABI, ISA 'd'): 8 floats or 4 doubles
 * in a ymm register. Only called from functions compiled for AVX2. */
typedef float v8sf __attribute__((vector_size(32)));
typedef double v4df __attribute__((vector_size(32)));
#define MVEC_DECL(fn)                                                                              \
    v8sf mv_##fn##f(v8sf) __asm__("_ZGVdN8v_" #fn "f") __attribute__((target("avx2")));            \
    v4df mv_##fn(v4df) __asm__("_ZGVdN4v_" #fn) __attribute__((target("avx2")));
MVEC_DECL(tanh)
MVEC_DECL(exp)
MVEC_DECL(expm1)
MVEC_DECL(log)
MVEC_DECL(log1p)
#undef MVEC_DECL

/* The last r (1 <= r < W) elements of x in the low lanes of a vector, the others zero, and
 * back: element by element, with constant lane numbers (a loop over the lanes compiles to
 * a copy through the stack), so that the vector is built in registers. A copy through the
 * stack (memcpy into a zeroed vector) is a wide load of bytes just stored narrowly, which
 * waits for the stores (store-to-load forwarding fails): it took 20 of the 32 ns of a
 * 1-element tanh (docs/performance.md). */
__attribute__((always_inline, target("avx2"))) static inline v8sf tail_in_f32(const float *x,
                                                                              int64_t r)
{
    v8sf v = {x[0]};
    if (r > 1) v[1] = x[1];
    if (r > 2) v[2] = x[2];
    if (r > 3) v[3] = x[3];
    if (r > 4) v[4] = x[4];
    if (r > 5) v[5] = x[5];
    if (r > 6) v[6] = x[6];
    return v;
}
__attribute__((always_inline, target("avx2"))) static inline void tail_out_f32(v8sf v, float *y,
                                                                               int64_t r)
{
    y[0] = v[0];
    if (r > 1) y[1] = v[1];
    if (r > 2) y[2] = v[2];
    if (r > 3) y[3] = v[3];
    if (r > 4) y[4] = v[4];
    if (r > 5) y[5] = v[5];
    if (r > 6) y[6] = v[6];
}
__attribute__((always_inline, target("avx2"))) static inline v4df tail_in_f64(const double *x,
                                                                              int64_t r)
{
    v4df v = {x[0]};
    if (r > 1) v[1] = x[1];
    if (r > 2) v[2] = x[2];
    return v;
}
__attribute__((always_inline, target("avx2"))) static inline void tail_out_f64(v4df v, double *y,
                                                                               int64_t r)
{
    y[0] = v[0];
    if (r > 1) y[1] = v[1];
    if (r > 2) y[2] = v[2];
}

/* y = vf(x) over whole vectors of W elements of T, then the rest zero-padded in one vector,
 * so every element is the vector function's. */
#define MVEC_LOOP(name, T, V, vf, sfx)                                                             \
    __attribute__((noinline, target("avx2"))) static void name##_tail(const T *x, T *y, int64_t r) \
    {                                                                                              \
        tail_out_##sfx(vf(tail_in_##sfx(x, r)), y, r);                                             \
    }                                                                                              \
    __attribute__((noinline, target("avx2"))) static void name(const T *x, T *y, int64_t n)        \
    {                                                                                              \
        const int64_t w = (int64_t)(sizeof(V) / sizeof(T));                                        \
        int64_t i = 0;                                                                             \
        V v;                                                                                       \
        for (; i + w <= n; i += w) {                                                               \
            memcpy(&v, x + i, sizeof v);                                                           \
            v = vf(v);                                                                             \
            memcpy(y + i, &v, sizeof v);                                                           \
        }                                                                                          \
        if (i < n) name##_tail(x + i, y + i, n - i);                                               \
    }
#define MVEC_LOOPS(fn)                                                                             \
    MVEC_LOOP(fn##_f32_avx2, float, v8sf, mv_##fn##f, f32)                                         \
    MVEC_LOOP(fn##_f64_avx2, double, v4df, mv_##fn, f64)
/* f64 tanh as expm1(2x) / (expm1(2x) + 2), and ±1 where |x| > 20 (tanh rounds to ±1 from
 * 19.1 on; expm1 would overflow from 355): on libmvec's expm1 it takes 1.7 ns per double
 * here against 3.4-3.9 for libmvec's own tanh, one ulp further from libm (5 against 4;
 * docs/performance.md, Vector math). ±0, NaN and subnormals come out as libm's. */
typedef long long v4di __attribute__((vector_size(32)));
__attribute__((target("avx2"))) static inline v4df mv_tanh_em1(v4df x)
{
    const v4df e = mv_expm1(x + x);
    const v4df y = e / (e + 2.0);
    const v4di big = (x > 20.0) | (x < -20.0);
    const v4di sign = (v4di)x & (v4di)(v4df){-0.0, -0.0, -0.0, -0.0};
    const v4di one = sign | (v4di)(v4df){1.0, 1.0, 1.0, 1.0};
    return (v4df)((one & big) | ((v4di)y & ~big));
}
MVEC_LOOP(tanh_f32_avx2, float, v8sf, mv_tanhf, f32)
MVEC_LOOP(tanh_f64_avx2, double, v4df, mv_tanh_em1, f64)
MVEC_LOOPS(exp)
MVEC_LOOPS(expm1)
MVEC_LOOPS(log)
MVEC_LOOPS(log1p)
#undef MVEC_LOOPS
#undef MVEC_LOOP

/* The CPU's answer, read once by the loader (before any thread runs). */
static bool have_avx2;
__attribute__((constructor)) static void vm_init(void)
{
    __builtin_cpu_init();
    have_avx2 = __builtin_cpu_supports("avx2");
}
bool tg_vm_vector(void) { return have_avx2; }
#define VEC_PATH(fn, dt)                                                                           \
    if (have_avx2) { /* under one vector: the part vector alone, without the loop's registers */   \
        if (n >= (int64_t)(32 / sizeof *x)) fn##_##dt##_avx2(x, y, n);                             \
        else if (n > 0) fn##_##dt##_avx2_tail(x, y, n);                                            \
        return;                                                                                    \
    }
#else
bool tg_vm_vector(void) { return false; }
#define VEC_PATH(fn, dt)
#endif

/* The reference: scalar libm. */
#define VM_FN(fn)                                                                                  \
    void tg_vm_##fn##_f32(const float *x, float *y, int64_t n)                                     \
    {                                                                                              \
        VEC_PATH(fn, f32)                                                                          \
        for (int64_t i = 0; i < n; i++) y[i] = fn##f(x[i]);                                        \
    }                                                                                              \
    void tg_vm_##fn##_f64(const double *x, double *y, int64_t n)                                   \
    {                                                                                              \
        VEC_PATH(fn, f64)                                                                          \
        for (int64_t i = 0; i < n; i++) y[i] = fn(x[i]);                                           \
    }
VM_FN(tanh)
VM_FN(exp)
VM_FN(expm1)
VM_FN(log)
VM_FN(log1p)
#undef VM_FN

/* ---- the thread split ---- */
int tg_par_threads(int64_t len)
{
#if defined(_OPENMP) && !defined(TG_PLAIN)
    if (len < TG_PAR_MIN || omp_in_parallel()) return 1;
    int nt = tg_get_num_threads();
    int64_t most = len / TG_PAR_ALIGN; /* parts of at least TG_PAR_ALIGN elements */
    return nt < 1 ? 1 : nt > most ? (int)most : nt;
#else
    (void)len;
    return 1;
#endif
}

/* Part t of nt of [0, count), cut at multiples of align (the last part takes the rest). */
static inline void part_bounds(int64_t count, int64_t align, int nt, int t, int64_t *i0,
                               int64_t *i1)
{
    const int64_t units = count / align;
    *i0 = t == 0 ? 0 : units * t / nt * align;
    *i1 = t + 1 == nt ? count : units * (t + 1) / nt * align;
}

void tg_par_ranges(int64_t count, int64_t align, int nt,
                   void (*fn)(void *ctx, int64_t i0, int64_t i1), void *ctx)
{
    if (nt > count / align) nt = (int)(count / align);
    if (nt <= 1) {
        fn(ctx, 0, count);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(static, 1) num_threads(nt)
#endif
    for (int t = 0; t < nt; t++) {
        int64_t i0, i1;
        part_bounds(count, align, nt, t, &i0, &i1);
        if (i0 < i1) fn(ctx, i0, i1);
    }
}

/* tg_par_range's parts as tg_par_ranges's */
typedef struct node_part {
    struct tg_node *n;
    tg_part_fn *part;
    int beta;
} node_part;
static void node_part_run(void *ctx, int64_t i0, int64_t i1)
{
    const node_part *c = ctx;
    c->part(c->n, i0, i1, c->beta);
}
void tg_par_range(struct tg_node *n, int64_t count, int64_t align, int nt, tg_part_fn *part,
                  int beta)
{
    node_part c = {n, part, beta};
    tg_par_ranges(count, align, nt, node_part_run, &c);
}

typedef struct zero_ctx {
    char *p;
    size_t esize;
} zero_ctx;
static void zero_run(void *ctx, int64_t i0, int64_t i1)
{
    const zero_ctx *c = ctx;
    if (i1 > i0) memset(c->p + (size_t)i0 * c->esize, 0, (size_t)(i1 - i0) * c->esize);
}
void tg_par_zero(void *p, int64_t numel, size_t esize)
{
    if (numel < TG_PAR_MIN) { /* one memset, without the split's calls */
        if (numel > 0) memset(p, 0, (size_t)numel * esize);
        return;
    }
    zero_ctx c = {p, esize};
    tg_par_ranges(numel, TG_PAR_ALIGN, tg_par_threads(numel), zero_run, &c);
}

void tg_par_split(struct tg_node *n, int64_t len, tg_part_fn *part, int beta)
{
    tg_par_range(n, len, TG_PAR_ALIGN, tg_par_threads(len), part, beta);
}

void tg_par_parts(int64_t len, int count, void (*fn)(void *ctx, int p), void *ctx)
{
    int nt = count > 1 ? tg_par_threads(len) : 1;
    if (nt > count) nt = count;
    if (nt <= 1) {
        for (int p = 0; p < count; p++) fn(ctx, p);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
    for (int p = 0; p < count; p++) fn(ctx, p);
}
