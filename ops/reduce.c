/* ops/reduce.c: sum, mean and max along one axis or over all elements. The input is viewed
 * as [outer, len, inner] around the reduced axis (all elements: [1, numel, 1]); the output
 * is [outer, inner]. Attributes: tg_node_attr(n)->view (outer, len, inner). An empty output returns
 * at once: with inner = 0, outer · len can be up to 2^48 iterations of nothing.
 * max propagates NaN, as PyTorch's torch.max does: a slice holding a NaN has the maximum
 * NaN, and the first NaN is the element its gradient goes to.
 * sum, mean and max split large inputs over threads (ops/vecmath.h), with the same bits at
 * any thread count: a run of TG_PAR_MIN elements or more is summed (or its maximum found) in
 * fixed parts. */
#include "internal.h"
#include "vecmath.h"

/* sum_fwd, sum_bwd, max_fwd and max_bwd for f32 and f64, from the template ops/reduce_t.h. */
#define TG_TEMPLATE "reduce_t.h"
#include "stamp.h"

void tg_sum_fwd(tg_node *n) { TG_DISPATCH(n, sum_fwd); }
void tg_sum_bwd(tg_node *n)
{
    if (n->in[0]->requires_grad) TG_DISPATCH(n, sum_bwd);
}
void tg_mean_fwd(tg_node *n) { TG_DISPATCH(n, sum_fwd); }
void tg_mean_bwd(tg_node *n)
{
    if (n->in[0]->requires_grad) TG_DISPATCH(n, sum_bwd);
}
void tg_max_fwd(tg_node *n) { TG_DISPATCH(n, max_fwd); }
void tg_max_bwd(tg_node *n)
{
    if (n->in[0]->requires_grad) TG_DISPATCH(n, max_bwd);
}

static tg_tensor *reduce(tg_tape *tp, int op, tg_tensor *x, int axis, bool keepdim)
{
    const char *name = tg_op_table[op].name;
    char buf[128];
    if (tg_op_check(tp, op, 1, &x)) return NULL;
    int64_t shape[TG_MAX_DIMS], outer = 1, len, inner = 1;
    int nd = 0;
    if (axis == TG_ALL_AXES) {
        len = x->numel;
        if (keepdim)
            for (int i = 0; i < x->ndim; i++) shape[nd++] = 1;
    } else {
        int ax = tg_axis(axis, x->ndim);
        if (ax < 0) {
            tg_fail(tp, TG_EARG, "tg_%s: axis %d out of range for %s", name, axis,
                    tg_shape_str(x, buf, sizeof buf));
            return NULL;
        }
        len = x->shape[ax];
        for (int i = 0; i < x->ndim; i++) {
            if (i < ax) outer *= x->shape[i];
            if (i > ax) inner *= x->shape[i];
            if (i != ax) shape[nd++] = x->shape[i];
            else if (keepdim) shape[nd++] = 1;
        }
    }
    if (len == 0 && op != TG_OP_sum) {
        tg_fail(tp, TG_ESHAPE, "tg_%s: %s: cannot reduce an empty axis", name,
                tg_shape_str(x, buf, sizeof buf));
        return NULL;
    }
    tg_node *n = tg_op_begin(tp, op, 1, &x, nd, shape);
    if (!n) return NULL;
    tg_node_attr(n)->view.outer = outer, tg_node_attr(n)->view.len = len,
    tg_node_attr(n)->view.inner = inner;
    if (op == TG_OP_max && !tg_op_save(tp, n, (size_t)(outer * inner) * sizeof(int64_t) + 1))
        return NULL;
    return tg_op_finish(tp, n);
}

tg_tensor *tg_sum(tg_tape *tp, tg_tensor *x, int axis, bool keepdim)
{
    return reduce(tp, TG_OP_sum, x, axis, keepdim);
}
tg_tensor *tg_mean(tg_tape *tp, tg_tensor *x, int axis, bool keepdim)
{
    return reduce(tp, TG_OP_mean, x, axis, keepdim);
}
tg_tensor *tg_max(tg_tape *tp, tg_tensor *x, int axis, bool keepdim)
{
    return reduce(tp, TG_OP_max, x, axis, keepdim);
}

/* ---- the same backwards in ops (tg_op.vjp): dy viewed as [outer, 1, inner], repeated
 * along the reduced axis ---- */
static tg_tensor *spread(tg_tape *tp, const tg_node *n, tg_tensor *dy)
{
    const int64_t v1[3] = {tg_node_attr(n)->view.outer, 1, tg_node_attr(n)->view.inner};
    const int64_t v[3] = {tg_node_attr(n)->view.outer, tg_node_attr(n)->view.len,
                          tg_node_attr(n)->view.inner};
    tg_tensor *x = n->in[0];
    return tg_reshape(tp, tg_broadcast_to(tp, tg_reshape(tp, dy, 3, v1), 3, v), x->ndim, x->shape);
}
void tg_sum_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    dx[0] = spread(tp, n, dy);
}
void tg_mean_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    dx[0] = spread(tp, n, tg_mul_scalar(tp, dy, 1.0 / (double)tg_node_attr(n)->view.len));
}
/* dy at the element the forward chose, by a constant 0/1 mask: the maximum is piecewise
 * linear, so its second derivative is 0. */
void tg_max_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    tg_tensor *x = n->in[0], *mask = tg_const_like(tp, x, 0);
    if (!mask) return;
    int64_t len = tg_node_attr(n)->view.len, inner = tg_node_attr(n)->view.inner;
    const int64_t *arg = n->saved;
    for (int64_t o = 0; o < tg_node_attr(n)->view.outer && tg_node_out(n)->numel; o++)
        for (int64_t k = 0; k < inner; k++)
            tg_set(mask, (o * len + arg[o * inner + k]) * inner + k, 1);
    dx[0] = tg_mul(tp, spread(tp, n, dy), mask);
}
