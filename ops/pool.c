/* ops/pool.c: max and average pooling over the windows of NCHW tensors, and the global
 * average pool (a mean over H·W). x [N,C,H,W] is viewed as N·C planes [H, W]; output
 * (oh, ow) of a plane covers rows oh·sh - ph .. + kh - 1 and columns ow·sw - pw .. + kw - 1,
 * Ho = (H + 2 ph - kh) / sh + 1 (likewise Wo). As padding <= kernel / 2, every window holds
 * at least one element of the plane, and reaches at most ph past its end.
 *   max:  y = the window's maximum (padding is -inf), dx[its first maximal element] += dy;
 *         a NaN is the maximum of its window and takes the gradient (the first NaN).
 *   avg:  y = Σ window / (kh·kw) (padding counts as zeros), dx[window] += dy / (kh·kw).
 * The geometry is saved in the arena (pool_geom), followed for a recorded max_pool2d by the
 * plane index (h·W + w) of each output's maximum. The 2x2 stride-2 unpadded case has loops
 * of its own; planes are split over the threads when the work is large, each plane done
 * whole by one thread, so the bits do not depend on the thread count. */
#include "internal.h"

typedef struct pool_geom {
    int64_t planes, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw;
    int64_t *arg; /* max_pool2d, recorded: [planes·Ho·Wo] plane indices; else NULL */
} pool_geom;

/* maxpool_fwd, maxpool_bwd, avgpool_fwd and avgpool_bwd for f32 and f64, from the template
 * ops/pool_t.h. */
#define TG_TEMPLATE "pool_t.h"
#include "stamp.h"

#define POOL_PARALLEL_MIN 65536 /* window elements visited; below, one thread */

enum { MAX_FWD, MAX_BWD, AVG_FWD, AVG_BWD };

static void run_planes(const pool_geom *g, int which, bool f32, const void *in, void *out,
                       int64_t p0, int64_t p1)
{
    if (p0 >= p1) return;
    switch (which) {
    case MAX_FWD:
        if (f32) maxpool_fwd_f32(g, in, out, p0, p1);
        else maxpool_fwd_f64(g, in, out, p0, p1);
        break;
    case MAX_BWD:
        if (f32) maxpool_bwd_f32(g, in, out, p0, p1);
        else maxpool_bwd_f64(g, in, out, p0, p1);
        break;
    case AVG_FWD:
        if (f32) avgpool_fwd_f32(g, in, out, p0, p1);
        else avgpool_fwd_f64(g, in, out, p0, p1);
        break;
    default:
        if (f32) avgpool_bwd_f32(g, in, out, p0, p1);
        else avgpool_bwd_f64(g, in, out, p0, p1);
    }
}

/* One pass over every plane: in to out (x to y, or dy to dx). Nothing when the output is
 * empty, whatever the other sizes. */
static void pass(const tg_node *n, int which, const void *in, void *out)
{
    const pool_geom *g = n->saved;
    if (tg_node_out(n)->numel == 0) return;
    /* per output, the window clipped to the plane: at most kh·kw and at most H·W */
    double per = fmin((double)g->kh * (double)g->kw, (double)(g->H * g->W));
    double work = (double)tg_node_out(n)->numel * (which == MAX_BWD ? 1.0 : per);
    int nt = tg_get_num_threads();
    if (nt < 1 || work < POOL_PARALLEL_MIN || g->planes < 2) nt = 1;
    if (nt > g->planes) nt = (int)g->planes;
    bool f32 = tg_node_out(n)->dtype == TG_F32;
    TG_OMP_FOR("omp parallel for schedule(static, 1) num_threads(nt) if (nt > 1)")
    for (int t = 0; t < nt; t++)
        run_planes(g, which, f32, in, out, g->planes * t / nt, g->planes * (t + 1) / nt);
}

void tg_max_pool2d_fwd(tg_node *n) { pass(n, MAX_FWD, n->in[0]->data, tg_node_out(n)->data); }
void tg_max_pool2d_bwd(tg_node *n)
{
    if (n->in[0]->requires_grad) pass(n, MAX_BWD, tg_node_out(n)->grad->data, n->in[0]->grad->data);
}
void tg_avg_pool2d_fwd(tg_node *n) { pass(n, AVG_FWD, n->in[0]->data, tg_node_out(n)->data); }
void tg_avg_pool2d_bwd(tg_node *n)
{
    if (n->in[0]->requires_grad) pass(n, AVG_BWD, tg_node_out(n)->grad->data, n->in[0]->grad->data);
}

/* ---- the wrappers ---- */
static tg_tensor *pool(tg_tape *tp, int op, tg_tensor *x, const tg_pool2d_opts *o)
{
    const char *name = tg_op_table[op].name;
    char sx[128];
    if (tg_op_check(tp, op, 1, &x)) return NULL;
    if (x->ndim != 4) {
        tg_fail(tp, TG_ESHAPE, "tg_%s: x %s: want 4 dimensions [N,C,H,W]", name,
                tg_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    if (!o) {
        tg_fail(tp, TG_EARG, "tg_%s: options NULL: the kernel size is needed", name);
        return NULL;
    }
    int64_t k[2], s[2], p[2], in[2] = {x->shape[2], x->shape[3]}, out[2];
    for (int d = 0; d < 2; d++) {
        k[d] = o->kernel[d], s[d] = o->stride[d] ? o->stride[d] : o->kernel[d];
        p[d] = o->padding[d];
        if (k[d] < 1 || o->stride[d] < 0 || p[d] < 0 || p[d] > k[d] / 2) {
            tg_fail(tp, TG_EARG,
                    "tg_%s: kernel [%lld,%lld], stride [%lld,%lld], padding [%lld,%lld]: want "
                    "kernel >= 1, stride >= 0 (0: the kernel's) and 0 <= padding <= kernel / 2",
                    name, (long long)o->kernel[0], (long long)o->kernel[1], (long long)o->stride[0],
                    (long long)o->stride[1], (long long)o->padding[0], (long long)o->padding[1]);
            return NULL;
        }
    }
    if (in[0] == 0 || in[1] == 0) {
        tg_fail(tp, TG_ESHAPE, "tg_%s: x %s: H and W must be at least 1", name,
                tg_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    for (int d = 0; d < 2; d++) {
        if (in[d] < k[d] - 2 * p[d]) { /* k - 2p >= 0: no overflow */
            tg_fail(tp, TG_ESHAPE,
                    "tg_%s: x %s, kernel [%lld,%lld], padding [%lld,%lld]: the kernel is larger "
                    "than the padded input",
                    name, tg_shape_str(x, sx, sizeof sx), (long long)k[0], (long long)k[1],
                    (long long)p[0], (long long)p[1]);
            return NULL;
        }
        out[d] = (in[d] - (k[d] - 2 * p[d])) / s[d] + 1;
    }
    const int64_t shape[4] = {x->shape[0], x->shape[1], out[0], out[1]};
    tg_node *n = tg_op_begin(tp, op, 1, &x, 4, shape);
    if (!n) return NULL;
    bool args = op == TG_OP_max_pool2d && tg_op_records(tp, 1, &x);
    size_t bytes = sizeof(pool_geom) + (args ? (size_t)tg_node_out(n)->numel * sizeof(int64_t) : 0);
    pool_geom *g = tg_op_save(tp, n, bytes);
    if (!g) return NULL;
    *g = (pool_geom){x->shape[0] * x->shape[1],
                     in[0],
                     in[1],
                     out[0],
                     out[1],
                     k[0],
                     k[1],
                     s[0],
                     s[1],
                     p[0],
                     p[1],
                     args ? (int64_t *)(void *)(g + 1) : NULL};
    return tg_op_finish(tp, n);
}

tg_tensor *tg_max_pool2d(tg_tape *tp, tg_tensor *x, const tg_pool2d_opts *o)
{
    return pool(tp, TG_OP_max_pool2d, x, o);
}
tg_tensor *tg_avg_pool2d(tg_tape *tp, tg_tensor *x, const tg_pool2d_opts *o)
{
    return pool(tp, TG_OP_avg_pool2d, x, o);
}

/* A mean over the flattened H·W: a reshape and a mean, no op of its own. */
tg_tensor *tg_global_avg_pool2d(tg_tape *tp, tg_tensor *x)
{
    char sx[128];
    if (!tp || tp->err) return NULL;
    if (!x) {
        tg_fail(tp, TG_EARG, "tg_global_avg_pool2d: x is NULL");
        return NULL;
    }
    if (!tg_tensor_usable(tp, x)) {
        tg_fail(tp, TG_ESTATE,
                "tg_global_avg_pool2d: x belongs to another tape or was made before "
                "tg_tape_reset");
        return NULL;
    }
    if (x->ndim != 4 || x->shape[2] == 0 || x->shape[3] == 0) {
        tg_fail(tp, TG_ESHAPE, "tg_global_avg_pool2d: x %s: want [N,C,H,W] with H, W >= 1",
                tg_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    const int64_t v[3] = {x->shape[0], x->shape[1], x->shape[2] * x->shape[3]};
    return tg_mean(tp, tg_reshape(tp, x, 3, v), 2, false);
}

/* ---- the same backwards in ops (tg_op.vjp): dy spread over each window as unfolded
 * columns [N, C·kh·kw, Ho·Wo], then folded (col2im: tg_fold sums where windows overlap and
 * drops the padding) ---- */

/* cols [N, C, kh·kw, L] as [N, C·kh·kw, L], folded into x's shape. */
static tg_tensor *fold_back(tg_tape *tp, const tg_node *n, tg_tensor *cols)
{
    const pool_geom *g = n->saved;
    const tg_tensor *x = n->in[0];
    const int64_t cs[3] = {x->shape[0], x->shape[1] * g->kh * g->kw, g->Ho * g->Wo};
    const tg_conv2d_opts co = {{g->sh, g->sw}, {g->ph, g->pw}, {1, 1}, 1};
    return tg_fold(tp, tg_reshape(tp, cols, 3, cs), g->H, g->W, g->kh, g->kw, &co);
}

/* The column shape [N, C, kh·kw, L] in s; false (with an error) when C·kh·kw is beyond
 * TG_MAX_NUMEL, so that no product overflows. */
static bool cols_shape(tg_tape *tp, const tg_node *n, int64_t *s)
{
    const pool_geom *g = n->saved;
    const tg_tensor *x = n->in[0];
    if (g->kh > TG_MAX_NUMEL / g->kw || x->shape[1] > TG_MAX_NUMEL / (g->kh * g->kw)) {
        tg_fail(tp, TG_ESHAPE,
                "tg_gradients: %s with C = %lld and a [%lld,%lld] kernel: its columns would "
                "have more than %lld rows (TG_MAX_NUMEL)",
                tg_op_table[n->op].name, (long long)x->shape[1], (long long)g->kh, (long long)g->kw,
                (long long)TG_MAX_NUMEL);
        return false;
    }
    s[0] = x->shape[0], s[1] = x->shape[1], s[2] = g->kh * g->kw, s[3] = g->Ho * g->Wo;
    return true;
}

/* dy [N,C,Ho,Wo] repeated over each window: columns of shape s [N, C, kh·kw, Ho·Wo]. */
static tg_tensor *over_windows(tg_tape *tp, tg_tensor *dy, const int64_t *s)
{
    const int64_t s1[4] = {s[0], s[1], 1, s[3]};
    return tg_broadcast_to(tp, tg_reshape(tp, dy, 4, s1), 4, s);
}

/* dx = fold(dy at the window's maximum): dy repeated over the window times a constant 0/1
 * mask of where the maximum is. Piecewise linear, so the second derivative is 0. */
void tg_max_pool2d_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                       tg_tensor **dx)
{
    (void)want;
    const pool_geom *g = n->saved;
    int64_t s[4];
    if (tg_node_out(n)->numel == 0) {
        dx[0] = tg_const_like(tp, n->in[0], 0);
        return;
    }
    if (!cols_shape(tp, n, s)) return;
    tg_tensor *mask = tg_const(tp, "gradients", (tg_dtype)dy->dtype, 4, s, 0);
    if (!mask) return;
    const int64_t L = s[3], kk = s[2];
    for (int64_t p = 0; p < g->planes; p++)
        for (int64_t l = 0; l < L; l++) {
            const int64_t a = g->arg[p * L + l], oh = l / g->Wo, ow = l % g->Wo;
            const int64_t i = a / g->W - (oh * g->sh - g->ph), j = a % g->W - (ow * g->sw - g->pw);
            tg_set(mask, (p * kk + i * g->kw + j) * L + l, 1);
        }
    dx[0] = fold_back(tp, n, tg_mul(tp, over_windows(tp, dy, s), mask));
}

/* dx = fold(dy / (kh·kw) repeated over the window). Linear: the second derivative is 0. */
void tg_avg_pool2d_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                       tg_tensor **dx)
{
    (void)want;
    const pool_geom *g = n->saved;
    int64_t s[4];
    if (tg_node_out(n)->numel == 0) {
        dx[0] = tg_const_like(tp, n->in[0], 0);
        return;
    }
    if (!cols_shape(tp, n, s)) return;
    tg_tensor *d = tg_mul_scalar(tp, dy, 1.0 / ((double)g->kh * (double)g->kw));
    dx[0] = fold_back(tp, n, over_windows(tp, d, s));
}
