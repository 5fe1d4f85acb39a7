/* ops/elem.h: the per-element functions of ops/elem_t.h, stamped for float (name_f32, float
 * libm) and double (name_f64), and the dispatch of the one-input loop on the node's dtype.
 * An op's kernels then read as the loop and the element function:
 *     void tg_tanh_fwd(tg_node *n) { unary_fwd(n, tanh_f32, tanh_f64); }
 * The loops take the element function as a pointer and are always inlined, so at every
 * call the pointer is a constant and the element function is inlined into a plain loop
 * that vectorises as a hand-written one would. */
#ifndef TAPEGRAD_OPS_ELEM_H
#define TAPEGRAD_OPS_ELEM_H

#include "internal.h"

#ifdef __GNUC__
#define TG_INLINE static inline __attribute__((always_inline))
#else
#define TG_INLINE static inline
#endif

#define TG_TEMPLATE "elem_t.h"
#include "stamp.h"

/* y = f(x, a) with the function of the node's dtype. */
TG_INLINE void unary_fwd(tg_node *n, float (*f32)(float, float), double (*f64)(double, double))
{
    if (n->out->dtype == TG_F32) unary_fwd_f32(n, f32);
    else unary_fwd_f64(n, f64);
}

/* dx += df(dy, x, y, a), if the input needs a gradient. */
TG_INLINE void unary_bwd(tg_node *n, float (*f32)(float, float, float, float),
                         double (*f64)(double, double, double, double))
{
    if (!n->in[0]->requires_grad) return;
    if (n->out->dtype == TG_F32) unary_bwd_f32(n, f32);
    else unary_bwd_f64(n, f64);
}

#endif
