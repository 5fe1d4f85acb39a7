/* ops/unary.c: elementwise math of one input: neg, add_scalar, mul_scalar, pow_scalar, exp,
 * log, sqrt, abs, square. The scalar is n->attr.scalar. Each kernel is one flat loop. */
#include "elem.h"

/* The element functions, with the reasoning behind each formula, are in ops/elem_t.h. */
/* y = -x;  dx -= dy. */
void tg_neg_fwd(tg_node *n) { unary_fwd(n, neg_f32, neg_f64); }
void tg_neg_bwd(tg_node *n) { unary_bwd(n, neg_dx_f32, neg_dx_f64); }
/* y = x + c;  dx += dy. */
void tg_add_scalar_fwd(tg_node *n) { unary_fwd(n, add_scalar_f32, add_scalar_f64); }
void tg_add_scalar_bwd(tg_node *n) { unary_bwd(n, add_scalar_dx_f32, add_scalar_dx_f64); }
/* y = c x;  dx += c dy. */
void tg_mul_scalar_fwd(tg_node *n) { unary_fwd(n, mul_scalar_f32, mul_scalar_f64); }
void tg_mul_scalar_bwd(tg_node *n) { unary_bwd(n, mul_scalar_dx_f32, mul_scalar_dx_f64); }
/* y = x^p;  dx += dy p x^(p-1), 0 for p = 0. */
void tg_pow_scalar_fwd(tg_node *n) { unary_fwd(n, pow_scalar_f32, pow_scalar_f64); }
void tg_pow_scalar_bwd(tg_node *n) { unary_bwd(n, pow_scalar_dx_f32, pow_scalar_dx_f64); }
/* y = e^x;  dx += dy y. */
void tg_exp_fwd(tg_node *n) { unary_fwd(n, exp_f32, exp_f64); }
void tg_exp_bwd(tg_node *n) { unary_bwd(n, exp_dx_f32, exp_dx_f64); }
/* y = ln x;  dx += dy / x. */
void tg_log_fwd(tg_node *n) { unary_fwd(n, log_f32, log_f64); }
void tg_log_bwd(tg_node *n) { unary_bwd(n, log_dx_f32, log_dx_f64); }
/* y = √x;  dx += dy / (2y). */
void tg_sqrt_fwd(tg_node *n) { unary_fwd(n, sqrt_f32, sqrt_f64); }
void tg_sqrt_bwd(tg_node *n) { unary_bwd(n, sqrt_dx_f32, sqrt_dx_f64); }
/* y = |x|;  dx += dy sign(x), sign(0) = sign(NaN) = 0. */
void tg_abs_fwd(tg_node *n) { unary_fwd(n, abs_f32, abs_f64); }
void tg_abs_bwd(tg_node *n) { unary_bwd(n, abs_dx_f32, abs_dx_f64); }
/* y = x²;  dx += 2x dy. */
void tg_square_fwd(tg_node *n) { unary_fwd(n, square_f32, square_f64); }
void tg_square_bwd(tg_node *n) { unary_bwd(n, square_dx_f32, square_dx_f64); }

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
    dx[0] = tg_mul_scalar(tp, dy, n->attr.scalar);
}
/* p x^(p-1) dy; for p = 0 the numeric backward's exact 0, as a constant. */
void tg_pow_scalar_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                       tg_tensor **dx)
{
    (void)want;
    double p = n->attr.scalar;
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
    dx[0] = tg_mul(tp, dy, n->out);
}
void tg_log_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    dx[0] = tg_div(tp, dy, n->in[0]);
}
void tg_sqrt_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    dx[0] = tg_div(tp, tg_mul_scalar(tp, dy, 0.5), n->out);
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

static tg_tensor *with_scalar(tg_tape *tp, int op, tg_tensor *x, double c)
{
    if (tg_op_check(tp, op, 1, &x)) return NULL;
    if (!isfinite(c)) {
        tg_fail(tp, TG_EARG, "tg_%s: the scalar %g is not finite", tg_op_table[op].name, c);
        return NULL;
    }
    tg_node *n = tg_op_begin(tp, op, 1, &x, x->ndim, x->shape);
    if (!n) return NULL;
    n->attr.scalar = c;
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
