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

/* A sum of a long run as ops/vecmath.h's fixed parts, summed in parallel, then added in
 * order: the same bits at any thread count. */
typedef struct FN(sum_ctx) {
    const T *x;
    int64_t len;
    int count;
    T part[TG_SUM_PARTS];
} FN(sum_ctx);
static void FN(sum_part)(void *ctx, int p)
{
    FN(sum_ctx) *c = ctx;
    const int64_t i0 = tg_sum_cut(c->len, c->count, p), i1 = tg_sum_cut(c->len, c->count, p + 1);
    c->part[p] = FN(sum_run)(c->x + i0, i1 - i0);
}
static T FN(sum_long)(const T *x, int64_t len)
{
    FN(sum_ctx) c = {.x = x, .len = len, .count = tg_sum_parts(len)};
    tg_par_parts(len, c.count, FN(sum_part), &c);
    return FN(tg_parts_sum)(c.part, c.count);
}

/* Rows [o0, o1) of the forward: outputs y[o0 * inner ..  o1 * inner), or (inner > 1, for a
 * split by columns, o0 = 0, o1 = outer) columns [k0, k1) of every row. */
static void FN(sum_rows)(const tg_node *n, int64_t o0, int64_t o1, int64_t k0, int64_t k1)
{
    const int64_t len = tg_node_attr(n)->view.len, inner = tg_node_attr(n)->view.inner;
    const T *x = n->in[0]->data;
    T *y = tg_node_out(n)->data;
    const T scale = n->op == TG_OP_mean ? (T)(1.0 / (double)len) : (T)1;
    if (inner == 1) { /* each output a contiguous run */
        for (int64_t o = o0; o < o1; o++) y[o] = FN(sum_long)(x + o * len, len) * scale;
        return;
    }
    for (int64_t o = o0; o < o1; o++) {
        T *yo = y + o * inner;
        for (int64_t k = k0; k < k1; k++) yo[k] = 0;
        for (int64_t l = 0; l < len; l++) {
            const T *xr = x + (o * len + l) * inner;
            for (int64_t k = k0; k < k1; k++) yo[k] += xr[k];
        }
        for (int64_t k = k0; k < k1; k++) yo[k] *= scale;
    }
}
static void FN(sum_rows_part)(tg_node *n, int64_t o0, int64_t o1, int beta)
{
    (void)beta;
    FN(sum_rows)(n, o0, o1, 0, tg_node_attr(n)->view.inner);
}
static void FN(sum_cols_part)(tg_node *n, int64_t k0, int64_t k1, int beta)
{
    (void)beta;
    FN(sum_rows)(n, 0, tg_node_attr(n)->view.outer, k0, k1);
}

/* Threads (ops/vecmath.h) when the input is large: a long run is summed in fixed parts
 * (sum_long), else the outputs are split, by rows or by columns of 16 (a cache line of
 * f32): every output is then computed whole by one thread, in the order of one thread. */
static void FN(sum_fwd)(tg_node *n)
{
    const int64_t outer = tg_node_attr(n)->view.outer, len = tg_node_attr(n)->view.len,
                  inner = tg_node_attr(n)->view.inner;
    if (tg_node_out(n)->numel == 0) return;
    const int nt = len >= TG_PAR_MIN && inner == 1 ? 1 : tg_par_threads(n->in[0]->numel);
    if (nt > 1 && outer >= nt) tg_par_range(n, outer, 1, nt, FN(sum_rows_part), 0);
    else if (nt > 1 && inner >= 16 * nt) tg_par_range(n, inner, 16, nt, FN(sum_cols_part), 0);
    else FN(sum_rows)(n, 0, outer, 0, inner);
}

/* dx += scale dy repeated along the reduced axis, on dx's elements [i0, i1) (inner == 1)
 * or its rows [i0, i1) of inner elements (inner > 1); dx = ... when beta is 0 (dx holds no
 * values yet, tg_grad_beta). */
static void FN(sum_bwd_part)(tg_node *n, int64_t i0, int64_t i1, int beta)
{
    const int64_t len = tg_node_attr(n)->view.len, inner = tg_node_attr(n)->view.inner;
    const T *dy = tg_node_out(n)->grad->data;
    T *dx = n->in[0]->grad->data;
    const T scale = n->op == TG_OP_mean ? (T)(1.0 / (double)len) : (T)1;
    if (inner == 1) {
        for (int64_t i = i0; i < i1;) {
            const int64_t o = i / len, end = (o + 1) * len < i1 ? (o + 1) * len : i1;
            const T g = scale * dy[o];
            if (beta)
                for (; i < end; i++) dx[i] += g;
            else
                for (; i < end; i++) dx[i] = g;
        }
        return;
    }
    for (int64_t r = i0; r < i1; r++) {
        T *dxr = dx + r * inner;
        const T *dyo = dy + r / len * inner;
        if (beta)
            for (int64_t k = 0; k < inner; k++) dxr[k] += scale * dyo[k];
        else
            for (int64_t k = 0; k < inner; k++) dxr[k] = scale * dyo[k];
    }
}
static void FN(sum_bwd)(tg_node *n)
{
    const int64_t outer = tg_node_attr(n)->view.outer, len = tg_node_attr(n)->view.len,
                  inner = tg_node_attr(n)->view.inner;
    if (tg_node_out(n)->numel == 0) return;
    const int beta = tg_grad_beta(n->in[0]);
    if (inner == 1) tg_par_run(n, outer * len, FN(sum_bwd_part), beta);
    else tg_par_range(n, outer * len, 1, tg_par_threads(n->in[0]->numel), FN(sum_bwd_part), beta);
}
/* The maximum of xs[l * inner] for l in [l0, l1) (l0 < l1) and (*best) its index l: the first
 * one, or the first NaN, which ends the scan. */
static inline T FN(max_run)(const T *xs, int64_t l0, int64_t l1, int64_t inner, int64_t *best)
{
    T m = xs[l0 * inner];
    int64_t b = l0;
    /* !(v <= m) takes a larger v or a NaN; a NaN ends the slice */
    for (int64_t l = l0 + 1; l < l1 && m == m; l++) {
        const T v = xs[l * inner];
        if (!(v <= m)) m = v, b = l;
    }
    *best = b;
    return m;
}

/* A long contiguous slice in ops/vecmath.h's fixed parts, each part's maximum found on its
 * own, then the parts taken in order by the same rule as max_run: the value and index a
 * single scan finds (the first maximum, or the first NaN), at any thread count. */
typedef struct FN(max_ctx) {
    const T *x;
    int64_t len;
    int count;
    T m[TG_SUM_PARTS];
    int64_t best[TG_SUM_PARTS];
} FN(max_ctx);
static void FN(max_part)(void *ctx, int p)
{
    FN(max_ctx) *c = ctx;
    const int64_t i0 = tg_sum_cut(c->len, c->count, p), i1 = tg_sum_cut(c->len, c->count, p + 1);
    c->m[p] = FN(max_run)(c->x, i0, i1, 1, &c->best[p]);
}
static T FN(max_long)(const T *x, int64_t len, int64_t *best)
{
    FN(max_ctx) c = {.x = x, .len = len, .count = tg_sum_parts(len)};
    tg_par_parts(len, c.count, FN(max_part), &c);
    T m = c.m[0];
    *best = c.best[0];
    for (int p = 1; p < c.count && m == m; p++)
        if (!(c.m[p] <= m)) m = c.m[p], *best = c.best[p];
    return m;
}

/* Outputs of rows [o0, o1) and columns [k0, k1) (as sum_rows). */
static void FN(max_rows)(const tg_node *n, int64_t o0, int64_t o1, int64_t k0, int64_t k1)
{
    const int64_t len = tg_node_attr(n)->view.len, inner = tg_node_attr(n)->view.inner;
    const T *x = n->in[0]->data;
    T *y = tg_node_out(n)->data;
    int64_t *arg = n->saved, best;
    for (int64_t o = o0; o < o1; o++)
        for (int64_t k = k0; k < k1; k++) {
            const T *xs = x + o * len * inner + k;
            y[o * inner + k] = inner == 1 && len >= TG_PAR_MIN
                                   ? FN(max_long)(xs, len, &best)
                                   : FN(max_run)(xs, 0, len, inner, &best);
            if (arg) arg[o * inner + k] = best;
        }
}
static void FN(max_rows_part)(tg_node *n, int64_t o0, int64_t o1, int beta)
{
    (void)beta;
    FN(max_rows)(n, o0, o1, 0, tg_node_attr(n)->view.inner);
}
static void FN(max_cols_part)(tg_node *n, int64_t k0, int64_t k1, int beta)
{
    (void)beta;
    FN(max_rows)(n, 0, tg_node_attr(n)->view.outer, k0, k1);
}
/* Split over threads as sum_fwd: each output found whole by one thread, or a long slice in
 * fixed parts (max_long). */
static void FN(max_fwd)(tg_node *n)
{
    const int64_t outer = tg_node_attr(n)->view.outer, len = tg_node_attr(n)->view.len,
                  inner = tg_node_attr(n)->view.inner;
    if (tg_node_out(n)->numel == 0) return; /* else len >= 1 (the wrapper checks) */
    const int nt = len >= TG_PAR_MIN && inner == 1 ? 1 : tg_par_threads(n->in[0]->numel);
    if (nt > 1 && outer >= nt) tg_par_range(n, outer, 1, nt, FN(max_rows_part), 0);
    else if (nt > 1 && inner >= 16 * nt) tg_par_range(n, inner, 16, nt, FN(max_cols_part), 0);
    else FN(max_rows)(n, 0, outer, 0, inner);
}
static void FN(max_bwd)(tg_node *n)
{
    int64_t outer = tg_node_attr(n)->view.outer, len = tg_node_attr(n)->view.len;
    int64_t inner = tg_node_attr(n)->view.inner;
    const T *dy = tg_node_out(n)->grad->data;
    T *dx = n->in[0]->grad->data;
    const int64_t *arg = n->saved;
    if (tg_node_out(n)->numel == 0) return;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < inner; k++)
            dx[(o * len + arg[o * inner + k]) * inner + k] += dy[o * inner + k];
}
