/* autograd/record.c: what every op does once: validate inputs, take the output and the
 * node from the arena, run the forward kernel, and link the node when recording. */
#include <string.h>

#include "internal.h"

const char *tg_shapes_str(char *buf, size_t size, int n, tg_tensor *const *t)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && k + 1 < size; i++) {
        char one[96];
        k += (size_t)snprintf(buf + k, size - k, "%s%s", i ? (i + 1 == n ? " and " : ", ") : "",
                              tg_shape_str(t[i], one, sizeof one));
    }
    return buf;
}

int tg_op_check_full(tg_tape *tp, int op, int n_in, tg_tensor *const *in)
{
    const char *name = tg_op_table[op].name;
    if (!tp) return TG_EARG;
    if (tp->err) return tp->err; /* an earlier op failed: stay quiet, return NULL */
    for (int i = 0; i < n_in; i++) {
        if (!in[i]) return tg_fail(tp, TG_EARG, "tg_%s: input %d is NULL", name, i);
        if (!tg_tensor_usable(tp, in[i]))
            return tg_fail(tp, TG_ESTATE,
                           "tg_%s: input %d belongs to another tape or was made before "
                           "tg_tape_reset",
                           name, i);
    }
    for (int i = 1; i < n_in; i++) {
        if (in[i]->dtype != in[0]->dtype)
            return tg_fail(tp, TG_EDTYPE, "tg_%s: dtypes %s and %s differ", name,
                           tg_dtype_name((tg_dtype)in[0]->dtype),
                           tg_dtype_name((tg_dtype)in[i]->dtype));
    }
    return TG_OK;
}

/* A node's room: its inputs, then its attributes (tg_node_attr). With the self-checks on
 * (tp->poison_grads) every node has the whole union, and the bytes past its op's member hold
 * a pattern that tg_op_finish checks, so that an op writing beyond its ops.def column
 * fails instead of overwriting its output's header. */
#define ATTR_FILL 0xa5
static size_t node_room(const tg_tape *tp, int op, int n_in)
{
    size_t attr = tp->poison_grads ? sizeof(tg_attr) : tg_op_table[op].attr_bytes;
    return (sizeof(tg_node) + (size_t)n_in * sizeof(tg_tensor *) + attr + 15) & ~(size_t)15;
}

/* Fills the node at n, which has node_room's bytes. With spill, sizeof(tg_attr) bytes past
 * its inputs are writable (the rest lies in its output's header, written after it), so the
 * attributes are zeroed by a store of constant size instead of a call. */
static inline void node_init(tg_tape *tp, tg_node *n, int op, int n_in, tg_tensor *const *in,
                             bool spill)
{
    memset(n, 0, sizeof *n);
    n->op = (uint16_t)op;
    n->n_in = (uint16_t)n_in;
    n->in[0] = in[0]; /* most ops have one or two inputs: no loop set-up for them */
    if (n_in > 1) {
        n->in[1] = in[1];
        for (int i = 2; i < n_in; i++) n->in[i] = in[i];
    }
    if (spill) *tg_node_attr(n) = (tg_attr){0};
    else memset(tg_node_attr(n), 0, tg_op_table[op].attr_bytes);
    if (tp->poison_grads) {
        size_t a = tg_op_table[op].attr_bytes;
        memset((unsigned char *)tg_node_attr(n) + a, ATTR_FILL, sizeof(tg_attr) - a);
    }
}

/* tg_op_begin as two allocations, each of which may take a new block: the node, then its
 * output (which checks the shape). */
static tg_node *begin_apart(tg_tape *tp, int op, int n_in, tg_tensor *const *in, int ndim,
                            const int64_t *shape)
{
    const char *who = tg_op_table[op].name; /* formatted only if something fails */
    tg_node *n = tg_arena_alloc_align(tp, node_room(tp, op, n_in), 16);
    if (!n) {
        tg_fail(tp, TG_ENOMEM, "tg_%s: out of memory for its node", who);
        return NULL;
    }
    node_init(tp, n, op, n_in, in, false);
    n->out = tg_arena_tensor(tp, who, (tg_dtype)in[0]->dtype, ndim, shape);
    return n->out ? n : NULL;
}

/* When the current block holds both, the node and its output are one bump of the arena,
 * at the offsets the two allocations would take; an output shaped like in[0] (the input's
 * own shape array) needs no shape check. */
tg_node *tg_op_begin(tg_tape *tp, int op, int n_in, tg_tensor *const *in, int ndim,
                     const int64_t *shape)
{
    int64_t numel =
        shape == in[0]->shape && ndim == in[0]->ndim ? in[0]->numel : tg_shape_numel(ndim, shape);
    if (numel < 0) return begin_apart(tp, op, n_in, in, ndim, shape); /* fails with its error */
    tg_dtype dt = (tg_dtype)in[0]->dtype;
    size_t node = node_room(tp, op, n_in);
    size_t hdr, room = tg_tensor_room(dt, ndim, numel, &hdr);
    unsigned char *p = tg_arena_bump(tp, node + room);
    if (!p) return begin_apart(tp, op, n_in, in, ndim, shape);
#if defined(__GNUC__)
    __builtin_prefetch((const void *)((uintptr_t)p + node + TG_WRITE_AHEAD), 1); /* as apart */
#endif
    tg_node *n = (tg_node *)p;
    node_init(tp, n, op, n_in, in, true);
    n->out = tg_tensor_place(tp, p + node, hdr, dt, ndim, shape, numel);
    return n;
}

/* Whether the bytes past n's attributes still hold node_init's pattern. */
static bool attr_intact(const tg_node *n)
{
    const unsigned char *a = (const unsigned char *)tg_node_attr(n);
    for (size_t i = tg_op_table[n->op].attr_bytes; i < sizeof(tg_attr); i++)
        if (a[i] != ATTR_FILL) return false;
    return true;
}

void *tg_op_save(tg_tape *tp, tg_node *n, size_t bytes)
{
    void *p = tg_arena_alloc(tp, bytes);
    if (!p) {
        tg_fail(tp, TG_ENOMEM, "tg_%s: out of memory for saved context (%zu bytes)",
                tg_op_table[n->op].name, bytes);
        return NULL;
    }
    memset(p, 0, bytes);
    n->saved = p;
    return p;
}

bool tg_op_records(const tg_tape *tp, int n_in, tg_tensor *const *in)
{
    bool record = false;
    if (tp->grad_mode)
        for (int i = 0; i < n_in; i++) record |= in[i]->requires_grad;
    return record;
}

int tg_leaf_refs_add(tg_tape *tp, const tg_node *n)
{
    for (int i = 0; i < n->n_in; i++) {
        const tg_tensor *x = n->in[i];
        if (!x->leaf || x == tp->leaves_last) continue;
        if (tp->n_leaves == tp->cap_leaves) {
            int64_t cap = tp->cap_leaves ? 2 * tp->cap_leaves : 64;
            tg_leaf_ref *p = tp->alloc(tp->alloc_ctx, tp->leaves, (size_t)cap * sizeof *p);
            tp->n_allocs++;
            if (!p)
                return tg_fail(tp, TG_ENOMEM, "tg_%s: out of memory for the tape's leaf list",
                               tg_op_table[n->op].name);
            tp->leaves = p, tp->cap_leaves = cap;
        }
        tp->leaves[tp->n_leaves++] = (tg_leaf_ref){x, x->serial};
        tp->leaves_last = x;
    }
    return TG_OK;
}

tg_tensor *tg_op_finish(tg_tape *tp, tg_node *n)
{
    bool record = false, leafy = false; /* tg_op_records; a leaf not noted last is read */
    if (tp->grad_mode)
        for (int i = 0; i < n->n_in; i++)
            record |= n->in[i]->requires_grad,
                leafy |= n->in[i]->leaf && n->in[i] != tp->leaves_last;
    leafy &= record;
    /* Before the forward, which may write leaves (batch_norm's running statistics), so
     * that running out of memory here changes nothing. A failing forward leaves the list
     * longer than the nodes need, harmlessly: the tape holds its error until a reset. */
    if (leafy && tg_leaf_refs_add(tp, n)) return NULL;
    if (tg_profiling(tp)) {
        double t0 = tg_clock();
        tg_op_table[n->op].forward(n);
        tg_profile_kernel(tp, n->op, t0);
    } else {
        tg_op_table[n->op].forward(n);
    }
    if (tp->err) return NULL; /* a forward kernel may reject values (e.g. bad labels) */
    if (tp->poison_grads && !attr_intact(n)) {
        tg_fail(tp, TG_ESTATE,
                "tg_%s: its node's attributes go past the %d bytes of its ops.def attr column",
                tg_op_table[n->op].name, (int)tg_op_table[n->op].attr_bytes);
        return NULL;
    }
    if (record) {
        n->prev = tp->tail;
        if (tp->tail) tp->tail->next = n;
        else tp->head = n;
        tp->tail = n;
        tp->n_nodes++;
        n->out->node = n;
        n->out->requires_grad = true;
    }
    return n->out;
}

tg_tensor *tg_op_unary(tg_tape *tp, int op, tg_tensor *x)
{
    if (tg_op_check(tp, op, 1, &x)) return NULL;
    tg_node *n = tg_op_begin(tp, op, 1, &x, x->ndim, x->shape);
    return n ? tg_op_finish(tp, n) : NULL;
}
