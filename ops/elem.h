/* ops/elem.h: the per-element functions of ops/elem_t.h, stamped for float (name_f32, float
 * libm) and double (name_f64), and the dispatch of the one-input loop on the node's dtype.
 * An op's kernels then read as the loop and the element function:
 *     TG_UNARY_KERNELS(relu)   tg_relu_fwd, tg_relu_bwd from relu_f32, relu_dx_f32, ...
 * The loops take the element function as a pointer and are always inlined, so at every
 * call the pointer is a constant and the element function is inlined into a plain loop
 * that vectorises as a hand-written one would. Each kernel runs as parts over element
 * ranges, split over threads for large tensors (tg_par_run, ops/vecmath.h). */
#ifndef TAPEGRAD_OPS_ELEM_H
#define TAPEGRAD_OPS_ELEM_H

#include "internal.h"
#include "vecmath.h"

#ifdef __GNUC__
#define TG_INLINE static inline __attribute__((always_inline))
#else
#define TG_INLINE static inline
#endif

/* tg_par_run with part called directly below TG_PAR_MIN, so that the compiler inlines it
 * into the kernel (the small tensors' path) whatever its size. */
#define TG_PAR_RUN(n, len, part, beta)                                                             \
    do {                                                                                           \
        const int64_t len_ = (len);                                                                \
        if (len_ < TG_PAR_MIN) part(n, 0, len_, beta);                                             \
        else tg_par_split(n, len_, part, beta);                                                    \
    } while (0)

/* Elements per block of the array forms (vm_part in ops/elem_t.h): one stack buffer. */
#define TG_VM_BLOCK 256

#define TG_TEMPLATE "elem_t.h"
#include "stamp.h"

/* y = f(x, a) on elements [i0, i1) with the function of the node's dtype. */
TG_INLINE void unary_fwd(tg_node *n, float (*f32)(float, float), double (*f64)(double, double),
                         int64_t i0, int64_t i1)
{
    if (tg_node_out(n)->dtype == TG_F32) unary_fwd_f32(n, f32, i0, i1);
    else unary_fwd_f64(n, f64, i0, i1);
}

/* dx (+)= df(dy, x, y, a) on elements [i0, i1), beta as in unary_bwd_f32. */
TG_INLINE void unary_bwd(tg_node *n, float (*f32)(float, float, float, float),
                         double (*f64)(double, double, double, double), int64_t i0, int64_t i1,
                         int beta)
{
    if (tg_node_out(n)->dtype == TG_F32) unary_bwd_f32(n, f32, i0, i1, beta);
    else unary_bwd_f64(n, f64, i0, i1, beta);
}

/* The kernels tg_<op>_fwd and tg_<op>_bwd of a one-input op from element functions f and
 * df (f_f32, f_f64, ...), each a part over an element range run by tg_par_run. The
 * backward does nothing when the input needs no gradient. */
#define TG_UNARY_FWD(op, f)                                                                        \
    static inline void op##_fwd_part(tg_node *n, int64_t i0, int64_t i1, int beta)                 \
    {                                                                                              \
        (void)beta;                                                                                \
        unary_fwd(n, f##_f32, f##_f64, i0, i1);                                                    \
    }                                                                                              \
    void tg_##op##_fwd(tg_node *n) { TG_PAR_RUN(n, tg_node_out(n)->numel, op##_fwd_part, 0); }
#define TG_UNARY_BWD(op, df)                                                                       \
    static inline void op##_bwd_part(tg_node *n, int64_t i0, int64_t i1, int beta)                 \
    {                                                                                              \
        unary_bwd(n, df##_f32, df##_f64, i0, i1, beta);                                            \
    }                                                                                              \
    void tg_##op##_bwd(tg_node *n)                                                                 \
    {                                                                                              \
        if (n->in[0]->requires_grad)                                                               \
            TG_PAR_RUN(n, tg_node_out(n)->numel, op##_bwd_part, tg_grad_beta(n->in[0]));           \
    }
#define TG_UNARY_KERNELS(op)                                                                       \
    TG_UNARY_FWD(op, op)                                                                           \
    TG_UNARY_BWD(op, op##_dx)

/* y = g(x) by ops/vecmath.h's array function tg_vm_<g>: the forward of tanh, exp, log. */
#define TG_VM_FWD(op, g)                                                                           \
    static inline void op##_fwd_part(tg_node *n, int64_t i0, int64_t i1, int beta)                 \
    {                                                                                              \
        (void)beta;                                                                                \
        if (tg_node_out(n)->dtype == TG_F32)                                                       \
            tg_vm_##g##_f32((const float *)n->in[0]->data + i0,                                    \
                            (float *)tg_node_out(n)->data + i0, i1 - i0);                          \
        else                                                                                       \
            tg_vm_##g##_f64((const double *)n->in[0]->data + i0,                                   \
                            (double *)tg_node_out(n)->data + i0, i1 - i0);                         \
    }                                                                                              \
    void tg_##op##_fwd(tg_node *n) { TG_PAR_RUN(n, tg_node_out(n)->numel, op##_fwd_part, 0); }

/* vm_part (ops/elem_t.h) of the node's dtype; g2 may be NULL. */
TG_INLINE void vm_part(tg_node *n, int64_t i0, int64_t i1, bool bwd, int beta,
                       float (*pre32)(float), void (*g32)(const float *, float *, int64_t),
                       void (*g2_32)(const float *, float *, int64_t),
                       float (*post32)(float, float, float, float), double (*pre64)(double),
                       void (*g64)(const double *, double *, int64_t),
                       void (*g2_64)(const double *, double *, int64_t),
                       double (*post64)(double, double, double, double))
{
    if (tg_node_out(n)->dtype == TG_F32)
        vm_part_f32(n, i0, i1, bwd, beta, pre32, g32, g2_32, post32);
    else vm_part_f64(n, i0, i1, bwd, beta, pre64, g64, g2_64, post64);
}

#endif
