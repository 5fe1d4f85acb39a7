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

/* A node's bytes: its inputs, then its attributes (tg_node_attr), attr of them (its op's
 * tg_op.attr_bytes); a multiple of 8. With the self-checks on (tp->poison_grads) every node
 * has the whole union, and the bytes past its op's member hold a pattern that tg_op_finish
 * checks, so that an op writing beyond its ops.def column fails instead of overwriting its
 * output's data. */
#define ATTR_FILL 0xa5
static inline size_t node_bytes(const tg_tape *tp, int n_in, size_t attr)
{
    return sizeof(tg_node) + (size_t)n_in * sizeof(tg_tensor *) +
           (tp->poison_grads ? sizeof(tg_attr) : attr);
}

/* Fills the node at n, node_bytes long, for an output of ndim dimensions. */
static inline void node_init(tg_tape *tp, tg_node *n, int op, int n_in, tg_tensor *const *in,
                             int ndim, size_t attr)
{
    *n = (tg_node){
        .op = (uint16_t)op, .n_in = (uint16_t)n_in, .out_back = (uint16_t)TG_TENSOR_BYTES(ndim)};
    n->in[0] = in[0]; /* most ops have one or two inputs: no loop set-up for them */
    if (n_in > 1) {
        n->in[1] = in[1];
        for (int i = 2; i < n_in; i++) n->in[i] = in[i];
    }
    unsigned char *a = (unsigned char *)tg_node_attr(n);
    if (attr) memset(a, 0, 8); /* stores of constant size: most ops have 8 or 16 bytes */
    if (attr > 8) memset(a + 8, 0, 8);
    if (attr > 16) memset(a + 16, 0, attr - 16);
    if (tp->poison_grads) memset(a + attr, ATTR_FILL, sizeof(tg_attr) - attr);
}

#if defined(__GNUC__)
#define COLD __attribute__((noinline, cold))
#define INLINE static inline __attribute__((always_inline))
#else
#define COLD
#define INLINE static inline
#endif

/* tg_op_begin's failures, apart so that its fast path keeps few registers. */
static COLD tg_node *begin_fail(tg_tape *tp, int op, int ndim, const int64_t *shape, size_t room)
{
    if (!room) tg_shape_fail(tp, tg_op_table[op].name, ndim, shape);
    else tg_fail(tp, TG_ENOMEM, "tg_%s: out of memory (%zu bytes)", tg_op_table[op].name, room);
    return NULL;
}

/* The piece from the next block (or a new one), when the current one has no room left. */
static COLD unsigned char *begin_next(tg_tape *tp, int op, int ndim, const int64_t *shape,
                                      size_t room)
{
    unsigned char *p = tg_arena_alloc_align(tp, room, 16);
    if (!p) begin_fail(tp, op, ndim, shape, room);
    return p;
}

/* tg_op_begin once numel (valid) is known. */
INLINE tg_node *begin(tg_tape *tp, int op, int n_in, tg_tensor *const *in, int ndim,
                      const int64_t *shape, int64_t numel)
{
    tg_dtype dt = (tg_dtype)in[0]->dtype;
    size_t attr = tg_op_table[op].attr_bytes, node = node_bytes(tp, n_in, attr);
    size_t off, room = tg_tensor_room(dt, ndim, numel, node, &off);
    unsigned char *p = tg_arena_bump(tp, room);
    if (!p && !(p = begin_next(tp, op, ndim, shape, room))) return NULL;
    tg_tensor_place(tp, p, off, dt, ndim, shape, numel);
    tg_node *n = (tg_node *)(void *)(p + TG_TENSOR_BYTES(ndim));
    node_init(tp, n, op, n_in, in, ndim, attr);
    return n;
}

/* The output's header, then the node, then the output's data: one piece of the arena, one
 * bump of the current block when it has room. An output shaped like in[0] (the input's own
 * shape array) needs no shape check. */
tg_node *tg_op_begin(tg_tape *tp, int op, int n_in, tg_tensor *const *in, int ndim,
                     const int64_t *shape)
{
    int64_t numel =
        shape == in[0]->shape && ndim == in[0]->ndim ? in[0]->numel : tg_shape_numel(ndim, shape);
    if (numel < 0) return begin_fail(tp, op, ndim, shape, 0); /* too large or negative */
    return begin(tp, op, n_in, in, ndim, shape, numel);
}

tg_node *tg_op_begin_like(tg_tape *tp, int op, int n_in, tg_tensor *const *in)
{
    return begin(tp, op, n_in, in, in[0]->ndim, in[0]->shape, in[0]->numel);
}

/* With the self-checks on: whether the bytes past n's attributes still hold node_init's
 * pattern; if not, the error. */
static COLD bool attr_overrun(tg_tape *tp, const tg_node *n)
{
    const unsigned char *a = (const unsigned char *)tg_node_attr(n);
    for (size_t i = tg_op_table[n->op].attr_bytes; i < sizeof(tg_attr); i++)
        if (a[i] != ATTR_FILL) {
            tg_fail(tp, TG_ESTATE,
                    "tg_%s: its node's attributes go past the %d bytes of its ops.def attr "
                    "column",
                    tg_op_table[n->op].name, (int)tg_op_table[n->op].attr_bytes);
            return true;
        }
    return false;
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
    if (tp->poison_grads && attr_overrun(tp, n)) return NULL;
    tg_tensor *out = tg_node_out(n);
    if (record) {
        n->prev = tp->tail;
        if (tp->tail) tp->tail->next = n;
        else tp->head = n;
        tp->tail = n;
        tp->n_nodes++;
        out->recorded = true;
        out->requires_grad = true;
    }
    return out;
}

tg_tensor *tg_op_unary(tg_tape *tp, int op, tg_tensor *x)
{
    if (tg_op_check(tp, op, 1, &x)) return NULL;
    tg_node *n = begin(tp, op, 1, &x, x->ndim, x->shape, x->numel);
    return n ? tg_op_finish(tp, n) : NULL;
}
