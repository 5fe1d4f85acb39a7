/* ops/internal.h: what op kernels share. Kernels serve TG_F32 and TG_F64; write the loop
 * once (a static helper or macro per type) and dispatch on n->out->dtype. */
#ifndef TAPEGRAD_OPS_INTERNAL_H
#define TAPEGRAD_OPS_INTERNAL_H

#include <math.h>
#include <string.h>

#include "../autograd/clones.h"
#include "../autograd/internal.h"

#define TG_OP(nm, ar, sets) void tg_##nm##_fwd(tg_node *); void tg_##nm##_bwd(tg_node *);
#include "ops.def"
#undef TG_OP

/* Calls fn##_f32(n) or fn##_f64(n) by the output's dtype. */
#define TG_DISPATCH(n, fn)                                                                 \
    do {                                                                                   \
        if ((n)->out->dtype == TG_F32) fn##_f32(n);                                        \
        else fn##_f64(n);                                                                  \
    } while (0)

/* The positive and the non-positive part: x = pos(x) + neg(x), and a NaN goes to neg. */
static inline float posf_(float x) { return x > 0.0f ? x : 0.0f; }
static inline float negf_(float x) { return x > 0.0f ? 0.0f : x; }
static inline double pos_(double x) { return x > 0.0 ? x : 0.0; }
static inline double neg_(double x) { return x > 0.0 ? 0.0 : x; }

/* Stable for large |x|: e^-|x| never overflows, and for x < 0 the result e^x / (1 + e^x)
 * keeps its relative precision (no 1 - (1 - ε)). */
static inline float sigmoidf_(float x)
{
    float e = expf(-fabsf(x));
    return (x >= 0.0f ? 1.0f : e) / (1.0f + e);
}
static inline double sigmoid_(double x)
{
    double e = exp(-fabs(x));
    return (x >= 0.0 ? 1.0 : e) / (1.0 + e);
}

/* Normalises axis (negative counts from the end) into [0, ndim); -1 if out of range. */
static inline int tg_axis(int axis, int ndim)
{
    if (axis < 0) axis += ndim;
    return axis >= 0 && axis < ndim ? axis : -1;
}

/* NumPy broadcasting of shapes a and b into out (ndim returned in *nd). false if they do
 * not broadcast. Defined in elementwise.c, used by every op that broadcasts. */
bool tg_broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b, int *nd,
                        int64_t *out);

#endif
