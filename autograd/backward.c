/* autograd/backward.c: the reverse sweep. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

/* Makes t->grad a buffer valid for the current sweep that reads as zeros. Leaves keep (and
 * keep accumulating into) the buffer they own; intermediates get theirs from the arena once
 * per tape generation and have it marked unset once per sweep: the first backward kernel
 * that reaches it writes it instead of adding (ops with sets = 1), or the sweep zeroes it
 * before a kernel that adds. No gradient is zeroed only to be overwritten. */
static void poison(tg_tensor *g)
{
    for (int64_t i = 0; i < g->numel; i++) tg_set(g, i, (double)NAN);
}

/* t->grad for intermediate t from the current block, by one bump (t's shape is valid: no
 * check but for room); false, and t->grad still NULL, when the block has no room. */
static inline bool new_grad(tg_tape *tp, tg_tensor *t)
{
    size_t off, room = tg_tensor_room((tg_dtype)t->dtype, t->ndim, t->numel, 0, &off);
    unsigned char *p = tg_arena_bump(tp, room);
    if (p) t->grad = tg_tensor_place(tp, p, off, (tg_dtype)t->dtype, t->ndim, t->shape, t->numel);
    return p != NULL;
}

/* a call of its own, so that the sweep's loop around ensure_grad keeps its registers (inline,
 * the sweep after a replay took 140 instructions per node instead of 128) */
#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif
static NOINLINE int make_grad(tg_tape *tp, tg_tensor *t)
{
    if (t->leaf) {
        if (t->grad) {
            if (tp->poison_grads && t->grad_unset) poison(t->grad);
            return TG_OK;
        }
        if (tg_leaf_grad_alloc(t))
            return tg_fail(tp, TG_ENOMEM, "tg_backward: out of memory for a leaf gradient");
        return TG_OK;
    }
    if (t->grad_sweep == tp->sweep) return TG_OK;
    if (!t->grad && !new_grad(tp, t) &&
        !(t->grad = tg_arena_tensor(tp, "backward", (tg_dtype)t->dtype, t->ndim, t->shape)))
        return TG_ENOMEM;
    t->grad_unset = true;
    t->grad_sweep = tp->sweep;
    if (tp->poison_grads) poison(t->grad);
    return TG_OK;
}

/* make_grad's common cases without a call: a gradient already made for this sweep, a buffer
 * to mark unset again, or a new one from the current block. */
static inline int ensure_grad(tg_tape *tp, tg_tensor *t, uint64_t sweep, bool poison)
{
    if (!poison) {
        if (t->leaf) {
            if (t->grad) return TG_OK;
        } else {
            if (t->grad_sweep == sweep) return TG_OK;
            if (t->grad || new_grad(tp, t)) { /* new: the first sweep since recording */
                t->grad_unset = true, t->grad_sweep = sweep;
                return TG_OK;
            }
        }
    }
    return make_grad(tp, t);
}

/* Nodes and their outputs are laid out in recording order in the arena, so the sweep walks
 * memory downwards. On a long tape that walk misses the cache at every node header (perf:
 * a third of the sweep on loading tg_node_out(n)->grad at 10^6 nodes). Asking for the lines a few
 * nodes below the current one hides that latency. A prefetch never faults, so an address
 * below the arena block is harmless. */
#define PREFETCH_DISTANCE 2048 /* bytes, about 8 nodes; best of 0.5, 1, 2 and 4 KB */
static inline void prefetch_below(const tg_node *n)
{
#if defined(__GNUC__)
    uintptr_t at = (uintptr_t)n - PREFETCH_DISTANCE;
    for (int i = 0; i < 4; i++) __builtin_prefetch((const void *)(at + 64 * (uintptr_t)i));
#else
    (void)n;
#endif
}

/* ---- The gradient-ready hook (tg_tape_on_grad_ready) ----
 * Before a sweep with a hook set, one pass walks the nodes in sweep order and finds the
 * ones the sweep will reach (y's node, and the nodes of the inputs that require a gradient
 * of a reached node, marked in n->mark and cleared as the pass goes), and for each leaf
 * that requires a gradient the last reached node, in sweep order, that reads it: a table
 * keyed by the leaf, overwritten at each reached reader. The sweep then calls the hook
 * after that node's backward. */
typedef struct tg_ready_slot {
    const tg_tensor *leaf; /* NULL: empty */
    const tg_node *node;
    int in;
} tg_ready_slot;

static size_t ready_hash(const tg_tensor *t, size_t mask)
{
    return (size_t)(((uintptr_t)t >> 4) * 0x9e3779b97f4a7c15ull >> 17) & mask;
}

static tg_ready_slot *ready_find(tg_tape *tp, const tg_tensor *t)
{
    size_t mask = tp->ready_cap - 1, i = ready_hash(t, mask);
    while (tp->ready_map[i].leaf && tp->ready_map[i].leaf != t) i = (i + 1) & mask;
    return &tp->ready_map[i];
}

static int ready_plan(tg_tape *tp, const tg_tensor *y, const char *who)
{
    size_t leaves = 1; /* y itself may be one */
    for (const tg_node *n = tg_tensor_node(y); n; n = n->prev)
        for (int i = 0; i < n->n_in; i++) leaves += n->in[i]->leaf && n->in[i]->requires_grad;
    size_t cap = 16;
    while (cap < 2 * leaves) cap *= 2;
    if (cap > tp->ready_cap) {
        tg_ready_slot *m = tp->alloc(tp->alloc_ctx, tp->ready_map, cap * sizeof *m);
        tp->n_allocs++;
        if (!m)
            return tg_fail(tp, TG_ENOMEM,
                           "%s: out of memory for the gradient-ready hook's table (%zu leaves)",
                           who, leaves);
        tp->ready_map = m, tp->ready_cap = cap;
    }
    memset(tp->ready_map, 0, tp->ready_cap * sizeof *tp->ready_map);
    for (tg_node *n = tg_tensor_node(y); n; n = n->prev) {
        bool reached = n == tg_tensor_node(y) || n->mark;
        n->mark = 0;
        if (!reached) continue;
        for (int i = 0; i < n->n_in; i++) {
            tg_tensor *x = n->in[i];
            if (!x->requires_grad) continue;
            if (x->recorded) tg_tensor_node(x)->mark = 1;
            else if (x->leaf) {
                tg_ready_slot *s = ready_find(tp, x);
                s->leaf = x, s->node = n, s->in = i;
            }
        }
    }
    return TG_OK;
}

/* Calls the hook for each leaf whose last reader is n. */
static void ready_fire(tg_tape *tp, const tg_node *n, tg_grad_ready_fn fn, void *ctx)
{
    for (int i = 0; i < n->n_in; i++) {
        tg_tensor *x = n->in[i];
        if (!x->leaf || !x->requires_grad) continue;
        const tg_ready_slot *s = ready_find(tp, x);
        if (s->node == n && s->in == i) fn(x, ctx);
    }
}

void tg_tape_on_grad_ready(tg_tape *tp, tg_grad_ready_fn fn, void *ctx)
{
    if (!tp) return;
    tp->ready_fn = fn;
    tp->ready_ctx = fn ? ctx : NULL;
}

/* g += seed, elementwise (same shape; the seed's dtype may differ: it is converted). */
static void add_seed(tg_tensor *g, const tg_tensor *seed)
{
    const int64_t n = g->numel;
    if (g->dtype == TG_F32 && seed->dtype == TG_F32) {
        float *d = g->data; /* no restrict: the seed may be a gradient */
        const float *s = seed->data;
        for (int64_t i = 0; i < n; i++) d[i] += s[i];
    } else if (g->dtype == TG_F64 && seed->dtype == TG_F64) {
        double *d = g->data;
        const double *s = seed->data;
        for (int64_t i = 0; i < n; i++) d[i] += s[i];
    } else {
        for (int64_t i = 0; i < n; i++) tg_set(g, i, tg_get(g, i) + tg_get(seed, i));
    }
}

/* The sweep from y with dy = seed (NULL: dy = 1, y scalar). */
static int sweep(tg_tape *tp, tg_tensor *y, const tg_tensor *seed, const char *who)
{
    char buf[96], sb[96];
    if (!tp) return TG_EARG;
    if (tp->err) return tp->err;
    if (!y) return tg_fail(tp, TG_EARG, "%s: %s is NULL", who, seed ? "output" : "loss");
    if (!tg_tensor_usable(tp, y))
        return tg_fail(tp, TG_ESTATE,
                       "%s: the %s was not recorded on this tape since its last reset", who,
                       seed ? "output" : "loss");
    if (seed && !tg_tensor_usable(tp, seed))
        return tg_fail(tp, TG_ESTATE,
                       "%s: the seed belongs to another tape or was made before tg_tape_reset",
                       who);
    if (!seed && y->numel != 1)
        return tg_fail(tp, TG_ESHAPE, "%s: loss must be a scalar, got shape %s", who,
                       tg_shape_str(y, buf, sizeof buf));
    if (seed && (seed->numel != y->numel || seed->ndim != y->ndim ||
                 memcmp(seed->shape, y->shape, sizeof(int64_t) * (size_t)y->ndim) != 0))
        return tg_fail(tp, TG_ESHAPE, "%s: seed %s for output %s: shapes differ", who,
                       tg_shape_str(seed, sb, sizeof sb), tg_shape_str(y, buf, sizeof buf));
    if (!y->requires_grad)
        return tg_fail(tp, TG_EARG,
                       "%s: the %s does not require a gradient (no input of it requires one, "
                       "or grad mode was off)",
                       who, seed ? "output" : "loss");
    tg_grad_ready_fn ready = tp->ready_fn; /* as set when the sweep starts */
    void *ready_ctx = tp->ready_ctx;
    if (ready && ready_plan(tp, y, who)) return tp->err;
    /* read once: a backward kernel changes neither */
    const uint64_t sweep_id = ++tp->sweep;
    const bool poison = tp->poison_grads;
    if (ensure_grad(tp, y, sweep_id, poison)) return tp->err;
    tg_grad_settle(y);
    if (seed) add_seed(y->grad, seed);
    else tg_set(y->grad, 0, tg_get(y->grad, 0) + 1.0); /* d loss / d loss */
    if (ready && y->leaf) ready(y, ready_ctx);
    bool prof = tg_profiling(tp);
    if (prof) tp->prof->phase = 1;
    for (tg_node *n = tg_tensor_node(y); n; n = n->prev) {
        prefetch_below(n);
        if (!tg_node_out(n)->grad || tg_node_out(n)->grad_sweep != sweep_id)
            continue; /* no gradient here */
        const tg_op *op = &tg_op_table[n->op];
        tg_grad_settle(tg_node_out(n)); /* reached, but no kernel wrote it: zeros */
        for (int i = 0; i < n->n_in; i++) {
            tg_tensor *x = n->in[i];
            if (!x->requires_grad) continue;
            if (ensure_grad(tp, x, sweep_id, poison)) {
                if (prof) tp->prof->phase = 0;
                return tp->err;
            }
            if (!op->sets) tg_grad_settle(x);
        }
        if (prof) {
            double t0 = tg_clock();
            op->backward(n);
            tg_profile_kernel(tp, n->op, t0);
        } else {
            op->backward(n);
        }
        if (ready) ready_fire(tp, n, ready, ready_ctx);
    }
    if (prof) tp->prof->phase = 0;
    return TG_OK;
}

int tg_backward(tg_tape *tp, tg_tensor *loss) { return sweep(tp, loss, NULL, "tg_backward"); }

int tg_backward_seed(tg_tape *tp, tg_tensor *y, const tg_tensor *seed)
{
    if (tp && !tp->err && !seed) return tg_fail(tp, TG_EARG, "tg_backward_seed: seed is NULL");
    return sweep(tp, y, seed, "tg_backward_seed");
}
