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

/* The output's shape with each input's strides over it (0 along broadcast dimensions).
 * A scalar output is treated as [1]. */
typedef struct bcast {
    int nd;
    int64_t shape[TG_MAX_DIMS], sa[TG_MAX_DIMS], sb[TG_MAX_DIMS];
} bcast;

static void strides_of(const tg_tensor *t, int nd, const int64_t *shape, int64_t *s)
{
    int64_t st = 1;
    for (int i = nd - 1; i >= 0; i--) {
        int j = i - (nd - t->ndim);
        if (j < 0 || t->shape[j] == 1) s[i] = 0;
        else s[i] = st, st *= t->shape[j];
        (void)shape;
    }
}

static void bcast_init(bcast *c, const tg_node *n)
{
    const tg_tensor *y = n->out;
    c->nd = y->ndim ? y->ndim : 1;
    for (int i = 0; i < c->nd; i++) c->shape[i] = y->ndim ? y->shape[i] : 1;
    strides_of(n->in[0], c->nd, c->shape, c->sa);
    strides_of(n->in[1], c->nd, c->shape, c->sb);
}

/* Calls BODY(i, ia, ib) for every output element i with its elements in a and b. The inner
 * loop runs along the last dimension. */
#define BCAST_FOR(c, numel, BODY)                                                           \
    do {                                                                                    \
        int64_t idx_[TG_MAX_DIMS] = {0}, ia_ = 0, ib_ = 0, i_ = 0;                          \
        const int64_t in_ = (c).shape[(c).nd - 1], sa_ = (c).sa[(c).nd - 1],                 \
                      sb_ = (c).sb[(c).nd - 1];                                             \
        (void)sa_, (void)sb_;                                                               \
        while (i_ < (numel)) {                                                              \
            for (int64_t j_ = 0; j_ < in_; j_++) BODY(i_ + j_, ia_ + j_ * sa_, ib_ + j_ * sb_); \
            i_ += in_;                                                                      \
            for (int d_ = (c).nd - 2; d_ >= 0; d_--) {                                      \
                idx_[d_]++, ia_ += (c).sa[d_], ib_ += (c).sb[d_];                           \
                if (idx_[d_] < (c).shape[d_]) break;                                        \
                ia_ -= (c).sa[d_] * (c).shape[d_], ib_ -= (c).sb[d_] * (c).shape[d_];       \
                idx_[d_] = 0;                                                               \
            }                                                                               \
        }                                                                                   \
    } while (0)

/* Both inputs have the output's shape: one flat loop the compiler vectorises. */
static bool same_shape(const tg_node *n)
{
    return n->in[0]->numel == n->out->numel && n->in[1]->numel == n->out->numel;
}

#define BINARY(NAME, T, SFX, FWD, DA, DB)                                                    \
    static void NAME##_fwd_##SFX(tg_node *n)                                                 \
    {                                                                                        \
        const T *restrict a = n->in[0]->data, *restrict b = n->in[1]->data;                  \
        T *restrict y = n->out->data;                                                        \
        int64_t len = n->out->numel;                                                         \
        if (same_shape(n)) {                                                                 \
            for (int64_t i = 0; i < len; i++) y[i] = FWD(a[i], b[i]);                        \
        } else if (n->in[1]->numel == 1) {                                                   \
            const T s = b[0];                                                                \
            for (int64_t i = 0; i < len; i++) y[i] = FWD(a[i], s);                           \
        } else {                                                                             \
            bcast c;                                                                         \
            bcast_init(&c, n);                                                               \
            BCAST_FOR(c, len, NAME##_FWD_AT);                                                \
        }                                                                                    \
    }                                                                                        \
    static void NAME##_bwd_##SFX(tg_node *n)                                                 \
    {                                                                                        \
        const T *restrict a = n->in[0]->data, *restrict b = n->in[1]->data;                  \
        const T *restrict y = n->out->data, *restrict dy = n->out->grad->data;               \
        int64_t len = n->out->numel;                                                         \
        bool ga = n->in[0]->requires_grad, gb = n->in[1]->requires_grad;                     \
        T *da = ga ? n->in[0]->grad->data : NULL, *db = gb ? n->in[1]->grad->data : NULL;    \
        (void)a, (void)b, (void)y;                                                           \
        if (same_shape(n)) {                                                                 \
            if (ga)                                                                          \
                for (int64_t i = 0; i < len; i++) da[i] += DA(dy[i], a[i], b[i], y[i]);      \
            if (gb)                                                                          \
                for (int64_t i = 0; i < len; i++) db[i] += DB(dy[i], a[i], b[i], y[i]);      \
            return;                                                                          \
        }                                                                                    \
        bcast c;                                                                             \
        bcast_init(&c, n);                                                                   \
        if (ga) BCAST_FOR(c, len, NAME##_DA_AT);                                             \
        if (gb) BCAST_FOR(c, len, NAME##_DB_AT);                                             \
    }

/* Per-element bodies for the broadcast loop (a, b, y, dy, da, db are in scope). */
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
#define DIV_DB(g, x, z, v) (-(g) * (v) / (z)) /* -dy a / b² = -dy y / b */

#define add_FWD_AT(i, ia, ib) (y[i] = ADD_F(a[ia], b[ib]))
#define sub_FWD_AT(i, ia, ib) (y[i] = SUB_F(a[ia], b[ib]))
#define mul_FWD_AT(i, ia, ib) (y[i] = MUL_F(a[ia], b[ib]))
#define div_FWD_AT(i, ia, ib) (y[i] = DIV_F(a[ia], b[ib]))
#define add_DA_AT(i, ia, ib) (da[ia] += ADD_DA(dy[i], a[ia], b[ib], y[i]))
#define add_DB_AT(i, ia, ib) (db[ib] += ADD_DB(dy[i], a[ia], b[ib], y[i]))
#define sub_DA_AT(i, ia, ib) (da[ia] += SUB_DA(dy[i], a[ia], b[ib], y[i]))
#define sub_DB_AT(i, ia, ib) (db[ib] += SUB_DB(dy[i], a[ia], b[ib], y[i]))
#define mul_DA_AT(i, ia, ib) (da[ia] += MUL_DA(dy[i], a[ia], b[ib], y[i]))
#define mul_DB_AT(i, ia, ib) (db[ib] += MUL_DB(dy[i], a[ia], b[ib], y[i]))
#define div_DA_AT(i, ia, ib) (da[ia] += DIV_DA(dy[i], a[ia], b[ib], y[i]))
#define div_DB_AT(i, ia, ib) (db[ib] += DIV_DB(dy[i], a[ia], b[ib], y[i]))

#define FAMILY(NAME, FWD, DA, DB)                                                            \
    BINARY(NAME, float, f32, FWD, DA, DB)                                                    \
    BINARY(NAME, double, f64, FWD, DA, DB)                                                   \
    void tg_##NAME##_fwd(tg_node *n) { TG_DISPATCH(n, NAME##_fwd); }                         \
    void tg_##NAME##_bwd(tg_node *n) { TG_DISPATCH(n, NAME##_bwd); }                         \
    tg_tensor *tg_##NAME(tg_tape *tp, tg_tensor *a, tg_tensor *b)                            \
    {                                                                                        \
        return binary(tp, TG_OP_##NAME, a, b);                                               \
    }

static tg_tensor *binary(tg_tape *tp, int op, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[2] = {a, b};
    if (tg_op_check(tp, op, 2, in)) return NULL;
    int nd;
    int64_t shape[TG_MAX_DIMS];
    if (!tg_broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, &nd, shape)) {
        char buf[160];
        tg_fail(tp, TG_ESHAPE, "tg_%s: %s: shapes do not broadcast", tg_op_table[op].name,
                tg_shapes_str(buf, sizeof buf, 2, in));
        return NULL;
    }
    tg_node *n = tg_op_begin(tp, op, 2, in, nd, shape);
    return n ? tg_op_finish(tp, n) : NULL;
}

FAMILY(add, ADD_F, ADD_DA, ADD_DB)
FAMILY(sub, SUB_F, SUB_DA, SUB_DB)
FAMILY(mul, MUL_F, MUL_DA, MUL_DB)
FAMILY(div, DIV_F, DIV_DA, DIV_DB)
