/* ops/broadcast.c: broadcast_to and sum_to, NumPy broadcasting as ops of their own. Each is
 * the other's adjoint: broadcast_to repeats a small tensor over a big shape, sum_to sums a
 * big tensor down to a small shape, and the backward of either is the other.
 *
 * Both kernels walk the big shape with the small tensor's strides over it (0 along the
 * broadcast dimensions), as elementwise.c's general path does: dimensions of size 1 are
 * dropped and neighbours that are contiguous (or broadcast) in both are merged. The common
 * layouts then become one or two dimensions and run as plain loops over rows: the same
 * shape is one copy, a scalar one fill or one sum, a suffix (a bias [n] against [B,n], or
 * [1,1,n] against [B,C,n]) rows of n read or summed in place, a leading block ([B,1]
 * against [B,n], or [B,C,1] against [B,C,n]) a fill or sum per row. Anything else steps an
 * odometer over the outer dimensions, with the same row loops inside. An empty big tensor
 * returns at once: with a 0 among its sizes, the others may be 2^40 and more. */
#include "internal.h"

/* ---- the walk: the big shape merged, with the small tensor's strides ---- */
typedef struct bview {
    int nd;
    int64_t shape[TG_MAX_DIMS], st[TG_MAX_DIMS];
} bview;

/* small broadcasts to big (the wrappers check it). The last kept dimension has stride 0 or
 * 1: the dimensions after it are dropped, so they are 1 in both. */
static void bview_init(bview *v, const tg_tensor *small, const tg_tensor *big)
{
    int64_t st[TG_MAX_DIMS], t = 1;
    for (int d = big->ndim - 1; d >= 0; d--) {
        int j = d - (big->ndim - small->ndim);
        int64_t ds = j < 0 ? 1 : small->shape[j];
        st[d] = ds == 1 ? 0 : t, t *= ds;
    }
    v->nd = 0;
    for (int d = 0; d < big->ndim; d++) {
        if (big->shape[d] == 1) continue;
        int k = v->nd - 1;                                 /* the kept dimension just outside d */
        if (k >= 0 && v->st[k] == st[d] * big->shape[d]) { /* both 0, or contiguous */
            v->shape[k] *= big->shape[d], v->st[k] = st[d];
            continue;
        }
        v->shape[v->nd] = big->shape[d], v->st[v->nd] = st[d];
        v->nd++;
    }
    if (v->nd == 0) v->nd = 1, v->shape[0] = 1, v->st[0] = 0;
}

#define TG_TEMPLATE "broadcast_t.h"
#include "stamp.h"

/* One row of w big elements at big + i against the small tensor at small + is (stride 0 or
 * 1). EXPAND: big = small, or big += small with add. REDUCE: small += big. */
enum { EXPAND, REDUCE };
static void row(tg_dtype dt, int pass, bool add, char *big, char *small, int64_t w, int64_t st)
{
    if (dt == TG_F32) {
        float *b = (float *)(void *)big, *s = (float *)(void *)small;
        if (pass == REDUCE && st) add_f32(s, b, w);
        else if (pass == REDUCE) s[0] += sum_f32(b, w);
        else if (st && add) add_f32(b, s, w);
        else if (st) memcpy(b, s, (size_t)w * sizeof *b);
        else if (add) add_scalar_f32(b, s[0], w);
        else fill_f32(b, s[0], w);
    } else {
        double *b = (double *)(void *)big, *s = (double *)(void *)small;
        if (pass == REDUCE && st) add_f64(s, b, w);
        else if (pass == REDUCE) s[0] += sum_f64(b, w);
        else if (st && add) add_f64(b, s, w);
        else if (st) memcpy(b, s, (size_t)w * sizeof *b);
        else if (add) add_scalar_f64(b, s[0], w);
        else fill_f64(b, s[0], w);
    }
}

/* The pass over elements [i0, i1) of big, rows cut where the range starts or ends (an
 * EXPAND writes each element by itself, so any cut gives the same bits), or, with by_rows,
 * over rows [i0, i1) whole. REDUCE adds into small, which the caller has zeroed or which
 * holds values; walk splits it only where no two parts add into the same element. */
typedef struct walk_ctx {
    const bview *v;
    tg_dtype dt;
    int pass;
    bool add, by_rows;
    char *big, *small;
} walk_ctx;
static void walk_part(void *ctx, int64_t i0, int64_t i1)
{
    const walk_ctx *c = ctx;
    const bview *v = c->v;
    const size_t es = tg_dtype_size(c->dt);
    const int last = v->nd - 1;
    const int64_t w = v->shape[last], st = v->st[last];
    if (c->by_rows) i0 *= w, i1 *= w;
    int64_t idx[TG_MAX_DIMS] = {0}, is = 0, r = i0 / w, j = i0 % w;
    for (int d = last - 1; d >= 0; d--) /* the odometer at row r */
        idx[d] = r % v->shape[d], is += idx[d] * v->st[d], r /= v->shape[d];
    for (int64_t i = i0; i < i1; j = 0) {
        const int64_t len = w - j < i1 - i ? w - j : i1 - i;
        row(c->dt, c->pass, c->add, c->big + (size_t)i * es, c->small + (size_t)(is + st * j) * es,
            len, st);
        i += len;
        for (int d = last - 1; d >= 0; d--) {
            is += v->st[d];
            if (++idx[d] < v->shape[d]) break;
            is -= v->st[d] * v->shape[d];
            idx[d] = 0;
        }
    }
}
/* A REDUCE of one run of w elements into small[0] in ops/vecmath.h's fixed parts (their
 * sums in order), so that the bits do not depend on the thread count. */
typedef struct run_ctx {
    tg_dtype dt;
    const char *big;
    int64_t w;
    int count;
    double f64[TG_SUM_PARTS];
    float f32[TG_SUM_PARTS];
} run_ctx;
static void run_part(void *ctx, int p)
{
    run_ctx *c = ctx;
    const int64_t i0 = tg_sum_cut(c->w, c->count, p), i1 = tg_sum_cut(c->w, c->count, p + 1);
    if (c->dt == TG_F32) c->f32[p] = sum_f32((const float *)(const void *)c->big + i0, i1 - i0);
    else c->f64[p] = sum_f64((const double *)(const void *)c->big + i0, i1 - i0);
}

/* The pass over every element of big (numel of them), split over the threads from
 * TG_PAR_MIN elements (ops/vecmath.h) in ways that give one thread's bits: an EXPAND by
 * element ranges; a REDUCE into one element per row of big by rows, when no two rows share
 * an element; a single run into small[0] in fixed parts (at every thread count; one part
 * below TG_PAR_MIN, the sum of before). The other REDUCEs run on one thread: rows sharing
 * elements of small, and rows of big added into rows of small (a split by columns did not
 * pay here: [1000, 1000] to [1000] took 96 us on one thread, 140-200 us on two). */
static void walk(const bview *v, tg_dtype dt, int pass, bool add, void *big, void *small,
                 int64_t numel)
{
    walk_ctx c = {v, dt, pass, add, false, big, small};
    const int last = v->nd - 1;
    const int64_t w = v->shape[last], st = v->st[last];
    const int nt = tg_par_threads(numel);
    if (pass == REDUCE && !st && last == 0) { /* one run into small[0]: parts at any count */
        run_ctx r = {.dt = dt, .big = big, .w = w, .count = tg_sum_parts(w)};
        tg_par_parts(w, r.count, run_part, &r);
        if (dt == TG_F32) *(float *)small += tg_parts_sum_f32(r.f32, r.count);
        else *(double *)small += tg_parts_sum_f64(r.f64, r.count);
        return;
    }
    if (pass == EXPAND || nt <= 1) {
        tg_par_ranges(numel, TG_PAR_ALIGN, nt, walk_part, &c);
        return;
    }
    bool own = !st; /* each row of big sums into an element of its own */
    for (int d = 0; d < last; d++) own &= v->st[d] != 0;
    c.by_rows = true;
    tg_par_ranges(numel / w, 1, own ? nt : 1, walk_part, &c);
}

/* big = small repeated (add: big += it). The data are the tensors' or their gradients'. */
static void expand(const tg_tensor *small, void *small_data, const tg_tensor *big, void *big_data,
                   bool add)
{
    if (big->numel == 0) return;
    bview v;
    bview_init(&v, small, big);
    walk(&v, (tg_dtype)big->dtype, EXPAND, add, big_data, small_data, big->numel);
}

/* small = big summed over the broadcast dimensions (add: small += it). An empty big sums
 * to zeros. */
static void reduce(const tg_tensor *small, void *small_data, const tg_tensor *big, void *big_data,
                   bool add)
{
    if (!add) tg_par_zero(small_data, small->numel, tg_dtype_size((tg_dtype)small->dtype));
    if (big->numel == 0) return;
    bview v;
    bview_init(&v, small, big);
    walk(&v, (tg_dtype)big->dtype, REDUCE, true, big_data, small_data, big->numel);
}

/* y = x repeated to the target shape;  dx (+)= dy summed back to x's shape. sets = 1: an
 * unset dx is written (tg_grad_beta). */
void tg_broadcast_to_fwd(tg_node *n)
{
    expand(n->in[0], n->in[0]->data, tg_node_out(n), tg_node_out(n)->data, false);
}
void tg_broadcast_to_bwd(tg_node *n)
{
    tg_tensor *x = n->in[0];
    if (x->requires_grad)
        reduce(x, x->grad->data, tg_node_out(n), tg_node_out(n)->grad->data, tg_grad_beta(x));
}
/* y = x summed to the target shape;  dx (+)= dy repeated to x's shape. */
void tg_sum_to_fwd(tg_node *n)
{
    reduce(tg_node_out(n), tg_node_out(n)->data, n->in[0], n->in[0]->data, false);
}
void tg_sum_to_bwd(tg_node *n)
{
    tg_tensor *x = n->in[0];
    if (x->requires_grad)
        expand(tg_node_out(n), tg_node_out(n)->grad->data, x, x->grad->data, tg_grad_beta(x));
}

/* ---- the wrappers ---- */
/* Whether shape (nd) broadcasts to big's shape exactly: nd <= big's rank and, aligned from
 * the right, each size equal to big's or 1. */
static bool broadcasts_to(int nd, const int64_t *shape, int big_nd, const int64_t *big)
{
    if (nd > big_nd) return false;
    for (int i = 0; i < nd; i++) {
        int64_t s = shape[i], b = big[i + big_nd - nd];
        if (s != b && s != 1) return false;
    }
    return true;
}

/* The target shape's own checks: a rank in 0..TG_MAX_DIMS, a shape array when it is not
 * 0, sizes >= 0 (TG_EARG); non-zero sizes multiplying to at most TG_MAX_NUMEL (TG_ESHAPE).
 * 0 if it passes, else the error (recorded). */
static int check_target(tg_tape *tp, const char *who, const tg_tensor *x, int ndim,
                        const int64_t *shape)
{
    char buf[128];
    if (ndim < 0 || ndim > TG_MAX_DIMS || (ndim > 0 && !shape))
        return tg_fail(tp, TG_EARG, "tg_%s: %s: bad target rank %d%s", who,
                       tg_shape_str(x, buf, sizeof buf), ndim,
                       ndim > 0 && ndim <= TG_MAX_DIMS ? " (shape NULL)" : "");
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return tg_fail(tp, TG_EARG, "tg_%s: %s: negative target size %lld", who,
                           tg_shape_str(x, buf, sizeof buf), (long long)shape[i]);
    if (tg_shape_numel(ndim, shape) < 0) return tg_shape_fail(tp, who, ndim, shape);
    return TG_OK;
}

tg_tensor *tg_broadcast_to(tg_tape *tp, tg_tensor *x, int ndim, const int64_t *shape)
{
    char a[128], b[128];
    if (tg_op_check(tp, TG_OP_broadcast_to, 1, &x)) return NULL;
    if (check_target(tp, "broadcast_to", x, ndim, shape)) return NULL;
    if (!broadcasts_to(x->ndim, x->shape, ndim, shape)) {
        tg_fail(tp, TG_ESHAPE, "tg_broadcast_to: %s does not broadcast to %s",
                tg_shape_str(x, a, sizeof a), tg_shape_fmt(ndim, shape, b, sizeof b));
        return NULL;
    }
    tg_node *n = tg_op_begin(tp, TG_OP_broadcast_to, 1, &x, ndim, shape);
    return n ? tg_op_finish(tp, n) : NULL;
}

tg_tensor *tg_sum_to(tg_tape *tp, tg_tensor *x, int ndim, const int64_t *shape)
{
    char a[128], b[128];
    if (tg_op_check(tp, TG_OP_sum_to, 1, &x)) return NULL;
    if (check_target(tp, "sum_to", x, ndim, shape)) return NULL;
    if (!broadcasts_to(ndim, shape, x->ndim, x->shape)) {
        tg_fail(tp, TG_ESHAPE, "tg_sum_to: %s to %s: the target does not broadcast to %s",
                tg_shape_str(x, a, sizeof a), tg_shape_fmt(ndim, shape, b, sizeof b), a);
        return NULL;
    }
    tg_node *n = tg_op_begin(tp, TG_OP_sum_to, 1, &x, ndim, shape);
    return n ? tg_op_finish(tp, n) : NULL;
}

/* ---- the same backwards in ops (tg_op.vjp): each the other op ---- */
/* dx = sum_to(dy, x's shape). */
void tg_broadcast_to_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                         tg_tensor **dx)
{
    (void)want;
    dx[0] = tg_sum_to(tp, dy, n->in[0]->ndim, n->in[0]->shape);
}
/* dx = broadcast_to(dy, x's shape). */
void tg_sum_to_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    dx[0] = tg_broadcast_to(tp, dy, n->in[0]->ndim, n->in[0]->shape);
}
