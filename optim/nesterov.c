/* optim/nesterov.c: Nesterov's accelerated gradient, stored at the look-ahead point. */
#include "internal.h"

/* The lectures' Nesterov takes the gradient at the look-ahead point w - alpha h:
 *     h_t = alpha h_{t-1} + lr grad(w_{t-1} - alpha h_{t-1});   w_t = w_{t-1} - h_t.
 * A step only has the gradient at the parameters it holds, so the parameters hold the
 * look-ahead point u = w - alpha h instead. Substituting w = u + alpha h gives
 *     h_t = alpha h_{t-1} + lr grad(u_{t-1});   u_t = u_{t-1} - (alpha h_t + lr grad(u_{t-1})),
 * the same trajectory (u_t = w_t - alpha h_t at every t; test_optim checks it), and, with
 * h = lr * buf, PyTorch's SGD(nesterov=True) at a constant lr. With L2 the gradient is
 * g + rho u. Slot 0 is h. */
#define TG_TEMPLATE "nesterov_t.h"
#include "stamp.h"

static void nesterov_defaults(tg_optim_opts *o)
{
    o->lr = 0.01;
    o->momentum = 0.9;
}

const tg_optim_class tg_nesterov_class = {
    .name = "nesterov",
    .n_slots = 1,
    .defaults = nesterov_defaults,
    .update_f32 = nesterov_f32,
    .update_f64 = nesterov_f64,
};
