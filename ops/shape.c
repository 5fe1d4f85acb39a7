/* ops/shape.c: reshape, transpose, slice, concat and pad. Outputs are contiguous copies;
 * the backward of each moves the gradient back the same way. */
#include "internal.h"

/* ---- reshape: the same elements in a new shape ---- */
void tg_reshape_fwd(tg_node *n)
{
    memcpy(tg_node_out(n)->data, n->in[0]->data,
           (size_t)tg_node_out(n)->numel * tg_dtype_size((tg_dtype)tg_node_out(n)->dtype));
}

#define ADD_KERNEL(T, SFX)                                                                         \
    static void add_into_##SFX(T *restrict d, const T *restrict s, int64_t len)                    \
    {                                                                                              \
        for (int64_t i = 0; i < len; i++) d[i] += s[i];                                            \
    }
ADD_KERNEL(float, f32)
ADD_KERNEL(double, f64)

static void add_into(tg_dtype dt, void *d, const void *s, int64_t len)
{
    if (dt == TG_F32) add_into_f32(d, s, len);
    else add_into_f64(d, s, len);
}

void tg_reshape_bwd(tg_node *n)
{
    if (n->in[0]->requires_grad)
        add_into((tg_dtype)tg_node_out(n)->dtype, n->in[0]->grad->data, tg_node_out(n)->grad->data,
                 tg_node_out(n)->numel);
}

tg_tensor *tg_reshape(tg_tape *tp, tg_tensor *x, int ndim, const int64_t *shape)
{
    char buf[128], want[128];
    if (tg_op_check(tp, TG_OP_reshape, 1, &x)) return NULL;
    if (ndim < 0 || ndim > TG_MAX_DIMS || (ndim > 0 && !shape)) {
        tg_fail(tp, TG_EARG, "tg_reshape: %s: bad target rank %d", tg_shape_str(x, buf, sizeof buf),
                ndim);
        return NULL;
    }
    int64_t s[TG_MAX_DIMS];
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (s[i] == -1 && infer < 0) infer = i, s[i] = 1; /* counted as 1 until inferred */
        else if (s[i] < 0) {
            tg_fail(tp, TG_EARG, "tg_reshape: %s: bad target dimension %lld",
                    tg_shape_str(x, buf, sizeof buf), (long long)s[i]);
            return NULL;
        }
    }
    /* The product of the given sizes, checked: [3, 6148914691236517206] must not wrap to 2. */
    int64_t known = tg_shape_numel(ndim, s);
    if (known < 0) {
        tg_fail(tp, TG_ESHAPE,
                "tg_reshape: %s to %s: the target's non-zero sizes multiply to "
                "more than %lld (TG_MAX_NUMEL)",
                tg_shape_str(x, buf, sizeof buf), tg_shape_fmt(ndim, shape, want, sizeof want),
                (long long)TG_MAX_NUMEL);
        return NULL;
    }
    if (infer >= 0 && known == 0) { /* the -1 could be anything: refused, as in PyTorch */
        tg_fail(tp, TG_ESHAPE, "tg_reshape: %s to %s: the -1 is ambiguous next to a 0",
                tg_shape_str(x, buf, sizeof buf), tg_shape_fmt(ndim, shape, want, sizeof want));
        return NULL;
    }
    if (infer < 0 ? known != x->numel : x->numel % known != 0) {
        tg_fail(tp, TG_ESHAPE, "tg_reshape: %s to %s: element counts differ",
                tg_shape_str(x, buf, sizeof buf), tg_shape_fmt(ndim, shape, want, sizeof want));
        return NULL;
    }
    if (infer >= 0) s[infer] = x->numel / known;
    tg_node *n = tg_op_begin(tp, TG_OP_reshape, 1, &x, ndim, s);
    return n ? tg_op_finish(tp, n) : NULL;
}

/* ---- transpose: swap axes a0 < a1. Viewed as [A, n0, B, n1, C] -> [A, n1, B, n0, C].
 * Attributes: tg_node_attr(n)->transpose (A, n0, B, n1, C). ---- */
/* transpose_f32 and transpose_f64, from the template ops/transpose_t.h. */
#define TG_TEMPLATE "transpose_t.h"
#include "stamp.h"

/* Empty tensors return first: [2^40, 2^8, 0] would otherwise loop 2^48 times over nothing. */
void tg_transpose_fwd(tg_node *n)
{
    if (tg_node_out(n)->numel == 0) return;
    if (tg_node_out(n)->dtype == TG_F32)
        transpose_f32(n, n->in[0]->data, tg_node_out(n)->data, false);
    else transpose_f64(n, n->in[0]->data, tg_node_out(n)->data, false);
}

void tg_transpose_bwd(tg_node *n)
{
    if (!n->in[0]->requires_grad || tg_node_out(n)->numel == 0) return;
    if (tg_node_out(n)->dtype == TG_F32)
        transpose_f32(n, tg_node_out(n)->grad->data, n->in[0]->grad->data, true);
    else transpose_f64(n, tg_node_out(n)->grad->data, n->in[0]->grad->data, true);
}

tg_tensor *tg_transpose(tg_tape *tp, tg_tensor *x, int a0, int a1)
{
    char buf[128];
    if (tg_op_check(tp, TG_OP_transpose, 1, &x)) return NULL;
    int p = tg_axis(a0, x->ndim), q = tg_axis(a1, x->ndim);
    if (p < 0 || q < 0) {
        tg_fail(tp, TG_EARG, "tg_transpose: axes %d and %d: out of range for %s", a0, a1,
                tg_shape_str(x, buf, sizeof buf));
        return NULL;
    }
    if (p > q) {
        int t = p;
        p = q, q = t;
    }
    int64_t shape[TG_MAX_DIMS], A = 1, B = 1, C = 1;
    for (int i = 0; i < x->ndim; i++) {
        shape[i] = x->shape[i];
        if (i < p) A *= x->shape[i];
        else if (i > p && i < q) B *= x->shape[i];
        else if (i > q) C *= x->shape[i];
    }
    shape[p] = x->shape[q], shape[q] = x->shape[p];
    tg_node *n = tg_op_begin(tp, TG_OP_transpose, 1, &x, x->ndim, shape);
    if (!n) return NULL;
    tg_node_attr(n)->transpose.A = A, tg_node_attr(n)->transpose.n0 = x->shape[p],
    tg_node_attr(n)->transpose.B = B;
    tg_node_attr(n)->transpose.n1 = p == q ? 1 : x->shape[q], tg_node_attr(n)->transpose.C = C;
    return tg_op_finish(tp, n);
}

/* ---- slice and concat: copies of [outer, len, inner] blocks along an axis ----
 * Slice attributes: tg_node_attr(n)->view (outer, len the input length, inner, start, axis). */
static void copy_block(size_t es, char *dst, const char *src, int64_t outer, int64_t rows,
                       int64_t inner, int64_t dst_len, int64_t dst_off, int64_t src_len,
                       int64_t src_off)
{
    for (int64_t o = 0; o < outer; o++)
        memcpy(dst + (size_t)((o * dst_len + dst_off) * inner) * es,
               src + (size_t)((o * src_len + src_off) * inner) * es, (size_t)(rows * inner) * es);
}

static void add_block(tg_dtype dt, void *dst, const void *src, int64_t outer, int64_t rows,
                      int64_t inner, int64_t dst_len, int64_t dst_off, int64_t src_len,
                      int64_t src_off)
{
    size_t es = tg_dtype_size(dt);
    for (int64_t o = 0; o < outer; o++)
        add_into(dt, (char *)dst + (size_t)((o * dst_len + dst_off) * inner) * es,
                 (const char *)src + (size_t)((o * src_len + src_off) * inner) * es, rows * inner);
}

static int64_t axis_extent(const tg_tensor *x, int ax, int64_t *outer, int64_t *inner)
{
    *outer = *inner = 1;
    for (int i = 0; i < x->ndim; i++) {
        if (i < ax) *outer *= x->shape[i];
        if (i > ax) *inner *= x->shape[i];
    }
    return x->shape[ax];
}

void tg_slice_fwd(tg_node *n)
{
    int64_t outer = tg_node_attr(n)->view.outer, len = tg_node_attr(n)->view.len,
            inner = tg_node_attr(n)->view.inner;
    int64_t start = tg_node_attr(n)->view.start;
    if (tg_node_out(n)->numel == 0) return;
    int64_t rows = tg_node_out(n)->numel / (outer * inner);
    copy_block(tg_dtype_size((tg_dtype)tg_node_out(n)->dtype), tg_node_out(n)->data, n->in[0]->data,
               outer, rows, inner, rows, 0, len, start);
}

void tg_slice_bwd(tg_node *n)
{
    if (!n->in[0]->requires_grad || tg_node_out(n)->numel == 0) return;
    int64_t outer = tg_node_attr(n)->view.outer, len = tg_node_attr(n)->view.len,
            inner = tg_node_attr(n)->view.inner;
    int64_t start = tg_node_attr(n)->view.start;
    int64_t rows = tg_node_out(n)->numel / (outer * inner);
    add_block((tg_dtype)tg_node_out(n)->dtype, n->in[0]->grad->data, tg_node_out(n)->grad->data,
              outer, rows, inner, len, start, rows, 0);
}

tg_tensor *tg_slice(tg_tape *tp, tg_tensor *x, int axis, int64_t start, int64_t end)
{
    char buf[128];
    if (tg_op_check(tp, TG_OP_slice, 1, &x)) return NULL;
    int ax = tg_axis(axis, x->ndim);
    if (ax < 0) {
        tg_fail(tp, TG_EARG, "tg_slice: axis %d out of range for %s", axis,
                tg_shape_str(x, buf, sizeof buf));
        return NULL;
    }
    int64_t outer, inner, len = axis_extent(x, ax, &outer, &inner);
    int64_t s = start < 0 ? start + len : start, e = end < 0 ? end + len : end;
    if (s < 0 || e > len || s > e) {
        tg_fail(tp, TG_EARG, "tg_slice: [%lld, %lld) out of range for axis %d of %s",
                (long long)start, (long long)end, axis, tg_shape_str(x, buf, sizeof buf));
        return NULL;
    }
    int64_t shape[TG_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) shape[i] = i == ax ? e - s : x->shape[i];
    tg_node *n = tg_op_begin(tp, TG_OP_slice, 1, &x, x->ndim, shape);
    if (!n) return NULL;
    tg_node_attr(n)->view.outer = outer, tg_node_attr(n)->view.len = len,
    tg_node_attr(n)->view.inner = inner;
    tg_node_attr(n)->view.start = s, tg_node_attr(n)->view.axis = ax;
    return tg_op_finish(tp, n);
}

/* Concat attributes: tg_node_attr(n)->view (outer, len the output length, inner, axis). */
void tg_concat_fwd(tg_node *n)
{
    int64_t outer = tg_node_attr(n)->view.outer, len = tg_node_attr(n)->view.len,
            inner = tg_node_attr(n)->view.inner;
    int64_t off = 0;
    int ax = tg_node_attr(n)->view.axis;
    size_t es = tg_dtype_size((tg_dtype)tg_node_out(n)->dtype);
    for (int k = 0; k < n->n_in; k++) {
        int64_t rows = n->in[k]->shape[ax];
        if (rows && outer && inner)
            copy_block(es, tg_node_out(n)->data, n->in[k]->data, outer, rows, inner, len, off, rows,
                       0);
        off += rows;
    }
}

void tg_concat_bwd(tg_node *n)
{
    int64_t outer = tg_node_attr(n)->view.outer, len = tg_node_attr(n)->view.len,
            inner = tg_node_attr(n)->view.inner;
    int64_t off = 0;
    int ax = tg_node_attr(n)->view.axis;
    for (int k = 0; k < n->n_in; k++) {
        int64_t rows = n->in[k]->shape[ax];
        if (n->in[k]->requires_grad && rows && outer && inner)
            add_block((tg_dtype)tg_node_out(n)->dtype, n->in[k]->grad->data,
                      tg_node_out(n)->grad->data, outer, rows, inner, rows, 0, len, off);
        off += rows;
    }
}

tg_tensor *tg_concat(tg_tape *tp, int n_in, tg_tensor *const *xs, int axis)
{
    char buf[256];
    if (!tp || tp->err) return NULL;
    if (n_in < 1 || n_in > 65535 || !xs) {
        tg_fail(tp, TG_EARG, "tg_concat: want at least one input, got %d", n_in);
        return NULL;
    }
    if (tg_op_check(tp, TG_OP_concat, n_in, xs)) return NULL;
    const tg_tensor *x0 = xs[0];
    int ax = tg_axis(axis, x0->ndim);
    if (ax < 0) {
        tg_fail(tp, TG_EARG, "tg_concat: axis %d out of range for %s", axis,
                tg_shape_str(x0, buf, sizeof buf));
        return NULL;
    }
    int64_t shape[TG_MAX_DIMS], total = 0;
    for (int k = 0; k < n_in; k++) {
        bool ok = xs[k]->ndim == x0->ndim;
        for (int i = 0; ok && i < x0->ndim; i++) ok = i == ax || xs[k]->shape[i] == x0->shape[i];
        if (!ok) {
            tg_fail(tp, TG_ESHAPE, "tg_concat: %s: shapes differ outside axis %d",
                    tg_shapes_str(buf, sizeof buf, n_in < 8 ? n_in : 8, xs), axis);
            return NULL;
        }
        /* each size is at most TG_MAX_NUMEL, so the sum cannot overflow before this */
        if ((total += xs[k]->shape[ax]) > TG_MAX_NUMEL) {
            tg_fail(tp, TG_ESHAPE,
                    "tg_concat: %s: the sizes along axis %d add up to more than "
                    "%lld (TG_MAX_NUMEL)",
                    tg_shapes_str(buf, sizeof buf, n_in < 8 ? n_in : 8, xs), axis,
                    (long long)TG_MAX_NUMEL);
            return NULL;
        }
    }
    for (int i = 0; i < x0->ndim; i++) shape[i] = i == ax ? total : x0->shape[i];
    int64_t outer, inner;
    axis_extent(x0, ax, &outer, &inner);
    tg_node *n = tg_op_begin(tp, TG_OP_concat, n_in, xs, x0->ndim, shape);
    if (!n) return NULL;
    tg_node_attr(n)->view.outer = outer, tg_node_attr(n)->view.len = total,
    tg_node_attr(n)->view.inner = inner;
    tg_node_attr(n)->view.axis = ax;
    return tg_op_finish(tp, n);
}

/* ---- pad: x inside a border of value, before[d] and after[d] elements along each axis d.
 * Saved context: the 2 ndim sizes, before then after (too many for the attributes). The interior
 * is copied as rows: the axes after the last padded one k are whole in both, so a row is
 * x's block from axis k on, x->shape[k] · inner elements, placed before[k] · inner into
 * the output's block; an odometer steps through x's indices before axis k. ---- */
#define FILL_KERNEL(T, SFX)                                                                        \
    static void fill_##SFX(T *restrict d, T v, int64_t len)                                        \
    {                                                                                              \
        for (int64_t i = 0; i < len; i++) d[i] = v;                                                \
    }
FILL_KERNEL(float, f32)
FILL_KERNEL(double, f64)

/* Every row of x (numel > 0) and its place in y: copied forward into y; back, copied or
 * (add) added from dy into dx (xd and yd then being the gradients). */
static void pad_rows(const tg_node *n, void *xd, void *yd, bool back, bool add)
{
    const tg_tensor *x = n->in[0], *y = tg_node_out(n);
    const int64_t *before = n->saved;
    tg_dtype dt = (tg_dtype)y->dtype;
    size_t es = tg_dtype_size(dt);
    int k = x->ndim - 1;
    while (k >= 0 && before[k] == 0 && before[x->ndim + k] == 0) k--;
    if (k < 0) { /* nothing padded */
        if (back && add) add_into(dt, xd, yd, x->numel);
        else if (back) memcpy(xd, yd, (size_t)x->numel * es);
        else memcpy(yd, xd, (size_t)x->numel * es);
        return;
    }
    int64_t inner = 1, ys[TG_MAX_DIMS] = {0}, t = 1, idx[TG_MAX_DIMS] = {0}, off = 0;
    for (int d = x->ndim - 1; d > k; d--) inner *= x->shape[d];
    for (int d = x->ndim - 1; d >= 0; d--) ys[d] = t, t *= y->shape[d]; /* y's strides */
    for (int d = 0; d <= k; d++) off += before[d] * ys[d];
    const int64_t w = x->shape[k] * inner;
    for (int64_t i = 0; i < x->numel; i += w) {
        char *xr = (char *)xd + (size_t)i * es, *yr = (char *)yd + (size_t)off * es;
        if (back && add) add_into(dt, xr, yr, w);
        else if (back) memcpy(xr, yr, (size_t)w * es);
        else memcpy(yr, xr, (size_t)w * es);
        for (int d = k - 1; d >= 0; d--) {
            off += ys[d];
            if (++idx[d] < x->shape[d]) break;
            off -= ys[d] * x->shape[d];
            idx[d] = 0;
        }
    }
}

/* y = value around x;  dx (+)= the interior of dy. sets = 1: an unset dx is written
 * (tg_grad_beta). An empty x leaves only the border; an empty y has an empty x. */
void tg_pad_fwd(tg_node *n)
{
    tg_tensor *y = tg_node_out(n);
    if (y->numel == 0) return;
    if (y->dtype == TG_F32) fill_f32(y->data, (float)tg_node_attr(n)->scalar, y->numel);
    else fill_f64(y->data, tg_node_attr(n)->scalar, y->numel);
    if (n->in[0]->numel) pad_rows(n, n->in[0]->data, y->data, false, false);
}

void tg_pad_bwd(tg_node *n)
{
    tg_tensor *x = n->in[0];
    if (!x->requires_grad) return;
    bool add = tg_grad_beta(x);
    if (x->numel) pad_rows(n, x->grad->data, tg_node_out(n)->grad->data, true, add);
}

tg_tensor *tg_pad(tg_tape *tp, tg_tensor *x, const int64_t *before, const int64_t *after,
                  double value)
{
    char buf[128];
    if (tg_op_check(tp, TG_OP_pad, 1, &x)) return NULL;
    if (x->ndim > 0 && (!before || !after)) {
        tg_fail(tp, TG_EARG, "tg_pad: %s: the %s sizes are NULL", tg_shape_str(x, buf, sizeof buf),
                before ? "after" : "before");
        return NULL;
    }
    int64_t shape[TG_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) {
        if (before[d] < 0 || after[d] < 0) {
            tg_fail(tp, TG_EARG, "tg_pad: %s: negative padding %lld before, %lld after axis %d",
                    tg_shape_str(x, buf, sizeof buf), (long long)before[d], (long long)after[d], d);
            return NULL;
        }
        /* x->shape[d] <= TG_MAX_NUMEL: the sum saturates instead of wrapping, and anything
         * that large is refused by tg_arena_tensor below */
        int64_t s = x->shape[d];
        s = before[d] > INT64_MAX - s ? INT64_MAX : s + before[d];
        shape[d] = after[d] > INT64_MAX - s ? INT64_MAX : s + after[d];
    }
    if (!isfinite(value)) {
        tg_fail(tp, TG_EARG, "tg_pad: %s: the padding value %g is not finite",
                tg_shape_str(x, buf, sizeof buf), value);
        return NULL;
    }
    tg_node *n = tg_op_begin(tp, TG_OP_pad, 1, &x, x->ndim, shape);
    if (!n) return NULL;
    tg_node_attr(n)->scalar = value;
    if (x->ndim > 0) {
        int64_t *p = tg_op_save(tp, n, 2 * (size_t)x->ndim * sizeof(int64_t));
        if (!p) return NULL;
        memcpy(p, before, (size_t)x->ndim * sizeof(int64_t));
        memcpy(p + x->ndim, after, (size_t)x->ndim * sizeof(int64_t));
    }
    return tg_op_finish(tp, n);
}

/* ---- the same backwards in ops (tg_op.vjp) ---- */
void tg_reshape_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    dx[0] = tg_reshape(tp, dy, n->in[0]->ndim, n->in[0]->shape);
}
/* dy viewed as [A, n1, B, n0, C] with its axes 1 and 3 swapped back. */
void tg_transpose_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                      tg_tensor **dx)
{
    (void)want;
    const int64_t v[5] = {tg_node_attr(n)->transpose.A, tg_node_attr(n)->transpose.n1,
                          tg_node_attr(n)->transpose.B, tg_node_attr(n)->transpose.n0,
                          tg_node_attr(n)->transpose.C};
    tg_tensor *x = n->in[0];
    dx[0] = tg_reshape(tp, tg_transpose(tp, tg_reshape(tp, dy, 5, v), 1, 3), x->ndim, x->shape);
}
/* dy into its window: dy padded with zeros along the axis (pad and slice are adjoints). */
void tg_slice_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    int64_t before[TG_MAX_DIMS] = {0}, after[TG_MAX_DIMS] = {0};
    int ax = tg_node_attr(n)->view.axis;
    before[ax] = tg_node_attr(n)->view.start;
    after[ax] = tg_node_attr(n)->view.len - tg_node_attr(n)->view.start - dy->shape[ax];
    dx[0] = tg_pad(tp, dy, before, after, 0);
}
/* Each input's window of dy, a slice along the axis. */
void tg_concat_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    int ax = tg_node_attr(n)->view.axis;
    int64_t off = 0;
    for (int k = 0; k < n->n_in; k++) {
        int64_t rows = n->in[k]->shape[ax];
        if (want[k]) dx[k] = tg_slice(tp, dy, ax, off, off + rows);
        off += rows;
    }
}
/* The interior of dy: a slice along each padded axis (pad and slice are adjoints). */
void tg_pad_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    const tg_tensor *x = n->in[0];
    const int64_t *before = n->saved;
    tg_tensor *g = dy;
    for (int d = 0; d < x->ndim; d++)
        if (before[d] || before[x->ndim + d])
            g = tg_slice(tp, g, d, before[d], before[d] + x->shape[d]);
    dx[0] = g;
}
