/* ops/elementwise.c: add, sub, mul, div with NumPy broadcasting. Gradients are summed over
 * the broadcast dimensions by accumulating into the input's (smaller) gradient. */
#include "internal.h"

bool tg_broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b, int *nd,
                        int64_t *out)
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
 * n->i[0] holds the layout and n->i[1] the row length m of a ROW operand. A ROW operand is
 * a suffix of the output's shape (a bias [n] against [B,n], or [3,4] against [2,3,4]):
 * output element i reads its element i % m, so a loop over rows of m is plain and the
 * inner loop vectorises. Anything else (a column [B,1], both operands broadcast) takes the
 * general path with strides. */
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
    const tg_tensor *y = n->out, *a = n->in[0], *b = n->in[1];
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

/* Calls BODY(F, i, ia, ib) for every output element i with its elements ia in a and ib in
 * b. The inner loop runs along the last (merged) dimension, in a version per stride pair
 * so that the common ones are plain loops. An odometer steps through the outer indices. */
#define BCAST_FOR(c, len, BODY, F)                                                           \
    do {                                                                                     \
        int64_t idx_[TG_MAX_DIMS] = {0}, ia_ = 0, ib_ = 0;                                   \
        const int last_ = (c).nd - 1;                                                        \
        (void)ia_, (void)ib_; /* add's and sub's gradients read only one of them */          \
        const int64_t w_ = (c).shape[last_], sa_ = (c).sa[last_], sb_ = (c).sb[last_];       \
        for (int64_t i_ = 0; i_ < (len); i_ += w_) {                                         \
            if (sa_ == 1 && sb_ == 0)                                                        \
                for (int64_t j_ = 0; j_ < w_; j_++) BODY(F, i_ + j_, ia_ + j_, ib_);         \
            else if (sa_ == 0 && sb_ == 1)                                                   \
                for (int64_t j_ = 0; j_ < w_; j_++) BODY(F, i_ + j_, ia_, ib_ + j_);         \
            else                                                                             \
                for (int64_t j_ = 0; j_ < w_; j_++)                                          \
                    BODY(F, i_ + j_, ia_ + j_ * sa_, ib_ + j_ * sb_);                        \
            for (int d_ = last_ - 1; d_ >= 0; d_--) {                                        \
                ia_ += (c).sa[d_], ib_ += (c).sb[d_];                                        \
                if (++idx_[d_] < (c).shape[d_]) break;                                       \
                ia_ -= (c).sa[d_] * (c).shape[d_], ib_ -= (c).sb[d_] * (c).shape[d_];        \
                idx_[d_] = 0;                                                                \
            }                                                                                \
        }                                                                                    \
    } while (0)

/* Calls BODY(F, i, ia, ib) for every output element in the node's layout. */
#define EW_FOR(n, len, BODY, F)                                                              \
    do {                                                                                     \
        const int64_t m_ = (n)->i[1];                                                        \
        switch ((n)->i[0]) {                                                                 \
        case SAME:                                                                           \
            for (int64_t i_ = 0; i_ < (len); i_++) BODY(F, i_, i_, i_);                      \
            break;                                                                           \
        case B_SCALAR:                                                                       \
            for (int64_t i_ = 0; i_ < (len); i_++) BODY(F, i_, i_, 0);                       \
            break;                                                                           \
        case A_SCALAR:                                                                       \
            for (int64_t i_ = 0; i_ < (len); i_++) BODY(F, i_, 0, i_);                       \
            break;                                                                           \
        case B_ROW:                                                                          \
            for (int64_t r_ = 0; r_ < (len); r_ += m_)                                       \
                for (int64_t j_ = 0; j_ < m_; j_++) BODY(F, r_ + j_, r_ + j_, j_);           \
            break;                                                                           \
        case A_ROW:                                                                          \
            for (int64_t r_ = 0; r_ < (len); r_ += m_)                                       \
                for (int64_t j_ = 0; j_ < m_; j_++) BODY(F, r_ + j_, j_, r_ + j_);           \
            break;                                                                           \
        default: {                                                                           \
            bcast c_;                                                                        \
            bcast_init(&c_, n);                                                              \
            BCAST_FOR(c_, len, BODY, F);                                                     \
        }                                                                                    \
        }                                                                                    \
    } while (0)

/* Loop bodies: the forward, and the gradient of a or of b (a, b, y, dy, d in scope). */
#define FWD_AT(F, i, ia, ib) (y[i] = F(a[ia], b[ib]))
#define DA_AT(D, i, ia, ib) (d[ia] += D(dy[i], a[ia], b[ib], y[i]))
#define DB_AT(D, i, ia, ib) (d[ib] += D(dy[i], a[ia], b[ib], y[i]))

/* The terms of a scalar operand's gradient (its value s in scope). */
#define DA_SCALAR_AT(D, i) D(dy[i], s, b[i], y[i])
#define DB_SCALAR_AT(D, i) D(dy[i], a[i], s, y[i])

/* d[0] += Σ_i TERM(D, i): the gradient of a scalar operand. Eight partial sums let the
 * compiler keep them in one vector register (a single running sum is a serial chain it
 * may not reorder), and they lose less precision over long f32 sums. */
#define SUM_INTO(T, d, len, TERM, D)                                                         \
    do {                                                                                     \
        T acc_[8] = {0}, s_ = 0;                                                             \
        int64_t i_ = 0;                                                                      \
        for (; i_ + 8 <= (len); i_ += 8)                                                     \
            for (int k_ = 0; k_ < 8; k_++) acc_[k_] += TERM(D, i_ + k_);                     \
        for (; i_ < (len); i_++) s_ += TERM(D, i_);                                          \
        for (int k_ = 0; k_ < 8; k_++) s_ += acc_[k_];                                       \
        (d)[0] += s_;                                                                        \
    } while (0)

/* The derivative D(g, x, z, v) of y = F(x, z) in x or z, with g = dy, v = y. */
#define ADD_F(x, z) ((x) + (z))
#define SUB_F(x, z) ((x) - (z))
#define MUL_F(x, z) ((x) * (z))
#define DIV_F(x, z) ((x) / (z))
#define ADD_DA(g, x, z, v) (g)
#define ADD_DB(g, x, z, v) (g)
#define SUB_DA(g, x, z, v) (g)
#define SUB_DB(g, x, z, v) (-(g))
#define MUL_DA(g, x, z, v) ((g) * (z))
#define MUL_DB(g, x, z, v) ((g) * (x))
#define DIV_DA(g, x, z, v) ((g) / (z))
/* -dy a / b², as -dy y / b: b² would overflow for |b| > ~1e19 in f32 and y is at hand. */
#define DIV_DB(g, x, z, v) (-(g) * (v) / (z))

/* The two kernels of op NAME for element type T. In the backward each input's gradient is
 * its own block with its own restrict pointer: for mul(x, x) both are x's gradient, and
 * the two loops run one after the other. */
#define BINARY(NAME, T, SFX, F, DA, DB)                                                      \
    static void NAME##_fwd_##SFX(tg_node *n)                                                 \
    {                                                                                        \
        const T *restrict a = n->in[0]->data, *restrict b = n->in[1]->data;                  \
        T *restrict y = n->out->data;                                                        \
        EW_FOR(n, n->out->numel, FWD_AT, F);                                                 \
    }                                                                                        \
    static void NAME##_bwd_##SFX(tg_node *n)                                                 \
    {                                                                                        \
        const T *restrict a = n->in[0]->data, *restrict b = n->in[1]->data;                  \
        const T *restrict y = n->out->data, *restrict dy = n->out->grad->data;               \
        const int64_t len = n->out->numel;                                                   \
        (void)a, (void)b, (void)y;                                                           \
        if (n->in[0]->requires_grad) {                                                       \
            T *restrict d = n->in[0]->grad->data;                                            \
            if (n->i[0] == A_SCALAR) {                                                       \
                const T s = a[0]; /* unused by add and sub */                                \
                (void)s;                                                                     \
                SUM_INTO(T, d, len, DA_SCALAR_AT, DA);                                       \
            } else EW_FOR(n, len, DA_AT, DA);                                                \
        }                                                                                    \
        if (n->in[1]->requires_grad) {                                                       \
            T *restrict d = n->in[1]->grad->data;                                            \
            if (n->i[0] == B_SCALAR) {                                                       \
                const T s = b[0];                                                            \
                (void)s;                                                                     \
                SUM_INTO(T, d, len, DB_SCALAR_AT, DB);                                       \
            } else EW_FOR(n, len, DB_AT, DB);                                                \
        }                                                                                    \
    }

#define FAMILY(NAME, F, DA, DB)                                                              \
    BINARY(NAME, float, f32, F, DA, DB)                                                      \
    BINARY(NAME, double, f64, F, DA, DB)                                                     \
    void tg_##NAME##_fwd(tg_node *n) { TG_DISPATCH(n, NAME##_fwd); }                         \
    void tg_##NAME##_bwd(tg_node *n) { TG_DISPATCH(n, NAME##_bwd); }                         \
    tg_tensor *tg_##NAME(tg_tape *tp, tg_tensor *a, tg_tensor *b)                            \
    {                                                                                        \
        return binary(tp, TG_OP_##NAME, a, b);                                               \
    }

/* The wrapper of all four: the broadcast shape, then the layout the kernels will use. */
static tg_tensor *binary(tg_tape *tp, int op, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[2] = {a, b};
    if (tg_op_check(tp, op, 2, in)) return NULL;
    int nd;
    int64_t shape[TG_MAX_DIMS];
    if (!tg_broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, &nd, shape)) {
        char buf[256];
        tg_fail(tp, TG_ESHAPE, "tg_%s: %s: shapes do not broadcast", tg_op_table[op].name,
                tg_shapes_str(buf, sizeof buf, 2, in));
        return NULL;
    }
    tg_node *n = tg_op_begin(tp, op, 2, in, nd, shape);
    if (!n) return NULL;
    n->i[0] = layout(a, b, nd, shape, n->out->numel, &n->i[1]);
    return tg_op_finish(tp, n);
}

/* y = a + b;  da += dy, db += dy. */
FAMILY(add, ADD_F, ADD_DA, ADD_DB)
/* y = a - b;  da += dy, db -= dy. */
FAMILY(sub, SUB_F, SUB_DA, SUB_DB)
/* y = a b;  da += dy b, db += dy a. */
FAMILY(mul, MUL_F, MUL_DA, MUL_DB)
/* y = a / b;  da += dy / b, db -= dy a / b². */
FAMILY(div, DIV_F, DIV_DA, DIV_DB)
