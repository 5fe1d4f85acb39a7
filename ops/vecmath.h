/* ops/vecmath.h: the transcendental functions of the elementwise ops over whole arrays, and
 * the split of a large elementwise loop over threads.
 *
 * tg_vm_<fn>_f32/_f64(x, y, n) set y[i] = fn(x[i]) for i < n (x == y allowed). On x86-64
 * with glibc's libmvec (glibc 2.35 or later) and a CPU with AVX2 they call libmvec's AVX2
 * entry points (_ZGVdN8v_tanhf, _ZGVdN4v_tanh, ...) on blocks of 8 floats or 4 doubles, and
 * the last, partial block zero-padded in a register, so that every element gets the vector
 * function's value whatever its position in the array or the array's length (which is what
 * makes a split over threads give the same bits). Otherwise, and always in the plain build
 * (-DTG_PLAIN), they are loops over the scalar libm function. test/test_vecmath.c compares
 * the two; docs/performance.md ("Vector math") gives the ulp bounds measured over every
 * float by bench/ulp_scan.c. tg_vm_vector() says which path runs. */
#ifndef TAPEGRAD_OPS_VECMATH_H
#define TAPEGRAD_OPS_VECMATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TG_VM_DECL(fn)                                                                             \
    void tg_vm_##fn##_f32(const float *x, float *y, int64_t n);                                    \
    void tg_vm_##fn##_f64(const double *x, double *y, int64_t n);
TG_VM_DECL(tanh)
TG_VM_DECL(exp)
TG_VM_DECL(expm1)
TG_VM_DECL(log)
TG_VM_DECL(log1p)
#undef TG_VM_DECL

/* true when the tg_vm_ functions run libmvec's vector code, false when scalar libm. */
bool tg_vm_vector(void);

/* ---- threads for large elementwise loops ----
 * A kernel's part: its elements [i0, i1), with beta (a backward's tg_grad_beta, read once
 * before the split: 0 to set the gradient, 1 to add to it). tg_par_run(n, len, part, beta)
 * runs part(n, 0, len, beta) on
 * the calling thread when len < TG_PAR_MIN (one compare on the path of small tensors),
 * and otherwise splits [0, len) into tg_get_num_threads() parts, cut at multiples of
 * TG_PAR_ALIGN elements, one thread each (not inside a running parallel region, not in the
 * plain build). A part must compute every element as one thread would, so that any split
 * gives the same bits. */
#define TG_PAR_MIN 32768
#define TG_PAR_ALIGN 64

struct tg_node;
typedef void tg_part_fn(struct tg_node *n, int64_t i0, int64_t i1, int beta);
void tg_par_split(struct tg_node *n, int64_t len, tg_part_fn *part, int beta);
static inline void tg_par_run(struct tg_node *n, int64_t len, tg_part_fn *part, int beta)
{
    if (len < TG_PAR_MIN) part(n, 0, len, beta);
    else tg_par_split(n, len, part, beta);
}

/* The threads for a loop over len elements: 1 below TG_PAR_MIN, inside a running parallel
 * region, or in the plain build; else tg_get_num_threads(), at most len / TG_PAR_ALIGN. */
int tg_par_threads(int64_t len);
/* part(n, i0, i1, beta) over [0, count) split into nt ranges (cut at multiples of align),
 * one thread each: for loops over rows rather than elements. */
void tg_par_range(struct tg_node *n, int64_t count, int64_t align, int nt, tg_part_fn *part,
                  int beta);
/* fn(ctx, i0, i1) over [0, count) split into nt ranges (cut at multiples of align), one
 * thread each; nt <= 1 (or count < 2 align) runs fn(ctx, 0, count) on the calling thread. For
 * kernels whose parts are not a node's (ops/broadcast.c). */
void tg_par_ranges(int64_t count, int64_t align, int nt,
                   void (*fn)(void *ctx, int64_t i0, int64_t i1), void *ctx);
/* Zeroes numel elements of esize bytes at p: one memset below TG_PAR_MIN elements, else
 * tg_par_threads(numel) memsets of parts cut at multiples of TG_PAR_ALIGN elements. */
void tg_par_zero(void *p, int64_t numel, size_t esize);

/* ---- sums that give the same bits at any thread count ----
 * A sum over len >= TG_PAR_MIN terms is cut into TG_SUM_PARTS parts at fixed places
 * (tg_sum_cut: they depend on len alone), each part summed on its own (by one thread), and
 * the part sums added in order 0, 1, ... Below TG_PAR_MIN there is one part. */
#define TG_SUM_PARTS 64
static inline int tg_sum_parts(int64_t len) { return len < TG_PAR_MIN ? 1 : TG_SUM_PARTS; }
/* Where part p of count starts (p = count: len). */
static inline int64_t tg_sum_cut(int64_t len, int count, int p) { return len * p / count; }
/* The part sums added in order 0, 1, ..., count - 1 (count >= 1). */
static inline float tg_parts_sum_f32(const float *part, int count)
{
    float s = part[0];
    for (int p = 1; p < count; p++) s += part[p];
    return s;
}
static inline double tg_parts_sum_f64(const double *part, int count)
{
    double s = part[0];
    for (int p = 1; p < count; p++) s += part[p];
    return s;
}
/* fn(ctx, p) for p in [0, count), over tg_par_threads(len) threads when count > 1. */
void tg_par_parts(int64_t len, int count, void (*fn)(void *ctx, int p), void *ctx);

#endif
