/* ops/internal.h: what op kernels share. Kernels serve TG_F32 and TG_F64: the scalar math of
 * the elementwise ops and activations is written once per element in ops/elem_t.h and
 * applied by a loop per dtype (ops/elem.h); other kernels dispatch on tg_node_out(n)->dtype. */
#ifndef TAPEGRAD_OPS_INTERNAL_H
#define TAPEGRAD_OPS_INTERNAL_H

#include <math.h>
#include <string.h>

#include "../autograd/clones.h"
#include "../autograd/internal.h"

#define TG_OP(nm, ar, sets, at)                                                                    \
    void tg_##nm##_fwd(tg_node *);                                                                 \
    void tg_##nm##_bwd(tg_node *);                                                                 \
    void tg_##nm##_vjp(tg_tape *, const tg_node *, tg_tensor *, const bool *, tg_tensor **);
#include "ops.def"
#undef TG_OP

/* Backwards in ops (tg_op.vjp): dx[i] for the inputs with want[i], from dy and the node's
 * inputs and output, built with public ops only, so that tg_gradients can record them.
 * Each is written next to its op's numeric backward and mirrors its formula. */
/* A constant on tp shaped like t, every element value (autograd/higher.c's tg_const). */
static inline tg_tensor *tg_const_like(tg_tape *tp, const tg_tensor *t, double value)
{
    return tg_const(tp, "gradients", (tg_dtype)t->dtype, t->ndim, t->shape, value);
}
/* Placeholder while an op's backward in ops is being written: fails with TG_ESTATE. */
#define TG_VJP_PENDING(nm)                                                                         \
    void tg_##nm##_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,             \
                       tg_tensor **dx)                                                             \
    {                                                                                              \
        (void)n, (void)dy, (void)want, (void)dx;                                                   \
        tg_fail(tp, TG_ESTATE, "tg_gradients: tg_" #nm " has no backward in ops yet");             \
    }

/* Calls fn##_f32(n) or fn##_f64(n) by the output's dtype. */
#define TG_DISPATCH(n, fn)                                                                         \
    do {                                                                                           \
        if (tg_node_out(n)->dtype == TG_F32) fn##_f32(n);                                          \
        else fn##_f64(n);                                                                          \
    } while (0)

/* An OpenMP pragma for a loop whose iterations are a fast path's parts, each computed as
 * one thread alone would: without OpenMP, and in the plain build (-DTG_PLAIN), the loop
 * runs its parts in turn, giving the same bits. */
#if defined(_OPENMP) && !defined(TG_PLAIN)
#define TG_OMP_FOR(clauses) _Pragma(clauses)
#else
#define TG_OMP_FOR(clauses)
#endif

/* Normalises axis (negative counts from the end) into [0, ndim); -1 if out of range. */
static inline int tg_axis(int axis, int ndim)
{
    if (axis < 0) axis += ndim;
    return axis >= 0 && axis < ndim ? axis : -1;
}

/* NumPy broadcasting of shapes a and b into out (ndim returned in *nd). false if they do
 * not broadcast. Defined in elementwise.c, used by every op that broadcasts. */
bool tg_broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b, int *nd, int64_t *out);

/* ---- ops/gemm.c: the GEMMs on BLIS (the only file of the library that includes blis.h) ----
 * One GEMM, C := beta C + op(A)·op(B), row-major operands as stored: A is (ta ? k×m : m×k),
 * B is (tb ? n×k : k×n), C is m×n. */
typedef struct tg_gemm_args {
    bool ta, tb;
    int64_t m, n, k;
    const void *a, *b;
    double beta;
    void *c;
} tg_gemm_args;
/* g on the thread count of tg_set_num_threads, timed for tp's profile. */
void tg_gemm(tg_tape *tp, tg_dtype dt, const tg_gemm_args *g);
/* g on one BLIS thread, untimed: a part of a loop split over OpenMP threads (ops/conv.c),
 * which times its GEMMs itself. With -DTG_PLAIN, on BLIS's own thread count, as tg_gemm. */
void tg_gemm_1t(tg_dtype dt, const tg_gemm_args *g);
/* The two gradient GEMMs of a backward (g0 the input's, g1 the weight's; either may be
 * NULL): side by side at 2 threads, one BLIS thread each, when both are large and write
 * different buffers (not with -DTG_PLAIN); otherwise in turn, as tg_gemm. */
void tg_gemm_pair(tg_tape *tp, tg_dtype dt, const tg_gemm_args *g0, const tg_gemm_args *g1);

#endif
