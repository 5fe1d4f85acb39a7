/* ops/activation.c: activation functions. */
#include "internal.h"

/* y = tanh(x);  dx += dy (1 - y²). Needs only the output, so saves nothing. */
#define TANH_KERNELS(T, SFX, TANH)                                                         \
    static void tanh_fwd_##SFX(tg_node *n)                                                 \
    {                                                                                      \
        const T *x = n->in[0]->data;                                                       \
        T *y = n->out->data;                                                               \
        for (int64_t i = 0, len = n->out->numel; i < len; i++) y[i] = TANH(x[i]);          \
    }                                                                                      \
    static void tanh_bwd_##SFX(tg_node *n)                                                 \
    {                                                                                      \
        const T *y = n->out->data, *dy = n->out->grad->data;                               \
        T *dx = n->in[0]->grad->data;                                                      \
        for (int64_t i = 0, len = n->out->numel; i < len; i++)                             \
            dx[i] += dy[i] * ((T)1 - y[i] * y[i]);                                         \
    }
TANH_KERNELS(float, f32, tanhf)
TANH_KERNELS(double, f64, tanh)

void tg_tanh_fwd(tg_node *n) { TG_DISPATCH(n, tanh_fwd); }
void tg_tanh_bwd(tg_node *n)
{
    if (!n->in[0]->requires_grad) return; /* never compute unused gradients */
    TG_DISPATCH(n, tanh_bwd);
}
tg_tensor *tg_tanh(tg_tape *tp, tg_tensor *x) { return tg_op_unary(tp, TG_OP_tanh, x); }
