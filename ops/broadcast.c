/* ops/broadcast.c: broadcast_to and sum_to, each the other's adjoint. For now composed of
 * other ops; to become ops of their own. */
#include "internal.h"

/* Whether shape (nd) broadcasts to t's shape exactly. */
static bool broadcasts_to(int nd, const int64_t *shape, const tg_tensor *t)
{
    int n;
    int64_t out[TG_MAX_DIMS];
    if (nd > t->ndim || !tg_broadcast_shape(nd, shape, t->ndim, t->shape, &n, out)) return false;
    return n == t->ndim && memcmp(out, t->shape, sizeof(int64_t) * (size_t)n) == 0;
}

tg_tensor *tg_sum_to(tg_tape *tp, tg_tensor *x, int ndim, const int64_t *shape)
{
    char a[96], b[96];
    if (!tp || tp->err || !x) return NULL;
    if (ndim < 0 || ndim > TG_MAX_DIMS || (ndim && !shape)) {
        tg_fail(tp, TG_EARG, "tg_sum_to: bad shape (ndim %d)", ndim);
        return NULL;
    }
    if (!broadcasts_to(ndim, shape, x)) {
        tg_fail(tp, TG_ESHAPE, "tg_sum_to: %s does not broadcast to %s",
                tg_shape_fmt(ndim, shape, a, sizeof a), tg_shape_str(x, b, sizeof b));
        return NULL;
    }
    tg_tensor *y = x;
    int lead = x->ndim - ndim;
    for (int i = 0; i < lead && y; i++) y = tg_sum(tp, y, 0, false);
    for (int d = 0; d < ndim && y; d++)
        if (shape[d] == 1 && y->shape[d] != 1) y = tg_sum(tp, y, d, true);
    return y;
}

tg_tensor *tg_broadcast_to(tg_tape *tp, tg_tensor *x, int ndim, const int64_t *shape)
{
    char a[96], b[96];
    if (!tp || tp->err || !x) return NULL;
    if (ndim < 0 || ndim > TG_MAX_DIMS || (ndim && !shape) || tg_shape_numel(ndim, shape) < 0) {
        tg_fail(tp, TG_EARG, "tg_broadcast_to: bad shape");
        return NULL;
    }
    tg_tensor *z = tg_const(tp, "broadcast_to", (tg_dtype)x->dtype, ndim, shape, 0);
    if (!z) return NULL;
    if (!broadcasts_to(x->ndim, x->shape, z)) {
        tg_fail(tp, TG_ESHAPE, "tg_broadcast_to: %s does not broadcast to %s",
                tg_shape_str(x, a, sizeof a), tg_shape_fmt(ndim, shape, b, sizeof b));
        return NULL;
    }
    return tg_add(tp, x, z);
}
