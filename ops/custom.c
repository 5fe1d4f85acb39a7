/* ops/custom.c: user-defined ops. The node keeps the descriptor and context in its saved
 * slot; the table's kernels forward the calls. */
#include "internal.h"

#define CUSTOM_MAX_IN 16

typedef struct custom_saved {
    const tg_custom_op *op;
    void *ctx;
} custom_saved;

void tg_custom_fwd(tg_node *n)
{
    const custom_saved *s = n->saved;
    s->op->forward(s->ctx, n->n_in, (const tg_tensor *const *)n->in, tg_node_out(n));
}

void tg_custom_bwd(tg_node *n)
{
    const custom_saved *s = n->saved;
    tg_tensor *din[CUSTOM_MAX_IN];
    for (int i = 0; i < n->n_in; i++) din[i] = n->in[i]->requires_grad ? n->in[i]->grad : NULL;
    s->op->backward(s->ctx, n->n_in, (const tg_tensor *const *)n->in, tg_node_out(n),
                    tg_node_out(n)->grad, din);
}

void tg_custom_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    const custom_saved *s = n->saved;
    for (int i = 0; i < n->n_in && !tp->err; i++) {
        if (!want[i]) continue;
        dx[i] = s->op->vjp(s->ctx, tp, n->n_in, n->in, tg_node_out(n), dy, i);
        if (!dx[i] && !tp->err)
            tg_fail(tp, TG_EARG,
                    "tg_gradients: the vjp of custom op %s returned NULL for input "
                    "%d with no error on the tape",
                    s->op->name, i);
    }
}

const char *tg_custom_name(const tg_node *n) { return ((const custom_saved *)n->saved)->op->name; }
bool tg_custom_has_vjp(const tg_node *n)
{
    return ((const custom_saved *)n->saved)->op->vjp != NULL;
}

tg_tensor *tg_custom(tg_tape *tp, const tg_custom_op *op, void *ctx, int n_in, tg_tensor *const *in,
                     int ndim, const int64_t *shape)
{
    if (!tp || tp->err) return NULL;
    if (!op || !op->name || !op->forward || !op->backward || n_in < 1 || n_in > CUSTOM_MAX_IN ||
        !in || ndim < 0 || ndim > TG_MAX_DIMS || (ndim > 0 && !shape)) {
        tg_fail(tp, TG_EARG, "tg_custom: bad descriptor, input count or shape");
        return NULL;
    }
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0) {
            tg_fail(tp, TG_EARG, "tg_custom(%s): negative output dimension", op->name);
            return NULL;
        }
    if (tg_op_check(tp, TG_OP_custom, n_in, in)) return NULL;
    if (tg_shape_numel(ndim, shape) < 0) { /* more than TG_MAX_NUMEL: named with the op */
        char who[64];
        snprintf(who, sizeof who, "custom(%s)", op->name);
        tg_shape_fail(tp, who, ndim, shape);
        return NULL;
    }
    tg_node *n = tg_op_begin(tp, TG_OP_custom, n_in, in, ndim, shape);
    if (!n) return NULL;
    custom_saved *s = tg_op_save(tp, n, sizeof *s);
    if (!s) return NULL;
    s->op = op;
    s->ctx = ctx;
    return tg_op_finish(tp, n);
}
