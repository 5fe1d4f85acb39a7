/* autograd/backward.c: the reverse sweep. */
#include <string.h>

#include "internal.h"

/* Makes t->grad a zeroed buffer valid for the current sweep. Leaves keep (and keep
 * accumulating into) the buffer they own; intermediates get theirs from the arena once per
 * tape generation and have it zeroed once per sweep. */
static int ensure_grad(tg_tape *tp, tg_tensor *t)
{
    if (t->leaf) {
        if (t->grad) return TG_OK;
        if (tg_leaf_grad_alloc(t))
            return tg_fail(tp, TG_ENOMEM, "tg_backward: out of memory for a leaf gradient");
        return TG_OK;
    }
    if (t->grad_sweep == tp->sweep) return TG_OK;
    if (!t->grad) {
        t->grad = tg_arena_tensor(tp, "backward", (tg_dtype)t->dtype, t->ndim, t->shape);
        if (!t->grad) return TG_ENOMEM;
    }
    memset(t->grad->data, 0, (size_t)t->numel * tg_dtype_size((tg_dtype)t->dtype));
    t->grad_sweep = tp->sweep;
    return TG_OK;
}

int tg_backward(tg_tape *tp, tg_tensor *loss)
{
    char buf[96];
    if (!tp) return TG_EARG;
    if (tp->err) return tp->err;
    if (!loss) return tg_fail(tp, TG_EARG, "tg_backward: loss is NULL");
    if (!loss->leaf && (loss->tape != tp || loss->gen != tp->gen))
        return tg_fail(tp, TG_ESTATE,
                       "tg_backward: the loss was not recorded on this tape since its last "
                       "reset");
    if (loss->numel != 1)
        return tg_fail(tp, TG_ESHAPE, "tg_backward: loss must be a scalar, got shape %s",
                       tg_shape_str(loss, buf, sizeof buf));
    if (!loss->requires_grad)
        return tg_fail(tp, TG_EARG,
                       "tg_backward: the loss does not require a gradient (no input of it "
                       "requires one, or grad mode was off)");
    tp->sweep++;
    if (ensure_grad(tp, loss)) return tp->err;
    tg_set(loss->grad, 0, tg_get(loss->grad, 0) + 1.0); /* d loss / d loss */
    for (tg_node *n = loss->node; n; n = n->prev) {
        if (!n->out->grad || n->out->grad_sweep != tp->sweep) continue; /* no gradient here */
        for (int i = 0; i < n->n_in; i++)
            if (n->in[i]->requires_grad && ensure_grad(tp, n->in[i])) return tp->err;
        tg_op_table[n->op].backward(n);
    }
    return TG_OK;
}
