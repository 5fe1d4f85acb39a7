/* autograd/higher.c: the sweep that records (tg_gradients). Where tg_backward runs each
 * node's fused numeric backward into gradient buffers, this sweep calls each node's
 * backward written in ops (tg_op.vjp), so every gradient is an ordinary tensor on the tape:
 * recorded, it can be differentiated again, to any order. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

tg_tensor *tg_const(tg_tape *tp, const char *who, tg_dtype dt, int ndim, const int64_t *shape,
                    double value)
{
    tg_tensor *t = tg_arena_tensor(tp, who, dt, ndim, shape);
    if (!t) return NULL;
    if (dt == TG_F32)
        for (int64_t i = 0; i < t->numel; i++) tg_f32(t)[i] = (float)value;
    else
        for (int64_t i = 0; i < t->numel; i++) tg_f64(t)[i] = value;
    return t;
}

/* ---- a map from tensors to their state in one sweep, open addressing in the arena ---- */
enum {
    G_TARGET = 1, /* one of the xs */
    G_NEEDED = 2, /* depends on an x (so its gradient is wanted) */
    G_REACHED = 4 /* y depends on it */
};
typedef struct gslot {
    const tg_tensor *key;
    tg_tensor *grad; /* the sum of the contributions so far, NULL before the first */
    unsigned flags;
} gslot;
typedef struct gmap {
    gslot *s;
    size_t mask;
} gmap;

static gslot *gfind(const gmap *m, const tg_tensor *t, bool insert)
{
    size_t h = (size_t)(((uintptr_t)t >> 4) * 0x9E3779B97F4A7C15ull) & m->mask;
    for (;; h = (h + 1) & m->mask) {
        gslot *s = &m->s[h];
        if (s->key == t) return s;
        if (!s->key) {
            if (!insert) return NULL;
            s->key = t;
            return s;
        }
    }
}

static bool same_shape(const tg_tensor *a, const tg_tensor *b)
{
    return a->ndim == b->ndim && memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) == 0;
}

static const char *node_name(const tg_node *n)
{
    return n->op == TG_OP_custom ? tg_custom_name(n) : tg_op_table[n->op].name;
}

/* Checks the arguments; 0 or the error (recorded). */
static int check_args(tg_tape *tp, tg_tensor *y, const tg_tensor *seed, int nx,
                      tg_tensor *const *xs, tg_tensor **grads)
{
    char a[96], b[96];
    if (!y) return tg_fail(tp, TG_EARG, "tg_gradients: y is NULL");
    if (nx < 1 || !xs || !grads)
        return tg_fail(tp, TG_EARG, "tg_gradients: no inputs (n = %d, xs %s, grads %s)", nx,
                       xs ? "set" : "NULL", grads ? "set" : "NULL");
    if (!tg_tensor_usable(tp, y))
        return tg_fail(tp, TG_ESTATE,
                       "tg_gradients: y was not recorded on this tape since its last reset");
    if (seed && !tg_tensor_usable(tp, seed))
        return tg_fail(tp, TG_ESTATE,
                       "tg_gradients: the seed belongs to another tape or was made before "
                       "tg_tape_reset");
    if (!seed && y->numel != 1)
        return tg_fail(tp, TG_ESHAPE, "tg_gradients: y must be a scalar without a seed, got %s",
                       tg_shape_str(y, a, sizeof a));
    if (seed && (seed->dtype != y->dtype || !same_shape(seed, y)))
        return tg_fail(tp, seed->dtype != y->dtype ? TG_EDTYPE : TG_ESHAPE,
                       "tg_gradients: seed %s %s for y %s %s: they differ",
                       tg_dtype_name((tg_dtype)seed->dtype), tg_shape_str(seed, a, sizeof a),
                       tg_dtype_name((tg_dtype)y->dtype), tg_shape_str(y, b, sizeof b));
    for (int i = 0; i < nx; i++) {
        if (!xs[i]) return tg_fail(tp, TG_EARG, "tg_gradients: input %d is NULL", i);
        if (!tg_tensor_usable(tp, xs[i]))
            return tg_fail(tp, TG_ESTATE,
                           "tg_gradients: input %d belongs to another tape or was made before "
                           "tg_tape_reset",
                           i);
        if (!xs[i]->requires_grad)
            return tg_fail(tp, TG_EARG,
                           "tg_gradients: input %d does not require a gradient (a leaf needs "
                           "tg_set_requires_grad; an op output needs an input that requires "
                           "one, and grad mode on)",
                           i);
    }
    if (!y->requires_grad)
        return tg_fail(tp, TG_EARG,
                       "tg_gradients: y does not require a gradient: no input of it requires "
                       "one, grad mode was off, or it is a gradient from a sweep that did not "
                       "record (TG_GRAD_RECORD)");
    return TG_OK;
}

/* The nodes from the first one y depends on (or the tape's first) up to y's own. */
static int64_t count_nodes(const tg_node *last, int64_t *n_inputs)
{
    int64_t n = 0, k = 0;
    for (const tg_node *p = last; p; p = p->prev) n++, k += p->n_in;
    *n_inputs = k;
    return n;
}

/* Per-node scratch for want[] and dx[]: on the stack for small nodes, else in the arena. */
#define SMALL_IN 16

static int sweep(tg_tape *tp, tg_tensor *y, tg_tensor *seed, int nx, tg_tensor *const *xs,
                 tg_tensor **grads)
{
    const tg_node *last = tg_tensor_node(y);
    int64_t n_inputs = 0, n_nodes = last ? count_nodes(last, &n_inputs) : 0;
    size_t want = (size_t)(n_nodes + n_inputs + nx + 1) * 2, cap = 16;
    while (cap < want) cap *= 2;
    gmap m = {tg_arena_alloc(tp, cap * sizeof(gslot)), cap - 1};
    if (!m.s) return tg_fail(tp, TG_ENOMEM, "tg_gradients: out of memory for its map");
    memset(m.s, 0, cap * sizeof(gslot));
    for (int i = 0; i < nx; i++) gfind(&m, xs[i], true)->flags |= G_TARGET;

    /* Forward from the first node: which outputs depend on an x. */
    const tg_node *first = last;
    while (first && first->prev) first = first->prev;
    for (const tg_node *n = first; n; n = n->next) {
        bool needed = false;
        for (int i = 0; i < n->n_in && !needed; i++) {
            const gslot *s = gfind(&m, n->in[i], false);
            needed = s && s->flags;
        }
        if (needed) gfind(&m, tg_node_out(n), true)->flags |= G_NEEDED;
        if (n == last) break;
    }
    /* Backward from y: which of those y depends on; every node to be swept must have a
     * backward in ops before anything is built. */
    gslot *ys = gfind(&m, y, true);
    ys->flags |= G_REACHED;
    for (const tg_node *n = last; n; n = n->prev) {
        gslot *o = gfind(&m, tg_node_out(n), false);
        if (!o || !(o->flags & G_REACHED) || !(o->flags & G_NEEDED)) continue;
        if (n->op == TG_OP_custom && !tg_custom_has_vjp(n))
            return tg_fail(tp, TG_ESTATE,
                           "tg_gradients: custom op %s has no backward in ops (tg_custom_op.vjp), "
                           "so its gradient cannot be built on the tape",
                           node_name(n));
        for (int i = 0; i < n->n_in; i++) {
            gslot *s = gfind(&m, n->in[i], false);
            if (s && s->flags) s->flags |= G_REACHED;
        }
    }

    /* The sweep. */
    if (ys->flags & (G_NEEDED | G_TARGET)) {
        ys->grad =
            seed ? seed : tg_const(tp, "gradients", (tg_dtype)y->dtype, y->ndim, y->shape, 1);
        if (!ys->grad) return tp->err;
    }
    bool want_small[SMALL_IN];
    tg_tensor *dx_small[SMALL_IN];
    for (const tg_node *n = last; n; n = n->prev) {
        gslot *o = gfind(&m, tg_node_out(n), false);
        if (!o || !o->grad || !(o->flags & G_NEEDED)) continue;
        bool *w = want_small;
        tg_tensor **dx = dx_small;
        if (n->n_in > SMALL_IN) {
            w = tg_arena_alloc(tp, (size_t)n->n_in * (sizeof *w + sizeof *dx));
            if (!w) return tg_fail(tp, TG_ENOMEM, "tg_gradients: out of memory");
            dx = (tg_tensor **)(void *)(w + n->n_in + (8 - n->n_in % 8) % 8);
        }
        bool any = false;
        for (int i = 0; i < n->n_in; i++) {
            const gslot *s = gfind(&m, n->in[i], false);
            w[i] = s && s->flags && n->in[i]->requires_grad;
            any |= w[i];
            dx[i] = NULL;
        }
        if (!any) continue;
        tg_op_table[n->op].vjp(tp, n, o->grad, w, dx);
        if (tp->err) return tp->err;
        for (int i = 0; i < n->n_in; i++) {
            if (!w[i]) continue;
            if (!dx[i] || !same_shape(dx[i], n->in[i]) || dx[i]->dtype != n->in[i]->dtype) {
                char a[96], b[96];
                return tg_fail(tp, TG_ESTATE,
                               "tg_gradients: the backward in ops of %s gave %s for input %d of "
                               "shape %s",
                               node_name(n), dx[i] ? tg_shape_str(dx[i], a, sizeof a) : "nothing",
                               i, tg_shape_str(n->in[i], b, sizeof b));
            }
            gslot *s = gfind(&m, n->in[i], false);
            s->grad = s->grad ? tg_add(tp, s->grad, dx[i]) : dx[i];
            if (!s->grad) return tp->err;
        }
    }
    for (int i = 0; i < nx; i++) {
        const gslot *s = gfind(&m, xs[i], false);
        grads[i] = s->grad ? s->grad
                           : tg_const(tp, "gradients", (tg_dtype)xs[i]->dtype, xs[i]->ndim,
                                      xs[i]->shape, 0);
        /* Where ∂y/∂x is the identity the sum is the seed itself: a copy on the tape
         * instead (recorded when the seed needs a gradient), so that the result is always
         * the sweep's own tensor. */
        if (grads[i] && grads[i] == seed) grads[i] = tg_mul_scalar(tp, seed, 1);
        if (!grads[i]) return tp->err;
    }
    return TG_OK;
}

int tg_gradients(tg_tape *tp, tg_tensor *y, tg_tensor *seed, int n, tg_tensor *const *xs,
                 tg_tensor **grads, unsigned flags)
{
    if (!tp) return TG_EARG;
    if (grads && n > 0)
        for (int i = 0; i < n; i++) grads[i] = NULL;
    if (tp->err) return tp->err;
    if (flags & ~(unsigned)TG_GRAD_RECORD)
        return tg_fail(tp, TG_EARG, "tg_gradients: unknown flags 0x%x", flags);
    int rc = check_args(tp, y, seed, n, xs, grads);
    if (rc) return rc;
    bool mode = tp->grad_mode;
    tp->grad_mode = (flags & TG_GRAD_RECORD) != 0;
    rc = sweep(tp, y, seed, n, xs, grads);
    tp->grad_mode = mode;
    if (rc && grads)
        for (int i = 0; i < n; i++) grads[i] = NULL;
    return rc;
}
