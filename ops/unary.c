/* ops/unary.c: elementwise math of one input: neg, add_scalar, mul_scalar, pow_scalar, exp,
 * log, sqrt, abs, square. The scalar is tg_node_attr(n)->scalar. Each kernel is one flat loop (in
 * parts over threads for large tensors, ops/vecmath.h); exp and log call the array
 * functions of ops/vecmath.h (libmvec's vector code). */
#include "elem.h"

/* The element functions, with the reasoning behind each formula, are in ops/elem_t.h. */
/* y = -x;  dx -= dy. */
TG_UNARY_KERNELS(neg)
/* y = x + c;  dx += dy. */
TG_UNARY_KERNELS(add_scalar)
/* y = c x;  dx += c dy. */
TG_UNARY_KERNELS(mul_scalar)
/* y = x^p;  dx += dy p x^(p-1), 0 for p = 0. */
TG_UNARY_KERNELS(pow_scalar)
/* y = e^x;  dx += dy y. */
TG_VM_FWD(exp, exp)
TG_UNARY_BWD(exp, exp_dx)
/* y = ln x;  dx += dy / x. */
TG_VM_FWD(log, log)
TG_UNARY_BWD(log, log_dx)
/* y = √x;  dx += dy / (2y). */
TG_UNARY_KERNELS(sqrt)
/* y = |x|;  dx += dy sign(x), sign(0) = sign(NaN) = 0. */
TG_UNARY_KERNELS(abs)
/* y = x²;  dx += 2x dy. */
TG_UNARY_KERNELS(square)

/* ---- the same backwards in ops (tg_op.vjp) ---- */
void tg_neg_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)n, (void)want;
    dx[0] = tg_neg(tp, dy);
}
void tg_add_scalar_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                       tg_tensor **dx)
{
    (void)tp, (void)n, (void)want;
    dx[0] = dy;
}
void tg_mul_scalar_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                       tg_tensor **dx)
{
    (void)want;
    dx[0] = tg_mul_scalar(tp, dy, tg_node_attr(n)->scalar);
}
/* p x^(p-1) dy; for p = 0 the numeric backward's exact 0, as a constant. */
void tg_pow_scalar_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                       tg_tensor **dx)
{
    (void)want;
    double p = tg_node_attr(n)->scalar;
    if (p == 0) {
        dx[0] = tg_const_like(tp, dy, 0);
        return;
    }
    tg_tensor *d = p == 1 ? NULL : tg_mul_scalar(tp, tg_pow_scalar(tp, n->in[0], p - 1), p);
    dx[0] = d ? tg_mul(tp, dy, d) : dy;
}
void tg_exp_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    dx[0] = tg_mul(tp, dy, tg_node_out(n));
}
void tg_log_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    dx[0] = tg_div(tp, dy, n->in[0]);
}
void tg_sqrt_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    dx[0] = tg_div(tp, tg_mul_scalar(tp, dy, 0.5), tg_node_out(n));
}
/* sign(x) has derivative 0, so the second derivative of |x| is 0 (away from 0). */
void tg_abs_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    dx[0] = tg_mul(tp, dy, tg_sign(tp, n->in[0]));
}
void tg_square_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    dx[0] = tg_mul(tp, dy, tg_mul_scalar(tp, n->in[0], 2));
}

tg_tensor *tg_neg(tg_tape *tp, tg_tensor *x) { return tg_op_unary_k(tp, TG_OP_K(neg), x); }
tg_tensor *tg_add_scalar(tg_tape *tp, tg_tensor *x, double c)
{
    return tg_op_scalar_k(tp, TG_OP_K(add_scalar), x, c, "the scalar");
}
tg_tensor *tg_mul_scalar(tg_tape *tp, tg_tensor *x, double c)
{
    return tg_op_scalar_k(tp, TG_OP_K(mul_scalar), x, c, "the scalar");
}
tg_tensor *tg_pow_scalar(tg_tape *tp, tg_tensor *x, double p)
{
    return tg_op_scalar_k(tp, TG_OP_K(pow_scalar), x, p, "the scalar");
}
tg_tensor *tg_exp(tg_tape *tp, tg_tensor *x) { return tg_op_unary_k(tp, TG_OP_K(exp), x); }
tg_tensor *tg_log(tg_tape *tp, tg_tensor *x) { return tg_op_unary_k(tp, TG_OP_K(log), x); }
tg_tensor *tg_sqrt(tg_tape *tp, tg_tensor *x) { return tg_op_unary_k(tp, TG_OP_K(sqrt), x); }
tg_tensor *tg_abs(tg_tape *tp, tg_tensor *x) { return tg_op_unary_k(tp, TG_OP_K(abs), x); }
tg_tensor *tg_square(tg_tape *tp, tg_tensor *x) { return tg_op_unary_k(tp, TG_OP_K(square), x); }
