/* ops/activation.c: activation functions. Elementwise ones are one flat loop each; softmax
 * and log_softmax view the input as [outer, len, inner] around their axis. */
#include "elem.h"

/* ---- elementwise activations: the loop of ops/elem.h with an element function of
 * ops/elem_t.h, which also gives each formula's reasoning (linear_act applies the same
 * functions). tg_node_attr(n)->scalar holds alpha. ---- */
/* The transcendental ones (sigmoid, tanh, elu, softplus) make their libm calls through the
 * array functions of ops/vecmath.h, a block at a time (vm_part). */
#define VM_PART(bwd, beta, pre, g, g2, post)                                                       \
    vm_part(n, i0, i1, bwd, beta, pre##_f32, tg_vm_##g##_f32, g2##_f32, post##_f32, pre##_f64,     \
            tg_vm_##g##_f64, g2##_f64, post##_f64)
#define NONE_f32 NULL
#define NONE_f64 NULL
/* σ(x) = 1/(1+e^-x);  dx += dy σ(1-σ). */
static void sigmoid_fwd_part(tg_node *n, int64_t i0, int64_t i1, int beta)
{
    VM_PART(false, beta, neg_abs, exp, NONE, vm_sigmoid);
}
void tg_sigmoid_fwd(tg_node *n) { tg_par_run(n, tg_node_out(n)->numel, sigmoid_fwd_part, 0); }
TG_UNARY_BWD(sigmoid, sigmoid_dx)
/* y = tanh(x);  dx += dy (1 - y²). */
TG_VM_FWD(tanh, tanh)
TG_UNARY_BWD(tanh, tanh_dx)
/* max(0, x), NaN passing through;  dx += dy [x > 0]. */
TG_UNARY_KERNELS(relu)
/* max(0, x) + α min(0, x);  dx += dy (x > 0 ? 1 : α). */
TG_UNARY_KERNELS(leaky_relu)
/* x > 0 ? x : α(e^x - 1);  dx += dy (x > 0 ? 1 : α e^x). */
static void elu_fwd_part(tg_node *n, int64_t i0, int64_t i1, int beta)
{
    VM_PART(false, beta, vm_id, expm1, NONE, vm_elu);
}
static void elu_bwd_part(tg_node *n, int64_t i0, int64_t i1, int beta)
{
    VM_PART(true, beta, vm_id, exp, NONE, vm_elu_dx);
}
void tg_elu_fwd(tg_node *n) { tg_par_run(n, tg_node_out(n)->numel, elu_fwd_part, 0); }
void tg_elu_bwd(tg_node *n)
{
    if (n->in[0]->requires_grad)
        tg_par_run(n, tg_node_out(n)->numel, elu_bwd_part, tg_grad_beta(n->in[0]));
}
/* ln(1 + e^x), stable;  dx += dy σ(x). */
static void softplus_fwd_part(tg_node *n, int64_t i0, int64_t i1, int beta)
{
    VM_PART(false, beta, neg_abs, exp, tg_vm_log1p, vm_softplus);
}
static void softplus_bwd_part(tg_node *n, int64_t i0, int64_t i1, int beta)
{
    VM_PART(true, beta, neg_abs, exp, NONE, vm_softplus_dx);
}
void tg_softplus_fwd(tg_node *n) { tg_par_run(n, tg_node_out(n)->numel, softplus_fwd_part, 0); }
void tg_softplus_bwd(tg_node *n)
{
    if (n->in[0]->requires_grad)
        tg_par_run(n, tg_node_out(n)->numel, softplus_bwd_part, tg_grad_beta(n->in[0]));
}
#undef VM_PART
/* [x > 0] and sign(x). The true derivative is 0 wherever it exists and is taken as 0 at the
 * jump, so the backward has nothing to add: the input's gradient stays exactly 0 (see
 * tg_step in ops.h). */
TG_UNARY_FWD(step, step)
void tg_step_bwd(tg_node *n) { (void)n; }
TG_UNARY_FWD(sign, sign)
void tg_sign_bwd(tg_node *n) { (void)n; }

tg_tensor *tg_sigmoid(tg_tape *tp, tg_tensor *x) { return tg_op_unary_k(tp, TG_OP_K(sigmoid), x); }
tg_tensor *tg_tanh(tg_tape *tp, tg_tensor *x) { return tg_op_unary_k(tp, TG_OP_K(tanh), x); }
tg_tensor *tg_relu(tg_tape *tp, tg_tensor *x) { return tg_op_unary_k(tp, TG_OP_K(relu), x); }
tg_tensor *tg_softplus(tg_tape *tp, tg_tensor *x)
{
    return tg_op_unary_k(tp, TG_OP_K(softplus), x);
}
tg_tensor *tg_step(tg_tape *tp, tg_tensor *x) { return tg_op_unary_k(tp, TG_OP_K(step), x); }
tg_tensor *tg_sign(tg_tape *tp, tg_tensor *x) { return tg_op_unary_k(tp, TG_OP_K(sign), x); }
tg_tensor *tg_leaky_relu(tg_tape *tp, tg_tensor *x, double alpha)
{
    return tg_op_scalar_k(tp, TG_OP_K(leaky_relu), x, alpha, "alpha");
}
tg_tensor *tg_elu(tg_tape *tp, tg_tensor *x, double alpha)
{
    return tg_op_scalar_k(tp, TG_OP_K(elu), x, alpha, "alpha");
}

/* ---- prelu, softmax and log_softmax: prelu_fwd_f32 ... softmax_bwd_f64, from the template
 * ops/activation_t.h, where their comments give the math ---- */
#define TG_TEMPLATE "activation_t.h"
#include "stamp.h"

void tg_prelu_fwd(tg_node *n) { TG_DISPATCH(n, prelu_fwd); }
void tg_prelu_bwd(tg_node *n) { TG_DISPATCH(n, prelu_bwd); }

tg_tensor *tg_prelu(tg_tape *tp, tg_tensor *x, tg_tensor *alpha)
{
    tg_tensor *in[2] = {x, alpha};
    char buf[256];
    if (tg_op_check(tp, TG_OP_prelu, 2, in)) return NULL;
    int64_t last = x->ndim ? x->shape[x->ndim - 1] : 1;
    if (alpha->ndim != 1 || (alpha->shape[0] != 1 && alpha->shape[0] != last)) {
        tg_fail(tp, TG_ESHAPE, "tg_prelu: %s: alpha must be [1] or [%lld] (x's last dimension)",
                tg_shapes_str(buf, sizeof buf, 2, in), (long long)last);
        return NULL;
    }
    tg_node *n = tg_op_begin(tp, TG_OP_prelu, 2, in, x->ndim, x->shape);
    if (!n) return NULL;
    /* C = 0 only when x is empty: any positive row length then does nothing. */
    tg_node_attr(n)->prelu.channels = alpha->shape[0] == 1 || last == 0 ? 1 : last;
    return tg_op_finish(tp, n);
}

/* Slices of softmax and log_softmax: split over threads for a large input when the axis
 * is the last (inner 1: no shared scratch); each slice is one thread's, so any split gives
 * the bits of one thread. */
static void softmax_part(tg_node *n, int64_t o0, int64_t o1, int bwd)
{
    if (tg_node_out(n)->dtype == TG_F32) (bwd ? softmax_bwd_f32 : softmax_fwd_f32)(n, o0, o1);
    else (bwd ? softmax_bwd_f64 : softmax_fwd_f64)(n, o0, o1);
}
static void softmax_run(tg_node *n, int bwd)
{
    const int64_t outer = tg_node_attr(n)->view.outer;
    const int nt = tg_node_attr(n)->view.inner == 1 ? tg_par_threads(tg_node_out(n)->numel) : 1;
    tg_par_range(n, outer, 1, nt, softmax_part, bwd);
}
void tg_softmax_fwd(tg_node *n) { softmax_run(n, 0); }
void tg_softmax_bwd(tg_node *n)
{
    if (n->in[0]->requires_grad) softmax_run(n, 1);
}
void tg_log_softmax_fwd(tg_node *n) { softmax_run(n, 0); }
void tg_log_softmax_bwd(tg_node *n)
{
    if (n->in[0]->requires_grad) softmax_run(n, 1);
}

static tg_tensor *softmax(tg_tape *tp, int op, tg_tensor *x, int axis)
{
    char buf[128];
    if (tg_op_check(tp, op, 1, &x)) return NULL;
    int ax = tg_axis(axis, x->ndim);
    if (ax < 0) {
        tg_fail(tp, TG_EARG, "tg_%s: axis %d out of range for %s", tg_op_table[op].name, axis,
                tg_shape_str(x, buf, sizeof buf));
        return NULL;
    }
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < x->ndim; i++) {
        if (i < ax) outer *= x->shape[i];
        if (i > ax) inner *= x->shape[i];
    }
    tg_node *n = tg_op_begin(tp, op, 1, &x, x->ndim, x->shape);
    if (!n) return NULL;
    tg_node_attr(n)->view.outer = outer, tg_node_attr(n)->view.len = x->shape[ax],
    tg_node_attr(n)->view.inner = inner;
    /* Column maxima and sums when the axis is not the last (see the kernels). */
    if (inner > 1 && x->numel > 0 &&
        !tg_op_save(tp, n, 2 * (size_t)inner * tg_dtype_size((tg_dtype)x->dtype)))
        return NULL;
    return tg_op_finish(tp, n);
}

tg_tensor *tg_softmax(tg_tape *tp, tg_tensor *x, int axis)
{
    return softmax(tp, TG_OP_softmax, x, axis);
}
tg_tensor *tg_log_softmax(tg_tape *tp, tg_tensor *x, int axis)
{
    return softmax(tp, TG_OP_log_softmax, x, axis);
}

/* ---- the same backwards in ops (tg_op.vjp), each mirroring the formula above. Masks of
 * a kinked function are constants read off x: piecewise constant, they have derivative 0,
 * and the kink itself gets the numeric backward's choice. ---- */
/* A constant shaped like x: on where x > 0, else off (a NaN x gets off). */
static tg_tensor *pos_mask(tg_tape *tp, const tg_tensor *x, double on, double off)
{
    tg_tensor *m = tg_const_like(tp, x, off);
    if (!m) return NULL;
    for (int64_t i = 0; i < m->numel; i++)
        if (tg_get(x, i) > 0) tg_set(m, i, on);
    return m;
}
/* 1 - t. */
static tg_tensor *one_minus(tg_tape *tp, tg_tensor *t)
{
    return tg_add_scalar(tp, tg_neg(tp, t), 1);
}

/* dy σ(1-σ), from the output. */
void tg_sigmoid_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    dx[0] = tg_mul(tp, tg_mul(tp, dy, tg_node_out(n)), one_minus(tp, tg_node_out(n)));
}
/* dy (1 - y²). */
void tg_tanh_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    dx[0] = tg_mul(tp, dy, one_minus(tp, tg_square(tp, tg_node_out(n))));
}
/* dy [x > 0]: the second derivative is 0 (0 at the kink too). */
void tg_relu_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    dx[0] = tg_mul(tp, dy, pos_mask(tp, n->in[0], 1, 0));
}
/* dy (x > 0 ? 1 : α): the second derivative is 0. */
void tg_leaky_relu_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                       tg_tensor **dx)
{
    (void)want;
    dx[0] = tg_mul(tp, dy, pos_mask(tp, n->in[0], 1, tg_node_attr(n)->scalar));
}
/* dy (x > 0 ? 1 : α e^x) as dy ([x > 0] + α e^(x [x <= 0]) [x <= 0]): the exponent is 0
 * for a finite x > 0, so e^x cannot overflow where it is masked off. */
void tg_elu_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    tg_tensor *x = n->in[0], *on = pos_mask(tp, x, 1, 0), *off = pos_mask(tp, x, 0, 1);
    tg_tensor *neg = tg_mul_scalar(tp, tg_exp(tp, tg_mul(tp, x, off)), tg_node_attr(n)->scalar);
    dx[0] = tg_mul(tp, dy, tg_add(tp, on, tg_mul(tp, neg, off)));
}
/* dy σ(x). */
void tg_softplus_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    dx[0] = tg_mul(tp, dy, tg_sigmoid(tp, n->in[0]));
}
/* dx = dy (x > 0 ? 1 : α) = dy ([x > 0] + α [x <= 0]), dα = Σ dy x [x <= 0] summed to α's
 * shape. A 0-d x makes [1] of the broadcast: reshaped back. */
void tg_prelu_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    tg_tensor *x = n->in[0], *al = n->in[1], *off = pos_mask(tp, x, 0, 1);
    if (want[0]) {
        tg_tensor *d = tg_mul(tp, dy, tg_add(tp, pos_mask(tp, x, 1, 0), tg_mul(tp, off, al)));
        dx[0] = d && d->ndim != x->ndim ? tg_reshape(tp, d, x->ndim, x->shape) : d;
    }
    if (want[1]) {
        tg_tensor *d = tg_mul(tp, dy, tg_mul(tp, x, off));
        dx[1] = d && d->ndim < al->ndim ? tg_reshape(tp, d, al->ndim, al->shape)
                                        : tg_sum_to(tp, d, al->ndim, al->shape);
    }
}
/* Step and sign: the gradient is 0 (above), so every higher derivative is 0 too. */
void tg_step_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)dy, (void)want;
    dx[0] = tg_const_like(tp, n->in[0], 0);
}
void tg_sign_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)dy, (void)want;
    dx[0] = tg_const_like(tp, n->in[0], 0);
}
/* t viewed as [outer, len, inner] around the node's axis: the sums run along axis 1. */
static tg_tensor *view3(tg_tape *tp, const tg_node *n, tg_tensor *t)
{
    const int64_t v[3] = {tg_node_attr(n)->view.outer, tg_node_attr(n)->view.len,
                          tg_node_attr(n)->view.inner};
    return tg_reshape(tp, t, 3, v);
}
static tg_tensor *unview3(tg_tape *tp, const tg_node *n, tg_tensor *t)
{
    return tg_reshape(tp, t, n->in[0]->ndim, n->in[0]->shape);
}
/* y (dy - Σ dy y). */
void tg_softmax_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    tg_tensor *y = view3(tp, n, tg_node_out(n)), *g = view3(tp, n, dy);
    tg_tensor *s = tg_sum(tp, tg_mul(tp, g, y), 1, true);
    dx[0] = unview3(tp, n, tg_mul(tp, y, tg_sub(tp, g, s)));
}
/* dy - e^y Σ dy. */
void tg_log_softmax_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                        tg_tensor **dx)
{
    (void)want;
    tg_tensor *y = view3(tp, n, tg_node_out(n)), *g = view3(tp, n, dy);
    tg_tensor *s = tg_sum(tp, g, 1, true);
    dx[0] = unview3(tp, n, tg_sub(tp, g, tg_mul(tp, tg_exp(tp, y), s)));
}
