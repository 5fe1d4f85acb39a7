/* ops/reduce.c: sum, mean and max along one axis or over all elements. The input is viewed
 * as [outer, len, inner] around the reduced axis (all elements: [1, numel, 1]); the output
 * is [outer, inner]. Attributes: n->attr.view (outer, len, inner). An empty output returns
 * at once: with inner = 0, outer · len can be up to 2^48 iterations of nothing.
 * max propagates NaN, as PyTorch's torch.max does: a slice holding a NaN has the maximum
 * NaN, and the first NaN is the element its gradient goes to. */
#include "internal.h"

#define REDUCE_KERNELS(T, SFX)                                                                     \
    static void sum_fwd_##SFX(tg_node *n)                                                          \
    {                                                                                              \
        int64_t outer = n->attr.view.outer, len = n->attr.view.len;                                \
        int64_t inner = n->attr.view.inner;                                                        \
        const T *x = n->in[0]->data;                                                               \
        T *y = n->out->data;                                                                       \
        T scale = n->op == TG_OP_mean ? (T)(1.0 / (double)len) : (T)1;                             \
        if (n->out->numel == 0) return;                                                            \
        for (int64_t o = 0; o < outer; o++) {                                                      \
            T *yo = y + o * inner;                                                                 \
            for (int64_t k = 0; k < inner; k++) yo[k] = 0;                                         \
            for (int64_t l = 0; l < len; l++) {                                                    \
                const T *xr = x + (o * len + l) * inner;                                           \
                for (int64_t k = 0; k < inner; k++) yo[k] += xr[k];                                \
            }                                                                                      \
            for (int64_t k = 0; k < inner; k++) yo[k] *= scale;                                    \
        }                                                                                          \
    }                                                                                              \
    static void sum_bwd_##SFX(tg_node *n)                                                          \
    {                                                                                              \
        int64_t outer = n->attr.view.outer, len = n->attr.view.len;                                \
        int64_t inner = n->attr.view.inner;                                                        \
        const T *dy = n->out->grad->data;                                                          \
        T *dx = n->in[0]->grad->data;                                                              \
        T scale = n->op == TG_OP_mean ? (T)(1.0 / (double)len) : (T)1;                             \
        if (n->out->numel == 0) return;                                                            \
        for (int64_t o = 0; o < outer; o++)                                                        \
            for (int64_t l = 0; l < len; l++) {                                                    \
                T *dr = dx + (o * len + l) * inner;                                                \
                const T *g = dy + o * inner;                                                       \
                for (int64_t k = 0; k < inner; k++) dr[k] += scale * g[k];                         \
            }                                                                                      \
    }                                                                                              \
    static void max_fwd_##SFX(tg_node *n)                                                          \
    {                                                                                              \
        int64_t outer = n->attr.view.outer, len = n->attr.view.len;                                \
        int64_t inner = n->attr.view.inner;                                                        \
        const T *x = n->in[0]->data;                                                               \
        T *y = n->out->data;                                                                       \
        int64_t *arg = n->saved;                                                                   \
        if (n->out->numel == 0) return; /* else len >= 1 (the wrapper checks) */                   \
        for (int64_t o = 0; o < outer; o++)                                                        \
            for (int64_t k = 0; k < inner; k++) {                                                  \
                const T *xs = x + o * len * inner + k;                                             \
                T m = xs[0];                                                                       \
                int64_t best = 0;                                                                  \
                /* !(v <= m) takes a larger v or a NaN; a NaN ends the slice */                    \
                for (int64_t l = 1; l < len && m == m; l++) {                                      \
                    const T v = xs[l * inner];                                                     \
                    if (!(v <= m)) m = v, best = l;                                                \
                }                                                                                  \
                y[o * inner + k] = m;                                                              \
                if (arg) arg[o * inner + k] = best;                                                \
            }                                                                                      \
    }                                                                                              \
    static void max_bwd_##SFX(tg_node *n)                                                          \
    {                                                                                              \
        int64_t outer = n->attr.view.outer, len = n->attr.view.len;                                \
        int64_t inner = n->attr.view.inner;                                                        \
        const T *dy = n->out->grad->data;                                                          \
        T *dx = n->in[0]->grad->data;                                                              \
        const int64_t *arg = n->saved;                                                             \
        if (n->out->numel == 0) return;                                                            \
        for (int64_t o = 0; o < outer; o++)                                                        \
            for (int64_t k = 0; k < inner; k++)                                                    \
                dx[(o * len + arg[o * inner + k]) * inner + k] += dy[o * inner + k];               \
    }
REDUCE_KERNELS(float, f32)
REDUCE_KERNELS(double, f64)

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
    n->attr.view.outer = outer, n->attr.view.len = len, n->attr.view.inner = inner;
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
