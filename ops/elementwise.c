/* ops/elementwise.c: add, sub, mul, div with NumPy broadcasting. Gradients are summed over
 * the broadcast dimensions by accumulating into the input's (smaller) gradient. */
#include "elem.h"

bool tg_broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b, int *nd, int64_t *out)
{
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int64_t da = i < n - na ? 1 : a[i - (n - na)], db = i < n - nb ? 1 : b[i - (n - nb)];
        if (da != db && da != 1 && db != 1) return false;
        out[i] = da == 1 ? db : da;
    }
    *nd = n;
    return true;
}

/* ---- layouts: how a and b map onto the output, chosen once by the wrapper ----
 * tg_node_attr(n)->binary.layout holds the layout and tg_node_attr(n)->binary.row the row length m
 * of a ROW operand. A ROW operand is a suffix of the output's shape (a bias [n] against [B,n], or
 * [3,4] against [2,3,4]): output element i reads its element i % m, so a loop over rows of
 * m is plain and the inner loop vectorises. Anything else (a column [B,1], both operands broadcast)
 * takes the general path with strides. */
enum { SAME, A_SCALAR, B_SCALAR, A_ROW, B_ROW, GENERAL };

/* t's shape, without its leading 1s, equals the last dimensions of the output. */
static bool is_suffix(const tg_tensor *t, int nd, const int64_t *shape)
{
    int k = 0;
    while (k < t->ndim && t->shape[k] == 1) k++;
    for (int j = t->ndim - 1, d = nd - 1; j >= k; j--, d--)
        if (t->shape[j] != shape[d]) return false;
    return true;
}

static int64_t layout(const tg_tensor *a, const tg_tensor *b, int nd, const int64_t *shape,
                      int64_t numel, int64_t *m)
{
    *m = 0;
    if (a->numel == numel && b->numel == numel) return SAME; /* includes empty outputs */
    if (b->numel == 1) return B_SCALAR;
    if (a->numel == 1) return A_SCALAR;
    if (a->numel == numel && is_suffix(b, nd, shape)) return *m = b->numel, B_ROW;
    if (b->numel == numel && is_suffix(a, nd, shape)) return *m = a->numel, A_ROW;
    return GENERAL;
}

/* ---- the general path: the output's shape with each input's strides over it (0 along
 * broadcast dimensions). Dimensions of size 1 are dropped and neighbours that are
 * contiguous in both inputs are merged, so [2,3,4] * [1,3,1] runs as [6,4] with b's
 * strides (1,0) and the innermost loop is as long as it can be. */
typedef struct bcast {
    int nd;
    int64_t shape[TG_MAX_DIMS], sa[TG_MAX_DIMS], sb[TG_MAX_DIMS];
} bcast;

static void bcast_init(bcast *c, const tg_node *n)
{
    const tg_tensor *y = tg_node_out(n), *a = n->in[0], *b = n->in[1];
    int64_t sa[TG_MAX_DIMS], sb[TG_MAX_DIMS], ta = 1, tb = 1;
    for (int d = y->ndim - 1; d >= 0; d--) { /* row-major strides, 0 where broadcast */
        int ja = d - (y->ndim - a->ndim), jb = d - (y->ndim - b->ndim);
        int64_t da = ja < 0 ? 1 : a->shape[ja], db = jb < 0 ? 1 : b->shape[jb];
        sa[d] = da == 1 ? 0 : ta, ta *= da;
        sb[d] = db == 1 ? 0 : tb, tb *= db;
    }
    c->nd = 0;
    for (int d = 0; d < y->ndim; d++) {
        if (y->shape[d] == 1) continue;
        int k = c->nd - 1; /* the kept dimension just outside d */
        if (k >= 0 && c->sa[k] == sa[d] * y->shape[d] && c->sb[k] == sb[d] * y->shape[d]) {
            c->shape[k] *= y->shape[d];
            c->sa[k] = sa[d], c->sb[k] = sb[d];
            continue;
        }
        c->shape[c->nd] = y->shape[d], c->sa[c->nd] = sa[d], c->sb[c->nd] = sb[d];
        c->nd++;
    }
    if (c->nd == 0) c->nd = 1, c->shape[0] = 1, c->sa[0] = c->sb[0] = 0;
}

/* The passes over the elements: the forward, and the gradient of a or of b. */
enum { FWD, DA, DB };

/* binary_fwd_f32, binary_bwd_f32 and their f64 forms, from the template ops/binary_t.h. */
#define TG_TEMPLATE "binary_t.h"
#include "stamp.h"

/* Whether b's shape leaves a's as the broadcast shape: the same sizes, or only 1s and no
 * more dimensions (a scalar operand). */
static bool shape_is_a(const tg_tensor *a, const tg_tensor *b)
{
    if (b->ndim > a->ndim) return false;
    if (b->numel == 1) return true;
    if (b->ndim != a->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

/* The wrapper of all four: the broadcast shape, then the layout the kernels will use. An
 * output shaped like a takes a's own shape array (no shape check in tg_op_begin). */
TG_ALWAYS_INLINE tg_tensor *binary(tg_tape *tp, int op, size_t attr, void (*forward)(tg_node *),
                                   tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[2] = {a, b};
    if (tg_op_check(tp, op, 2, in)) return NULL;
    int nd = a->ndim; /* NOLINT(bugprone-signed-char-misuse,cert-str34-c): 0..TG_MAX_DIMS */
    int64_t buf[TG_MAX_DIMS];
    const int64_t *shape = a->shape;
    if (!shape_is_a(a, b)) {
        if (!tg_broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, &nd, buf)) {
            char msg[256];
            tg_fail(tp, TG_ESHAPE, "tg_%s: %s: shapes do not broadcast", tg_op_table[op].name,
                    tg_shapes_str(msg, sizeof msg, 2, in));
            return NULL;
        }
        shape = buf;
    }
    tg_node *n = shape == a->shape ? tg_op_begin_k(tp, op, attr, 2, in, nd, shape, a->numel)
                                   : tg_op_begin(tp, op, 2, in, nd, shape);
    if (!n) return NULL;
    if (shape == a->shape && b->numel == a->numel) /* the same shapes: no search */
        tg_node_attr(n)->binary.layout = SAME;
    else
        tg_node_attr(n)->binary.layout =
            layout(a, b, nd, shape, tg_node_out(n)->numel, &tg_node_attr(n)->binary.row);
    return tg_op_finish_k(tp, n, 2, forward);
}

/* The kernels of each op, with the element functions (ops/elem_t.h) of the node's dtype,
 * split over threads for large tensors (ops/vecmath.h) in ways that give the same bits at
 * any thread count. The flat layouts (SAME, A_SCALAR, B_SCALAR) run as parts over element
 * ranges (tg_par_run), and a scalar operand's gradient is a sum of fixed parts
 * (tg_par_parts). The ROW layouts run by rows, except the row operand's gradient, a sum
 * over the rows, which runs by columns (each column summed in row order by one thread); the
 * general layout runs by lines (runs along its last merged dimension), except a smaller
 * operand's gradient when two lines add into the same element (it is broadcast along an
 * outer dimension), which runs on one thread. A backward writes a full-size operand's
 * gradient that holds no values yet (tg_grad_beta) where it can, instead of adding to
 * zeros. */
static bool flat(const tg_node *n)
{
    return tg_node_attr(n)->binary.layout == SAME || tg_node_attr(n)->binary.layout == A_SCALAR ||
           tg_node_attr(n)->binary.layout == B_SCALAR;
}

/* A scalar operand's gradient sum: its parts, and their sum in order. */
typedef struct sum_ctx {
    const tg_node *n;
    int pass, count;
    float f32[TG_SUM_PARTS];
    double f64[TG_SUM_PARTS];
} sum_ctx;
static void scalar_grad(tg_node *n, int pass, void (*part)(void *ctx, int p))
{
    const int64_t len = tg_node_out(n)->numel;
    sum_ctx c = {.n = n, .pass = pass, .count = tg_sum_parts(len)};
    tg_par_parts(len, c.count, part, &c);
    tg_tensor *x = n->in[pass == DA ? 0 : 1];
    const int beta = tg_grad_beta(x);
    void *d = x->grad->data;
    if (tg_node_out(n)->dtype == TG_F32) {
        const float s = tg_parts_sum_f32(c.f32, c.count);
        *(float *)d = beta ? *(float *)d + s : s;
    } else {
        const double s = tg_parts_sum_f64(c.f64, c.count);
        *(double *)d = beta ? *(double *)d + s : s;
    }
}

/* The non-flat layouts' parts get mode = pass << 2 | by_cols << 1 | beta as their beta. */
#define MODE(pass, by_cols, beta) ((pass) << 2 | (by_cols) << 1 | (beta))

/* Whether two lines of the general layout never add into the same element of the operand of
 * pass (DA or DB): its stride along every outer dimension is non-zero. */
static bool lines_disjoint(const bcast *c, int pass)
{
    for (int d = 0; d < c->nd - 1; d++)
        if ((pass == DA ? c->sa[d] : c->sb[d]) == 0) return false;
    return true;
}

/* Pass (FWD, DA or DB) over a non-flat layout, split as the comment above says: part runs
 * rows, columns or lines. */
static void nonflat(tg_node *n, int pass, tg_part_fn *part)
{
    const int64_t len = tg_node_out(n)->numel, m = tg_node_attr(n)->binary.row;
    if (len == 0) return;
    tg_tensor *x = pass == FWD ? NULL : n->in[pass == DA ? 0 : 1];
    const bool full = !x || x->numel == len;
    int nt = tg_par_threads(len), beta = x ? tg_grad_beta(x) : 0;
    const bool rows =
        tg_node_attr(n)->binary.layout == B_ROW || tg_node_attr(n)->binary.layout == A_ROW;
    if (x && !beta && (!full || !rows)) { /* these passes add: zeros first */
        tg_par_zero(x->grad->data, x->numel, tg_dtype_size((tg_dtype)x->dtype));
        beta = 1;
    }
    if (rows) {
        if (full) tg_par_range(n, len / m, 1, nt, part, MODE(pass, 0, beta));
        else tg_par_range(n, m, 16, nt, part, MODE(pass, 1, 1)); /* 16: a line of f32 */
        return;
    }
    bcast c;
    bcast_init(&c, n);
    if (!full && !lines_disjoint(&c, pass)) nt = 1;
    tg_par_range(n, len / c.shape[c.nd - 1], 1, nt, part, MODE(pass, 0, 1));
}

#define BINARY_KERNELS(op)                                                                         \
    static inline void op##_fwd_part(tg_node *n, int64_t i0, int64_t i1, int beta)                 \
    {                                                                                              \
        (void)beta;                                                                                \
        if (tg_node_out(n)->dtype == TG_F32) binary_fwd_part_f32(n, op##_f32, i0, i1);             \
        else binary_fwd_part_f64(n, op##_f64, i0, i1);                                             \
    }                                                                                              \
    static inline void op##_bwd_part(tg_node *n, int64_t i0, int64_t i1, int beta)                 \
    {                                                                                              \
        if (tg_node_out(n)->dtype == TG_F32)                                                       \
            binary_bwd_part_f32(n, op##_da_f32, op##_db_f32, i0, i1, beta & 1, beta >> 1);         \
        else binary_bwd_part_f64(n, op##_da_f64, op##_db_f64, i0, i1, beta & 1, beta >> 1);        \
    }                                                                                              \
    /* SAME: a's pass, then b's (for mul(x, x) the second adds to what the first wrote) */         \
    static inline void op##_same_part(tg_node *n, int64_t i0, int64_t i1, int beta)                \
    {                                                                                              \
        const bool f32 = tg_node_out(n)->dtype == TG_F32;                                          \
        if (n->in[0]->requires_grad) {                                                             \
            if (f32) same_bwd_f32(n, DA, beta & 1, op##_da_f32, i0, i1);                           \
            else same_bwd_f64(n, DA, beta & 1, op##_da_f64, i0, i1);                               \
        }                                                                                          \
        if (n->in[1]->requires_grad) {                                                             \
            if (f32) same_bwd_f32(n, DB, beta >> 1, op##_db_f32, i0, i1);                          \
            else same_bwd_f64(n, DB, beta >> 1, op##_db_f64, i0, i1);                              \
        }                                                                                          \
    }                                                                                              \
    /* mode: see MODE; the pass picks the element function */                                      \
    static void op##_nonflat_part(tg_node *n, int64_t i0, int64_t i1, int mode)                    \
    {                                                                                              \
        const int pass = mode >> 2, cols = mode >> 1 & 1, beta = mode & 1;                         \
        if (tg_node_out(n)->dtype == TG_F32)                                                       \
            ew_part_f32(n, pass, beta, cols, i0, i1, op##_f32,                                     \
                        pass == DA ? op##_da_f32 : op##_db_f32);                                   \
        else                                                                                       \
            ew_part_f64(n, pass, beta, cols, i0, i1, op##_f64,                                     \
                        pass == DA ? op##_da_f64 : op##_db_f64);                                   \
    }                                                                                              \
    static void op##_sum_part(void *ctx, int p)                                                    \
    {                                                                                              \
        sum_ctx *c = ctx;                                                                          \
        if (tg_node_out(c->n)->dtype == TG_F32)                                                    \
            c->f32[p] = ew_sum_part_f32(c->n, c->pass, p, c->count, op##_da_f32, op##_db_f32);     \
        else c->f64[p] = ew_sum_part_f64(c->n, c->pass, p, c->count, op##_da_f64, op##_db_f64);    \
    }                                                                                              \
    void tg_##op##_fwd(tg_node *n)                                                                 \
    {                                                                                              \
        if (!flat(n)) nonflat(n, FWD, op##_nonflat_part);                                          \
        else TG_PAR_RUN(n, tg_node_out(n)->numel, op##_fwd_part, 0);                               \
    }                                                                                              \
    void tg_##op##_bwd(tg_node *n)                                                                 \
    {                                                                                              \
        tg_tensor *a = n->in[0], *b = n->in[1];                                                    \
        const int64_t layout = tg_node_attr(n)->binary.layout;                                     \
        if (!flat(n)) {                                                                            \
            if (a->requires_grad) nonflat(n, DA, op##_nonflat_part);                               \
            if (b->requires_grad) nonflat(n, DB, op##_nonflat_part);                               \
            return;                                                                                \
        }                                                                                          \
        /* read in this order: for mul(x, x) a's pass writes, b's adds */                          \
        if (layout == SAME) {                                                                      \
            const int beta_a = a->requires_grad ? tg_grad_beta(a) : 1;                             \
            const int beta_b = b->requires_grad ? tg_grad_beta(b) : 1;                             \
            TG_PAR_RUN(n, tg_node_out(n)->numel, op##_same_part, beta_a | beta_b << 1);            \
            return;                                                                                \
        }                                                                                          \
        const int beta_a = a->requires_grad && layout != A_SCALAR ? tg_grad_beta(a) : 1;           \
        const int beta_b = b->requires_grad && layout != B_SCALAR ? tg_grad_beta(b) : 1;           \
        TG_PAR_RUN(n, tg_node_out(n)->numel, op##_bwd_part, beta_a | beta_b << 1);                 \
        if (layout == A_SCALAR && a->requires_grad) scalar_grad(n, DA, op##_sum_part);             \
        if (layout == B_SCALAR && b->requires_grad) scalar_grad(n, DB, op##_sum_part);             \
    }

/* y = a + b;  da += dy, db += dy. */
BINARY_KERNELS(add)
tg_tensor *tg_add(tg_tape *tp, tg_tensor *a, tg_tensor *b)
{
    return binary(tp, TG_OP_K(add), a, b);
}
/* y = a - b;  da += dy, db -= dy. */
BINARY_KERNELS(sub)
tg_tensor *tg_sub(tg_tape *tp, tg_tensor *a, tg_tensor *b)
{
    return binary(tp, TG_OP_K(sub), a, b);
}
/* y = a b;  da += dy b, db += dy a. */
BINARY_KERNELS(mul)
tg_tensor *tg_mul(tg_tape *tp, tg_tensor *a, tg_tensor *b)
{
    return binary(tp, TG_OP_K(mul), a, b);
}
/* y = a / b;  da += dy / b, db -= dy a / b² (as dy y / b, see div_db in ops/elem_t.h). */
BINARY_KERNELS(div)
tg_tensor *tg_div(tg_tape *tp, tg_tensor *a, tg_tensor *b)
{
    return binary(tp, TG_OP_K(div), a, b);
}

/* ---- the same backwards in ops (tg_op.vjp): each contribution summed back to its
 * operand's shape ---- */
static tg_tensor *to(tg_tape *tp, tg_tensor *g, const tg_tensor *x)
{
    if (!g ||
        (g->ndim == x->ndim && memcmp(g->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim) == 0))
        return g;
    return g->numel == x->numel ? tg_reshape(tp, g, x->ndim, x->shape) /* [1,C] onto [C] */
                                : tg_sum_to(tp, g, x->ndim, x->shape);
}

void tg_add_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    for (int i = 0; i < 2; i++)
        if (want[i]) dx[i] = to(tp, dy, n->in[i]);
}
void tg_sub_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    if (want[0]) dx[0] = to(tp, dy, n->in[0]);
    if (want[1]) dx[1] = to(tp, tg_neg(tp, dy), n->in[1]);
}
void tg_mul_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    if (want[0]) dx[0] = to(tp, tg_mul(tp, dy, n->in[1]), n->in[0]);
    if (want[1]) dx[1] = to(tp, tg_mul(tp, dy, n->in[0]), n->in[1]);
}
/* da = dy / b, db = -dy a / b² = -(dy / b) y. */
void tg_div_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    tg_tensor *q = tg_div(tp, dy, n->in[1]);
    if (want[0]) dx[0] = to(tp, q, n->in[0]);
    if (want[1]) dx[1] = to(tp, tg_neg(tp, tg_mul(tp, q, tg_node_out(n))), n->in[1]);
}
