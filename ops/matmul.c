/* ops/matmul.c: matmul, matmul_t, linear and linear_act. Their GEMMs go through tg_gemm and
 * tg_gemm_pair (ops/gemm.c, which owns everything about BLIS); the kernels read transposed
 * operands through the GEMM's transposition flags, never copied (the backwards in ops at the
 * end use matmul_t's flags, and copy an operand only for batched products). */
#include "internal.h"

static void gemm(tg_tape *tp, tg_dtype dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                 const void *a, const void *b, double beta, void *c)
{
    tg_gemm(tp, dt, &(tg_gemm_args){ta, tb, m, n, k, a, b, beta, c});
}

/* ---- matmul: y = a · b, batched over a leading dimension ----
 * Attributes: tg_node_attr(n)->matmul (batch, m, k, n, a_batched, b_batched). A batched a with a
 * shared b is one GEMM of B·m rows. */
static void mm_dims(const tg_node *n, int64_t *B, int64_t *m, int64_t *k, int64_t *nn, bool *ab,
                    bool *bb)
{
    *B = tg_node_attr(n)->matmul.batch, *m = tg_node_attr(n)->matmul.m,
    *k = tg_node_attr(n)->matmul.k;
    *nn = tg_node_attr(n)->matmul.n;
    *ab = tg_node_attr(n)->matmul.a_batched, *bb = tg_node_attr(n)->matmul.b_batched;
}

void tg_matmul_fwd(tg_node *n)
{
    tg_tape *tp = tg_node_out(n)->tape;
    int64_t B, m, k, nn;
    bool ab, bb;
    mm_dims(n, &B, &m, &k, &nn, &ab, &bb);
    tg_dtype dt = (tg_dtype)tg_node_out(n)->dtype;
    size_t es = tg_dtype_size(dt);
    const char *a = n->in[0]->data, *b = n->in[1]->data;
    char *y = tg_node_out(n)->data;
    if (tg_node_out(n)->numel == 0) return; /* else B <= numel: the loop below is bounded */
    if (!bb) {                              /* shared b: fold the batch into the rows */
        gemm(tp, dt, false, false, (ab ? B : 1) * m, nn, k, a, b, 0.0, y);
        return;
    }
    for (int64_t t = 0; t < B; t++)
        gemm(tp, dt, false, false, m, nn, k, a + (ab ? (size_t)(t * m * k) * es : 0),
             b + (size_t)(t * k * nn) * es, 0.0, y + (size_t)(t * m * nn) * es);
}

void tg_matmul_bwd(tg_node *n)
{
    tg_tape *tp = tg_node_out(n)->tape;
    int64_t B, m, k, nn;
    bool ab, bb;
    mm_dims(n, &B, &m, &k, &nn, &ab, &bb);
    tg_tensor *A = n->in[0], *Bt = n->in[1];
    tg_dtype dt = (tg_dtype)tg_node_out(n)->dtype;
    size_t es = tg_dtype_size(dt);
    const char *dy = tg_node_out(n)->grad->data;
    /* beta 0 writes a gradient nothing has reached yet (tg_grad_beta), 1 adds to it. Each
     * beta is taken right before the first write, so matmul(a, a) adds its second part. */
    if (tg_node_out(n)->numel == 0) { /* dy is empty: the gradients get zeros, B may be 2^40 */
        if (A->requires_grad && !tg_grad_beta(A)) memset(A->grad->data, 0, (size_t)A->numel * es);
        if (Bt->requires_grad && !tg_grad_beta(Bt))
            memset(Bt->grad->data, 0, (size_t)Bt->numel * es);
        return;
    }
    if (!bb) {
        int64_t rows = (ab ? B : 1) * m;
        tg_gemm_args ga, gb; /* da += dy · bᵀ;  db += aᵀ · dy, summed over the batch by the GEMM */
        if (A->requires_grad)
            ga = (tg_gemm_args){false,           true,         rows, k, nn, dy, Bt->data,
                                tg_grad_beta(A), A->grad->data};
        if (Bt->requires_grad)
            gb = (tg_gemm_args){true,          false, k, nn, rows, A->data, dy, tg_grad_beta(Bt),
                                Bt->grad->data};
        tg_gemm_pair(tp, dt, A->requires_grad ? &ga : NULL, Bt->requires_grad ? &gb : NULL);
        return;
    }
    double beta_a = 1, beta_b = 1; /* a shared a (not batched) is added to after t = 0 */
    for (int64_t t = 0; t < B; t++) {
        size_t oa = ab ? (size_t)(t * m * k) * es : 0, ob = (size_t)(t * k * nn) * es;
        const char *dyt = dy + (size_t)(t * m * nn) * es;
        if (A->requires_grad) {
            if (t == 0) beta_a = tg_grad_beta(A);
            gemm(tp, dt, false, true, m, k, nn, dyt, (char *)Bt->data + ob,
                 ab || t == 0 ? beta_a : 1, (char *)A->grad->data + oa);
        }
        if (Bt->requires_grad) {
            if (t == 0) beta_b = tg_grad_beta(Bt);
            gemm(tp, dt, true, false, k, nn, m, (char *)A->data + oa, dyt, beta_b,
                 (char *)Bt->grad->data + ob);
        }
    }
}

tg_tensor *tg_matmul(tg_tape *tp, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[2] = {a, b};
    char buf[256];
    if (tg_op_check(tp, TG_OP_matmul, 2, in)) return NULL;
    if (a->ndim < 2 || a->ndim > 3 || b->ndim < 2 || b->ndim > 3) {
        tg_fail(tp, TG_ESHAPE, "tg_matmul: %s: operands must be 2-D or 3-D (batched)",
                tg_shapes_str(buf, sizeof buf, 2, in));
        return NULL;
    }
    bool ab = a->ndim == 3, bb = b->ndim == 3;
    int64_t m = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1];
    int64_t kb = b->shape[b->ndim - 2], nn = b->shape[b->ndim - 1];
    int64_t B = ab ? a->shape[0] : bb ? b->shape[0] : 1;
    if (k != kb) {
        char sa[128], sb[128];
        tg_fail(tp, TG_ESHAPE, "tg_matmul: %s x %s: inner dimensions %lld and %lld differ",
                tg_shape_str(a, sa, sizeof sa), tg_shape_str(b, sb, sizeof sb), (long long)k,
                (long long)kb);
        return NULL;
    }
    if (ab && bb && a->shape[0] != b->shape[0]) {
        char sa[128], sb[128];
        tg_fail(tp, TG_ESHAPE, "tg_matmul: %s x %s: batch sizes %lld and %lld differ",
                tg_shape_str(a, sa, sizeof sa), tg_shape_str(b, sb, sizeof sb),
                (long long)a->shape[0], (long long)b->shape[0]);
        return NULL;
    }
    int64_t shape3[3] = {B, m, nn};
    bool batched = ab || bb;
    tg_node *n =
        tg_op_begin(tp, TG_OP_matmul, 2, in, batched ? 3 : 2, batched ? shape3 : shape3 + 1);
    if (!n) return NULL;
    tg_node_attr(n)->matmul.batch = B, tg_node_attr(n)->matmul.m = m, tg_node_attr(n)->matmul.k = k,
    tg_node_attr(n)->matmul.n = nn;
    tg_node_attr(n)->matmul.a_batched = ab, tg_node_attr(n)->matmul.b_batched = bb;
    return tg_op_finish(tp, n);
}

/* ---- matmul_t: y = op(a) · op(b) for 2-D a and b, op(t) = tᵀ where ta (tb) is set ----
 * Attributes: tg_node_attr(n)->matmul (m, k, n of the product, ta, tb). The flags go to the GEMM,
 * so no operand is copied; the backwards in ops use it to take transposed products. */
void tg_matmul_t_fwd(tg_node *n)
{
    const int64_t m = tg_node_attr(n)->matmul.m, k = tg_node_attr(n)->matmul.k,
                  nn = tg_node_attr(n)->matmul.n;
    if (tg_node_out(n)->numel == 0) return;
    gemm(tg_node_out(n)->tape, (tg_dtype)tg_node_out(n)->dtype, tg_node_attr(n)->matmul.ta,
         tg_node_attr(n)->matmul.tb, m, nn, k, n->in[0]->data, n->in[1]->data, 0.0,
         tg_node_out(n)->data);
}

/* da = dy·op(b)ᵀ (ta: op(b)·dyᵀ), db = op(a)ᵀ·dy (tb: dyᵀ·op(a)), as GEMMs with flags. */
void tg_matmul_t_bwd(tg_node *n)
{
    const int64_t m = tg_node_attr(n)->matmul.m, k = tg_node_attr(n)->matmul.k,
                  nn = tg_node_attr(n)->matmul.n;
    const bool ta = tg_node_attr(n)->matmul.ta, tb = tg_node_attr(n)->matmul.tb;
    tg_tensor *A = n->in[0], *Bt = n->in[1];
    tg_dtype dt = (tg_dtype)tg_node_out(n)->dtype;
    size_t es = tg_dtype_size(dt);
    if (tg_node_out(n)->numel == 0) { /* dy is empty: the gradients get zeros */
        if (A->requires_grad && !tg_grad_beta(A)) memset(A->grad->data, 0, (size_t)A->numel * es);
        if (Bt->requires_grad && !tg_grad_beta(Bt))
            memset(Bt->grad->data, 0, (size_t)Bt->numel * es);
        return;
    }
    const void *dy = tg_node_out(n)->grad->data;
    tg_gemm_args ga, gb;
    if (A->requires_grad)
        ga =
            ta ? (tg_gemm_args){tb, true, k, m, nn, Bt->data, dy, tg_grad_beta(A), A->grad->data}
               : (tg_gemm_args){false, !tb, m, k, nn, dy, Bt->data, tg_grad_beta(A), A->grad->data};
    if (Bt->requires_grad)
        gb = tb ? (tg_gemm_args){true, ta, nn, k, m, dy, A->data, tg_grad_beta(Bt), Bt->grad->data}
                : (tg_gemm_args){!ta,           false, k, nn, m, A->data, dy, tg_grad_beta(Bt),
                                 Bt->grad->data};
    tg_gemm_pair(tg_node_out(n)->tape, dt, A->requires_grad ? &ga : NULL,
                 Bt->requires_grad ? &gb : NULL);
}

tg_tensor *tg_matmul_t(tg_tape *tp, tg_tensor *a, tg_tensor *b, bool ta, bool tb)
{
    tg_tensor *in[2] = {a, b};
    char sa[128], sb[128];
    if (tg_op_check(tp, TG_OP_matmul_t, 2, in)) return NULL;
    if (a->ndim != 2 || b->ndim != 2) {
        tg_fail(tp, TG_ESHAPE, "tg_matmul_t: %s and %s: operands must be 2-D",
                tg_shape_str(a, sa, sizeof sa), tg_shape_str(b, sb, sizeof sb));
        return NULL;
    }
    int64_t m = a->shape[ta ? 1 : 0], k = a->shape[ta ? 0 : 1];
    int64_t kb = b->shape[tb ? 1 : 0], nn = b->shape[tb ? 0 : 1];
    if (k != kb) {
        tg_fail(tp, TG_ESHAPE, "tg_matmul_t: %s%s x %s%s: inner dimensions %lld and %lld differ",
                tg_shape_str(a, sa, sizeof sa), ta ? "ᵀ" : "", tg_shape_str(b, sb, sizeof sb),
                tb ? "ᵀ" : "", (long long)k, (long long)kb);
        return NULL;
    }
    const int64_t shape[2] = {m, nn};
    tg_node *n = tg_op_begin(tp, TG_OP_matmul_t, 2, in, 2, shape);
    if (!n) return NULL;
    tg_node_attr(n)->matmul.batch = 1, tg_node_attr(n)->matmul.m = m, tg_node_attr(n)->matmul.k = k,
    tg_node_attr(n)->matmul.n = nn;
    tg_node_attr(n)->matmul.ta = ta, tg_node_attr(n)->matmul.tb = tb;
    return tg_op_finish(tp, n);
}

/* ---- linear: y = x · w + b, x [..., k] (leading dimensions folded into rows) ----
 * The bias is copied into every row of y, then one GEMM adds x · w (beta = 1). */
/* linear_bias_f32, linear_dbias_f32, linear_bias_f64 and linear_dbias_f64, from the template
 * ops/linear_t.h. */
#define TG_TEMPLATE "linear_t.h"
#include "stamp.h"

void tg_linear_fwd(tg_node *n)
{
    tg_tape *tp = tg_node_out(n)->tape;
    int64_t rows = tg_node_attr(n)->linear.rows, k = tg_node_attr(n)->linear.k,
            cols = tg_node_attr(n)->linear.cols;
    tg_dtype dt = (tg_dtype)tg_node_out(n)->dtype;
    if (tg_node_out(n)->numel == 0) return; /* rows may be 2^48 with cols = 0 */
    if (dt == TG_F32) linear_bias_f32(n, rows, cols);
    else linear_bias_f64(n, rows, cols);
    gemm(tp, dt, false, false, rows, cols, k, n->in[0]->data, n->in[1]->data, 1.0,
         tg_node_out(n)->data);
}

void tg_linear_bwd(tg_node *n)
{
    tg_tape *tp = tg_node_out(n)->tape;
    int64_t rows = tg_node_attr(n)->linear.rows, k = tg_node_attr(n)->linear.k,
            cols = tg_node_attr(n)->linear.cols;
    tg_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    tg_dtype dt = (tg_dtype)tg_node_out(n)->dtype;
    const void *dy = tg_node_out(n)->grad->data;
    /* beta 0 writes a gradient nothing has reached yet (tg_grad_beta), 1 adds to it */
    tg_gemm_args gx, gw;
    if (x->requires_grad)
        gx =
            (tg_gemm_args){false, true, rows, k, cols, dy, w->data, tg_grad_beta(x), x->grad->data};
    if (w->requires_grad)
        gw =
            (tg_gemm_args){true, false, k, cols, rows, x->data, dy, tg_grad_beta(w), w->grad->data};
    tg_gemm_pair(tp, dt, x->requires_grad ? &gx : NULL, w->requires_grad ? &gw : NULL);
    if (b->requires_grad) {
        bool add = tg_grad_beta(b);
        if (dt == TG_F32) linear_dbias_f32(n, rows, cols, add);
        else linear_dbias_f64(n, rows, cols, add);
    }
}

/* The node of linear or linear_act (op) with its output and attr.linear's rows, k, cols, after
 * checking the inputs and their shapes (messages name tg_<op>); NULL on failure. */
static tg_node *linear_node(tg_tape *tp, int op, tg_tensor *const *in)
{
    tg_tensor *x = in[0], *w = in[1], *b = in[2];
    char buf[384];
    if (tg_op_check(tp, op, 3, in)) return NULL;
    if (x->ndim < 1 || w->ndim != 2 || b->ndim != 1 || x->shape[x->ndim - 1] != w->shape[0] ||
        b->shape[0] != w->shape[1]) {
        tg_fail(tp, TG_ESHAPE, "tg_%s: %s: want x [...,k], w [k,n], b [n]", tg_op_table[op].name,
                tg_shapes_str(buf, sizeof buf, 3, in));
        return NULL;
    }
    int64_t k = w->shape[0], cols = w->shape[1], rows = k ? x->numel / k : 0;
    if (k == 0) rows = tg_shape_numel(x->ndim - 1, x->shape);
    int64_t shape[TG_MAX_DIMS];
    for (int i = 0; i < x->ndim - 1; i++) shape[i] = x->shape[i];
    shape[x->ndim - 1] = cols;
    tg_node *n = tg_op_begin(tp, op, 3, in, x->ndim, shape);
    if (!n) return NULL;
    tg_node_attr(n)->linear.rows = rows, tg_node_attr(n)->linear.k = k,
    tg_node_attr(n)->linear.cols = cols;
    return n;
}

tg_tensor *tg_linear(tg_tape *tp, tg_tensor *x, tg_tensor *w, tg_tensor *b)
{
    tg_tensor *in[3] = {x, w, b};
    tg_node *n = linear_node(tp, TG_OP_linear, in);
    return n ? tg_op_finish(tp, n) : NULL;
}

/* ---- linear_act: y = act(x·w + b) as one node ----
 * The forward writes x·w with beta = 0, then adds the bias and applies the activation in
 * one pass over y. The backward makes dz = dy ⊙ act'(y) and the bias gradient in one pass,
 * then the two GEMMs read dz. Every supported activation's derivative follows from its
 * output (leaky_relu needs alpha >= 0 for that), so the pre-activation is never stored.
 * Attributes: tg_node_attr(n)->linear (rows, k, cols, act the tg_act, alpha). saved: dz, rows x
 * cols, allocated when the node is recorded.
 * Large passes are split over the BLIS threads by rows, as BLIS splits this GEMM's output
 * (measured after a 2-thread 128x256 GEMM: a row split of the forward pass 5.6 us, a column
 * split 10.4 us, one thread 8.8 us). The bias gradient, a sum over rows, is then split by
 * columns (at 16 elements, a cache line of f32) and summed in row order, so every thread
 * count gives the same bits. */
#define LINEAR_ACT_PARALLEL_MIN 32768 /* elements of y; below, one thread */

static int act_threads(int64_t rows, int64_t cols)
{
    int nt = tg_get_num_threads();
    return nt > 1 && rows * cols >= LINEAR_ACT_PARALLEL_MIN && rows >= 2 * nt ? nt : 1;
}

/* la_rows_f32, la_rows_f64 (one thread's rows of a pass) and la_db_f32, la_db_f64 (columns
 * of the bias gradient), from the template ops/linear_act_t.h. */
#include "elem.h"
#define TG_TEMPLATE "linear_act_t.h"
#include "stamp.h"

/* Thread t of nt: its rows of pass (0 forward, 1 backward). */
static void la_rows(tg_node *n, int pass, int64_t rows, int t, int nt)
{
    int64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
    if (tg_node_out(n)->dtype == TG_F32) la_rows_f32(n, pass, r0, r1);
    else la_rows_f64(n, pass, r0, r1);
}

/* Thread t of nt: its columns of the bias gradient, cut at multiples of 16. */
static void la_db(tg_node *n, int64_t rows, int64_t cols, bool db_set, int t, int nt)
{
    int64_t c0 = t == 0 ? 0 : cols * t / nt / 16 * 16;
    int64_t c1 = t + 1 == nt ? cols : cols * (t + 1) / nt / 16 * 16;
    if (c0 >= c1) return;
    if (tg_node_out(n)->dtype == TG_F32)
        la_db_f32(n->in[2]->grad->data, n->saved, rows, cols, c0, c1, db_set);
    else la_db_f64(n->in[2]->grad->data, n->saved, rows, cols, c0, c1, db_set);
}

/* Runs pass over the rows, then (backward, if b needs a gradient) sums the bias gradient by
 * columns. Every row and column is computed whole by one thread, so any split gives the
 * bits of one thread; TG_OMP_FOR runs the parts in turn in the plain build. */
static void la_pass(tg_node *n, int pass, bool db_set, int64_t rows, int64_t cols)
{
    int nt = act_threads(rows, cols);
    TG_OMP_FOR("omp parallel for schedule(static, 1) num_threads(nt) if (nt > 1)")
    for (int t = 0; t < nt; t++) la_rows(n, pass, rows, t, nt);
    if (!pass || !n->in[2]->requires_grad) return;
    TG_OMP_FOR("omp parallel for schedule(static, 1) num_threads(nt) if (nt > 1)")
    for (int t = 0; t < nt; t++) la_db(n, rows, cols, db_set, t, nt);
}

void tg_linear_act_fwd(tg_node *n)
{
    tg_tape *tp = tg_node_out(n)->tape;
    int64_t rows = tg_node_attr(n)->linear.rows, k = tg_node_attr(n)->linear.k,
            cols = tg_node_attr(n)->linear.cols;
    tg_dtype dt = (tg_dtype)tg_node_out(n)->dtype;
    gemm(tp, dt, false, false, rows, cols, k, n->in[0]->data, n->in[1]->data, 0.0,
         tg_node_out(n)->data);
    if (rows > 0 && cols > 0) la_pass(n, 0, false, rows, cols);
}

void tg_linear_act_bwd(tg_node *n)
{
    tg_tape *tp = tg_node_out(n)->tape;
    int64_t rows = tg_node_attr(n)->linear.rows, k = tg_node_attr(n)->linear.k,
            cols = tg_node_attr(n)->linear.cols;
    tg_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    tg_dtype dt = (tg_dtype)tg_node_out(n)->dtype;
    bool db_set = b->requires_grad && tg_grad_beta(b); /* db holds values: add to them */
    if (b->requires_grad && rows == 0 && !db_set)      /* no rows: db is a sum of nothing */
        memset(b->grad->data, 0, (size_t)cols * tg_dtype_size(dt));
    if (rows > 0 && cols > 0) la_pass(n, 1, db_set, rows, cols);
    tg_gemm_args gx, gw; /* dx = dz · wᵀ, dw = xᵀ · dz */
    if (x->requires_grad)
        gx = (tg_gemm_args){false,           true,         rows, k, cols, n->saved, w->data,
                            tg_grad_beta(x), x->grad->data};
    if (w->requires_grad)
        gw = (tg_gemm_args){true,         false, k, cols, rows, x->data, n->saved, tg_grad_beta(w),
                            w->grad->data};
    tg_gemm_pair(tp, dt, x->requires_grad ? &gx : NULL, w->requires_grad ? &gw : NULL);
}

tg_tensor *tg_linear_act(tg_tape *tp, tg_tensor *x, tg_tensor *w, tg_tensor *b, tg_act act,
                         double alpha)
{
    tg_tensor *in[3] = {x, w, b};
    if (tp && !tp->err && (unsigned)act > TG_ACT_SIGMOID) {
        tg_fail(tp, TG_EARG, "tg_linear_act: unknown activation %d", (int)act);
        return NULL;
    }
    if (tp && !tp->err && act == TG_ACT_LEAKY_RELU && !(alpha >= 0 && isfinite(alpha))) {
        tg_fail(tp, TG_EARG,
                "tg_linear_act: leaky_relu alpha %g must be finite and >= 0 (its gradient is "
                "taken from the output)",
                alpha);
        return NULL;
    }
    tg_node *n = linear_node(tp, TG_OP_linear_act, in);
    if (!n) return NULL;
    tg_node_attr(n)->linear.act = act;
    tg_node_attr(n)->linear.alpha = act == TG_ACT_LEAKY_RELU ? alpha : 0;
    if (tg_op_records(tp, 3, in)) { /* dz for the backward, written there: not zeroed */
        size_t bytes = (size_t)(tg_node_attr(n)->linear.rows * tg_node_attr(n)->linear.cols) *
                       tg_dtype_size((tg_dtype)x->dtype);
        if (!(n->saved = tg_arena_alloc(tp, bytes ? bytes : 1))) {
            tg_fail(tp, TG_ENOMEM, "tg_linear_act: out of memory for dz (%zu bytes)", bytes);
            return NULL;
        }
    }
    return tg_op_finish(tp, n);
}

/* ---- the same backwards in ops (tg_op.vjp), built from public ops: transposed products
 * through tg_matmul_t's flags; only batched products copy an operand (tg_transpose). ---- */

/* da = dy·op(b)ᵀ or op(b)·dyᵀ, db = op(a)ᵀ·dy or dyᵀ·op(a): matmul_t again. */
void tg_matmul_t_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    tg_tensor *a = n->in[0], *b = n->in[1];
    const bool ta = tg_node_attr(n)->matmul.ta, tb = tg_node_attr(n)->matmul.tb;
    if (want[0]) dx[0] = ta ? tg_matmul_t(tp, b, dy, tb, true) : tg_matmul_t(tp, dy, b, false, !tb);
    if (want[1]) dx[1] = tb ? tg_matmul_t(tp, dy, a, true, ta) : tg_matmul_t(tp, a, dy, !ta, false);
}

/* da = dy · bᵀ, db = aᵀ · dy. An operand shared across the batch gets the sum over the
 * batch as one product with the batch folded into the inner dimension (as the numeric
 * backward does), so no intermediate is larger than the inputs and dy. 2-D products and
 * those with a shared operand take tg_matmul_t's flags (reshapes of the batch only, which
 * copy); a gradient of a product batched on both sides, and da of a shared a, copy the
 * transposed operand (tg_transpose). */
void tg_matmul_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    tg_tensor *a = n->in[0], *b = n->in[1];
    int64_t B, m, k, nn;
    bool ab, bb;
    mm_dims(n, &B, &m, &k, &nn, &ab, &bb);
    if (want[0] && !ab && bb) { /* Σ_t dy_t b_tᵀ = [m, B·n] · [B·n, k] */
        const int64_t s0[2] = {m, B * nn}, s1[2] = {B * nn, k};
        dx[0] = tg_matmul(tp, tg_reshape(tp, tg_transpose(tp, dy, 0, 1), 2, s0),
                          tg_reshape(tp, tg_transpose(tp, b, 1, 2), 2, s1));
    } else if (want[0] && !bb) { /* [B·m, n] · bᵀ, viewed back as a */
        const int64_t s0[2] = {B * m, nn};
        tg_tensor *g = tg_matmul_t(tp, ab ? tg_reshape(tp, dy, 2, s0) : dy, b, false, true);
        dx[0] = ab ? tg_reshape(tp, g, a->ndim, a->shape) : g;
    } else if (want[0]) dx[0] = tg_matmul(tp, dy, tg_transpose(tp, b, -2, -1));
    if (want[1] && ab && !bb) { /* Σ_t a_tᵀ dy_t = [k, B·m] · [B·m, n] */
        const int64_t s0[2] = {B * m, k}, s1[2] = {B * m, nn};
        dx[1] = tg_matmul_t(tp, tg_reshape(tp, a, 2, s0), tg_reshape(tp, dy, 2, s1), true, false);
    } else if (want[1] && !ab && !bb) dx[1] = tg_matmul_t(tp, a, dy, true, false);
    else if (want[1]) dx[1] = tg_matmul(tp, tg_transpose(tp, a, -2, -1), dy);
}

/* t viewed as [rows, cols] (a reshape, unless t is 2-D already). */
static tg_tensor *as_rows(tg_tape *tp, tg_tensor *t, int64_t rows, int64_t cols)
{
    const int64_t s[2] = {rows, cols};
    return t && t->ndim != 2 ? tg_reshape(tp, t, 2, s) : t;
}

/* Linear's gradients from dz [..., cols], the gradient at x · w + b:
 * dx = dz · wᵀ, dw = xᵀ · dz, db = Σ_rows dz. */
static void linear_grads(tg_tape *tp, const tg_node *n, tg_tensor *dz, const bool *want,
                         tg_tensor **dx)
{
    int64_t rows = tg_node_attr(n)->linear.rows, k = tg_node_attr(n)->linear.k,
            cols = tg_node_attr(n)->linear.cols;
    tg_tensor *x = n->in[0], *w = n->in[1];
    tg_tensor *dz2 = as_rows(tp, dz, rows, cols);
    if (want[0]) {
        tg_tensor *g = tg_matmul_t(tp, dz2, w, false, true);
        dx[0] = g && x->ndim != 2 ? tg_reshape(tp, g, x->ndim, x->shape) : g;
    }
    if (want[1]) dx[1] = tg_matmul_t(tp, as_rows(tp, x, rows, k), dz2, true, false);
    if (want[2]) dx[2] = tg_sum(tp, dz2, 0, false);
}

void tg_linear_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    linear_grads(tp, n, dy, want, dx);
}

/* The constant y > 0 ? 1 : alpha, relu's (alpha 0) and leaky_relu's slope read off the
 * output as the numeric backward does. Piecewise constant, so its derivative is 0. */
static tg_tensor *act_slope(tg_tape *tp, const tg_tensor *y, double alpha)
{
    tg_tensor *m = tg_const_like(tp, y, 1);
    if (!m) return NULL;
    if (y->dtype == TG_F32) {
        const float *yv = tg_f32(y);
        float *mv = tg_f32(m);
        for (int64_t i = 0; i < y->numel; i++)
            if (!(yv[i] > 0)) mv[i] = (float)alpha;
    } else {
        const double *yv = tg_f64(y);
        double *mv = tg_f64(m);
        for (int64_t i = 0; i < y->numel; i++)
            if (!(yv[i] > 0)) mv[i] = alpha;
    }
    return m;
}

/* dz = dy ⊙ act'(y): relu and leaky_relu by their constant slope, tanh 1 - y², sigmoid
 * y (1 - y) (ops of y, so second derivatives go through y); then as linear. */
void tg_linear_act_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                       tg_tensor **dx)
{
    tg_tensor *y = tg_node_out(n), *dz = dy;
    switch (tg_node_attr(n)->linear.act) {
    case TG_ACT_RELU: dz = tg_mul(tp, dy, act_slope(tp, y, 0)); break;
    case TG_ACT_LEAKY_RELU:
        dz = tg_mul(tp, dy, act_slope(tp, y, tg_node_attr(n)->linear.alpha));
        break;
    case TG_ACT_TANH:
        dz = tg_mul(tp, dy, tg_add_scalar(tp, tg_neg(tp, tg_square(tp, y)), 1));
        break;
    case TG_ACT_SIGMOID:
        dz = tg_mul(tp, tg_mul(tp, dy, y), tg_add_scalar(tp, tg_neg(tp, y), 1));
        break;
    default: break;
    }
    if (dz) linear_grads(tp, n, dz, want, dx);
}
