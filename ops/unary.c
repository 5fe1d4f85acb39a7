/* ops/unary.c: elementwise math of one input: neg, add_scalar, mul_scalar, pow_scalar, exp,
 * log, sqrt, abs, square. Attribute f[0] holds the scalar. Each kernel is one flat loop. */
#include "internal.h"

/* UNARY(name, forward of x with scalar c, dx of (dy, x, y, c)); T is the element type. */
#define UNARY_KERNELS(NAME, T, SFX, FWD, DX)                                                 \
    static void NAME##_fwd_##SFX(tg_node *n)                                                 \
    {                                                                                        \
        const T *restrict x = n->in[0]->data;                                                \
        T *restrict y = n->out->data;                                                        \
        const T c = (T)n->f[0];                                                              \
        (void)c;                                                                             \
        for (int64_t i = 0, len = n->out->numel; i < len; i++) y[i] = FWD;                   \
    }                                                                                        \
    static void NAME##_bwd_##SFX(tg_node *n)                                                 \
    {                                                                                        \
        const T *restrict x = n->in[0]->data, *restrict y = n->out->data;                    \
        const T *restrict dy = n->out->grad->data;                                           \
        T *restrict dx = n->in[0]->grad->data;                                               \
        const T c = (T)n->f[0];                                                              \
        (void)c, (void)x, (void)y;                                                           \
        const int64_t len = n->out->numel;                                                   \
        if (tg_grad_beta(n->in[0]))                                                          \
            for (int64_t i = 0; i < len; i++) dx[i] += DX;                                   \
        else /* the first gradient to reach x: written, not added to zeros */                \
            for (int64_t i = 0; i < len; i++) dx[i] = DX;                                    \
    }

#define UNARY(NAME, FWD32, DX32, FWD64, DX64)                                                \
    UNARY_KERNELS(NAME, float, f32, FWD32, DX32)                                             \
    UNARY_KERNELS(NAME, double, f64, FWD64, DX64)                                            \
    void tg_##NAME##_fwd(tg_node *n) { TG_DISPATCH(n, NAME##_fwd); }                         \
    void tg_##NAME##_bwd(tg_node *n)                                                         \
    {                                                                                        \
        if (n->in[0]->requires_grad) TG_DISPATCH(n, NAME##_bwd);                             \
    }

/* y = -x;  dx -= dy. */
UNARY(neg, -x[i], -dy[i], -x[i], -dy[i])
/* y = x + c;  dx += dy. */
UNARY(add_scalar, x[i] + c, dy[i], x[i] + c, dy[i])
/* y = c x;  dx += c dy. */
UNARY(mul_scalar, c * x[i], c * dy[i], c * x[i], c * dy[i])
/* y = x^p;  dx += dy p x^(p-1). For p = 0 the derivative is 0 even at x = 0 (where C's
 * pow would give 0 · 0^-1 = NaN). C's pow throughout: x < 0 with a non-integer p gives
 * NaN, 0 to a negative p gives inf, as in PyTorch. */
UNARY(pow_scalar, powf(x[i], c), c == 0.0f ? 0.0f : dy[i] * c * powf(x[i], c - 1.0f),
      pow(x[i], c), c == 0.0 ? 0.0 : dy[i] * c * pow(x[i], c - 1.0))
/* y = e^x;  dx += dy y (the output, no second exp). */
UNARY(exp, expf(x[i]), dy[i] * y[i], exp(x[i]), dy[i] * y[i])
/* y = ln x;  dx += dy / x. ln 0 = -inf with dx = ±inf, ln of x < 0 is NaN. */
UNARY(log, logf(x[i]), dy[i] / x[i], log(x[i]), dy[i] / x[i])
/* y = √x;  dx += dy / (2y), inf at x = 0 (the true slope), NaN for x < 0. */
UNARY(sqrt, sqrtf(x[i]), dy[i] * 0.5f / y[i], sqrt(x[i]), dy[i] * 0.5 / y[i])
/* y = |x|;  dx += dy sign(x), with sign(0) = 0 and, as PyTorch, sign(NaN) = 0. A product with a
 * selected constant (rather than selecting dy or -dy) keeps the loop branch-free. */
UNARY(abs, fabsf(x[i]), dy[i] * (x[i] > 0.0f ? 1.0f : x[i] < 0.0f ? -1.0f : 0.0f), fabs(x[i]),
      dy[i] * (x[i] > 0.0 ? 1.0 : x[i] < 0.0 ? -1.0 : 0.0))
/* y = x²;  dx += 2x dy. */
UNARY(square, x[i] * x[i], 2.0f * x[i] * dy[i], x[i] * x[i], 2.0 * x[i] * dy[i])

static tg_tensor *with_scalar(tg_tape *tp, int op, tg_tensor *x, double c)
{
    if (tg_op_check(tp, op, 1, &x)) return NULL;
    if (!isfinite(c)) {
        tg_fail(tp, TG_EARG, "tg_%s: the scalar %g is not finite", tg_op_table[op].name, c);
        return NULL;
    }
    tg_node *n = tg_op_begin(tp, op, 1, &x, x->ndim, x->shape);
    if (!n) return NULL;
    n->f[0] = c;
    return tg_op_finish(tp, n);
}

tg_tensor *tg_neg(tg_tape *tp, tg_tensor *x) { return tg_op_unary(tp, TG_OP_neg, x); }
tg_tensor *tg_add_scalar(tg_tape *tp, tg_tensor *x, double c)
{
    return with_scalar(tp, TG_OP_add_scalar, x, c);
}
tg_tensor *tg_mul_scalar(tg_tape *tp, tg_tensor *x, double c)
{
    return with_scalar(tp, TG_OP_mul_scalar, x, c);
}
tg_tensor *tg_pow_scalar(tg_tape *tp, tg_tensor *x, double p)
{
    return with_scalar(tp, TG_OP_pow_scalar, x, p);
}
tg_tensor *tg_exp(tg_tape *tp, tg_tensor *x) { return tg_op_unary(tp, TG_OP_exp, x); }
tg_tensor *tg_log(tg_tape *tp, tg_tensor *x) { return tg_op_unary(tp, TG_OP_log, x); }
tg_tensor *tg_sqrt(tg_tape *tp, tg_tensor *x) { return tg_op_unary(tp, TG_OP_sqrt, x); }
tg_tensor *tg_abs(tg_tape *tp, tg_tensor *x) { return tg_op_unary(tp, TG_OP_abs, x); }
tg_tensor *tg_square(tg_tape *tp, tg_tensor *x) { return tg_op_unary(tp, TG_OP_square, x); }
