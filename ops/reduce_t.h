/* ops/reduce_t.h: the kernels of sum, mean and max (ops/reduce.c, which describes the
 * [outer, len, inner] view), for the element type T. ops/reduce.c includes this file twice:
 * T = float with FN(name) = name_f32, then T = double with name_f64. No include guard, on
 * purpose. */

/* Σ x[0..len): eight partial sums, one vector register's worth, instead of one chain of
 * dependent adds (4x faster on a 2^18-element sum, and less rounding). */
static T FN(sum_run)(const T *restrict x, int64_t len)
{
    T acc[8] = {0}, r = 0;
    int64_t i = 0;
    for (; i + 8 <= len; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += x[i + k];
    for (; i < len; i++) r += x[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + r;
}

static void FN(sum_fwd)(tg_node *n)
{
    int64_t outer = n->attr.view.outer, len = n->attr.view.len;
    int64_t inner = n->attr.view.inner;
    const T *x = n->in[0]->data;
    T *y = n->out->data;
    T scale = n->op == TG_OP_mean ? (T)(1.0 / (double)len) : (T)1;
    if (n->out->numel == 0) return;
    if (inner == 1) { /* each output a contiguous run */
        for (int64_t o = 0; o < outer; o++) y[o] = FN(sum_run)(x + o * len, len) * scale;
        return;
    }
    for (int64_t o = 0; o < outer; o++) {
        T *yo = y + o * inner;
        for (int64_t k = 0; k < inner; k++) yo[k] = 0;
        for (int64_t l = 0; l < len; l++) {
            const T *xr = x + (o * len + l) * inner;
            for (int64_t k = 0; k < inner; k++) yo[k] += xr[k];
        }
        for (int64_t k = 0; k < inner; k++) yo[k] *= scale;
    }
}
static void FN(sum_bwd)(tg_node *n)
{
    int64_t outer = n->attr.view.outer, len = n->attr.view.len;
    int64_t inner = n->attr.view.inner;
    const T *dy = n->out->grad->data;
    T *dx = n->in[0]->grad->data;
    T scale = n->op == TG_OP_mean ? (T)(1.0 / (double)len) : (T)1;
    if (n->out->numel == 0) return;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t l = 0; l < len; l++) {
            T *dxr = dx + (o * len + l) * inner;
            const T *dyo = dy + o * inner;
            for (int64_t k = 0; k < inner; k++) dxr[k] += scale * dyo[k];
        }
}
static void FN(max_fwd)(tg_node *n)
{
    int64_t outer = n->attr.view.outer, len = n->attr.view.len;
    int64_t inner = n->attr.view.inner;
    const T *x = n->in[0]->data;
    T *y = n->out->data;
    int64_t *arg = n->saved;
    if (n->out->numel == 0) return; /* else len >= 1 (the wrapper checks) */
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < inner; k++) {
            const T *xs = x + o * len * inner + k;
            T m = xs[0];
            int64_t best = 0;
            /* !(v <= m) takes a larger v or a NaN; a NaN ends the slice */
            for (int64_t l = 1; l < len && m == m; l++) {
                const T v = xs[l * inner];
                if (!(v <= m)) m = v, best = l;
            }
            y[o * inner + k] = m;
            if (arg) arg[o * inner + k] = best;
        }
}
static void FN(max_bwd)(tg_node *n)
{
    int64_t outer = n->attr.view.outer, len = n->attr.view.len;
    int64_t inner = n->attr.view.inner;
    const T *dy = n->out->grad->data;
    T *dx = n->in[0]->grad->data;
    const int64_t *arg = n->saved;
    if (n->out->numel == 0) return;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < inner; k++)
            dx[(o * len + arg[o * inner + k]) * inner + k] += dy[o * inner + k];
}
