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

#if defined(__GNUC__)
#define COLD __attribute__((noinline, cold))
#else
#define COLD
#endif

/* tg_op_begin's failures, apart so that its fast path keeps few registers. */
static COLD tg_node *begin_fail(tg_tape *tp, int op, int ndim, const int64_t *shape, size_t room)
{
    if (!room) tg_shape_fail(tp, tg_op_table[op].name, ndim, shape);
    else tg_fail(tp, TG_ENOMEM, "tg_%s: out of memory (%zu bytes)", tg_op_table[op].name, room);
    return NULL;
}

/* The piece from the next block (or a new one), when the current one has no room left. */
COLD unsigned char *tg_op_begin_next(tg_tape *tp, int op, int ndim, const int64_t *shape,
                                     size_t room)
{
    unsigned char *p = tg_arena_alloc_align(tp, room, 16);
    if (!p) begin_fail(tp, op, ndim, shape, room);
    return p;
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
    return tg_op_begin_k(tp, op, tg_op_table[op].attr_bytes, n_in, in, ndim, shape, numel);
}

/* With the self-checks on: whether the bytes past n's attributes still hold tg_node_init's
 * pattern; if not, the error. */
COLD bool tg_op_attr_overrun(tg_tape *tp, const tg_node *n)
{
    const unsigned char *a = (const unsigned char *)tg_node_attr(n);
    for (size_t i = tg_op_table[n->op].attr_bytes; i < sizeof(tg_attr); i++)
        if (a[i] != TG_ATTR_FILL) {
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
    return tg_op_finish_k(tp, n, n->n_in, tg_op_table[n->op].forward);
}
